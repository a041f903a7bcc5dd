//! The per-client-address connection cap (`limits.max_connections_per_ip`), so that
//! one address cannot take every `max_connections` slot. IPv4 addresses (and
//! IPv4-mapped IPv6) count one by one; IPv6 addresses count by /64, the block one
//! subscriber usually holds, since anyone with a /64 has 2^64 addresses to spread over.
//! The count lives in a map with one entry per address that has connections open, so
//! its size is bounded by `max_connections`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

/// Open connections per client address.
#[derive(Debug, Default)]
pub(crate) struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; gives its place back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    owner: Arc<PerIp>,
    key: IpAddr,
}

/// The address a connection counts against.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !(u128::from(u64::MAX));
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

impl PerIp {
    /// Admits a connection from `ip` unless `cap` connections from it are open.
    pub(crate) fn try_enter(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Slot> {
        let key = key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(key).or_insert(0);
        if *n >= cap {
            if *n == 0 {
                open.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(Slot {
            owner: Arc::clone(self),
            key,
        })
    }

    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .owner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_connection_over_the_cap_is_refused_and_a_closed_one_frees_its_place() {
        let per_ip = Arc::new(PerIp::default());
        let a = per_ip.try_enter(ip("10.0.0.1"), 2).unwrap();
        let _b = per_ip.try_enter(ip("10.0.0.1"), 2).unwrap();
        assert!(per_ip.try_enter(ip("10.0.0.1"), 2).is_none());
        assert!(
            per_ip.try_enter(ip("10.0.0.2"), 2).is_some(),
            "another address"
        );
        drop(a);
        assert!(per_ip.try_enter(ip("10.0.0.1"), 2).is_some());
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_their_ipv4_address() {
        let per_ip = Arc::new(PerIp::default());
        let _a = per_ip.try_enter(ip("10.0.0.1"), 1).unwrap();
        assert!(per_ip.try_enter(ip("::ffff:10.0.0.1"), 1).is_none());
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_count() {
        let per_ip = Arc::new(PerIp::default());
        let _a = per_ip.try_enter(ip("2001:db8:1:2::1"), 1).unwrap();
        assert!(per_ip.try_enter(ip("2001:db8:1:2:ffff::9"), 1).is_none());
        assert!(per_ip.try_enter(ip("2001:db8:1:3::1"), 1).is_some());
    }

    #[test]
    fn the_map_forgets_addresses_with_nothing_open() {
        let per_ip = Arc::new(PerIp::default());
        let a = per_ip.try_enter(ip("10.0.0.1"), 1).unwrap();
        assert_eq!(per_ip.open(ip("10.0.0.1")), 1);
        drop(a);
        assert_eq!(per_ip.open(ip("10.0.0.1")), 0);
        assert!(per_ip.open.lock().unwrap().is_empty());
    }
}
