//! `trainer gpu-check`: the wgpu parity checks ([`crate::parity`]) on the selected device,
//! written as one JSON with the adapter, its driver and the versions. `scripts/gpu_check.sh`
//! runs it first, then the benchmarks, on a machine with a GPU (and here on a software adapter).

use crate::experiment::DeviceChoice;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct GpuCheckArgs {
    /// The device to check against the CPU: "wgpu" (default), "vulkan", "gpu", "cuda".
    #[arg(long, value_enum, default_value = "wgpu")]
    device: DeviceChoice,
    /// Run only these checks (comma-separated); all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Write the result here (JSON); printed to stdout as well.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn main(args: GpuCheckArgs) -> Result<(), String> {
    if matches!(args.device, DeviceChoice::Cpu | DeviceChoice::Flex | DeviceChoice::Ndarray | DeviceChoice::Auto) {
        return Err(format!("--device {:?}: gpu-check compares a GPU device with the CPU; use wgpu, vulkan, gpu or cuda", args.device).to_lowercase());
    }
    let sel = crate::device::select(args.device)?;
    let names: Vec<String> = if args.only.is_empty() { crate::parity::CHECKS.iter().map(|s| s.to_string()).collect() } else { args.only.clone() };
    let mut checks = Vec::new();
    for n in &names {
        let c = crate::parity::run(n, &sel.device);
        tracing::info!("{:20} {} (max rel err {:.2e}, tolerance {:.0e}, {:.1}s): {}", c.name, if c.passed { "ok" } else { "FAILED" }, c.max_rel_err, c.tolerance, c.seconds, c.detail);
        checks.push(c);
    }
    let failed: Vec<&str> = checks.iter().filter(|c| !c.passed).map(|c| c.name.as_str()).collect();
    let result = serde_json::json!({
        "device": sel.name,
        "adapter": sel.adapter,
        "software_adapter": sel.adapter.as_ref().map(|a| a.is_software()),
        "trainer_version": env!("CARGO_PKG_VERSION"),
        "burn_version": "0.22.1",
        "checks": checks,
        "passed": failed.is_empty(),
    });
    let text = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
    println!("{text}");
    if let Some(p) = &args.out {
        std::fs::write(p, &text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} of {} parity checks failed: {}", failed.len(), checks.len(), failed.join(", ")))
    }
}
