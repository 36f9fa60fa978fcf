//! A throwaway PostgreSQL cluster: the distribution's server binaries (`initdb`, `pg_ctl`),
//! a data directory under the temporary directory, one loopback port, no durability settings
//! (tests and benchmarks only). When run as root, the server runs as the `postgres` user, as
//! PostgreSQL requires.

use super::{free_ports, on_path, scratch_dir};
use anyhow::{Context, bail};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// The folder holding `initdb` and `pg_ctl`: `VIDPLAY_PG_BIN`, the newest
/// `/usr/lib/postgresql/*/bin` (Debian and Ubuntu), or `initdb` on the PATH.
fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("VIDPLAY_PG_BIN") {
        return Ok(dir.into());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    on_path("initdb")
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .context("PostgreSQL's server programs (initdb, pg_ctl) were not found: install PostgreSQL (scripts/setup does) or set VIDPLAY_PG_BIN")
}

impl PgCluster {
    /// Creates and starts a cluster (a few seconds).
    pub fn start() -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let dir = scratch_dir("pg")?;
        let as_postgres = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        let cluster = Self { dir, bin, port: free_ports(1)?[0], as_postgres };
        if as_postgres {
            let status = Command::new("chown").arg("postgres").arg(&cluster.dir).status()?;
            if !status.success() {
                bail!("cannot hand {} to the postgres user", cluster.dir.display());
            }
        }
        let data = cluster.dir.join("data");
        cluster.run(
            "initdb",
            &["-D", path_str(&data)?, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
        )?;
        cluster.start_server()?;
        Ok(cluster)
    }

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out =
            cmd.args(args).current_dir(&self.dir).output().with_context(|| format!("cannot run {}", exe.display()))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            bail!(
                "{program} failed: {}{}\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Starts the server (again, after [`PgCluster::stop`]) on the same port.
    pub fn start_server(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            self.port,
            path_str(&self.dir)?
        );
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        self.run("pg_ctl", &["-D", path_str(&data)?, "-l", path_str(&log)?, "-w", "-t", "60", "-o", &options, "start"])
    }

    /// Stops the server (fast: open connections are cut, as in a real restart).
    pub fn stop(&self) -> anyhow::Result<()> {
        let data = self.dir.join("data");
        self.run("pg_ctl", &["-D", path_str(&data)?, "-m", "fast", "-w", "stop"])
    }

    /// The URL of `database` in this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        use sqlx::Connection;
        anyhow::ensure!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "database names here are plain: {name:?}"
        );
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut conn).await?;
        conn.close().await?;
        Ok(self.url(name))
    }
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().with_context(|| format!("{} is not UTF-8", p.display()))
}

impl PgCluster {
    /// Stops the server at once and removes its directory.
    pub fn shutdown(&self) {
        let data = self.dir.join("data");
        if let Ok(data) = path_str(&data) {
            let _ = self.run("pg_ctl", &["-D", data, "-m", "immediate", "-w", "stop"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A loopback port with nothing listening (for tests of unreachable servers).
pub fn unused_port() -> u16 {
    free_ports(1).map(|p| p[0]).unwrap_or(9)
}
