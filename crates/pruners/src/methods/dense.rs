//! No pruning: the dense reference run.

use crate::Pruner;
use models::PrunableModel;

pub struct Dense;

impl Pruner for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }
    fn apply_masks(&mut self, _model: &mut dyn PrunableModel, _step: usize) {}
    fn scheduled_density(&self, _step: usize) -> f64 {
        1.0
    }
}
