//! GPU parity: the same computation on the CPU (flex, the reference) and on a wgpu device, the
//! results compared. The checks live in the library so that the tests (`tests/wgpu_parity.rs`,
//! on Mesa's lavapipe in CI) and `trainer gpu-check` (on a real GPU, where there is no Rust
//! toolchain) run the same code.
//!
//! Each check builds its inputs on the CPU from a fixed seed and copies them to the GPU, so the
//! two sides start from bit-identical values; only the arithmetic differs. Errors are relative to
//! the largest magnitude of the CPU's tensor (`max|gpu − cpu| / max|cpu|`), per tensor, and the
//! worst tensor is reported.

use crate::checkpoint::{self, TrainState};
use crate::loss::cross_entropy;
use burn::module::{Module, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use models::compact::compact;
use models::{BertConfig, BertForSequenceClassification, PrunableModel};
use pruners::gates::{self, GateTarget};
use pruners::methods::mask_learning::MaskLearning;
use pruners::{Scope, units};
use serde::Serialize;
use std::time::Instant;

/// Tolerance of the float comparisons: relative to the CPU tensor's largest magnitude.
pub const TOLERANCE: f64 = 1e-4;

/// The checks, in the order `run_all` runs them.
pub const CHECKS: [&str; 6] = ["forward_backward", "adamw_steps", "topk_masks", "hard_concrete", "compaction", "checkpoint_to_cpu"];

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// The largest relative error found (0 for exact comparisons that matched).
    pub max_rel_err: f64,
    pub tolerance: f64,
    /// What was compared, and where the worst error was.
    pub detail: String,
    pub seconds: f64,
}

/// A small BERT whose sizes are not multiples of a GPU tile (hidden 48, 4 heads of 12, FFN 96,
/// 2 layers), dropout off, with non-zero biases so that a lost bias shows.
pub fn model_config() -> BertConfig {
    let mut c = BertConfig::tiny(40);
    c.hidden_size = 48;
    c.num_attention_heads = 4;
    c.intermediate_size = 96;
    c
}

thread_local! {
    /// The CPU reference of the checks running on this thread (flex unless `run_against` says).
    static REFERENCE: std::cell::RefCell<Option<Device>> = const { std::cell::RefCell::new(None) };
}

fn cpu() -> Device {
    REFERENCE.with(|r| r.borrow().clone()).unwrap_or_else(Device::flex)
}

/// The reference model on the CPU.
fn reference_model(seed: u64) -> BertForSequenceClassification {
    let device = cpu();
    device.seed(seed);
    let mut m = BertForSequenceClassification::seeded(&model_config(), 2, seed, &device);
    for (_, l) in m.prunable_layers_mut() {
        if let Some(b) = l.bias.take() {
            l.bias = Some(b.map(|b| b.random_like(Distribution::Normal(0.0, 0.1))));
        }
    }
    m
}

/// Three sequences of 9 tokens, the last padded after 5.
fn batch(device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2, Int>, Tensor<1, Int>) {
    let ids: Vec<i64> = vec![2, 7, 9, 11, 3, 15, 22, 31, 3, 2, 5, 6, 12, 19, 27, 33, 8, 3, 2, 14, 17, 21, 3, 0, 0, 0, 0];
    let types: Vec<i64> = vec![0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mask: Vec<i64> = ids.iter().enumerate().map(|(i, _)| if i >= 23 { 0 } else { 1 }).collect();
    let t = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [3, 9]), device);
    (t(ids), t(types), t(mask), Tensor::from_data(TensorData::new(vec![1i64, 0, 1], [3]), device))
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().expect("f32 tensor")
}

/// `max|a − b| / max(max|b|, 1e-6)`: `a` from the GPU, `b` the CPU reference.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let scale = b.iter().fold(0.0f64, |m, &x| m.max(x.abs() as f64)).max(1e-6);
    let diff = a.iter().zip(b).fold(0.0f64, |m, (&x, &y)| if x.is_nan() || y.is_nan() { f64::INFINITY } else { m.max((x as f64 - y as f64).abs()) });
    diff / scale
}

/// Errors of named comparisons; the worst three are reported.
#[derive(Default)]
struct Worst {
    err: f64,
    what: String,
    all: Vec<(f64, String)>,
}

impl Worst {
    fn add(&mut self, what: &str, gpu: &[f32], cpu: &[f32]) {
        self.all.push((rel_err(gpu, cpu), what.to_string()));
        self.all.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.err = self.all[0].0;
        self.what = self.all.iter().take(3).map(|(e, n)| format!("{n} {e:.2e}")).collect::<Vec<_>>().join(", ");
    }
}

