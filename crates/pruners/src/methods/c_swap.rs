//! C-SWAP, causal one-shot structured pruning (Bauvin, Baret & Ahmad, BMVC 2025, arXiv
//! 2510.18636; no code found): a unit goes when taking it out does not significantly lower the
//! model's confidence in the correct class on calibration data, tested one-sided; detrimental
//! units first, neutral ones next, critical ones kept; no fine-tuning of its own.
//! ../shared/METHODS_SEED1.md §7.
//!
//! For unit n and calibration example x: `Δ_n(x) = p_y(x) − p_y^{do(n=0)}(x)`, the drop of the
//! softmax probability of the true class when the unit is removed (its slices zeroed: the loop's
//! removal probe). Over the M examples, `ξ_n = mean Δ`, `z_n = ξ_n / (s/√M)` (s the sample
//! standard deviation):
//! - critical if `z_n > Z` (removal hurts), detrimental if `z_n < −Z` (removal helps), neutral
//!   otherwise; `Z = 1.645`, the one-sided 5% level of the precursor's test.
//!
//! Our choices where the paper is silent:
//! - the effect is the true class's probability, not its logit (the wording; a logit is
//!   not moved by a unit that only pushes a wrong class, which the probability sees);
//! - the examples are the calibration examples the model classifies correctly (as the
//!   precursor's code; all of them if it gets none right);
//! - progressive: the budget (1 − final_density of all units, each group keeping one) is taken
//!   in `rounds` chunks (default 4); each chunk is the next passing units in order
//!   (detrimental by ascending ξ, then neutral by ascending |ξ|), and the remaining units are
//!   scored again, on the model with the chunk removed, before the next; it stops at the budget
//!   or when no unit passes (all critical): the run then keeps more than asked, and says so;
//! - the units compete globally (a head beside a neuron beside a filter: the test does not
//!   care what a unit is); cost: M forward passes per unit and round.

use crate::calibration::{LossCalibration, LossRequest, ProbeOutputs};
use crate::units::{take_within_groups, UnitRemoval};
use crate::Pruner;
use models::PrunableModel;

/// The one-sided 5% critical value of the standard normal.
pub const Z: f64 = 1.645;

/// A unit's class under the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Critical,
    Neutral,
    Detrimental,
}

/// `(ξ, z)` of the drops `Δ`: their mean and the one-sample z statistic. No spread: z is 0 for a
/// zero mean, ±∞ otherwise.
pub fn z_test(drops: &[f64]) -> (f64, f64) {
    let m = drops.len().max(1) as f64;
    let mean = drops.iter().sum::<f64>() / m;
    let var = if drops.len() > 1 { drops.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (m - 1.0) } else { 0.0 };
    let se = (var / m).sqrt();
    let z = if se > 0.0 {
        mean / se
    } else if mean == 0.0 {
        0.0
    } else {
        mean.signum() * f64::INFINITY
    };
    (mean, z)
}

pub fn classify(z: f64) -> Effect {
    if z > Z {
        Effect::Critical
    } else if z < -Z {
        Effect::Detrimental
    } else {
        Effect::Neutral
    }
}

/// One unit's score.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnitEffect {
    pub group: usize,
    pub unit: usize,
    pub xi: f64,
    pub z: f64,
    pub effect: Effect,
}

/// The passing units (not critical) in removal order: detrimental by ascending ξ, then neutral
/// by ascending |ξ|.
pub fn removal_order(effects: &[UnitEffect]) -> Vec<(usize, usize)> {
    let mut det: Vec<&UnitEffect> = effects.iter().filter(|e| e.effect == Effect::Detrimental).collect();
    det.sort_by(|a, b| a.xi.total_cmp(&b.xi));
    let mut neu: Vec<&UnitEffect> = effects.iter().filter(|e| e.effect == Effect::Neutral).collect();
    neu.sort_by(|a, b| a.xi.abs().total_cmp(&b.xi.abs()));
    det.into_iter().chain(neu).map(|e| (e.group, e.unit)).collect()
}

pub struct CSwap {
    removal: UnitRemoval,
    rounds: usize,
    /// The first round's scores of every unit.
    pub effects: Vec<UnitEffect>,
    /// Units removed, in order.
    pub removed: Vec<(usize, usize)>,
}

impl CSwap {
    pub fn new(prune_step: usize, density: f64, calibration_samples: usize, rounds: usize) -> Self {
        Self { removal: UnitRemoval::new("c_swap", prune_step, density, calibration_samples), rounds: rounds.max(1), effects: Vec::new(), removed: Vec::new() }
    }

