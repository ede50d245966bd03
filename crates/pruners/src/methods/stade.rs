//! STADE (Coello de Portugal Mecke et al., arXiv 2503.22451): on the matrices it applies to,
//! `S_ij = W_ij² · Var(x_j)` (unbiased variance over the calibration tokens) and, for every
//! removed weight, its input's mean moved into the bias:
//! `b_i ← b_i + Σ_j μ_j · W_ij · [ij removed]`, computed from the weights *before* they are
//! zeroed (the authors' first code, `std.py`; their later code zeroes first, so its correction
//! is always 0).
//!
//! Where (`layers`): `Second` (default, the first code's `stade`) applies it to the matrices
//! that read unit activations (attention output, FFN output; an MLP's layers after the first)
//! and Wanda to the others (Q, K, V, FFN input); `All` applies it to every matrix (the later
//! code's `stade`).
//!
//! Structured (`granularity = "unit"`, our extension): a head or neuron is scored on the
//! columns it feeds, `Σ_{i, j ∈ unit} W_ij²·Var(x_j)`, each unit group keeps its share, and a
//! removed unit's mean output goes into the next layer's bias (the same correction, over whole
//! columns), so the compacted model computes what the masked one did.

use crate::methods::wanda;
use crate::oneshot::{Criterion, MatrixView, UnitScoreMembers};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StadeLayers {
    #[default]
    Second,
    All,
}

pub struct Stade {
    pub layers: StadeLayers,
}

impl Stade {
    fn applies(&self, m: &MatrixView) -> bool {
        self.layers == StadeLayers::All || m.reads_units
    }
}

/// STADE's scores of one matrix.
pub fn scores(m: &MatrixView) -> Vec<f32> {
    let var = m.inputs.variances();
    let cols = m.dims[1];
    m.weight.iter().enumerate().map(|(i, w)| ((*w as f64).powi(2) * var[i % cols]) as f32).collect()
}

/// `Σ_j μ_j · W_ij · (1 − keep_ij)` per row, from the unpruned weights.
pub fn bias_correction(m: &MatrixView, keep: &[f32]) -> Vec<f32> {
    let mu = m.inputs.means();
    let [rows, cols] = m.dims;
    (0..rows)
        .map(|r| (0..cols).filter(|&c| keep[r * cols + c] == 0.0).map(|c| mu[c] * m.weight[r * cols + c] as f64).sum::<f64>() as f32)
        .collect()
}

impl Criterion for Stade {
    fn name(&self) -> &'static str {
        "stade"
    }
    fn scores(&self, m: &MatrixView) -> Vec<f32> {
        if self.applies(m) {
            scores(m)
        } else {
            wanda::scores(m)
        }
    }
    fn bias_correction(&self, m: &MatrixView, keep: &[f32]) -> Option<Vec<f32>> {
        self.applies(m).then(|| bias_correction(m, keep))
    }
    /// Structured: a unit's score is what its removal leaves in the next layer once its mean is
    /// folded into that layer's bias, `Σ_i W_ij²·Var(x_j)` over its columns.
    fn unit_score_members(&self) -> UnitScoreMembers {
        UnitScoreMembers::OutputSide
    }
}

/// `method = "stade"`.
pub fn build(c: &crate::PruningConfig, b: &crate::registry::BuildContext) -> Result<Box<dyn crate::Pruner>, String> {
    crate::registry::one_shot(c, b, Stade { layers: c.stade_layers.unwrap_or_default() })
}
