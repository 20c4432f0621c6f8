//! What a user id may be. One id names one user everywhere (REST, MCP path and header,
//! user tokens, admin routes, CLI): ids are compared as exact bytes and never normalised,
//! so an id that could look like another one ("dave " beside "dave") is refused at every
//! entry point instead of being trimmed at some.
//! Must not: rewrite an id; it only accepts or refuses.

use std::fmt;

/// The longest user id, in bytes.
pub const MAX_USER_ID_BYTES: usize = 256;

/// How much of a refused id its error message shows, in characters.
const SHOWN_CHARS: usize = 40;

/// Why a user id was refused. The message shows the id escaped and cut short, so a
/// hostile id can't forge log lines or flood a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid user_id {shown}: {reason}")]
pub struct InvalidUserId {
    shown: Shown,
    pub reason: Reason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("it is empty")]
    Empty,
    #[error("it is longer than {MAX_USER_ID_BYTES} bytes")]
    TooLong,
    #[error("it contains a control character")]
    Control,
    #[error("it has leading or trailing whitespace")]
    SurroundingWhitespace,
}

/// The refused id as `{:?}` prints it, truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown(String);

impl Shown {
    fn of(id: &str) -> Self {
        match id.char_indices().nth(SHOWN_CHARS) {
            None => Shown(format!("{id:?}")),
            Some((cut, _)) => Shown(format!("{:?}…", &id[..cut])),
        }
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Accepts `id` as it is, or refuses it: empty, longer than [`MAX_USER_ID_BYTES`], holding
/// a control character (`\0`, `\t`, `\n`, DEL, C1…), or starting or ending with Unicode
/// whitespace.
pub fn check(id: &str) -> Result<&str, InvalidUserId> {
    let reason = if id.is_empty() {
        Reason::Empty
    } else if id.len() > MAX_USER_ID_BYTES {
        Reason::TooLong
    } else if id.chars().any(char::is_control) {
        Reason::Control
    } else if id.starts_with(char::is_whitespace) || id.ends_with(char::is_whitespace) {
        Reason::SurroundingWhitespace
    } else {
        return Ok(id);
    };
    Err(InvalidUserId {
        shown: Shown::of(id),
        reason,
    })
}

/// [`check`] for clap's `value_parser`: the CLI refuses what the API refuses.
pub fn parse(id: &str) -> Result<String, InvalidUserId> {
    check(id).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(id: &str) -> Option<Reason> {
        check(id).err().map(|e| e.reason)
    }

    #[test]
    fn ordinary_ids_pass_unchanged_byte_for_byte() {
        for id in [
            "alice",
            "zoë",
            "alice smith",
            "alice@example.com",
            "用户",
            &"a".repeat(MAX_USER_ID_BYTES),
        ] {
            assert_eq!(check(id), Ok(id), "{id:?}");
        }
        // 128 two-byte characters: exactly the limit.
        assert!(check(&"ë".repeat(128)).is_ok());
    }

    #[test]
    fn empty_long_control_and_surrounding_whitespace_ids_are_refused() {
        assert_eq!(reason(""), Some(Reason::Empty));
        assert_eq!(
            reason(&"a".repeat(MAX_USER_ID_BYTES + 1)),
            Some(Reason::TooLong)
        );
        assert_eq!(reason(&"ë".repeat(129)), Some(Reason::TooLong));
        for id in [
            "al\nice",
            "alice\0",
            "\talice",
            "al\rice",
            "al\u{7f}ice",
            "al\u{85}ice",
        ] {
            assert_eq!(reason(id), Some(Reason::Control), "{id:?}");
        }
        for id in [
            " alice",
            "alice ",
            " ",
            "alice\u{a0}",
            "\u{2003}alice",
            "alice\u{3000}",
        ] {
            assert_eq!(reason(id), Some(Reason::SurroundingWhitespace), "{id:?}");
        }
    }

    #[test]
    fn the_message_escapes_and_truncates_the_id() {
        let e = check("dave ").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid user_id \"dave \": it has leading or trailing whitespace"
        );
        let e = check("a\nb").unwrap_err();
        assert!(e.to_string().contains(r#""a\nb""#), "{e}");
        assert!(!e.to_string().contains('\n'));
        let long = format!("{}\n", "x".repeat(1000));
        let message = check(&long).unwrap_err().to_string();
        assert!(message.len() < 120, "{message}");
        assert!(message.contains('…'));
    }
}
