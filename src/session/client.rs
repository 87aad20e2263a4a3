//! The library: a sandbox prepared once, and commands spawned in it the way
//! `std::process::Command` spawns them.
//!
//! ```no_run
//! # fn main() -> cordon::error::Result<()> {
//! let sandbox = cordon::Sandbox::builder()
//!     .profile("workspace-write")
//!     .workspace("/path/to/repo")
//!     .build()?;
//! let out = sandbox.command("cargo").args(["test"]).output()?;
//! println!("exit {} with {} denials", out.outcome.code, out.outcome.denials.len());
//! # Ok(()) }
//! ```
//!
//! Nothing here changes the calling process beyond what `std::process`
//! does: the sandbox is a server process (`cordon session serve`, started
//! with posix_spawn through `std::process::Command`, so any thread of a
//! multi-threaded program may build one), and every launch, with its signal
//! mask, subreaper flag, waits and kills, happens in a worker of that server.
//! The caller's signal mask, children, descriptors and threads are untouched;
//! the only descriptors it holds are a control socket, one channel per live
//! command, and the pipes it asked for, all close-on-exec.

use std::ffi::{OsStr, OsString};
use std::io::{BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, recv, socketpair};

use super::wire::{self, Event, Info, Request, RunRequest};
use crate::error::{Error, Result, exit};
use crate::profile::NetMode;
use crate::report::{Denial, Enforced, Executed, Report};

/// How to make a [`Sandbox`]: the profile and workspace, and the flags
/// `cordon run` takes for every command.
#[derive(Debug, Default, Clone)]
pub struct SandboxBuilder {
    profile: Option<String>,
    workspace: Option<PathBuf>,
    launcher: Option<PathBuf>,
    read: Vec<PathBuf>,
    write: Vec<PathBuf>,
    exec: Vec<PathBuf>,
    network: Option<NetMode>,
    domains: Vec<String>,
    best_effort: bool,
    no_capture: bool,
    trace: bool,
    audit_log: Option<PathBuf>,
}

