//! Pruning methods that run inside the training loop.
//!
//! A method is one file under [`methods`] implementing the small [`Pruner`] trait, and one line
//! in [`registry::METHODS`]. The trainer calls it at fixed points of every step; shared pieces
//! live beside it:
//! [`schedule`] (how much to keep at step t), [`mask`] (binarisers: top-k, the straight-through
//! estimator) and [`stats`] (sparsity measured from the weights).

pub mod calibration;
pub mod compensation;
pub mod gates;
pub mod mask;
pub mod methods;
pub mod oneshot;
pub mod progressive;
pub mod registry;
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
    /// Before step `step` (after `calibrate`, when both are asked): gradients accumulated over
    /// training examples and/or a probe of the loss with units removed; `None` for most methods.
    fn loss_request(&self, _step: usize) -> Option<calibration::LossRequest> {
        None
    }
    /// What `loss_request` asked for.
    fn calibrate_loss(&mut self, _model: &mut dyn PrunableModel, _data: &mut calibration::LossCalibration) {}
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
    /// The method's name: one of [`registry::METHODS`].
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
    /// `movement` only, and not the paper's method (ours): when the masks remove weights, their
    /// mean output over calibration tokens is folded into the layer's bias
    /// ([`compensation::BiasCompensation`]; input means measured at the ramp's start and every
    /// 50 steps after, on `calibration_samples` training examples). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compensate_bias: bool,
    /// `movement` only, and not the paper's method (ours): a weight that leaves the top-k fades
    /// out over this many steps (its mask value falls by 1/fade_steps a step; one that comes back
    /// is whole again at once) instead of being cut at full size. Unset: cut at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fade_steps: Option<usize>,
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
    /// activation: what the adaptive policy holds — `"units"` (default: at most
    /// 1 − final_density of the units removed), `"params"`, `"flops"` (of the prunable
    /// matrices), or `"accuracy"` (calibration accuracy at most `accuracy_loss` below the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_target: Option<methods::activation::AdaptiveTarget>,
    /// activation, with adaptive_target = "accuracy": the accuracy drop allowed (a fraction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_loss: Option<f64>,
    /// activation, gradient_flow, decay: training steps between two pruning rounds (the
    /// retraining of a round; default for gradient_flow and decay: a tenth of the ramp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_steps: Option<usize>,
    /// gradient_flow, decay: steps over which a selected unit's mask (gradient_flow) or norm
    /// (decay) falls to 0; default `round_steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay_steps: Option<usize>,
    /// decay: the host criterion that selects the units, `"magnitude"` (default) or `"movement"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<methods::decay::Host>,
    /// c_swap: the removal budget is taken in this many chunks, the units scored again before
    /// each (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<usize>,
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

/// A pruning method: an entry of [`registry::METHODS`], written as its name.
#[derive(Clone, Copy)]
pub struct Method(&'static registry::MethodSpec);

impl Method {
    /// The method called `name`; the error lists the known ones.
    pub fn named(name: &str) -> Result<Self, String> {
        registry::find(name).map(Method).ok_or_else(|| format!("unknown method \"{name}\"; expected one of {}", registry::names()))
    }
    pub fn name(self) -> &'static str {
        self.0.name
    }
    pub fn spec(self) -> &'static registry::MethodSpec {
        self.0
    }
}

impl PartialEq for Method {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl std::fmt::Debug for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.name)
    }
}

impl Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name)
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Method::named(&name).map_err(serde::de::Error::custom)
    }
}

impl Default for PruningConfig {
    fn default() -> Self {
        Self {
            method: Method::named("none").expect("registered"),
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
            compensate_bias: false,
            fade_steps: None,
            comparison: None,
            n_m: None,
            stade_layers: None,
            adaptive_target: None,
            accuracy_loss: None,
            round_steps: None,
            decay_steps: None,
            host: None,
            rounds: None,
        }
    }
}

impl PruningConfig {
    /// Whether the run removes whole units (and so ends in a compacted model).
    pub fn is_structured(&self) -> bool {
        self.granularity == Granularity::Unit || self.method.spec().structured
    }

