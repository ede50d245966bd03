//! The hand-computed cases of ../shared/METHODS_SEED1.md for C-SWAP (§7), gradient flow (§4) and
//! LD-Pruner (§8), on MLPs whose weights are set by hand, through the same probe interface the
//! training loop serves; and the finite-difference Hessian-vector product against the exact one
//! of a softmax regression (burn 0.22 has no double backward to compare with).

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use models::init::HostRng;
use models::{Mlp, MlpConfig, PrunableModel};
use pruners::calibration::{hessian_vector_product, LossCalibration, LossProbe, ProbeOutputs};
use pruners::methods::c_swap::{CSwap, Effect};
use pruners::methods::gradient_flow::weight_scores;
use pruners::methods::ld_pruner::LdPruner;
use pruners::Pruner;

fn cpu() -> Device {
    Device::flex()
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().unwrap()
}

fn matrix(v: &[f32], dims: [usize; 2]) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v.to_vec(), dims), &cpu())
}

fn set(l: &mut models::PrunableLinear, w: &[f32], b: &[f32]) {
    let dims = l.dims();
    l.weight = Param::from_tensor(matrix(w, dims));
    l.bias = Some(Param::from_tensor(Tensor::from_data(TensorData::new(b.to_vec(), [b.len()]), &cpu())));
}

/// The probe over fixed inputs, labelled by the unpruned model's own predictions.
struct MlpProbe {
    model: Mlp,
    x: Tensor<2>,
    y: Vec<usize>,
}

impl MlpProbe {
    fn new(model: Mlp, x: Tensor<2>) -> Self {
        let (_, logits) = model.forward_features(x.clone());
        let classes = logits.dims()[1];
        let y = host(logits).chunks(classes).map(|r| (0..classes).fold(0, |b, c| if r[c] > r[b] { c } else { b })).collect();
        Self { model, x, y }
    }
}

impl LossProbe for MlpProbe {
    fn examples(&self) -> usize {
        self.y.len()
    }
    fn loss_without(&mut self, _removed: &[(usize, usize)]) -> f64 {
        unreachable!("not read by these methods")
    }
    fn accuracy_without(&mut self, _removed: &[(usize, usize)]) -> f64 {
        unreachable!("not read by these methods")
    }
    fn outputs_without(&mut self, removed: &[(usize, usize)]) -> ProbeOutputs {
        let mut m = self.model.clone();
        pruners::units::remove_units(&mut m, removed);
        let (f, l) = m.forward_features(self.x.clone());
        let (dim, classes) = (f.dims()[1], l.dims()[1]);
        ProbeOutputs { logits: host(l), classes, features: host(f), dim, labels: self.y.clone() }
    }
    fn gradients_at(&mut self, _shift: &[Tensor<2>]) -> Vec<Tensor<2>> {
        unreachable!("not read by these methods")
    }
}

fn inputs(n: usize, d: usize, seed: u64) -> Tensor<2> {
    matrix(&HostRng::new(seed).normals(n * d, 1.0), [n, d])
}

fn units_removed(model: &Mlp, group: usize) -> Vec<usize> {
    let g = &model.unit_groups()[group];
    let layer = &model.prunable_layers()[g.members[0].layer].1;
    let [_, cols] = layer.dims();
    let m = host(layer.mask.clone().expect("masks set"));
    (0..g.count).filter(|&u| (0..cols).all(|j| m[u * cols + j] == 0.0)).collect()
}

#[test]
fn c_swap_three_units_dead_is_neutral_wrong_class_is_detrimental_signal_is_critical() {
    // §7(e): 2 inputs → 3 hidden → 3 classes. u1 reads x but writes nothing (dead); u2 is a
    // constant 1 written to class 2, which is never the answer (a push towards a wrong class);
    // u3 = relu(x₀) carries the class-1 signal against class 0's bias.
    let mut model = Mlp::new(&MlpConfig::new(2, vec![3], 3, 0.0), 1, &cpu());
    set(&mut model.layers[0], &[1.0, 1.0, 0.0, 0.0, 1.0, 0.0], &[0.0, 1.0, 0.0]);
    set(&mut model.layers[1], &[0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.5, 0.0], &[1.0, 0.0, 0.0]);
    let mut probe = MlpProbe::new(model.clone(), inputs(400, 2, 3));
    assert!(probe.y.iter().all(|&y| y < 2) && probe.y.contains(&0) && probe.y.contains(&1));

    // Budget: 2 of the 3 units (the group keeps one), one round.
    let mut pruned = model.clone();
    let mut c = CSwap::new(0, 1.0 / 3.0, 400, 1);
    c.calibrate_loss(&mut pruned, &mut LossCalibration { gradients: None, probe: &mut probe });
    let effect = |u: usize| c.effects.iter().find(|e| e.unit == u).unwrap().clone();
    assert_eq!(effect(0).effect, Effect::Neutral);
    assert_eq!(effect(0).xi, 0.0);
    assert_eq!(effect(1).effect, Effect::Detrimental, "{:?}", effect(1));
    assert!(effect(1).xi < 0.0);
    assert_eq!(effect(2).effect, Effect::Critical, "{:?}", effect(2));
    // Detrimental first, then neutral; the critical unit stays.
    assert_eq!(c.removed, vec![(0, 1), (0, 0)]);
    c.apply_masks(&mut pruned, 0);
    assert_eq!(units_removed(&pruned, 0), vec![0, 1]);

    // Asked for all three in two rounds: the second round finds only the critical unit left,
    // and stops there rather than cut the signal.
    let mut c = CSwap::new(0, 0.01, 400, 2);
    let mut pruned = model.clone();
    c.calibrate_loss(&mut pruned, &mut LossCalibration { gradients: None, probe: &mut probe });
    assert_eq!(c.removed, vec![(0, 1), (0, 0)]);
}

