//! Learned structural masks on a tiny BERT (CoFi-style mask learning and minimax uniform masks):
//! the expected-sparsity formula, the multipliers' ascent, the deterministic gates, and the
//! folded/compacted model computing what the gated model computed.

use burn::module::{Module, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use models::{BertConfig, BertForSequenceClassification, PrunableModel, UnitKind};
use pruners::gates::{self, GateTarget};
use pruners::methods::mask_learning::MaskLearning;
use pruners::{Pruner, PruningConfig};

#[allow(deprecated)]
fn cpu() -> Device {
    Device::ndarray()
}

/// The tiny model with non-zero biases everywhere (a fresh one has zero biases, which would
/// hide a bias lost on the way).
fn model() -> BertForSequenceClassification {
    let device = cpu();
    device.seed(5);
    let mut m = BertForSequenceClassification::new(&BertConfig::tiny(30), 2, &device);
    for (_, l) in m.prunable_layers_mut() {
        if let Some(b) = l.bias.take() {
            l.bias = Some(b.map(|b| b.random_like(burn::tensor::Distribution::Normal(0.0, 0.5))));
        }
    }
    m
}

fn pruner(method: &str, density: f64, total: usize) -> Box<dyn Pruner> {
    let cfg: PruningConfig = toml::from_str(&format!(
        "method = \"{method}\"\nfinal_density = {density}\nwarmup_steps = 0\ncooldown_steps = 1\nmultipliers_lr = 0.05\nscores_lr = 0.1"
    ))
    .unwrap();
    cfg.build(total).unwrap()
}

fn v1(v: Vec<f32>) -> Tensor<1> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), &cpu())
}

fn host1(t: Tensor<1>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().unwrap()
}

fn inputs_on(d: &Device) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2, Int>) {
    let d = d.clone();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![2i64, 7, 9, 11, 3, 2, 5, 6, 3, 0], [2, 5]), &d);
    let types = Tensor::<2, Int>::zeros([2, 5], &d);
    let mask = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 1, 1, 1, 0], [2, 5]), &d);
    (ids, types, mask)
}

/// A gate target with a block gate (as in BERT) and no matrices behind it.
fn target(count: usize, params_per_unit: usize, kind: UnitKind, depth: usize) -> GateTarget {
    GateTarget { name: String::new(), count, width: 1, output_side: 0, input_side: vec![], params_per_unit, kind, depth, block: true }
}

fn inputs() -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2, Int>) {
    inputs_on(&cpu())
}

#[test]
fn gate_targets_count_the_weights_each_unit_owns() {
    let m = model();
    let t = gates::targets(&m).unwrap();
    // tiny: hidden 16, 4 heads of 4, FFN 32, 2 layers → (heads, neurons) per layer.
    assert_eq!(t.len(), 4);
    assert_eq!((t[0].kind, t[1].kind, t[2].kind), (UnitKind::Head, UnitKind::Neuron, UnitKind::Head));
    assert_eq!((t[0].depth, t[1].depth, t[2].depth, t[3].depth), (0, 0, 1, 1));
    assert!(t.iter().all(|g| g.block), "BERT's attention and FFN blocks are residual");
    assert_eq!((t[0].count, t[0].width, t[0].params_per_unit), (4, 4, 4 * 4 * 16));
    assert_eq!((t[1].count, t[1].width, t[1].params_per_unit), (32, 1, 2 * 16));
    assert_eq!(t[0].output_side, 3);
    assert_eq!(t[1].output_side, 5);
    let total: usize = t.iter().map(|g| g.count * g.params_per_unit).sum();
    assert_eq!(total, m.prunable_layers().iter().map(|(_, l)| l.dims()[0] * l.dims()[1]).sum::<usize>());
}

#[test]
fn expected_sparsity_matches_a_hand_computation() {
    // Two groups: 2 heads owning 10 weights each, 3 neurons owning 4 each: total 32.
    let targets = vec![target(2, 10, UnitKind::Head, 0), target(3, 4, UnitKind::Neuron, 0)];
    // P(open) = σ(log α + 1.5986): choose log α so that P = 0.8, 0.5 (heads); 1, 0.25, 0.5
    // (neurons); blocks 0.5 and 1.
    let shift = -(2.0f64 / 3.0) * (0.1f64 / 1.1).ln();
    let logit = |p: f64| ((p / (1.0 - p)).ln() - shift) as f32;
    let la = vec![v1(vec![logit(0.8), logit(0.5)]), v1(vec![30.0, logit(0.25), logit(0.5)]), v1(vec![logit(0.5), 30.0])];
    let s = host1(MaskLearning::expected_sparsity(&targets, &la))[0] as f64;
    // kept = 0.5·(0.8 + 0.5)·10 + 1·(1 + 0.25 + 0.5)·4 = 6.5 + 7 = 13.5 → ŝ = 1 − 13.5/32.
    assert!((s - (1.0 - 13.5 / 32.0)).abs() < 1e-5, "{s}");
    // And the host probability agrees with the tensor one.
    assert!((gates::open_probability_host(logit(0.25)) - 0.25).abs() < 1e-6);
}