/// Every float parameter of `model`: its path, id and number of dimensions.
fn params<M: Module>(model: &M) -> Vec<(String, ParamId, usize)> {
    crate::optim::named_param_ids(model)
}

/// Host values of every float parameter, by path.
fn param_values<M: Module>(model: &M) -> Vec<(String, Vec<f32>)> {
    models::checkpoint::named_tensors(model).into_iter().map(|(n, d)| (n, d.convert::<f32>().try_to_vec().expect("f32"))).collect()
}

fn grad_host(grads: &GradientsParams, id: ParamId, d: usize) -> Option<Vec<f32>> {
    match d {
        1 => grads.get::<1>(id).map(host),
        2 => grads.get::<2>(id).map(host),
        3 => grads.get::<3>(id).map(host),
        _ => None,
    }
}

/// Loss and gradients of one batch: `(logits, loss, gradients by parameter path)`.
fn forward_backward(model: &BertForSequenceClassification, device: &Device) -> (Vec<f32>, f32, Vec<(String, Vec<f32>)>, GradientsParams) {
    let ad = device.clone().autodiff();
    let (ids, types, mask, labels) = batch(&ad);
    let logits = model.forward(ids, types, mask);
    let loss = cross_entropy(logits.clone(), labels);
    let loss_value = host(loss.clone())[0];
    let grads = GradientsParams::from_grads(loss.backward(), model);
    let by_path = params(model).into_iter().filter_map(|(p, id, d)| grad_host(&grads, id, d).map(|g| (p, g))).collect();
    (host(logits), loss_value, by_path, grads)
}

/// Whether `model`'s weights live on `device` (a check whose GPU side silently ran elsewhere
/// would compare the CPU with itself).
fn lives_on(model: &BertForSequenceClassification, device: &Device) -> bool {
    model.prunable_layers().iter().all(|(_, l)| l.weight.val().device() == *device)
}

/// `grads` of `from`'s parameters, copied to `device` as gradients of `to`'s parameters of the
/// same paths (so that both optimizers step from bit-identical gradients).
fn copy_grads<M: Module>(grads: &GradientsParams, from: &M, to: &M, device: &Device) -> GradientsParams {
    fn copy<const D: usize>(grads: &GradientsParams, id: ParamId, to_id: ParamId, out: &mut GradientsParams, device: &Device) {
        if let Some(g) = grads.get::<D>(id) {
            out.register(to_id, Tensor::<D>::from_data(g.into_data(), device));
        }
    }
    let mut out = GradientsParams::new();
    let targets = params(to);
    for (p, id, d) in params(from) {
        let Some(&(_, to_id, _)) = targets.iter().find(|(q, _, _)| *q == p) else { continue };
        match d {
            1 => copy::<1>(grads, id, to_id, &mut out, device),
            2 => copy::<2>(grads, id, to_id, &mut out, device),
            3 => copy::<3>(grads, id, to_id, &mut out, device),
            _ => {}
        }
    }
    out
}

fn finish(name: &str, start: Instant, worst: f64, tolerance: f64, detail: String) -> Check {
    Check { name: name.into(), passed: worst <= tolerance, max_rel_err: worst, tolerance, detail, seconds: start.elapsed().as_secs_f64() }
}

/// Logits, loss and every parameter's gradient of one batch.
fn check_forward_backward(gpu: &Device) -> Check {
    let t = Instant::now();
    let m = reference_model(11);
    let (lc, sc, gc, _) = forward_backward(&m.clone().train(), &cpu());
    let mg = m.fork(gpu).train();
    if !lives_on(&mg, gpu) {
        return finish("forward_backward", t, f64::INFINITY, TOLERANCE, "the model did not move to the GPU device".into());
    }
    let (lg, sg, gg, _) = forward_backward(&mg, gpu);
    let mut w = Worst::default();
    w.add("logits", &lg, &lc);
    w.add("loss", &[sg], &[sc]);
    let mut missing = Vec::new();
    for (p, c) in &gc {
        match gg.iter().find(|(q, _)| q == p) {
            Some((_, g)) => w.add(&format!("grad {p}"), g, c),
            None => missing.push(p.clone()),
        }
    }
    if gg.len() != gc.len() || !missing.is_empty() {
        w.err = f64::INFINITY;
        w.what = format!("gradients: {} on the CPU, {} on the GPU, missing {:?}", gc.len(), gg.len(), missing);
    }
    let detail = format!("logits, loss (cpu {sc:.6}, gpu {sg:.6}) and {} gradients; worst: {}", gc.len(), w.what);
    finish("forward_backward", t, w.err, TOLERANCE, detail)
}

