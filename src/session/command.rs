//! `cordon session start | run | list | stop` (and the library's hidden
//! `serve`): the CLI's side of sessions. Owns turning flags into a server's
//! settings, starting the server in the background, and a client that passes
//! its standard streams and forwards its signals.

use std::io::BufReader;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::dir;
use super::server::{Lifetime, Server, Settings};
use super::wire::{self, Event, Info, Request, RunRequest};
use crate::cli::{RunOptions, SessionCommand, SessionRunArgs, SessionStartArgs};
use crate::error::{Error, Result, exit};

pub fn run(cmd: SessionCommand) -> Result<u8> {
    match cmd {
        SessionCommand::Start(a) => start(a),
        SessionCommand::Serve(a) => serve(a),
        SessionCommand::Run(a) => client_run(a),
        SessionCommand::List { json } => list(json),
        SessionCommand::Stop { name } => stop(&name),
    }
}

/// The server's settings from `run`'s flags; `--report` is the session's.
fn settings(o: RunOptions) -> Result<(Settings, Option<std::path::PathBuf>)> {
    if o.dry_run {
        return Err(Error::Usage(
            "a session has no --dry-run (cordon run --dry-run shows what a profile enforces)"
                .into(),
        ));
    }
    let overrides = crate::commands::overrides(
        o.allow_read,
        o.allow_write,
        o.allow_exec,
        o.net,
        o.allow_domain,
    );
    Ok((
        Settings {
            profile: o.profile.profile,
            workspace: o.profile.workspace,
            overrides,
            best_effort: o.best_effort,
            verbose: o.verbose,
            trace: o.trace,
            capture: !o.no_capture,
            changes: !o.no_capture && !o.no_changes,
            audit_log: o.audit_log,
            allow_unsafe_workspace: o.allow_unsafe_workspace,
        },
        o.report,
    ))
}

fn start(a: SessionStartArgs) -> Result<u8> {
    let name = a.name.clone().unwrap_or_else(dir::new_name);
    dir::check_name(&name).map_err(|reason| Error::SessionRefused {
        name: crate::trust::escape_controls(&name),
        reason,
    })?;
    let deadline = match &a.timeout {
        Some(t) => Some(
            Instant::now()
                + crate::units::parse_duration(t)
                    .map_err(|e| Error::Usage(format!("--timeout {t}: {e}")))?,
        ),
        None => None,
    };
    let (settings, report) = settings(a.options)?;
    let base = dir::ensure()?;
    if a.owner == Some(0) {
        return Err(Error::Usage("--owner 0 names no process".into()));
    }
    let path = dir::socket_path(&base, &name);
    if std::fs::symlink_metadata(&path).is_ok() {
        match dir::connect_to(&name) {
            Ok(_) => {
                return Err(Error::SessionRefused {
                    name,
                    reason: "a session of that name is running (cordon session stop ends it)"
                        .into(),
                });
            }
            Err(Error::SessionRefused { reason, .. }) if reason.contains("has ended") => {
                dir::remove_dead(&name)
            }
            Err(e) => return Err(e),
        }
    }
    let mut server = Server::load(name.clone(), settings, report.as_deref())?;
    let listener = listen(&name, &path)?;
    server.remove_at_end(path.clone());
    // The session's owner: by default the leader of the caller's session
    // (its parent would often be a `$(...)` subshell that exits at once).
    let owner_pid = match a.owner {
        Some(p) => p as i32,
        None => nix::unistd::getsid(None).map_or(0, |p| p.as_raw()),
    };
    let owner = match crate::sys::pidfd_open(owner_pid, 0) {
        Ok(fd) => Some(fd),
        Err(e) if a.owner.is_some() => {
            return Err(Error::Session {
                name,
                step: "watching its owner (--owner)",
                source: e,
            });
        }
        Err(_) => None,
    };
    match crate::sys::fork() {
        Ok(None) => {
            let _ = nix::unistd::setsid();
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                let _ = nix::unistd::dup2_stdin(&null);
                let _ = nix::unistd::dup2_stdout(&null);
                let _ = nix::unistd::dup2_stderr(&null);
            }
            let _ = std::env::set_current_dir("/");
            server.serve(Some(listener), None, Lifetime::Named { owner, deadline })
        }
        Ok(Some(_)) => {
            crate::term::print(&format!("{name}\n"));
            Ok(0)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(Error::Session {
                name,
                step: "starting its server",
                source: e,
            })
        }
    }
}

