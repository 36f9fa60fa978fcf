//! Which compute device the models run on.
//!
//! `auto` (the default) takes the fastest backend the machine can start: CUDA on an NVIDIA GPU
//! whose driver loads; otherwise Vulkan (SPIR-V kernels, cooperative matrices where the driver
//! has them) on a discrete, then an integrated GPU; otherwise a GPU that wgpu reaches another
//! way (Metal, DX12); otherwise Burn's pure-Rust multithreaded CPU backend (flex). Mesa's
//! lavapipe (Vulkan on the CPU) is only used when asked for: on CPUs flex runs these models
//! many times faster.
//!
//! Any device can be named with `VIDPLAY_DEVICE` or the CLI's `--device`: `cuda[:N]`,
//! `vulkan[:N]` (the Nth Vulkan GPU, in the order `vidplay devices` lists them), `wgpu` (wgpu's
//! default adapter, on whichever graphics API wgpu settles), `wgpu:discrete:N`,
//! `wgpu:integrated:N`, `wgpu:virtual:N`, `wgpu:cpu` (lavapipe), or `cpu` (flex).
//!
//! The SPIR-V Vulkan backend is in builds with the `vulkan` feature only, the CUDA backend in
//! builds with the `cuda` feature only (it links LLVM): both cost minutes of every build, and
//! `scripts/play` turns them on where the machine has such a GPU. The CUDA driver is
//! loaded when a CUDA device is first asked for, never linked, so the same binary starts on
//! machines without it. A device that cannot start is an error that says why
//! and what to install; `auto` then moves on to the next backend.

use burn::prelude::*;
use burn::tensor::wgpu::{WgpuBackend, wgpu};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The fastest backend that starts: CUDA, then Vulkan, then another GPU API, then `Cpu`.
    #[default]
    Auto,
    /// The Nth CUDA device (the driver's numbering).
    Cuda(usize),
    /// The Nth Vulkan GPU, discrete ones first (SPIR-V kernels).
    Vulkan(usize),
    /// wgpu's default adapter.
    Wgpu,
    WgpuDiscrete(usize),
    WgpuIntegrated(usize),
    WgpuVirtual(usize),
    /// wgpu's CPU adapter (lavapipe).
    WgpuCpu,
    /// Burn's flex backend: pure Rust, multithreaded, no graphics stack needed.
    Cpu,
}

/// The compute backend a device runs on, as metadata and benchmarks name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cuda,
    Vulkan,
    Wgpu,
    Flex,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cuda => "cuda",
            Backend::Vulkan => "vulkan",
            Backend::Wgpu => "wgpu",
            Backend::Flex => "flex",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "unknown device '{0}': use auto, cuda[:N], vulkan[:N], wgpu, wgpu:discrete:N, \
         wgpu:integrated:N, wgpu:virtual:N, wgpu:cpu or cpu (`vidplay devices` lists this machine's)"
    )]
    Unknown(String),
    #[error(
        "no graphics adapter found ({0}). On a machine without a GPU install Mesa's Vulkan \
         driver (Debian/Ubuntu: `sudo apt-get install mesa-vulkan-drivers`), or pick Burn's \
         pure-Rust CPU backend with --device cpu (VIDPLAY_DEVICE=cpu)"
    )]
    NoAdapter(String),
    #[error("CUDA device {index} is not available: {reason}. {CUDA_HINT}")]
    NoCuda { index: usize, reason: String },
    #[error("Vulkan GPU {index} is not available: {reason}. {VULKAN_HINT}")]
    NoVulkan { index: usize, reason: String },
    #[error("{device} failed to start: {reason}. {hint}")]
    Failed { device: DeviceChoice, reason: String, hint: &'static str },
}

const CUDA_HINT: &str = "CUDA needs an NVIDIA GPU and its driver (libcuda.so.1, a driver for CUDA \
    12 or newer; `nvidia-smi` shows it). `vidplay devices` lists the devices that work here; \
    --device vulkan or --device cpu pick another";
