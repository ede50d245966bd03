//! The GPU path: the same computations on the CPU (flex) and on wgpu, compared
//! (`trainer::parity`), and the trainer binary running an experiment with `device = "wgpu"`,
//! then resuming its checkpoint on the CPU.
//!
//! Without a GPU these run on Mesa's software Vulkan driver (lavapipe: Debian's
//! `mesa-vulkan-drivers` + `libvulkan1`), which runs the same SPIR-V kernels a GPU runs. With no
//! Vulkan adapter at all they fail in CI (`CI=true`: the GPU path must be tested) and are skipped
//! with a printed reason elsewhere.

mod common;
use burn::tensor::{Device, DeviceKind};
use common::*;
use std::path::Path;
use std::process::Command;

/// The value of `CUBECL_WGPU_DEFAULT_DEVICE` to test with: the user's, else a real GPU if wgpu
/// sees one (burn's default choice), else the software adapter (`Cpu`). `None`: no adapter.
fn adapter_choice() -> Option<Option<String>> {
    if let Ok(v) = std::env::var("CUBECL_WGPU_DEFAULT_DEVICE") {
        return Some(Some(v));
    }
    let adapters = trainer::device::adapters();
    if adapters.is_empty() {
        let why = "no Vulkan adapter: install a driver (Debian: apt-get install -y mesa-vulkan-drivers libvulkan1)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI must test the GPU path, but there is {why}");
        }
        eprintln!("SKIPPED (not in CI): {why}");
        return None;
    }
    Some(if adapters.iter().any(|a| !a.is_software()) { None } else { Some("Cpu".into()) })
}

fn gpu() -> Option<Device> {
    let choice = adapter_choice()?;
    Some(match choice.as_deref() {
        None => Device::wgpu(DeviceKind::DefaultDevice),
        Some("Cpu") => Device::wgpu(DeviceKind::Cpu),
        Some(_) => Device::wgpu(DeviceKind::DefaultDevice), // the user's variable, read by burn
    })
}

fn check(name: &str) {
    let Some(device) = gpu() else { return };
    let c = trainer::parity::run(name, &device);
    eprintln!("{name}: max rel err {:.2e} (tolerance {:.0e}) in {:.1}s: {}", c.max_rel_err, c.tolerance, c.seconds, c.detail);
    assert!(c.passed, "{name}: {}", c.detail);
}

#[test]
fn wgpu_logits_loss_and_every_gradient_match_the_cpu() {
    check("forward_backward");
}

#[test]
fn wgpu_adamw_steps_match_the_cpu() {
    check("adamw_steps");
}

#[test]
fn wgpu_topk_masks_are_the_cpus() {
    check("topk_masks");
}

#[test]
fn wgpu_hard_concrete_gates_and_expected_sparsity_match_the_cpu() {
    check("hard_concrete");
}

#[test]
fn wgpu_compaction_gives_the_cpus_model() {
    check("compaction");
}

#[test]
fn wgpu_checkpoint_resumes_on_the_cpu() {
    check("checkpoint_to_cpu");
}

#[test]
fn rel_err_measures_against_the_reference_scale() {
    assert_eq!(trainer::parity::rel_err(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
    assert!((trainer::parity::rel_err(&[1.0, 2.0002], &[1.0, 2.0]) - 1e-4).abs() < 1e-7);
    assert!(trainer::parity::rel_err(&[f32::NAN], &[0.0]).is_infinite());
    assert!(trainer::parity::rel_err(&[1.0], &[1.0, 2.0]).is_infinite());
}

fn trainer_bin(args: &[&str], adapter: &Option<String>, crash_after: Option<usize>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
    cmd.args(args).env("RUST_LOG", "warn");
    match adapter {
        Some(v) => cmd.env("CUBECL_WGPU_DEFAULT_DEVICE", v),
        None => cmd.env_remove("CUBECL_WGPU_DEFAULT_DEVICE"),
    };
    match crash_after {
        Some(n) => cmd.env("PRUNEKIT_CRASH_AFTER_CHECKPOINT", n.to_string()),
        None => cmd.env_remove("PRUNEKIT_CRASH_AFTER_CHECKPOINT"),
    };
    cmd.output().expect("run the trainer binary")
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// The mean training loss of the first logged window (steps 0–2).
fn first_loss(out: &Path) -> f64 {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v.get("split").is_none() && v.get("loss").is_some())
        .and_then(|v| v["loss"].as_f64())
        .expect("a training loss line")
}

#[test]
fn binary_trains_movement_on_wgpu_and_a_wgpu_checkpoint_resumes_on_the_cpu() {
    let Some(adapter) = adapter_choice() else { return };
    let (ckpt, data, dir) = (tmp("wgpu-ckpt"), tmp("wgpu-data"), tmp("wgpu"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    // 2 epochs of 6 batches = 12 steps, movement to 30%, a checkpoint every 4 steps.
    let write = |name: &str, device: &str| {
        let out = dir.join(name);
        let text = experiment_text(&ckpt, &data, &out, "movement")
            .replace("device = \"ndarray\"", &format!("device = \"{device}\""))
            .replace("eval_every = 6", "eval_every = 6\ncheckpoint_every = 4");
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        (path, out)
    };
    let (exp_gpu, out_gpu) = write("gpu", "wgpu");
    let (exp_cpu, out_cpu) = write("cpu", "flex");
    let (exp_killed, out_killed) = write("killed", "wgpu");

    let r = trainer_bin(&[exp_gpu.to_str().unwrap()], &adapter, None);
    assert!(r.status.success(), "wgpu run: {}", String::from_utf8_lossy(&r.stderr));
    let r = trainer_bin(&[exp_cpu.to_str().unwrap()], &adapter, None);
    assert!(r.status.success(), "cpu run: {}", String::from_utf8_lossy(&r.stderr));
    let (sg, sc) = (summary(&out_gpu), summary(&out_cpu));
    // The summary names the adapter and its driver.
    assert!(sg["device"].as_str().unwrap().starts_with("wgpu: "), "{}", sg["device"]);
    let a = &sg["adapter"];
    assert!(a["name"].as_str().is_some_and(|s| !s.is_empty()) && a["backend"].as_str().is_some() && a["driver"].as_str().is_some(), "{a}");
    assert!(sc.get("adapter").is_none());
    // Same schedule, same exact kept counts; the first losses agree.
    assert_eq!(sg["steps"], 12);
    assert_eq!(sg["prunable_nonzero"], sc["prunable_nonzero"], "kept weights on wgpu vs the CPU");
    let (lg, lc) = (first_loss(&out_gpu), first_loss(&out_cpu));
    assert!((lg - lc).abs() <= 1e-3 * lc.abs(), "first logged loss: wgpu {lg}, cpu {lc}");

    // Killed after the step-8 checkpoint on wgpu, resumed on the CPU (the device may change).
    let r = trainer_bin(&[exp_killed.to_str().unwrap()], &adapter, Some(8));
    assert!(!r.status.success(), "the crash hook must kill the run");
    assert!(out_killed.join("checkpoints/step-00000008/state.json").exists());
    let r = trainer_bin(&[exp_killed.to_str().unwrap(), "--resume", "--set", "device=flex"], &adapter, None);
    assert!(r.status.success(), "resume on the CPU: {}", String::from_utf8_lossy(&r.stderr));
    let sk = summary(&out_killed);
    assert!(sk["device"].as_str().unwrap().starts_with("CPU (flex"), "{}", sk["device"]);
    assert_eq!(sk["steps"], 12);
    assert_eq!(sk["prunable_nonzero"], sc["prunable_nonzero"]);
}
