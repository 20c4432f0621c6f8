//! How the gateway serves connections: a shutdown lets calls in flight finish and
//! flushes their records, and `http.read_timeout` / `idle_timeout` / `write_timeout`
//! close connections that stall. A real gateway on 127.0.0.1:0 (the real binary's
//! serving threads and signals are in `serve.rs`).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn shutdown_lets_in_flight_calls_finish_and_flushes_records() {
    let mut gw = start_gateway(|_| {}).await;
    let http = gw.http.clone();
    let url = gw.url("/v1/tools/execute");
    let key = gw.key.clone();
    let call = tokio::spawn(async move {
        http.post(url)
            .header("Authorization", key)
            .json(&json!({"tool_name": "Builtin.Sleep", "input": {"seconds": 0.5}}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    gw.signal_shutdown();
    assert_eq!(call.await.unwrap().unwrap(), 200);
    let store = gw.store.clone();
    gw.shutdown().await.unwrap();
    let records = store.list_executions(&Default::default()).await.unwrap();
    assert_eq!(
        records.len(),
        1,
        "the in-flight call's record is written before exit"
    );
    let record = &records[0];
    assert_eq!(
        (record.tool_name.as_str(), record.source.as_str()),
        ("Builtin.Sleep", "builtin")
    );
    assert_eq!(
        (record.status.as_str(), record.error_kind.as_deref()),
        ("success", None)
    );
    // The tool slept half a second: its record says at least that long.
    assert!(record.duration_ms >= 500.0, "{record:?}");
    assert!(
        record.finished_at_ms - record.started_at_ms >= 500,
        "{record:?}"
    );
}

/// `http.read_timeout` / `idle_timeout`: a connection that sends nothing, stalls inside
/// its request head, or sits idle after a request is closed by the gateway, so such
/// clients cannot hold connections open. (The clock here only bounds the wait.)
#[tokio::test]
async fn silent_stalled_and_idle_connections_are_closed_after_the_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = start_gateway(|c| {
        c.api.read_timeout = Duration::from_secs(1);
        c.api.idle_timeout = Duration::from_secs(1);
    })
    .await;
    /// Reads until the gateway closes the connection (bounded: 10 s); what it sent.
    async fn until_closed(stream: &mut tokio::net::TcpStream) -> Option<String> {
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got));
        match read.await {
            Ok(Ok(_)) | Ok(Err(_)) => Some(String::from_utf8_lossy(&got).into_owned()),
            Err(_) => None,
        }
    }
    let mut silent = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    assert!(
        until_closed(&mut silent).await.is_some(),
        "a silent connection is closed"
    );

    let mut stalled = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    stalled
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let sent = until_closed(&mut stalled).await;
    assert!(sent.is_some(), "a stalled request head is cut off");
    assert!(!sent.unwrap().contains("200 OK"), "and never answered");

    let mut idle = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let sent = until_closed(&mut idle).await.expect("closed once idle");
    assert!(sent.starts_with("HTTP/1.1 200 OK"), "{sent}");

    // The gateway goes on serving.
    let (status, _) = gw.get("/v1/health").await;
    assert_eq!(status, 200);
}

/// `http.write_timeout`: a client that asks and asks but never reads has its connection
/// dropped once the gateway's writes have made no progress for that long, instead of
/// holding it (and the answers queued on it) forever.
#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = start_gateway(|c| {
        c.api.write_timeout = Duration::from_secs(1);
        c.api.read_timeout = Duration::from_secs(60);
        c.api.idle_timeout = Duration::from_secs(60);
    })
    .await;
    const ASKED: usize = 3000;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(gw.addr).await.unwrap();
    let request = format!(
        "GET /v1/tools?limit=100 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\r\n",
        gw.key
    );
    // Pipelined, and not read: the answers fill both sockets' buffers.
    let (mut reader, mut writer) = stream.split();
    let asking = async {
        for _ in 0..ASKED {
            if writer.write_all(request.as_bytes()).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(4), asking).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the gateway closed the connection");
    let answered = String::from_utf8_lossy(&got)
        .matches("HTTP/1.1 200 OK")
        .count();
    assert!(
        answered < ASKED,
        "cut off after {answered} of {ASKED} answers"
    );

    let (status, _) = gw.get("/v1/health").await;
    assert_eq!(status, 200);
}
