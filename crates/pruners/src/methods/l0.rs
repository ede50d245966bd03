//! L0 movement pruning with hard-concrete masks (Louizos et al. 2018, as in Sanh et al. 2020):
//! one log-α score per weight, initialised to 2.197 (σ = 0.9). In training every forward pass
//! samples `u ~ U(0,1)`, `s = σ((log u − log(1−u) + S)/β)`, `M = clamp(s(r−l)+l, 0, 1)` with
//! l = −0.1, r = 1.1, β = 2/3, and the gradient flows through the sample (no estimator needed).
//! The penalty is `λ_t · mean over matrices of mean σ(S − β log(−l/r))` (the probability that a
//! gate is non-zero). At evaluation and in the saved model the mask is deterministic:
//! `clamp(σ(S)(r−l)+l, 0, 1)`; weights whose mask is 0 are pruned.
//! λ is constant over the run, as in the reference code (its λ schedule is tied to a threshold
//! that L0 runs keep at 1). The sparsity reached is an outcome of λ and is measured and reported.

use crate::{ParamGroupSpec, Pruner};
use burn::tensor::activation::sigmoid;
use burn::tensor::Tensor;
use models::PrunableModel;

pub use crate::gates::{BETA, LIMIT_LEFT, LIMIT_RIGHT};
/// log(0.9/0.1): every gate starts open with probability ≈ 0.9.
pub const SCORE_INIT: f64 = 2.197;

pub struct L0 {
    lambda: f64,
    scores_lr: f64,
    measured_density: f64,
}

impl L0 {
    pub fn new(lambda: f64, scores_lr: f64) -> Self {
        Self { lambda, scores_lr, measured_density: 1.0 }
    }

    /// The deterministic (evaluation) mask: `clamp(σ(S)(r−l)+l, 0, 1)`.
    pub fn eval_mask(scores: Tensor<2>) -> Tensor<2> {
        (sigmoid(scores) * (LIMIT_RIGHT - LIMIT_LEFT) + LIMIT_LEFT).clamp(0.0, 1.0)
    }

    /// A training mask from uniform noise `u` (same shape as `scores`).
    pub fn sample_mask(scores: Tensor<2>, u: Tensor<2>) -> Tensor<2> {
        crate::gates::sample(scores, u)
    }

    /// P(gate ≠ 0) per weight: `σ(S − β log(−l/r))`.
    pub fn open_probability(scores: Tensor<2>) -> Tensor<2> {
        crate::gates::open_probability(scores)
    }

}

impl Pruner for L0 {
    fn name(&self) -> &'static str {
        "l0"
    }

    fn init(&mut self, model: &mut dyn PrunableModel) {
        crate::mask::init_scores(model, SCORE_INIT);
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, _step: usize) {
        let scores = crate::mask::scores(model, "L0");
        // Measured on the deterministic mask, one host sync for all matrices.
        let kept: Vec<f32> = Tensor::cat(scores.iter().map(|s| Self::eval_mask(s.clone().detach()).greater_elem(0.0).float().sum()).collect(), 0)
            .to_data()
            .convert::<f32>()
            .try_to_vec()
            .expect("f32 counts");
        let numel: usize = scores.iter().map(|s| s.dims().iter().product::<usize>()).sum();
        self.measured_density = kept.iter().map(|&k| k as f64).sum::<f64>() / numel.max(1) as f64;
        for ((_, layer), s) in model.prunable_layers_mut().into_iter().zip(scores) {
            layer.mask = Some(crate::gates::sample_fresh(s));
        }
    }

    fn eval_masks(&mut self, model: &mut dyn PrunableModel, _step: usize) {
        let scores = crate::mask::scores(model, "L0");
        for ((_, layer), s) in model.prunable_layers_mut().into_iter().zip(scores) {
            layer.mask = Some(Self::eval_mask(s.detach()));
        }
    }

    fn loss_term(&self, model: &dyn PrunableModel, _step: usize) -> Option<Tensor<1>> {
        let lambda = self.lambda;
        if lambda == 0.0 {
            return None;
        }
        let layers = model.prunable_layers();
        let n = layers.len() as f64;
        let terms: Vec<Tensor<1>> = layers.iter().filter_map(|(_, l)| l.mask_scores.as_ref()).map(|s| Self::open_probability(s.val()).mean()).collect();
        Some(Tensor::cat(terms, 0).sum() * (lambda / n))
    }

    fn param_groups(&self) -> Vec<ParamGroupSpec> {
        vec![ParamGroupSpec { path_contains: "mask_scores".into(), lr: self.scores_lr, weight_decay: 0.0, clipped: true }]
    }

    /// Fraction of weights whose deterministic mask is non-zero (measured at the last step).
    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "measured_density": self.measured_density })
    }

    fn load_state(&mut self, state: &serde_json::Value, _model: &dyn PrunableModel) -> Result<(), String> {
        self.measured_density = state.get("measured_density").and_then(|v| v.as_f64()).ok_or("pruner state: measured_density missing")?;
        Ok(())
    }

    fn scheduled_density(&self, _step: usize) -> f64 {
        self.measured_density
    }
}

/// `method = "l0"`.
pub fn build(c: &crate::PruningConfig, _b: &crate::registry::BuildContext) -> Result<Box<dyn crate::Pruner>, String> {
    Ok(Box::new(L0::new(c.lambda_or(125.0)?, c.scores_lr_or(0.1)?)))
}
