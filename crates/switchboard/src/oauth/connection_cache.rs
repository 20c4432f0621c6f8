//! A cache of connection rows as stored: sealed tokens only, never plaintext. It saves the
//! store read on the call path (the bulk of a grant's cost); each call still opens its
//! token into a `SecretString` that is dropped with the call.
//!
//! Local changes (new grant, refresh, revoke, user deletion) invalidate the entry at once.
//! Changes made elsewhere (another replica, the CLI) reach the store's
//! `connection_changes` table through triggers; the [`watch`] loop reads it every second
//! and drops the rows it names. While that loop is healthy an entry lives
//! [`WATCHED_TTL`], so a user who calls once a minute still hits the cache; without it
//! (the loop not running, or the store unreachable) an entry lives [`TTL`], which bounds
//! how stale a row can be either way.
//!
//! A token another replica has already rotated away is refused by the upstream, and the
//! refused-token path re-reads the store.
//!
//! Entries age by the service's [`Clock`] (tests advance it); the watcher's schedule and
//! its window into the change table run on real time, as the store stamps changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::store::{ConnectionRecord, Store};

/// How long an entry is trusted when no change watcher vouches for it.
pub const TTL: Duration = Duration::from_secs(2);
/// How long an entry is trusted while the change watcher is healthy.
pub const WATCHED_TTL: Duration = Duration::from_secs(300);
/// How often the watcher reads the change table.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The watcher vouches for entries only if it read the change table this recently.
const WATCH_FRESH: Duration = Duration::from_secs(3);
/// Each poll re-reads this much past, by the store's clock: a change committed late, or
/// stamped by a clock a little behind ours, is still seen. Seen changes are skipped.
const POLL_OVERLAP_MS: i64 = 30_000;
/// More changes than this in one poll: drop everything rather than page through them.
const POLL_LIMIT: u32 = 1_000;
/// Changes older than this are deleted from the store by the watcher.
const KEEP_CHANGES_MS: i64 = 3_600_000;
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Past this many entries the cache starts over; rows are re-read on demand.
const MAX_ENTRIES: usize = 50_000;

/// user id → provider id → (row, when it was read, by [`ConnectionCache::clock`]). Two
/// levels so a lookup borrows the ids instead of building an owned key per call; rows are
/// shared, not copied.
#[derive(Default)]
struct Rows {
    by_user: HashMap<String, HashMap<String, (Arc<ConnectionRecord>, Instant)>>,
    entries: usize,
    /// Bumped whenever the watcher drops entries; a row read from the store is cached
    /// only if no drop happened while it was being read.
    generation: u64,
    /// The watcher's last successful read of the change table.
    watched_at: Option<Instant>,
}

pub struct ConnectionCache {
    /// A std Mutex: no `.await` inside.
    rows: Mutex<Rows>,
    /// What entries and the watcher's last read age by.
    clock: Clock,
}

impl ConnectionCache {
    pub fn new(clock: Clock) -> Self {
        Self {
            rows: Mutex::default(),
            clock,
        }
    }

    fn rows(&self) -> MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, user_id: &str, provider_id: &str) -> Option<Arc<ConnectionRecord>> {
        let rows = self.rows();
        let now = self.clock.instant();
        let younger_than = |at: Instant, age: Duration| now.saturating_duration_since(at) < age;
        let watched = rows
            .watched_at
            .is_some_and(|at| younger_than(at, WATCH_FRESH));
        let ttl = if watched { WATCHED_TTL } else { TTL };
        rows.by_user
            .get(user_id)?
            .get(provider_id)
            .filter(|(_, at)| younger_than(*at, ttl))
            .map(|(row, _)| row.clone())
    }

    /// Take before reading a row from the store; pass to [`ConnectionCache::put_read`].
    pub fn generation(&self) -> u64 {
        self.rows().generation
    }

    /// Caches a row read from the store, unless the watcher dropped entries since
    /// `generation` was taken (the row may predate that change).
    pub fn put_read(&self, row: &Arc<ConnectionRecord>, generation: u64) {
        let mut rows = self.rows();
        if rows.generation == generation {
            insert(&mut rows, row, self.clock.instant());
        }
    }

    /// Caches a row this process just wrote.
    pub fn put(&self, row: &Arc<ConnectionRecord>) {
        insert(&mut self.rows(), row, self.clock.instant());
    }

    pub fn forget(&self, user_id: &str, provider_id: &str) {
        forget(&mut self.rows(), user_id, provider_id);
    }

    pub fn forget_user(&self, user_id: &str) {
        let mut rows = self.rows();
        if let Some(providers) = rows.by_user.remove(user_id) {
            rows.entries -= providers.len();
        }
    }

    /// Drops the rows other writers changed, and notes that the watcher is alive.
    fn apply_changes<'a>(&self, changed: impl Iterator<Item = (&'a str, &'a str)>) {
        let mut rows = self.rows();
        let mut dropped = false;
        for (user_id, provider_id) in changed {
            dropped |= forget(&mut rows, user_id, provider_id);
        }
        if dropped {
            rows.generation += 1;
        }
        rows.watched_at = Some(self.clock.instant());
    }

    /// Too many changes to go through one by one: start over.
    fn clear(&self) {
        let mut rows = self.rows();
        let generation = rows.generation + 1;
        *rows = Rows {
            generation,
            watched_at: Some(self.clock.instant()),
            ..Rows::default()
        };
    }

    /// The watcher cannot read the change table: stop vouching for long-lived entries.
    fn watch_failed(&self) {
        self.rows().watched_at = None;
    }
}