#[test]
fn gradient_flow_quadratic_by_hand() {
    // §4(e): L = ½θᵀAθ − bᵀθ, A = [[2,1],[1,2]], b = [1,1], θ = [1, 0.5].
    struct Quadratic;
    impl LossProbe for Quadratic {
        fn examples(&self) -> usize {
            1
        }
        fn loss_without(&mut self, _: &[(usize, usize)]) -> f64 {
            unreachable!()
        }
        fn accuracy_without(&mut self, _: &[(usize, usize)]) -> f64 {
            unreachable!()
        }
        fn outputs_without(&mut self, _: &[(usize, usize)]) -> ProbeOutputs {
            unreachable!()
        }
        fn gradients_at(&mut self, shift: &[Tensor<2>]) -> Vec<Tensor<2>> {
            let mut t = [1.0f32, 0.5];
            if let Some(s) = shift.first() {
                let s = host(s.clone());
                t = [t[0] + s[0], t[1] + s[1]];
            }
            vec![matrix(&[2.0 * t[0] + t[1] - 1.0, t[0] + 2.0 * t[1] - 1.0], [1, 2])]
        }
    }
    let theta = vec![matrix(&[1.0, 0.5], [1, 2])];
    let g = Quadratic.gradients_at(&[]);
    assert_eq!(host(g[0].clone()), vec![1.5, 1.0]);
    let hg = hessian_vector_product(&mut Quadratic, &theta, &g, 1e-3);
    let hg_host = host(hg[0].clone());
    assert!((hg_host[0] - 4.0).abs() < 1e-3 && (hg_host[1] - 3.5).abs() < 1e-3, "{hg_host:?}");
    let s = host(weight_scores(&theta, &hg)[0].clone());
    assert!((s[0] + 4.0).abs() < 1e-3 && (s[1] + 1.75).abs() < 1e-3, "{s:?}");
    // The top score is θ₂: prune it first. Exactly: ‖g‖² = 3.25; without θ₂ it is 1.0, without
    // θ₁ 0.25 (θ₂'s removal lowers the gradient flow less); first order 2·S: −3.5 and −8.0.
    assert!(s[1] > s[0]);
    let norm2 = |t: [f32; 2]| (2.0 * t[0] + t[1] - 1.0).powi(2) + (t[0] + 2.0 * t[1] - 1.0).powi(2);
    assert_eq!((norm2([1.0, 0.5]), norm2([1.0, 0.0]), norm2([0.0, 0.5])), (3.25, 1.0, 0.25));
    assert!((2.0 * s[1] - -3.5).abs() < 2e-3 && (2.0 * s[0] - -8.0).abs() < 2e-3);
}

