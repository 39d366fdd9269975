//! The in-memory replay cache: the fast first filter against a signed request sent twice.
//!
//! Every operation is O(1) amortised under the mutex: entries are remembered for one fixed span
//! from their arrival, so arrival order *is* expiry order, and a `VecDeque` in that order lets
//! each call pop the expired entries from its front instead of scanning the map. The cache is
//! bounded: past `capacity` the oldest entry goes first (only correctly signed requests are
//! inserted, and each source's rate limit bounds how fast those come, so this takes a holder of
//! the secret sending more than `capacity` requests within the span).
//!
//! It is per process and forgets on restart; durable protection across restarts and replicas sits
//! behind it in the database (`seen_signatures`, see `intake::remember`): this cache only spares
//! the database the replays one process sees itself.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

pub struct ReplayCache {
    inner: Mutex<Inner>,
    /// How long each signature is remembered, in seconds. Twice the timestamp window: a
    /// signature is accepted while `|now - ts| <= window`, so at most until `arrival + 2 window`.
    span: i64,
    capacity: usize,
}

#[derive(Default)]
struct Inner {
    /// MAC → the expiry of its newest entry in `order`.
    seen: HashMap<[u8; 32], i64>,
    /// (expiry, MAC), oldest first.
    order: VecDeque<(i64, [u8; 32])>,
}

impl ReplayCache {
    pub fn new(window_secs: i64, capacity: usize) -> Self {
        ReplayCache {
            inner: Mutex::new(Inner::default()),
            span: window_secs.saturating_mul(2).max(1),
            capacity: capacity.max(1),
        }
    }

    /// Remembers `mac` as used at `now`; `false` when it was already used within the span.
    pub fn first_use(&self, mac: [u8; 32], now: i64) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Inner { seen, order } = &mut *inner;
        while let Some(&(expiry, old)) = order.front() {
            if expiry > now && order.len() < self.capacity {
                break;
            }
            order.pop_front();
            // Only forget it when this was its newest entry (a clock step back can leave an older
            // entry behind a newer one for the same MAC).
            if seen.get(&old) == Some(&expiry) {
                seen.remove(&old);
            }
        }
        if seen.get(&mac).is_some_and(|&expiry| expiry > now) {
            return false;
        }
        let expiry = now.saturating_add(self.span);
        seen.insert(mac, expiry);
        order.push_back((expiry, mac));
        true
    }

    /// Forgets `mac`, so its next use is a first use again: for a request refused for our own
    /// trouble (503), whose sender will retry the very same delivery. Its place in `order` stays
    /// behind and leaves with the front in its turn.
    pub fn forget(&self, mac: &[u8; 32]) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .seen
            .remove(mac);
    }

    /// Signatures remembered right now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .seen
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> [u8; 32] {
        let mut m = [0u8; 32];
        m[..4].copy_from_slice(&n.to_be_bytes());
        m
    }

    #[test]
    fn a_signature_is_refused_the_second_time_within_the_span_and_forgotten_after() {
        let c = ReplayCache::new(300, 100);
        assert!(c.first_use(mac(1), 1000));
        assert!(!c.first_use(mac(1), 1000 + 599));
        assert!(
            c.first_use(mac(1), 1000 + 600),
            "expired after twice the window"
        );
    }

    #[test]
    fn expired_entries_leave_from_the_front_so_the_cache_stays_small() {
        let c = ReplayCache::new(300, 1_000_000);
        for i in 0..10_000 {
            assert!(c.first_use(mac(i), i64::from(i)));
        }
        // Arrival i expires at i + 600: only the last 600 are still held.
        assert_eq!(c.len(), 600);
    }

    #[test]
    fn a_forgotten_signature_is_a_first_use_again() {
        let c = ReplayCache::new(300, 100);
        assert!(c.first_use(mac(1), 1000));
        c.forget(&mac(1));
        assert!(c.first_use(mac(1), 1001));
        assert!(!c.first_use(mac(1), 1002));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let c = ReplayCache::new(300, 64);
        for i in 0..1_000 {
            c.first_use(mac(i), 5);
        }
        assert_eq!(c.len(), 64);
        assert!(!c.first_use(mac(999), 5), "the newest are kept");
    }
}
