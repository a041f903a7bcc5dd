//! The one clock. Wall time (Unix seconds) is read here and passed into pure code as a
//! value; monotonic time is tokio's `Instant`, which tests can pause and advance. The
//! library denies `clippy::disallowed_methods` (`clippy.toml` lists
//! `SystemTime::now` and `std::time::Instant::now`), so this file is the only place
//! either is read.

use std::time::{SystemTime, UNIX_EPOCH};

/// Monotonic time: tokio's clock (pausable in tests).
pub use tokio::time::Instant;

/// Current Unix time in seconds.
#[must_use]
#[allow(clippy::disallowed_methods, reason = "the one wall-clock read")]
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Current monotonic time.
#[must_use]
pub fn now() -> Instant {
    Instant::now()
}

/// A uniformly random fraction in [0, 1) from the system's CSPRNG (0 if it fails).
#[must_use]
pub fn random_fraction() -> f64 {
    let mut b = [0u8; 4];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        return 0.0;
    }
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}
