//! Figures per phase and the Markdown report.

use std::fmt::Write as _;
use std::time::Duration;

use crate::load::{
    BARE_PROXY_ECHO, DIRECT_ECHO, DIRECT_GRANT, GATEWAY_ECHO, GATEWAY_GRANT, GATEWAY_TWIN,
    MCP_ECHO, MCP_GRANT, MCP_SESSION_GRANT, Phase, Target,
};
use crate::procs::Machine;

/// Targets as ratios against the bare HTTP/1.1 proxy in the same run (issue 17): the host's
/// speed varies threefold between machines, a ratio does not.
const CPU_RATIO_TARGET: f64 = 2.0;
const THROUGHPUT_RATIO_TARGET: f64 = 0.8;
/// The concurrencies the ratio targets are judged at (c=1 measures latency, not capacity).
const RATIO_CONCURRENCIES: [usize; 2] = [16, 64];
/// Memory per idle legacy MCP session (issue 4).
const IDLE_SESSION_TARGET_BYTES: f64 = 5.0 * 1024.0;

/// The gateway's resident memory around opening idle legacy MCP sessions.
pub struct IdleSessions {
    pub opened: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub rss_before_kib: u64,
    /// 2 s after the last session opened: the sessions are live in memory.
    pub rss_after_kib: u64,
    /// After the keep-alive: the sessions are parked in the store.
    pub rss_parked_kib: u64,
    pub keep_alive: Duration,
    /// (SQLite file, its WAL) in bytes, where the session records are.
    pub db_before_bytes: (u64, u64),
    pub db_after_bytes: (u64, u64),
}

impl IdleSessions {
    /// Bytes of VmRSS growth per session asked for (failed ones included, so a failure
    /// cannot make the figure look smaller).
    pub fn bytes_per_session(&self) -> f64 {
        self.per_session(self.rss_after_kib)
    }

    /// The same once the sessions are parked: what an idle session costs.
    pub fn bytes_per_parked_session(&self) -> f64 {
        self.per_session(self.rss_parked_kib)
    }

    fn per_session(&self, rss_kib: u64) -> f64 {
        (rss_kib as f64 - self.rss_before_kib as f64) * 1024.0
            / (self.opened + self.errors).max(1) as f64
    }
}

/// CPU ticks of each process over a phase's measured requests. `proxy` stays 0 when
/// `bare-proxy` is not running.
#[derive(Default, Clone, Copy)]
pub struct CpuTicks {
    pub gateway: u64,
    pub proxy: u64,
    pub worker: u64,
    pub load: u64,
}

impl CpuTicks {
    /// The CPU of the process in front of the worker for a phase's target: the gateway or
    /// the bare proxy. Direct calls have nothing in front; for them this is the gateway's
    /// CPU while idle (its background work), as a check.
    pub fn front(&self, target: Target) -> u64 {
        match target {
            Target::Gateway | Target::Direct => self.gateway,
            Target::BareProxy => self.proxy,
        }
    }
}

impl std::ops::AddAssign for CpuTicks {
    fn add_assign(&mut self, o: Self) {
        self.gateway += o.gateway;
        self.proxy += o.proxy;
        self.worker += o.worker;
        self.load += o.load;
    }
}

impl std::ops::Sub for CpuTicks {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self {
            gateway: self.gateway.saturating_sub(o.gateway),
            proxy: self.proxy.saturating_sub(o.proxy),
            worker: self.worker.saturating_sub(o.worker),
            load: self.load.saturating_sub(o.load),
        }
    }
}

/// One phase at one concurrency, all rounds merged.
pub struct PhaseResult {
    pub phase: usize,
    pub concurrency: usize,
    /// Sorted, nanoseconds, successful requests only.
    pub latencies_ns: Vec<u64>,
    pub errors: u64,
    pub elapsed: Duration,
    pub cpu: CpuTicks,
}

impl PhaseResult {
    pub fn calls(&self) -> u64 {
        self.latencies_ns.len() as u64 + self.errors
    }

    pub fn throughput(&self) -> f64 {
        self.calls() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Nearest-rank percentile, in µs.
    pub fn percentile_us(&self, p: f64) -> f64 {
        let v = &self.latencies_ns;
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1] as f64 / 1000.0
    }

