//! Wanda and STADE: the hand-computed case of METHODS_SEED1.md §1(e) and §2(e), their
//! properties, and the one-shot pruner on an MLP and a tiny BERT (statistics from the models'
//! own calibration pass).

use burn::module::Param;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use models::{BertConfig, BertForSequenceClassification, InputStats, Mlp, MlpConfig, PrunableModel};
use pruners::methods::{stade, taylor, wanda};
use pruners::oneshot::MatrixView;
use pruners::selection::{keep_mask, Comparison, NM};
use pruners::PruningConfig;

#[allow(deprecated)]
fn cpu() -> Device {
    Device::ndarray()
}

const X: [[f32; 4]; 2] = [[1.0, 0.0, 10.0, 1.0], [1.0, 0.0, 0.0, 1.0]];
const W: [f32; 8] = [1.0, 5.0, 0.2, -2.0, 0.5, -0.1, 0.3, 3.0];

fn x_tensor() -> Tensor<2> {
    Tensor::from_data(TensorData::new(X.iter().flatten().copied().collect::<Vec<f32>>(), [2, 4]), &cpu())
}

fn stats() -> InputStats {
    InputStats::of(x_tensor())
}

/// Σ over tokens and outputs of (y_dense − y_pruned)², y = W x (+ bias delta).
fn squared_error(keep: &[f32], bias: &[f32]) -> f64 {
    let mut e = 0.0;
    for x in X {
        for r in 0..2 {
            let dense: f64 = (0..4).map(|c| (W[r * 4 + c] * x[c]) as f64).sum();
            let pruned: f64 = (0..4).map(|c| (W[r * 4 + c] * keep[r * 4 + c] * x[c]) as f64).sum::<f64>() + bias[r] as f64;
            e += (dense - pruned).powi(2);
        }
    }
    e
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

#[test]
fn wanda_hand_case_keeps_the_small_weight_on_the_large_input() {
    let s = stats();
    let view = MatrixView { weight: &W, dims: [2, 4], inputs: &s, reads_units: false, gradient: None };
    let scores = wanda::scores(&view);
    let r2 = 2f32.sqrt();
    assert!(close(&scores, &[r2, 0.0, 2.0, 2.0 * r2, 0.5 * r2, 0.0, 3.0, 3.0 * r2], 1e-5), "{scores:?}");
    let keep = keep_mask(&scores, [2, 4], 0.5, Comparison::Row, None);
    assert_eq!(keep, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0], "Wanda prunes columns 0 and 1 in both rows");
    let magnitude: Vec<f32> = W.iter().map(|w| w.abs()).collect();
    let keep_mag = keep_mask(&magnitude, [2, 4], 0.5, Comparison::Row, None);
    assert_eq!(keep_mag, vec![0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0], "magnitude prunes {{2, 0}} and {{1, 2}}");
    assert!((squared_error(&keep, &[0.0, 0.0]) - 2.5).abs() < 1e-9);
    assert!((squared_error(&keep_mag, &[0.0, 0.0]) - 19.0).abs() < 1e-9);
    // 2:4 over exactly four columns is the same mask.
    assert_eq!(keep_mask(&scores, [2, 4], 0.0, Comparison::Row, Some(NM { n: 2, m: 4 })), keep);
}

