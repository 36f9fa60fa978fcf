//! Training the built-in editor on pairs the toy world renders (see [`super::pairs`]):
//! deterministic batches (batch `k` depends only on the data seed and `k`), and resumable,
//! atomically written checkpoints.

use super::instruction::EDIT_DIM;
use super::net::{EditConfig, EditNet};
use super::pairs::sample;
use crate::rng::{Rng, mix};
#[cfg(feature = "train")]
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
#[cfg(feature = "train")]
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};
#[cfg(feature = "train")]
use std::path::{Path, PathBuf};

/// Extra loss weight of the pixels an edit changes (from step 2,500; 4 before).
pub const CHANGED_WEIGHT: f32 = 12.0;

/// One training batch, ready to become tensors.
pub struct EditBatch {
    pub batch: usize,
    /// `[b, 3, s, s]` in [0, 1].
    pub before: Vec<f32>,
    pub after: Vec<f32>,
    /// `[b, 1, s, s]`.
    pub changed: Vec<f32>,
    /// `[b, EDIT_DIM]`.
    pub edits: Vec<f32>,
}

pub fn batch(data_seed: u64, step: u64, batch: usize, cfg: &EditConfig) -> EditBatch {
    let s = cfg.size;
    let mut out = EditBatch {
        batch,
        before: Vec::with_capacity(batch * 3 * s * s),
        after: Vec::with_capacity(batch * 3 * s * s),
        changed: Vec::with_capacity(batch * s * s),
        edits: Vec::with_capacity(batch * EDIT_DIM),
    };
    for i in 0..batch {
        let mut rng = Rng::new(mix(data_seed ^ 0xED17) ^ mix(step.wrapping_mul(1_000_003) + i as u64));
        let pair = sample(&mut rng, s, false);
        out.before.extend(pair.before);
        out.after.extend(pair.after);
        out.changed.extend(pair.changed);
        out.edits.extend(pair.edit.vector());
    }
    out
}

/// The edited picture from the network's output: the input where the mask is off, the
/// network's colours where it is on. `before` in [0, 1], `out` as [`EditNet::forward`] gives it.
pub fn compose(before: Tensor<4>, out: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let [n, _, h, w] = out.dims();
    let mask = sigmoid(out.clone().slice([0..n, 0..1, 0..h, 0..w]));
    let colour = sigmoid(out.slice([0..n, 1..4, 0..h, 0..w]));
    (before.clone() + (colour - before) * mask.clone(), mask)
}

/// The loss on one batch: L1 of the edited picture (changed pixels weighted up), binary
/// cross-entropy of the mask against the pixels the edit changes, L1 of the colours there.
pub fn loss(net: &EditNet, b: &EditBatch, cfg: &EditConfig, device: &Device) -> Tensor<1> {
    let (n, s) = (b.batch, cfg.size);
    let t = |v: &Vec<f32>, c: usize| Tensor::<4>::from_data(TensorData::new(v.clone(), [n, c, s, s]), device);
    let (before, after, changed) = (t(&b.before, 3), t(&b.after, 3), t(&b.changed, 1));
    let edits = Tensor::<2>::from_data(TensorData::new(b.edits.clone(), [n, EDIT_DIM]), device);
    let out = net.forward(before.clone() * 2.0 - 1.0, edits);
    let logit = out.clone().slice([0..n, 0..1, 0..s, 0..s]);
    let (edited, _) = compose(before, out.clone());
    // A reshape or a move changes a few dozen of 1,024 pixels: those pixels weigh 12 times as
    // much (at 4 the editor kept the old shape: redrawing it was cheaper than learning shapes).
    let weight = changed.clone() * CHANGED_WEIGHT + 1.0;
    let picture = ((edited - after.clone()).abs() * weight).mean() * 4.0;
    let bce =
        (logit.clone().clamp_min(0.0) - logit.clone() * changed.clone() + (logit.abs().neg().exp() + 1.0).log()).mean();
    let colour = sigmoid(out.slice([0..n, 1..4, 0..s, 0..s]));
    let colour_loss = ((colour - after).abs() * changed).mean() * 4.0;
    picture + bce + colour_loss
}

