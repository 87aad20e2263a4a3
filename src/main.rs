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
        // Bare `cordon` (or `cordon profile`): what it can do, as `--help` says it.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // On stdout, as `--help` prints it (clap would use stderr here).
            use std::io::Write;
            let _ = write!(std::io::stdout(), "{}", e.render());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            cordon::term::eprintln_line(&format!("cordon: usage: {}", usage_line(&e.to_string())));
            return ExitCode::from(exit::LAUNCHER);
        }
    };
    let result = match cli.command {
        Command::Run(args) => cordon::commands::run(args, &inherited),
        Command::Shell(args) => cordon::commands::shell(args, &inherited),
        Command::Completions { shell } => cordon::commands::completions(shell),
        Command::Man => cordon::commands::man(),
        Command::Profile(cmd) => cordon::commands::profile(cmd),
        Command::Doctor => cordon::commands::doctor(),
        Command::Explain(args) => cordon::commands::explain(args),
        Command::Replay(args) => cordon::replay::command(args, &inherited),
        Command::Report(cmd) => cordon::commands::report(cmd),
        Command::Session(cmd) => cordon::session::command::run(cmd),
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

/// clap's whole message on one line (errors are one line): what is wrong,
/// the values it lists (a missing argument's name is on the next line), and
/// the usage line.
fn usage_line(text: &str) -> String {
    let mut what = Vec::new();
    let mut usage = None;
    for line in text.lines().map(str::trim) {
        if let Some(u) = line.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        } else if let Some(tip) = line.strip_prefix("tip: ") {
            what.push(format!("({tip})"));
        } else if !line.is_empty() && !line.starts_with("For more information") {
            what.push(line.trim_start_matches("error: ").to_string());
        }
    }
    let mut out = what.join(" ");
    if let Some(u) = usage {
        out.push_str(&format!("; usage: {u}"));
    }
    out.push_str(" (see cordon --help)");
    out
}
