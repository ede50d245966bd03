//! Movement and magnitude pruning on tiny cases, checked against the formulas by hand.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use models::{PrunableLinear, PrunableModel};
use pruners::methods::{magnitude::Magnitude, movement::Movement, random::Random};
use pruners::schedule::kept_count;
use pruners::{CubicSchedule, Pruner, Scope};

/// A model of two prunable matrices, enough to drive a pruner.
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

fn linear(w: Vec<f32>, shape: [usize; 2], device: &Device) -> PrunableLinear {
    PrunableLinear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, shape), device)),
        bias: None,
        mask_scores: None,
        mask: None,
        in_gate: None,
        out_gate: None,
    }
}

fn schedule(total: usize) -> CubicSchedule {
    CubicSchedule { initial_density: 1.0, final_density: 0.1, warmup_steps: 2, cooldown_steps: 3, total_steps: total }
}

#[test]
fn score_gradient_is_dl_da_times_w_times_x() {
    let device = cpu().autodiff();
    // W: [d_out=2, d_in=3]; x: [batch=2, 3]; L = sum(y ⊙ g) so dL/dy = g.
    let w = vec![0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75];
    let x = [[1.0f32, 2.0, -1.0], [0.5, -0.5, 3.0]];
    let g = [[1.0f32, -2.0], [0.5, 3.0]];
    let mut model = Two { a: linear(w.clone(), [2, 3], &cpu()), b: linear(vec![1.0; 4], [2, 2], &cpu()) };
    let mut pruner = Movement::new(CubicSchedule { initial_density: 0.5, final_density: 0.5, warmup_steps: 0, cooldown_steps: 0, total_steps: 10 }, Scope::PerMatrix, 1e-2);
    pruner.init(&mut model);
    let mut model = burn::module::Module::train(model);
    pruner.apply_masks(&mut model, 0);
    let xt = Tensor::<2>::from_data(TensorData::new(x.concat(), [2, 3]), &device);
    let gt = Tensor::<2>::from_data(TensorData::new(g.concat(), [2, 2]), &device);
    let loss = (model.a.forward(xt) * gt).sum();
    let grads = loss.backward();
    let scores = model.a.mask_scores.as_ref().unwrap();
    let got: Vec<f32> = scores.val().grad(&grads).expect("scores get a gradient").to_data().try_to_vec().unwrap();
    // dL/dS_ij = Σ_batch g_bi · W_ij · x_bj, for every weight, kept or pruned (straight-through).
    for i in 0..2 {
        for j in 0..3 {
            let want: f32 = (0..2).map(|b| g[b][i] * w[i * 3 + j] * x[b][j]).sum();
            let d = (got[i * 3 + j] - want).abs();
            assert!(d < 1e-5, "dL/dS[{i},{j}] = {}, want {want}", got[i * 3 + j]);
        }
    }
}

#[test]
fn masks_keep_exactly_the_scheduled_count_every_step() {
    let device = cpu();
    let total = 20;
    let wa: Vec<f32> = (0..60).map(|i| ((i * 37 % 60) as f32 - 29.5) / 7.0).collect();
    let wb: Vec<f32> = (0..24).map(|i| ((i * 5 % 24) as f32 - 11.5) / 3.0).collect();
    for method in ["magnitude", "movement", "random"] {
        let mut model = Two { a: linear(wa.clone(), [6, 10], &device), b: linear(wb.clone(), [4, 6], &device) };
        let mut pruner: Box<dyn Pruner> = match method {
            "magnitude" => Box::new(Magnitude::new(schedule(total), Scope::PerMatrix)),
            "random" => Box::new(Random::new(schedule(total), 7)),
            _ => Box::new(Movement::new(schedule(total), Scope::PerMatrix, 1e-2)),
        };
        pruner.init(&mut model);
        if method == "movement" {
            // Distinct scores so top-k is unambiguous: score = weight index pattern.
            for (_, l) in model.prunable_layers_mut() {
                let w = l.weight.val();
                l.mask_scores = Some(Param::from_tensor(w.clone() * 0.5 + 0.1));
            }
        }
        for step in 0..total {
            pruner.apply_masks(&mut model, step);
            let density = schedule(total).density(step);
            for (name, l) in model.prunable_layers() {
                let [r, c] = l.dims();
                let kept = l.effective_weight().not_equal_elem(0.0).int().sum().into_scalar::<i64>() as usize;
                assert_eq!(kept, kept_count(r * c, density), "{method} {name} step {step} density {density}");
            }
        }
        // The final step keeps 10%: 6 of 60 and 2 of 24 (rounded).
        let stats = pruners::SparsityReport::measure(&model);
        assert_eq!(stats.prunable_numel - stats.prunable_zeros, 6 + 2, "{method}");
    }
}

