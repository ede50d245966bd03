//! The movement scores are trained by the loop's optimizer with their own learning rate.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use models::{BertConfig, BertForSequenceClassification, PrunableModel};
use pruners::{CubicSchedule, Pruner, Scope};
use trainer::{loss::cross_entropy, optim};

#[test]
fn scores_take_an_adamw_step_with_their_own_learning_rate() {
    #[allow(deprecated)]
    let device = Device::ndarray();
    device.seed(3);
    let mut model = BertForSequenceClassification::new(&BertConfig::tiny(20), 2, &device);
    let sched = CubicSchedule { initial_density: 1.0, final_density: 0.5, warmup_steps: 0, cooldown_steps: 0, total_steps: 4 };
    let mut pruner = pruners::methods::movement::Movement::new(sched, Scope::PerMatrix, 1e-2);
    pruner.init(&mut model);
    let mut model = model.train();
    let groups = pruner.param_groups();
    let mut opt = optim::adamw(0.01, None, &groups);
    let mut lrs = optim::lr_schedule(1e-4, 0, 4, &groups);
    let ad = device.clone().autodiff();
    let ids = Tensor::<2, Int>::from_data(TensorData::new((0..24).map(|i| (i % 19) as i64 + 1).collect::<Vec<_>>(), [4, 6]), &ad);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 0, 1], [4]), &ad);
    pruner.apply_masks(&mut model, 0);
    let logits = model.forward(ids.clone(), ids.zeros_like(), ids.ones_like());
    let grads = GradientsParams::from_grads(cross_entropy(logits, labels).backward(), &model);
    // Expected first AdamW step: lr · m̂/(√v̂ + ε) = 1e-2 · g/(|g| + 1e-8), no weight decay.
    let expected: Vec<(String, Vec<f32>)> = model
        .prunable_layers()
        .into_iter()
        .map(|(name, l)| {
            let id = l.mask_scores.as_ref().unwrap().id;
            let g: Vec<f32> = grads.get::<2>(id).expect("scores have a gradient").to_data().try_to_vec().unwrap();
            (name, g.iter().map(|g| -1e-2 * g / (g.abs() + 1e-8)).collect())
        })
        .collect();
    let model = opt.step(lrs.step(), model, grads);
    for ((name, layer), (_, want)) in model.prunable_layers().into_iter().zip(expected) {
        let got: Vec<f32> = layer.mask_scores.as_ref().unwrap().val().to_data().try_to_vec().unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-6 + 1e-3 * w.abs(), "{name}[{i}]: score {g}, expected {w}");
        }
    }
}
