//! Random pruning (baseline): every weight gets a fixed random score drawn once from a seeded
//! generator; the mask keeps the top-k scores of each matrix on the cubic schedule, so the masks
//! are nested (a weight pruned once stays pruned). The control any criterion must beat.

use crate::mask::topk_mask;
use crate::schedule::{kept_count, CubicSchedule};
use crate::Pruner;
use burn::tensor::{Tensor, TensorData};
use models::init::HostRng;
use models::PrunableModel;

pub struct Random {
    schedule: CubicSchedule,
    seed: u64,
    scores: Vec<Tensor<2>>,
    built_for: Vec<Option<usize>>,
}

impl Random {
    pub fn new(schedule: CubicSchedule, seed: u64) -> Self {
        Self { schedule, seed, scores: Vec::new(), built_for: Vec::new() }
    }
}

/// SplitMix64 → uniform f32 in [0, 1) (24 bits).
fn uniform(rng: &mut HostRng) -> f32 {
    (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32
}

impl Pruner for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    fn init(&mut self, model: &mut dyn PrunableModel) {
        let mut rng = HostRng::new(self.seed);
        self.scores = model
            .prunable_layers()
            .iter()
            .map(|(_, layer)| {
                let [r, c] = layer.dims();
                let values: Vec<f32> = (0..r * c).map(|_| uniform(&mut rng)).collect();
                Tensor::from_data(TensorData::new(values, [r, c]), &layer.weight.val().device())
            })
            .collect();
        self.built_for = vec![None; self.scores.len()];
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        let density = self.schedule.density(step);
        let mut layers = model.prunable_layers_mut();
        assert_eq!(layers.len(), self.scores.len(), "random pruner: Pruner::init not called on this model");
        for (((_, layer), scores), built_for) in layers.iter_mut().zip(&self.scores).zip(self.built_for.iter_mut()) {
            let [r, c] = layer.dims();
            let k = kept_count(r * c, density);
            let up_to_date = match layer.mask {
                Some(_) => *built_for == Some(k),
                None => k == r * c,
            };
            if !up_to_date {
                let scores = scores.clone().to_device(&layer.weight.val().device());
                layer.mask = Some(topk_mask(scores, k));
                *built_for = Some(k);
            }
        }
    }

    fn scheduled_density(&self, step: usize) -> f64 {
        self.schedule.density(step)
    }
}

/// `method = "random"`.
pub fn build(c: &crate::PruningConfig, b: &crate::registry::BuildContext) -> Result<Box<dyn crate::Pruner>, String> {
    Ok(Box::new(Random::new(b.schedule, c.seed)))
}
