//! scanban: detects port scanners through NFQUEUE and bans them in an nf_tables set.

mod cli;
mod duration;
mod settings;

use std::process::ExitCode;

use cli::Command;

/// Invalid command line or configuration: nothing was changed in the kernel.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
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
    // The commands arrive with the nft/ and detector/ layers (issues 3–5).
    eprintln!(
        "scanban: `{:?}` is not available in this build yet (queue {} in {:?} mode configured)",
        inv.command, settings.queue, settings.mode
    );
    ExitCode::FAILURE
}
