//! `switchboard serve` as the real binary: one serving thread per listener
//! (`--threads`), every thread answering the connections it accepts, a port held by
//! someone else refused, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Served {
    child: Child,
    /// Holds the config and the database until the process is gone.
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("engine.yaml"),
        "api:\n  development: true\nstorage:\n  sqlite:\n    path: sb.db\n",
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(dir.path().join("engine.yaml"))
        .arg("serve")
        .args(args)
        .env("SWITCHBOARD_DATA_DIR", dir.path().join("data"))
        .env_remove("SWITCHBOARD_CONFIG")
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Served { child, _dir: dir }
}

/// Reads standard output up to the "listening on ADDR" line.
fn listening_address(served: &mut Served) -> SocketAddr {
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

/// One request on a connection of its own.
fn health_on_new_connection(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /v1/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn stderr_of(served: &mut Served) -> String {
    let mut stderr = String::new();
    served
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

fn wait_for_exit(served: &mut Served, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = served.child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[cfg(target_os = "linux")]
#[test]
fn every_serving_thread_answers_and_sigterm_stops_them_all() {
    let mut served = serve(&["--port", "0", "--threads", "3"]);
    let addr = listening_address(&mut served);
    let pid = served.child.id();

    // The listeners are bound before the address is printed; the threads that serve
    // them start a moment later.
    let shard_threads = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_string())
            .filter(|name| name.starts_with("switchboard-sha"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while shard_threads().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(shard_threads().len(), 2, "two extra serving threads");

    // The kernel spreads new connections over the three listeners; each must answer.
    for n in 0..60 {
        let answer = health_on_new_connection(addr);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "connection {n} answered {answer:?}"
        );
        assert!(answer.contains(r#"{"healthy":true}"#), "{answer}");
    }

    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_for_exit(&mut served, Duration::from_secs(20)).expect("serve stopped");
    assert!(status.success(), "serve exited with {status}");
}

#[test]
fn a_port_held_by_another_process_is_refused_even_with_several_threads() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let mut served = serve(&["--host", "127.0.0.1", "--port", &port, "--threads", "2"]);
    let status = wait_for_exit(&mut served, Duration::from_secs(20))
        .expect("serve gave up instead of sharing the port");
    assert!(!status.success());
    let stderr = stderr_of(&mut served);
    assert!(
        stderr.contains(&format!("could not listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn threads_must_be_at_least_one() {
    let mut served = serve(&["--port", "0", "--threads", "0"]);
    let status = wait_for_exit(&mut served, Duration::from_secs(20)).expect("refused at once");
    assert!(!status.success());
    let stderr = stderr_of(&mut served);
    assert!(stderr.contains("--threads"), "{stderr}");
}

/// One request with a JSON body on a connection of its own; the whole answer.
fn post_on_new_connection(addr: SocketAddr, session: Option<&str>, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let session = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\nMCP-Protocol-Version: 2025-11-25\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "POST /v1/mcps/alice/mcp HTTP/1.1\r\nHost: {addr}\r\n\
         Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n\
         {session}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn an_open_mcp_event_stream_does_not_hold_up_sigterm() {
    let mut served = serve(&["--port", "0", "--threads", "1"]);
    let addr = listening_address(&mut served);
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
    let answer = post_on_new_connection(addr, None, init);
    let session = answer
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("mcp-session-id:")
                .map(|_| l["mcp-session-id:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| panic!("no session in {answer:?}"));
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let answer = post_on_new_connection(addr, Some(&session), initialized);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

    // The session's standalone stream stays open until the server ends it.
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /v1/mcps/alice/mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         Mcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-11-25\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    let pid = served.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Sessions stay live 60 s: the stop must not wait for them.
    let status = wait_for_exit(&mut served, Duration::from_secs(20)).expect("serve stopped");
    assert!(status.success(), "serve exited with {status}");
}

/// `switchboard config check`: each problem on a line of its own with its key path and
/// exit status 1; a good file says OK with status 0; the TLS files are read as `serve`
/// would read them.
#[test]
fn config_check_prints_each_problem_with_its_key_path_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let check = |yaml: &str| {
        let path = dir.path().join("engine.yaml");
        std::fs::write(&path, yaml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["config", "check", "--config"])
            .arg(&path)
            .env_remove("SWITCHBOARD_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = check("api:\n  port: 9099\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.trim_end().ends_with(": OK"), "{out}");

    let (code, out) = check(
        "api:\n  port: 99999\nhttp:\n  read_timeout: 30 parsecs\n  cors:\n    allowed_origins: [app.example.com]\n",
    );
    assert_eq!(code, Some(1), "{out}");
    for key in [
        "api.port",
        "http.read_timeout",
        "http.cors.allowed_origins[0]",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("error: {key}: "))),
            "{key} in\n{out}"
        );
    }
    assert!(out.trim_end().ends_with("3 error(s)"), "{out}");

    let missing = dir.path().join("missing-cert.pem");
    let (code, out) = check(&format!(
        "api:\n  tls:\n    cert_file: {}\n    key_file: {}\n",
        missing.display(),
        missing.display()
    ));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("error: api.tls.cert_file: ")
                && l.contains(&missing.display().to_string())),
        "{out}"
    );
}

/// The binary allocates on jemalloc with the options the parked-session memory depends on
/// (src/main.rs): without its background purge, parked sessions stayed in RSS. jemalloc
/// prints its options at exit when asked through its environment variable.
#[cfg(target_os = "linux")]
#[test]
fn the_binary_runs_on_jemalloc_with_the_background_purge() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stats = String::from_utf8_lossy(&out.stderr);
    for option in [
        "opt.background_thread: true",
        "opt.dirty_decay_ms: 1000",
        "opt.muzzy_decay_ms: 0",
    ] {
        assert!(stats.contains(option), "{option} not in {stats}");
    }
}
