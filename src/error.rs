//! The error type: one enum grouped by pipeline stage, each variant naming the
//! step and the object, the cause kept as `source()`, and the exit code it maps to.
//!
//! Messages are lowercase, carry no trailing period and never repeat their
//! source: `main` prints the whole chain once, joined by ": ".

use std::io;
use std::path::PathBuf;

/// Exit codes of the launcher contract (README, "Exit codes").
pub mod exit {
    /// The profile's timeout ended the run.
    pub const TIMEOUT: u8 = 124;
    /// cordon itself failed: bad profile, unenforceable policy, usage error.
    pub const LAUNCHER: u8 = 125;
    /// COMMAND exists but could not be executed.
    pub const NOT_EXECUTABLE: u8 = 126;
    /// COMMAND was not found.
    pub const NOT_FOUND: u8 = 127;
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- profile: reading, parsing, merging, expanding ----
    #[error("loading profile {}", path.display())]
    ReadProfile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A located problem in a profile: syntax, unknown key, wrong type, bad value.
    #[error("loading profile {file}: line {line}, column {column}: {message}")]
    ProfileAt {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("unknown built-in profile `{name}` (built-ins: {known})")]
    UnknownBuiltin { name: String, known: String },
    #[error("loading profile {file}: line {line}, column {column}: extends `{target}`")]
    Extends {
        file: String,
        line: usize,
        column: usize,
        target: String,
        #[source]
        source: Box<Error>,
    },
    #[error("extends cycle: {chain}")]
    ExtendsCycle { chain: String },
    #[error("{origin}: undefined variable ${{{name}}}")]
    UndefinedVariable { origin: String, name: String },
    #[error("{origin}: {message}")]
    InvalidValue { origin: String, message: String },

    // ---- policy: validation against this machine ----
    #[error("{origin}: unknown syscall `{name}` for {arch}")]
    UnknownSyscall {
        origin: String,
        name: String,
        arch: &'static str,
    },
    #[error("{origin}: unknown capability `{name}`")]
    UnknownCapability { origin: String, name: String },
    #[error("{origin}: {} does not exist", path.display())]
    MissingPath { origin: String, path: PathBuf },
    #[error(
        "workspace {}: {why}; choose a project directory with -w, or pass --allow-unsafe-workspace",
        path.display()
    )]
    UnsafeWorkspace { path: PathBuf, why: String },
    #[error("workspace {}", path.display())]
    Workspace {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "this kernel cannot enforce the profile: {missing}; run with --best-effort to accept this"
    )]
    Unenforceable { missing: String },
    #[error("reading secret {name}")]
    Secret {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Unsupported(String),

    // ---- prepare: fds opened, BPF compiled, command resolved ----
    #[error("opening {} for a Landlock rule", path.display())]
    LandlockPath {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("adding the Landlock rule for {}", path.display())]
    LandlockRule {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("building the Landlock ruleset")]
    LandlockRuleset(#[source] landlock::RulesetError),
    #[error("{program}: command not found")]
    NotFound { program: String },
    #[error("{}: cannot execute", path.display())]
    NotExecutable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("preparing the sandbox: {what}")]
    Prepare {
        what: String,
        #[source]
        source: io::Error,
    },

    // ---- launch and supervision (in the launcher) ----
    #[error("{step}")]
    Launch {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    /// The child failed before `execve` and told us why through the status pipe.
    #[error("{message}")]
    Child { message: String, code: u8 },

    // ---- output: reports, audit log ----
    #[error("{what} {}", path.display())]
    Output {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An output file of cordon's own that the run itself could reach.
    #[error(
        "{what} {} is inside the writable root {} of this run (the sandbox could plant a link there or rewrite it); put it outside every writable root",
        path.display(),
        root.display()
    )]
    OwnFileExposed {
        what: &'static str,
        path: PathBuf,
        root: PathBuf,
    },
    #[error("{0}")]
    Usage(String),
    /// A replay refused before anything ran: tampered, or not confirmed.
    #[error("replay {}: {reason}", report.display())]
    ReplayRefused { report: PathBuf, reason: String },
    // ---- sessions: the server and its clients ----
    /// A step of a session's server or of a client talking to it.
    #[error("session {name}: {step}")]
    Session {
        name: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    /// A session request refused before anything ran: an unknown or dead
    /// session, a socket of another user, a changed profile with `--fresh`.
    #[error("session {name}: {reason}")]
    SessionRefused { name: String, reason: String },
    /// An error whose text carried report data, with its control characters
    /// escaped (`message` is the whole chain) and its exit code kept.
    #[error("{message}")]
    Escaped { message: String, code: u8 },
}

impl Error {
    /// An extends cycle (already located at the extends that closes it).
    pub fn is_cycle(&self) -> bool {
        match self {
            Error::ExtendsCycle { .. } => true,
            Error::Extends { source, .. } => matches!(**source, Error::ExtendsCycle { .. }),
            _ => false,
        }
    }

    /// The process exit code this error maps to under the launcher contract.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NotFound { .. } => exit::NOT_FOUND,
            Error::NotExecutable { .. } => exit::NOT_EXECUTABLE,
            Error::Child { code, .. } => *code,
            Error::Escaped { code, .. } => *code,
            _ => exit::LAUNCHER,
        }
    }

    /// A bad value at `origin` (a located profile position, or any label).
    pub(crate) fn invalid(origin: impl std::fmt::Display, message: impl Into<String>) -> Self {
        Error::InvalidValue {
            origin: origin.to_string(),
            message: message.into(),
        }
    }
}

/// The error chain on one line: `step: cause: cause`.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let s = e.to_string();
        // Some crates repeat their source in their own message; print each text once.
        if !s.is_empty() && !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        next = e.source();
    }
    out
}