const VULKAN_HINT: &str = "Vulkan needs the GPU vendor's Vulkan driver and the loader \
    (Debian/Ubuntu: `sudo apt-get install libvulkan1 mesa-vulkan-drivers`; NVIDIA's driver \
    brings its own). `vidplay devices` lists the devices that work here; --device cpu always does";
const WGPU_HINT: &str = "`vidplay devices` lists the devices that work here; --device cpu always does";

impl FromStr for DeviceChoice {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lowered = s.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lowered.split(':').collect();
        let index = |p: Option<&&str>| -> Result<usize, DeviceError> {
            p.map_or(Ok(0), |v| v.parse().map_err(|_| DeviceError::Unknown(s.into())))
        };
        Ok(match parts.as_slice() {
            ["" | "auto"] => DeviceChoice::Auto,
            ["cuda", rest @ ..] if rest.len() <= 1 => DeviceChoice::Cuda(index(rest.first())?),
            ["vulkan", rest @ ..] if rest.len() <= 1 => DeviceChoice::Vulkan(index(rest.first())?),
            ["wgpu" | "gpu"] => DeviceChoice::Wgpu,
            ["cpu" | "flex"] => DeviceChoice::Cpu,
            ["wgpu", "cpu" | "lavapipe"] => DeviceChoice::WgpuCpu,
            ["wgpu", "discrete", rest @ ..] if rest.len() <= 1 => DeviceChoice::WgpuDiscrete(index(rest.first())?),
            ["wgpu", "integrated", rest @ ..] if rest.len() <= 1 => DeviceChoice::WgpuIntegrated(index(rest.first())?),
            ["wgpu", "virtual", rest @ ..] if rest.len() <= 1 => DeviceChoice::WgpuVirtual(index(rest.first())?),
            _ => return Err(DeviceError::Unknown(s.into())),
        })
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceChoice::Vulkan(i) => write!(f, "vulkan:{i}"),
            DeviceChoice::Wgpu => write!(f, "wgpu"),
            DeviceChoice::WgpuDiscrete(i) => write!(f, "wgpu:discrete:{i}"),
            DeviceChoice::WgpuIntegrated(i) => write!(f, "wgpu:integrated:{i}"),
            DeviceChoice::WgpuVirtual(i) => write!(f, "wgpu:virtual:{i}"),
            DeviceChoice::WgpuCpu => write!(f, "wgpu:cpu"),
            DeviceChoice::Cpu => write!(f, "cpu"),
        }
    }
}

/// An opened device and a human description of it (adapter name, driver, backend).
#[derive(Debug, Clone)]
pub struct OpenedDevice {
    pub device: Device,
    pub description: String,
    /// A real GPU (not lavapipe, not the CPU backend): where f16 pays off.
    pub gpu: bool,
    pub backend: Backend,
    /// What it was opened as (`auto` resolved): `cuda:0`, `vulkan:0`, `cpu`, ...
    pub choice: DeviceChoice,
}

/// One device this machine offers, as `vidplay devices` lists it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// How to ask for it: `--device cuda:0`.
    pub choice: DeviceChoice,
    pub backend: Backend,
    pub name: String,
    /// Memory, driver, compute capability: whatever the driver says.
    pub detail: String,
}

