//! The sandbox's memory: authorization codes, access tokens, refresh tokens.
//!
//! Tokens descending from one code form a family (one grant); revocation, code replay
//! and refresh-token reuse act on the whole family. Used codes and rotated refresh tokens
//! stay behind as tombstones for a while, so that presenting them again is recognised
//! as a replay rather than an unknown value. Everything expires and the maps are capped,
//! so a dev box left running for weeks stays small.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX, random_string};

/// How long a used code is remembered, to revoke its tokens if it is replayed.
const CODE_REPLAY_MEMORY: Duration = Duration::from_secs(10 * 60);
/// How long a rotated refresh token is remembered, to detect its reuse.
const REFRESH_REUSE_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// Expired entries are pruned after this many inserts.
const PRUNE_EVERY: u32 = 64;
/// Hard cap per map; beyond it the oldest entries go, even unexpired.
const MAX_ENTRIES: usize = 20_000;

/// Who and what a grant is for. Shared by a code and the tokens minted from it.
#[derive(Debug, Clone)]
pub(super) struct Grant {
    pub client_id: String,
    pub username: String,
    /// The scopes the user allowed: a refresh may narrow them, never widen.
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub(super) struct CodeEntry {
    pub grant: Grant,
    pub redirect_uri: String,
    /// The S256 challenge, when the client sent one.
    pub code_challenge: Option<String>,
    issued_at: Instant,
    expires_at: Instant,
    used: Option<UsedCode>,
}

#[derive(Debug, Clone)]
struct UsedCode {
    /// The family minted from it; `None` when the exchange failed.
    family: Option<u64>,
    forget_at: Instant,
}

#[derive(Debug, Clone)]
pub(super) struct AccessEntry {
    pub grant: Grant,
    /// What this token carries: the grant's scopes, or fewer after a narrowing refresh.
    pub scopes: Vec<String>,
    family: u64,
    issued_at: Instant,
    expires_at: Instant,
}

#[derive(Debug, Clone)]
pub(super) struct RefreshEntry {
    pub grant: Grant,
    pub family: u64,
    issued_at: Instant,
    expires_at: Instant,
    /// Set once it has been exchanged: from then on it is a tombstone.
    rotated_at: Option<Instant>,
}

/// Lifetimes applied when minting.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lifetimes {
    pub code: Duration,
    pub access: Duration,
    pub refresh: Duration,
}

/// What the token endpoint returns. No `Debug`: it holds tokens.
pub(super) struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub scopes: Vec<String>,
}

/// Why a code or a refresh token was refused. All become `invalid_grant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    Unknown,
    Expired,
    /// A used code or a rotated refresh token, from the given family (if any).
    Replayed(Option<u64>),
}

#[derive(Default)]
pub(super) struct Grants {
    /// Code → entry; used codes stay as tombstones until `forget_at`.
    codes: HashMap<String, CodeEntry>,
    access: HashMap<String, AccessEntry>,
    /// Refresh token → entry; rotated ones stay as tombstones.
    refresh: HashMap<String, RefreshEntry>,
    next_family: u64,
    inserts_since_prune: u32,
}

impl Grants {
    pub fn sizes(&self) -> (u64, u64, u64) {
        let len = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        (
            len(self.codes.len()),
            len(self.access.len()),
            len(self.refresh.len()),
        )
    }

    /// Mints a single-use code for an allowed request.
    pub fn issue_code(
        &mut self,
        grant: Grant,
        redirect_uri: String,
        code_challenge: Option<String>,
        now: Instant,
        lifetimes: Lifetimes,
    ) -> String {
        self.before_insert(now);
        let code = random_string();
        self.codes.insert(
            code.clone(),
            CodeEntry {
                grant,
                redirect_uri,
                code_challenge,
                issued_at: now,
                expires_at: now + lifetimes.code,
                used: None,
            },
        );
        code
    }

