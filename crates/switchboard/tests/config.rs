//! `engine.yaml` loading: both layouts, expansion, env files, discovery and the checks,
//! each asserting the exact message and key path a user would see.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchboard::config::{
    ConfigError, LoadOptions, Severity, StorageConfig, defaults, discover, load,
};

mod config_support;
use config_support::{assert_has, env, load_yaml, options, problems, warnings, workspace};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

/// Every `${env:NAME}` the Arcade example uses, with values of the right shape.
fn arcade_env(without: &[&str]) -> HashMap<String, String> {
    let text = fs::read_to_string(fixture("arcade-2.0.example.yaml")).unwrap();
    let mut vars = HashMap::new();
    for part in text.split("${env:").skip(1) {
        let name = &part[..part.find('}').unwrap()];
        let value = match name {
            "API_DEVELOPMENT" => "false",
            "ARCADE_API_HOST" => "0.0.0.0",
            "ARCADE_API_PORT" => "9199",
            "TELEMETRY_LOGGING_LEVEL" => "debug",
            "TELEMETRY_LOGGING_ENCODING" => "json",
            "ARCADE_WORKER_URI" => "http://localhost:8002",
            other => other,
        };
        vars.insert(name.to_owned(), value.to_owned());
    }
    for name in without {
        assert!(
            vars.remove(*name).is_some(),
            "{name} is not used by the example"
        );
    }
    vars
}

const MINIMAL_WORKER: &str = "
workers:
  - id: w1
    http: {uri: 'http://localhost:8002', secret: s}
";

#[test]
fn the_arcade_example_loads_once_its_variables_are_set() {
    let loaded = load(&options(
        &fixture("arcade-2.0.example.yaml"),
        arcade_env(&[]),
    ))
    .unwrap();
    let config = &loaded.config;

    // Port and development come from strings after expansion.
    assert_eq!(config.api.host, "0.0.0.0");
    assert_eq!(config.api.port, 9199);
    assert!(!config.api.development);
    assert_eq!(config.api.public_url, "http://localhost:9199");

    assert_eq!(config.auth_providers.len(), 13);
    assert!(
        config
            .auth_providers
            .iter()
            .all(|p| !p.enabled && p.provider_type == "oauth2")
    );
    assert_eq!(config.auth_providers[3].id, "default-github");
    assert_eq!(
        config.auth_providers[3].provider_id.as_deref(),
        Some("github")
    );

    assert_eq!(config.security.root_keys.len(), 1);
    assert_eq!(config.security.root_keys[0].id, "key1");
    assert!(config.security.root_keys[0].default);
    assert_eq!(config.security.root_keys[0].value.expose(), "ROOT_KEY_1");

    // Embedded PostgreSQL is not run: SQLite in the data directory, and a warning saying so.
    assert_eq!(
        config.storage,
        StorageConfig::Sqlite {
            path: PathBuf::from("/data/switchboard/switchboard.db")
        }
    );
    assert_has(
        &warnings(&loaded),
        "warning: storage.postgres.data_path: embedded PostgreSQL is not supported; using SQLite \
         at /data/switchboard/switchboard.db instead (set storage.postgres.url, or \
         host/user/password/db, to use PostgreSQL)",
    );
    assert_has(
        &warnings(&loaded),
        "warning: llm: not served by Switchboard (no LLM endpoint); section ignored",
    );
    assert_eq!(loaded.warnings.len(), 2, "{:#?}", warnings(&loaded));

    assert_eq!(config.telemetry.level, "debug");
    assert_eq!(config.telemetry.encoding, "json");

    assert_eq!(config.workers.len(), 1);
    let worker = &config.workers[0];
    assert_eq!(worker.id, "worker");
    assert!(worker.enabled);
    assert_eq!(worker.director.as_deref(), Some("default"));
    assert_eq!(worker.uri, "http://localhost:8002");
    assert_eq!(
        worker.secret.as_ref().unwrap().expose(),
        "ARCADE_WORKER_SECRET"
    );
    assert_eq!(worker.timeout, Duration::from_secs(30));
    assert_eq!(worker.retry, 3);
    assert!(config.builtin_toolkit);
    assert_eq!(config.worker_health_interval, Duration::from_secs(10));
}

