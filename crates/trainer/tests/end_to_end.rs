//! The whole loop on generated fixtures: a tiny random BERT checkpoint written in Hugging Face
//! layout (config.json, vocab.txt, model.safetensors) and GLUE-style TSV files. This checks the
//! data path and the bookkeeping (sparsity as scheduled, files written, the saved model reloads
//! with identical predictions); accuracy on real data is measured by the experiments, not here.

use burn::tensor::Device;
use models::checkpoint::load_safetensors;
use models::{BertConfig, BertForSequenceClassification};
use pruners::schedule::kept_count;
use std::path::Path;
use trainer::experiment;
use trainer::train_loop;

mod common;
use common::*;

#[test]
fn movement_run_prunes_as_scheduled_and_its_checkpoint_reloads() {
    let (ckpt, data, out) = (tmp("ckpt"), tmp("data"), tmp("out"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    for method in ["movement", "magnitude", "soft_movement", "l0"] {
        let out = out.join(method);
        let mut exp = experiment(&ckpt, &data, &out, method);
        if method == "soft_movement" {
            exp.pruning.final_threshold = 0.5;
        }
        if method == "l0" {
            // 12 steps: the gates must be able to close (log α from 2.197 to below −2.4).
            exp.pruning.lambda = Some(2000.0);
            exp.pruning.scores_lr = Some(1.0);
        }
        let s = train_loop::run(&exp, Path::new("test.toml")).unwrap();
        assert_eq!(s.steps, 12);
        match method {
            // Exactly the scheduled count per matrix: round(0.3 × numel) of every matrix.
            "movement" | "magnitude" => {
                for m in &s.per_matrix {
                    assert_eq!(m.numel - m.zeros, kept_count(m.numel, 0.3), "{method} {}", m.name);
                }
            }
            // Sparsity is an outcome: it must exist, and soft movement keeps its 0.5% floor.
            _ => {
                assert!(s.prunable_sparsity > 0.0, "{method}: nothing pruned");
                if method == "soft_movement" {
                    for m in &s.per_matrix {
                        assert!(m.numel - m.zeros >= (m.numel as f64 * 0.005) as usize + 1, "{method} {}", m.name);
                    }
                }
            }
        }
        // The masks are saved beside the model, with HF names, and agree with the zeros.
        let masks = models::checkpoint::read_masks(&out.join("masks.safetensors")).unwrap();
        assert_eq!(masks.len(), s.per_matrix.len());
        for m in &s.per_matrix {
            let (keep, shape) = &masks[&format!("{}.weight_mask", m.name)];
            assert_eq!(shape.iter().product::<usize>(), m.numel);
            assert_eq!(keep.iter().filter(|&&k| k == 0).count(), m.zeros, "{method} {}", m.name);
        }
        assert_eq!(s.per_matrix.len(), 2 * 6);
        assert!(s.validation.n == 16 && s.test.as_ref().unwrap().n == 12);
        for f in ["config.toml", "metrics.jsonl", "summary.json", "model.safetensors", "config.json", "vocab.txt"] {
            assert!(out.join(f).exists(), "{method}: {f} written");
        }
        let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        assert!(lines.lines().filter(|l| l.contains("\"split\":\"validation\"")).count() >= 2, "{lines}");

        // The saved model reloads here with identical predictions and the same zeros.
        #[allow(deprecated)]
        let device = Device::ndarray();
        let loaded = train_loop::load_model(out.to_str().unwrap(), 16, 2, false, &device).unwrap();
        let stats = pruners::SparsityReport::measure(&loaded.model);
        assert_eq!(stats.prunable_zeros, s.per_matrix.iter().map(|m| m.zeros).sum::<usize>());
        let ds = trainer::data::load(&exp.data).unwrap();
        let enc = trainer::data::encode(&ds, &loaded.tokenizer).unwrap();
        let batcher = datasets::Batcher { pad_id: 0, max_length: 16 };
        let m = train_loop::evaluate(&loaded.model, &enc.test, &batcher, 5, 2, &device);
        assert_eq!(m.accuracy, s.test.as_ref().unwrap().accuracy, "{method}");
        assert!((m.loss - s.test.as_ref().unwrap().loss).abs() < 1e-6, "{method}");
    }
}

#[test]
fn checkpoint_errors_name_the_file_and_tensor() {
    let ckpt = tmp("bad-ckpt");
    write_checkpoint(&ckpt);
    #[allow(deprecated)]
    let device = Device::ndarray();
    // Corrupt (truncated) file.
    let st = ckpt.join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    let cut = ckpt.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let model = BertForSequenceClassification::new(&BertConfig::tiny(17), 2, &device);
    let err = load_safetensors(model, &cut).unwrap_err().to_string();
    assert!(err.contains("cut.safetensors") && err.contains("corrupt"), "{err}");
    // Shape mismatch: a model with a wider FFN.
    let mut cfg = BertConfig::tiny(17);
    cfg.intermediate_size = 40;
    let err = load_safetensors(BertForSequenceClassification::new(&cfg, 2, &device), &st).unwrap_err().to_string();
    assert!(err.contains("bert.encoder.layer.0.intermediate.dense.weight") && err.contains("[32, 16]"), "{err}");
    // Missing keys are reported by name (the head is new), unexpected ones too.
    let (_, report) = load_safetensors(BertForSequenceClassification::new(&BertConfig::tiny(17), 2, &device), &st).unwrap();
    assert_eq!(report.missing, vec!["classifier.weight".to_string(), "classifier.bias".to_string()]);
    assert!(report.unexpected.is_empty());
    let mut layers = BertConfig::tiny(17);
    layers.num_hidden_layers = 1;
    let (_, report) = load_safetensors(BertForSequenceClassification::new(&layers, 2, &device), &st).unwrap();
    assert!(report.unexpected.iter().any(|k| k.starts_with("bert.encoder.layer.1.")), "{:?}", report.unexpected);
}

#[test]
fn dense_run_learns_a_separable_task() {
    let (ckpt, data, out) = (tmp("learn-ckpt"), tmp("learn-data"), tmp("learn-out"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    let exp = experiment::parse(
        &format!(
            "name = \"learn\"\ndevice = \"ndarray\"\noutput_dir = \"{}\"\n[model]\nsource = \"{}\"\nmax_length = 16\n\
             [data]\nkind = \"glue_tsv\"\ntrain = \"{d}/train.tsv\"\nvalidation = \"{d}/dev.tsv\"\ncolumns = {{ text_a = \"sentence\" }}\n\
             [train]\nepochs = 40\nbatch_size = 8\nlr = 1e-3\n[pruning]\nmethod = \"none\"\n",
            out.display(),
            ckpt.display(),
            d = data.display()
        ),
        &[],
    )
    .unwrap();
    let s = train_loop::run(&exp, Path::new("test.toml")).unwrap();
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let losses: Vec<f64> = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("split").is_none())
        .filter_map(|v| v["loss"].as_f64())
        .collect();
    assert!(losses.last().unwrap() < &(losses[0] - 0.05), "training loss falls: {losses:?}");
    assert_eq!(s.validation.accuracy, 1.0, "the words decide the label");
    assert_eq!(s.prunable_sparsity, 0.0);
}

#[test]
fn distillation_uses_a_fine_tuned_teacher_and_refuses_a_headless_one() {
    let (ckpt, data, out) = (tmp("kd-ckpt"), tmp("kd-data"), tmp("kd-out"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    // The teacher: a dense run's output directory.
    let mut dense = experiment(&ckpt, &data, &out.join("teacher"), "none");
    dense.train.epochs = 6.0;
    let teacher = train_loop::run(&dense, Path::new("teacher.toml")).unwrap();
    assert_eq!(teacher.prunable_sparsity, 0.0);
    let with_teacher = |teacher: &Path, alpha_ce: f64| {
        let mut exp = experiment(&ckpt, &data, &out.join("student"), "movement");
        exp.distillation = Some(experiment::DistillationSection { enabled: true, teacher: teacher.display().to_string(), alpha_distil: 1.0, alpha_ce, temperature: 2.0 });
        exp
    };
    // Pure distillation (α_ce = 0): the student learns the labels from the teacher alone.
    let mut exp = with_teacher(&out.join("teacher"), 0.0);
    exp.train.epochs = 6.0;
    exp.pruning.final_density = 0.9;
    let s = train_loop::run(&exp, Path::new("student.toml")).unwrap();
    assert!(s.validation.accuracy >= teacher.validation.accuracy - 0.13, "student {} vs teacher {}", s.validation.accuracy, teacher.validation.accuracy);
    // The pretrained checkpoint has no classifier head: not a teacher.
    let err = train_loop::run(&with_teacher(&ckpt, 0.5), Path::new("student.toml")).unwrap_err();
    assert!(err.contains("distillation.teacher") && err.contains("classifier"), "{err}");
}

#[test]
fn sweep_runs_the_grid_writes_the_table_and_resumes() {
    let (ckpt, data, out) = (tmp("sweep-ckpt"), tmp("sweep-data"), tmp("sweep-out"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    std::fs::write(out.join("base.toml"), experiment_text(&ckpt, &data, &out.join("unused"), "movement")).unwrap();
    let sweep_file = out.join("sweep.toml");
    std::fs::write(
        &sweep_file,
        format!(
            "base = \"base.toml\"\noutput_dir = \"{}\"\nskip_existing = true\nseeds = [1, 2]\n\
             [[run]]\nname = \"dense\"\nset = {{ \"pruning.method\" = \"none\" }}\n\
             [grid]\n\"pruning.method\" = [\"magnitude\", \"movement\"]\n\"pruning.final_density\" = [0.5, 0.25]\n",
            out.join("runs").display()
        ),
    )
    .unwrap();
    let rows = trainer::sweep::run(&sweep_file).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), 10);
    assert_eq!(&names[..4], ["dense-seed1", "dense-seed2", "magnitude-0.5-seed1", "magnitude-0.5-seed2"]);
    // Per run: results.csv; the seeds really differ (different data order and initialisation).
    let results = std::fs::read_to_string(out.join("runs/results.csv")).unwrap();
    assert_eq!(results.lines().count(), 11, "{results}");
    let s1: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("runs/movement-0.5-seed1/summary.json")).unwrap()).unwrap();
    let s2: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("runs/movement-0.5-seed2/summary.json")).unwrap()).unwrap();
    assert_ne!(s1["validation"]["loss"], s2["validation"]["loss"]);
    // Per configuration: mean and standard deviation over the two seeds.
    let csv = std::fs::read_to_string(out.join("runs/table.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 6, "{csv}");
    let loss_sd = {
        let (a, b) = (s1["test"]["accuracy"].as_f64().unwrap(), s2["test"]["accuracy"].as_f64().unwrap());
        trainer::sweep::mean_std(&[a, b])
    };
    // Each row reports the sparsity it measured: the scheduled one for the top-k methods.
    for (line, (conf, method, remaining)) in lines[1..].iter().zip([
        ("dense", "dense", "1.000000"),
        ("magnitude-0.5", "magnitude", "0.500000"),
        ("magnitude-0.25", "magnitude", "0.250000"),
        ("movement-0.5", "movement", "0.500000"),
        ("movement-0.25", "movement", "0.250000"),
    ]) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!((cells[0], cells[1], cells[4], cells[5], cells[12]), (conf, method, remaining, "0.000000", "2"), "{line}");
        if conf == "movement-0.5" {
            assert_eq!(cells[6], format!("{:.6}", loss_sd.0));
            assert_eq!(cells[7], format!("{:.6}", loss_sd.1));
        }
    }
    let md = std::fs::read_to_string(out.join("runs/table.md")).unwrap();
    assert!(md.lines().count() == 2 + 1 + 5 && md.contains(" ± "), "{md}");
    if trainer::plots::font().is_ok() {
        for png in ["accuracy_vs_remaining.png", "kept_per_layer.png"] {
            let bytes = std::fs::read(out.join("runs").join(png)).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{png}");
        }
    }
    // Resume: a second call reuses every summary instead of training again.
    let before = std::fs::metadata(out.join("runs/movement-0.25-seed2/summary.json")).unwrap().modified().unwrap();
    let again = trainer::sweep::run(&sweep_file).unwrap();
    assert_eq!(again.len(), 10);
    assert_eq!(std::fs::metadata(out.join("runs/movement-0.25-seed2/summary.json")).unwrap().modified().unwrap(), before);
    // --tables-only: a run without its summary (still under way elsewhere) is left out, nothing trains.
    std::fs::remove_file(out.join("runs/magnitude-0.25-seed1/summary.json")).unwrap();
    let (rows, missing) = trainer::sweep::tables_only(&sweep_file).unwrap();
    assert_eq!((rows.len(), missing), (9, vec!["magnitude-0.25-seed1".to_string()]));
    assert!(!out.join("runs/magnitude-0.25-seed1/summary.json").exists(), "tables-only ran nothing");
    let csv = std::fs::read_to_string(out.join("runs/table.csv")).unwrap();
    let row = csv.lines().find(|l| l.starts_with("magnitude-0.25,")).unwrap();
    assert_eq!(row.split(',').nth(12), Some("1"), "the configuration now has one seed: {row}");
    // A misspelt key in the grid stops the sweep before any run starts, naming the key.
    std::fs::write(&sweep_file, "base = \"base.toml\"\noutput_dir = \"x\"\n[grid]\n\"pruning.final_densty\" = [0.5]\n").unwrap();
    let err = trainer::sweep::run(&sweep_file).unwrap_err();
    assert!(err.contains("final_densty") && err.contains("base.toml"), "{err}");
}

#[test]
fn structured_run_saves_a_compacted_model_with_the_same_predictions() {
    let (ckpt, data, out) = (tmp("unit-ckpt"), tmp("unit-data"), tmp("unit-out"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    for method in ["magnitude", "movement", "mi_layerwise"] {
        let out = out.join(method);
        let mut exp = experiment(&ckpt, &data, &out, method);
        if method != "mi_layerwise" {
            exp.pruning.granularity = pruners::Granularity::Unit;
        }
        exp.pruning.calibration_samples = 20;
        exp.pruning.final_density = 0.5;
        let s = train_loop::run(&exp, Path::new("test.toml")).unwrap();
        let c = s.compaction.as_ref().expect("structured runs compact");
        // tiny: 4 heads and 32 neurons per layer → 2 heads and 16 neurons.
        assert_eq!(heads(&c.report).iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2], "{method}");
        assert_eq!(widths(&c.report), vec![16, 16]);
        let (small, masked) = (c.test.as_ref().unwrap(), s.test.as_ref().unwrap());
        assert_eq!((small.accuracy, small.f1), (masked.accuracy, masked.f1), "{method}: compacted and masked models agree");
        assert!((small.loss - masked.loss).abs() < 1e-5, "{method}");
        assert!(!out.join("masks.safetensors").exists());
        // The saved model is the small one; its config.json says so, and it reloads by it.
        let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["intermediate_size"], 16);
        assert_eq!(cfg["pruned_heads"].as_object().unwrap().len(), 2);
        #[allow(deprecated)]
        let device = Device::ndarray();
        let loaded = train_loop::load_model(out.to_str().unwrap(), 16, 2, false, &device).unwrap();
        assert!(loaded.missing.is_empty(), "{:?}", loaded.missing);
        assert_eq!(loaded.model.bert.encoder.layer[0].attention.self_.num_heads, 2);
        let ds = trainer::data::load(&exp.data).unwrap();
        let enc = trainer::data::encode(&ds, &loaded.tokenizer).unwrap();
        let batcher = datasets::Batcher { pad_id: 0, max_length: 16 };
        let m = train_loop::evaluate(&loaded.model, &enc.test, &batcher, 5, 2, &device);
        assert_eq!(m.accuracy, s.test.as_ref().unwrap().accuracy);
        assert!((m.loss - s.test.as_ref().unwrap().loss).abs() < 1e-5);
    }
}

#[test]
fn learned_masks_end_in_a_compacted_model_with_the_sparsity_they_report() {
    let (ckpt, data, out) = (tmp("gates-ckpt"), tmp("gates-data"), tmp("gates-out"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    for method in ["mask_learning", "minimax_uniform"] {
        let out = out.join(method);
        let mut exp = experiment(&ckpt, &data, &out, method);
        exp.pruning.final_density = 0.5;
        exp.pruning.scores_lr = Some(0.5);
        exp.pruning.multipliers_lr = Some(0.5);
        let s = train_loop::run(&exp, Path::new("test.toml")).unwrap();
        let c = s.compaction.as_ref().expect("learned structural masks compact");
        let (small, masked) = (c.test.as_ref().unwrap(), s.test.as_ref().unwrap());
        assert_eq!((small.accuracy, small.f1), (masked.accuracy, masked.f1), "{method}");
        assert!((small.loss - masked.loss).abs() < 1e-5, "{method}");
        // The zeros counted in the folded weights are exactly the removed units' weights
        // (tiny: a head owns 4·4·16 weights, a neuron 2·16).
        let kept: usize = heads(&c.report).iter().map(|h| h.len() * 256).sum::<usize>() + widths(&c.report).iter().map(|w| w * 32).sum::<usize>();
        let removed_units = s.prunable_params - kept;
        let zeros = s.prunable_params - s.prunable_nonzero;
        if method == "minimax_uniform" {
            // Exactly the target, the same in every layer.
            assert_eq!(heads(&c.report).iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2]);
            assert_eq!(widths(&c.report), vec![16, 16]);
            assert_eq!(zeros, s.prunable_params / 2);
        }
        // A layer whose whole block closed keeps one (zeroed) head or neuron in the small model.
        assert!(zeros >= removed_units, "{method}: {zeros} zeros, {removed_units} removed by compaction");
        assert!(out.join("model.safetensors").exists() && !out.join("masks.safetensors").exists());
        let model = std::fs::read(out.join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&model).unwrap();
        assert!(st.names().iter().all(|n| !n.contains("log_alpha") && !n.contains("multipliers")), "pruner parameters are not saved");
    }
}

fn heads(report: &serde_json::Value) -> Vec<Vec<usize>> {
    serde_json::from_value(report["heads"].clone()).unwrap()
}

fn widths(report: &serde_json::Value) -> Vec<usize> {
    serde_json::from_value(report["ffn_widths"].clone()).unwrap()
}

/// A sentence-transformers checkpoint (its `1_Pooling/config.json` says mean) trains with a
/// mean-pooled head, saves `classifier_pooling = "mean"` in its config.json, and reloads as
/// mean-pooled with identical predictions; `model.pooling = "cls"` overrides the checkpoint.
#[test]
fn sentence_transformers_checkpoint_trains_and_reloads_with_mean_pooling() {
    let (ckpt, data, out) = (tmp("st-ckpt"), tmp("st-data"), tmp("st-out"));
    write_checkpoint(&ckpt);
    std::fs::create_dir_all(ckpt.join("1_Pooling")).unwrap();
    std::fs::write(ckpt.join("1_Pooling/config.json"), r#"{"word_embedding_dimension": 16, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true}"#).unwrap();
    write_tsvs(&data);
    let exp = experiment(&ckpt, &data, &out.join("mean"), "movement");
    assert_eq!(exp.model.pooling, experiment::PoolingChoice::Auto);
    let s = train_loop::run(&exp, Path::new("test.toml")).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("mean/config.json")).unwrap()).unwrap();
    assert_eq!(saved["classifier_pooling"], "mean");
    #[allow(deprecated)]
    let device = Device::ndarray();
    let loaded = train_loop::load_model(out.join("mean").to_str().unwrap(), 16, 2, false, &device).unwrap();
    assert!(loaded.model.mean_pooling);
    let ds = trainer::data::load(&exp.data).unwrap();
    let enc = trainer::data::encode(&ds, &loaded.tokenizer).unwrap();
    let batcher = datasets::Batcher { pad_id: 0, max_length: 16 };
    let m = train_loop::evaluate(&loaded.model, &enc.test, &batcher, 5, 2, &device);
    assert_eq!(m.accuracy, s.test.as_ref().unwrap().accuracy);
    assert!((m.loss - s.test.as_ref().unwrap().loss).abs() < 1e-6);
    // Read through the CLS pooler instead, the same weights give other outputs.
    let mut cls = loaded.model.clone();
    cls.mean_pooling = false;
    let mc = train_loop::evaluate(&cls, &enc.test, &batcher, 5, 2, &device);
    assert!((mc.loss - m.loss).abs() > 1e-6, "the pooling is what the head reads");
    // The experiment can ask for the CLS pooler; the saved config then has no pooling key.
    let mut exp = experiment(&ckpt, &data, &out.join("cls"), "magnitude");
    exp.model.pooling = experiment::PoolingChoice::Cls;
    train_loop::run(&exp, Path::new("test.toml")).unwrap();
    let saved = std::fs::read_to_string(out.join("cls/config.json")).unwrap();
    assert!(!saved.contains("classifier_pooling"), "{saved}");
    assert!(!train_loop::load_model(out.join("cls").to_str().unwrap(), 16, 2, false, &device).unwrap().model.mean_pooling);
}

/// Hard movement pruning with Adam and scores initialised to 0 depends on the scores' learning
/// rate only through a common scale of every score, which top-k does not see: two runs that
/// differ only in `scores_lr` keep the same weights at the end and predict the same. (This fails
/// if anything but Adam's normalised step touches the scores: weight decay, clipping, a non-zero
/// initialisation.)
#[test]
fn movement_masks_do_not_depend_on_the_scores_learning_rate() {
    let (ckpt, data, out) = (tmp("slr-ckpt"), tmp("slr-data"), tmp("slr-out"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    let mut results = Vec::new();
    // A power-of-two ratio, so that the common scale is exact in floating point too (with 0.1
    // vs 0.003 rounding alone reorders near-ties, and one flipped mask entry sends the two
    // runs apart).
    for (name, lr) in [("a", 0.1), ("b", 0.1 / 32.0)] {
        let mut exp = experiment(&ckpt, &data, &out.join(name), "movement");
        exp.pruning.scores_lr = Some(lr);
        let s = train_loop::run(&exp, Path::new("test.toml")).unwrap();
        let masks = models::checkpoint::read_masks(&out.join(name).join("masks.safetensors")).unwrap();
        results.push((s.test.unwrap().loss, masks));
    }
    assert_eq!(results[0].1, results[1].1, "the same weights are kept");
    assert!((results[0].0 - results[1].0).abs() < 1e-6, "test loss {} vs {}", results[0].0, results[1].0);
}

/// Wanda, STADE and Taylor through the loop: the trainer calibrates them at `warmup_steps` (the
/// same hook as MI; Taylor also gets the gradients it asks for), every row keeps exactly its share, the summary reports the target, and the
/// saved model reloads with the same predictions (STADE's corrected biases included).
#[test]
fn one_shot_wanda_and_stade_prune_every_row_by_its_share_in_the_loop() {
    let (ckpt, data, out) = (tmp("oneshot-ckpt"), tmp("oneshot-data"), tmp("oneshot-out"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    for (method, extra) in [("wanda", ""), ("stade", ""), ("wanda", "2:4"), ("taylor", "")] {
        let out = out.join(format!("{method}{}", extra.replace(':', "-")));
        let mut exp = experiment(&ckpt, &data, &out, method);
        exp.pruning.calibration_samples = 20;
        if !extra.is_empty() {
            exp.pruning.n_m = Some(extra.into());
            exp.pruning.final_density = 0.5;
        }
        let s = train_loop::run(&exp, Path::new("test.toml")).unwrap();
        // tiny: rows of 16 or 32 inputs; per row floor(16·0.7) = 11 and floor(32·0.7) = 22 go
        // (0.6875), or exactly half under 2:4.
        let want = if extra.is_empty() { 0.6875 } else { 0.5 };
        assert!((s.prunable_sparsity - want).abs() < 1e-12, "{method} {extra}: sparsity {}", s.prunable_sparsity);
        assert_eq!(s.target_density, Some(if extra.is_empty() { 0.3 } else { 0.5 }), "{method}");
        #[allow(deprecated)]
        let device = Device::ndarray();
        let loaded = train_loop::load_model(out.to_str().unwrap(), 16, 2, false, &device).unwrap();
        let ds = trainer::data::load(&exp.data).unwrap();
        let enc = trainer::data::encode(&ds, &loaded.tokenizer).unwrap();
        let batcher = datasets::Batcher { pad_id: 0, max_length: 16 };
        let m = train_loop::evaluate(&loaded.model, &enc.test, &batcher, 5, 2, &device);
        assert!((m.loss - s.test.as_ref().unwrap().loss).abs() < 1e-5, "{method}: the saved model predicts as the run did");
    }
}
