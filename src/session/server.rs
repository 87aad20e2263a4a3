//! A session's server: one process that holds a loaded profile and runs each
//! command it is asked for in a worker of its own.
//!
//! The server is single-threaded, so it may fork; each worker is a launcher
//! process as `cordon run` is (its own signal mask, subreaper flag, waits,
//! Landlock domain, seccomp filter, limits and report), with the client's
//! descriptors as its stdio. Whatever a launch changes in its process happens
//! in the worker, never in the server, and never in a program that embeds the
//! library (it talks to a server it started; see `client`).
//!
//! Every command is a fresh launch from the session's profile, so a path on
//! the deny list that appears after the session started is denied to the
//! next command; a profile file changed since the start is reported (and
//! refused with `fresh`), never picked up silently.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::Serialize;

use super::wire::{self, Done, Event, Info, Received, Request, RunRequest};
use crate::error::{Error, Result, exit};
use crate::launch::Launch;
use crate::profile::{Overrides, Profile, ProfileRef};
use crate::report::{Denial, Report};
use crate::vars::Context;

/// What every command of a session runs with: `cordon run`'s options,
/// without the command and the per-command report.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub profile: String,
    pub workspace: Option<PathBuf>,
    pub overrides: Overrides,
    pub best_effort: bool,
    pub verbose: bool,
    pub trace: bool,
    /// Capture refused syscalls and executed commands (`--no-capture` clears it).
    pub capture: bool,
    /// Record changed files in a command's report (`--no-changes` clears it).
    pub changes: bool,
    pub audit_log: Option<PathBuf>,
    pub allow_unsafe_workspace: bool,
}

/// How the server learns that its session is over, besides `Stop`.
#[derive(Debug)]
pub enum Lifetime {
    /// A named session: when this process (the one that started it) exits,
    /// or the deadline passes.
    Named {
        owner: Option<OwnedFd>,
        deadline: Option<Instant>,
    },
    /// The library's: when its one connection (the `Sandbox`) hangs up.
    Embedded,
}

/// The most commands a session keeps in its report (the rest are counted).
const MAX_RECORDS: usize = 10_000;
/// The records' budget (JSON bytes) before they lose their denials.
const MAX_RECORD_BYTES: usize = 16 << 20;
/// The most commands running at once.
const MAX_RUNNING: usize = 512;
/// A worker's summary for the session's report: written into a pipe before the
/// worker exits, so it must fit the pipe's buffer (the server reads it later).
const MAX_SUMMARY: usize = 60 * 1024;
/// How long the commands get to end after a SIGTERM when the session stops.
const GRACE: Duration = Duration::from_secs(2);

/// A session, loaded and checked, not serving yet.
#[derive(Debug)]
pub struct Server {
    name: String,
    settings: Settings,
    profile: Profile,
    profile_sha: String,
    workspace: PathBuf,
    started_at: SystemTime,
    warnings: Vec<String>,
    report: Option<crate::outfile::OwnFile>,
    socket: Option<PathBuf>,
    /// The namespaces the commands share (none without namespaces).
    shared: Option<std::sync::Arc<crate::sandbox::SessionNs>>,
}

/// One running command.
#[derive(Debug)]
struct Worker {
    id: u64,
    pid: Pid,
    pidfd: OwnedFd,
    /// The server's copy of the command's channel: the client's signal lines
    /// come in on it, and the fallback `Done` goes out when the worker died
    /// without writing one.
    channel: OwnedFd,
    /// Input seen on the channel (partial lines); None once the client hung up.
    input: Option<Vec<u8>>,
    summary: OwnedFd,
    summary_bytes: Vec<u8>,
    /// The client asked for SIGKILL: the tree is killed on every wake-up.
    kill_pending: bool,
}

/// One command in the session's report.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CommandRecord {
    pub id: u64,
    pub argv: Vec<String>,
    pub cwd: String,
    pub started_at: String,
    pub duration_ms: u64,
    pub exit_code: i32,
    pub timed_out: bool,
    pub denials: Vec<Denial>,
    /// Denials of this command not kept here (its own report has the first 1000).
    pub dropped: u64,
}

/// The session's report, written when it ends.
#[derive(Debug, Serialize)]
struct SessionReport<'a> {
    version: u32,
    cordon_version: &'static str,
    session: &'a str,
    profile: &'a str,
    workspace: String,
    started_at: String,
    ended_at: String,
    ended_by: &'a str,
    commands: &'a [CommandRecord],
    /// Commands beyond the report's bound, counted only.
    commands_dropped: u64,
}

