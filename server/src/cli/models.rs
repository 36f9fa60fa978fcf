//! `vidplay models` (installed diffusers models) and `vidplay devices` (graphics adapters).

use model::diffusers::common::folder;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ModelsArgs {
    #[arg(long, env = "VIDPLAY_MODELS_DIR", default_value = "models")]
    models_dir: PathBuf,
}

pub fn run(a: ModelsArgs) -> anyhow::Result<()> {
    let installed = folder::installed(Some(&a.models_dir));
    if installed.is_empty() {
        println!(
            "no diffusers models in {} or the Hugging Face cache ({}); `vidplay image --model REPO_ID` fetches one",
            a.models_dir.display(),
            folder::hub_cache().display()
        );
    }
    for m in installed {
        let kind = match &m.kind {
            folder::PipelineKind::TextToImage => "text-to-image".to_string(),
            folder::PipelineKind::ImageToVideo => "image-to-video".to_string(),
            folder::PipelineKind::Other(c) => format!("unsupported ({c})"),
        };
        println!("{:<40} {:<16} {}", m.name, kind, m.path.display());
    }
    Ok(())
}

pub fn devices() -> anyhow::Result<()> {
    let adapters = model::device::list_adapters();
    if adapters.is_empty() {
        println!("no wgpu adapters (install mesa-vulkan-drivers for a CPU one); `--device cpu` still works");
    }
    for a in adapters {
        println!("{a}");
    }
    Ok(())
}