#[test]
fn magnitude_keeps_the_largest_weights_and_pruned_weights_contribute_nothing() {
    let device = cpu();
    let w = vec![0.1f32, -3.0, 0.2, 2.5, -0.05, 1.0];
    let mut model = Two { a: linear(w, [2, 3], &device), b: linear(vec![1.0; 4], [2, 2], &device) };
    let mut pruner = Magnitude::new(CubicSchedule { initial_density: 0.5, final_density: 0.5, warmup_steps: 0, cooldown_steps: 0, total_steps: 4 }, Scope::PerMatrix);
    pruner.apply_masks(&mut model, 0);
    let eff: Vec<f32> = model.a.effective_weight().to_data().try_to_vec().unwrap();
    assert_eq!(eff, vec![0.0, -3.0, 0.0, 2.5, 0.0, 1.0]);
    // Changing a pruned weight changes nothing downstream: its contribution is exactly zero.
    let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0], [1, 3]), &device);
    let before: Vec<f32> = model.a.forward(x.clone()).to_data().try_to_vec().unwrap();
    model.a.weight = model.a.weight.clone().map(|t| t + Tensor::from_data(TensorData::new(vec![100.0f32, 0.0, 100.0, 0.0, 100.0, 0.0], [2, 3]), &device));
    let after: Vec<f32> = model.a.forward(x).to_data().try_to_vec().unwrap();
    assert_eq!(before, after);
    assert_eq!(before, vec![-3.0 * 2.0, 2.5 * 1.0 + 1.0 * 3.0]);
    // Folding writes the zeros into the weights and removes the mask.
    pruners::mask::fold_masks(&mut model);
    assert!(model.a.mask.is_none());
    let folded: Vec<f32> = model.a.weight.val().to_data().try_to_vec().unwrap();
    assert_eq!(folded, vec![0.0, -3.0, 0.0, 2.5, 0.0, 1.0]);
}

/// The kept positions of layer `a` after every step of a random-pruning run with `seed`.
fn random_masks(seed: u64, total: usize) -> Vec<Vec<bool>> {
    let device = cpu();
    let w: Vec<f32> = (0..400).map(|i| (i as f32 - 200.0) / 50.0).collect();
    let mut model = Two { a: linear(w, [20, 20], &device), b: linear(vec![1.0; 4], [2, 2], &device) };
    let mut pruner = Random::new(schedule(total), seed);
    pruner.init(&mut model);
    (0..total)
        .map(|step| {
            pruner.apply_masks(&mut model, step);
            let m: Vec<f32> = model.a.effective_weight().to_data().try_to_vec().unwrap();
            m.iter().map(|&v| v != 0.0).collect()
        })
        .collect()
}

#[test]
fn random_masks_are_nested_seeded_and_ignore_magnitude() {
    let total = 12;
    let a = random_masks(3, total);
    // Nested: a weight pruned at one step stays pruned at every later step.
    for t in 1..total {
        for (i, (&now, &before)) in a[t].iter().zip(&a[t - 1]).enumerate() {
            assert!(!now || before, "weight {i} came back at step {t}");
        }
    }
    // Same seed, same masks; another seed, other masks.
    assert_eq!(a, random_masks(3, total));
    assert_ne!(a[total - 1], random_masks(4, total)[total - 1]);
    // At 10% kept (40 of 400) the kept set is not the largest-|W| set that magnitude keeps:
    // |W| grows with distance from index 200, so magnitude keeps indices 0..20 and 380..400.
    let last = &a[total - 1];
    assert_eq!(last.iter().filter(|&&k| k).count(), 40);
    let outer = last.iter().enumerate().filter(|&(i, &k)| k && !(20..380).contains(&i)).count();
    assert!(outer < 20, "random kept {outer} of the 40 largest weights");
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().unwrap()
}

