/// mimalloc rather than glibc's malloc: a call allocates and frees many small buffers on
/// one thread at a time, and glibc spent ~16 % of the gateway's CPU in malloc, free and
/// consolidation (BENCHMARKS.md, sixth pass).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    switchboard::cli::main()
}
