//! Mask learning with a target sparsity (CoFiPruning, Xia et al. 2022), on heads, whole
//! attention blocks, whole FFN blocks and FFN neurons.
//!
//! Hard-concrete gates (see [`crate::gates`]): per head (log α init 10, as METHODS.md gives),
//! per FFN neuron (init 0, CoFi's drop rate 0.5), per attention block and per FFN block
//! (init 10). Every training forward pass samples them; evaluation uses CoFi's deterministic
//! gates. The expected sparsity counts the prunable weights each unit owns:
//! `ŝ = 1 − Σ_layers [P(mha) Σ_heads P(head)·4·d·d_h + P(ffn) Σ_neurons P(neuron)·2·d] / total`.
//! The Lagrangian `λ₁(t − ŝ) + λ₂(t − ŝ)²` is added to the loss; λ₁, λ₂ are trained by gradient
//! ascent (their gradients are negated before the optimizer step; they rise while ŝ is under the
//! target t). The Lagrangian is off during the `warmup_steps` (no target, so the multipliers
//! neither move nor wind up); from then on t ramps linearly from ŝ₀, the expected sparsity of the
//! initial gates, to `1 − final_density` at `T − cooldown_steps` (CoFi's `start_sparsity`, set to
//! where the gates start rather than 0: the neuron gates open with probability 0.83, so ŝ₀ ≈ 0.11,
//! and a ramp from 0 would first drive λ₁ negative, which then opens the gates and delays the
//! budget by as many steps as it wound up).
//!
//! Our design, where CoFi's code is specific to its trainer: the deterministic gates are chosen
//! per kind across all layers (heads, neurons, attention blocks, FFN blocks), each keeping its
//! expected number of non-zero gates; hidden dimensions are not masked (not implemented). Block
//! gates exist only where the model declares a residual block (`UnitGroup::residual`): on an
//! MLP every hidden neuron has its gate and no layer can be gated whole.
//! At the end the gates are folded into the weights and the model compacts.

use crate::gates::{self, GateTarget};
use crate::{ParamGroupSpec, Pruner};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use models::{PrunableModel, UnitKind};

pub const HEAD_INIT: f64 = 10.0;
pub const NEURON_INIT: f64 = 0.0;
pub const BLOCK_INIT: f64 = 10.0;

/// The initial log α of a unit's gate: heads start (almost surely) open, neurons at CoFi's drop
/// rate 0.5, filters (our choice, CoFi has none) like neurons.
pub fn unit_init(kind: UnitKind) -> f64 {
    match kind {
        UnitKind::Head => HEAD_INIT,
        UnitKind::Neuron | UnitKind::Filter => NEURON_INIT,
    }
}

pub struct MaskLearning {
    target_sparsity: f64,
    ramp_start: usize,
    ramp_end: usize,
    lr: f64,
    multipliers_lr: f64,
    targets: Vec<GateTarget>,
    /// ŝ₀: the expected sparsity of the initial gates, where the target ramp starts.
    start_sparsity: f64,
    /// ŝ after the last step (host), for the reports.
    expected_sparsity: f64,
}

impl MaskLearning {
    pub fn new(final_density: f64, warmup_steps: usize, cooldown_steps: usize, total_steps: usize, lr: f64, multipliers_lr: f64) -> Self {
        Self {
            target_sparsity: 1.0 - final_density,
            ramp_start: warmup_steps,
            ramp_end: total_steps.saturating_sub(cooldown_steps).max(warmup_steps + 1),
            lr,
            multipliers_lr,
            targets: Vec::new(),
            start_sparsity: 0.0,
            expected_sparsity: 0.0,
        }
    }

    /// The target sparsity t at `step`: none during the warm-up, then a linear ramp from ŝ₀ to
    /// `1 − final_density`, then `1 − final_density`.
    pub fn target_at(&self, step: usize) -> Option<f64> {
        if step < self.ramp_start {
            return None;
        }
        let p = ((step - self.ramp_start) as f64 / (self.ramp_end - self.ramp_start) as f64).min(1.0);
        Some(self.start_sparsity + (self.target_sparsity - self.start_sparsity) * p)
    }