    /// The kept fraction a run aims at, for the reports; `None` where the sparsity is an outcome
    /// (soft movement, L0) or there is no pruning. (N:M: `build` requires final_density = 1 − N/M.)
    pub fn target_density(&self) -> Option<f64> {
        (self.method.spec().target == registry::Target::Density).then_some(self.final_density)
    }

    /// `scores_lr`, or the method's `default`, checked.
    pub fn scores_lr_or(&self, default: f64) -> Result<f64, String> {
        let v = self.scores_lr.unwrap_or(default);
        if !(v > 0.0 && v.is_finite()) {
            return Err(format!("pruning.scores_lr: expected a positive number, found {v}"));
        }
        Ok(v)
    }

    /// `multipliers_lr` (default 0.01, CoFi's reg_learning_rate), checked.
    pub fn multipliers_lr(&self) -> Result<f64, String> {
        let v = self.multipliers_lr.unwrap_or(0.01);
        if !(v > 0.0 && v.is_finite()) {
            return Err(format!("pruning.multipliers_lr: expected a positive number, found {v}"));
        }
        Ok(v)
    }

    /// `lambda`, or the method's `default`, checked.
    pub fn lambda_or(&self, default: f64) -> Result<f64, String> {
        let v = self.lambda.unwrap_or(default);
        if !(v >= 0.0 && v.is_finite()) {
            return Err(format!("pruning.lambda: expected a number >= 0, found {v}"));
        }
        Ok(v)
    }

    /// The keys that change *what* a method removes, when set to something the method would not
    /// read: an error, not a silent no-op. (Tuning values such as `scores_lr` or `lambda` are
    /// ignored by methods that have none, so that one base file serves a sweep over methods.)
    fn set_selection_keys(&self) -> Vec<String> {
        let mut set = Vec::new();
        if self.scope != Scope::PerMatrix {
            set.push(format!("scope = {:?}", self.scope));
        }
        if self.granularity != Granularity::Weight {
            set.push(format!("granularity = {:?}", self.granularity));
        }
        for (key, on) in [("freeze_scores_at", self.freeze_scores_at.is_some()), ("compensate_bias", self.compensate_bias), ("fade_steps", self.fade_steps.is_some()), ("comparison", self.comparison.is_some()), ("n_m", self.n_m.is_some()), ("stade_layers", self.stade_layers.is_some()), ("adaptive_target", self.adaptive_target.is_some()), ("accuracy_loss", self.accuracy_loss.is_some()), ("round_steps", self.round_steps.is_some()), ("host", self.host.is_some())] {
            if on {
                set.push(key.to_string());
            }
        }
        set
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
        let spec = self.method.spec();
        for set in self.set_selection_keys() {
            let key = set.split(' ').next().unwrap_or_default();
            if !spec.keys.contains(&key) {
                return Err(format!("pruning.{set} applies to {}, not method = \"{}\"", registry::readers_of(key).join(", "), spec.name));
            }
        }
        if self.scope == Scope::Global && self.granularity == Granularity::Unit {
            return Err("pruning.granularity = \"unit\" keeps the same fraction of units in every layer; pruning.scope must be \"per_matrix\"".into());
        }
        if spec.keys.contains(&"calibration_samples") && self.calibration_samples == 0 {
            return Err("pruning.calibration_samples: expected at least 1".into());
        }
        if spec.target != registry::Target::Dense && self.warmup_steps + self.cooldown_steps >= total_steps {
            return Err(format!(
                "pruning.warmup_steps ({}) + pruning.cooldown_steps ({}) must be below the run's {} steps",
                self.warmup_steps, self.cooldown_steps, total_steps
            ));
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
        let schedule = CubicSchedule {
            initial_density: self.initial_density,
            final_density: self.final_density,
            warmup_steps: self.warmup_steps,
            cooldown_steps: self.cooldown_steps,
            total_steps,
        };
        (spec.build)(self, &registry::BuildContext { total_steps, schedule, nm })
    }
}