#[test]
fn the_arcade_example_without_the_worker_secret_names_the_variable_and_the_key() {
    let lines = problems(load(&options(
        &fixture("arcade-2.0.example.yaml"),
        arcade_env(&["ARCADE_WORKER_SECRET"]),
    )));
    assert_has(
        &lines,
        "error: tools.directors[0].workers[0].http.secret: environment variable \
         ARCADE_WORKER_SECRET is not set",
    );
    // Reported once: not a second "has no secret" error on top.
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("error:")).count(),
        1,
        "{lines:#?}"
    );
}

#[test]
fn unset_variables_inside_disabled_providers_are_fine() {
    // Only what the enabled parts need: none of the 26 provider variables.
    let provider_vars: Vec<String> = arcade_env(&[])
        .into_keys()
        .filter(|k| {
            k.ends_with("_CLIENT_ID") || k.ends_with("_CLIENT_SECRET") || k == "OPENAI_API_KEY"
        })
        .collect();
    let without: Vec<&str> = provider_vars.iter().map(String::as_str).collect();
    let loaded = load(&options(
        &fixture("arcade-2.0.example.yaml"),
        arcade_env(&without),
    ))
    .unwrap();
    let google = &loaded.config.auth_providers[4];
    assert_eq!(google.id, "default-google");
    assert_eq!(google.client_id, None);
    assert!(google.client_secret.is_none());
}

#[test]
fn the_seed_style_example_loads() {
    let vars = [
        ("GOOGLE_CLIENT_ID", "gid"),
        ("GOOGLE_CLIENT_SECRET", "gsecret"),
        ("GITHUB_CLIENT_ID", "hid"),
        ("GITHUB_CLIENT_SECRET", "hsecret"),
        ("MCP_SERVER_SECRET", "one"),
        ("WORKER_SECRET", "two"),
    ];
    let loaded = load(&options(&fixture("seed-style.yaml"), env(&vars))).unwrap();
    assert_eq!(warnings(&loaded), Vec::<String>::new());
    let config = &loaded.config;
    assert_eq!(config.api.host, "0.0.0.0");
    assert_eq!(config.api.port, 9099);
    assert!(!config.api.development);
    let tls = config.api.tls.as_ref().unwrap();
    assert_eq!(tls.cert_file, PathBuf::from("/path/to/cert.pem"));
    assert_eq!(tls.key_file, PathBuf::from("/path/to/key.pem"));
    assert_eq!(config.api.public_url, "https://localhost:9099");
    assert_eq!(config.api.read_timeout, Duration::from_secs(30));
    assert_eq!(config.api.write_timeout, Duration::from_secs(60));
    assert_eq!(
        config.api.cors.allowed_origins,
        vec!["https://yourdomain.com"]
    );
    assert_eq!(config.api.cors.allowed_methods, vec!["GET", "POST"]);

    assert_eq!(config.auth_providers.len(), 2);
    assert!(config.auth_providers[0].enabled);
    assert_eq!(config.auth_providers[0].client_id.as_deref(), Some("gid"));
    assert_eq!(
        config.auth_providers[0]
            .client_secret
            .as_ref()
            .unwrap()
            .expose(),
        "gsecret"
    );

    let ids: Vec<&str> = config.workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["external-mcp-server", "custom-toolkit-worker"]);
    let custom = &config.workers[1];
    assert_eq!(custom.director, None);
    assert_eq!(custom.uri, "http://localhost:8002");
    assert_eq!(custom.secret.as_ref().unwrap().expose(), "two");
    assert_eq!(custom.timeout, Duration::from_secs(45));
    assert_eq!(custom.retry, 1);
    assert_eq!(config.workers[0].retry, 3);
}

#[test]
fn an_unknown_provider_type_is_an_error_naming_the_type() {
    let lines = problems(load_yaml(
        "
auth:
  providers:
    - id: corp-sso
      type: saml
      provider_id: okta
      client_id: abc
",
        &[],
    ));
    assert_has(
        &lines,
        r#"error: auth.providers[0].type: unknown provider type "saml" (only oauth2 is supported)"#,
    );
}

#[test]
fn an_unset_variable_in_an_enabled_provider_names_the_variable_and_the_key() {
    let lines = problems(load_yaml(
        "
auth:
  user_verifier: none
  providers:
    - id: google
      type: oauth2
      provider_id: google
      client_id: ${env:GOOGLE_CLIENT_ID}
      client_secret: ${env:GOOGLE_CLIENT_SECRET}
",
        &[("GOOGLE_CLIENT_ID", "id")],
    ));
    assert_eq!(
        lines,
        [
            "error: auth.providers[0].client_secret: environment variable GOOGLE_CLIENT_SECRET is not set"
        ]
    );
}

