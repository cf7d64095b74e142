//! Password guessing across sessions: failed AUTH attempts counted per client address and per
//! user name, shared by every session of a server (the session's own limit,
//! [`AuthConfig::max_failures`](super::session::AuthConfig), only ends one connection).
//!
//! A client address with [`AuthLimits::per_client`] failures within [`AuthLimits::window`] gets
//! `454 4.7.0` for every further AUTH until the oldest of them leaves the window; so does any
//! AUTH for a user name with [`AuthLimits::per_user`] failures, whatever the client and
//! whatever the password: a guesser learns nothing more, and the reply is the same whether the
//! user exists or not (names that do not exist are counted exactly like names that do).
//! A successful login forgets that user's failures, not the client's (an attacker with one
//! valid account must not be able to wipe its address's record).
//!
//! No clock is read here: every call takes `now`. Memory is bounded: at most
//! [`MAX_TRACKED`] addresses and as many user names, each with at most its limit of
//! timestamps; when full, the entry whose last failure is oldest is forgotten.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mswitch_core::status::Status;

/// Most client addresses (and, separately, user names) tracked at once.
pub const MAX_TRACKED: usize = 65_536;

/// Default failures from one client address within the window.
pub const DEFAULT_PER_CLIENT: u32 = 10;

/// Default failures for one user name within the window.
pub const DEFAULT_PER_USER: u32 = 5;

/// Default window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The limits; a limit of 0 turns that count off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// Failures from one client address within `window` after which its AUTH attempts are
    /// refused.
    pub per_client: u32,
    /// Failures for one user name within `window` after which AUTH as that user is refused.
    pub per_user: u32,
    /// How long a failure counts.
    pub window: Duration,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            per_client: DEFAULT_PER_CLIENT,
            per_user: DEFAULT_PER_USER,
            window: DEFAULT_WINDOW,
        }
    }
}

/// Why an attempt was refused without checking the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// Too many failures from this client address.
    Client,
    /// Too many failures for this user name.
    User,
}

impl Throttled {
    /// The reply: `454 4.7.0` (RFC 4954 §6, temporary authentication failure). The text does
    /// not say which limit it was, nor anything about the user.
    pub fn reply(self) -> Status {
        Status::new(
            454,
            (4, 7, 0),
            "Temporary authentication failure: too many failed attempts, try again later",
        )
    }

    /// `"client"` or `"user"`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Throttled::Client => "client",
            Throttled::User => "user",
        }
    }
}

/// Failure times of one key: the most recent ones, at most the limit.
#[derive(Debug, Default)]
struct Record {
    failures: VecDeque<Instant>,
}

impl Record {
    fn prune(&mut self, now: Instant, window: Duration) {
        while self
            .failures
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            self.failures.pop_front();
        }
    }

    fn last(&self) -> Option<Instant> {
        self.failures.back().copied()
    }
}

/// The failures of one kind of key.
#[derive(Debug)]
struct Table<K> {
    limit: u32,
    records: HashMap<K, Record>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(limit: u32) -> Self {
        Table {
            limit,
            records: HashMap::new(),
        }
    }

    fn blocked(&mut self, key: &K, now: Instant, window: Duration) -> bool {
        if self.limit == 0 {
            return false;
        }
        let Some(r) = self.records.get_mut(key) else {
            return false;
        };
        r.prune(now, window);
        let full = r.failures.len() >= self.limit as usize;
        if r.failures.is_empty() {
            self.records.remove(key);
        }
        full
    }

    fn fail(&mut self, key: &K, now: Instant, window: Duration) {
        if self.limit == 0 {
            return;
        }
        if !self.records.contains_key(key) && self.records.len() >= MAX_TRACKED {
            self.records.retain(|_, r| {
                r.prune(now, window);
                !r.failures.is_empty()
            });
            if self.records.len() >= MAX_TRACKED {
                let oldest = self
                    .records
                    .iter()
                    .min_by_key(|(_, r)| r.last())
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.records.remove(&k);
                }
            }
        }
        let r = self.records.entry(key.clone()).or_default();
        r.prune(now, window);
        r.failures.push_back(now);
        while r.failures.len() > self.limit as usize {
            r.failures.pop_front();
        }
    }

    fn forget(&mut self, key: &K) {
        self.records.remove(key);
    }
}

#[derive(Debug)]
struct State {
    clients: Table<IpAddr>,
    users: Table<String>,
}

/// The shared record of failed authentications; one per server, used by all its sessions
/// through [`AuthConfig::limiter`](super::session::AuthConfig).
#[derive(Debug)]
pub struct AuthLimiter {
    window: Duration,
    state: Mutex<State>,
}

