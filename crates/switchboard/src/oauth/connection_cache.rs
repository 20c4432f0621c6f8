//! A short-lived cache of connection rows as stored: sealed tokens only, never plaintext.
//! It saves the store read on the call path (the bulk of a grant's cost); each call still
//! opens its token into a `SecretString` that is dropped with the call.
//!
//! Local changes (new grant, refresh, revoke, user deletion) invalidate the entry at once;
//! another replica's change is seen within [`TTL`]. A token another replica has already
//! rotated away is refused by the upstream, and the refused-token path re-reads the store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::ConnectionRecord;

pub const TTL: Duration = Duration::from_secs(2);
/// Past this many entries the cache starts over; rows are re-read on demand.
const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
pub struct ConnectionCache {
    /// (user id, provider id) → row and when it was read. A std Mutex: no `.await` inside.
    rows: Mutex<HashMap<(String, String), (ConnectionRecord, Instant)>>,
}

impl ConnectionCache {
    pub fn get(&self, user_id: &str, provider_id: &str) -> Option<ConnectionRecord> {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.get(&(user_id.to_string(), provider_id.to_string()))
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(row, _)| row.clone())
    }

    pub fn put(&self, row: &ConnectionRecord) {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        if rows.len() >= MAX_ENTRIES {
            rows.clear();
        }
        rows.insert(
            (row.user_id.clone(), row.provider_id.clone()),
            (row.clone(), Instant::now()),
        );
    }

    pub fn forget(&self, user_id: &str, provider_id: &str) {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.remove(&(user_id.to_string(), provider_id.to_string()));
    }

    pub fn forget_user(&self, user_id: &str) {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.retain(|(user, _), _| user != user_id);
    }
}
