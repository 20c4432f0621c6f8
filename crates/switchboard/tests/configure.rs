//! `switchboard configure` and `switchboard users token`, run as the real binary with a
//! temporary config, HOME and working directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard::clock::Clock;
use switchboard::identity::{Authenticator, Caller};
use switchboard::store::{SqliteStore, Store};

const BASE: &str = "https://sb.example.com";

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        std::fs::write(
            dir.path().join("engine.yaml"),
            format!(
                "api:\n  public_url: {BASE}\nstorage:\n  sqlite:\n    path: sb.db\n\
                 gateways:\n  - slug: sales\n    tools: [Math.Add]\n  - slug: support\n    toolkits: [Github]\n"
            ),
        )
        .unwrap();
        Self { dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--config")
            .arg(self.dir.path().join("engine.yaml"))
            .args(args)
            .current_dir(self.work())
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("SWITCHBOARD_DATA_DIR", self.dir.path().join("data"))
            .env_remove("SWITCHBOARD_CONFIG")
            .env("RUST_LOG", "off")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Who the bearer token authenticates as, straight from the store.
    async fn caller(&self, authorization: &str) -> Caller {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&self.dir.path().join("sb.db"))
                .await
                .unwrap(),
        );
        Authenticator::new(store, false, Duration::ZERO, Clock::system())
            .authenticate(Some(authorization), None)
            .await
            .unwrap()
    }
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn user_of(caller: &Caller) -> &str {
    caller.bound_user().expect("a user token")
}

#[tokio::test]
async fn vscode_gets_a_workspace_mcp_json_with_an_http_server_and_a_working_token() {
    let sb = Sandbox::new();
    let out = sb.ok(&["configure", "vscode", "--user", "alice"]);
    let path = sb.work().join(".vscode").join("mcp.json");
    assert!(out.contains(&path.display().to_string()), "{out}");
    assert!(out.contains("token"), "{out}");

    let file = read(&path);
    let server = &file["servers"]["switchboard"];
    assert_eq!(server["type"], "http");
    assert_eq!(server["url"], format!("{BASE}/v1/mcps/alice/mcp"));
    let auth = server["headers"]["Authorization"].as_str().unwrap();
    assert!(auth.starts_with("Bearer sbu_"), "{auth}");
    assert_eq!(file.as_object().unwrap().len(), 1);
    // The secret is in the file, not on the terminal.
    assert!(!out.contains(&auth[7..]), "{out}");

    let caller = sb.caller(auth).await;
    assert_eq!(user_of(&caller), "alice");
    assert!(!caller.may_act_for("bob"));
}

#[tokio::test]
async fn cursor_gets_mcp_servers_with_url_and_headers_in_home() {
    let sb = Sandbox::new();
    sb.ok(&["configure", "cursor", "--user", "bob", "--gateway", "sales"]);
    let file = read(&sb.home().join(".cursor").join("mcp.json"));
    let server = &file["mcpServers"]["switchboard-sales"];
    assert_eq!(server["url"], format!("{BASE}/mcp/sales"));
    assert_eq!(server.as_object().unwrap().len(), 2, "{server}");
    let auth = server["headers"]["Authorization"].as_str().unwrap();
    assert_eq!(user_of(&sb.caller(auth).await), "bob");
}

#[tokio::test]
async fn claude_desktop_gets_an_mcp_remote_command_with_the_header_from_the_environment() {
    let sb = Sandbox::new();
    sb.ok(&[
        "configure",
        "claude",
        "--user",
        "carol",
        "--url",
        "http://127.0.0.1:9099/",
    ]);
    let path = if cfg!(target_os = "macos") {
        sb.home()
            .join("Library/Application Support/Claude/claude_desktop_config.json")
    } else {
        sb.home().join(".config/Claude/claude_desktop_config.json")
    };
    let file = read(&path);
    let server = &file["mcpServers"]["switchboard"];
    assert_eq!(server["command"], "npx");
    assert_eq!(
        server["args"],
        json!([
            "-y",
            "mcp-remote",
            "http://127.0.0.1:9099/v1/mcps/carol/mcp",
            "--header",
            "Authorization:${AUTH_HEADER}"
        ])
    );
    let auth = server["env"]["AUTH_HEADER"].as_str().unwrap();
    assert!(auth.starts_with("Bearer sbu_"), "{auth}");
    assert_eq!(user_of(&sb.caller(auth).await), "carol");
}