impl SandboxBuilder {
    /// A built-in profile's name or a profile file's path (default: the
    /// built-in default profile).
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }
    /// The workspace, `${WORKSPACE}` (default: the current directory).
    pub fn workspace(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workspace = Some(dir.into());
        self
    }
    /// The `cordon` binary that serves the sandbox (default: `$CORDON_LAUNCHER`,
    /// then the first `cordon` in `$PATH` outside the workspace and the shared
    /// scratch directories, not writable by group or others).
    pub fn launcher(mut self, path: impl Into<PathBuf>) -> Self {
        self.launcher = Some(path.into());
        self
    }
    pub fn allow_read(mut self, path: impl Into<PathBuf>) -> Self {
        self.read.push(path.into());
        self
    }
    pub fn allow_write(mut self, path: impl Into<PathBuf>) -> Self {
        self.write.push(path.into());
        self
    }
    pub fn allow_exec(mut self, path: impl Into<PathBuf>) -> Self {
        self.exec.push(path.into());
        self
    }
    /// The network mode, replacing the profile's (`Off`, `On` or `Proxy`;
    /// `Filtered` needs a profile's ports and is refused here).
    pub fn network(mut self, mode: NetMode) -> Self {
        self.network = Some(mode);
        self
    }
    /// A name (or `*.pattern`) the proxy of mode `Proxy` also allows.
    pub fn allow_domain(mut self, name: impl Into<String>) -> Self {
        self.domains.push(name.into());
        self
    }
    /// Run with what this kernel can enforce instead of refusing.
    pub fn best_effort(mut self, yes: bool) -> Self {
        self.best_effort = yes;
        self
    }
    /// Plain errno filters: no denials or executed commands are recorded.
    pub fn no_capture(mut self, yes: bool) -> Self {
        self.no_capture = yes;
        self
    }
    /// Also observe path and connect calls (`cordon run --trace`).
    pub fn trace(mut self, yes: bool) -> Self {
        self.trace = yes;
        self
    }
    /// Append one JSON line per command to this file.
    pub fn audit_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.audit_log = Some(path.into());
        self
    }

    /// `cordon session serve`'s arguments for these settings.
    fn serve_args(&self) -> Result<Vec<OsString>> {
        let mut a: Vec<OsString> = vec!["session".into(), "serve".into()];
        if let Some(p) = &self.profile {
            a.extend(["--profile".into(), p.into()]);
        }
        if let Some(w) = &self.workspace {
            a.extend(["--workspace".into(), w.into()]);
        }
        for (flag, list) in [
            ("--allow-read", &self.read),
            ("--allow-write", &self.write),
            ("--allow-exec", &self.exec),
        ] {
            for p in list {
                a.extend([flag.into(), p.into()]);
            }
        }
        if let Some(m) = self.network {
            let name = match m {
                NetMode::Off => "off",
                NetMode::On => "on",
                NetMode::Proxy => "proxy",
                NetMode::Filtered => {
                    return Err(Error::Usage(
                        "network mode filtered takes its ports from a profile; use a profile that says it".into(),
                    ));
                }
            };
            a.extend(["--net".into(), name.into()]);
        }
        for d in &self.domains {
            a.extend(["--allow-domain".into(), d.into()]);
        }
        if let Some(l) = &self.audit_log {
            a.extend(["--audit-log".into(), l.into()]);
        }
        for (flag, on) in [
            ("--best-effort", self.best_effort),
            ("--no-capture", self.no_capture),
            ("--trace", self.trace),
        ] {
            if on {
                a.push(flag.into());
            }
        }
        Ok(a)
    }

    /// Start the sandbox's server and wait until it has loaded the profile
    /// and checked the policy (a bad profile fails here, with its location).
    pub fn build(self) -> Result<Sandbox> {
        let workspace = match &self.workspace {
            Some(w) => std::fs::canonicalize(w),
            None => std::env::current_dir().and_then(std::fs::canonicalize),
        }
        .map_err(|e| Error::Workspace {
            path: self.workspace.clone().unwrap_or_else(|| ".".into()),
            source: e,
        })?;
        let launcher = find_launcher(self.launcher.as_deref(), &workspace)?;
        let args = self.serve_args()?;
        let fail = |step, source| Error::Session {
            name: "(library)".into(),
            step,
            source,
        };
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| fail("creating the control socket", e.into()))?;
        // The server's end is its stdin: passed by posix_spawn's file actions,
        // so no other child of this program inherits it.
        let helper = std::process::Command::new(&launcher)
            .args(&args)
            .stdin(std::process::Stdio::from(theirs))
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| fail("starting the sandbox's server", e))?;
        let mut sandbox = Sandbox {
            control: Some(ours),
            helper,
            info: None,
        };
        let mut buf = vec![0u8; 64 * 1024];
        let n = recv(sandbox.control().as_raw_fd(), &mut buf, MsgFlags::empty())
            .map_err(|e| fail("reading the server's first word", e.into()))?;
        let info: Option<Info> = serde_json::from_slice(&buf[..n]).ok();
        match info {
            Some(i) if i.error.is_none() => {
                sandbox.info = Some(i);
                Ok(sandbox)
            }
            Some(i) => Err(Error::Escaped {
                message: i.error.unwrap_or_default(),
                code: exit::LAUNCHER,
            }),
            None => {
                let status = sandbox.helper.wait().ok();
                Err(Error::Escaped {
                    message: format!(
                        "the sandbox's server ({}) ended before it was ready ({})",
                        launcher.display(),
                        status.map_or("no status".into(), |s| s.to_string())
                    ),
                    code: exit::LAUNCHER,
                })
            }
        }
    }
}

/// The `cordon` binary to serve a sandbox: the one asked for, else
/// `$CORDON_LAUNCHER`, else the first `cordon` in `$PATH` that a sandbox could
/// not have planted: not in a relative `$PATH` entry, the workspace, or a
/// shared scratch directory, and not writable by group or others. The
/// program's own directory is not searched: an agent run from its build tree
/// would run a `cordon` its own commands wrote there.
fn find_launcher(asked: Option<&Path>, workspace: &Path) -> Result<PathBuf> {
    if let Some(p) = asked {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("CORDON_LAUNCHER").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let scratch = [
        Path::new("/tmp"),
        Path::new("/var/tmp"),
        Path::new("/dev/shm"),
    ];
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let Ok(dir) = std::fs::canonicalize(&dir) else {
            continue;
        };
        if dir.starts_with(workspace) || scratch.iter().any(|s| dir.starts_with(s)) {
            continue;
        }
        let c = dir.join("cordon");
        if trusted_file(&c) {
            return Ok(c);
        }
    }
    Err(Error::Usage(
        "no cordon binary to serve the sandbox: install it in $PATH (outside the workspace), or name it with SandboxBuilder::launcher or $CORDON_LAUNCHER".into(),
    ))
}

