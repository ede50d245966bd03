//! Adaptive activation-based structured pruning (AAP: Zhao, Jain, Zhao, arXiv 2201.10520, code
//! `kaiqi123/Automatic-Attention-Pruning`): a unit's importance is its mean activation
//! (a filter: the spatial mean of its post-ReLU map, averaged over the calibration images; an
//! FFN/MLP neuron: its mean post-activation value; a head: the mean of its context values); in
//! rounds, the units at or under a per-layer threshold go, the network retrains for
//! `round_steps` steps, and an adaptive controller raises the threshold while the target holds
//! and rolls back to the last good round when it breaks. ../shared/METHODS_SEED1.md §6.
//!
//! - Per-layer threshold `T_l = T · nnz_l / Σ_k nnz_k` (nnz: non-zero weights of the group's
//!   matrices), as the authors' code.
//! - Scores are divided by their layer's mean score at the first round (our choice: the
//!   paper's raw threshold with λ = 1 was tuned to CIFAR ResNet activations, and raw means differ
//!   between layers by orders of magnitude — a conv's BatchNorm'd maps against the head's hidden
//!   neurons — so that one global T, tried first, emptied the last conv while the target, counted
//!   in units, still held; normalised per layer, `T_l = 1` means "below the layer's average").
//! - Policies (`adaptive_target`): `units` (default; the fraction of units removed must stay at
//!   or under 1 − final_density), `params` / `flops` (the fraction of prunable weights, or of
//!   their multiply–accumulates per example, removed — FLOPs computed as FLOPs: each matrix's
//!   kept weights times its uses per example; the authors' FLOP mode subtracts a parameter
//!   count from a FLOP count, which we do not copy), `accuracy` (calibration accuracy at most
//!   `accuracy_loss` under the first round's).
//! - Rollback restores the masks of the last good round (the units come back with the weights
//!   they had when removed: a masked weight gets no gradient); the other weights keep their
//!   training, as the authors' code keeps the current weights (LR rewinding, not weight
//!   rewinding). The run's last round is checked at the end for the structural policies.

use crate::calibration::{LossCalibration, LossRequest};
use crate::units::masks_from_keep;
use crate::Pruner;
use burn::tensor::Tensor;
use models::{PrunableModel, UnitActivations};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AdaptiveTarget {
    #[default]
    Units,
    Params,
    Flops,
    Accuracy,
}

/// The authors' threshold controller (`pruning_utils.apdaptive_pruning_given_target`), as a
/// pure state machine: [`Controller::threshold`] is the threshold of the coming round,
/// [`Controller::report`] says whether the round's result held the target and returns the good
/// round to roll back to when it did not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Controller {
    pub threshold: f64,
    pub lambda: f64,
    /// Good rounds: (round, its threshold, λ then).
    pub good: Vec<(usize, f64, f64)>,
    pub failures: usize,
    pub round: usize,
}

impl Controller {
    pub fn new(threshold: f64, lambda: f64) -> Self {
        Self { threshold, lambda, good: Vec::new(), failures: 0, round: 0 }
    }

    /// The outcome of the round just run at `self.threshold`; returns the good round whose
    /// state to restore after a violation (`None`: keep the current state).
    pub fn report(&mut self, ok: bool) -> Option<usize> {
        let round = self.round;
        self.round += 1;
        if ok {
            self.good.push((round, self.threshold, self.lambda));
            self.failures = 0;
            self.threshold += self.lambda;
            return None;
        }
        let &(b, t_b, lambda_b) = self.good.last()?;
        self.failures += 1;
        if self.failures < 3 {
            self.lambda = lambda_b / f64::powi(2.0, self.failures as i32);
            self.threshold = t_b + self.lambda;
        } else {
            self.lambda /= 2.0;
            self.threshold = t_b;
            self.good.pop();
            self.failures = 0;
        }
        Some(b)
    }
}

pub struct Activation {
    start: usize,
    round_steps: usize,
    /// The run's length: the last round is only judged (and rolled back if it broke the
    /// target), never followed by another removal, so that `round_steps` of training follow
    /// the final state.
    total_steps: usize,
    /// Rounds run so far (round r runs at step `start + r·round_steps`).
    rounds_seen: usize,
    /// A removal was made that the next round judges.
    pending: bool,
    density: f64,
    calibration_samples: usize,
    target: AdaptiveTarget,
    accuracy_loss: f64,
    controller: Controller,
    /// Scores from the activations of the current round, normalised.
    scores: Option<Vec<Vec<f64>>>,
    /// Per group, its mean score at the first round.
    scale: Option<Vec<f64>>,
    base_accuracy: Option<f64>,
    /// Kept units per group now, and at each good round (by round index).
    keep: Option<Vec<Vec<f32>>>,
    snapshots: Vec<(usize, Vec<Vec<f32>>)>,
    masks: Option<Vec<Tensor<2>>>,
    /// (round, threshold, reduction or accuracy drop, ok) for the report.
    pub history: Vec<(usize, f64, f64, bool)>,
}

