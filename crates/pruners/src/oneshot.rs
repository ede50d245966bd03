//! One-shot pruning from calibration statistics, shared by the criteria that score a weight by
//! its input (Wanda, STADE): at step `prune_step` the trainer hands over the statistics of every
//! prunable matrix's inputs on `calibration_samples` training examples
//! ([`models::UnitActivations::inputs`]); each matrix is scored by the criterion, the selection
//! ([`crate::selection`]) removes its share, the criterion may correct the bias from the
//! unpruned weights, and the masks stay fixed while training goes on (fine-tuning after a
//! one-shot removal; with `prune_step` at the end, plain one-shot pruning).
//!
//! Calibration statistics come from the model as it is at `prune_step`, all matrices at once
//! (our design: Wanda's and STADE's LLM code recomputes each block's inputs after pruning the
//! blocks below, sequentially; with a handful of encoder layers we take one pass).

use crate::calibration::{AccumulatedGradients, LossCalibration, LossRequest};
use crate::selection::{keep_mask, Comparison, NM};
use crate::Granularity;
use crate::Pruner;
use burn::tensor::{Tensor, TensorData};
use models::{Axis, InputStats, PrunableModel, UnitActivations};

/// What a matrix is, for a criterion: its weights (host, row-major), its shape, the statistics
/// of its inputs, and whether those inputs are unit activations (the attention context, the FFN
/// neurons after GELU, an MLP's hidden neurons) — the "second" Linears of a block, which a
/// model declares through its unit groups (the matrices that own units by columns).
pub struct MatrixView<'a> {
    pub weight: &'a [f32],
    pub dims: [usize; 2],
    pub inputs: &'a InputStats,
    pub reads_units: bool,
    /// The mean gradient of the loss with respect to each weight over the calibration batches
    /// (row-major), for criteria that ask for it ([`Criterion::needs_gradients`]).
    pub gradient: Option<&'a [f32]>,
}

/// A scoring rule for one-shot pruning.
pub trait Criterion: Send {
    fn name(&self) -> &'static str;
    /// One score per weight (row-major); the lowest are removed.
    fn scores(&self, m: &MatrixView) -> Vec<f32>;
    /// A change to the bias, `[rows]`, from the unpruned weights and the keep mask (1 = kept);
    /// `None` leaves the bias alone.
    fn bias_correction(&self, _m: &MatrixView, _keep: &[f32]) -> Option<Vec<f32>> {
        None
    }
    /// Whether the scores read `MatrixView::gradient` (the loop then accumulates the gradients
    /// of the loss over the same calibration examples, after the input statistics).
    fn needs_gradients(&self) -> bool {
        false
    }
    /// With `granularity = "unit"`: which of a unit's slices its score sums. Default: all of
    /// them (rows it produces and columns it feeds), each weight scored by this criterion.
    fn unit_score_members(&self) -> UnitScoreMembers {
        UnitScoreMembers::All
    }
}

/// Which slices of a unit make up its score (structured one-shot pruning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitScoreMembers {
    /// Every slice the unit owns.
    All,
    /// Only the columns it feeds in the output-side matrix: what the next layer loses when the
    /// unit goes (STADE: `Σ_i W_ij²·Var(x_j)`, the error left after its mean is folded in).
    OutputSide,
}

pub struct OneShot<C: Criterion> {
    pub criterion: C,
    prune_step: usize,
    density: f64,
    calibration_samples: usize,
    comparison: Comparison,
    nm: Option<NM>,
    masks: Option<Vec<Tensor<2>>>,
    /// Input statistics held until the gradients arrive (criteria that need both).
    inputs: Option<Vec<InputStats>>,
    /// Single weights, or whole units (each unit group keeps `kept_units(count, density)`).
    granularity: Granularity,
}

impl<C: Criterion> OneShot<C> {
    pub fn new(criterion: C, prune_step: usize, density: f64, calibration_samples: usize, comparison: Comparison, nm: Option<NM>) -> Self {
        Self { criterion, prune_step, density, calibration_samples, comparison, nm, masks: None, inputs: None, granularity: Granularity::Weight }
    }

