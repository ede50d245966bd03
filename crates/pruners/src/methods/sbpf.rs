//! SBPF, sensitiveness-based pruning (Lu et al., arXiv 2208.04588; no code published): each
//! layer's sensitivity is measured by injecting damage — a fraction of its units zeroed, the
//! rest of the model intact — and reading the accuracy drop; layers then lose units in inverse
//! proportion to their sensitivity under the global budget; within a layer the lowest-L1 units
//! go. ../shared/METHODS_SEED1.md §5.
//!
//! A "layer" is a unit group: a conv's filters, a BERT layer's heads or its FFN neurons, an MLP
//! hidden layer. Our choices where the paper is silent:
//! - damage: `DAMAGE` (50%) of the group's units chosen at random, `DRAWS` (4) draws averaged
//!   (a random draw, not the lowest-L1 units, so that a layer with redundant units — duplicated
//!   filters — shows it: with lowest-L1 damage both copies of the weakest filters go together);
//! - sensitivity `s_l = max(A₀ − A_l, ε)` with ε = 1/(4·examples) (a quarter of one example);
//! - accuracy on the first `calibration_samples` training examples (the loop's probe);
//! - ratios `p_l = P·(1/s_l)·Σn / Σ_k n_k/s_k`, `n_l` the group's unit count, `P` the fraction
//!   of units to remove; a ratio over `P_MAX` (0.95) is clipped and the excess handed to the
//!   other groups in the same proportions (water-filling), so `Σ n_l p_l = P·Σ n_l` whenever
//!   the budget fits;
//! - one step (K = 1) at `warmup_steps`, then the run's training is the fine-tune.

use crate::calibration::{LossCalibration, LossRequest};
use crate::units::{l1_scores, lowest, UnitRemoval};
use crate::Pruner;
use models::PrunableModel;

pub const DAMAGE: f64 = 0.5;
pub const DRAWS: usize = 4;
pub const P_MAX: f64 = 0.95;

pub struct Sbpf {
    removal: UnitRemoval,
    seed: u64,
    /// Per unit group, once measured: the sensitivity and the fraction removed.
    pub sensitivities: Vec<f64>,
    pub ratios: Vec<f64>,
}

impl Sbpf {
    pub fn new(prune_step: usize, density: f64, calibration_samples: usize, seed: u64) -> Self {
        Self { removal: UnitRemoval::new("sbpf", prune_step, density, calibration_samples), seed, sensitivities: Vec::new(), ratios: Vec::new() }
    }
}

/// Removal ratios from sensitivities: `p_l ∝ 1/s_l`, `Σ n_l p_l = P·Σ n_l`, each at most
/// `p_max` (the excess of a clipped group goes to the others in the same proportions).
pub fn allocate(p: f64, counts: &[usize], sensitivities: &[f64], p_max: f64) -> Vec<f64> {
    let total: f64 = counts.iter().map(|&n| n as f64).sum();
    let mut budget = p * total;
    let mut ratios = vec![0.0; counts.len()];
    let mut free: Vec<usize> = (0..counts.len()).collect();
    loop {
        let weight: f64 = free.iter().map(|&l| counts[l] as f64 / sensitivities[l]).sum();
        if free.is_empty() || weight <= 0.0 {
            return ratios;
        }
        let scale = budget / weight;
        let over: Vec<usize> = free.iter().copied().filter(|&l| scale / sensitivities[l] > p_max).collect();
        if over.is_empty() {
            for &l in &free {
                ratios[l] = scale / sensitivities[l];
            }
            return ratios;
        }
        for &l in &over {
            ratios[l] = p_max;
            budget -= p_max * counts[l] as f64;
        }
        free.retain(|l| !over.contains(l));
    }
}

/// Whole units to remove per group from the ratios: the floors of `p_l·n_l`, then one more to
/// the largest remainders until `total` (largest-remainder rounding, so the budget is met
/// exactly), each group keeping at least one unit.
pub fn integer_removals(ratios: &[f64], counts: &[usize], total: usize) -> Vec<usize> {
    let want: Vec<f64> = ratios.iter().zip(counts).map(|(p, &n)| p * n as f64).collect();
    let mut out: Vec<usize> = want.iter().zip(counts).map(|(w, &n)| (w.floor() as usize).min(n.saturating_sub(1))).collect();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| (want[b] - want[b].floor()).total_cmp(&(want[a] - want[a].floor())).then(a.cmp(&b)));
    let mut missing = total.saturating_sub(out.iter().sum());
    while missing > 0 {
        let before = missing;
        for &g in &order {
            if missing > 0 && out[g] + 1 < counts[g] && (out[g] as f64) < want[g].ceil() {
                out[g] += 1;
                missing -= 1;
            }
        }
        if missing == before {
            break; // every group is at its ceiling or keeps one unit
        }
    }
    // Still short (a group capped at one kept unit): the others take the rest, highest ratio first.
    let mut by_ratio: Vec<usize> = (0..counts.len()).collect();
    by_ratio.sort_by(|&a, &b| ratios[b].total_cmp(&ratios[a]).then(a.cmp(&b)));
    for &g in &by_ratio {
        let room = counts[g].saturating_sub(1) - out[g];
        let take = room.min(missing);
        out[g] += take;
        missing -= take;
    }
    out
}

