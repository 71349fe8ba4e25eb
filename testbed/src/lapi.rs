//! Debian's real CrowdSec Local API (LAPI), run alone inside a test namespace.
//!
//! `/etc/crowdsec` (from the `crowdsec` package, which scripts/test.sh installs) is copied to a
//! temporary directory whose config points the database and data dir there, has no Central API
//! (`online_client` commented out), no Prometheus listener, logs to a file, and listens on the
//! address given. `crowdsec -c DIR/config.yaml -no-cs` runs the LAPI without the agent. A machine
//! `cscli` uses for `decisions add/delete` is registered at start. The process is killed and the
//! directory removed when the value drops, on a failed test too.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::wait_for;

static STARTED: AtomicU32 = AtomicU32::new(0);

/// A running LAPI in namespace `ns`, listening on `listen` (`ADDR:PORT`).
pub struct Lapi {
    pub ns: String,
    pub listen: String,
    pub dir: PathBuf,
    child: Option<Child>,
}

/// Why the LAPI cannot run here (crowdsec not installed), or None.
pub fn unavailable() -> Option<String> {
    for bin in ["crowdsec", "cscli"] {
        if Command::new(bin).arg("-h").output().is_err() {
            return Some(format!(
                "`{bin}` is not installed (Debian package crowdsec)"
            ));
        }
    }
    if !Path::new("/etc/crowdsec/config.yaml").exists() {
        return Some("/etc/crowdsec/config.yaml is missing".into());
    }
    None
}

impl Lapi {
    /// Starts the LAPI in `ns` on `listen` and waits (bounded) until it accepts connections.
    /// Returns None (and says why) where crowdsec is missing, unless SCANBAN_REQUIRE_KERNEL_TESTS
    /// is set, where that is a failure.
    pub fn start(ns: &str, listen: &str) -> Option<Lapi> {
        Lapi::start_with(ns, listen, false)
    }

    /// Like `start`, serving HTTPS with a certificate for the listen address signed by a CA made
    /// for the test (`ca_path()`), with `openssl`. `cscli decisions` does not work against it
    /// (cscli's own client would need the CA); `machines add` and `bouncers add` do.
    pub fn start_tls(ns: &str, listen: &str) -> Option<Lapi> {
        Lapi::start_with(ns, listen, true)
    }

    fn start_with(ns: &str, listen: &str, tls: bool) -> Option<Lapi> {
        if let Some(why) = unavailable() {
            if std::env::var_os("SCANBAN_REQUIRE_KERNEL_TESTS").is_some() {
                panic!("LAPI test cannot run: {why}");
            }
            eprintln!("SKIPPED LAPI test: {why}");
            return None;
        }
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("scanban-lapi-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut lapi = Lapi {
            ns: ns.to_string(),
            listen: listen.to_string(),
            dir,
            child: None,
        };
        lapi.configure(tls)
            .unwrap_or_else(|e| panic!("configuring the LAPI in {}: {e}", lapi.dir.display()));
        lapi.run();
        lapi.cscli_ok(&[
            "machines",
            "add",
            "scanban-test-cli",
            "--auto",
            "--force",
            "-f",
            &lapi
                .dir
                .join("etc/local_api_credentials.yaml")
                .to_string_lossy(),
        ]);
        Some(lapi)
    }

