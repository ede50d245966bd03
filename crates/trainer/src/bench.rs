//! `trainer bench`: training-step throughput on a model with a checkpoint's shapes
//! (random weights), written as JSON. `scripts/bench_cpu.sh` runs it beside the PyTorch peer
//! (`scripts/torch_step.py`) on the same machine and reports the ratio.

use crate::experiment::DeviceChoice;
use crate::loss::cross_entropy;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Distribution, Int, Tensor};
use models::{BertConfig, BertForSequenceClassification};
use pruners::{CubicSchedule, Pruner, Scope};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceChoice,
    /// Model shapes: "minilm" (6 x 384, MiniLM-L6), "bert-base" (12 x 768) (both in
    /// `configs/models/`), or the path of a Hugging Face config.json.
    #[arg(long, default_value = "minilm")]
    shape: String,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 128)]
    seq_len: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// "dense" or "movement" (scores + top-k masks every step).
    #[arg(long, default_value = "dense")]
    pruning: String,
    /// Write the result here (JSON); printed to stdout as well.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also split every step into masks / forward / backward / clip / optimizer, with a device
    /// sync after each (the syncs cost a little; the plain step time is measured without them
    /// in the same run).
    #[arg(long)]
    profile: bool,
    /// Instead of whole steps: time each operation kind of a BERT layer at these shapes,
    /// forward alone and forward + backward (median of `--steps`), as `scripts/torch_ops.py`
    /// does for PyTorch.
    #[arg(long)]
    ops: bool,
}

/// Median seconds of `f` over `n` runs after one warm-up run, with a device sync after each.
fn time_median(device: &burn::tensor::Device, n: usize, mut f: impl FnMut()) -> Result<f64, String> {
    f();
    device.sync().map_err(|e| format!("{e:?}"))?;
    let mut t: Vec<f64> = (0..n.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            device.sync().map(|_| s.elapsed().as_secs_f64()).map_err(|e| format!("{e:?}"))
        })
        .collect::<Result<_, _>>()?;
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[t.len() / 2])
}