/// What a checkpoint directory records besides the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EditTrainState {
    pub config: EditConfig,
    pub data_seed: u64,
    pub batch: usize,
    pub step: u64,
    /// (step, mean loss over the logging window, seconds per step).
    pub log: Vec<(u64, f32, f32)>,
    pub seconds: f64,
    pub device: String,
}

#[cfg(feature = "train")]
pub struct EditTrainer {
    pub net: EditNet,
    pub optim: ModuleOptimizer,
    pub state: EditTrainState,
    pub device: Device,
    pub lr: f64,
}

#[cfg(feature = "train")]
impl EditTrainer {
    /// Resumes from `dir` when it holds a checkpoint; otherwise starts from random weights.
    pub fn open(dir: &Path, fresh: EditTrainState, lr: f64, device: &Device) -> anyhow::Result<Self> {
        let device = device.clone().autodiff();
        let optim_config = AdamConfig::new()
            .with_beta_2(0.99)
            .with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(1.0)));
        let state_path = dir.join("state.json");
        if !state_path.exists() {
            std::fs::create_dir_all(dir)?;
            device.seed(fresh.data_seed);
            let net = fresh.config.init(&device);
            return Ok(Self { net, optim: optim_config.init(), state: fresh, device, lr });
        }
        let state: EditTrainState = serde_json::from_slice(&std::fs::read(&state_path)?)?;
        let mut net = state.config.init(&device);
        let result = net
            .load_from(&mut BurnpackStore::from_file(dir.join("model.bpk")))
            .map_err(|e| anyhow::anyhow!("loading {}: {e}", dir.join("model.bpk").display()))?;
        anyhow::ensure!(
            result.missing.is_empty() && result.unused.is_empty(),
            "checkpoint does not match the editor: {result:?}"
        );
        // The optimizer's moments start again: Burn 0.22's optimizer loader puts its tensors on
        // the default device (CUDA when the binary has it, even without a GPU), not `device`.
        Ok(Self { net, optim: optim_config.init(), state, device, lr })
    }

    /// One optimisation step; returns the loss.
    pub fn step(&mut self) -> f32 {
        let b = batch(self.state.data_seed, self.state.step, self.state.batch, &self.state.config);
        let loss = loss(&self.net, &b, &self.state.config, &self.device);
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &self.net);
        self.net = self.optim.step(self.lr, self.net.clone(), grads);
        self.state.step += 1;
        value
    }

    /// Writes the weights and the run state, each atomically.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let tmp = |name: &str| dir.join(format!("{name}.tmp"));
        self.net
            .save_into(&mut BurnpackStore::from_file(tmp("model.bpk")).auto_extension(false).overwrite(true))
            .map_err(|e| anyhow::anyhow!("saving model: {e}"))?;
        std::fs::write(tmp("state.json"), serde_json::to_vec_pretty(&self.state)?)?;
        for name in ["model.bpk", "state.json"] {
            std::fs::rename(tmp(name), dir.join(name))?;
        }
        Ok(())
    }

    /// Exports f16 inference weights plus the config as JSON next to them.
    pub fn export(&self, weights: &Path) -> anyhow::Result<PathBuf> {
        crate::builtin::checkpoint::export_f16(&self.net.valid(), weights, self.state.step, &self.state.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_deterministic_and_the_loss_is_finite() {
        let cfg = EditConfig { size: 16, channels: [8, 8, 8, 8], cond_dim: 8 };
        let (a, b, c) = (batch(1, 5, 3, &cfg), batch(1, 5, 3, &cfg), batch(1, 6, 3, &cfg));
        assert_eq!((a.before.clone(), a.edits.clone()), (b.before, b.edits));
        assert_ne!(a.after, c.after);
        let device = Device::flex();
        let net = cfg.init(&device);
        let l = loss(&net, &a, &cfg, &device).into_scalar::<f32>();
        assert!(l.is_finite() && l > 0.0, "{l}");
    }
}
