//! One answer of `GET /v1/decisions/stream` read into a `fleet::Delta`: `ban` decisions with
//! scope `Ip` or `Range` only; the rest (captcha, throttle, other scopes) counted and skipped.
//! Durations are Go's `time.Duration` text (`3h59m56.5s`, `-29.06ms` for an expired one).

use std::fmt;
use std::net::IpAddr;

use detector::inet::{mask_v6, prefix_mask_v4};

use super::json::{self, Value};
use crate::fleet::{Decision, Delta, Target};

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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Json(e) => write!(f, "decision stream: {e}"),
            Error::Shape(why) => write!(f, "decision stream: {why}"),
        }
    }
}

/// Reads one stream answer's body.
pub fn parse_stream(body: &[u8]) -> Result<Read, Error> {
    let v = json::parse(body).map_err(Error::Json)?;
    if !matches!(v, Value::Object(_)) {
        return Err(Error::Shape("not an object"));
    }
    let mut out = Read::default();
    for (key, into_new) in [("new", true), ("deleted", false)] {
        let items = match v.get(key) {
            None => &[][..],
            Some(list) => list
                .items()
                .ok_or(Error::Shape("new/deleted is not a list"))?,
        };
        for item in items {
            match decision(item) {
                Entry::Ban(d) if into_new => out.delta.new.push(d),
                Entry::Ban(d) => out.delta.deleted.push(d),
                Entry::Skipped => out.skipped += 1,
                Entry::Invalid => out.invalid += 1,
            }
        }
    }
    Ok(out)
}

enum Entry {
    Ban(Decision),
    Skipped,
    Invalid,
}

fn decision(item: &Value) -> Entry {
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
        origin: text("origin").unwrap_or("").to_string(),
        scenario: text("scenario").unwrap_or("").to_string(),
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
    use crate::fleet::lapi::http::read_response;

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
        assert_eq!(range.origin, "cscli");
        let one = r
            .delta
            .new
            .iter()
            .find(|d| d.target.addr.to_string() == "192.0.2.200")
            .unwrap();
        assert_eq!(one.target.prefix_len, 32);
        assert_eq!(one.scenario, "bulk");
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
