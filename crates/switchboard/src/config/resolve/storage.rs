//! `storage:`: SQLite (the default, at `{data_dir}/switchboard.db`) or PostgreSQL, given
//! as one `url` or as Arcade's separate fields.

use std::path::Path;

use super::default_sqlite_path;
use crate::config::model::{SecretValue, StorageConfig};
use crate::config::reader::{Map, Reader, Unset};

const DEFAULT_POSTGRES_PORT: u16 = 5432;

pub(super) fn storage(r: &mut Reader<'_>, root: &Map<'_>, data_dir: &Path) -> StorageConfig {
    let Some(storage) = r.section(root, "storage") else {
        return StorageConfig::Sqlite {
            path: default_sqlite_path(data_dir),
        };
    };
    r.check_keys(&storage, &["sqlite", "postgres"], &[]);
    let sqlite = r.section(&storage, "sqlite");
    let postgres = r.section(&storage, "postgres");
    let sqlite_path = match &sqlite {
        Some(sqlite) => {
            r.check_keys(sqlite, &["path"], &[]);
            match r.text(sqlite, "path", Unset::Error) {
                Some(path) if !path.is_empty() => r.base_dir().join(path),
                Some(_) => {
                    r.error(sqlite.child("path"), "is empty");
                    default_sqlite_path(data_dir)
                }
                None => default_sqlite_path(data_dir),
            }
        }
        None => default_sqlite_path(data_dir),
    };
    let Some(pg) = postgres else {
        return StorageConfig::Sqlite { path: sqlite_path };
    };
    if sqlite.is_some() {
        r.error(
            storage.path.clone(),
            "set either storage.sqlite or storage.postgres, not both",
        );
    }
    if pg.has("data_path") {
        if pg.keys().any(|k| k != "data_path") {
            r.error(
                pg.child("data_path"),
                "embedded mode (data_path) excludes the other postgres settings",
            );
        }
        r.warn(
            pg.child("data_path"),
            format!(
                "embedded PostgreSQL is not supported; using SQLite at {} instead \
                 (set storage.postgres.url, or host/user/password/db, to use PostgreSQL)",
                sqlite_path.display()
            ),
        );
        return StorageConfig::Sqlite { path: sqlite_path };
    }
    let url = if pg.has("url") {
        if pg.keys().any(|k| k != "url") {
            r.error(
                pg.child("url"),
                "set either url or host/port/user/password/db/sslmode, not both",
            );
        }
        match r.text(&pg, "url", Unset::Error) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => url,
            Some(_) => {
                r.error(
                    pg.child("url"),
                    "must start with postgres:// or postgresql://",
                );
                String::new()
            }
            None => String::new(),
        }
    } else {
        postgres_url_from_fields(r, &pg)
    };
    StorageConfig::Postgres {
        url: SecretValue::new(url),
    }
}

/// `postgres://user:password@host:port/db?sslmode=...` from Arcade's separate fields.
fn postgres_url_from_fields(r: &mut Reader<'_>, pg: &Map<'_>) -> String {
    r.check_keys(
        pg,
        &["host", "port", "user", "password", "db", "sslmode"],
        &[],
    );
    let required = |r: &mut Reader<'_>, key: &str| {
        let value = r.text(pg, key, Unset::Error);
        if value.as_deref().is_some_and(str::is_empty) || (value.is_none() && !pg.has(key)) {
            r.error(
                pg.child(key),
                "required (or set storage.postgres.url instead)",
            );
        }
        value.unwrap_or_default()
    };
    let host = required(r, "host");
    let user = required(r, "user");
    let db = required(r, "db");
    let password = r.text(pg, "password", Unset::Error).unwrap_or_default();
    let port = r.port(pg, "port", DEFAULT_POSTGRES_PORT);
    let sslmode = r
        .text(pg, "sslmode", Unset::UseDefault)
        .filter(|s| !s.is_empty());
    const SSL_MODES: [&str; 6] = [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ];
    if let Some(mode) = &sslmode
        && !SSL_MODES.contains(&mode.as_str())
    {
        r.error(
            pg.child("sslmode"),
            format!(
                "invalid sslmode {mode:?} (use one of {})",
                SSL_MODES.join(", ")
            ),
        );
    }

    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let credentials = if password.is_empty() {
        percent_encode(&user)
    } else {
        format!("{}:{}", percent_encode(&user), percent_encode(&password))
    };
    let mut url = format!(
        "postgres://{credentials}@{host}:{port}/{}",
        percent_encode(&db)
    );
    if let Some(mode) = sslmode {
        url.push_str("?sslmode=");
        url.push_str(&mode);
    }
    url
}

/// Encodes everything but RFC 3986 unreserved characters, so a password with `@`, `/` or
/// `:` survives inside a URL.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_are_percent_encoded() {
        assert_eq!(percent_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
        assert_eq!(percent_encode("plain-user_1.x~"), "plain-user_1.x~");
    }
}
