//! Structured masks: whole attention heads and FFN neurons, from per-weight scores.
//!
//! A unit's score is the sum of its weights' scores over every slice it owns (for magnitude
//! pruning, |W| summed: the unit's L1 norm; for movement pruning, the movement scores summed).
//! Each group (one layer's heads, one layer's neurons) keeps the `round(density × count)` best
//! units, at least one, so every layer keeps the same fraction and stays connected. The unit
//! mask is then expanded to the rows and columns each unit owns.

use burn::tensor::{Tensor, TensorData};
use models::{Axis, Member, PrunableModel, UnitGroup};

/// Score per unit of `group`, `[count]`: the sum of `scores` over the unit's slices.
pub fn unit_scores(group: &UnitGroup, scores: &[Tensor<2>]) -> Tensor<1> {
    let n = group.count;
    let parts: Vec<Tensor<1>> = group
        .members
        .iter()
        .map(|&Member { layer: m, axis, width: w }| {
            let s = scores[m].clone();
            let [r, c] = s.dims();
            match axis {
                Axis::Rows => s.reshape([n, w * c]).sum_dim(1).reshape([n]),
                Axis::Cols => s.reshape([r, n, w]).sum_dim(2).sum_dim(0).reshape([n]),
            }
        })
        .collect();
    parts.into_iter().reduce(|a, b| a + b).expect("a group has members")
}

/// A 0/1 mask over `count` units keeping the `k` best (ties: lowest index first).
pub fn keep_best(scores: &[f32], k: usize) -> Vec<f32> {
    crate::mask::topk_mask_values(scores, k)
}

/// Expands a unit mask `[count]` to the `[d_out, d_in]` mask of a member matrix.
pub fn expand(keep: &Tensor<1>, width: usize, axis: Axis, dims: [usize; 2]) -> Tensor<2> {
    let count = keep.dims()[0];
    let per_index = keep.clone().reshape([count, 1]).expand([count, width]).reshape([count * width]);
    match axis {
        Axis::Rows => per_index.reshape([dims[0], 1]).expand(dims),
        Axis::Cols => per_index.reshape([1, dims[1]]).expand(dims),
    }
}

/// Number of units a group of `count` keeps at `density` (at least one).
pub fn kept_units(count: usize, density: f64) -> usize {
    ((count as f64 * density).round() as usize).clamp(1, count)
}

/// Hard masks for every prunable matrix (index = position in `prunable_layers()`): the units
/// of each group kept by their summed `scores`; matrices in no group keep everything.
pub fn unit_masks(groups: &[UnitGroup], scores: &[Tensor<2>], density: f64) -> Vec<Tensor<2>> {
    let mut masks: Vec<Option<Tensor<2>>> = vec![None; scores.len()];
    for g in groups {
        let device = scores[g.members[0].layer].device();
        let s: Vec<f32> = unit_scores(g, scores).detach().to_data().convert::<f32>().try_to_vec().expect("f32 unit scores");
        let keep = Tensor::<1>::from_data(TensorData::new(keep_best(&s, kept_units(g.count, density)), [g.count]), &device);
        for m in &g.members {
            // A matrix can belong to two groups (a conv's rows are its filters, its columns the
            // previous conv's; an MLP's middle layer): the masks multiply.
            let e = expand(&keep, m.width, m.axis, scores[m.layer].dims());
            masks[m.layer] = Some(match masks[m.layer].take() {
                Some(old) => old * e,
                None => e,
            });
        }
    }
    masks.into_iter().zip(scores).map(|(m, s)| m.unwrap_or_else(|| Tensor::ones(s.dims(), &s.device()))).collect()
}

