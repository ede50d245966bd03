//! Structured (unit) masks on a tiny BERT: whole heads and FFN neurons, as many as scheduled,
//! chosen by summed scores; the masked model compacts into a smaller one with the same outputs.

use burn::module::Param;
use burn::tensor::{Device, Int, Tensor, TensorData};
use models::{Axis, BertConfig, BertForSequenceClassification, PrunableModel};
use pruners::units::{kept_units, unit_scores};
use pruners::{Pruner, PruningConfig};

#[allow(deprecated)]
fn cpu() -> Device {
    Device::ndarray()
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().unwrap()
}

fn model() -> BertForSequenceClassification {
    let device = cpu();
    device.seed(3);
    BertForSequenceClassification::new(&BertConfig::tiny(30), 2, &device)
}

fn structured(method: &str, density: f64) -> Box<dyn Pruner> {
    let cfg: PruningConfig = toml::from_str(&format!(
        "method = \"{method}\"\ngranularity = \"unit\"\nfinal_density = {density}\nwarmup_steps = 0\ncooldown_steps = 1"
    ))
    .unwrap();
    cfg.build(2).unwrap()
}

/// For each group: which units are fully kept; asserts every unit is all-kept or all-removed
/// in every member matrix.
fn kept_units_of(model: &BertForSequenceClassification) -> Vec<Vec<usize>> {
    let layers = model.prunable_layers();
    model
        .unit_groups()
        .iter()
        .map(|g| {
            (0..g.count)
                .filter(|&u| {
                    let states: Vec<bool> = g
                        .members
                        .iter()
                        .flat_map(|&models::Member { layer: m, axis, width }| {
                            let mask = host(layers[m].1.mask.clone().unwrap());
                            let [r, c] = layers[m].1.dims();
                            (u * width..(u + 1) * width).flat_map(move |k| -> Vec<f32> {
                                match axis {
                                    Axis::Rows => (0..c).map(|j| mask[k * c + j]).collect(),
                                    Axis::Cols => (0..r).map(|i| mask[i * c + k]).collect(),
                                }
                            })
                        })
                        .map(|v| v == 1.0)
                        .collect();
                    assert!(states.iter().all(|&s| s == states[0]), "{} unit {u} is partly masked", g.name);
                    states[0]
                })
                .collect()
        })
        .collect()
}

#[test]
fn unit_scores_sum_each_units_slices() {
    let m = model();
    let groups = m.unit_groups();
    let scores: Vec<Tensor<2>> = m.prunable_layers().iter().map(|(_, l)| l.weight.val().abs()).collect();
    let heads = &groups[0]; // layer 0: Q, K, V rows and attention-output columns, width 4
    let got: Vec<f32> = unit_scores(heads, &scores).to_data().try_to_vec().unwrap();
    let w: Vec<Vec<f32>> = scores.iter().map(|s| host(s.clone())).collect();
    for u in 0..4 {
        let mut want = 0.0f32;
        for m in 0..3 {
            want += w[m][u * 4 * 16..(u + 1) * 4 * 16].iter().sum::<f32>(); // rows u·4..u·4+4 of [16, 16]
        }
        want += (0..16).flat_map(|i| (u * 4..u * 4 + 4).map(move |k| (i, k))).map(|(i, k)| w[3][i * 16 + k]).sum::<f32>();
        assert!((got[u] - want).abs() < 1e-4 * want, "head {u}: {} vs {want}", got[u]);
    }
}

