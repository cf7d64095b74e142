//! The answer cache of the MX resolver, and the clock it reads.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::lookup::{Answer, LookupError, Mx};

/// Where the resolver reads the time: the cache's only notion of "now".
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock ([`Instant::now`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to: for tests and simulations. Clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Instant>>,
}

impl ManualClock {
    /// A clock stopped at the current instant.
    pub fn new() -> ManualClock {
        ManualClock {
            now: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The default of [`CacheConfig::max_entries`].
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
/// The default of [`CacheConfig::max_ttl`]: one day.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(86_400);
/// The default of [`CacheConfig::negative_ttl`].
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// The default of [`CacheConfig::max_negative_ttl`]: one hour (RFC 2308 §5 suggests one to
/// three).
pub const DEFAULT_MAX_NEGATIVE_TTL: Duration = Duration::from_secs(3_600);

/// Bounds of the answer cache.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// At most this many answers (one per name and type) are kept; 0 turns the cache off.
    pub max_entries: usize,
    /// A positive answer is kept for its TTL, at most this long.
    pub max_ttl: Duration,
    /// How long a negative answer (NXDOMAIN, no data) without an SOA is kept.
    pub negative_ttl: Duration,
    /// A negative answer is kept for its SOA's negative TTL, at most this long.
    pub max_negative_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_ttl: DEFAULT_MAX_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            max_negative_ttl: DEFAULT_MAX_NEGATIVE_TTL,
        }
    }
}

impl CacheConfig {
    /// A configuration that keeps nothing.
    pub fn disabled() -> CacheConfig {
        CacheConfig {
            max_entries: 0,
            ..CacheConfig::default()
        }
    }
}

/// The record type of a cached answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Mx,
    A,
    Aaaa,
}

/// A cached result of any of the three types.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Mx(Result<Answer<Mx>, LookupError>),
    A(Result<Answer<Ipv4Addr>, LookupError>),
    Aaaa(Result<Answer<Ipv6Addr>, LookupError>),
}

/// A record type the cache holds.
pub(crate) trait Cacheable: Sized + Clone {
    const KIND: Kind;
    fn wrap(result: Result<Answer<Self>, LookupError>) -> Value;
    fn unwrap(value: &Value) -> Option<Result<Answer<Self>, LookupError>>;
}

impl Cacheable for Mx {
    const KIND: Kind = Kind::Mx;
    fn wrap(result: Result<Answer<Self>, LookupError>) -> Value {
        Value::Mx(result)
    }
    fn unwrap(value: &Value) -> Option<Result<Answer<Self>, LookupError>> {
        match value {
            Value::Mx(r) => Some(r.clone()),
            _ => None,
        }
    }
}

impl Cacheable for Ipv4Addr {
    const KIND: Kind = Kind::A;
    fn wrap(result: Result<Answer<Self>, LookupError>) -> Value {
        Value::A(result)
    }
    fn unwrap(value: &Value) -> Option<Result<Answer<Self>, LookupError>> {
        match value {
            Value::A(r) => Some(r.clone()),
            _ => None,
        }
    }
}

