//! AdamW with parameter groups and a linear warm-up / linear decay learning rate.
//!
//! Groups (the last matching group wins): all parameters (weight decay as configured); biases
//! and LayerNorm weights without weight decay (as Hugging Face does); then each pruner's own
//! group (e.g. `mask_scores`, with its own learning rate and no weight decay).

use burn::grad_clipping::GradientClippingConfig;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::module::ParamGroup;
use burn::optim::{AdamWConfig, ModuleOptimizer};
use pruners::ParamGroupSpec;

/// Linear warm-up from 0 to `peak` over `warmup` steps, then linear decay to 0 at `total`.
#[derive(Debug, Clone)]
pub struct WarmupLinear {
    pub peak: f64,
    pub warmup: usize,
    pub total: usize,
    pub step: usize,
}

impl WarmupLinear {
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let rest = self.total.saturating_sub(self.warmup).max(1);
        self.peak * (1.0 - (step - self.warmup) as f64 / rest as f64).max(0.0)
    }
}

impl LrScheduler for WarmupLinear {
    fn step(&mut self) -> f64 {
        let lr = self.lr_at(self.step);
        self.step += 1;
        lr
    }
    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new()
    }
    fn load_record(&mut self, _record: LrSchedulerRecord) {}
}

pub fn adamw(weight_decay: f64, max_grad_norm: f64, groups: &[ParamGroupSpec]) -> ModuleOptimizer {
    let base = AdamWConfig::new()
        .with_weight_decay(weight_decay as f32)
        .with_epsilon(1e-8)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(max_grad_norm as f32)));
    let clip = || Some(GradientClippingConfig::Norm(max_grad_norm as f32).init());
    let mut optim = base.init().with_group(
        ParamGroup::from_any_predicates(vec!["bias", "LayerNorm"]),
        AdamWConfig::new().with_weight_decay(0.0).with_epsilon(1e-8).build(),
        clip(),
    );
    for g in groups {
        optim = optim.with_group(
            ParamGroup::from_predicate(g.path_contains.clone()),
            AdamWConfig::new().with_weight_decay(g.weight_decay as f32).with_epsilon(1e-8).build(),
            None,
        );
    }
    optim
}

pub fn lr_schedule(peak: f64, warmup: usize, total: usize, groups: &[ParamGroupSpec]) -> ModuleLrScheduler {
    let mut s = ModuleLrScheduler::new(WarmupLinear { peak, warmup, total, step: 0 });
    for g in groups {
        s = s.with_group(ParamGroup::from_predicate(g.path_contains.clone()), WarmupLinear { peak: g.lr, warmup, total, step: 0 });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_linear_decay() {
        let s = WarmupLinear { peak: 1.0, warmup: 4, total: 12, step: 0 };
        let v: Vec<f64> = (0..12).map(|t| s.lr_at(t)).collect();
        assert_eq!(&v[..4], &[0.25, 0.5, 0.75, 1.0]);
        assert_eq!(v[4], 1.0);
        assert_eq!(v[8], 0.5);
        assert!((v[11] - 0.125).abs() < 1e-12);
    }
}
