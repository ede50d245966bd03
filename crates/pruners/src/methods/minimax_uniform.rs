//! Minimax masks with the same structure in every layer (MaskPrune, Qin et al. 2025).
//!
//! Our design (METHODS.md gives the objective, not the code): hard-concrete gates on heads and
//! FFN neurons as in [`super::mask_learning`] (no whole-block gates: every layer keeps the same
//! shape). One shared target per structure type: every layer keeps `s_heads` heads and
//! `s_neurons` neurons, the kept fraction `final_density` of each (so the prunable weights
//! remaining are `final_density` of the total). Per layer l and type, the constraint is the
//! excess of expected kept units, as a fraction: `c_l = (Σ_u P(z_u ≠ 0) − s_l(t)) / n_l`, with
//! `s_l(t)` going linearly from `n_l` to `s_l` over the ramp. The loss adds
//! `Σ_l λ₁,l c_l + λ₂,l c_l²`; the multipliers rise by gradient ascent while a layer keeps too
//! many units, and are projected back to λ ≥ 0 after every step. Evaluation and the end keep
//! exactly `s_l(t)` units per layer, the largest log α, with CoFi's soft values.

use crate::gates::{self, GateTarget};
use crate::units::kept_units;
use crate::{ParamGroupSpec, Pruner};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use models::{PrunableModel, UnitKind};

/// The units every group keeps at the end: heads `kept_units(n, density)` (at least one per
/// layer); FFN neurons then fill the rest of their layer's budget, `density` × the layer's
/// prunable weights, so the total lands on the target even where the one-head floor or the
/// rounding of heads keeps more than the fraction (95% removed: 1 head of 12 is 8.3%). Groups
/// with no heads in their block (an MLP's layers) keep `kept_units(n, density)`. The same in
/// every layer when the layers have the same shape.
pub fn final_counts(targets: &[GateTarget], density: f64) -> Vec<usize> {
    targets
        .iter()
        .map(|t| {
            // Neurons that share their block (depth) with heads fill the block's budget.
            let heads = targets.iter().find(|h| h.kind == UnitKind::Head && h.depth == t.depth);
            let Some(h) = heads.filter(|_| t.kind == UnitKind::Neuron) else {
                return kept_units(t.count, density);
            };
            let budget = density * (h.count * h.params_per_unit + t.count * t.params_per_unit) as f64;
            let left = budget - (kept_units(h.count, density) * h.params_per_unit) as f64;
            ((left / t.params_per_unit as f64).round().max(1.0) as usize).min(t.count)
        })
        .collect()
}

pub struct MinimaxUniform {
    density: f64,
    ramp_start: usize,
    ramp_end: usize,
    lr: f64,
    multipliers_lr: f64,
    targets: Vec<GateTarget>,
    /// Expected kept units per group after the last step (host), for the reports.
    expected_kept: Vec<f64>,
}

impl MinimaxUniform {
    pub fn new(final_density: f64, warmup_steps: usize, cooldown_steps: usize, total_steps: usize, lr: f64, multipliers_lr: f64) -> Self {
        Self {
            density: final_density,
            ramp_start: warmup_steps,
            ramp_end: total_steps.saturating_sub(cooldown_steps).max(warmup_steps + 1),
            lr,
            multipliers_lr,
            targets: Vec::new(),
            expected_kept: Vec::new(),
        }
    }

    /// Units group `i` keeps at `step` (real-valued during the ramp; an integer at its end).
    pub fn target_units(&self, i: usize, step: usize) -> f64 {
        let t = &self.targets[i];
        let p = (step.saturating_sub(self.ramp_start) as f64 / (self.ramp_end - self.ramp_start) as f64).min(1.0);
        let fin = final_counts(&self.targets, self.density)[i] as f64;
        t.count as f64 - (t.count as f64 - fin) * p
    }

    /// The exact number kept at `step` (rounded target).
    pub fn kept_at(&self, i: usize, step: usize) -> usize {
        (self.target_units(i, step).round() as usize).clamp(1, self.targets[i].count)
    }

    /// The constraints `c_l` of every group as one `[groups]` tensor (differentiable).
    pub fn constraints(&self, log_alpha: &[Tensor<1>], step: usize) -> Tensor<1> {
        let device = log_alpha[0].device();
        let expected: Vec<Tensor<1>> = log_alpha.iter().map(|a| gates::open_probability(a.clone()).sum()).collect();
        let target: Vec<f32> = (0..self.targets.len()).map(|i| self.target_units(i, step) as f32).collect();
        let counts: Vec<f32> = self.targets.iter().map(|t| t.count as f32).collect();
        let n = target.len();
        (Tensor::cat(expected, 0) - Tensor::from_data(TensorData::new(target, [n]), &device)) / Tensor::from_data(TensorData::new(counts, [n]), &device)
    }

    fn log_alpha(model: &dyn PrunableModel) -> Vec<Tensor<1>> {
        gates::params(model).log_alpha.iter().map(|p| p.val()).collect()
    }

