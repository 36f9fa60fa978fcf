//! GPU memory held by Burn's allocator, for result metadata and benchmarks.
//!
//! Burn's memory pools report what they hold now (`Device::memory_pool_usage`) but keep no peak
//! that can be reset per job, so a run is sampled: when it starts, after every step, and at the
//! end. Pools mostly keep their pages between steps, so memory taken inside a step is usually
//! still held when the sample comes; pages freed within the step are missed. The figure is the
//! allocator's reserved bytes (weights, activations and cached free pages), the counterpart of
//! PyTorch's reserved memory.

use burn::prelude::Device;

const MIB: f64 = (1u64 << 20) as f64;

/// The peak of one run's GPU memory. `None` on backends without memory pools (Burn's CPU
/// backend, whose memory is the process's own and shows in the host figure).
#[derive(Debug)]
pub struct GpuMemoryMeter {
    device: Device,
    peak: Option<u64>,
}

impl GpuMemoryMeter {
    pub fn start(device: &Device) -> Self {
        let mut meter = Self { device: device.clone(), peak: None };
        meter.sample();
        meter
    }

    /// Reads what the allocator holds now.
    pub fn sample(&mut self) {
        if let Some(usage) = self.device.memory_pool_usage() {
            self.peak = Some(self.peak.unwrap_or(0).max(usage.bytes_reserved));
        }
    }

    /// The peak so far, in MiB, after a last sample.
    pub fn peak_mib(&mut self) -> Option<f64> {
        self.sample();
        self.peak.map(|bytes| bytes as f64 / MIB)
    }
}
