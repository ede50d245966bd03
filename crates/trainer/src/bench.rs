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
    for step in 0..total {
        let t = Instant::now();
        pruner.apply_masks(&mut model, step);
        let logits = model.forward(ids.clone(), types.clone(), mask.clone());
        let loss = cross_entropy(logits, labels.clone());
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        crate::optim::clip_grad_norm(&model, &mut grads, 1.0, &[]);
        model = optim.step(3e-5, model, grads);
        device.sync().map_err(|e| format!("{e:?}"))?;
        if step >= args.warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let _ = model.valid();
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    let result = serde_json::json!({
        "impl": "burn", "device": sel.name, "shape": args.shape, "pruning": args.pruning,
        "batch_size": b, "seq_len": l, "steps": args.steps, "warmup": args.warmup,
        "median_step_s": median, "samples_per_second": b as f64 / median,
        "step_times_s": times, "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
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
