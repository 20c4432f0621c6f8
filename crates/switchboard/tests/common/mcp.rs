//! Reading MCP replies: a JSON body, or an SSE stream of JSON-RPC messages.

use serde_json::Value;

/// The JSON-RPC message in one SSE event, if it carries one (priming events don't).
pub fn sse_message(event: &str) -> Option<Value> {
    let data: Vec<&str> = event
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    let data = data.join("\n");
    (!data.trim().is_empty()).then(|| serde_json::from_str(&data).unwrap())
}

/// A response's JSON-RPC reply: its JSON body, or, as SSE (which may carry other messages
/// first), its last message; `Null` when there is none.
pub async fn reply_body(res: reqwest::Response) -> Value {
    let sse = res
        .headers()
        .get("content-type")
        .is_some_and(|t| t.to_str().unwrap().starts_with("text/event-stream"));
    let text = res.text().await.unwrap();
    if sse {
        text.split("\n\n")
            .filter_map(sse_message)
            .last()
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// Reads an SSE response one JSON-RPC message at a time.
pub struct Sse {
    res: reqwest::Response,
    buf: String,
}

impl Sse {
    pub fn new(res: reqwest::Response) -> Sse {
        Sse {
            res,
            buf: String::new(),
        }
    }

    pub async fn next(&mut self) -> Value {
        loop {
            if let Some(at) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..at + 2).collect();
                if let Some(message) = sse_message(&frame) {
                    return message;
                }
                continue;
            }
            let chunk = self.res.chunk().await.unwrap().expect("stream ended early");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}
