//! The processes under test (gateway, demo-worker, bare-proxy) and what `/proc` says about
//! them and the machine. Linux only, as the figures are.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// A child process that is killed when dropped, so an early `?` never leaves a gateway
/// or worker running.
pub struct Proc {
    pub name: &'static str,
    child: Child,
    /// Where its stderr goes; shown when it fails to start.
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout piped (the caller may read it) and stderr to `log`.
    pub fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> anyhow::Result<Self> {
        let err = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self { name, child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited, quoting the end of its log.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().context("polling child")? {
            bail!("{} exited ({status}):\n{}", self.name, log_tail(&self.log));
        }
        Ok(())
    }

    /// Reads stdout lines until one starts with `prefix`, for at most `wait`; returns the
    /// rest of that line.
    pub fn wait_for_line(&mut self, prefix: &str, wait: Duration) -> anyhow::Result<String> {
        let stdout = self.child.stdout.take().context("stdout already taken")?;
        let (tx, rx) = mpsc::channel();
        let wanted = prefix.to_owned();
        // A thread, because a blocking pipe read has no timeout; it ends at EOF.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix(&wanted) {
                    let _ = tx.send(rest.trim().to_owned());
                }
            }
        });
        match rx.recv_timeout(wait) {
            Ok(rest) => Ok(rest),
            Err(_) => {
                self.ensure_running()?;
                bail!("{} printed no {prefix:?} line within {wait:?}", self.name)
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a log file, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    if lines.is_empty() {
        format!("(nothing in {})", path.display())
    } else {
        lines[start..].join("\n")
    }
}

/// user + system CPU time of a whole process (all threads), in clock ticks.
pub fn cpu_ticks(pid: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Clock ticks per second for `/proc/*/stat` times (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Peak resident set size (VmHWM) in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Current resident set size (VmRSS) in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// What the figures were measured on.
pub struct Machine {
    pub cpus: String,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpus = Command::new("nproc")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| {
                std::thread::available_parallelism()
                    .ok()
                    .map(|n| n.to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)))
            .unwrap_or_else(|| "unknown".into());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Self {
            cpus,
            cpu_model,
            memory,
            kernel,
        }
    }
}
