//! The gradient-flow criterion (Wan et al., ICASSP 2025, arXiv 2501.09464; the score is GraSP's,
//! Wang, Zhang & Grosse 2020): `S = −θ ⊙ (H g)`, g the gradient of the loss, H its Hessian;
//! removing θ_q changes ‖g‖² by about `2·S_q`, so the units whose removal raises the gradient
//! norm most (highest summed S) go first, and training converges fast after. Progressive soft
//! masks: at each round the selected units' masks fall linearly from 1 to 0 over `decay_steps`
//! while training continues; the run's last masks are binary. ../shared/METHODS_SEED1.md §4.
//!
//! Our choices where the papers are silent or do not apply:
//! - H·g by a central finite difference of gradients (`calibration::hessian_vector_product`):
//!   burn 0.22's autodiff has no double backward. θ, g and H are the prunable matrices' (the
//!   embeddings, biases and norms held fixed); g and Hg over `calibration_samples` training
//!   examples, the same dropout masks in every pass;
//! - units, not single weights: a unit's score is S summed over every slice it owns;
//! - rounds every `round_steps` over the cubic ramp (default a tenth of it), each group giving
//!   up the schedule's count (the same fraction per group as `granularity = "unit"`), highest
//!   score first among the units still in; `decay_steps` defaults to `round_steps`.

use crate::calibration::{hessian_vector_product, LossCalibration, LossRequest};
use crate::progressive::Rounds;
use crate::units::{keep_masks, unit_scores};
use crate::Pruner;
use burn::tensor::Tensor;
use models::PrunableModel;

/// The finite difference's shift, relative to the weights' norm.
pub const FD_REL: f64 = 1e-3;

pub struct GradientFlow {
    rounds: Rounds,
    decay_steps: usize,
    calibration_samples: usize,
    /// Per group, per unit: the step its mask started falling.
    pub selected: Vec<Vec<Option<usize>>>,
    /// The step of the last `loss_request` (the loop calls `calibrate_loss` right after it).
    pending_round: std::cell::Cell<usize>,
    /// The unit values and the masks built from them last (most steps change nothing: the
    /// masks are rebuilt only while some unit is between 1 and 0 or after a selection).
    cache: Option<(Vec<Vec<f32>>, Vec<Tensor<2>>)>,
}

/// The GraSP score of every weight: `−θ ⊙ Hg`.
pub fn weight_scores(theta: &[Tensor<2>], hg: &[Tensor<2>]) -> Vec<Tensor<2>> {
    theta.iter().zip(hg).map(|(t, h)| -(t.clone() * h.clone())).collect()
}

impl GradientFlow {
    pub fn new(rounds: Rounds, decay_steps: usize, calibration_samples: usize) -> Self {
        Self { rounds, decay_steps: decay_steps.max(1), calibration_samples, selected: Vec::new(), pending_round: std::cell::Cell::new(0), cache: None }
    }

    /// A unit's mask at `step`: 1 before its selection, then linearly to 0 over `decay_steps`.
    pub fn mask_value(&self, selected_at: Option<usize>, step: usize) -> f32 {
        match selected_at {
            None => 1.0,
            Some(s) => (1.0 - (step.saturating_sub(s) as f64 + 1.0) / self.decay_steps as f64).max(0.0) as f32,
        }
    }

    fn needs_more(&self, model: &dyn PrunableModel, step: usize) -> bool {
        if !self.rounds.is_round(step) {
            return false;
        }
        let groups = model.unit_groups();
        let targets = self.rounds.targets(&groups, step);
        targets.iter().enumerate().any(|(g, &t)| t > self.selected.get(g).map_or(0, |s| s.iter().filter(|x| x.is_some()).count()))
    }

    fn set(&mut self, model: &mut dyn PrunableModel, keep: Vec<Vec<f32>>) {
        if self.cache.as_ref().is_none_or(|(k, _)| *k != keep) {
            self.cache = Some((keep.clone(), keep_masks(model, &keep)));
        }
        let (_, masks) = self.cache.as_ref().expect("just set");
        crate::mask::set_masks(model, masks);
    }
}

