//! The structured methods on MLPs of 1, 2 and 3 hidden layers, read from the units the MLP
//! declares (`UnitGroup`: one group of neurons per hidden layer, not residual): mask learning
//! puts a gate on every hidden neuron and none on a whole layer (a gate on the last hidden
//! layer's "block" would gate the logits), minimax keeps its share in every layer, MI keeps its
//! share in every layer; each ends in a compacted MLP that computes what the pruned one did.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use models::init::HostRng;
use models::mlp::compact;
use models::{Mlp, MlpConfig, UnitKind};
use pruners::gates;
use pruners::methods::mask_learning::MaskLearning;
use pruners::methods::mi_layerwise::MiLayerwise;
use pruners::methods::minimax_uniform::MinimaxUniform;
use pruners::units::kept_units;
use pruners::Pruner;

#[allow(deprecated)]
fn cpu() -> Device {
    Device::ndarray()
}

const SHAPES: [&[usize]; 3] = [&[12], &[12, 10], &[12, 10, 8]];

fn mlp(hidden: &[usize]) -> Mlp {
    Mlp::new(&MlpConfig::new(5, hidden.to_vec(), 3, 0.0), 7, &cpu())
}

fn inputs() -> Tensor<2> {
    Tensor::from_data(TensorData::new(HostRng::new(11).normals(64 * 5, 1.0), [64, 5]), &cpu())
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The model's own output after the pruner finished, then the compacted model's: the same.
/// Returns the compacted widths.
fn compacts_to_the_same_outputs(m: &Mlp, label: &str) -> Vec<usize> {
    let x = inputs();
    let before = host(m.forward(x.clone()));
    let (small, widths) = compact(m);
    let after = host(small.forward(x));
    assert!(max_diff(&before, &after) < 1e-5, "{label}: compacted outputs differ by {}", max_diff(&before, &after));
    widths
}

#[test]
fn an_mlp_declares_one_non_residual_neuron_group_per_hidden_layer() {
    for hidden in SHAPES {
        let m = mlp(hidden);
        let t = gates::targets(&m).unwrap();
        assert_eq!(t.len(), hidden.len(), "{hidden:?}");
        for (i, g) in t.iter().enumerate() {
            assert_eq!((g.kind, g.depth, g.block, g.count), (UnitKind::Neuron, i, false, hidden[i]), "{hidden:?} layer {i}");
            // Neuron j of layer i owns row j of layer i and column j of layer i+1.
            assert_eq!(g.input_side, vec![i]);
            assert_eq!(g.output_side, i + 1);
            let d_in = if i == 0 { 5 } else { hidden[i - 1] };
            let d_next = if i + 1 == hidden.len() { 3 } else { hidden[i + 1] };
            assert_eq!(g.params_per_unit, d_in + d_next);
        }
    }
}

/// Mask learning on an MLP: one log α vector per hidden layer and no block vector; training
/// gates touch only the hidden neurons' columns (no `out_gate` anywhere, the logits least of
/// all); ŝ is `1 − Σ P(open)·owned / total` with no block factor; the end keeps the
/// deterministic structure and compacts to it.
#[test]
fn mask_learning_gates_every_hidden_neuron_and_never_the_logits() {
    for hidden in SHAPES {
        let mut m = mlp(hidden);
        let mut p = MaskLearning::new(0.5, 0, 0, 10, 0.1, 0.05);
        p.init(&mut m);
        assert_eq!(gates::params(&m).log_alpha.len(), hidden.len(), "{hidden:?}: no block gates on an MLP");
        // Spread log α so that some gates close: N(0, 3²) per neuron, from a fixed seed.
        let mut rng = HostRng::new(3);
        let la: Vec<Vec<f32>> = hidden.iter().map(|&w| rng.normals(w, 3.0)).collect();
        let params = m.pruner_params.as_mut().unwrap();
        for (p, v) in params.log_alpha.iter_mut().zip(&la) {
            *p = Param::from_tensor(Tensor::from_data(TensorData::new(v.clone(), [v.len()]), &cpu()));
        }
        p.apply_masks(&mut m, 0);
        for (i, layer) in m.layers.iter().enumerate() {
            assert!(layer.out_gate.is_none(), "{hidden:?}: layer {i} has a block gate");
            assert_eq!(layer.in_gate.is_some(), i > 0, "{hidden:?}: layer {i} reads gated neurons iff it follows a hidden layer");
        }
        // ŝ by hand.
        let targets = gates::targets(&m).unwrap();
        let total: usize = targets.iter().map(|t| t.count * t.params_per_unit).sum();
        let kept: f64 = targets.iter().zip(&la).map(|(t, v)| v.iter().map(|&a| gates::open_probability_host(a)).sum::<f64>() * t.params_per_unit as f64).sum();
        let la_t: Vec<Tensor<1>> = gates::params(&m).log_alpha.iter().map(|a| a.val()).collect();
        let s = gates::host(MaskLearning::expected_sparsity(&targets, &la_t))[0] as f64;
        assert!((s - (1.0 - kept / total as f64)).abs() < 1e-5, "{hidden:?}: ŝ {s} vs {}", 1.0 - kept / total as f64);
        // The deterministic structure: per layer, the neurons whose gates stay non-zero.
        let (units, blocks) = p.deterministic(&la_t);
        assert!(blocks.iter().all(Option::is_none));
        let expected_total: f64 = la.iter().flatten().map(|&a| gates::open_probability_host(a)).sum();
        let kept_counts: Vec<usize> = units.iter().map(|z| z.iter().filter(|&&v| v > 0.0).count()).collect();
        assert_eq!(kept_counts.iter().sum::<usize>(), expected_total.round() as usize, "{hidden:?}: the expected number of open neurons");
        p.eval_masks(&mut m, 10);
        let gated = host(m.forward(inputs()));
        p.finalize(&mut m, 10);
        assert!(m.pruner_params.is_none());
        let folded = host(m.forward(inputs()));
        assert!(max_diff(&gated, &folded) < 1e-5, "{hidden:?}: folding changed the outputs by {}", max_diff(&gated, &folded));
        let widths = compacts_to_the_same_outputs(&m, &format!("mask_learning {hidden:?}"));
        assert_eq!(widths, kept_counts.iter().map(|&k| k.max(1)).collect::<Vec<_>>(), "{hidden:?}");
    }
}

/// Minimax on an MLP: every hidden layer keeps `kept_units(width, density)` at the end (no
/// heads to share a budget with), and compacts to those widths.
#[test]
fn minimax_keeps_the_same_share_of_every_hidden_layer() {
    for hidden in SHAPES {
        let mut m = mlp(hidden);
        let mut p = MinimaxUniform::new(0.4, 0, 0, 10, 0.1, 0.05);
        p.init(&mut m);
        assert_eq!(gates::params(&m).log_alpha.len(), hidden.len());
        p.apply_masks(&mut m, 0);
        assert!(m.layers.iter().all(|l| l.out_gate.is_none()), "{hidden:?}: no block gates");
        p.finalize(&mut m, 10);
        let widths = compacts_to_the_same_outputs(&m, &format!("minimax {hidden:?}"));
        assert_eq!(widths, hidden.iter().map(|&w| kept_units(w, 0.4)).collect::<Vec<_>>(), "{hidden:?}");
    }
}

/// MI on an MLP: each hidden layer keeps its share (the depths are walked from the top), and
/// the masked MLP compacts to exactly those widths.
#[test]
fn mi_pruned_mlps_compact_to_their_share_of_every_layer() {
    for hidden in SHAPES {
        let mut m = mlp(hidden);
        let acts = m.unit_activations(inputs());
        let mut p = MiLayerwise::new(0, 0.5, 64, 1);
        p.calibrate(&mut m, &acts);
        p.apply_masks(&mut m, 0);
        p.finalize(&mut m, 0);
        let widths = compacts_to_the_same_outputs(&m, &format!("mi {hidden:?}"));
        assert_eq!(widths, hidden.iter().map(|&w| kept_units(w, 0.5)).collect::<Vec<_>>(), "{hidden:?}");
    }
}

/// Structured top-k (magnitude, movement with `granularity = "unit"`) on an MLP of two hidden
/// layers: the middle matrix belongs to two groups (its rows are layer 1's neurons, its columns
/// layer 0's), and its mask keeps a weight only when both its neurons are kept. (The masks of the
/// two groups used to overwrite each other there.)
#[test]
fn unit_masks_multiply_where_a_matrix_belongs_to_two_groups() {
    let m = mlp(&[12, 10]);
    let groups = models::PrunableModel::unit_groups(&m);
    let scores: Vec<Tensor<2>> = m.layers.iter().map(|l| l.weight.val().abs()).collect();
    let masks = pruners::units::unit_masks(&groups, &scores, 0.5);
    let mid = host(masks[1].clone());
    let (rows, cols) = (10, 12);
    let kept_rows: Vec<usize> = (0..rows).filter(|&r| host(masks[2].clone())[r] == 1.0).collect(); // layer 2's columns
    let kept_cols: Vec<usize> = (0..cols).filter(|&c| host(masks[0].clone())[c * 5] == 1.0).collect(); // layer 0's rows
    assert_eq!((kept_rows.len(), kept_cols.len()), (5, 6));
    for r in 0..rows {
        for c in 0..cols {
            let want = (kept_rows.contains(&r) && kept_cols.contains(&c)) as u8 as f32;
            assert_eq!(mid[r * cols + c], want, "middle mask at ({r}, {c})");
        }
    }
}