    /// Whole units instead of single weights: a unit's score is the sum of its weights' scores
    /// (over the slices [`Criterion::unit_score_members`] names), every unit group keeps the
    /// same fraction, and the bias correction sees the removed units' slices.
    pub fn with_granularity(mut self, granularity: Granularity) -> Self {
        self.granularity = granularity;
        self
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec().expect("f32 tensor")
}

/// Which prunable matrices read unit activations: the members of a unit group by columns.
pub fn reads_units(model: &dyn PrunableModel) -> Vec<bool> {
    let groups = model.unit_groups();
    (0..model.prunable_layers().len()).map(|m| groups.iter().any(|g| g.members.iter().any(|mb| mb.layer == m && mb.axis == Axis::Cols))).collect()
}

impl<C: Criterion> OneShot<C> {
    /// Scores every matrix, removes its share, corrects the biases: the one-shot removal.
    fn prune(&mut self, model: &mut dyn PrunableModel, inputs: &[InputStats], grads: Option<&AccumulatedGradients>) {
        let second = reads_units(model);
        assert_eq!(inputs.len(), second.len(), "one input statistic per prunable matrix");
        let sparsity = 1.0 - self.density; // (ignored under N:M)
        let weights: Vec<Vec<f32>> = model.prunable_layers().iter().map(|(_, l)| host(l.weight.val())).collect();
        let gradients: Vec<Option<Vec<f32>>> = (0..weights.len()).map(|m| grads.map(|g| host(g.mean(m)))).collect();
        let dims: Vec<[usize; 2]> = model.prunable_layers().iter().map(|(_, l)| l.dims()).collect();
        let view = |m: usize| MatrixView { weight: &weights[m], dims: dims[m], inputs: &inputs[m], reads_units: second[m], gradient: gradients[m].as_deref() };
        // Whole units: one keep mask per matrix from the unit scores.
        let unit_keep: Option<Vec<Vec<f32>>> = (self.granularity == Granularity::Unit).then(|| {
            let device = model.prunable_layers()[0].1.weight.val().device();
            let scores: Vec<Tensor<2>> = (0..weights.len()).map(|m| Tensor::from_data(TensorData::new(self.criterion.scores(&view(m)), dims[m]), &device)).collect();
            let mut keep: Vec<Vec<f32>> = dims.iter().map(|d| vec![1.0; d[0] * d[1]]).collect();
            for g in model.unit_groups() {
                let mut scoring = g.clone();
                if self.criterion.unit_score_members() == UnitScoreMembers::OutputSide {
                    scoring.members.retain(|mb| mb.axis == Axis::Cols);
                }
                let s = host(crate::units::unit_scores(&scoring, &scores));
                let kept = crate::units::keep_best(&s, crate::units::kept_units(g.count, self.density));
                let kept = Tensor::<1>::from_data(TensorData::new(kept, [g.count]), &device);
                for &models::Member { layer: m, axis, width } in &g.members {
                    for (k, e) in keep[m].iter_mut().zip(host(crate::units::expand(&kept, width, axis, dims[m]))) {
                        *k *= e;
                    }
                }
            }
            keep
        });
        let mut masks = Vec::new();
        for (m, (_, layer)) in model.prunable_layers_mut().into_iter().enumerate() {
            let device = layer.weight.val().device();
            let dims = dims[m];
            let view = view(m);
            let keep = match &unit_keep {
                Some(k) => k[m].clone(),
                None => keep_mask(&self.criterion.scores(&view), dims, sparsity, self.comparison, self.nm),
            };
            if let Some(delta) = self.criterion.bias_correction(&view, &keep) {
                let delta = Tensor::<1>::from_data(TensorData::new(delta, [dims[0]]), &device);
                crate::compensation::add_to_bias(layer, delta);
            }
            masks.push(Tensor::<2>::from_data(TensorData::new(keep, dims), &device));
        }
        self.masks = Some(masks);
    }
}

impl<C: Criterion> Pruner for OneShot<C> {
    fn name(&self) -> &'static str {
        self.criterion.name()
    }

    fn calibration_request(&self, step: usize) -> Option<usize> {
        (step == self.prune_step && self.masks.is_none()).then_some(self.calibration_samples)
    }

    fn calibrate(&mut self, model: &mut dyn PrunableModel, acts: &UnitActivations) {
        if self.criterion.needs_gradients() {
            self.inputs = Some(acts.inputs.clone());
        } else {
            self.prune(model, &acts.inputs, None);
        }
    }

    fn loss_request(&self, step: usize) -> Option<LossRequest> {
        (self.criterion.needs_gradients() && step == self.prune_step && self.masks.is_none()).then_some(LossRequest { examples: self.calibration_samples, gradients: true })
    }

    fn calibrate_loss(&mut self, model: &mut dyn PrunableModel, data: &mut LossCalibration) {
        let name = self.criterion.name();
        let inputs = self.inputs.take().unwrap_or_else(|| panic!("{name}: the trainer must calibrate the inputs before the gradients"));
        let grads = data.gradients.as_ref().unwrap_or_else(|| panic!("{name}: asked for gradients, got none"));
        self.prune(model, &inputs, Some(grads));
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, step: usize) {
        if step < self.prune_step {
            return;
        }
        let name = self.criterion.name();
        let masks = self.masks.as_ref().unwrap_or_else(|| panic!("{name}: the trainer must calibrate before the pruning step"));
        crate::mask::set_fixed_masks(model, masks);
    }

    /// Whether the removal happened; the masks come back from the checkpointed layer masks and
    /// the corrected biases with the parameters.
    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "calibrated": self.masks.is_some() })
    }

    fn load_state(&mut self, state: &serde_json::Value, model: &dyn PrunableModel) -> Result<(), String> {
        if state.get("calibrated").and_then(|v| v.as_bool()) == Some(true) {
            let masks = crate::mask::masks_in_model(model);
            self.masks = Some(masks.ok_or_else(|| format!("{}: the checkpoint was taken after the removal but holds no masks", self.criterion.name()))?);
        }
        Ok(())
    }

    fn scheduled_density(&self, step: usize) -> f64 {
        if step < self.prune_step {
            1.0
        } else {
            self.nm.map(|nm| nm.density()).unwrap_or(self.density)
        }
    }
}
