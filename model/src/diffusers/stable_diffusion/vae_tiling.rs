//! diffusers' tiled VAE decoding (`AutoencoderKL.enable_tiling`): the latents are decoded in
//! overlapping tiles of the VAE's training size and the overlaps are cross-faded, so memory
//! follows the tile instead of the image. Untiled, a 2048x2048 decode holds several 128-channel
//! full-resolution activations and a 65,536-token attention in the mid block; tiled, each piece
//! is what a 512x512 decode needs (SD 1.x; 768x768 for SD 2.x and Turbo).
//!
//! The output is diffusers' own (checked against it in the parity tests): the same tile grid,
//! the same linear blends, and blends that read neighbours already blended, as diffusers' in-place
//! `blend_v` / `blend_h` do.

use super::autoencoder_kl::{AutoencoderKL, AutoencoderKLConfig};
use burn::prelude::*;

/// Images with more pixels than this are decoded in tiles (when they are bigger than one tile).
pub const TILED_ABOVE_PIXELS: usize = 1024 * 1024;

/// diffusers' `tile_overlap_factor`.
const OVERLAP: f64 = 0.25;

/// The smallest tile a retried decode uses, in latents (smaller ones are mostly overlap).
pub const MIN_RETRY_TILE: usize = 4;

/// The tile grid of one VAE, in diffusers' terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// `tile_latent_min_size`: a tile's side in latents.
    pub latent_tile: usize,
    /// The distance between tile starts, in latents (`overlap_size`).
    pub stride: usize,
    /// Rows or columns of pixels cross-faded between neighbours (`blend_extent`).
    pub blend: usize,
    /// Pixels kept of each tile's side (`row_limit`).
    pub keep: usize,
}

impl Tiling {
    /// The grid diffusers derives from `sample_size`; `None` when the tile is too small to step
    /// (a VAE trained on tiny images), where diffusers' own loop fails (a zero range step).
    pub fn of(config: &AutoencoderKLConfig) -> Option<Self> {
        Self::with_tile(config.sample_size / config.scale_factor(), config.scale_factor())
    }

    /// diffusers' grid for tiles of `latent_tile` latents, on a VAE that upsamples `scale` times.
    fn with_tile(latent_tile: usize, scale: usize) -> Option<Self> {
        let sample_tile = latent_tile * scale;
        let stride = (latent_tile as f64 * (1.0 - OVERLAP)) as usize;
        let blend = (sample_tile as f64 * OVERLAP) as usize;
        (stride > 0 && blend < sample_tile).then_some(Self { latent_tile, stride, blend, keep: sample_tile - blend })
    }

    /// The grid a retried decode of a latent of `height` x `width` uses after a decode that
    /// failed (out of memory): the same overlaps, with tiles of half the side of the first
    /// decode's (the latent's longer side when it was decoded whole, the VAE's own tile when it
    /// was tiled) at the first retry, a quarter at the second, and so on, never below
    /// [`MIN_RETRY_TILE`] latents.
    pub fn for_retry(config: &AutoencoderKLConfig, height: usize, width: usize, retry: u32) -> Self {
        let first = Self::for_latent(config, height, width).map_or(height.max(width), |t| t.latent_tile);
        let tile = first.div_ceil(1 << retry.min(16)).max(MIN_RETRY_TILE);
        Self::with_tile(tile, config.scale_factor()).expect("a tile of at least 4 latents steps")
    }

    /// The tiling the pipelines decode a latent of `height` x `width` with: tiles when the image
    /// has more than [`TILED_ABOVE_PIXELS`] pixels and is bigger than one tile, none otherwise.
    pub fn for_latent(config: &AutoencoderKLConfig, height: usize, width: usize) -> Option<Self> {
        let f = config.scale_factor();
        Self::of(config).filter(|t| {
            height * width * f * f > TILED_ABOVE_PIXELS && (height > t.latent_tile || width > t.latent_tile)
        })
    }
}

impl AutoencoderKL {
    /// Decodes as the pipelines do: tiled or whole, as [`Tiling::for_latent`] says.
    pub fn decode_sized(&self, z: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = z.dims();
        match Tiling::for_latent(&self.config, h, w) {
            Some(t) => self.decode_tiled(z, t),
            None => self.decode(z),
        }
    }

    /// diffusers' `tiled_decode`: latents -> images in about [-1, 1], tile by tile.
    pub fn decode_tiled(&self, z: Tensor<4>, t: Tiling) -> Tensor<4> {
        let [n, c, h, w] = z.dims();
        let mut rows: Vec<Vec<Tensor<4>>> = Vec::new();
        for i in (0..h).step_by(t.stride) {
            let mut row: Vec<Tensor<4>> = Vec::new();
            for j in (0..w).step_by(t.stride) {
                let tile = z.clone().slice([0..n, 0..c, i..(i + t.latent_tile).min(h), j..(j + t.latent_tile).min(w)]);
                let mut tile = self.decode(tile);
                if let Some(above) = rows.last() {
                    tile = blend(&above[row.len()], tile, t.blend, 2);
                }
                if let Some(left) = row.last() {
                    tile = blend(left, tile, t.blend, 3);
                }
                row.push(tile);
            }
            rows.push(row);
        }
        let bands = rows
            .into_iter()
            .map(|row| {
                let kept = row.into_iter().map(|tile| crop(tile, t.keep)).collect();
                Tensor::cat(kept, 3)
            })
            .collect();
        Tensor::cat(bands, 2)
    }
}

/// diffusers' `blend_v` (`dim` 2) and `blend_h` (`dim` 3): the first `extent` rows (columns) of
/// `b` fade from `a`'s last ones to `b`'s own, linearly.
fn blend(a: &Tensor<4>, b: Tensor<4>, extent: usize, dim: usize) -> Tensor<4> {
    let (len_a, len_b) = (a.dims()[dim], b.dims()[dim]);
    let extent = extent.min(len_a).min(len_b);
    if extent == 0 {
        return b;
    }
    let weights: Vec<f32> = (0..extent).map(|y| (y as f64 / extent as f64) as f32).collect();
    let mut shape = [1usize; 4];
    shape[dim] = extent;
    let weight = Tensor::<4>::from_data(TensorData::new(weights, shape), &b.device()).cast(b.dtype());
    let tail = a.clone().narrow(dim, len_a - extent, extent);
    let head = b.clone().narrow(dim, 0, extent);
    let faded = tail * (weight.ones_like() - weight.clone()) + head * weight;
    if extent == len_b { faded } else { Tensor::cat(vec![faded, b.narrow(dim, extent, len_b - extent)], dim) }
}

/// The first `keep` rows and columns of a tile (all of an edge tile that is smaller).
fn crop(tile: Tensor<4>, keep: usize) -> Tensor<4> {
    let [n, c, h, w] = tile.dims();
    tile.slice([0..n, 0..c, 0..h.min(keep), 0..w.min(keep)])
}