/// Every device this machine offers, in the order `auto` prefers them, and one line per
/// backend that is not available saying why.
pub fn list() -> (Vec<Listed>, Vec<String>) {
    let mut listed = Vec::new();
    let mut missing = Vec::new();
    match cuda_devices() {
        Ok(gpus) if gpus.is_empty() => missing.push("cuda: the driver loads but reports no devices".to_string()),
        Ok(gpus) => listed.extend(gpus.into_iter().enumerate().map(|(i, g)| Listed {
            choice: DeviceChoice::Cuda(i),
            backend: Backend::Cuda,
            detail: format!(
                "{} MiB, compute capability {}.{}, driver CUDA {}.{}",
                g.memory_bytes >> 20,
                g.compute.0,
                g.compute.1,
                g.driver / 1000,
                g.driver % 1000 / 10
            ),
            name: g.name,
        })),
        Err(reason) => missing.push(format!("cuda: {reason}")),
    }
    let vulkan = if cfg!(feature = "vulkan") { vulkan_gpus() } else { Vec::new() };
    if !cfg!(feature = "vulkan") {
        missing.push(format!("vulkan: {NO_VULKAN_BUILD}"));
    } else if vulkan.is_empty() {
        missing.push("vulkan: no Vulkan GPU (a Vulkan driver for the GPU is needed)".into());
    }
    listed.extend(vulkan.iter().enumerate().map(|(i, a)| Listed {
        choice: DeviceChoice::Vulkan(i),
        backend: Backend::Vulkan,
        name: a.name.clone(),
        detail: format!("{:?}, {} {}", a.device_type, a.driver, a.driver_info),
    }));
    let all = adapters();
    let cpu_on_gl = all.iter().any(|a| a.device_type == wgpu::DeviceType::Cpu && a.backend == wgpu::Backend::Gl);
    for a in all {
        let choice = match (a.backend, a.device_type) {
            // A CPU adapter runs through OpenGL (see `open_exact`): list that face only.
            (wgpu::Backend::Gl, wgpu::DeviceType::Cpu) => DeviceChoice::WgpuCpu,
            (_, wgpu::DeviceType::Cpu) if cpu_on_gl => continue,
            (_, wgpu::DeviceType::Cpu) => DeviceChoice::WgpuCpu,
            // Vulkan GPUs are listed above when this build has the SPIR-V backend; wgpu would
            // run them on Vulkan too.
            (wgpu::Backend::Vulkan, _) if cfg!(feature = "vulkan") => continue,
            _ => DeviceChoice::Wgpu,
        };
        listed.push(Listed {
            choice,
            backend: Backend::Wgpu,
            name: a.name.clone(),
            detail: format!("{:?}, {:?}, {} {}", a.device_type, a.backend, a.driver, a.driver_info),
        });
    }
    listed.push(Listed {
        choice: DeviceChoice::Cpu,
        backend: Backend::Flex,
        name: "Burn flex CPU backend".into(),
        detail: format!("{} threads", threads()),
    });
    (listed, missing)
}

/// The GPU devices that are present: every CUDA device, then every Vulkan GPU (or, in a build
/// without the SPIR-V backend, wgpu's default adapter when it is a GPU). A card that both reach
/// appears once per backend.
pub fn gpu_choices() -> Vec<DeviceChoice> {
    let cuda = cuda_devices().map_or(0, |d| d.len());
    let mut out: Vec<DeviceChoice> = (0..cuda).map(DeviceChoice::Cuda).collect();
    if cfg!(feature = "vulkan") {
        out.extend((0..vulkan_gpus().len()).map(DeviceChoice::Vulkan));
    } else if adapters().iter().any(|a| a.device_type != wgpu::DeviceType::Cpu) {
        out.push(DeviceChoice::Wgpu);
    }
    out
}

/// Opens the chosen device and checks that it computes (a tiny sum); `auto` falls through to
/// the next backend when one fails to start, with a warning that says why.
pub fn open(choice: DeviceChoice) -> Result<OpenedDevice, DeviceError> {
    if choice != DeviceChoice::Auto {
        return open_exact(choice);
    }
    let attempt = |candidate: DeviceChoice| match open_exact(candidate) {
        Ok(opened) => Some(opened),
        Err(e) => {
            tracing::warn!(device = %candidate, error = %e, "skipping a device that failed to start");
            None
        }
    };
    // Each backend is looked at only when the ones before it gave nothing.
    match cuda_devices() {
        Ok(gpus) if !gpus.is_empty() => {
            if let Some(opened) = attempt(DeviceChoice::Cuda(0)) {
                return Ok(opened);
            }
        }
        Ok(_) => {}
        Err(reason) => tracing::debug!(%reason, "no CUDA"),
    }
    if cfg!(feature = "vulkan") {
        for i in 0..vulkan_gpus().len() {
            if let Some(opened) = attempt(DeviceChoice::Vulkan(i)) {
                return Ok(opened);
            }
        }
    }
    // Vulkan GPUs were tried above in a build with the SPIR-V backend; otherwise wgpu takes them.
    let tried_vulkan = cfg!(feature = "vulkan");
    if adapters()
        .iter()
        .any(|a| a.device_type != wgpu::DeviceType::Cpu && !(tried_vulkan && a.backend == wgpu::Backend::Vulkan))
        && let Some(opened) = attempt(DeviceChoice::Wgpu)
    {
        return Ok(opened);
    }
    tracing::info!("no GPU started: using Burn's CPU backend (--device wgpu:cpu for lavapipe)");
    open_exact(DeviceChoice::Cpu)
}

