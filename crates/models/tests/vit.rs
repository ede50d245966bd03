//! The ViT: BERT's encoder blocks behind a patch embedding. Its heads and neurons are BERT's
//! unit groups, and compaction after removing some of them gives the same logits with fewer
//! parameters; the compacted configuration rebuilds the same shapes.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use models::vit::{compact, Vit, VitConfig};
use models::{Axis, PrunableModel, UnitKind};

fn config() -> VitConfig {
    serde_json::from_value(serde_json::json!({
        "image_size": 8, "in_channels": 1, "patch_size": 4, "hidden_size": 16, "num_layers": 2,
        "num_heads": 4, "intermediate_size": 12, "num_classes": 3
    }))
    .unwrap()
}

fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

#[test]
fn the_vit_prunes_and_compacts_like_bert() {
    let device = Device::flex();
    let c = config();
    let mut model = Vit::new(&c, 4, &device);
    let groups = model.unit_groups();
    assert_eq!(groups.len(), 4);
    assert_eq!((groups[0].kind, groups[0].count, groups[0].width), (UnitKind::Head, 4, 4));
    assert_eq!((groups[1].kind, groups[1].count), (UnitKind::Neuron, 12));
    assert_eq!(model.prunable_layers().len(), 12);
    // 4 patches + CLS, each matrix used once per token.
    assert_eq!(model.uses_per_example(), vec![5; 12]);

    // Remove head 1 of layer 0, heads 0 and 3 of layer 1, and some neurons.
    let removed = [(0usize, vec![1usize]), (1, vec![0, 2, 5, 7]), (2, vec![0, 3]), (3, vec![11])];
    let dims: Vec<[usize; 2]> = model.prunable_layers().iter().map(|(_, l)| l.dims()).collect();
    let mut masks: Vec<Vec<f32>> = dims.iter().map(|[r, c]| vec![1.0; r * c]).collect();
    for (g, units) in &removed {
        for &u in units {
            for m in &groups[*g].members {
                let [r, cc] = dims[m.layer];
                for k in u * m.width..(u + 1) * m.width {
                    match m.axis {
                        Axis::Rows => (0..cc).for_each(|j| masks[m.layer][k * cc + j] = 0.0),
                        Axis::Cols => (0..r).for_each(|i| masks[m.layer][i * cc + k] = 0.0),
                    }
                }
            }
        }
    }
    for ((_, l), (m, d)) in model.prunable_layers_mut().into_iter().zip(masks.into_iter().zip(dims)) {
        l.mask = Some(Tensor::from_data(TensorData::new(m, d), &device));
    }
    let x = Tensor::<4>::from_data(TensorData::new((0..3 * 64).map(|i| ((i as f32) * 0.31).sin()).collect::<Vec<f32>>(), [3, 1, 8, 8]), &device);
    let before = to_vec(model.forward(x.clone()));
    let (small, sc, report) = compact(&model, &c);
    let after = to_vec(small.forward(x.clone()));
    let worst = before.iter().zip(&after).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "compacted logits differ by {worst}");
    assert_eq!(report.heads, vec![vec![0, 2, 3], vec![1, 2]]);
    assert_eq!(report.ffn_widths, vec![8, 11]);
    assert!(report.params_after < report.params_before);
    assert_eq!(small.num_params(), report.params_after);
    // The configuration rebuilds the compacted shapes (what a saved run loads).
    let rebuilt = Vit::new(&sc, 0, &device);
    assert_eq!(rebuilt.num_params(), small.num_params());
    assert_eq!(sc.pruned_heads.get("1"), Some(&vec![0, 3]));
}
