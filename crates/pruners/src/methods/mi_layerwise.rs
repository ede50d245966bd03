//! Layer-wise structured pruning by mutual information (after Fan et al., EMNLP 2021), top-down.
//!
//! Our design (the paper's abstract fixes the idea, not the estimator):
//! - Units are each layer's attention heads and FFN neurons. After `warmup_steps` of dense
//!   fine-tuning, the trainer collects their activations on `calibration_samples` training
//!   examples (every non-padding token is a sample).
//! - Top-down: the last layer's units are scored against the model's output (logits, one sample
//!   per sequence at its CLS token); each lower layer's units against the activations of the
//!   units already kept in the layer above (one sample per token). This carries the training
//!   signal down, layer by layer.
//! - Score = Gaussian mutual information between a unit's activation `a` (a head's context
//!   vector, or a neuron's value) and the target `T`:
//!   `I(a; T) = ½ log det Σ_a − ½ log det(Σ_a − Σ_aT Σ_T⁻¹ Σ_Ta)` (for a scalar unit,
//!   `−½ log(1 − R²)`), with a small ridge on Σ_a and Σ_T. When `T` has more than 128 dimensions
//!   it is first multiplied by a fixed seeded Gaussian projection to 128.
//! - Budget: every layer keeps `round(final_density × count)` heads and neurons (at least one),
//!   the same split as the other structured methods, so tables compare like with like.
//! - From then on the masks are fixed and fine-tuning continues; the removed units contribute
//!   exactly zero and get zero gradient, so this is the same as fine-tuning the compacted model,
//!   which is what the run saves at the end.

use crate::units::{expand, keep_best, kept_units};
use crate::Pruner;
use burn::tensor::{Tensor, TensorData};
use models::{PrunableModel, UnitActivations, UnitGroup};

pub struct MiLayerwise {
    prune_step: usize,
    density: f64,
    calibration_samples: usize,
    seed: u64,
    /// Hard masks per prunable matrix, once calibrated.
    masks: Option<Vec<Tensor<2>>>,
    /// MI score of every unit, per group (reported and tested).
    pub scores: Vec<Vec<f64>>,
}

const MAX_TARGET_DIMS: usize = 128;
const RIDGE: f64 = 1e-4;

impl MiLayerwise {
    pub fn new(prune_step: usize, density: f64, calibration_samples: usize, seed: u64) -> Self {
        Self { prune_step, density, calibration_samples, seed, masks: None, scores: Vec::new() }
    }
}

/// Host matrix, row-major.
#[derive(Clone, Debug)]
struct Mat {
    r: usize,
    c: usize,
    v: Vec<f64>,
}

impl Mat {
    fn from_tensor(t: Tensor<2>) -> Self {
        let [r, c] = t.dims();
        Self { r, c, v: t.to_data().convert::<f32>().try_to_vec::<f32>().expect("f32").into_iter().map(f64::from).collect() }
    }
    fn at(&self, i: usize, j: usize) -> f64 {
        self.v[i * self.c + j]
    }
}

/// Cholesky factor (lower) of a symmetric positive definite matrix, or None.
fn cholesky(a: &Mat) -> Option<Mat> {
    let n = a.r;
    let mut l = Mat { r: n, c: n, v: vec![0.0; n * n] };
    for i in 0..n {
        for j in 0..=i {
            let mut s = a.at(i, j);
            for k in 0..j {
                s -= l.v[i * n + k] * l.v[j * n + k];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l.v[i * n + i] = s.sqrt();
            } else {
                l.v[i * n + j] = s / l.v[j * n + j];
            }
        }
    }
    Some(l)
}

/// log det of an SPD matrix (ridge added until it factors).
fn logdet(a: &Mat) -> f64 {
    let scale = (0..a.r).map(|i| a.at(i, i)).sum::<f64>() / a.r as f64;
    let mut ridge = RIDGE * scale.max(1e-12);
    loop {
        let mut m = a.clone();
        for i in 0..m.r {
            m.v[i * m.c + i] += ridge;
        }
        if let Some(l) = cholesky(&m) {
            return 2.0 * (0..l.r).map(|i| l.at(i, i).ln()).sum::<f64>();
        }
        ridge *= 10.0;
    }
}

