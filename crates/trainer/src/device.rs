//! Choosing where tensors live, and saying so in the log and in `summary.json`.
//!
//! `auto` takes a real GPU adapter and never a software rasteriser (llvmpipe, lavapipe, SwiftShader):
//! burn reports a device with no physical card behind it for those, and they are skipped.
//! Without a real GPU it runs on the CPU with the flex backend (pure Rust, SIMD + rayon).
//!
//! `wgpu`, `vulkan` and `gpu` take a real GPU too, unless the user names an adapter with burn's
//! own `CUBECL_WGPU_DEFAULT_DEVICE` (`Cpu`, `DiscreteGpu(0)`, `IntegratedGpu(0)`, …): then that
//! adapter is used as it is, a software one included. That is how the wgpu path is tested on a
//! machine without a GPU (Mesa's lavapipe: `CUBECL_WGPU_DEFAULT_DEVICE=Cpu`).

use crate::experiment::DeviceChoice;
use burn::tensor::wgpu::wgpu;
use burn::tensor::{Device, DeviceKind};
use serde::{Deserialize, Serialize};

/// The device and a name for logs and reports.
pub struct Selected {
    pub device: Device,
    pub name: String,
    pub is_gpu: bool,
    /// The wgpu adapter behind `device`, when it is one.
    pub adapter: Option<Adapter>,
}

/// What wgpu says of an adapter: the part, its driver, the graphics API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adapter {
    pub name: String,
    /// `Vulkan`, `Metal`, `Dx12`, `Gl`.
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` (a software rasteriser), `Other`.
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    /// PCI vendor id (0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel, 0x10005 Mesa).
    pub vendor: u32,
}

impl Adapter {
    /// A software rasteriser (lavapipe, llvmpipe, SwiftShader, WARP): correct, slow, no GPU.
    pub fn is_software(&self) -> bool {
        self.device_type == "Cpu"
    }

    /// `llvmpipe (LLVM 15.0.6, 256 bits) [Vulkan, Cpu; driver llvmpipe, Mesa 22.3.6]`.
    pub fn describe(&self) -> String {
        let driver = [self.driver.as_str(), self.driver_info.as_str()].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(", ");
        format!("{} [{}, {}; driver {}]", self.name, self.backend, self.device_type, if driver.is_empty() { "unnamed" } else { &driver })
    }
}

/// Runs a wgpu future to completion on this thread (native wgpu's futures are ready at once).
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// Every adapter wgpu reaches through Vulkan, Metal and DX12 (not OpenGL), in wgpu's order.
/// Empty where there is no loader or no driver; never panics.
pub fn adapters() -> Vec<Adapter> {
    quiet_wayland();
    std::panic::catch_unwind(|| {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor { backends: wgpu::Backends::PRIMARY, ..wgpu::InstanceDescriptor::new_without_display_handle() });
        block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY))
            .iter()
            .map(|a| {
                let i = a.get_info();
                Adapter {
                    name: i.name,
                    backend: format!("{:?}", i.backend),
                    device_type: format!("{:?}", i.device_type),
                    driver: i.driver,
                    driver_info: i.driver_info,
                    vendor: i.vendor,
                }
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The adapters wgpu sees, described for an error message.
fn adapters_found() -> String {
    let seen: Vec<String> = adapters().iter().map(Adapter::describe).collect();
    if seen.is_empty() {
        "none: is a Vulkan loader and driver installed? Debian: apt-get install libvulkan1 mesa-vulkan-drivers".into()
    } else {
        seen.join("; ")
    }
}

/// Mesa's Vulkan drivers try to reach a Wayland compositor when they start, and libwayland
/// prints "error: XDG_RUNTIME_DIR is invalid or not set in the environment." once per attempt
/// (six lines at start-up) on a headless machine. Nothing is wrong: there is no display, and
/// compute needs none. Where the variable is unset, point it at a private empty directory so
/// the probe fails quietly; a set variable is left as it is.
pub fn quiet_wayland() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(target_os = "linux")]
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            let dir = std::env::temp_dir().join(format!("prunekit-xdg-{}", std::process::id()));
            if std::fs::create_dir_all(&dir).is_ok() {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
                std::env::set_var("XDG_RUNTIME_DIR", &dir);
            }
        }
    });
}

/// Keeps freed memory in the process instead of handing it back to the kernel (glibc only).
///
/// A training step allocates and frees tensors of 6–25 MB hundreds of times. glibc serves
/// blocks above its mmap threshold with a fresh `mmap` and `munmap`s them on free, and trims
/// the heap top on free, so every such tensor page-faults its memory in again: `trainer bench
/// --ops` spent 2.1 s of ~8 s CPU in the kernel (`time`'s sys), against 0.34 s with both limits
/// raised (issue 22; a whole training step: `scripts/bench_alloc.sh` →
/// `bench/alloc_cpu_minilm.json`). The cost: the process keeps its peak memory until it exits.
/// `PRUNEKIT_KEEP_FREED_MEMORY=0` restores glibc's defaults; other C libraries are left alone.
/// Call it before any other thread starts.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var("PRUNEKIT_KEEP_FREED_MEMORY").is_ok_and(|v| v == "0") {
            return false;
        }
        // SAFETY: mallopt only changes allocator parameters; called before other threads run.
        unsafe {
            let mmap = libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
            let trim = libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            mmap == 1 && trim == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
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
    Selected { device: Device::flex(), name: cpu_name("flex"), is_gpu: false, adapter: None }
}

/// The adapter wgpu reports under `name`, preferring `backend` when two APIs reach it.
fn adapter_named(name: &str, backend: Option<&str>) -> Option<Adapter> {
    let all: Vec<Adapter> = adapters().into_iter().filter(|a| a.name == name).collect();
    backend.and_then(|b| all.iter().find(|a| a.backend == b).cloned()).or_else(|| all.into_iter().next())
}

