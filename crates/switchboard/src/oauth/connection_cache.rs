//! A short-lived cache of connection rows as stored: sealed tokens only, never plaintext.
//! It saves the store read on the call path (the bulk of a grant's cost); each call still
//! opens its token into a `SecretString` that is dropped with the call.
//!
//! Local changes (new grant, refresh, revoke, user deletion) invalidate the entry at once;
//! another replica's change is seen within [`TTL`]. A token another replica has already
//! rotated away is refused by the upstream, and the refused-token path re-reads the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::ConnectionRecord;

pub const TTL: Duration = Duration::from_secs(2);
/// Past this many entries the cache starts over; rows are re-read on demand.
const MAX_ENTRIES: usize = 50_000;

/// user id → provider id → (row, when it was read). Two levels so a lookup borrows the
/// ids instead of building an owned key per call; rows are shared, not copied.
#[derive(Default)]
struct Rows {
    by_user: HashMap<String, HashMap<String, (Arc<ConnectionRecord>, Instant)>>,
    entries: usize,
}

#[derive(Default)]
pub struct ConnectionCache {
    /// A std Mutex: no `.await` inside.
    rows: Mutex<Rows>,
}

impl ConnectionCache {
    fn rows(&self) -> std::sync::MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, user_id: &str, provider_id: &str) -> Option<Arc<ConnectionRecord>> {
        self.rows()
            .by_user
            .get(user_id)?
            .get(provider_id)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(row, _)| row.clone())
    }

    pub fn put(&self, row: &Arc<ConnectionRecord>) {
        let mut rows = self.rows();
        if rows.entries >= MAX_ENTRIES {
            *rows = Rows::default();
        }
        let previous = rows
            .by_user
            .entry(row.user_id.clone())
            .or_default()
            .insert(row.provider_id.clone(), (row.clone(), Instant::now()));
        if previous.is_none() {
            rows.entries += 1;
        }
    }

    pub fn forget(&self, user_id: &str, provider_id: &str) {
        let mut rows = self.rows();
        let Some(providers) = rows.by_user.get_mut(user_id) else {
            return;
        };
        let removed = providers.remove(provider_id).is_some();
        let now_empty = providers.is_empty();
        if now_empty {
            rows.by_user.remove(user_id);
        }
        if removed {
            rows.entries -= 1;
        }
    }

    pub fn forget_user(&self, user_id: &str) {
        let mut rows = self.rows();
        if let Some(providers) = rows.by_user.remove(user_id) {
            rows.entries -= providers.len();
        }
    }
}
