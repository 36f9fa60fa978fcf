//! Mutation fuzzing of what strangers control: the prompt parser, job requests (JSON and
//! multipart, through the real router and queue) and image decoding. Each target starts from
//! its committed corpus (`tests/fuzz_corpus/TARGET/`), runs every entry, then mutates entries
//! (bit flips, interesting bytes, inserts, deletes, duplicated ranges, splices, truncation) for
//! a bounded time, `VIDPLAY_FUZZ_SECONDS` per target (default 10). Deterministic for a seed
//! (`VIDPLAY_FUZZ_SEED`). The property: no panic, and the server never answers 5xx. A failing
//! input is written to `target/fuzz-failures/` and named in the message.

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use model::rng::Rng;
use server::faults::Faults;
use server::web::security::Access;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tower::ServiceExt;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let entries: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!entries.is_empty(), "empty corpus {}", dir.display());
    entries
}

fn budget() -> Duration {
    let secs = std::env::var("VIDPLAY_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    Duration::from_secs_f64(secs)
}

fn seed() -> u64 {
    std::env::var("VIDPLAY_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed)
}

const INTERESTING: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, b'"', b'\\', b'\n', b'-', b'9'];

/// One random change to `input` (another corpus entry may be spliced in).
fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = *rng.pick(&INTERESTING);
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                out.splice(i..i, bytes);
            }
            3 if len > 1 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                out.drain(i..i + n);
            }
            4 if len > 1 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let copy = out[i..i + n].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, copy);
            }
            5 => {
                let other = rng.pick(corpus);
                if !other.is_empty() {
                    let i = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - i).min(512));
                    let at = rng.below(len + 1);
                    out.splice(at..at, other[i..i + n].iter().copied());
                }
            }
            6 if len > 0 => out.truncate(rng.below(len)),
            _ => {
                // A 32-bit field set to an extreme (sizes in headers, lengths).
                if len >= 4 {
                    let i = rng.below(len - 3);
                    let v: u32 = *rng.pick(&[0, 1, 0x7fff_ffff, 0xffff_ffff, 100_000, 65_535]);
                    out[i..i + 4].copy_from_slice(&v.to_be_bytes());
                }
            }
        }
    }
    out
}

fn save_failure(target: &str, input: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!(
        "{target}-{:016x}",
        model::rng::mix(input.iter().fold(0u64, |h, &b| h.rotate_left(5) ^ b as u64))
    ));
    let _ = std::fs::write(&path, input);
    path
}

/// Runs `check` on every corpus entry, then on mutations until the time is up.
fn fuzz(target: &str, mut check: impl FnMut(&[u8])) -> usize {
    let corpus = corpus(target);
    let mut rng = Rng::new(seed() ^ model::rng::mix(target.len() as u64));
    let deadline = Instant::now() + budget();
    let mut runs = 0;
    let mut run = |input: &[u8], runs: &mut usize| {
        *runs += 1;
        if catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
            panic!("{target}: a panic on the input saved to {}", save_failure(target, input).display());
        }
    };
    for entry in &corpus {
        run(entry, &mut runs);
    }
    while Instant::now() < deadline {
        let base = rng.below(corpus.len());
        let input = mutate(&mut rng, &corpus[base], &corpus);
        run(&input, &mut runs);
    }
    eprintln!("{target}: {runs} inputs, no panic");
    runs
}

#[test]
fn prompt_parser() {
    let runs = fuzz("prompt", |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let prompt = model::builtin::prompt::parse(&text);
        let _ = prompt.understood();
        let _ = app::limits::check_text("the prompt", &text, app::limits::MAX_PROMPT_CHARS);
    });
    assert!(runs > 0);
}

#[test]
fn image_decoding() {
    fuzz("image", |bytes| {
        if let Ok(img) = server::media::input::decode(bytes, "fuzz") {
            assert!(img.width() <= server::media::input::MAX_SIDE && img.height() <= server::media::input::MAX_SIDE);
            let _ = server::media::input::fit_within(img, 64);
        }
    });
}

#[test]
fn json_job_requests() {
    fuzz("json", |bytes| {
        if let Ok(params) = serde_json::from_slice::<app::types::JobParams>(bytes)
            && app::limits::check_params(&params).is_ok()
        {
            // What passes the table can be stored and read back.
            let stored = serde_json::to_string(&params).unwrap();
            assert_eq!(serde_json::from_str::<app::types::JobParams>(&stored).unwrap(), params);
        }
    });
}

/// Job requests through the real router and queue (the model is left out, so accepted jobs
/// fail at once instead of running): never a 5xx, never a panic.
#[test]
fn job_requests_through_the_server() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let data = data_dir("fuzz");
    let models = data.with_extension("models");
    std::fs::create_dir_all(&models).unwrap();
    let app = runtime.block_on(async {
        let opts = server::web::ServeOptions {
            database_url: None,
            media: None,
            media_endpoint: None,
            worker: Some(server::queue::WorkerSetup::new("test".into(), vec!["cpu".into()])),
            addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.clone(),
            site_root: site_root(),
            seed_examples: false,
            models_dir: Some(models),
            access: Access::local(),
            model_memory_mib: 4096,
            faults: Faults::default(),
            visual_min_similarity: server::visual::MIN_SIMILARITY,
        };
        let config = model::builtin::pipeline::BuiltinModel::config_of(None).unwrap();
        server::web::build(&opts, config, || Err(anyhow::anyhow!("no model while fuzzing"))).await.unwrap().0
    });
    for (target, content_type) in
        [("json", "application/json".to_string()), ("multipart", format!("multipart/form-data; boundary={BOUNDARY}"))]
    {
        fuzz(target, |bytes| {
            let req = Request::post("/api/jobs")
                .header(header::CONTENT_TYPE, &content_type)
                .body(Body::from(bytes.to_vec()))
                .unwrap();
            let status = runtime.block_on(async { app.clone().oneshot(req).await.unwrap().status() });
            assert!(!status.is_server_error(), "{target}: {status}");
            assert!(status == StatusCode::CREATED || status.is_client_error(), "{target}: {status}");
        });
    }
    let _ = std::fs::remove_dir_all(Path::new(&data));
}
