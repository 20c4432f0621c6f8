//! The few HTML pages a browser sees during a flow: connected, failed, expired. Plain,
//! self-contained, every dynamic part escaped.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

pub fn render(status: u16, title: &str, message: &str) -> Response {
    let title = html_escape::encode_text(title);
    let message = html_escape::encode_text(message);
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · Switchboard</title><style>body{{font-family:system-ui,sans-serif;background:#f6f7f9;color:#1d2330;display:flex;min-height:100vh;align-items:center;justify-content:center;margin:0}}\
main{{background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:2rem 2.5rem;max-width:32rem}}h1{{font-size:1.3rem;margin-top:0}}p{{line-height:1.5}}</style></head>\
<body><main><h1>{title}</h1><p>{message}</p></main></body></html>"
    );
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut res = (status, Html(body)).into_response();
    // The page may follow a URL that carried a code: keep it out of caches and referrers.
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res.headers_mut().insert(
        axum::http::header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("no-referrer"),
    );
    res
}
