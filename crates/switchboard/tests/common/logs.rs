//! One test's log lines, captured in memory.

use std::sync::{Arc, Mutex};

/// A `MakeWriter` into memory, for one test's logs.
#[derive(Clone, Default)]
pub struct LogBuffer(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

thread_local! {
    static CAPTURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Captures every log line at TRACE written on this thread from now on (run the test on
/// a current-thread runtime so the gateway logs on it). One global subscriber whose
/// filter asks the thread: a scoped (`set_default`) subscriber can miss events whose
/// callsite interest another test's thread cached first.
pub fn capture_logs_on_this_thread() -> LogBuffer {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    let logs = LOGS
        .get_or_init(|| {
            let logs = LogBuffer::default();
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(logs.clone())
                .with_filter(tracing_subscriber::filter::filter_fn(|_| {
                    CAPTURING.with(std::cell::Cell::get)
                }))
                .with_filter(tracing_subscriber::filter::LevelFilter::TRACE);
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .expect("no other global subscriber in this test binary");
            logs
        })
        .clone();
    CAPTURING.with(|c| c.set(true));
    logs
}