impl Server {
    /// Load the profile and check the policy once, so that a bad profile fails
    /// the start (exit 125) rather than every command.
    pub fn load(name: String, mut settings: Settings, report: Option<&Path>) -> Result<Server> {
        // A profile file is named absolutely: the server changes directory.
        if let ProfileRef::Path(p) = ProfileRef::parse(&settings.profile) {
            if let Ok(abs) = std::path::absolute(&p) {
                settings.profile = abs.to_string_lossy().into_owned();
            }
        }
        if let Some(w) = &settings.workspace {
            settings.workspace = std::path::absolute(w).ok();
        }
        let (profile, ctx) = crate::launch::load(
            &settings.profile,
            &settings.overrides,
            settings.workspace.clone(),
        )?;
        if !settings.allow_unsafe_workspace {
            if let Some(why) = crate::policy::workspace_hazard(&ctx.workspace, ctx.home.as_deref())
            {
                return Err(Error::UnsafeWorkspace {
                    path: ctx.workspace.clone(),
                    why,
                });
            }
        }
        let policy = crate::policy::Policy::new(&profile, &ctx, crate::policy::Missing::Skip)?;
        let report = match report {
            Some(p) => {
                let f = crate::outfile::OwnFile::at(p, crate::outfile::Own::Report)?;
                f.refuse_inside(
                    policy
                        .fs
                        .grants
                        .iter()
                        .filter(|g| g.access.can_write())
                        .map(|g| g.path.as_path()),
                )?;
                f.check_writable()?;
                Some(f)
            }
            None => None,
        };
        Ok(Server {
            name,
            profile_sha: crate::report::profile_sha256(&profile.texts),
            profile,
            workspace: ctx.workspace,
            settings,
            started_at: SystemTime::now(),
            warnings: Vec::new(),
            report,
            socket: None,
            shared: None,
        })
    }

    /// A launch of `argv` under the session's profile in `ctx`, with `set`
    /// added to its `[env] set`.
    fn launch(
        &self,
        ctx: Context,
        set: Vec<(String, String)>,
        argv: Vec<std::ffi::OsString>,
    ) -> Launch {
        let mut profile = self.profile.clone();
        if !set.is_empty() {
            profile.apply_overrides(
                &Overrides {
                    set,
                    ..Default::default()
                },
                &ctx.cwd,
            );
        }
        let s = &self.settings;
        Launch {
            profile,
            ctx,
            command: argv,
            best_effort: s.best_effort,
            verbose: false,
            quiet: true,
            dry_run: false,
            report: None,
            audit_log: s.audit_log.clone(),
            trace: s.trace,
            capture: s.capture,
            changes: s.capture && s.changes,
            allow_unsafe_workspace: s.allow_unsafe_workspace,
            sign_report: true,
            keep_report: true,
            print_errors: false,
            session: self.shared.clone(),
        }
    }

    /// The launch the shared namespaces are prepared from: this process's
    /// environment, in the workspace.
    fn template(
        &self,
        set: Vec<(String, String)>,
        argv: Vec<std::ffi::OsString>,
    ) -> Result<Launch> {
        let mut ctx = Context::from_process(Some(self.workspace.clone()))?;
        ctx.cwd = self.workspace.clone();
        Ok(self.launch(ctx, set, argv))
    }

    /// Remove this control socket when the session ends.
    pub fn remove_at_end(&mut self, socket: PathBuf) {
        self.socket = Some(socket);
    }

    pub fn info(&self, commands: u64, running: u64) -> Info {
        Info {
            name: self.name.clone(),
            pid: std::process::id(),
            profile: self.settings.profile.clone(),
            workspace: self.workspace.display().to_string(),
            started_at: crate::report::rfc3339(self.started_at),
            commands,
            running,
            profile_changed: self.profile_changed(),
            warnings: self.warnings.clone(),
            error: None,
        }
    }

    /// Whether the profile's files now say something else than at the start
    /// (a file that no longer loads has changed)
    /// (its `extends` and the workspace's `.cordon.toml` included, one added
    /// since counts), loaded the way the start loaded them.
    fn profile_changed(&self) -> bool {
        crate::launch::load(
            &self.settings.profile,
            &self.settings.overrides,
            Some(self.workspace.clone()),
        )
        .map(|(p, _)| crate::report::profile_sha256(&p.texts) != self.profile_sha)
        .unwrap_or(true)
    }

