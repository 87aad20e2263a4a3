//! The HTTP side of the proxy: `CONNECT host:port` (relayed as bytes, TLS
//! untouched) and absolute-form requests (`GET http://host/path`), forwarded
//! in origin form with `Connection: close`, so that every request of a
//! keep-alive client is decided on its own connection.

use std::io::{self, Write};
use std::net::TcpStream;

use super::{Deadline, Failed, Shared, relay, split_host_port};
use crate::netname::{Refusal, Target};

/// The most a request head may take.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

pub(super) fn serve(sh: &Shared, mut client: TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let deadline = Deadline::new();
    let head_len = loop {
        if let Some(i) = find_end(&buf) {
            break i;
        }
        if buf.len() >= MAX_HEAD {
            return answer(&mut client, 431, "request head too large");
        }
        let mut chunk = [0u8; 4096];
        let n = match deadline.read(&client, &mut chunk) {
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock =>
            {
                return answer(&mut client, 408, "the request head did not arrive in time");
            }
            r => r?,
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let (method, path, version) = match req.parse(&buf[..head_len]) {
        Ok(httparse::Status::Complete(_)) => (
            req.method.unwrap_or("").to_string(),
            req.path.unwrap_or("").to_string(),
            req.version.unwrap_or(1),
        ),
        _ => return answer(&mut client, 400, "not an HTTP request"),
    };
    let rest = buf[head_len..].to_vec();
    if method.eq_ignore_ascii_case("CONNECT") {
        let Some((host, port)) = split_host_port(&path, None) else {
            return answer(&mut client, 400, "CONNECT needs host:port");
        };
        let Some(up) = decide(sh, &mut client, &host, port)? else {
            return Ok(());
        };
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        return relay(sh, client, up, &rest);
    }
    // Absolute form only: a proxy is never asked for a path of its own.
    let Some(after) = strip_scheme(&path) else {
        return answer(
            &mut client,
            400,
            "only absolute-form http:// requests and CONNECT are served",
        );
    };
    let (authority, origin) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, "/"),
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let Some((host, port)) = split_host_port(authority, Some(80)) else {
        return answer(&mut client, 400, "bad host in the request");
    };
    let Some(up) = decide(sh, &mut client, &host, port)? else {
        return Ok(());
    };
    let mut out = format!("{method} {origin} HTTP/1.{version}\r\n").into_bytes();
    for h in req.headers.iter() {
        let n = h.name;
        let hop = [
            "proxy-connection",
            "proxy-authorization",
            "connection",
            "keep-alive",
        ];
        if hop.iter().any(|x| n.eq_ignore_ascii_case(x)) {
            continue;
        }
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&rest);
    relay(sh, client, up, &out)
}

/// The name rules, then resolution and the connection; a refusal is answered
/// (403, or 502 for an allowed host that cannot be reached) and recorded.
fn decide(
    sh: &Shared,
    client: &mut TcpStream,
    host: &str,
    port: u16,
) -> io::Result<Option<TcpStream>> {
    let shown = format!("{host}:{port}");
    let target = match Target::parse(host) {
        Ok(t) => t,
        Err(why) => {
            sh.deny(
                "connect",
                shown,
                "HTTP 403",
                Refusal {
                    rule: format!("not a host name: {why}"),
                    suggestion: "none".into(),
                },
            );
            answer(client, 403, "not a host name")?;
            return Ok(None);
        }
    };
    if let Err(r) = sh.check(&target, port) {
        let body = format!("cordon: {target}:{port} refused: {}", r.rule);
        sh.deny("connect", format!("{target}:{port}"), "HTTP 403", r);
        answer(client, 403, &body)?;
        return Ok(None);
    }
    match sh.open(&target, port) {
        Ok(up) => {
            sh.allowed(&target);
            Ok(Some(up))
        }
        Err(Failed::Rule(r)) => {
            let body = format!("cordon: {target}:{port} refused: {}", r.rule);
            sh.deny("connect", format!("{target}:{port}"), "HTTP 403", r);
            answer(client, 403, &body)?;
            Ok(None)
        }
        Err(Failed::Unreachable(r)) => {
            let body = format!("cordon: {target}:{port}: {}", r.rule);
            sh.deny("connect", format!("{target}:{port}"), "HTTP 502", r);
            answer(client, 502, &body)?;
            Ok(None)
        }
    }
}

fn strip_scheme(path: &str) -> Option<&str> {
    let (scheme, rest) = path.split_once("://")?;
    scheme.eq_ignore_ascii_case("http").then_some(rest)
}

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn answer(client: &mut TcpStream, code: u16, body: &str) -> io::Result<()> {
    let reason = match code {
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Bad Gateway",
    };
    // The body names a host the payload chose: no control characters.
    let body: String = body
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let msg = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}\n",
        body.len() + 1
    );
    client.write_all(msg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_absolute_form() {
        assert_eq!(strip_scheme("http://example.com/x"), Some("example.com/x"));
        assert_eq!(strip_scheme("HTTP://example.com"), Some("example.com"));
        assert_eq!(strip_scheme("https://example.com/"), None);
        assert_eq!(strip_scheme("/index.html"), None);
        assert_eq!(find_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), Some(27));
        assert_eq!(find_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
