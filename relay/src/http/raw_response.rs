//! HTTP/1.x response heads written straight to a socket, for the plays the relay serves
//! outside the HTTP server (`flv_direct`): the 200 that starts an FLV body, and any other
//! answer (a placement redirect, 404, 503) as a complete response on a closing connection.

use std::time::SystemTime;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};

/// Most bytes of a non-streaming answer's body the relay collects to write it.
const MAX_ANSWER_BODY: usize = 64 << 10;

/// The head of an HTTP-FLV response: the headers the HTTP server's route sends (content type,
/// no caching, readable from any origin), a chunked body for HTTP/1.1, and a close at the end
/// (the relay serves nothing else on this connection).
pub fn flv_head(http11: bool) -> Bytes {
    let mut h = String::with_capacity(200);
    h.push_str(if http11 {
        "HTTP/1.1 200 OK\r\n"
    } else {
        "HTTP/1.0 200 OK\r\n"
    });
    h.push_str("content-type: video/x-flv\r\ncache-control: no-cache\r\n");
    h.push_str("access-control-allow-origin: *\r\n");
    if http11 {
        h.push_str("transfer-encoding: chunked\r\n");
    }
    h.push_str("connection: close\r\n");
    h.push_str(&format!(
        "date: {}\r\n\r\n",
        httpdate::fmt_http_date(SystemTime::now())
    ));
    Bytes::from(h)
}

/// A whole response (status, its headers, its body) as bytes, with a length and a close; the
/// body is collected first. Answers every client as HTTP/1.1 (as the HTTP server does).
pub async fn complete(response: Response) -> Bytes {
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, MAX_ANSWER_BODY)
        .await
        .unwrap_or_default();
    let mut headers = parts.headers;
    // What the router's layer adds to every answer on the playback port.
    headers
        .entry(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .or_insert(HeaderValue::from_static("*"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    let mut out = BytesMut::with_capacity(256 + body.len());
    let status = parts.status;
    out.put_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    for (name, value) in &headers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(
        format!(
            "date: {}\r\n\r\n",
            httpdate::fmt_http_date(SystemTime::now())
        )
        .as_bytes(),
    );
    out.put_slice(&body);
    out.freeze()
}

/// A request head too large to be a player's.
pub fn head_too_large() -> Response {
    use axum::response::IntoResponse;
    (
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request head too large\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[tokio::test]
    async fn an_answer_keeps_its_status_headers_and_body() {
        let r = (
            StatusCode::FOUND,
            [(header::LOCATION, "http://e1/live/s.flv?placed")],
        )
            .into_response();
        let text = String::from_utf8(complete(r).await.to_vec()).expect("utf-8");
        assert!(text.starts_with("HTTP/1.1 302 Found\r\n"), "{text}");
        assert!(
            text.contains("\r\nlocation: http://e1/live/s.flv?placed\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\naccess-control-allow-origin: *\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\ncontent-length: 0\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");

        let r = (StatusCode::NOT_FOUND, "stream live/x not found\n").into_response();
        let text = String::from_utf8(complete(r).await.to_vec()).expect("utf-8");
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("\r\ncontent-length: 24\r\n"), "{text}");
        assert!(
            text.ends_with("\r\n\r\nstream live/x not found\n"),
            "{text}"
        );
    }

    #[test]
    fn the_flv_head_is_chunked_for_http11_only() {
        let h11 = String::from_utf8(flv_head(true).to_vec()).expect("utf-8");
        assert!(h11.starts_with("HTTP/1.1 200 OK\r\ncontent-type: video/x-flv\r\n"));
        assert!(h11.contains("\r\ntransfer-encoding: chunked\r\n"));
        assert!(h11.ends_with("\r\n\r\n"));
        let h10 = String::from_utf8(flv_head(false).to_vec()).expect("utf-8");
        assert!(h10.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(!h10.contains("transfer-encoding"));
    }
}
