//! DPM, the decay pruning method (Yang et al., arXiv 2406.03879; its repository holds no code):
//! the units a host criterion selects are not cut at once but decay to zero norm over N steps
//! while training goes on (smooth pruning), and a unit that resists — the optimizer keeps
//! pushing its norm back up — is released and replaced (self-rectifying).
//! ../shared/METHODS_SEED1.md §3.
//!
//! Smooth pruning, after each optimizer step, for a selected unit x (every slice it owns, one
//! joint norm): `x ← x · L_k / ‖x‖` with `L_k = L_init·(N − k − 1)/N`, `L_init` its norm when
//! selected, k = 0, 1, …: after N steps it is exactly 0, and then masked (hard-pruned).
//!
//! Self-rectifying (our rule; the paper's exact form was not found): `C_rate` = how much of the
//! scheduled decay the optimizer step undid, `(⟨x*, x̂⟩ − ‖x‖) / (L_init/N)`: the radial part of
//! the step (x as the last rescale left it, x* after the step) over one step of the schedule.
//! `C_len` counts consecutive steps with `C_rate > T_RATE` (the optimizer pushed back more than
//! half a decay step); at `C_len ≥ T_LEN` the unit is released — it stops decaying, keeps the
//! norm it has, and is not selected again while the group has other units to offer — and the
//! group's next unit by the host criterion starts decaying in its place, so the budget holds.
//! Two simpler rates were tried and release almost everything: the ratio of norms ‖x*‖/‖x‖ > 1
//! (a step's part orthogonal to x lengthens it too: 1,989 MiniLM units in 100 steps), and the
//! radial ratio ⟨x*, x⟩/‖x‖² > 1 (a useful unit's gradient always pulls it back a little, and
//! relative to a shrinking norm that little grows: 3,332 releases on the 480-unit CNN).
//!
//! Host criteria (`host`): `"magnitude"` (default; the unit's L2 norm, lowest first) or
//! `"movement"` (the first-order movement score `−Σ W ⊙ ∂L/∂W` over the unit's slices, from
//! gradients over `calibration_samples` training examples; lowest first). Selection: rounds
//! every `round_steps` over the cubic ramp (`progressive::Rounds`, the same fraction per group
//! as `granularity = "unit"`); `decay_steps` (N) defaults to `round_steps`.

use crate::calibration::{LossCalibration, LossRequest};
use crate::progressive::Rounds;
use crate::gates::host;
use crate::units::{keep_masks, scale_units, unit_scores, unit_sq_norms};
use crate::Pruner;
use burn::tensor::Tensor;
use models::PrunableModel;
use serde::{Deserialize, Serialize};

/// A decaying unit is released after this many consecutive steps of resistance …
pub const T_LEN: usize = 10;
/// … resistance meaning the optimizer undid more than this fraction of a decay step.
pub const T_RATE: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Host {
    #[default]
    Magnitude,
    Movement,
}

/// Where a unit stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum UnitState {
    Kept,
    /// Decaying: norm at selection, steps decayed, the norm the last rescale set, growth run.
    Decaying { l_init: f64, k: usize, last: f64, c_len: usize },
    /// Norm 0 and masked.
    Removed,
    /// Resisted: trains freely, never selected again.
    Released,
}

/// One decay step for a unit whose norm the optimizer step left at `norm`, `radial` being
/// `⟨x*, x⟩/‖x‖²` (1: the step did not move it along itself): the new state and the factor to
/// scale the unit by.
pub fn decay_step(state: UnitState, norm: f64, radial: f64, n: usize) -> (UnitState, f64) {
    let UnitState::Decaying { l_init, k, last, c_len } = state else { return (state, 1.0) };
    let step = l_init / n as f64;
    let c_rate = if step > 0.0 { (radial - 1.0) * last / step } else { 0.0 };
    let c_len = if c_rate > T_RATE { c_len + 1 } else { 0 };
    if c_len >= T_LEN {
        return (UnitState::Released, 1.0);
    }
    let target = l_init * (n as f64 - k as f64 - 1.0).max(0.0) / n as f64;
    let factor = if norm > 0.0 { target / norm } else { 0.0 };
    if k + 1 >= n {
        (UnitState::Removed, 0.0)
    } else {
        (UnitState::Decaying { l_init, k: k + 1, last: target, c_len }, factor)
    }
}

