//! Pruning methods that run inside the training loop.
//!
//! A method is one file under [`methods`] implementing the small [`Pruner`] trait. The trainer
//! calls it at fixed points of every step; shared pieces live beside it:
//! [`schedule`] (how much to keep at step t), [`mask`] (binarisers: top-k, the straight-through
//! estimator) and [`stats`] (sparsity measured from the weights).

pub mod gates;
pub mod mask;
pub mod methods;
pub mod oneshot;
pub mod schedule;
pub mod selection;
pub mod stats;
pub mod units;

use burn::tensor::Tensor;
use models::PrunableModel;
use serde::{Deserialize, Serialize};

pub use schedule::CubicSchedule;
pub use stats::SparsityReport;

/// A learning-rate group the optimizer must create for a pruner's own parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGroupSpec {
    /// Substring of the parameter path, e.g. `mask_scores`.
    pub path_contains: String,
    pub lr: f64,
    pub weight_decay: f64,
    /// Whether these gradients count in the global gradient-norm clip (and are scaled by it):
    /// true for the movement family's scores, which live in the model as in the paper's code
    /// (`clip_grad_norm_(model.parameters())` includes them); false for CoFi's gate logits and
    /// multipliers, which its trainer keeps outside `model.parameters()`.
    pub clipped: bool,
}

/// What the trainer calls, in this order, at every step:
/// `apply_masks` → forward → task loss + `loss_term` → backward → optimizer step → `after_step`.
/// At evaluation it calls `apply_masks` on the evaluation copy of the model; at the end
/// `finalize` folds the masks into the weights.
pub trait Pruner: Send {
    /// Short name for logs and reports.
    fn name(&self) -> &'static str;
    /// Once, before training: add the method's own parameters (scores) to the model.
    fn init(&mut self, _model: &mut dyn PrunableModel) {}
    /// Set the masks for training step `step`.
    fn apply_masks(&mut self, model: &mut dyn PrunableModel, step: usize);
    /// Set the masks for evaluation after step `step` (on the evaluation copy of the model).
    /// The same as training unless the method samples its masks (L0).
    fn eval_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        self.apply_masks(model, step);
    }
    /// An extra term added to the task loss (regularisers), `[1]`.
    fn loss_term(&self, _model: &dyn PrunableModel, _step: usize) -> Option<Tensor<1>> {
        None
    }
    /// Before step `step`: how many calibration examples the method wants the activations of
    /// (structured methods that score units from data); `None` for most methods.
    fn calibration_request(&self, _step: usize) -> Option<usize> {
        None
    }
    /// The activations asked for by `calibration_request`, on the evaluation copy's device.
    fn calibrate(&mut self, _model: &mut dyn PrunableModel, _acts: &models::UnitActivations) {}
    /// Between backward and the optimizer step: change the gradients of the method's own
    /// parameters (e.g. negate the Lagrange multipliers' gradients, for gradient ascent).
    fn adjust_gradients(&self, _model: &dyn PrunableModel, _grads: &mut burn::optim::GradientsParams) {}
    /// After the optimizer step.
    fn after_step(&mut self, _model: &mut dyn PrunableModel, _step: usize) {}
    /// Fold the final masks into the weights (pruned weights become exactly 0) and drop the
    /// method's own parameters, leaving a plain model.
    fn finalize(&mut self, model: &mut dyn PrunableModel, step: usize) {
        self.eval_masks(model, step);
        mask::fold_masks(model);
    }
    /// Bookkeeping a resumed run needs besides the model's parameters (scores included) and the
    /// hard masks in force, which the trainer checkpoints itself. `Null` for stateless methods.
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Restores [`Pruner::state`] on resume; `model` already holds the checkpointed parameters
    /// and the masks of the checkpointed step.
    fn load_state(&mut self, _state: &serde_json::Value, _model: &dyn PrunableModel) -> Result<(), String> {
        Ok(())
    }
    /// Parameter groups with their own learning rate (e.g. scores).
    fn param_groups(&self) -> Vec<ParamGroupSpec> {
        Vec::new()
    }
    /// Fraction of prunable weights kept at `step`: the schedule's value for the top-k methods,
    /// the fraction measured at the last step for methods whose sparsity is an outcome.
    fn scheduled_density(&self, step: usize) -> f64;
}

/// Which weights compete for the kept budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Each matrix keeps the scheduled fraction of its own weights.
    #[default]
    PerMatrix,
    /// One threshold over all prunable weights: the scheduled fraction is kept in total and
    /// matrices end up with different densities.
    Global,
}

