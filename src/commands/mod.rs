//! The commands other than `run`: each works with or without a running daemon, prints what it
//! did, and says what went wrong in an `Error` (exit status 1).

mod bans;
mod inspect;

use std::fmt;
use std::path::PathBuf;

use detector::SourceKey;
use nfnl::NlSocket;

pub use bans::{ban, list, unban};
pub use inspect::{doctor, replay, ruleset_text};

/// Why a command failed, in the words it prints.
#[derive(Debug)]
pub enum Error {
    /// No netlink socket: most often no CAP_NET_ADMIN.
    Socket(std::io::Error),
    /// The kernel refused or failed a request; `doing` says what it was, where that helps.
    Kernel {
        doing: Option<&'static str>,
        source: nfnl::Error,
    },
    /// Writing bans failed (a full set is explained with the set size).
    WriteBans {
        source: nfnl::Error,
        set_size: u32,
    },
    /// A file (or stdin, `-`) could not be read or written.
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The state file could not be read or rewritten.
    StateFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line of a ban list that is not a ban.
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    /// An address or prefix that cannot be a ban.
    Key(bans::KeyError),
    NoTable,
    NotBanned(SourceKey),
    /// Banned by the fleet only: `unban` never lifts a remote ban (the fleet would not know,
    /// and every other host keeps it); it says where to lift it.
    RemoteBan {
        target: String,
        /// `BLOCK (remote:ORIGIN)` for each remote ban that covers the target.
        by: Vec<String>,
    },
    /// A capture that could not be read.
    Capture {
        path: PathBuf,
        source: detector::pcap::PcapError,
    },
    /// `doctor` printed what failed.
    DoctorFoundProblems,
}

impl Error {
    fn kernel(doing: &'static str) -> impl Fn(nfnl::Error) -> Error {
        move |source| Error::Kernel {
            doing: Some(doing),
            source,
        }
    }
}

impl From<nfnl::Error> for Error {
    fn from(source: nfnl::Error) -> Self {
        Error::Kernel {
            doing: None,
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Socket(e) => write!(f, "netlink socket: {e} (scanban needs CAP_NET_ADMIN)"),
            Error::Kernel {
                doing: Some(doing),
                source,
            } => write!(f, "{doing}: {source}"),
            Error::Kernel {
                doing: None,
                source,
            } => source.fmt(f),
            Error::WriteBans { source, set_size } => {
                f.write_str(&crate::bans::describe(source, *set_size))
            }
            Error::File { path, source } if path.as_os_str() == "-" => write!(f, "stdin: {source}"),
            Error::File { path, source } => write!(f, "{}: {source}", path.display()),
            Error::StateFile { path, source } => {
                write!(f, "state file {}: {source}", path.display())
            }
            Error::Line {
                path,
                line,
                problem,
            } => write!(f, "{}:{line}: {problem}", path.display()),
            Error::Key(e) => e.fmt(f),
            Error::NoTable => f.write_str("no bans: table inet scanban does not exist"),
            Error::NotBanned(key) => write!(f, "{key} is not banned"),
            Error::RemoteBan { target, by } => write!(
                f,
                "{target} is banned by the fleet, not by this host: {}; lift it where it was \
                 decided (e.g. `cscli decisions delete --ip ADDR` or `--range CIDR` on the LAPI)",
                by.join(", ")
            ),
            Error::Capture { path, source } => write!(f, "{}: {source}", path.display()),
            Error::DoctorFoundProblems => f.write_str("doctor found problems"),
        }
    }
}

impl std::error::Error for Error {}

fn socket() -> Result<NlSocket, Error> {
    NlSocket::open().map_err(Error::Socket)
}
