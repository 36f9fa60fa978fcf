//! Limits per client, so that one client cannot take what every client shares: open event
//! streams ([`PerClient`]), failed sign-ins and new visual-search texts ([`Quota`]). A client is
//! a name: the web layer's [`Client`](crate::web::security::Client), a named token's name or
//! an address. Plain counters, below the web layer and visual search alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most clients remembered at once; beyond it, those whose window has passed are forgotten
/// first, so the table stays bounded whatever comes.
const MAX_CLIENTS: usize = 10_000;

/// Open event streams a client may hold: a person with a few tabs open, not every slot.
pub const STREAMS_PER_CLIENT: usize = 8;

/// How many of something each client holds at once.
#[derive(Clone)]
pub struct PerClient {
    max: usize,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// One thing a client holds; given back when dropped.
pub struct Held {
    client: String,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl PerClient {
    pub fn new(max: usize) -> Self {
        Self { max, held: Arc::default() }
    }

    /// One more for `client`, unless it holds `max` already.
    pub fn take(&self, client: &str) -> Option<Held> {
        let mut held = self.held.lock().expect("per-client lock");
        let count = held.entry(client.to_string()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Held { client: client.to_string(), held: self.held.clone() })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.held.lock().expect("per-client lock");
        if let Some(count) = held.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.client);
            }
        }
    }
}

/// Events per client within a window (failed sign-ins, new search texts): after `max` of them a
/// client waits until the window that began with its first one has passed.
pub struct Quota {
    max: u32,
    window: Duration,
    seen: Mutex<HashMap<String, (Instant, u32)>>,
}

impl std::fmt::Debug for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Quota({} per {:?})", self.max, self.window)
    }
}

impl Quota {
    pub fn new(max: u32, window: Duration) -> Self {
        Self { max, window, seen: Mutex::default() }
    }

    /// One more event of `client`'s if it may have one now (checked and counted at once), else
    /// how long it must wait.
    pub fn try_spend(&self, client: &str) -> Result<(), Duration> {
        let mut seen = self.seen.lock().expect("quota lock");
        if let Some(left) = self.left(&seen, client) {
            return Err(left);
        }
        self.count(&mut seen, client);
        Ok(())
    }

    /// How long `client` must wait before it may try again, if it must.
    pub fn wait(&self, client: &str) -> Option<Duration> {
        self.left(&self.seen.lock().expect("quota lock"), client)
    }

    fn left(&self, seen: &HashMap<String, (Instant, u32)>, client: &str) -> Option<Duration> {
        let (since, count) = seen.get(client)?;
        let left = self.window.checked_sub(since.elapsed())?;
        (*count >= self.max).then_some(left)
    }

    /// One more event of `client`'s.
    pub fn spend(&self, client: &str) {
        let mut seen = self.seen.lock().expect("quota lock");
        self.count(&mut seen, client);
    }

    fn count(&self, seen: &mut HashMap<String, (Instant, u32)>, client: &str) {
        if seen.len() >= MAX_CLIENTS && !seen.contains_key(client) {
            seen.retain(|_, (since, _)| since.elapsed() < self.window);
            // Still full: the client seen longest ago makes room (never everyone's counts).
            if seen.len() >= MAX_CLIENTS
                && let Some(oldest) = seen.iter().min_by_key(|(_, (since, _))| *since).map(|(k, _)| k.clone())
            {
                seen.remove(&oldest);
            }
        }
        let entry = seen.entry(client.to_string()).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    /// `client`'s events so far are forgotten (a sign-in that succeeded).
    pub fn forget(&self, client: &str) {
        self.seen.lock().expect("quota lock").remove(client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_holds_at_most_max() {
        let streams = PerClient::new(2);
        let a1 = streams.take("a").unwrap();
        let _a2 = streams.take("a").unwrap();
        assert!(streams.take("a").is_none());
        let _b = streams.take("b").expect("another client has its own");
        drop(a1);
        assert!(streams.take("a").is_some(), "given back when dropped");
    }

    #[test]
    fn quotas_wait_out_their_window() {
        let failures = Quota::new(3, Duration::from_millis(200));
        for _ in 0..3 {
            assert!(failures.wait("a").is_none());
            failures.spend("a");
        }
        assert!(failures.wait("a").is_some_and(|d| d <= Duration::from_millis(200)));
        assert!(failures.wait("b").is_none(), "per client");
        std::thread::sleep(Duration::from_millis(250));
        assert!(failures.wait("a").is_none(), "the window passed");
        failures.spend("a");
        failures.spend("a");
        failures.forget("a");
        failures.spend("a");
        failures.spend("a");
        assert!(failures.wait("a").is_none(), "forgotten");
        assert!(failures.try_spend("a").is_ok());
        assert!(failures.try_spend("a").is_err(), "checked and counted at once");
    }

    #[test]
    fn a_full_table_keeps_the_newest_counts() {
        let quota = Quota::new(1, Duration::from_secs(60));
        quota.spend("c0");
        std::thread::sleep(Duration::from_millis(2));
        for i in 1..MAX_CLIENTS {
            quota.spend(&format!("c{i}"));
        }
        quota.spend("late");
        assert!(quota.wait("late").is_some(), "the newcomer is counted");
        assert!(quota.wait("c0").is_none(), "the client seen longest ago made room");
        assert!(quota.wait(&format!("c{}", MAX_CLIENTS - 1)).is_some(), "nobody else was forgotten");
    }
}
