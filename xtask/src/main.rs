//! Builds the playground's browser assets: `cargo xtask site [--release]` (alias in
//! .cargo/config.toml) compiles `frontend` to wasm, splits it per page, generates its JS
//! bindings and copies the stylesheet and public files into the site directory the server
//! serves (target/site).
//!
//! The split: every page is a lazy route (`app/src/lib.rs`), and `wasm_split_cli_support` (what
//! `cargo leptos --split` runs) cuts the linked wasm (built with `--emit-relocs`, so its
//! references can be followed) into the main module, one module per page and chunks of code
//! pages share, with a loader script and a manifest (`__wasm_split_manifest.json`) from which
//! the server preloads the page's modules; wasm-bindgen then runs on the main module. The files
//! load each other by fixed relative names, so the bundle is a folder: `pkg/vidplay/` for a
//! development build.
//!
//! A release build also shrinks every module with `wasm-opt -Oz` (binaryen; `scripts/setup`
//! installs it into tools/), names the folder after its content (`pkg/vidplay.HASH/`, so
//! browsers may cache its files for good; the name is in `pkg/bundle.txt`, which the server
//! reads) and writes brotli and gzip copies next to each file for the server to send as they
//! are.

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
    // `cargo rustc` adds the link flag to this crate's link alone, keeping the configured
    // RUSTFLAGS (a RUSTFLAGS variable would replace them).
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["rustc", "-p", "frontend", "--lib", "--target", "wasm32-unknown-unknown", "--profile", profile])
        .args(["--", "-Clink-args=--emit-relocs"])
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
    // Bundles of earlier builds go; only this one is served.
    if pkg.exists() {
        std::fs::remove_dir_all(&pkg)?;
    }
    let staging = pkg.join(NAME);
    std::fs::create_dir_all(&staging)?;

    let raw = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let main = target_dir.join(format!("{NAME}_split_main.wasm"));
    let mut options = wasm_split_cli_support::Options::new(&raw);
    options.output_dir = &staging;
    options.main_out_path = &main;
    options.main_module = MAIN_MODULE;
    options.link_name = SPLIT_LOADER;
    let split = wasm_split_cli_support::transform(options).map_err(|e| anyhow::anyhow!("splitting the wasm: {e:#}"))?;
    let manifest: std::collections::BTreeMap<_, _> = split.prefetch_map.into_iter().collect();
    std::fs::write(staging.join("__wasm_split_manifest.json"), serde_json::to_string(&manifest)?)?;

    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen
        .input_path(&main)
        .web(true)?
        .out_name(NAME)
        .keep_lld_exports(true)
        .demangle(false)
        .debug(!release)
        .keep_debug(!release);
    bindgen.generate(&staging).map_err(|e| anyhow::anyhow!("wasm-bindgen: {e:#}"))?;
    std::fs::copy(root.join("style/main.css"), staging.join(format!("{NAME}.css")))
        .context("copying style/main.css")?;
    if release {
        shrink(&root, &staging.join(format!("{NAME}_bg.wasm")))?;
        for module in &split.split_modules {
            shrink(&root, module)?;
        }
        let name = content_name(&staging)?;
        let bundle = pkg.join(&name);
        std::fs::rename(&staging, &bundle)?;
        let mut total_br = 0;
        for entry in std::fs::read_dir(&bundle)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "js" || e == "wasm" || e == "css" || e == "json") {
                precompress(&path)?;
                let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
                let br = path.with_file_name(format!("{}.br", path.file_name().unwrap().to_string_lossy()));
                total_br += size(&br);
                println!("{}: {} bytes, {} with brotli", path.display(), size(&path), size(&br));
            }
        }
        println!("{} files of the bundle: {total_br} bytes with brotli", bundle.display());
        std::fs::write(pkg.join("bundle.txt"), format!("{name}\n"))?;
    }
    copy_dir(&root.join("public"), &site)?;
    println!("site written to {}", site.display());
    Ok(())
}

/// The generated bindings, which the split loader imports `initSync` from.
const MAIN_MODULE: &str = "./vidplay.js";
/// The loader's name where Leptos looks for it (`HydrationScripts` without hashed file names).
const SPLIT_LOADER: &str = "./__wasm_split.______________________.js";

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
        .output();
    match status {
        Ok(o) if o.status.success() => {
            std::fs::rename(&out, wasm)?;
            Ok(())
        }
        // Its warnings (one per name subsection of a split module it does not know) only
        // when it fails.
        Ok(o) => bail!("wasm-opt failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            eprintln!("warning: wasm-opt not found ({e}); the wasm is not shrunk. scripts/setup installs it.");
            Ok(())
        }
    }
}

/// `vidplay.HASH`: a hash of the bundle's files, names and contents in name order (FNV-1a, 64
/// bits).
fn content_name(dir: &Path) -> anyhow::Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in files {
        let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        for b in name.bytes().chain(bytes) {
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