/// A regular file, executable, that neither group nor others may write.
fn trusted_file(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p)
        .is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0 && m.mode() & 0o022 == 0)
}

/// A prepared sandbox: its profile loaded and checked once, its commands
/// spawned with [`Sandbox::command`]. Share it between threads by reference.
/// Dropping it ends every command still running (SIGTERM, forwarded to each
/// payload; SIGKILL two seconds later) and waits for its server.
#[derive(Debug)]
pub struct Sandbox {
    control: Option<OwnedFd>,
    helper: std::process::Child,
    info: Option<Info>,
}

impl Sandbox {
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    fn control(&self) -> &OwnedFd {
        self.control
            .as_ref()
            .expect("the control socket lives as long as the sandbox")
    }

    /// What the server said when it was ready: profile, workspace, warnings.
    pub fn info(&self) -> &Info {
        self.info
            .as_ref()
            .expect("a built sandbox has its server's description")
    }

    /// A command to run in this sandbox, as `std::process::Command::new`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command<'_> {
        Command {
            sandbox: self,
            argv: vec![program.as_ref().to_os_string()],
            set: Vec::new(),
            cwd: None,
            report: None,
            stdio: [Stdio::Inherit, Stdio::Inherit, Stdio::Inherit],
        }
    }

    /// End every command and the server now (as dropping it does).
    pub fn stop(mut self) -> Result<()> {
        self.end()
    }

    fn end(&mut self) -> Result<()> {
        let Some(c) = self.control.take() else {
            return Ok(());
        };
        drop(c);
        self.helper.wait().map(drop).map_err(|e| Error::Session {
            name: "(library)".into(),
            step: "waiting for the sandbox's server",
            source: e,
        })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

/// Where a command's standard stream goes.
#[derive(Debug)]
pub enum Stdio {
    /// This program's own descriptor (0, 1 or 2).
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe to this program ([`Child::stdin`], `stdout`, `stderr`).
    Piped,
    /// This descriptor (a file, a socket, one end of a pipe).
    Fd(OwnedFd),
}

impl From<std::fs::File> for Stdio {
    fn from(f: std::fs::File) -> Stdio {
        Stdio::Fd(f.into())
    }
}

impl From<OwnedFd> for Stdio {
    fn from(f: OwnedFd) -> Stdio {
        Stdio::Fd(f)
    }
}

/// One command to run in a sandbox.
#[derive(Debug)]
pub struct Command<'s> {
    sandbox: &'s Sandbox,
    argv: Vec<OsString>,
    set: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    report: Option<PathBuf>,
    stdio: [Stdio; 3],
}

