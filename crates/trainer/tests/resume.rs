//! A run killed mid-way and resumed ends exactly where the uninterrupted run ends: the same
//! metrics, the same saved weights, the same metrics log (timings aside). The trainer binary is
//! run as a child process and dies by `abort()` right after a checkpoint (like `kill -9`: no
//! unwinding, no cleanup); the newest checkpoint is then corrupted so that the resume has to
//! detect it and fall back to the one before.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn trainer(args: &[&str], crash_after: Option<usize>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
    cmd.args(args).env("RUST_LOG", "warn");
    match crash_after {
        Some(n) => cmd.env("PRUNEKIT_CRASH_AFTER_CHECKPOINT", n.to_string()),
        None => cmd.env_remove("PRUNEKIT_CRASH_AFTER_CHECKPOINT"),
    };
    cmd.output().expect("run the trainer binary")
}

fn write_experiment(path: &Path, ckpt: &Path, data: &Path, out: &Path, method: &str) {
    // 3 epochs of 6 batches = 18 steps; a checkpoint every 4 steps (4, 8, 12, 16), two kept.
    let text = experiment_text(ckpt, data, out, method)
        .replace("epochs = 2", "epochs = 3")
        .replace("eval_every = 6", "eval_every = 6\ncheckpoint_every = 4")
        .replace("warmup_steps = 1", "warmup_steps = 3")
        .replace("cooldown_steps = 2", "cooldown_steps = 5\ncalibration_samples = 24");
    std::fs::write(path, text).unwrap();
}

/// metrics.jsonl without the wall-clock fields.
fn metrics_without_timings(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            for k in ["samples_per_second", "elapsed_s", "eta_s"] {
                v.as_object_mut().unwrap().remove(k);
            }
            v
        })
        .collect()
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn killed_and_resumed_runs_end_exactly_like_uninterrupted_ones() {
    let (ckpt, data, dir) = (tmp("resume-ckpt"), tmp("resume-data"), tmp("resume"));
    // Dropout on, so the resumed run must also replay the device RNG.
    write_checkpoint_with(&ckpt, |c| {
        c.hidden_dropout_prob = 0.1;
        c.attention_probs_dropout_prob = 0.1;
    });
    write_tsvs(&data);
    // Learned scores (movement), masks kept between steps (magnitude), sampled noise (l0), a
    // one-shot removal made before the crash (mi_layerwise, calibrated at step 3).
    for method in ["movement", "magnitude", "l0", "mi_layerwise"] {
        let whole = dir.join(format!("{method}-whole"));
        let killed = dir.join(format!("{method}-killed"));
        let (exp_whole, exp_killed) = (dir.join(format!("{method}-whole.toml")), dir.join(format!("{method}-killed.toml")));
        write_experiment(&exp_whole, &ckpt, &data, &whole, method);
        write_experiment(&exp_killed, &ckpt, &data, &killed, method);

        let r = trainer(&[exp_whole.to_str().unwrap()], None);
        assert!(r.status.success(), "{method}: {}", String::from_utf8_lossy(&r.stderr));
        assert!(!whole.join("checkpoints").exists(), "{method}: a finished run removes its checkpoints");

        let r = trainer(&[exp_killed.to_str().unwrap()], Some(12));
        assert!(!r.status.success(), "{method}: the crash hook must kill the run");
        assert!(!killed.join("summary.json").exists());
        let ckpts = killed.join("checkpoints");
        assert!(ckpts.join("step-00000008").join("state.json").exists() && ckpts.join("step-00000012").join("state.json").exists());
        assert!(!ckpts.join("step-00000004").exists(), "{method}: only the newest two are kept");

        // Starting again without --resume must not silently throw the checkpoints away.
        let r = trainer(&[exp_killed.to_str().unwrap()], None);
        assert!(!r.status.success());
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains("--resume") && err.contains("checkpoints"), "{err}");
        assert!(ckpts.join("step-00000012").exists());

        // A torn newest checkpoint (as if the disk filled up) is detected and the previous used.
        let bpk = ckpts.join("step-00000012").join("model.bpk");
        let bytes = std::fs::read(&bpk).unwrap();
        std::fs::write(&bpk, &bytes[..bytes.len() / 2]).unwrap();
        let r = Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args([exp_killed.to_str().unwrap(), "--resume"])
            .env("RUST_LOG", "info")
            .env_remove("PRUNEKIT_CRASH_AFTER_CHECKPOINT")
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&r.stderr);
        assert!(r.status.success(), "{method}: {log}");
        assert!(log.contains("checksum mismatch") && log.contains("step-00000012"), "{method}: the bad checkpoint is reported: {log}");
        assert!(log.contains("resumed from") && log.contains("step-00000008"), "{method}: {log}");

        // Same final metrics, bit for bit; same weights; same log apart from timings.
        let (a, b) = (summary(&whole), summary(&killed));
        for k in ["validation", "test", "prunable_sparsity", "per_matrix", "steps"] {
            assert_eq!(a[k], b[k], "{method}: {k}");
        }
        assert_eq!(std::fs::read(whole.join("model.safetensors")).unwrap(), std::fs::read(killed.join("model.safetensors")).unwrap(), "{method}: weights");
        assert_eq!(metrics_without_timings(&whole), metrics_without_timings(&killed), "{method}: metrics.jsonl");
    }
}

