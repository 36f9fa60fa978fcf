//! Gallery search latency: fills a temporary SQLite store with videos through the real
//! `GalleryStore::insert_video`, then times `GalleryStore::videos` for common, rare and prefix
//! words, no text, filters and a second page, and prints p50/p95/max per query in milliseconds.
//! About 3% of the videos are older than videos saved before them, and about 1% share their
//! millisecond with another, so the gallery order is not the insertion order.
//!
//! `cargo bench -p server --bench gallery_search [-- VIDEOS [RUNS]]` (defaults: 100000, 200).

use app::types::{JobParams, Mode, Video, VideoQuery};
use model::rng::mix;
use server::storage::{GalleryStore, SqliteStore};
use std::time::Instant;

const COLORS: [&str; 8] = ["red", "blue", "green", "yellow", "white", "orange", "purple", "black"];
const SUBJECTS: [&str; 6] = ["ball", "square", "star", "circle", "triangle", "bird"];
const MOTIONS: [&str; 5] = ["bouncing", "moving left", "moving right", "spinning", "falling"];
const PLACES: [&str; 5] = ["on grass", "in the sky", "over water", "on sand", "in a city street"];
/// Each in about 1 prompt in 2,000.
const RARE: [&str; 4] = ["zebra", "aurora", "volcano", "lighthouse"];

fn prompt(r: u64) -> String {
    let pick = |words: &[&'static str], shift: u32| words[((r >> shift) % words.len() as u64) as usize];
    let mut p = format!("a {} {} {} {}", pick(&COLORS, 0), pick(&SUBJECTS, 8), pick(&MOTIONS, 16), pick(&PLACES, 24));
    // "cinematic" in about 95% of prompts, "slow motion" in about 20%.
    if !(r >> 32).is_multiple_of(20) {
        p.push_str(", cinematic");
    }
    if (r >> 40).is_multiple_of(5) {
        p.push_str(", slow motion");
    }
    if (r >> 44).is_multiple_of(500) {
        p.push_str(&format!(", {}", pick(&RARE, 52)));
    }
    p
}

fn video(i: u64) -> Video {
    let r = mix(i);
    // One video a second, but about 3% were saved late (older than videos inserted before them)
    // and about 1% share their millisecond with the previous one.
    let mut created_ms = 1_700_000_000_000 + i as i64 * 1000;
    match (r >> 56) % 100 {
        0..=2 => created_ms -= 1000 * (1 + (r % 5000) as i64),
        3 => created_ms -= 1000,
        _ => {}
    }
    let mode = match (r >> 60) % 8 {
        0 => Mode::ImageToVideo,
        1 => Mode::TextToImage,
        _ => Mode::TextToVideo,
    };
    let mut params = JobParams { prompt: prompt(r), seed: Some(r), ..Default::default() };
    // One video in a hundred by another model, one in a thousand by a third.
    if mix(r).is_multiple_of(100) {
        params.model = "sd-turbo".into();
    } else if mix(r ^ 1).is_multiple_of(1000) {
        params.model = "svd".into();
    }
    let metadata = app::results::ResultMeta::from_value(serde_json::json!({
        "model": params.model, "mode": mode.as_str(), "prompt": params.prompt, "seed": r,
        "understood": {"subject": "ball", "color": "red", "motion": "bouncing"},
        "parameters": params, "frames": 16, "fps": 8, "duration_s": 2.0,
        "resolution": {"native": [64, 64], "display": [512, 512], "upscale_filter": "lanczos3"},
        "device": "cpu", "timings": {"load_s": 0.01, "sampling_s": 1.5, "encode_s": 0.2, "total_s": 1.71},
        "created_unix": created_ms / 1000, "vidplay_version": "0.1.0",
    }));
    Video {
        // Ids in random order, so ties in created_ms are not broken by insertion order.
        id: format!("{:016x}", mix(r)),
        mode,
        params,
        created_ms,
        favorite: (r >> 36).is_multiple_of(10),
        owner: String::new(),
        metadata,
        scores: None,
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let videos = args.first().copied().unwrap_or(100_000);
    let runs = args.get(1).copied().unwrap_or(200).max(1) as usize;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let dir = std::env::temp_dir().join(format!("vidplay-bench-search-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = rt.block_on(bench(&dir, videos, runs));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn bench(dir: &std::path::Path, videos: u64, runs: usize) -> anyhow::Result<()> {
    let store = SqliteStore::open(&dir.join("vidplay.db")).await?;
    let t = Instant::now();
    for i in 0..videos {
        store.insert_video(video(i)).await?;
    }
    println!("inserted {videos} videos in {:.1} s", t.elapsed().as_secs_f64());

    let q = |text: &str| VideoQuery { q: text.into(), limit: 24, ..Default::default() };
    let mut queries: Vec<(&str, VideoQuery)> = vec![
        ("common word (cinematic)", q("cinematic")),
        ("two common words (cinematic ball)", q("cinematic ball")),
        ("medium word (slow)", q("slow")),
        ("rare word (zebra)", q("zebra")),
        ("word prefix (bou)", q("bou")),
        ("no text", q("")),
        ("mode filter (image-to-video)", VideoQuery { mode: Some(Mode::ImageToVideo), ..q("") }),
        ("common word + mode", VideoQuery { mode: Some(Mode::ImageToVideo), ..q("cinematic") }),
        ("favorites", VideoQuery { favorites: true, ..q("") }),
        ("common word + favorites", VideoQuery { favorites: true, ..q("cinematic") }),
        ("rare word + mode", VideoQuery { mode: Some(Mode::TextToVideo), ..q("aurora") }),
        // The worst case: a filter that none of the matches passes.
        ("common word + unknown model", VideoQuery { model: Some("none".into()), ..q("cinematic") }),
        ("common word + rare model (1%)", VideoQuery { model: Some("sd-turbo".into()), ..q("cinematic") }),
        ("common word + very rare model (0.1%)", VideoQuery { model: Some("svd".into()), ..q("cinematic") }),
        ("common word + common model (99%)", VideoQuery { model: Some("vidplay-toy-1".into()), ..q("cinematic") }),
        ("rare word + common model", VideoQuery { model: Some("vidplay-toy-1".into()), ..q("zebra") }),
    ];
    // Second pages: the cursor is the first page's `next`.
    for (name, first) in [("page 2, common word", q("cinematic")), ("page 2, no text", q(""))] {
        let next = store.videos(first.clone()).await?.next;
        queries.push((name, VideoQuery { before: next, ..first }));
    }

    println!("{runs} runs per query, limit 24, ms\n");
    println!("| query | results | p50 | p95 | max |\n|---|---|---|---|---|");
    for (name, query) in queries {
        let results = store.videos(query.clone()).await?.videos.len();
        let mut ms = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            std::hint::black_box(store.videos(query.clone()).await?);
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        println!("| {name} | {results} | {:.2} | {:.2} | {:.2} |", at(0.5), at(0.95), ms[ms.len() - 1]);
    }
    Ok(())
}