impl Command<'_> {
    pub fn arg(&mut self, a: impl AsRef<OsStr>) -> &mut Self {
        self.argv.push(a.as_ref().to_os_string());
        self
    }
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.argv
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }
    /// Set a variable for this command, whatever the profile's `[env]`
    /// filters say (the rest of this program's environment goes through them).
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.set.push((key.into(), value.into()));
        self
    }
    /// Where the command starts (default: this program's current directory).
    pub fn current_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.cwd = Some(dir.into());
        self
    }
    /// Also write this command's run report (JSON) to this file.
    pub fn report(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.report = Some(path.into());
        self
    }
    pub fn stdin(&mut self, s: impl Into<Stdio>) -> &mut Self {
        self.stdio[0] = s.into();
        self
    }
    pub fn stdout(&mut self, s: impl Into<Stdio>) -> &mut Self {
        self.stdio[1] = s.into();
        self
    }
    pub fn stderr(&mut self, s: impl Into<Stdio>) -> &mut Self {
        self.stdio[2] = s.into();
        self
    }

    /// Start the command. Returns once the server has taken it; its
    /// launch (and a launch error) comes with [`Child::wait`].
    pub fn spawn(&mut self) -> Result<Child> {
        let fail = |step, source| Error::Session {
            name: "(library)".into(),
            step,
            source,
        };
        let cwd = match self.cwd.take() {
            Some(c) => std::path::absolute(&c).unwrap_or(c),
            None => {
                std::env::current_dir().map_err(|e| fail("reading the current directory", e))?
            }
        };
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let (mut stdin, mut stdout, mut stderr) = (None, None, None);
        let mut theirs: Vec<OwnedFd> = Vec::new();
        for (i, s) in self.stdio.iter_mut().enumerate() {
            let fd: OwnedFd = match std::mem::replace(s, Stdio::Inherit) {
                Stdio::Inherit => match i {
                    0 => std::io::stdin().as_fd().try_clone_to_owned(),
                    1 => std::io::stdout().as_fd().try_clone_to_owned(),
                    _ => std::io::stderr().as_fd().try_clone_to_owned(),
                }
                // A stream this program closed: the command gets /dev/null.
                .or_else(|_| null(i))
                .map_err(|e| fail("passing a standard stream", e))?,
                Stdio::Null => null(i).map_err(|e| fail("opening /dev/null", e))?,
                Stdio::Piped => {
                    let (r, w) = std::io::pipe().map_err(|e| fail("creating a pipe", e))?;
                    if i == 0 {
                        stdin = Some(w);
                        r.into()
                    } else {
                        if i == 1 {
                            stdout = Some(r);
                        } else {
                            stderr = Some(r);
                        }
                        w.into()
                    }
                }
                Stdio::Fd(f) => f,
            };
            theirs.push(fd);
        }
        let (chan, chan_theirs) =
            UnixStream::pair().map_err(|e| fail("creating the command's channel", e))?;
        let req = Request::Run(RunRequest {
            argv: self.argv.clone(),
            env,
            set: self.set.clone(),
            cwd,
            report: self.report.take(),
            quiet: true,
            errors: false,
            fresh: false,
        });
        let mut fds: Vec<RawFd> = vec![chan_theirs.as_raw_fd()];
        fds.extend(theirs.iter().map(|f| f.as_raw_fd()));
        wire::send(self.sandbox.control().as_fd(), &req, &fds)
            .map_err(|e| fail("sending the command to the sandbox's server", e))?;
        drop((chan_theirs, theirs));
        let mut channel = BufReader::new(chan);
        match wire::read_event(&mut channel) {
            Ok(Some(Event::Started { id })) => Ok(Child {
                stdin,
                stdout,
                stderr,
                id,
                channel,
                refused: None,
            }),
            Ok(Some(Event::Done(d))) => Ok(Child {
                stdin,
                stdout,
                stderr,
                id: 0,
                channel,
                refused: Some(d),
            }),
            Ok(_) => Err(fail(
                "reading the server's answer",
                std::io::Error::other("the sandbox's server has ended"),
            )),
            Err(e) => Err(fail("reading the server's answer", e)),
        }
    }

    /// Run the command, wait for it, and say how it ended.
    pub fn status(&mut self) -> Result<Outcome> {
        self.spawn()?.wait()
    }

    /// Run the command with its stdout and stderr collected (unless set).
    pub fn output(&mut self) -> Result<Output> {
        for i in [1, 2] {
            if matches!(self.stdio[i], Stdio::Inherit) {
                self.stdio[i] = Stdio::Piped;
            }
        }
        let mut child = self.spawn()?;
        let err = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut e) = err {
                let _ = e.read_to_end(&mut v);
            }
            v
        });
        let mut stdout = Vec::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_end(&mut stdout);
        }
        let stderr = reader.join().unwrap_or_default();
        let outcome = child.wait()?;
        Ok(Output {
            outcome,
            stdout,
            stderr,
        })
    }
}

fn null(i: usize) -> std::io::Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(i == 0)
        .write(i != 0)
        .open("/dev/null")
        .map(Into::into)
}