/// Each unit's L1 norm: `Σ|W|` over every slice it owns (masks and gates applied), per group.
pub fn l1_scores(model: &dyn PrunableModel) -> Vec<Vec<f32>> {
    let abs: Vec<Tensor<2>> = model.prunable_layers().iter().map(|(_, l)| l.effective_weight().detach().abs()).collect();
    model
        .unit_groups()
        .iter()
        .map(|g| unit_scores(g, &abs).to_data().convert::<f32>().try_to_vec().expect("f32 unit scores"))
        .collect()
}

/// The masks that keep, in group `g`, the units where `keep[g][u]` is 1 (every slice of a
/// removed unit zeroed); matrices in no group keep everything. `dims` in `prunable_layers()`
/// order.
pub fn masks_from_keep(groups: &[UnitGroup], keep: &[Vec<f32>], dims: &[[usize; 2]], device: &burn::tensor::Device) -> Vec<Tensor<2>> {
    let mut masks: Vec<Tensor<2>> = dims.iter().map(|d| Tensor::ones(*d, device)).collect();
    for (g, k) in groups.iter().zip(keep) {
        let unit = Tensor::<1>::from_data(TensorData::new(k.clone(), [g.count]), device);
        for m in &g.members {
            masks[m.layer] = masks[m.layer].clone() * expand(&unit, m.width, m.axis, dims[m.layer]);
        }
    }
    masks
}

/// [`masks_from_keep`] for `model`'s own groups, shapes and device.
pub fn keep_masks(model: &dyn PrunableModel, keep: &[Vec<f32>]) -> Vec<Tensor<2>> {
    let dims: Vec<[usize; 2]> = model.prunable_layers().iter().map(|(_, l)| l.dims()).collect();
    let device = model.prunable_layers()[0].1.weight.val().device();
    masks_from_keep(&model.unit_groups(), keep, &dims, &device)
}