fn open_exact(choice: DeviceChoice) -> Result<OpenedDevice, DeviceError> {
    let (device, description, gpu, backend) = match choice {
        DeviceChoice::Auto => unreachable!("open resolves auto"),
        DeviceChoice::Cpu => {
            let description = format!("Burn flex CPU backend ({} threads)", threads());
            (Device::flex(), description, false, Backend::Flex)
        }
        DeviceChoice::Cuda(index) => {
            let gpus = cuda_devices().map_err(|reason| DeviceError::NoCuda { index, reason })?;
            let Some(gpu) = gpus.get(index) else {
                return Err(DeviceError::NoCuda {
                    index,
                    reason: format!("the driver reports {} CUDA device(s)", gpus.len()),
                });
            };
            let description = format!(
                "{} (CUDA, compute capability {}.{}, {} MiB)",
                gpu.name,
                gpu.compute.0,
                gpu.compute.1,
                gpu.memory_bytes >> 20
            );
            let device = cuda_device(index).map_err(|reason| DeviceError::NoCuda { index, reason })?;
            (device, description, true, Backend::Cuda)
        }
        DeviceChoice::Vulkan(index) => {
            if !cfg!(feature = "vulkan") {
                return Err(DeviceError::NoVulkan { index, reason: NO_VULKAN_BUILD.into() });
            }
            let gpus = vulkan_gpus();
            let Some(info) = gpus.get(index) else {
                return Err(DeviceError::NoVulkan {
                    index,
                    reason: format!("this machine has {} Vulkan GPU(s)", gpus.len()),
                });
            };
            // cubecl numbers adapters within their type.
            let nth = gpus[..index].iter().filter(|a| a.device_type == info.device_type).count();
            let kind = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(nth),
                wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(nth),
                _ => DeviceKind::VirtualGpu(nth),
            };
            let device =
                init_wgpu(kind, Some(WgpuBackend::Vulkan)).map_err(|reason| DeviceError::NoVulkan { index, reason })?;
            (device, format!("{} (Vulkan, SPIR-V)", describe(info)), true, Backend::Vulkan)
        }
        DeviceChoice::Wgpu
        | DeviceChoice::WgpuDiscrete(_)
        | DeviceChoice::WgpuIntegrated(_)
        | DeviceChoice::WgpuVirtual(_)
        | DeviceChoice::WgpuCpu => {
            let (description, gpu, kind) = wgpu_adapter(choice)?;
            // A CPU adapter runs WGSL through OpenGL: on Vulkan this build compiles kernels to
            // SPIR-V, which crashes Mesa's lavapipe (22.x) in its shader compiler.
            let api = (!gpu).then_some(WgpuBackend::Gl);
            let device = init_wgpu(kind, api).map_err(|reason| DeviceError::Failed {
                device: choice,
                reason,
                hint: WGPU_HINT,
            })?;
            (device, description, gpu, Backend::Wgpu)
        }
    };
    smoke_test(&device).map_err(|reason| DeviceError::Failed {
        device: choice,
        reason,
        hint: match backend {
            Backend::Cuda => CUDA_HINT,
            Backend::Vulkan => VULKAN_HINT,
            _ => WGPU_HINT,
        },
    })?;
    tracing::info!(device = %description, backend = backend.name(), "compute device");
    Ok(OpenedDevice { device, description, gpu, backend, choice })
}