/// The named session's control socket: bound with no access for anyone else
/// from its first instant (umask), in the user's own directory.
fn listen(name: &str, path: &std::path::Path) -> Result<OwnedFd> {
    use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, socket};
    let fail = |step, source: nix::errno::Errno| Error::Session {
        name: name.into(),
        step,
        source: source.into(),
    };
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| fail("creating its control socket", e))?;
    let addr = UnixAddr::new(path).map_err(|e| fail("naming its control socket", e))?;
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = bind(sock.as_raw_fd(), &addr);
    nix::sys::stat::umask(old);
    bound.map_err(|e| fail("binding its control socket", e))?;
    nix::sys::socket::listen(&sock, Backlog::new(128).unwrap_or(Backlog::MAXCONN))
        .map_err(|e| fail("listening on its control socket", e))?;
    Ok(sock)
}

/// The library's server: its control socket is standard input.
fn serve(a: SessionStartArgs) -> Result<u8> {
    use nix::fcntl::{FcntlArg, fcntl};
    let raw =
        fcntl(std::io::stdin(), FcntlArg::F_DUPFD_CLOEXEC(3)).map_err(|e| Error::Session {
            name: "(library)".into(),
            step: "taking the control socket",
            source: e.into(),
        })?;
    let control = crate::sys::own_fd(raw);
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
    }
    let loaded = settings(a.options).and_then(|(s, report)| {
        Server::load(a.name.unwrap_or_else(dir::new_name), s, report.as_deref())
    });
    let first = |info: &Info| {
        let bytes = serde_json::to_vec(info).unwrap_or_default();
        let _ = nix::sys::socket::send(
            control.as_raw_fd(),
            &bytes,
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        );
    };
    match loaded {
        Ok(server) => {
            first(&server.info(0, 0));
            server.serve(None, Some(control), Lifetime::Embedded)
        }
        Err(e) => {
            first(&Info {
                name: String::new(),
                pid: std::process::id(),
                profile: String::new(),
                workspace: String::new(),
                started_at: String::new(),
                commands: 0,
                running: 0,
                profile_changed: false,
                warnings: Vec::new(),
                error: Some(crate::error::chain(&e)),
            });
            Ok(e.exit_code())
        }
    }
}

/// Send `req` to session `name` with a fresh channel first among `fds`;
/// the channel for its answers.
fn request(name: &str, req: &Request, fds: &[RawFd]) -> Result<BufReader<UnixStream>> {
    let conn = dir::connect_to(name)?;
    let (ours, theirs) = UnixStream::pair().map_err(|e| Error::Session {
        name: name.into(),
        step: "creating a channel",
        source: e,
    })?;
    let mut all = vec![theirs.as_raw_fd()];
    all.extend_from_slice(fds);
    wire::send(conn.as_fd(), req, &all).map_err(|e| Error::Session {
        name: name.into(),
        step: "sending the request",
        source: e,
    })?;
    Ok(BufReader::new(ours))
}

fn next_event(name: &str, ch: &mut BufReader<UnixStream>) -> Result<Event> {
    match wire::read_event(ch) {
        Ok(Some(e)) => Ok(e),
        Ok(None) => Err(Error::SessionRefused {
            name: name.into(),
            reason: "the session ended before it answered".into(),
        }),
        Err(e) => Err(Error::Session {
            name: name.into(),
            step: "reading its answer",
            source: e,
        }),
    }
}