/// Indices of the `k` lowest scores (ties: lowest index first).
pub fn lowest(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Takes units out of a model through its masks: every slice that unit `u` of group `g` owns
/// (`removed` holds `(g, u)`, `g` indexing `unit_groups()`) is multiplied by 0, on top of the
/// masks already set. A removed unit then contributes nothing downstream (its columns in the
/// output-side matrix are zero), whatever its biases.
pub fn remove_units(model: &mut dyn PrunableModel, removed: &[(usize, usize)]) {
    if removed.is_empty() {
        return;
    }
    let groups = model.unit_groups();
    let mut keep: Vec<Option<Vec<f32>>> = vec![None; groups.len()];
    for &(g, u) in removed {
        keep[g].get_or_insert_with(|| vec![1.0; groups[g].count])[u] = 0.0;
    }
    let mut layers = model.prunable_layers_mut();
    for (g, k) in keep.into_iter().enumerate() {
        let Some(k) = k else { continue };
        let group = &groups[g];
        for member in &group.members {
            let layer = &mut layers[member.layer].1;
            let device = layer.weight.val().device();
            let unit = Tensor::<1>::from_data(TensorData::new(k.clone(), [group.count]), &device);
            let mask = expand(&unit, member.width, member.axis, layer.dims());
            layer.mask = Some(match layer.mask.take() {
                Some(old) => old * mask,
                None => mask,
            });
        }
    }
}

/// Each unit's squared L2 norm: `Σ W²` over every slice it owns (the raw weights), per group.
pub fn unit_sq_norms(model: &dyn PrunableModel) -> Vec<Vec<f32>> {
    let sq: Vec<Tensor<2>> = model.prunable_layers().iter().map(|(_, l)| l.weight.val().detach().square()).collect();
    model.unit_groups().iter().map(|g| unit_scores(g, &sq).to_data().convert::<f32>().try_to_vec().expect("f32 unit norms")).collect()
}

/// Multiplies every slice of unit `u` of group `g` by `factors[g][u]` (the weights themselves,
/// not a mask), keeping each weight a trainable leaf with its parameter id (so the optimizer's
/// state carries on).
pub fn scale_units(model: &mut dyn PrunableModel, factors: &[Vec<f32>]) {
    let groups = model.unit_groups();
    let mut layers = model.prunable_layers_mut();
    for (group, f) in groups.iter().zip(factors) {
        if f.iter().all(|&v| v == 1.0) {
            continue;
        }
        for member in &group.members {
            let layer = &mut layers[member.layer].1;
            let device = layer.weight.val().device();
            let unit = Tensor::<1>::from_data(TensorData::new(f.clone(), [group.count]), &device);
            let factor = expand(&unit, member.width, member.axis, layer.dims());
            layer.weight = layer.weight.clone().map(|w| {
                let grad = w.is_require_grad();
                (w * factor).detach().set_require_grad(grad)
            });
        }
    }
}

/// How many units of each group a density removes (the complement of [`kept_units`]).
pub fn removal_counts(groups: &[UnitGroup], density: f64) -> Vec<usize> {
    groups.iter().map(|g| g.count - kept_units(g.count, density)).collect()
}

/// Units ordered for removal under a global budget: `order` lists `(group, unit)` candidates
/// best-to-remove first; takes them while the total is below `budget`, skipping any that would
/// leave its group with no unit (`remaining[g]` = units of group `g` still in).
pub fn take_within_groups(order: &[(usize, usize)], remaining: &mut [usize], budget: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for &(g, u) in order {
        if out.len() >= budget {
            break;
        }
        if remaining[g] > 1 {
            remaining[g] -= 1;
            out.push((g, u));
        }
    }
    out
}

/// The bookkeeping every one-shot unit method shares (SBPF, C-SWAP, LD-Pruner): at
/// `prune_step` the method scores the units from a calibration request and decides which to
/// keep; from then on those masks hold. This is the part that is the same for all of them:
/// when to ask, the masks, putting them on, the resume state and the density reported.
pub struct UnitRemoval {
    /// The method's name, for messages.
    pub name: &'static str,
    pub prune_step: usize,
    pub density: f64,
    pub calibration_samples: usize,
    pub masks: Option<Vec<Tensor<2>>>,
}

impl UnitRemoval {
    pub fn new(name: &'static str, prune_step: usize, density: f64, calibration_samples: usize) -> Self {
        Self { name, prune_step, density, calibration_samples, masks: None }
    }

    /// The calibration request at the pruning step (once).
    pub fn loss_request(&self, step: usize, gradients: bool) -> Option<crate::calibration::LossRequest> {
        (step == self.prune_step && self.masks.is_none()).then_some(crate::calibration::LossRequest { examples: self.calibration_samples, gradients })
    }

    /// Sets the masks that keep, in group `g`, the units where `keep[g][u]` is 1.
    pub fn decide(&mut self, model: &dyn PrunableModel, keep: &[Vec<f32>]) {
        self.masks = Some(keep_masks(model, keep));
    }

    /// From the pruning step on, the masks decided.
    pub fn apply(&self, model: &mut dyn PrunableModel, step: usize) {
        if step < self.prune_step {
            return;
        }
        let masks = self.masks.as_ref().unwrap_or_else(|| panic!("{}: the trainer must calibrate before the pruning step", self.name));
        crate::mask::set_fixed_masks(model, masks);
    }

    /// Whether the removal happened (the rest of a resumed run's state is in the model's masks).
    pub fn state(&self) -> serde_json::Value {
        serde_json::json!({ "calibrated": self.masks.is_some() })
    }

    pub fn load_state(&mut self, state: &serde_json::Value, model: &dyn PrunableModel) -> Result<(), String> {
        if state.get("calibrated").and_then(|v| v.as_bool()) == Some(true) {
            let masks = crate::mask::masks_in_model(model);
            self.masks = Some(masks.ok_or_else(|| format!("{}: the checkpoint was taken after the removal but holds no masks", self.name))?);
        }
        Ok(())
    }

    pub fn density(&self, step: usize) -> f64 {
        if step < self.prune_step {
            1.0
        } else {
            self.density
        }
    }
}