    /// Serve until the session ends: accept connections on `listener` (a named
    /// session), or serve `first` alone (the library's). Never returns.
    pub fn serve(mut self, listener: Option<OwnedFd>, first: Option<OwnedFd>, life: Lifetime) -> ! {
        // The shared namespaces are made here, in the serving process, which
        // their init's death signal then follows.
        match self.template(Vec::new(), vec!["/bin/true".into()]).and_then(|l| crate::launch::prepare_session(&l)) {
            Ok(ns) => self.shared = ns.map(std::sync::Arc::new),
            Err(e) => self.warnings.push(format!(
                "the session's commands do not share namespaces (each gets a sandbox of its own): {}",
                crate::error::chain(&e)
            )),
        }
        // The server's own signals: a terminal's ^C or hang-up is for the
        // client in the foreground, which forwards it to its command.
        for s in [
            Signal::SIGINT,
            Signal::SIGQUIT,
            Signal::SIGHUP,
            Signal::SIGPIPE,
        ] {
            let _ = crate::sys::ignore_signal(s as libc::c_int);
        }
        let mut state = State {
            server: self,
            listener,
            conns: first.into_iter().collect(),
            workers: Vec::new(),
            records: Vec::new(),
            record_bytes: 0,
            dropped: 0,
            next_id: 1,
            stoppers: Vec::new(),
            life,
        };
        let why = state.run();
        state.stop(why)
    }
}

#[derive(Debug)]
struct State {
    server: Server,
    listener: Option<OwnedFd>,
    conns: Vec<OwnedFd>,
    workers: Vec<Worker>,
    records: Vec<CommandRecord>,
    /// The records' size as JSON, against [`MAX_RECORD_BYTES`].
    record_bytes: usize,
    dropped: u64,
    next_id: u64,
    /// Channels of `Stop` requests, answered once everything has ended.
    stoppers: Vec<OwnedFd>,
    life: Lifetime,
}

/// What one poll entry stands for.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Listener,
    Owner,
    Conn(usize),
    Exit(usize),
    Summary(usize),
    Channel(usize),
}

