//! Layer-wise MI pruning: the Gaussian MI estimator against closed forms, and the top-down
//! selection on a tiny BERT.

use burn::tensor::{Device, Int, Tensor, TensorData};
use models::{BertConfig, BertForSequenceClassification, PrunableModel};
use pruners::methods::mi_layerwise::{unit_mutual_information, MiLayerwise};
use pruners::Pruner;

#[allow(deprecated)]
fn cpu() -> Device {
    Device::ndarray()
}

/// Deterministic standard normal samples.
fn normals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut u = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64).max(1e-12)
    };
    (0..n).map(|_| ((-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos()) as f32).collect()
}

#[test]
fn gaussian_mi_matches_the_closed_form() {
    let device = cpu();
    let n = 20000;
    let t = normals(n, 1);
    let e1 = normals(n, 2);
    let e2 = normals(n, 3);
    // Three scalar units: a0 = t + 0.5·e (ρ² = 0.8), a1 = t + 2·e (ρ² = 0.2), a2 = e (independent).
    let mut acts = Vec::with_capacity(3 * n);
    for i in 0..n {
        acts.extend([t[i] + 0.5 * e1[i], t[i] + 2.0 * e2[i], e1[i] * 0.7 + e2[i] * 0.7]);
    }
    let a = Tensor::<2>::from_data(TensorData::new(acts, [n, 3]), &device);
    let target = Tensor::<2>::from_data(TensorData::new(t.clone(), [n, 1]), &device);
    let mi = unit_mutual_information(a, target, 3, 1);
    let want = [-0.5 * (1.0f64 - 0.8).ln(), -0.5 * (1.0f64 - 0.2).ln(), 0.0];
    for u in 0..3 {
        assert!((mi[u] - want[u]).abs() < 0.02, "unit {u}: {} vs {}", mi[u], want[u]);
    }
    // A 2-wide unit whose two dimensions each see the target: more information than either.
    let mut acts2 = Vec::with_capacity(2 * n);
    for i in 0..n {
        acts2.extend([t[i] + 1.0 * e1[i], t[i] + 1.0 * e2[i]]);
    }
    let a2 = Tensor::<2>::from_data(TensorData::new(acts2, [n, 2]), &device);
    let target = Tensor::<2>::from_data(TensorData::new(t, [n, 1]), &device);
    let both = unit_mutual_information(a2, target, 1, 2)[0];
    // Two independent looks with noise variance 1: I = ½ log(1 + 2) exactly.
    assert!((both - 0.5 * 3.0f64.ln()).abs() < 0.02, "{both}");
}

#[test]
fn top_down_selection_keeps_the_scheduled_units_per_layer() {
    let device = cpu();
    device.seed(4);
    let mut model = BertForSequenceClassification::new(&BertConfig::tiny(30), 2, &device);
    let ids: Vec<i64> = (0..6 * 7).map(|i| 5 + (i * 7 % 25) as i64).collect();
    let mut mask = vec![1i64; 6 * 7];
    mask[6] = 0; // one padding token in the first sequence
    mask[13] = 0;
    let t = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [6, 7]), &device);
    let acts = model.unit_activations(t(ids), t(vec![0; 42]), t(mask));
    assert_eq!(acts.groups.len(), 4);
    assert_eq!(acts.groups[0].dims(), [40, 16]); // 42 tokens − 2 padding, 4 heads × 4
    assert_eq!(acts.groups[1].dims(), [40, 32]);
    assert_eq!(acts.cls_rows, vec![0, 6, 12, 19, 26, 33]);
    let mut pruner = MiLayerwise::new(3, 0.5, 6, 0);
    assert_eq!(pruner.calibration_request(2), None);
    assert_eq!(pruner.calibration_request(3), Some(6));
    pruner.calibrate(&mut model, &acts);
    assert!(pruner.scores.iter().flatten().all(|s| s.is_finite() && *s >= 0.0));
    pruner.apply_masks(&mut model, 2);
    assert!(model.prunable_layers().iter().all(|(_, l)| l.mask.is_none()), "dense before the pruning step");
    pruner.apply_masks(&mut model, 3);
    // Half the heads (2 of 4) and half the neurons (16 of 32) of each layer, the best by MI.
    let stats = pruners::SparsityReport::measure(&model);
    assert_eq!(stats.prunable_numel - stats.prunable_zeros, 2 * (4 * 16 * 8 + 2 * 16 * 16));
    for (g, scores) in pruner.scores.iter().enumerate() {
        let k = scores.len() / 2;
        let mut sorted = scores.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let group = &model.unit_groups()[g];
        let models::Member { layer: m, axis, .. } = group.members[0];
        let mask: Vec<f32> = model.prunable_layers()[m].1.mask.clone().unwrap().to_data().try_to_vec().unwrap();
        let [_, c] = model.prunable_layers()[m].1.dims();
        assert_eq!(axis, models::Axis::Rows);
        for (u, s) in scores.iter().enumerate() {
            let kept = mask[u * group.width * c] == 1.0;
            if *s > sorted[k] {
                assert!(kept, "group {g} unit {u} (MI {s}) should be kept");
            }
            if *s < sorted[k - 1] {
                assert!(!kept, "group {g} unit {u} (MI {s}) should be pruned");
            }
        }
    }
}

/// MLPs of 1, 2 and 3 hidden layers: every hidden layer keeps exactly its share, scored from
/// the top (the last hidden layer against the logits). Reading "two groups per layer" as BERT's
/// shape left a 1-layer MLP unpruned and a 3-layer MLP's last hidden layer untouched.
#[test]
fn mi_prunes_every_hidden_layer_of_mlps_of_any_depth() {
    use models::{Mlp, MlpConfig};
    for hidden in [vec![12], vec![12, 10], vec![12, 10, 8]] {
        let d = cpu();
        let mut m = Mlp::new(&MlpConfig::new(5, hidden.clone(), 3, 0.0), 7, &d);
        let x = Tensor::<2>::from_data(TensorData::new(normals(400 * 5, 11), [400, 5]), &d);
        let acts = m.unit_activations(x);
        let mut p = MiLayerwise::new(0, 0.5, 400, 1);
        p.calibrate(&mut m, &acts);
        p.apply_masks(&mut m, 0);
        assert_eq!(p.scores.len(), hidden.len(), "{hidden:?}: one score vector per hidden layer");
        assert!(p.scores.iter().zip(&hidden).all(|(s, &w)| s.len() == w && s.iter().all(|v| v.is_finite())), "{hidden:?}: {:?}", p.scores);
        for (i, &w) in hidden.iter().enumerate() {
            let rows: Vec<f32> = m.layers[i].mask.clone().unwrap().sum_dim(1).to_data().convert::<f32>().try_to_vec().unwrap();
            let kept = rows.iter().filter(|&&r| r > 0.0).count();
            assert_eq!(kept, pruners::units::kept_units(w, 0.5), "{hidden:?}: hidden layer {i} keeps half its neurons");
        }
    }
}
