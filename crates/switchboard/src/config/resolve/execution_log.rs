//! `execution_logging:`: the buffered log of tool executions, its batches, retention and
//! cleanup.

use serde_norway::Mapping;

use super::positive;
use crate::config::model::{ExecutionCleanupConfig, ExecutionLoggingConfig};
use crate::config::reader::{Map, Reader};

pub(super) fn execution_logging(
    r: &mut Reader<'_>,
    root: &Map<'_>,
    empty: &Mapping,
) -> ExecutionLoggingConfig {
    let d = ExecutionLoggingConfig::default();
    let e = r.section_or(root, "execution_logging", empty);
    r.check_keys(
        &e,
        &[
            "enabled",
            "buffer_size",
            "write_batch_size",
            "write_batch_timeout",
            "drain_timeout",
            "retention",
            "cleanup",
        ],
        &["max_output_size", "config_cache_ttl"],
    );
    let cleanup = r.section_or(&e, "cleanup", empty);
    r.check_keys(
        &cleanup,
        &["batch_size", "mark_interval", "sweep_batch_interval"],
        &[],
    );
    let dc = &d.cleanup;
    let retention = r.duration(&e, "retention", d.retention.unwrap_or_default());
    ExecutionLoggingConfig {
        enabled: r.flag(&e, "enabled", d.enabled),
        buffer_size: r.count(&e, "buffer_size", 1, d.buffer_size),
        write_batch_size: r.count(&e, "write_batch_size", 1, d.write_batch_size),
        write_batch_timeout: positive(r, &e, "write_batch_timeout", d.write_batch_timeout),
        drain_timeout: r.duration(&e, "drain_timeout", d.drain_timeout),
        retention: (!retention.is_zero()).then_some(retention),
        cleanup: ExecutionCleanupConfig {
            batch_size: r.count(&cleanup, "batch_size", 1, dc.batch_size),
            mark_interval: positive(r, &cleanup, "mark_interval", dc.mark_interval),
            sweep_batch_interval: r.duration(
                &cleanup,
                "sweep_batch_interval",
                dc.sweep_batch_interval,
            ),
        },
    }
}
