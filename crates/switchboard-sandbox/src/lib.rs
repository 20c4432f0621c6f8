//! The sandbox provider: a small, real OAuth 2.0 authorization server (RFC 6749, PKCE per
//! RFC 7636, revocation per RFC 7009) and a one-endpoint resource API, served by the
//! gateway itself in dev mode (`provider_id: sandbox`).
//!
//! It exists so that a new user can walk the whole per-user flow offline in a browser
//! (authorize → consent page → callback → tool call with their token), and so that tests
//! and benchmarks exercise the gateway's real OAuth path: code exchange with PKCE, refresh
//! tokens that rotate, short token lifetimes, replay and revocation.
//!
//! Routes, relative to where the router is nested (the gateway uses `/sandbox`):
//! - `GET  /oauth/authorize`  consent page ([`consent`])
//! - `POST /oauth/authorize`  Allow / Deny, then 303 to the client's `redirect_uri`
//! - `POST /oauth/token`      `authorization_code` and `refresh_token` grants ([`token`])
//! - `POST /oauth/revoke`     RFC 7009 revocation
//! - `GET  /api/me`           who the bearer token belongs to ([`api`])
//!
//! Must not: be mounted outside dev mode, or be taken for an identity provider. Anyone
//! who can reach it can "sign in" as any username: there are no passwords, no sessions
//! and no registered redirect URIs (any absolute http(s) URI is accepted). It knows
//! nothing of the gateway's vault, users or store, and the gateway reaches it only over
//! HTTP, as it would any provider.
//!
//! A crate of its own so that this stays true: it depends on nothing of the gateway's, and
//! the gateway (`server.rs`) only builds a [`Sandbox`] and nests its [`Sandbox::router`].
//!
//! State (codes, tokens) is in memory, in one process: dev mode runs a single gateway, and a
//! restart signing every sandbox connection out is acceptable there. Every map is bounded:
//! expired entries are pruned every few inserts and a hard cap evicts the oldest.

mod api;
mod consent;
mod state;
mod token;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};

use state::Grants;

/// Path of the authorization endpoint, relative to the sandbox's mount point.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
/// Path of the token endpoint, relative to the sandbox's mount point.
pub const TOKEN_PATH: &str = "/oauth/token";
/// Path of the revocation endpoint, relative to the sandbox's mount point.
pub const REVOKE_PATH: &str = "/oauth/revoke";
/// Path of the user-info API, relative to the sandbox's mount point.
pub const ME_PATH: &str = "/api/me";
/// Every access token starts with this, so tests can search logs and files for leaks.
pub const ACCESS_TOKEN_PREFIX: &str = "sbx_at_";
/// Every refresh token starts with this, so tests can search logs and files for leaks.
pub const REFRESH_TOKEN_PREFIX: &str = "sbx_rt_";
/// The one client's id when none is configured.
pub const DEFAULT_CLIENT_ID: &str = "sandbox-client";
/// Its secret when none is configured. Dev mode only, so it may be a well-known string.
pub const DEFAULT_CLIENT_SECRET: &str = "sandbox-secret";
/// Granted when the authorization request names no scope.
pub const DEFAULT_SCOPE: &str = "profile";

/// What the server reads its time from. Tests hand in one they can advance, so expiry
/// needs no sleeping.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The sandbox's one client and its lifetimes. Build with `..Default::default()`: fields
/// may be added.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// The only client the server knows (default [`DEFAULT_CLIENT_ID`]).
    pub client_id: String,
    /// Its secret, for `client_secret_post` or `client_secret_basic` (default
    /// [`DEFAULT_CLIENT_SECRET`]). Dev mode only, so it is a plain string.
    pub client_secret: String,
    /// Lifetime of an access token (default 1 hour; tests use seconds).
    pub access_token_lifetime: Duration,
    /// Lifetime of a refresh token, counted from when it was issued; each rotation issues
    /// a fresh one (default 30 days).
    pub refresh_token_lifetime: Duration,
    /// Lifetime of an authorization code (default 60 s).
    pub code_lifetime: Duration,
    /// What presenting an already-rotated refresh token does besides `invalid_grant`.
    /// `true` (default, like X and Discord, and OAuth 2.0 Security BCP §4.14.2): the
    /// whole grant is revoked, every access and refresh token descending from the same
    /// code, so a gateway that lets two refreshes race loses the connection and the
    /// race shows. `false`: only that request fails.
    pub revoke_family_on_refresh_reuse: bool,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            access_token_lifetime: Duration::from_secs(3600),
            refresh_token_lifetime: Duration::from_secs(30 * 24 * 3600),
            code_lifetime: Duration::from_secs(60),
            revoke_family_on_refresh_reuse: true,
        }
    }
}

