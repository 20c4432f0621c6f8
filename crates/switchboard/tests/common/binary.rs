//! The real `switchboard` binary, run by a test.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `switchboard serve`, killed when dropped.
pub struct Served {
    pub child: Child,
    /// Holds the config and the database until the process is gone.
    pub _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary on `dir/engine.yaml`, its data in `dir/data`, no inherited config or log
/// settings, no standard input; the caller adds the command and its arguments.
pub fn switchboard_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .arg("--config")
        .arg(dir.join("engine.yaml"))
        .env("SWITCHBOARD_DATA_DIR", dir.join("data"))
        .env_remove("SWITCHBOARD_CONFIG")
        .env("RUST_LOG", "off")
        .stdin(Stdio::null());
    command
}

/// Reads standard output up to the "listening on ADDR" line.
pub fn listening_address(served: &mut Served) -> SocketAddr {
    let stdout = served.child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some((_, addr)) = line.split_once(" listening on ") {
            break addr.trim().parse().unwrap();
        }
    };
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    addr
}
