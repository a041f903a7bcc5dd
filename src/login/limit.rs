//! A per-client-address token bucket for the sign-in endpoints (sign-in starts,
//! callbacks, sign-outs): each address may make `per_minute` of them in a burst and
//! regains one every `60 / per_minute` seconds. Bounded: at most [`MAX_ADDRESSES`]
//! addresses are tracked; when full, addresses whose bucket has refilled are dropped,
//! and if none has, the new address is refused (fail closed under a flood).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::clock::Instant;

/// Most client addresses tracked at once.
pub const MAX_ADDRESSES: usize = 16_384;

/// Per-address token buckets.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_minute` calls per address per minute (at least 1).
    #[must_use]
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call for `ip` at `now`; `false` when the address is over its rate.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        let rate = self.per_minute / 60.0;
        let full = self.per_minute;
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        if !buckets.contains_key(&ip) && buckets.len() >= MAX_ADDRESSES {
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < full
            });
            if buckets.len() >= MAX_ADDRESSES {
                return false;
            }
        }
        let (tokens, at) = buckets.entry(ip).or_insert((full, now));
        let refilled =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(full);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            true
        } else {
            *tokens = refilled;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_address_gets_its_burst_then_one_call_per_interval() {
        let limiter = RateLimiter::new(3);
        let t = crate::clock::now();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!((0..3).all(|_| limiter.allow(a, t)));
        assert!(
            !limiter.allow(a, t),
            "the fourth call in a burst is refused"
        );
        assert!(limiter.allow(b, t), "another address is unaffected");
        assert!(!limiter.allow(a, t + Duration::from_secs(19)));
        assert!(
            limiter.allow(a, t + Duration::from_secs(21)),
            "one regained after 20 s"
        );
        let mapped: IpAddr = "::ffff:192.0.2.2".parse().expect("ip");
        assert!((0..2).all(|_| limiter.allow(mapped, t)));
        assert!(
            !limiter.allow(b, t),
            "an IPv4-mapped address is the same client"
        );
    }
}