impl State {
    /// The loop; returns why the session ends.
    fn run(&mut self) -> &'static str {
        loop {
            let mut slots = Vec::new();
            let mut fds = Vec::new();
            fn watch(fd: BorrowedFd<'_>) -> PollFd<'_> {
                PollFd::new(fd, PollFlags::POLLIN)
            }
            if let Some(l) = &self.listener {
                slots.push(Slot::Listener);
                fds.push(watch(l.as_fd()));
            }
            let mut deadline = None;
            if let Lifetime::Named { owner, deadline: d } = &self.life {
                if let Some(o) = owner {
                    slots.push(Slot::Owner);
                    fds.push(watch(o.as_fd()));
                }
                deadline = *d;
            }
            for (i, c) in self.conns.iter().enumerate() {
                slots.push(Slot::Conn(i));
                fds.push(watch(c.as_fd()));
            }
            for (i, w) in self.workers.iter().enumerate() {
                slots.push(Slot::Exit(i));
                fds.push(watch(w.pidfd.as_fd()));
                slots.push(Slot::Summary(i));
                fds.push(watch(w.summary.as_fd()));
                if w.input.is_some() {
                    slots.push(Slot::Channel(i));
                    fds.push(watch(w.channel.as_fd()));
                }
            }
            for w in self.workers.iter().filter(|w| w.kill_pending) {
                w.kill_tree();
            }
            let pending = self.workers.iter().any(|w| w.kill_pending);
            let timeout = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return "timeout";
                    }
                    PollTimeout::try_from(left.max(Duration::from_millis(1)))
                        .unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            };
            let timeout = if pending {
                PollTimeout::from(20u8)
            } else {
                timeout
            };
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return "error",
            }
            let ready: Vec<(Slot, PollFlags)> = slots
                .iter()
                .zip(&fds)
                .filter_map(|(s, f)| f.revents().filter(|r| !r.is_empty()).map(|r| (*s, r)))
                .collect();
            drop(fds);
            // Removals go last and from the highest index down, so the
            // indices of this round stay valid.
            let mut gone_conns = Vec::new();
            let mut gone_workers = Vec::new();
            for (slot, rev) in ready {
                match slot {
                    Slot::Listener => self.accept(),
                    Slot::Owner => return "owner",
                    Slot::Conn(i) => {
                        if !self.receive(i) {
                            gone_conns.push(i);
                        }
                    }
                    Slot::Summary(i) => self.workers[i].read_summary(),
                    Slot::Channel(i) => self.workers[i].read_input(rev),
                    Slot::Exit(i) => gone_workers.push(i),
                }
                if !self.stoppers.is_empty() {
                    return "stop";
                }
            }
            gone_workers.sort_unstable();
            for i in gone_workers.into_iter().rev() {
                let w = self.workers.swap_remove(i);
                self.finish(w);
            }
            gone_conns.sort_unstable();
            for i in gone_conns.into_iter().rev() {
                self.conns.swap_remove(i);
            }
            if matches!(self.life, Lifetime::Embedded) && self.conns.is_empty() {
                return "client";
            }
        }
    }

    fn accept(&mut self) {
        let Some(l) = &self.listener else { return };
        let Ok(raw) =
            nix::sys::socket::accept4(l.as_raw_fd(), nix::sys::socket::SockFlag::SOCK_CLOEXEC)
        else {
            return;
        };
        let conn = crate::sys::own_fd(raw);
        // Only this user, and never a process of one of our own sandboxes
        // (unix-socket mediation keeps them from this socket already; this is
        // the second lock).
        let ok =
            nix::sys::socket::getsockopt(&conn.as_fd(), nix::sys::socket::sockopt::PeerCredentials)
                .is_ok_and(|c| {
                    c.uid() == nix::unistd::geteuid().as_raw()
                        && c.pid() > 0
                        && !self.inside_a_command(c.pid() as u32)
                });
        if ok {
            self.conns.push(conn);
        }
    }

    /// Whether `pid` descends from one of the running commands' workers.
    fn inside_a_command(&self, pid: u32) -> bool {
        // The commands' launchers, and the shared namespaces' init, which
        // adopts what the commands leave running.
        let mut workers: Vec<u32> = self.workers.iter().map(|w| w.pid.as_raw() as u32).collect();
        workers.extend(self.server.shared.iter().map(|s| s.pid.as_raw() as u32));
        let mut p = pid;
        for _ in 0..4096 {
            if workers.contains(&p) {
                return true;
            }
            match parent_of(p) {
                Some(pp) if pp > 1 && pp != p => p = pp,
                Some(_) => return false,
                // Gone or unreadable (a peer that exited before the accept):
                // not known to be outside, so refused.
                None => return true,
            }
        }
        // A chain that long is not a process tree we know: refuse it.
        true
    }

    /// Handle what came on connection `i`; false when it has ended.
    fn receive(&mut self, i: usize) -> bool {
        let got = match wire::recv(self.conns[i].as_fd()) {
            Ok(g) => g,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return true,
            Err(_) => return false,
        };
        match got {
            Received::End => false,
            Received::Bad(_) => true,
            Received::Request(req, mut fds) => {
                if fds.is_empty() {
                    return true;
                }
                let channel = fds.remove(0);
                match req {
                    Request::Info => {
                        let info = self
                            .server
                            .info(self.next_id - 1, self.workers.len() as u64);
                        let _ = wire::write_event(fd_writer(&channel), &Event::Info(info));
                    }
                    Request::Stop => self.stoppers.push(channel),
                    Request::Run(run) => self.start(run, channel, fds),
                }
                true
            }
        }
    }

    /// Start one command in a worker of its own.
    fn start(&mut self, req: RunRequest, channel: OwnedFd, stdio: Vec<OwnedFd>) {
        let refuse = |channel: &OwnedFd, msg: String| {
            let _ = wire::write_event(
                fd_writer(channel),
                &Event::Done(Done {
                    code: exit::LAUNCHER,
                    error: Some(msg),
                    report: None,
                }),
            );
        };
        if stdio.len() != 3 {
            return refuse(
                &channel,
                "a run request without its three standard descriptors".into(),
            );
        }
        if self.workers.len() >= MAX_RUNNING {
            return refuse(
                &channel,
                format!(
                    "session {}: {MAX_RUNNING} commands are running already",
                    self.server.name
                ),
            );
        }
        let changed = self.server.profile_changed();
        if changed && req.fresh {
            return refuse(
                &channel,
                format!(
                    "session {}: the profile {} changed since the session started, and --fresh refuses the session's older policy (start a new session)",
                    self.server.name,
                    crate::term::field(&self.server.settings.profile)
                ),
            );
        }
        let id = self.next_id;
        self.next_id += 1;
        if wire::write_event(fd_writer(&channel), &Event::Started { id }).is_err() {
            return;
        }
        let Ok((sum_r, sum_w)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
            return refuse(&channel, "creating the command's summary pipe".into());
        };
        let server_pid = std::process::id();
        match crate::sys::fork() {
            Ok(None) => {
                // The worker: nothing of the server's but what this command needs.
                let mut keep = vec![channel.as_raw_fd(), sum_w.as_raw_fd()];
                keep.extend(self.server.shared.iter().map(|s| s.pidfd.as_raw_fd()));
                keep.extend(stdio.iter().map(|f| f.as_raw_fd()));
                for fd in self.server_fds() {
                    if !keep.contains(&fd) {
                        let _ = nix::unistd::close(fd);
                    }
                }
                worker(
                    &self.server,
                    id,
                    req,
                    changed,
                    channel,
                    stdio,
                    sum_w,
                    server_pid,
                )
            }
            Ok(Some(pid)) => {
                let pid = Pid::from_raw(pid);
                let Ok(pidfd) = crate::sys::pidfd_open(pid.as_raw(), 0) else {
                    // Cannot watch it: end it now rather than lose it.
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    return refuse(&channel, "watching the command's worker".into());
                };
                let _ = set_nonblocking(&channel);
                let _ = set_nonblocking(&sum_r);
                self.workers.push(Worker {
                    id,
                    pid,
                    pidfd,
                    channel,
                    input: Some(Vec::new()),
                    summary: sum_r,
                    summary_bytes: Vec::new(),
                    kill_pending: false,
                });
            }
            Err(e) => refuse(&channel, format!("forking the command's worker: {e}")),
        }
    }

    /// Every descriptor the server holds (closed in a worker).
    fn server_fds(&self) -> Vec<RawFd> {
        let mut v: Vec<RawFd> = self.listener.iter().map(|f| f.as_raw_fd()).collect();
        v.extend(self.conns.iter().map(|f| f.as_raw_fd()));
        v.extend(self.stoppers.iter().map(|f| f.as_raw_fd()));
        for w in &self.workers {
            v.extend([
                w.pidfd.as_raw_fd(),
                w.channel.as_raw_fd(),
                w.summary.as_raw_fd(),
            ]);
        }
        if let Lifetime::Named { owner: Some(o), .. } = &self.life {
            v.push(o.as_raw_fd());
        }
        v
    }

    /// A worker has exited: reap it, keep its summary, and answer for it
    /// when it could not.
    fn finish(&mut self, mut w: Worker) {
        let status = waitpid(w.pid, Some(WaitPidFlag::__WALL)).ok();
        w.read_summary();
        let summary: Option<CommandRecord> = serde_json::from_slice(&w.summary_bytes).ok();
        if summary.is_none() {
            // Died before it could say how the command ended (SIGKILL).
            let code = match status {
                Some(WaitStatus::Signaled(_, s, _)) => 128 + s as u8,
                Some(WaitStatus::Exited(_, c)) => c as u8,
                _ => exit::LAUNCHER,
            };
            let _ = wire::write_event(
                fd_writer(&w.channel),
                &Event::Done(Done {
                    code,
                    error: Some(format!(
                        "the command's launcher ended before it reported (exit {code}); no report"
                    )),
                    report: None,
                }),
            );
        }
        let rec = summary.unwrap_or_else(|| CommandRecord {
            id: w.id,
            argv: Vec::new(),
            cwd: String::new(),
            started_at: String::new(),
            duration_ms: 0,
            exit_code: match status {
                Some(WaitStatus::Signaled(_, s, _)) => 128 + s as i32,
                _ => exit::LAUNCHER as i32,
            },
            timed_out: false,
            denials: Vec::new(),
            dropped: 0,
        });
        if self.records.len() >= MAX_RECORDS {
            self.dropped += 1;
            return;
        }
        // The server's memory and the session's report stay bounded: past the
        // budget a record keeps its command and status, and counts its denials.
        let mut rec = rec;
        let mut size = serde_json::to_vec(&rec).map_or(0, |b| b.len());
        if self.record_bytes + size > MAX_RECORD_BYTES {
            rec.dropped += rec.denials.len() as u64;
            rec.denials.clear();
            rec.argv.truncate(16);
            for a in &mut rec.argv {
                a.truncate(256);
            }
            size = serde_json::to_vec(&rec).map_or(0, |b| b.len());
        }
        self.record_bytes += size;
        self.records.push(rec);
    }

    /// End every command (SIGTERM, forwarded to each payload; SIGKILL after
    /// the grace period), write the session's report, answer `Stop`, exit.
    fn stop(mut self, why: &'static str) -> ! {
        for w in &self.workers {
            let _ = kill(w.pid, Signal::SIGTERM);
        }
        // After the grace period the commands' trees are killed, never their
        // launchers: a launcher must live to put back what its command changed
        // (the guard), write its report and remove its cgroups. Only one that
        // has not ended well after that is killed itself.
        let killed = Instant::now() + GRACE;
        let until = killed + 3 * GRACE;
        let mut trees_killed = false;
        while !self.workers.is_empty() {
            let now = Instant::now();
            if now >= killed && !trees_killed {
                for w in &self.workers {
                    w.kill_tree();
                }
                trees_killed = true;
            }
            let left = if now >= until {
                for w in &self.workers {
                    let _ = kill(w.pid, Signal::SIGKILL);
                }
                Duration::from_millis(100)
            } else if trees_killed {
                until - now
            } else {
                killed - now
            };
            let mut fds: Vec<PollFd> = self
                .workers
                .iter()
                .map(|w| PollFd::new(w.pidfd.as_fd(), PollFlags::POLLIN))
                .collect();
            let t = PollTimeout::try_from(left.max(Duration::from_millis(10)))
                .unwrap_or(PollTimeout::MAX);
            let _ = poll(&mut fds, t);
            let exited: Vec<usize> = fds
                .iter()
                .enumerate()
                .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(i, _)| i)
                .collect();
            drop(fds);
            for i in exited.into_iter().rev() {
                let w = self.workers.swap_remove(i);
                self.finish(w);
            }
        }
        if let Some(s) = &self.server.socket {
            let _ = std::fs::remove_file(s);
        }
        // What the commands left running in the shared namespaces ends here.
        if let Some(ns) = self
            .server
            .shared
            .take()
            .and_then(|a| std::sync::Arc::try_unwrap(a).ok())
        {
            ns.end();
        }
        let mut code = 0;
        if let Some(out) = &self.server.report {
            let rep = SessionReport {
                version: 1,
                cordon_version: env!("CARGO_PKG_VERSION"),
                session: &self.server.name,
                profile: &self.server.settings.profile,
                workspace: self.server.workspace.display().to_string(),
                started_at: crate::report::rfc3339(self.server.started_at),
                ended_at: crate::report::rfc3339(SystemTime::now()),
                ended_by: why,
                commands: &self.records,
                commands_dropped: self.dropped,
            };
            let written = serde_json::to_vec_pretty(&rep)
                .map_err(|e| Error::Output {
                    what: "cannot write the session report",
                    path: out.canonical(),
                    source: std::io::Error::other(e),
                })
                .and_then(|b| out.replace(&b));
            if let Err(e) = written {
                crate::term::eprintln_line(&format!("cordon: {}", crate::error::chain(&e)));
                code = exit::LAUNCHER as i32;
            }
        }
        let info = self.server.info(self.next_id - 1, 0);
        for s in &self.stoppers {
            let _ = set_blocking(s);
            let _ = wire::write_event(fd_writer(s), &Event::Info(info.clone()));
        }
        crate::sys::exit_now(code)
    }
}