    /// Scores every unit not yet removed: its drops on the examples `keep` of `base`.
    fn score(probe: &mut dyn crate::calibration::LossProbe, counts: &[usize], removed: &[(usize, usize)], base: &ProbeOutputs, keep: &[usize]) -> Vec<UnitEffect> {
        let p0 = base.true_class_probs();
        let mut gone: Vec<Vec<bool>> = counts.iter().map(|&n| vec![false; n]).collect();
        for &(g, u) in removed {
            gone[g][u] = true;
        }
        let mut out = Vec::new();
        for (g, &n) in counts.iter().enumerate() {
            for u in 0..n {
                if gone[g][u] {
                    continue;
                }
                let mut without = removed.to_vec();
                without.push((g, u));
                let p = probe.outputs_without(&without).true_class_probs();
                let drops: Vec<f64> = keep.iter().map(|&i| p0[i] - p[i]).collect();
                let (xi, z) = z_test(&drops);
                out.push(UnitEffect { group: g, unit: u, xi, z, effect: classify(z) });
            }
        }
        out
    }
}

impl Pruner for CSwap {
    fn name(&self) -> &'static str {
        "c_swap"
    }

    fn loss_request(&self, step: usize) -> Option<LossRequest> {
        self.removal.loss_request(step, false)
    }

    fn calibrate_loss(&mut self, model: &mut dyn PrunableModel, data: &mut LossCalibration) {
        let groups = model.unit_groups();
        assert!(!groups.is_empty(), "c_swap: the model declares no units (filters, heads, neurons)");
        let counts: Vec<usize> = groups.iter().map(|g| g.count).collect();
        let total: usize = counts.iter().sum();
        let budget = ((1.0 - self.removal.density) * total as f64).round() as usize;
        let chunk = budget.div_ceil(self.rounds).max(1);
        let mut remaining = counts.clone();
        self.removed.clear();
        for round in 0..self.rounds {
            if self.removed.len() >= budget {
                break;
            }
            let base = data.probe.outputs_without(&self.removed);
            let correct: Vec<usize> = base.correct().iter().enumerate().filter(|(_, &c)| c).map(|(i, _)| i).collect();
            let keep = if correct.is_empty() { (0..base.labels.len()).collect() } else { correct };
            let effects = Self::score(data.probe, &counts, &self.removed, &base, &keep);
            let n = |e: Effect| effects.iter().filter(|x| x.effect == e).count();
            tracing::info!(
                "c_swap round {}: {} units scored on {} examples: {} critical, {} neutral, {} detrimental",
                round + 1,
                effects.len(),
                keep.len(),
                n(Effect::Critical),
                n(Effect::Neutral),
                n(Effect::Detrimental)
            );
            let order = removal_order(&effects);
            if round == 0 {
                self.effects = effects;
            }
            let want = chunk.min(budget - self.removed.len());
            let taken = take_within_groups(&order, &mut remaining, want);
            if taken.is_empty() {
                break;
            }
            self.removed.extend(taken);
        }
        if self.removed.len() < budget {
            tracing::warn!("c_swap: only {} of the {budget} units asked for pass the test; the rest are critical and stay", self.removed.len());
        }
        let mut keep: Vec<Vec<f32>> = counts.iter().map(|&n| vec![1.0; n]).collect();
        for &(g, u) in &self.removed {
            keep[g][u] = 0.0;
        }
        self.removal.decide(model, &keep);
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        self.removal.apply(model, step);
    }

    fn state(&self) -> serde_json::Value {
        self.removal.state()
    }

    fn load_state(&mut self, state: &serde_json::Value, model: &dyn PrunableModel) -> Result<(), String> {
        self.removal.load_state(state, model)
    }

    fn scheduled_density(&self, step: usize) -> f64 {
        self.removal.density(step)
    }
}

pub fn build(c: &crate::PruningConfig, _b: &crate::registry::BuildContext) -> Result<Box<dyn Pruner>, String> {
    let rounds = c.rounds.unwrap_or(4);
    if rounds == 0 {
        return Err("pruning.rounds: expected at least 1".into());
    }
    Ok(Box::new(CSwap::new(c.warmup_steps, c.final_density, c.calibration_samples, rounds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_test_by_hand() {
        // METHODS_SEED1.md §7(e): Δ = [0.10, 0.12, 0.08, 0.10]: mean 0.10, s = 0.01633, z = 12.25.
        let (xi, z) = z_test(&[0.10, 0.12, 0.08, 0.10]);
        assert!((xi - 0.10).abs() < 1e-12);
        let s = (0.0008f64 / 3.0).sqrt();
        assert!((z - 0.10 / (s / 2.0)).abs() < 1e-9 && (z - 12.247).abs() < 1e-3, "{z}");
        assert_eq!(classify(z), Effect::Critical);
        assert_eq!(classify(-2.0), Effect::Detrimental);
        assert_eq!(classify(1.0), Effect::Neutral);
        assert_eq!(z_test(&[0.0, 0.0, 0.0]), (0.0, 0.0));
    }
}
