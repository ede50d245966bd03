//! Bias compensation for hard masks that change during training (`pruning.compensate_bias`;
//! ours, not in any of the papers' methods; issue 25).
//!
//! When a mask removes weight `W_ij` of a layer `a = (W ⊙ M)·x + b`, the layer's output loses
//! `W_ij·x_j` on every input. Its mean over the data, `W_ij·μ_j`, can be kept by adding it to the
//! bias: `b_i += Σ_j W_ij·(M_prev − M_new)_ij·μ_j` (a weight that comes back takes its share
//! out again). What the removal then takes away is only the part that varies from token to
//! token. `μ_j` is the mean of input feature `j` over calibration tokens (the loop's input
//! statistics, padding excluded), measured at the start of the ramp and again every `every`
//! steps while the masks change. One-shot STADE folds the same mean at its single removal.
//!
//! Why movement needs it: its scores accumulate `−Σ_t W·∂L/∂W`, so the weights it removes
//! first from a row are those whose contributions share one sign on the data, and they add up
//! instead of cancelling. `scripts/movement_removal_shift.py` measured on SST-2 after 100
//! dense steps: removing 5% of each matrix by movement score takes away 10–29% of the layers'
//! output energy (a random 5%: 1–5%); about 40% of it is the same shift on every token.

use burn::tensor::{Tensor, TensorData};
use burn::module::Param;
use models::{PrunableLinear, PrunableModel, UnitActivations};

#[derive(Default)]
pub struct BiasCompensation {
    /// Steps between two measurements of the input means while the masks change.
    every: usize,
    /// Per prunable layer: the mean input features, on the host as measured.
    means: Vec<Vec<f32>>,
    /// The same on each layer's device, made once per measurement (not every step).
    device_means: Vec<Tensor<1>>,
    /// New means arrived since the last [`Self::apply`].
    fresh: bool,
    /// The step the means were last measured at.
    measured_at: Option<usize>,
    /// The hard masks last applied, per prunable layer (empty before the first step).
    previous: Vec<Tensor<2>>,
}

impl BiasCompensation {
    pub fn new(every: usize) -> Self {
        Self { every: every.max(1), ..Self::default() }
    }

    /// Whether the input means should be (re)measured before `step`, for a ramp over
    /// `ramp_start..=ramp_end`: at its start (or the first step of a resumed run inside it), then
    /// every `every` steps.
    pub fn wants_calibration(&self, step: usize, ramp_start: usize, ramp_end: usize) -> bool {
        if step < ramp_start || step > ramp_end {
            return false;
        }
        match self.measured_at {
            None => true,
            Some(at) => step >= at + self.every,
        }
    }

    /// Keeps the mean input feature of every prunable layer from the loop's statistics (the
    /// step is recorded by the next [`Self::apply`]).
    pub fn calibrate(&mut self, acts: &UnitActivations) {
        self.means = acts.inputs.iter().map(|s| s.means().into_iter().map(|v| v as f32).collect()).collect();
        self.device_means.clear();
        self.fresh = true;
    }

    /// The bias change of one layer: `(W ⊙ (M_prev − M_new))·μ`, `[rows]`.
    pub fn delta(weight: Tensor<2>, previous: Tensor<2>, hard: Tensor<2>, mean: Tensor<1>) -> Tensor<1> {
        let [rows, cols] = weight.dims();
        (weight * (previous - hard)).matmul(mean.reshape([cols, 1])).reshape([rows])
    }

    /// Folds into each layer's bias the mean output of the weights that `hard` removes relative
    /// to the masks applied last time, and records `hard`. Before the first measurement (and on
    /// the first step of a resumed run) it only records.
    pub fn apply(&mut self, model: &mut dyn PrunableModel, hard: &[Tensor<2>], step: usize) {
        if std::mem::take(&mut self.fresh) {
            self.measured_at = Some(step);
        }
        if !self.means.is_empty() && self.previous.len() == hard.len() {
            for (m, (_, layer)) in model.prunable_layers_mut().into_iter().enumerate() {
                let weight = layer.weight.val().detach();
                let cols = weight.dims()[1];
                assert_eq!(self.means[m].len(), cols, "input statistics of layer {m}: {} features for {cols} columns", self.means[m].len());
                if self.device_means.len() == m {
                    self.device_means.push(Tensor::from_data(TensorData::new(self.means[m].clone(), [cols]), &weight.device()));
                }
                let delta = Self::delta(weight, self.previous[m].clone(), hard[m].clone().detach(), self.device_means[m].clone());
                add_to_bias(layer, delta);
            }
        }
        self.previous = hard.iter().map(|h| h.clone().detach()).collect();
    }
}

/// `b ← b + delta` on a layer's bias (a new bias `delta` where it has none), as a new leaf with
/// the same parameter id, so the optimizer's state stays attached; left as `b + delta` it would
/// hang on to the current step's graph.
pub fn add_to_bias(layer: &mut PrunableLinear, delta: Tensor<1>) {
    layer.bias = Some(match layer.bias.take() {
        Some(b) => b.map(|b| {
            let tracked = b.is_require_grad();
            let v = (b + delta).detach();
            if tracked {
                v.require_grad()
            } else {
                v
            }
        }),
        None => Param::from_tensor(delta),
    });
}
