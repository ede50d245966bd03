//! SBPF on an MLP whose labels are its own predictions (so the unpruned accuracy is 100% and any
//! damage shows): a hidden layer whose neurons are all duplicated (the next layer's weights
//! halved, so the function is unchanged) is the least sensitive and loses the largest share;
//! the removal then hits the asked budget in units, lowest L1 first within each layer.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use models::init::HostRng;
use models::{Mlp, MlpConfig, PrunableModel};
use pruners::calibration::{LossCalibration, LossProbe};
use pruners::methods::sbpf::Sbpf;
use pruners::Pruner;

fn cpu() -> Device {
    Device::flex()
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().unwrap()
}

struct SelfLabelled {
    model: Mlp,
    x: Tensor<2>,
    y: Vec<usize>,
}

impl LossProbe for SelfLabelled {
    fn examples(&self) -> usize {
        self.y.len()
    }
    fn loss_without(&mut self, _removed: &[(usize, usize)]) -> f64 {
        unreachable!("sbpf reads accuracies")
    }
    fn accuracy_without(&mut self, removed: &[(usize, usize)]) -> f64 {
        let mut m = self.model.clone();
        pruners::units::remove_units(&mut m, removed);
        let pred = argmax(&host(m.forward(self.x.clone())), 4);
        pred.iter().zip(&self.y).filter(|(a, b)| a == b).count() as f64 / self.y.len() as f64
    }
    fn outputs_without(&mut self, _removed: &[(usize, usize)]) -> pruners::calibration::ProbeOutputs {
        unreachable!("sbpf reads accuracies")
    }
    fn gradients_at(&mut self, _shift: &[Tensor<2>]) -> Vec<Tensor<2>> {
        unreachable!("sbpf reads accuracies")
    }
}

fn argmax(logits: &[f32], classes: usize) -> Vec<usize> {
    logits.chunks(classes).map(|r| (0..classes).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap()).collect()
}

/// Layer 0's neurons twice over (rows and biases repeated), layer 1's columns repeated and halved.
fn duplicate_first_layer(m: &Mlp) -> Mlp {
    let device = cpu();
    let mut out = m.clone();
    let (w0, [r0, c0]) = (host(m.layers[0].weight.val()), m.layers[0].dims());
    let b0: Vec<f32> = m.layers[0].bias.as_ref().unwrap().val().to_data().convert::<f32>().try_to_vec().unwrap();
    let w: Vec<f32> = w0.iter().chain(&w0).copied().collect();
    let b: Vec<f32> = b0.iter().chain(&b0).copied().collect();
    out.layers[0].weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [2 * r0, c0]), &device));
    out.layers[0].bias = Some(Param::from_tensor(Tensor::from_data(TensorData::new(b, [2 * r0]), &device)));
    let (w1, [r1, c1]) = (host(m.layers[1].weight.val()), m.layers[1].dims());
    let w1 = &w1;
    let w: Vec<f32> = (0..r1).flat_map(|i| (0..2 * c1).map(move |j| 0.5 * w1[i * c1 + j % c1])).collect();
    out.layers[1].weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [r1, 2 * c1]), &device));
    out
}

#[test]
fn a_layer_of_duplicated_neurons_is_the_least_sensitive_and_loses_most() {
    let device = cpu();
    // Weights ×3 and no biases: the decisions depend on the hidden neurons, not on the biases.
    let mut base = Mlp::new(&MlpConfig::new(6, vec![10, 10], 4, 0.0), 3, &device);
    for l in &mut base.layers {
        l.weight = Param::from_tensor(l.weight.val() * 3.0);
        l.bias = Some(Param::from_tensor(l.bias.as_ref().unwrap().val() * 0.0));
    }
    let model = duplicate_first_layer(&base);
    let x = Tensor::<2>::from_data(TensorData::new(HostRng::new(5).normals(600 * 6, 1.0), [600, 6]), &device);
    let y = argmax(&host(base.forward(x.clone())), 4);
    let same = argmax(&host(model.forward(x.clone())), 4);
    assert_eq!(y, same, "duplication keeps the function");
    let mut probe = SelfLabelled { model: model.clone(), x, y };
    assert_eq!(probe.accuracy_without(&[]), 1.0);

    let mut pruned = model.clone();
    let mut sbpf = Sbpf::new(0, 0.5, 600, 1);
    sbpf.calibrate_loss(&mut pruned, &mut LossCalibration { gradients: None, probe: &mut probe });
    let (s, p) = (sbpf.sensitivities.clone(), sbpf.ratios.clone());
    assert!(s[0] < s[1], "duplicated layer sensitivity {} vs {}", s[0], s[1]);
    assert!(p[0] > p[1], "duplicated layer ratio {} vs {}", p[0], p[1]);
    // The budget in units: 20 + 10 units, half of them.
    assert!((20.0 * p[0] + 10.0 * p[1] - 15.0).abs() < 1e-9, "{p:?}");

    sbpf.apply_masks(&mut pruned, 0);
    let groups = pruned.unit_groups();
    let l1 = pruners::units::l1_scores(&model);
    for (g, group) in groups.iter().enumerate() {
        let m = host(pruned.prunable_layers()[group.members[0].layer].1.mask.clone().unwrap());
        let cols = pruned.prunable_layers()[group.members[0].layer].1.dims()[1];
        let removed: Vec<usize> = (0..group.count).filter(|&u| (0..cols).all(|j| m[u * cols + j] == 0.0)).collect();
        assert_eq!(removed.len(), (p[g] * group.count as f64).round() as usize, "group {g}");
        // Lowest L1 first.
        let worst_kept = (0..group.count).filter(|u| !removed.contains(u)).map(|u| l1[g][u]).fold(f32::INFINITY, f32::min);
        assert!(removed.iter().all(|&u| l1[g][u] <= worst_kept), "group {g}");
    }
}