/// Runs one tiny computation: a device whose runtime cannot start (a missing or too old driver,
/// an unsupported GPU) fails here with the runtime's own message rather than in the middle of a
/// job.
fn smoke_test(device: &Device) -> Result<(), String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let t = Tensor::<1>::from_floats([1.0, 2.0, 3.0, 4.0], device);
        t.sum().into_scalar::<f32>()
    }));
    match outcome {
        Ok(sum) if (sum - 10.0).abs() < 1e-3 => Ok(()),
        Ok(sum) => Err(format!("a test sum came out as {sum}, not 10")),
        Err(panic) => Err(crate::generate::panic_message(&*panic)),
    }
}

fn init_wgpu(kind: DeviceKind, api: Option<WgpuBackend>) -> Result<Device, String> {
    use burn_dispatch::devices::{WgpuDevice, WgpuDeviceKind};
    let mut options = Device::wgpu_options().device_kind(kind.clone());
    if let Some(api) = api {
        options = options.graphics_api(api);
    }
    match options.init() {
        Ok(device) => Ok(device),
        // Already initialised in this process: the lazy constructors return that runtime.
        Err(burn::tensor::wgpu::WgpuInitError::Registration { .. }) => Ok(match api {
            #[cfg(feature = "vulkan")]
            Some(WgpuBackend::Vulkan) => Device::vulkan(kind),
            Some(api) => Device::new(
                WgpuDevice::new(match kind {
                    DeviceKind::Cpu => WgpuDeviceKind::Cpu,
                    _ => WgpuDeviceKind::DefaultDevice,
                })
                .on(api),
            ),
            None => Device::wgpu(kind),
        }),
        Err(e) => Err(e.to_string()),
    }
}

/// The wgpu adapter a `wgpu*` choice names: its description, whether it is a GPU, and the kind
/// to open it by.
fn wgpu_adapter(choice: DeviceChoice) -> Result<(String, bool, DeviceKind), DeviceError> {
    let infos = adapters();
    if infos.is_empty() {
        return Err(DeviceError::NoAdapter("wgpu enumerated no adapters".into()));
    }
    let (wanted, nth, kind): (Option<wgpu::DeviceType>, usize, DeviceKind) = match choice {
        DeviceChoice::WgpuDiscrete(i) => (Some(wgpu::DeviceType::DiscreteGpu), i, DeviceKind::DiscreteGpu(i)),
        DeviceChoice::WgpuIntegrated(i) => (Some(wgpu::DeviceType::IntegratedGpu), i, DeviceKind::IntegratedGpu(i)),
        DeviceChoice::WgpuVirtual(i) => (Some(wgpu::DeviceType::VirtualGpu), i, DeviceKind::VirtualGpu(i)),
        DeviceChoice::WgpuCpu => (Some(wgpu::DeviceType::Cpu), 0, DeviceKind::Cpu),
        _ => (None, 0, DeviceKind::DefaultDevice),
    };
    let chosen = match wanted {
        // The OpenGL face of a CPU adapter is the one that runs (see `open_exact`).
        Some(wgpu::DeviceType::Cpu) => infos
            .iter()
            .filter(|i| i.device_type == wgpu::DeviceType::Cpu)
            .min_by_key(|i| i.backend != wgpu::Backend::Gl),
        Some(t) => infos.iter().filter(|i| i.device_type == t).nth(nth),
        // wgpu's own default prefers a discrete GPU, then integrated, then others.
        None => infos.iter().min_by_key(|i| {
            let cpu = i.device_type == wgpu::DeviceType::Cpu;
            (type_rank(i.device_type), (i.backend == wgpu::Backend::Gl) != cpu)
        }),
    };
    let Some(chosen) = chosen else {
        let all: Vec<String> = infos.iter().map(describe).collect();
        return Err(DeviceError::NoAdapter(format!("none matches {choice}; adapters present: {}", all.join("; "))));
    };
    let gpu = chosen.device_type != wgpu::DeviceType::Cpu;
    // wgpu's default on a machine whose only adapters are CPU ones is that CPU adapter.
    let kind = if gpu { kind } else { DeviceKind::Cpu };
    Ok((describe(chosen), gpu, kind))
}

fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// What wgpu can see on this machine, all backends.
fn adapters() -> Vec<wgpu::AdapterInfo> {
    adapters_on(wgpu::Backends::all())
}

fn adapters_on(backends: wgpu::Backends) -> Vec<wgpu::AdapterInfo> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.enumerate_adapters(backends)).iter().map(|a| a.get_info()).collect()
}

/// The machine's Vulkan GPUs (discrete, integrated, virtual; not CPU adapters), discrete first,
/// in wgpu's order within a type.
fn vulkan_gpus() -> Vec<wgpu::AdapterInfo> {
    let mut gpus: Vec<wgpu::AdapterInfo> =
        adapters_on(wgpu::Backends::VULKAN).into_iter().filter(|a| type_rank(a.device_type) <= 2).collect();
    gpus.sort_by_key(|a| type_rank(a.device_type));
    gpus
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?}, {} {})", info.name, info.device_type, info.backend, info.driver, info.driver_info)
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A CUDA device as the driver describes it.
#[derive(Debug, Clone)]
struct CudaGpu {
    name: String,
    memory_bytes: usize,
    compute: (i32, i32),
    /// The driver's CUDA version, e.g. 12080.
    driver: i32,
}

/// The oldest driver the CUDA backend runs on (CUDA 12.0, as `cuDriverGetVersion` reports it).
const MIN_CUDA_DRIVER: i32 = 12000;

/// The memory of a device in bytes, where the driver tells it (CUDA devices); `None` elsewhere.
pub fn memory_bytes(choice: DeviceChoice) -> Option<u64> {
    match choice {
        DeviceChoice::Cuda(i) => cuda_devices().ok()?.get(i).map(|g| g.memory_bytes as u64),
        _ => None,
    }
}

/// How a user gets the SPIR-V Vulkan backend into a build that lacks it.
const NO_VULKAN_BUILD: &str = "this vidplay was built without its SPIR-V Vulkan backend (cooperative matrices): \
    `--device wgpu` runs WGSL kernels on the same GPU; build with `--features vulkan` for SPIR-V \
    (scripts/play does so where a GPU with a kernel graphics driver is present)";

/// How a user gets the CUDA backend into a build that lacks it.
const NO_CUDA_BUILD: &str = "this vidplay was built without its CUDA backend: build it with \
    `cargo build --release --features cuda` (scripts/play does so when an NVIDIA driver is present)";

/// The CUDA devices this build can run on, or why there are none: a build without the `cuda`
/// feature runs on none, and says so when the driver reports GPUs.
fn cuda_devices() -> Result<Vec<CudaGpu>, String> {
    let gpus = cuda_driver_devices()?;
    if cfg!(feature = "cuda") || gpus.is_empty() {
        return Ok(gpus);
    }
    let names: Vec<&str> = gpus.iter().map(|g| g.name.as_str()).collect();
    Err(format!("the driver reports {} ({}), but {NO_CUDA_BUILD}", names.len(), names.join(", ")))
}

#[cfg(feature = "cuda")]
fn cuda_device(index: usize) -> Result<Device, String> {
    Ok(Device::cuda(index))
}

/// Never reached in practice: `cuda_devices` lists nothing in such a build.
#[cfg(not(feature = "cuda"))]
fn cuda_device(_index: usize) -> Result<Device, String> {
    Err(NO_CUDA_BUILD.to_string())
}

/// The machine's CUDA devices as the driver reports them, or why there are none. Loads the
/// driver library if present; never panics (the driver bindings panic on a missing library or
/// symbol).
fn cuda_driver_devices() -> Result<Vec<CudaGpu>, String> {
    use cudarc::driver::sys;
    // SAFETY: dlopen of the driver library by its well-known names; nothing is called yet.
    if !unsafe { sys::is_culib_present() } {
        return Err("the NVIDIA driver library (libcuda.so.1) was not found".into());
    }
    // On a thread with a deadline: a driver whose GPU is in a bad state can block in `cuInit`,
    // and `auto` (the server's start) must not wait for it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cuda_probe());
    });
    rx.recv_timeout(CUDA_PROBE_DEADLINE)
        .unwrap_or_else(|_| Err(format!("the NVIDIA driver did not answer within {} s", CUDA_PROBE_DEADLINE.as_secs())))
}

