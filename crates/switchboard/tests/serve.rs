//! `switchboard serve` as the real binary: one serving thread per listener
//! (`--threads`), every thread answering the connections it accepts, a port held by
//! someone else refused, and a clean stop on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::binary::{Served, listening_address, switchboard_command};

const DEV_CONFIG: &str = "api:\n  development: true\nstorage:\n  sqlite:\n    path: sb.db\n";
const PLAIN_CONFIG: &str = "storage:\n  sqlite:\n    path: sb.db\n";

/// A fresh directory holding `engine.yaml` with `yaml` in it.
fn config_dir(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("engine.yaml"), yaml).unwrap();
    dir
}

/// `serve` in dev mode with `args`.
fn serve(args: &[&str]) -> Served {
    serve_in(config_dir(DEV_CONFIG), args)
}

/// Runs another `switchboard` command on the config (and so the database) in `dir`.
fn cli(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    switchboard_command(dir).args(args).output().unwrap()
}

/// `serve` with `args` on the config in `dir`.
fn serve_in(dir: tempfile::TempDir, args: &[&str]) -> Served {
    let child = switchboard_command(dir.path())
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Served { child, _dir: dir }
}

/// One request on a connection of its own.
fn health_on_new_connection(addr: SocketAddr) -> String {
    get_on_new_connection(addr, "/v1/health", "")
}

