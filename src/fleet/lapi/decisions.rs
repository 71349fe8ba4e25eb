//! One answer of `GET /v1/decisions/stream` read into a `fleet::Delta`: `ban` decisions with
//! scope `Ip` or `Range` only; the rest (captcha, throttle, other scopes) counted and skipped.
//! Durations are Go's `time.Duration` text (`3h59m56.5s`, `-29.06ms` for an expired one).
//!
//! The answer is read as it arrives, one decision at a time: a startup answer of 100,000
//! decisions is about 15 MB of JSON, and as one value tree several times that, where the
//! decisions themselves take a few MB. Only the top level (`{"new": [...], "deleted": [...]}`)
//! is walked here; each entry's bytes (at most `MAX_ENTRY`) are read by `json::parse`, checked
//! whole, turned into a `Decision` and dropped.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use detector::inet::{mask_v6, prefix_mask_v4};

use super::json::{self, Value};
use crate::fleet::{Decision, Delta, Target};

/// Largest entry (one decision, or a member other than `new` and `deleted`) read; the LAPI's
/// are about 200 bytes.
pub const MAX_ENTRY: usize = 64 * 1024;

/// A stream answer read: the delta and how many entries were skipped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Read {
    pub delta: Delta,
    /// Entries that are not bans of scope Ip or Range (captcha, Country, AS, ...).
    pub skipped: u64,
    /// Entries whose fields did not parse (an address that is not one, say).
    pub invalid: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Json(json::Error),
    /// The JSON is not of the stream's shape.
    Shape(&'static str),
    /// Reading the answer failed (the connection, the HTTP framing, the size bound).
    Read(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Json(e) => write!(f, "decision stream: {e}"),
            Error::Shape(why) => write!(f, "decision stream: {why}"),
            Error::Read(e) => write!(f, "decision stream: {e}"),
        }
    }
}

/// Reads one stream answer's body, held whole (the tests' fixtures).
#[cfg(test)]
pub fn parse_stream(body: &[u8]) -> Result<Read, Error> {
    read_stream(body)
}

/// Reads one stream answer's body from `r` as it arrives.
pub fn read_stream(r: impl io::Read) -> Result<Read, Error> {
    let mut s = Scanner {
        r,
        buf: vec![0; 16 * 1024],
        at: 0,
        len: 0,
        offset: 0,
    };
    let mut out = Read::default();
    let mut names = Names::default();
    let mut entry = Vec::new();
    s.ws()?;
    match s.peek()? {
        Some(b'{') => s.bump(),
        Some(_) => return Err(Error::Shape("not an object")),
        None => return s.fail("unexpected end"),
    }
    s.ws()?;
    if s.peek()? == Some(b'}') {
        s.bump();
    } else {
        let (mut seen_new, mut seen_deleted) = (false, false);
        loop {
            s.ws()?;
            if s.peek()? != Some(b'"') {
                return s.fail("expected a member name");
            }
            let key = s.parse_value(&mut entry)?;
            s.ws()?;
            if s.next()? != Some(b':') {
                return s.fail("expected :");
            }
            s.ws()?;
            // The first member of each name counts, as in a value tree's lookup.
            let into_new = match key.as_str() {
                Some("new") if !seen_new => Some(true),
                Some("deleted") if !seen_deleted => Some(false),
                _ => None,
            };
            match into_new {
                Some(true) => seen_new = true,
                Some(false) => seen_deleted = true,
                None => {}
            }
            match (into_new, s.peek()?) {
                (Some(into_new), Some(b'[')) => {
                    s.bump();
                    s.ws()?;
                    if s.peek()? == Some(b']') {
                        s.bump();
                    } else {
                        loop {
                            s.ws()?;
                            let item = s.parse_value(&mut entry)?;
                            match decision(&item, &mut names) {
                                Entry::Ban(d) if into_new => out.delta.new.push(d),
                                Entry::Ban(d) => out.delta.deleted.push(d),
                                Entry::Skipped => out.skipped += 1,
                                Entry::Invalid => out.invalid += 1,
                            }
                            s.ws()?;
                            match s.next()? {
                                Some(b',') => {}
                                Some(b']') => break,
                                _ => return s.fail("expected , or ]"),
                            }
                        }
                    }
                }
                (into, _) => {
                    // `null` reads as no entries (the LAPI writes `"new":null`).
                    let v = s.parse_value(&mut entry)?;
                    if into.is_some() && v != Value::Null {
                        return Err(Error::Shape("new/deleted is not a list"));
                    }
                }
            }
            s.ws()?;
            match s.next()? {
                Some(b',') => {}
                Some(b'}') => break,
                _ => return s.fail("expected , or }"),
            }
        }
    }
    s.ws()?;
    if s.peek()?.is_some() {
        return s.fail("text after the value");
    }
    out.delta.new.shrink_to_fit();
    Ok(out)
}

