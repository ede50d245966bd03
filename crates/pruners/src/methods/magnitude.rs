//! Magnitude pruning (baseline): keep the largest |W| of each matrix (`scope = "per_matrix"`) or
//! of all prunable weights together (`scope = "global"`), or with `granularity = "unit"` the
//! heads and FFN neurons of largest L1 norm in each layer, on the cubic schedule. The masks are
//! recomputed whenever the scheduled density changes; between changes the pruned weights get
//! zero gradient through the mask, so the kept set stays the same.

use crate::schedule::CubicSchedule;
use crate::{Granularity, Pruner, Scope};
use models::PrunableModel;

pub struct Magnitude {
    schedule: CubicSchedule,
    scope: Scope,
    granularity: Granularity,
    /// The density the current masks were built for (no host sync to find out).
    built_for: Option<f64>,
}

impl Magnitude {
    pub fn new(schedule: CubicSchedule, scope: Scope) -> Self {
        Self { schedule, scope, granularity: Granularity::Weight, built_for: None }
    }

    /// Whole heads and FFN neurons (L1 norm of each unit) instead of single weights.
    pub fn with_granularity(mut self, granularity: Granularity) -> Self {
        self.granularity = granularity;
        self
    }
}

impl Pruner for Magnitude {
    fn name(&self) -> &'static str {
        "magnitude"
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        let density = self.schedule.density(step);
        let groups = if self.granularity == Granularity::Unit { model.unit_groups() } else { Vec::new() };
        let mut layers = model.prunable_layers_mut();
        let has_masks = layers.iter().all(|(_, l)| l.mask.is_some());
        let up_to_date = if has_masks { self.built_for == Some(density) } else { density >= 1.0 };
        if up_to_date {
            return;
        }
        let magnitudes: Vec<_> = layers.iter().map(|(_, l)| l.weight.val().abs()).collect();
        for ((_, layer), mask) in layers.iter_mut().zip(self.granularity.masks(self.scope, &groups, &magnitudes, density)) {
            layer.mask = Some(mask);
        }
        self.built_for = Some(density);
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "built_for": self.built_for })
    }

    fn load_state(&mut self, state: &serde_json::Value, _model: &dyn PrunableModel) -> Result<(), String> {
        self.built_for = state.get("built_for").and_then(|v| v.as_f64());
        Ok(())
    }

    fn scheduled_density(&self, step: usize) -> f64 {
        self.schedule.density(step)
    }
}

/// `method = "magnitude"`.
pub fn build(c: &crate::PruningConfig, b: &crate::registry::BuildContext) -> Result<Box<dyn crate::Pruner>, String> {
    Ok(Box::new(Magnitude::new(b.schedule, c.scope).with_granularity(c.granularity)))
}
