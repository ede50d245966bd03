//! The loop's side of the data-driven hooks (`pruners::calibration`): gradients accumulated over
//! calibration batches, and the loss of the calibration examples with units removed, both
//! computed on the task's own model type so that no method needs to know it.

use crate::loss::cross_entropy;
use crate::task::{Split, Task};
use burn::tensor::{Device, Tensor};
use models::PrunableModel;
use burn::tensor::Int;
use pruners::calibration::{AccumulatedGradients, LossProbe, ProbeOutputs};

/// The gradients of the cross-entropy with respect to every prunable weight on training
/// examples `idx`, in batches of `batch`, on `model` as it stands (masks in force, training
/// mode). `device` is the training (autodiff) device.
pub fn accumulate_gradients<T: Task>(task: &T, model: &T::Model, idx: &[usize], batch: usize, device: &Device) -> AccumulatedGradients {
    let mut acc = AccumulatedGradients::empty();
    for chunk in idx.chunks(batch.max(1)) {
        let (logits, labels) = task.forward(model, Split::Train, chunk, device);
        let grads = cross_entropy(logits, labels).backward();
        acc.add(weight_grads(model, &grads), chunk.len());
    }
    acc
}

/// The gradient of every prunable weight in `grads` (zeros where a matrix got none), in
/// `prunable_layers()` order.
fn weight_grads(model: &dyn PrunableModel, grads: &burn::tensor::Gradients) -> Vec<Tensor<2>> {
    model
        .prunable_layers()
        .iter()
        .map(|(_, l)| {
            let w = l.weight.val();
            w.grad(grads).unwrap_or_else(|| Tensor::zeros(w.dims(), &w.device().inner()))
        })
        .collect()
}

/// [`LossProbe`] over training examples `idx` of `task`, on an evaluation copy of the model.
pub struct TaskProbe<'a, T: Task> {
    pub task: &'a T,
    /// Evaluation mode, masks in force.
    pub model: T::Model,
    pub idx: Vec<usize>,
    pub batch: usize,
    pub device: Device,
    /// The training model (autodiff, training mode, masks in force) and its device, for
    /// [`LossProbe::gradients_at`].
    pub train_model: T::Model,
    pub train_device: Device,
}

/// The seed of the dropout masks every [`LossProbe::gradients_at`] call draws for chunk `c`.
fn probe_seed(c: usize) -> u64 {
    0x6772_6164_5f61_7400 + c as u64
}

fn rows(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 after convert")
}

fn ints(t: Tensor<1, Int>) -> Vec<usize> {
    t.into_data().convert::<i64>().try_into_vec::<i64>().expect("i64 after convert").into_iter().map(|v| v as usize).collect()
}

impl<T: Task> LossProbe for TaskProbe<'_, T> {
    fn examples(&self) -> usize {
        self.idx.len()
    }

    fn loss_without(&mut self, removed: &[(usize, usize)]) -> f64 {
        let mut m = self.model.clone();
        pruners::units::remove_units(&mut m, removed);
        let mut total = 0.0;
        for chunk in self.idx.chunks(self.batch.max(1)) {
            let (logits, labels) = self.task.forward(&m, Split::Train, chunk, &self.device);
            total += cross_entropy(logits, labels).into_scalar::<f32>() as f64 * chunk.len() as f64;
        }
        total / self.idx.len().max(1) as f64
    }

    fn accuracy_without(&mut self, removed: &[(usize, usize)]) -> f64 {
        let mut m = self.model.clone();
        pruners::units::remove_units(&mut m, removed);
        let mut correct = 0usize;
        for chunk in self.idx.chunks(self.batch.max(1)) {
            let (logits, labels) = self.task.forward(&m, Split::Train, chunk, &self.device);
            let [n, _] = logits.dims();
            correct += logits.argmax(1).reshape([n]).equal(labels).int().sum().into_scalar::<i64>() as usize;
        }
        correct as f64 / self.idx.len().max(1) as f64
    }

    fn outputs_without(&mut self, removed: &[(usize, usize)]) -> ProbeOutputs {
        let mut m = self.model.clone();
        pruners::units::remove_units(&mut m, removed);
        let mut out = ProbeOutputs { logits: Vec::new(), classes: 0, features: Vec::new(), dim: 0, labels: Vec::new() };
        for chunk in self.idx.chunks(self.batch.max(1)) {
            let (f, l, y) = self.task.forward_features(&m, Split::Train, chunk, &self.device);
            (out.dim, out.classes) = (f.dims()[1], l.dims()[1]);
            out.features.extend(rows(f));
            out.logits.extend(rows(l));
            out.labels.extend(ints(y));
        }
        out
    }

    fn gradients_at(&mut self, shift: &[Tensor<2>]) -> Vec<Tensor<2>> {
        let mut m = self.train_model.clone();
        if !shift.is_empty() {
            for ((_, l), s) in m.prunable_layers_mut().into_iter().zip(shift) {
                let s = Tensor::<2>::from_data(s.to_data(), &self.train_device);
                l.weight = l.weight.clone().map(|w| (w + s).detach().require_grad());
            }
        }
        let n = self.idx.len().max(1) as f64;
        let mut sum: Vec<Tensor<2>> = Vec::new();
        for (c, chunk) in self.idx.chunks(self.batch.max(1)).enumerate() {
            // The same dropout masks at every call.
            self.train_device.seed(probe_seed(c));
            self.device.seed(probe_seed(c));
            let (logits, labels) = self.task.forward(&m, Split::Train, chunk, &self.train_device);
            let grads = (cross_entropy(logits, labels) * (chunk.len() as f64 / n)).backward();
            let g = weight_grads(&m, &grads);
            sum = if sum.is_empty() { g } else { sum.into_iter().zip(g).map(|(a, b)| a + b).collect() };
        }
        sum
    }
}
