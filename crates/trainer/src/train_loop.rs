//! The whole loop, top to bottom:
//! config → dataset → batcher → model → pruner → loss → optimizer → report.

use crate::data::{self, EncodedData};
use crate::experiment::Experiment;
use crate::loss::{cross_entropy, distillation_kl};
use crate::metrics::{classification, ClassMetrics};
use crate::report::{write_json, MetricsLog};
use crate::{checkpoint, device, optim, source};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use datasets::split::SplitMix64;
use datasets::{Batcher, EncodedItem, TextTokenizer};
use models::checkpoint::{load_safetensors, save_safetensors};
use models::{BertConfig, BertForSequenceClassification, PrunableModel};
use pruners::{Pruner, SparsityReport};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct Summary {
    pub name: String,
    pub data: String,
    pub model_source: String,
    pub device: String,
    pub pruning_method: String,
    /// The scheduled final kept fraction (top-k methods); soft movement and L0 reach theirs.
    pub target_density: Option<f64>,
    /// The teacher, when the run distilled.
    pub distilled_from: Option<String>,
    pub steps: usize,
    pub epochs: f64,
    pub batch_size: usize,
    pub train_examples: usize,
    pub validation: ClassMetrics,
    pub test: Option<ClassMetrics>,
    /// Fraction of prunable (encoder Linear) weights that are exactly zero, counted.
    pub prunable_sparsity: f64,
    pub prunable_remaining: f64,
    pub prunable_params: usize,
    pub prunable_nonzero: usize,
    /// All parameters of the model (embeddings, LayerNorms, head included) and the non-zero ones.
    pub total_params: usize,
    pub total_nonzero: usize,
    pub per_matrix: Vec<pruners::stats::MatrixSparsity>,
    /// Structured runs: the compacted model that was saved (heads and FFN width per layer,
    /// parameters before and after) and its test metrics, which must equal the masked model's.
    pub compaction: Option<Compaction>,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub wall_seconds: f64,
    pub train_samples_per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct Compaction {
    #[serde(flatten)]
    pub report: models::compact::CompactionReport,
    pub test: Option<ClassMetrics>,
}

/// The model, its tokenizer and config, ready on `device`.
pub struct Loaded {
    pub model: BertForSequenceClassification,
    pub config: BertConfig,
    pub tokenizer: TextTokenizer,
    pub dir: std::path::PathBuf,
    /// Parameters the checkpoint did not have (newly initialised), by HF name.
    pub missing: Vec<String>,
}

/// Resolves the model source and loads config, tokenizer and weights on `device` (no autodiff).
pub fn load_model(src: &str, max_length: usize, num_labels: usize, random_init: bool, device: &Device) -> Result<Loaded, String> {
    let dir = source::resolve(src)?;
    let config = BertConfig::from_file(&dir.join("config.json"))?;
    if max_length > config.max_position_embeddings {
        return Err(format!("model.max_length {max_length} exceeds the checkpoint's max_position_embeddings {}", config.max_position_embeddings));
    }
    let tokenizer = TextTokenizer::from_dir(&dir, max_length)?;
    let mut model = BertForSequenceClassification::new(&config, num_labels, device);
    let mut missing = Vec::new();
    if !random_init {
        let (m, report) = load_safetensors(model, &dir.join("model.safetensors")).map_err(|e| e.to_string())?;
        model = m;
        tracing::info!("loaded {} tensors from {}", report.loaded.len(), dir.join("model.safetensors").display());
        if !report.missing.is_empty() {
            tracing::info!("newly initialised (not in the checkpoint): {}", report.missing.join(", "));
        }
        if !report.unexpected.is_empty() {
            tracing::warn!("in the checkpoint but not used by the model: {}", report.unexpected.join(", "));
        }
        if report.missing.iter().any(|m| m.starts_with("bert.")) {
            return Err(format!("{}: encoder weights missing: {}", dir.display(), report.missing.join(", ")));
        }
        missing = report.missing;
    }
    Ok(Loaded { model, config, tokenizer, dir, missing })
}

/// Loads the distillation teacher: it must be a fine-tuned classifier with this run's labels
/// and the same vocabulary, so its head has to come from the checkpoint.
fn load_teacher(d: &crate::experiment::DistillationSection, student: &Loaded, max_length: usize, num_labels: usize, device: &Device) -> Result<BertForSequenceClassification, String> {
    let t = load_model(&d.teacher, max_length, num_labels, false, device).map_err(|e| format!("distillation.teacher: {e}"))?;
    if t.missing.iter().any(|m| m.starts_with("classifier")) {
        return Err(format!(
            "distillation.teacher: {} has no classifier head for {num_labels} labels; the teacher must be a fine-tuned model, e.g. the output_dir of bert_dense.toml",
            t.dir.display()
        ));
    }
    if t.config.vocab_size != student.config.vocab_size {
        return Err(format!("distillation.teacher: {} has a vocabulary of {} tokens, the student {}", t.dir.display(), t.config.vocab_size, student.config.vocab_size));
    }
    tracing::info!("distillation teacher: {} ({} layers)", t.dir.display(), t.config.num_hidden_layers);
    Ok(t.model)
}

/// Predictions and mean loss over `items`, in batches, on a model without autodiff.
pub fn evaluate(model: &BertForSequenceClassification, items: &[EncodedItem], batcher: &Batcher, batch_size: usize, num_labels: usize, device: &Device) -> ClassMetrics {
    let mut preds = Vec::with_capacity(items.len());
    let mut labels = Vec::with_capacity(items.len());
    let mut loss_sum = 0.0;
    for chunk in items.chunks(batch_size) {
        let refs: Vec<&EncodedItem> = chunk.iter().collect();
        let batch = batcher.batch(&refs, device);
        let logits = model.forward(batch.input_ids, batch.token_type_ids, batch.attention_mask);
        loss_sum += cross_entropy(logits.clone(), batch.labels).into_scalar::<f32>() as f64 * chunk.len() as f64;
        let p = logits.argmax(1).to_data().convert::<i64>().try_to_vec::<i64>().unwrap_or_default();
        preds.extend(p.into_iter().map(|v| v as usize));
        labels.extend(batch.label_values.iter().map(|l| l.unwrap_or(usize::MAX)));
    }
    classification(&preds, &labels, num_labels, loss_sum / items.len().max(1) as f64)
}

fn count_params(model: &BertForSequenceClassification) -> (usize, usize) {
    let mut total = 0;
    let mut nonzero = 0;
    for (_, data) in models::checkpoint::named_tensors(model) {
        let v = data.try_to_vec::<f32>().unwrap_or_default();
        total += v.len();
        nonzero += v.iter().filter(|x| **x != 0.0).count();
    }
    (total, nonzero)
}

/// What to do with the checkpoints an earlier, unfinished run left in `output_dir`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Continue from the newest valid checkpoint (start from scratch when there is none).
    pub resume: bool,
    /// Delete the checkpoints and start again.
    pub overwrite: bool,
}