/// Two AdamW steps (this project's groups, weight decay, global clipping) fed the same
/// gradients on both devices (the CPU's, copied): the optimizer's own arithmetic and state.
fn check_adamw_steps(gpu: &Device) -> Check {
    let t = Instant::now();
    let m = reference_model(12);
    let mut mc = m.clone().train();
    let mut mg = m.fork(gpu).train();
    let mut oc = crate::optim::adamw(0.01, None, &[]);
    if !lives_on(&mg, gpu) {
        return finish("adamw_steps", t, f64::INFINITY, 1e-5, "the model did not move to the GPU device".into());
    }
    let mut og = crate::optim::adamw(0.01, None, &[]);
    for _ in 0..2 {
        let (_, _, _, mut gc) = forward_backward(&mc, &cpu());
        crate::optim::clip_grad_norm(&mc, &mut gc, 1.0, &[]);
        let gg = copy_grads(&gc, &mc, &mg, gpu);
        mc = oc.step(1e-3, mc, gc);
        mg = og.step(1e-3, mg, gg);
    }
    if !lives_on(&mg, gpu) {
        return finish("adamw_steps", t, f64::INFINITY, 1e-5, "after the steps the GPU model's weights are not on the GPU".into());
    }
    let (pc, pg) = (param_values(&mc), param_values(&mg));
    let mut w = Worst::default();
    for ((n, c), (_, g)) in pc.iter().zip(&pg) {
        w.add(n, g, c);
    }
    let detail = format!("{} parameters after 2 steps (lr 1e-3, weight decay 0.01) from the same gradients; worst: {}", pc.len(), w.what);
    finish("adamw_steps", t, w.err, 1e-5, detail)
}

/// Movement's top-k masks from the same scores: per matrix and global, kept counts exact; the
/// masks themselves identical (the scores have no ties); with ties, the same kept count.
fn check_topk_masks(gpu: &Device) -> Check {
    let t = Instant::now();
    let c = cpu();
    c.seed(13);
    let dims = [[48usize, 48], [96, 48], [48, 96], [2, 48]];
    let scores_c: Vec<Tensor<2>> = dims.iter().map(|&d| Tensor::random(d, Distribution::Normal(0.0, 1.0), &c)).collect();
    let scores_g: Vec<Tensor<2>> = scores_c.iter().map(|s| Tensor::from_data(s.to_data(), gpu)).collect();
    let mut problems = Vec::new();
    let mut compared = 0;
    for density in [0.5, 0.1, 0.03] {
        for scope in [Scope::PerMatrix, Scope::Global] {
            let mc: Vec<Vec<f32>> = scope.topk_masks(&scores_c, density).into_iter().map(host).collect();
            let mg: Vec<Vec<f32>> = scope.topk_masks(&scores_g, density).into_iter().map(host).collect();
            for (i, (a, b)) in mg.iter().zip(&mc).enumerate() {
                compared += 1;
                if a != b {
                    let ka: f32 = a.iter().sum();
                    let kb: f32 = b.iter().sum();
                    problems.push(format!("{scope:?} density {density} matrix {i}: kept {ka} on the GPU, {kb} on the CPU"));
                }
            }
        }
    }
    // Ties: scores rounded to 1 decimal; exactly k kept on both.
    let tied_c: Vec<Tensor<2>> = scores_c.iter().map(|s| (s.clone() * 10.0).round() / 10.0).collect();
    let tied_g: Vec<Tensor<2>> = tied_c.iter().map(|s| Tensor::from_data(s.to_data(), gpu)).collect();
    for (i, (sc, sg)) in tied_c.iter().zip(&tied_g).enumerate() {
        let [r, cc] = sc.dims();
        let k = pruners::schedule::kept_count(r * cc, 0.3);
        let a: f32 = host(pruners::mask::topk_mask(sg.clone(), k)).iter().sum();
        let b: f32 = host(pruners::mask::topk_mask(sc.clone(), k)).iter().sum();
        compared += 1;
        if a as usize != k || b as usize != k {
            problems.push(format!("tied scores, matrix {i}: k = {k}, kept {a} on the GPU, {b} on the CPU"));
        }
    }
    let worst = if problems.is_empty() { 0.0 } else { f64::INFINITY };
    let detail = if problems.is_empty() { format!("{compared} masks identical (per matrix and global at 50/10/3%; tied scores keep exactly k)") } else { problems.join("; ") };
    finish("topk_masks", t, worst, 0.0, detail)
}