    fn deterministic(&self, model: &dyn PrunableModel, step: usize) -> Vec<Vec<f32>> {
        Self::log_alpha(model).into_iter().enumerate().map(|(i, a)| gates::deterministic(&gates::host(a), self.kept_at(i, step))).collect()
    }
}

impl Pruner for MinimaxUniform {
    fn name(&self) -> &'static str {
        "minimax_uniform"
    }

    fn init(&mut self, model: &mut dyn PrunableModel) {
        self.targets = gates::targets(model).expect("minimax_uniform needs a model that declares structural units");
        let spec: Vec<(usize, f64)> =
            self.targets.iter().map(|t| (t.count, super::mask_learning::unit_init(t.kind))).collect();
        let g = self.targets.len();
        gates::init_params(model, &spec, &[(g, 0.0), (g, 0.0)]).expect("pruner parameters");
        self.expected_kept = self.targets.iter().map(|t| t.count as f64).collect();
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, _step: usize) {
        let units: Vec<Tensor<1>> = Self::log_alpha(model).into_iter().map(gates::sample_fresh).collect();
        gates::set_gates(model, &self.targets, &units, &vec![None; self.targets.len()]);
    }

    fn eval_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        let z = self.deterministic(model, step);
        gates::set_host_gates(model, &self.targets, &z, &vec![None; self.targets.len()]);
    }

    fn loss_term(&self, model: &dyn PrunableModel, step: usize) -> Option<Tensor<1>> {
        let c = self.constraints(&Self::log_alpha(model), step);
        let m = &gates::params(model).multipliers;
        Some((m[0].val() * c.clone() + m[1].val() * c.powi_scalar(2)).sum())
    }

    fn adjust_gradients(&self, model: &dyn PrunableModel, grads: &mut GradientsParams) {
        gates::negate_multiplier_gradients(model, grads);
    }

    /// Projection of the multipliers onto λ ≥ 0, and the expected kept units for the reports.
    fn after_step(&mut self, model: &mut dyn PrunableModel, step: usize) {
        if let Some(Some(params)) = model.pruner_params_slot() {
            for p in params.multipliers.iter_mut() {
                // A new leaf: the clamped value must stay a trainable parameter.
                *p = p.clone().map(|t| {
                    let grad = t.is_require_grad();
                    t.clamp_min(0.0).detach().set_require_grad(grad)
                });
            }
        }
        // The budget projection (gates::budget_shift), per group: its logits move by one amount
        // so that the next step's expected kept units are its target.
        if step + 1 >= self.ramp_start {
            let host: Vec<Vec<f32>> = Self::log_alpha(model).into_iter().map(gates::host).collect();
            let shift: Vec<f64> = host
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let n = a.len() as f64;
                    let target = 1.0 - self.target_units(i, step + 1) / n;
                    gates::budget_shift(|c| 1.0 - a.iter().map(|&x| gates::open_probability_host((x as f64 + c) as f32)).sum::<f64>() / n, target)
                })
                .collect();
            gates::shift_log_alpha(model, &shift);
        }
        // One host copy for all groups (this runs every step).
        let sums: Vec<Tensor<1>> = Self::log_alpha(model).into_iter().map(|a| gates::open_probability(a).sum()).collect();
        self.expected_kept = gates::host(Tensor::cat(sums, 0)).into_iter().map(f64::from).collect();
    }

    fn finalize(&mut self, model: &mut dyn PrunableModel, step: usize) {
        let z = self.deterministic(model, step);
        gates::fold(model, &self.targets, &z, &vec![None; self.targets.len()]);
    }

    fn param_groups(&self) -> Vec<ParamGroupSpec> {
        gates::param_groups(self.lr, self.multipliers_lr)
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "expected_kept": self.expected_kept })
    }

    fn load_state(&mut self, state: &serde_json::Value, _model: &dyn PrunableModel) -> Result<(), String> {
        self.expected_kept = serde_json::from_value(state.get("expected_kept").cloned().unwrap_or_default()).map_err(|e| format!("pruner state: expected_kept: {e}"))?;
        Ok(())
    }

    /// The kept fraction of prunable weights the exact selection at `step` gives.
    fn scheduled_density(&self, step: usize) -> f64 {
        let total: usize = self.targets.iter().map(|t| t.count * t.params_per_unit).sum();
        let kept: usize = self.targets.iter().enumerate().map(|(i, t)| self.kept_at(i, step) * t.params_per_unit).sum();
        kept as f64 / total.max(1) as f64
    }
}

/// `method = "minimax_uniform"`.
pub fn build(c: &crate::PruningConfig, b: &crate::registry::BuildContext) -> Result<Box<dyn crate::Pruner>, String> {
    Ok(Box::new(MinimaxUniform::new(c.final_density, c.warmup_steps, c.cooldown_steps, b.total_steps, c.scores_lr_or(0.1)?, c.multipliers_lr()?)))
}