/// The seed of the device RNG (dropout, L0 noise) for step `step`: reseeding every step makes a
/// resumed run draw exactly what the uninterrupted run drew.
fn step_seed(seed: u64, step: usize) -> u64 {
    SplitMix64(seed ^ (step as u64).wrapping_mul(0xA24B_AED4_963E_E407)).next_u64()
}

/// The training order of epoch `epoch`, replayed from the seed, and the RNG state after it.
fn epoch_order(seed: u64, n: usize, epoch: usize) -> (Vec<usize>, u64) {
    let mut rng = SplitMix64(seed);
    let mut order = Vec::new();
    for _ in 0..=epoch {
        order = (0..n).collect();
        rng.shuffle(&mut order);
    }
    (order, rng.0)
}

pub fn run(exp: &Experiment, experiment_path: &Path) -> Result<Summary, String> {
    run_with(exp, experiment_path, RunOptions::default())
}

pub fn run_with(exp: &Experiment, experiment_path: &Path, opts: RunOptions) -> Result<Summary, String> {
    let wall = Instant::now();
    let out = &exp.output_dir;
    std::fs::create_dir_all(out).map_err(|e| format!("output_dir {}: {e}", out.display()))?;
    let resolved = toml::to_string_pretty(exp).map_err(|e| e.to_string())?;
    // An unfinished run's checkpoints are never silently thrown away.
    let ckpt_dir = checkpoint::checkpoints_dir(out);
    let resume_from = if opts.resume {
        match checkpoint::latest(out)? {
            Some((dir, state)) => {
                if state.experiment != resolved {
                    return Err(format!(
                        "--resume: the experiment differs from the one {} was taken with (its resolved config is in state.json); resume with the same file and --set overrides, or start over with --overwrite",
                        dir.display()
                    ));
                }
                Some((dir, state))
            }
            None => {
                tracing::info!("--resume: no checkpoint in {}; starting from step 0", ckpt_dir.display());
                None
            }
        }
    } else {
        if ckpt_dir.exists() {
            if opts.overwrite {
                std::fs::remove_dir_all(&ckpt_dir).map_err(|e| format!("{}: {e}", ckpt_dir.display()))?;
            } else if std::fs::read_dir(&ckpt_dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
                return Err(format!(
                    "{} holds checkpoints of an unfinished run; continue it with --resume, or start over with --overwrite (deletes them)",
                    ckpt_dir.display()
                ));
            }
        }
        None
    };
    std::fs::write(out.join("config.toml"), format!("# resolved from {}\n{resolved}", experiment_path.display()))
        .map_err(|e| format!("cannot write {}: {e}", out.join("config.toml").display()))?;

    let sel = device::select(exp.device)?;
    let device = sel.device.clone();
    device.seed(exp.seed);
    sel.make_default();

    // config → dataset
    let ds = data::load(&exp.data)?;
    tracing::info!("data: {} ({} train / {} validation / {} test)", ds.source, ds.train.len(), ds.validation.len(), ds.test.len());
    // → model (and its tokenizer)
    let loaded = load_model(&exp.model.source, exp.model.max_length, ds.num_labels(), exp.model.random_init, &device)?;
    // → tokenised once
    let t0 = Instant::now();
    let data: EncodedData = data::encode(&ds, &loaded.tokenizer)?;
    tracing::info!("tokenised {} examples in {:.1}s", data.train.len() + data.validation.len() + data.test.len(), t0.elapsed().as_secs_f64());
    let num_labels = data.label_names.len();
    // → teacher (distillation): a dense fine-tuned model on the plain device, no gradients.
    let distillation = exp.distillation.as_ref().filter(|d| d.enabled);
    let teacher = match distillation {
        None => None,
        Some(d) => Some(load_teacher(d, &loaded, exp.model.max_length, num_labels, &device)?),
    };
    let batcher = Batcher { pad_id: loaded.tokenizer.pad_id, max_length: exp.model.max_length };

    let t = &exp.train;
    let steps_per_epoch = data.train.len().div_ceil(t.batch_size);
    let total_steps = ((steps_per_epoch as f64) * t.epochs).ceil().max(1.0) as usize;
    // → pruner
    let mut pruner: Box<dyn Pruner> = exp.pruning.build(total_steps)?;
    let mut model = loaded.model;
    pruner.init(&mut model);
    let mut model = model.train();
    let train_device = device.clone().autodiff();
    // → optimizer
    let groups = pruner.param_groups();
    let mut optim = optim::adamw(t.weight_decay, t.max_grad_norm, &groups);
    let mut lr_sched = optim::lr_schedule(t.lr, t.lr_warmup_steps, total_steps, &groups);
    let mut start = 0;
    let mut resumed_state = None;
    if let Some((dir, state)) = &resume_from {
        if state.total_steps != total_steps {
            return Err(format!("{}: taken for a run of {} steps, this one has {total_steps}", dir.display(), state.total_steps));
        }
        let (m, o) = checkpoint::restore(dir, model, optim, &train_device)?;
        model = m;
        optim = o;
        pruner.load_state(&state.pruner, &model).map_err(|e| format!("{}: {e}", dir.join("state.json").display()))?;
        for _ in 0..state.step {
            lr_sched.step();
        }
        start = state.step;
        tracing::info!("resumed from {} (step {}/{total_steps})", dir.display(), state.step);
        resumed_state = Some(state.clone());
    }

    tracing::info!(
        "training {}: {} steps ({} epochs x {} batches of {}), pruning = {}, final density {}",
        exp.name, total_steps, t.epochs, steps_per_epoch, t.batch_size, pruner.name(), exp.pruning.final_density
    );
    let mut log = match &resumed_state {
        Some(s) => MetricsLog::resume(&out.join("metrics.jsonl"), s.step)?,
        None => MetricsLog::create(&out.join("metrics.jsonl"))?,
    };
    let bar = indicatif::ProgressBar::new(total_steps as u64);
    bar.set_position(start as u64);
    bar.set_style(indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}").expect("template"));

    let mut order: Vec<usize> = Vec::new();
    let mut rng_state = SplitMix64(exp.seed).0;
    let (mut train_secs, mut eval_secs, mut samples, mut loss_acc) = match &resumed_state {
        Some(s) => (s.train_seconds, s.eval_seconds, s.samples, (s.loss_sum, s.loss_count)),
        None => (0.0, 0.0, 0usize, (0.0f64, 0usize)),
    };
    let checkpoint_every = t.checkpoint_every.unwrap_or(t.eval_every);
    let (nan_at, crash_after) = (test_hook("PRUNEKIT_NAN_AT_STEP"), test_hook("PRUNEKIT_CRASH_AFTER_CHECKPOINT"));
    for step in start..total_steps {
        let pos = step % steps_per_epoch;
        if pos == 0 || order.is_empty() {
            // Replayed from the seed, so a resumed run sees the same order.
            (order, rng_state) = epoch_order(exp.seed, data.train.len(), step / steps_per_epoch);
        }
        if let Some(s) = resumed_state.take() {
            if s.rng_state != rng_state {
                return Err(format!("resume: the data order at step {step} cannot be reproduced (RNG state {} vs {}); was the dataset changed?", rng_state, s.rng_state));
            }
        }
        device.seed(step_seed(exp.seed, step));
        let st = Instant::now();
        let items: Vec<&EncodedItem> = order[pos * t.batch_size..((pos + 1) * t.batch_size).min(order.len())].iter().map(|&i| &data.train[i]).collect();
        if let Some(n) = pruner.calibration_request(step) {
            // Unit activations of the first n training examples, on the model as it is now.
            let cs = Instant::now();
            let eval_model = model.valid();
            let calib: Vec<&EncodedItem> = data.train.iter().take(n).collect();
            let parts = calib
                .chunks(t.eval_batch_size)
                .map(|chunk| {
                    let b = batcher.batch(chunk, &device);
                    eval_model.unit_activations(b.input_ids, b.token_type_ids, b.attention_mask)
                })
                .collect();
            pruner.calibrate(&mut model, &models::UnitActivations::concat(parts));
            bar.suspend(|| tracing::info!("step {step}: {} scored the units on {} calibration examples in {:.1}s", pruner.name(), calib.len(), cs.elapsed().as_secs_f64()));
        }
        let batch = batcher.batch(&items, &train_device);
        pruner.apply_masks(&mut model, step);
        let logits = model.forward(batch.input_ids, batch.token_type_ids, batch.attention_mask);
        let mut loss: Tensor<1> = match (&teacher, distillation) {
            (Some(teacher), Some(d)) => {
                let tb = batcher.batch(&items, &device);
                let teacher_logits = teacher.forward(tb.input_ids, tb.token_type_ids, tb.attention_mask);
                let teacher_logits = Tensor::<2>::from_data(teacher_logits.into_data(), &train_device);
                distillation_kl(logits.clone(), teacher_logits, d.temperature) * d.alpha_distil + cross_entropy(logits, batch.labels) * d.alpha_ce
            }
            _ => cross_entropy(logits, batch.labels),
        };
        if let Some(extra) = pruner.loss_term(&model, step) {
            loss = loss + extra;
        }
        if nan_at == Some(step) {
            loss = loss * f32::NAN; // test hook: a diverged step
        }
        let loss_value = loss.clone().into_scalar::<f32>() as f64;
        if !loss_value.is_finite() {
            bar.finish_and_clear();
            log.write(&serde_json::json!({"step": step, "error": "non-finite loss", "loss": loss_value.to_string()}));
            let last = checkpoint::latest(out).ok().flatten().map(|(d, _)| format!("; the last good checkpoint is {} (continue from it with --resume)", d.display())).unwrap_or_default();
            return Err(format!(
                "step {step}: the loss is {loss_value} (NaN/Inf); stopped. Metrics up to here are in {}{last}. Try a lower train.lr or pruning.scores_lr",
                out.join("metrics.jsonl").display()
            ));
        }
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        pruner.adjust_gradients(&model, &mut grads);
        let lr = lr_sched.step();
        model = optim.step(lr.clone(), model, grads);
        pruner.after_step(&mut model, step);
        train_secs += st.elapsed().as_secs_f64();
        samples += items.len();
        loss_acc = (loss_acc.0 + loss_value, loss_acc.1 + 1);
        bar.inc(1);

        let done = step + 1;
        if done % t.log_every == 0 || done == total_steps {
            let mean_loss = loss_acc.0 / loss_acc.1 as f64;
            loss_acc = (0.0, 0);
            let sps = samples as f64 / train_secs;
            let eta = (total_steps - done) as f64 * train_secs / done as f64;
            let density = pruner.scheduled_density(step);
            bar.set_message(format!("loss {mean_loss:.4} density {density:.3} {sps:.1} samples/s"));
            log.write(&serde_json::json!({"step": done, "epoch": done as f64 / steps_per_epoch as f64, "loss": mean_loss,
                "lr": lr.base(), "density": density, "samples_per_second": sps, "elapsed_s": train_secs, "eta_s": eta}));
            bar.suspend(|| tracing::info!("step {done}/{total_steps} loss {mean_loss:.4} density {density:.4} {sps:.1} samples/s eta {eta:.0}s"));
        }
        if t.eval_every > 0 && done % t.eval_every == 0 && done < total_steps {
            let es = Instant::now();
            let mut eval_model = model.valid();
            pruner.eval_masks(&mut eval_model, step);
            let m = evaluate(&eval_model, &data.validation, &batcher, t.eval_batch_size, num_labels, &device);
            eval_secs += es.elapsed().as_secs_f64();
            log.write(&serde_json::json!({"step": done, "split": "validation", "accuracy": m.accuracy, "f1": m.f1, "loss": m.loss}));
            bar.suspend(|| tracing::info!("step {done}: validation accuracy {:.4} f1 {:.4}", m.accuracy, m.f1));
        }
        if checkpoint_every > 0 && done % checkpoint_every == 0 && done < total_steps {
            let cs = Instant::now();
            let state = checkpoint::TrainState {
                step: done,
                total_steps,
                rng_state,
                train_seconds: train_secs,
                eval_seconds: eval_secs,
                samples,
                loss_sum: loss_acc.0,
                loss_count: loss_acc.1,
                pruner: pruner.state(),
                experiment: resolved.clone(),
                sha256: Default::default(),
            };
            let dir = checkpoint::save(out, &model, &optim, state, t.keep_checkpoints.max(1))?;
            bar.suspend(|| tracing::info!("step {done}: checkpoint {} ({:.1}s)", dir.display(), cs.elapsed().as_secs_f64()));
            if crash_after == Some(done) {
                // Test hook: die like `kill -9` (no unwinding, no cleanup) right here.
                std::process::abort();
            }
        }
    }
    bar.finish_and_clear();

    // Final masks folded into the weights: the model that is saved is the model that is measured.
    let es = Instant::now();
    let mut final_model = model.valid();
    let last = total_steps.saturating_sub(1);
    // The final masks are saved beside the model (masks.safetensors) before they are folded in.
    pruner.eval_masks(&mut final_model, last);
    // (Structured runs save the compacted model instead, whose shapes no longer match the masks.)
    if t.save_model && !exp.pruning.is_structured() && final_model.prunable_layers().iter().any(|(_, l)| l.mask.is_some()) {
        let n = models::checkpoint::save_masks(&final_model, &out.join("masks.safetensors")).map_err(|e| e.to_string())?;
        tracing::info!("wrote {n} masks to {}", out.join("masks.safetensors").display());
    }
    pruner.finalize(&mut final_model, last);
    let sparsity = SparsityReport::measure(&final_model);
    let validation = evaluate(&final_model, &data.validation, &batcher, t.eval_batch_size, num_labels, &device);
    let test = (!data.test.is_empty() && data.test.iter().all(|i| i.label.is_some()))
        .then(|| evaluate(&final_model, &data.test, &batcher, t.eval_batch_size, num_labels, &device));
    eval_secs += es.elapsed().as_secs_f64();
    log.write(&serde_json::json!({"step": total_steps, "split": "validation", "accuracy": validation.accuracy, "f1": validation.f1, "loss": validation.loss}));
    if let Some(m) = &test {
        log.write(&serde_json::json!({"step": total_steps, "split": "test", "accuracy": m.accuracy, "f1": m.f1, "loss": m.loss}));
    }
    let (total_params, total_nonzero) = count_params(&final_model);
    // Structured runs end in a physically smaller model: removed heads and neurons are cut out.
    let mut compaction = None;
    let mut saved = (final_model.clone(), loaded.config.clone());
    if exp.pruning.is_structured() {
        let (small, small_config, report) = models::compact::compact(&final_model, &loaded.config);
        tracing::info!(
            "compacted: heads per layer {:?}, FFN widths {:?}, {} → {} parameters",
            report.heads.iter().map(Vec::len).collect::<Vec<_>>(), report.ffn_widths, report.params_before, report.params_after
        );
        let test = test.as_ref().map(|_| evaluate(&small, &data.test, &batcher, t.eval_batch_size, num_labels, &device));
        compaction = Some(Compaction { report, test });
        saved = (small, small_config);
    }
    if t.save_model {
        save_checkpoint(&saved.0, &saved.1, &loaded.dir, &data.label_names, out)?;
    }
    let summary = Summary {
        name: exp.name.clone(),
        data: data.source.clone(),
        model_source: exp.model.source.clone(),
        device: sel.name.clone(),
        pruning_method: pruner.name().into(),
        target_density: matches!(
            exp.pruning.method,
            pruners::Method::Magnitude | pruners::Method::Movement | pruners::Method::Random | pruners::Method::MiLayerwise | pruners::Method::MaskLearning | pruners::Method::MinimaxUniform
        )
        .then_some(exp.pruning.final_density),
        distilled_from: distillation.map(|d| d.teacher.clone()),
        steps: total_steps,
        epochs: t.epochs,
        batch_size: t.batch_size,
        train_examples: data.train.len(),
        validation,
        test,
        prunable_sparsity: sparsity.sparsity(),
        prunable_remaining: 1.0 - sparsity.sparsity(),
        prunable_params: sparsity.prunable_numel,
        prunable_nonzero: sparsity.prunable_numel - sparsity.prunable_zeros,
        total_params,
        total_nonzero,
        per_matrix: sparsity.per_matrix,
        compaction,
        train_seconds: train_secs,
        eval_seconds: eval_secs,
        wall_seconds: wall.elapsed().as_secs_f64(),
        train_samples_per_second: samples as f64 / train_secs.max(1e-9),
    };
    write_json(&out.join("summary.json"), &summary)?;
    // The run finished and its result is saved: its checkpoints go unless asked to stay.
    if !t.keep_checkpoints_after_run && ckpt_dir.exists() {
        let _ = std::fs::remove_dir_all(&ckpt_dir);
    }
    Ok(summary)
}

