//! `vidplay load-bench`: the web node under load, on SQLite (one machine, the embedded worker)
//! and on PostgreSQL with S3 media (a web node and two `vidplay worker` processes). A gallery
//! of `--videos` videos is made first (records only: the gallery's queries are what is
//! measured); then `--clients` clients read the gallery, search it and follow live progress
//! while jobs run, for `--seconds`. Prints p50/p99 request latency and search p95 per store.
//! Starts its own throwaway PostgreSQL and SeaweedFS (see [`crate::services`]).

use crate::services::postgres::PgCluster;
use crate::services::seaweedfs::SeaweedFs;
use crate::storage::Store;
use crate::storage::conformance::video;
use anyhow::Context;
use app::types::Mode;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(clap::Args)]
pub struct LoadBenchArgs {
    /// Videos in the gallery.
    #[arg(long, default_value_t = 100_000)]
    videos: usize,
    /// Clients at once (half of them also follow live progress).
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Seconds of load per store.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Only this store: sqlite or postgres.
    #[arg(long)]
    only: Option<String>,
}

const WORDS: [&str; 24] = [
    "red", "blue", "green", "yellow", "ball", "star", "square", "balloon", "bouncing", "spinning", "moving", "left",
    "right", "camera", "pans", "snow", "night", "ocean", "grass", "field", "sky", "slowly", "fast", "zebra",
];

/// A prompt of 4-9 words from [`WORDS`], the same for the same `i`.
fn prompt(i: u64) -> String {
    let r = model::rng::mix(i * 7919 + 13);
    let n = 4 + (r % 6) as usize;
    (0..n).map(|k| WORDS[((r >> (5 * k + 3)) % WORDS.len() as u64) as usize]).collect::<Vec<_>>().join(" ")
}

