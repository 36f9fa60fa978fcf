//! `vidplay models` (installed diffusers models) and `vidplay devices` (compute devices).

use crate::engines::registry::family_of;
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
        // What its family does on its own (a server also chains an image-to-video model with a
        // text-to-image one for text to video).
        let kind = match family_of(&m.class_name) {
            Some(family) => family.tasks.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "),
            None => format!("unsupported ({})", m.class_name),
        };
        println!("{:<40} {:<16} {}", m.name, kind, m.path.display());
    }
    Ok(())
}

pub fn devices() -> anyhow::Result<()> {
    use model::device::DeviceChoice;
    let (listed, missing) = model::device::list();
    // `auto` tries these in order and takes the first that starts; lavapipe only when named.
    let auto = listed.iter().find(|l| l.choice != DeviceChoice::WgpuCpu).map(|l| l.choice);
    println!("{:<12} {:<8} name (details)", "--device", "backend");
    for l in &listed {
        let mark = if Some(l.choice) == auto { "   <- auto" } else { "" };
        println!("{:<12} {:<8} {} ({}){mark}", l.choice.to_string(), l.backend.name(), l.name, l.detail);
    }
    for line in missing {
        println!("not available: {line}");
    }
    Ok(())
}
