//! Per-user data keys: created on a user's first grant, wrapped by the default root key,
//! kept in the store, and cached unwrapped in memory so a call opens its token with one
//! AES-GCM operation instead of a store read and an unwrap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::store::{Store, UserKeyRecord};
use crate::vault::{DataKey, Vault, WrappedKey};

use super::AuthError;

/// Cap on cached data keys; past it the cache starts over (keys are re-read on demand).
const CACHE_MAX: usize = 50_000;

pub struct UserKeys {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    /// user id → unwrapped key. A std Mutex: held for a lookup or insert, never across
    /// `.await`. Cleared on rotation and user deletion.
    cache: Mutex<HashMap<String, Arc<DataKey>>>,
    /// Stamps a new key's creation.
    clock: Clock,
}

impl UserKeys {
    pub fn new(store: Arc<dyn Store>, vault: Arc<Vault>, clock: Clock) -> Self {
        Self {
            store,
            vault,
            cache: Mutex::new(HashMap::new()),
            clock,
        }
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    fn cached(&self, user_id: &str) -> Option<Arc<DataKey>> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user_id)
            .cloned()
    }

    fn remember(&self, user_id: &str, key: DataKey) -> Arc<DataKey> {
        let key = Arc::new(key);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(user_id.to_string(), key.clone());
        key
    }

    pub fn forget(&self, user_id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user_id);
    }

    pub fn forget_all(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The user's data key, or `None` if they have none yet.
    pub async fn existing(&self, user_id: &str) -> Result<Option<Arc<DataKey>>, AuthError> {
        if let Some(key) = self.cached(user_id) {
            return Ok(Some(key));
        }
        let Some(record) = self.store.get_user_key(user_id).await? else {
            return Ok(None);
        };
        let wrapped = WrappedKey {
            root_key_id: record.root_key_id,
            blob: record.wrapped_key,
        };
        let key = self.vault.open_data_key(user_id, &wrapped)?;
        Ok(Some(self.remember(user_id, key)))
    }

    /// The user's data key, created (and stored) on first use. Two replicas creating one
    /// at once both end up with the stored winner.
    pub async fn get_or_create(&self, user_id: &str) -> Result<Arc<DataKey>, AuthError> {
        if let Some(key) = self.existing(user_id).await? {
            return Ok(key);
        }
        let (_, wrapped) = self.vault.new_data_key(user_id);
        let record = UserKeyRecord {
            user_id: user_id.to_string(),
            root_key_id: wrapped.root_key_id,
            wrapped_key: wrapped.blob,
            created_at_ms: self.clock.now_ms(),
        };
        let stored = self.store.insert_user_key(&record).await?;
        let wrapped = WrappedKey {
            root_key_id: stored.root_key_id,
            blob: stored.wrapped_key,
        };
        let key = self.vault.open_data_key(user_id, &wrapped)?;
        Ok(self.remember(user_id, key))
    }

    /// Re-wraps every user's data key under the current default root key. Returns
    /// (re-wrapped, already current).
    pub async fn rotate_all(&self) -> Result<(usize, usize), AuthError> {
        let mut rewrapped = 0;
        let mut current = 0;
        for record in self.store.list_user_keys().await? {
            if record.root_key_id == self.vault.default_root_key_id() {
                current += 1;
                continue;
            }
            let wrapped = WrappedKey {
                root_key_id: record.root_key_id.clone(),
                blob: record.wrapped_key.clone(),
            };
            let new = self.vault.rewrap(&record.user_id, &wrapped)?;
            let updated = UserKeyRecord {
                root_key_id: new.root_key_id,
                wrapped_key: new.blob,
                ..record
            };
            self.store.update_user_key(&updated).await?;
            rewrapped += 1;
        }
        self.forget_all();
        Ok((rewrapped, current))
    }
}