fn gpu_selected(device: Device, name: String) -> Selected {
    let adapter = adapter_named(&name, Some("Vulkan"));
    let label = adapter.as_ref().map(Adapter::describe).unwrap_or_else(|| name.clone());
    Selected { device, name: format!("wgpu: {label}"), is_gpu: true, adapter }
}

/// The first real GPU that wgpu reaches, if any (software adapters excluded).
fn real_gpu() -> Option<Selected> {
    quiet_wayland();
    // Probing opens every adapter; a broken driver must not take the run down.
    let found = std::panic::catch_unwind(Device::enumerate_physical).ok()?;
    let gpu = found.into_iter().next()?;
    let device = gpu.devices.first()?.clone();
    Some(gpu_selected(device, gpu.name))
}

/// The adapter the user named with `CUBECL_WGPU_DEFAULT_DEVICE`, software ones included.
fn named_by_env(value: &str) -> Result<Selected, String> {
    quiet_wayland();
    let valid = value == "Cpu"
        || ["DiscreteGpu(", "IntegratedGpu(", "VirtualGpu(", "Other("]
            .iter()
            .any(|p| value.strip_prefix(p).and_then(|r| r.strip_suffix(')')).is_some_and(|n| n.parse::<usize>().is_ok()));
    if !valid {
        return Err(format!("CUBECL_WGPU_DEFAULT_DEVICE={value}: expected Cpu, DiscreteGpu(N), IntegratedGpu(N), VirtualGpu(N) or Other(N)"));
    }
    let device = Device::wgpu(DeviceKind::DefaultDevice);
    // burn panics when the named adapter is not there; say so in one line instead.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| device.identity());
    std::panic::set_hook(hook);
    let identity = match opened {
        Ok(Some(id)) => id,
        Ok(None) | Err(_) => {
            return Err(format!("CUBECL_WGPU_DEFAULT_DEVICE={value}: wgpu could not open that adapter (adapters found: {})", adapters_found()));
        }
    };
    Ok(gpu_selected(device, identity.name))
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
    let env = std::env::var("CUBECL_WGPU_DEFAULT_DEVICE").ok().filter(|v| !v.is_empty());
    let selected = match choice {
        DeviceChoice::Auto => match real_gpu() {
            Some(g) => g,
            None => {
                tracing::info!("no real GPU adapter found (software adapters such as llvmpipe are not used by device = \"auto\"): running on the CPU");
                flex()
            }
        },
        DeviceChoice::Gpu | DeviceChoice::Wgpu | DeviceChoice::Vulkan => {
            let s = match &env {
                Some(v) => named_by_env(v)?,
                None => real_gpu().ok_or_else(|| {
                    format!(
                        "device = \"{}\": no real GPU adapter found (adapters found: {}); use device = \"auto\" or \"cpu\", or name an adapter with CUBECL_WGPU_DEFAULT_DEVICE (e.g. Cpu for a software one)",
                        format!("{choice:?}").to_lowercase(),
                        adapters_found()
                    )
                })?,
            };
            if choice == DeviceChoice::Vulkan {
                if let Some(a) = s.adapter.as_ref().filter(|a| a.backend != "Vulkan") {
                    return Err(format!("device = \"vulkan\": the adapter {} is reached through {}, not Vulkan; use device = \"wgpu\"", a.name, a.backend));
                }
            }
            if s.adapter.as_ref().is_some_and(Adapter::is_software) {
                tracing::warn!("{} is a software adapter: the GPU kernels run on the CPU, correctly and slowly (chosen with CUBECL_WGPU_DEFAULT_DEVICE)", s.name);
            }
            s
        }
        DeviceChoice::Cuda => cuda()?,
        DeviceChoice::Libtorch => libtorch()?,
        DeviceChoice::Cpu | DeviceChoice::Flex => flex(),
        #[allow(deprecated)]
        DeviceChoice::Ndarray => Selected { device: Device::ndarray(), name: cpu_name("ndarray"), is_gpu: false, adapter: None },
    };
    tracing::info!("device: {}", selected.name);
    Ok(selected)
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Selected, String> {
    let device = Device::cuda(0);
    let name = device.identity().map(|i| i.name).unwrap_or_else(|| "CUDA device 0".into());
    Ok(Selected { device, name: format!("cuda: {name}"), is_gpu: true, adapter: None })
}

#[cfg(feature = "tch")]
fn libtorch() -> Result<Selected, String> {
    Ok(Selected { device: Device::libtorch(), name: cpu_name("libtorch"), is_gpu: false, adapter: None })
}

#[cfg(not(feature = "tch"))]
fn libtorch() -> Result<Selected, String> {
    Err("device = \"libtorch\": this binary was built without LibTorch; rebuild with `--features tch` (see crates/trainer/Cargo.toml), or use device = \"cpu\"".into())
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Selected, String> {
    Err("device = \"cuda\": this binary was built without CUDA; rebuild with `--features cuda` (needs network access at build time), or use device = \"wgpu\" or \"auto\"".into())
}

#[cfg(test)]
mod optional_backends {
    use super::*;

    /// A binary built without an optional backend says which feature builds it, and no panic.
    #[test]
    fn backends_left_out_of_the_build_name_their_feature() {
        #[cfg(not(feature = "tch"))]
        {
            let err = select(DeviceChoice::Libtorch).err().expect("an error without --features tch");
            assert!(err.contains("libtorch") && err.contains("--features tch"), "{err}");
        }
        #[cfg(not(feature = "cuda"))]
        {
            let err = select(DeviceChoice::Cuda).err().expect("an error without --features cuda");
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
