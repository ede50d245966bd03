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
    /// Per-example outputs of the calibration examples under the same removal (evaluation
    /// mode): the logits, the classifier's input (the model's output representation), and the
    /// labels — for methods that test a removal example by example (C-SWAP) or compare the
    /// output distribution (LD-Pruner).
    fn outputs_without(&mut self, removed: &[(usize, usize)]) -> ProbeOutputs;
    /// The mean gradient of the calibration loss with respect to every prunable weight, in
    /// `prunable_layers()` order, at the weights `W + shift[m]` (`shift` empty: at `W`), masks
    /// in force. Deterministic: every call draws the same dropout masks, so that differences of
    /// gradients are differences of one function (finite-difference Hessian-vector products).
    fn gradients_at(&mut self, shift: &[Tensor<2>]) -> Vec<Tensor<2>>;
}

/// What [`LossProbe::outputs_without`] returns; rows are calibration examples.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutputs {
    /// `[examples, classes]`, row-major.
    pub logits: Vec<f32>,
    pub classes: usize,
    /// The classifier's input, `[examples, dim]`, row-major.
    pub features: Vec<f32>,
    pub dim: usize,
    pub labels: Vec<usize>,
}

impl ProbeOutputs {
    /// The softmax probability of each example's true class.
    pub fn true_class_probs(&self) -> Vec<f64> {
        self.logits
            .chunks(self.classes.max(1))
            .zip(&self.labels)
            .map(|(row, &y)| {
                let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let z: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
                (row[y] as f64 - m).exp() / z
            })
            .collect()
    }

    /// Whether each example's arg-max class is its label.
    pub fn correct(&self) -> Vec<bool> {
        self.logits
            .chunks(self.classes.max(1))
            .zip(&self.labels)
            .map(|(row, &y)| (0..row.len()).fold(0, |best, c| if row[c] > row[best] { c } else { best }) == y)
            .collect()
    }
}

/// The Hessian-vector product `H·v` of the calibration loss (the block of the prunable
/// weights) by a central finite difference of gradients:
/// `(∇L(W + εv) − ∇L(W − εv)) / 2ε`, with `ε = rel·‖W‖/‖v‖` (a shift of `rel` of the weights'
/// norm). burn 0.22's autodiff has no double backward, so this is how Hg is computed; its
/// error is O(ε²) for a smooth loss (checked against the exact product in the tests).
pub fn hessian_vector_product(probe: &mut dyn LossProbe, weights: &[Tensor<2>], v: &[Tensor<2>], rel: f64) -> Vec<Tensor<2>> {
    let norm = |ts: &[Tensor<2>]| ts.iter().map(|t| t.clone().square().sum().into_scalar::<f32>() as f64).sum::<f64>().sqrt();
    let (wn, vn) = (norm(weights), norm(v));
    if vn == 0.0 {
        return v.iter().map(|t| t.zeros_like()).collect();
    }
    let eps = rel * wn.max(1e-12) / vn;
    let plus: Vec<Tensor<2>> = v.iter().map(|t| t.clone() * eps).collect();
    let minus: Vec<Tensor<2>> = v.iter().map(|t| t.clone() * -eps).collect();
    let gp = probe.gradients_at(&plus);
    let gm = probe.gradients_at(&minus);
    gp.into_iter().zip(gm).map(|(a, b)| (a - b) / (2.0 * eps)).collect()
}

/// What a method receives for its [`LossRequest`].
pub struct LossCalibration<'a> {
    /// Present when the request asked for them.
    pub gradients: Option<AccumulatedGradients>,
    pub probe: &'a mut dyn LossProbe,
}