    /// ŝ₀, where the target ramp starts (known after `init`).
    pub fn start_sparsity(&self) -> f64 {
        self.start_sparsity
    }

    /// ŝ as a differentiable `[1]` tensor from the log α vectors (units: one per group; then,
    /// when some group has a block gate, one vector with an entry per such group, in order).
    pub fn expected_sparsity(targets: &[GateTarget], log_alpha: &[Tensor<1>]) -> Tensor<1> {
        let block_p = block_open_probabilities(targets, log_alpha);
        let total: usize = targets.iter().map(|t| t.count * t.params_per_unit).sum();
        let kept: Vec<Tensor<1>> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let units = gates::open_probability(log_alpha[i].clone()).sum() * t.params_per_unit as f64;
                match &block_p[i] {
                    Some(p) => units * p.clone(),
                    None => units,
                }
            })
            .collect();
        (Tensor::cat(kept, 0).sum() / total as f64).neg() + 1.0
    }

    fn log_alpha(model: &dyn PrunableModel) -> Vec<Tensor<1>> {
        gates::params(model).log_alpha.iter().map(|p| p.val()).collect()
    }

    /// The deterministic gates: per unit kind, among that kind's block gates, the expected
    /// number of open blocks; then across layers the expected number of open units *including
    /// their block's probability*, `round(Σ_layers P(block)·Σ P(unit))`, chosen by log α among
    /// the units of the kept blocks. So the structure spends what ŝ expected (a kept block whose
    /// gate is not certain no longer adds its units in full).
    pub fn deterministic(&self, log_alpha: &[Tensor<1>]) -> (Vec<Vec<f32>>, Vec<Option<f32>>) {
        let host: Vec<Vec<f32>> = log_alpha.iter().map(|t| gates::host(t.clone())).collect();
        deterministic_structure(&self.targets, &host)
    }
}

/// Per group, the entry of the block vector that holds its block gate (`None`: the model
/// declares no block around these units, e.g. an MLP hidden layer).
fn block_slots(targets: &[GateTarget]) -> Vec<Option<usize>> {
    let mut next = 0;
    targets
        .iter()
        .map(|t| {
            t.block.then(|| {
                next += 1;
                next - 1
            })
        })
        .collect()
}

/// P(block open) per group, `[1]` tensors, from the block vector after the unit vectors.
fn block_open_probabilities(targets: &[GateTarget], log_alpha: &[Tensor<1>]) -> Vec<Option<Tensor<1>>> {
    let g = targets.len();
    let p = (log_alpha.len() > g).then(|| gates::open_probability(log_alpha[g].clone()));
    block_slots(targets).into_iter().map(|slot| slot.map(|j| p.as_ref().expect("block gates").clone().slice([j..j + 1]))).collect()
}

/// [`MaskLearning::deterministic`] on host log α vectors (units per group, then the block
/// vector when some group has a block gate).
pub fn deterministic_structure(targets: &[GateTarget], host: &[Vec<f32>]) -> (Vec<Vec<f32>>, Vec<Option<f32>>) {
    let g = targets.len();
    let slots = block_slots(targets);
    let block_alpha = |i: usize| slots[i].map(|j| host[g][j]);
    let mut units: Vec<Vec<f32>> = vec![Vec::new(); g];
    let mut blocks: Vec<Option<f32>> = vec![None; g];
    let mut kinds: Vec<UnitKind> = targets.iter().map(|t| t.kind).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let idx: Vec<usize> = (0..g).filter(|&i| targets[i].kind == kind).collect();
        let gated: Vec<usize> = idx.iter().copied().filter(|&i| slots[i].is_some()).collect();
        let alphas: Vec<f32> = gated.iter().map(|&i| block_alpha(i).unwrap()).collect();
        let bz = gates::deterministic(&alphas, gates::expected_kept(&alphas));
        for (k, &i) in gated.iter().enumerate() {
            blocks[i] = Some(bz[k]);
        }
        let p_block = |i: usize| block_alpha(i).map_or(1.0, gates::open_probability_host);
        let expected: f64 = idx.iter().map(|&i| p_block(i) * host[i].iter().map(|&a| gates::open_probability_host(a)).sum::<f64>()).sum();
        // Units of dropped blocks cannot be kept: rank them last.
        let open = |i: usize| blocks[i].is_none_or(|b| b > 0.0);
        let all: Vec<f32> = idx.iter().flat_map(|&i| host[i].iter().map(move |&a| if open(i) { a } else { f32::NEG_INFINITY })).collect();
        let live = idx.iter().filter(|&&i| open(i)).map(|&i| host[i].len()).sum::<usize>();
        let z = gates::deterministic(&all, (expected.round() as usize).min(live));
        let mut offset = 0;
        for &i in &idx {
            units[i] = z[offset..offset + host[i].len()].to_vec();
            offset += host[i].len();
        }
    }
    (units, blocks)
}