#[tokio::test]
async fn an_existing_file_keeps_its_other_servers_and_settings_and_is_backed_up() {
    let sb = Sandbox::new();
    let path = sb.dir.path().join("custom").join("cursor.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let before = json!({
        "theme": "dark",
        "mcpServers": {
            "other": {"command": "other-server", "args": ["--x"]},
            "switchboard": {"url": "https://old.example.com"}
        }
    });
    std::fs::write(&path, before.to_string()).unwrap();

    let file = path.to_str().unwrap();
    let out = sb.ok(&["configure", "cursor", "--user", "alice", "--file", file]);
    assert!(out.contains(file), "{out}");

    let after = read(&path);
    assert_eq!(after["theme"], "dark");
    assert_eq!(after["mcpServers"]["other"], before["mcpServers"]["other"]);
    assert_eq!(
        after["mcpServers"]["switchboard"]["url"],
        format!("{BASE}/v1/mcps/alice/mcp")
    );
    assert_eq!(after["mcpServers"].as_object().unwrap().len(), 2);

    let mut backup = path.clone().into_os_string();
    backup.push(".bak");
    assert_eq!(read(Path::new(&backup)), before);
}

#[tokio::test]
async fn a_file_that_is_not_json_is_left_alone_and_no_token_is_minted() {
    let sb = Sandbox::new();
    let path = sb.work().join(".vscode").join("mcp.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text = "{ // a comment\n \"servers\": {} }";
    std::fs::write(&path, text).unwrap();
    let out = sb.run(&["configure", "vscode", "--user", "alice"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not plain JSON"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert!(
        sb.ok(&["users", "token", "list"])
            .contains("No user tokens")
    );
}

#[tokio::test]
async fn print_shows_the_snippet_and_writes_nothing() {
    let sb = Sandbox::new();
    let out = sb.ok(&["configure", "vscode", "--user", "alice", "--print"]);
    let snippet: Value = serde_json::from_str(&out).unwrap();
    let server = &snippet["servers"]["switchboard"];
    assert_eq!(server["url"], format!("{BASE}/v1/mcps/alice/mcp"));
    let auth = server["headers"]["Authorization"].as_str().unwrap();
    assert_eq!(user_of(&sb.caller(auth).await), "alice");
    assert!(!sb.work().join(".vscode").exists());
    assert!(!sb.home().join(".cursor").exists());
}

#[tokio::test]
async fn an_unknown_gateway_exits_1_naming_the_known_slugs() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "configure",
        "cursor",
        "--user",
        "alice",
        "--gateway",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown gateway 'nope'"), "{stderr}");
    assert!(stderr.contains("sales, support"), "{stderr}");
    assert!(!sb.home().join(".cursor").exists());
}

#[tokio::test]
async fn users_token_create_prints_the_token_last_and_list_and_revoke_manage_it() {
    let sb = Sandbox::new();
    let out = sb.ok(&["users", "token", "create", "dave", "--ttl", "30d"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("user token") && lines[0].contains("'dave'"),
        "{out}"
    );
    let token = lines[1];
    assert!(token.starts_with("sbu_") && token.len() == 44, "{token}");
    let Caller::UserToken { token_id, user_id } = sb.caller(token).await else {
        panic!("not a user token");
    };
    assert_eq!(user_id, "dave");

    let list = sb.ok(&["users", "token", "list", "--user", "dave"]);
    assert!(
        list.contains(&token_id) && list.contains("active"),
        "{list}"
    );
    assert!(!list.contains(token), "the list must not show the secret");
    assert!(
        sb.ok(&["users", "token", "list", "--user", "erin"])
            .contains("No user tokens")
    );

    let revoked = sb.ok(&["users", "token", "revoke", &token_id]);
    assert!(revoked.contains(&token_id), "{revoked}");
    assert!(sb.ok(&["users", "token", "list"]).contains("revoked"));
    assert_eq!(
        sb.run(&["users", "token", "revoke", &token_id])
            .status
            .code(),
        Some(1)
    );

    let bad = sb.run(&["users", "token", "create", "dave", "--ttl", "soon"]);
    assert_eq!(bad.status.code(), Some(2), "clap rejects a bad --ttl");
}
