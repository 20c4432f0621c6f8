//! The `switchboard` binary. On Linux its heap is jemalloc's: glibc's `malloc`/`free` were
//! ~13 % of a REST execute's instructions and ~18 % of an MCP `tools/call`'s (BENCHMARKS.md,
//! eleventh pass). The library and its tests keep the system allocator.

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its options from this symbol at start (`_RJEM_MALLOC_CONF` overrides).
/// A background thread returns pages unused for a second to the system, off the serving
/// threads, and at once (`MADV_DONTNEED`; with `MADV_FREE` they stay in RSS until the
/// kernel wants them). Measured 5 s after 10,000 MCP sessions were parked: 48 KB a session
/// stayed with jemalloc's defaults, 22 KB with the thread and a 10 s decay, 2 KB with this.
#[cfg(target_os = "linux")]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: Option<&'static u8> =
    Some(&b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0]);

fn main() -> std::process::ExitCode {
    switchboard::cli::main()
}