impl Activation {
    pub fn new(start: usize, round_steps: usize, total_steps: usize, density: f64, calibration_samples: usize, target: AdaptiveTarget, accuracy_loss: f64) -> Self {
        Self {
            start,
            round_steps: round_steps.max(1),
            total_steps,
            rounds_seen: 0,
            pending: false,
            density,
            calibration_samples,
            target,
            accuracy_loss,
            controller: Controller::new(0.0, 1.0),
            scores: None,
            scale: None,
            base_accuracy: None,
            keep: None,
            snapshots: Vec::new(),
            masks: None,
            history: Vec::new(),
        }
    }

    fn is_round(&self, step: usize) -> bool {
        step >= self.start && (step - self.start) % self.round_steps == 0 && step + self.round_steps <= self.total_steps
    }

    /// Whether a removal may follow the judgement at this round: only if another round (a
    /// judgement after `round_steps` of training) still fits in the run.
    fn may_prune(&self, step: usize) -> bool {
        step + 2 * self.round_steps <= self.total_steps
    }

    /// The fraction removed under the structural policy, from the current masks.
    fn reduction(&self, model: &dyn PrunableModel) -> f64 {
        let keep = self.keep.as_ref();
        match self.target {
            AdaptiveTarget::Units | AdaptiveTarget::Accuracy => {
                let (mut kept, mut all) = (0.0, 0.0);
                for (g, group) in model.unit_groups().iter().enumerate() {
                    all += group.count as f64;
                    kept += keep.map(|k| k[g].iter().map(|&v| v as f64).sum()).unwrap_or(group.count as f64);
                }
                1.0 - kept / all
            }
            AdaptiveTarget::Params | AdaptiveTarget::Flops => {
                let uses = if self.target == AdaptiveTarget::Flops { model.uses_per_example() } else { vec![1; model.prunable_layers().len()] };
                let (mut nz, mut all) = (0.0, 0.0);
                for ((_, l), u) in model.prunable_layers().iter().zip(uses) {
                    let [r, c] = l.dims();
                    all += (r * c * u) as f64;
                    nz += l.effective_weight().detach().not_equal_elem(0.0).int().sum().into_scalar::<i64>() as f64 * u as f64;
                }
                1.0 - nz / all
            }
        }
    }

    /// Removes the units at or under the current threshold (on top of the kept set).
    fn prune_round(&mut self, model: &dyn PrunableModel) {
        let groups = model.unit_groups();
        let scores = self.scores.take().expect("activation: scores before a round");
        let nnz: Vec<f64> = groups
            .iter()
            .map(|g| {
                g.members
                    .iter()
                    .map(|m| model.prunable_layers()[m.layer].1.effective_weight().detach().not_equal_elem(0.0).int().sum().into_scalar::<i64>() as f64)
                    .sum()
            })
            .collect();
        let total: f64 = nnz.iter().sum::<f64>().max(1.0);
        let mut keep = self.keep.clone().unwrap_or_else(|| groups.iter().map(|g| vec![1.0; g.count]).collect());
        for (g, group) in groups.iter().enumerate() {
            let t_l = self.controller.threshold * nnz[g] / total;
            for u in 0..group.count {
                if scores[g][u] <= t_l {
                    keep[g][u] = 0.0;
                }
            }
            if keep[g].iter().all(|&k| k == 0.0) {
                // At least one unit: the best-scoring one.
                let best = (0..group.count).max_by(|&a, &b| scores[g][a].total_cmp(&scores[g][b])).unwrap_or(0);
                keep[g][best] = 1.0;
            }
        }
        self.set_keep(model, keep);
    }

    fn set_keep(&mut self, model: &dyn PrunableModel, keep: Vec<Vec<f32>>) {
        let dims: Vec<[usize; 2]> = model.prunable_layers().iter().map(|(_, l)| l.dims()).collect();
        let device = model.prunable_layers()[0].1.weight.val().device();
        self.masks = Some(masks_from_keep(&model.unit_groups(), &keep, &dims, &device));
        self.keep = Some(keep);
    }

