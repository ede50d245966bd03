//! AdamW with parameter groups and a linear warm-up / linear decay learning rate.
//!
//! Groups (the last matching group wins): all parameters (weight decay as configured); biases
//! and LayerNorm weights without weight decay (as Hugging Face does); then each pruner's own
//! group (e.g. `mask_scores`, with its own learning rate and no weight decay).
//!
//! Gradient clipping is by the global norm over every parameter ([`clip_grad_norm`], called by
//! the training loop between backward and the step), as Hugging Face does; burn's own clipping
//! (each tensor on its own) stays available as `train.grad_clipping = "per_parameter"`.

use burn::grad_clipping::GradientClippingConfig;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::module::{Module, ModuleVisitor, Param, ParamGroup};
use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, GradientsParams, LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::Tensor;
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

/// burn's AdamW (β₁ 0.9, β₂ 0.999, ε 1e-8, decoupled weight decay; the same state record, so
/// checkpoints are interchangeable) with each step done by [`models::fused::adamw_step`] where it
/// has a kernel: one pass over a parameter, its gradient and both moments on flex instead of ~10
/// allocating passes (AdamW was 129 ms of a MiniLM step against PyTorch's 63:
/// `bench/profile_cpu_minilm_rows.json`). Other devices (wgpu, CUDA, LibTorch) take burn's own
/// AdamW step.
#[derive(Clone)]
pub struct FusedAdamW {
    weight_decay: f64,
    burns: AdamW,
}

impl FusedAdamW {
    pub const BETA_1: f64 = 0.9;
    pub const BETA_2: f64 = 0.999;
    pub const EPSILON: f64 = 1e-8;

    pub fn new(weight_decay: f64) -> Self {
        let burns = AdamWConfig::new()
            .with_beta_1(Self::BETA_1 as f32)
            .with_beta_2(Self::BETA_2 as f32)
            .with_epsilon(Self::EPSILON as f32)
            .with_weight_decay(weight_decay as f32)
            .build();
        Self { weight_decay, burns }
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(&self, lr: LearningRate, tensor: Tensor<D>, grad: Tensor<D>, state: Option<Self::State<D>>) -> (Tensor<D>, Option<Self::State<D>>) {
        if !models::fused::has_adamw_kernel(&tensor.device()) {
            return Optimizer::step(&self.burns, lr, tensor, grad, state);
        }
        let (m, v, time) = match state {
            Some(s) => (s.momentum.moment_1, s.momentum.moment_2, s.momentum.time + 1),
            None => (grad.zeros_like(), grad.zeros_like(), 1),
        };
        // Weight decay through f32, as burn's AdamW holds it.
        let (p, m, v) = models::fused::adamw_step(tensor, grad, m, v, lr, Self::BETA_1, Self::BETA_2, Self::EPSILON, self.weight_decay as f32 as f64, time)
            .expect("has_adamw_kernel was checked");
        (p, Some(AdamWState::new(AdaptiveMomentumState::new(time, m, v))))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &burn::tensor::Device) -> Self::State<D> {
        <AdamW as Optimizer>::to_device(state, device)
    }
}

/// AdamW with the groups above. `per_parameter_clip`: burn's clipping of each weight tensor's
/// gradient norm on its own (the pruners' groups unclipped); `None` when the loop clips the
/// global norm itself ([`clip_grad_norm`]).
pub fn adamw(weight_decay: f64, per_parameter_clip: Option<f64>, groups: &[ParamGroupSpec]) -> ModuleOptimizer {
    let clip = || per_parameter_clip.map(|c| GradientClippingConfig::Norm(c as f32).init());
    let mut optim = ModuleOptimizer::from(FusedAdamW::new(weight_decay));
    if let Some(c) = clip() {
        optim = optim.with_grad_clipping(c);
    }
    let mut optim = optim.with_group(ParamGroup::from_any_predicates(vec!["bias", "LayerNorm"]), FusedAdamW::new(0.0), clip());
    for g in groups {
        optim = optim.with_group(ParamGroup::from_predicate(g.path_contains.clone()), FusedAdamW::new(g.weight_decay), None);
    }
    optim
}

/// Every float parameter of `model`: its path (`bert.encoder.layer.0.attention.self.query.mask_scores`),
/// id and number of dimensions.
pub fn named_param_ids<M: Module>(model: &M) -> Vec<(String, burn::module::ParamId, usize)> {
    struct Ids {
        path: Vec<String>,
        ids: Vec<(String, burn::module::ParamId, usize)>,
    }
    impl ModuleVisitor for Ids {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.ids.push((self.path.join("."), param.id, D));
        }
    }
    let mut v = Ids { path: Vec::new(), ids: Vec::new() };
    model.visit(&mut v);
    v.ids
}


/// The squared norm of every parameter's gradient, from one pass over each gradient and one host
/// copy: enough to tell whether all gradients are finite and to clip by the global norm.
pub struct GradNorms {
    /// (parameter id, rank, whether it counts in the clipped norm, ‖g‖²).
    entries: Vec<(burn::module::ParamId, usize, bool, f64)>,
}