impl Scope {
    /// Top-k masks for `scores` (one per matrix) at `density`, under this scope.
    pub fn topk_masks(self, scores: &[Tensor<2>], density: f64) -> Vec<Tensor<2>> {
        match self {
            Scope::PerMatrix => scores
                .iter()
                .map(|s| {
                    let [r, c] = s.dims();
                    mask::topk_mask(s.clone(), schedule::kept_count(r * c, density))
                })
                .collect(),
            Scope::Global => {
                let n: usize = scores.iter().map(|s| s.dims().iter().product::<usize>()).sum();
                mask::global_topk_masks(scores, schedule::kept_count(n, density))
            }
        }
    }
}

/// What is removed: single weights, or whole units (attention heads and FFN neurons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// Unstructured: any weight (sparse matrices of the original shapes).
    #[default]
    Weight,
    /// Structured: whole heads and FFN neurons, scored by summing their weights' scores, the
    /// same fraction per layer; the result compacts into a smaller dense model.
    Unit,
}

impl Granularity {
    /// Hard masks for `scores` (one per prunable matrix) at `density`.
    pub fn masks(self, scope: Scope, groups: &[models::UnitGroup], scores: &[Tensor<2>], density: f64) -> Vec<Tensor<2>> {
        match self {
            Granularity::Weight => scope.topk_masks(scores, density),
            Granularity::Unit => units::unit_masks(groups, scores, density),
        }
    }
}

/// The `[pruning]` section of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruningConfig {
    /// "none", "magnitude", "movement", "soft_movement", "l0", "random", "mi_layerwise",
    /// "mask_learning", "minimax_uniform", "wanda", "stade" or "oneshot_magnitude".
    pub method: Method,
    /// Fraction of encoder weights kept at the end (0.10 = "10% remaining").
    #[serde(default = "one")]
    pub final_density: f64,
    /// Fraction kept before pruning starts.
    #[serde(default = "one")]
    pub initial_density: f64,
    /// Steps before the cubic schedule starts (t_i).
    #[serde(default)]
    pub warmup_steps: usize,
    /// Steps at the end with the final density held fixed (t_f).
    #[serde(default)]
    pub cooldown_steps: usize,
    /// Learning rate of the scores (movement family); default 1e-2, or 0.1 for L0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores_lr: Option<f64>,
    /// Soft movement: τ_final, the last value of the threshold on σ(S) (τ rises from 0 on the
    /// cubic schedule).
    #[serde(default = "final_threshold")]
    pub final_threshold: f64,
    /// Regularisation strength: soft movement's λ_final (default 400) or L0's λ (default 125).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<f64>,
    #[serde(default)]
    pub scope: Scope,
    /// `"weight"` (default) or `"unit"` (heads and FFN neurons; magnitude and movement).
    #[serde(default)]
    pub granularity: Granularity,
    /// Seed of the random baseline's scores (and of MI's target projection).
    #[serde(default)]
    pub seed: u64,
    /// `mi_layerwise`: training examples whose activations score the units.
    #[serde(default = "calibration_samples")]
    pub calibration_samples: usize,
    /// `mask_learning`, `minimax_uniform`: learning rate of the Lagrange multipliers (gradient
    /// ascent); default 0.01 (CoFi's reg_learning_rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipliers_lr: Option<f64>,
    /// `movement` only, and not the paper's method: from this step on the scores stop learning
    /// (the mask is applied without the straight-through term, so they get no gradient), so the rest of the ramp removes
    /// weights by the ranking the scores had reached. Unset (default): scores learn throughout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_scores_at: Option<usize>,
    /// `wanda`, `stade`: which weights compete, `"row"` (default, per output row) or `"matrix"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<selection::Comparison>,
    /// `wanda`, `stade`: N:M sparsity instead, e.g. `"2:4"` (then `final_density` must be 1 − N/M).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_m: Option<String>,
    /// `stade`: `"second"` (default: the matrices that read unit activations, Wanda elsewhere)
    /// or `"all"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stade_layers: Option<methods::stade::StadeLayers>,
}

fn one() -> f64 {
    1.0
}
fn calibration_samples() -> usize {
    256
}
fn final_threshold() -> f64 {
    0.1
}

