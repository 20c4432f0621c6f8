//! Execution records are written off the call path: calls hand a record to a bounded
//! channel and one task writes batches (one transaction per batch), so a slow store
//! never slows a tool call. On shutdown the task drains what is buffered.
//!
//! The writer runs on its own thread and runtime, not on a serving thread: binding a
//! 500-row batch is a burst of work, and on a serving thread every call queued behind it
//! waited. Measured at concurrency 16: p99 ~200 µs lower (BENCHMARKS.md, sixth pass).
//!
//! The writer is woken once per batch, not once per record: after the first record of a
//! batch it sleeps until the batch is due (or a sender says it is full), and records
//! queued meanwhile wake nobody. A wake per call cost a thread wake-up per call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::config::ExecutionLoggingConfig;
use crate::store::{ExecutionRecord, Store};

#[derive(Clone)]
pub struct Recorder {
    /// `None` when execution logging is disabled.
    tx: Option<mpsc::Sender<ExecutionRecord>>,
    dropped: Arc<AtomicU64>,
    /// Told when a whole batch is queued, so the writer need not wait for its timer.
    batch_full: Arc<Notify>,
    batch_size: usize,
}

/// Owned by `serve`; awaiting [`RecorderTask::drain`] flushes what is buffered.
pub struct RecorderTask {
    /// Completes when the writer thread has written everything and stopped.
    done: Option<oneshot::Receiver<()>>,
    drain_timeout: Duration,
}

impl Recorder {
    pub fn start(store: Arc<dyn Store>, cfg: &ExecutionLoggingConfig) -> (Recorder, RecorderTask) {
        if !cfg.enabled {
            return (
                Recorder {
                    tx: None,
                    dropped: Arc::default(),
                    batch_full: Arc::default(),
                    batch_size: 1,
                },
                RecorderTask {
                    done: None,
                    drain_timeout: cfg.drain_timeout,
                },
            );
        }
        let (tx, rx) = mpsc::channel(cfg.buffer_size.max(1));
        let batch_size = cfg.write_batch_size.max(1);
        let batch_full = Arc::new(Notify::new());
        let writer = write_batches(
            store,
            rx,
            batch_size,
            cfg.write_batch_timeout,
            batch_full.clone(),
        );
        let (done_tx, done_rx) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("execution-log".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(writer),
                    Err(e) => {
                        tracing::error!(error = %e, "could not start the execution log writer")
                    }
                }
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            // Records then fill the buffer and are dropped and counted; calls go on.
            tracing::error!(error = %e, "could not start the execution log thread");
        }
        (
            Recorder {
                tx: Some(tx),
                dropped: Arc::default(),
                batch_full,
                batch_size,
            },
            RecorderTask {
                done: Some(done_rx),
                drain_timeout: cfg.drain_timeout,
            },
        )
    }

    /// Queues a record; never waits. When the buffer is full the record is dropped and
    /// counted, since holding a tool result back for a log line would be worse.
    pub fn record(&self, record: ExecutionRecord) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(record).is_ok() {
            if tx.max_capacity() - tx.capacity() >= self.batch_size {
                self.batch_full.notify_one();
            }
        } else {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "execution log buffer full; records dropped");
            }
        }
    }
}

impl RecorderTask {
    /// Waits for buffered records to be written (all `Recorder` clones must be dropped
    /// first, which closes the channel), at most the configured drain timeout.
    pub async fn drain(mut self) {
        if let Some(done) = self.done.take()
            && tokio::time::timeout(self.drain_timeout, done)
                .await
                .is_err()
        {
            tracing::warn!("execution log did not drain in time; some records are lost");
        }
    }
}

async fn write_batches(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<ExecutionRecord>,
    batch_size: usize,
    batch_timeout: Duration,
    batch_full: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(batch_size);
    // `recv` registers this task to be woken; it is the only wait that does.
    while let Some(first) = rx.recv().await {
        batch.push(first);
        tokio::select! {
            () = tokio::time::sleep(batch_timeout) => {}
            () = batch_full.notified() => {}
        }
        // Whole batches back to back while there is a backlog; a partial one ends the
        // round, so a steady trickle is written once per timeout, not in dribbles.
        loop {
            while batch.len() < batch_size {
                match rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            let full = batch.len() == batch_size;
            if let Err(e) = store.insert_executions(&batch).await {
                tracing::error!(error = %e, records = batch.len(), "could not write execution records");
            }
            batch.clear();
            if !full {
                break;
            }
        }
    }
}
