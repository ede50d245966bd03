//! Choosing where tensors live, and saying so in the log.
//!
//! `auto` takes a real GPU adapter and never a software rasteriser (llvmpipe, lavapipe, SwiftShader):
//! burn reports a device with no physical card behind it for those, and they are skipped.
//! Without a real GPU it runs on the CPU with the flex backend (pure Rust, SIMD + rayon).

use crate::experiment::DeviceChoice;
use burn::tensor::Device;

/// The device and a name for logs and reports.
pub struct Selected {
    pub device: Device,
    pub name: String,
    pub is_gpu: bool,
}

fn cpu_name(backend: &str) -> String {
    // rayon (flex's thread pool) honours RAYON_NUM_THREADS; say what it will use.
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    format!("CPU ({backend}, {threads} threads)")
}

fn flex() -> Selected {
    Selected { device: Device::flex(), name: cpu_name("flex"), is_gpu: false }
}

/// The first real GPU that wgpu reaches, if any (software adapters excluded).
fn real_gpu() -> Option<Selected> {
    // Probing opens every adapter; a broken driver must not take the run down.
    let found = std::panic::catch_unwind(Device::enumerate_physical).ok()?;
    let gpu = found.into_iter().next()?;
    let device = gpu.devices.first()?.clone();
    Some(Selected { device, name: gpu.name, is_gpu: true })
}

impl Selected {
    /// Makes this device burn's default for the process (`BURN_DEVICE`) when it is a CPU
    /// backend: burn puts some state on the default device (a loaded optimizer record), and
    /// with the GPU backends compiled in that default would otherwise be a (software) GPU.
    pub fn make_default(&self) {
        if self.is_gpu || std::env::var_os("BURN_DEVICE").is_some() {
            return;
        }
        let name = if self.name.contains("ndarray") { "ndarray" } else { "flex" };
        std::env::set_var("BURN_DEVICE", name);
    }
}

pub fn select(choice: DeviceChoice) -> Result<Selected, String> {
    let selected = match choice {
        DeviceChoice::Auto => match real_gpu() {
            Some(g) => g,
            None => {
                tracing::info!("no real GPU adapter found (software adapters such as llvmpipe are not used): running on the CPU");
                flex()
            }
        },
        DeviceChoice::Gpu | DeviceChoice::Wgpu | DeviceChoice::Vulkan => real_gpu().ok_or_else(|| {
            format!("device = \"{choice:?}\": no real GPU adapter found (only software ones, or none); use device = \"auto\" or \"cpu\"").to_lowercase()
        })?,
        DeviceChoice::Cuda => cuda()?,
        DeviceChoice::Cpu | DeviceChoice::Flex => flex(),
        #[allow(deprecated)]
        DeviceChoice::Ndarray => Selected { device: Device::ndarray(), name: cpu_name("ndarray"), is_gpu: false },
    };
    tracing::info!("device: {}", selected.name);
    Ok(selected)
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Selected, String> {
    let device = Device::cuda(0);
    let name = device.identity().map(|i| i.name).unwrap_or_else(|| "CUDA device 0".into());
    Ok(Selected { device, name, is_gpu: true })
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Selected, String> {
    Err("device = \"cuda\": this binary was built without CUDA; rebuild with `--features cuda`, or use device = \"auto\"".into())
}
