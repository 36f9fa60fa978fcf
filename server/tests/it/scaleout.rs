//! Scaled out for real: a web node (`vidplay serve --no-worker`) and `vidplay worker`
//! processes sharing a throwaway PostgreSQL cluster and a SeaweedFS S3 bucket. Jobs are each
//! done exactly once by two workers; a worker killed with SIGKILL mid-job has its job finished
//! by another once its lease ends; PostgreSQL restarted mid-run loses nothing; a cancel on the
//! web node stops a job on a worker; steps and previews reach the web node's event stream.

use crate::common;

use serde_json::{Value, json};
use server::services::postgres::PgCluster;
use server::services::seaweedfs::SeaweedFs;
use server::services::shared;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What one test's processes share: a database and a bucket of its own, in the test binary's
/// shared PostgreSQL cluster and SeaweedFS server, or in a cluster of its own.
struct Services {
    /// The test's own cluster, when it stops or restarts it.
    own_pg: Option<PgCluster>,
    weed: &'static SeaweedFs,
    url: String,
    media: String,
}

impl Services {
    async fn start(name: &str) -> Services {
        let url = shared::database(name).await.unwrap();
        Self::with(name, url, None).await
    }

    /// With a PostgreSQL cluster of its own (for a test that restarts it).
    async fn start_own_postgres(name: &str) -> Services {
        let pg = PgCluster::start().unwrap();
        let url = pg.create_database(name).await.unwrap();
        Self::with(name, url, Some(pg)).await
    }

    async fn with(name: &str, url: String, own_pg: Option<PgCluster>) -> Services {
        let (weed, bucket) = shared::bucket("vidplay-scale").await.unwrap();
        Services { own_pg, weed, url, media: format!("s3://{bucket}/{name}") }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vidplay"));
        cmd.args(args)
            .args(["--database-url", &self.url, "--media", &self.media, "--device", "cpu"])
            .arg("--models-dir")
            .arg(std::env::temp_dir().join("vidplay-scaleout-no-models"))
            .envs(self.weed.env())
            .env_remove("VIDPLAY_TOKEN")
            .env_remove("VIDPLAY_TEST_FAULTS")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd
    }

    fn web(&self) -> Process {
        let site = common::site_root();
        let mut cmd = self.command(&[
            "serve",
            "--no-worker",
            "--addr",
            "127.0.0.1:0",
            "--no-examples",
            "--site-root",
            site.to_str().unwrap(),
        ]);
        // Its own data directory, not the working directory's `data`.
        cmd.arg("--data-dir").arg(common::data_dir(&format!("scaleout-web-{}", self.media.replace('/', "-"))));
        let mut p = Process::spawn(&mut cmd);
        let line = p.first_line.clone();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        p.addr = Some(addr.parse().unwrap());
        p
    }

    fn worker(&self, name: &str, lease_seconds: u64) -> Process {
        Process::spawn(&mut self.command(&["worker", "--name", name, "--lease-seconds", &lease_seconds.to_string()]))
    }

    /// A worker that prepares every model's kernels while idle, as it does on a GPU.
    fn warming_worker(&self, name: &str, lease_seconds: u64) -> Process {
        let lease = lease_seconds.to_string();
        Process::spawn(&mut self.command(&["worker", "--name", name, "--lease-seconds", &lease, "--warm-up", "always"]))
    }

    /// The database, read directly.
    async fn db(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.url).await.unwrap()
    }
}

struct Process {
    child: Child,
    addr: Option<SocketAddr>,
    first_line: String,
    /// Kept open: the process's stdout is not a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Process {
    fn spawn(cmd: &mut Command) -> Process {
        std::fs::create_dir_all(std::env::temp_dir().join("vidplay-scaleout-no-models")).unwrap();
        let mut child = cmd.spawn().expect("start vidplay");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first_line = String::new();
        stdout.read_line(&mut first_line).unwrap();
        assert!(!first_line.is_empty(), "vidplay exited at start: {:?}", child.wait());
        Process { child, addr: None, first_line, _stdout: stdout }
    }

