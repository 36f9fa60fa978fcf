//! Builds the playground's browser assets: `cargo xtask site [--release]` (alias in
//! .cargo/config.toml) compiles `frontend` to wasm, generates its JS bindings and copies the
//! stylesheet and public files into the site directory the server serves (target/site).

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

const NAME: &str = "vidplay";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("site") => site(args.iter().any(|a| a == "--release")),
        _ => bail!("usage: cargo xtask site [--release]"),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn site(release: bool) -> anyhow::Result<()> {
    let root = root();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from);
    let profile = if release { "wasm-release" } else { "dev" };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "-p", "frontend", "--lib", "--target", "wasm32-unknown-unknown", "--profile", profile])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building the wasm bundle failed (is the wasm32-unknown-unknown target installed? scripts/setup adds it)");
    }
    let out_profile = if release { "wasm-release" } else { "debug" };
    let wasm = target_dir.join("wasm32-unknown-unknown").join(out_profile).join("frontend.wasm");
    let site = target_dir.join("site");
    let pkg = site.join("pkg");
    std::fs::create_dir_all(&pkg)?;
    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen
        .input_path(&wasm)
        .web(true)?
        .out_name(NAME)
        .debug(!release)
        .keep_debug(!release);
    bindgen.generate(&pkg).map_err(|e| anyhow::anyhow!("wasm-bindgen: {e:#}"))?;
    std::fs::copy(root.join("style/main.css"), pkg.join(format!("{NAME}.css"))).context("copying style/main.css")?;
    copy_dir(&root.join("public"), &site)?;
    println!("site written to {}", site.display());
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    if !from.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}