#[test]
fn resume_refuses_a_changed_experiment() {
    let (ckpt, data, dir) = (tmp("resume2-ckpt"), tmp("resume2-data"), tmp("resume2"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    let (exp, out) = (dir.join("e.toml"), dir.join("out"));
    write_experiment(&exp, &ckpt, &data, &out, "movement");
    let r = trainer(&[exp.to_str().unwrap()], Some(8));
    assert!(!r.status.success());
    let r = trainer(&[exp.to_str().unwrap(), "--resume", "--set", "train.lr=0.5"], None);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("experiment differs"), "{err}");
    // --overwrite starts again from scratch and finishes.
    let r = trainer(&[exp.to_str().unwrap(), "--overwrite"], None);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.join("summary.json").exists() && !out.join("checkpoints").exists());
}

#[test]
fn a_diverging_run_stops_naming_the_step_and_keeps_its_last_good_checkpoint() {
    let (ckpt, data, dir) = (tmp("nan-ckpt"), tmp("nan-data"), tmp("nan"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    let (exp, out) = (dir.join("e.toml"), dir.join("out"));
    write_experiment(&exp, &ckpt, &data, &out, "movement");
    let r = Command::new(env!("CARGO_BIN_EXE_trainer")).arg(&exp).env("PRUNEKIT_NAN_AT_STEP", "10").output().unwrap();
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("step 10: the loss is NaN"), "{err}");
    assert!(err.contains("step-00000008") && err.contains("--resume"), "names the last good checkpoint: {err}");
    // The checkpoints before the bad step are intact, and so is the log up to it.
    assert_eq!(trainer::checkpoint::verify(&out.join("checkpoints").join("step-00000008")).unwrap().step, 8);
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(log.contains("\"step\":9}") && log.contains("non-finite loss"), "{log}");
    assert!(!out.join("summary.json").exists());
}

#[test]
fn a_killed_fair_loss_run_resumes_with_its_unpruned_reference() {
    // The performance-weighted loss needs what the unpruned model (step 18) gave: its cached
    // weights and targets travel in state.json, its frozen copy (on the fly) in reference.bpk.
    let dir = tmp("resume-fair");
    let csv = write_csv(&dir);
    for mode in ["cached", "on_the_fly"] {
        let pruning = "method = \"magnitude\"\nscope = \"global\"\nfinal_density = 0.1\nwarmup_steps = 18\ncooldown_steps = 9";
        let extra = format!("[loss]\nkind = \"performance_weighted\"\nmode = \"{mode}\"");
        let (whole, killed) = (dir.join(format!("{mode}-whole")), dir.join(format!("{mode}-killed")));
        let (exp_whole, exp_killed) = (dir.join(format!("{mode}-whole.toml")), dir.join(format!("{mode}-killed.toml")));
        for (p, out) in [(&exp_whole, &whole), (&exp_killed, &killed)] {
            std::fs::write(p, mlp_experiment_text(&csv, out, pruning, &extra).replace("eval_every = 18", "eval_every = 18\ncheckpoint_every = 9")).unwrap();
        }
        let r = trainer(&[exp_whole.to_str().unwrap()], None);
        assert!(r.status.success(), "{mode}: {}", String::from_utf8_lossy(&r.stderr));
        let r = trainer(&[exp_killed.to_str().unwrap()], Some(36));
        assert!(!r.status.success(), "{mode}: the crash hook must kill the run");
        let ck = killed.join("checkpoints").join("step-00000036");
        assert_eq!(ck.join("reference.bpk").exists(), mode == "on_the_fly", "{mode}");
        let r = trainer(&[exp_killed.to_str().unwrap(), "--resume"], None);
        assert!(r.status.success(), "{mode}: {}", String::from_utf8_lossy(&r.stderr));
        let (a, b) = (summary(&whole), summary(&killed));
        for k in ["validation", "test", "groups", "before_pruning", "per_matrix"] {
            assert_eq!(a[k], b[k], "{mode}: {k}");
        }
        assert_eq!(std::fs::read(whole.join("model.safetensors")).unwrap(), std::fs::read(killed.join("model.safetensors")).unwrap(), "{mode}: weights");
    }
}

#[test]
fn a_non_finite_gradient_stops_the_run_before_the_update_naming_the_parameter() {
    let (ckpt, data, dir) = (tmp("nangrad-ckpt"), tmp("nangrad-data"), tmp("nangrad"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    let (exp, out) = (dir.join("e.toml"), dir.join("out"));
    write_experiment(&exp, &ckpt, &data, &out, "movement");
    let r = Command::new(env!("CARGO_BIN_EXE_trainer")).arg(&exp).env("PRUNEKIT_NAN_GRAD_AT_STEP", "10").output().unwrap();
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("step 10: the gradient of") && err.contains("bert.encoder.layer.0.attention.self.query.weight"), "{err}");
    assert!(err.contains("step-00000008") && err.contains("--resume"), "names the last good checkpoint: {err}");
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(log.contains("non-finite gradient"), "{log}");
    // Resuming from the last good checkpoint (no hook) finishes.
    let r = trainer(&[exp.to_str().unwrap(), "--resume"], None);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

#[test]
fn a_checkpoint_from_before_a_new_config_key_still_resumes() {
    // A checkpoint written before `[loss]` existed holds a resolved experiment without it; the
    // same experiment with the new key at its default is the same experiment.
    let (ckpt, data, dir) = (tmp("resume-old-ckpt"), tmp("resume-old-data"), tmp("resume-old"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    let (exp, out) = (dir.join("e.toml"), dir.join("out"));
    write_experiment(&exp, &ckpt, &data, &out, "magnitude");
    let r = trainer(&[exp.to_str().unwrap()], Some(8));
    assert!(!r.status.success());
    let path = out.join("checkpoints").join("step-00000008").join("state.json");
    let mut state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let text = state["experiment"].as_str().unwrap().to_string();
    let mut skipping = false;
    let old: Vec<&str> = text
        .lines()
        .filter(|l| {
            if l.starts_with('[') {
                skipping = *l == "[loss]";
            }
            !skipping
        })
        .collect();
    assert!(text.contains("[loss]") && !old.join("\n").contains("[loss]"));
    state["experiment"] = serde_json::json!(old.join("\n") + "\n");
    std::fs::write(&path, serde_json::to_string(&state).unwrap()).unwrap();
    let r = trainer(&[exp.to_str().unwrap(), "--resume"], None);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.join("summary.json").exists());
}
