//! Ids, clocks and seeds: the small numbers every part of the server makes.

use std::sync::atomic::{AtomicU64, Ordering};

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Unix seconds now.
pub fn now_unix() -> u64 {
    (now_ms() / 1000) as u64
}

/// A new id: time-ordered lowercase hex (16 digits).
pub fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() as u64);
    let salt = model::rng::mix(nanos ^ (n << 32) ^ std::process::id() as u64) & 0xf_ffff;
    format!("{:011x}{:05x}", now_ms() as u64 & 0xfff_ffff_ffff, salt)
}

/// A seed for requests that leave it out (recorded with the result, so it can be reused).
pub fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    model::rng::mix(nanos ^ std::process::id() as u64) % 1_000_000_000
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_valid_and_distinct() {
        let a = super::new_id();
        let b = super::new_id();
        assert!(app::types::is_valid_id(&a) && app::types::is_valid_id(&b));
        assert_ne!(a, b);
    }
}
