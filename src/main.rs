//! The `cordon` binary: parse, dispatch, and print an error chain once.

use std::process::ExitCode;

use cordon::cli::{Cli, Command};
use cordon::error::{chain, exit};

fn main() -> ExitCode {
    cordon::timing::start();
    // Before anything opens a file: the descriptors the caller left open for the payload.
    let inherited = cordon::sandbox::inherited_fds();
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            cordon::term::eprintln_line(&format!("cordon: usage: {first} (see cordon --help)"));
            return ExitCode::from(exit::LAUNCHER);
        }
    };
    let result = match cli.command {
        Command::Run(args) => cordon::commands::run(args, &inherited),
        Command::Profile(cmd) => cordon::commands::profile(cmd),
        Command::Doctor => cordon::commands::doctor(),
        Command::Explain(args) => cordon::explain::command(args),
        Command::Replay(args) => cordon::replay::command(args, &inherited),
        Command::Report(cmd) => cordon::commands::report(cmd),
    };
    match result {
        Ok(code) => {
            cordon::timing::mark("report");
            ExitCode::from(code)
        }
        Err(e) => {
            cordon::term::eprintln_line(&format!("cordon: {}", chain(&e)));
            ExitCode::from(e.exit_code())
        }
    }
}