/// Solves L·Y = B for lower-triangular L (B: n × m).
fn forward_solve(l: &Mat, b: &Mat) -> Mat {
    let (n, m) = (l.r, b.c);
    let mut y = b.clone();
    for j in 0..m {
        for i in 0..n {
            let mut s = y.v[i * m + j];
            for k in 0..i {
                s -= l.v[i * n + k] * y.v[k * m + j];
            }
            y.v[i * m + j] = s / l.v[i * n + i];
        }
    }
    y
}

/// A seeded Gaussian matrix `[rows, cols]` scaled by 1/√cols.
fn projection(rows: usize, cols: usize, seed: u64, device: &burn::tensor::Device) -> Tensor<2> {
    let mut rng = models::init::HostRng::new(seed ^ 0x5DEE_CE66_D1CE_4E5B);
    let mut next = || rng.unit();
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| {
            let (u1, u2) = (next().max(1e-300), next());
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() / (cols as f64).sqrt()) as f32
        })
        .collect();
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

/// Gaussian MI between each unit of `acts` (`[n, count·width]`) and `target` (`[n, k]`).
pub fn unit_mutual_information(acts: Tensor<2>, target: Tensor<2>, count: usize, width: usize) -> Vec<f64> {
    let [n, _] = acts.dims();
    let denom = (n.max(2) - 1) as f64;
    let x = acts.clone() - acts.mean_dim(0);
    let t = target.clone() - target.mean_dim(0);
    let cov_t = Mat::from_tensor(t.clone().transpose().matmul(t.clone()) / denom);
    let cross = Mat::from_tensor(x.clone().transpose().matmul(t) / denom); // [count·width, k]
    // Σ_T⁻¹ via its Cholesky factor (ridge until it factors).
    let scale = (0..cov_t.r).map(|i| cov_t.at(i, i)).sum::<f64>() / cov_t.r.max(1) as f64;
    let mut ridge = RIDGE * scale.max(1e-12);
    let l = loop {
        let mut m = cov_t.clone();
        for i in 0..m.r {
            m.v[i * m.c + i] += ridge;
        }
        if let Some(l) = cholesky(&m) {
            break l;
        }
        ridge *= 10.0;
    };
    let crossed_t = Mat { r: cross.c, c: cross.r, v: (0..cross.c).flat_map(|j| (0..cross.r).map(move |i| (i, j))).map(|(i, j)| cross.at(i, j)).collect() };
    let y = forward_solve(&l, &crossed_t); // [k, count·width]: explained = Yᵀ Y
    (0..count)
        .map(|u| {
            let cols: Vec<usize> = (u * width..(u + 1) * width).collect();
            let xu = x.clone().slice([0..n, u * width..(u + 1) * width]);
            let cov_a = Mat::from_tensor(xu.clone().transpose().matmul(xu) / denom);
            let mut cond = cov_a.clone();
            for (a, &ca) in cols.iter().enumerate() {
                for (b, &cb) in cols.iter().enumerate() {
                    let e: f64 = (0..y.r).map(|k| y.at(k, ca) * y.at(k, cb)).sum();
                    cond.v[a * width + b] -= e;
                }
            }
            // Guard: the conditional covariance cannot exceed the marginal; keep it PSD.
            for a in 0..width {
                let d = cond.v[a * width + a];
                cond.v[a * width + a] = d.max(cov_a.v[a * width + a] * 1e-6);
            }
            (0.5 * (logdet(&cov_a) - logdet(&cond))).max(0.0)
        })
        .collect()
}

