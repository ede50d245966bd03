//! The loop's side of the data-driven hooks (`pruners::calibration`): gradients accumulated over
//! calibration batches, and the loss of the calibration examples with units removed, both
//! computed on the task's own model type so that no method needs to know it.

use crate::loss::cross_entropy;
use crate::task::{Split, Task};
use burn::tensor::{Device, Tensor};
use models::PrunableModel;
use pruners::calibration::{AccumulatedGradients, LossProbe};

/// The gradients of the cross-entropy with respect to every prunable weight on training
/// examples `idx`, in batches of `batch`, on `model` as it stands (masks in force, training
/// mode). `device` is the training (autodiff) device.
pub fn accumulate_gradients<T: Task>(task: &T, model: &T::Model, idx: &[usize], batch: usize, device: &Device) -> AccumulatedGradients {
    let mut acc = AccumulatedGradients::empty();
    for chunk in idx.chunks(batch.max(1)) {
        let (logits, labels) = task.forward(model, Split::Train, chunk, device);
        let grads = cross_entropy(logits, labels).backward();
        let per_matrix: Vec<Tensor<2>> = model
            .prunable_layers()
            .iter()
            .map(|(_, l)| {
                let w = l.weight.val();
                w.grad(&grads).unwrap_or_else(|| Tensor::zeros(w.dims(), &w.device().inner()))
            })
            .collect();
        acc.add(per_matrix, chunk.len());
    }
    acc
}

/// [`LossProbe`] over training examples `idx` of `task`, on an evaluation copy of the model.
pub struct TaskProbe<'a, T: Task> {
    pub task: &'a T,
    /// Evaluation mode, masks in force.
    pub model: T::Model,
    pub idx: Vec<usize>,
    pub batch: usize,
    pub device: Device,
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
}
