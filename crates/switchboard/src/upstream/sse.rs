//! Reading one reply from an upstream: a JSON body or an SSE stream, never more than the
//! cap in memory, and the JSON-RPC response whose id is ours.

use serde_json::Value;

use super::UpstreamError;

/// How the upstream answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyKind {
    Json,
    EventStream,
}

impl BodyKind {
    /// From the `Content-Type`; anything else is the upstream's mistake.
    pub(super) fn of(content_type: Option<&str>) -> Option<BodyKind> {
        let media = content_type?
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json" => Some(BodyKind::Json),
            "text/event-stream" => Some(BodyKind::EventStream),
            _ => None,
        }
    }
}

/// Reads `response` until the JSON-RPC response with `id` arrives, counting every byte
/// against `cap`. On an event stream, notifications and the server's own requests
/// (progress, logging, elicitation, sampling) are skipped: this slice relays none of them.
pub(super) async fn read_reply(
    mut response: reqwest::Response,
    kind: BodyKind,
    id: u64,
    cap: usize,
) -> Result<Value, UpstreamError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(UpstreamError::TooLarge);
    }
    let mut read = 0usize;
    match kind {
        BodyKind::Json => {
            let mut body = Vec::new();
            while let Some(chunk) = next_chunk(&mut response).await? {
                read += chunk.len();
                if read > cap {
                    return Err(UpstreamError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            let message: Value = serde_json::from_slice(&body)
                .map_err(|_| UpstreamError::Protocol("the reply is not JSON".into()))?;
            if is_reply_to(&message, id) {
                Ok(message)
            } else {
                Err(UpstreamError::Protocol(
                    "the reply is not the response to the request".into(),
                ))
            }
        }
        BodyKind::EventStream => {
            let mut parser = SseParser::default();
            while let Some(chunk) = next_chunk(&mut response).await? {
                read += chunk.len();
                if read > cap {
                    return Err(UpstreamError::TooLarge);
                }
                for data in parser.feed(&chunk)? {
                    // Other events (priming, keep-alive) carry no message.
                    let Ok(message) = serde_json::from_str::<Value>(&data) else {
                        return Err(UpstreamError::Protocol(
                            "an event of the reply stream is not JSON".into(),
                        ));
                    };
                    if is_reply_to(&message, id) {
                        return Ok(message);
                    }
                }
            }
            Err(UpstreamError::Protocol(
                "the reply stream ended without a response".into(),
            ))
        }
    }
}

async fn next_chunk(
    response: &mut reqwest::Response,
) -> Result<Option<bytes::Bytes>, UpstreamError> {
    response.chunk().await.map_err(|e| {
        if e.is_timeout() {
            UpstreamError::Timeout
        } else {
            UpstreamError::Protocol("the reply was cut off".into())
        }
    })
}

/// A response (not a request or notification of the server's own) to our `id`.
fn is_reply_to(message: &Value, id: u64) -> bool {
    message.get("id").and_then(Value::as_u64) == Some(id)
        && message.get("method").is_none()
        && (message.get("result").is_some() || message.get("error").is_some())
}

/// An incremental `text/event-stream` parser: yields the data of each `message` event.
/// Lines end in `\n` or `\r\n` (a lone `\r`, legal but unseen in MCP servers, is not split).
#[derive(Default)]
pub(super) struct SseParser {
    line: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, UpstreamError> {
        let mut out = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8(line)
                .map_err(|_| UpstreamError::Protocol("the reply stream is not UTF-8".into()))?;
            if line.is_empty() {
                let event = self.event.take();
                if let Some(data) = self.data.take()
                    && event.as_deref().is_none_or(|e| e == "message")
                    && !data.trim().is_empty()
                {
                    out.push(data);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            match field {
                "event" => self.event = Some(value.to_owned()),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_joined_and_other_events_skipped() {
        let mut p = SseParser::default();
        assert!(
            p.feed(b"id: 1\r\ndata:\r\n\r\n: ping\n")
                .unwrap()
                .is_empty()
        );
        assert!(p.feed(b"event: other\ndata: {}\n\nda").unwrap().is_empty());
        let out = p.feed(b"ta: {\"a\":\ndata: 1}\n\n").unwrap();
        assert_eq!(out, vec!["{\"a\":\n1}".to_owned()]);
    }

    #[test]
    fn content_types_with_parameters_are_recognised() {
        assert_eq!(
            BodyKind::of(Some("application/json; charset=utf-8")),
            Some(BodyKind::Json)
        );
        assert_eq!(
            BodyKind::of(Some("Text/Event-Stream")),
            Some(BodyKind::EventStream)
        );
        assert_eq!(BodyKind::of(Some("text/html")), None);
        assert_eq!(BodyKind::of(None), None);
    }
}