impl AuthLimiter {
    /// A limiter with these limits.
    pub fn new(limits: AuthLimits) -> Self {
        AuthLimiter {
            window: limits.window,
            state: Mutex::new(State {
                clients: Table::new(limits.per_client),
                users: Table::new(limits.per_user),
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A panic elsewhere while holding the lock leaves counters, not invariants: go on.
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Whether `client` may try to authenticate now.
    pub fn check_client(&self, client: IpAddr, now: Instant) -> Result<(), Throttled> {
        let window = self.window;
        if self.with(|s| s.clients.blocked(&client, now, window)) {
            Err(Throttled::Client)
        } else {
            Ok(())
        }
    }

    /// Whether anyone may try to authenticate as `user` now.
    pub fn check_user(&self, user: &str, now: Instant) -> Result<(), Throttled> {
        let window = self.window;
        if self.with(|s| s.users.blocked(&user.to_owned(), now, window)) {
            Err(Throttled::User)
        } else {
            Ok(())
        }
    }

    /// A failed attempt from `client` (if known) as `user` (if it got that far).
    pub fn failed(&self, client: Option<IpAddr>, user: Option<&str>, now: Instant) {
        let window = self.window;
        self.with(|s| {
            if let Some(c) = client {
                s.clients.fail(&c, now, window);
            }
            if let Some(u) = user {
                s.users.fail(&u.to_owned(), now, window);
            }
        });
    }

    /// `user` logged in: its failures are forgotten (those of the client address are not).
    pub fn succeeded(&self, user: &str) {
        self.with(|s| s.users.forget(&user.to_owned()));
    }

    /// Addresses and user names currently tracked (for tests and metrics).
    pub fn tracked(&self) -> (usize, usize) {
        self.with(|s| (s.clients.records.len(), s.users.records.len()))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn limiter(per_client: u32, per_user: u32) -> AuthLimiter {
        AuthLimiter::new(AuthLimits {
            per_client,
            per_user,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn a_client_is_refused_after_its_limit_until_the_window_moves_on() {
        let l = limiter(3, 0);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(l.check_client(A, t0), Ok(()), "attempt {i}");
            l.failed(
                Some(A),
                Some(&format!("user{i}")),
                t0 + Duration::from_secs(i),
            );
        }
        assert_eq!(
            l.check_client(A, t0 + Duration::from_secs(3)),
            Err(Throttled::Client)
        );
        // Another address is not affected.
        assert_eq!(l.check_client(B, t0 + Duration::from_secs(3)), Ok(()));
        // 60 s after the first failure, one slot is free again.
        assert_eq!(
            l.check_client(A, t0 + Duration::from_secs(59)),
            Err(Throttled::Client)
        );
        assert_eq!(l.check_client(A, t0 + Duration::from_secs(60)), Ok(()));
        l.failed(Some(A), None, t0 + Duration::from_secs(60));
        assert_eq!(
            l.check_client(A, t0 + Duration::from_secs(60)),
            Err(Throttled::Client)
        );
        assert_eq!(l.check_client(A, t0 + Duration::from_secs(200)), Ok(()));
    }

    #[test]
    fn a_user_is_refused_from_every_address_and_success_forgets() {
        let l = limiter(0, 2);
        let t = Instant::now();
        l.failed(Some(A), Some("bob"), t);
        assert_eq!(l.check_user("bob", t), Ok(()));
        l.failed(Some(B), Some("bob"), t);
        assert_eq!(l.check_user("bob", t), Err(Throttled::User));
        assert_eq!(l.check_user("alice", t), Ok(()));
        // Per-client counting is off.
        assert_eq!(l.check_client(A, t), Ok(()));
        l.succeeded("bob");
        assert_eq!(l.check_user("bob", t), Ok(()));
    }

    #[test]
    fn names_that_do_not_exist_count_like_names_that_do() {
        // The limiter never sees whether a user exists: only names and failures.
        let l = limiter(0, 1);
        let t = Instant::now();
        l.failed(None, Some("no-such-user"), t);
        assert_eq!(l.check_user("no-such-user", t), Err(Throttled::User));
    }

    #[test]
    fn success_does_not_clear_the_client_record() {
        let l = limiter(2, 0);
        let t = Instant::now();
        l.failed(Some(A), Some("x"), t);
        l.failed(Some(A), Some("y"), t);
        l.succeeded("x");
        assert_eq!(l.check_client(A, t), Err(Throttled::Client));
    }

    #[test]
    fn zero_turns_a_limit_off_and_memory_is_bounded() {
        let l = limiter(0, 0);
        let t = Instant::now();
        for _ in 0..10 {
            l.failed(Some(A), Some("bob"), t);
        }
        assert_eq!(l.check_client(A, t), Ok(()));
        assert_eq!(l.check_user("bob", t), Ok(()));
        assert_eq!(l.tracked(), (0, 0));

        // Within one window (no failure has expired): the oldest entries make room.
        let l = AuthLimiter::new(AuthLimits {
            per_client: 1,
            per_user: 1,
            window: Duration::from_secs(3600),
        });
        for i in 0..(MAX_TRACKED + 10) {
            l.failed(
                None,
                Some(&i.to_string()),
                t + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(l.tracked().1, MAX_TRACKED);
        // The newest is kept, the oldest went.
        let newest = (MAX_TRACKED + 9).to_string();
        let now = t + Duration::from_millis((MAX_TRACKED + 10) as u64);
        assert_eq!(l.check_user(&newest, now), Err(Throttled::User));
        assert_eq!(l.check_user("0", now), Ok(()));
    }

    #[test]
    fn the_reply_is_454_and_says_nothing_about_the_user() {
        for t in [Throttled::Client, Throttled::User] {
            let r = t.reply();
            assert_eq!((r.code, r.enhanced.to_string().as_str()), (454, "4.7.0"));
            assert!(!r.text.contains("user") && !r.text.contains("client"));
        }
        assert_eq!(Throttled::Client.reply(), Throttled::User.reply());
    }
}