/// The operation kinds of one BERT layer at batch × seq tokens, each forward alone and
/// forward + backward (the gradient of the output's sum).
fn ops(args: &BenchArgs, device: &burn::tensor::Device, name: &str) -> Result<serde_json::Value, String> {
    // The model's softmax (one autodiff node on flex/ndarray: models::fused).
    let softmax = |x: Tensor<4>, _dim: usize| models::fused::softmax_last(x);
    let cfg = shape_config(&args.shape)?;
    let (b, l, h, f, heads) = (args.batch_size, args.seq_len, cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads);
    let d = h / heads;
    let ad = device.clone().autodiff();
    let n = args.steps;
    let rand2 = |r: usize, c: usize, dev: &burn::tensor::Device| Tensor::<2>::random([r, c], Distribution::Normal(0.0, 0.02), dev);
    let rand3 = |a: usize, r: usize, c: usize, dev: &burn::tensor::Device| Tensor::<3>::random([a, r, c], Distribution::Normal(0.0, 1.0), dev);
    let rand4 = |s: [usize; 4], dev: &burn::tensor::Device| Tensor::<4>::random(s, Distribution::Normal(0.0, 1.0), dev);
    let mut out = serde_json::Map::new();
    let mut record = |op: &str, flops: f64, fwd: f64, fwd_bwd: f64| {
        out.insert(op.into(), serde_json::json!({ "forward_s": fwd, "forward_backward_s": fwd_bwd, "forward_gflops": flops / fwd / 1e9 }));
    };
    // Linear layers as the model runs them (models::linear::linear_out_in): x [b, l, in] · Wᵀ + bias.
    for (op, i, o) in [("linear_hidden_to_hidden", h, h), ("linear_hidden_to_ffn", h, f), ("linear_ffn_to_hidden", f, h)] {
        let flops = 2.0 * (b * l * i * o) as f64;
        let (x, w, bias) = (rand3(b, l, i, device), rand2(o, i, device), Tensor::<1>::zeros([o], device));
        let fwd = time_median(device, n, || {
            let _ = models::linear::linear_out_in(x.clone(), w.clone(), Some(bias.clone()));
        })?;
        let (xa, wa) = (rand3(b, l, i, &ad).require_grad(), rand2(o, i, &ad).require_grad());
        let ba = Tensor::<1>::zeros([o], &ad).require_grad();
        let fb = time_median(device, n, || {
            let y = models::linear::linear_out_in(xa.clone(), wa.clone(), Some(ba.clone()));
            let _ = y.sum().backward();
        })?;
        record(op, flops, fwd, fb);
    }
    // The matmuls of a linear layer's backward, by operand layout: [rows, in]·[in, out] with
    // both operands contiguous, the right one a transposed view, the left one a transposed view.
    {
        let (r, i, o) = (b * l, h, f);
        let flops = 2.0 * (r * i * o) as f64;
        let (x, w, wt, xt) = (rand2(r, i, device), rand2(i, o, device), rand2(o, i, device), rand2(i, r, device));
        let t = time_median(device, n, || {
            let _ = x.clone().matmul(w.clone());
        })?;
        record("matmul_contiguous", flops, t, f64::NAN);
        let t = time_median(device, n, || {
            let _ = x.clone().matmul(wt.clone().transpose());
        })?;
        record("matmul_rhs_transposed", flops, t, f64::NAN);
        let t = time_median(device, n, || {
            let _ = xt.clone().transpose().matmul(w.clone());
        })?;
        record("matmul_lhs_transposed", flops, t, f64::NAN);
    }
    // Attention: scores = q·kᵀ, softmax, probs·v (the training path's explicit form).
    let flops = 2.0 * 2.0 * (b * heads * l * l * d) as f64;
    let (q, k, v) = (rand4([b, heads, l, d], device), rand4([b, heads, l, d], device), rand4([b, heads, l, d], device));
    let fwd = time_median(device, n, || {
        let p = softmax(q.clone().matmul(k.clone().swap_dims(2, 3)), 3);
        let _ = p.matmul(v.clone());
    })?;
    let (qa, ka, va) = (rand4([b, heads, l, d], &ad).require_grad(), rand4([b, heads, l, d], &ad).require_grad(), rand4([b, heads, l, d], &ad).require_grad());
    let fb = time_median(device, n, || {
        let p = softmax(qa.clone().matmul(ka.clone().swap_dims(2, 3)), 3);
        let _ = p.matmul(va.clone()).sum().backward();
    })?;
    record("attention_matmuls_softmax", flops, fwd, fb);
    let s = rand4([b, heads, l, l], device);
    let sa = rand4([b, heads, l, l], &ad).require_grad();
    let fwd = time_median(device, n, || {
        let _ = softmax(s.clone(), 3);
    })?;
    let fb = time_median(device, n, || {
        let _ = softmax(sa.clone(), 3).sum().backward();
    })?;
    record("softmax", 0.0, fwd, fb);
    // LayerNorm (the model's training form) and GELU, elementwise add, dropout.
    let ln = models::layers::LayerNorm::new(h, 1e-12, &ad);
    let xl = rand3(b, l, h, &ad).require_grad();
    let xi = rand3(b, l, h, device);
    let ln_inf = models::layers::LayerNorm::new(h, 1e-12, device);
    let fwd = time_median(device, n, || {
        let _ = ln_inf.forward(xi.clone());
    })?;
    let fb = time_median(device, n, || {
        let _ = ln.forward(xl.clone()).sum().backward();
    })?;
    record("layer_norm", 0.0, fwd, fb);
    let (xg, xga) = (rand3(b, l, f, device), rand3(b, l, f, &ad).require_grad());
    let fwd = time_median(device, n, || {
        let _ = models::bert::gelu_exact(xg.clone());
    })?;
    let fb = time_median(device, n, || {
        let _ = models::bert::gelu_exact(xga.clone()).sum().backward();
    })?;
    record("gelu", 0.0, fwd, fb);
    let fwd = time_median(device, n, || {
        let _ = xg.clone() + xg.clone();
    })?;
    let fb = time_median(device, n, || {
        let _ = (xga.clone() + xga.clone()).sum().backward();
    })?;
    record("add_ffn_sized", 0.0, fwd, fb);
    let drop = models::layers::Dropout::new(0.1);
    let fb = time_median(device, n, || {
        let _ = drop.forward(xga.clone()).sum().backward();
    })?;
    record("dropout_ffn_sized", 0.0, f64::NAN, fb);
    Ok(serde_json::json!({ "impl": "burn", "device": name, "shape": args.shape, "batch_size": b, "seq_len": l, "steps": n, "ops": out }))
}

/// The model shapes of `configs/models/` (compiled in), by name, or any Hugging Face
/// `config.json` by path.
pub fn shape_config(name: &str) -> Result<BertConfig, String> {
    let builtin = match name {
        "minilm" => Some(include_str!("../../../configs/models/minilm-l6.json")),
        "bert-base" => Some(include_str!("../../../configs/models/bert-base.json")),
        _ => None,
    };
    match builtin {
        Some(text) => serde_json::from_str(text).map_err(|e| format!("configs/models ({name}): {e}")),
        None if name.ends_with(".json") => BertConfig::from_file(std::path::Path::new(name)),
        None => Err(format!("--shape {name}: expected minilm, bert-base or the path of a config.json")),
    }
}

