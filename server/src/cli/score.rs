//! `vidplay score PATH`: measures a clip (an MP4 or GIF file, or a folder of frames) and prints
//! its scores as JSON (see app::scores::Scores and the README for each value's meaning).

use crate::scores::{self, Against};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ScoreArgs {
    /// The clip: an H.264 MP4, a GIF, or a folder of frame images (taken in name order).
    path: PathBuf,
    /// The prompt it was made from: checked with the built-in model's concepts (colour,
    /// direction, growth, bouncing, weather, camera).
    #[arg(long)]
    prompt: Option<String>,
    /// The image it animates: the first frame is compared with it (PSNR, SSIM).
    #[arg(long)]
    image: Option<PathBuf>,
}

pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    let frames = crate::media::clip::read(&args.path)?;
    let input = args.image.as_deref().map(crate::media::input::load).transpose()?;
    let prompt = args.prompt.as_deref().map(str::trim).filter(|p| !p.is_empty());
    let scores = scores::score(&frames, Against { input: input.as_ref(), prompt })
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.path.display()))?;
    println!("{}", serde_json::to_string_pretty(&scores)?);
    Ok(())
}
