//! How much memory a device can still give, for choosing how much work to do at once (the SVD
//! VAE's decode chunk).
//!
//! - CUDA: the driver's free memory plus what Burn's pool holds without using it (pages it keeps
//!   for reuse are free to the next allocation, but not to the driver).
//! - Burn's CPU backend: the host's available memory (`MemAvailable`), no more than the room left
//!   under the memory limits of the process's cgroup and its ancestors (a container, a systemd
//!   `MemoryMax`), cgroup v2 or v1.
//! - wgpu and Vulkan: unknown (`None`): WebGPU has no such query, and this code does not read
//!   Vulkan's memory-budget extension.

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
        DeviceChoice::Cpu => {
            let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            host_available(Path::new("/proc/meminfo"), &cgroups, Path::new("/sys/fs/cgroup"))
        }
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

/// `MemAvailable` of a meminfo file, capped by [`cgroup_room`].
fn host_available(meminfo: &Path, cgroups: &str, cgroup_root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(meminfo).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    let available = kib * 1024;
    Some(cgroup_room(cgroups, cgroup_root).map_or(available, |room| available.min(room)))
}

/// The least room (limit minus usage) under the memory limits of the cgroup that
/// `/proc/self/cgroup` (`cgroups`) names and of its ancestors, below `root` (the cgroup mount):
/// v2's `memory.max` and `memory.current`, v1's `memory.limit_in_bytes` and
/// `memory.usage_in_bytes` in the memory hierarchy. `None` when no level sets a limit ("max",
/// or v1's near-2^63 "unlimited") or none can be read (a path outside this namespace's mount).
fn cgroup_room(cgroups: &str, root: &Path) -> Option<u64> {
    let mut levels: Vec<(std::path::PathBuf, &str, &str)> = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (base, files) = match controllers {
            "" => (root.to_path_buf(), ("memory.max", "memory.current")),
            c if c.split(',').any(|c| c == "memory") => {
                (root.join("memory"), ("memory.limit_in_bytes", "memory.usage_in_bytes"))
            }
            _ => continue,
        };
        let mut dir = Path::new(path.trim_start_matches('/'));
        loop {
            levels.push((base.join(dir), files.0, files.1));
            match dir.parent() {
                Some(parent) => dir = parent,
                None => break,
            }
        }
    }
    let read = |p: &Path| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    levels
        .iter()
        .filter_map(|(dir, max, current)| {
            let limit = read(&dir.join(max)).filter(|&l| l < 1 << 62)?;
            Some(limit.saturating_sub(read(&dir.join(current)).unwrap_or(0)))
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_memory_is_memavailable_under_the_cgroup_limits() {
        let dir = std::env::temp_dir().join(format!("vidplay-free-memory-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let write = |path: &str, text: &str| {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("meminfo", "MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n");
        let (meminfo, root) = (dir.join("meminfo"), dir.join("cg"));
        let available = 20_000_000 * 1024;
        let v2 = "0::/app/job\n";
        assert_eq!(host_available(&meminfo, v2, &root), Some(available), "nothing readable: no limit");
        // v2: "max" is no limit; the least room over the cgroup and its ancestors counts.
        write("cg/app/job/memory.max", "max\n");
        write("cg/app/job/memory.current", "1000\n");
        assert_eq!(host_available(&meminfo, v2, &root), Some(available));
        write("cg/app/memory.max", "8589934592\n");
        write("cg/app/memory.current", "2147483648\n");
        assert_eq!(host_available(&meminfo, v2, &root), Some(6 << 30));
        write("cg/app/job/memory.max", "3221225472\n");
        assert_eq!(host_available(&meminfo, v2, &root), Some((3 << 30) - 1000));
        // v1: the memory hierarchy; its "unlimited" is a number near 2^63.
        let v1 = "4:memory:/box/one\n3:cpuset:/\n";
        write("cg/memory/box/one/memory.limit_in_bytes", "9223372036854771712\n");
        write("cg/memory/box/one/memory.usage_in_bytes", "5\n");
        assert_eq!(host_available(&meminfo, v1, &root), Some(available));
        write("cg/memory/box/memory.limit_in_bytes", "4294967296\n");
        write("cg/memory/box/memory.usage_in_bytes", "1073741824\n");
        assert_eq!(host_available(&meminfo, v1, &root), Some(3 << 30));
        write("meminfo", "MemTotal: 1 kB\n");
        assert_eq!(host_available(&meminfo, v1, &root), None, "no MemAvailable: unknown");
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
