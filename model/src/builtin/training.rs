//! Training the built-in model: deterministic toy-world batches, the flow-matching loss, and
//! resumable checkpoints.
//!
//! Batch `k` of a run depends only on the data seed and `k`, so a resumed run sees exactly the
//! data an uninterrupted one would have.

use crate::builtin::net::{Conditioning, Net, NetConfig};
use crate::builtin::prompt::{Prompt, multi_hot};
use crate::builtin::vocab::NUM_TOKENS;
use crate::builtin::world::Scene;
use crate::rng::{Rng, mix};
#[cfg(feature = "train")]
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
#[cfg(feature = "train")]
use burn::store::{BurnpackStore, ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One training batch on the CPU, ready to become tensors.
pub struct HostBatch {
    pub batch: usize,
    /// Clips in [-1, 1], `[batch, frames, 3, size, size]` flattened.
    pub clips: Vec<f32>,
    pub tokens: Vec<f32>,
    pub motion: Vec<f32>,
    pub images: Vec<f32>,
    pub image_mask: Vec<f32>,
    pub noise: Vec<f32>,
    /// Loss weight per pixel, `[batch, frames, 1, size, size]`: 1, plus [`SUBJECT_WEIGHT`]
    /// times the subject's coverage.
    pub weights: Vec<f32>,
    /// Flow time per sample in (0, 1).
    pub times: Vec<f32>,
    /// Subject layout per frame, `[batch, frames, size, size]` (zeros when not given).
    pub layouts: Vec<f32>,
}

/// Chance that a clip with a subject and a prompt is given its layout; the rest train the
/// network to draw without one (image-to-video, whose subject nobody has planned, mostly).
pub const LAYOUT_PROB: f32 = 0.85;
pub const LAYOUT_PROB_WITH_IMAGE: f32 = 0.3;

/// Extra loss weight on the subject's pixels. The subject covers about 5% of a frame, so with
/// a plain pixel loss a model that draws only the backdrop already scores well. A weight that
/// depends on the data biases the optimum, though: where the subject may be, its colour is
/// over-predicted, and samples grow oversized blobs (weight 8, used for steps 1,900-3,100, made
/// them about four times too large). A small weight keeps the emphasis and little of the bias.
pub const SUBJECT_WEIGHT: f32 = 2.0;

/// Weight of the temporal term: the squared error of frame-to-frame differences of the
/// prediction. It is a linear function of the prediction, so, unlike a data-dependent weight,
/// it leaves the optimum (the expected clean clip) unbiased while putting the loss where
/// things move: the subject's motion, camera pans, falling weather.
pub const TEMPORAL_WEIGHT: f32 = 4.0;

/// Drops parts of a scene's prompt the way users leave them out, and sometimes all of it, so
/// partial prompts work and classifier-free guidance has an unconditional model.
fn training_prompt(scene: &Scene, rng: &mut Rng) -> Prompt {
    let mut p = scene.prompt();
    if rng.chance(0.1) {
        return Prompt::default();
    }
    if rng.chance(0.08) {
        p.subject = None;
    }
    if rng.chance(0.08) {
        p.color = None;
    }
    if rng.chance(0.08) {
        p.action = None;
    }
    if rng.chance(0.08) {
        p.setting = None;
    }
    if p.camera == Some(crate::builtin::vocab::Camera::Static) && rng.chance(0.5) {
        p.camera = None;
    }
    p
}

pub fn host_batch(data_seed: u64, step: u64, batch: usize, cfg: &NetConfig) -> HostBatch {
    let (t, s) = (cfg.frames, cfg.size);
    let frame = 3 * s * s;
    let mut out = HostBatch {
        batch,
        clips: Vec::with_capacity(batch * t * frame),
        tokens: Vec::with_capacity(batch * NUM_TOKENS),
        motion: Vec::with_capacity(batch),
        images: Vec::with_capacity(batch * frame),
        image_mask: Vec::with_capacity(batch),
        noise: Vec::new(),
        weights: Vec::with_capacity(batch * t * s * s),
        times: Vec::with_capacity(batch),
        layouts: Vec::with_capacity(batch * t * s * s),
    };
    let mut noise_rng = Rng::new(mix(data_seed ^ 0xA5A5) ^ mix(step));
    for i in 0..batch {
        let mut rng = Rng::new(mix(data_seed) ^ mix(step.wrapping_mul(1_000_003) + i as u64));
        let with_image = rng.chance(0.5);
        let scene = Scene::sample(&mut rng, &Prompt::default(), if with_image { 0.35 } else { 0.0 });
        let (clip, coverage) = scene.render_with_coverage(t, s);
        let clip: Vec<f32> = clip.iter().map(|v| v * 2.0 - 1.0).collect();
        out.weights.extend(coverage.iter().map(|c| 1.0 + SUBJECT_WEIGHT * c));
        if with_image {
            out.images.extend_from_slice(&clip[..frame]);
        } else {
            out.images.extend(std::iter::repeat_n(0.0, frame));
        }
        out.image_mask.push(if with_image { 1.0 } else { 0.0 });
        out.clips.extend(clip);
        let prompt = training_prompt(&scene, &mut rng);
        out.tokens.extend(multi_hot(&prompt));
        let p = if with_image { LAYOUT_PROB_WITH_IMAGE } else { LAYOUT_PROB };
        if !prompt.is_empty() && rng.chance(p) {
            out.layouts.extend(scene.layout(t, s));
        } else {
            out.layouts.extend(std::iter::repeat_n(0.0, t * s * s));
        }
        out.motion.push(scene.motion);
        // Flow time: half logit-normal (the informative middle), half uniform.
        let time = if rng.chance(0.5) { 1.0 / (1.0 + (-rng.normal()).exp()) } else { rng.uniform() };
        out.times.push(time.clamp(1e-4, 1.0 - 1e-4));
    }
    out.noise = noise_rng.normals(batch * t * frame);
    out
}

/// The loss of `net` on one batch: squared error of the predicted clean clip, weighted per
/// pixel (see [`SUBJECT_WEIGHT`]) and normalised by the mean weight, plus the temporal term
/// (see [`TEMPORAL_WEIGHT`]).
pub fn loss(net: &Net, hb: &HostBatch, cfg: &NetConfig, device: &Device) -> Tensor<1> {
    let (b, t, s) = (hb.batch, cfg.frames, cfg.size);
    let shape5 = [b, t, 3, s, s];
    let data = Tensor::<5>::from_data(TensorData::new(hb.clips.clone(), shape5), device);
    let noise = Tensor::<5>::from_data(TensorData::new(hb.noise.clone(), shape5), device);
    let times = Tensor::<1>::from_data(TensorData::new(hb.times.clone(), [b]), device);
    let s5 = times.clone().reshape([b, 1, 1, 1, 1]);
    let x = noise * (s5.clone().neg() + 1.0) + data.clone() * s5;
    let cond = Conditioning::from_host(
        hb.tokens.clone(),
        hb.motion.clone(),
        hb.images.clone(),
        hb.image_mask.clone(),
        hb.layouts.clone(),
        s,
        device,
    );
    let predicted = net.forward(x, times, &cond);
    let weights = Tensor::<5>::from_data(TensorData::new(hb.weights.clone(), [b, t, 1, s, s]), device);
    let norm = hb.weights.iter().sum::<f32>() / hb.weights.len() as f32;
    let error = predicted - data;
    let temporal = error.clone().slice([0..b, 1..t]) - error.clone().slice([0..b, 0..t - 1]);
    (error.powf_scalar(2.0) * weights).mean() / norm + temporal.powf_scalar(2.0).mean() * TEMPORAL_WEIGHT
}

/// What a checkpoint directory records besides the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    pub config: NetConfig,
    pub data_seed: u64,
    pub batch: usize,
    pub step: u64,
    /// (step, mean loss over the logging window, seconds per step).
    pub log: Vec<(u64, f32, f32)>,
    /// Wall-clock seconds of training so far, across resumes.
    pub seconds: f64,
    pub device: String,
}