pub struct Decay {
    rounds: Rounds,
    decay_steps: usize,
    host: Host,
    calibration_samples: usize,
    pub units: Vec<Vec<UnitState>>,
    /// The host's last scores (lowest goes first).
    host_scores: Vec<Vec<f32>>,
    pending_round: std::cell::Cell<usize>,
    masks: Option<Vec<Tensor<2>>>,
    /// The prunable weights as the last rescale left them (for `C_rate`).
    prev: Option<Vec<Tensor<2>>>,
}

impl Decay {
    pub fn new(rounds: Rounds, decay_steps: usize, host: Host, calibration_samples: usize) -> Self {
        Self { rounds, decay_steps: decay_steps.max(1), host, calibration_samples, units: Vec::new(), host_scores: Vec::new(), pending_round: std::cell::Cell::new(0), masks: None, prev: None }
    }

    pub fn count(&self, f: impl Fn(&UnitState) -> bool) -> usize {
        self.units.iter().flatten().filter(|s| f(s)).count()
    }

    /// Starts the decay of group `g`'s lowest-scored kept units until `target` are decaying or
    /// removed.
    fn fill(&mut self, g: usize, target: usize, norms: &[f32]) {
        let taken = self.units[g].iter().filter(|s| matches!(s, UnitState::Decaying { .. } | UnitState::Removed)).count();
        let scores = &self.host_scores[g];
        let mut free: Vec<usize> = (0..self.units[g].len()).filter(|&u| self.units[g][u] == UnitState::Kept).collect();
        free.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
        // The budget first: with no kept unit left to offer, released ones are taken again.
        let mut again: Vec<usize> = (0..self.units[g].len()).filter(|&u| self.units[g][u] == UnitState::Released).collect();
        again.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
        free.extend(again);
        // A group keeps at least one unit.
        let room = self.units[g].iter().filter(|s| matches!(s, UnitState::Kept | UnitState::Released)).count().saturating_sub(1);
        for &u in free.iter().take(target.saturating_sub(taken).min(room)) {
            let l = (norms[u] as f64).sqrt();
            self.units[g][u] = UnitState::Decaying { l_init: l, k: 0, last: l, c_len: 0 };
        }
    }

    fn select(&mut self, model: &dyn PrunableModel, step: usize) {
        let groups = model.unit_groups();
        let targets = self.rounds.targets(&groups, step);
        let norms = unit_sq_norms(model);
        if self.host == Host::Magnitude {
            self.host_scores = norms.clone();
        }
        for g in 0..groups.len() {
            self.fill(g, targets[g], &norms[g]);
        }
        tracing::info!(
            "decay: step {step}: {} units decaying, {} removed, {} released",
            self.count(|s| matches!(s, UnitState::Decaying { .. })),
            self.count(|s| *s == UnitState::Removed),
            self.count(|s| *s == UnitState::Released)
        );
    }

    fn hard_masks(&mut self, model: &dyn PrunableModel, all_targets: bool) -> Vec<Tensor<2>> {
        let keep: Vec<Vec<f32>> = self
            .units
            .iter()
            .map(|g| g.iter().map(|s| if *s == UnitState::Removed || (all_targets && matches!(s, UnitState::Decaying { .. })) { 0.0 } else { 1.0 }).collect())
            .collect();
        keep_masks(model, &keep)
    }
}