#[test]
fn an_unset_variable_in_an_embedded_string_is_an_error_too() {
    let lines = problems(load_yaml(
        "
workers:
  - id: w1
    http: {uri: 'http://${env:WORKER_HOST}:8002', secret: s}
",
        &[],
    ));
    assert_eq!(
        lines,
        ["error: workers[0].http.uri: environment variable WORKER_HOST is not set"]
    );
}

#[test]
fn an_unset_variable_in_a_key_with_a_default_uses_the_default() {
    let loaded = load_yaml(
        "api:\n  port: ${env:ARCADE_API_PORT}\n  host: ${env:HOST}\n",
        &[],
    )
    .unwrap();
    assert_eq!(loaded.config.api.port, 9099);
    assert_eq!(loaded.config.api.host, "127.0.0.1");
}

#[test]
fn an_unset_root_key_is_an_error() {
    let lines = problems(load_yaml(
        "security:\n  root_keys:\n    - {id: k1, default: true, value: '${env:ROOT_KEY_1}'}\n",
        &[],
    ));
    assert_eq!(
        lines,
        ["error: security.root_keys[0].value: environment variable ROOT_KEY_1 is not set"]
    );
}

#[test]
fn cors_origins_and_methods_that_cannot_work_are_errors_naming_the_entry() {
    let lines = problems(load_yaml(
        "http:\n  cors:\n    allowed_origins: [\"https://app.example.com\", \"app.example.com\", \"https://app.example.com/\", \"https://x.example/path\", \"*\"]\n    allowed_methods: [GET, \"NOT A METHOD\"]\n",
        &[],
    ));
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (entry, says) in [
        (
            "http.cors.allowed_origins[1]",
            "'app.example.com' is not an origin",
        ),
        ("http.cors.allowed_origins[2]", "no trailing slash"),
        ("http.cors.allowed_origins[3]", "write scheme://host[:port]"),
        (
            "http.cors.allowed_methods[1]",
            "'NOT A METHOD' is not an HTTP method",
        ),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("error: {entry}: ")) && l.contains(says)),
            "{entry}: {lines:?}"
        );
    }
}

#[test]
fn a_bad_duration_names_the_key_and_the_value() {
    let lines = problems(load_yaml("http:\n  read_timeout: 30 parsecs\n", &[]));
    assert_eq!(
        lines,
        [
            r#"error: http.read_timeout: invalid duration "30 parsecs" (use e.g. 30s, 1m, 200ms or seconds)"#
        ]
    );
}

#[test]
fn durations_accept_units_and_plain_seconds() {
    let loaded = load_yaml(
        "
api: {read_timeout: 200ms, write_timeout: '90', idle_timeout: 1m30s}
tools: {health_check_interval: 2.5}
workers:
  - id: w1
    http: {uri: 'http://localhost:1', secret: s, timeout: 5}
",
        &[],
    )
    .unwrap();
    let config = loaded.config;
    assert_eq!(config.api.read_timeout, Duration::from_millis(200));
    assert_eq!(config.api.write_timeout, Duration::from_secs(90));
    assert_eq!(config.api.idle_timeout, Duration::from_secs(90));
    assert_eq!(config.worker_health_interval, Duration::from_millis(2500));
    assert_eq!(config.workers[0].timeout, Duration::from_secs(5));
}

#[test]
fn the_readme_configuration_example_loads_without_problems() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let start = readme
        .find("```yaml\napi:")
        .expect("README has the yaml example")
        + 8;
    let end = start + readme[start..].find("```").unwrap();
    let vars = [
        ("ROOT_KEY_1", "0123456789abcdef0123456789abcdef"),
        ("GOOGLE_CLIENT_ID", "id"),
        ("GOOGLE_CLIENT_SECRET", "secret"),
        ("CUSTOM_CLIENT_ID", "id"),
        ("CUSTOM_CLIENT_SECRET", "secret"),
        ("OPENWEATHER_API_KEY", "key"),
        ("WORKER_SECRET", "secret"),
    ];
    let loaded = load_yaml(&readme[start..end], &vars).unwrap();
    assert!(warnings(&loaded).is_empty(), "{:?}", warnings(&loaded));
    assert_eq!(
        loaded.config.execution_logging.retention,
        Some(Duration::from_secs(30 * 86_400))
    );
}

