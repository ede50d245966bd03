//! `trainer latency`: inference latency of the dense model, of the same model with unstructured
//! sparsity (zeros in dense matrices), and of the compacted structured model (whole heads and
//! FFN neurons removed), at batch 1 and 32, median of many runs after warm-up. Reports each
//! speedup beside the FLOP ratio (the ideal) and the parameters removed. A benchmark, not a test.

use crate::experiment::DeviceChoice;
use crate::train_loop::load_model;
use burn::tensor::{Device, Distribution, Int, Tensor};
use models::{BertForSequenceClassification, PrunableModel};
use pruners::units::unit_masks;
use pruners::Scope;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct LatencyArgs {
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceChoice,
    /// Model shapes with random weights ("minilm", "bert-base"), or with --model real weights.
    #[arg(long, default_value = "minilm")]
    shape: String,
    /// A model source ("minilm", a checkpoint directory, a hub id) instead of random weights.
    #[arg(long)]
    model: Option<String>,
    /// Fractions of heads and FFN neurons kept per layer (one structured model each).
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.25")]
    keep: Vec<f64>,
    /// Compacted models saved by structured runs (their output_dir), timed beside the dense
    /// model (e.g. uniform vs non-uniform shapes at the same budget).
    #[arg(long, value_delimiter = ',')]
    compacted: Vec<String>,
    /// ConvNet pruning runs (folders of runs, run folders or summary.json files): their compacted
    /// shapes rebuilt and timed beside the dense network, instead of the BERT variants.
    #[arg(long, value_delimiter = ',')]
    cnn_runs: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    batch_sizes: Vec<usize>,
    #[arg(long, default_value_t = 128)]
    seq_len: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 20)]
    runs: usize,
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Multiply-adds ×2 of one forward pass of the encoder at `seq` tokens, per sequence.
pub fn encoder_flops(model: &BertForSequenceClassification, seq: usize) -> f64 {
    let mut f = 0.0;
    for (_, l) in model.prunable_layers() {
        let [o, i] = l.dims();
        f += 2.0 * (o * i * seq) as f64;
    }
    for layer in &model.bert.encoder.layer {
        let hd = (layer.attention.self_.num_heads * layer.attention.self_.head_dim) as f64;
        f += 2.0 * 2.0 * (seq * seq) as f64 * hd; // QKᵀ and P·V
    }
    f
}

fn encoder_params(model: &BertForSequenceClassification) -> usize {
    model.prunable_layers().iter().map(|(_, l)| l.dims()[0] * l.dims()[1]).sum()
}

/// Medians (and all times, in seconds) of `runs` passes of each of `count` models, interleaved
/// (one pass of every model per round, after `warmup` rounds) so that drift in the machine's
/// speed hits all alike. `pass(m)` runs model `m` once and waits for its result.
pub fn interleaved(count: usize, warmup: usize, runs: usize, mut pass: impl FnMut(usize) -> Result<(), String>) -> Result<Vec<(f64, Vec<f64>)>, String> {
    let mut times = vec![Vec::new(); count];
    for r in 0..warmup + runs {
        for (m, t) in times.iter_mut().enumerate() {
            let start = Instant::now();
            pass(m)?;
            if r >= warmup {
                t.push(start.elapsed().as_secs_f64());
            }
        }
    }
    Ok(times
        .into_iter()
        .map(|t| {
            let mut sorted = t.clone();
            sorted.sort_by(|a, b| a.total_cmp(b));
            (sorted[sorted.len() / 2], t)
        })
        .collect())
}

fn time_all(models: &[&BertForSequenceClassification], batch: usize, seq: usize, warmup: usize, runs: usize, device: &Device) -> Result<Vec<(f64, Vec<f64>)>, String> {
    let ids = Tensor::<2>::random([batch, seq], Distribution::Uniform(1000.0, 29000.0), device).int();
    let types = Tensor::<2, Int>::zeros([batch, seq], device);
    let mask = Tensor::<2, Int>::ones([batch, seq], device);
    interleaved(models.len(), warmup, runs, |m| {
        let _ = models[m].forward(ids.clone(), types.clone(), mask.clone()).into_data(); // waits for the result
        device.sync().map_err(|e| format!("{e:?}"))
    })
}

