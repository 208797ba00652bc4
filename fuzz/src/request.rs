//! A fuzz input as an HTTP request. The first byte holds flags; the rest is the request as it
//! comes over the wire (request line, headers, a blank line, then the body to the end of the
//! input: no `Content-Length` needed), split by httparse as `nudge serve`'s server (hyper)
//! splits it, and refused where hyper would refuse it (a method, target or header that `http`
//! does not take).

use std::io::Write;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request};

/// Flag: gzip the body here and send it with `Content-Encoding: gzip` (unless the request
/// names an encoding itself), so that the fuzzer reaches what a gzip body holds without
/// writing gzip; malformed gzip comes from inputs that name the encoding themselves.
pub const GZIP_BODY: u8 = 1;

/// Most headers a request may have (hyper's default is 100).
const MAX_HEADERS: usize = 100;

/// The request an input stands for, if it is one.
pub fn parse(data: &[u8]) -> Option<Request<Bytes>> {
    let (&flags, wire) = data.split_first()?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head) = parsed.parse(wire).ok()? else {
        return None;
    };
    let mut builder = Request::builder().method(parsed.method?).uri(parsed.path?);
    let mut encoding = false;
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        encoding |= name == header::CONTENT_ENCODING;
        builder = builder.header(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    let mut body = wire[head..].to_vec();
    if flags & GZIP_BODY != 0 && !encoding {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).ok()?;
        body = gz.finish().ok()?;
        builder = builder.header(header::CONTENT_ENCODING, "gzip");
    }
    builder.body(Bytes::from(body)).ok()
}
