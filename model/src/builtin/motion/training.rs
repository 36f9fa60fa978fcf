//! Training the motion model on the toy world: exact motion targets (see [`super::truth`]),
//! deterministic batches (batch `k` depends only on the data seed and `k`), and resumable,
//! atomically written checkpoints.

use super::net::{MotionConfig, MotionModel, PER_FRAME};
use super::truth::{MotionTruth, WEATHER_UNIT, particle_map, tau, weather_layer};
use crate::builtin::prompt::{Prompt, multi_hot};
use crate::builtin::vocab::{Camera, NUM_TOKENS};
use crate::builtin::world::Scene;
use crate::rng::{Rng, mix};
#[cfg(feature = "train")]
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
#[cfg(feature = "train")]
use burn::store::{BurnpackStore, ModuleSnapshot};
use serde::{Deserialize, Serialize};
#[cfg(feature = "train")]
use std::path::{Path, PathBuf};

/// Loss weight of the motion fields (screen units: 0.01 is a third of a pixel at 32 x 32).
pub const FLOW_WEIGHT: f32 = 20.0;
/// Extra weight of the motion fields on the subject's pixels: it covers a few percent of a
/// frame, so a network that moves only the camera already scores well (it did, to step 2,400:
/// subjects barely moved).
pub const SUBJECT_WEIGHT: f32 = 4.0;
/// Clips per batch whose weather layer is trained (one random moment each).
pub const WEATHER_BATCH: usize = 4;

/// One training batch, ready to become tensors.
pub struct MotionBatch {
    pub batch: usize,
    /// `[b, 3, s, s]` in [-1, 1].
    pub images: Vec<f32>,
    pub tokens: Vec<f32>,
    pub motion: Vec<f32>,
    /// `[b, frames, 2, s, s]`.
    pub flow: Vec<f32>,
    /// `[b, frames, 1, s, s]`.
    pub hidden: Vec<f32>,
    /// `[b, frames, 1, s, s]`: 1 on the subject.
    pub subject: Vec<f32>,
    /// `[b, frames, 3, s, s]` in [0, 1].
    pub colours: Vec<f32>,
    /// `[WEATHER_BATCH, 2, u, u]` particle impulses and `[WEATHER_BATCH, 4, u, u]` the layer (u = [`WEATHER_UNIT`]).
    pub particles: Vec<f32>,
    pub weather: Vec<f32>,
}

/// The prompt a training clip is given, and the scene made to agree with it: a prompt without
/// a camera move gets a still camera, one without an action a still subject.
fn training_prompt(scene: &mut Scene, rng: &mut Rng) -> (Prompt, bool) {
    let mut p = scene.prompt();
    p.setting = None;
    if rng.chance(0.05) {
        p = Prompt::default();
    }
    if rng.chance(0.3) {
        p.color = None;
    }
    if rng.chance(0.2) {
        p.subject = None;
    }
    if rng.chance(0.2) {
        p.action = None;
    }
    if rng.chance(0.3) {
        p.weather = None;
    }
    if p.camera == Some(Camera::Static) && rng.chance(0.5) {
        p.camera = None;
    }
    if p.camera.is_none() {
        scene.camera = Camera::Static;
    }
    let moving = p.action.is_some();
    (p, moving)
}

pub fn batch(data_seed: u64, step: u64, batch: usize, cfg: &MotionConfig) -> MotionBatch {
    let (f, s) = (cfg.frames, cfg.size);
    let plane = s * s;
    let u = WEATHER_UNIT;
    let mut out = MotionBatch {
        batch,
        images: Vec::with_capacity(batch * 3 * plane),
        tokens: Vec::with_capacity(batch * NUM_TOKENS),
        motion: Vec::with_capacity(batch),
        flow: Vec::with_capacity(batch * f * 2 * plane),
        hidden: Vec::with_capacity(batch * f * plane),
        subject: Vec::with_capacity(batch * f * plane),
        colours: Vec::with_capacity(batch * f * 3 * plane),
        particles: Vec::with_capacity(WEATHER_BATCH * 2 * u * u),
        weather: Vec::with_capacity(WEATHER_BATCH * 4 * u * u),
    };
    for i in 0..batch {
        let mut rng = Rng::new(mix(data_seed ^ 0x7107) ^ mix(step.wrapping_mul(1_000_003) + i as u64));
        let mut scene = Scene::sample(&mut rng, &Prompt::default(), 0.55);
        // Slow and fast motion too (the playground's slider goes from 0 to 2).
        scene.motion = rng.range(0.2, 1.8);
        let (prompt, moving) = training_prompt(&mut scene, &mut rng);
        let truth = MotionTruth::of(&scene, f, s, moving);
        out.images.extend(truth.image.iter().map(|v| v * 2.0 - 1.0));
        out.tokens.extend(multi_hot(&prompt));
        out.motion.push(scene.motion);
        out.flow.extend(truth.flow);
        out.hidden.extend(truth.hidden);
        out.subject.extend(truth.subject);
        out.colours.extend(truth.frames);
        if i < WEATHER_BATCH {
            let t = tau(rng.below(f), f);
            out.particles.extend(particle_map(scene.weather, scene.seed, t, u, u));
            out.weather.extend(weather_layer(scene.weather, scene.seed, t, u));
        }
    }
    out
}

