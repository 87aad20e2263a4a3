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
    /// List, show and check profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Report what this kernel can enforce, layer by layer, and whether each
    /// built-in profile is fully enforced here. Exits 1 when the default is not.
    Doctor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetFlag {
    Off,
    On,
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
    /// Say which layers are enforced before running.
    #[arg(short, long)]
    pub verbose: bool,
    /// Print no warnings of cordon's own (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,
    /// Print what would be enforced and exit without running COMMAND.
    #[arg(long)]
    pub dry_run: bool,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
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