#[test]
fn deterministic_gates_keep_the_expected_count_with_soft_values() {
    let la = [10.0f32, -10.0, 0.0, 3.0];
    // P(open) ≈ 1, 0, 0.832, 0.991 → Σ closed ≈ 1.18 → 1 zero, 3 kept.
    assert_eq!(gates::expected_kept(&la), 3);
    let z = gates::deterministic(&la, 3);
    assert_eq!(z[1], 0.0);
    for i in [0, 2, 3] {
        let want = 1.0 / (1.0 + (-(0.8 * la[i] as f64 / (2.0 / 3.0))).exp());
        assert!((z[i] as f64 - want).abs() < 1e-6);
    }
}

#[test]
fn deterministic_structure_spends_what_the_expected_sparsity_expected() {
    // Two layers of 4 heads (P ≈ 1 each) and 4 neurons (P = 0.5 each); layer 0's attention
    // block is open with P = 0.75, the rest with P ≈ 1. Expected open heads: 0.75·4 + 4 = 7
    // (not 8: a kept block whose gate is uncertain does not count its heads in full); neurons:
    // 2 + 2 = 4, chosen by log α across layers.
    let t = |kind, depth| target(4, 1, kind, depth);
    let targets = vec![t(UnitKind::Head, 0), t(UnitKind::Neuron, 0), t(UnitKind::Head, 1), t(UnitKind::Neuron, 1)];
    let shift = -(2.0f64 / 3.0) * (0.1f64 / 1.1).ln();
    let logit = |p: f64| ((p / (1.0 - p)).ln() - shift) as f32;
    let neurons = |bump: f32| (0..4).map(|k| logit(0.5) + bump * k as f32).collect::<Vec<f32>>();
    let host = vec![vec![30.0; 4], neurons(0.001), vec![30.0; 4], neurons(0.01), vec![logit(0.75), 30.0, 30.0, 30.0]];
    let (units, blocks) = pruners::methods::mask_learning::deterministic_structure(&targets, &host);
    assert!(blocks.iter().all(|&b| b.unwrap() > 0.0), "every block kept: {blocks:?}");
    let kept = |i: usize| units[i].iter().filter(|&&z| z > 0.0).count();
    assert_eq!(kept(0) + kept(2), 7);
    assert_eq!(kept(1) + kept(3), 4);
    // The neurons kept are the 4 with the largest log α across layers: layer 1's three largest
    // (bumps 0.03, 0.02, 0.01) and layer 0's largest (0.003), not layer 1's first (0).
    assert_eq!((kept(1), kept(3)), (1, 3));
    assert_eq!(units[3][0], 0.0);
    // A dropped block keeps none of its units.
    let mut host2 = host.clone();
    host2[4][0] = -30.0;
    let (units, blocks) = pruners::methods::mask_learning::deterministic_structure(&targets, &host2);
    assert_eq!(blocks[0], Some(0.0));
    assert!(units[0].iter().all(|&z| z == 0.0));
    assert_eq!(units[2].iter().filter(|&&z| z > 0.0).count(), 4);
}

/// One training step of the model with `p` (loss = logits.sum() + the pruner's term), with the
/// multipliers' gradient negated as the trainer does.
fn step(model: BertForSequenceClassification, p: &mut dyn Pruner, step: usize) -> BertForSequenceClassification {
    let mut model = model;
    p.apply_masks(&mut model, step);
    let (ids, types, mask) = inputs_on(&cpu().autodiff());
    let logits = model.forward(ids, types, mask);
    let loss = logits.sum() * 0.0 + p.loss_term(&model, step).unwrap();
    let mut grads = GradientsParams::from_grads(loss.backward(), &model);
    p.adjust_gradients(&model, &mut grads);
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let model = optim.step(0.05, model, grads);
    let mut model = model;
    p.after_step(&mut model, step);
    model
}

