//! `api.tls`: the gateway terminates TLS itself, with a real rustls client (reqwest) on
//! the other end and a certificate made for the test.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchboard::config::TlsConfig;
use switchboard::server::Gateway;

/// A self-signed certificate for 127.0.0.1 and localhost, as PEM files in `dir`.
fn certificate(dir: &Path) -> (TlsConfig, String) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert_pem = made.cert.pem();
    let key_pem = made.signing_key.serialize_pem();
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&cert_file, &cert_pem).unwrap();
    std::fs::write(&key_file, &key_pem).unwrap();
    (
        TlsConfig {
            cert_file,
            key_file,
        },
        cert_pem,
    )
}

/// A client that trusts only `cert_pem`, and gives up on a call after 5 s (the gateway's
/// handshake timeout is 10 s).
fn https_client(cert_pem: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn rest_and_mcp_are_served_over_https_and_plain_http_is_not() {
    let certs = tempfile::tempdir().unwrap();
    let (tls, cert_pem) = certificate(certs.path());
    let gw = start_gateway(|c| c.api.tls = Some(tls)).await;
    let https = https_client(&cert_pem);
    let base = format!("https://127.0.0.1:{}", gw.addr.port());

    let health = https.get(format!("{base}/v1/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let executed: Value = https
        .post(format!("{base}/v1/tools/execute"))
        .header("Authorization", format!("Bearer {}", gw.key))
        .json(&json!({"tool_name": "Builtin.Echo", "input": {"message": "over tls"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(executed["output"]["value"], "over tls", "{executed}");

    let listed = https
        .post(format!("{base}/v1/mcps/alice/mcp"))
        .header("Authorization", format!("Bearer {}", gw.key))
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/list")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    assert!(listed["result"]["tools"].is_array(), "{listed}");

    // A client that trusts no test certificate: the same port in plain HTTP gets no
    // answer, only a failed exchange, and over HTTPS it refuses the server.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let refused = untrusting
        .get(format!("http://127.0.0.1:{}/v1/health", gw.addr.port()))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(
        untrusting
            .get(format!("{base}/v1/health"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn clients_that_never_finish_a_handshake_do_not_hold_up_the_others() {
    let certs = tempfile::tempdir().unwrap();
    let (tls, cert_pem) = certificate(certs.path());
    let gw = start_gateway(|c| c.api.tls = Some(tls)).await;
    // Connected, silent: each waits for a ClientHello that never comes.
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    let https = https_client(&cert_pem);
    for _ in 0..3 {
        let res = https
            .get(format!("https://127.0.0.1:{}/v1/health", gw.addr.port()))
            .send()
            .await
            .expect("answered while the silent connections wait (the client gives up at 5 s)");
        assert_eq!(res.status(), 200);
    }
    drop(silent);
}

#[tokio::test]
async fn unusable_tls_files_stop_the_start_and_name_the_file() {
    let certs = tempfile::tempdir().unwrap();
    let (good, _) = certificate(certs.path());
    let key_pem = std::fs::read_to_string(&good.key_file).unwrap();
    let other = tempfile::tempdir().unwrap();
    let (other_pair, _) = certificate(other.path());
    let garbage = certs.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = certs.path().join("missing.pem");

    let cases: Vec<(TlsConfig, &str, PathBuf)> = vec![
        (
            TlsConfig {
                cert_file: missing.clone(),
                key_file: good.key_file.clone(),
            },
            "api.tls.cert_file",
            missing,
        ),
        (
            TlsConfig {
                cert_file: garbage.clone(),
                key_file: good.key_file.clone(),
            },
            "api.tls.cert_file",
            garbage.clone(),
        ),
        (
            TlsConfig {
                cert_file: good.cert_file.clone(),
                key_file: garbage.clone(),
            },
            "api.tls.key_file",
            garbage,
        ),
        (
            // A key that is not the certificate's.
            TlsConfig {
                cert_file: good.cert_file.clone(),
                key_file: other_pair.key_file.clone(),
            },
            "api.tls",
            good.cert_file.clone(),
        ),
    ];
    for (tls, key_path, file) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        config.api.tls = Some(tls);
        let error = match Gateway::start(config).await {
            Ok(_) => panic!("started with unusable TLS files ({key_path})"),
            Err(e) => e.to_string(),
        };
        assert!(error.contains(key_path), "{error}");
        if key_path != "api.tls" {
            assert!(error.contains(&file.display().to_string()), "{error}");
        }
        assert!(!error.contains(key_pem.trim()), "the key leaked: {error}");
    }
}
