//! `scripts/gpu_check --dry-run`: the GPU measurement script's own plumbing, run for real on the
//! CPU backend at the fixtures' sizes: every check runs and lands in the table it writes.

use std::path::Path;
use std::process::Command;

#[test]
fn gpu_check_dry_run_measures_every_row() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = std::env::temp_dir().join(format!("vidplay-gpu-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let table_path = dir.join("gpu_check.md");
    let out = Command::new("python3")
        .arg(root.join("scripts/gpu_check"))
        .args(["--dry-run", "--out", table_path.to_str().unwrap(), "--vidplay", env!("CARGO_BIN_EXE_vidplay")])
        .env("CUBECL_AUTOTUNE_LEVEL", "minimal")
        .output()
        .expect("run scripts/gpu_check");
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "gpu_check --dry-run failed:\n{log}");
    let table = std::fs::read_to_string(&table_path).unwrap();
    assert!(table.contains("| check | implementation | device |"), "{table}");
    let row = |check: &str, implementation: &str| -> String {
        table
            .lines()
            .find(|l| l.starts_with(&format!("| {check} | {implementation} |")))
            .unwrap_or_else(|| panic!("no {check} / {implementation} row:\n{table}"))
            .to_string()
    };
    for check in ["SD-Turbo", "svd-xt (resident memory)", "svd-xt (low memory)", "Wan 2.1 1.3B", "built-in model"] {
        let r = row(check, "Burn");
        assert!(r.contains("| cpu |") && r.contains("| ok"), "{r}");
        assert!(r.contains(" s |"), "timed: {r}");
    }
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
        let r = row(check, "diffusers");
        assert!(r.contains("| ok") || r.contains("skipped: torch/diffusers not installed"), "{r}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