/// `GET path` with `headers` (each line ending in CRLF) on a connection of its own; the
/// whole answer.
fn get_on_new_connection(addr: SocketAddr, path: &str, headers: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
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

    kill_term(&served);
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

/// Standard output up to and including the first line for which `last` holds; a thread
/// reads on, and the receiver gets the rest once the pipe closes (the process ended).
fn stdout_until(
    served: &mut Served,
    last: impl Fn(&str) -> bool,
) -> (Vec<String>, std::sync::mpsc::Receiver<Vec<String>>) {
    let stdout = served.child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    loop {
        let Some(line) = lines.next() else {
            panic!("standard output ended before the line wanted: {seen:#?}");
        };
        let line = line.unwrap();
        let done = last(&line);
        seen.push(line);
        if done {
            break;
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(lines.map_while(Result::ok).collect());
    });
    (seen, rx)
}

/// The address in serve's first line, `Switchboard X listening on ADDR`.
fn address_in(lines: &[String]) -> SocketAddr {
    lines
        .iter()
        .find_map(|l| l.split_once(" listening on ").map(|(_, a)| a.trim()))
        .expect("a listening line")
        .parse()
        .unwrap()
}

/// The status of `GET path` with `Authorization: key`, on a connection of its own.
fn status_with_key(addr: SocketAddr, path: &str, key: &str) -> u16 {
    let answer = get_on_new_connection(addr, path, &format!("Authorization: {key}\r\n"));
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

fn kill_term(served: &Served) {
    let pid = served.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `keys create` prints the key alone on its last line; `keys list` shows its id and
/// name but never the secret; `keys revoke ID` makes a running gateway refuse it (401)
/// once its key cache forgets it; revoking an unknown id fails and says so.
#[test]
fn keys_are_listed_without_their_secret_and_a_revoked_key_is_refused() {
    let dir = config_dir(PLAIN_CONFIG);
    let path = dir.path().to_owned();
    let out = cli(&path, &["keys", "create", "--name", "ci-bot"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created = text(&out.stdout);
    let key = created.lines().last().unwrap().trim().to_string();
    assert!(key.starts_with("arc_") && !key.contains(' '), "{created}");
    let id = created
        .split_once("(id ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("no id in {created}"));

    let out = cli(&path, &["keys", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    for column in ["ID", "Name", "Status"] {
        assert!(listed.contains(column), "{column} in {listed}");
    }
    let row = listed
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{id} in {listed}"));
    assert!(row.contains("ci-bot") && row.contains("active"), "{row}");
    // At most the hint (the key's first characters) is shown, never the secret part.
    assert!(
        !listed.contains(&key[10..]),
        "the secret was listed: {listed}"
    );

    let mut served = serve_in(dir, &["--port", "0", "--threads", "1"]);
    let addr = listening_address(&mut served);
    assert_eq!(status_with_key(addr, "/v1/tools", &key), 200);

    let out = cli(&path, &["keys", "revoke", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A gateway keeps a checked key for up to 10 s; bounded wait for the refusal.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let status = status_with_key(addr, "/v1/tools", &key);
        if status == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "revoked key still answered {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let listed = text(&cli(&path, &["keys", "list"]).stdout);
    let row = listed.lines().find(|l| l.contains(&id)).unwrap();
    assert!(row.contains("revoked"), "{row}");

    let out = cli(&path, &["keys", "revoke", "no-such-key"]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr).trim(),
        "error: no active key with id or name 'no-such-key'"
    );
    let out = cli(&path, &["keys", "revoke", &id]);
    assert!(!out.status.success(), "a key is revoked once");
}

const DEV_BANNER: &str = "!!! DEV MODE: requests from loopback addresses need no API key, \
                          and workers without a secret use 'dev'. Do not expose this gateway.";

/// The REST base URL and MCP URL pattern lines, trimmed, for a gateway at `addr`.
fn url_lines(addr: SocketAddr) -> [String; 2] {
    let base = format!("http://{addr}");
    [
        format!("REST API  {base}/v1"),
        format!(
            "MCP       {base}/v1/mcps/{{user_id}}/mcp  (also {base}/mcp/{{gateway}} and {base}/mcp)"
        ),
    ]
}

#[test]
fn serve_prints_the_rest_and_mcp_urls_and_in_dev_mode_a_loud_warning() {
    let mut served = serve(&["--port", "0", "--threads", "1"]);
    let (lines, _) = stdout_until(&mut served, |l| l.contains("DEV MODE"));
    let trimmed: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
    for wanted in url_lines(address_in(&lines)) {
        assert!(
            trimmed.contains(&wanted.as_str()),
            "{wanted:?} in {lines:#?}"
        );
    }
    assert_eq!(trimmed.last(), Some(&DEV_BANNER), "{lines:#?}");
}

#[test]
fn serve_outside_dev_mode_prints_the_urls_and_no_dev_warning() {
    let mut served = serve_in(config_dir(PLAIN_CONFIG), &["--port", "0", "--threads", "1"]);
    let (lines, rest) = stdout_until(&mut served, |l| l.trim_start().starts_with("tools "));
    let trimmed: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
    let addr = address_in(&lines);
    for wanted in url_lines(addr) {
        assert!(
            trimmed.contains(&wanted.as_str()),
            "{wanted:?} in {lines:#?}"
        );
    }
    // Signals are listened for before anything is printed: a SIGTERM at once, before
    // serving has begun, is still a clean stop.
    kill_term(&served);
    let status = wait_for_exit(&mut served, Duration::from_secs(20)).expect("serve stopped");
    assert!(status.success(), "serve exited with {status}");
    let rest = rest.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        !lines.iter().chain(&rest).any(|l| l.contains("DEV MODE")),
        "{lines:#?} {rest:#?}"
    );
    assert!(rest.iter().any(|l| l == "Switchboard stopped"), "{rest:#?}");
}

/// Reads one HTTP/1.1 answer with a `Content-Length` body; the status and the body.
fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = text(&head);
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (status, text(&body))
}

/// SIGTERM while a slow built-in call runs: the call still gets its 200, then the
/// process exits 0.
#[cfg(unix)]
#[test]
fn sigterm_lets_a_slow_call_in_flight_finish_then_exits_0() {
    let mut served = serve(&["--port", "0", "--threads", "1"]);
    let (lines, rest) = stdout_until(&mut served, |l| l.contains("DEV MODE"));
    let addr = address_in(&lines);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // One answer first: the connection is accepted and being served before the signal.
    write!(stream, "GET /v1/health HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    assert_eq!(read_answer(&mut stream).0, 200);

    let body = r#"{"tool_name":"Builtin.Sleep","input":{"seconds":4}}"#;
    // One write: a request whose head is still arriving when the signal comes is not in
    // flight, and hyper's graceful shutdown closes its connection unanswered.
    let request = format!(
        "POST /v1/tools/execute HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    // Let the gateway take the request in (the call itself lasts 4 s).
    std::thread::sleep(Duration::from_millis(1500));
    kill_term(&served);

    let (status, answer) = read_answer(&mut stream);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""slept_seconds":4"#), "{answer}");
    assert!(answer.contains(r#""success":true"#), "{answer}");
    let status = wait_for_exit(&mut served, Duration::from_secs(30)).expect("serve stopped");
    assert!(status.success(), "serve exited with {status}");
    let rest = rest.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(rest.iter().any(|l| l == "Switchboard stopped"), "{rest:#?}");
}
