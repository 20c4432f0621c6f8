//! The gateway's edge, attacked over real HTTP: DNS rebinding and cross-origin pages
//! (`Host` and `Origin` on every route), too many connections, bodies that trickle, and
//! idle connections past the process's descriptor limit (the real binary).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{TestGateway, start_gateway};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for any answer on a loaded machine; a hang fails the test, not a delay.
const PATIENCE: Duration = Duration::from_secs(15);

/// An answer read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Self {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_string(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// `method path` with `headers` (CRLF-terminated lines) and `body`, on a connection of
/// its own that the server closes after answering.
async fn send(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let length = if body.is_empty() && method == "GET" {
        String::new()
    } else {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    let request =
        format!("{method} {path} HTTP/1.1\r\n{headers}{length}Connection: close\r\n\r\n{body}");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
        .await
        .expect("answered in time")
        .unwrap();
    Answer::parse(&raw)
}

/// One exchange on a kept-alive connection: the answer is read by its `Content-Length`.
async fn exchange(stream: &mut TcpStream, request: &str) -> Answer {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a whole answer");
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("answered in time");
    Answer::parse(&raw)
}

/// Whether the server has closed `stream` (end of stream), waiting at most `PATIENCE`.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// The requests a rebound or cross-origin page would send: mint a user token, get a
/// user's provider token, list tools, run one (hot path and the org/project path), and
/// MCP. Each is (method, path, body).
const ATTACKS: [(&str, &str, &str); 6] = [
    ("POST", "/v1/admin/users/alice/tokens", "{}"),
    (
        "POST",
        "/v1/auth/authorize",
        r#"{"user_id":"alice","auth_requirement":{"provider_id":"github"}}"#,
    ),
    ("GET", "/v1/tools", ""),
    (
        "POST",
        "/v1/tools/execute",
        r#"{"tool_name":"Builtin.Echo","input":{"message":"hi"}}"#,
    ),
    (
        "POST",
        "/v1/orgs/o/projects/p/tools/execute",
        r#"{"tool_name":"Builtin.Echo","input":{"message":"hi"}}"#,
    ),
    (
        "POST",
        "/v1/mcps/alice/mcp",
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}"#,
    ),
];

const MCP_ACCEPT: &str = "Accept: application/json, text/event-stream\r\n";

fn assert_refused(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 403, "{what}: {answer:?}");
    let body = answer.json();
    if what.contains("/mcp") {
        assert_eq!(body["error"]["code"], -32600, "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
    } else {
        assert_eq!(body["name"], "forbidden", "{what}: {body}");
        assert!(body["message"].is_string(), "{what}: {body}");
    }
}

#[tokio::test]
async fn a_rebound_host_is_refused_on_every_route_even_from_loopback_in_dev_mode() {
    let gw = start_gateway(|c| c.api.development = true).await;
    for (method, path, body) in ATTACKS {
        let headers = format!("Host: evil.example:9099\r\n{MCP_ACCEPT}");
        let answer = send(gw.addr, method, path, &headers, body).await;
        assert_refused(&answer, &format!("{method} {path}"));
    }
    // Nothing was minted: the same request on the gateway's own name is the first.
    let own = format!("Host: {}\r\n", gw.addr);
    let answer = send(gw.addr, "POST", "/v1/admin/users/alice/tokens", &own, "{}").await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let answer = send(gw.addr, "GET", "/v1/tools", &own, "").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = send(gw.addr, "GET", "/v1/health", "Host: 10.1.2.3\r\n", "").await;
    assert_eq!(
        answer.status, 200,
        "health answers probes by IP: {answer:?}"
    );
}

