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
    /// Also write the full report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let (model, device) = a.model.load()?;
    println!("evaluating {} on {device}", model.id());
    let options = eval::EvalOptions { per_category: a.per_category, steps: a.steps, seed: a.seed };
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
