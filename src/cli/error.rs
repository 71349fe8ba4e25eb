//! `UsageError`: why a command line cannot be run (exit status 2, nothing changed).

use crate::duration;

/// A command line that cannot be run (exit status 2), in the words printed after `scanban: `.
#[derive(Debug)]
pub enum UsageError {
    /// What the argument parser found wrong (a missing value, an unexpected argument).
    Parser(lexopt::Error),
    NotUtf8,
    UnknownOption(String),
    BadDuration {
        flag: &'static str,
        problem: duration::ParseDurationError,
    },
    NoCommand,
    UnknownCommand(String),
    /// `scanban CMD` without the argument it needs (`what`).
    Needs {
        command: String,
        what: &'static str,
    },
    /// `scanban CMD` with more than the one argument it takes.
    TakesOnly {
        command: String,
        what: &'static str,
    },
    TakesNone {
        command: String,
        got: String,
    },
    /// An address or prefix that does not parse.
    Address(String),
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsageError::Parser(e) => e.fmt(f),
            UsageError::NotUtf8 => f.write_str("arguments must be UTF-8"),
            UsageError::UnknownOption(name) => {
                write!(f, "unknown option --{name} (see scanban --help)")
            }
            UsageError::BadDuration { flag, problem } => write!(f, "{flag}: {problem}"),
            UsageError::NoCommand => f.write_str("no command given (see scanban --help)"),
            UsageError::UnknownCommand(c) => {
                write!(f, "unknown command `{c}` (see scanban --help)")
            }
            UsageError::Needs { command, what } => write!(f, "`scanban {command}` needs {what}"),
            UsageError::TakesOnly { command, what } => {
                write!(f, "`scanban {command}` takes only {what}")
            }
            UsageError::TakesNone { command, got } => {
                write!(f, "`scanban {command}` takes no argument, got `{got}`")
            }
            UsageError::Address(problem) => f.write_str(problem),
        }
    }
}

impl std::error::Error for UsageError {}