#[test]
fn execution_log_retention_and_arcades_cleanup_settings_are_read() {
    let defaults = load_yaml("{}\n", &[]).unwrap().config.execution_logging;
    assert_eq!(defaults.retention, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(defaults.cleanup.batch_size, 1000);
    assert_eq!(defaults.cleanup.mark_interval, Duration::from_secs(1800));
    assert_eq!(
        defaults.cleanup.sweep_batch_interval,
        Duration::from_secs(5)
    );

    let loaded = load_yaml(
        "
execution_logging:
  retention: 7d
  cleanup: {batch_size: 250, mark_interval: 10m, sweep_batch_interval: 500ms}
",
        &[],
    )
    .unwrap();
    assert!(warnings(&loaded).is_empty(), "{:?}", warnings(&loaded));
    let log = loaded.config.execution_logging;
    assert_eq!(log.retention, Some(Duration::from_secs(7 * 86_400)));
    assert_eq!(log.cleanup.batch_size, 250);
    assert_eq!(log.cleanup.mark_interval, Duration::from_secs(600));
    assert_eq!(log.cleanup.sweep_batch_interval, Duration::from_millis(500));

    let forever = load_yaml("execution_logging: {retention: 0}\n", &[]).unwrap();
    assert_eq!(forever.config.execution_logging.retention, None);
}

#[test]
fn bad_execution_log_cleanup_settings_name_their_key() {
    let lines = problems(load_yaml(
        "
execution_logging:
  retention: a month
  cleanup: {batch_size: 0, mark_interval: 0s}
",
        &[],
    ));
    assert_has(
        &lines,
        r#"error: execution_logging.retention: invalid duration "a month" (use e.g. 30s, 1m, 200ms or seconds)"#,
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("error: execution_logging.cleanup.batch_size:")),
        "{lines:?}"
    );
    assert_has(
        &lines,
        "error: execution_logging.cleanup.mark_interval: must be greater than zero",
    );
}

#[test]
fn the_mcp_session_keep_alive_defaults_to_a_minute_and_must_be_positive() {
    let defaults = load_yaml("{}\n", &[]).unwrap().config.api;
    assert_eq!(defaults.mcp_session_keep_alive, Duration::from_secs(60));
    let set = load_yaml("api: {mcp_session_keep_alive: 5m}\n", &[]).unwrap();
    assert!(warnings(&set).is_empty(), "{:?}", warnings(&set));
    assert_eq!(
        set.config.api.mcp_session_keep_alive,
        Duration::from_secs(300)
    );
    let lines = problems(load_yaml("api: {mcp_session_keep_alive: 0}\n", &[]));
    assert_has(
        &lines,
        "error: api.mcp_session_keep_alive: must be greater than zero",
    );
}

#[test]
fn direct_mcp_tool_calls_are_on_by_default_and_can_be_turned_off() {
    let defaults = load_yaml("{}\n", &[]).unwrap().config.api;
    assert!(defaults.mcp_direct_tool_calls);
    let set = load_yaml("api: {mcp_direct_tool_calls: false}\n", &[]).unwrap();
    assert!(warnings(&set).is_empty(), "{:?}", warnings(&set));
    assert!(!set.config.api.mcp_direct_tool_calls);
    let lines = problems(load_yaml("api: {mcp_direct_tool_calls: sometimes}\n", &[]));
    assert_has(
        &lines,
        "error: api.mcp_direct_tool_calls: expected true or false, got \"sometimes\"",
    );
}

#[test]
fn duplicate_worker_and_provider_ids_are_errors_across_layouts() {
    let lines = problems(load_yaml(
        "
workers:
  - id: shared
    http: {uri: 'http://localhost:1', secret: s}
tools:
  directors:
    - id: default
      workers:
        - id: other
          http: {uri: 'http://localhost:2', secret: s}
        - id: shared
          http: {uri: 'http://localhost:3', secret: s}
auth:
  user_verifier: none
  providers:
    - {id: gh, type: oauth2, provider_id: github, client_id: a, client_secret: b}
    - {id: gh, type: oauth2, provider_id: github, client_id: c, client_secret: d}
",
        &[],
    ));
    assert_has(
        &lines,
        r#"error: tools.directors[0].workers[1].id: duplicate worker id "shared" (first at workers[0])"#,
    );
    assert_has(
        &lines,
        r#"error: auth.providers[1].id: duplicate provider id "gh" (first at auth.providers[0])"#,
    );
    assert_eq!(lines.len(), 2, "{lines:#?}");
}