impl Pruner for MiLayerwise {
    fn name(&self) -> &'static str {
        "mi_layerwise"
    }

    fn calibration_request(&self, step: usize) -> Option<usize> {
        (step == self.prune_step && self.masks.is_none()).then_some(self.calibration_samples)
    }

    fn calibrate(&mut self, model: &mut dyn PrunableModel, acts: &UnitActivations) {
        let groups: Vec<UnitGroup> = model.unit_groups();
        assert_eq!(groups.len(), acts.groups.len(), "one activation matrix per unit group");
        let device = acts.output.device();
        let dims: Vec<[usize; 2]> = model.prunable_layers().iter().map(|(_, l)| l.dims()).collect();
        let mut keep_per_group: Vec<Vec<f32>> = vec![Vec::new(); groups.len()];
        self.scores = vec![Vec::new(); groups.len()];
        let cls = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(acts.cls_rows.iter().map(|&r| r as i64).collect::<Vec<_>>(), [acts.cls_rows.len()]), &device);
        // Walk the depths the model declares (a BERT layer: heads and neurons; an MLP hidden
        // layer: its neurons) from the top.
        let depths = groups.iter().map(|g| g.depth + 1).max().unwrap_or(0);
        let mut target: Option<Tensor<2>> = None; // kept units of the layer above, per token
        for layer in (0..depths).rev() {
            let members: Vec<usize> = (0..groups.len()).filter(|&g| groups[g].depth == layer).collect();
            if members.is_empty() {
                continue;
            }
            for &g in &members {
                let group = &groups[g];
                let (acts_g, t) = match &target {
                    None => (acts.groups[g].clone().select(0, cls.clone()), acts.output.clone()),
                    Some(t) => (acts.groups[g].clone(), t.clone()),
                };
                let mi = unit_mutual_information(acts_g, t, group.count, group.width);
                let keep = keep_best(&mi.iter().map(|&v| v as f32).collect::<Vec<_>>(), kept_units(group.count, self.density));
                self.scores[g] = mi;
                keep_per_group[g] = keep;
            }
            // This layer's kept units become the next (lower) layer's target.
            let kept: Vec<Tensor<2>> = members
                .iter()
                .map(|&g| {
                    let w = groups[g].width;
                    let cols: Vec<i64> = keep_per_group[g].iter().enumerate().filter(|(_, &k)| k == 1.0).flat_map(|(u, _)| (u * w..(u + 1) * w).map(|c| c as i64)).collect();
                    let idx = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(cols.clone(), [cols.len()]), &device);
                    acts.groups[g].clone().select(1, idx)
                })
                .collect();
            let t = Tensor::cat(kept, 1);
            let k = t.dims()[1];
            target = Some(if k > MAX_TARGET_DIMS { t.matmul(projection(k, MAX_TARGET_DIMS, self.seed.wrapping_add(layer as u64), &device)) } else { t });
        }
        let mut masks: Vec<Option<Tensor<2>>> = vec![None; dims.len()];
        for (g, group) in groups.iter().enumerate() {
            let keep = Tensor::<1>::from_data(TensorData::new(keep_per_group[g].clone(), [group.count]), &device);
            for m in &group.members {
                let e = expand(&keep, m.width, m.axis, dims[m.layer]);
                masks[m.layer] = Some(match masks[m.layer].take() {
                    Some(old) => old * e,
                    None => e,
                });
            }
        }
        self.masks = Some(masks.into_iter().zip(&dims).map(|(m, d)| m.unwrap_or_else(|| Tensor::ones(*d, &device))).collect());
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        if step < self.prune_step {
            return;
        }
        let masks = self.masks.as_ref().expect("mi_layerwise: the trainer must calibrate before the pruning step");
        crate::mask::set_fixed_masks(model, masks);
    }

    /// Whether the one-shot removal happened, and the MI scores; the masks themselves are
    /// restored from the checkpointed layer masks.
    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "calibrated": self.masks.is_some(), "scores": self.scores })
    }

    fn load_state(&mut self, state: &serde_json::Value, model: &dyn PrunableModel) -> Result<(), String> {
        self.scores = serde_json::from_value(state.get("scores").cloned().unwrap_or_default()).map_err(|e| format!("pruner state: scores: {e}"))?;
        if state.get("calibrated").and_then(|v| v.as_bool()) == Some(true) {
            let masks = crate::mask::masks_in_model(model);
            self.masks = Some(masks.ok_or("mi_layerwise: the checkpoint was taken after the removal but holds no masks")?);
        }
        Ok(())
    }

    fn scheduled_density(&self, step: usize) -> f64 {
        if step < self.prune_step {
            1.0
        } else {
            self.density
        }
    }
}

/// `method = "mi_layerwise"`: the units are scored and removed at `warmup_steps`.
pub fn build(c: &crate::PruningConfig, _b: &crate::registry::BuildContext) -> Result<Box<dyn crate::Pruner>, String> {
    Ok(Box::new(MiLayerwise::new(c.warmup_steps, c.final_density, c.calibration_samples, c.seed)))
}
