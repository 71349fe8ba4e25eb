//! scanban: detects port scanners through NFQUEUE and bans them in an nf_tables set.

#![forbid(unsafe_code)]

mod atomic_file;
mod ban_book;
mod bans;
mod cli;
mod commands;
mod daemon;
mod duration;
mod fleet;
mod hostinfo;
mod json;
mod latency;
mod logger;
mod panic_exit;
mod privilege;
mod protect;
mod ruleset;
mod sessions;
mod settings;
mod signals;
mod state;
mod stats;
mod status;
mod tail;

use std::process::ExitCode;

use cli::Command;
use log::LevelFilter;

/// Invalid command line or configuration: nothing was changed in the kernel.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    // Before any thread: a panic anywhere must end the process, not just its thread.
    panic_exit::install();
    let inv = match cli::parse(std::env::args_os().skip(1)) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("scanban: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match inv.command {
        Command::Help => {
            print!("{}", cli::help());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("scanban {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let settings = match inv.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("scanban: invalid configuration: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logging(settings.verbose);
    let result: Result<(), Box<dyn std::error::Error>> = match inv.command {
        Command::Run => match daemon::run(settings, &|| inv.settings()) {
            // A LAPI setting is configuration too, checked before any kernel change.
            Err(e @ daemon::Error::Fleet(_)) => {
                eprintln!("scanban: invalid configuration: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
            r => r.map_err(Into::into),
        },
        Command::Ruleset => commands::ruleset_text(&settings)
            .map(|t| print!("{t}"))
            .map_err(Into::into),
        Command::List { json } => commands::list(&settings, json).map_err(Into::into),
        Command::Ban { target, duration } => {
            commands::ban(&settings, target, duration).map_err(Into::into)
        }
        Command::Unban { target } => commands::unban(&settings, target).map_err(Into::into),
        Command::Status { json } => {
            return if status::show(&settings.stats_file, json) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Command::Replay { pcap, hosts } => {
            commands::replay(&settings, &pcap, &hosts).map_err(Into::into)
        }
        Command::Doctor => commands::doctor(&settings).map_err(Into::into),
        Command::Help | Command::Version => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scanban: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: bool) {
    let level = if verbose {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    logger::init(level);
}
