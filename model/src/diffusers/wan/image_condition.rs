//! The conditioning of `WanImageToVideoPipeline` (its `prepare_latents` without
//! `expand_timesteps`): the picture as the first frame of a video of zeros (and `last_image` as
//! its last frame), encoded by the VAE (the distribution's mean), normalised with the VAE's
//! per-channel statistics, behind a 4-channel mask that marks the given frames. The transformer
//! sees `[noise latents (z), mask (4), condition latents (z)]` along the channels.

use crate::diffusers::common::image_processing::Planar;
use crate::diffusers::common::pil_resize;
use crate::diffusers::wan::autoencoder_kl_wan::{AutoencoderKLWan, WanVaeConfig};
use burn::prelude::*;
use image::RgbImage;

/// The picture at the clip's size as the pipeline's `VideoProcessor.preprocess` gives it: the
/// whole picture stretched to `width` x `height` with PIL's Lanczos (the processor's "default"
/// resize mode: no crop), values in [-1, 1], planar.
pub fn preprocess(image: &RgbImage, width: usize, height: usize) -> Planar {
    let sized;
    let input = if (image.width() as usize, image.height() as usize) == (width, height) {
        image
    } else {
        sized = pil_resize::resize_lanczos(image, width as u32, height as u32);
        &sized
    };
    Planar::from_rgb8(input, |v| v * 2.0 - 1.0)
}

/// The mask channels [temporal, latent frames] (one value per latent pixel of a frame): every
/// pixel frame is 1 where given (the first, and the last with `last_image`), 0 elsewhere; the
/// first frame stands for the whole first latent frame (repeated `temporal` times), and each
/// later latent frame's `temporal` channels are its pixel frames in order.
pub fn mask_channels(frames: usize, temporal: usize, last_image: bool) -> Vec<Vec<f32>> {
    let given = |frame: usize| frame == 0 || (last_image && frame == frames - 1);
    let latent_frames = (frames - 1) / temporal + 1;
    (0..temporal)
        .map(|c| {
            (0..latent_frames)
                .map(|j| {
                    // Position j * temporal + c of [f0 x temporal, f1, f2, ...].
                    let frame = if j == 0 { 0 } else { j * temporal + c + 1 - temporal };
                    if given(frame) { 1.0 } else { 0.0 }
                })
                .collect()
        })
        .collect()
}

/// `[mask, normalised condition latents]`: [1, temporal + z_dim, latent frames, H / 8, W / 8]
/// in f32. `image` and `last_image` are [`preprocess`]ed to the clip's size.
pub fn build(
    vae: &AutoencoderKLWan,
    config: &WanVaeConfig,
    image: &Planar,
    last_image: Option<&Planar>,
    frames: usize,
    device: &Device,
) -> Tensor<5> {
    let (w, h) = (image.width, image.height);
    let frame = |p: &Planar| {
        Tensor::<3>::from_data(TensorData::new(p.data.clone(), [3, h, w]), device).reshape([1, 3, 1, h, w])
    };
    // No empty part: a one-frame clip is the picture alone.
    let zeros = |n: usize| (n > 0).then(|| Tensor::<5>::zeros([1, 3, n, h, w], device));
    let parts: Vec<Tensor<5>> = match last_image {
        None => std::iter::once(frame(image)).chain(zeros(frames - 1)).collect(),
        Some(last) => std::iter::once(frame(image)).chain(zeros(frames - 2)).chain([frame(last)]).collect(),
    };
    let video = Tensor::cat(parts, 2);
    let (mean, _) = vae.encode(video);
    let [_, z, f, lh, lw] = mean.dims();
    let stats = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [z]), device).reshape([1, z, 1, 1, 1]);
    let inv_std: Vec<f32> = config.latents_std.iter().map(|s| 1.0 / s).collect();
    let latents = (mean.cast(burn::tensor::DType::F32) - stats(config.latents_mean.clone())) * stats(inv_std);
    let temporal = config.scale_factor_temporal();
    let mask: Vec<f32> = mask_channels(frames, temporal, last_image.is_some())
        .into_iter()
        .flat_map(|per_frame| per_frame.into_iter().flat_map(|v| std::iter::repeat_n(v, lh * lw)))
        .collect();
    let mask = Tensor::<5>::from_data(TensorData::new(mask, [1, temporal, f, lh, lw]), device);
    Tensor::cat(vec![mask, latents], 1)
}

#[cfg(test)]
mod tests {
    use super::mask_channels;

    #[test]
    fn the_mask_marks_the_given_frames_as_diffusers_lays_them_out() {
        // 9 frames, 3 latent frames: the first latent frame is given on all channels.
        assert_eq!(
            mask_channels(9, 4, false),
            vec![vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0]]
        );
        // With a last frame, the last channel of the last latent frame is frame 8.
        assert_eq!(
            mask_channels(9, 4, true),
            vec![vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 1.0]]
        );
    }
}