/// The loss on one batch: L1 of the motion fields (subject pixels weighted up), binary cross-entropy of the hidden areas,
/// L1 of the fill colour (mostly where hidden), cross-entropy of the weather layer's opacity
/// and L1 of its colour where there is weather.
pub fn loss(model: &MotionModel, b: &MotionBatch, cfg: &MotionConfig, device: &Device) -> Tensor<1> {
    let (n, f, s) = (b.batch, cfg.frames, cfg.size);
    let t = |v: &Vec<f32>, shape: [usize; 5]| Tensor::<5>::from_data(TensorData::new(v.clone(), shape), device);
    let images = Tensor::<4>::from_data(TensorData::new(b.images.clone(), [n, 3, s, s]), device);
    let tokens = Tensor::<2>::from_data(TensorData::new(b.tokens.clone(), [n, NUM_TOKENS]), device);
    let motion = Tensor::<2>::from_data(TensorData::new(b.motion.clone(), [n, 1]), device);
    let out = model.net.forward(images, tokens, motion).reshape([n, f, PER_FRAME, s, s]);
    let flow = out.clone().slice([0..n, 0..f, 0..2]);
    let logit = out.clone().slice([0..n, 0..f, 2..3]);
    let fill = burn::tensor::activation::sigmoid(out.slice([0..n, 0..f, 3..6]));
    let flow_t = t(&b.flow, [n, f, 2, s, s]);
    let hidden_t = t(&b.hidden, [n, f, 1, s, s]);
    let colours_t = t(&b.colours, [n, f, 3, s, s]);
    let weight = t(&b.subject, [n, f, 1, s, s]) * SUBJECT_WEIGHT + 1.0;
    let flow_loss = ((flow - flow_t).abs() * weight).mean() * FLOW_WEIGHT;
    // Stable BCE with logits: max(x, 0) - x t + log(1 + exp(-|x|)).
    let bce = (logit.clone().clamp_min(0.0) - logit.clone() * hidden_t.clone() + (logit.abs().neg().exp() + 1.0).log())
        .mean();
    let fill_weight = hidden_t * 0.9 + 0.1;
    let fill_loss = ((fill - colours_t).abs() * fill_weight).mean() * 3.0;
    let u = WEATHER_UNIT;
    let w = WEATHER_BATCH.min(n);
    let particles = Tensor::<4>::from_data(TensorData::new(b.particles.clone(), [w, 2, u, u]), device);
    let target = Tensor::<4>::from_data(TensorData::new(b.weather.clone(), [w, 4, u, u]), device);
    let layer = model.weather.forward(particles);
    let alpha_t = target.clone().slice([0..w, 0..1]);
    // Cross-entropy, not L1: the opacity is zero almost everywhere, and L1's optimum (the
    // median) would be no weather at all (it was, for the first 1,260 steps).
    let alpha = layer.clone().slice([0..w, 0..1]).clamp(1e-4, 1.0 - 1e-4);
    let alpha_loss = (alpha_t.clone() * alpha.clone().log()
        + (alpha_t.clone().neg() + 1.0) * (alpha.neg() + 1.0).log())
    .mean()
    .neg()
        * 4.0;
    let colour_loss = ((layer.slice([0..w, 1..4]) - target.slice([0..w, 1..4])).abs() * alpha_t).mean();
    flow_loss + bce + fill_loss + alpha_loss + colour_loss
}

