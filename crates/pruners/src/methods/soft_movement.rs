//! Soft movement pruning (Sanh, Wolf & Rush 2020): one score per weight, initialised to 0; the
//! forward pass keeps the weights with σ(S) > τ, τ rising from 0 to `final_threshold` on the
//! cubic schedule; the scores learn through the straight-through estimator and are pulled down
//! by `λ_t · mean over matrices of Σσ(S)/numel`, λ_t = λ·τ_t/τ_final. Each matrix keeps at least
//! 0.5% of its weights (the top-scored ones) so no layer is cut off. How much is pruned is an
//! outcome of τ and λ, not a target: it is measured every step and reported.

use crate::mask::{straight_through, topk_mask};
use crate::schedule::CubicSchedule;
use crate::{ParamGroupSpec, Pruner};
use burn::tensor::activation::sigmoid;
use burn::tensor::Tensor;
use models::PrunableModel;

pub struct SoftMovement {
    /// τ_t: the cubic schedule from 0 to τ_final.
    threshold: CubicSchedule,
    lambda: f64,
    scores_lr: f64,
    /// Fraction kept by the last masks set (measured).
    measured_density: f64,
}

/// The floor: at least ⌊0.005·n⌋ + 1 weights of each matrix stay.
pub fn floor_count(numel: usize) -> usize {
    (numel as f64 * 0.005) as usize + 1
}

impl SoftMovement {
    pub fn new(threshold: CubicSchedule, lambda: f64, scores_lr: f64) -> Self {
        Self { threshold, lambda, scores_lr, measured_density: 1.0 }
    }

    /// τ at `step`.
    pub fn tau(&self, step: usize) -> f64 {
        self.threshold.density(step)
    }

    /// λ_t = λ·τ_t/τ_final.
    pub fn lambda_at(&self, step: usize) -> f64 {
        let final_tau = self.threshold.final_density;
        if final_tau <= 0.0 {
            return 0.0;
        }
        self.lambda * self.tau(step) / final_tau
    }
}

impl Pruner for SoftMovement {
    fn name(&self) -> &'static str {
        "soft_movement"
    }

    fn init(&mut self, model: &mut dyn PrunableModel) {
        crate::mask::init_scores(model, 0.0);
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        let tau = self.tau(step) as f32;
        let scores = crate::mask::scores(model, "soft movement");
        let mut layers = model.prunable_layers_mut();
        let hard: Vec<Tensor<2>> = scores.iter().map(|s| sigmoid(s.clone().detach()).greater_elem(tau).float()).collect();
        // One host sync for all the kept counts.
        let counts: Vec<f32> = Tensor::cat(hard.iter().map(|h| h.clone().sum()).collect(), 0).to_data().convert::<f32>().try_to_vec().expect("f32 counts");
        let (mut kept, mut numel) = (0usize, 0usize);
        for ((((_, layer), hard), scores), count) in layers.iter_mut().zip(hard).zip(scores).zip(counts) {
            let [r, c] = scores.dims();
            let n = r * c;
            let floor = floor_count(n);
            let (hard, count) = if (count as usize) < floor { (topk_mask(scores.clone(), floor), floor) } else { (hard, count as usize) };
            kept += count;
            numel += n;
            layer.mask = Some(straight_through(hard, scores));
        }
        self.measured_density = kept as f64 / numel.max(1) as f64;
    }

    fn loss_term(&self, model: &dyn PrunableModel, step: usize) -> Option<Tensor<1>> {
        let lambda = self.lambda_at(step);
        if lambda == 0.0 {
            return None;
        }
        let layers = model.prunable_layers();
        let n = layers.len() as f64;
        let terms: Vec<Tensor<1>> = layers
            .iter()
            .filter_map(|(_, l)| l.mask_scores.as_ref())
            .map(|s| sigmoid(s.val()).mean())
            .collect();
        Some(Tensor::cat(terms, 0).sum() * (lambda / n))
    }

    fn param_groups(&self) -> Vec<ParamGroupSpec> {
        vec![ParamGroupSpec { path_contains: "mask_scores".into(), lr: self.scores_lr, weight_decay: 0.0, clipped: true }]
    }

    /// The measured fraction kept by the last masks (an outcome, not a schedule).
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

/// `method = "soft_movement"`: τ rises on the cubic schedule to `final_threshold`.
pub fn build(c: &crate::PruningConfig, b: &crate::registry::BuildContext) -> Result<Box<dyn crate::Pruner>, String> {
    if !(c.final_threshold > 0.0 && c.final_threshold < 1.0) {
        return Err(format!("pruning.final_threshold: expected a value in (0, 1), found {}", c.final_threshold));
    }
    let threshold = crate::CubicSchedule { initial_density: 0.0, final_density: c.final_threshold, ..b.schedule };
    Ok(Box::new(SoftMovement::new(threshold, c.lambda_or(400.0)?, c.scores_lr_or(1e-2)?)))
}