#[test]
fn finite_difference_hessian_vector_product_matches_the_exact_one_of_a_softmax_regression() {
    // L(W) = mean CE(softmax(W x), y), W [3, 4]. Exact: H·V = mean_x ((diag p − p pᵀ)(V x)) xᵀ.
    let (n, d, k) = (16, 4, 3);
    let x = HostRng::new(7).normals(n * d, 1.0);
    let y: Vec<usize> = (0..n).map(|i| i % k).collect();
    let w = HostRng::new(8).normals(k * d, 0.5);
    // The regression as an MLP with no hidden layer (bias 0), through the probe the
    // progressive-method tests use: burn's autodiff, as the loop's probe.
    let mut model = Mlp::new(&MlpConfig::new(d, vec![], k, 0.0), 1, &cpu());
    set(&mut model.layers[0], &w, &vec![0.0; k]);
    let mut probe = GradProbe { model, x: x.clone(), y, d };
    let v = HostRng::new(9).normals(k * d, 1.0);
    let fd = host(hessian_vector_product(&mut probe, &[matrix(&w, [k, d])], &[matrix(&v, [k, d])], 1e-3)[0].clone());
    let mut exact = vec![0.0f64; k * d];
    for i in 0..n {
        let xi = &x[i * d..(i + 1) * d];
        let z: Vec<f64> = (0..k).map(|c| (0..d).map(|j| w[c * d + j] as f64 * xi[j] as f64).sum()).collect();
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let p: Vec<f64> = e.iter().map(|v| v / e.iter().sum::<f64>()).collect();
        let dz: Vec<f64> = (0..k).map(|c| (0..d).map(|j| v[c * d + j] as f64 * xi[j] as f64).sum()).collect();
        let pdz: f64 = (0..k).map(|c| p[c] * dz[c]).sum();
        for c in 0..k {
            let dp = p[c] * (dz[c] - pdz);
            for j in 0..d {
                exact[c * d + j] += dp * xi[j] as f64 / n as f64;
            }
        }
    }
    let scale = exact.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let err = fd.iter().zip(&exact).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
    assert!(err < 2e-2 * scale, "finite difference {fd:?} vs exact {exact:?}");
}

#[test]
fn ld_pruner_scores_a_unit_that_writes_nothing_zero_and_removes_it_first() {
    // 3 inputs → 4 → 3 hidden → 2 classes; the features are the second hidden layer's output.
    let mut model = Mlp::new(&MlpConfig::new(3, vec![4, 3], 2, 0.0), 6, &cpu());
    // Unit 2 of the first hidden layer writes nothing: layer 1's column 2 is zero.
    let [r, c] = model.layers[1].dims();
    let mut w = host(model.layers[1].weight.val());
    for i in 0..r {
        w[i * c + 2] = 0.0;
    }
    let b: Vec<f32> = model.layers[1].bias.as_ref().unwrap().val().to_data().convert::<f32>().try_to_vec().unwrap();
    set(&mut model.layers[1], &w, &b);
    let mut probe = MlpProbe::new(model.clone(), inputs(64, 3, 11));
    // Each group keeps round(0.75·count) of its units: one of the first layer's 4 goes, and one
    // of the second's 3 (kept: round(2.25) = 2), the lowest-scored in each.
    let mut ld = LdPruner::new(0, 0.75, 64);
    let mut pruned = model.clone();
    ld.calibrate_loss(&mut pruned, &mut LossCalibration { gradients: None, probe: &mut probe });
    assert_eq!(ld.scores[0][2], 0.0);
    assert!(ld.scores.iter().flatten().filter(|&&s| s == 0.0).count() == 1, "{:?}", ld.scores);
    ld.apply_masks(&mut pruned, 0);
    assert_eq!(units_removed(&pruned, 0), vec![2]);
    let s1 = &ld.scores[1];
    let lowest = (0..3).fold(0, |b, u| if s1[u] < s1[b] { u } else { b });
    assert_eq!(units_removed(&pruned, 1), vec![lowest]);
}

/// The loop's side for the progressive methods on an MLP: the gradients of the cross-entropy of
/// fixed examples at shifted weights (through burn's autodiff, as the trainer's probe).
struct GradProbe {
    model: Mlp,
    x: Vec<f32>,
    y: Vec<usize>,
    d: usize,
}

impl LossProbe for GradProbe {
    fn examples(&self) -> usize {
        self.y.len()
    }
    fn loss_without(&mut self, _: &[(usize, usize)]) -> f64 {
        unreachable!()
    }
    fn accuracy_without(&mut self, _: &[(usize, usize)]) -> f64 {
        unreachable!()
    }
    fn outputs_without(&mut self, _: &[(usize, usize)]) -> ProbeOutputs {
        unreachable!()
    }
    fn gradients_at(&mut self, shift: &[Tensor<2>]) -> Vec<Tensor<2>> {
        let ad = cpu().autodiff();
        let mut m = self.model.clone().to_device(&ad);
        for (i, (_, l)) in m.prunable_layers_mut().into_iter().enumerate() {
            let s = shift.get(i).map(|s| Tensor::<2>::from_data(s.to_data(), &ad));
            l.weight = l.weight.clone().map(|w| {
                let w = Tensor::<2>::from_data(w.to_data(), &ad);
                match &s {
                    Some(s) => (w + s.clone()).require_grad(),
                    None => w.require_grad(),
                }
            });
            if let Some(mask) = l.mask.take() {
                l.mask = Some(Tensor::from_data(mask.to_data(), &ad));
            }
            if let Some(b) = l.bias.take() {
                l.bias = Some(b.map(|b| Tensor::from_data(b.to_data(), &ad)));
            }
        }
        let n = self.y.len();
        let x = Tensor::<2>::from_data(TensorData::new(self.x.clone(), [n, self.d]), &ad);
        let logp = burn::tensor::activation::log_softmax(m.forward(x), 1);
        let k = logp.dims()[1];
        let onehot: Vec<f32> = self.y.iter().flat_map(|&c| (0..k).map(move |j| (j == c) as u8 as f32)).collect();
        let loss = -(logp * Tensor::<2>::from_data(TensorData::new(onehot, [n, k]), &ad)).sum() / n as f64;
        let grads = loss.backward();
        m.prunable_layers().iter().map(|(_, l)| l.weight.val().grad(&grads).unwrap()).collect()
    }
}