impl Pruner for GradientFlow {
    fn name(&self) -> &'static str {
        "gradient_flow"
    }

    fn init(&mut self, model: &mut dyn PrunableModel) {
        self.selected = model.unit_groups().iter().map(|g| vec![None; g.count]).collect();
        assert!(!self.selected.is_empty(), "gradient_flow: the model declares no units (filters, heads, neurons)");
    }

    fn loss_request(&self, step: usize) -> Option<LossRequest> {
        // Whether this round selects anything is decided in calibrate_loss (it sees the model).
        self.pending_round.set(step);
        self.rounds.is_round(step).then_some(LossRequest { examples: self.calibration_samples, gradients: false })
    }

    fn calibrate_loss(&mut self, model: &mut dyn PrunableModel, data: &mut LossCalibration) {
        let step = self.pending_round.get();
        if self.needs_more(model, step) {
            self.select(model, data, step);
        }
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        if self.selected.iter().flatten().all(Option::is_none) {
            return;
        }
        let keep: Vec<Vec<f32>> = self.selected.iter().map(|g| g.iter().map(|&s| self.mask_value(s, step)).collect()).collect();
        self.set(model, keep);
    }

    fn finalize(&mut self, model: &mut dyn PrunableModel, _step: usize) {
        let keep: Vec<Vec<f32>> = self.selected.iter().map(|g| g.iter().map(|s| if s.is_some() { 0.0 } else { 1.0 }).collect()).collect();
        self.set(model, keep);
        crate::mask::fold_masks(model);
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "selected": self.selected })
    }

    fn load_state(&mut self, state: &serde_json::Value, _model: &dyn PrunableModel) -> Result<(), String> {
        if let Some(s) = state.get("selected") {
            self.selected = serde_json::from_value(s.clone()).map_err(|e| format!("gradient_flow state: {e}"))?;
        }
        Ok(())
    }

    fn scheduled_density(&self, step: usize) -> f64 {
        self.rounds.schedule.density(step)
    }
}

impl GradientFlow {
    /// The round at `step`: scores the units still in and marks the highest-scoring ones of each
    /// group until the group's target.
    pub fn select(&mut self, model: &mut dyn PrunableModel, data: &mut LossCalibration, step: usize) {
        let groups = model.unit_groups();
        let theta: Vec<Tensor<2>> = model.prunable_layers().iter().map(|(_, l)| l.effective_weight().detach().inner()).collect();
        let g = data.probe.gradients_at(&[]);
        let hg = hessian_vector_product(data.probe, &theta, &g, FD_REL);
        let s = weight_scores(&theta, &hg);
        let targets = self.rounds.targets(&groups, step);
        for (gi, group) in groups.iter().enumerate() {
            let scores: Vec<f32> = unit_scores(group, &s).to_data().convert::<f32>().try_to_vec().expect("f32 unit scores");
            let have = self.selected[gi].iter().filter(|x| x.is_some()).count();
            let mut free: Vec<usize> = (0..group.count).filter(|&u| self.selected[gi][u].is_none()).collect();
            free.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            for &u in free.iter().take(targets[gi].saturating_sub(have)) {
                self.selected[gi][u] = Some(step);
            }
        }
        tracing::info!("gradient_flow: step {step}: {} of {} units selected", self.selected.iter().flatten().filter(|x| x.is_some()).count(), self.selected.iter().map(Vec::len).sum::<usize>());
    }
}

pub fn build(c: &crate::PruningConfig, b: &crate::registry::BuildContext) -> Result<Box<dyn Pruner>, String> {
    let round_steps = c.round_steps.unwrap_or_else(|| crate::progressive::default_round_steps(&b.schedule));
    let decay_steps = c.decay_steps.unwrap_or(round_steps);
    if round_steps == 0 || decay_steps == 0 {
        return Err("pruning.round_steps and pruning.decay_steps: expected at least 1".into());
    }
    Ok(Box::new(GradientFlow::new(Rounds { schedule: b.schedule, round_steps }, decay_steps, c.calibration_samples)))
}