    /// Marks `code` used and returns it, whatever the caller then decides: a code is
    /// spent by any exchange attempt, so a stolen code cannot be tried against many
    /// verifiers. A second use answers `Replayed` with the family minted from it.
    pub fn use_code(&mut self, code: &str, now: Instant) -> Result<CodeEntry, Refused> {
        let entry = self.codes.get_mut(code).ok_or(Refused::Unknown)?;
        if let Some(used) = &entry.used {
            return Err(Refused::Replayed(used.family));
        }
        if now >= entry.expires_at {
            self.codes.remove(code);
            return Err(Refused::Expired);
        }
        entry.used = Some(UsedCode {
            family: None,
            forget_at: (now + CODE_REPLAY_MEMORY).max(entry.expires_at),
        });
        Ok(entry.clone())
    }

    /// Mints the first tokens of a new family from a code that checked out.
    pub fn issue_from_code(
        &mut self,
        code: &str,
        now: Instant,
        lifetimes: Lifetimes,
    ) -> Option<Issued> {
        let grant = self.codes.get(code)?.grant.clone();
        let family = self.next_family;
        self.next_family += 1;
        if let Some(used) = self.codes.get_mut(code).and_then(|e| e.used.as_mut()) {
            used.family = Some(family);
        }
        let scopes = grant.scopes.clone();
        Some(self.issue_tokens(grant, scopes, family, now, lifetimes))
    }

    /// The current refresh token, without using it.
    pub fn peek_refresh(&self, token: &str, now: Instant) -> Result<RefreshEntry, Refused> {
        let entry = self.refresh.get(token).ok_or(Refused::Unknown)?;
        if entry.rotated_at.is_some() {
            return Err(Refused::Replayed(Some(entry.family)));
        }
        if now >= entry.expires_at {
            return Err(Refused::Expired);
        }
        Ok(entry.clone())
    }

    /// Rotates `token` (checked by [`Grants::peek_refresh`] under the same lock): it
    /// becomes a tombstone and a new access and refresh token are minted in its family.
    pub fn rotate_refresh(
        &mut self,
        token: &str,
        access_scopes: Vec<String>,
        now: Instant,
        lifetimes: Lifetimes,
    ) -> Option<Issued> {
        let entry = self.refresh.get_mut(token)?;
        entry.rotated_at = Some(now);
        let (grant, family) = (entry.grant.clone(), entry.family);
        Some(self.issue_tokens(grant, access_scopes, family, now, lifetimes))
    }

    /// The live access token, or `None` if unknown, expired or revoked.
    pub fn access(&self, token: &str, now: Instant) -> Option<&AccessEntry> {
        self.access.get(token).filter(|e| now < e.expires_at)
    }

    /// Removes every access and refresh token of `family`. Code tombstones stay, so a
    /// replayed code is still refused.
    pub fn revoke_family(&mut self, family: u64) {
        self.access.retain(|_, e| e.family != family);
        self.refresh.retain(|_, e| e.family != family);
    }

    /// Revokes the family of `token` (access or refresh) if it was issued to
    /// `client_id`; unknown tokens are ignored (RFC 7009 §2.2).
    pub fn revoke_token(&mut self, token: &str, client_id: &str) -> bool {
        let family = self
            .access
            .get(token)
            .filter(|e| e.grant.client_id == client_id)
            .map(|e| e.family)
            .or_else(|| {
                self.refresh
                    .get(token)
                    .filter(|e| e.grant.client_id == client_id)
                    .map(|e| e.family)
            });
        match family {
            Some(f) => {
                self.revoke_family(f);
                true
            }
            None => false,
        }
    }

    fn issue_tokens(
        &mut self,
        grant: Grant,
        scopes: Vec<String>,
        family: u64,
        now: Instant,
        lifetimes: Lifetimes,
    ) -> Issued {
        self.before_insert(now);
        let access_token = format!("{ACCESS_TOKEN_PREFIX}{}", random_string());
        let refresh_token = format!("{REFRESH_TOKEN_PREFIX}{}", random_string());
        self.access.insert(
            access_token.clone(),
            AccessEntry {
                grant: grant.clone(),
                scopes: scopes.clone(),
                family,
                issued_at: now,
                expires_at: now + lifetimes.access,
            },
        );
        self.refresh.insert(
            refresh_token.clone(),
            RefreshEntry {
                grant,
                family,
                issued_at: now,
                expires_at: now + lifetimes.refresh,
                rotated_at: None,
            },
        );
        Issued {
            access_token,
            refresh_token,
            scopes,
        }
    }