#[test]
fn multipliers_rise_while_sparsity_is_under_target() {
    for method in ["mask_learning", "minimax_uniform"] {
        let mut p = pruner(method, 0.4, 10);
        let mut m = model();
        p.init(&mut m);
        let mut m = m.train();
        // The target ramps over steps 0..9 to 60%; at step 5 it is well above the initial ŝ
        // (≈ 0.11: neuron gates start at log α = 0, P(open) ≈ 0.83): every multiplier rises
        // from 0. (After a step the budget projection puts ŝ on the target, so the gap is then
        // what one step of the gates moved it.)
        m = step(m, p.as_mut(), 5);
        let params = m.pruner_params.as_ref().unwrap();
        let lambda: Vec<f32> = params.multipliers.iter().flat_map(|l| host1(l.val())).collect();
        assert!(lambda.iter().all(|&l| l > 0.0), "{method}: {lambda:?}");
    }
}

#[test]
fn folded_gates_and_compaction_compute_what_the_gated_model_computed() {
    for method in ["mask_learning", "minimax_uniform"] {
        let mut p = pruner(method, 0.5, 4);
        let mut m = model();
        p.init(&mut m);
        // Spread the logits so that some units and one attention block close.
        {
            let params = m.pruner_params.as_mut().unwrap();
            for (g, la) in params.log_alpha.iter_mut().enumerate() {
                let n = la.val().dims()[0];
                let v: Vec<f32> = (0..n).map(|i| ((i * 7 + g * 3) % 11) as f32 - 4.0).collect();
                *la = Param::from_tensor(v1(v));
            }
            if method == "mask_learning" {
                // Blocks: layer 1's attention closed (expected-kept count keeps 3 of 4 blocks).
                params.log_alpha[4] = Param::from_tensor(v1(vec![10.0, 10.0, -10.0, 10.0]));
            }
        }
        let (ids, types, mask) = inputs();
        let mut gated = m.clone();
        p.eval_masks(&mut gated, 3);
        let want = gated.forward(ids.clone(), types.clone(), mask.clone());
        let mut folded = m.clone();
        p.finalize(&mut folded, 3);
        assert!(folded.pruner_params.is_none());
        assert!(folded.prunable_layers().iter().all(|(_, l)| l.in_gate.is_none() && l.out_gate.is_none() && l.mask.is_none()));
        let got = folded.forward(ids.clone(), types.clone(), mask.clone());
        let diff = (want.clone() - got).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "{method}: folded differs by {diff}");
        let (small, cfg, report) = models::compact::compact(&folded, &BertConfig::tiny(30));
        let got = small.forward(ids, types, mask);
        let diff = (want - got).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-4, "{method}: compacted differs by {diff}");
        assert!(report.params_after < report.params_before);
        let heads: Vec<usize> = report.heads.iter().map(Vec::len).collect();
        if method == "minimax_uniform" {
            // The same shape in every layer: 2 of 4 heads, 16 of 32 neurons.
            assert_eq!(heads, vec![2, 2]);
            assert_eq!(report.ffn_widths, vec![16, 16]);
        } else {
            assert_eq!(cfg.num_hidden_layers, 2);
            assert!(heads[1] <= 1, "layer 1's attention block is closed: {heads:?}");
        }
        assert_eq!(small.num_params(), report.params_after);
    }
}

#[test]
fn minimax_final_shape_lands_on_the_budget_despite_the_one_head_floor() {
    use pruners::methods::minimax_uniform::final_counts;
    // MiniLM-L6's shapes: per layer 12 heads owning 4·384·32 weights, 1536 neurons owning 2·384.
    let mut targets = Vec::new();
    for depth in 0..6 {
        targets.push(target(12, 4 * 384 * 32, UnitKind::Head, depth));
        targets.push(target(1536, 2 * 384, UnitKind::Neuron, depth));
    }
    let total: usize = targets.iter().map(|t| t.count * t.params_per_unit).sum();
    for density in [0.5, 0.4, 0.1, 0.05] {
        let k = final_counts(&targets, density);
        // Uniform: every layer the same.
        assert!(k.chunks(2).all(|c| c == &k[..2]), "{k:?}");
        let kept: usize = k.iter().zip(&targets).map(|(k, t)| k * t.params_per_unit).sum();
        let got = kept as f64 / total as f64;
        assert!((got - density).abs() < 0.001, "density {density}: kept {got} ({:?})", &k[..2]);
    }
    // 95% removed: one head (the floor) and 51 neurons, not 77 (5% of 1536).
    assert_eq!(&final_counts(&targets, 0.05)[..2], &[1, 51]);
    // Without heads beside them (an MLP's neurons), the plain fraction.
    let mlp = |depth| GateTarget { block: false, ..target(100, 10, UnitKind::Neuron, depth) };
    assert_eq!(final_counts(&[mlp(0), mlp(1)], 0.05), vec![5, 5]);
}