/// The answer's bytes, read through a small buffer.
struct Scanner<R> {
    r: R,
    buf: Vec<u8>,
    at: usize,
    len: usize,
    /// Bytes consumed before `buf[at]`, for error offsets.
    offset: usize,
}

impl<R: io::Read> Scanner<R> {
    fn fail<T>(&self, problem: &'static str) -> Result<T, Error> {
        Err(Error::Json(json::Error {
            offset: self.offset,
            problem,
        }))
    }

    fn peek(&mut self) -> Result<Option<u8>, Error> {
        if self.at == self.len {
            let n = loop {
                match self.r.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::Read(e.to_string())),
                }
            };
            self.at = 0;
            self.len = n;
            if n == 0 {
                return Ok(None);
            }
        }
        Ok(Some(self.buf[self.at]))
    }

    fn bump(&mut self) {
        self.at += 1;
        self.offset += 1;
    }

    fn next(&mut self) -> Result<Option<u8>, Error> {
        let b = self.peek()?;
        if b.is_some() {
            self.bump();
        }
        Ok(b)
    }

    fn ws(&mut self) -> Result<(), Error> {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek()? {
            self.bump();
        }
        Ok(())
    }

    /// The next byte, into `out` (at most `MAX_ENTRY` bytes).
    fn take(&mut self, out: &mut Vec<u8>) -> Result<u8, Error> {
        let Some(b) = self.next()? else {
            return self.fail("unexpected end");
        };
        if out.len() >= MAX_ENTRY {
            return self.fail("entry too large");
        }
        out.push(b);
        Ok(b)
    }

    /// The rest of a string whose opening quote is in `out`.
    fn take_string(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        loop {
            match self.take(out)? {
                b'"' => return Ok(()),
                b'\\' => {
                    self.take(out)?;
                }
                _ => {}
            }
        }
    }

    /// Reads one value: its bytes into `entry` (as far as finding its end needs; the brackets
    /// of an array or object are counted, not matched), then `json::parse` checks them whole.
    fn parse_value(&mut self, entry: &mut Vec<u8>) -> Result<Value, Error> {
        entry.clear();
        let start = self.offset;
        match self.peek()? {
            None => return self.fail("unexpected end"),
            Some(b'"') => {
                self.take(entry)?;
                self.take_string(entry)?;
            }
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.take(entry)? {
                        b'"' => self.take_string(entry)?,
                        b'{' | b'[' => {
                            depth += 1;
                            if depth > json::MAX_DEPTH {
                                return self.fail("nested too deep");
                            }
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            Some(_) => {
                // A number or a literal: up to the next delimiter.
                while let Some(b) = self.peek()? {
                    if matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.take(entry)?;
                }
            }
        }
        json::parse(entry).map_err(|e| {
            Error::Json(json::Error {
                offset: start + e.offset,
                problem: e.problem,
            })
        })
    }
}

/// The origins and scenarios of one answer, each kept once: 100,000 decisions have a handful.
#[derive(Default)]
struct Names(Vec<Arc<str>>);

impl Names {
    /// Distinct names remembered; past that, a name is its own copy.
    const MAX: usize = 64;

    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.0.iter().find(|n| &***n == name) {
            return Arc::clone(n);
        }
        let n: Arc<str> = Arc::from(name);
        if self.0.len() < Self::MAX {
            self.0.push(Arc::clone(&n));
        }
        n
    }
}

