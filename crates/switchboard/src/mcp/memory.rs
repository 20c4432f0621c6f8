//! Gives the memory of parked MCP sessions back to the system. A live handshake-era
//! session holds rmcp's service and channels, tens of KB; when thousands are parked at
//! once, glibc's malloc keeps their freed pages (it only trims the top of a heap, and a
//! thread's arena is not reused by another), so the process would stay at its peak.
//! `malloc_trim` returns those free pages.
//!
//! The `switchboard` binary allocates on jemalloc, whose background thread purges on its
//! own (`src/main.rs`); there the trim still returns what C code (SQLite) freed on glibc's
//! heap. Embedders on glibc's malloc get the whole effect.

/// Parked sessions worth a trim: below this the freed memory is simply reused.
pub const TRIM_AFTER_PARKED: usize = 256;
/// From seeing sessions parked to trimming: rmcp frees the rest of a session just after.
pub const TRIM_DELAY: std::time::Duration = std::time::Duration::from_secs(2);

/// Returns free heap pages to the system. Blocking (it walks every arena): call it off
/// the serving threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_pages() {
    // SAFETY: malloc_trim takes no pointers and walks glibc's own arenas under their locks.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released = released != 0, "free heap pages returned");
}

/// Other allocators return free memory themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_pages() {}
