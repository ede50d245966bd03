//! What the training loop needs from a model family and its data. The loop
//! ([`crate::train_loop`]) is written once against [`Task`]; [`crate::text_task`] (BERT on
//! tokenised text) and [`crate::tabular_task`] (an MLP on encoded tables) implement it.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use models::{PrunableModel, UnitActivations};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
    Test,
}

/// A structured model cut down to its kept units.
pub struct Compacted<M> {
    pub model: M,
    /// What was kept (heads and widths per layer, parameters before and after), for the summary.
    pub report: serde_json::Value,
    /// The smaller model's configuration, as [`Task::save`] writes it.
    pub config: serde_json::Value,
}

pub trait Task {
    type Model: Module + PrunableModel + Clone + Send + std::fmt::Debug + 'static;

    /// Where the data came from, for logs and reports.
    fn data_source(&self) -> String;
    fn label_names(&self) -> &[String];
    fn len(&self, split: Split) -> usize;
    /// Class index of example `i` (`None`: unlabelled).
    fn label(&self, split: Split, i: usize) -> Option<usize>;
    /// Whether every example of `split` has a label.
    fn labelled(&self, split: Split) -> bool {
        (0..self.len(split)).all(|i| self.label(split, i).is_some())
    }
    /// Logits `[idx.len(), classes]` for examples `idx` of `split`, and their labels (0 where
    /// unlabelled), on `device`.
    fn forward(&self, model: &Self::Model, split: Split, idx: &[usize], device: &Device) -> (Tensor<2>, Tensor<1, Int>);
    /// As [`Task::forward`], with the classifier's input `[idx.len(), d]` (the model's output
    /// representation) first.
    fn forward_features(&self, model: &Self::Model, split: Split, idx: &[usize], device: &Device) -> (Tensor<2>, Tensor<2>, Tensor<1, Int>);
    /// The length of example `i` of `split` in tokens (what `train.group_by_length` groups by);
    /// 1 for data of fixed size.
    fn length(&self, _split: Split, _i: usize) -> usize {
        1
    }
    /// The activations of every structural unit on training examples `idx` (calibration).
    fn unit_activations(&self, model: &Self::Model, idx: &[usize], device: &Device) -> UnitActivations;
    /// Subgroup attributes of `split`: (attribute name, each example's value).
    fn groups(&self, split: Split) -> Vec<(String, &[String])>;
    /// Groups smaller than this are reported but left out of the best-to-worst gaps.
    fn min_group_size(&self) -> usize {
        1
    }
    /// Another model of this family (a distillation teacher) with this task's labels, no
    /// autodiff; errors name `key`.
    fn load_other(&self, source: &str, key: &str, device: &Device) -> Result<Self::Model, String>;
    /// Removes the units a structured run pruned: a smaller model with the same outputs.
    fn compact(&self, model: &Self::Model) -> Compacted<Self::Model>;
    /// Saves a model (masks folded in; compacted or not) as a checkpoint directory that
    /// `model.source` accepts.
    /// `compacted`: the configuration from [`Task::compact`] when `model` is the compacted one.
    fn save(&self, model: &Self::Model, compacted: Option<&serde_json::Value>, out: &Path) -> Result<(), String>;
}