    /// Judges the round just trained (`accuracy`: the calibration accuracy now, for that
    /// policy), rolls back on a violation, and moves the threshold.
    /// Returns whether it rolled back.
    fn judge(&mut self, model: &dyn PrunableModel, accuracy: Option<f64>) -> bool {
        let round = self.controller.round;
        let (value, ok) = match (self.target, accuracy, self.base_accuracy) {
            (AdaptiveTarget::Accuracy, Some(a), Some(a0)) => (a0 - a, a0 - a <= self.accuracy_loss),
            _ => {
                let r = self.reduction(model);
                (r, r <= 1.0 - self.density + 1e-12)
            }
        };
        self.history.push((round, self.controller.threshold, value, ok));
        tracing::info!("activation: round {round} at threshold {:.4}: {:?} {value:.4} ({})", self.controller.threshold, self.target, if ok { "holds" } else { "violated" });
        if ok {
            self.snapshots.push((round, self.keep.clone().unwrap_or_default()));
        }
        let rolled_back = if let Some(b) = self.controller.report(ok) {
            let keep = self.snapshots.iter().rev().find(|(r, _)| *r == b).map(|(_, k)| k.clone()).expect("a snapshot of every good round");
            self.set_keep(model, keep);
            tracing::info!("activation: back to round {b} ({:.4} of the units removed)", 1.0 - self.scheduled_density(usize::MAX));
            true
        } else {
            false
        };
        // Dropped good rounds are not rolled back to again.
        let good: Vec<usize> = self.controller.good.iter().map(|g| g.0).collect();
        self.snapshots.retain(|(r, _)| good.contains(r));
        rolled_back
    }
}

/// Per group, per unit: the mean activation over the calibration rows (and the unit's columns).
fn mean_activations(groups: &[models::UnitGroup], acts: &UnitActivations) -> Vec<Vec<f64>> {
    groups
        .iter()
        .zip(&acts.groups)
        .map(|(g, a)| {
            let [rows, _] = a.dims();
            let per_col: Vec<f32> = a.clone().sum_dim(0).to_data().convert::<f32>().try_to_vec().expect("f32 activations");
            (0..g.count).map(|u| per_col[u * g.width..(u + 1) * g.width].iter().map(|&v| v as f64).sum::<f64>() / (rows * g.width).max(1) as f64).collect()
        })
        .collect()
}