/// The pruning methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    None,
    Magnitude,
    Movement,
    SoftMovement,
    L0,
    Random,
    /// Layer-wise structured pruning by mutual information (heads and FFN neurons).
    MiLayerwise,
    /// Hard-concrete masks on heads, attention blocks, FFN blocks and FFN neurons driven to a
    /// target sparsity by a Lagrangian (CoFiPruning).
    MaskLearning,
    /// Hard-concrete masks on heads and FFN neurons with the same count in every layer, learned
    /// by a minimax objective with per-layer multipliers (MaskPrune).
    MinimaxUniform,
    /// One-shot at `warmup_steps`: |W|·‖X‖ from calibration inputs (Wanda).
    Wanda,
    /// One-shot at `warmup_steps`: W²·Var(X) with the mean folded into the bias (STADE).
    Stade,
    /// One-shot at `warmup_steps`: |W|, with the one-shot selections (the baseline of the two).
    OneshotMagnitude,
}

impl Default for PruningConfig {
    fn default() -> Self {
        Self {
            method: Method::None,
            final_density: 1.0,
            initial_density: 1.0,
            warmup_steps: 0,
            cooldown_steps: 0,
            scores_lr: None,
            final_threshold: final_threshold(),
            lambda: None,
            scope: Scope::PerMatrix,
            granularity: Granularity::Weight,
            seed: 0,
            calibration_samples: calibration_samples(),
            multipliers_lr: None,
            freeze_scores_at: None,
            comparison: None,
            n_m: None,
            stade_layers: None,
        }
    }
}

impl PruningConfig {
    /// Whether the run removes whole units (and so ends in a compacted model).
    pub fn is_structured(&self) -> bool {
        self.granularity == Granularity::Unit || matches!(self.method, Method::MiLayerwise | Method::MaskLearning | Method::MinimaxUniform)
    }

    /// The kept fraction a run aims at, for the reports; `None` where the sparsity is an outcome
    /// (soft movement, L0) or there is no pruning.
    pub fn target_density(&self) -> Option<f64> {
        match self.method {
            Method::Magnitude
            | Method::Movement
            | Method::Random
            | Method::MiLayerwise
            | Method::MaskLearning
            | Method::MinimaxUniform
            | Method::Wanda
            | Method::Stade
            | Method::OneshotMagnitude => Some(self.final_density), // N:M: `build` requires final_density = 1 − N/M
            Method::None | Method::SoftMovement | Method::L0 => None,
        }
    }

