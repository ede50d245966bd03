//! Structured Wanda and STADE (`granularity = "unit"`): whole heads and neurons by the summed
//! scores of their weights; STADE scores a unit on the columns it feeds and folds its mean
//! output into the next layer's bias. Checked on MLPs (hand-computable unit scores, the
//! mean-preservation STADE promises, compaction) and on the tiny BERT (heads and neurons,
//! compaction to the same logits).

use burn::tensor::{Device, Int, Tensor, TensorData};
use models::compact::compact;
use models::init::HostRng;
use models::mlp::compact as compact_mlp;
use models::{BertConfig, BertForSequenceClassification, Mlp, MlpConfig};
use pruners::units::kept_units;
use pruners::PruningConfig;

#[allow(deprecated)]
fn cpu() -> Device {
    Device::ndarray()
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn build(method: &str, density: f64) -> Box<dyn pruners::Pruner> {
    let c: PruningConfig = toml::from_str(&format!("method = \"{method}\"\nfinal_density = {density}\ngranularity = \"unit\"")).unwrap();
    assert!(c.is_structured());
    c.build(10).unwrap()
}

/// Calibration inputs with non-zero means (so that STADE's correction is not trivially 0).
fn inputs(n: usize, d: usize) -> Tensor<2> {
    let v: Vec<f32> = HostRng::new(5).normals(n * d, 1.0).into_iter().enumerate().map(|(i, x)| x + (i % d) as f32 * 0.3).collect();
    Tensor::from_data(TensorData::new(v, [n, d]), &cpu())
}

/// The indices of the `k` largest scores, ascending.
fn best(score: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let mut kept = order[..k].to_vec();
    kept.sort();
    kept
}

/// Which hidden neurons of layer `i` survive: rows of layer i with a non-zero mask.
fn kept_neurons(m: &Mlp, i: usize) -> Vec<usize> {
    let [rows, cols] = m.layers[i].dims();
    let k = host(m.layers[i].mask.clone().unwrap());
    (0..rows).filter(|&r| k[r * cols..(r + 1) * cols].iter().any(|&v| v != 0.0)).collect()
}

#[test]
fn structured_stade_keeps_the_units_with_the_most_variance_downstream_and_preserves_the_mean() {
    let x = inputs(200, 5);
    let mut m = Mlp::new(&MlpConfig::new(5, vec![12], 3, 0.0), 3, &cpu());
    let dense_logits = host(m.forward(x.clone()));
    let acts = m.unit_activations(x.clone());
    // By hand: neuron j's score = Σ_i W2_ij² · Var(h_j) (unbiased), over the 200 samples.
    let h = host(burn::tensor::activation::relu(m.layers[0].forward(x.clone())));
    let w2 = host(m.layers[1].weight.val());
    let score: Vec<f64> = (0..12)
        .map(|j| {
            let col: Vec<f64> = (0..200).map(|s| h[s * 12 + j] as f64).collect();
            let mean = col.iter().sum::<f64>() / 200.0;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 199.0;
            (0..3).map(|i| (w2[i * 12 + j] as f64).powi(2)).sum::<f64>() * var
        })
        .collect();
    let want = best(&score, kept_units(12, 0.5));
    let mut p = build("stade", 0.5);
    p.calibrate(&mut m, &acts);
    p.apply_masks(&mut m, 0);
    assert_eq!(kept_neurons(&m, 0), want, "scores {score:?}");
    // The removed neurons' columns of layer 1 are zero too (whole units).
    let k1 = host(m.layers[1].mask.clone().unwrap());
    for j in (0..12).filter(|j| !want.contains(j)) {
        assert!((0..3).all(|i| k1[i * 12 + j] == 0.0), "neuron {j}'s column");
    }
    // STADE's promise: on the calibration inputs the logits' mean is the dense model's.
    let pruned = host(m.forward(x.clone()));
    let mean = |v: &[f32], c: usize| (0..200).map(|s| v[s * 3 + c] as f64).sum::<f64>() / 200.0;
    for c in 0..3 {
        assert!((mean(&pruned, c) - mean(&dense_logits, c)).abs() < 1e-4, "class {c}: {} vs {}", mean(&pruned, c), mean(&dense_logits, c));
    }
    // And the compacted MLP computes exactly what the masked one does.
    let (small, widths) = compact_mlp(&m);
    assert_eq!(widths, vec![6]);
    assert!(max_diff(&host(small.forward(x)), &pruned) < 1e-5);
}

#[test]
fn structured_wanda_scores_a_neuron_by_all_its_weights_and_compacts_a_deep_mlp() {
    let x = inputs(100, 5);
    let mut m = Mlp::new(&MlpConfig::new(5, vec![12, 10, 8], 3, 0.0), 4, &cpu());
    let acts = m.unit_activations(x.clone());
    // Hidden layer 0 by hand: Σ_c |W0_jc|·‖x_c‖ + Σ_i |W1_ij|·‖h0_j‖.
    let xs = host(x.clone());
    let h0 = host(burn::tensor::activation::relu(m.layers[0].forward(x.clone())));
    let norm = |v: &[f32], d: usize, c: usize| (0..v.len() / d).map(|s| (v[s * d + c] as f64).powi(2)).sum::<f64>().sqrt();
    let (w0, w1) = (host(m.layers[0].weight.val()), host(m.layers[1].weight.val()));
    let score: Vec<f64> = (0..12)
        .map(|j| (0..5).map(|c| (w0[j * 5 + c] as f64).abs() * norm(&xs, 5, c)).sum::<f64>() + (0..10).map(|i| (w1[i * 12 + j] as f64).abs() * norm(&h0, 12, j)).sum::<f64>())
        .collect();
    let want = best(&score, kept_units(12, 0.4));
    let mut p = build("wanda", 0.4);
    p.calibrate(&mut m, &acts);
    p.apply_masks(&mut m, 0);
    assert_eq!(kept_neurons(&m, 0), want);
    for (i, w) in [12, 10, 8].into_iter().enumerate() {
        assert_eq!(kept_neurons(&m, i).len(), kept_units(w, 0.4), "hidden layer {i}");
    }
    let masked = host(m.forward(x.clone()));
    let (small, widths) = compact_mlp(&m);
    assert_eq!(widths, vec![kept_units(12, 0.4), kept_units(10, 0.4), kept_units(8, 0.4)]);
    assert!(max_diff(&host(small.forward(x)), &masked) < 1e-5);
}

#[test]
fn structured_one_shot_on_bert_removes_whole_heads_and_neurons_and_compacts_to_the_same_logits() {
    let d = cpu();
    let config = BertConfig::tiny(30);
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![2i64, 7, 9, 11, 3, 2, 5, 6, 3, 0], [2, 5]), &d);
    let types = Tensor::<2, Int>::zeros([2, 5], &d);
    let mask = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 1, 1, 1, 0], [2, 5]), &d);
    for method in ["wanda", "stade"] {
        let mut m = BertForSequenceClassification::seeded(&config, 2, 6, &d);
        let acts = m.unit_activations(ids.clone(), types.clone(), mask.clone());
        let mut p = build(method, 0.5);
        p.calibrate(&mut m, &acts);
        p.finalize(&mut m, 0);
        let logits = host(m.forward(ids.clone(), types.clone(), mask.clone()));
        let (small, small_config, report) = compact(&m, &config);
        assert_eq!(report.heads.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2], "{method}: 2 of 4 heads per layer");
        assert_eq!(report.ffn_widths, vec![16, 16], "{method}: 16 of 32 neurons per layer");
        assert_eq!(small_config.intermediate_size_of(0), 16);
        let small_logits = host(small.forward(ids.clone(), types.clone(), mask.clone()));
        assert!(max_diff(&small_logits, &logits) < 1e-5, "{method}: compacted logits differ by {}", max_diff(&small_logits, &logits));
    }
    // Weight-level selections do not combine with whole units.
    let c: PruningConfig = toml::from_str("method = \"wanda\"\nfinal_density = 0.5\ngranularity = \"unit\"\nn_m = \"2:4\"").unwrap();
    let err = c.build(10).err().unwrap();
    assert!(err.contains("pruning.n_m") && err.contains("granularity"), "{err}");
}
