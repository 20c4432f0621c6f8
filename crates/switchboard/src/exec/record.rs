//! Execution records are written off the call path: calls hand a record to a bounded
//! channel and one task writes batches (one transaction per batch), so a slow store
//! never slows a tool call. On shutdown the task drains what is buffered.
//!
//! The same thread deletes records older than `execution_logging.retention`, in bounded
//! batches (Arcade's `cleanup` settings), so an old log never grows without end.
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

use crate::config::{ExecutionCleanupConfig, ExecutionLoggingConfig};
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
            store.clone(),
            rx,
            batch_size,
            cfg.write_batch_timeout,
            batch_full.clone(),
        );
        let (retention, cleanup) = (cfg.retention, cfg.cleanup.clone());
        let (done_tx, done_rx) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("execution-log".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(async move {
                        // The sweep never ends; the thread ends when the writer has
                        // drained the closed channel.
                        tokio::select! {
                            () = writer => {}
                            () = sweep_old_records(store, retention, cleanup) => {}
                        }
                    }),
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
            let records = batch.len();
            if let Err(e) = store.insert_executions(&batch).await {
                tracing::error!(error = %e, records, "could not write execution records");
            }
            batch.clear();
            if !full {
                break;
            }
        }
    }
}

/// Deletes records older than `retention`: a pass at start and every `mark_interval`, each
/// in batches of `batch_size` rows `sweep_batch_interval` apart, so a large backlog never
/// holds the store's write lock for long. Never returns (pending forever without a
/// retention). Every replica sweeps; the deletes are idempotent.
async fn sweep_old_records(
    store: Arc<dyn Store>,
    retention: Option<Duration>,
    cleanup: ExecutionCleanupConfig,
) {
    let Some(retention) = retention else {
        return std::future::pending().await;
    };
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let batch = u32::try_from(cleanup.batch_size).unwrap_or(u32::MAX);
    loop {
        let cutoff = chrono::Utc::now()
            .timestamp_millis()
            .saturating_sub(retention_ms);
        let mut deleted = 0;
        loop {
            match store.prune_executions(cutoff, batch).await {
                Ok(n) => {
                    deleted += n;
                    if n < u64::from(batch) {
                        break;
                    }
                    tokio::time::sleep(cleanup.sweep_batch_interval).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not delete old execution records; trying again later");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(
                deleted,
                "deleted execution records older than the retention"
            );
        }
        tokio::time::sleep(cleanup.mark_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ExecutionFilter, SqliteStore};

    fn record(id: &str, started_at_ms: i64) -> ExecutionRecord {
        crate::store::sample_execution(id, started_at_ms)
    }

    async fn ids(store: &Arc<dyn Store>) -> Vec<String> {
        let mut ids: Vec<String> = store
            .list_executions(&ExecutionFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn records_older_than_the_retention_are_swept_in_batches_and_new_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("sb.db")).await.unwrap());
        let day_ms = 86_400_000;
        let now = chrono::Utc::now().timestamp_millis();
        let old: Vec<_> = (0..5)
            .map(|i| record(&format!("old{i}"), now - 2 * day_ms - i))
            .collect();
        store.insert_executions(&old).await.unwrap();
        store
            .insert_executions(&[record("recent", now - day_ms / 2)])
            .await
            .unwrap();

        let cfg = ExecutionLoggingConfig {
            retention: Some(Duration::from_millis(day_ms as u64)),
            cleanup: ExecutionCleanupConfig {
                batch_size: 2,
                mark_interval: Duration::from_secs(3600),
                sweep_batch_interval: Duration::from_millis(10),
            },
            ..Default::default()
        };
        let (recorder, task) = Recorder::start(store.clone(), &cfg);
        recorder.record(record("new", now));

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while ids(&store).await != ["new", "recent"] {
            assert!(
                tokio::time::Instant::now() < deadline,
                "left: {:?}",
                ids(&store).await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(recorder);
        task.drain().await;
        assert_eq!(ids(&store).await, ["new", "recent"]);
    }

    #[tokio::test]
    async fn without_a_retention_nothing_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("sb.db")).await.unwrap());
        store
            .insert_executions(&[record("ancient", 1)])
            .await
            .unwrap();
        let cfg = ExecutionLoggingConfig {
            retention: None,
            ..Default::default()
        };
        let (recorder, task) = Recorder::start(store.clone(), &cfg);
        recorder.record(record("new", chrono::Utc::now().timestamp_millis()));
        drop(recorder);
        task.drain().await;
        assert_eq!(ids(&store).await, ["ancient", "new"]);
    }
}