#[test]
fn a_worker_without_a_secret_is_an_error_outside_dev_mode() {
    let lines = problems(load_yaml(
        "workers:\n  - id: w1\n    http: {uri: 'http://localhost:8002'}\n",
        &[],
    ));
    assert_eq!(
        lines,
        [
            "error: workers[0].http.secret: worker w1 has no secret; set http.secret (dev mode defaults it to `dev`)"
        ]
    );
}

#[test]
fn a_worker_without_a_secret_is_fine_in_dev_mode() {
    let loaded = load_yaml(
        "api: {development: true}\nworkers:\n  - id: w1\n    http: {uri: 'http://localhost:8002'}\n",
        &[],
    )
    .unwrap();
    assert!(loaded.config.api.development);
    assert!(loaded.config.workers[0].secret.is_none());
}

#[test]
fn a_disabled_worker_needs_neither_uri_nor_secret() {
    let loaded = load_yaml("workers:\n  - {id: w1, enabled: false}\n", &[]).unwrap();
    assert!(!loaded.config.workers[0].enabled);
}

#[test]
fn a_worker_without_a_uri_is_an_error() {
    let lines = problems(load_yaml(
        "workers:\n  - id: w1\n    http: {secret: s}\n",
        &[],
    ));
    assert_eq!(lines, ["error: workers[0].http.uri: worker w1 has no uri"]);
}

