//! The result cache of LASER routing, and the clock it reads.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use mswitch_core::route::RouteDecision;

/// The longest any cached answer (an address's route, the set of hosted domains) is kept,
/// whatever the configuration asks: a change in the directory is always seen within this time.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(3600);

/// A source of the current time, so tests can move it.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to: for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Instant>,
}

impl ManualClock {
    /// A clock standing at the current time.
    pub fn new() -> Self {
        ManualClock {
            now: Mutex::new(Instant::now()),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How long answers are cached, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// How long an address found in the directory keeps its route (a delivery or a rewrite).
    /// Capped at [`MAX_CACHE_TTL`]; zero disables positive caching.
    pub positive_ttl: Duration,
    /// How long an address keeps a refusal (unknown user, ambiguous, no delivery
    /// information). Capped at [`MAX_CACHE_TTL`]; zero disables negative caching. Directory
    /// failures are never cached.
    pub negative_ttl: Duration,
    /// The most addresses cached at once; when full, expired answers go first, then the ones
    /// closest to expiry.
    pub max_entries: usize,
}

impl CachePolicy {
    /// No caching: every address is looked up every time.
    pub const DISABLED: CachePolicy = CachePolicy {
        positive_ttl: Duration::ZERO,
        negative_ttl: Duration::ZERO,
        max_entries: 0,
    };
}

impl Default for CachePolicy {
    /// 60 s positive, 30 s negative, 10 000 addresses.
    fn default() -> Self {
        CachePolicy {
            positive_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(30),
            max_entries: 10_000,
        }
    }
}

/// Cached decisions by (zone, lookup key).
pub(crate) struct Cache {
    policy: CachePolicy,
    entries: Mutex<HashMap<(usize, String), (RouteDecision, Instant)>>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("policy", &self.policy)
            .field("len", &self.len())
            .finish()
    }
}

impl Cache {
    pub(crate) fn new(policy: CachePolicy) -> Self {
        Cache {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn policy(&self) -> CachePolicy {
        self.policy
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(usize, String), (RouteDecision, Instant)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// The cached decision, unless absent or expired.
    pub(crate) fn get(&self, zone: usize, key: &str, now: Instant) -> Option<RouteDecision> {
        let mut entries = self.lock();
        let k = (zone, key.to_owned());
        match entries.get(&k) {
            Some((d, expires)) if *expires > now => Some(d.clone()),
            Some(_) => {
                entries.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Caches `decision` for `ttl` (capped at [`MAX_CACHE_TTL`]; zero does nothing).
    pub(crate) fn put(
        &self,
        zone: usize,
        key: &str,
        decision: RouteDecision,
        ttl: Duration,
        now: Instant,
    ) {
        let ttl = ttl.min(MAX_CACHE_TTL);
        if ttl.is_zero() || self.policy.max_entries == 0 {
            return;
        }
        let mut entries = self.lock();
        let k = (zone, key.to_owned());
        if entries.len() >= self.policy.max_entries && !entries.contains_key(&k) {
            entries.retain(|_, (_, expires)| *expires > now);
            while entries.len() >= self.policy.max_entries {
                let Some(soonest) = entries
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                entries.remove(&soonest);
            }
        }
        entries.insert(k, (decision, now + ttl));
    }
}

#[cfg(test)]
mod tests {
    use mswitch_core::status::Status;

    use super::*;

    fn reject(n: u16) -> RouteDecision {
        RouteDecision::Reject(Status::new(550, (5, 1, 1), format!("{n}")))
    }

    #[test]
    fn entries_expire_after_their_ttl() {
        let clock = ManualClock::new();
        let cache = Cache::new(CachePolicy::default());
        cache.put(0, "a@x", reject(1), Duration::from_secs(10), clock.now());
        clock.advance(Duration::from_millis(9_999));
        assert_eq!(cache.get(0, "a@x", clock.now()), Some(reject(1)));
        assert_eq!(cache.get(1, "a@x", clock.now()), None, "zones are separate");
        clock.advance(Duration::from_millis(1));
        assert_eq!(cache.get(0, "a@x", clock.now()), None);
        assert_eq!(cache.len(), 0, "expired entries are dropped when seen");
    }

    #[test]
    fn ttl_is_capped() {
        let clock = ManualClock::new();
        let cache = Cache::new(CachePolicy::default());
        cache.put(
            0,
            "a@x",
            reject(1),
            Duration::from_secs(86_400),
            clock.now(),
        );
        clock.advance(MAX_CACHE_TTL - Duration::from_millis(1));
        assert_eq!(cache.get(0, "a@x", clock.now()), Some(reject(1)));
        clock.advance(Duration::from_millis(1));
        assert_eq!(cache.get(0, "a@x", clock.now()), None);
    }

    #[test]
    fn zero_ttl_and_disabled_cache_store_nothing() {
        let clock = ManualClock::new();
        let cache = Cache::new(CachePolicy::default());
        cache.put(0, "a@x", reject(1), Duration::ZERO, clock.now());
        assert_eq!(cache.len(), 0);
        let cache = Cache::new(CachePolicy::DISABLED);
        cache.put(0, "a@x", reject(1), Duration::from_secs(5), clock.now());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn size_is_bounded_expired_then_soonest_evicted() {
        let clock = ManualClock::new();
        let cache = Cache::new(CachePolicy {
            max_entries: 3,
            ..CachePolicy::default()
        });
        let t0 = clock.now();
        cache.put(0, "a", reject(1), Duration::from_secs(5), t0);
        cache.put(0, "b", reject(2), Duration::from_secs(50), t0);
        cache.put(0, "c", reject(3), Duration::from_secs(20), t0);
        // Full: "d" evicts the one closest to expiry, "a".
        cache.put(0, "d", reject(4), Duration::from_secs(30), t0);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(0, "a", t0), None);
        assert_eq!(cache.get(0, "c", t0), Some(reject(3)));
        // Replacing an existing key evicts nothing.
        cache.put(0, "b", reject(22), Duration::from_secs(50), t0);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(0, "b", t0), Some(reject(22)));
        // After 25 s "c" has expired: "e" takes its place, "d" stays.
        clock.advance(Duration::from_secs(25));
        cache.put(0, "e", reject(5), Duration::from_secs(5), clock.now());
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(0, "d", clock.now()), Some(reject(4)));
        assert_eq!(cache.get(0, "e", clock.now()), Some(reject(5)));
        cache.clear();
        assert_eq!(cache.len(), 0);
    }
}
