//! Execution records are written off the call path: calls hand a record to a bounded
//! channel and one task writes batches (one transaction per batch), so a slow store
//! never slows a tool call. On shutdown the task drains what is buffered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::ExecutionLoggingConfig;
use crate::store::{ExecutionRecord, Store};

#[derive(Clone)]
pub struct Recorder {
    /// `None` when execution logging is disabled.
    tx: Option<mpsc::Sender<ExecutionRecord>>,
    dropped: Arc<AtomicU64>,
}

/// Owned by `serve`; awaiting [`RecorderTask::drain`] flushes what is buffered.
pub struct RecorderTask {
    handle: Option<JoinHandle<()>>,
    drain_timeout: Duration,
}

impl Recorder {
    pub fn start(store: Arc<dyn Store>, cfg: &ExecutionLoggingConfig) -> (Recorder, RecorderTask) {
        if !cfg.enabled {
            return (
                Recorder {
                    tx: None,
                    dropped: Arc::default(),
                },
                RecorderTask {
                    handle: None,
                    drain_timeout: cfg.drain_timeout,
                },
            );
        }
        let (tx, rx) = mpsc::channel(cfg.buffer_size.max(1));
        let handle = tokio::spawn(write_batches(
            store,
            rx,
            cfg.write_batch_size.max(1),
            cfg.write_batch_timeout,
        ));
        (
            Recorder {
                tx: Some(tx),
                dropped: Arc::default(),
            },
            RecorderTask {
                handle: Some(handle),
                drain_timeout: cfg.drain_timeout,
            },
        )
    }

    /// Queues a record; never waits. When the buffer is full the record is dropped and
    /// counted, since holding a tool result back for a log line would be worse.
    pub fn record(&self, record: ExecutionRecord) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(record).is_err() {
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
        if let Some(handle) = self.handle.take()
            && tokio::time::timeout(self.drain_timeout, handle)
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
) {
    let mut batch = Vec::with_capacity(batch_size);
    loop {
        let Some(first) = rx.recv().await else { break };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + batch_timeout;
        while batch.len() < batch_size {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => batch.push(r),
                Ok(None) | Err(_) => break,
            }
        }
        if let Err(e) = store.insert_executions(&batch).await {
            tracing::error!(error = %e, records = batch.len(), "could not write execution records");
        }
        batch.clear();
    }
}
