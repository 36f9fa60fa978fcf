//! Builds the playground's browser assets: `cargo xtask site [--release]` (alias in
//! .cargo/config.toml) compiles `frontend` to wasm, generates its JS bindings and copies the
//! stylesheet and public files into the site directory the server serves (target/site).
//!
//! A release build also shrinks the wasm with `wasm-opt -Oz` (binaryen; `scripts/setup`
//! installs it into tools/), names the bundle after its content (`vidplay.HASH.js`,
//! `vidplay.HASH_bg.wasm`, `vidplay.HASH.css`, so browsers may cache them for good; the name
//! is in `pkg/bundle.txt`, which the server reads) and writes brotli and gzip copies next to
//! each file for the server to send as they are.

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
        bail!(
            "building the wasm bundle failed (is the wasm32-unknown-unknown target installed? scripts/setup adds it)"
        );
    }
    let out_profile = if release { "wasm-release" } else { "debug" };
    let wasm = target_dir.join("wasm32-unknown-unknown").join(out_profile).join("frontend.wasm");
    let site = target_dir.join("site");
    let pkg = site.join("pkg");
    std::fs::create_dir_all(&pkg)?;
    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen.input_path(&wasm).web(true)?.out_name(NAME).debug(!release).keep_debug(!release);
    // Bundles of earlier builds go; only this one is served.
    if pkg.exists() {
        std::fs::remove_dir_all(&pkg)?;
    }
    std::fs::create_dir_all(&pkg)?;
    bindgen.generate(&pkg).map_err(|e| anyhow::anyhow!("wasm-bindgen: {e:#}"))?;
    std::fs::copy(root.join("style/main.css"), pkg.join(format!("{NAME}.css"))).context("copying style/main.css")?;
    if release {
        shrink(&root, &pkg.join(format!("{NAME}_bg.wasm")))?;
        let name = content_name(&pkg)?;
        for file in ["js", "css", "wasm"] {
            let (from, to) = match file {
                "wasm" => (format!("{NAME}_bg.wasm"), format!("{name}_bg.wasm")),
                ext => (format!("{NAME}.{ext}"), format!("{name}.{ext}")),
            };
            std::fs::rename(pkg.join(from), pkg.join(&to))?;
            precompress(&pkg.join(to))?;
        }
        std::fs::write(pkg.join("bundle.txt"), format!("{name}\n"))?;
        for file in ["js", "wasm", "css"] {
            let path = pkg.join(if file == "wasm" { format!("{name}_bg.wasm") } else { format!("{name}.{file}") });
            let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
            let br = path.with_file_name(format!("{}.br", path.file_name().unwrap().to_string_lossy()));
            println!("{}: {} bytes, {} with brotli", path.display(), size(&path), size(&br));
        }
    }
    copy_dir(&root.join("public"), &site)?;
    println!("site written to {}", site.display());
    Ok(())
}

/// `wasm-opt -Oz` in place: from tools/ (scripts/setup), else from PATH; skipped with a
/// warning when there is none.
fn shrink(root: &Path, wasm: &Path) -> anyhow::Result<()> {
    let local = root.join("tools/node_modules/.bin/wasm-opt");
    let tool = if local.exists() { local } else { PathBuf::from("wasm-opt") };
    let out = wasm.with_extension("opt.wasm");
    let status = Command::new(&tool)
        .arg("-Oz")
        .arg("--enable-bulk-memory")
        .arg("--enable-nontrapping-float-to-int")
        .arg("--enable-sign-ext")
        .arg("--enable-mutable-globals")
        .arg("--enable-reference-types")
        .arg(wasm)
        .arg("-o")
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {
            std::fs::rename(&out, wasm)?;
            Ok(())
        }
        Ok(s) => bail!("wasm-opt failed ({s})"),
        Err(e) => {
            eprintln!("warning: wasm-opt not found ({e}); the wasm is not shrunk. scripts/setup installs it.");
            Ok(())
        }
    }
}

/// `vidplay.HASH`: a hash of the bundle's three files (FNV-1a, 64 bits).
fn content_name(pkg: &Path) -> anyhow::Result<String> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in [format!("{NAME}.js"), format!("{NAME}_bg.wasm"), format!("{NAME}.css")] {
        for b in std::fs::read(pkg.join(&file)).with_context(|| format!("reading {file}"))? {
            hash = (hash ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Ok(format!("{NAME}.{hash:016x}"))
}

/// Writes FILE.br and FILE.gz beside FILE.
fn precompress(path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let bytes = std::fs::read(path)?;
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut br = brotli::CompressorWriter::new(Vec::new(), 1 << 16, 11, 22);
    br.write_all(&bytes)?;
    std::fs::write(path.with_file_name(format!("{name}.br")), br.into_inner())?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes)?;
    std::fs::write(path.with_file_name(format!("{name}.gz")), gz.finish()?)?;
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