/// Hard-concrete gates from the same log α and noise, the open probabilities, and mask
/// learning's expected sparsity ŝ on a real model's gate targets.
fn check_hard_concrete(gpu: &Device) -> Check {
    let t = Instant::now();
    let c = cpu();
    c.seed(14);
    let la_c = Tensor::<1>::random([500], Distribution::Normal(0.0, 3.0), &c);
    let u_c = Tensor::<1>::random([500], Distribution::Uniform(1e-6, 1.0 - 1e-6), &c);
    let la_g = Tensor::<1>::from_data(la_c.to_data(), gpu);
    let u_g = Tensor::<1>::from_data(u_c.to_data(), gpu);
    let mut w = Worst::default();
    w.add("sample", &host(gates::sample(la_g.clone(), u_g)), &host(gates::sample(la_c.clone(), u_c)));
    w.add("open probability", &host(gates::open_probability(la_g)), &host(gates::open_probability(la_c)));
    let m = reference_model(15);
    let targets: Vec<GateTarget> = match gates::targets(&m) {
        Ok(t) => t,
        Err(e) => return finish("hard_concrete", t, f64::INFINITY, TOLERANCE, format!("gate targets: {e}")),
    };
    let mut la: Vec<Tensor<1>> = targets.iter().map(|g| Tensor::random([g.count], Distribution::Normal(1.0, 2.0), &c)).collect();
    la.push(Tensor::random([targets.len()], Distribution::Normal(3.0, 1.0), &c));
    let la_gpu: Vec<Tensor<1>> = la.iter().map(|x| Tensor::from_data(x.to_data(), gpu)).collect();
    let sc = host(MaskLearning::expected_sparsity(&targets, &la))[0];
    let sg = host(MaskLearning::expected_sparsity(&targets, &la_gpu))[0];
    w.add("expected sparsity", &[sg], &[sc]);
    let detail = format!("gate samples, P(open), mask learning's ŝ (cpu {sc:.6}, gpu {sg:.6}); worst: {}", w.what);
    finish("hard_concrete", t, w.err, TOLERANCE, detail)
}

/// A structured model (half the heads and neurons of each layer removed by magnitude), folded
/// and compacted on each device: the same shapes, and the same logits.
fn check_compaction(gpu: &Device) -> Check {
    let t = Instant::now();
    let cfg = model_config();
    let compacted = |device: &Device| -> (Vec<f32>, usize, String) {
        let mut m = reference_model(16).fork(device);
        let groups = m.unit_groups();
        let scores: Vec<Tensor<2>> = m.prunable_layers().iter().map(|(_, l)| l.weight.val().abs()).collect();
        let masks = units::unit_masks(&groups, &scores, 0.5);
        for ((_, l), mask) in m.prunable_layers_mut().into_iter().zip(masks) {
            l.mask = Some(mask);
        }
        pruners::mask::fold_masks(&mut m);
        let (small, small_cfg, report) = compact(&m, &cfg);
        let (ids, types, mask, _) = batch(device);
        (host(small.forward(ids, types, mask)), burn::module::Module::num_params(&small), format!("heads {:?}, FFN widths {:?}, pruned_heads {:?}", report.heads, report.ffn_widths, small_cfg.pruned_heads))
    };
    let (lc, nc, sc) = compacted(&cpu());
    let (lg, ng, sg) = compacted(gpu);
    let mut w = Worst::default();
    w.add("compacted logits", &lg, &lc);
    if nc != ng || sc != sg {
        w.err = f64::INFINITY;
        w.what = format!("shapes differ: {ng} parameters on the GPU ({sg}), {nc} on the CPU ({sc})");
    }
    let detail = format!("compacted to {nc} parameters on both; logits {}", if w.err.is_finite() { format!("within {:.2e}", w.err) } else { w.what.clone() });
    finish("compaction", t, w.err, TOLERANCE, detail)
}