/// Fault injection for the tests (unset in normal use):
/// `PRUNEKIT_CRASH_AFTER_CHECKPOINT=N` aborts the process right after the checkpoint of step N
/// is written (like `kill -9`: no unwinding, no cleanup; a real `kill -9` can land anywhere,
/// which is what the checkpoint's atomic write is for); `PRUNEKIT_NAN_AT_STEP=N` makes the loss
/// of step N NaN.
fn test_hook(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.parse().ok()
}

/// Writes a Hugging Face-style directory: model.safetensors (masks folded in), config.json
/// with the label names, and the tokenizer files of the source checkpoint.
pub fn save_checkpoint(model: &BertForSequenceClassification, config: &BertConfig, src_dir: &Path, labels: &[String], out: &Path) -> Result<(), String> {
    save_safetensors(model, &out.join("model.safetensors")).map_err(|e| e.to_string())?;
    let mut cfg = serde_json::to_value(config).map_err(|e| e.to_string())?;
    cfg["architectures"] = serde_json::json!(["BertForSequenceClassification"]);
    cfg["model_type"] = serde_json::json!("bert");
    cfg["id2label"] = labels.iter().enumerate().map(|(i, l)| (i.to_string(), serde_json::json!(l))).collect();
    cfg["label2id"] = labels.iter().enumerate().map(|(i, l)| (l.clone(), serde_json::json!(i))).collect();
    write_json(&out.join("config.json"), &cfg)?;
    for f in ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"] {
        if src_dir.join(f).exists() {
            std::fs::copy(src_dir.join(f), out.join(f)).map_err(|e| format!("copy {f}: {e}"))?;
        }
    }
    Ok(())
}

