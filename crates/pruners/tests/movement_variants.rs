//! Movement's two options that are ours, not the paper's (issue 25), checked by hand on an MLP.
//! `compensate_bias`: removals fold their mean output into the bias; the bias change is
//! `(W ⊙ (M_prev − M_new))·μ`, the first layer's mean output over the calibration inputs is the
//! dense one's, the means are measured at the ramp's start and every 50 steps after.
//! `fade_steps`: a removed weight's mask value falls by 1/D a step, and is whole again at once
//! when the weight comes back. Both keys are refused where they would do nothing.

use burn::module::Param;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use models::init::HostRng;
use models::{BertConfig, BertForSequenceClassification, Mlp, MlpConfig, PrunableModel};
use pruners::PruningConfig;

#[allow(deprecated)]
fn cpu() -> Device {
    Device::ndarray()
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().unwrap()
}

/// Inputs whose features have clearly non-zero means.
fn inputs(n: usize, d: usize) -> Tensor<2> {
    let v: Vec<f32> = HostRng::new(5).normals(n * d, 1.0).into_iter().enumerate().map(|(i, x)| x + 0.5 + (i % d) as f32 * 0.4).collect();
    Tensor::from_data(TensorData::new(v, [n, d]), &cpu())
}

fn movement(extra: &str) -> Result<Box<dyn pruners::Pruner>, String> {
    let c: PruningConfig = toml::from_str(&format!("method = \"movement\"\nfinal_density = 0.5\nwarmup_steps = 2\ncooldown_steps = 0\ncalibration_samples = 100\n{extra}")).unwrap();
    c.build(60)
}

/// Fixed, distinct scores on every matrix, so the top-k is known.
fn set_scores(m: &mut Mlp, seed: u64) {
    for (i, (_, l)) in m.prunable_layers_mut().into_iter().enumerate() {
        let [r, c] = l.weight.val().dims();
        let s = HostRng::new(seed + i as u64).normals(r * c, 1.0);
        l.mask_scores = Some(Param::from_tensor(Tensor::from_data(TensorData::new(s, [r, c]), &cpu())));
    }
}

fn mean_rows(v: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    (0..cols).map(|j| (0..rows).map(|r| v[r * cols + j] as f64).sum::<f64>() / rows as f64).collect()
}

#[test]
fn removed_weights_mean_output_goes_into_the_bias() {
    let (n, d, h) = (100, 6, 8);
    let x = inputs(n, d);
    let mut m = Mlp::new(&MlpConfig::new(d, vec![h], 3, 0.0), 3, &cpu());
    let mut p = movement("compensate_bias = true").unwrap();
    p.init(&mut m);
    set_scores(&mut m, 11);
    let dense_first = host(m.layers[0].forward(x.clone()));
    let bias_before: Vec<Vec<f32>> = m.layers.iter().map(|l| host(l.bias.as_ref().unwrap().val())).collect();
    let weights: Vec<Vec<f32>> = m.layers.iter().map(|l| host(l.weight.val())).collect();
    // The inputs of layer 1 (what its means are taken over): relu of layer 0's dense output.
    let hidden = host(burn::tensor::activation::relu(m.layers[0].forward(x.clone())));

    // Warm-up: nothing asked, nothing changed.
    for step in 0..2 {
        assert_eq!(p.calibration_request(step), None, "step {step}");
        p.apply_masks(&mut m, step);
    }
    for (l, b) in m.layers.iter().zip(&bias_before) {
        assert_eq!(&host(l.bias.as_ref().unwrap().val()), b);
    }
    // The ramp's first step: the means are measured; then the ramp removes weights step by step
    // (the scores are fixed, so what goes stays gone and the changes add up).
    assert_eq!(p.calibration_request(2), Some(100));
    let acts = m.unit_activations(x.clone());
    p.calibrate(&mut m, &acts);
    for step in 2..=10 {
        p.apply_masks(&mut m, step);
    }
    let mu = [mean_rows(&host(x.clone()), n, d), mean_rows(&hidden, n, h)];
    for (i, l) in m.layers.iter().enumerate() {
        let [rows, cols] = l.weight.val().dims();
        let mask = host(l.mask.clone().unwrap());
        let kept = mask.iter().filter(|&&v| v == 1.0).count();
        assert!(kept < rows * cols, "layer {i}: ten steps into the ramp, weights are gone");
        let b = host(l.bias.as_ref().unwrap().val());
        for r in 0..rows {
            let want = bias_before[i][r] as f64 + (0..cols).map(|c| (1.0 - mask[r * cols + c] as f64) * weights[i][r * cols + c] as f64 * mu[i][c]).sum::<f64>();
            assert!((b[r] as f64 - want).abs() < 1e-4, "layer {i} row {r}: bias {} want {want}", b[r]);
        }
    }
    // Evaluating a copy leaves the state alone: the copy's biases and masks are the model's.
    let mut eval_copy = m.clone();
    p.eval_masks(&mut eval_copy, 10);
    for (l, e) in m.layers.iter().zip(&eval_copy.layers) {
        assert_eq!(host(l.bias.as_ref().unwrap().val()), host(e.bias.as_ref().unwrap().val()));
        assert_eq!(host(l.mask.clone().unwrap()), host(e.mask.clone().unwrap()));
    }
    // So the first layer's mean output over the calibration inputs is the dense one's.
    let pruned_first = host(m.layers[0].forward(x.clone()));
    let (a, b) = (mean_rows(&dense_first, n, h), mean_rows(&pruned_first, n, h));
    for r in 0..h {
        assert!((a[r] - b[r]).abs() < 1e-4, "unit {r}: dense mean {} pruned mean {}", a[r], b[r]);
    }
    // Next measurement 50 steps later; between, the biases move only when the masks do.
    assert_eq!(p.calibration_request(11), None);
    assert_eq!(p.calibration_request(51), None);
    assert_eq!(p.calibration_request(52), Some(100));
    let biases: Vec<Vec<f32>> = m.layers.iter().map(|l| host(l.bias.as_ref().unwrap().val())).collect();
    let masks: Vec<Vec<f32>> = m.layers.iter().map(|l| host(l.mask.clone().unwrap())).collect();
    p.apply_masks(&mut m, 20);
    for (i, l) in m.layers.iter().enumerate() {
        let [rows, cols] = l.weight.val().dims();
        let now = host(l.mask.clone().unwrap());
        let b = host(l.bias.as_ref().unwrap().val());
        for r in 0..rows {
            let want = biases[i][r] as f64 + (0..cols).map(|c| (masks[i][r * cols + c] - now[r * cols + c]) as f64 * weights[i][r * cols + c] as f64 * mu[i][c]).sum::<f64>();
            assert!((b[r] as f64 - want).abs() < 1e-4, "layer {i} row {r}, step 20: bias {} want {want}", b[r]);
        }
    }
}

