//! The whole loop, top to bottom:
//! config → dataset → batcher → model → pruner → loss → optimizer → report.
//!
//! It is written once, against [`Task`]: BERT on text ([`TextTask`]) and an MLP on tables
//! ([`TabularTask`]) run through the same steps, with every pruner.

use crate::experiment::{Experiment, GradClipping, LossKind, ModelKind, ReferenceMode};
use crate::loss::{cross_entropy, distillation_kl, performance_weights, weighted_soft_cross_entropy};
use crate::metrics::{classification, group_metrics, ClassMetrics, GroupMetrics};
use crate::report::{write_json, MetricsLog};
use crate::tabular_task::TabularTask;
use crate::task::{Split, Task};
use crate::text_task::TextTask;
use crate::{checkpoint, device, optim};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use datasets::split::SplitMix64;
use models::PrunableModel;
use pruners::{Pruner, SparsityReport};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

pub use crate::text_task::{evaluate, load_model, save_checkpoint, Loaded};

#[derive(Debug, Serialize)]
pub struct Summary {
    pub name: String,
    pub data: String,
    pub model_source: String,
    pub device: String,
    /// The wgpu adapter the run used (name, API, driver), when it ran on one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<device::Adapter>,
    pub pruning_method: String,
    /// The scheduled final kept fraction (top-k methods); soft movement and L0 reach theirs.
    pub target_density: Option<f64>,
    /// The teacher, when the run distilled.
    pub distilled_from: Option<String>,
    /// `cross_entropy`, or `performance_weighted (beta B, gamma G, MODE)`.
    pub loss: String,
    /// Optimizer steps taken (0 with `train.epochs = 0`: one-shot pruning, no training).
    pub steps: usize,
    pub epochs: f64,
    pub batch_size: usize,
    pub train_examples: usize,
    pub validation: ClassMetrics,
    pub test: Option<ClassMetrics>,
    /// Accuracy and AUROC per subgroup of the test split (validation when there is no labelled
    /// test split), with the gap between the best and the worst group.
    pub groups: Vec<GroupMetrics>,
    /// The same metrics for the model as it was when pruning started (after
    /// `pruning.warmup_steps`; the unpruned model).
    pub before_pruning: Option<BeforePruning>,
    /// Seconds spent on the performance-weighted loss's reference (the cached pass, or the
    /// frozen copy's forward passes summed over the steps).
    pub reference_seconds: Option<f64>,
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
    pub report: serde_json::Value,
    pub test: Option<ClassMetrics>,
}

/// Metrics of the unpruned model (when pruning starts).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BeforePruning {
    pub step: usize,
    pub validation: ClassMetrics,
    pub test: Option<ClassMetrics>,
    pub groups: Vec<GroupMetrics>,
}

/// One pass of a model over a split: metrics, per-group metrics, and the class probabilities.
pub struct Evaluation {
    pub metrics: ClassMetrics,
    pub groups: Vec<GroupMetrics>,
    /// `[n × classes]`, row-major.
    pub probs: Vec<f32>,
}

/// Evaluates `model` (no autodiff) on `split` in batches of `batch_size`.
pub fn evaluate_split<T: Task>(task: &T, model: &T::Model, split: Split, batch_size: usize, device: &Device) -> Evaluation {
    let n = task.len(split);
    let classes = task.label_names().len();
    let (mut probs, mut loss_sum) = (Vec::with_capacity(n * classes), 0.0);
    let all: Vec<usize> = (0..n).collect();
    for idx in all.chunks(batch_size) {
        let (logits, labels) = task.forward(model, split, idx, device);
        loss_sum += cross_entropy(logits.clone(), labels).into_scalar::<f32>() as f64 * idx.len() as f64;
        probs.extend(softmax(logits, 1).to_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default());
    }
    let preds: Vec<usize> = (0..n).map(|i| (0..classes).fold(0, |b, c| if probs[i * classes + c] > probs[i * classes + b] { c } else { b })).collect();
    let labels: Vec<usize> = (0..n).map(|i| task.label(split, i).unwrap_or(usize::MAX)).collect();
    let metrics = classification(&preds, &labels, classes, loss_sum / n.max(1) as f64);
    let groups = if task.labelled(split) {
        task.groups(split).into_iter().map(|(attr, values)| group_metrics(&attr, values, &probs, &preds, &labels, classes, task.min_group_size())).collect()
    } else {
        Vec::new()
    };
    Evaluation { metrics, groups, probs }
}