/// A command running in a sandbox.
#[derive(Debug)]
pub struct Child {
    pub stdin: Option<std::io::PipeWriter>,
    pub stdout: Option<std::io::PipeReader>,
    pub stderr: Option<std::io::PipeReader>,
    id: u64,
    channel: BufReader<UnixStream>,
    /// The server refused it before it started (its answer).
    refused: Option<wire::Done>,
}

impl Child {
    /// Its number in the session (0 when the server refused it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Send `signal` to the command: SIGHUP, SIGINT, SIGQUIT, SIGTERM and
    /// SIGWINCH reach the payload as `cordon run` forwards them; SIGKILL ends
    /// the command's whole tree at once (its launcher still puts back what
    /// it changed and reports: exit 137). Others are ignored, and so is any
    /// signal to a command that has ended.
    pub fn signal(&mut self, signal: i32) -> Result<()> {
        let mut line = serde_json::to_vec(&Event::Signal { signal }).unwrap_or_default();
        line.push(b'\n');
        use std::io::Write;
        self.channel
            .get_ref()
            .write_all(&line)
            .map_err(|e| Error::Session {
                name: "(library)".into(),
                step: "sending a signal to the command",
                source: e,
            })
    }

    /// End the command and its tree now.
    pub fn kill(&mut self) -> Result<()> {
        self.signal(libc::SIGKILL)
    }

    /// Wait for the command to end (its stdin is closed first, as std does).
    /// A launch that failed (exit 125: a secret that cannot be read, a
    /// policy this kernel cannot enforce) is an error; a command that was not
    /// found or not executable is an outcome (127, 126), as in `cordon run`.
    pub fn wait(&mut self) -> Result<Outcome> {
        drop(self.stdin.take());
        let done = match self.refused.take() {
            Some(d) => d,
            None => loop {
                match wire::read_event(&mut self.channel) {
                    Ok(Some(Event::Done(d))) => break d,
                    Ok(Some(_)) => continue,
                    Ok(None) => {
                        return Err(Error::Session {
                            name: "(library)".into(),
                            step: "waiting for the command",
                            source: std::io::Error::other("the sandbox's server has ended"),
                        });
                    }
                    Err(e) => {
                        return Err(Error::Session {
                            name: "(library)".into(),
                            step: "waiting for the command",
                            source: e,
                        });
                    }
                }
            },
        };
        match done.report {
            None if done.code == exit::LAUNCHER => Err(Error::Escaped {
                message: done.error.unwrap_or_else(|| "the launch failed".into()),
                code: exit::LAUNCHER,
            }),
            report => Ok(Outcome::from_done(
                done.code,
                done.error,
                report.map(|b| *b),
            )),
        }
    }
}

/// How a command ended, and what the sandbox saw.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The contract's exit code: the command's status, 128+N after signal N,
    /// 124 on timeout, 126 not executable, 127 not found.
    pub code: u8,
    /// The signal that ended the command, if one did.
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub denials: Vec<Denial>,
    pub executed: Vec<Executed>,
    /// The layers that held (absent when the command was killed before its
    /// launcher could report).
    pub enforced: Option<Enforced>,
    /// Why it did not run (126, 127), or why there is no report.
    pub not_executed: Option<String>,
    /// The whole run report, in the schema `cordon run --report` writes.
    pub report: Option<Report>,
}

impl Outcome {
    fn from_done(code: u8, error: Option<String>, report: Option<Report>) -> Outcome {
        Outcome {
            code,
            signal: report
                .as_ref()
                .and_then(|r| r.signal)
                .or_else(|| (code > 128 && report.is_none()).then(|| code as i32 - 128)),
            timed_out: report.as_ref().is_some_and(|r| r.timed_out),
            denials: report
                .as_ref()
                .map(|r| r.denials.clone())
                .unwrap_or_default(),
            executed: report
                .as_ref()
                .map(|r| r.executed.clone())
                .unwrap_or_default(),
            enforced: report.as_ref().map(|r| r.enforced.clone()),
            not_executed: error,
            report,
        }
    }

    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// [`Command::output`]: how it ended, and what it printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub outcome: Outcome,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}
