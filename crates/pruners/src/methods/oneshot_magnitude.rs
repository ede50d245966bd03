//! One-shot magnitude, `S_ij = |W_ij|`, through the same selection as Wanda and STADE (per row,
//! per matrix, N:M): the baseline of their papers' tables (Wanda's `prune_magnitude`, per
//! matrix by default there: use `comparison = "matrix"`).

use crate::oneshot::{Criterion, MatrixView};

pub struct OneShotMagnitude;

impl Criterion for OneShotMagnitude {
    fn name(&self) -> &'static str {
        "oneshot_magnitude"
    }
    fn scores(&self, m: &MatrixView) -> Vec<f32> {
        m.weight.iter().map(|w| w.abs()).collect()
    }
}