impl Pruner for Activation {
    fn name(&self) -> &'static str {
        "activation"
    }

    fn calibration_request(&self, step: usize) -> Option<usize> {
        self.is_round(step).then_some(self.calibration_samples)
    }

    fn loss_request(&self, step: usize) -> Option<LossRequest> {
        self.is_round(step).then_some(LossRequest { examples: self.calibration_samples, gradients: false })
    }

    fn calibrate(&mut self, model: &mut dyn PrunableModel, acts: &UnitActivations) {
        let groups = model.unit_groups();
        assert!(!groups.is_empty(), "activation: the model declares no units (filters, heads, neurons)");
        let raw = mean_activations(&groups, acts);
        let scale = self
            .scale
            .get_or_insert_with(|| raw.iter().map(|v| (v.iter().sum::<f64>() / v.len().max(1) as f64).abs().max(1e-12)).collect())
            .clone();
        self.scores = Some(raw.into_iter().zip(scale).map(|(v, s)| v.into_iter().map(|x| x / s).collect()).collect());
    }

    fn calibrate_loss(&mut self, model: &mut dyn PrunableModel, data: &mut LossCalibration) {
        let accuracy = (self.target == AdaptiveTarget::Accuracy).then(|| data.probe.accuracy_without(&[]));
        let mut rolled_back = false;
        if self.base_accuracy.is_none() {
            self.base_accuracy = Some(accuracy.unwrap_or(f64::NAN));
        } else if self.pending {
            rolled_back = self.judge(model, accuracy);
            self.pending = false;
        }
        let step = self.start + self.rounds_seen * self.round_steps;
        self.rounds_seen += 1;
        // After a rollback the scores at hand were measured on the over-pruned model (the units
        // just restored read as dead): the restored model trains one round and is scored afresh
        // before the next removal, at the threshold the controller set.
        if rolled_back {
            self.scores = None;
        } else if self.may_prune(step) {
            self.prune_round(model);
            self.pending = true;
        } else {
            self.scores = None;
        }
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        if step < self.start {
            return;
        }
        let masks = self.masks.as_ref().expect("activation: the trainer must calibrate at the first round");
        crate::mask::set_masks(model, masks);
    }

    /// The last state was judged `round_steps` before the end (see `is_round`); what trained
    /// since is what is kept. (Judging here instead would roll back to units whose BatchNorm
    /// statistics drifted while they were masked, with no training left to repair them.)
    fn finalize(&mut self, model: &mut dyn PrunableModel, step: usize) {
        self.apply_masks(model, step);
        crate::mask::fold_masks(model);
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({
            "history": self.history, "controller": self.controller, "rounds_seen": self.rounds_seen, "pending": self.pending, "keep": self.keep,
            "snapshots": self.snapshots, "scale": self.scale, "base_accuracy": self.base_accuracy,
        })
    }

    fn load_state(&mut self, state: &serde_json::Value, model: &dyn PrunableModel) -> Result<(), String> {
        if state.is_null() {
            return Ok(());
        }
        let get = |k: &str| state.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let e = |k: &'static str| move |err: serde_json::Error| format!("activation state: {k}: {err}");
        self.history = serde_json::from_value(get("history")).map_err(e("history"))?;
        self.controller = serde_json::from_value(get("controller")).map_err(e("controller"))?;
        self.rounds_seen = serde_json::from_value(get("rounds_seen")).map_err(e("rounds_seen"))?;
        self.pending = serde_json::from_value(get("pending")).map_err(e("pending"))?;
        self.snapshots = serde_json::from_value(get("snapshots")).map_err(e("snapshots"))?;
        self.scale = serde_json::from_value(get("scale")).map_err(e("scale"))?;
        self.base_accuracy = serde_json::from_value(get("base_accuracy")).map_err(e("base_accuracy"))?;
        let keep: Option<Vec<Vec<f32>>> = serde_json::from_value(get("keep")).map_err(e("keep"))?;
        if let Some(k) = keep {
            self.set_keep(model, k);
        }
        Ok(())
    }

    fn scheduled_density(&self, step: usize) -> f64 {
        if step < self.start {
            return 1.0;
        }
        match &self.keep {
            Some(k) => {
                let (kept, all) = k.iter().fold((0.0, 0.0), |(a, b), g| (a + g.iter().map(|&v| v as f64).sum::<f64>(), b + g.len() as f64));
                kept / all.max(1.0)
            }
            None => 1.0,
        }
    }
}

pub fn build(c: &crate::PruningConfig, b: &crate::registry::BuildContext) -> Result<Box<dyn Pruner>, String> {
    let target = c.adaptive_target.unwrap_or_default();
    let loss = c.accuracy_loss.unwrap_or(0.0);
    if target == AdaptiveTarget::Accuracy && !(0.0..1.0).contains(&loss) {
        return Err(format!("pruning.accuracy_loss: expected a fraction in [0, 1), found {loss}"));
    }
    if c.accuracy_loss.is_some() && target != AdaptiveTarget::Accuracy {
        return Err("pruning.accuracy_loss applies with adaptive_target = \"accuracy\"".into());
    }
    let rounds_span = b.total_steps.saturating_sub(c.warmup_steps + c.cooldown_steps);
    let round_steps = c.round_steps.unwrap_or((rounds_span / 10).max(1));
    if round_steps == 0 {
        return Err("pruning.round_steps: expected at least 1".into());
    }
    if c.warmup_steps + 2 * round_steps > b.total_steps {
        return Err(format!(
            "pruning.round_steps ({round_steps}): two rounds must fit after warmup_steps ({}) in the run's {} steps",
            c.warmup_steps, b.total_steps
        ));
    }
    Ok(Box::new(Activation::new(c.warmup_steps, round_steps, b.total_steps, c.final_density, c.calibration_samples, target, loss)))
}

#[cfg(test)]
mod tests {
    use super::Controller;

    #[test]
    fn the_controller_follows_the_authors_sequence() {
        // METHODS_SEED1.md §6(e): oracle "ok iff T ≤ 2.5", T₀ = 0, λ = 1.
        let want = [0.0, 1.0, 2.0, 3.0, 2.5, 3.0, 2.75, 2.625, 2.5, 2.5625, 2.53125, 2.515625, 2.5, 2.5078125];
        let mut c = Controller::new(0.0, 1.0);
        for (r, &w) in want.iter().enumerate() {
            assert_eq!(c.threshold, w, "round {r}");
            let ok = c.threshold <= 2.5;
            let back = c.report(ok);
            assert_eq!(back.is_some(), !ok, "round {r}: a violation rolls back");
        }
    }
}
