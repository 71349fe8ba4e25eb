//! Speaking to the LAPI as a machine ("watcher"): log in for a token, refresh it before it
//! expires (or when the LAPI says it is no longer valid), push alerts.

use std::fmt;
use std::time::Duration;

use super::credentials::{MachineCredentials, Secret};
use super::http::{self, Request, Url};
use super::json::{self, Value};
use super::time;

/// The scenario every alert of scanban carries.
pub const SCENARIO: &str = "scanban/port-scan";

/// Largest answer to a login or a push.
const MAX_ANSWER: usize = 64 * 1024;

/// A token is renewed this long before it expires.
const REFRESH_MARGIN_S: i64 = 60;

#[derive(Debug)]
pub enum Error {
    Http(http::Error),
    /// The LAPI answered with this status (the body's `message`, when it had one).
    Status(u16, String),
    /// A 2xx answer that is not what the API documents.
    Answer(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Http(e) => write!(f, "{e}"),
            Error::Status(s, m) if m.is_empty() => write!(f, "LAPI answered {s}"),
            Error::Status(s, m) => write!(f, "LAPI answered {s}: {m}"),
            Error::Answer(why) => write!(f, "unexpected LAPI answer: {why}"),
        }
    }
}

impl From<http::Error> for Error {
    fn from(e: http::Error) -> Self {
        Error::Http(e)
    }
}

/// The `message` of an error answer (the LAPI's own words, never a secret of ours), cut short.
pub fn status_error(status: u16, body: &[u8]) -> Error {
    let msg = json::parse(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    Error::Status(status, msg.chars().take(200).collect())
}

/// A machine's session with the LAPI.
pub struct Watcher {
    url: Url,
    login: String,
    password: Secret,
    timeout: Duration,
    /// The bearer token and when (Unix seconds) it must be renewed.
    token: Option<(Secret, i64)>,
}

impl Watcher {
    pub fn new(url: Url, creds: &MachineCredentials, timeout: Duration) -> Self {
        Watcher {
            url,
            login: creds.login.clone(),
            password: creds.password.clone(),
            timeout,
            token: None,
        }
    }

    /// `POST /v1/watchers/login`: a fresh token.
    pub fn login(&mut self) -> Result<(), Error> {
        let body = crate::json::Object::new()
            .str("machine_id", &self.login)
            .str("password", self.password.expose())
            .strs("scenarios", [SCENARIO])
            .finish();
        let r = http::send(
            &self.url,
            &Request {
                method: "POST",
                path: "/v1/watchers/login",
                headers: &[],
                body: Some(body.as_bytes()),
                max_body: MAX_ANSWER,
            },
            self.timeout,
        )?;
        self.token = None;
        if r.status != 200 {
            return Err(status_error(r.status, &r.body));
        }
        let (token, expire) = parse_login(&r.body)?;
        let now = (time::unix_ms_now() / 1000) as i64;
        // A LAPI whose clock is off from ours: renew at least every 10 minutes.
        let renew_at = (expire - REFRESH_MARGIN_S).clamp(now + 1, now + 600);
        self.token = Some((token, renew_at));
        Ok(())
    }

    fn token(&mut self) -> Result<String, Error> {
        let now = (time::unix_ms_now() / 1000) as i64;
        match &self.token {
            Some((t, renew_at)) if now < *renew_at => Ok(t.expose().to_string()),
            _ => {
                self.login()?;
                let (t, _) = self.token.as_ref().ok_or(Error::Answer("no token"))?;
                Ok(t.expose().to_string())
            }
        }
    }

    /// `POST /v1/alerts` with `alerts` (a JSON array's text): logs in first if needed, and once
    /// more if the LAPI no longer takes the token. Returns how many alerts it created.
    pub fn push(&mut self, alerts: &str) -> Result<usize, Error> {
        for attempt in 0..2 {
            let auth = format!("Bearer {}", self.token()?);
            let r = http::send(
                &self.url,
                &Request {
                    method: "POST",
                    path: "/v1/alerts",
                    headers: &[("Authorization", &auth)],
                    body: Some(alerts.as_bytes()),
                    max_body: MAX_ANSWER,
                },
                self.timeout,
            )?;
            match r.status {
                200 | 201 => {
                    let v =
                        json::parse(&r.body).map_err(|_| Error::Answer("alert ids not JSON"))?;
                    return v
                        .items()
                        .map(<[Value]>::len)
                        .ok_or(Error::Answer("alert ids not a list"));
                }
                401 if attempt == 0 => self.token = None,
                s => return Err(status_error(s, &r.body)),
            }
        }
        Err(Error::Answer("token refused twice"))
    }
}

/// A login answer's token and expiry (Unix seconds).
fn parse_login(body: &[u8]) -> Result<(Secret, i64), Error> {
    let v = json::parse(body).map_err(|_| Error::Answer("login answer not JSON"))?;
    let token = v
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(Error::Answer("login answer without a token"))?;
    let expire = v
        .get("expire")
        .and_then(Value::as_str)
        .and_then(time::parse)
        .ok_or(Error::Answer("login answer without a valid expiry"))?;
    Ok((Secret::new(token.to_string()), expire))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::lapi::http::read_response;

    fn answer(name: &str) -> http::Response {
        let path = format!("{}/fixtures/lapi/{name}", env!("CARGO_MANIFEST_DIR"));
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        read_response(&mut raw.as_slice(), 1 << 20).unwrap()
    }

    #[test]
    fn login_answers_from_a_real_lapi() {
        let r = answer("login-200.http");
        let (token, expire) = parse_login(&r.body).unwrap();
        assert!(token.expose().starts_with("eyJ"));
        assert_eq!(expire, 1_796_074_861);
        let r = answer("login-401.http");
        let e = status_error(r.status, &r.body);
        assert_eq!(
            e.to_string(),
            "LAPI answered 401: incorrect Username or Password"
        );
        let r = answer("alerts-401.http");
        assert!(matches!(
            status_error(r.status, &r.body),
            Error::Status(401, _)
        ));
        let r = answer("alerts-invalid.http");
        assert!(status_error(r.status, &r.body)
            .to_string()
            .contains("capacity in body is required"));
        assert!(parse_login(br#"{"code":200}"#).is_err());
        assert!(parse_login(br#"{"token":"a b","expire":"2026-11-30T21:41:01Z"}"#).is_err());
    }
}