impl Pruner for Sbpf {
    fn name(&self) -> &'static str {
        "sbpf"
    }

    fn loss_request(&self, step: usize) -> Option<LossRequest> {
        self.removal.loss_request(step, false)
    }

    fn calibrate_loss(&mut self, model: &mut dyn PrunableModel, data: &mut LossCalibration) {
        let groups = model.unit_groups();
        assert!(!groups.is_empty(), "sbpf: the model declares no units (filters, heads, neurons)");
        let examples = data.probe.examples().max(1) as f64;
        let base = data.probe.accuracy_without(&[]);
        let mut rng = models::init::HostRng::new(self.seed ^ 0x7362_7066);
        self.sensitivities = groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let k = ((group.count as f64 * DAMAGE).round() as usize).clamp(1, group.count);
                let mut drop = 0.0;
                for _ in 0..DRAWS {
                    // k distinct units by a partial Fisher–Yates shuffle.
                    let mut units: Vec<usize> = (0..group.count).collect();
                    for i in 0..k {
                        let j = i + (rng.next_u64() % (group.count - i) as u64) as usize;
                        units.swap(i, j);
                    }
                    let removed: Vec<(usize, usize)> = units[..k].iter().map(|&u| (g, u)).collect();
                    drop += base - data.probe.accuracy_without(&removed);
                }
                (drop / DRAWS as f64).max(0.25 / examples)
            })
            .collect();
        let counts: Vec<usize> = groups.iter().map(|g| g.count).collect();
        self.ratios = allocate(1.0 - self.removal.density, &counts, &self.sensitivities, P_MAX);
        let l1 = l1_scores(model);
        let total: usize = counts.iter().sum();
        let removals = integer_removals(&self.ratios, &counts, ((1.0 - self.removal.density) * total as f64).round() as usize);
        let keep: Vec<Vec<f32>> = groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let remove = removals[g];
                let mut k = vec![1.0; group.count];
                for u in lowest(&l1[g], remove) {
                    k[u] = 0.0;
                }
                k
            })
            .collect();
        for (g, group) in groups.iter().enumerate() {
            tracing::info!("sbpf: {}: sensitivity {:.4}, removes {:.1}% of {} units", group.name, self.sensitivities[g], 100.0 * self.ratios[g], group.count);
        }
        self.removal.decide(model, &keep);
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        self.removal.apply(model, step);
    }

    fn state(&self) -> serde_json::Value {
        let mut s = self.removal.state();
        s["sensitivities"] = serde_json::json!(self.sensitivities);
        s["ratios"] = serde_json::json!(self.ratios);
        s
    }

    fn load_state(&mut self, state: &serde_json::Value, model: &dyn PrunableModel) -> Result<(), String> {
        self.removal.load_state(state, model)
    }

    fn scheduled_density(&self, step: usize) -> f64 {
        self.removal.density(step)
    }
}

pub fn build(c: &crate::PruningConfig, _b: &crate::registry::BuildContext) -> Result<Box<dyn Pruner>, String> {
    Ok(Box::new(Sbpf::new(c.warmup_steps, c.final_density, c.calibration_samples, c.seed)))
}

#[cfg(test)]
mod tests {
    use super::allocate;

    #[test]
    fn allocation_by_hand() {
        // METHODS_SEED1.md §5(e): equal n, P = 0.5, s = [0.30, 0.10, 0.05] → [0.15, 0.45, 0.90].
        let p = allocate(0.5, &[10, 10, 10], &[0.30, 0.10, 0.05], 1.0);
        for (a, b) in p.iter().zip([0.15, 0.45, 0.90]) {
            assert!((a - b).abs() < 1e-12, "{p:?}");
        }
        // Clipped at 0.8: the third keeps 0.8 and its excess 0.1·n goes to the others as 1:3.
        let p = allocate(0.5, &[10, 10, 10], &[0.30, 0.10, 0.05], 0.8);
        for (a, b) in p.iter().zip([0.175, 0.525, 0.8]) {
            assert!((a - b).abs() < 1e-12, "{p:?}");
        }
        // Unequal sizes: the budget is in units.
        let p = allocate(0.5, &[10, 30], &[0.2, 0.2], 1.0);
        assert!((10.0 * p[0] + 30.0 * p[1] - 20.0).abs() < 1e-9 && (p[0] - p[1]).abs() < 1e-12);
    }

    #[test]
    fn whole_units_meet_the_budget_exactly() {
        use super::integer_removals;
        // 6·0.35 + 8·0.4 + 12·0.6 = 2.1 + 3.2 + 7.2 = 12.5 → 13 units: floors 2 + 3 + 7 = 12,
        // and the largest remainder (0.1, 0.2, 0.2: the second, by index among equals) one more.
        assert_eq!(integer_removals(&[0.35, 0.4, 0.6], &[6, 8, 12], 13), vec![2, 4, 7]);
        // A group keeps one unit even when its ratio says all; the other takes what is left.
        assert_eq!(integer_removals(&[1.0, 0.0], &[3, 5], 3), vec![2, 1]);
    }
}
