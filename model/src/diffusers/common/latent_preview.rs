//! A cheap look at a latent while it is being sampled: a fixed linear map from the four
//! channels of Stable Diffusion's VAE latent space (which SVD shares) to RGB, instead of a VAE
//! decode. Coarse (one pixel per latent cell, approximate colours), but free.

use burn::prelude::*;
use burn::tensor::DType;
use image::RgbImage;

/// RGB contribution of each latent channel (SD 1.x/2.x VAE space, least-squares fit published
/// by the community for latent previews).
const FACTORS: [[f32; 3]; 4] =
    [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]];

/// The preview of an unscaled latent `[4, h, w]` (as the UNet sees it); `None` for latent
/// spaces of other widths, or when it cannot be read back.
pub fn latent_to_rgb(latent: Tensor<3>) -> Option<RgbImage> {
    let [c, h, w] = latent.dims();
    if c != FACTORS.len() {
        return None;
    }
    let data = latent.cast(DType::F32).into_data().convert::<f32>().try_into_vec::<f32>().ok()?;
    Some(project(&data, h, w))
}

/// The projection on host data `[4, h, w]`.
fn project(data: &[f32], h: usize, w: usize) -> RgbImage {
    let plane = h * w;
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        image::Rgb(std::array::from_fn(|rgb| {
            let v: f32 = (0..4).map(|c| data[c * plane + i] * FACTORS[c][rgb]).sum();
            ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_latent_is_mid_grey_and_channels_move_colours() {
        let zero = project(&[0.0; 4 * 6], 2, 3);
        assert_eq!(zero.dimensions(), (3, 2));
        assert!(zero.pixels().all(|p| p.0 == [128, 128, 128]));
        // The last channel takes blue away (towards yellow) when positive.
        let mut data = vec![0.0; 4 * 6];
        data[3 * 6..].iter_mut().for_each(|v| *v = 1.0);
        let p = project(&data, 2, 3).get_pixel(0, 0).0;
        assert!(p[2] < p[0] && p[2] < 100, "{p:?}");
    }
}