/// What a checkpoint directory records besides the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MotionTrainState {
    pub config: MotionConfig,
    pub data_seed: u64,
    pub batch: usize,
    pub step: u64,
    /// (step, mean loss over the logging window, seconds per step).
    pub log: Vec<(u64, f32, f32)>,
    pub seconds: f64,
    pub device: String,
}

#[cfg(feature = "train")]
pub struct MotionTrainer {
    pub model: MotionModel,
    pub optim: ModuleOptimizer,
    pub state: MotionTrainState,
    pub device: Device,
    pub lr: f64,
}

#[cfg(feature = "train")]
impl MotionTrainer {
    /// Resumes from `dir` when it holds a checkpoint; otherwise starts from random weights.
    pub fn open(dir: &Path, fresh: MotionTrainState, lr: f64, device: &Device) -> anyhow::Result<Self> {
        let device = device.clone().autodiff();
        let optim_config = AdamConfig::new()
            .with_beta_2(0.99)
            .with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(1.0)));
        let state_path = dir.join("state.json");
        if state_path.exists() {
            let state: MotionTrainState = serde_json::from_slice(&std::fs::read(&state_path)?)?;
            let mut model = state.config.init(&device);
            let result = model
                .load_from(&mut BurnpackStore::from_file(dir.join("model.bpk")))
                .map_err(|e| anyhow::anyhow!("loading {}: {e}", dir.join("model.bpk").display()))?;
            anyhow::ensure!(
                result.missing.is_empty() && result.unused.is_empty(),
                "checkpoint does not match the model: missing {:?}, unused {:?}",
                result.missing,
                result.unused
            );
            let optim = optim_config
                .init()
                .load(dir.join("optim.bpk"))
                .map_err(|e| anyhow::anyhow!("loading optimizer state: {e:?}"))?;
            Ok(Self { model, optim, state, device, lr })
        } else {
            std::fs::create_dir_all(dir)?;
            device.seed(fresh.data_seed);
            let model = fresh.config.init(&device);
            Ok(Self { model, optim: optim_config.init(), state: fresh, device, lr })
        }
    }

    /// One optimisation step; returns the loss.
    pub fn step(&mut self) -> f32 {
        let b = batch(self.state.data_seed, self.state.step, self.state.batch, &self.state.config);
        let loss = loss(&self.model, &b, &self.state.config, &self.device);
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optim.step(self.lr, self.model.clone(), grads);
        self.state.step += 1;
        value
    }

    /// Writes weights, optimizer state and the run state, each atomically.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let tmp = |name: &str| dir.join(format!("{name}.tmp"));
        self.model
            .save_into(&mut BurnpackStore::from_file(tmp("model.bpk")).auto_extension(false).overwrite(true))
            .map_err(|e| anyhow::anyhow!("saving model: {e}"))?;
        self.optim.save(tmp("optim.bpk")).map_err(|e| anyhow::anyhow!("saving optimizer: {e:?}"))?;
        std::fs::write(tmp("state.json"), serde_json::to_vec_pretty(&self.state)?)?;
        for name in ["model.bpk", "optim.bpk", "state.json"] {
            std::fs::rename(tmp(name), dir.join(name))?;
        }
        Ok(())
    }

    /// Exports f16 inference weights plus the config as JSON next to them.
    pub fn export(&self, weights: &Path) -> anyhow::Result<PathBuf> {
        crate::builtin::checkpoint::export_f16(&self.model.valid(), weights, self.state.step, &self.state.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_deterministic_and_shaped() {
        let cfg = MotionConfig { frames: 3, size: 8, channels: [8, 8, 8], cond_dim: 8, weather_channels: 4 };
        let a = batch(1, 5, 4, &cfg);
        let b = batch(1, 5, 4, &cfg);
        let c = batch(1, 6, 4, &cfg);
        assert_eq!(a.flow, b.flow);
        assert_eq!(a.images, b.images);
        assert_ne!(a.images, c.images);
        assert_eq!(a.flow.len(), 4 * 3 * 2 * 64);
        assert_eq!(a.particles.len(), WEATHER_BATCH * 2 * WEATHER_UNIT * WEATHER_UNIT);
        let device = Device::flex();
        let model = cfg.init(&device);
        let l = loss(&model, &a, &cfg, &device).into_scalar::<f32>();
        assert!(l.is_finite() && l > 0.0, "{l}");
    }
}
