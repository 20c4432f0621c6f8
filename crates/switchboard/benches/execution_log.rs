//! What writing execution records costs the gateway per call, on SQLite, by batch size
//! (`execution_logging.write_batch_size`): batches of 10, 100, 500 and 1000 records, each
//! written as the writer task writes one (`Store::insert_executions`: one transaction, on
//! the log's own connection, in INSERTs of 50 rows and the rest in powers of two), so the
//! per-batch work and the per-record work separate cleanly here.
//!
//! `cargo bench -p switchboard --bench execution_log [-- --records N]`
//!
//! CPU is every thread of the process (`/proc/self/task/*/schedstat`), so sqlx's SQLite
//! worker threads would count if they worked; building the records (two UUIDs, a few
//! strings) is included, as the gateway does that per call too.

use std::time::Instant;

use anyhow::Context;
use switchboard::store::{ExecutionRecord, SqliteStore, Store};

fn process_cpu_ns() -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        let on_cpu: u64 = stat
            .split_whitespace()
            .next()
            .context("empty schedstat")?
            .parse()?;
        total += on_cpu;
    }
    Ok(total)
}

fn record(i: i64) -> ExecutionRecord {
    ExecutionRecord {
        id: uuid::Uuid::now_v7().to_string(),
        execution_id: uuid::Uuid::now_v7().to_string(),
        user_id: Some("bench".into()),
        tool_name: "Demo.Echo".into(),
        toolkit: "Demo".into(),
        tool_version: Some("0.1.0".into()),
        source: "demo".into(),
        status: "success".into(),
        error_kind: None,
        duration_ms: 0.3,
        started_at_ms: 1_700_000_000_000 + i,
        finished_at_ms: 1_700_000_000_000 + i,
    }
}

fn records_arg() -> anyhow::Result<usize> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--records" {
            return args
                .next()
                .context("--records needs a number")?
                .parse()
                .context("--records needs a number");
        }
    }
    Ok(100_000)
}

fn main() -> anyhow::Result<()> {
    let records = records_arg()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!("| Batch size | Records | CPU per record (µs) | Wall per record (µs) |");
    println!("|---:|---:|---:|---:|");
    for batch_size in [10, 100, 500, 1000] {
        runtime.block_on(async {
            let dir = tempfile::tempdir()?;
            let store = SqliteStore::open(&dir.path().join("sb.db")).await?;
            let mut batch = Vec::with_capacity(batch_size);
            let cpu_before = process_cpu_ns()?;
            let started = Instant::now();
            for i in 0..records {
                batch.push(record(i as i64));
                if batch.len() == batch_size {
                    store.insert_executions(&batch).await?;
                    batch.clear();
                }
            }
            store.insert_executions(&batch).await?;
            let cpu = process_cpu_ns()? - cpu_before;
            println!(
                "| {batch_size} | {records} | {:.2} | {:.2} |",
                cpu as f64 / records as f64 / 1000.0,
                started.elapsed().as_secs_f64() * 1e6 / records as f64
            );
            anyhow::Ok(())
        })?;
    }
    Ok(())
}
