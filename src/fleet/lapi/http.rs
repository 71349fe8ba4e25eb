//! A small HTTP/1.1 client: what the LAPI needs and no more. One request per connection
//! (`Connection: close`; a poll a second to a LAPI on the LAN costs one handshake), a timeout on
//! connect, each read and each write, `Content-Length`, chunked and read-to-close bodies, a
//! bound on the header and body sizes, no redirects (a 3xx is an answer like any other status).
//! Malformed answers are errors, never panics.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// Largest header block read.
const MAX_HEADER: usize = 16 * 1024;

/// What one read from the connection asks for when a small read found nothing buffered.
const REFILL: usize = 8192;

/// An `http://` URL: where to connect, what to say in `Host`, and the path prefix requests go
/// under (`http://192.0.2.1:8080/` and `http://192.0.2.1:8080` both have an empty prefix). The
/// host is an address: no DNS lookup (musl's resolver would cost about 25 KB of the static
/// binary, and the ban-sharing path would then depend on DNS).
#[derive(Debug, Clone)]
pub struct Url {
    pub host: IpAddr,
    pub port: u16,
    pub prefix: String,
    /// `https://` (builds with the `tls` feature only).
    pub https: bool,
    /// The CA to check an https server against (`lapi-ca`); see `with_tls`.
    #[cfg(feature = "tls")]
    pub tls: Option<super::tls::Tls>,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, Error> {
        let bad = |why: &str| Error::Url(format!("`{text}`: {why}"));
        let (rest, https) = if let Some(r) = text.strip_prefix("http://") {
            (r, false)
        } else if let Some(r) = text.strip_prefix("https://") {
            if !cfg!(feature = "tls") {
                return Err(bad("https needs a build with the `tls` feature"));
            }
            (r, true)
        } else {
            return Err(bad("not an http:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("user information in the URL is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("junk after ]")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let host: IpAddr = host
            .parse()
            .map_err(|_| bad("the host must be an IP address (no DNS lookups)"))?;
        let port = match port {
            Some(p) => p
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))?,
            None if https => 443,
            None => 80,
        };
        if path.contains(|c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#') {
            return Err(bad("the path may not hold spaces, ? or #"));
        }
        Ok(Url {
            host,
            port,
            prefix: path.trim_end_matches('/').to_string(),
            https,
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// The `Host` header's value.
    fn host_header(&self) -> String {
        let host = match self.host {
            IpAddr::V6(a) => format!("[{a}]"),
            IpAddr::V4(a) => a.to_string(),
        };
        if self.port == if self.https { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.prefix)
    }
}

#[derive(Debug)]
pub enum Error {
    Url(String),
    Io(io::Error),
    /// The peer's bytes are not an HTTP/1.x answer we accept.
    Malformed(&'static str),
    /// The answer's header or body is past its bound.
    TooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Url(e) => write!(f, "URL {e}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Malformed(why) => write!(f, "malformed HTTP answer: {why}"),
            Error::TooLarge => write!(f, "HTTP answer too large"),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// One request. `path` starts with `/` and is appended to the URL's prefix.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Extra headers (`Authorization`, `X-Api-Key`); never logged.
    pub headers: &'a [(&'a str, &'a str)],
    /// A JSON body, if any.
    pub body: Option<&'a [u8]>,
    /// Largest body accepted in the answer.
    pub max_body: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Connects, sends `req`, reads the whole answer.
pub fn send(url: &Url, req: &Request, timeout: Duration) -> Result<Response, Error> {
    send_with(url, req, timeout, |status, body| {
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes)?;
        Ok(Response {
            status,
            body: bytes,
        })
    })
}

/// Connects, sends `req`, reads the answer's header and hands its status and body, read as it
/// arrives (within `req.max_body`), to `consume`: a large answer is never held whole.
pub fn send_with<T>(
    url: &Url,
    req: &Request,
    timeout: Duration,
    consume: impl FnOnce(u16, &mut dyn Read) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::new(url.host, url.port), timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.set_nodelay(true)?;
    #[cfg(feature = "tls")]
    if url.https {
        let tls = url
            .tls
            .as_ref()
            .ok_or_else(|| Error::Url(format!("{url}: https needs lapi-ca")))?;
        let mut s = tls.wrap(url.host, s)?;
        write_request(&mut s, url, req)?;
        return read_with(&mut s, req.max_body, consume);
    }
    write_request(&mut s, url, req)?;
    read_with(&mut s, req.max_body, consume)
}

fn write_request(w: &mut impl Write, url: &Url, req: &Request) -> io::Result<()> {
    let mut head = format!(
        "{} {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: scanban/{}\r\nAccept: application/json\r\nConnection: close\r\n",
        req.method,
        url.prefix,
        req.path,
        url.host_header(),
        env!("CARGO_PKG_VERSION"),
    );
    for (k, v) in req.headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    if let Some(body) = req.body {
        head.push_str("Content-Type: application/json\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if let Some(body) = req.body {
        bytes.extend_from_slice(body);
    }
    w.write_all(&bytes)?;
    w.flush()
}

/// Reads one answer from `r` (a connection the peer closes after it), within the bounds.
#[cfg(test)]
pub fn read_response(r: &mut impl Read, max_body: usize) -> Result<Response, Error> {
    read_with(r, max_body, |status, body| {
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes)?;
        Ok(Response {
            status,
            body: bytes,
        })
    })
}

/// Reads the header from `r`, then gives `consume` the status and the body. An error the body
/// met (malformed framing, past its bound) is returned as itself, whatever `consume` made of
/// the `io::Error` it saw.
pub fn read_with<R: Read, T>(
    r: &mut R,
    max_body: usize,
    consume: impl FnOnce(u16, &mut dyn Read) -> Result<T, Error>,
) -> Result<T, Error> {
    let (status, mut body) = read_head(r, max_body)?;
    let out = consume(status, &mut body);
    match body.failed.take() {
        Some(e) if out.is_err() => Err(e),
        _ => out,
    }
}

/// The status line and headers; the body's framing.
fn read_head<R: Read>(r: &mut R, max_body: usize) -> Result<(u16, Body<'_, R>), Error> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEADER {
            return Err(Error::TooLarge);
        }
        let n = r.read(&mut chunk)?;
        if n == 0 {
            return Err(Error::Malformed("connection closed inside the header"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEADER {
        return Err(Error::TooLarge);
    }
    let head =
        std::str::from_utf8(&buf[..head_end]).map_err(|_| Error::Malformed("header not text"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(Error::Malformed("not HTTP/1.x"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or(Error::Malformed("bad status code"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(Error::Malformed("header line without colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| Error::Malformed("bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::Malformed("conflicting Content-Length"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(Error::Malformed("unsupported Transfer-Encoding"));
            }
            chunked = true;
        }
    }
    let framing = if chunked {
        Framing::Chunked {
            left: 0,
            after_data: false,
            done: false,
        }
    } else if let Some(n) = length {
        if n > max_body {
            return Err(Error::TooLarge);
        }
        Framing::Length(n)
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Length(0)
    } else {
        Framing::Close
    };
    let rest = Rest {
        buf: buf.split_off(head_end + 4),
        at: 0,
        r,
    };
    Ok((
        status,
        Body {
            rest,
            framing,
            max: max_body,
            read: 0,
            failed: None,
        },
    ))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The bytes after the header: what was already read, then the connection.
struct Rest<'a, R: Read + ?Sized> {
    buf: Vec<u8>,
    at: usize,
    r: &'a mut R,
}

impl<R: Read + ?Sized> Rest<'_, R> {
    /// Up to `out.len()` bytes; 0 at the end of the connection. Small reads (a chunk's size
    /// line, byte by byte) go through `buf`, not one system call a byte.
    fn some(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        if self.at == self.buf.len() {
            if out.len() >= REFILL {
                return Ok(self.r.read(out)?);
            }
            self.buf.resize(REFILL, 0);
            self.at = 0;
            let n = match self.r.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) => {
                    self.buf.clear();
                    return Err(e.into());
                }
            };
            self.buf.truncate(n);
            if n == 0 {
                return Ok(0);
            }
        }
        let n = (self.buf.len() - self.at).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        let mut b = [0u8; 1];
        if self.some(&mut b)? == 0 {
            return Err(Error::Malformed("connection closed inside the body"));
        }
        Ok(b[0])
    }

    /// One line ending in CRLF, without it, at most 1 KiB.
    fn line(&mut self) -> Result<String, Error> {
        let mut line = Vec::new();
        loop {
            let b = self.byte()?;
            if b == b'\n' {
                if line.last() != Some(&b'\r') {
                    return Err(Error::Malformed("bare LF in chunked body"));
                }
                line.pop();
                return String::from_utf8(line).map_err(|_| Error::Malformed("chunk line"));
            }
            if line.len() >= 1024 {
                return Err(Error::Malformed("chunk line too long"));
            }
            line.push(b);
        }
    }
}

/// How the body's end is told.
enum Framing {
    /// `Content-Length`: the bytes still to come.
    Length(usize),
    /// `Transfer-Encoding: chunked`: what is left of the current chunk; whether its data was
    /// read (its CRLF comes next); whether the last chunk was read.
    Chunked {
        left: usize,
        after_data: bool,
        done: bool,
    },
    /// Read to the end of the connection.
    Close,
}

/// An answer's body, read as it arrives: `Content-Length`, chunked or to the close of the
/// connection, at most `max` bytes. A framing error or a body past its bound is an
/// `io::Error` to the reader, kept as the `Error` it is for `read_with`.
struct Body<'a, R: Read + ?Sized> {
    rest: Rest<'a, R>,
    framing: Framing,
    max: usize,
    /// Body bytes handed out so far.
    read: usize,
    failed: Option<Error>,
}

impl<R: Read + ?Sized> Body<'_, R> {
    fn next(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        if out.is_empty() {
            return Ok(0);
        }
        let n = match &mut self.framing {
            Framing::Length(0) => return Ok(0),
            Framing::Length(left) => {
                let want = (*left).min(out.len());
                let n = self.rest.some(&mut out[..want])?;
                if n == 0 {
                    return Err(Error::Malformed("connection closed inside the body"));
                }
                *left -= n;
                n
            }
            Framing::Close => {
                let n = self.rest.some(out)?;
                if self.read + n > self.max {
                    return Err(Error::TooLarge);
                }
                n
            }
            Framing::Chunked {
                left,
                after_data,
                done,
            } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    if *after_data && !self.rest.line()?.is_empty() {
                        return Err(Error::Malformed("chunk longer than its size"));
                    }
                    let line = self.rest.line()?;
                    let size_text = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(size_text, 16)
                        .map_err(|_| Error::Malformed("bad chunk size"))?;
                    if size == 0 {
                        // Trailers, if any, end with an empty line.
                        while !self.rest.line()?.is_empty() {}
                        *done = true;
                        return Ok(0);
                    }
                    if size > self.max.saturating_sub(self.read) {
                        return Err(Error::TooLarge);
                    }
                    *left = size;
                    *after_data = true;
                }
                let want = (*left).min(out.len());
                let n = self.rest.some(&mut out[..want])?;
                if n == 0 {
                    return Err(Error::Malformed("connection closed inside the body"));
                }
                *left -= n;
                n
            }
        };
        self.read += n;
        Ok(n)
    }
}

impl<R: Read + ?Sized> Read for Body<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.next(out).map_err(|e| {
            let io = match &e {
                Error::Io(io) => io::Error::new(io.kind(), io.to_string()),
                other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
            };
            self.failed = Some(e);
            io
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/lapi/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A reader that hands out at most `step` bytes a call, as a slow connection does.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read_all(bytes: &[u8], step: usize, max: usize) -> Result<Response, Error> {
        read_response(&mut Trickle { data: bytes, step }, max)
    }

    #[test]
    fn content_length_answers() {
        for step in [1, 7, 8192] {
            let r = read_all(&fixture("login-401.http"), step, 1 << 20).unwrap();
            assert_eq!(r.status, 401);
            assert_eq!(
                r.body,
                br#"{"code":401,"message":"incorrect Username or Password"}"#
            );
        }
        let r = read_all(&fixture("alerts-201.http"), 3, 1 << 20).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"[\"8\",\"9\"]"[..]));
    }

    #[test]
    fn chunked_answer_is_joined() {
        let raw = fixture("stream-startup-chunked.http");
        for step in [1, 100, 8192] {
            let r = read_all(&raw, step, 1 << 20).unwrap();
            assert_eq!(r.status, 200);
            assert!(r.body.starts_with(b"{\"deleted\":null,\"new\":[{"));
            assert!(r.body.ends_with(b"}]}"));
            assert!(super::super::json::parse(&r.body).is_ok());
        }
    }

    #[test]
    fn bodies_past_the_bound_are_refused() {
        let raw = fixture("stream-startup-chunked.http");
        assert!(matches!(read_all(&raw, 8192, 1000), Err(Error::TooLarge)));
        let raw = fixture("login-200.http");
        assert!(matches!(read_all(&raw, 8192, 100), Err(Error::TooLarge)));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for name in [
            "login-200.http",
            "stream-delta.http",
            "stream-startup-chunked.http",
        ] {
            let raw = fixture(name);
            let whole = read_all(&raw, 8192, 1 << 20).unwrap();
            let step = if raw.len() > 5000 { 97 } else { 1 };
            for n in (0..raw.len()).step_by(step) {
                match read_all(&raw[..n], 8192, 1 << 20) {
                    Err(_) => {}
                    Ok(r) => panic!(
                        "{name} cut at {n} read as {} ({:?})",
                        r.status, whole.status
                    ),
                }
            }
        }
    }

    #[test]
    fn malformed_headers_are_errors() {
        for bad in [
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        ] {
            assert!(
                read_all(bad, 8192, 1 << 20).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let huge = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; 20_000]].concat();
        assert!(matches!(
            read_all(&huge, 8192, 1 << 20),
            Err(Error::TooLarge)
        ));
    }

    #[test]
    fn urls() {
        let u = Url::parse("http://198.51.100.10:8080").unwrap();
        assert_eq!(
            (u.host.to_string().as_str(), u.port, u.prefix.as_str()),
            ("198.51.100.10", 8080, "")
        );
        assert_eq!(u.host_header(), "198.51.100.10:8080");
        let u = Url::parse("http://[2001:db8::1]:8080/lapi/").unwrap();
        assert_eq!(
            (u.host.to_string().as_str(), u.port, u.prefix.as_str()),
            ("2001:db8::1", 8080, "/lapi")
        );
        assert_eq!(u.to_string(), "http://[2001:db8::1]:8080/lapi");
        assert_eq!(Url::parse("http://192.0.2.1").unwrap().port, 80);
        for bad in [
            "ftp://x",
            "http://",
            "http://:80",
            "http://x:0",
            "http://x:99999",
            "http://u:p@x",
            "http://[::1",
            "http://lapi.example:8080",
            "http://x/a b",
            "http://x/?q",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_bytes() {
        let url = Url::parse("http://192.0.2.1:8080/").unwrap();
        let mut out = Vec::new();
        let req = Request {
            method: "POST",
            path: "/v1/watchers/login",
            headers: &[],
            body: Some(b"{}"),
            max_body: 1,
        };
        write_request(&mut out, &url, &req).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("POST /v1/watchers/login HTTP/1.1\r\nHost: 192.0.2.1:8080\r\n"));
        // The LAPI refuses a login without a User-Agent (fixtures/lapi/README.md).
        assert!(text.contains("\r\nUser-Agent: scanban/"));
        assert!(text.ends_with("Content-Length: 2\r\n\r\n{}"));
    }
}
