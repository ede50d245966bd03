//! First-order Taylor importance, one-shot: `S_ij = |W_ij · ḡ_ij|`, the first-order change of the
//! loss when `W_ij` is set to 0, with `ḡ` the gradient of the loss averaged over the
//! calibration batches (Molchanov et al., CVPR 2019, per weight; the same score is SNIP's
//! connection sensitivity, Lee et al., ICLR 2019, taken on a trained model instead of at
//! initialisation). Selections as for the other one-shot criteria (per row, per matrix, N:M).
//!
//! The file is the whole method: the loop accumulates the gradients because the criterion says
//! it needs them (`Criterion::needs_gradients`).

use crate::oneshot::{Criterion, MatrixView};

pub struct Taylor;

/// Taylor scores of one matrix.
pub fn scores(m: &MatrixView) -> Vec<f32> {
    let g = m.gradient.expect("taylor: the loop passes the gradients it asked for");
    m.weight.iter().zip(g).map(|(w, g)| (w * g).abs()).collect()
}

impl Criterion for Taylor {
    fn name(&self) -> &'static str {
        "taylor"
    }
    fn scores(&self, m: &MatrixView) -> Vec<f32> {
        scores(m)
    }
    fn needs_gradients(&self) -> bool {
        true
    }
}