fn insert(rows: &mut Rows, row: &Arc<ConnectionRecord>, now: Instant) {
    if rows.entries >= MAX_ENTRIES {
        let generation = rows.generation;
        let watched_at = rows.watched_at;
        *rows = Rows {
            generation,
            watched_at,
            ..Rows::default()
        };
    }
    let previous = rows
        .by_user
        .entry(row.user_id.clone())
        .or_default()
        .insert(row.provider_id.clone(), (row.clone(), now));
    if previous.is_none() {
        rows.entries += 1;
    }
}

/// True when an entry was there.
fn forget(rows: &mut Rows, user_id: &str, provider_id: &str) -> bool {
    let Some(providers) = rows.by_user.get_mut(user_id) else {
        return false;
    };
    let removed = providers.remove(provider_id).is_some();
    if providers.is_empty() {
        rows.by_user.remove(user_id);
    }
    if removed {
        rows.entries -= 1;
    }
    removed
}

/// Reads the store's change table every [`POLL_INTERVAL`] and drops the rows it names
/// from `cache`, until `shutdown` changes. Prunes changes older than an hour now and then.
pub async fn watch(
    store: Arc<dyn Store>,
    cache: &ConnectionCache,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    // seq → stamp of the changes already applied, kept while they are inside the window.
    let mut seen: HashMap<i64, i64> = HashMap::new();
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned_at = Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        // The change table is stamped by the store's clock: real time, whatever ours says.
        let since = Clock::system().now_ms() - POLL_OVERLAP_MS;
        match store.connection_changes_since(since, POLL_LIMIT).await {
            Ok(changes) => {
                let fresh: Vec<_> = changes
                    .iter()
                    .filter(|c| seen.insert(c.seq, c.at_ms).is_none())
                    .collect();
                if changes.len() >= POLL_LIMIT as usize {
                    tracing::info!(
                        changes = changes.len(),
                        "many connection changes at once; dropping the connection cache"
                    );
                    cache.clear();
                } else {
                    cache.apply_changes(
                        fresh
                            .iter()
                            .map(|c| (c.user_id.as_str(), c.provider_id.as_str())),
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read connection changes; cached connections now expire after 2 s");
                cache.watch_failed();
            }
        }
        // Changes that have left the window cannot come back.
        seen.retain(|_, at_ms| *at_ms >= since);
        if pruned_at.elapsed() >= PRUNE_EVERY {
            pruned_at = Instant::now();
            let before = Clock::system().now_ms() - KEEP_CHANGES_MS;
            if let Err(e) = store.prune_connection_changes(before).await {
                tracing::warn!(error = %e, "could not prune old connection changes");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, provider: &str) -> Arc<ConnectionRecord> {
        Arc::new(ConnectionRecord {
            id: format!("{user}-{provider}"),
            user_id: user.into(),
            provider_id: provider.into(),
            provider_service: provider.into(),
            status: "active".into(),
            scopes: Vec::new(),
            access_token_sealed: "sealed".into(),
            refresh_token_sealed: None,
            expires_at_ms: None,
            user_info: None,
            provider_user_id: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            version: 1,
            token_lifetime_ms: None,
        })
    }

    fn cache() -> (ConnectionCache, Clock) {
        let clock = Clock::manual();
        (ConnectionCache::new(clock.clone()), clock)
    }

    #[test]
    fn a_watched_entry_outlives_the_short_ttl_until_a_change_names_it() {
        let (cache, clock) = cache();
        cache.apply_changes(std::iter::empty());
        cache.put(&row("alice", "google"));
        cache.put(&row("bob", "google"));
        clock.advance(TTL + Duration::from_millis(100));
        // The watcher is still vouching (it polls every second in real use).
        cache.apply_changes([("alice", "google")].into_iter());
        assert!(cache.get("alice", "google").is_none(), "named by a change");
        assert!(
            cache.get("bob", "google").is_some(),
            "unchanged rows stay past the short TTL while watched"
        );
        // Without a healthy watcher the short TTL applies again.
        cache.watch_failed();
        assert!(cache.get("bob", "google").is_none());
    }

    #[test]
    fn an_unwatched_entry_lives_the_short_ttl() {
        let (cache, clock) = cache();
        cache.put(&row("alice", "google"));
        assert!(cache.get("alice", "google").is_some());
        clock.advance(TTL + Duration::from_millis(100));
        assert!(cache.get("alice", "google").is_none());
    }

    #[test]
    fn a_row_read_while_the_watcher_dropped_entries_is_not_cached() {
        let (cache, _) = cache();
        cache.put(&row("alice", "google"));
        let before_read = cache.generation();
        // A change lands while the store read is in flight.
        cache.apply_changes([("alice", "google")].into_iter());
        cache.put_read(&row("alice", "google"), before_read);
        assert!(cache.get("alice", "google").is_none());
        // Read again after the change: cached.
        let generation = cache.generation();
        cache.put_read(&row("alice", "google"), generation);
        assert!(cache.get("alice", "google").is_some());
    }

    #[test]
    fn forgetting_keeps_the_entry_count_exact() {
        let (cache, _) = cache();
        cache.put(&row("alice", "google"));
        cache.put(&row("alice", "github"));
        cache.put(&row("alice", "github"));
        cache.put(&row("bob", "google"));
        assert_eq!(cache.rows().entries, 3);
        cache.forget("alice", "github");
        cache.forget("alice", "github");
        assert_eq!(cache.rows().entries, 2);
        cache.forget_user("alice");
        assert_eq!(cache.rows().entries, 1);
        cache.clear();
        assert_eq!(cache.rows().entries, 0);
        assert!(cache.get("bob", "google").is_none());
    }
}