enum Entry {
    Ban(Decision),
    Skipped,
    Invalid,
}

fn decision(item: &Value, names: &mut Names) -> Entry {
    let text = |k: &str| item.get(k).and_then(Value::as_str);
    let (Some(kind), Some(scope), Some(value)) = (text("type"), text("scope"), text("value"))
    else {
        return Entry::Invalid;
    };
    if !kind.eq_ignore_ascii_case("ban") {
        return Entry::Skipped;
    }
    let target = if scope.eq_ignore_ascii_case("ip") {
        value.parse::<IpAddr>().ok().map(|addr| Target {
            addr,
            prefix_len: if addr.is_ipv4() { 32 } else { 128 },
        })
    } else if scope.eq_ignore_ascii_case("range") {
        parse_range(value)
    } else {
        return Entry::Skipped;
    };
    let (Some(target), Some(id), Some(duration_ms)) = (
        target,
        item.get("id").and_then(Value::as_u64),
        text("duration").and_then(go_duration_ms),
    ) else {
        return Entry::Invalid;
    };
    Entry::Ban(Decision {
        id,
        target,
        duration_ms,
        origin: names.get(text("origin").unwrap_or("")),
        scenario: names.get(text("scenario").unwrap_or("")),
    })
}

/// `ADDR/LEN` with the host bits cleared.
pub fn parse_range(text: &str) -> Option<Target> {
    let (a, l) = text.split_once('/')?;
    let addr: IpAddr = a.parse().ok()?;
    let len: u8 = l.parse().ok()?;
    match addr {
        IpAddr::V4(v4) if len <= 32 => Some(Target {
            addr: IpAddr::V4((u32::from(v4) & prefix_mask_v4(len)).into()),
            prefix_len: len,
        }),
        IpAddr::V6(v6) if len <= 128 => Some(Target {
            addr: IpAddr::V6(mask_v6(v6, len)),
            prefix_len: len,
        }),
        _ => None,
    }
}