impl Pruner for Decay {
    fn name(&self) -> &'static str {
        "decay"
    }

    fn init(&mut self, model: &mut dyn PrunableModel) {
        self.units = model.unit_groups().iter().map(|g| vec![UnitState::Kept; g.count]).collect();
        assert!(!self.units.is_empty(), "decay: the model declares no units (filters, heads, neurons)");
        self.host_scores = model.unit_groups().iter().map(|g| vec![0.0; g.count]).collect();
    }

    fn loss_request(&self, step: usize) -> Option<LossRequest> {
        self.pending_round.set(step);
        (self.host == Host::Movement && self.rounds.is_round(step)).then_some(LossRequest { examples: self.calibration_samples, gradients: true })
    }

    fn calibrate_loss(&mut self, model: &mut dyn PrunableModel, data: &mut LossCalibration) {
        let Some(grads) = &data.gradients else { return };
        let s: Vec<Tensor<2>> = model
            .prunable_layers()
            .iter()
            .enumerate()
            .map(|(m, (_, l))| -(l.weight.val().detach().inner() * grads.mean(m).inner()))
            .collect();
        self.host_scores = model.unit_groups().iter().map(|g| unit_scores(g, &s).to_data().convert::<f32>().try_to_vec().expect("f32 unit scores")).collect();
        let step = self.pending_round.get();
        self.select(model, step);
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        if self.host == Host::Magnitude && self.rounds.is_round(step) && self.pending_round.get() == step {
            // Once per round (apply_masks also runs on evaluation copies).
            self.pending_round.set(usize::MAX);
            self.select(model, step);
        }
        if let Some(m) = &self.masks {
            crate::mask::set_masks(model, m);
        }
    }

    fn eval_masks(&mut self, model: &mut dyn PrunableModel, _step: usize) {
        if let Some(m) = &self.masks {
            crate::mask::set_masks(model, m);
        }
    }

    fn after_step(&mut self, model: &mut dyn PrunableModel, _step: usize) {
        if !self.units.iter().flatten().any(|s| matches!(s, UnitState::Decaying { .. })) {
            return;
        }
        let norms = unit_sq_norms(model);
        let groups = model.unit_groups();
        let cur: Vec<Tensor<2>> = model.prunable_layers().iter().map(|(_, l)| l.weight.val().detach().inner()).collect();
        // ⟨x*, x⟩ / ‖x‖² per unit, x the weights the last rescale left.
        let rates: Option<Vec<Vec<f32>>> = self.prev.as_ref().map(|prev| {
            let dots: Vec<Tensor<2>> = cur.iter().zip(prev).map(|(a, b)| a.clone() * b.clone()).collect();
            let sq: Vec<Tensor<2>> = prev.iter().map(|b| b.clone().square()).collect();
            groups.iter().map(|g| host(unit_scores(g, &dots)).into_iter().zip(host(unit_scores(g, &sq))).map(|(d, s)| if s > 0.0 { d / s } else { 1.0 }).collect()).collect()
        });
        let mut factors: Vec<Vec<f32>> = Vec::with_capacity(self.units.len());
        let (mut released, mut removed) = (Vec::new(), false);
        for (g, states) in self.units.iter_mut().enumerate() {
            let mut f = vec![1.0f32; states.len()];
            for (u, s) in states.iter_mut().enumerate() {
                if !matches!(s, UnitState::Decaying { .. }) {
                    continue;
                }
                let rate = rates.as_ref().map_or(1.0, |r| r[g][u] as f64);
                let (next, factor) = decay_step(*s, (norms[g][u] as f64).sqrt(), rate, self.decay_steps);
                if next == UnitState::Released {
                    released.push(g);
                }
                removed |= next == UnitState::Removed;
                *s = next;
                f[u] = factor as f32;
            }
            factors.push(f);
        }
        scale_units(model, &factors);
        self.prev = Some(model.prunable_layers().iter().map(|(_, l)| l.weight.val().detach().inner()).collect());
        // A released unit's place goes to the group's next unit by the host criterion.
        for g in released {
            let target = self.units[g].iter().filter(|s| matches!(s, UnitState::Decaying { .. } | UnitState::Removed)).count() + 1;
            tracing::info!("decay: a unit of {} resisted and was released", groups[g].name);
            self.fill(g, target, &norms[g]);
        }
        if removed {
            self.masks = Some(self.hard_masks(model, false));
        }
    }

    fn finalize(&mut self, model: &mut dyn PrunableModel, _step: usize) {
        let masks = self.hard_masks(model, true);
        crate::mask::set_masks(model, &masks);
        crate::mask::fold_masks(model);
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "units": self.units, "host_scores": self.host_scores })
    }

    fn load_state(&mut self, state: &serde_json::Value, model: &dyn PrunableModel) -> Result<(), String> {
        if let Some(u) = state.get("units") {
            self.units = serde_json::from_value(u.clone()).map_err(|e| format!("decay state: {e}"))?;
        }
        if let Some(h) = state.get("host_scores") {
            self.host_scores = serde_json::from_value(h.clone()).map_err(|e| format!("decay state: {e}"))?;
        }
        self.masks = crate::mask::masks_in_model(model);
        Ok(())
    }

    fn scheduled_density(&self, step: usize) -> f64 {
        self.rounds.schedule.density(step)
    }
}