async fn fill(store: &dyn Store, n: usize) -> anyhow::Result<f64> {
    let t = Instant::now();
    for i in 0..n {
        let mut v = video(
            &format!("{:016x}", 0xb000_0000_0000_0000u64 + i as u64),
            1_000_000 + i as i64 * 1000,
            &prompt(i as u64),
            Mode::TextToVideo,
        );
        v.favorite = i % 11 == 0;
        store.insert_video(v).await?;
        if i > 0 && i % 20_000 == 0 {
            eprintln!("  {i} videos ({:.0} s)", t.elapsed().as_secs_f64());
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[String], env: &[(&'static str, String)]) -> anyhow::Result<(Proc, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    Ok((Proc(child), line))
}

/// Latencies in milliseconds, sorted.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Measured {
    requests: Vec<f64>,
    searches: Vec<f64>,
    events: usize,
    jobs_done: usize,
}

/// `clients` clients against `base` for `seconds`, while a feeder keeps jobs queued.
async fn load(base: &str, clients: usize, seconds: u64) -> anyhow::Result<Measured> {
    crate::media::s3::use_ring_for_tls();
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients * 2).build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let searches = Arc::new(Mutex::new(Vec::new()));
    let events = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // Keeps a few short jobs queued, so workers run and progress flows.
    let submitted = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let (http, base, stop, submitted) = (http.clone(), base.to_string(), stop.clone(), submitted.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = serde_json::json!({"prompt": prompt(i), "steps": 4, "seed": i});
                if let Ok(r) = http.post(format!("{base}/api/jobs")).json(&body).send().await
                    && r.status().as_u16() == 201
                    && let Ok(job) = r.json::<serde_json::Value>().await
                {
                    submitted.lock().await.push(job["id"].as_str().unwrap_or_default().to_string());
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }
    for c in 0..clients {
        let (http, base, stop, requests, searches, events) =
            (http.clone(), base.to_string(), stop.clone(), requests.clone(), searches.clone(), events.clone());
        tasks.push(tokio::spawn(async move {
            // Half the clients keep the live progress stream open, as an open page does.
            let stream = if c % 2 == 0 {
                let (http, base, stop, events) = (http.clone(), base.clone(), stop.clone(), events.clone());
                Some(tokio::spawn(async move {
                    use futures_util::StreamExt;
                    let Ok(r) = http.get(format!("{base}/api/jobs/events")).send().await else { return };
                    let mut body = r.bytes_stream();
                    while !stop.load(Ordering::Relaxed) {
                        match tokio::time::timeout(Duration::from_millis(500), body.next()).await {
                            Ok(Some(Ok(chunk))) => {
                                events
                                    .fetch_add(chunk.windows(6).filter(|w| w == b"event:").count(), Ordering::Relaxed);
                            }
                            Ok(_) => return,
                            Err(_) => {}
                        }
                    }
                }))
            } else {
                None
            };
            let mut k = c as u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                // A gallery page, the queue, a search (in that rhythm).
                let (path, is_search) = match k % 3 {
                    0 => ("/api/videos?limit=24".to_string(), false),
                    1 => ("/api/jobs".to_string(), false),
                    _ => {
                        let w = model::rng::mix(k * 31 + c as u64);
                        let q = format!("{} {}", WORDS[(w % 24) as usize], &WORDS[((w >> 8) % 24) as usize][..3]);
                        (format!("/api/videos?limit=24&q={}", q.replace(' ', "+")), true)
                    }
                };
                let t = Instant::now();
                let ok = match http.get(format!("{base}{path}")).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                if ok {
                    requests.lock().await.push(ms);
                    if is_search {
                        searches.lock().await.push(ms);
                    }
                }
            }
            if let Some(s) = stream {
                let _ = s.await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut jobs_done = 0;
    for id in submitted.lock().await.iter() {
        if let Ok(r) = http.get(format!("{base}/api/jobs/{id}")).send().await
            && let Ok(job) = r.json::<serde_json::Value>().await
            && job["state"] == "done"
        {
            jobs_done += 1;
        }
    }
    let sort = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    Ok(Measured {
        requests: sort(requests.lock().await.clone()),
        searches: sort(searches.lock().await.clone()),
        events: events.load(Ordering::Relaxed),
        jobs_done,
    })
}

fn row(name: &str, fill_s: f64, m: &Measured, seconds: u64) -> String {
    format!(
        "| {name} | {fill_s:.0} s | {} ({:.0}/s) | {:.1} | {:.1} | {:.1} | {} | {} |",
        m.requests.len(),
        m.requests.len() as f64 / seconds as f64,
        percentile(&m.requests, 0.5),
        percentile(&m.requests, 0.99),
        percentile(&m.searches, 0.95),
        m.events,
        m.jobs_done
    )
}

pub fn run(a: LoadBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.clients >= 1 && a.seconds >= 1, "--clients and --seconds must be at least 1");
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let site = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site");
        let common = |extra: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            v.extend(["--device", "cpu", "--models-dir", "/nonexistent-vidplay-models"].map(String::from));
            v
        };
        let mut rows = Vec::new();
        if a.only.as_deref().is_none_or(|o| o == "sqlite") {
            let data = std::env::temp_dir().join(format!("vidplay-load-sqlite-{}", crate::ids::new_id()));
            std::fs::create_dir_all(&data)?;
            eprintln!("SQLite: filling the gallery with {} videos", a.videos);
            let fill_s = {
                let store = crate::storage::SqliteStore::open(&data.join("vidplay.db")).await?;
                fill(&store, a.videos).await?
            };
            let args = common(&["serve", "--addr", "127.0.0.1:0", "--no-examples", "--data-dir", data.to_str().unwrap(), "--site-root", site.to_str().unwrap()]);
            let (_web, line) = spawn(&args, &[])?;
            let base = line.split_whitespace().find(|w| w.starts_with("http://")).context("no address")?.to_string();
            eprintln!("SQLite: {} clients for {} s", a.clients, a.seconds);
            let m = load(&base, a.clients, a.seconds).await?;
            rows.push(row("SQLite, embedded worker", fill_s, &m, a.seconds));
            let _ = std::fs::remove_dir_all(&data);
        }
        if a.only.as_deref().is_none_or(|o| o == "postgres") {
            let pg = PgCluster::start()?;
            let url = pg.create_database("load").await?;
            let weed = SeaweedFs::start().await?;
            weed.create_bucket("vidplay-load").await?;
            eprintln!("PostgreSQL: filling the gallery with {} videos", a.videos);
            let fill_s = {
                let store = crate::storage::PostgresStore::connect(&url, Duration::from_secs(10)).await?;
                fill(&store, a.videos).await?
            };
            let shared = ["--database-url", url.as_str(), "--media", "s3://vidplay-load/bench"];
            let env = weed.env();
            let mut web_args = vec!["serve", "--no-worker", "--addr", "127.0.0.1:0", "--no-examples", "--site-root", site.to_str().unwrap()];
            web_args.extend(shared);
            let (_web, line) = spawn(&common(&web_args), &env)?;
            let base = line.split_whitespace().find(|w| w.starts_with("http://")).context("no address")?.to_string();
            let mut workers = Vec::new();
            for name in ["load-1", "load-2"] {
                let mut w = vec!["worker", "--name", name];
                w.extend(shared);
                workers.push(spawn(&common(&w), &env)?.0);
            }
            eprintln!("PostgreSQL: {} clients for {} s", a.clients, a.seconds);
            let m = load(&base, a.clients, a.seconds).await?;
            rows.push(row("PostgreSQL + S3, two workers", fill_s, &m, a.seconds));
        }
        println!(
            "{} videos, {} clients (half following live progress), {} s each\n\n\
             | store | fill | requests | p50 ms | p99 ms | search p95 ms | events | jobs done |\n|---|---|---|---|---|---|---|---|",
            a.videos, a.clients, a.seconds
        );
        for r in rows {
            println!("{r}");
        }
        anyhow::Ok(())
    })
}