impl Worker {
    /// SIGKILL to the launcher's children: the command's init (its PID
    /// namespace goes with it) or, without namespaces, the payload (the
    /// launcher, a subreaper, then ends what is left of the tree).
    fn kill_tree(&self) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else {
            return;
        };
        for t in tasks.flatten() {
            let Ok(list) = std::fs::read_to_string(t.path().join("children")) else {
                continue;
            };
            for c in list.split_whitespace().filter_map(|c| c.parse().ok()) {
                let _ = kill(Pid::from_raw(c), Signal::SIGKILL);
            }
        }
    }

    fn read_summary(&mut self) {
        let mut buf = [0u8; 8192];
        loop {
            match nix::unistd::read(&self.summary, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if self.summary_bytes.len() + n <= MAX_SUMMARY {
                        self.summary_bytes.extend_from_slice(&buf[..n]);
                    }
                }
            }
        }
    }

    /// The client's lines: signals for this command. A client that hung up
    /// is gone like a closed terminal: its command gets SIGHUP.
    fn read_input(&mut self, rev: PollFlags) {
        let Some(input) = self.input.as_mut() else {
            return;
        };
        let mut buf = [0u8; 1024];
        let mut ended = rev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR);
        loop {
            match nix::unistd::read(&self.channel, &mut buf) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => input.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
            if input.len() > 64 * 1024 {
                input.clear();
            }
        }
        let mut signals = Vec::new();
        while let Some(nl) = input.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = input.drain(..=nl).collect();
            if let Ok(Event::Signal { signal: s }) = serde_json::from_slice(&line) {
                signals.push(s);
            }
        }
        for s in signals {
            match forwardable(s) {
                // The command's tree, not its launcher, which still has to put
                // back what it changed and report; repeated until the launcher
                // ends, so that a tree that does not exist yet is killed once
                // it does.
                Some(Signal::SIGKILL) => {
                    self.kill_pending = true;
                    self.kill_tree();
                }
                Some(sig) => {
                    let _ = kill(self.pid, sig);
                }
                None => {}
            }
        }
        if ended {
            self.input = None;
            let _ = kill(self.pid, Signal::SIGHUP);
        }
    }
}