fn progressive(method: &str) -> Box<dyn Pruner> {
    let cfg: pruners::PruningConfig =
        toml::from_str(&format!("method = \"{method}\"\nfinal_density = 0.5\nwarmup_steps = 0\ncooldown_steps = 5\nround_steps = 5\ndecay_steps = 5\ncalibration_samples = 32")).unwrap();
    cfg.build(20).unwrap()
}

/// Runs a pruner over 20 steps the way the loop calls it (no training: the weights move only
/// by what the pruner itself does), then finalises.
fn run_without_training(p: &mut dyn Pruner, model: &mut Mlp, probe: &mut GradProbe, mut each: impl FnMut(usize, &Mlp)) {
    p.init(model);
    for step in 0..20 {
        if p.loss_request(step).is_some() {
            probe.model = model.clone();
            p.calibrate_loss(model, &mut LossCalibration { gradients: None, probe });
        }
        p.apply_masks(model, step);
        each(step, model);
        p.after_step(model, step);
    }
    p.finalize(model, 19);
}

fn zero_units(model: &Mlp) -> Vec<usize> {
    // Hidden units whose row in layer 0 and column in layer 1 are both all zero.
    let (w0, [_, c0]) = (host(model.layers[0].weight.val()), model.layers[0].dims());
    let (w1, [r1, c1]) = (host(model.layers[1].weight.val()), model.layers[1].dims());
    (0..c1).filter(|&u| (0..c0).all(|j| w0[u * c0 + j] == 0.0) && (0..r1).all(|i| w1[i * c1 + u] == 0.0)).collect()
}

fn mlp_and_probe() -> (Mlp, GradProbe) {
    let model = Mlp::new(&MlpConfig::new(4, vec![8], 3, 0.0), 2, &cpu());
    let x = HostRng::new(4).normals(32 * 4, 1.0);
    let y = (0..32).map(|i| i % 3).collect();
    (model.clone(), GradProbe { model, x, y, d: 4 })
}

#[test]
fn gradient_flow_selects_progressively_with_falling_masks_and_ends_at_the_budget() {
    let (mut model, mut probe) = mlp_and_probe();
    let mut p = progressive("gradient_flow");
    let mut fractional = false;
    run_without_training(p.as_mut(), &mut model, &mut probe, |_, m| {
        if let Some(mask) = &m.layers[0].mask {
            fractional |= host(mask.clone()).iter().any(|&v| v > 0.0 && v < 1.0);
        }
    });
    assert!(fractional, "a selected unit's mask passes through values between 0 and 1");
    assert_eq!(zero_units(&model).len(), 4, "half of the 8 hidden units, exactly");
}

#[test]
fn decay_brings_the_selected_units_to_zero_norm_and_ends_at_the_budget() {
    let (mut model, mut probe) = mlp_and_probe();
    let norms0 = pruners::units::unit_sq_norms(&model);
    let mut p = progressive("decay");
    let mut seen = Vec::new();
    run_without_training(p.as_mut(), &mut model, &mut probe, |_, m| seen.push(pruners::units::unit_sq_norms(m)[0].clone()));
    let gone = zero_units(&model);
    assert_eq!(gone.len(), 4, "half of the 8 hidden units, exactly");
    // The host criterion is magnitude: the removed are the 4 lowest-norm units at the start
    // (no training moves them here).
    let mut by_norm: Vec<usize> = (0..8).collect();
    by_norm.sort_by(|&a, &b| norms0[0][a].total_cmp(&norms0[0][b]));
    let mut lowest = by_norm[..4].to_vec();
    lowest.sort();
    assert_eq!(gone, lowest);
    // Each removed unit's norm fell step by step rather than at once.
    let u = gone[0];
    let path: Vec<f32> = seen.iter().map(|n| n[u].sqrt()).collect();
    assert!(path.windows(2).all(|w| w[1] <= w[0] + 1e-6), "{path:?}");
    assert!(path.iter().any(|&v| v > 0.0 && v < norms0[0][u].sqrt() * 0.99), "{path:?}");
}
