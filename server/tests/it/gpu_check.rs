//! `scripts/gpu_check --dry-run`: the GPU measurement script's own plumbing, run for real on the
//! CPU backend at the fixtures' sizes: every check runs and lands in the table it writes, in the
//! order a short loan needs (the headline first), and `--quick` runs only the headline rows.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `scripts/gpu_check --dry-run` with `extra` arguments and returns the table it wrote,
/// its folder and what it printed.
fn dry_run(name: &str, extra: &[&str]) -> (String, PathBuf, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = std::env::temp_dir().join(format!("vidplay-gpu-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let table_path = dir.join("gpu_check.md");
    let out = Command::new("python3")
        .arg(root.join("scripts/gpu_check"))
        .args(["--dry-run", "--out", table_path.to_str().unwrap(), "--vidplay", env!("CARGO_BIN_EXE_vidplay")])
        .args(extra)
        .env("CUBECL_AUTOTUNE_LEVEL", "minimal")
        .output()
        .expect("run scripts/gpu_check");
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "gpu_check --dry-run {extra:?} failed:\n{log}");
    let table = std::fs::read_to_string(&table_path).unwrap();
    assert!(
        table.contains("| check | implementation | device | precision | size | first run | per step (warm) |"),
        "{table}"
    );
    (table, dir, log)
}

/// The table's row for a check and implementation.
fn row<'a>(table: &'a str, check: &str, implementation: &str) -> Option<(usize, &'a str)> {
    table.lines().enumerate().find(|(_, l)| l.starts_with(&format!("| {check} | {implementation} |")))
}

#[test]
fn gpu_check_dry_run_measures_every_row() {
    let (table, dir, log) = dry_run("full", &[]);
    // The preflight speaks first, even here: the CUDA driver's version, or what is missing.
    let first = log.lines().next().unwrap_or_default();
    assert!(first.starts_with("preflight: ") && (first.contains("CUDA driver") || first.contains("missing")), "{log}");
    let line = |check: &str, implementation: &str| -> String {
        row(&table, check, implementation)
            .unwrap_or_else(|| panic!("no {check} / {implementation} row:\n{table}"))
            .1
            .to_string()
    };
    for check in ["SD-Turbo", "svd-xt (resident memory)", "svd-xt (low memory)", "Wan 2.1 1.3B", "built-in model"] {
        let r = line(check, "Burn");
        assert!(r.contains("| cpu |") && r.contains("| ok"), "{r}");
        assert!(r.contains(" s |"), "timed: {r}");
        // The first run (kernels compiled and tuned) apart from the warm steps.
        let first = r.split('|').nth(6).unwrap().trim();
        assert!(first.ends_with("(1 step)") || first.ends_with("(a clip)"), "first run: {r}");
    }
    // The headline first: svd-xt, then Wan, then SD-Turbo, then parity, then the built-in model.
    let at = |check: &str, implementation: &str| row(&table, check, implementation).unwrap().0;
    let order = [
        at("svd-xt (resident memory)", "Burn"),
        at("Wan 2.1 1.3B", "Burn"),
        at("SD-Turbo", "Burn"),
        at("SD parity", "Burn"),
        at("built-in model", "Burn"),
    ];
    assert!(order.is_sorted(), "rows out of order:\n{table}");
    // `vidplay parity` on the fixtures, in both precisions.
    for check in ["SD parity", "SVD parity", "Wan parity"] {
        for precision in ["f32", "f16"] {
            let r = table
                .lines()
                .find(|l| l.starts_with(&format!("| {check} | Burn | cpu | {precision} |")))
                .unwrap_or_else(|| panic!("no {check} {precision} row:\n{table}"));
            assert!(r.contains("| pass (worst "), "{r}");
        }
    }
    // diffusers' rows: measured where torch is installed, otherwise said to be skipped.
    for check in ["SD-Turbo", "svd-xt", "Wan 2.1 1.3B"] {
        let r = line(check, "diffusers");
        assert!(r.contains("| ok") || r.contains("skipped: torch/diffusers not installed"), "{r}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `--quick` (a loan lent to other work): svd-xt and Wan only.
#[test]
fn gpu_check_quick_runs_only_the_headline_rows() {
    let (table, dir, _) = dry_run("quick", &["--quick"]);
    for check in ["svd-xt (resident memory)", "svd-xt (low memory)", "Wan 2.1 1.3B"] {
        let (_, r) = row(&table, check, "Burn").unwrap_or_else(|| panic!("no {check} row:\n{table}"));
        assert!(r.contains("| ok"), "{r}");
    }
    for check in ["SD-Turbo", "SD parity", "SVD parity", "built-in model"] {
        assert!(row(&table, check, "Burn").is_none(), "--quick ran {check}:\n{table}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