pub fn build(c: &crate::PruningConfig, b: &crate::registry::BuildContext) -> Result<Box<dyn Pruner>, String> {
    let round_steps = c.round_steps.unwrap_or_else(|| crate::progressive::default_round_steps(&b.schedule));
    let decay_steps = c.decay_steps.unwrap_or(round_steps);
    if round_steps == 0 || decay_steps == 0 {
        return Err("pruning.round_steps and pruning.decay_steps: expected at least 1".into());
    }
    Ok(Box::new(Decay::new(Rounds { schedule: b.schedule, round_steps }, decay_steps, c.host.unwrap_or_default(), c.calibration_samples)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_norm_falls_linearly_to_zero() {
        // METHODS_SEED1.md §3(e): ‖x‖ = 5, N = 5, no gradient: 4, 3, 2, 1, 0.
        let mut s = UnitState::Decaying { l_init: 5.0, k: 0, last: 5.0, c_len: 0 };
        let mut norm = 5.0;
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (next, f) = decay_step(s, norm, 1.0, 5);
            norm *= f;
            seen.push(norm);
            s = next;
        }
        for (a, b) in seen.iter().zip([4.0, 3.0, 2.0, 1.0, 0.0]) {
            assert!((a - b).abs() < 1e-12, "{seen:?}");
        }
        assert_eq!(s, UnitState::Removed);
    }

    #[test]
    fn a_unit_pushed_outward_is_released_after_t_len_steps() {
        let n = 100;
        let mut s = UnitState::Decaying { l_init: 5.0, k: 0, last: 5.0, c_len: 0 };
        let mut norm = 5.0;
        let mut steps = 0;
        let mut radial = 1.0;
        while let UnitState::Decaying { .. } = s {
            let (next, f) = decay_step(s, norm, radial, n);
            s = next;
            norm *= f;
            // The optimizer step pushes outward, along x, by 10% (each decay step takes 1%).
            norm *= 1.1;
            radial = 1.1;
            steps += 1;
        }
        assert_eq!(s, UnitState::Released);
        assert_eq!(steps, T_LEN + 1, "the first step has no rate yet");
        // A pull back smaller than half a decay step is not resistance: it decays to the end.
        let mut s = UnitState::Decaying { l_init: 5.0, k: 0, last: 5.0, c_len: 0 };
        let mut norm = 5.0;
        let mut radial = 1.0;
        while let UnitState::Decaying { k, .. } = s {
            let (next, f) = decay_step(s, norm, radial, n);
            s = next;
            norm *= f;
            // Back by 0.4 of a decay step (5/100) along x.
            radial = if norm > 0.0 { 1.0 + 0.4 * 0.05 / norm } else { 1.0 };
            norm *= radial;
            assert!(k < n);
        }
        assert_eq!(s, UnitState::Removed);
    }
}
