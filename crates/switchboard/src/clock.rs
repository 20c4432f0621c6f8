//! What time it is, for everything that expires: authorization flows and OAuth tokens,
//! API keys and user tokens, MCP `requestState` and sessions, and the short caches in
//! front of the store. The gateway builds one [`Clock`] at start and hands a clone to
//! each part; a test builds a manual one and [`Clock::advance`]s it instead of sleeping
//! until something expires.
//!
//! Must not: wait or schedule. Timers, socket deadlines, retry back-off and periodic
//! sweeps run on tokio's time; a clock only says what time it is. Times compared with
//! what another process stamped (the store's change log, a lease between replicas, a
//! worker's token) are read from [`Clock::system`], whatever the gateway's clock says.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The system's clock, or a test's: wall time in milliseconds since the epoch for
/// expiries kept in the store, and a monotonic [`Instant`] for in-memory TTLs. Cheap to
/// clone; clones share one reading, so advancing one advances every part holding a clone.
#[derive(Clone, Default)]
pub struct Clock {
    /// `None`: the system clock, never moved. `Some`: a manual clock, this many
    /// milliseconds ahead of the system clock. An atomic, not a lock: it is read on every
    /// request.
    ahead_ms: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system's wall and monotonic clocks. What a gateway runs on.
    pub fn system() -> Self {
        Self { ahead_ms: None }
    }

    /// A clock for tests: it starts at the system's time and runs with it, and
    /// [`Clock::advance`] moves it forward at once. A test then reaches an expiry without
    /// waiting for it, and never depends on how long it took to run.
    pub fn manual() -> Self {
        Self {
            ahead_ms: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    /// Moves this clock, and every clone of it, forward by `by` (whole milliseconds).
    ///
    /// # Panics
    /// On a [`Clock::system`] clock: only a test advances time, and only a manual clock.
    pub fn advance(&self, by: Duration) {
        let Some(ahead) = &self.ahead_ms else {
            panic!("Clock::advance needs a Clock::manual(); the system clock cannot move");
        };
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        // Relaxed is enough: the value is the only state, and no other memory hangs on it.
        let _ = ahead.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |ms| {
            Some(ms.saturating_add(by))
        });
    }

    /// Wall time, milliseconds since the Unix epoch: what expiries in the store are
    /// written and compared in.
    pub fn now_ms(&self) -> i64 {
        let system = chrono::Utc::now().timestamp_millis();
        system.saturating_add(i64::try_from(self.ahead()).unwrap_or(i64::MAX))
    }

    /// Monotonic time, for TTLs kept in memory. Ages are measured against another reading
    /// (`clock.instant().saturating_duration_since(at)`), never with `at.elapsed()`, which
    /// reads the system clock.
    pub fn instant(&self) -> Instant {
        let now = Instant::now();
        // An `Instant` this far ahead cannot be represented; no test advances that far.
        now.checked_add(Duration::from_millis(self.ahead()))
            .unwrap_or(now)
    }

    fn ahead(&self) -> u64 {
        self.ahead_ms
            .as_ref()
            .map_or(0, |ahead| ahead.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ahead_ms {
            None => f.write_str("Clock::system"),
            Some(_) => write!(f, "Clock::manual(+{} ms)", self.ahead()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_forward_by_what_it_is_advanced_and_its_clones_with_it() {
        let clock = Clock::manual();
        let clone = clock.clone();
        let (wall, mono) = (clock.now_ms(), clock.instant());
        clone.advance(Duration::from_secs(3600));
        assert!(clock.now_ms() >= wall + 3_600_000);
        assert!(clock.instant().saturating_duration_since(mono) >= Duration::from_secs(3600));
        assert!(format!("{clock:?}").contains("+3600000 ms"));
    }

    #[test]
    fn the_system_clock_reads_the_system_time() {
        let before = chrono::Utc::now().timestamp_millis();
        let now = Clock::system().now_ms();
        assert!(now >= before && now <= chrono::Utc::now().timestamp_millis());
    }

    #[test]
    #[should_panic(expected = "Clock::manual")]
    fn advancing_the_system_clock_is_a_bug_in_the_test() {
        Clock::system().advance(Duration::from_secs(1));
    }
}