impl Cacheable for Ipv6Addr {
    const KIND: Kind = Kind::Aaaa;
    fn wrap(result: Result<Answer<Self>, LookupError>) -> Value {
        Value::Aaaa(result)
    }
    fn unwrap(value: &Value) -> Option<Result<Answer<Self>, LookupError>> {
        match value {
            Value::Aaaa(r) => Some(r.clone()),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expires: Instant,
}

/// Answers by (type, name), each until its expiry.
#[derive(Debug)]
pub(crate) struct Cache {
    config: CacheConfig,
    entries: Mutex<HashMap<(Kind, String), Entry>>,
}

impl Cache {
    pub(crate) fn new(config: CacheConfig) -> Cache {
        Cache {
            config,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<(Kind, String), Entry>> {
        // The map is consistent after every statement, so a panic elsewhere leaves it usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached answer for `name`, with its TTL lowered to what is left of it, if it has not
    /// expired at `now`.
    pub(crate) fn get<T: Cacheable>(
        &self,
        name: &str,
        now: Instant,
    ) -> Option<Result<Answer<T>, LookupError>> {
        let entries = self.entries();
        let entry = entries.get(&(T::KIND, name.to_owned()))?;
        if now >= entry.expires {
            return None;
        }
        let left = entry.expires - now;
        T::unwrap(&entry.value).map(|r| match r {
            Ok(answer) => Ok(Answer::new(answer.records, left)),
            Err(LookupError::NoSuchDomain { .. }) => Err(LookupError::NoSuchDomain {
                negative_ttl: Some(left),
            }),
            Err(LookupError::NoRecords { .. }) => Err(LookupError::NoRecords {
                negative_ttl: Some(left),
            }),
            Err(other) => Err(other),
        })
    }

    /// Keeps `result` for `name` from `now` for as long as its TTL and the bounds allow.
    /// Temporary failures and answers with a TTL of 0 are not kept.
    pub(crate) fn put<T: Cacheable>(
        &self,
        name: &str,
        result: &Result<Answer<T>, LookupError>,
        now: Instant,
    ) {
        if self.config.max_entries == 0 {
            return;
        }
        let keep = match result {
            Ok(answer) => answer.ttl.min(self.config.max_ttl),
            Err(LookupError::NoSuchDomain { negative_ttl })
            | Err(LookupError::NoRecords { negative_ttl }) => negative_ttl
                .unwrap_or(self.config.negative_ttl)
                .min(self.config.max_negative_ttl),
            Err(LookupError::Temporary(_)) => return,
        };
        if keep.is_zero() {
            return;
        }
        let key = (T::KIND, name.to_owned());
        let mut entries = self.entries();
        if !entries.contains_key(&key) && entries.len() >= self.config.max_entries {
            entries.retain(|_, e| e.expires > now);
            while entries.len() >= self.config.max_entries {
                let Some(soonest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                entries.remove(&soonest);
            }
        }
        entries.insert(
            key,
            Entry {
                value: T::wrap(result.clone()),
                expires: now + keep,
            },
        );
    }

    /// How many answers are held (expired ones included, until they are replaced or evicted).
    pub(crate) fn len(&self) -> usize {
        self.entries().len()
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
        self.entries().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn v4(last: u8, ttl: u64) -> Result<Answer<Ipv4Addr>, LookupError> {
        Ok(Answer::new(vec![Ipv4Addr::new(192, 0, 2, last)], secs(ttl)))
    }

    #[test]
    fn positive_answer_kept_for_its_ttl_with_the_ttl_counting_down() {
        let cache = Cache::new(CacheConfig::default());
        let t0 = Instant::now();
        cache.put("a.example", &v4(1, 300), t0);
        assert_eq!(
            cache.get::<Ipv4Addr>("a.example", t0 + secs(100)),
            Some(v4(1, 200))
        );
        assert_eq!(cache.get::<Ipv4Addr>("a.example", t0 + secs(300)), None);
        // Another type of the same name is another entry.
        assert_eq!(cache.get::<Ipv6Addr>("a.example", t0), None);
        assert_eq!(cache.get::<Mx>("a.example", t0), None);
    }

    #[test]
    fn ttl_capped_by_max_ttl_and_zero_ttl_not_kept() {
        let config = CacheConfig {
            max_ttl: secs(60),
            ..CacheConfig::default()
        };
        let cache = Cache::new(config);
        let t0 = Instant::now();
        cache.put("a.example", &v4(1, 86_400), t0);
        assert_eq!(
            cache.get::<Ipv4Addr>("a.example", t0 + secs(59)),
            Some(v4(1, 1))
        );
        assert_eq!(cache.get::<Ipv4Addr>("a.example", t0 + secs(60)), None);
        cache.put("b.example", &v4(2, 0), t0);
        assert_eq!(cache.get::<Ipv4Addr>("b.example", t0), None);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn negative_answers_kept_for_soa_ttl_or_default_and_capped() {
        let config = CacheConfig {
            negative_ttl: secs(30),
            max_negative_ttl: secs(600),
            ..CacheConfig::default()
        };
        let cache = Cache::new(config);
        let t0 = Instant::now();
        let nx = |ttl: Option<u64>| {
            Err::<Answer<Mx>, _>(LookupError::NoSuchDomain {
                negative_ttl: ttl.map(secs),
            })
        };
        cache.put("none.example", &nx(None), t0);
        assert_eq!(
            cache.get::<Mx>("none.example", t0 + secs(10)),
            Some(nx(Some(20)))
        );
        assert_eq!(cache.get::<Mx>("none.example", t0 + secs(30)), None);

        cache.put("soa.example", &nx(Some(120)), t0);
        assert_eq!(
            cache.get::<Mx>("soa.example", t0 + secs(119)),
            Some(nx(Some(1)))
        );
        cache.put("long.example", &nx(Some(86_400)), t0);
        assert_eq!(cache.get::<Mx>("long.example", t0 + secs(600)), None);

        let nodata = Err::<Answer<Ipv6Addr>, _>(LookupError::NoRecords { negative_ttl: None });
        cache.put("a.example", &nodata, t0);
        assert_eq!(
            cache.get::<Ipv6Addr>("a.example", t0),
            Some(Err(LookupError::NoRecords {
                negative_ttl: Some(secs(30))
            }))
        );
    }

    #[test]
    fn temporary_failures_are_not_kept() {
        let cache = Cache::new(CacheConfig::default());
        let t0 = Instant::now();
        let servfail = Err::<Answer<Mx>, _>(LookupError::Temporary("SERVFAIL".into()));
        cache.put("a.example", &servfail, t0);
        assert_eq!(cache.get::<Mx>("a.example", t0), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn bounded_expired_first_then_soonest_to_expire() {
        let config = CacheConfig {
            max_entries: 3,
            ..CacheConfig::default()
        };
        let cache = Cache::new(config);
        let t0 = Instant::now();
        cache.put("short.example", &v4(1, 10), t0);
        cache.put("mid.example", &v4(2, 100), t0);
        cache.put("long.example", &v4(3, 1000), t0);
        // Full: the soonest to expire goes.
        cache.put("new.example", &v4(4, 500), t0);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get::<Ipv4Addr>("short.example", t0), None);
        assert_eq!(cache.get::<Ipv4Addr>("mid.example", t0), Some(v4(2, 100)));
        // Replacing a held key evicts nothing.
        cache.put("mid.example", &v4(5, 100), t0);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get::<Ipv4Addr>("long.example", t0), Some(v4(3, 1000)));
        // Once `mid` (100 s) has expired it goes first, even before the older `new` (500 s).
        let t1 = t0 + secs(200);
        cache.put("later.example", &v4(6, 10), t1);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get::<Ipv4Addr>("new.example", t1), Some(v4(4, 300)));
        assert_eq!(cache.get::<Ipv4Addr>("long.example", t1), Some(v4(3, 800)));
        assert_eq!(cache.get::<Ipv4Addr>("later.example", t1), Some(v4(6, 10)));
    }

    #[test]
    fn disabled_cache_keeps_nothing() {
        let cache = Cache::new(CacheConfig::disabled());
        let t0 = Instant::now();
        cache.put("a.example", &v4(1, 300), t0);
        assert_eq!(cache.get::<Ipv4Addr>("a.example", t0), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = ManualClock::new();
        let other = clock.clone();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        other.advance(secs(5));
        assert_eq!(clock.now(), t0 + secs(5));
    }
}
