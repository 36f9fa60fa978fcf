//! `vidplay eval`: the built-in model's faithfulness on held-out prompts; with `--edits`, the
//! built-in editor on held-out edits (Emu Edit's two axes).

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
    /// Measure the built-in editor instead: held-out pictures and phrasings, whether each edit
    /// is carried out and how well the rest is kept.
    #[arg(long)]
    edits: bool,
    /// Edits measured (with --edits).
    #[arg(long, default_value_t = 420)]
    edit_count: usize,
    /// Picture size of the edits (with --edits): 32 is the editor's own, larger ones are edited
    /// at their own resolution.
    #[arg(long, default_value_t = 32)]
    edit_size: usize,
    /// Editor weights exported by train_edit (with --edits; default: the shipped ones).
    #[arg(long)]
    edit_weights: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
}

/// Targets of the built-in editor on held-out edits.
pub const EDIT_CARRIED_OUT_TARGET: f64 = 0.8;
pub const EDIT_KEPT_TARGET_DB: f64 = 25.0;

fn run_edits(a: &EvalArgs) -> anyhow::Result<()> {
    use model::builtin::edit::apply::Editor;
    if a.edit_size < 8 || a.edit_size > 1024 {
        anyhow::bail!("--edit-size must be 8..=1024, got {}", a.edit_size);
    }
    let opened = model::device::open(a.model.device)?;
    let editor = match &a.edit_weights {
        Some(path) => Editor::load(path, &opened.device)?,
        None => Editor::shipped(&opened.device)?,
    };
    println!(
        "evaluating the built-in editor on {} ({} held-out edits at {}x{})",
        opened.description, a.edit_count, a.edit_size, a.edit_size
    );
    let started = std::time::Instant::now();
    let report = model::builtin::edit::evaluation::evaluate(&editor, a.edit_count, a.edit_size, a.seed);
    println!(
        "
| edit | edits | carried out | kept (PSNR outside the edit) |\n|---|---|---|---|"
    );
    for (kind, s) in report.by_kind.iter().map(|(k, s)| (k.as_str(), s)).chain([("all", &report.all)]) {
        println!("| {kind} | {} | {:.0}% | {:.1} dB |", s.edits, 100.0 * s.rate(), s.kept_psnr_db);
    }
    let met = report.all.rate() >= EDIT_CARRIED_OUT_TARGET && report.all.kept_psnr_db >= EDIT_KEPT_TARGET_DB;
    println!(
        "\n{} edits in {:.1} s; targets (carried out >= {:.0}%, kept >= {EDIT_KEPT_TARGET_DB} dB) {}",
        report.all.edits,
        started.elapsed().as_secs_f64(),
        100.0 * EDIT_CARRIED_OUT_TARGET,
        if met { "met" } else { "NOT met" }
    );
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    if a.edits {
        return run_edits(&a);
    }
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