#[test]
fn a_bad_port_is_an_error() {
    let lines = problems(load_yaml(
        "api:\n  port: ${env:PORT}\n",
        &[("PORT", "99999")],
    ));
    assert_eq!(
        lines,
        [r#"error: api.port: invalid port "99999" (expected 0-65535)"#]
    );
}

#[test]
fn engine_env_beside_the_config_is_loaded_and_the_real_environment_wins() {
    let (dir, path) = workspace(
        "
api:
  host: ${env:HOST}
  port: ${env:PORT}
workers:
  - id: w1
    http: {uri: 'http://localhost:1', secret: '${env:SECRET}'}
",
    );
    fs::write(
        dir.path().join("engine.env"),
        "HOST=from-file\nPORT=1111\nSECRET=file-secret\n",
    )
    .unwrap();
    let loaded = load(&options(&path, env(&[("PORT", "2222")]))).unwrap();
    assert_eq!(loaded.config.api.host, "from-file");
    assert_eq!(loaded.config.api.port, 2222);
    assert_eq!(
        loaded.config.workers[0].secret.as_ref().unwrap().expose(),
        "file-secret"
    );
}

#[test]
fn an_env_file_named_on_the_command_line_replaces_engine_env() {
    let (dir, path) = workspace("api:\n  host: ${env:HOST}\n");
    fs::write(dir.path().join("engine.env"), "HOST=beside\n").unwrap();
    let other = dir.path().join("prod.env");
    fs::write(&other, "HOST=named\n").unwrap();
    let mut opts = options(&path, HashMap::new());
    opts.env_file = Some(other);
    assert_eq!(load(&opts).unwrap().config.api.host, "named");

    let missing = dir.path().join("missing.env");
    opts.env_file = Some(missing.clone());
    match load(&opts) {
        Err(ConfigError::Read { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn a_malformed_env_file_names_the_line_but_not_its_text() {
    let (dir, path) = workspace("{}\n");
    fs::write(dir.path().join("engine.env"), "GOOD=1\nBAD LINE hunter2\n").unwrap();
    let err = load(&options(&path, HashMap::new()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid line 2"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn file_references_read_relative_to_the_config_and_drop_the_trailing_newline() {
    let (dir, path) = workspace(
        "workers:\n  - id: w1\n    http: {uri: 'http://localhost:1', secret: '${file:secrets/worker}'}\n",
    );
    fs::create_dir(dir.path().join("secrets")).unwrap();
    fs::write(dir.path().join("secrets/worker"), "from-a-file\n").unwrap();
    let loaded = load(&options(&path, HashMap::new())).unwrap();
    assert_eq!(
        loaded.config.workers[0].secret.as_ref().unwrap().expose(),
        "from-a-file"
    );
}

#[test]
fn a_missing_referenced_file_is_an_error_with_the_key() {
    let (dir, path) = workspace("secrets:\n  API_TOKEN: ${file:nope.txt}\n");
    let lines = problems(load(&options(&path, HashMap::new())));
    let expected = dir.path().join("nope.txt");
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with(&format!(
            "error: secrets.API_TOKEN: cannot read file {}: ",
            expected.display()
        )),
        "{lines:?}"
    );
}

#[test]
fn discovery_prefers_the_flag_then_the_variable_then_the_config_home() {
    let home = tempfile::tempdir().unwrap();
    let mut opts = LoadOptions {
        config_home: Some(home.path().to_owned()),
        ..LoadOptions::default()
    };
    assert_eq!(discover(&opts), None, "no file anywhere: built-in defaults");

    let in_home = home.path().join("switchboard/engine.yaml");
    fs::create_dir_all(in_home.parent().unwrap()).unwrap();
    fs::write(&in_home, "{}").unwrap();
    assert_eq!(discover(&opts), Some(in_home));

    opts.env = env(&[("SWITCHBOARD_CONFIG", "/etc/switchboard/engine.yaml")]);
    assert_eq!(
        discover(&opts),
        Some(PathBuf::from("/etc/switchboard/engine.yaml"))
    );

    opts.config_path = Some(PathBuf::from("flag.yaml"));
    assert_eq!(discover(&opts), Some(PathBuf::from("flag.yaml")));
}

#[test]
fn no_file_at_all_gives_the_development_defaults() {
    let opts = LoadOptions {
        data_dir: PathBuf::from("/data/sb"),
        ..LoadOptions::default()
    };
    let loaded = load(&opts).unwrap();
    assert!(loaded.warnings.is_empty());
    let config = loaded.config;
    assert_eq!(config.source, None);
    assert!(config.api.development);
    assert_eq!(
        (config.api.host.as_str(), config.api.port),
        ("127.0.0.1", 9099)
    );
    assert_eq!(config.api.public_url, "http://localhost:9099");
    assert_eq!(
        config.storage,
        StorageConfig::Sqlite {
            path: PathBuf::from("/data/sb/switchboard.db")
        }
    );
    assert!(config.builtin_toolkit);
    assert!(config.workers.is_empty());
    assert_eq!(defaults(Path::new("/data/sb")).storage, config.storage);
}

#[test]
fn a_missing_config_file_is_a_read_error_naming_the_path() {
    let err = load(&options(
        Path::new("/nonexistent/engine.yaml"),
        HashMap::new(),
    ))
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Read { path, .. } if path == Path::new("/nonexistent/engine.yaml"))
    );
    assert!(
        err.to_string()
            .starts_with("cannot read /nonexistent/engine.yaml: "),
        "{err}"
    );
}

#[test]
fn invalid_yaml_reports_line_and_column() {
    let lines = problems(load_yaml("api:\n  host: [unclosed\n  port: 1\n", &[]));
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("error: invalid YAML: "), "{lines:?}");
    assert!(lines[0].contains("line 3 column"), "{lines:?}");
}

#[test]
fn an_llm_section_and_unknown_keys_are_warnings_not_errors() {
    let loaded = load_yaml(
        &format!("llm:\n  models: []\nfrobnicate: 1\napi:\n  prot: 1\n{MINIMAL_WORKER}"),
        &[],
    )
    .unwrap();
    assert_eq!(
        warnings(&loaded),
        [
            "warning: llm: not served by Switchboard (no LLM endpoint); section ignored",
            "warning: frobnicate: unknown top-level key; ignored",
            "warning: api.prot: unknown key; ignored",
        ]
    );
    assert!(
        loaded
            .warnings
            .iter()
            .all(|w| w.severity == Severity::Warning)
    );
}

#[test]
fn two_default_root_keys_are_an_error_and_none_makes_the_first_default() {
    let lines = problems(load_yaml(
        "security:\n  root_keys:\n    - {id: a, default: true, value: x}\n    - {id: b, default: true, value: y}\n",
        &[],
    ));
    assert_eq!(
        lines,
        [
            "error: security.root_keys[1].default: more than one root key is marked default (also security.root_keys[0])"
        ]
    );

    let loaded = load_yaml(
        "security:\n  root_keys:\n    - {id: a, value: x}\n    - {id: b, value: y}\n",
        &[],
    )
    .unwrap();
    assert!(loaded.config.security.root_keys[0].default);
    assert!(!loaded.config.security.root_keys[1].default);
    assert_eq!(
        warnings(&loaded),
        ["warning: security.root_keys: no root key is marked default; using the first, a"]
    );
}

#[test]
fn postgres_fields_become_a_url_with_encoded_credentials() {
    let loaded = load_yaml(
        "
storage:
  postgres: {host: db.internal, user: arcade, password: '${env:PGPASS}', db: engine, sslmode: require}
",
        &[("PGPASS", "p@ss:w/rd")],
    )
    .unwrap();
    match &loaded.config.storage {
        StorageConfig::Postgres { url } => {
            assert_eq!(
                url.expose(),
                "postgres://arcade:p%40ss%3Aw%2Frd@db.internal:5432/engine?sslmode=require"
            );
        }
        other => panic!("expected postgres, got {other:?}"),
    }

    let loaded = load_yaml(
        "storage:\n  postgres: {url: 'postgres://postgres@127.0.0.1:5432/test'}\n",
        &[],
    )
    .unwrap();
    assert!(
        matches!(&loaded.config.storage, StorageConfig::Postgres { url } if url.expose() == "postgres://postgres@127.0.0.1:5432/test")
    );
}

#[test]
fn a_sqlite_path_is_relative_to_the_config_file() {
    let (dir, path) = workspace("storage:\n  sqlite: {path: data/sb.db}\n");
    let loaded = load(&options(&path, HashMap::new())).unwrap();
    assert_eq!(
        loaded.config.storage,
        StorageConfig::Sqlite {
            path: dir.path().join("data/sb.db")
        }
    );
}

#[test]
fn our_additions_load() {
    let loaded = load_yaml(
        "
api: {public_url: 'https://gw.example.com/', development: true}
tools: {builtin: false}
secrets:
  OPENWEATHER_KEY: ${env:OWK}
",
        &[("OWK", "k-123")],
    )
    .unwrap();
    assert_eq!(loaded.config.api.public_url, "https://gw.example.com");
    assert!(!loaded.config.builtin_toolkit);
    assert_eq!(loaded.config.secrets["OPENWEATHER_KEY"].expose(), "k-123");
}

#[test]
fn every_problem_is_collected_and_printed_one_per_line() {
    let err = load_yaml(
        "
api: {port: abc}
http: {write_timeout: soon}
workers:
  - id: w1
    http: {uri: 'http://localhost:1'}
llm: {}
",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        [
            "warning: llm: not served by Switchboard (no LLM endpoint); section ignored",
            r#"error: api.port: invalid port "abc" (expected 0-65535)"#,
            r#"error: http.write_timeout: invalid duration "soon" (use e.g. 30s, 1m, 200ms or seconds)"#,
            "error: workers[0].http.secret: worker w1 has no secret; set http.secret (dev mode defaults it to `dev`)",
        ]
        .join("\n")
    );
}

#[test]
fn secrets_never_appear_in_problems() {
    let err = load_yaml(
        "
api: {port: 1}
storage:
  postgres: {url: 'mysql://root:hunter2@db/x'}
workers:
  - id: w1
    http: {uri: 'ftp://user:hunter2@host', secret: hunter2}
",
        &[],
    )
    .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn unset_variables_inside_a_disabled_seed_style_worker_are_fine() {
    let loaded = load_yaml(
        "
workers:
  - id: off
    enabled: false
    http: {uri: '${env:NOPE_URI}', secret: '${env:NOPE_SECRET}'}
",
        &[],
    )
    .unwrap();
    assert!(warnings(&loaded).is_empty(), "{:?}", warnings(&loaded));
    let worker = &loaded.config.workers[0];
    assert_eq!(worker.id, "off");
    assert!(!worker.enabled);
    assert!(worker.secret.is_none());
}

#[test]
fn unset_variables_inside_a_disabled_arcade_director_worker_are_fine() {
    let loaded = load_yaml(
        "
tools:
  directors:
    - id: default
      workers:
        - id: off
          enabled: false
          http: {uri: '${env:NOPE_URI}', secret: '${env:NOPE_SECRET}'}
    - id: parked
      enabled: false
      workers:
        - id: under-disabled-director
          http: {uri: '${env:NOPE_URI}', secret: '${env:NOPE_SECRET}'}
",
        &[],
    )
    .unwrap();
    assert!(warnings(&loaded).is_empty(), "{:?}", warnings(&loaded));
    let workers = &loaded.config.workers;
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[0].director.as_deref(), Some("default"));
    assert!(workers.iter().all(|w| !w.enabled), "{workers:?}");
}

#[test]
fn the_same_unset_variables_in_an_enabled_worker_name_the_variable_and_the_key() {
    let lines = problems(load_yaml(
        "
workers:
  - id: on
    http: {uri: '${env:NOPE_URI}', secret: '${env:NOPE_SECRET}'}
",
        &[],
    ));
    assert_eq!(
        lines,
        [
            "error: workers[0].http.uri: environment variable NOPE_URI is not set",
            "error: workers[0].http.secret: environment variable NOPE_SECRET is not set",
        ]
    );

    let lines = problems(load_yaml(
        "
tools:
  directors:
    - id: default
      workers:
        - id: on
          http: {uri: 'http://localhost:8002', secret: '${env:NOPE_SECRET}'}
",
        &[],
    ));
    assert_eq!(
        lines,
        [
            "error: tools.directors[0].workers[0].http.secret: environment variable NOPE_SECRET is not set"
        ]
    );
}

#[test]
fn the_elicitation_timeout_defaults_to_two_minutes_and_reads_a_duration() {
    let defaults = load_yaml("{}\n", &[]).unwrap().config.oauth;
    assert_eq!(defaults.elicitation_timeout, Duration::from_secs(120));
    let set = load_yaml("auth: {elicitation_timeout: 30s}\n", &[]).unwrap();
    assert!(warnings(&set).is_empty(), "{:?}", warnings(&set));
    assert_eq!(
        set.config.oauth.elicitation_timeout,
        Duration::from_secs(30)
    );
    let lines = problems(load_yaml("auth: {elicitation_timeout: 0}\n", &[]));
    assert_has(
        &lines,
        "error: auth.elicitation_timeout: must be greater than zero",
    );
}

#[test]
fn mcp_allowed_hosts_and_origins_are_read_and_empty_by_default() {
    let defaults = load_yaml("{}\n", &[]).unwrap().config.api;
    assert!(defaults.allowed_hosts.is_empty());
    assert!(defaults.allowed_origins.is_empty());
    let set = load_yaml(
        "
api:
  allowed_hosts: [gw.example.com, 'gw.example.com:8443']
  allowed_origins: ['https://app.example.com']
",
        &[],
    )
    .unwrap();
    assert!(warnings(&set).is_empty(), "{:?}", warnings(&set));
    assert_eq!(
        set.config.api.allowed_hosts,
        ["gw.example.com", "gw.example.com:8443"]
    );
    assert_eq!(set.config.api.allowed_origins, ["https://app.example.com"]);
    // A single string is a list of one.
    let one = load_yaml("api: {allowed_hosts: gw.example.com}\n", &[]).unwrap();
    assert_eq!(one.config.api.allowed_hosts, ["gw.example.com"]);
}

#[test]
fn the_connection_and_session_limits_default_and_are_read_with_their_key_paths() {
    let defaults = load_yaml("{}\n", &[]).unwrap().config;
    assert_eq!(defaults.api.max_connections, 4096);
    assert_eq!(defaults.api.mcp_max_sessions, 10_000);
    assert_eq!(defaults.api.mcp_max_sessions_per_user, 100);
    assert_eq!(
        defaults.api.mcp_session_lifetime,
        Duration::from_secs(24 * 3600)
    );
    assert!(defaults.network.allowlist.is_empty());

    let set = load_yaml(
        "api: {max_connections: 64, mcp_max_sessions: 50, mcp_max_sessions_per_user: 5, \
         mcp_session_lifetime: 2h}\n\
         network: {allowlist: [idp.internal, \"*.corp.example\", 10.20.0.0/16, \"::1\"]}\n",
        &[],
    )
    .unwrap();
    assert!(warnings(&set).is_empty(), "{:?}", warnings(&set));
    let api = &set.config.api;
    assert_eq!(
        (
            api.max_connections,
            api.mcp_max_sessions,
            api.mcp_max_sessions_per_user
        ),
        (64, 50, 5)
    );
    assert_eq!(api.mcp_session_lifetime, Duration::from_secs(7200));
    assert_eq!(set.config.network.allowlist.len(), 4);

    let lines = problems(load_yaml(
        "api: {max_connections: 0, mcp_max_sessions_per_user: many, mcp_session_lifetime: 0}\n\
         network: {allowlist: [ok.example, \"10.0.0.0/40\", \"http://x\"], deny: []}\n",
        &[],
    ));
    for path in [
        "api.max_connections",
        "api.mcp_max_sessions_per_user",
        "api.mcp_session_lifetime",
        "network.allowlist[1]",
        "network.allowlist[2]",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("error: ") && l.contains(&format!("{path}:"))),
            "no error at {path} in {lines:?}"
        );
    }
    assert!(
        !lines.iter().any(|l| l.contains("network.allowlist[0]")),
        "{lines:?}"
    );
    let unknown = load_yaml("network: {deny: [x]}\n", &[]).unwrap();
    assert!(
        warnings(&unknown)
            .iter()
            .any(|w| w.contains("network.deny")),
        "{:?}",
        warnings(&unknown)
    );
}