/// The signals a client may send its command: those `cordon run` forwards to
/// its payload, and SIGKILL, which ends the command's tree (its launcher
/// lives on to put back what the command changed and report).
fn forwardable(s: i32) -> Option<Signal> {
    let sig = Signal::try_from(s).ok()?;
    matches!(
        sig,
        Signal::SIGHUP
            | Signal::SIGINT
            | Signal::SIGQUIT
            | Signal::SIGTERM
            | Signal::SIGWINCH
            | Signal::SIGKILL
    )
    .then_some(sig)
}

/// The parent of `pid`, from /proc/PID/stat (the field after the command's
/// closing parenthesis, which a command name cannot fake).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn set_nonblocking(fd: &OwnedFd) -> nix::Result<()> {
    set_flags(fd, true)
}

fn set_blocking(fd: &OwnedFd) -> nix::Result<()> {
    set_flags(fd, false)
}

fn set_flags(fd: &OwnedFd, nonblocking: bool) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let mut fl = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fl.set(OFlag::O_NONBLOCK, nonblocking);
    fcntl(fd, FcntlArg::F_SETFL(fl)).map(drop)
}

/// A writer on a borrowed descriptor (the channel stays the caller's).
fn fd_writer(fd: &OwnedFd) -> impl Write + '_ {
    struct W<'a>(&'a OwnedFd);
    impl Write for W<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(nix::unistd::write(self.0, buf)?)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    W(fd)
}

