//! `type: mcp` workers: upstream MCP servers in `engine.yaml`, in both layouts, and every
//! refusal naming its key path.

use std::time::Duration;

mod config_support;
use config_support::{assert_has as has, load_yaml, problems};

#[test]
fn an_mcp_worker_becomes_an_upstream_with_defaults_in_either_layout() {
    let loaded = load_yaml(
        "
api: {development: true}
workers:
  - id: gh
    type: mcp
    mcp:
      uri: https://api.example.com/mcp/
      headers:
        Authorization: Bearer ${env:GH_TOKEN}
        X-Team: core
  - id: plain
    http: {uri: 'http://localhost:8002'}
tools:
  directors:
    - id: default
      workers:
        - id: sentry
          type: mcp
          mcp: {uri: 'http://127.0.0.1:9000/mcp', timeout: 5s, retry: 0}
",
        &[("GH_TOKEN", "t0ken")],
    )
    .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = loaded.config;
    let ids: Vec<&str> = config.workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["plain"]);
    assert_eq!(config.upstreams.len(), 2);
    let gh = &config.upstreams[0];
    assert_eq!(gh.id, "gh");
    assert!(gh.enabled);
    assert_eq!(gh.director, None);
    assert_eq!(gh.uri, "https://api.example.com/mcp/");
    assert_eq!(gh.timeout, Duration::from_secs(30));
    assert_eq!(gh.retry, 1);
    let headers: Vec<(&str, &str)> = gh
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose()))
        .collect();
    assert_eq!(
        headers,
        [("Authorization", "Bearer t0ken"), ("X-Team", "core")]
    );
    let sentry = &config.upstreams[1];
    assert_eq!(sentry.director.as_deref(), Some("default"));
    assert_eq!(sentry.timeout, Duration::from_secs(5));
    assert_eq!(sentry.retry, 0);
    assert!(sentry.headers.is_empty());
    // A header value is a secret: it never shows in Debug.
    assert!(!format!("{config:?}").contains("t0ken"));
}

#[test]
fn a_secret_reference_in_a_header_is_filled_from_secrets() {
    let config = load_yaml(
        "
api: {development: true}
secrets: {GH_PAT: abc123}
workers:
  - id: gh
    type: mcp
    mcp:
      uri: https://api.example.com/mcp
      headers: {Authorization: 'Bearer ${secret:GH_PAT}'}
",
        &[],
    )
    .unwrap()
    .config;
    assert_eq!(config.upstreams[0].headers[0].1.expose(), "Bearer abc123");

    let lines = problems(load_yaml(
        "
api: {development: true}
workers:
  - id: gh
    type: mcp
    mcp:
      uri: https://api.example.com/mcp
      headers: {Authorization: 'Bearer ${secret:MISSING}'}
",
        &[],
    ));
    has(
        &lines,
        "error: workers[0].mcp.headers.Authorization: secret \"MISSING\" is not defined under `secrets:`",
    );
}

#[test]
fn a_missing_or_non_http_uri_is_an_error_at_its_path() {
    let lines = problems(load_yaml(
        "
api: {development: true}
workers:
  - {id: a, type: mcp, mcp: {timeout: 5s}}
  - {id: b, type: mcp}
  - {id: c, type: mcp, mcp: {uri: 'ftp://example.com/mcp'}}
",
        &[],
    ));
    has(&lines, "error: workers[0].mcp.uri: worker a has no uri");
    has(&lines, "error: workers[1].mcp.uri: worker b has no uri");
    has(
        &lines,
        "error: workers[2].mcp.uri: worker c: uri must start with http:// or https://",
    );
}

#[test]
fn a_bad_header_name_is_an_error_naming_it() {
    let lines = problems(load_yaml(
        "
api: {development: true}
workers:
  - id: a
    type: mcp
    mcp:
      uri: http://example.com/mcp
      headers: {'Bad Header': x}
",
        &[],
    ));
    has(
        &lines,
        "error: workers[0].mcp.headers.Bad Header: \"Bad Header\" is not a valid HTTP header name",
    );
}

#[test]
fn an_unknown_type_and_the_other_types_section_are_refused() {
    let lines = problems(load_yaml(
        "
api: {development: true}
workers:
  - {id: a, type: grpc, http: {uri: 'http://x'}}
  - {id: b, type: mcp, mcp: {uri: 'http://x/mcp'}, http: {uri: 'http://x'}}
  - {id: c, http: {uri: 'http://x'}, mcp: {uri: 'http://x/mcp'}}
",
        &[],
    ));
    has(
        &lines,
        "error: workers[0].type: unknown worker type \"grpc\" (use http or mcp)",
    );
    has(
        &lines,
        "error: workers[1].http: worker b is type mcp: `http:` does not belong here (use `mcp:`)",
    );
    has(
        &lines,
        "error: workers[2].mcp: worker c is type http: `mcp:` does not belong here (use `http:`)",
    );
}

#[test]
fn ids_are_unique_across_workers_and_upstreams_in_both_layouts() {
    let lines = problems(load_yaml(
        "
api: {development: true}
workers:
  - {id: one, http: {uri: 'http://x'}}
  - {id: one, type: mcp, mcp: {uri: 'http://x/mcp'}}
tools:
  directors:
    - id: d
      workers:
        - {id: one, type: mcp, mcp: {uri: 'http://y/mcp'}}
",
        &[],
    ));
    has(
        &lines,
        "error: workers[1].id: duplicate worker id \"one\" (first at workers[0])",
    );
    has(
        &lines,
        "error: tools.directors[0].workers[0].id: duplicate worker id \"one\" (first at workers[0])",
    );
}

#[test]
fn oauth2_and_stdio_upstreams_are_refused_as_not_supported_yet() {
    let lines = problems(load_yaml(
        "
api: {development: true}
workers:
  - id: a
    type: mcp
    mcp: {uri: 'http://x/mcp', oauth2: {client_id: c}}
  - {id: b, type: stdio, stdio: {command: npx}}
  - {id: c, type: mcp, mcp: {uri: 'http://x/mcp'}, stdio: {command: npx}}
",
        &[],
    ));
    has(
        &lines,
        "error: workers[0].mcp.oauth2: worker a: per-user OAuth to upstream MCP servers is not supported yet",
    );
    has(
        &lines,
        "error: workers[1].type: worker b: stdio upstreams are not supported yet",
    );
    has(
        &lines,
        "error: workers[2].stdio: worker c: stdio upstreams are not supported yet",
    );
}

#[test]
fn a_disabled_upstream_may_leave_its_variables_unset() {
    let config = load_yaml(
        "
workers:
  - id: off
    enabled: false
    type: mcp
    mcp: {uri: '${env:NOPE}', headers: {Authorization: '${env:ALSO_NOPE}'}}
",
        &[],
    )
    .unwrap()
    .config;
    assert!(!config.upstreams[0].enabled);
}

#[test]
fn a_loopback_upstream_outside_the_allowlist_is_flagged_at_its_uri() {
    let loaded = load_yaml(
        "
workers:
  - {id: local, type: mcp, mcp: {uri: 'http://127.0.0.1:9000/mcp'}}
",
        &[],
    )
    .unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "warning: workers[0].mcp.uri: worker local: refusing to connect to 127.0.0.1"
        )),
        "{warnings:#?}"
    );
    let allowed = load_yaml(
        "
network: {allowlist: ['127.0.0.1']}
workers:
  - {id: local, type: mcp, mcp: {uri: 'http://127.0.0.1:9000/mcp'}}
",
        &[],
    )
    .unwrap();
    assert!(allowed.warnings.is_empty(), "{:?}", allowed.warnings);
}