pub fn main(args: BenchArgs) -> Result<(), String> {
    let sel = crate::device::select(args.device)?;
    if args.ops {
        let r = ops(&args, &sel.device, &sel.name)?;
        println!("{r}");
        if let Some(p) = &args.out {
            std::fs::write(p, serde_json::to_string_pretty(&r).unwrap_or_default()).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        return Ok(());
    }
    let cfg = shape_config(&args.shape)?;
    let device = sel.device.clone();
    device.seed(0);
    let mut model = BertForSequenceClassification::new(&cfg, 2, &device);
    let total = args.warmup + args.steps;
    let mut pruner: Box<dyn Pruner> = match args.pruning.as_str() {
        "dense" => Box::new(pruners::methods::dense::Dense),
        "movement" => Box::new(pruners::methods::movement::Movement::new(
            CubicSchedule { initial_density: 1.0, final_density: 0.1, warmup_steps: 0, cooldown_steps: 0, total_steps: total },
            Scope::PerMatrix,
            1e-2,
        )),
        other => return Err(format!("--pruning {other}: expected dense or movement")),
    };
    pruner.init(&mut model);
    let mut model = model.train();
    let ad = device.clone().autodiff();
    let groups = pruner.param_groups();
    let mut optim = crate::optim::adamw(0.01, None, &groups);
    let (b, l) = (args.batch_size, args.seq_len);
    let ids = Tensor::<2>::random([b, l], Distribution::Uniform(0.0, 30000.0), &ad).int();
    let types = Tensor::<2, Int>::zeros([b, l], &ad);
    let mask = Tensor::<2, Int>::ones([b, l], &ad);
    let labels = Tensor::<2>::random([b, 1], Distribution::Uniform(0.0, 2.0), &ad).int().reshape([b]);
    let mut times = Vec::new();
    // Per phase, seconds per measured step (only with --profile).
    const PHASES: [&str; 6] = ["masks", "forward", "backward", "clip", "optimizer", "total"];
    let mut phases: Vec<Vec<f64>> = vec![Vec::new(); PHASES.len()];
    let sync = |d: &burn::tensor::Device| d.sync().map_err(|e| format!("{e:?}"));
    let rounds = if args.profile { 2 } else { 1 };
    for round in 0..rounds {
        let profiled = round == 1;
        for step in 0..total {
            let t = Instant::now();
            let mut marks = vec![t];
            let mark = |marks: &mut Vec<Instant>| -> Result<(), String> {
                if profiled {
                    sync(&device)?;
                    marks.push(Instant::now());
                }
                Ok(())
            };
            pruner.apply_masks(&mut model, step);
            mark(&mut marks)?;
            let logits = model.forward(ids.clone(), types.clone(), mask.clone());
            let loss = cross_entropy(logits, labels.clone());
            mark(&mut marks)?;
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            mark(&mut marks)?;
            crate::optim::clip_grad_norm(&model, &mut grads, 1.0, &[]);
            mark(&mut marks)?;
            model = optim.step(3e-5, model, grads);
            sync(&device)?;
            marks.push(Instant::now());
            if step >= args.warmup {
                if profiled {
                    for (k, w) in marks.windows(2).enumerate() {
                        phases[k].push((w[1] - w[0]).as_secs_f64());
                    }
                    phases[5].push(t.elapsed().as_secs_f64());
                } else {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
        }
    }
    let _ = model.valid();
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    let mut result = serde_json::json!({
        "impl": "burn", "device": sel.name, "shape": args.shape, "pruning": args.pruning,
        "batch_size": b, "seq_len": l, "steps": args.steps, "warmup": args.warmup,
        "median_step_s": median, "samples_per_second": b as f64 / median,
        "step_times_s": times, "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    if args.profile {
        let med = |v: &Vec<f64>| {
            let mut v = v.clone();
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let split: serde_json::Map<String, serde_json::Value> = PHASES.iter().zip(&phases).map(|(k, v)| (k.to_string(), serde_json::json!(med(v)))).collect();
        result["profile_median_s"] = serde_json::Value::Object(split);
    }
    println!("{result}");
    if let Some(p) = args.out {
        std::fs::write(&p, serde_json::to_string_pretty(&result).unwrap_or_default()).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn shapes_come_from_configs_models() {
        let m = super::shape_config("minilm").unwrap();
        assert_eq!((m.hidden_size, m.num_hidden_layers, m.num_attention_heads, m.intermediate_size), (384, 6, 12, 1536));
        let b = super::shape_config("bert-base").unwrap();
        assert_eq!((b.hidden_size, b.num_hidden_layers, b.intermediate_size, b.vocab_size), (768, 12, 3072, 30522));
        let err = super::shape_config("gpt2").unwrap_err();
        assert!(err.contains("--shape gpt2"), "{err}");
        let err = super::shape_config("/nonexistent/config.json").unwrap_err();
        assert!(err.contains("/nonexistent/config.json"), "{err}");
    }
}