#[tokio::test]
async fn a_page_on_another_origin_is_refused_and_no_preflight_is_granted() {
    let gw = start_gateway(|c| c.api.development = true).await;
    let port = gw.addr.port();
    for (method, path, body) in ATTACKS {
        let headers =
            format!("Host: localhost:{port}\r\nOrigin: https://evil.example\r\n{MCP_ACCEPT}");
        let answer = send(gw.addr, method, path, &headers, body).await;
        assert_refused(&answer, &format!("{method} {path}"));
    }
    let preflight = format!(
        "Host: localhost:{port}\r\nOrigin: https://evil.example\r\n\
         Access-Control-Request-Method: POST\r\n"
    );
    let answer = send(gw.addr, "OPTIONS", "/v1/tools/execute", &preflight, "").await;
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(
        !answer.head.contains("access-control-allow-origin"),
        "{answer:?}"
    );

    // Loopback origins (dev tools, the inspector) and the gateway's own pages pass.
    for origin in [
        format!("http://localhost:{port}"),
        "http://127.0.0.1:6274".to_string(),
        format!("http://{}", gw.addr),
    ] {
        let headers = format!("Host: {}\r\nOrigin: {origin}\r\n", gw.addr);
        let answer = send(
            gw.addr,
            "POST",
            "/v1/admin/users/alice/tokens",
            &headers,
            "{}",
        )
        .await;
        assert_eq!(answer.status, 201, "{origin}: {answer:?}");
    }
    let headers = format!("Host: {}\r\nOrigin: https://evil.example\r\n", gw.addr);
    let answer = send(gw.addr, "GET", "/v1/health", &headers, "").await;
    assert_eq!(answer.status, 200, "health is exempt: {answer:?}");
}

#[tokio::test]
async fn configured_hosts_and_origins_replace_the_loopback_defaults() {
    let gw = start_gateway(|c| {
        c.api.allowed_hosts = vec!["gw.internal".into()];
        c.api.allowed_origins = vec!["https://app.example.com".into()];
        c.api.public_url = "https://public.example.com".into();
    })
    .await;
    let key = format!("Authorization: Bearer {}\r\n", gw.key);
    let get_tools = |host: String| {
        let headers = format!("Host: {host}\r\n{key}");
        async move { send(gw.addr, "GET", "/v1/tools", &headers, "").await.status }
    };
    assert_eq!(
        get_tools(format!("gw.internal:{}", gw.addr.port())).await,
        200
    );
    assert_eq!(get_tools("public.example.com".into()).await, 200);
    assert_eq!(
        get_tools(format!("localhost:{}", gw.addr.port())).await,
        403
    );
    assert_eq!(get_tools(gw.addr.to_string()).await, 403);

    let with_origin = |origin: &'static str| {
        let headers = format!("Host: gw.internal\r\nOrigin: {origin}\r\n{key}");
        async move {
            send(
                gw.addr,
                "POST",
                "/v1/admin/users/bob/tokens",
                &headers,
                "{}",
            )
            .await
            .status
        }
    };
    assert_eq!(with_origin("https://app.example.com").await, 201);
    assert_eq!(with_origin("https://public.example.com").await, 201);
    assert_eq!(with_origin("http://localhost:3000").await, 403);
    assert_eq!(with_origin("https://evil.example").await, 403);
}

/// `GET /v1/health` on a kept-alive connection.
fn health_request(addr: SocketAddr) -> String {
    format!("GET /v1/health HTTP/1.1\r\nHost: {addr}\r\n\r\n")
}

/// A gateway serving at most `max` connections, none cut for idling within a test.
async fn connection_capped(max: usize) -> TestGateway {
    start_gateway(|c| {
        c.api.max_connections = max;
        c.api.idle_timeout = Duration::from_secs(60);
        c.api.read_timeout = Duration::from_secs(60);
    })
    .await
}

/// `GET /v1/health` on a connection of its own.
async fn health(addr: SocketAddr) -> Answer {
    send(addr, "GET", "/v1/health", &format!("Host: {addr}\r\n"), "").await
}

