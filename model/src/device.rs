//! Which compute device the models run on.
//!
//! The default, `auto`, is wgpu's default adapter when the machine has a GPU (Vulkan, Metal,
//! DX12), and Burn's pure-Rust multithreaded CPU backend (flex) when the only adapters are CPU
//! ones: on CPUs flex runs this crate's models many times faster than Mesa's lavapipe. Any
//! device can be named instead with `VIDPLAY_DEVICE` or the CLI's `--device`: `wgpu` (the
//! default adapter, lavapipe included), `wgpu:discrete:N`, `wgpu:integrated:N`,
//! `wgpu:virtual:N`, `wgpu:cpu` (lavapipe), or `cpu` (flex).

use burn::prelude::*;
use burn::tensor::wgpu::wgpu;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A GPU through wgpu if there is one, else Burn's CPU backend.
    #[default]
    Auto,
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

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "unknown device '{0}': use auto, wgpu, wgpu:discrete:N, wgpu:integrated:N, wgpu:virtual:N, wgpu:cpu or cpu"
    )]
    Unknown(String),
    #[error(
        "no graphics adapter found ({0}). On a machine without a GPU install Mesa's Vulkan \
         driver (Debian/Ubuntu: `sudo apt-get install mesa-vulkan-drivers`), or pick Burn's \
         pure-Rust CPU backend with --device cpu (VIDPLAY_DEVICE=cpu)"
    )]
    NoAdapter(String),
}

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
            ["wgpu" | "gpu"] => DeviceChoice::Wgpu,
            ["cpu" | "flex"] => DeviceChoice::Cpu,
            ["wgpu", "cpu" | "lavapipe"] => DeviceChoice::WgpuCpu,
            ["wgpu", "discrete", rest @ ..] => DeviceChoice::WgpuDiscrete(index(rest.first())?),
            ["wgpu", "integrated", rest @ ..] => DeviceChoice::WgpuIntegrated(index(rest.first())?),
            ["wgpu", "virtual", rest @ ..] => DeviceChoice::WgpuVirtual(index(rest.first())?),
            _ => return Err(DeviceError::Unknown(s.into())),
        })
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
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
}

/// Lists wgpu adapters as "name (type, backend, driver)".
pub fn list_adapters() -> Vec<String> {
    adapters().iter().map(describe).collect()
}

/// What wgpu can see on this machine, all backends.
fn adapters() -> Vec<wgpu::AdapterInfo> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(|a| a.get_info())
        .collect()
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} ({:?}, {:?}, {} {})",
        info.name, info.device_type, info.backend, info.driver, info.driver_info
    )
}

/// Opens the chosen device. For wgpu choices the adapter must exist; its description is logged.
pub fn open(choice: DeviceChoice) -> Result<OpenedDevice, DeviceError> {
    let choice = match choice {
        DeviceChoice::Auto => {
            if adapters().iter().any(|a| a.device_type != wgpu::DeviceType::Cpu) {
                DeviceChoice::Wgpu
            } else {
                tracing::info!("no GPU adapter: using Burn's CPU backend (--device wgpu:cpu for lavapipe)");
                DeviceChoice::Cpu
            }
        }
        other => other,
    };
    let kind = match choice {
        DeviceChoice::Auto => unreachable!("resolved above"),
        DeviceChoice::Cpu => {
            let description = format!(
                "Burn flex CPU backend ({} threads)",
                std::thread::available_parallelism().map_or(1, |n| n.get())
            );
            tracing::info!(device = %description, "compute device");
            return Ok(OpenedDevice {
                device: Device::flex(),
                description,
                gpu: false,
            });
        }
        DeviceChoice::Wgpu => DeviceKind::DefaultDevice,
        DeviceChoice::WgpuDiscrete(i) => DeviceKind::DiscreteGpu(i),
        DeviceChoice::WgpuIntegrated(i) => DeviceKind::IntegratedGpu(i),
        DeviceChoice::WgpuVirtual(i) => DeviceKind::VirtualGpu(i),
        DeviceChoice::WgpuCpu => DeviceKind::Cpu,
    };
    let infos = adapters();
    if infos.is_empty() {
        return Err(DeviceError::NoAdapter("wgpu enumerated no adapters".into()));
    }
    let wanted = |t: wgpu::DeviceType| match choice {
        DeviceChoice::WgpuDiscrete(_) => t == wgpu::DeviceType::DiscreteGpu,
        DeviceChoice::WgpuIntegrated(_) => t == wgpu::DeviceType::IntegratedGpu,
        DeviceChoice::WgpuVirtual(_) => t == wgpu::DeviceType::VirtualGpu,
        DeviceChoice::WgpuCpu => t == wgpu::DeviceType::Cpu,
        _ => true,
    };
    let nth = match choice {
        DeviceChoice::WgpuDiscrete(i) | DeviceChoice::WgpuIntegrated(i) | DeviceChoice::WgpuVirtual(i) => i,
        _ => 0,
    };
    let matching: Vec<&wgpu::AdapterInfo> = infos.iter().filter(|i| wanted(i.device_type)).collect();
    // wgpu's own default prefers a discrete GPU, then integrated, then others.
    let chosen = match choice {
        DeviceChoice::Wgpu => infos
            .iter()
            .min_by_key(|i| match i.device_type {
                wgpu::DeviceType::DiscreteGpu => 0,
                wgpu::DeviceType::IntegratedGpu => 1,
                wgpu::DeviceType::VirtualGpu => 2,
                wgpu::DeviceType::Other => 3,
                wgpu::DeviceType::Cpu => 4,
            }),
        _ => matching.get(nth).copied(),
    };
    let Some(chosen) = chosen else {
        let all: Vec<String> = infos.iter().map(describe).collect();
        return Err(DeviceError::NoAdapter(format!(
            "none matches {choice}; adapters present: {}",
            all.join("; ")
        )));
    };
    let description = describe(chosen);
    let device = match Device::wgpu_options().device_kind(kind.clone()).init() {
        Ok(device) => device,
        // Already initialised in this process: the lazy constructor returns that runtime.
        Err(burn::tensor::wgpu::WgpuInitError::Registration { .. }) => Device::wgpu(kind),
        Err(e) => return Err(DeviceError::NoAdapter(e.to_string())),
    };
    tracing::info!(device = %description, "compute device");
    Ok(OpenedDevice {
        device,
        description,
        gpu: chosen.device_type != wgpu::DeviceType::Cpu,
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
        assert_eq!(
            "wgpu:discrete:1".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::WgpuDiscrete(1)
        );
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert!("wgpu:discrete:x".parse::<DeviceChoice>().is_err());
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        for c in ["auto", "wgpu", "cpu", "wgpu:cpu", "wgpu:integrated:2"] {
            assert_eq!(c.parse::<DeviceChoice>().unwrap().to_string(), c);
        }
    }
}
