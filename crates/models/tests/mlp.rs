//! The MLP: every layer prunable, neurons as structural units, and compaction that keeps the
//! outputs exactly (removed neurons whose outgoing column is zero; a neuron whose incoming row
//! is zero folded into the next bias as the constant relu(b) it outputs).

use burn::tensor::{Device, Tensor, TensorData};
use models::mlp::compact;
use models::{Mlp, MlpConfig, PrunableModel};

#[allow(deprecated)]
fn device() -> Device {
    Device::ndarray()
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().unwrap()
}

#[test]
fn units_are_hidden_neurons_rows_then_columns() {
    let d = device();
    let m = Mlp::new(&MlpConfig::new(7, vec![5, 3], 2, 0.0), 1, &d);
    let names: Vec<String> = m.prunable_layers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["layers.0", "layers.1", "layers.2"]);
    let g = m.unit_groups();
    assert_eq!(g.len(), 2);
    assert_eq!((g[0].count, g[0].width, g[0].members.clone()), (5, 1, vec![models::Member::rows(0, 1), models::Member::cols(1, 1)]));
    assert_eq!((g[1].count, g[1].members.clone()), (3, vec![models::Member::rows(1, 1), models::Member::cols(2, 1)]));
    assert_eq!(m.config(0.0), MlpConfig::new(7, vec![5, 3], 2, 0.0));
}

#[test]
fn compaction_removes_dead_neurons_and_keeps_the_outputs() {
    let d = device();
    d.seed(5);
    let mut m = Mlp::new(&MlpConfig::new(6, vec![8, 4], 3, 0.0), 2, &d);
    // Layer 0: neurons 1 and 6 lose their outgoing columns (removed outright); neuron 3 loses
    // its incoming row but keeps a positive bias (a constant, folded into layer 1's bias).
    let mut m1 = vec![1.0f32; 4 * 8];
    for r in 0..4 {
        m1[r * 8 + 1] = 0.0;
        m1[r * 8 + 6] = 0.0;
    }
    let mut m0 = vec![1.0f32; 8 * 6];
    for c in 0..6 {
        m0[3 * 6 + c] = 0.0;
    }
    // Layer 1: neuron 2 loses its outgoing column in layer 2.
    let mut m2 = vec![1.0f32; 3 * 4];
    for r in 0..3 {
        m2[r * 4 + 2] = 0.0;
    }
    m.layers[0].mask = Some(Tensor::from_data(TensorData::new(m0, [8, 6]), &d));
    m.layers[0].bias = Some(burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(vec![0.1f32, -0.2, 0.3, 0.7, 0.0, 0.2, -0.1, 0.4], [8]), &d)));
    m.layers[1].mask = Some(Tensor::from_data(TensorData::new(m1, [4, 8]), &d));
    m.layers[2].mask = Some(Tensor::from_data(TensorData::new(m2, [3, 4]), &d));
    let x = Tensor::<2>::random([10, 6], burn::tensor::Distribution::Normal(0.0, 1.0), &d);
    let want = host(m.forward(x.clone()));
    let (small, widths) = compact(&m);
    assert_eq!(widths, vec![5, 3]);
    assert_eq!(small.layers[0].dims(), [5, 6]);
    assert_eq!(small.layers[1].dims(), [3, 5]);
    assert_eq!(small.layers[2].dims(), [3, 3]);
    let got = host(small.forward(x));
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}