#[test]
fn frozen_scores_stop_learning_at_the_step_while_weights_and_the_ramp_go_on() {
    use burn::optim::{AdamWConfig, GradientsParams};
    let total = 12;
    let freeze_at = 4;
    let wa: Vec<f32> = (0..60).map(|i| ((i * 37 % 60) as f32 - 29.5) / 7.0).collect();
    let wb: Vec<f32> = (0..24).map(|i| ((i * 5 % 24) as f32 - 11.5) / 3.0).collect();
    let mut model = Two { a: linear(wa, [6, 10], &cpu()), b: linear(wb, [4, 6], &cpu()) };
    let mut pruner = Movement::new(schedule(total), Scope::PerMatrix, 1e-2).with_frozen_scores_from(Some(freeze_at));
    pruner.init(&mut model);
    let mut model = burn::module::Module::train(model);
    let device = cpu().autodiff();
    let x: Vec<f32> = (0..30).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let (mut scores_before, mut weights_before) = (host(model.a.mask_scores.as_ref().unwrap().val()), host(model.a.weight.val()));
    for step in 0..total {
        pruner.apply_masks(&mut model, step);
        let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [3, 10]), &device);
        let h = model.a.forward(xt);
        let loss = model.b.forward(h).powi_scalar(2).sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        pruner.adjust_gradients(&model, &mut grads);
        model = optim.step(1e-2, model, grads);
        let scores = host(model.a.mask_scores.as_ref().unwrap().val());
        let weights = host(model.a.weight.val());
        let scores_moved = scores.iter().zip(&scores_before).filter(|(a, b)| a != b).count();
        let weights_moved = weights.iter().zip(&weights_before).filter(|(a, b)| a != b).count();
        if step < freeze_at {
            assert!(scores_moved > 30, "step {step}: scores must learn before the freeze ({scores_moved} of 60 moved)");
        } else {
            assert!(pruner.scores_frozen(step));
            assert_eq!(scores_moved, 0, "step {step}: frozen scores changed");
        }
        assert!(weights_moved > 0, "step {step}: the weights must keep learning");
        // The ramp still removes exactly the scheduled count, by the (frozen) scores.
        let [r, c] = model.a.dims();
        let kept = model.a.effective_weight().not_equal_elem(0.0).int().sum().into_scalar::<i64>() as usize;
        assert_eq!(kept, kept_count(r * c, schedule(total).density(step)), "step {step}");
        scores_before = scores;
        weights_before = weights;
    }
    assert!(!Movement::new(schedule(total), Scope::PerMatrix, 1e-2).scores_frozen(total), "unset: never frozen");
}

#[test]
fn freeze_scores_at_is_checked_by_the_config() {
    let cfg: pruners::PruningConfig = toml::from_str("method = \"magnitude\"\nfinal_density = 0.5\nfreeze_scores_at = 3").unwrap();
    let err = cfg.build(10).err().expect("magnitude has no scores to freeze");
    assert!(err.contains("pruning.freeze_scores_at"), "{err}");
    let cfg: pruners::PruningConfig = toml::from_str("method = \"movement\"\nfinal_density = 0.5\nfreeze_scores_at = 10").unwrap();
    assert!(cfg.build(10).err().expect("past the run's end").contains("freeze_scores_at (10)"));
    let cfg: pruners::PruningConfig = toml::from_str("method = \"movement\"\nfinal_density = 0.5\nfreeze_scores_at = 3").unwrap();
    assert!(cfg.build(10).is_ok());
}