    /// Every few inserts, drops what has expired; whenever a map is full, drops its
    /// oldest tenth. Called before inserting, so a map never exceeds the cap.
    fn before_insert(&mut self, now: Instant) {
        self.inserts_since_prune += 1;
        if self.inserts_since_prune >= PRUNE_EVERY {
            self.inserts_since_prune = 0;
            self.prune_expired(now);
        }
        if self.codes.len() >= MAX_ENTRIES {
            self.prune_expired(now);
            evict_oldest(&mut self.codes, |e| e.issued_at);
        }
        if self.access.len() >= MAX_ENTRIES || self.refresh.len() >= MAX_ENTRIES {
            self.prune_expired(now);
            evict_oldest(&mut self.access, |e| e.issued_at);
            evict_oldest(&mut self.refresh, |e| e.issued_at);
        }
    }

    fn prune_expired(&mut self, now: Instant) {
        self.codes.retain(|_, e| match &e.used {
            Some(used) => now < used.forget_at,
            None => now < e.expires_at,
        });
        self.access.retain(|_, e| now < e.expires_at);
        self.refresh.retain(|_, e| match e.rotated_at {
            Some(at) => now < (at + REFRESH_REUSE_MEMORY).min(e.expires_at),
            None => now < e.expires_at,
        });
    }
}

/// Drops the oldest tenth of `map` if it is at or over the cap.
fn evict_oldest<V>(map: &mut HashMap<String, V>, issued_at: impl Fn(&V) -> Instant) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    let mut by_age: Vec<(Instant, String)> =
        map.iter().map(|(k, v)| (issued_at(v), k.clone())).collect();
    by_age.sort_unstable();
    for (_, key) in by_age.into_iter().take(MAX_ENTRIES / 10) {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            client_id: "c".into(),
            username: "u".into(),
            scopes: vec!["profile".into()],
        }
    }

    const LIFETIMES: Lifetimes = Lifetimes {
        code: Duration::from_secs(60),
        access: Duration::from_secs(60),
        refresh: Duration::from_secs(600),
    };

    #[test]
    fn maps_stay_under_the_cap_however_many_tokens_are_minted() {
        let mut g = Grants::default();
        let now = Instant::now();
        for _ in 0..(MAX_ENTRIES + 500) {
            let code = g.issue_code(grant(), "http://x/cb".into(), None, now, LIFETIMES);
            g.use_code(&code, now).unwrap();
            g.issue_from_code(&code, now, LIFETIMES).unwrap();
        }
        let (codes, access, refresh) = g.sizes();
        let cap = MAX_ENTRIES as u64;
        assert!(
            codes <= cap && access <= cap && refresh <= cap,
            "{codes} {access} {refresh}"
        );
    }

    #[test]
    fn expired_entries_are_pruned_as_new_ones_arrive() {
        let mut g = Grants::default();
        let start = Instant::now();
        for _ in 0..10 {
            let code = g.issue_code(grant(), "http://x/cb".into(), None, start, LIFETIMES);
            g.use_code(&code, start).unwrap();
            g.issue_from_code(&code, start, LIFETIMES).unwrap();
        }
        let later = start + Duration::from_secs(3600);
        for _ in 0..PRUNE_EVERY {
            g.issue_code(grant(), "http://x/cb".into(), None, later, LIFETIMES);
        }
        let (codes, access, refresh) = g.sizes();
        assert_eq!((access, refresh), (0, 0));
        assert!(codes <= u64::from(PRUNE_EVERY), "{codes}");
    }
}