    /// Sends the process `signal` (`STOP` freezes every thread of it, heartbeats too; `CONT`
    /// lets it go on).
    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    fn kill9(&mut self) {
        let status = Command::new("kill").args(["-KILL", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let _ = self.child.wait();
    }

    /// One HTTP/1.1 request to the web node; the status and the body.
    fn request(&self, method: &str, path: &str, json: Option<Value>) -> (u16, String) {
        let addr = self.addr.expect("a web node");
        let mut s = TcpStream::connect(addr).unwrap();
        let body = json.map(|j| j.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let out = String::from_utf8_lossy(&out);
        let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    /// Queues a job (waiting while the queue is full); its id.
    fn submit(&self, job: Value) -> String {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let (status, body) = self.request("POST", "/api/jobs", Some(job.clone()));
            if status == 201 {
                return serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
            }
            assert!(status == 429 || status == 503, "{status}: {body}");
            assert!(Instant::now() < deadline, "the queue stayed full");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn job(&self, id: &str) -> Value {
        let (_, body) = self.request("GET", &format!("/api/jobs/{id}"), None);
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    fn wait_job(&self, id: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let job = self.job(id);
            if done(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} never got there: {job}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn video_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut before = String::new();
        loop {
            let (_, page) = self.request("GET", &format!("/api/videos?limit=100{before}"), None);
            let page: Value = serde_json::from_str(&page).unwrap();
            ids.extend(page["videos"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()));
            match page["next"].as_str() {
                Some(next) => before = format!("&before={next}"),
                None => return ids,
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn finished(j: &Value) -> bool {
    matches!(j["state"].as_str(), Some("done" | "failed" | "cancelled"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_do_thirty_jobs_each_exactly_once() {
    let services = Services::start("thirty").await;
    let web = services.web();
    let _w1 = services.worker("w1", 30);
    let _w2 = services.warming_worker("w2", 30);
    let ids: Vec<String> = (0..30)
        .map(|i| web.submit(json!({"prompt": format!("a red ball number {i}"), "steps": 1, "seed": i})))
        .collect();
    for id in &ids {
        let job = web.wait_job(id, Duration::from_secs(600), finished);
        assert_eq!(job["state"], "done", "{job}");
        assert_eq!(job["video_id"].as_str(), Some(id.as_str()));
    }
    let mut videos = web.video_ids();
    videos.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(videos, expected, "exactly one video per job");
    // Both workers took jobs, each job was taken once, and the results are in the bucket.
    let db = services.db().await;
    let per_worker: Vec<(String, i64)> =
        sqlx::query_as("SELECT worker, COUNT(*) FROM jobs GROUP BY worker ORDER BY worker")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(per_worker.len(), 2, "{per_worker:?}");
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT DISTINCT attempts FROM jobs").fetch_all(&db).await.unwrap();
    assert_eq!(attempts, [1]);
    let (status, _) = web.request("GET", &format!("/media/{}/video.mp4", ids[0]), None);
    assert_eq!(status, 200, "media stream from the bucket");
    // The queue page's health lists both workers.
    let (_, health) = web.request("GET", "/api/health", None);
    let health: Value = serde_json::from_str(&health).unwrap();
    let mut names: Vec<&str> =
        health["workers"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["w1", "w2"], "{health}");
    assert_eq!(health["stalled"], false);
    // And the queue page shows them.
    let (status, page) = web.request("GET", "/queue", None);
    assert_eq!(status, 200);
    assert!(
        page.contains("Workers")
            && page.contains("w1")
            && page.contains("w2")
            && page.contains("loaded: vidplay-toy-1"),
        "{page}"
    );
    // w2 prepares its two models (the built-in one and its editor) when idle, and reports how
    // far it has come with its heartbeats; w1 prepares nothing.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let warm_ups = loop {
        let (_, health) = web.request("GET", "/api/health", None);
        let health: Value = serde_json::from_str(&health).unwrap();
        let by_name = |name: &str| {
            health["workers"].as_array().unwrap().iter().find(|w| w["name"] == name).unwrap()["warm_up"].clone()
        };
        let warm_ups = (by_name("w1"), by_name("w2"));
        if warm_ups.1["done"] == 2 || std::time::Instant::now() > deadline {
            break warm_ups;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(warm_ups, (Value::Null, json!({"done": 2, "total": 2})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_job_is_finished_by_another_after_its_lease() {
    let services = Services::start("killed").await;
    let web = services.web();
    let mut first = services.worker("first", 2);
    let id = web.submit(json!({"prompt": "a blue square spinning", "steps": 60, "seed": 5}));
    web.wait_job(&id, Duration::from_secs(120), |j| j["state"] == "running" && j["step"].as_u64() > Some(0));
    first.kill9();
    let _second = services.worker("second", 2);
    let job = web.wait_job(&id, Duration::from_secs(300), finished);
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(web.video_ids(), std::slice::from_ref(&id));
    let db = services.db().await;
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM jobs WHERE id = $1").bind(&id).fetch_one(&db).await.unwrap();
    assert_eq!(attempts, 2, "taken again after the first worker's lease ended");
}

/// A worker frozen (SIGSTOP) while it writes a result, past its lease: another takes the job
/// over and publishes its own result; the first, continued (SIGCONT), writes its remaining
/// files and tries to publish them, yet neither overwrites nor removes any of the result, and
/// leaves none of its own files behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_frozen_past_its_lease_cannot_touch_the_result_of_the_one_that_took_over() {
    let services = Services::start("frozen").await;
    let web = services.web();
    let first = Process::spawn(
        services
            .command(&["worker", "--name", "first", "--lease-seconds", "2"])
            .env("VIDPLAY_TEST_FAULTS", "pause-while-writing=300"),
    );
    let id = web.submit(json!({"prompt": "a red ball moving right", "steps": 2, "seed": 9, "frames": 8}));
    let (bucket, prefix) = services.media.strip_prefix("s3://").unwrap().split_once('/').unwrap();
    let vars = services.weed.env().into_iter().map(|(k, v)| (k.to_string(), v));
    let media = server::media::s3::open_with(bucket, prefix, None, vars).unwrap();
    use server::media::MediaStore;
    let runs = || async { media.list(&app::media_files::attempts_prefix(&id)).await.unwrap().len() };
    // Stopped midway through writing its files (one each 0.3 s).
    let deadline = Instant::now() + Duration::from_secs(120);
    while runs().await < 2 {
        assert!(Instant::now() < deadline, "the first worker wrote no files");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.signal("STOP");
    let _second = services.worker("second", 2);
    let job = web.wait_job(&id, Duration::from_secs(300), finished);
    assert_eq!(job["state"], "done", "{job}");
    let files = || {
        ["video.mp4", "video.gif", "poster.png", "frames.zip", "metadata.json", "frames/0007.png"].map(|name| {
            let (status, body) = web.request("GET", &format!("/media/{id}/{name}"), None);
            assert_eq!(status, 200, "{name}");
            body
        })
    };
    let published = files();

    first.signal("CONT");
    // It writes its other files, finds the job no longer its own and removes them.
    let deadline = Instant::now() + Duration::from_secs(60);
    while runs().await == 0 {
        assert!(Instant::now() < deadline, "the first worker never went on writing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while runs().await > 0 {
        assert!(Instant::now() < deadline, "the first worker left its files behind");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(files() == published, "the result is the second worker's, whole and untouched");
    assert_eq!(web.video_ids(), std::slice::from_ref(&id));
    let db = services.db().await;
    let (attempts, state): (i32, String) =
        sqlx::query_as("SELECT attempts, state FROM jobs WHERE id = $1").bind(&id).fetch_one(&db).await.unwrap();
    assert_eq!((attempts, state.as_str()), (2, "done"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run_loses_nothing() {
    let services = Services::start_own_postgres("restart").await;
    let pg = services.own_pg.as_ref().unwrap();
    let web = services.web();
    let _worker = services.worker("w", 20);
    let ids: Vec<String> =
        (0..4).map(|i| web.submit(json!({"prompt": format!("a yellow star {i}"), "steps": 12, "seed": i}))).collect();
    web.wait_job(&ids[0], Duration::from_secs(120), |j| j["state"] == "running" && j["step"].as_u64() > Some(0));
    pg.stop().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    pg.start_server().unwrap();
    for id in &ids {
        let job = web.wait_job(id, Duration::from_secs(300), finished);
        assert_eq!(job["state"], "done", "{job}");
    }
    let mut videos = web.video_ids();
    videos.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(videos, expected);
    // New work goes on after the restart.
    let after = web.submit(json!({"prompt": "a green star moving left", "steps": 1, "seed": 9}));
    assert_eq!(web.wait_job(&after, Duration::from_secs(120), finished)["state"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_the_web_node_stops_the_job_on_its_worker_and_steps_reach_the_page() {
    let services = Services::start("cancel").await;
    let web = services.web();
    let _worker = services.worker("w", 30);
    // The web node's event stream, open before the job starts.
    let addr = web.addr.unwrap();
    let mut events = TcpStream::connect(addr).unwrap();
    write!(events, "GET /api/jobs/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").unwrap();
    events.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let id = web.submit(json!({"prompt": "a blue square spinning", "steps": 200, "seed": 2}));
    // Steps (with previews now and then) made on the worker arrive on the web node.
    let mut reader = BufReader::new(events);
    let (mut steps, mut previews) = (0, 0);
    let mut line = String::new();
    while previews == 0 || steps < 3 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the event stream ended");
        if let Some(data) = line.strip_prefix("data: ")
            && let Ok(event) = serde_json::from_str::<Value>(data)
            && event["id"] == id.as_str()
            && event.get("step").is_some()
            && event.get("state").is_none()
        {
            steps += 1;
            previews += event["preview"].as_str().is_some_and(|p| p.starts_with("data:image/png;base64,")) as usize;
        }
    }
    let before = web.job(&id)["step"].as_u64().unwrap();
    let asked = Instant::now();
    let (status, body) = web.request("DELETE", &format!("/api/jobs/{id}"), None);
    assert!(status == 200 || status == 202, "{status}: {body}");
    let job = web.wait_job(&id, Duration::from_secs(30), finished);
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(asked.elapsed() < Duration::from_secs(10), "stopped within a few steps");
    assert!(job["step"].as_u64().unwrap() < 200 && before < 200);
    assert!(web.video_ids().is_empty());
}

/// A single-machine gallery of `n` clips (real MP4s and posters) in `data`, and two votes.
async fn local_gallery(data: &std::path::Path, n: usize) -> Vec<String> {
    use server::media::MediaStore;
    use server::storage::conformance::video;
    use server::storage::{GalleryStore, VoteStore};
    let store = server::storage::SqliteStore::open(&data.join("vidplay.db")).await.unwrap();
    let media = server::media::object::ObjectMedia::local(data).unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{:016x}", 0x5ca1_e000_0000_0000u64 + i as u64);
        let frames: Vec<image::RgbImage> = (0..4)
            .map(|f| {
                image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, (f * 60 + i) as u8]))
            })
            .collect();
        let mp4 = server::media::encode::encode_mp4(&frames, 8, "{}").unwrap();
        let poster = server::media::encode::encode_png(&frames[2], None).unwrap();
        media.put(&app::media_files::key(&id, app::media_files::MediaFile::Video), mp4.into()).await.unwrap();
        media.put(&app::media_files::key(&id, app::media_files::MediaFile::Poster), poster.into()).await.unwrap();
        let mut v =
            video(&id, 1_000 + i as i64, &format!("clip number {i} of a red ball"), app::types::Mode::TextToVideo);
        v.favorite = i % 7 == 0;
        store.insert_video(v).await.unwrap();
        ids.push(id);
    }
    for (i, pair) in ids.chunks(2).take(2).enumerate() {
        let vote = app::votes::Vote {
            id: format!("{:016x}", 0x707e_0000_0000_0000u64 + i as u64),
            created_ms: 5_000 + i as i64,
            comparison: None,
            voter: String::new(),
            axis: app::votes::VoteAxis::Quality,
            winner: pair[0].clone(),
            candidates: pair.to_vec(),
            reasons: vec![],
            blind: true,
        };
        store.cast_vote(vote).await.unwrap();
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gallery_of_fifty_videos_moves_in_resumably_and_checked() {
    let services = Services::start("moved").await;
    let data = std::env::temp_dir().join(format!("vidplay-migrate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    let ids = local_gallery(&data, 50).await;
    let migrate = |faults: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vidplay"));
        cmd.arg("migrate")
            .arg("--from")
            .arg(&data)
            .args(["--database-url", &services.url, "--media", &services.media])
            .envs(services.weed.env());
        if let Some(f) = faults {
            cmd.env("VIDPLAY_TEST_FAULTS", f);
        }
        cmd.output().unwrap()
    };
    // Stopped hard after 20 videos, then run again: it goes on where it stopped.
    let first = migrate(Some("abort-after-moved=20"));
    assert!(!first.status.success());
    let second = migrate(None);
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{out}{}", String::from_utf8_lossy(&second.stderr));
    assert!(out.contains("moved 30 videos") && out.contains("20 already there") && out.contains("2 votes"), "{out}");
    // A third run finds everything there.
    let third = migrate(None);
    assert!(
        String::from_utf8_lossy(&third.stdout).contains("moved 0 videos"),
        "{}",
        String::from_utf8_lossy(&third.stdout)
    );
    // The web node serves the moved gallery: every video, its order, its files, byte for byte.
    let web = services.web();
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(web.video_ids(), expected, "newest first, as before");
    let (_, page) = web.request("GET", "/api/videos?q=number%2017", None);
    assert!(page.contains(&ids[17]), "searchable: {page}");
    for id in [&ids[0], &ids[25], &ids[49]] {
        let (status, body) = web.request("GET", &format!("/media/{id}/poster.png"), None);
        let local = std::fs::read(data.join("media").join(id).join("poster.png")).unwrap();
        assert_eq!(status, 200);
        assert!(body == String::from_utf8_lossy(&local), "{id}: the poster differs");
    }
    let db = services.db().await;
    let favorites: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM favorites").fetch_one(&db).await.unwrap();
    assert_eq!(favorites, 8);
    // The source is untouched.
    assert!(data.join("vidplay.db").is_file() && data.join("media").join(&ids[0]).join("video.mp4").is_file());
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_never_overwrites_and_jobs_arrive_in_their_final_state() {
    use app::media_files::{MediaFile, key, upload_key};
    use app::types::{Job, JobState};
    use server::media::MediaStore;
    use server::storage::conformance::job;
    use server::storage::{JobStore, SqliteStore};
    let root = std::env::temp_dir().join(format!("vidplay-move-conflict-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (from, to) = (root.join("from"), root.join("to"));
    std::fs::create_dir_all(&from).unwrap();
    let ids = local_gallery(&from, 2).await;
    let source = SqliteStore::open(&from.join("vidplay.db")).await.unwrap();
    let source_media = server::media::object::ObjectMedia::local(&from).unwrap();
    let done =
        Job { state: JobState::Done, finished_ms: Some(9), video_id: Some(ids[0].clone()), ..job(&ids[0], 5, "a") };
    let held =
        Job { state: JobState::Done, finished_ms: Some(9), video_id: Some(ids[1].clone()), ..job(&ids[1], 5, "a") };
    let waiting = job("5ca1e0000000aaaa", 6, "b");
    let theirs = job("5ca1e0000000bbbb", 7, "c");
    for j in [&done, &held, &waiting, &theirs] {
        source.import_job(j.clone()).await.unwrap();
        source_media.put(&upload_key(&j.id), b"upload".to_vec().into()).await.unwrap();
    }
    // The target already holds other content under two of the names: the second video's
    // poster, and the upload of a waiting job.
    std::fs::create_dir_all(&to).unwrap();
    let target = SqliteStore::open(&to.join("vidplay.db")).await.unwrap();
    let target_media = server::media::object::ObjectMedia::local(&to).unwrap();
    let poster = key(&ids[1], MediaFile::Poster);
    target_media.put(&poster, b"someone else's poster".to_vec().into()).await.unwrap();
    target_media.put(&upload_key(&theirs.id), b"someone else's upload".to_vec().into()).await.unwrap();

    let faults = server::faults::Faults::default();
    for _ in 0..2 {
        let moved =
            server::cli::migrate::migrate(&source, &source_media, &target, &target_media, &faults).await.unwrap();
        assert_eq!(moved.conflicts, [poster.clone(), upload_key(&theirs.id)], "reported, each run");
    }
    let got = |k: String| {
        let media = &target_media;
        async move { media.get(&k, None).await.unwrap().map(|f| f.bytes.to_vec()) }
    };
    assert_eq!(got(poster.clone()).await.unwrap(), b"someone else's poster", "left as it was");
    assert_eq!(got(upload_key(&theirs.id)).await.unwrap(), b"someone else's upload");
    use server::storage::GalleryStore;
    assert!(target.video_exists(ids[0].clone()).await.unwrap());
    assert!(!target.video_exists(ids[1].clone()).await.unwrap(), "a video with a conflict is not moved");
    assert!(target.job(held.id.clone()).await.unwrap().is_none(), "nor its job");
    assert_eq!(target.job(done.id.clone()).await.unwrap(), Some(done), "moved in its final state");
    assert_eq!(target.job(waiting.id.clone()).await.unwrap().unwrap().state, JobState::Queued);
    assert_eq!(got(upload_key(&waiting.id)).await.unwrap(), b"upload");
    assert!(target.job(theirs.id.clone()).await.unwrap().is_none(), "a job whose upload conflicts is not moved");
    let _ = std::fs::remove_dir_all(&root);
}
