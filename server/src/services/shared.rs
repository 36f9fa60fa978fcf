//! One PostgreSQL cluster and one SeaweedFS server for all the tests of one process (a test
//! binary), started by the first test that asks and stopped when the process exits. Each test
//! still works alone: in a database or a bucket of its own. Starting a cluster costs seconds, and
//! a test binary has tens of tests that need one.
//!
//! A test that stops or restarts its server starts its own ([`PgCluster::start`]) instead.

use super::postgres::PgCluster;
use super::seaweedfs::SeaweedFs;
use std::sync::{Mutex, OnceLock};

// Process-wide by design: these are what makes the services shared between tests that share
// nothing else (each test has its own async runtime).
static POSTGRES: OnceLock<PgCluster> = OnceLock::new();
static SEAWEEDFS: tokio::sync::OnceCell<SeaweedFs> = tokio::sync::OnceCell::const_new();
static STARTING: Mutex<()> = Mutex::new(());

/// The process's PostgreSQL cluster (started on first use).
pub fn postgres() -> anyhow::Result<&'static PgCluster> {
    if let Some(pg) = POSTGRES.get() {
        return Ok(pg);
    }
    let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pg) = POSTGRES.get() {
        return Ok(pg);
    }
    let pg = PgCluster::start()?;
    stop_at_exit();
    Ok(POSTGRES.get_or_init(|| pg))
}

/// The process's SeaweedFS server (started on first use).
pub async fn seaweedfs() -> anyhow::Result<&'static SeaweedFs> {
    SEAWEEDFS
        .get_or_try_init(|| async {
            let weed = SeaweedFs::start().await?;
            stop_at_exit();
            Ok(weed)
        })
        .await
}

/// A database of its own in the shared cluster: `name` with a unique suffix. Returns its URL.
pub async fn database(name: &str) -> anyhow::Result<String> {
    let unique = format!("{name}_{}", crate::ids::new_id());
    postgres()?.create_database(&unique).await
}

/// A bucket of its own on the shared server: `name` with a unique suffix. Returns the server
/// and the bucket's name.
pub async fn bucket(name: &str) -> anyhow::Result<(&'static SeaweedFs, String)> {
    let weed = seaweedfs().await?;
    let unique = format!("{name}-{}", crate::ids::new_id());
    weed.create_bucket(&unique).await?;
    Ok((weed, unique))
}

/// Registers, once, a handler that stops the shared servers when the process exits: statics
/// are never dropped, and a server left running would outlive its test binary.
fn stop_at_exit() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        unsafe extern "C" {
            fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
        }
        extern "C" fn stop() {
            if let Some(pg) = POSTGRES.get() {
                pg.shutdown();
            }
            if let Some(weed) = SEAWEEDFS.get() {
                weed.shutdown();
            }
        }
        // SAFETY: `atexit` is the C library's; `stop` is a plain function that lives as long as
        // the process.
        unsafe {
            atexit(stop);
        }
    });
}