#[test]
fn magnitude_units_keep_the_scheduled_number_of_heads_and_neurons_with_largest_l1() {
    let mut m = model();
    // Make head 2 of layer 0 and neurons 5, 6 of layer 1 clearly the largest.
    let device = cpu();
    let boost = |l: &mut models::PrunableLinear, idx: Vec<usize>, axis: Axis| {
        let [r, c] = l.dims();
        let mut f = vec![1.0f32; r * c];
        for k in idx {
            match axis {
                Axis::Rows => (0..c).for_each(|j| f[k * c + j] = 50.0),
                Axis::Cols => (0..r).for_each(|i| f[i * c + k] = 50.0),
            }
        }
        let f = Tensor::<2>::from_data(TensorData::new(f, [r, c]), &device);
        l.weight = Param::from_tensor(l.weight.val() * f);
    };
    boost(&mut m.bert.encoder.layer[0].attention.self_.query, (8..12).collect(), Axis::Rows);
    boost(&mut m.bert.encoder.layer[1].output.dense, vec![5, 6], Axis::Cols);
    let mut pruner = structured("magnitude", 0.25);
    pruner.apply_masks(&mut m, 1);
    let kept = kept_units_of(&m);
    // 25% of 4 heads = 1, of 32 neurons = 8, in every layer.
    assert_eq!(kept.iter().map(Vec::len).collect::<Vec<_>>(), vec![kept_units(4, 0.25), 8, 1, 8]);
    assert_eq!(kept[0], vec![2]);
    assert!(kept[3].contains(&5) && kept[3].contains(&6));
    // Weights kept: per layer 1 head (3·4·16 + 16·4) and 8 neurons (2·8·16).
    let stats = pruners::SparsityReport::measure(&m);
    assert_eq!(stats.prunable_numel - stats.prunable_zeros, 2 * (3 * 64 + 64 + 2 * 128));
}

#[test]
fn structured_movement_masks_whole_units_and_compacts_exactly() {
    let mut m = model();
    let mut pruner = structured("movement", 0.5);
    pruner.init(&mut m);
    // Distinct scores: unit order is decided by them.
    let device = cpu();
    for (i, (_, l)) in m.prunable_layers_mut().into_iter().enumerate() {
        let [r, c] = l.dims();
        let v: Vec<f32> = (0..r * c).map(|k| ((k * 31 + i * 17) % 97) as f32 / 97.0 - 0.5).collect();
        l.mask_scores = Some(Param::from_tensor(Tensor::from_data(TensorData::new(v, [r, c]), &device)));
    }
    pruner.apply_masks(&mut m, 1);
    let kept = kept_units_of(&m);
    assert_eq!(kept.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 16, 2, 16]);
    // The units kept are the best by summed score.
    let scores: Vec<Tensor<2>> = m.prunable_layers().iter().map(|(_, l)| l.mask_scores.as_ref().unwrap().val()).collect();
    for (g, kept) in m.unit_groups().iter().zip(&kept) {
        let s: Vec<f32> = unit_scores(g, &scores).to_data().try_to_vec().unwrap();
        let worst_kept = kept.iter().map(|&u| s[u]).fold(f32::MAX, f32::min);
        let best_dropped = (0..g.count).filter(|u| !kept.contains(u)).map(|u| s[u]).fold(f32::MIN, f32::max);
        assert!(worst_kept >= best_dropped, "{}", g.name);
    }
    // Fold and compact: the smaller model has half the heads and neurons and the same outputs.
    let config = BertConfig::tiny(30);
    let x = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [1, 5]), &device);
    let before: Vec<f32> = m.forward(x(vec![2, 8, 9, 10, 3]), x(vec![0; 5]), x(vec![1; 5])).to_data().try_to_vec().unwrap();
    pruner.finalize(&mut m, 1);
    let (small, small_config, report) = models::compact::compact(&m, &config);
    assert_eq!(report.heads.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2]);
    assert_eq!(small_config.intermediate_size, 16);
    let after: Vec<f32> = small.forward(x(vec![2, 8, 9, 10, 3]), x(vec![0; 5]), x(vec![1; 5])).to_data().try_to_vec().unwrap();
    for (a, b) in before.iter().zip(&after) {
        assert!((a - b).abs() < 1e-5, "{before:?} vs {after:?}");
    }
}

#[test]
fn unit_granularity_is_refused_where_it_has_no_meaning() {
    let cfg: PruningConfig = toml::from_str("method = \"soft_movement\"\ngranularity = \"unit\"\nwarmup_steps = 1").unwrap();
    assert!(cfg.build(10).err().unwrap().contains("pruning.granularity"));
    let cfg: PruningConfig = toml::from_str("method = \"magnitude\"\ngranularity = \"unit\"\nscope = \"global\"\nwarmup_steps = 1").unwrap();
    assert!(cfg.build(10).err().unwrap().contains("pruning.scope"));
}