#[test]
fn without_the_option_movement_leaves_the_bias_alone() {
    let x = inputs(50, 6);
    let mut m = Mlp::new(&MlpConfig::new(6, vec![8], 3, 0.0), 3, &cpu());
    let mut p = movement("").unwrap();
    p.init(&mut m);
    set_scores(&mut m, 11);
    let before: Vec<Vec<f32>> = m.layers.iter().map(|l| host(l.bias.as_ref().unwrap().val())).collect();
    assert_eq!(p.calibration_request(2), None);
    let acts = m.unit_activations(x);
    p.calibrate(&mut m, &acts);
    for step in 0..4 {
        p.apply_masks(&mut m, step);
    }
    assert!(host(m.layers[0].mask.clone().unwrap()).contains(&0.0));
    for (l, b) in m.layers.iter().zip(&before) {
        assert_eq!(&host(l.bias.as_ref().unwrap().val()), b);
    }
}

#[test]
fn compensate_bias_is_refused_by_methods_that_do_not_read_it() {
    let c: PruningConfig = toml::from_str("method = \"magnitude\"\nfinal_density = 0.5\ncompensate_bias = true").unwrap();
    let err = c.build(100).err().expect("magnitude has no bias compensation");
    assert!(err.contains("compensate_bias"), "{err}");
}