#[cfg(feature = "train")]
pub struct Trainer {
    pub net: Net,
    pub optim: ModuleOptimizer,
    pub state: TrainState,
    pub device: Device,
    pub lr: f64,
}

#[cfg(feature = "train")]
impl Trainer {
    /// Resumes from `dir` when it holds a checkpoint; otherwise starts fresh, from random
    /// weights or from exported inference weights `init_from` (with a new optimizer state).
    pub fn open(
        dir: &Path,
        fresh: TrainState,
        init_from: Option<&Path>,
        lr: f64,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let device = device.clone().autodiff();
        let state_path = dir.join("state.json");
        let optim_config = AdamConfig::new()
            .with_beta_2(0.99)
            .with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(1.0)));
        if state_path.exists() {
            let state: TrainState = serde_json::from_slice(&std::fs::read(&state_path)?)?;
            let mut net = state.config.init(&device);
            let result = net
                .load_from(&mut BurnpackStore::from_file(dir.join("model.bpk")))
                .map_err(|e| anyhow::anyhow!("loading {}: {e}", dir.join("model.bpk").display()))?;
            anyhow::ensure!(
                result.missing.is_empty() && result.unused.is_empty(),
                "checkpoint does not match the network: missing {:?}, unused {:?}",
                result.missing,
                result.unused
            );
            let optim = optim_config
                .init()
                .load(dir.join("optim.bpk"))
                .map_err(|e| anyhow::anyhow!("loading optimizer state: {e:?}"))?;
            tracing::info!(step = state.step, "resumed from {}", dir.display());
            Ok(Self { net, optim, state, device, lr })
        } else {
            std::fs::create_dir_all(dir)?;
            device.seed(fresh.data_seed);
            let net = match init_from {
                Some(weights) => {
                    tracing::info!(step = fresh.step, "initialising from {}", weights.display());
                    // Weights exported before the coordinate input or the layout input existed still load.
                    crate::builtin::weights::load_net_with_new_layers(
                        SafetensorsStore::from_file(weights),
                        &fresh.config,
                        &weights.display().to_string(),
                        &device,
                        &["coord_in", "layout_in"],
                    )?
                }
                None => fresh.config.init(&device),
            };
            Ok(Self { net, optim: optim_config.init(), state: fresh, device, lr })
        }
    }

    /// One optimisation step; returns the loss.
    pub fn step(&mut self) -> f32 {
        let hb = host_batch(self.state.data_seed, self.state.step, self.state.batch, &self.state.config);
        let loss = loss(&self.net, &hb, &self.state.config, &self.device);
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &self.net);
        // Modules share their tensors on clone; the optimizer returns the updated one.
        self.net = self.optim.step(self.lr, self.net.clone(), grads);
        self.state.step += 1;
        value
    }

    /// Writes weights, optimizer state and the run state, each atomically.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let tmp = |name: &str| dir.join(format!("{name}.tmp"));
        self.net
            .save_into(&mut BurnpackStore::from_file(tmp("model.bpk")).auto_extension(false).overwrite(true))
            .map_err(|e| anyhow::anyhow!("saving model: {e}"))?;
        self.optim.save(tmp("optim.bpk")).map_err(|e| anyhow::anyhow!("saving optimizer: {e:?}"))?;
        std::fs::write(tmp("state.json"), serde_json::to_vec_pretty(&self.state)?)?;
        for name in ["model.bpk", "optim.bpk", "state.json"] {
            std::fs::rename(tmp(name), dir.join(name))?;
        }
        Ok(())
    }

    /// Exports inference weights: f16 safetensors plus the network config as JSON.
    pub fn export(&self, weights: &Path) -> anyhow::Result<PathBuf> {
        export(&self.net.valid(), &self.state, weights)
    }
}

pub fn export(net: &Net, state: &TrainState, weights: &Path) -> anyhow::Result<PathBuf> {
    crate::builtin::checkpoint::export_f16(net, weights, state.step, &state.config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_deterministic_per_step() {
        let cfg = NetConfig { frames: 4, size: 16, channels: [8, 8, 8], cond_dim: 8 };
        let a = host_batch(1, 5, 3, &cfg);
        let b = host_batch(1, 5, 3, &cfg);
        let c = host_batch(1, 6, 3, &cfg);
        assert_eq!(a.clips, b.clips);
        assert_eq!(a.noise, b.noise);
        assert_eq!(a.tokens, b.tokens);
        assert_ne!(a.clips, c.clips);
        assert_eq!(a.clips.len(), 3 * 4 * 3 * 16 * 16);
        assert!(a.clips.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert_eq!(a.weights.len(), 3 * 4 * 16 * 16);
        assert!(a.weights.iter().all(|w| (1.0..=1.0 + SUBJECT_WEIGHT).contains(w)));
        assert!(a.weights.iter().any(|w| *w > 1.0), "some subject pixels are weighted up");
    }
}
