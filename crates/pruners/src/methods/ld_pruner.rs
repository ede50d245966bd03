//! LD-Pruner's output-space criterion (Castells et al., CVPR 2024 Workshops, arXiv 2404.11936),
//! applied to units: a unit's importance is how much removing it moves the distribution of the
//! model's output representation (the classifier's input) over a calibration set,
//! `score = ‖μ(Z) − μ(Z')‖₂ + ‖σ(Z) − σ(Z')‖₂` (per-coordinate mean and population standard
//! deviation over the M examples; Z with the model as it stands, Z' with the unit removed).
//! The least important units go at `warmup_steps`; the run's training after it is the
//! fine-tune. Label-free ("task-agnostic"). ../shared/METHODS_SEED1.md §8.
//!
//! Our choices where the paper is silent: the operators are the model's units (filters, heads,
//! FFN neurons) rather than whole blocks, and the one modification is removal; each group (a
//! conv's filters, a layer's heads, its neurons) loses the same fraction of its units, lowest
//! scores first, as `granularity = "unit"` does for the other criteria (the paper removes
//! operators until a compute budget is met; ranked globally by this score, a CNN's removals
//! fell on the units that own the most weights: 96.7% of the weights went at 50% of the units
//! and the accuracy with them); the norm is L2 (§8(a)). Cost: M forward passes per unit.

use crate::calibration::{LossCalibration, LossRequest};
use crate::units::{removal_counts, UnitRemoval};
use crate::Pruner;
use models::PrunableModel;

/// Per-coordinate mean and population standard deviation of `rows` `[n, dim]` (row-major).
pub fn moments(rows: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (rows.len() / dim.max(1)).max(1) as f64;
    let mut mean = vec![0.0; dim];
    for r in rows.chunks(dim.max(1)) {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v as f64 / n;
        }
    }
    let mut var = vec![0.0; dim];
    for r in rows.chunks(dim.max(1)) {
        for ((s, &v), m) in var.iter_mut().zip(r).zip(&mean) {
            *s += (v as f64 - m).powi(2) / n;
        }
    }
    (mean, var.into_iter().map(f64::sqrt).collect())
}

/// `‖μ − μ'‖₂ + ‖σ − σ'‖₂` between two sets of representations of the same examples.
pub fn score(orig: &[f32], modified: &[f32], dim: usize) -> f64 {
    score_against(&moments(orig, dim), modified, dim)
}

/// [`score`] with the first set's moments already computed.
pub fn score_against((m0, s0): &(Vec<f64>, Vec<f64>), modified: &[f32], dim: usize) -> f64 {
    let (m1, s1) = moments(modified, dim);
    let l2 = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    l2(m0, &m1) + l2(s0, &s1)
}

pub struct LdPruner {
    removal: UnitRemoval,
    /// Per group, each unit's score.
    pub scores: Vec<Vec<f64>>,
}

impl LdPruner {
    pub fn new(prune_step: usize, density: f64, calibration_samples: usize) -> Self {
        Self { removal: UnitRemoval::new("ld_pruner", prune_step, density, calibration_samples), scores: Vec::new() }
    }
}

impl Pruner for LdPruner {
    fn name(&self) -> &'static str {
        "ld_pruner"
    }

    fn loss_request(&self, step: usize) -> Option<LossRequest> {
        self.removal.loss_request(step, false)
    }

    fn calibrate_loss(&mut self, model: &mut dyn PrunableModel, data: &mut LossCalibration) {
        let groups = model.unit_groups();
        assert!(!groups.is_empty(), "ld_pruner: the model declares no units (filters, heads, neurons)");
        let base = data.probe.outputs_without(&[]);
        let base_moments = moments(&base.features, base.dim);
        self.scores = groups
            .iter()
            .enumerate()
            .map(|(g, group)| (0..group.count).map(|u| score_against(&base_moments, &data.probe.outputs_without(&[(g, u)]).features, base.dim)).collect())
            .collect();
        let removals = removal_counts(&groups, self.removal.density);
        let keep: Vec<Vec<f32>> = groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let mut k = vec![1.0; group.count];
                let mut order: Vec<usize> = (0..group.count).collect();
                order.sort_by(|&a, &b| self.scores[g][a].total_cmp(&self.scores[g][b]).then(a.cmp(&b)));
                for &u in &order[..removals[g]] {
                    k[u] = 0.0;
                }
                k
            })
            .collect();
        for (g, group) in groups.iter().enumerate() {
            tracing::info!("ld_pruner: {}: removes {} of {} units", group.name, keep[g].iter().filter(|&&k| k == 0.0).count(), group.count);
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
    Ok(Box::new(LdPruner::new(c.warmup_steps, c.final_density, c.calibration_samples)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_by_hand() {
        // METHODS_SEED1.md §8(e): Z = [[0,0],[2,2]]: μ = [1,1], σ = [1,1].
        let z = [0.0, 0.0, 2.0, 2.0];
        let (m, s) = moments(&z, 2);
        assert_eq!((m, s), (vec![1.0, 1.0], vec![1.0, 1.0]));
        assert_eq!(score(&z, &z, 2), 0.0);
        // Removal collapses both to [1,1]: μ unchanged, σ → 0: score √2.
        assert!((score(&z, &[1.0, 1.0, 1.0, 1.0], 2) - 2f64.sqrt()).abs() < 1e-12);
        // Invariant to the order of the samples.
        let a = [0.5, -1.0, 2.0, 3.0, 1.0, 0.0];
        let b = [1.5, 1.0, 0.0, 1.0, 2.0, 2.0];
        let (ar, br) = ([1.0, 0.0, 0.5, -1.0, 2.0, 3.0], [2.0, 2.0, 1.5, 1.0, 0.0, 1.0]);
        assert!((score(&a, &b, 2) - score(&ar, &br, 2)).abs() < 1e-12);
    }
}