impl GradNorms {
    /// `exclude`: path fragments of the parameters left out of the clipped norm (they are still
    /// checked for finiteness).
    pub fn of<M: Module>(model: &M, grads: &GradientsParams, exclude: &[String]) -> Self {
        fn squared<const D: usize>(grads: &GradientsParams, id: burn::module::ParamId) -> Option<Tensor<1>> {
            grads.get::<D>(id).map(models::fused::sum_squares)
        }
        let params = named_param_ids(model);
        let mut kept = Vec::new();
        let mut parts = Vec::new();
        for (name, id, d) in params {
            let part = match d {
                1 => squared::<1>(grads, id),
                2 => squared::<2>(grads, id),
                3 => squared::<3>(grads, id),
                4 => squared::<4>(grads, id),
                _ => None,
            };
            if let Some(p) = part {
                kept.push((id, d, !exclude.iter().any(|e| name.contains(e.as_str()))));
                parts.push(p);
            }
        }
        if parts.is_empty() {
            return Self { entries: Vec::new() };
        }
        let values: Vec<f32> = Tensor::cat(parts, 0).into_data().convert::<f32>().try_to_vec().unwrap_or_default();
        Self { entries: kept.into_iter().zip(values).map(|((id, d, c), v)| (id, d, c, v as f64)).collect() }
    }

    /// Every squared norm is finite. A NaN or an infinity in a gradient makes its squared norm
    /// NaN or infinite; so can an overflow of Σg² (|g| ≳ 1e19), which callers confirm
    /// element-wise before reporting.
    pub fn all_finite(&self) -> bool {
        self.entries.iter().all(|e| e.3.is_finite())
    }

    /// √(Σ‖g‖²) over the parameters that count.
    pub fn norm(&self) -> f64 {
        self.entries.iter().filter(|e| e.2).map(|e| e.3).sum::<f64>().sqrt()
    }

    /// `torch.nn.utils.clip_grad_norm_(params, max_norm)` over the parameters that count: each of
    /// their gradients is multiplied by `max_norm / (N + 1e-6)` when that is below 1. Returns N
    /// (the norm before clipping).
    pub fn clip(&self, grads: &mut GradientsParams, max_norm: f64) -> f64 {
        fn scale<const D: usize>(grads: &mut GradientsParams, id: burn::module::ParamId, coef: f32) {
            if let Some(g) = grads.remove::<D>(id) {
                grads.register(id, g.mul_scalar(coef));
            }
        }
        let norm = self.norm();
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for &(id, d, counts, _) in &self.entries {
                if !counts {
                    continue;
                }
                match d {
                    1 => scale::<1>(grads, id, coef as f32),
                    2 => scale::<2>(grads, id, coef as f32),
                    3 => scale::<3>(grads, id, coef as f32),
                    4 => scale::<4>(grads, id, coef as f32),
                    _ => {}
                }
            }
        }
        norm
    }
}

