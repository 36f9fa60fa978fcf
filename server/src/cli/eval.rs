//! `vidplay eval`: the built-in model's faithfulness on held-out prompts.

use super::common::ModelArgs;
use model::builtin::evaluation as eval;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Clips per category.
    #[arg(long, default_value_t = 8)]
    per_category: usize,
    #[arg(long, default_value_t = 24)]
    steps: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Pictures to animate in the image-to-video part (default: the playground's examples,
    /// public/examples/*.png, when run from the repository).
    #[arg(long)]
    examples: Option<PathBuf>,
    /// Also write the full report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let (model, opened) = a.model.load_on_device()?;
    let device = opened.description;
    println!("evaluating {} on {device}", model.id());
    let dir = a.examples.clone().unwrap_or_else(|| PathBuf::from("public/examples"));
    let mut examples = Vec::new();
    if dir.is_dir() {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg")) {
            let picture = crate::media::input::load(&path)?;
            examples.push((path.file_name().unwrap_or_default().to_string_lossy().into_owned(), picture));
        }
    } else if a.examples.is_some() {
        anyhow::bail!("{} is not a folder", dir.display());
    }
    let options = eval::EvalOptions { per_category: a.per_category, steps: a.steps, seed: a.seed, examples };
    let report = eval::run(&model, &options, |line| println!("  {line}"))?;
    println!("\n{}", report.table());
    println!(
        "{} clips in {:.0} s; targets {}",
        report.clips,
        report.seconds,
        if report.meets_targets() { "met" } else { "NOT met" }
    );
    if let Some(path) = a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}
