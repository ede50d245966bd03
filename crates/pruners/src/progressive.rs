//! Progressive unit removal over the cubic schedule, for methods that take units out a few at a
//! time while training goes on (gradient flow, decay pruning): selection rounds every
//! `round_steps` steps from `warmup_steps` to the end of the ramp (that last step included),
//! and at each round the number of units each group must have given up by then: the group's
//! count minus [`crate::units::kept_units`] at the schedule's density. A method picks which
//! units; this says when and how many.

use crate::schedule::CubicSchedule;
use crate::units::removal_counts;
use models::UnitGroup;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rounds {
    pub schedule: CubicSchedule,
    pub round_steps: usize,
}

impl Rounds {
    /// The last step of the ramp (from there on the density is final).
    pub fn ramp_end(&self) -> usize {
        self.schedule.total_steps.saturating_sub(self.schedule.cooldown_steps)
    }

    /// Whether units are selected at `step`.
    pub fn is_round(&self, step: usize) -> bool {
        let (start, end) = (self.schedule.warmup_steps, self.ramp_end());
        step >= start && step <= end && ((step - start) % self.round_steps.max(1) == 0 || step == end)
    }

    /// Units of each group removed (or on their way out) by `step`: at a round, the schedule's
    /// count at the next round (so that the selected units have reached zero when the schedule
    /// says they are gone); the final count from the last round on.
    pub fn targets(&self, groups: &[UnitGroup], step: usize) -> Vec<usize> {
        let next = (step + self.round_steps.max(1)).min(self.ramp_end());
        removal_counts(groups, self.schedule.density(next))
    }
}

/// The default round length: a tenth of the ramp (at least one step).
pub fn default_round_steps(schedule: &CubicSchedule) -> usize {
    (schedule.total_steps.saturating_sub(schedule.warmup_steps + schedule.cooldown_steps) / 10).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_cover_the_ramp_and_end_at_the_final_count() {
        let schedule = CubicSchedule { initial_density: 1.0, final_density: 0.5, warmup_steps: 10, cooldown_steps: 20, total_steps: 100 };
        let r = Rounds { schedule, round_steps: 25 };
        let rounds: Vec<usize> = (0..100).filter(|&s| r.is_round(s)).collect();
        assert_eq!(rounds, vec![10, 35, 60, 80]);
        let g = models::UnitGroup { name: "g".into(), kind: models::UnitKind::Neuron, count: 10, width: 1, members: vec![], depth: 0, residual: false };
        let t: Vec<usize> = rounds.iter().map(|&s| r.targets(std::slice::from_ref(&g), s)[0]).collect();
        // density at 35, 60, 80, 80: 1 − 0.5·(1 − (1 − 25/70)³) …, the last ones final (5 removed).
        assert!(t.windows(2).all(|w| w[0] <= w[1]), "{t:?}");
        assert_eq!(*t.last().unwrap(), 5);
        assert!(t[0] > 0);
    }
}
