//! Wanda (Sun, Liu, Bair, Kolter, ICLR 2024): `S_ij = |W_ij| · ‖X_j‖₂`, the weight times the
//! norm of its input over the calibration tokens; per output row by default (also per matrix,
//! and N:M). No weight update. (`lib/prune.py::prune_wanda`; its `scaler_row` divides the
//! squared norm by the number of sequences, a constant that changes no ranking.)

use crate::oneshot::{Criterion, MatrixView};

pub struct Wanda;

/// Wanda's scores of one matrix.
pub fn scores(m: &MatrixView) -> Vec<f32> {
    let norms = m.inputs.norms();
    let cols = m.dims[1];
    m.weight.iter().enumerate().map(|(i, w)| (w.abs() as f64 * norms[i % cols]) as f32).collect()
}

impl Criterion for Wanda {
    fn name(&self) -> &'static str {
        "wanda"
    }
    fn scores(&self, m: &MatrixView) -> Vec<f32> {
        scores(m)
    }
}