#[test]
fn fading_removals_fall_by_one_over_d_a_step_and_come_back_whole() {
    let mut m = Mlp::new(&MlpConfig::new(6, vec![8], 3, 0.0), 3, &cpu());
    let mut p = movement("fade_steps = 4").unwrap();
    p.init(&mut m);
    set_scores(&mut m, 11);
    let mut p_hard = movement("").unwrap();
    let mut m_hard = m.clone();
    // Steps 0..=12 with fixed scores: the hard top-k sets are nested, so a weight cut at step s
    // has the mask max(0, 1 − (t − s + 1)/4) at step t.
    let mut cut_at: Vec<Vec<Option<usize>>> = m.layers.iter().map(|l| vec![None; l.weight.val().dims().iter().product()]).collect();
    for step in 0..=12 {
        p.apply_masks(&mut m, step);
        p_hard.apply_masks(&mut m_hard, step);
        // An evaluation copy gets the same masks, and evaluating does not advance the fading.
        let mut eval_copy = m.clone();
        p.eval_masks(&mut eval_copy, step);
        assert_eq!(host(eval_copy.layers[0].mask.clone().unwrap()), host(m.layers[0].mask.clone().unwrap()), "step {step}");
        for (i, (l, lh)) in m.layers.iter().zip(&m_hard.layers).enumerate() {
            let (faded, hard) = (host(l.mask.clone().unwrap()), host(lh.mask.clone().unwrap()));
            for (j, (&f, &h)) in faded.iter().zip(&hard).enumerate() {
                if h == 0.0 && cut_at[i][j].is_none() {
                    cut_at[i][j] = Some(step);
                }
                let want = match cut_at[i][j] {
                    None => 1.0,
                    Some(s) => (1.0 - (step - s + 1) as f32 / 4.0).max(0.0),
                };
                assert!((f - want).abs() < 1e-6, "step {step} layer {i} weight {j}: mask {f}, want {want}");
            }
        }
    }
    assert!(cut_at[0].iter().filter(|c| c.is_some_and(|s| s <= 8)).count() > 0, "some weights have faded all the way");
    assert!(host(m.layers[0].mask.clone().unwrap()).iter().any(|&v| v > 0.0 && v < 1.0), "some are still fading at step 12");
    // The final model (the run's last step) gets the hard top-k: what is still fading is cut.
    let (mut last_fade, mut last_hard) = (m.clone(), m_hard.clone());
    p.eval_masks(&mut last_fade, 59);
    p_hard.eval_masks(&mut last_hard, 59);
    for (a, b) in last_fade.layers.iter().zip(&last_hard.layers) {
        assert_eq!(host(a.mask.clone().unwrap()), host(b.mask.clone().unwrap()));
    }
    // A weight that comes back (its score raised above every other) is whole at once.
    let faded_out = host(m.layers[0].mask.clone().unwrap()).iter().position(|&v| v == 0.0).expect("a removed weight");
    let l = &mut m.layers[0];
    let mut s = host(l.mask_scores.as_ref().unwrap().val());
    s[faded_out] = 100.0;
    let dims = l.weight.val().dims();
    l.mask_scores = Some(Param::from_tensor(Tensor::from_data(TensorData::new(s, dims), &cpu())));
    p.apply_masks(&mut m, 13);
    assert_eq!(host(m.layers[0].mask.clone().unwrap())[faded_out], 1.0);
}

#[test]
fn fade_steps_is_checked() {
    assert!(movement("fade_steps = 0").err().unwrap().contains("fade_steps"));
    let c: PruningConfig = toml::from_str("method = \"random\"\nfinal_density = 0.5\nfade_steps = 10").unwrap();
    assert!(c.build(100).err().expect("random has no fading").contains("fade_steps"));
}

/// Before the ramp a fading run's masks are all ones, so its evaluation copies compute exactly
/// what the paper's method's do; its masks come from the training step and must leave the
/// autodiff device with the copy (they once kept it, and the copy ran through other kernels).
#[test]
fn evaluation_copies_get_plain_masks_and_the_same_logits_as_the_papers_method_before_the_ramp() {
    let d = Device::flex().autodiff();
    d.seed(6);
    let base = BertForSequenceClassification::new(&BertConfig::tiny(30), 2, &d);
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![2i64, 7, 9, 11, 3, 2, 5, 6, 3, 0], [2, 5]), &Device::flex());
    let types = Tensor::<2, Int>::zeros([2, 5], &Device::flex());
    let mask = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 1, 1, 1, 0], [2, 5]), &Device::flex());
    let mut out = Vec::new();
    for extra in ["", "fade_steps = 50"] {
        let c: PruningConfig = toml::from_str(&format!("method = \"movement\"\nfinal_density = 0.1\nwarmup_steps = 5\n{extra}")).unwrap();
        let mut p = c.build(20).unwrap();
        let mut m = base.clone();
        p.init(&mut m);
        for s in 0..3 { p.apply_masks(&mut m, s); }
        let mut e = m.valid();
        p.eval_masks(&mut e, 2);
        let masks: Vec<Vec<f32>> = e.prunable_layers().iter().map(|(_, l)| host(l.mask.clone().unwrap())).collect();
        assert!(masks.iter().all(|m| m.iter().all(|&v| v == 1.0)), "{extra}: masks all ones");
        assert!(!e.prunable_layers()[0].1.mask.clone().unwrap().device().is_autodiff(), "{extra}: the copy's masks are off the autodiff device");
        out.push(host(e.forward(ids.clone(), types.clone(), mask.clone())));
    }
    assert_eq!(out[0], out[1]);
}