#[test]
fn lagrangian_is_off_in_the_warm_up_and_its_ramp_starts_at_the_initial_expected_sparsity() {
    // 4 warm-up steps, ramp over steps 4..8 to 60% removed, 2 steps at the target.
    let mut p = MaskLearning::new(0.4, 4, 2, 10, 0.1, 0.05);
    let mut m = model();
    p.init(&mut m);
    let targets = gates::targets(&m).unwrap();
    let la: Vec<Tensor<1>> = gates::params(&m).log_alpha.iter().map(|a| a.val()).collect();
    let s0 = host1(MaskLearning::expected_sparsity(&targets, &la))[0] as f64;
    assert!((p.start_sparsity() - s0).abs() < 1e-6, "ŝ₀ {} vs ŝ of the initial gates {s0}", p.start_sparsity());
    assert!(s0 > 0.05 && s0 < 0.2, "neuron gates start at P(open) ≈ 0.83: ŝ₀ = {s0}");
    for t in 0..4 {
        assert_eq!(p.target_at(t), None);
        assert!(p.loss_term(&m, t).is_none(), "no Lagrangian at warm-up step {t}");
    }
    // The ramp runs from the host value ŝ₀ (equal to the device's f32 ŝ within 1e-6, above).
    let s0 = p.start_sparsity();
    assert!((p.target_at(4).unwrap() - s0).abs() < 1e-12);
    assert!((p.target_at(6).unwrap() - (s0 + (0.6 - s0) * 0.5)).abs() < 1e-12);
    assert!((p.target_at(8).unwrap() - 0.6).abs() < 1e-12);
    assert!((p.target_at(9).unwrap() - 0.6).abs() < 1e-12);
    // At the ramp's start the gap t − ŝ is zero, so the Lagrangian is zero, not negative.
    let l = host1(p.loss_term(&m, 4).unwrap())[0];
    assert!(l.abs() < 1e-6, "Lagrangian at the ramp start: {l}");
    // A warm-up step leaves the multipliers where they were: they have no gradient.
    let mut m = m.train();
    p.apply_masks(&mut m, 0);
    let (ids, types, mask) = inputs_on(&cpu().autodiff());
    let loss = m.forward(ids, types, mask).sum();
    let mut grads = GradientsParams::from_grads(loss.backward(), &m);
    p.adjust_gradients(&m, &mut grads);
    let before: Vec<f32> = gates::params(&m).multipliers.iter().flat_map(|l| host1(l.val().inner())).collect();
    let m = AdamWConfig::new().with_weight_decay(0.0).init().step(1.0, m, grads);
    let after: Vec<f32> = gates::params(&m).multipliers.iter().flat_map(|l| host1(l.val().inner())).collect();
    assert_eq!(before, after);
}

/// A few hundred steps of real training (cross-entropy on two labelled sentences, one AdamW
/// kept across steps) towards 60% sparsity: the expected sparsity must land within one point
/// of the target (issue 26). Without the budget projection mask_learning lagged (0.08 for the
/// first 100 steps of the ramp) and then overshot to 0.661; two other controls did worse
/// (λ₁ = sinh ρ: 0.913; the target held at most 2 points above ŝ: 0.530).
#[test]
fn the_expected_sparsity_lands_on_the_target_within_a_point() {
    for method in ["mask_learning", "minimax_uniform"] {
        let cfg: PruningConfig = toml::from_str(&format!(
            "method = \"{method}\"\nfinal_density = 0.4\nwarmup_steps = 0\ncooldown_steps = 150\nmultipliers_lr = 0.05\nscores_lr = 0.05"
        ))
        .unwrap();
        let total = 400;
        let mut p = cfg.build(total).unwrap();
        let mut m = model();
        p.init(&mut m);
        let mut m = m.train();
        let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
        let ad = cpu().autodiff();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), &ad);
        let mut trace = Vec::new();
        for t in 0..total {
            p.apply_masks(&mut m, t);
            let (ids, types, mask) = inputs_on(&ad);
            let logits = m.forward(ids, types, mask);
            let ce = burn::tensor::loss::cross_entropy_with_logits(logits, labels.clone().one_hot(2).float());
            let loss = match p.loss_term(&m, t) {
                Some(term) => ce + term,
                None => ce,
            };
            let mut grads = GradientsParams::from_grads(loss.backward(), &m);
            p.adjust_gradients(&m, &mut grads);
            m = optim.step(0.05, m, grads);
            p.after_step(&mut m, t);
            trace.push(1.0 - p.scheduled_density(t));
        }
        let last = *trace.last().unwrap();
        assert!((last - 0.6).abs() < 0.01, "{method}: expected sparsity {last:.4} after {total} steps (target 0.6); every 50 steps: {:?}", trace.iter().step_by(50).map(|s| format!("{s:.3}")).collect::<Vec<_>>());
    }
}
