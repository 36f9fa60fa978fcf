//! Throwaway copies of the services a scaled-out vidplay runs on, started for tests and
//! benchmarks: a PostgreSQL cluster ([`postgres::PgCluster`]) and a SeaweedFS S3 server
//! ([`seaweedfs::SeaweedFs`]), each in a temporary directory on loopback ports, stopped and
//! removed when dropped. Nothing here is used by `serve` or `worker`.

pub mod postgres;
pub mod seaweedfs;
pub mod shared;

use std::path::{Path, PathBuf};

/// A fresh, empty directory under the system's temporary directory.
fn scratch_dir(what: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("vidplay-{what}-{}", crate::ids::new_id()));
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// `n` loopback ports free right now (bound and released together, so they differ).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<Vec<_>, _>>()?;
    Ok(listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?)
}

/// The first of `candidates` that exists.
fn first_existing(candidates: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    candidates.into_iter().find(|p| p.exists())
}

/// `name` on the PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| first_existing(std::env::split_paths(&paths).map(|d| d.join(name))))
}

/// The repository's `tools/` folder (where `scripts/setup` installs test services).
fn repo_tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools")
}
