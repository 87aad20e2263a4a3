//! The command line (clap derive). The doc comments are the `--help` text.
//! No logic here: `commands` does the work.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A sandbox launcher for coding agents: Landlock file-system and TCP rules,
/// a seccomp filter, namespaces, no capabilities, a scrubbed environment,
/// resource limits and a timeout under every command.
///
/// Exit codes: the command's own status; 128+N when it died of signal N; 124
/// when the profile's timeout ended it; 125 when cordon itself failed (bad
/// profile, unenforceable policy); 126 when COMMAND cannot be executed; 127
/// when it is not found.
#[derive(Debug, Parser)]
#[command(name = "cordon", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run COMMAND inside the sandbox described by PROFILE.
    Run(RunArgs),
    /// An interactive shell inside the sandbox ($SHELL, else bash, else sh),
    /// its prompt starting with "(cordon:PROFILE)". Takes `run`'s options.
    Shell(ShellArgs),
    /// List, show and check profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Report what this kernel can enforce, layer by layer, and whether each
    /// built-in profile is fully enforced here. Exits 1 when the default is not.
    Doctor,
    /// Say whether PROFILE allows one access, which rule decides, and the
    /// smallest change that would allow a denied one. Exits 0 allowed, 1 denied.
    Explain(ExplainArgs),
    /// Re-run the command of a run report under the policy it recorded. A
    /// report is untrusted input: an edited one is refused, recorded secrets are
    /// not read, and a report this user's cordon did not sign, or one whose
    /// policy is wider than the local profile, asks on the terminal first.
    Replay(ReplayArgs),
    /// Read run reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Sessions: a sandbox prepared once that runs many commands, each under
    /// the session's profile with its own Landlock domain, seccomp filter,
    /// limits and report.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Print a completion script for SHELL (e.g. `cordon completions bash >
    /// ~/.local/share/bash-completion/completions/cordon`).
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; `cordon man | man -l -`).
    Man,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Start a session in the background and print its name. It ends with
    /// `cordon session stop`, when --timeout passes, or when its owner exits
    /// (--owner). With --report, the session's report (every command, every
    /// denial) is written to FILE when it ends.
    Start(SessionStartArgs),
    /// Run COMMAND in session NAME; exits with its status as `cordon run` does.
    /// The command gets this client's environment (through the profile's
    /// filters), current directory and standard streams.
    Run(SessionRunArgs),
    /// This user's sessions: name, server pid, profile, workspace, commands.
    List {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End every command of session NAME, write its report, and end it.
    Stop {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// The library's server: the control socket is standard input.
    #[command(hide = true)]
    Serve(SessionStartArgs),
}

#[derive(Debug, Args)]
pub struct SessionStartArgs {
    #[command(flatten)]
    pub options: RunOptions,
    /// The session's name [default: s- and eight random hex digits].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// End the session after DURATION (e.g. 30m, 8h).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// End the session when process PID exits [default: the leader of the
    /// calling process's session: the terminal's shell, the CI step, the agent
    /// started with setsid].
    #[arg(long, value_name = "PID")]
    pub owner: Option<u32>,
}

#[derive(Debug, Args)]
pub struct SessionRunArgs {
    /// The session (`cordon session start` printed it).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Write this command's run report (JSON) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Refuse to run when the profile file changed since the session started
    /// (without it: a warning, and the session's policy).
    #[arg(long)]
    pub fresh: bool,
    /// Print no warnings of cordon's own (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The files the run created, modified, deleted or renamed in its writable
    /// roots (recorded by the launcher, whatever git says).
    Diff {
        /// The run report (JSON) written by `cordon run --report`.
        #[arg(value_name = "REPORT")]
        report: PathBuf,
    },
}

#[derive(Debug, Args)]
#[group(id = "query", required = true, multiple = false)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// May PATH be read?
    #[arg(long, value_name = "PATH", group = "query")]
    pub read: Option<PathBuf>,
    /// May PATH be written (created, modified, truncated, removed)?
    #[arg(long, value_name = "PATH", group = "query")]
    pub write: Option<PathBuf>,
    /// May PATH be executed?
    #[arg(long, value_name = "PATH", group = "query")]
    pub exec: Option<PathBuf>,
    /// May a TCP connection be made to HOST:PORT? A value starting with `/` is a
    /// pathname unix socket (connect or send to it).
    #[arg(long, value_name = "HOST:PORT", group = "query")]
    pub connect: Option<String>,
    /// May a TCP port be bound?
    #[arg(long, value_name = "PORT", group = "query")]
    pub bind: Option<u16>,
    /// Is the syscall NAME refused by the filter?
    #[arg(long, value_name = "NAME", group = "query")]
    pub syscall: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The run report (JSON) written by `cordon run --report`.
    #[arg(value_name = "REPORT")]
    pub report: PathBuf,
    /// Map the recorded workspace (and paths beneath it) to DIR.
    #[arg(short, long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Print what would run and the policy, then exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Also observe path and connect calls (see `cordon run --trace`).
    #[arg(long)]
    pub trace: bool,
    /// Write a new report of the replayed run.
    #[arg(long, value_name = "FILE")]
    pub report_to: Option<PathBuf>,
    /// Print no warnings or summary of cordon's own.
    #[arg(short, long)]
    pub quiet: bool,
    /// Replay even when the workspace is `/`, a system directory, or the home
    /// directory itself.
    #[arg(long)]
    pub allow_unsafe_workspace: bool,
    /// Replay without asking when the report is foreign (not signed by this
    /// user's report key) or its policy is wider than the local profile.
    /// Without it such a replay asks on the terminal, and without a terminal refuses.
    #[arg(short, long)]
    pub yes: bool,
    /// Give the replay the recorded secret NAME: as the local profile of the
    /// same name defines it (NAME), or read from FILE (NAME=FILE). Recorded
    /// secrets not named here are set to a placeholder; a report never chooses
    /// what is read on this machine. Repeatable.
    #[arg(long, value_name = "NAME[=FILE]")]
    pub secret: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetFlag {
    Off,
    On,
    /// Only the names of `[network] allow_domains` and `--allow-domain`, through cordon's proxy.
    Proxy,
}

/// Options shared by every command that resolves a profile.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Built-in profile name, or a path to a .toml file (contains "/" or ends in .toml).
    #[arg(short, long, value_name = "PROFILE", default_value = crate::profile::DEFAULT_PROFILE)]
    pub profile: String,
    /// The workspace, ${WORKSPACE} in profiles [default: the current directory].
    #[arg(short, long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub options: RunOptions,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub options: RunOptions,
    /// The shell to run [default: $SHELL when it names a shell, else bash, else sh].
    #[arg(long, value_name = "PATH")]
    pub shell: Option<PathBuf>,
}

