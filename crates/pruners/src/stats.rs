//! Sparsity measured from the effective weights (zeros counted), never echoed from the config.

use models::{Axis, PrunableModel};
use serde::Serialize;

/// Zeros per prunable matrix and in total.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SparsityReport {
    /// (name, zeros, numel) per matrix.
    pub per_matrix: Vec<MatrixSparsity>,
    pub prunable_zeros: usize,
    pub prunable_numel: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MatrixSparsity {
    pub name: String,
    /// The block the matrix belongs to, as the model declares it (`UnitGroup::depth` of the
    /// group whose rows it holds, else whose columns); `None` outside every group (a pooler, a
    /// classifier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    pub zeros: usize,
    pub numel: usize,
    pub sparsity: f64,
}

impl SparsityReport {
    /// Counts exact zeros of `W ⊙ M` in every prunable matrix (one host copy per matrix).
    pub fn measure(model: &dyn PrunableModel) -> Self {
        let groups = model.unit_groups();
        let depth_of = |i: usize| {
            let owner = |axis: Axis| groups.iter().find(|g| g.members.iter().any(|m| m.layer == i && m.axis == axis)).map(|g| g.depth);
            owner(Axis::Rows).or_else(|| owner(Axis::Cols))
        };
        let mut per_matrix = Vec::new();
        for (i, (name, layer)) in model.prunable_layers().into_iter().enumerate() {
            let w = layer.effective_weight();
            let [r, c] = w.dims();
            let zeros = w.equal_elem(0.0).int().sum().into_scalar::<i64>() as usize;
            per_matrix.push(MatrixSparsity { name, depth: depth_of(i), zeros, numel: r * c, sparsity: zeros as f64 / (r * c) as f64 });
        }
        let prunable_zeros = per_matrix.iter().map(|m| m.zeros).sum();
        let prunable_numel = per_matrix.iter().map(|m| m.numel).sum();
        Self { per_matrix, prunable_zeros, prunable_numel }
    }

    /// Fraction of prunable weights that are zero.
    pub fn sparsity(&self) -> f64 {
        self.prunable_zeros as f64 / self.prunable_numel.max(1) as f64
    }
}
