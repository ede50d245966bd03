//! The ConvNet's filters as units: the groups it declares, and compaction that removes masked
//! filters (rows, BatchNorm entries, the readers' columns) and computes the same outputs, for
//! the plain CNN and the small ResNet (coupled channels); parameter and MAC counts.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use models::cnn::{compact, Cnn, CnnConfig};
use models::{Axis, PrunableModel};

fn config(residual: bool, batch_norm: bool) -> CnnConfig {
    CnnConfig {
        in_channels: 2,
        image_size: 8,
        channels: vec![5, 6],
        inner_channels: if residual { vec![4, 3] } else { vec![] },
        kernel_size: 3,
        batch_norm,
        residual,
        hidden: 7,
        num_classes: 3,
        dropout: 0.0,
    }
}

fn images(n: usize, device: &Device) -> Tensor<4> {
    let v: Vec<f32> = (0..n * 2 * 64).map(|i| ((i as f32) * 0.37).sin() + 0.2 * ((i as f32) * 0.11).cos()).collect();
    Tensor::from_data(TensorData::new(v, [n, 2, 8, 8]), device)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

/// Masks that remove `removed[g]` units of each group (every slice they own).
fn remove(model: &mut Cnn, removed: &[Vec<usize>]) {
    let groups = model.unit_groups();
    let dims: Vec<[usize; 2]> = model.prunable_layers().iter().map(|(_, l)| l.dims()).collect();
    let mut masks: Vec<Vec<f32>> = dims.iter().map(|[r, c]| vec![1.0; r * c]).collect();
    for (g, units) in groups.iter().zip(removed) {
        for &u in units {
            for m in &g.members {
                let [r, c] = dims[m.layer];
                for k in u * m.width..(u + 1) * m.width {
                    match m.axis {
                        Axis::Rows => (0..c).for_each(|j| masks[m.layer][k * c + j] = 0.0),
                        Axis::Cols => (0..r).for_each(|i| masks[m.layer][i * c + k] = 0.0),
                    }
                }
            }
        }
    }
    for ((_, layer), (mask, d)) in model.prunable_layers_mut().into_iter().zip(masks.into_iter().zip(dims)) {
        let device = layer.weight.val().device();
        layer.mask = Some(Tensor::from_data(TensorData::new(mask, d), &device));
    }
}

/// Gives every BatchNorm non-trivial running statistics and affine parameters.
fn perturb_batch_norms(model: &mut Cnn) {
    for (i, conv) in model.convs.iter_mut().enumerate() {
        if let Some(bn) = &mut conv.bn {
            let o = bn.gamma.val().dims()[0];
            let d = bn.gamma.val().device();
            let t = |f: &dyn Fn(usize) -> f32| Tensor::<1>::from_data(TensorData::new((0..o).map(f).collect::<Vec<f32>>(), [o]), &d);
            bn.gamma = burn::module::Param::from_tensor(t(&|j| 0.5 + 0.1 * ((i + j) % 5) as f32));
            bn.beta = burn::module::Param::from_tensor(t(&|j| 0.05 * j as f32 - 0.1));
            bn.running_mean = burn::module::RunningState::new(t(&|j| 0.02 * j as f32));
            bn.running_var = burn::module::RunningState::new(t(&|j| 0.8 + 0.1 * j as f32));
        }
    }
}

#[test]
fn the_cnn_declares_filters_and_their_readers() {
    let device = Device::flex();
    let plain = Cnn::new(&config(false, true), 1, &device);
    let g = plain.unit_groups();
    assert_eq!(g.len(), 3, "two stages of filters and the hidden neurons");
    assert_eq!((g[0].count, g[0].members.clone()), (5, vec![models::Member::rows(0, 1), models::Member::cols(1, 9)]));
    // The last stage feeds the flattened head: each filter owns its 2x2 map's 4 columns.
    assert_eq!((g[1].count, g[1].members.clone()), (6, vec![models::Member::rows(1, 1), models::Member::cols(2, 4)]));
    assert_eq!(g[2].members, vec![models::Member::rows(2, 1), models::Member::cols(3, 1)]);
    let res = Cnn::new(&config(true, true), 1, &device);
    let g = res.unit_groups();
    assert_eq!(g.len(), 5);
    // The stage's channels are coupled through the identity: rows of the stage conv and of the
    // block's second conv, columns of the block's first conv and of the next stage.
    assert_eq!(
        g[0].members,
        vec![models::Member::rows(0, 1), models::Member::rows(2, 1), models::Member::cols(1, 9), models::Member::cols(3, 9)]
    );
    assert_eq!(g[1].members, vec![models::Member::rows(1, 1), models::Member::cols(2, 9)]);
    assert_eq!((g[1].count, g[3].count), (4, 3));
}

/// burn's `num_params` also counts BatchNorm's running mean and variance; the config's count is
/// of trainable parameters.
fn running_stats(m: &Cnn) -> usize {
    m.convs.iter().filter_map(|c| c.bn.as_ref()).map(|bn| 2 * bn.gamma.val().dims()[0]).sum()
}

#[test]
fn parameter_and_mac_counts_match_the_model() {
    for (residual, bn) in [(false, true), (true, true), (false, false)] {
        let c = config(residual, bn);
        let m = Cnn::new(&c, 3, &Device::flex());
        assert_eq!(c.num_params() + running_stats(&m), m.num_params(), "residual {residual}, batch norm {bn}");
    }
    let d = CnnConfig::digit_recognizer();
    // conv 1→32, 32→64, 64→128 (3x3) and FC 1152→256→10, as the PyTorch model has.
    assert_eq!(d.num_params(), (32 * 9 + 32) + (64 * 32 * 9 + 64) + (128 * 64 * 9 + 128) + (1152 * 256 + 256) + (256 * 10 + 10));
    assert_eq!(d.macs(), 28 * 28 * 32 * 9 + 14 * 14 * 64 * 32 * 9 + 7 * 7 * 128 * 64 * 9 + 1152 * 256 + 256 * 10);
}

#[test]
fn compaction_removes_masked_filters_and_keeps_the_outputs() {
    let device = Device::flex();
    for residual in [false, true] {
        let c = config(residual, true);
        let mut model = Cnn::new(&c, 11, &device);
        perturb_batch_norms(&mut model);
        let removed: Vec<Vec<usize>> =
            if residual { vec![vec![1, 4], vec![0], vec![2, 3, 5], vec![1, 2], vec![0, 6]] } else { vec![vec![0, 3], vec![5], vec![1, 2, 6]] };
        remove(&mut model, &removed);
        let x = images(4, &device);
        let masked = to_vec(model.forward(x.clone()));
        let (small, report) = compact(&model, 8);
        let out = to_vec(small.forward(x));
        let worst = masked.iter().zip(&out).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "residual {residual}: compacted outputs differ by {worst}");
        let kept: Vec<usize> = report.kept.iter().map(|k| k.1).collect();
        let want: Vec<usize> = model.unit_groups().iter().zip(&removed).map(|(g, r)| g.count - r.len()).collect();
        assert_eq!(kept, want, "residual {residual}");
        let sc = small.config(8, 0.0);
        assert_eq!(report.params_after, sc.num_params());
        assert_eq!(small.num_params(), sc.num_params() + running_stats(&small), "physically smaller");
        assert!(report.params_after < report.params_before && report.macs_after < report.macs_before);
        if residual {
            assert_eq!((sc.channels.clone(), sc.inner_channels.clone()), (vec![3, 3], vec![3, 1]));
        } else {
            assert_eq!((sc.channels.clone(), sc.hidden), (vec![3, 5], 4));
        }
        assert!(small.convs.iter().all(|cv| cv.linear.mask.is_none()));
    }
}