    /// The URL clients use: `http://ADDR:PORT` (`https://` for `start_tls`).
    pub fn url(&self) -> String {
        let scheme = if self.dir.join("tls/ca.pem").exists() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.listen)
    }

    /// The CA that signed a `start_tls` LAPI's certificate.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// A CA and a certificate for the listen address, signed by it (ECDSA P-256).
    fn make_certificates(&self) -> io::Result<()> {
        let tls = self.dir.join("tls");
        fs::create_dir_all(&tls)?;
        let (addr, _) = self.listen.rsplit_once(':').expect("listen is ADDR:PORT");
        fs::write(tls.join("san.ext"), format!("subjectAltName=IP:{addr}\n"))?;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        for args in [
            [
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=scanban-test-ca",
                ],
            ]
            .concat(),
            [
                &["req"][..],
                &ec,
                &[
                    "-keyout", "lapi.key", "-out", "lapi.csr", "-subj", "/CN=lapi",
                ],
            ]
            .concat(),
            vec![
                "x509",
                "-req",
                "-in",
                "lapi.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "lapi.pem",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        ] {
            let out = Command::new("openssl")
                .args(&args)
                .current_dir(&tls)
                .output()?;
            if !out.status.success() {
                return Err(io::Error::other(format!(
                    "openssl {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
        Ok(())
    }

    fn configure(&self, tls: bool) -> io::Result<()> {
        let etc = self.dir.join("etc");
        let data = self.dir.join("data");
        fs::create_dir_all(&data)?;
        let out = Command::new("cp")
            .args(["-a", "/etc/crowdsec"])
            .arg(&etc)
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        let original = fs::read_to_string(etc.join("config.yaml"))?;
        let etc_s = format!("{}/", etc.display());
        let data_s = format!("{}/", data.display());
        let mut text = String::new();
        let mut in_online = false;
        let mut in_prometheus = false;
        for line in original.lines() {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            if in_online && indent <= 4 && !trimmed.is_empty() {
                in_online = false;
            }
            if indent == 0 && !trimmed.is_empty() {
                in_prometheus = trimmed.starts_with("prometheus:");
            }
            let line = line
                .replace("/etc/crowdsec/", &etc_s)
                .replace("/var/lib/crowdsec/data/", &data_s);
            if trimmed.starts_with("online_client:") {
                in_online = true;
            }
            if in_online {
                text.push('#');
                text.push_str(&line);
            } else if trimmed.starts_with("daemonize:") {
                text.push_str("  daemonize: false");
            } else if trimmed.starts_with("log_dir:") {
                text.push_str(&format!("  log_dir: {}/", self.dir.display()));
            } else if trimmed.starts_with("listen_uri:") {
                text.push_str(&format!("    listen_uri: {}", self.listen));
                if tls {
                    let t = self.dir.join("tls");
                    text.push_str(&format!(
                        "\n    tls:\n      cert_file: {}\n      key_file: {}",
                        t.join("lapi.pem").display(),
                        t.join("lapi.key").display()
                    ));
                }
            } else if in_prometheus && trimmed.starts_with("enabled:") {
                text.push_str("  enabled: false");
            } else {
                text.push_str(&line);
            }
            text.push('\n');
        }
        fs::write(etc.join("config.yaml"), text)?;
        if tls {
            self.make_certificates()?;
        }
        // The package's local overrides (sqlite WAL) apply to the copy as they are.
        Ok(())
    }

    /// Starts the `crowdsec -no-cs` process and waits until its port accepts connections.
    fn run(&mut self) {
        let log = fs::File::create(self.dir.join("lapi.stdout")).expect("LAPI log file");
        let config = self.dir.join("etc/config.yaml");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "crowdsec", "-c"])
            .arg(&config)
            .arg("-no-cs")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("LAPI log file"))
            .stderr(log)
            .spawn()
            .expect("spawning crowdsec");
        self.child = Some(child);
        let (addr, port) = self.listen.rsplit_once(':').expect("listen is ADDR:PORT");
        let probe = format!("exec 3<>/dev/tcp/{addr}/{port}");
        let up = wait_for(Duration::from_secs(30), || {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.ns, "bash", "-c", &probe])
                .stderr(Stdio::null())
                .status()
                .ok()?;
            out.success().then_some(())
        });
        if up.is_none() {
            panic!(
                "LAPI did not listen on {} within 30 s: {}",
                self.listen,
                self.log()
            );
        }
    }

    /// Stops the LAPI process (its database stays), e.g. to test downtime.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again after `stop`, with the same database and credentials.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// The LAPI's own log (for failure messages).
    pub fn log(&self) -> String {
        let mut s = fs::read_to_string(self.dir.join("lapi.stdout")).unwrap_or_default();
        s.push_str(&fs::read_to_string(self.dir.join("crowdsec_api.log")).unwrap_or_default());
        s
    }

    /// Runs `cscli -c DIR/etc/config.yaml ARGS` in the namespace, whatever its exit status.
    pub fn cscli(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, "cscli", "-c"])
            .arg(self.dir.join("etc/config.yaml"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running cscli")
    }

    /// Like `cscli`, panicking (with its output) unless it succeeds; returns its stdout.
    pub fn cscli_ok(&self, args: &[&str]) -> String {
        let out = self.cscli(args);
        if !out.status.success() {
            panic!(
                "cscli {}: {}\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `cscli machines add NAME --password P -f FILE`: the credentials file as an admin gets it,
    /// made readable by its owner only (cscli writes it world-readable).
    pub fn add_machine(&self, name: &str, password: &str) -> PathBuf {
        let file = self.dir.join(format!("machine-{name}.yaml"));
        self.cscli_ok(&[
            "machines",
            "add",
            name,
            "--password",
            password,
            "-f",
            &file.to_string_lossy(),
        ]);
        set_owner_only(&file);
        file
    }

    /// `cscli bouncers add NAME -o raw`: the API key, also written to a file readable by its
    /// owner only (returned second).
    pub fn add_bouncer(&self, name: &str) -> (String, PathBuf) {
        let key = self
            .cscli_ok(&["bouncers", "add", name, "-o", "raw"])
            .trim()
            .to_string();
        let file = self.dir.join(format!("bouncer-{name}.key"));
        fs::write(&file, format!("{key}\n")).expect("writing the bouncer key");
        set_owner_only(&file);
        (key, file)
    }
}

fn set_owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

impl Drop for Lapi {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