/// Counters since start, for tests and benchmarks ("exactly one refresh reached the
/// provider").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SandboxStats {
    /// Consent pages shown (valid `GET /oauth/authorize`).
    pub authorize_requests: u64,
    /// Codes minted by Allow.
    pub codes_issued: u64,
    /// Every `POST /oauth/token`, whatever its grant or outcome.
    pub token_requests: u64,
    /// Token requests with `grant_type=authorization_code`.
    pub code_exchanges: u64,
    /// Token requests with `grant_type=refresh_token`, successful or not.
    pub refresh_requests: u64,
    /// Token requests answered `invalid_grant`.
    pub invalid_grants: u64,
    /// Token requests answered 500 because a failure was injected.
    pub injected_failures: u64,
    /// Every `POST /oauth/revoke`.
    pub revoke_requests: u64,
    /// Every `GET /api/me`, whatever its outcome.
    pub api_requests: u64,
    /// Codes held now (unused or kept to detect replay).
    pub live_codes: u64,
    /// Access tokens held now.
    pub live_access_tokens: u64,
    /// Refresh tokens held now (current or kept to detect reuse).
    pub live_refresh_tokens: u64,
}

/// The sandbox server. Cheap to clone: everything is behind one `Arc`.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    settings: SandboxSettings,
    clock: Clock,
    // A std Mutex, not tokio's: every critical section is a few map operations and never
    // awaits, and one lock over all maps keeps code use and token minting atomic.
    grants: Mutex<Grants>,
    counters: Counters,
    faults: Faults,
}

/// Plain atomics: counted outside the lock, read without it.
#[derive(Default)]
struct Counters {
    authorize_requests: AtomicU64,
    codes_issued: AtomicU64,
    token_requests: AtomicU64,
    code_exchanges: AtomicU64,
    refresh_requests: AtomicU64,
    invalid_grants: AtomicU64,
    injected_failures: AtomicU64,
    revoke_requests: AtomicU64,
    api_requests: AtomicU64,
}

/// Knobs for tests of the gateway's failure handling (provider 500 on refresh, refresh
/// single-flight under a slow provider).
#[derive(Default)]
struct Faults {
    /// Token requests still to answer with 500 `server_error`.
    fail_token_requests: AtomicU64,
    /// Delay before answering a token request, in milliseconds.
    token_latency_ms: AtomicU64,
}

impl Sandbox {
    /// A sandbox reading the system's monotonic clock.
    pub fn new(settings: SandboxSettings) -> Self {
        Self::with_clock(settings, Arc::new(Instant::now))
    }

    /// A sandbox reading `clock`, which must never go backwards.
    pub fn with_clock(settings: SandboxSettings, clock: Clock) -> Self {
        Sandbox {
            inner: Arc::new(Inner {
                settings,
                clock,
                grants: Mutex::new(Grants::default()),
                counters: Counters::default(),
                faults: Faults::default(),
            }),
        }
    }

    /// The routes, relative to the mount point; the gateway nests this under `/sandbox`.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                AUTHORIZE_PATH,
                get(consent::show_consent).post(consent::decide),
            )
            .route(TOKEN_PATH, post(token::token))
            .route(REVOKE_PATH, post(token::revoke))
            .route(ME_PATH, get(api::me))
            .with_state(self.clone())
    }

    pub fn settings(&self) -> &SandboxSettings {
        &self.inner.settings
    }

    pub fn stats(&self) -> SandboxStats {
        let c = &self.inner.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (live_codes, live_access_tokens, live_refresh_tokens) = self.grants().sizes();
        SandboxStats {
            authorize_requests: load(&c.authorize_requests),
            codes_issued: load(&c.codes_issued),
            token_requests: load(&c.token_requests),
            code_exchanges: load(&c.code_exchanges),
            refresh_requests: load(&c.refresh_requests),
            invalid_grants: load(&c.invalid_grants),
            injected_failures: load(&c.injected_failures),
            revoke_requests: load(&c.revoke_requests),
            api_requests: load(&c.api_requests),
            live_codes,
            live_access_tokens,
            live_refresh_tokens,
        }
    }

    /// The next `n` token requests (any grant) answer 500 `{"error":"server_error"}` and
    /// change nothing: for testing that a provider outage keeps a connection's tokens.
    pub fn fail_next_token_requests(&self, n: u64) {
        self.inner
            .faults
            .fail_token_requests
            .store(n, Ordering::SeqCst);
    }

    /// Every token request waits `latency` before it is handled: widens the window in
    /// which concurrent refreshes could race.
    pub fn set_token_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.inner
            .faults
            .token_latency_ms
            .store(ms, Ordering::SeqCst);
    }

    fn now(&self) -> Instant {
        (self.inner.clock)()
    }

    fn grants(&self) -> MutexGuard<'_, Grants> {
        // A poisoned lock means a panic mid-update of plain maps; the maps are still
        // usable (at worst an entry is missing), and dev mode should keep serving.
        self.inner
            .grants
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn count(&self, pick: impl Fn(&Counters) -> &AtomicU64) {
        pick(&self.inner.counters).fetch_add(1, Ordering::Relaxed);
    }
}

/// 32 random bytes, base64url without padding: codes and tokens.
fn random_string() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Constant-time equality, for the client secret and PKCE: an early exit would let a
/// caller learn a prefix by timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
