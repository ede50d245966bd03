//! Magnitude pruning (baseline): keep the largest |W| of each matrix, on the cubic schedule.
//! The mask is recomputed whenever the scheduled count changes; between changes the pruned
//! weights get zero gradient through the mask, so the kept set stays the same.

use crate::mask::topk_mask;
use crate::schedule::{kept_count, CubicSchedule};
use crate::{Pruner, Scope};
use models::PrunableModel;

pub struct Magnitude {
    schedule: CubicSchedule,
    #[allow(dead_code)]
    scope: Scope,
    /// The kept count each matrix's current mask was built for (no host sync to find out).
    built_for: Vec<Option<usize>>,
}

impl Magnitude {
    pub fn new(schedule: CubicSchedule, scope: Scope) -> Self {
        Self { schedule, scope, built_for: Vec::new() }
    }
}

impl Pruner for Magnitude {
    fn name(&self) -> &'static str {
        "magnitude"
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        let density = self.schedule.density(step);
        let mut layers = model.prunable_layers_mut();
        self.built_for.resize(layers.len(), None);
        for ((_, layer), built_for) in layers.iter_mut().zip(self.built_for.iter_mut()) {
            let [r, c] = layer.dims();
            let k = kept_count(r * c, density);
            let up_to_date = match layer.mask {
                Some(_) => *built_for == Some(k),
                None => k == r * c,
            };
            if !up_to_date {
                layer.mask = Some(topk_mask(layer.weight.val().abs(), k));
                *built_for = Some(k);
            }
        }
    }

    fn scheduled_density(&self, step: usize) -> f64 {
        self.schedule.density(step)
    }
}
