//! Hard movement pruning (Sanh, Wolf & Rush 2020): one learned score per weight, initialised
//! to 0; the forward pass keeps the top-v fraction of scores of each matrix (or of all matrices
//! together with `scope = "global"`; whole heads and FFN neurons by summed scores with
//! `granularity = "unit"`); the scores learn
//! through the straight-through estimator, so ∂L/∂S_ij = (∂L/∂a_i)·W_ij·x_j, which accumulates
//! −W·∂L/∂W: weights moving away from zero gain score. Masked weights keep getting score
//! updates. Scores have their own AdamW group (lr 1e-2 by default, no weight decay).
//!
//! A variant that is not in the paper: `freeze_scores_at = t` applies the hard mask without the
//! straight-through term from step t on, so the scores get no gradient (none is computed, and
//! AdamW leaves them and their moments as they are) and the rest of the cubic ramp removes
//! weights by the ranking reached at t.
//!
//! Another, also ours: `compensate_bias = true` folds the mean output of the weights each step
//! removes into the layer's bias ([`crate::compensation`], where the measurement that motivates
//! it is described). And `fade_steps = D`: a weight that leaves the top-k fades out, its mask
//! value `M_t = max(hard_t, M_{t−1} − 1/D)`, instead of being cut at full size; in the paper's
//! long runs a weight the loss pushes towards zero has shrunk before it is cut, in a short run
//! it has not. The fading state is not checkpointed: a resumed run starts again from the hard
//! masks.

use crate::compensation::BiasCompensation;
use crate::mask::straight_through;
use crate::schedule::CubicSchedule;
use crate::{Granularity, ParamGroupSpec, Pruner, Scope};
use burn::tensor::Tensor;
use models::PrunableModel;

pub struct Movement {
    schedule: CubicSchedule,
    scope: Scope,
    granularity: Granularity,
    scores_lr: f64,
    freeze_from: Option<usize>,
    /// With `compensate_bias`: the bias compensation and the calibration examples it measures on.
    compensation: Option<(BiasCompensation, usize)>,
    /// With `fade_steps`: the steps a removal takes, and the masks of the last step.
    fade: Option<(usize, Vec<Tensor<2>>)>,
}

/// Steps between two measurements of the input means for the bias compensation.
pub const COMPENSATION_EVERY: usize = 50;

impl Movement {
    pub fn new(schedule: CubicSchedule, scope: Scope, scores_lr: f64) -> Self {
        Self { schedule, scope, granularity: Granularity::Weight, scores_lr, freeze_from: None, compensation: None, fade: None }
    }

    /// Folds the removed weights' mean output into the biases, input means measured on
    /// `calibration_samples` training examples (`None`: the paper's method).
    pub fn with_bias_compensation(mut self, calibration_samples: Option<usize>) -> Self {
        self.compensation = calibration_samples.map(|n| (BiasCompensation::new(COMPENSATION_EVERY), n));
        self
    }

    /// Whole heads and FFN neurons, each scored by the sum of its weights' movement scores.
    pub fn with_granularity(mut self, granularity: Granularity) -> Self {
        self.granularity = granularity;
        self
    }

    /// From step `at` on, the scores get no optimizer updates (`None`: they learn throughout).
    pub fn with_frozen_scores_from(mut self, at: Option<usize>) -> Self {
        self.freeze_from = at;
        self
    }

    /// The top-k masks of `step` from the current scores (no state changes).
    fn hard_masks(&self, model: &dyn PrunableModel, scores: &[Tensor<2>], step: usize) -> Vec<Tensor<2>> {
        let groups = if self.granularity == Granularity::Unit { model.unit_groups() } else { Vec::new() };
        self.granularity.masks(self.scope, &groups, scores, self.schedule.density(step))
    }

    /// Removed weights fade out over `steps` steps (`None`: cut at once, the paper's method).
    pub fn with_fade(mut self, steps: Option<usize>) -> Self {
        self.fade = steps.map(|d| (d.max(1), Vec::new()));
        self
    }