/// A checkpoint written from the GPU (model, AdamW state, masks) restored on the CPU: every
/// parameter bit-identical, and the next optimizer step from the same gradients agrees.
fn check_checkpoint_to_cpu(gpu: &Device) -> Check {
    let t = Instant::now();
    let dir = std::env::temp_dir().join(format!("prunekit-parity-ckpt-{}-{}", std::process::id(), t.elapsed().as_nanos()));
    let result = (|| -> Result<(f64, String), String> {
        let m = reference_model(17);
        let mut mg = m.clone().fork(gpu).train();
        let mut og = crate::optim::adamw(0.01, None, &[]);
        // Masks on the GPU model, so that they travel too.
        let scores: Vec<Tensor<2>> = mg.prunable_layers().iter().map(|(_, l)| l.weight.val().abs()).collect();
        for ((_, l), mask) in mg.prunable_layers_mut().into_iter().zip(Scope::PerMatrix.topk_masks(&scores, 0.5)) {
            l.mask = Some(mask);
        }
        let (_, _, _, g) = forward_backward(&mg, gpu);
        mg = og.step(1e-3, mg, g);
        let state = TrainState {
            step: 1,
            total_steps: 2,
            rng_state: 0,
            train_seconds: 0.0,
            eval_seconds: 0.0,
            samples: 3,
            loss_sum: 0.0,
            loss_count: 0,
            grad_norm_max: 0.0,
            pruner: serde_json::Value::Null,
            experiment: String::new(),
            extra: serde_json::Value::Null,
            sha256: Default::default(),
        };
        let saved = checkpoint::save(&dir, &mg, &og, None, state, 1)?;
        checkpoint::verify(&saved)?;
        let fresh = reference_model(99).train(); // other values, same structure
        let (mc, oc) = checkpoint::restore(&saved, fresh, crate::optim::adamw(0.01, None, &[]), &cpu().autodiff())?;
        let (pg, pc) = (param_values(&mg), param_values(&mc));
        let differing: Vec<&String> = pg.iter().zip(&pc).filter(|((_, a), (_, b))| a != b).map(|((n, _), _)| n).collect();
        if !differing.is_empty() || pg.len() != pc.len() {
            return Ok((f64::INFINITY, format!("parameters differ after restore: {differing:?}")));
        }
        let masks_equal = mg.prunable_layers().iter().zip(mc.prunable_layers()).all(|((_, a), (_, b))| match (&a.mask, &b.mask) {
            (Some(x), Some(y)) => host(x.clone()) == host(y.clone()),
            _ => false,
        });
        if !masks_equal {
            return Ok((f64::INFINITY, "masks differ after restore".into()));
        }
        // The next step from the same (CPU) gradients on both: the AdamW moments came along.
        let (mut mc, mut oc, mut mg) = (mc, oc, mg);
        let (_, _, _, gc) = forward_backward(&mc, &cpu());
        let gg = copy_grads(&gc, &mc, &mg, gpu);
        mc = oc.step(1e-3, mc, gc);
        mg = og.step(1e-3, mg, gg);
        let mut w = Worst::default();
        for ((n, c), (_, g)) in param_values(&mc).iter().zip(&param_values(&mg)) {
            w.add(n, g, c);
        }
        let _ = &mut oc;
        Ok((w.err, format!("saved on the GPU, restored on the CPU: parameters and masks bit-identical; next AdamW step agrees (worst: {})", w.what)))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok((err, detail)) => finish("checkpoint_to_cpu", t, err, 1e-5, detail),
        Err(e) => finish("checkpoint_to_cpu", t, f64::INFINITY, 1e-5, e),
    }
}

/// Runs the check called `name` on `gpu` against the flex CPU backend; a panic inside it is a
/// failed check.
pub fn run(name: &str, gpu: &Device) -> Check {
    run_against(name, gpu, &Device::flex())
}

/// The same with another reference device (e.g. ndarray, to see two CPU backends' spread).
pub fn run_against(name: &str, gpu: &Device, reference: &Device) -> Check {
    let previous = REFERENCE.with(|r| r.replace(Some(reference.clone())));
    let c = run_inner(name, gpu);
    REFERENCE.with(|r| *r.borrow_mut() = previous);
    c
}

fn run_inner(name: &str, gpu: &Device) -> Check {
    let t = Instant::now();
    let f: fn(&Device) -> Check = match name {
        "forward_backward" => check_forward_backward,
        "adamw_steps" => check_adamw_steps,
        "topk_masks" => check_topk_masks,
        "hard_concrete" => check_hard_concrete,
        "compaction" => check_compaction,
        "checkpoint_to_cpu" => check_checkpoint_to_cpu,
        other => return finish(other, t, f64::INFINITY, 0.0, format!("no such check; the checks are {CHECKS:?}")),
    };
    let gpu = gpu.clone();
    match std::panic::catch_unwind(move || f(&gpu)) {
        Ok(c) => c,
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "panic".into());
            finish(name, t, f64::INFINITY, 0.0, format!("panicked: {msg}"))
        }
    }
}

/// Every check, in order.
pub fn run_all(gpu: &Device) -> Vec<Check> {
    CHECKS.iter().map(|n| run(n, gpu)).collect()
}