/// Go's `time.Duration` text in milliseconds, rounded down; a negative one (an expired decision
/// in `deleted`) is 0. None when it is not such text.
pub fn go_duration_ms(text: &str) -> Option<u64> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" | "μs" => 1_000,
            "ns" => 1,
            _ => return None,
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut part = int.checked_mul(unit_ns)?;
        let mut scale = unit_ns;
        for d in frac.bytes().take(20) {
            scale /= 10;
            part += u128::from(d - b'0') * scale;
        }
        total_ns = total_ns.checked_add(part)?;
        rest = next;
    }
    if negative {
        return Some(0);
    }
    u64::try_from(total_ns / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::lapi::http::{read_response, read_with};

    fn body(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/lapi/{name}", env!("CARGO_MANIFEST_DIR"));
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        read_response(&mut raw.as_slice(), 1 << 24).unwrap().body
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_ms("3h59m56.5s"), Some(14_396_500));
        assert_eq!(go_duration_ms("59m38.92370067s"), Some(3_578_923));
        assert_eq!(go_duration_ms("1m28.754610426s"), Some(88_754));
        assert_eq!(go_duration_ms("-29.062825ms"), Some(0));
        assert_eq!(go_duration_ms("-18.183028871s"), Some(0));
        assert_eq!(go_duration_ms("1.5ms"), Some(1));
        assert_eq!(go_duration_ms("2h"), Some(7_200_000));
        assert_eq!(go_duration_ms("0"), Some(0));
        assert_eq!(go_duration_ms("300µs"), Some(0));
        for bad in [
            "",
            "-",
            "h",
            "1x",
            "1.2.3s",
            "s1",
            "99999999999999999999999h",
            "1h-2m",
        ] {
            assert_eq!(go_duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges_lose_their_host_bits() {
        let t = parse_range("198.51.100.77/24").unwrap();
        assert_eq!(
            (t.addr.to_string(), t.prefix_len),
            ("198.51.100.0".into(), 24)
        );
        let t = parse_range("2001:db8:5::1/64").unwrap();
        assert_eq!(
            (t.addr.to_string(), t.prefix_len),
            ("2001:db8:5::".into(), 64)
        );
        assert_eq!(parse_range("192.0.2.0/33"), None);
        assert_eq!(parse_range("192.0.2.0"), None);
    }

    #[test]
    fn startup_answer_from_a_real_lapi() {
        // 200 imported Ip bans, three Ranges (cscli's /24 and /48, scanban's IPv6 /64), and a
        // captcha (skipped).
        let r = parse_stream(&body("stream-startup-chunked.http")).unwrap();
        assert_eq!(r.delta.deleted, vec![]);
        assert_eq!(r.delta.new.len(), 203, "{:?}", r.delta.new.first());
        assert_eq!((r.skipped, r.invalid), (1, 0));
        let range = r
            .delta
            .new
            .iter()
            .find(|d| d.target.prefix_len == 48)
            .unwrap();
        assert_eq!(range.target.addr.to_string(), "2001:db8:7::");
        assert_eq!(&*range.origin, "cscli");
        let one = r
            .delta
            .new
            .iter()
            .find(|d| d.target.addr.to_string() == "192.0.2.200")
            .unwrap();
        assert_eq!(one.target.prefix_len, 32);
        assert_eq!(&*one.scenario, "bulk");
        assert!(one.duration_ms > 59 * 60_000 && one.duration_ms <= 3_600_000);
        assert!(r.delta.new.iter().any(|d| d.target.prefix_len == 64));
    }

    #[test]
    fn deltas_from_a_real_lapi() {
        let r = parse_stream(&body("stream-delta.http")).unwrap();
        assert_eq!(r.delta.new, vec![]);
        assert_eq!(r.delta.deleted.len(), 1);
        let d = &r.delta.deleted[0];
        assert_eq!((d.id, d.duration_ms), (4, 0));
        assert_eq!(d.target.addr.to_string(), "198.51.100.0");
        assert_eq!(d.target.prefix_len, 24);

        // A machine's alerts (scanban's own, one Ip, one IPv6 /64 Range) come back as decisions.
        let r = parse_stream(&body("stream-delta-mixed.http")).unwrap();
        assert_eq!(r.delta.deleted.len(), 1);
        let mine: Vec<_> = r
            .delta
            .new
            .iter()
            .map(|d| (d.target, &*d.scenario))
            .collect();
        assert_eq!(mine.len(), 2);
        assert!(mine.iter().all(|(_, s)| *s == "scanban/port-scan"));
        assert!(mine.iter().any(|(t, _)| t.prefix_len == 64));
    }

    /// Real answers with bytes overwritten (a fixed pseudo-random sequence): the HTTP reader, the
    /// JSON reader and the stream reader return errors or values, and never panic.
    #[test]
    fn damaged_answers_never_panic() {
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize
        };
        let (mut ok, mut failed) = (0, 0);
        for name in [
            "stream-delta-mixed.http",
            "stream-delta.http",
            "login-200.http",
        ] {
            let path = format!("{}/fixtures/lapi/{name}", env!("CARGO_MANIFEST_DIR"));
            let raw = std::fs::read(path).unwrap();
            for _ in 0..3000 {
                let mut bytes = raw.clone();
                for _ in 0..1 + next() % 4 {
                    let at = next() % bytes.len();
                    bytes[at] = b"{}[]\",:0123456789abcdef\r\n \xff"[next() % 27];
                }
                match read_response(&mut bytes.as_slice(), 1 << 20) {
                    Ok(r) => match parse_stream(&r.body) {
                        Ok(_) => ok += 1,
                        Err(_) => failed += 1,
                    },
                    Err(_) => failed += 1,
                }
            }
        }
        // Most damage lands in a value and still reads; some breaks the syntax.
        assert!(ok > 0 && failed > 0, "{ok} read, {failed} refused");
    }

    /// A reader handing out at most `step` bytes a call, as a slow connection does.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// The answer as the bouncer reads it: from the connection, through the HTTP framing.
    fn streamed(raw: &[u8], step: usize) -> Result<Read, String> {
        let mut conn = Trickle { data: raw, step };
        read_with(&mut conn, 1 << 24, |_, body| Ok(read_stream(body)))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    #[test]
    fn read_as_it_arrives_is_read_whole() {
        for name in [
            "stream-startup-chunked.http",
            "stream-delta-mixed.http",
            "stream-delta.http",
        ] {
            let raw = std::fs::read(format!(
                "{}/fixtures/lapi/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let whole = parse_stream(&body(name)).unwrap();
            for step in [1, 7, 100, 8192] {
                assert_eq!(
                    streamed(&raw, step).as_ref(),
                    Ok(&whole),
                    "{name} by {step}"
                );
            }
            // Cut anywhere, the answer is an error, never a shorter delta.
            let cuts = if raw.len() > 5000 { 101 } else { 1 };
            for n in (0..raw.len()).step_by(cuts) {
                assert!(streamed(&raw[..n], 8192).is_err(), "{name} cut at {n}");
            }
        }
        // The origins and scenarios of an answer are shared, not copied per decision.
        let r = parse_stream(&body("stream-startup-chunked.http")).unwrap();
        let bulk: Vec<_> = r
            .delta
            .new
            .iter()
            .filter(|d| &*d.scenario == "bulk")
            .collect();
        assert!(bulk.len() > 100);
        assert!(bulk
            .iter()
            .all(|d| Arc::ptr_eq(&d.scenario, &bulk[0].scenario)));
    }

    #[test]
    fn an_entry_past_its_bound_is_an_error() {
        let long = "x".repeat(MAX_ENTRY);
        let text = format!(r#"{{"new":[{{"type":"ban","scenario":"{long}"}}]}}"#);
        let e = parse_stream(text.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("entry too large"), "{e}");
        let text = format!(r#"{{"other":"{long}","new":[]}}"#);
        assert!(parse_stream(text.as_bytes()).is_err());
        let deep = format!(r#"{{"new":[{}]}}"#, "[".repeat(json::MAX_DEPTH + 1));
        assert!(parse_stream(deep.as_bytes()).is_err());
        // Members other than new and deleted are read and checked, then left.
        let r = parse_stream(br#"{"x":{"a":[1,"]"]},"new":null,"deleted":[]}"#).unwrap();
        assert_eq!(r, Read::default());
        assert!(parse_stream(br#"{"x":{"a":[1}],"new":[]}"#).is_err());
    }

    #[test]
    fn wrong_shapes_are_errors_and_bad_entries_are_counted() {
        assert!(parse_stream(b"[]").is_err());
        assert!(parse_stream(b"{\"new\":3}").is_err());
        assert!(parse_stream(b"{\"new\":[").is_err());
        let r = parse_stream(
            br#"{"new":[{"type":"ban","scope":"Ip","value":"nonsense","id":1,"duration":"1h"},
                        {"type":"ban","scope":"Ip","value":"192.0.2.1","id":2,"duration":"1y"},
                        {"type":"ban","scope":"Country","value":"FR","id":3,"duration":"1h"},
                        {"type":"ban","scope":"ip","value":"192.0.2.1","id":4,"duration":"1h"},
                        7],"deleted":null}"#,
        )
        .unwrap();
        assert_eq!((r.delta.new.len(), r.skipped, r.invalid), (1, 1, 3));
    }
}