impl Pruner for MaskLearning {
    fn name(&self) -> &'static str {
        "mask_learning"
    }

    fn init(&mut self, model: &mut dyn PrunableModel) {
        self.targets = gates::targets(model).expect("mask_learning needs a model that declares structural units");
        let mut spec: Vec<(usize, f64)> = self.targets.iter().map(|t| (t.count, unit_init(t.kind))).collect();
        let blocks = self.targets.iter().filter(|t| t.block).count();
        if blocks > 0 {
            spec.push((blocks, BLOCK_INIT));
        }
        gates::init_params(model, &spec, &[(2, 0.0)]).expect("pruner parameters");
        // From the initial values, not the model's (on a resume the model holds trained gates).
        let total: usize = self.targets.iter().map(|t| t.count * t.params_per_unit).sum();
        let kept: f64 = self
            .targets
            .iter()
            .zip(&spec)
            .map(|(t, &(n, a))| {
                let p_block = if t.block { gates::open_probability_host(BLOCK_INIT as f32) } else { 1.0 };
                p_block * n as f64 * gates::open_probability_host(a as f32) * t.params_per_unit as f64
            })
            .sum();
        self.start_sparsity = 1.0 - kept / total as f64;
    }

    fn apply_masks(&mut self, model: &mut dyn PrunableModel, _step: usize) {
        let la = Self::log_alpha(model);
        let g = self.targets.len();
        let units: Vec<Tensor<1>> = la[..g].iter().map(|a| gates::sample_fresh(a.clone())).collect();
        let z_blocks = la.get(g).map(|a| gates::sample_fresh(a.clone()));
        let blocks: Vec<Option<Tensor<1>>> = block_slots(&self.targets).into_iter().map(|slot| slot.map(|j| z_blocks.as_ref().expect("block gates").clone().slice([j..j + 1]))).collect();
        gates::set_gates(model, &self.targets, &units, &blocks);
    }

    fn eval_masks(&mut self, model: &mut dyn PrunableModel, _step: usize) {
        let (units, blocks) = self.deterministic(&Self::log_alpha(model));
        gates::set_host_gates(model, &self.targets, &units, &blocks);
    }

    fn loss_term(&self, model: &dyn PrunableModel, step: usize) -> Option<Tensor<1>> {
        let target = self.target_at(step)?;
        let s_hat = Self::expected_sparsity(&self.targets, &Self::log_alpha(model));
        let lambda = gates::params(model).multipliers[0].val();
        let gap = s_hat.neg() + target; // t − ŝ
        Some(lambda.clone().slice([0..1]) * gap.clone() + lambda.slice([1..2]) * gap.powi_scalar(2))
    }

    fn adjust_gradients(&self, model: &dyn PrunableModel, grads: &mut GradientsParams) {
        gates::negate_multiplier_gradients(model, grads);
    }

    fn after_step(&mut self, model: &mut dyn PrunableModel, step: usize) {
        if let Some(target) = self.target_at(step + 1) {
            // The budget projection (gates::budget_shift): every unit logit moves by one amount
            // so that the next step's expected sparsity is its target; block logits stay.
            let host: Vec<Vec<f32>> = Self::log_alpha(model).into_iter().map(gates::host).collect();
            let g = self.targets.len();
            let slots = block_slots(&self.targets);
            let p_block: Vec<f64> = (0..g).map(|i| slots[i].map_or(1.0, |j| gates::open_probability_host(host[g][j]))).collect();
            let total: f64 = self.targets.iter().map(|t| (t.count * t.params_per_unit) as f64).sum();
            let sparsity = |c: f64| {
                let kept: f64 = (0..g)
                    .map(|i| p_block[i] * self.targets[i].params_per_unit as f64 * host[i].iter().map(|&a| gates::open_probability_host((a as f64 + c) as f32)).sum::<f64>())
                    .sum();
                1.0 - kept / total
            };
            let c = gates::budget_shift(sparsity, target);
            let mut shift = vec![c; g];
            shift.extend(std::iter::repeat_n(0.0, host.len() - g));
            gates::shift_log_alpha(model, &shift);
        }
        let s = Self::expected_sparsity(&self.targets, &Self::log_alpha(model));
        self.expected_sparsity = gates::host(s)[0] as f64;
    }

    fn finalize(&mut self, model: &mut dyn PrunableModel, _step: usize) {
        let la = Self::log_alpha(model);
        let (units, blocks) = self.deterministic(&la);
        // What the deterministic structure keeps against what ŝ expected, per kind.
        let g = self.targets.len();
        let host: Vec<Vec<f32>> = la.iter().map(|t| gates::host(t.clone())).collect();
        let slots = block_slots(&self.targets);
        let mut kinds: Vec<UnitKind> = self.targets.iter().map(|t| t.kind).collect();
        kinds.sort();
        kinds.dedup();
        for kind in kinds {
            let (mut expected, mut kept, mut expected_params, mut kept_params) = (0.0, 0usize, 0.0, 0usize);
            for i in (0..g).filter(|&i| self.targets[i].kind == kind) {
                let pb = slots[i].map_or(1.0, |j| gates::open_probability_host(host[g][j]));
                let e: f64 = host[i].iter().map(|&a| gates::open_probability_host(a)).sum::<f64>() * pb;
                let k = if blocks[i].is_none_or(|b| b > 0.0) { units[i].iter().filter(|&&z| z > 0.0).count() } else { 0 };
                expected += e;
                kept += k;
                expected_params += e * self.targets[i].params_per_unit as f64;
                kept_params += k * self.targets[i].params_per_unit;
            }
            tracing::info!(
                "mask_learning: {}: expected {expected:.1} kept, deterministic {kept}; weights expected {expected_params:.0}, kept {kept_params}",
                kind.plural()
            );
        }
        gates::fold(model, &self.targets, &units, &blocks);
    }

    fn param_groups(&self) -> Vec<ParamGroupSpec> {
        gates::param_groups(self.lr, self.multipliers_lr)
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "expected_sparsity": self.expected_sparsity })
    }

    fn load_state(&mut self, state: &serde_json::Value, _model: &dyn PrunableModel) -> Result<(), String> {
        self.expected_sparsity = state.get("expected_sparsity").and_then(|v| v.as_f64()).ok_or("pruner state: expected_sparsity missing")?;
        Ok(())
    }

    /// 1 − ŝ, the expected kept fraction after the last step.
    fn scheduled_density(&self, _step: usize) -> f64 {
        1.0 - self.expected_sparsity
    }
}

/// `method = "mask_learning"`.
pub fn build(c: &crate::PruningConfig, b: &crate::registry::BuildContext) -> Result<Box<dyn crate::Pruner>, String> {
    Ok(Box::new(MaskLearning::new(c.final_density, c.warmup_steps, c.cooldown_steps, b.total_steps, c.scores_lr_or(0.1)?, c.multipliers_lr()?)))
}
