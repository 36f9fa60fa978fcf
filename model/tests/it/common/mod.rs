//! Helpers the parity tests share: the backends to run on, fixture tensors written by the
//! Python scripts, comparisons.
#![allow(dead_code)]

use burn::prelude::*;
use burn::tensor::DType;
use model::device::{self, DeviceChoice};
use model::diffusers::common::weights::Weights;
use std::path::{Path, PathBuf};

/// The backends every check runs on: (label, device). Burn's flex CPU backend (no fusion), then
/// every GPU backend this machine has (CUDA, Vulkan) with Burn's fusion, which has had
/// wrong-result bugs upstream. `VIDPLAY_TEST_DEVICES=cuda:0,vulkan:0` names the devices after flex
/// instead (`wgpu:cpu` adds lavapipe: minutes of shader compilation on a CPU, so not by default).
pub fn devices() -> Vec<(String, Device)> {
    let mut out = vec![("flex (no fusion)".to_string(), cpu())];
    for choice in test_devices() {
        let opened = device::open(choice).unwrap_or_else(|e| panic!("{choice}: {e}"));
        out.push((format!("{choice} (fusion)"), opened.device));
    }
    out
}

fn test_devices() -> Vec<DeviceChoice> {
    match std::env::var("VIDPLAY_TEST_DEVICES") {
        Ok(list) => list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.parse().unwrap_or_else(|e| panic!("VIDPLAY_TEST_DEVICES: {e}")))
            .collect(),
        Err(_) => device::gpu_choices(),
    }
}

/// The fixture folders (`tests/fixtures`), or `VIDPLAY_FIXTURES` for a test binary run away
/// from its source tree (scripts/gpu_check carries them to a GPU machine).
pub fn fixtures_root() -> PathBuf {
    std::env::var_os("VIDPLAY_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

pub fn cpu() -> Device {
    device::open(DeviceChoice::Cpu).unwrap().device
}

pub fn meta(folder: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(folder.join("expected.json")).unwrap()).unwrap()
}

/// `expected.safetensors` of a fixture folder.
pub struct Expected {
    pub weights: Weights,
    pub device: Device,
}

impl Expected {
    pub fn open(folder: &Path, device: &Device) -> Self {
        let weights = Weights::open(&[folder.join("expected.safetensors")], device, DType::F32).unwrap();
        Self { weights, device: device.clone() }
    }
    pub fn has(&self, key: &str) -> bool {
        self.weights.contains(key)
    }
    pub fn values(&self, key: &str) -> Vec<f32> {
        self.weights.read_f32(key).unwrap_or_else(|e| panic!("{e}")).0
    }
    pub fn t<const D: usize>(&self, key: &str) -> Tensor<D> {
        let (v, shape) = self.weights.read_f32(key).unwrap_or_else(|e| panic!("{e}"));
        let shape: [usize; D] = shape.try_into().unwrap_or_else(|s| panic!("{key}: rank of {s:?}"));
        Tensor::from_data(TensorData::new(v, shape), &self.device)
    }
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.cast(DType::F32).into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Max abs difference, asserting the element counts agree.
pub fn max_diff(got: &[f32], want: &[f32], what: &str) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: element count");
    got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

pub fn assert_close<const D: usize>(got: Tensor<D>, want: &[f32], tol: f32, what: &str) -> f32 {
    let d = max_diff(&values(got), want, what);
    assert!(d <= tol, "{what}: max abs difference {d:e} > {tol:e}");
    d
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &dst.join(e.file_name()));
        } else {
            std::fs::copy(&p, dst.join(e.file_name())).unwrap();
        }
    }
}

/// Checks whole fixture pipelines against diffusers: each must reach `min_db` PSNR.
pub fn assert_pipelines(results: Vec<model::diffusers::parity::RunResult>, min_db: f64, what: &str) {
    for r in results {
        eprintln!("{what}: {}: PSNR {:.1} dB, max abs {:e}", r.name, r.psnr_db, r.max_abs);
        assert!(r.psnr_db >= min_db, "{what}: {}: PSNR {:.1} dB < {min_db}", r.name, r.psnr_db);
    }
}