/// How long `auto` waits for the CUDA driver to describe its devices.
const CUDA_PROBE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

fn cuda_probe() -> Result<Vec<CudaGpu>, String> {
    use cudarc::driver::{result, sys};
    let probe = catch_unwind(|| -> Result<Vec<CudaGpu>, String> {
        result::init().map_err(|e| format!("the driver did not initialise ({e})"))?;
        let mut driver = 0;
        // SAFETY: writes one int.
        unsafe { sys::cuDriverGetVersion(&mut driver) }.result().map_err(|e| e.to_string())?;
        if driver < MIN_CUDA_DRIVER {
            return Err(format!(
                "the driver supports CUDA {}.{}; vidplay's CUDA backend needs 12.0 or newer",
                driver / 1000,
                driver % 1000 / 10
            ));
        }
        let count = result::device::get_count().map_err(|e| e.to_string())?;
        (0..count)
            .map(|i| {
                let dev = result::device::get(i).map_err(|e| e.to_string())?;
                let attr = |a| {
                    // SAFETY: `dev` came from the driver just above.
                    unsafe { result::device::get_attribute(dev, a) }.map_err(|e| e.to_string())
                };
                Ok(CudaGpu {
                    name: result::device::get_name(dev).map_err(|e| e.to_string())?,
                    // SAFETY: as above.
                    memory_bytes: unsafe { result::device::total_mem(dev) }.map_err(|e| e.to_string())?,
                    compute: (
                        attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                        attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
                    ),
                    driver,
                })
            })
            .collect()
    });
    probe.unwrap_or_else(|panic| {
        Err(format!("the driver library is unusable ({})", crate::generate::panic_message(&*panic)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_choices() {
        assert_eq!("wgpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Wgpu);
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!("wgpu:cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::WgpuCpu);
        assert_eq!("wgpu:discrete:1".parse::<DeviceChoice>().unwrap(), DeviceChoice::WgpuDiscrete(1));
        assert_eq!("cuda".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(0));
        assert_eq!("CUDA:1".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(1));
        assert_eq!("vulkan".parse::<DeviceChoice>().unwrap(), DeviceChoice::Vulkan(0));
        assert_eq!("vulkan:2".parse::<DeviceChoice>().unwrap(), DeviceChoice::Vulkan(2));
        for bad in ["tpu", "wgpu:discrete:x", "cuda:x", "cuda:0:1", "vulkan:-1", "wgpu:discrete:0:0"] {
            assert!(bad.parse::<DeviceChoice>().is_err(), "{bad}");
        }
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        for c in ["auto", "cuda:0", "vulkan:1", "wgpu", "cpu", "wgpu:cpu", "wgpu:integrated:2"] {
            assert_eq!(c.parse::<DeviceChoice>().unwrap().to_string(), c);
        }
    }

    #[test]
    fn a_missing_cuda_device_is_a_clear_error() {
        // Past the last device on any machine (none on one without NVIDIA's driver).
        let err = open(DeviceChoice::Cuda(4096)).unwrap_err().to_string();
        assert!(err.contains("CUDA device 4096 is not available"), "{err}");
        assert!(err.contains("NVIDIA"), "{err}");
        let err = open(DeviceChoice::Vulkan(4096)).unwrap_err().to_string();
        assert!(err.contains("Vulkan GPU 4096 is not available"), "{err}");
    }

    #[test]
    fn the_cpu_backend_is_always_listed_and_opens() {
        let (listed, _) = list();
        assert_eq!(listed.last().map(|l| l.choice), Some(DeviceChoice::Cpu));
        let opened = open(DeviceChoice::Cpu).unwrap();
        assert_eq!(opened.backend, Backend::Flex);
        assert!(!opened.gpu);
    }
}