#[tokio::test]
async fn at_the_connection_cap_the_longest_idle_connection_makes_room() {
    let gw = connection_capped(8).await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        let answer = exchange(&mut stream, &health_request(gw.addr)).await;
        assert_eq!(answer.status, 200);
        idle.push(stream);
    }
    let answer = health(gw.addr).await;
    assert_eq!(answer.status, 200, "the ninth is served: {answer:?}");
    assert!(
        closed_by_server(&mut idle[0]).await,
        "the connection idle the longest was closed to make room"
    );
}

#[tokio::test]
async fn at_the_connection_cap_with_every_connection_busy_a_new_one_gets_503_and_none_is_cut() {
    let gw = connection_capped(4).await;
    let body = r#"{"tool_name":"Builtin.Echo","input":{"message":"hi"}}"#;
    let (head, tail) = body.split_at(10);
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        let request = format!(
            "POST /v1/tools/execute HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}",
            gw.addr,
            gw.key,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        busy.push(stream);
    }
    // Lets the gateway read those heads: each connection is then answering a request.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = health(gw.addr).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.head.contains("connection: close"), "{answer:?}");
    for mut stream in busy {
        let answer = exchange(&mut stream, tail).await;
        assert_eq!(
            answer.status, 200,
            "a request in flight is answered: {answer:?}"
        );
    }
}

#[tokio::test]
async fn a_body_that_trickles_past_the_read_timeout_gets_408_and_the_connection_closes() {
    let gw = start_gateway(|c| {
        c.api.read_timeout = Duration::from_secs(1);
        c.api.idle_timeout = Duration::from_secs(1);
    })
    .await;
    for path in ["/v1/tools/execute", "/v1/mcps/alice/mcp"] {
        let stream = TcpStream::connect(gw.addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n{MCP_ACCEPT}\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
            gw.addr, gw.key
        );
        writer.write_all(head.as_bytes()).await.unwrap();
        // One byte every 200 ms: 100 bytes would take 20 s.
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                if writer.write_all(b" ").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let mut raw = Vec::new();
        tokio::time::timeout(PATIENCE, reader.read_to_end(&mut raw))
            .await
            .expect("answered and closed before the body could finish")
            .unwrap();
        trickle.abort();
        let answer = Answer::parse(&raw);
        assert_eq!(answer.status, 408, "{path}: {answer:?}");
        assert!(
            answer.head.contains("connection: close"),
            "{path}: {answer:?}"
        );
    }
}

#[cfg(target_os = "linux")]
mod descriptors {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    use std::time::Duration;

    use crate::common::binary::{Served, listening_address, switchboard_command};

    /// The binary in dev mode, under an open-file limit of `limit` (soft and hard).
    fn serve_with_descriptor_limit(limit: u64) -> (Served, SocketAddr) {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "api:\n  development: true\n  max_connections: 100000\n  \
                    read_timeout: 60s\n  idle_timeout: 60s\nstorage:\n  sqlite:\n    path: sb.db\n";
        std::fs::write(dir.path().join("engine.yaml"), yaml).unwrap();
        let mut command = switchboard_command(dir.path());
        command
            .args(["serve", "--port", "0", "--host", "127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: `setrlimit` is async-signal-safe; nothing else runs in the child.
        unsafe {
            command.pre_exec(move || {
                let rlimit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut served = Served {
            child: command.spawn().unwrap(),
            _dir: dir,
        };
        let addr = listening_address(&mut served);
        (served, addr)
    }

    fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }

    #[test]
    fn idle_connections_past_the_descriptor_limit_starve_neither_health_nor_tool_calls() {
        let (_served, addr) = serve_with_descriptor_limit(256);
        let idle: Vec<TcpStream> = (0..400)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        let health = request(addr, "GET", "/v1/health", "");
        assert!(health.starts_with("HTTP/1.1 200"), "{health:?}");
        let body = r#"{"tool_name":"Builtin.Echo","input":{"message":"still here"}}"#;
        let call = request(addr, "POST", "/v1/tools/execute", body);
        assert!(call.starts_with("HTTP/1.1 200"), "{call:?}");
        assert!(call.contains("still here"), "{call:?}");
        drop(idle);
    }
}