#[test]
fn stade_hand_case_reproduces_the_dense_outputs_exactly() {
    let s = stats();
    assert_eq!(s.means(), vec![1.0, 0.0, 5.0, 1.0]);
    assert_eq!(s.variances(), vec![0.0, 0.0, 50.0, 0.0]);
    let view = MatrixView { weight: &W, dims: [2, 4], inputs: &s, reads_units: true, gradient: None };
    let scores = stade::scores(&view);
    assert!(close(&scores, &[0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 4.5, 0.0], 1e-5), "{scores:?}");
    let keep = keep_mask(&scores, [2, 4], 0.5, Comparison::Row, None);
    assert_eq!(keep, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
    let bias = stade::bias_correction(&view, &keep);
    assert!(close(&bias, &[1.0, 0.5], 1e-6), "{bias:?}");
    assert!(squared_error(&keep, &bias) < 1e-10, "pruned + bias = dense");
    // The later code's order (bias from the already-zeroed weights) corrects nothing.
    let zeroed: Vec<f32> = W.iter().zip(&keep).map(|(w, k)| w * k).collect();
    let late = stade::bias_correction(&MatrixView { weight: &zeroed, ..view }, &keep);
    assert_eq!(late, vec![0.0, 0.0]);
    assert!(squared_error(&keep, &late) > 1.0);
}

/// Deterministic pseudo-random numbers in [-1, 1) (the device RNG is shared by the tests that
/// run in parallel, so seeding it does not make a test's data fixed).
fn lcg(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn scaling_the_inputs_leaves_wanda_alone_and_zero_mean_inputs_make_stade_wanda() {
    // 50 tokens x 12 inputs; input j has mean j - 5 and spread 1 + (j mod 3).
    let noise = lcg(1, 600);
    let xv: Vec<f32> = (0..600).map(|i| (i % 12) as f32 - 5.0 + noise[i] * (1.0 + (i % 12 % 3) as f32)).collect();
    let x = Tensor::<2>::from_data(TensorData::new(xv, [50, 12]), &cpu());
    let w = lcg(2, 72);
    let mask = |s: &InputStats, f: fn(&MatrixView) -> Vec<f32>| keep_mask(&f(&MatrixView { weight: &w, dims: [6, 12], inputs: s, reads_units: true, gradient: None }), [6, 12], 0.5, Comparison::Row, None);
    let base = mask(&InputStats::of(x.clone()), wanda::scores);
    assert_eq!(mask(&InputStats::of(x.clone() * 7.5), wanda::scores), base);
    let centred = x.clone() - x.clone().mean_dim(0);
    assert_eq!(mask(&InputStats::of(centred.clone()), stade::scores), mask(&InputStats::of(centred), wanda::scores));
    // With means, they differ somewhere (else the test above would prove nothing).
    assert_ne!(mask(&InputStats::of(x.clone()), stade::scores), base);
}

#[test]
fn a_constant_input_is_pruned_first_and_absorbed_into_the_bias() {
    let d = cpu();
    d.seed(4);
    let mut x = Tensor::<2>::random([40, 6], Distribution::Normal(0.0, 1.0), &d);
    x = x.slice_assign([0..40, 2..3], Tensor::full([40, 1], 3.0, &d));
    let w: Vec<f32> = Tensor::<2>::random([4, 6], Distribution::Normal(0.0, 1.0), &d).to_data().try_to_vec().unwrap();
    let s = InputStats::of(x);
    let view = MatrixView { weight: &w, dims: [4, 6], inputs: &s, reads_units: true, gradient: None };
    let keep = keep_mask(&stade::scores(&view), [4, 6], 1.0 / 6.0, Comparison::Row, None);
    for r in 0..4 {
        assert_eq!(keep[r * 6 + 2], 0.0, "row {r}: the constant column goes first");
        assert_eq!(keep[r * 6..r * 6 + 6].iter().sum::<f32>(), 5.0);
    }
    let bias = stade::bias_correction(&view, &keep);
    for r in 0..4 {
        assert!((bias[r] - 3.0 * w[r * 6 + 2]).abs() < 1e-4, "row {r}: {} vs {}", bias[r], 3.0 * w[r * 6 + 2]);
    }
}

fn config(text: &str) -> PruningConfig {
    toml::from_str(text).unwrap()
}

/// An MLP whose first layer is the hand case's W (input 4, hidden 2, 2 labels), zero biases.
fn hand_mlp() -> Mlp {
    let d = cpu();
    let mut m = Mlp::new(&MlpConfig::new(4, vec![2], 2, 0.0), 1, &d);
    m.layers[0].weight = Param::from_tensor(Tensor::from_data(TensorData::new(W.to_vec(), [2, 4]), &d));
    m.layers[0].bias = Some(Param::from_tensor(Tensor::zeros([2], &d)));
    m
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().unwrap()
}

#[test]
fn the_one_shot_pruners_on_an_mlp_use_its_own_calibration_statistics() {
    // Wanda (and STADE's default split: the first layer reads raw features, so Wanda there).
    for method in ["wanda", "stade"] {
        let mut m = hand_mlp();
        let mut p = config(&format!("method = \"{method}\"\nfinal_density = 0.5\nwarmup_steps = 2")).build(10).unwrap();
        p.init(&mut m);
        assert_eq!(p.calibration_request(1), None);
        assert_eq!(p.calibration_request(2), Some(256));
        let acts = m.unit_activations(x_tensor());
        p.calibrate(&mut m, &acts);
        p.apply_masks(&mut m, 2);
        assert_eq!(host(m.layers[0].mask.clone().unwrap()), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0], "{method}");
        assert_eq!(host(m.layers[0].bias.as_ref().unwrap().val()), vec![0.0, 0.0], "{method}: no bias change on a first layer");
        assert_eq!(p.scheduled_density(1), 1.0);
        assert_eq!(p.scheduled_density(2), 0.5);
    }
    // STADE on every layer: the first layer's pre-activations come out exactly as dense.
    let mut m = hand_mlp();
    let dense = host(m.layers[0].forward(x_tensor()));
    let mut p = config("method = \"stade\"\nfinal_density = 0.5\nstade_layers = \"all\"").build(10).unwrap();
    let acts = m.unit_activations(x_tensor());
    p.calibrate(&mut m, &acts);
    p.apply_masks(&mut m, 0);
    assert!(close(&host(m.layers[0].bias.as_ref().unwrap().val()), &[1.0, 0.5], 1e-6));
    assert!(close(&host(m.layers[0].forward(x_tensor())), &dense, 1e-5), "pruned + bias = dense on the calibration inputs");
}

fn tiny_bert_inputs(d: &Device) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2, Int>) {
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![2i64, 7, 9, 11, 3, 2, 5, 6, 3, 0], [2, 5]), d);
    let types = Tensor::<2, Int>::zeros([2, 5], d);
    let mask = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 1, 1, 1, 0], [2, 5]), d);
    (ids, types, mask)
}

