//! How well the built-in editor edits, on Emu Edit's two axes, measured on pictures and
//! phrasings training never showed (held-out subject/colour/action/setting combinations, and
//! held-out ways of saying each edit), against the toy world's exact edited picture:
//!
//! - carried out: inside the region the edit changes, the result is at least half-way from the
//!   input to the asked picture (its mean error there at most half the input's);
//! - kept: PSNR, against the input, of every pixel outside that region.

use super::apply::Editor;
use super::pairs::sample;
use crate::rng::Rng;
use image::RgbImage;
use serde::Serialize;
use std::collections::BTreeMap;

/// Results for one kind of edit (or all).
#[derive(Debug, Clone, Default, Serialize)]
pub struct EditScore {
    pub edits: usize,
    pub carried_out: usize,
    /// Mean PSNR outside the edited region, dB (capped at 60 for unchanged pixels).
    pub kept_psnr_db: f64,
}

impl EditScore {
    pub fn rate(&self) -> f64 {
        self.carried_out as f64 / self.edits.max(1) as f64
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EditEvaluation {
    pub size: usize,
    pub all: EditScore,
    pub by_kind: BTreeMap<String, EditScore>,
}

fn to_image(planar: &[f32], size: usize) -> RgbImage {
    let plane = size * size;
    RgbImage::from_fn(size as u32, size as u32, |x, y| {
        let i = y as usize * size + x as usize;
        image::Rgb(std::array::from_fn(|c| (planar[c * plane + i] * 255.0).round().clamp(0.0, 255.0) as u8))
    })
}

/// Edits `count` held-out pairs at `size` x `size` and scores them.
pub fn evaluate(editor: &Editor, count: usize, size: usize, seed: u64) -> EditEvaluation {
    let mut rng = Rng::new(seed ^ 0xE7A1);
    let mut by_kind: BTreeMap<String, (EditScore, f64)> = BTreeMap::new();
    let mut all = (EditScore::default(), 0.0);
    for _ in 0..count {
        let pair = sample(&mut rng, size, true);
        let before = to_image(&pair.before, size);
        let after = to_image(&pair.after, size);
        let Ok(result) = editor.edit(&before, &pair.instruction, &mut |_| {}) else { continue };
        let got = result.image;
        let (mut in_err, mut in_base, mut n_in, mut out_se, mut n_out) = (0.0f64, 0.0f64, 0usize, 0.0f64, 0usize);
        for (i, changed) in pair.changed.iter().enumerate() {
            let (x, y) = ((i % size) as u32, (i / size) as u32);
            let (g, b, a) = (got.get_pixel(x, y).0, before.get_pixel(x, y).0, after.get_pixel(x, y).0);
            for c in 0..3 {
                let (g, b, a) = (g[c] as f64 / 255.0, b[c] as f64 / 255.0, a[c] as f64 / 255.0);
                if *changed > 0.5 {
                    in_err += (g - a).abs();
                    in_base += (b - a).abs();
                    n_in += 1;
                } else {
                    out_se += (g - b).powi(2);
                    n_out += 1;
                }
            }
        }
        let carried = n_in > 0 && in_err <= 0.5 * in_base;
        let mse = out_se / n_out.max(1) as f64;
        let psnr = if mse <= 1e-6 { 60.0 } else { (10.0 * (1.0 / mse).log10()).min(60.0) };
        for (score, sum) in [by_kind.entry(pair.edit.kind().to_string()).or_default(), &mut all] {
            score.edits += 1;
            score.carried_out += carried as usize;
            *sum += psnr;
            score.kept_psnr_db = *sum / score.edits as f64;
        }
    }
    EditEvaluation { size, all: all.0, by_kind: by_kind.into_iter().map(|(k, (s, _))| (k, s)).collect() }
}