/// The worker: become the command's launcher, and say how it ended.
#[allow(clippy::too_many_arguments)]
fn worker(
    server: &Server,
    id: u64,
    req: RunRequest,
    changed: bool,
    channel: OwnedFd,
    stdio: Vec<OwnedFd>,
    summary: OwnedFd,
    server_pid: u32,
) -> ! {
    // A server that is gone takes its commands with it.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid().as_raw() as u32 != server_pid {
        crate::sys::exit_now(exit::LAUNCHER as i32);
    }
    // The server ignores these; the launcher blocks and forwards them.
    for s in [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGHUP] {
        let _ = crate::sys::default_signal(s as libc::c_int);
    }
    let ok = nix::unistd::dup2_stdin(&stdio[0]).is_ok()
        && nix::unistd::dup2_stdout(&stdio[1]).is_ok()
        && nix::unistd::dup2_stderr(&stdio[2]).is_ok();
    crate::timing::mark("arguments");
    drop(stdio);
    let started_at = SystemTime::now();
    let started = Instant::now();
    let argv: Vec<String> = req
        .argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cwd = req.cwd.display().to_string();
    let (quiet, errors) = (req.quiet, req.errors);
    if changed && !quiet {
        crate::launch::warn(&format!(
            "session {}: the profile {} changed since the session started; this command runs under the session's policy (--fresh refuses instead)",
            server.name,
            crate::term::field(&server.settings.profile)
        ));
    }
    let result = if !ok {
        Err(Error::Session {
            name: server.name.clone(),
            step: "taking the client's standard descriptors",
            source: std::io::Error::last_os_error(),
        })
    } else {
        launch_for(server, req)
    };
    let done = match result {
        Ok(f) => Done {
            code: f.code,
            error: f.report.as_ref().and_then(|r| r.not_executed.clone()),
            report: f.report.map(Box::new),
        },
        Err(e) => {
            let text = crate::error::chain(&e);
            if errors {
                crate::term::eprintln_line(&format!("cordon: {text}"));
            }
            Done {
                code: e.exit_code(),
                error: Some(text),
                report: None,
            }
        }
    };
    let _ = set_blocking(&channel);
    let _ = wire::write_event(fd_writer(&channel), &Event::Done(done.clone()));
    let rec = record(id, argv, cwd, started_at, started, &done);
    let _ = fd_writer(&summary).write_all(&summary_bytes(rec));
    crate::sys::exit_now(done.code as i32)
}