    /// `max(hard, previous − 1/D)` per matrix, and remembers it (the hard masks themselves on
    /// the first step).
    fn faded(&mut self, hard: Vec<Tensor<2>>) -> Vec<Tensor<2>> {
        let Some((d, previous)) = &mut self.fade else { return hard };
        let step = 1.0 / *d as f64;
        let masks: Vec<Tensor<2>> = if previous.len() == hard.len() {
            hard.into_iter().zip(previous.iter()).map(|(h, p)| h.max_pair(p.clone() - step)).collect()
        } else {
            hard
        };
        *previous = masks.clone();
        masks
    }

    /// Whether the scores are frozen at `step`.
    pub fn scores_frozen(&self, step: usize) -> bool {
        self.freeze_from.is_some_and(|at| step >= at)
    }
}

impl Pruner for Movement {
    fn name(&self) -> &'static str {
        "movement"
    }

    fn init(&mut self, model: &mut dyn PrunableModel) {
        crate::mask::init_scores(model, 0.0);
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        let scores = crate::mask::scores(model, "movement");
        let hard = self.hard_masks(model, &scores, step);
        let hard = self.faded(hard);
        let frozen = self.scores_frozen(step);
        if let Some((c, _)) = &mut self.compensation {
            c.apply(model, &hard, step);
        }
        let mut layers = model.prunable_layers_mut();
        for (((_, layer), hard), scores) in layers.iter_mut().zip(hard).zip(scores) {
            layer.mask = Some(if frozen { hard } else { straight_through(hard, scores) });
        }
    }

    /// Evaluation copies get the masks of the last training step and leave the options' state
    /// (fading masks, the masks the compensation last saw, the bias) alone; without options,
    /// the training masks as the paper's method sets them. At the run's last step (the final
    /// model) the masks are the hard top-k: weights still fading then are cut, so the model
    /// ends at the schedule's density.
    fn eval_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        if self.fade.is_none() && self.compensation.is_none() {
            return self.apply_masks(model, step);
        }
        let last = step + 1 >= self.schedule.total_steps;
        let masks = match &self.fade {
            Some((_, previous)) if !previous.is_empty() && !last => previous.clone(),
            _ => {
                let scores = crate::mask::scores(model, "movement");
                self.hard_masks(model, &scores, step)
            }
        };
        crate::mask::set_masks(model, &masks);
    }

    fn calibration_request(&self, step: usize) -> Option<usize> {
        let (c, n) = self.compensation.as_ref()?;
        c.wants_calibration(step, self.schedule.warmup_steps, self.schedule.total_steps).then_some(*n)
    }

    fn calibrate(&mut self, _model: &mut dyn PrunableModel, acts: &models::UnitActivations) {
        if let Some((c, _)) = &mut self.compensation {
            c.calibrate(acts);
        }
    }

    fn param_groups(&self) -> Vec<ParamGroupSpec> {
        vec![ParamGroupSpec { path_contains: "mask_scores".into(), lr: self.scores_lr, weight_decay: 0.0, clipped: true }]
    }

    fn scheduled_density(&self, step: usize) -> f64 {
        self.schedule.density(step)
    }
}

/// `method = "movement"`.
pub fn build(c: &crate::PruningConfig, b: &crate::registry::BuildContext) -> Result<Box<dyn crate::Pruner>, String> {
    if let Some(at) = c.freeze_scores_at {
        if at >= b.total_steps {
            return Err(format!("pruning.freeze_scores_at ({at}) must be below the run's {} steps", b.total_steps));
        }
    }
    if c.fade_steps == Some(0) {
        return Err("pruning.fade_steps: expected at least 1".into());
    }
    Ok(Box::new(Movement::new(b.schedule, c.scope, c.scores_lr_or(1e-2)?).with_granularity(c.granularity).with_frozen_scores_from(c.freeze_scores_at).with_bias_compensation(c.compensate_bias.then_some(c.calibration_samples)).with_fade(c.fade_steps)))
}