/// `session run`: the command runs in the session's worker with this
/// process's standard streams; the signals this process gets go to it.
fn client_run(a: SessionRunArgs) -> Result<u8> {
    let name = a.name;
    let cwd = std::env::current_dir().map_err(|e| Error::Session {
        name: name.clone(),
        step: "reading the current directory",
        source: e,
    })?;
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let req = Request::Run(RunRequest {
        argv: a.command,
        env,
        set: Vec::new(),
        cwd,
        report: a.report.map(|p| std::path::absolute(&p).unwrap_or(p)),
        quiet: a.quiet,
        errors: true,
        fresh: a.fresh,
    });
    // Blocked before the request, so that none is lost; read from a signalfd.
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGWINCH,
    ] {
        mask.add(s);
    }
    let _ = mask.thread_block();
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok();
    let mut ch = request(&name, &req, &[0, 1, 2])?;
    let mut started = false;
    loop {
        if ch.buffer().is_empty() {
            use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
            let mut fds = vec![PollFd::new(ch.get_ref().as_fd(), PollFlags::POLLIN)];
            if let Some(s) = &sfd {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    return Err(Error::Session {
                        name,
                        step: "waiting for the command",
                        source: e.into(),
                    });
                }
            }
            let signalled = fds
                .get(1)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
            let answered = fds[0].revents().is_some_and(|r| !r.is_empty());
            drop(fds);
            if signalled {
                while let Some(Ok(Some(info))) = sfd.as_ref().map(|s| s.read_signal()) {
                    let mut line = serde_json::to_vec(&Event::Signal {
                        signal: info.ssi_signo as i32,
                    })
                    .unwrap_or_default();
                    line.push(b'\n');
                    use std::io::Write;
                    let _ = ch.get_ref().write_all(&line);
                }
            }
            if !answered {
                continue;
            }
        }
        match next_event(&name, &mut ch)? {
            Event::Started { .. } => started = true,
            Event::Done(d) => {
                // The worker printed its own errors. A refusal before it
                // started, or a worker that died before it could say how the
                // command ended, is said here.
                if let Some(e) = d.error.filter(|_| !started || d.report.is_none()) {
                    if !started {
                        return Err(Error::Escaped {
                            message: e,
                            code: d.code,
                        });
                    }
                    if e.contains("ended before it reported") {
                        crate::term::eprintln_line(&format!("cordon: session {name}: {e}"));
                    }
                }
                return Ok(d.code);
            }
            _ => continue,
        }
    }
}

fn info_of(name: &str) -> Result<Info> {
    let mut ch = request(name, &Request::Info, &[])?;
    match next_event(name, &mut ch)? {
        Event::Info(i) => Ok(i),
        _ => Err(Error::SessionRefused {
            name: name.into(),
            reason: "an answer that is not a description".into(),
        }),
    }
}

fn list(json: bool) -> Result<u8> {
    let mut out = String::new();
    let mut rows = Vec::new();
    for name in dir::names() {
        match info_of(&name) {
            Ok(i) => rows.push(i),
            // A server that is gone leaves its socket: removed here.
            Err(Error::SessionRefused { reason, .. }) if reason.contains("has ended") => {
                dir::remove_dead(&name)
            }
            Err(e) => crate::commands::warn(&crate::error::chain(&e)),
        }
    }
    if json {
        for r in &rows {
            out.push_str(&crate::term::json_line(r).unwrap_or_default());
            out.push('\n');
        }
    } else if rows.is_empty() {
        out.push_str("no sessions\n");
    } else {
        out.push_str("NAME\tPID\tPROFILE\tCOMMANDS\tRUNNING\tSTARTED\tWORKSPACE\n");
        for r in &rows {
            out.push_str(&format!(
                "{}\t{}\t{}{}\t{}\t{}\t{}\t{}\n",
                r.name,
                r.pid,
                crate::term::field(&r.profile),
                if r.profile_changed {
                    " (changed since)"
                } else {
                    ""
                },
                r.commands,
                r.running,
                r.started_at,
                crate::term::field(&r.workspace)
            ));
        }
    }
    crate::term::print(&out);
    Ok(0)
}

fn stop(name: &str) -> Result<u8> {
    let mut ch = request(name, &Request::Stop, &[])?;
    // Answered once every command has ended and the report is written.
    let _ = ch.get_ref().set_read_timeout(Some(Duration::from_secs(60)));
    match next_event(name, &mut ch)? {
        Event::Info(i) => {
            crate::term::eprintln_line(&format!(
                "cordon: session {}: stopped after {} commands",
                i.name, i.commands
            ));
            Ok(0)
        }
        _ => Ok(exit::LAUNCHER),
    }
}
