//! The random control for the one-shot criteria: every weight scores a uniform draw, through the
//! same selections (per row, per matrix, N:M, or whole units: a unit's score is the sum of its
//! weights' draws: sums of independent draws, so every order of the units is equally likely). The draws are seeded by `pruning.seed` and
//! by the matrix (its shape and its first weights' bits), so a run repeats exactly.

use crate::oneshot::{Criterion, MatrixView};
use models::init::{mix, HostRng};

pub struct OneShotRandom {
    pub seed: u64,
}

impl Criterion for OneShotRandom {
    fn name(&self) -> &'static str {
        "oneshot_random"
    }
    fn scores(&self, m: &MatrixView) -> Vec<f32> {
        let fingerprint = m.weight.iter().take(8).fold(mix(((m.dims[0] as u64) << 32) | m.dims[1] as u64), |h, w| mix(h ^ w.to_bits() as u64));
        let mut rng = HostRng::new(self.seed ^ fingerprint);
        (0..m.weight.len()).map(|_| (rng.next_u64() >> 40) as f32).collect()
    }
}
