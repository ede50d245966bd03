//! The loop's data-driven hooks on a real task (the tiny BERT on the GLUE-style fixture):
//! gradients accumulated over calibration batches are the sum of each batch's own gradients and
//! exactly 0 where a mask is in force; the removal probe gives the loss as it stands for no
//! removal, and for a removed head and neurons the loss of the model with those units
//! physically cut out (compacted).

mod common;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use common::{experiment, tmp, write_checkpoint, write_tsvs};
use models::PrunableModel;
use pruners::calibration::LossProbe;
use trainer::calibrate::{accumulate_gradients, TaskProbe};
use trainer::loss::cross_entropy;
use trainer::task::{Split, Task};
use trainer::text_task::TextTask;

#[allow(deprecated)]
fn cpu() -> Device {
    Device::ndarray()
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn task(name: &str) -> (TextTask, models::BertForSequenceClassification) {
    let (ckpt, data) = (tmp(&format!("{name}-ckpt")), tmp(&format!("{name}-data")));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    let exp = experiment(&ckpt, &data, &tmp(&format!("{name}-out")), "none");
    TextTask::load(&exp, &cpu()).unwrap()
}

#[test]
fn accumulated_gradients_sum_each_batchs_own_and_are_zero_where_masked() {
    let (task, model) = task("hooks-grad");
    let mut model = model.train();
    // The first matrix (layer 0's query) loses its even input columns.
    let dims = model.prunable_layers()[0].1.dims();
    let keep: Vec<f32> = (0..dims[0] * dims[1]).map(|i| (i % dims[1] % 2) as f32).collect();
    let train = cpu().autodiff();
    model.prunable_layers_mut()[0].1.mask = Some(Tensor::from_data(TensorData::new(keep.clone(), dims), &train));
    let idx: Vec<usize> = (0..10).collect();
    let acc = accumulate_gradients(&task, &model, &idx, 4, &train);
    assert_eq!((acc.batches, acc.examples, acc.sum.len()), (3, 10, model.prunable_layers().len()));
    // By hand: batches of 4, 4 and 2, each its own backward pass.
    let n = model.prunable_layers().len();
    let (mut sum, mut sum_sq) = (vec![Vec::<f32>::new(); n], vec![Vec::<f32>::new(); n]);
    for chunk in idx.chunks(4) {
        let (logits, labels) = task.forward(&model, Split::Train, chunk, &train);
        let grads = cross_entropy(logits, labels).backward();
        for (m, (_, l)) in model.prunable_layers().iter().enumerate() {
            let g = host(l.weight.val().grad(&grads).unwrap());
            if sum[m].is_empty() {
                sum[m] = vec![0.0; g.len()];
                sum_sq[m] = vec![0.0; g.len()];
            }
            for (k, v) in g.iter().enumerate() {
                sum[m][k] += v;
                sum_sq[m][k] += v * v;
            }
        }
    }
    for m in 0..n {
        let (got, got_sq) = (host(acc.sum[m].clone()), host(acc.sum_sq[m].clone()));
        assert!(max_diff(&got, &sum[m]) < 1e-6, "matrix {m}: Σg differs by {}", max_diff(&got, &sum[m]));
        assert!(max_diff(&got_sq, &sum_sq[m]) < 1e-6, "matrix {m}: Σg² differs");
        assert!(got.iter().any(|&v| v != 0.0), "matrix {m} has a gradient");
    }
    let g0 = host(acc.sum[0].clone());
    assert!(g0.iter().zip(&keep).all(|(g, k)| *k == 1.0 || *g == 0.0), "masked weights get exactly 0");
    assert!(g0.iter().zip(&keep).any(|(g, k)| *k == 1.0 && *g != 0.0));
    // The mean is the sum over the batches.
    assert!(max_diff(&host(acc.mean(3)), &sum[3].iter().map(|v| v / 3.0).collect::<Vec<_>>()) < 1e-7);
}

#[test]
fn the_probe_gives_the_loss_as_it_stands_and_with_units_physically_removed() {
    let (task, mut model) = task("hooks-probe");
    // The random head's logits are ~1e-3 (weights ~ N(0, 0.02²)): scaled up, so that a removed
    // unit moves the loss by far more than the tolerances below.
    model.classifier.weight = model.classifier.weight.clone().map(|w| w * 2000.0);
    let idx: Vec<usize> = (0..12).collect();
    let loss_of = |m: &models::BertForSequenceClassification| {
        let (logits, labels) = task.forward(m, Split::Train, &idx, &cpu());
        cross_entropy(logits, labels).into_scalar::<f32>() as f64
    };
    let mut probe = TaskProbe { task: &task, model: model.clone(), idx: idx.clone(), batch: 5, device: cpu(), train_model: model.clone().train(), train_device: cpu().autodiff() };
    assert_eq!(probe.examples(), 12);
    let as_is = probe.loss_without(&[]);
    assert!((as_is - loss_of(&model)).abs() < 1e-6, "{as_is} vs {}", loss_of(&model));
    // Group 0 = layer 0's heads, group 3 = layer 1's FFN neurons (the tiny BERT's declaration).
    let groups = model.unit_groups();
    assert_eq!((groups[0].kind, groups[3].kind, groups[3].depth), (models::UnitKind::Head, models::UnitKind::Neuron, 1));
    let removed = [(0, 1), (3, 0), (3, 5), (3, 6)];
    let probed = probe.loss_without(&removed);
    assert!((probed - as_is).abs() > 1e-3, "removing units changes the loss: {probed} vs {as_is}");
    // The same units cut out of the model: fold the masks, compact, evaluate.
    let mut cut = model.clone();
    pruners::units::remove_units(&mut cut, &removed);
    pruners::mask::fold_masks(&mut cut);
    let small = task.compact(&cut);
    let heads = &small.report["heads"];
    assert_eq!(small.model.bert.encoder.layer[0].attention.self_.num_heads, 3, "one head of layer 0 is gone: {heads}");
    assert_eq!(small.model.bert.encoder.layer[1].intermediate.dense.dims()[0], 32 - 3, "three neurons of layer 1 are gone");
    let physical = loss_of(&small.model);
    assert!((probed - physical).abs() < 1e-5, "probe {probed} vs compacted model {physical}");
    // The probe leaves its model as it was.
    assert!((probe.loss_without(&[]) - as_is).abs() < 1e-9);
}