    /// Validates the ranges and builds the pruner for a run of `total_steps` steps.
    /// Errors name the key.
    pub fn build(&self, total_steps: usize) -> Result<Box<dyn Pruner>, String> {
        for (key, v) in [("final_density", self.final_density), ("initial_density", self.initial_density)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(format!("pruning.{key}: expected a kept fraction in (0, 1], found {v}"));
            }
        }
        if self.final_density > self.initial_density {
            return Err(format!(
                "pruning.final_density ({}) is above pruning.initial_density ({})",
                self.final_density, self.initial_density
            ));
        }
        let scores_lr = self.scores_lr.unwrap_or(if matches!(self.method, Method::L0 | Method::MaskLearning | Method::MinimaxUniform) { 0.1 } else { 1e-2 });
        let multipliers_lr = self.multipliers_lr.unwrap_or(0.01);
        if !(multipliers_lr > 0.0 && multipliers_lr.is_finite()) {
            return Err(format!("pruning.multipliers_lr: expected a positive number, found {multipliers_lr}"));
        }
        if !(scores_lr > 0.0 && scores_lr.is_finite()) {
            return Err(format!("pruning.scores_lr: expected a positive number, found {scores_lr}"));
        }
        let lambda = self.lambda.unwrap_or(if self.method == Method::L0 { 125.0 } else { 400.0 });
        if !(lambda >= 0.0 && lambda.is_finite()) {
            return Err(format!("pruning.lambda: expected a number >= 0, found {lambda}"));
        }
        if !(self.final_threshold > 0.0 && self.final_threshold < 1.0) {
            return Err(format!("pruning.final_threshold: expected a value in (0, 1), found {}", self.final_threshold));
        }
        if self.scope == Scope::Global && !matches!(self.method, Method::Magnitude | Method::Movement) {
            return Err(format!("pruning.scope = \"global\" applies to the top-k methods (magnitude, movement), not {:?}", self.method));
        }
        if self.method != Method::None && self.warmup_steps + self.cooldown_steps >= total_steps {
            return Err(format!(
                "pruning.warmup_steps ({}) + pruning.cooldown_steps ({}) must be below the run's {} steps",
                self.warmup_steps, self.cooldown_steps, total_steps
            ));
        }
        if self.granularity == Granularity::Unit {
            if !matches!(self.method, Method::Magnitude | Method::Movement | Method::MiLayerwise) {
                return Err(format!("pruning.granularity = \"unit\" applies to magnitude, movement and mi_layerwise, not {:?}", self.method));
            }
            if self.scope == Scope::Global {
                return Err("pruning.granularity = \"unit\" keeps the same fraction of units in every layer; pruning.scope must be \"per_matrix\"".into());
            }
        }
        if let Some(at) = self.freeze_scores_at {
            if self.method != Method::Movement {
                return Err(format!("pruning.freeze_scores_at applies to method = \"movement\", not {:?}", self.method));
            }
            if at >= total_steps {
                return Err(format!("pruning.freeze_scores_at ({at}) must be below the run's {total_steps} steps"));
            }
        }
        let one_shot = matches!(self.method, Method::Wanda | Method::Stade | Method::OneshotMagnitude);
        if !one_shot {
            for (key, set) in [("comparison", self.comparison.is_some()), ("n_m", self.n_m.is_some())] {
                if set {
                    return Err(format!("pruning.{key} applies to the one-shot methods (wanda, stade, oneshot_magnitude), not {:?}", self.method));
                }
            }
        }
        if self.stade_layers.is_some() && self.method != Method::Stade {
            return Err(format!("pruning.stade_layers applies to method = \"stade\", not {:?}", self.method));
        }
        let nm = self.n_m.as_deref().map(|t| selection::NM::parse(t, "pruning.n_m")).transpose()?;
        if let Some(nm) = nm {
            if (nm.density() - self.final_density).abs() > 1e-9 {
                return Err(format!(
                    "pruning.n_m = \"{}:{}\" keeps {} of the weights, but pruning.final_density is {}; set final_density = {}",
                    nm.n,
                    nm.m,
                    nm.density(),
                    self.final_density,
                    nm.density()
                ));
            }
        }
        if one_shot && self.calibration_samples == 0 {
            return Err("pruning.calibration_samples: expected at least 1".into());
        }
        let schedule = CubicSchedule {
            initial_density: self.initial_density,
            final_density: self.final_density,
            warmup_steps: self.warmup_steps,
            cooldown_steps: self.cooldown_steps,
            total_steps,
        };
        Ok(match self.method {
            Method::None => Box::new(methods::dense::Dense),
            Method::Magnitude => Box::new(methods::magnitude::Magnitude::new(schedule, self.scope).with_granularity(self.granularity)),
            Method::Movement => Box::new(
                methods::movement::Movement::new(schedule, self.scope, scores_lr)
                    .with_granularity(self.granularity)
                    .with_frozen_scores_from(self.freeze_scores_at),
            ),
            Method::SoftMovement => {
                let threshold = CubicSchedule { initial_density: 0.0, final_density: self.final_threshold, ..schedule };
                Box::new(methods::soft_movement::SoftMovement::new(threshold, lambda, scores_lr))
            }
            Method::L0 => Box::new(methods::l0::L0::new(lambda, scores_lr)),
            Method::MiLayerwise => {
                if self.calibration_samples == 0 {
                    return Err("pruning.calibration_samples: expected at least 1".into());
                }
                Box::new(methods::mi_layerwise::MiLayerwise::new(self.warmup_steps, self.final_density, self.calibration_samples, self.seed))
            }
            Method::Random => Box::new(methods::random::Random::new(schedule, self.seed)),
            Method::MaskLearning => Box::new(methods::mask_learning::MaskLearning::new(
                self.final_density,
                self.warmup_steps,
                self.cooldown_steps,
                total_steps,
                scores_lr,
                multipliers_lr,
            )),
            Method::MinimaxUniform => Box::new(methods::minimax_uniform::MinimaxUniform::new(
                self.final_density,
                self.warmup_steps,
                self.cooldown_steps,
                total_steps,
                scores_lr,
                multipliers_lr,
            )),
            Method::Wanda => Box::new(self.one_shot(methods::wanda::Wanda, nm)),
            Method::Stade => Box::new(self.one_shot(methods::stade::Stade { layers: self.stade_layers.unwrap_or_default() }, nm)),
            Method::OneshotMagnitude => Box::new(self.one_shot(methods::oneshot_magnitude::OneShotMagnitude, nm)),
        })
    }

    fn one_shot<C: oneshot::Criterion>(&self, criterion: C, nm: Option<selection::NM>) -> oneshot::OneShot<C> {
        oneshot::OneShot::new(criterion, self.warmup_steps, self.final_density, self.calibration_samples, self.comparison.unwrap_or_default(), nm)
    }
}