fn count_params<M: Module>(model: &M) -> (usize, usize) {
    let mut total = 0;
    let mut nonzero = 0;
    for (_, data) in models::checkpoint::named_tensors(model) {
        let v = data.try_to_vec::<f32>().unwrap_or_default();
        total += v.len();
        nonzero += v.iter().filter(|x| **x != 0.0).count();
    }
    (total, nonzero)
}

/// The performance-weighted loss's per-sample weights and targets over the training set,
/// computed once from the unpruned model.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FairCache {
    weights: Vec<f32>,
    /// `[n × classes]`.
    targets: Vec<f32>,
}

/// What a checkpoint carries besides the model (see `TrainState::extra`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Extra {
    before: Option<BeforePruning>,
    fair: Option<FairCache>,
    reference_seconds: Option<f64>,
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

/// `train.group_by_length` (the Hugging Face Trainer's option, its LengthGroupedSampler): the
/// shuffled order cut into mega-batches of 50 batches, each sorted by length, longest first, so
/// that a batch holds sequences of similar length and pads little; the mega-batches keep their
/// random order.
pub fn length_grouped(order: &[usize], length: &dyn Fn(usize) -> usize, batch_size: usize) -> Vec<usize> {
    order
        .chunks(50 * batch_size.max(1))
        .flat_map(|mega| {
            let mut m = mega.to_vec();
            m.sort_by_key(|&i| std::cmp::Reverse(length(i)));
            m
        })
        .collect()
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

/// Runs in one process take turns: burn keeps one random generator per backend (dropout, L0
/// noise and initialisation draw from it) and one default device, both process-wide, so two runs
/// side by side (tests, a library user's threads) would draw from each other's stream and stop
/// being reproducible.
static ONE_RUN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn run_with(exp: &Experiment, experiment_path: &Path, opts: RunOptions) -> Result<Summary, String> {
    // A run that panicked leaves nothing behind that the next one reads.
    let _turn = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let wall = Instant::now();
    let out = &exp.output_dir;
    std::fs::create_dir_all(out).map_err(|e| format!("output_dir {}: {e}", out.display()))?;
    let resolved = toml::to_string_pretty(exp).map_err(|e| e.to_string())?;
    // An unfinished run's checkpoints are never silently thrown away.
    let ckpt_dir = checkpoint::checkpoints_dir(out);
    let resume_from = if opts.resume {
        match checkpoint::latest(out)? {
            Some((dir, state)) => {
                // The same experiment, also when the checkpoint was written by an older version
                // that did not yet have keys now filled with their defaults.
                // The device may change (a run checkpointed on a GPU continues on the CPU): it is
                // where the run computes, not what.
                let same = state.experiment == resolved
                    || crate::experiment::parse(&state.experiment, &[])
                        .ok()
                        .and_then(|mut e| {
                            e.device = exp.device;
                            toml::to_string_pretty(&e).ok()
                        })
                        .as_deref()
                        == Some(resolved.as_str());
                if !same {
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
    sel.device.seed(exp.seed);
    sel.make_default();
    let run = Run { exp, resolved, resume_from, wall, device_name: sel.name.clone(), adapter: sel.adapter.clone() };
    // config → dataset → model: the task decides which.
    match exp.model.kind {
        ModelKind::Bert => {
            let (task, model) = TextTask::load(exp, &sel.device)?;
            run_task(&run, &task, model, &sel.device)
        }
        ModelKind::Mlp => {
            let (task, model) = TabularTask::load(exp, &sel.device)?;
            run_task(&run, &task, model, &sel.device)
        }
        ModelKind::Cnn => {
            let (task, model) = crate::image_task::load_cnn_task(exp, &sel.device)?;
            run_task(&run, &task, model, &sel.device)
        }
        ModelKind::Vit => {
            let (task, model) = crate::image_task::load_vit_task(exp, &sel.device)?;
            run_task(&run, &task, model, &sel.device)
        }
    }
}

/// What `run_with` settled before the task was loaded.
struct Run<'a> {
    exp: &'a Experiment,
    resolved: String,
    resume_from: Option<(std::path::PathBuf, checkpoint::TrainState)>,
    wall: Instant,
    device_name: String,
    adapter: Option<device::Adapter>,
}

/// Host class probabilities `[n × classes]` of `logits`.
fn host_probs(logits: Tensor<2>) -> Vec<f32> {
    softmax(logits, 1).to_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default()
}

fn run_task<T: Task>(run: &Run, task: &T, model: T::Model, device: &Device) -> Result<Summary, String> {
    let (exp, out) = (run.exp, &run.exp.output_dir);
    let ckpt_dir = checkpoint::checkpoints_dir(out);
    let num_labels = task.label_names().len();
    let n_train = task.len(Split::Train);
    // → teacher (distillation): a dense fine-tuned model on the plain device, no gradients.
    let distillation = exp.distillation.as_ref().filter(|d| d.enabled);
    let teacher = match distillation {
        None => None,
        Some(d) => Some(task.load_other(&d.teacher, "distillation.teacher", device)?),
    };
    let t = &exp.train;
    let steps_per_epoch = n_train.div_ceil(t.batch_size);
    let total_steps = ((steps_per_epoch as f64) * t.epochs).ceil().max(1.0) as usize;
    // `train.epochs = 0`: one pass through step 0 (calibrate, prune, measure) and no update.
    let no_training = t.epochs == 0.0;
    // → pruner
    let mut pruner: Box<dyn Pruner> = exp.pruning.build(total_steps)?;
    let mut model = model;
    pruner.init(&mut model);
    let mut model = model.train();
    let train_device = device.clone().autodiff();
    // → loss: the unpruned model is the model as it is when pruning starts.
    let fair = (exp.loss.kind == LossKind::PerformanceWeighted).then_some(&exp.loss);
    // (Also with `method = "none"`: the dense model trained `warmup_steps`, then the loss switches.)
    let reference_step = exp.pruning.warmup_steps.min(total_steps - 1);
    let mut extra = Extra::default();
    let mut reference: Option<T::Model> = None;
    // → optimizer
    let groups = pruner.param_groups();
    // The pruners' parameters that stay out of the global clip (CoFi's gates and multipliers).
    let unclipped: Vec<String> = groups.iter().filter(|g| !g.clipped).map(|g| g.path_contains.clone()).collect();
    let per_parameter_clip = (t.grad_clipping == GradClipping::PerParameter).then_some(t.max_grad_norm);
    let mut optim = optim::adamw(t.weight_decay, per_parameter_clip, &groups);
    let mut lr_sched = optim::lr_schedule(t.lr, t.lr_warmup_steps, total_steps, &groups);
    let mut start = 0;
    let mut resumed_state = None;
    if let Some((dir, state)) = &run.resume_from {
        if state.total_steps != total_steps {
            return Err(format!("{}: taken for a run of {} steps, this one has {total_steps}", dir.display(), state.total_steps));
        }
        let (m, o) = checkpoint::restore(dir, model, optim, &train_device)?;
        model = m;
        optim = o;
        pruner.load_state(&state.pruner, &model).map_err(|e| format!("{}: {e}", dir.join("state.json").display()))?;
        if !state.extra.is_null() {
            extra = serde_json::from_value(state.extra.clone()).map_err(|e| format!("{}: extra: {e}", dir.join("state.json").display()))?;
        }
        if dir.join("reference.bpk").exists() {
            let mut r = model.valid();
            checkpoint::load_params(&dir.join("reference.bpk"), &mut r)?;
            for (_, layer) in r.prunable_layers_mut() {
                (layer.mask, layer.in_gate, layer.out_gate) = (None, None, None);
            }
            reference = Some(r);
        }
        for _ in 0..state.step {
            lr_sched.step();
        }
        start = state.step;
        tracing::info!("resumed from {} (step {}/{total_steps})", dir.display(), state.step);
        resumed_state = Some(state.clone());
    }

    tracing::info!(
        "training {}: {} steps ({} epochs x {} batches of {}), pruning = {}, final density {}, loss = {}",
        exp.name, total_steps, t.epochs, steps_per_epoch, t.batch_size, pruner.name(), exp.pruning.final_density, loss_name(exp)
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
    // Largest global gradient norm before clipping since the last metrics line (0 when clipping
    // is per parameter: no global norm is computed then).
    let mut grad_norm_acc = resumed_state.as_ref().map_or(0.0, |s| s.grad_norm_max);
    let checkpoint_every = t.checkpoint_every.unwrap_or(t.eval_every);
    let (nan_at, crash_after) = (test_hook("PRUNEKIT_NAN_AT_STEP"), test_hook("PRUNEKIT_CRASH_AFTER_CHECKPOINT"));
    let nan_grad_at = test_hook("PRUNEKIT_NAN_GRAD_AT_STEP");
    let has_test = task.len(Split::Test) > 0 && task.labelled(Split::Test);
    for step in start..total_steps {
        if let Some(s) = resumed_state.take() {
            // The checkpoint holds the RNG state after the shuffle of its last step's epoch
            // (the step before a checkpoint at an epoch boundary is in the previous epoch).
            let (_, expected) = epoch_order(exp.seed, n_train, s.step.saturating_sub(1) / steps_per_epoch);
            if s.rng_state != expected {
                return Err(format!("resume: the data order at step {step} cannot be reproduced (RNG state {expected} vs {}); was the dataset changed?", s.rng_state));
            }
        }
        let pos = step % steps_per_epoch;
        if pos == 0 || order.is_empty() {
            // Replayed from the seed, so a resumed run sees the same order.
            (order, rng_state) = epoch_order(exp.seed, n_train, step / steps_per_epoch);
            if t.group_by_length {
                order = length_grouped(&order, &|i| task.length(Split::Train, i), t.batch_size);
            }
        }
        if step == reference_step && extra.before.is_none() {
            // The unpruned model: its metrics (before pruning) and, for the performance-weighted
            // loss, its outputs on the training set (cached) or a frozen copy of it.
            let es = Instant::now();
            // As evaluated at the end of the previous step (this step's masks may already be the
            // first pruned ones), or as loaded at step 0.
            let mut unpruned = model.valid();
            if step > 0 {
                pruner.eval_masks(&mut unpruned, step - 1);
            }
            let v = evaluate_split(task, &unpruned, Split::Validation, t.eval_batch_size, device);
            let te = has_test.then(|| evaluate_split(task, &unpruned, Split::Test, t.eval_batch_size, device));
            let groups = te.as_ref().map(|e| e.groups.clone()).unwrap_or_else(|| v.groups.clone());
            extra.before = Some(BeforePruning { step, validation: v.metrics, test: te.map(|e| e.metrics), groups });
            eval_secs += es.elapsed().as_secs_f64();
            if let Some(l) = fair {
                let rs = Instant::now();
                match l.mode {
                    ReferenceMode::Cached => {
                        let probs = evaluate_split(task, &unpruned, Split::Train, t.eval_batch_size, device).probs;
                        let labels: Vec<usize> = (0..n_train).map(|i| task.label(Split::Train, i).unwrap_or(0)).collect();
                        let (weights, targets) = performance_weights(&probs, &labels, num_labels, l.beta, l.gamma);
                        extra.fair = Some(FairCache { weights, targets });
                    }
                    ReferenceMode::OnTheFly => {
                        // Masks and gates folded into its weights: the parameters (and so
                        // reference.bpk) are the whole function.
                        freeze(&mut unpruned);
                        reference = Some(unpruned);
                    }
                }
                let secs = rs.elapsed().as_secs_f64();
                extra.reference_seconds = Some(secs);
                bar.suspend(|| tracing::info!("step {step}: the unpruned model's targets for the performance-weighted loss ({:?}) in {secs:.2}s", l.mode));
            }
        }
        device.seed(step_seed(exp.seed, step));
        let st = Instant::now();
        let idx: Vec<usize> = order[pos * t.batch_size..((pos + 1) * t.batch_size).min(order.len())].to_vec();
        if let Some(n) = pruner.calibration_request(step) {
            // Unit activations of the first n training examples, on the model as it is now.
            let cs = Instant::now();
            let eval_model = model.valid();
            let calib: Vec<usize> = (0..n.min(n_train)).collect();
            let parts = calib.chunks(t.eval_batch_size).map(|chunk| task.unit_activations(&eval_model, chunk, device)).collect();
            pruner.calibrate(&mut model, &models::UnitActivations::concat(parts));
            bar.suspend(|| tracing::info!("step {step}: {} scored the units on {} calibration examples in {:.1}s", pruner.name(), calib.len(), cs.elapsed().as_secs_f64()));
        }
        if let Some(req) = pruner.loss_request(step) {
            // Gradients and/or a removal probe on the first n training examples, masks as the
            // previous step left them.
            let cs = Instant::now();
            let calib: Vec<usize> = (0..req.examples.min(n_train)).collect();
            let gradients = req.gradients.then(|| crate::calibrate::accumulate_gradients(task, &model, &calib, t.batch_size, &train_device));
            let mut probe = crate::calibrate::TaskProbe { task, model: model.valid(), idx: calib.clone(), batch: t.eval_batch_size, device: device.clone(), train_model: model.clone(), train_device: train_device.clone() };
            pruner.calibrate_loss(&mut model, &mut pruners::calibration::LossCalibration { gradients, probe: &mut probe });
            bar.suspend(|| tracing::info!("step {step}: {} calibrated on the loss of {} examples in {:.1}s", pruner.name(), calib.len(), cs.elapsed().as_secs_f64()));
        }
        pruner.apply_masks(&mut model, step);
        let (logits, labels) = task.forward(&model, Split::Train, &idx, &train_device);
        let task_loss = match fair {
            Some(l) if step >= reference_step => {
                let (w, targets) = match (&extra.fair, &reference) {
                    (Some(c), _) => (
                        idx.iter().map(|&i| c.weights[i]).collect::<Vec<f32>>(),
                        idx.iter().flat_map(|&i| c.targets[i * num_labels..(i + 1) * num_labels].iter().copied()).collect::<Vec<f32>>(),
                    ),
                    (None, Some(r)) => {
                        let rs = Instant::now();
                        let probs = host_probs(task.forward(r, Split::Train, &idx, device).0);
                        let y: Vec<usize> = idx.iter().map(|&i| task.label(Split::Train, i).unwrap_or(0)).collect();
                        let wt = performance_weights(&probs, &y, num_labels, l.beta, l.gamma);
                        extra.reference_seconds = Some(extra.reference_seconds.unwrap_or(0.0) + rs.elapsed().as_secs_f64());
                        wt
                    }
                    (None, None) => return Err("internal: the performance-weighted loss has no reference model".into()),
                };
                let b = idx.len();
                weighted_soft_cross_entropy(
                    logits.clone(),
                    Tensor::from_data(TensorData::new(w, [b]), &train_device),
                    Tensor::from_data(TensorData::new(targets, [b, num_labels]), &train_device),
                )
            }
            _ => cross_entropy(logits.clone(), labels),
        };
        let mut loss: Tensor<1> = match (&teacher, distillation) {
            (Some(teacher), Some(d)) => {
                let teacher_logits = task.forward(teacher, Split::Train, &idx, device).0;
                let teacher_logits = Tensor::<2>::from_data(teacher_logits.into_data(), &train_device);
                distillation_kl(logits, teacher_logits, d.temperature) * d.alpha_distil + task_loss * d.alpha_ce
            }
            _ => task_loss,
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
        if nan_grad_at == Some(step) {
            // Test hook: a finite loss whose gradient is not (d/dx √|x| at 0).
            let w = model.prunable_layers()[0].1.weight.val();
            loss = loss + (w.clone() - w.detach()).abs().sqrt().sum();
        }
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        // One pass over every gradient (its squared norm) serves the finiteness check and the
        // global clipping; only when a norm is not finite are the gradients checked element-wise
        // (an overflow of Σg² alone is not a NaN/Inf gradient).
        let norms = optim::GradNorms::of(&model, &grads, &unclipped);
        let bad = if norms.all_finite() { Vec::new() } else { non_finite_gradients(&model, &grads) };
        if !bad.is_empty() {
            bar.finish_and_clear();
            log.write(&serde_json::json!({"step": step, "error": "non-finite gradient", "parameters": bad}));
            let last = checkpoint::latest(out).ok().flatten().map(|(d, _)| format!("; the last good checkpoint is {} (continue from it with --resume)", d.display())).unwrap_or_default();
            return Err(format!(
                "step {step}: the gradient of {} is NaN/Inf (loss {loss_value}); stopped before the update. Metrics up to here are in {}{last}. Try a lower train.lr or pruning.scores_lr",
                bad.iter().take(3).cloned().collect::<Vec<_>>().join(", ") + if bad.len() > 3 { " …" } else { "" },
                out.join("metrics.jsonl").display()
            ));
        }
        if t.grad_clipping == GradClipping::Global {
            let norm = norms.clip(&mut grads, t.max_grad_norm);
            grad_norm_acc = grad_norm_acc.max(norm);
        }
        pruner.adjust_gradients(&model, &mut grads);
        let lr = lr_sched.step();
        if !no_training {
            model = optim.step(lr.clone(), model, grads);
        }
        pruner.after_step(&mut model, step);
        train_secs += st.elapsed().as_secs_f64();
        samples += idx.len();
        loss_acc = (loss_acc.0 + loss_value, loss_acc.1 + 1);
        bar.inc(1);

        let done = step + 1;
        if done % t.log_every == 0 || done == total_steps {
            let mean_loss = loss_acc.0 / loss_acc.1 as f64;
            loss_acc = (0.0, 0);
            let grad_norm = std::mem::take(&mut grad_norm_acc);
            let sps = samples as f64 / train_secs;
            let eta = (total_steps - done) as f64 * train_secs / done as f64;
            let density = pruner.scheduled_density(step);
            bar.set_message(format!("loss {mean_loss:.4} density {density:.3} {sps:.1} samples/s"));
            log.write(&serde_json::json!({"step": done, "epoch": done as f64 / steps_per_epoch as f64, "loss": mean_loss,
                "lr": lr.base(), "density": density, "grad_norm_max": grad_norm, "samples_per_second": sps, "elapsed_s": train_secs, "eta_s": eta}));
            bar.suspend(|| tracing::info!("step {done}/{total_steps} loss {mean_loss:.4} density {density:.4} {sps:.1} samples/s eta {eta:.0}s"));
        }
        if t.eval_every > 0 && done % t.eval_every == 0 && done < total_steps {
            let es = Instant::now();
            let mut eval_model = model.valid();
            pruner.eval_masks(&mut eval_model, step);
            let e = evaluate_split(task, &eval_model, Split::Validation, t.eval_batch_size, device);
            let m = e.metrics;
            eval_secs += es.elapsed().as_secs_f64();
            let gaps: serde_json::Map<String, serde_json::Value> = e.groups.iter().map(|g| (g.attribute.clone(), serde_json::json!(g.accuracy_gap))).collect();
            log.write(&serde_json::json!({"step": done, "split": "validation", "accuracy": m.accuracy, "f1": m.f1, "loss": m.loss, "accuracy_gap": gaps}));
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
                grad_norm_max: grad_norm_acc,
                pruner: pruner.state(),
                experiment: run.resolved.clone(),
                extra: serde_json::to_value(&extra).map_err(|e| e.to_string())?,
                sha256: Default::default(),
            };
            let dir = checkpoint::save(out, &model, &optim, reference.as_ref(), state, t.keep_checkpoints.max(1))?;
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
    let validation = evaluate_split(task, &final_model, Split::Validation, t.eval_batch_size, device);
    let test = has_test.then(|| evaluate_split(task, &final_model, Split::Test, t.eval_batch_size, device));
    eval_secs += es.elapsed().as_secs_f64();
    log.write(&serde_json::json!({"step": total_steps, "split": "validation", "accuracy": validation.metrics.accuracy, "f1": validation.metrics.f1, "loss": validation.metrics.loss}));
    if let Some(e) = &test {
        let m = &e.metrics;
        log.write(&serde_json::json!({"step": total_steps, "split": "test", "accuracy": m.accuracy, "f1": m.f1, "loss": m.loss}));
    }
    let (total_params, total_nonzero) = count_params(&final_model);
    // Structured runs end in a physically smaller model: removed units are cut out.
    let mut compaction = None;
    let mut saved = (final_model.clone(), None);
    if exp.pruning.is_structured() {
        let c = task.compact(&final_model);
        let test = has_test.then(|| evaluate_split(task, &c.model, Split::Test, t.eval_batch_size, device).metrics);
        compaction = Some(Compaction { report: c.report, test });
        saved = (c.model, Some(c.config));
    }
    if t.save_model {
        task.save(&saved.0, saved.1.as_ref(), out)?;
    }
    let groups = test.as_ref().map(|e| e.groups.clone()).unwrap_or_else(|| validation.groups.clone());
    for g in &groups {
        let before = extra.before.as_ref().and_then(|b| b.groups.iter().find(|x| x.attribute == g.attribute)).map(|b| format!(" (before pruning {:.4})", b.accuracy_gap)).unwrap_or_default();
        tracing::info!("accuracy gap by {}: {:.4}{before}, worst group {}", g.attribute, g.accuracy_gap, g.worst_group);
    }
    let summary = Summary {
        name: exp.name.clone(),
        data: task.data_source(),
        model_source: exp.model.source.clone(),
        device: run.device_name.clone(),
        adapter: run.adapter.clone(),
        pruning_method: pruner.name().into(),
        target_density: exp.pruning.target_density(),
        distilled_from: distillation.map(|d| d.teacher.clone()),
        loss: loss_name(exp),
        steps: if no_training { 0 } else { total_steps },
        epochs: t.epochs,
        batch_size: t.batch_size,
        train_examples: n_train,
        validation: validation.metrics,
        test: test.map(|e| e.metrics),
        groups,
        before_pruning: extra.before.clone(),
        reference_seconds: extra.reference_seconds,
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
        wall_seconds: run.wall.elapsed().as_secs_f64(),
        train_samples_per_second: samples as f64 / train_secs.max(1e-9),
    };
    write_json(&out.join("summary.json"), &summary)?;
    // The run finished and its result is saved: its checkpoints go unless asked to stay.
    if !t.keep_checkpoints_after_run && ckpt_dir.exists() {
        let _ = std::fs::remove_dir_all(&ckpt_dir);
    }
    Ok(summary)
}

/// Names of the parameters whose gradient holds a NaN or an infinity: one `(g·0).sum()` per
/// parameter (NaN exactly when g has a NaN or an Inf), gathered into one tensor, one host copy.
fn non_finite_gradients<M: Module>(model: &M, grads: &GradientsParams) -> Vec<String> {
    struct Probe<'a> {
        grads: &'a GradientsParams,
        path: Vec<String>,
        names: Vec<String>,
        probes: Vec<Tensor<1>>,
    }
    impl burn::module::ModuleVisitor for Probe<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.names.push(self.path.iter().map(|p| if p == "self_" { "self" } else { p.as_str() }).collect::<Vec<_>>().join("."));
                self.probes.push((g * 0.0).sum());
            }
        }
    }
    let mut probe = Probe { grads, path: Vec::new(), names: Vec::new(), probes: Vec::new() };
    model.visit(&mut probe);
    if probe.probes.is_empty() {
        return Vec::new();
    }
    let values: Vec<f32> = Tensor::cat(probe.probes, 0).into_data().convert::<f32>().try_to_vec().unwrap_or_default();
    probe.names.into_iter().zip(values).filter(|(_, v)| !v.is_finite()).map(|(n, _)| n).collect()
}

/// Folds a model's masks and gates into its weights and clears them (same function).
fn freeze(model: &mut dyn PrunableModel) {
    for (_, layer) in model.prunable_layers_mut() {
        if let Some(mask) = layer.mask.take() {
            let hard = mask.detach();
            layer.weight = layer.weight.clone().map(|w| w * hard);
        }
        layer.fold_gates();
    }
}

fn loss_name(exp: &Experiment) -> String {
    match exp.loss.kind {
        LossKind::CrossEntropy => "cross_entropy".into(),
        LossKind::PerformanceWeighted => format!(
            "performance_weighted (beta {}, gamma {}, {})",
            exp.loss.beta,
            exp.loss.gamma,
            if exp.loss.mode == ReferenceMode::Cached { "cached" } else { "on_the_fly" }
        ),
    }
}

/// Fault injection for the tests (unset in normal use):
/// `PRUNEKIT_CRASH_AFTER_CHECKPOINT=N` aborts the process right after the checkpoint of step N
/// is written (like `kill -9`: no unwinding, no cleanup; a real `kill -9` can land anywhere,
/// which is what the checkpoint's atomic write is for); `PRUNEKIT_NAN_AT_STEP=N` makes the loss
/// of step N NaN; `PRUNEKIT_NAN_GRAD_AT_STEP=N` keeps the loss of step N finite but makes a
/// gradient NaN/Inf.
fn test_hook(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::length_grouped;

    #[test]
    fn length_grouping_sorts_within_mega_batches_and_keeps_every_example() {
        // 230 examples, batch 2: mega-batches of 100, 100 and 30.
        let (order, _) = super::epoch_order(3, 230, 0);
        let len = |i: usize| (i * 7919) % 61;
        let grouped = length_grouped(&order, &len, 2);
        let mut a = grouped.clone();
        a.sort();
        assert_eq!(a, (0..230).collect::<Vec<_>>());
        for (g, o) in grouped.chunks(100).zip(order.chunks(100)) {
            assert!(g.windows(2).all(|w| len(w[0]) >= len(w[1])));
            let (mut g, mut o) = (g.to_vec(), o.to_vec());
            g.sort();
            o.sort();
            assert_eq!(g, o, "each mega-batch holds the examples the shuffle gave it");
        }
    }
}
