//! A loopback HTTP proxy in front of moto that lets one request through at a time.
//!
//! moto serves requests on parallel threads and checks a conditional write's condition
//! and applies the write as separate steps, so two racing conditional writes on one item
//! can both succeed, which DynamoDB never allows. Tests of racing writers go through this
//! proxy: requests still interleave freely between the writers, but each one is applied
//! whole before the next, as on DynamoDB.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::{Mutex, OnceLock};

/// Held while one request is at moto.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The proxy's endpoint (`http://127.0.0.1:PORT`), started on first use, in front of
/// `upstream` (`127.0.0.1:PORT`).
pub(crate) fn endpoint(upstream: &str) -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let upstream = upstream.clone();
                std::thread::spawn(move || serve(client, &upstream));
            }
        });
        format!("http://127.0.0.1:{port}")
    })
}

/// Forwards the requests of one client connection, each on its own upstream connection.
fn serve(client: TcpStream, upstream: &str) {
    let Ok(mut writer) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(client);
    while let Some(request) = read_request(&mut reader) {
        let response = {
            let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
            forward(&request, upstream)
        };
        let Some(response) = response else {
            return;
        };
        if writer.write_all(&response).is_err() {
            return;
        }
    }
}

/// One request with `Connection: close` (so the answer ends at EOF); `None` at the end of
/// the connection or on anything but a Content-Length body.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            content_length = value.trim().parse().ok()?;
        }
        if lower.starts_with("transfer-encoding:") {
            return None;
        }
        if !lower.starts_with("connection:") {
            head.extend_from_slice(line.as_bytes());
        }
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).ok()?;
    head.extend_from_slice(&body);
    Some(head)
}

/// Sends a request to moto and reads its whole answer.
fn forward(request: &[u8], upstream: &str) -> Option<Vec<u8>> {
    let mut moto = TcpStream::connect(upstream).ok()?;
    moto.write_all(request).ok()?;
    let mut response = Vec::new();
    moto.read_to_end(&mut response).ok()?;
    Some(response)
}
