//! How much to keep at step t.

/// The cubic schedule of the kept fraction v (Zhu & Gupta 2017; movement pruning):
/// `v_t = v_f + (v_i − v_f)(1 − (t − t_i)/(T − t_i − t_f))³` for `t_i ≤ t < T − t_f`;
/// `v_i` before, `v_f` after.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CubicSchedule {
    /// v_i.
    pub initial_density: f64,
    /// v_f.
    pub final_density: f64,
    /// t_i.
    pub warmup_steps: usize,
    /// t_f.
    pub cooldown_steps: usize,
    /// T.
    pub total_steps: usize,
}

impl CubicSchedule {
    pub fn density(&self, step: usize) -> f64 {
        let (vi, vf) = (self.initial_density, self.final_density);
        if step < self.warmup_steps {
            return vi;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps + self.cooldown_steps);
        if span == 0 || step >= self.total_steps - self.cooldown_steps {
            return vf;
        }
        let progress = (step - self.warmup_steps) as f64 / span as f64;
        vf + (vi - vf) * (1.0 - progress).powi(3)
    }
}

/// How many of `numel` entries a density keeps (rounded, at least 1).
pub fn kept_count(numel: usize, density: f64) -> usize {
    ((numel as f64 * density).round() as usize).clamp(1, numel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_schedule_values() {
        let s = CubicSchedule { initial_density: 1.0, final_density: 0.1, warmup_steps: 10, cooldown_steps: 20, total_steps: 110 };
        assert_eq!(s.density(0), 1.0);
        assert_eq!(s.density(9), 1.0);
        assert_eq!(s.density(10), 1.0);
        // Halfway through the 80 ramp steps: 0.1 + 0.9 * 0.5³ = 0.2125.
        assert!((s.density(50) - 0.2125).abs() < 1e-12);
        // A quarter: 0.1 + 0.9 * 0.75³ = 0.4796875.
        assert!((s.density(30) - 0.4796875).abs() < 1e-12);
        assert_eq!(s.density(90), 0.1);
        assert_eq!(s.density(109), 0.1);
        assert!((0..110).all(|t| s.density(t + 1) <= s.density(t)), "monotone");
    }

    #[test]
    fn kept_count_rounds_and_keeps_one() {
        assert_eq!(kept_count(1000, 0.1), 100);
        assert_eq!(kept_count(1536 * 384, 0.1), 58982);
        assert_eq!(kept_count(10, 0.01), 1);
    }
}