    /// µs of CPU per call from a tick count.
    fn per_call_us(&self, ticks: u64, hz: u64) -> f64 {
        ticks as f64 * 1e6 / hz as f64 / self.calls().max(1) as f64
    }
}

pub struct Report<'a> {
    pub machine: &'a Machine,
    pub phases: &'a [Phase],
    pub results: &'a [PhaseResult],
    pub clk_tck: u64,
    pub rounds: usize,
    pub gateway_env: &'a [(String, String)],
    pub execution_log: bool,
    pub gateway_peak_rss_kib: Option<u64>,
    pub worker_peak_rss_kib: Option<u64>,
    /// `bare-proxy`'s runtime ("multi-thread" or "current-thread"); `None`: not started.
    pub proxy_runtime: Option<&'static str>,
    pub proxy_peak_rss_kib: Option<u64>,
    pub idle: Option<&'a IdleSessions>,
}

impl Report<'_> {
    fn find(&self, id: &str, concurrency: usize) -> Option<&PhaseResult> {
        self.results
            .iter()
            .find(|r| r.concurrency == concurrency && self.phases[r.phase].id == id)
    }

    fn concurrencies(&self) -> Vec<usize> {
        let mut cs: Vec<usize> = self.results.iter().map(|r| r.concurrency).collect();
        cs.dedup();
        cs
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = self.machine;
        let hz = self.clk_tck;
        let _ = writeln!(out, "### Machine\n");
        let _ = writeln!(out, "- CPUs (`nproc`): {}", m.cpus);
        let _ = writeln!(out, "- CPU model: {}", m.cpu_model);
        let _ = writeln!(out, "- Memory: {}", m.memory);
        let _ = writeln!(out, "- Kernel: {}", m.kernel);
        let _ = writeln!(
            out,
            "- The load generator, the gateway and the worker share these {} CPUs; every \
             figure includes that contention.",
            m.cpus
        );
        if !self.execution_log {
            let _ = writeln!(
                out,
                "- Gateway run with `execution_logging.enabled: false`."
            );
        }
        for (k, v) in self.gateway_env {
            let _ = writeln!(out, "- Gateway run with `{k}={v}`.");
        }
        if let Some(rt) = self.proxy_runtime {
            let _ = writeln!(
                out,
                "- `bare-proxy` (hyper 1 HTTP/1.1 server, pooled hyper client) on a tokio \
                 {rt} runtime."
            );
        }
        let _ = writeln!(out);

        let _ = writeln!(
            out,
            "### Per phase, with ratios against the floor and direct calls\n"
        );
        let _ = writeln!(
            out,
            "| Concurrency | Phase | Calls | Errors | Throughput (req/s) | p50 (µs) | p99 (µs) \
             | Gateway / proxy CPU (µs/call) | Worker CPU (µs/call) \
             | Load generator CPU (µs/call) | CPU ÷ proxy's | Throughput ÷ proxy's \
             | Throughput ÷ direct | p99 − direct (µs) |"
        );
        let _ = writeln!(
            out,
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in self.results {
            let p = &self.phases[r.phase];
            let front = r.per_call_us(r.cpu.front(p.target), hz);
            let gw = if p.target == Target::Direct {
                format!("{front:.1}")
            } else {
                format!("{front:.1} ± {:.1}", r.per_call_us(1, hz))
            };
            let ratio = |x: f64, y: f64| format!("{:.2}", x / y.max(f64::MIN_POSITIVE));
            let proxy = self
                .find(BARE_PROXY_ECHO, r.concurrency)
                .filter(|_| p.target != Target::Direct && p.id != BARE_PROXY_ECHO);
            let (cpu_vs_proxy, tput_vs_proxy) = match proxy {
                Some(b) => (
                    ratio(front, b.per_call_us(b.cpu.proxy, hz)),
                    ratio(r.throughput(), b.throughput()),
                ),
                None => ("–".into(), "–".into()),
            };
            let direct = direct_of(p.id).and_then(|id| self.find(id, r.concurrency));
            let (tput_vs_direct, p99_added) = match direct {
                Some(d) => (
                    ratio(r.throughput(), d.throughput()),
                    format!("{:.0}", r.percentile_us(99.0) - d.percentile_us(99.0)),
                ),
                None => ("–".into(), "–".into()),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {} | {} | {} | {} |",
                r.concurrency,
                p.label,
                r.calls(),
                r.errors,
                r.throughput(),
                r.percentile_us(50.0),
                r.percentile_us(99.0),
                gw,
                r.per_call_us(r.cpu.worker, hz),
                r.per_call_us(r.cpu.load, hz),
                cpu_vs_proxy,
                tput_vs_proxy,
                tput_vs_direct,
                p99_added,
            );
        }

        let floor_rows: Vec<(usize, &PhaseResult, &PhaseResult)> = self
            .concurrencies()
            .into_iter()
            .filter_map(|c| {
                Some((
                    c,
                    self.find(GATEWAY_ECHO, c)?,
                    self.find(BARE_PROXY_ECHO, c)?,
                ))
            })
            .collect();
        if !floor_rows.is_empty() {
            let _ = writeln!(out, "\n### The floor: a bare HTTP/1.1 hop (same run)\n");
            let _ = writeln!(
                out,
                "| Concurrency | Gateway CPU: REST execute Demo.Echo (µs/call) \
                 | Bare proxy CPU (µs/call) | Gateway's own work (µs/call) | Gateway / proxy \
                 | p50 gateway / proxy / direct (µs) | p99 gateway / proxy / direct (µs) |"
            );
            let _ = writeln!(out, "|---:|---:|---:|---:|---:|---|---|");
            for (c, g, b) in &floor_rows {
                let gw = g.per_call_us(g.cpu.gateway, hz);
                let bare = b.per_call_us(b.cpu.proxy, hz);
                let direct = self.find(DIRECT_ECHO, *c);
                let pct = |p: f64| {
                    format!(
                        "{:.0} / {:.0} / {}",
                        g.percentile_us(p),
                        b.percentile_us(p),
                        direct
                            .map(|d| format!("{:.0}", d.percentile_us(p)))
                            .unwrap_or_else(|| "–".into()),
                    )
                };
                let _ = writeln!(
                    out,
                    "| {c} | {gw:.1} ± {:.1} | {bare:.1} ± {:.1} | {:.1} ± {:.1} | {:.2} | {} | {} |",
                    g.per_call_us(1, hz),
                    b.per_call_us(1, hz),
                    gw - bare,
                    g.per_call_us(1, hz) + b.per_call_us(1, hz),
                    gw / bare.max(f64::MIN_POSITIVE),
                    pct(50.0),
                    pct(99.0),
                );
            }
            let _ = writeln!(
                out,
                "\nThe bare proxy reads the body, forwards it to the worker's invoke endpoint \
                 with a cached worker JWT and returns the answer: what any HTTP/1.1 gateway \
                 hop costs on this machine. The difference is the gateway's own work (API key, \
                 catalog, JSON in and out, execution log)."
            );
        }

        let grant_rows: Vec<(usize, &PhaseResult, &PhaseResult)> = self
            .concurrencies()
            .into_iter()
            .filter_map(|c| {
                // The control is the same tool without a grant; Demo.Echo if it did not run.
                let control = self
                    .find(GATEWAY_TWIN, c)
                    .or_else(|| self.find(GATEWAY_ECHO, c))?;
                Some((c, self.find(GATEWAY_GRANT, c)?, control))
            })
            .collect();
        if !grant_rows.is_empty() {
            let _ = writeln!(out, "\n### Grant cost (same run)\n");
            let _ = writeln!(
                out,
                "Demo.TokenFingerprint against its control without a grant (Demo.Fingerprint: \
                 the same work and answer; Demo.Echo when the control did not run).\n"
            );
            let _ = writeln!(
                out,
                "| Concurrency | Gateway CPU with grant (µs/call) | without (µs/call) \
                 | Added by the grant (µs/call) | Worker CPU added (µs/call) |"
            );
            let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
            for (c, g, e) in &grant_rows {
                let with = g.per_call_us(g.cpu.gateway, hz);
                let without = e.per_call_us(e.cpu.gateway, hz);
                // Each side is ± one tick over its calls; the difference carries both.
                let tick = g.per_call_us(1, hz) + e.per_call_us(1, hz);
                let _ = writeln!(
                    out,
                    "| {c} | {with:.1} | {without:.1} | {:.1} ± {tick:.1} | {:.1} |",
                    with - without,
                    g.per_call_us(g.cpu.worker, hz) - e.per_call_us(e.cpu.worker, hz),
                );
            }
        }

        // Both eras: stateless 2026-07-28, and the 2025-11-25 sessions today's clients use.
        let mcp_rows: Vec<(usize, &str, &PhaseResult)> = self
            .concurrencies()
            .into_iter()
            .flat_map(|c| {
                [
                    (MCP_GRANT, "2026-07-28"),
                    (MCP_SESSION_GRANT, "2025-11-25 session"),
                ]
                .into_iter()
                .filter_map(move |(id, era)| Some((c, era, self.find(id, c)?)))
            })
            .collect();
        if !mcp_rows.is_empty() {
            let _ = writeln!(
                out,
                "\n### MCP tools/call against REST execute (same run)\n"
            );
            let _ = writeln!(
                out,
                "| Concurrency | Era | Gateway CPU: MCP tools/call (µs/call) | REST execute, same tool \
                 | REST execute Demo.Echo | MCP − REST (µs/call) | p50 MCP / REST / direct (µs) \
                 | p99 MCP / REST / direct (µs) |"
            );
            let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---|---|");
            let fmt = |r: Option<&PhaseResult>, f: &dyn Fn(&PhaseResult) -> f64| {
                r.map(|r| format!("{:.1}", f(r)))
                    .unwrap_or_else(|| "–".into())
            };
            for (c, era, m) in &mcp_rows {
                let rest = self.find(GATEWAY_GRANT, *c);
                let echo = self.find(GATEWAY_ECHO, *c);
                let direct = self.find(DIRECT_GRANT, *c);
                let gw = |r: &PhaseResult| r.per_call_us(r.cpu.gateway, hz);
                let diff = rest
                    .map(|r| format!("{:.1}", gw(m) - gw(r)))
                    .unwrap_or_else(|| "–".into());
                let pct = |p: f64| {
                    format!(
                        "{:.0} / {} / {}",
                        m.percentile_us(p),
                        rest.map(|r| format!("{:.0}", r.percentile_us(p)))
                            .unwrap_or_else(|| "–".into()),
                        direct
                            .map(|r| format!("{:.0}", r.percentile_us(p)))
                            .unwrap_or_else(|| "–".into()),
                    )
                };
                let _ = writeln!(
                    out,
                    "| {c} | {era} | {:.1} ± {:.1} | {} | {} | {diff} | {} | {} |",
                    gw(m),
                    m.per_call_us(1, hz),
                    fmt(rest, &gw),
                    fmt(echo, &gw),
                    pct(50.0),
                    pct(99.0),
                );
            }
        }

        if let Some(idle) = self.idle {
            let _ = writeln!(out, "\n### Idle legacy MCP sessions\n");
            let _ = writeln!(
                out,
                "On a freshly restarted gateway (an upper bound: the first sessions also fill \
                 pool connections and SQLite's page cache), opened {} sessions \
                 (`initialize` + `notifications/initialized`, 16 at a time) \
                 in {:.1} s, {} failed. Gateway VmRSS {:.1} MiB before; {:.1} MiB 2 s after, \
                 while the sessions are live in memory ({:.0} bytes per session); {:.1} MiB \
                 once they are parked, past the {:.0} s keep-alive ({:.0} bytes per \
                 session). On disk (not in RSS), the SQLite file went from \
                 {:.1} to {:.1} MiB ({:.0} bytes per session) and its WAL from {:.1} to \
                 {:.1} MiB.",
                idle.opened,
                idle.elapsed.as_secs_f64(),
                idle.errors,
                idle.rss_before_kib as f64 / 1024.0,
                idle.rss_after_kib as f64 / 1024.0,
                idle.bytes_per_session(),
                idle.rss_parked_kib as f64 / 1024.0,
                idle.keep_alive.as_secs_f64(),
                idle.bytes_per_parked_session(),
                mib(idle.db_before_bytes.0),
                mib(idle.db_after_bytes.0),
                (idle.db_after_bytes.0 as f64 - idle.db_before_bytes.0 as f64)
                    / (idle.opened + idle.errors).max(1) as f64,
                mib(idle.db_before_bytes.1),
                mib(idle.db_after_bytes.1),
            );
        }

        let _ = writeln!(
            out,
            "\n### Targets (ratios against the bare proxy, same run)\n"
        );
        let _ = writeln!(
            out,
            "| Target | Concurrency | Gateway | Bare proxy | Ratio | Verdict |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
        for c in RATIO_CONCURRENCIES {
            let Some(proxy) = self.find(BARE_PROXY_ECHO, c) else {
                continue;
            };
            let proxy_cpu = proxy.per_call_us(proxy.cpu.proxy, hz);
            for (id, what) in [
                (GATEWAY_ECHO, "REST execute Demo.Echo"),
                (MCP_ECHO, "MCP tools/call Demo_Echo"),
            ] {
                let Some(g) = self.find(id, c) else { continue };
                let cpu = g.per_call_us(g.cpu.gateway, hz);
                let cpu_ratio = cpu / proxy_cpu.max(f64::MIN_POSITIVE);
                let _ = writeln!(
                    out,
                    "| {what}: CPU per call ≤ {CPU_RATIO_TARGET:.0}× the proxy's | {c} \
                     | {cpu:.1} µs | {proxy_cpu:.1} µs | {cpu_ratio:.2} | {} |",
                    verdict(cpu_ratio <= CPU_RATIO_TARGET)
                );
                let tput_ratio = g.throughput() / proxy.throughput().max(f64::MIN_POSITIVE);
                let _ = writeln!(
                    out,
                    "| {what}: throughput ≥ {THROUGHPUT_RATIO_TARGET}× the proxy's | {c} \
                     | {:.0}/s | {:.0}/s | {tput_ratio:.2} | {} |",
                    g.throughput(),
                    proxy.throughput(),
                    verdict(tput_ratio >= THROUGHPUT_RATIO_TARGET)
                );
            }
        }
        if let Some(idle) = self.idle {
            let b = idle.bytes_per_parked_session();
            let _ = writeln!(
                out,
                "| ≤ {:.0} KB per idle legacy session (parked, past the keep-alive) | – | {b:.0} B | – | – | {} |",
                IDLE_SESSION_TARGET_BYTES / 1024.0,
                verdict(idle.errors == 0 && b <= IDLE_SESSION_TARGET_BYTES)
            );
        }

        let rss = |k: Option<u64>| {
            k.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
                .unwrap_or_else(|| "unknown".into())
        };
        let proxy_rss = match self.proxy_runtime {
            Some(_) => format!(", bare proxy {}", rss(self.proxy_peak_rss_kib)),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "\nPeak RSS (VmHWM) after the phases (before the idle-session restart): gateway {}, worker {}{proxy_rss}.",
            rss(self.gateway_peak_rss_kib),
            rss(self.worker_peak_rss_kib)
        );
        let _ = writeln!(
            out,
            "\nNotes: closed loop, one reqwest client with keep-alive for every phase; each \
             phase warmed up, then measured in {} rounds whose phase order alternates \
             (forward, reversed); figures merge the rounds. Added latency is a \
             difference of percentiles. CPU is utime+stime from /proc/PID/stat at \
             {hz} ticks/s, hence the ± (one tick over the calls). The gateway / proxy \
             column is the process in front of the worker (the bare proxy for the floor \
             phase); for direct phases it is the idle gateway's.",
            self.rounds
        );
        out
    }
}

/// The direct call a phase is compared with: the same tool invoked on the worker, no hop.
fn direct_of(id: &str) -> Option<&'static str> {
    match id {
        DIRECT_ECHO | DIRECT_GRANT => None,
        GATEWAY_GRANT | GATEWAY_TWIN | MCP_GRANT | MCP_SESSION_GRANT => Some(DIRECT_GRANT),
        _ => Some(DIRECT_ECHO),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}