/// The options of `run` (and `shell`).
#[derive(Debug, Args)]
pub struct RunOptions {
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// Run with what this kernel can enforce, warning once per missing piece,
    /// instead of refusing.
    #[arg(long)]
    pub best_effort: bool,
    /// Also allow reading beneath PATH.
    #[arg(long, value_name = "PATH")]
    pub allow_read: Vec<PathBuf>,
    /// Also allow writing beneath PATH.
    #[arg(long, value_name = "PATH")]
    pub allow_write: Vec<PathBuf>,
    /// Also allow executing beneath PATH.
    #[arg(long, value_name = "PATH")]
    pub allow_exec: Vec<PathBuf>,
    /// Override the profile's network mode.
    #[arg(long, value_name = "MODE")]
    pub net: Option<NetFlag>,
    /// Also allow reaching NAME through the proxy (network mode "proxy";
    /// `*.example.com` for the names below it, or an address).
    #[arg(long, value_name = "NAME")]
    pub allow_domain: Vec<String>,
    /// Say which layers are enforced before running.
    #[arg(short, long)]
    pub verbose: bool,
    /// Print no warnings of cordon's own (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,
    /// Print what would be enforced and exit without running COMMAND.
    #[arg(long)]
    pub dry_run: bool,
    /// Write a JSON run report (what ran, what was denied and by which rule) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Append one JSON line per run to FILE (also `[audit] log` in a profile).
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Observe path and connect calls and evaluate the policy on them, to report
    /// denials the kernel does not log for us (costs more; see README).
    #[arg(long, conflicts_with = "no_capture")]
    pub trace: bool,
    /// Do not capture refused syscalls and executed commands (plain errno filters).
    #[arg(long)]
    pub no_capture: bool,
    /// Do not record in the report which files the run created, modified, deleted
    /// or renamed (recorded with --report: every write-intent call then goes to
    /// the launcher; see README).
    #[arg(long)]
    pub no_changes: bool,
    /// Run even when the workspace is `/`, a system directory, or the home
    /// directory itself (refused otherwise: the workspace is writable and executable).
    #[arg(long)]
    pub allow_unsafe_workspace: bool,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Name and description of each built-in profile.
    List,
    /// The resolved profile: extends merged, variables expanded, carve-outs and
    /// the final syscall list shown.
    Show {
        /// Built-in profile name or path to a .toml file.
        #[arg(value_name = "NAME|PATH")]
        profile: String,
        /// The workspace, ${WORKSPACE} [default: the current directory].
        #[arg(short, long, value_name = "DIR")]
        workspace: Option<PathBuf>,
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Print a commented starter profile (or write it to FILE, never over an
    /// existing file): every table with its most used keys, commented out.
    Init {
        /// Write to FILE instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Validate a profile and exit 0, or print the error and exit 125.
    Check {
        /// Built-in profile name or path to a .toml file.
        #[arg(value_name = "PATH")]
        profile: String,
        /// Treat paths that do not exist here as errors.
        #[arg(long)]
        strict: bool,
        /// The workspace, ${WORKSPACE} [default: the current directory].
        #[arg(short, long, value_name = "DIR")]
        workspace: Option<PathBuf>,
    },
}

impl Cli {
    /// Parse the process's arguments. `cordon run` is what every sandboxed tool
    /// command pays for, so it is parsed with its own subcommand alone (building
    /// clap's whole command tree is a measurable share of a launch); anything else,
    /// and any error or request for help, goes through the full parser, so help
    /// and messages are exactly the same. Both use the one `RunArgs` definition.
    pub fn parse_args() -> Result<Cli, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new("run")) {
            let cmd = RunArgs::augment_args(clap::Command::new("run"));
            if let Ok(run) = cmd
                .try_get_matches_from(std::env::args_os().skip(1))
                .and_then(|m| RunArgs::from_arg_matches(&m))
            {
                return Ok(Cli {
                    command: Command::Run(run),
                });
            }
        }
        let m = Cli::command().try_get_matches()?;
        Cli::from_arg_matches(&m)
    }
}
