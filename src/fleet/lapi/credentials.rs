//! The secrets a fleet member holds: a machine's credentials (the YAML file `cscli machines add
//! -f FILE` writes: `url`, `login`, `password`, accepted as is) and a bouncer's API key (a file
//! holding the key `cscli bouncers add NAME -o raw` printed). A file readable by everyone is
//! refused; a secret is never logged or printed (`Secret`'s Debug and Display hide it).

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Text that must not be shown: Debug and Display print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }

    /// The secret itself, for the request that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// A machine's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineCredentials {
    /// The LAPI URL the file names (`lapi-url` overrides it).
    pub url: Option<String>,
    pub login: String,
    pub password: Secret,
}

/// Why a secret file was not accepted. Its text names the file, never its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub path: PathBuf,
    pub problem: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

/// Most bytes read from a secret file.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads a secret file, refusing one that everyone may read.
fn read_private(path: &Path) -> Result<String, Error> {
    let fail = |problem: String| Error {
        path: path.to_path_buf(),
        problem,
    };
    let meta = fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("is not a regular file".into()));
    }
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(fail(format!(
            "holds a secret but is readable by everyone (mode {:o}); `chmod 600` it",
            meta.permissions().mode() & 0o777
        )));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(fail("is too large for a credentials file".into()));
    }
    let bytes = fs::read(path).map_err(|e| fail(e.to_string()))?;
    String::from_utf8(bytes).map_err(|_| fail("is not UTF-8 text".into()))
}

impl MachineCredentials {
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = read_private(path)?;
        Self::parse(&text).map_err(|problem| Error {
            path: path.to_path_buf(),
            problem: problem.into(),
        })
    }

    /// The flat YAML `cscli` writes: `key: value` lines, values plain or quoted.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let (mut url, mut login, mut password) = (None, None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line == "---" {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err("a line is not `key: value`");
            };
            let value = unquote(value.trim()).ok_or("a quoted value is not closed")?;
            match key.trim() {
                "url" => url = Some(value),
                "login" => login = Some(value),
                "password" => password = Some(value),
                // Other keys (ca_cert_path, key_path, cert_path) are not used.
                _ => {}
            }
        }
        let login = login.filter(|l| !l.is_empty()).ok_or("no `login`")?;
        let password = password.filter(|p| !p.is_empty()).ok_or("no `password`")?;
        Ok(MachineCredentials {
            url: url.filter(|u| !u.is_empty()),
            login,
            password: Secret(password),
        })
    }
}

fn unquote(v: &str) -> Option<String> {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q) {
            return inner.strip_suffix(q).map(str::to_string);
        }
    }
    Some(v.to_string())
}

/// A bouncer's API key from its file (the key alone, surrounding whitespace ignored).
pub fn load_bouncer_key(path: &Path) -> Result<Secret, Error> {
    let text = read_private(path)?;
    let key = text.trim();
    if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(Error {
            path: path.to_path_buf(),
            problem: "does not hold one API key".into(),
        });
    }
    Ok(Secret(key.to_string()))
}

/// A secret file for a test, removed when dropped.
#[cfg(test)]
pub(crate) struct TempSecret(pub PathBuf);

#[cfg(test)]
impl TempSecret {
    pub fn new(name: &str, text: &str, mode: u32) -> Self {
        let p = std::env::temp_dir().join(format!("scanban-secret-{}-{name}", std::process::id()));
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        TempSecret(p)
    }
}

#[cfg(test)]
impl Drop for TempSecret {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str, mode: u32) -> TempSecret {
        TempSecret::new(name, text, mode)
    }

    // The file exactly as `cscli machines add sensor1 --password Secr3tPass -f FILE` wrote it.
    const CSCLI_FILE: &str =
        "url: http://198.51.100.10:8080\nlogin: sensor1\npassword: Secr3tPass\n";

    #[test]
    fn cscli_file_is_accepted_as_is() {
        let p = temp_file("machine.yaml", CSCLI_FILE, 0o600);
        let c = MachineCredentials::load(&p.0).unwrap();
        assert_eq!(c.url.as_deref(), Some("http://198.51.100.10:8080"));
        assert_eq!(c.login, "sensor1");
        assert_eq!(c.password.expose(), "Secr3tPass");
        let shown = format!("{c:?} {}", c.password);
        assert!(!shown.contains("Secr3tPass"), "{shown}");
        let q = MachineCredentials::parse("login: 'a'\npassword: \"b c\"\n").unwrap();
        assert_eq!(
            (q.login.as_str(), q.password.expose(), q.url),
            ("a", "b c", None)
        );
    }

    #[test]
    fn world_readable_files_are_refused_without_showing_the_secret() {
        let p = temp_file("open.yaml", CSCLI_FILE, 0o644);
        let e = MachineCredentials::load(&p.0).unwrap_err();
        assert!(e.to_string().contains("readable by everyone"), "{e}");
        assert!(!e.to_string().contains("Secr3tPass"));
        let k = temp_file("open.key", "8d3cce37e549a2f42a390e3f3e37464d\n", 0o604);
        assert!(load_bouncer_key(&k.0).is_err());
        let k = temp_file("ok.key", "8d3cce37e549a2f42a390e3f3e37464d\n", 0o640);
        assert_eq!(
            load_bouncer_key(&k.0).unwrap().expose(),
            "8d3cce37e549a2f42a390e3f3e37464d"
        );
    }

    #[test]
    fn incomplete_files_are_refused() {
        assert!(MachineCredentials::parse("url: http://x\nlogin: a\n").is_err());
        assert!(MachineCredentials::parse("password: a\n").is_err());
        assert!(MachineCredentials::parse("login a\n").is_err());
        assert!(MachineCredentials::parse("login: 'a\npassword: b").is_err());
        let k = temp_file("two.key", "a b\n", 0o600);
        assert!(load_bouncer_key(&k.0).is_err());
        let k = temp_file("empty.key", "\n", 0o600);
        assert!(load_bouncer_key(&k.0).is_err());
    }
}
