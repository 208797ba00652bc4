//! The browser code nudge serves: the in-app inbox widget (`/v1/sdk/inbox.js`, from the
//! repository's `web/inbox/`), embedded in the binary.

use std::sync::LazyLock;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use super::reply::Reply;

/// The widget's source.
const INBOX_JS: &str = include_str!("../../../../web/inbox/inbox.js");

/// Its entity tag (the bytes never change within one build).
static INBOX_JS_ETAG: LazyLock<String> = LazyLock::new(|| {
    format!(
        "\"{:016x}\"",
        xxhash_rust::xxh3::xxh3_64(INBOX_JS.as_bytes())
    )
});

/// `GET /v1/sdk/inbox.js`.
pub(super) fn inbox_js() -> Reply {
    let mut r = Response::new(Bytes::from_static(INBOX_JS.as_bytes()));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    // The path is versioned (`/v1/`): an hour of caching, then revalidation by tag.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    if let Ok(tag) = HeaderValue::from_str(&INBOX_JS_ETAG) {
        h.insert(header::ETAG, tag);
    }
    r
}