pub fn main(args: LatencyArgs) -> Result<(), String> {
    let sel = crate::device::select(args.device)?;
    let device = sel.device.clone();
    device.seed(0);
    if !args.cnn_runs.is_empty() {
        return crate::latency_cnn::main(&args.cnn_runs, &args.batch_sizes, args.warmup, args.runs, args.out.as_deref(), &device, &sel.name);
    }
    let (dense, config, weights) = match &args.model {
        Some(src) => {
            let l = load_model(src, args.seq_len, 2, false, &device)?;
            (l.model, l.config, src.clone())
        }
        None => {
            let c = crate::bench::shape_config(&args.shape)?;
            (BertForSequenceClassification::new(&c, 2, &device), c, format!("random, {} shapes", args.shape))
        }
    };
    let dense_params = encoder_params(&dense);
    let mut variants: Vec<(String, BertForSequenceClassification, f64)> = vec![("dense".into(), dense.clone(), 1.0)];
    for &keep in &args.keep {
        // Structured: heads and neurons by L1 norm, then cut out.
        let mut masked = dense.clone();
        let groups = masked.unit_groups();
        let magnitudes: Vec<Tensor<2>> = masked.prunable_layers().iter().map(|(_, l)| l.weight.val().abs()).collect();
        for ((_, l), m) in masked.prunable_layers_mut().into_iter().zip(unit_masks(&groups, &magnitudes, keep)) {
            l.mask = Some(m);
        }
        pruners::mask::fold_masks(&mut masked);
        let (small, _, _) = models::compact::compact(&masked, &config);
        let kept = encoder_params(&small) as f64 / dense_params as f64;
        // Unstructured at the same kept fraction: zeros inside dense matrices.
        let mut sparse = dense.clone();
        let magnitudes: Vec<Tensor<2>> = sparse.prunable_layers().iter().map(|(_, l)| l.weight.val().abs()).collect();
        for ((_, l), m) in sparse.prunable_layers_mut().into_iter().zip(Scope::PerMatrix.topk_masks(&magnitudes, kept)) {
            l.mask = Some(m);
        }
        pruners::mask::fold_masks(&mut sparse);
        variants.push((format!("structured, {:.0}% of heads and neurons kept (compacted)", keep * 100.0), small, kept));
        variants.push((format!("unstructured, {:.1}% of weights kept (zeros, same shapes)", kept * 100.0), sparse, kept));
    }
    for src in &args.compacted {
        let l = load_model(src, args.seq_len, 2, false, &device).map_err(|e| format!("--compacted {src}: {e}"))?;
        let kept = encoder_params(&l.model) as f64 / dense_params as f64;
        let heads: Vec<usize> = l.model.bert.encoder.layer.iter().map(|x| x.attention.self_.num_heads).collect();
        let widths: Vec<usize> = l.model.bert.encoder.layer.iter().map(|x| x.intermediate.dense.dims()[0]).collect();
        variants.push((format!("{src}: heads {heads:?}, FFN {widths:?}"), l.model, kept));
    }
    let mut rows = Vec::new();
    let refs: Vec<&BertForSequenceClassification> = variants.iter().map(|(_, m, _)| m).collect();
    let dense_flops = encoder_flops(&variants[0].1, args.seq_len);
    for &batch in &args.batch_sizes {
        let timed = time_all(&refs, batch, args.seq_len, args.warmup, args.runs, &device)?;
        let dense_s = timed[0].0;
        for ((name, model, kept), (median, times)) in variants.iter().zip(timed) {
            let ideal = dense_flops / encoder_flops(model, args.seq_len);
            let speedup = dense_s / median;
            println!("batch {batch:>3}  {name:<60} {:>9.2} ms  speedup {speedup:5.2}x  FLOP-ideal {ideal:5.2}x  ({:.2} of ideal)  encoder weights kept {:.1}%", median * 1e3, speedup / ideal, kept * 100.0);
            rows.push(serde_json::json!({"variant": name, "batch_size": batch, "median_s": median, "speedup_vs_dense": speedup,
                "flop_ideal_speedup": ideal, "fraction_of_ideal": speedup / ideal, "encoder_weights_kept": kept, "times_s": times}));
        }
    }
    let result = serde_json::json!({"device": sel.name, "weights": weights, "seq_len": args.seq_len, "warmup": args.warmup, "runs": args.runs,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), "results": rows});
    if let Some(p) = args.out {
        std::fs::write(&p, serde_json::to_string_pretty(&result).unwrap_or_default()).map_err(|e| format!("{}: {e}", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(())
}