#[test]
fn two_four_on_bert_zeroes_exactly_two_of_every_four_and_stade_corrects_only_second_linears() {
    let d = cpu();
    d.seed(6);
    let mut m = BertForSequenceClassification::new(&BertConfig::tiny(30), 2, &d);
    let biases_before: Vec<Vec<f32>> = m.prunable_layers().iter().map(|(_, l)| host(l.bias.as_ref().unwrap().val())).collect();
    let mut p = config("method = \"stade\"\nfinal_density = 0.5\nn_m = \"2:4\"").build(10).unwrap();
    let (ids, types, mask) = tiny_bert_inputs(&d);
    let acts = m.unit_activations(ids, types, mask);
    assert_eq!(acts.inputs.len(), m.prunable_layers().len());
    assert!(acts.inputs.iter().all(|s| s.count == 9), "the nine non-padding tokens");
    p.calibrate(&mut m, &acts);
    p.apply_masks(&mut m, 0);
    for (i, (name, l)) in m.prunable_layers().into_iter().enumerate() {
        let [rows, cols] = l.dims();
        let k = host(l.mask.clone().unwrap());
        for r in 0..rows {
            for g in 0..cols / 4 {
                let kept: f32 = k[r * cols + 4 * g..r * cols + 4 * g + 4].iter().sum();
                assert_eq!(kept, 2.0, "{name} row {r} group {g}");
            }
        }
        let second = name.ends_with("attention.output.dense") || name.ends_with(".output.dense") && !name.contains("attention");
        let changed = host(l.bias.as_ref().unwrap().val()) != biases_before[i];
        assert_eq!(changed, second, "{name}: STADE's bias fix on the second Linears only");
    }
    // A ratio that disagrees with N:M is refused, naming both keys.
    let err = config("method = \"wanda\"\nfinal_density = 0.3\nn_m = \"2:4\"").build(10).err().unwrap();
    assert!(err.contains("pruning.n_m") && err.contains("final_density"), "{err}");
    let err = config("method = \"magnitude\"\nfinal_density = 0.5\nn_m = \"2:4\"").build(10).err().unwrap();
    assert!(err.contains("pruning.n_m"), "{err}");
    let err = config("method = \"wanda\"\nfinal_density = 0.5\nstade_layers = \"all\"").build(10).err().unwrap();
    assert!(err.contains("pruning.stade_layers"), "{err}");
}

/// Taylor by hand: W = [[1, −2], [3, 0.5]], mean gradient [[0.5, 0.1], [−0.1, 2]] →
/// |W·g| = [[0.5, 0.2], [0.3, 1.0]]; per row the larger stays (row 0 column 0, row 1 column 1),
/// though |W| alone would keep row 0's −2 and row 1's 3.
#[test]
fn taylor_scores_a_weight_by_its_first_order_loss_change() {
    let w = [1.0, -2.0, 3.0, 0.5];
    let g = [0.5, 0.1, -0.1, 2.0];
    let s = InputStats::of(Tensor::<2>::from_data(TensorData::new(vec![1.0f32; 2], [1, 2]), &cpu()));
    let view = MatrixView { weight: &w, dims: [2, 2], inputs: &s, reads_units: false, gradient: Some(&g) };
    let scores = taylor::scores(&view);
    for (got, want) in scores.iter().zip([0.5f32, 0.2, 0.3, 1.0]) {
        assert!((got - want).abs() < 1e-7, "{scores:?}");
    }
    assert_eq!(keep_mask(&scores, [2, 2], 0.5, Comparison::Row, None), vec![1.0, 0.0, 0.0, 1.0]);
    assert_eq!(keep_mask(&w.map(f32::abs), [2, 2], 0.5, Comparison::Row, None), vec![0.0, 1.0, 1.0, 0.0]);
}