/// The command's launch: the session's profile with this client's
/// environment, cwd and variables.
fn launch_for(server: &Server, req: RunRequest) -> Result<crate::launch::Finished> {
    let ctx = Context::from_parts(Some(server.workspace.clone()), req.cwd.clone(), req.env)?;
    let mut l = server.launch(ctx, req.set, req.argv);
    l.quiet = req.quiet;
    l.verbose = server.settings.verbose && !req.quiet;
    l.report = req.report;
    l.print_errors = req.errors;
    crate::launch::execute_kept(l, &[])
}

/// This command's entry in the session's report.
fn record(
    id: u64,
    argv: Vec<String>,
    cwd: String,
    started_at: SystemTime,
    started: Instant,
    done: &Done,
) -> CommandRecord {
    let r: Option<&Report> = done.report.as_deref();
    CommandRecord {
        id,
        argv,
        cwd,
        started_at: crate::report::rfc3339(started_at),
        duration_ms: started.elapsed().as_millis() as u64,
        exit_code: done.code as i32,
        timed_out: r.is_some_and(|r| r.timed_out),
        denials: r.map(|r| r.denials.clone()).unwrap_or_default(),
        dropped: r.map_or(0, |r| r.capture.dropped),
    }
}

/// The record as JSON that fits [`MAX_SUMMARY`]: denials, then argv, are
/// shortened until it does (the command's own report keeps them all).
fn summary_bytes(mut rec: CommandRecord) -> Vec<u8> {
    loop {
        let b = serde_json::to_vec(&rec).unwrap_or_default();
        if b.len() <= MAX_SUMMARY {
            return b;
        }
        if !rec.denials.is_empty() {
            let keep = rec.denials.len() / 2;
            rec.dropped += (rec.denials.len() - keep) as u64;
            rec.denials.truncate(keep);
        } else {
            rec.argv.truncate(rec.argv.len() / 2);
            for a in &mut rec.argv {
                a.truncate(256);
            }
            if rec.argv.is_empty() {
                rec.cwd.truncate(256);
                return serde_json::to_vec(&rec).unwrap_or_default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_forwarded_signals_reach_a_command() {
        for s in [1, 2, 3, 9, 15, 28] {
            assert!(forwardable(s).is_some(), "{s}");
        }
        for s in [0, 10, 12, 17, 19, 20, 64, -1, 1000] {
            assert!(forwardable(s).is_none(), "{s}");
        }
    }

    #[test]
    fn a_summary_always_fits_the_pipe() {
        let d = Denial {
            kind: crate::report::DenialKind::Fs,
            operation: "open".into(),
            target: "x".repeat(2000),
            pid: 1,
            exe: "/bin/x".into(),
            errno: "EACCES".into(),
            rule: "r".into(),
            suggestion: "s".into(),
            observed_by: crate::report::ObservedBy::SeccompNotify,
            at_ms: 0,
        };
        let rec = CommandRecord {
            id: 1,
            argv: vec!["a".repeat(100_000); 8],
            cwd: "/w".into(),
            started_at: String::new(),
            duration_ms: 0,
            exit_code: 0,
            timed_out: false,
            denials: vec![d; 1000],
            dropped: 0,
        };
        let b = summary_bytes(rec);
        assert!(b.len() <= MAX_SUMMARY, "{}", b.len());
        let back: CommandRecord = serde_json::from_slice(&b).unwrap();
        assert_eq!(back.denials.len() as u64 + back.dropped, 1000);
    }

    #[test]
    fn the_parent_comes_from_after_the_last_parenthesis() {
        let me = std::process::id();
        assert_eq!(parent_of(me), Some(nix::unistd::getppid().as_raw() as u32));
    }
}