/// Clips the gradients of `model`'s parameters together, as
/// `torch.nn.utils.clip_grad_norm_(params, max_norm)`: with N = √(Σ‖g‖²) over the gradients of
/// every parameter whose path contains none of `exclude`, each of those is multiplied by
/// `max_norm / (N + 1e-6)` when that is below 1; the excluded ones are left as they are. Returns
/// N (the norm before clipping). One host read per call.
pub fn clip_grad_norm<M: Module>(model: &M, grads: &mut GradientsParams, max_norm: f64, exclude: &[String]) -> f64 {
    GradNorms::of(model, grads, exclude).clip(grads, max_norm)
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
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, Distribution};

    #[derive(Module, Debug)]
    struct Two {
        a: Linear,
        b: Linear,
    }

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec().unwrap()
    }

    /// Gradients of a two-layer model whose second layer's gradient is `scale_b` times larger,
    /// each parameter's gradient read to the host, in visiting order.
    fn grads_of(scale_b: f32) -> (Two, GradientsParams, Vec<Vec<f32>>) {
        #[allow(deprecated)]
        let device = Device::ndarray().autodiff();
        let model = Two { a: LinearConfig::new(3, 2).init(&device), b: LinearConfig::new(4, 5).init(&device) };
        let x = Tensor::<2>::random([6, 3], Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<2>::random([6, 4], Distribution::Normal(0.0, 1.0), &device);
        let loss = model.a.forward(x).powi_scalar(2).sum() + model.b.forward(y).sum().mul_scalar(scale_b);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let ids = [model.a.weight.id, model.a.bias.as_ref().unwrap().id, model.b.weight.id, model.b.bias.as_ref().unwrap().id];
        let host_grads = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| if i % 2 == 0 { host(grads.get::<2>(id).unwrap()) } else { host(grads.get::<1>(id).unwrap()) })
            .collect();
        (model, grads, host_grads)
    }

    #[test]
    fn global_norm_clipping_scales_every_gradient_by_the_same_factor() {
        let (model, mut grads, before) = grads_of(50.0);
        let norm = before.iter().flatten().map(|&g| (g as f64).powi(2)).sum::<f64>().sqrt();
        assert!(norm > 10.0, "the case must need clipping: norm {norm}");
        let reported = clip_grad_norm(&model, &mut grads, 1.0, &[]);
        assert!((reported - norm).abs() < 1e-4 * norm, "norm before clipping {reported} vs {norm} on the host");
        let coef = 1.0 / (norm + 1e-6);
        let ids = [model.a.weight.id, model.a.bias.as_ref().unwrap().id, model.b.weight.id, model.b.bias.as_ref().unwrap().id];
        let mut after_sq = 0.0;
        for (i, (&id, b)) in ids.iter().zip(&before).enumerate() {
            let a = if i % 2 == 0 { host(grads.get::<2>(id).unwrap()) } else { host(grads.get::<1>(id).unwrap()) };
            for (x, y) in a.iter().zip(b) {
                assert!((*x as f64 - *y as f64 * coef).abs() < 1e-6, "parameter {i}: {x} vs {y} x {coef}");
                after_sq += (*x as f64).powi(2);
            }
        }
        // The clipped gradients have norm 1 together; the small first layer was scaled down as
        // much as the large second one (clipping each tensor on its own would have left it).
        assert!((after_sq.sqrt() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn excluded_parameters_neither_count_in_the_norm_nor_get_scaled() {
        let (model, mut grads, before) = grads_of(50.0);
        // Only layer a counts; its own norm sets the factor, layer b keeps its large gradient.
        let norm_a = before[..2].iter().flatten().map(|&g| (g as f64).powi(2)).sum::<f64>().sqrt();
        let max = norm_a / 4.0;
        let reported = clip_grad_norm(&model, &mut grads, max, &["b.".to_string()]);
        assert!((reported - norm_a).abs() < 1e-4 * norm_a, "{reported} vs {norm_a}");
        assert_eq!(host(grads.get::<2>(model.b.weight.id).unwrap()), before[2]);
        let a = host(grads.get::<2>(model.a.weight.id).unwrap());
        for (x, y) in a.iter().zip(&before[0]) {
            assert!((*x as f64 - *y as f64 * max / (norm_a + 1e-6)).abs() < 1e-6);
        }
    }

    #[test]
    fn gradients_under_the_threshold_are_left_as_they_are() {
        let (model, mut grads, before) = grads_of(1.0);
        let norm = before.iter().flatten().map(|&g| (g as f64).powi(2)).sum::<f64>().sqrt();
        let reported = clip_grad_norm(&model, &mut grads, norm * 2.0, &[]);
        assert!((reported - norm).abs() < 1e-4 * norm);
        assert_eq!(host(grads.get::<2>(model.b.weight.id).unwrap()), before[2]);
        assert_eq!(host(grads.get::<2>(model.a.weight.id).unwrap()), before[0]);
    }

    /// The fused AdamW is burn's AdamW: parameters and both moments over four steps, with and
    /// without weight decay, on flex (the one-pass kernel) and ndarray (composite ops), from no
    /// state and from burn's own state.
    #[test]
    fn fused_adamw_takes_burns_adamw_steps() {
        #[allow(deprecated)]
        for device in [Device::flex(), Device::ndarray()] {
            for wd in [0.0, 0.01] {
                let burns = burn::optim::AdamWConfig::new().with_weight_decay(wd as f32).with_epsilon(1e-8).build();
                let ours = FusedAdamW::new(wd);
                let mut p_b = Tensor::<2>::random([37, 29], Distribution::Normal(0.0, 1.0), &device);
                let mut p_o = p_b.clone();
                let (mut s_b, mut s_o) = (None, None);
                for step in 0..4 {
                    let g = Tensor::<2>::random([37, 29], Distribution::Normal(0.0, 0.1 + step as f64), &device);
                    let lr = 1e-3 * (step + 1) as f64;
                    // From the second step on, ours continues from burn's state: the records agree.
                    let state = if step == 0 { s_o } else { s_b.clone() };
                    let (pb, sb) = Optimizer::step(&burns, lr, p_b, g.clone(), s_b);
                    let (po, so) = Optimizer::step(&ours, lr, p_o, g, state);
                    let (sb_, so_) = (sb.clone().unwrap().momentum, so.clone().unwrap().momentum);
                    assert_eq!(sb_.time, so_.time);
                    for (a, b, what) in [(pb.clone(), po.clone(), "parameter"), (sb_.moment_1, so_.moment_1, "m"), (sb_.moment_2, so_.moment_2, "v")] {
                        let (a, b) = (host(a), host(b));
                        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / (1e-6 + x.abs())).fold(0.0f32, f32::max);
                        assert!(diff < 1e-5, "{device:?} wd {wd} step {step}: {what} differs by {diff:e} (relative)");
                    }
                    (p_b, s_b, p_o, s_o) = (pb, sb, po, so);
                }
            }
        }
    }

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
