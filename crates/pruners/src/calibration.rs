//! What the loop measures for data-driven methods, besides the unit activations and input
//! statistics of [`models::UnitActivations`]: gradients of the task loss accumulated over
//! calibration batches (Taylor / connection sensitivity, gradient flow, SBPF-style sensitivity),
//! and a probe that returns the loss of the calibration examples with some units removed
//! (C-SWAP, LD-Pruner-style removal tests). A method asks through
//! [`crate::Pruner::loss_request`]; methods that do not ask cost nothing.

use burn::tensor::Tensor;

/// What a method asks the loop for before a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossRequest {
    /// Training examples (the first ones, in batches of the training batch size).
    pub examples: usize,
    /// Accumulate the gradients of every prunable weight.
    pub gradients: bool,
}

/// Gradients of the task loss (cross-entropy) with respect to every prunable weight, in
/// `prunable_layers()` order, on calibration batches, with the masks in force as the previous
/// step left them (the weight's gradient is then `∂L/∂(W⊙M) ⊙ M`: 0 where pruned) and the
/// model in training mode (dropout as in training).
#[derive(Debug, Clone)]
pub struct AccumulatedGradients {
    /// `Σ_b g_b`, where `g_b` is the gradient of batch `b`'s mean loss.
    pub sum: Vec<Tensor<2>>,
    /// `Σ_b g_b²`, elementwise (an empirical Fisher diagonal over batches).
    pub sum_sq: Vec<Tensor<2>>,
    pub batches: usize,
    pub examples: usize,
}

impl AccumulatedGradients {
    /// Adds one batch's gradients (`None` where a matrix got none: zeros).
    pub fn add(&mut self, grads: Vec<Tensor<2>>, examples: usize) {
        if self.sum.is_empty() {
            self.sum_sq = grads.iter().map(|g| g.clone().square()).collect();
            self.sum = grads;
        } else {
            for (i, g) in grads.into_iter().enumerate() {
                self.sum_sq[i] = self.sum_sq[i].clone() + g.clone().square();
                self.sum[i] = self.sum[i].clone() + g;
            }
        }
        self.batches += 1;
        self.examples += examples;
    }

    pub fn empty() -> Self {
        Self { sum: Vec::new(), sum_sq: Vec::new(), batches: 0, examples: 0 }
    }

    /// The mean gradient of matrix `m` over the batches.
    pub fn mean(&self, m: usize) -> Tensor<2> {
        self.sum[m].clone() / self.batches.max(1) as f64
    }
}

/// The loss of the calibration examples under a removal, computed by the loop on its own model
/// type; units are named by (index in `unit_groups()`, unit index).
pub trait LossProbe {
    /// How many examples each call evaluates.
    fn examples(&self) -> usize;
    /// Mean cross-entropy of the calibration examples (evaluation mode, masks in force) with
    /// the units `removed` taken out: their rows and columns zeroed in every matrix of their
    /// group. `&[]` gives the loss as the model stands.
    fn loss_without(&mut self, removed: &[(usize, usize)]) -> f64;
    /// The fraction of the calibration examples classified correctly under the same removal
    /// (SBPF's injected damage, adaptive policies with an accuracy target).
    fn accuracy_without(&mut self, removed: &[(usize, usize)]) -> f64;
}

/// What a method receives for its [`LossRequest`].
pub struct LossCalibration<'a> {
    /// Present when the request asked for them.
    pub gradients: Option<AccumulatedGradients>,
    pub probe: &'a mut dyn LossProbe,
}
