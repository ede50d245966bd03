//! Soft movement, L0 and the global scope on tiny cases, checked against the formulas.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use models::{PrunableLinear, PrunableModel};
use pruners::methods::l0::{L0, BETA, LIMIT_LEFT, LIMIT_RIGHT, SCORE_INIT};
use pruners::methods::soft_movement::{floor_count, SoftMovement};
use pruners::{CubicSchedule, Pruner, PruningConfig, Scope};

#[derive(burn::module::Module, Debug)]
struct Two {
    a: PrunableLinear,
    b: PrunableLinear,
}

impl PrunableModel for Two {
    fn prunable_layers(&self) -> Vec<(String, &PrunableLinear)> {
        vec![("a".into(), &self.a), ("b".into(), &self.b)]
    }
    fn prunable_layers_mut(&mut self) -> Vec<(String, &mut PrunableLinear)> {
        vec![("a".into(), &mut self.a), ("b".into(), &mut self.b)]
    }
}

#[allow(deprecated)]
fn cpu() -> Device {
    Device::ndarray()
}

fn tensor(v: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn linear(w: Vec<f32>, shape: [usize; 2], device: &Device) -> PrunableLinear {
    PrunableLinear { weight: Param::from_tensor(tensor(w, shape, device)), bias: None, mask_scores: None, mask: None, in_gate: None, out_gate: None }
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().unwrap()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Scores spread evenly over [-4, 4) so that every τ in (0, 1) cuts a known number.
fn spread(n: usize, shift: f32) -> Vec<f32> {
    (0..n).map(|i| -4.0 + 8.0 * ((i * 7919) % n) as f32 / n as f32 + shift).collect()
}

fn two_with_scores(device: &Device) -> (Two, Vec<f32>, Vec<f32>) {
    let (sa, sb) = (spread(1000, 0.0), spread(400, 1.0));
    let mut m = Two { a: linear(vec![1.0; 1000], [20, 50], device), b: linear(vec![1.0; 400], [20, 20], device) };
    m.a.mask_scores = Some(Param::from_tensor(tensor(sa.clone(), [20, 50], device)));
    m.b.mask_scores = Some(Param::from_tensor(tensor(sb.clone(), [20, 20], device)));
    (m, sa, sb)
}

fn schedule(final_value: f64) -> CubicSchedule {
    CubicSchedule { initial_density: 0.0, final_density: final_value, warmup_steps: 2, cooldown_steps: 2, total_steps: 12 }
}

#[test]
fn soft_mask_keeps_exactly_the_scores_above_tau_at_every_step() {
    let device = cpu();
    let (mut model, sa, sb) = two_with_scores(&device);
    let mut pruner = SoftMovement::new(schedule(0.5), 400.0, 1e-2);
    pruner.init(&mut model); // keeps the scores set above
    let mut previous_kept = usize::MAX;
    for step in 0..12 {
        pruner.apply_masks(&mut model, step);
        let tau = pruner.tau(step) as f32;
        let mut kept_total = 0;
        for (scores, layer) in [(&sa, &model.a), (&sb, &model.b)] {
            let mask = host(layer.mask.clone().unwrap());
            let want: Vec<f32> = scores.iter().map(|&s| if sigmoid(s) > tau { 1.0 } else { 0.0 }).collect();
            assert_eq!(mask, want, "step {step} τ {tau}");
            kept_total += want.iter().filter(|&&m| m == 1.0).count();
        }
        // τ only rises, so fewer weights are kept as the run goes on; the reported density is
        // the measured one.
        assert!(kept_total <= previous_kept);
        previous_kept = kept_total;
        assert!((pruner.scheduled_density(step) - kept_total as f64 / 1400.0).abs() < 1e-12);
    }
    // τ_final = 0.5 keeps exactly the scores > 0: a has −4 + 8k/1000 for k = 0..999, so 499
    // (k = 501..999); b has −3 + 8k/400, so 249 (k = 151..399).
    assert_eq!(previous_kept, 499 + 249);
}

#[test]
fn soft_mask_never_drops_below_half_a_percent_of_a_matrix() {
    let device = cpu();
    let (mut model, sa, _) = two_with_scores(&device);
    // τ = 0.9999 would keep nothing of a: the floor keeps its ⌊0.005·1000⌋+1 = 6 best scores.
    let mut pruner = SoftMovement::new(CubicSchedule { initial_density: 0.0, final_density: 0.9999, warmup_steps: 0, cooldown_steps: 1, total_steps: 2 }, 1.0, 1e-2);
    pruner.apply_masks(&mut model, 1);
    let mask = host(model.a.mask.clone().unwrap());
    assert_eq!(floor_count(1000), 6);
    assert_eq!(mask.iter().filter(|&&m| m == 1.0).count(), 6);
    let mut best: Vec<usize> = (0..1000).collect();
    best.sort_by(|&i, &j| sa[j].total_cmp(&sa[i]));
    for &i in &best[..6] {
        assert_eq!(mask[i], 1.0);
    }
}

#[test]
fn soft_regulariser_is_lambda_t_times_mean_sigmoid_and_pulls_scores_down() {
    let device = cpu().autodiff();
    let (model, sa, sb) = two_with_scores(&cpu());
    let model = burn::module::Module::train(model);
    let _ = &device;
    let pruner = SoftMovement::new(schedule(0.2), 400.0, 1e-2);
    for step in [0usize, 1, 3, 6, 11] {
        let lambda_t = 400.0 * pruner.tau(step) / 0.2;
        assert!((pruner.lambda_at(step) - lambda_t).abs() < 1e-9);
        let mean = |v: &Vec<f32>| v.iter().map(|&s| sigmoid(s) as f64).sum::<f64>() / v.len() as f64;
        let want = lambda_t * (mean(&sa) + mean(&sb)) / 2.0;
        match pruner.loss_term(&model, step) {
            None => assert_eq!(lambda_t, 0.0, "step {step}"),
            Some(term) => {
                let got = term.clone().into_scalar::<f32>() as f64;
                assert!((got - want).abs() < 1e-3 * want.max(1.0), "step {step}: {got} vs {want}");
                // ∂/∂S_ij = λ_t/2 · σ'(S_ij)/numel > 0: gradient descent lowers every score.
                let grads = term.backward();
                let g = host(model.a.mask_scores.as_ref().unwrap().val().grad(&grads).unwrap());
                let s0 = sa[0];
                let want_g = lambda_t / 2.0 * (sigmoid(s0) * (1.0 - sigmoid(s0))) as f64 / 1000.0;
                assert!((g[0] as f64 - want_g).abs() < 1e-6 * want_g.max(1.0), "{} vs {want_g}", g[0]);
            }
        }
    }
}

#[test]
fn l0_masks_and_penalty_match_the_hard_concrete_formulas() {
    let device = cpu();
    let scores = vec![-3.0f32, -2.3, -1.0, 0.0, 0.5, SCORE_INIT as f32];
    let (l, r, b) = (LIMIT_LEFT as f32, LIMIT_RIGHT as f32, BETA as f32);
    let s = tensor(scores.clone(), [2, 3], &device);
    // Evaluation mask: clamp(σ(S)(r − l) + l, 0, 1); σ(S) ≤ 1/12 gives exactly 0.
    let eval = host(L0::eval_mask(s.clone()));
    for (i, &x) in scores.iter().enumerate() {
        let want = (sigmoid(x) * (r - l) + l).clamp(0.0, 1.0);
        assert!((eval[i] - want).abs() < 1e-6);
    }
    assert_eq!(eval[0], 0.0); // σ(−3) = 0.047 < 1/12
    assert!(eval[1] > 0.0); // σ(−2.3) = 0.091 > 1/12
    // Training sample for a fixed u.
    let u = vec![0.01f32, 0.2, 0.5, 0.5, 0.9, 0.999];
    let sample = host(L0::sample_mask(s.clone(), tensor(u.clone(), [2, 3], &device)));
    for i in 0..6 {
        let z = sigmoid(((u[i] / (1.0 - u[i])).ln() + scores[i]) / b);
        let want = (z * (r - l) + l).clamp(0.0, 1.0);
        assert!((sample[i] - want).abs() < 1e-5, "{i}: {} vs {want}", sample[i]);
    }
    // P(gate ≠ 0) = σ(S − β log(−l/r)).
    let p = host(L0::open_probability(s));
    for (i, &x) in scores.iter().enumerate() {
        assert!((p[i] - sigmoid(x - b * (-l / r).ln())).abs() < 1e-6);
    }
    // The initial score opens a gate with probability ≈ 0.98 and keeps the weight at eval.
    assert!(sigmoid(SCORE_INIT as f32 - b * (-l / r).ln()) > 0.97);
}

#[test]
fn l0_trains_on_samples_evaluates_deterministically_and_penalises_open_gates() {
    let device = cpu();
    let mut model = Two { a: linear(vec![1.0; 6], [2, 3], &device), b: linear(vec![1.0; 4], [2, 2], &device) };
    let mut pruner = L0::new(125.0, 0.1);
    pruner.init(&mut model);
    let s = host(model.a.mask_scores.as_ref().unwrap().val());
    assert!(s.iter().all(|&x| (x - SCORE_INIT as f32).abs() < 1e-6));
    // Training masks are random draws; evaluation masks are the same every time.
    pruner.apply_masks(&mut model, 0);
    let m1 = host(model.a.mask.clone().unwrap());
    pruner.apply_masks(&mut model, 0);
    let m2 = host(model.a.mask.clone().unwrap());
    assert_ne!(m1, m2);
    pruner.eval_masks(&mut model, 0);
    let e1 = host(model.a.mask.clone().unwrap());
    pruner.eval_masks(&mut model, 0);
    assert_eq!(e1, host(model.a.mask.clone().unwrap()));
    let want = (sigmoid(SCORE_INIT as f32) * 1.2 - 0.1).min(1.0);
    assert!(e1.iter().all(|&m| (m - want).abs() < 1e-6));
    // Penalty: λ · mean over the two matrices of mean P(open) = λ · P(open) here.
    let term = pruner.loss_term(&model, 0).unwrap().into_scalar::<f32>();
    let p = sigmoid(SCORE_INIT as f32 - BETA as f32 * (0.1f32 / 1.1).ln());
    assert!((term - 125.0 * p).abs() < 1e-3, "{term}");
    // Folding multiplies each weight by its deterministic mask.
    pruner.finalize(&mut model, 0);
    assert!(host(model.a.weight.val()).iter().all(|&w| (w - want).abs() < 1e-6));
    assert!(model.a.mask_scores.is_none());
}

#[test]
fn global_scope_spends_one_budget_across_matrices_per_matrix_splits_it_evenly() {
    let device = cpu();
    // a: small weights (|W| ≤ 1), b: large weights (|W| ≥ 2); keep 30% of 140.
    let wa: Vec<f32> = (0..100).map(|i| (i as f32 + 1.0) / 100.0 * if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let wb: Vec<f32> = (0..40).map(|i| 2.0 + i as f32 / 10.0).collect();
    let kept = |scope: &str| {
        let cfg: PruningConfig = toml::from_str(&format!(
            "method = \"magnitude\"\nfinal_density = 0.3\nwarmup_steps = 0\ncooldown_steps = 1\nscope = \"{scope}\""
        ))
        .unwrap();
        assert_eq!(cfg.method.name(), "magnitude");
        let mut pruner = cfg.build(3).unwrap();
        let mut model = Two { a: linear(wa.clone(), [10, 10], &device), b: linear(wb.clone(), [4, 10], &device) };
        pruner.apply_masks(&mut model, 2);
        let count = |l: &PrunableLinear| host(l.effective_weight()).iter().filter(|&&w| w != 0.0).count();
        (count(&model.a), count(&model.b))
    };
    assert_eq!(kept("per_matrix"), (30, 12));
    // One threshold: all 40 large weights of b beat every weight of a; a gets the 2 left.
    assert_eq!(kept("global"), (2, 40));
    let _ = Scope::Global;
}

#[test]
fn global_scope_is_refused_for_methods_without_a_top_k() {
    let cfg: PruningConfig = toml::from_str("method = \"soft_movement\"\nscope = \"global\"\nwarmup_steps = 1").unwrap();
    let err = cfg.build(10).err().unwrap();
    assert!(err.contains("pruning.scope"), "{err}");
}
