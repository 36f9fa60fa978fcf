//! How much memory a device can still give, for choosing how much work to do at once (the SVD
//! VAE's decode chunk).
//!
//! - CUDA: the driver's free memory plus what Burn's pool holds without using it (pages it keeps
//!   for reuse are free to the next allocation, but not to the driver).
//! - Burn's CPU backend: the host's available memory (`MemAvailable`), no more than the room left
//!   under the process's cgroup limit, where one is set (a container).
//! - wgpu and Vulkan: unknown (`None`); neither API reports free memory.

use crate::device::DeviceChoice;
use burn::prelude::Device;
use std::path::Path;

/// Bytes a new allocation on `device` (opened as `choice`) could get now, where that is known.
pub fn free_bytes(choice: DeviceChoice, device: &Device) -> Option<u64> {
    match choice {
        DeviceChoice::Cuda(index) => {
            let slack = device.memory_pool_usage().map_or(0, |u| u.bytes_reserved.saturating_sub(u.bytes_in_use));
            cuda_free(index).map(|free| free + slack)
        }
        DeviceChoice::Cpu => host_available(Path::new("/proc/meminfo"), Path::new("/sys/fs/cgroup")),
        _ => None,
    }
}

/// The driver's free memory on CUDA device `index`, in the primary context (the one Burn's CUDA
/// runtime computes in, so the answer counts what it holds). Never panics: the driver bindings
/// panic on a missing library or symbol.
fn cuda_free(index: usize) -> Option<u64> {
    use cudarc::driver::result;
    let ordinal = i32::try_from(index).ok()?;
    let query = std::panic::catch_unwind(|| -> Option<u64> {
        result::init().ok()?;
        let dev = result::device::get(ordinal).ok()?;
        // SAFETY: `dev` came from the driver just above; retaining the primary context only
        // counts one more reference to it, given back below.
        let ctx = unsafe { result::primary_ctx::retain(dev) }.ok()?;
        // SAFETY: `ctx` is the live primary context retained above.
        let free = unsafe { result::ctx::set_current(ctx) }.ok().and_then(|()| result::mem_get_info().ok());
        // SAFETY: releases the reference taken above; Burn's runtime holds its own.
        let _ = unsafe { result::primary_ctx::release(dev) };
        free.map(|(free, _total)| free as u64)
    });
    query.ok().flatten()
}

/// `MemAvailable` of a meminfo file, capped by the room under a cgroup v2 limit (`memory.max`
/// minus `memory.current` in `cgroup`, when both are there and a limit is set).
fn host_available(meminfo: &Path, cgroup: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(meminfo).ok()?;
    let kib: u64 =
        text.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?.trim().strip_suffix("kB")?.trim().parse().ok()?;
    let available = kib * 1024;
    let read = |name: &str| -> Option<u64> { std::fs::read_to_string(cgroup.join(name)).ok()?.trim().parse().ok() };
    Some(match (read("memory.max"), read("memory.current")) {
        (Some(max), Some(current)) => available.min(max.saturating_sub(current)),
        _ => available,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_memory_is_memavailable_under_the_cgroup_limit() {
        let dir = std::env::temp_dir().join(format!("vidplay-free-memory-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("cg")).unwrap();
        let meminfo = dir.join("meminfo");
        std::fs::write(&meminfo, "MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n")
            .unwrap();
        assert_eq!(host_available(&meminfo, &dir.join("none")), Some(20_000_000 * 1024));
        // "max" (no limit) does not parse as a number: MemAvailable stands.
        std::fs::write(dir.join("cg/memory.max"), "max\n").unwrap();
        std::fs::write(dir.join("cg/memory.current"), "1000\n").unwrap();
        assert_eq!(host_available(&meminfo, &dir.join("cg")), Some(20_000_000 * 1024));
        std::fs::write(dir.join("cg/memory.max"), "8589934592\n").unwrap();
        std::fs::write(dir.join("cg/memory.current"), "2147483648\n").unwrap();
        assert_eq!(host_available(&meminfo, &dir.join("cg")), Some(6 << 30));
        std::fs::write(&meminfo, "MemTotal: 1 kB\n").unwrap();
        assert_eq!(host_available(&meminfo, &dir.join("cg")), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn this_machine_reports_host_memory_and_no_wgpu_figure() {
        let device = crate::device::open(DeviceChoice::Cpu).unwrap().device;
        let free = free_bytes(DeviceChoice::Cpu, &device).expect("Linux reports MemAvailable");
        assert!(free > 0);
        assert_eq!(free_bytes(DeviceChoice::Wgpu, &device), None);
    }
}
