//! Denial capture, in the launcher: the seccomp user-notification supervisor
//! (refused syscalls answered with the policy's errno and recorded; every
//! execve of the tree recorded; with --trace, path and connect calls evaluated
//! against the policy and recorded as predicted denials), and the audit reader
//! for Landlock's own denial records (ABI 7) where audit is enabled and we may
//! read it. Everything here observes; the kernel still enforces.
//!
//! The records are the event stream a learn mode will consume: [`Executed`] and
//! [`Denial`] in the order they happened.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::poll::{PollFd, PollFlags};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
    bind, recvmsg, socket, socketpair,
};

use crate::bounded::{self, Bounds};
use crate::explain::{self, Op, Query};
use crate::metadata;
use crate::own_process;
use crate::plan::Plan;
use crate::policy::Policy;
use crate::report::{Denial, Executed};
use crate::seccomp::{Supervised, SyscallRule};
use crate::sys;
use crate::syscalls;

/// What the payload sends the launcher after installing its filter: the listener
/// fd (SCM_RIGHTS) with b"L", or b"N" and a reason when no listener could be had.
pub const LISTENER: u8 = b'L';
pub const NO_LISTENER: u8 = b'N';

/// How notes start when pathname unix sockets cannot be mediated.
pub const UNMEDIATED: &str =
    "pathname unix sockets not mediated (connect and send reach any socket DAC allows)";

/// The `key=value` fields of one audit record.
type Fields = BTreeMap<String, String>;

/// Capture options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureOptions {
    /// Seccomp user notification for refused syscalls and execve.
    pub notify: bool,
    /// Also observe path and connect calls and predict Landlock's answer.
    pub trace: bool,
}

/// The launcher's end of capture.
#[derive(Debug)]
pub struct Monitor {
    started: Instant,
    opts: CaptureOptions,
    /// Receives the listener from the payload.
    channel: Option<OwnedFd>,
    /// The listener could not be taken (the payload was killed): why.
    listener_failure: Option<String>,
    listener: Option<OwnedFd>,
    audit: Option<OwnedFd>,
    pub executed: Vec<Executed>,
    pub denials: Vec<Denial>,
    pub dropped: u64,
    pub sources: Vec<String>,
    pub notes: Vec<String>,
    /// Caps on everything above and below, and the deduplication.
    bounds: Bounds,
    /// Serials of `pending` records, whose SYSCALL records are kept.
    pending_serials: BTreeSet<String>,
    pending_bytes: usize,
    /// Landlock domains created by our payload (from audit), and their records so far.
    our_pids: BTreeSet<u32>,
    domains: BTreeSet<String>,
    /// Landlock access records (domain, serial, time), matched at the end of the run.
    pending: Vec<(String, String, u64, Fields)>,
    audit_syscalls: BTreeMap<String, Fields>,
    audit_creators: BTreeMap<String, Fields>,
    /// The payload's own execve, which we made: see [`Monitor::expect_exec`].
    first_exec: Option<Vec<String>>,
    /// Audit records are to be read; [`Monitor::start_audit`] subscribes.
    audit_wanted: bool,
    /// Subscribed, but whether audit is enabled is not known yet.
    audit_unconfirmed: bool,
    /// Connect and send mediation (unix_mediate), once the listener is here.
    mediator: Option<crate::unix_mediate::Mediator>,
    /// When the run started, on the clock new inodes are stamped with.
    started_coarse: (i64, u32),
    /// The change record, when the filter sends write-intent calls (see `changes`).
    pub changes: Option<crate::changes::Recorder>,
    /// Approval gates (`[approve]`), when the profile has any.
    pub approvals: Option<crate::approval::Approvals>,
}

/// The payload's end of the listener channel.
#[derive(Debug)]
pub struct ChildEnd(pub OwnedFd);

impl Monitor {
    /// Pathname sockets born since `t` count as the sandbox's own: a
    /// session's commands reach the sockets the session's earlier commands made.
    pub fn sandbox_since(&mut self, t: (i64, u32)) {
        self.started_coarse = t;
    }

    /// Set up capture before the fork. Returns the child's end of the channel
    /// when seccomp notification is used.
    pub fn new(
        opts: CaptureOptions,
        host: &crate::probe::Host,
        started: Instant,
    ) -> (Monitor, Option<ChildEnd>) {
        let mut m = Monitor {
            started,
            opts,
            channel: None,
            listener: None,
            audit: None,
            executed: Vec::new(),
            denials: Vec::new(),
            dropped: 0,
            sources: Vec::new(),
            notes: Vec::new(),
            bounds: Bounds::default(),
            pending_serials: BTreeSet::new(),
            pending_bytes: 0,
            our_pids: BTreeSet::new(),
            domains: BTreeSet::new(),
            pending: Vec::new(),
            audit_syscalls: BTreeMap::new(),
            audit_creators: BTreeMap::new(),
            first_exec: None,
            audit_wanted: false,
            audit_unconfirmed: false,
            mediator: None,
            listener_failure: None,
            started_coarse: sys::realtime_coarse(),
            changes: None,
            approvals: None,
        };
        let mut child = None;
        // The listener also serves connect and send mediation, which --no-capture
        // keeps: it turns off recording only.
        if host.user_notif {
            match socketpair(
                AddressFamily::Unix,
                SockType::SeqPacket,
                None,
                SockFlag::SOCK_CLOEXEC,
            ) {
                Ok((a, b)) => {
                    // The payload's pid comes with its message (see receive_listener).
                    let _ = nix::sys::socket::setsockopt(
                        &a,
                        nix::sys::socket::sockopt::PassCred,
                        &true,
                    );
                    m.channel = Some(a);
                    child = Some(ChildEnd(b));
                }
                Err(e) => m
                    .notes
                    .push(format!("syscall denials not captured: socketpair: {e}")),
            }
        } else {
            if opts.notify {
                m.notes.push("syscall denials and executed commands not captured: no seccomp user notification on this kernel".into());
            }
            m.notes.push(format!(
                "{UNMEDIATED}: no seccomp user notification on this kernel"
            ));
        }
        m.audit_wanted = host.is_root() && host.landlock.abi() >= crate::plan::abi::AUDIT;
        if !m.audit_wanted && !opts.trace {
            m.notes.push("Landlock (file and TCP) denials not observed: reading them needs root and audit; use --trace to predict them".into());
        }
        if opts.trace {
            m.sources.push("trace".into());
        }
        (m, child)
    }

    /// Subscribe to the kernel's audit records (Landlock denials), where we may.
    /// Called by `spawn` before the payload's execve, the first thing Landlock can
    /// deny. Only a socket and a bind: whether audit is enabled at all is asked
    /// later ([`Monitor::confirm_audit`]), because the kernel answers that
    /// question from a kernel thread it creates for the purpose, and waiting for
    /// one cost ~0.1 ms (often more, while init builds its namespaces) of every
    /// launch's critical path.
    pub fn start_audit(&mut self) {
        if !std::mem::take(&mut self.audit_wanted) {
            return;
        }
        match open_audit() {
            Ok(fd) => {
                self.audit = Some(fd);
                self.audit_unconfirmed = true;
                self.sources.insert(
                    self.sources
                        .iter()
                        .position(|s| s == "trace")
                        .unwrap_or(self.sources.len()),
                    "audit".into(),
                );
            }
            Err(e) => self
                .notes
                .push(format!("Landlock denials not observed: audit: {e}")),
        }
    }

    /// Whether the kernel's audit is enabled; if not, drop the subscription (no
    /// record will come) and say so. Called by `spawn` once the child is on its
    /// way, so the question overlaps the child's own steps; `finish` calls it
    /// otherwise.
    pub fn confirm_audit(&mut self) {
        if !std::mem::take(&mut self.audit_unconfirmed) {
            return;
        }
        let why = match audit_status() {
            Ok(s) if s.enabled => return,
            Ok(_) => None,
            Err(e) => Some(e),
        };
        self.audit = None;
        self.sources.retain(|s| s != "audit");
        self.notes.push(match why {
            Some(e) => format!("Landlock denials not observed: audit: {e}"),
            None if self.opts.trace => {
                "Landlock denials predicted by --trace (kernel audit is disabled)".into()
            }
            None => "Landlock (file and TCP) denials not observed: kernel audit is disabled; use --trace to predict them".into(),
        });
    }

    /// Descriptors to poll, with the events wanted.
    pub fn fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let mut v: Vec<(BorrowedFd<'_>, PollFlags)> = [&self.channel, &self.listener, &self.audit]
            .into_iter()
            .flatten()
            .map(|f| (f.as_fd(), PollFlags::POLLIN))
            .collect();
        if let Some(a) = &self.approvals {
            v.extend(a.fds());
        }
        v
    }

    /// When the monitor must look again without an event (an approver's time
    /// running out, an answer given without asking).
    pub fn wake_at(&self) -> Option<Instant> {
        self.approvals.as_ref().and_then(|a| a.wake_at())
    }

    /// A wait status the launcher collected for a process it did not start:
    /// an exec held for the gates stopping (or ending).
    pub fn waited(&mut self, st: nix::sys::wait::WaitStatus) {
        let Some(a) = self.approvals.as_mut() else {
            return;
        };
        let Some(pid) = st.pid() else {
            return;
        };
        if !a.holds(pid.as_raw() as u32) {
            return;
        }
        if let Some(mut d) = a.stopped(st) {
            d.at_ms = self.at_ms();
            self.record_always(d);
        }
        self.decide();
    }

    /// For the proxy: the way to ask about names (`approve.domains = "ask"`).
    pub fn domain_asker(&mut self) -> Option<crate::approval::DomainAsker> {
        self.approvals.as_mut().and_then(|a| a.domain_asker())
    }

    /// Whether an exec is held for the gates' check.
    pub fn holding(&self) -> bool {
        self.approvals.as_ref().is_some_and(|a| a.holding())
    }

    /// Collect the stops of held execs that nobody reaped for us (their exits
    /// are left to the launcher's own wait).
    pub fn poll_held(&mut self) {
        use nix::sys::wait::{Id, WaitPidFlag, waitid};
        let pids = match &self.approvals {
            Some(a) if a.holding() => a.held_pids(),
            _ => return,
        };
        for pid in pids {
            let flags = WaitPidFlag::WSTOPPED | WaitPidFlag::WNOHANG | WaitPidFlag::__WALL;
            if let Ok(st) = waitid(Id::Pid(nix::unistd::Pid::from_raw(pid as i32)), flags) {
                if st != nix::sys::wait::WaitStatus::StillAlive {
                    self.waited(st);
                }
            }
        }
    }

    /// Carry out the questions the approvers answered.
    fn decide(&mut self) {
        let Some(a) = self.approvals.as_mut() else {
            return;
        };
        let decided = a.service();
        for d in decided {
            self.carry_out(d);
        }
    }

    fn carry_out(&mut self, d: crate::approval::Decided) {
        use crate::approval::Subject;
        let Some(a) = self.approvals.as_mut() else {
            return;
        };
        let mut denial = d.denial;
        match d.subject {
            Subject::Exec { id } => {
                let Some(listener) = &self.listener else {
                    return;
                };
                if d.allow {
                    let argv = d.approved.as_ref().map(|x| x.argv.clone());
                    match a.hold(d.pid, d.approved, d.record) {
                        Ok(()) => {
                            let _ = sys::notif_send(listener, id, 0, true);
                            if let (Some(argv), true) = (argv, self.opts.notify) {
                                let at_ms = self.started.elapsed().as_millis() as u64;
                                self.bounds
                                    .exec(&mut self.executed, d.pid, argv, at_ms, false);
                            }
                        }
                        Err(e) => {
                            let _ = sys::notif_send(listener, id, libc::EPERM, false);
                            denial = Some(unheld(d.pid, e));
                        }
                    }
                } else {
                    let _ = sys::notif_send(listener, id, libc::EPERM, false);
                }
            }
            Subject::Held => a.release(d.pid, d.allow),
            Subject::Read { id, cloexec } => {
                let Some(listener) = &self.listener else {
                    return;
                };
                if d.allow {
                    match d.path.as_deref().map(open_gated) {
                        Some(Ok(fd)) => {
                            if sys::notif_addfd_send(listener, id, &fd, cloexec).is_err() {
                                let _ = sys::notif_send(listener, id, libc::EMFILE, false);
                            }
                        }
                        Some(Err(e)) => {
                            let _ = sys::notif_send(
                                listener,
                                id,
                                e.raw_os_error().unwrap_or(libc::EACCES),
                                false,
                            );
                        }
                        None => {
                            let _ = sys::notif_send(listener, id, libc::EACCES, false);
                        }
                    }
                } else {
                    let _ = sys::notif_send(listener, id, libc::EACCES, false);
                }
            }
            Subject::Domain { token } => a.reply(token, d.allow),
        }
        if let Some(d) = denial {
            self.record_always(d);
        }
    }

    /// Serve whatever is ready. `ready[i]` are the poll events of `fds()[i]`.
    pub fn service(&mut self, ready: &[PollFlags], policy: &Policy, plan: &Plan) {
        let mut events = ready.iter().copied();
        let mut next = |present: bool| {
            if present {
                events.next().unwrap_or(PollFlags::empty())
            } else {
                PollFlags::empty()
            }
        };
        let (ch, li, au) = (
            self.channel.is_some(),
            self.listener.is_some(),
            self.audit.is_some(),
        );
        let (ch, li, au) = (next(ch), next(li), next(au));
        let gone = |e: PollFlags| {
            !e.contains(PollFlags::POLLIN)
                && e.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
        };
        if ch.contains(PollFlags::POLLIN) {
            self.receive_listener();
        } else if gone(ch) {
            self.channel = None;
        }
        if li.contains(PollFlags::POLLIN) {
            self.notification(policy, plan);
        } else if gone(li) {
            // Every process that could notify has exited.
            self.listener = None;
        }
        if au.contains(PollFlags::POLLIN) {
            self.read_audit();
        }
        self.decide();
    }

    /// The next spawn's first notification is the payload's own execve of `argv`
    /// (`spawn` says so): the filter is installed just before it, and only the
    /// payload carries the filter. We
    /// wrote that call ourselves, so it is recorded from `argv` and let run at
    /// once, without reading the caller's memory: every launch pays this round
    /// trip.
    ///
    /// With exec gates, a gated command goes the general way (asked about);
    /// any other is let go as well without being held: nothing else runs in
    /// the sandbox yet, and the launcher wrote the call's path and argv.
    pub fn expect_exec(&mut self, program: &Path, argv: Vec<String>) {
        let gated = self.approvals.as_ref().is_some_and(|a| {
            let canon = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
            a.gates.exec_gate(&canon, &argv).is_some()
                || a.gates.exec_gate(program, &argv).is_some()
        });
        self.first_exec = (!gated).then_some(argv);
    }

    /// Why the launcher could not take the payload's listener, if so (it then
    /// killed the payload: see sandbox::install_notify).
    pub fn take_listener_failure(&mut self) -> Option<String> {
        self.listener_failure.take()
    }

    /// The payload, held before its execve, may go (see sandbox::spawn: the
    /// launcher's own work before the payload runs is done by the time the
    /// channel is served).
    fn acknowledge(ch: &OwnedFd) {
        let _ = nix::unistd::write(ch, b"A");
    }

    fn receive_listener(&mut self) {
        let Some(ch) = self.channel.take() else {
            return;
        };
        let mut buf = [0u8; 512];
        let mut cmsg = nix::cmsg_space!(libc::ucred);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            ch.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN) => {
                self.channel = Some(ch);
                return;
            }
            Err(_) => return,
        };
        let mut pid = None;
        for c in msg.cmsgs().into_iter().flatten() {
            if let ControlMessageOwned::ScmCredentials(cred) = c {
                pid = Some(cred.pid() as u32);
            }
        }
        let bytes = msg.bytes;
        let text = String::from_utf8_lossy(&buf[..bytes]).into_owned();
        // The payload wrote the listener's number; it waits for our byte before
        // closing it (sendmsg, which SCM_RIGHTS needs, is mediated by that very
        // listener).
        let take = |pid: u32, fd: i32| -> std::io::Result<OwnedFd> {
            let pidfd = sys::pidfd_open_thread(pid)?;
            sys::pidfd_getfd(&pidfd, fd)
        };
        match (text.as_bytes().first(), pid) {
            (Some(&LISTENER), Some(pid)) => {
                let got = text[1..]
                    .parse::<i32>()
                    .map_err(std::io::Error::other)
                    .and_then(|fd| take(pid, fd));
                match got {
                    Ok(fd) => {
                        // A payload that does not wait for it may have closed its
                        // end already (see sandbox::install_notify): no matter.
                        Self::acknowledge(&ch);
                        match crate::unix_mediate::Mediator::new(&fd, self.started_coarse) {
                            Ok(m) => self.mediator = Some(m),
                            // Every mediated call is then refused (see notification).
                            Err(e) => self.notes.push(format!("{UNMEDIATED}: {e}")),
                        }
                        self.listener = Some(fd);
                        if self.opts.notify {
                            self.sources.insert(0, "seccomp-notify".into());
                        }
                    }
                    // No acknowledgement: a payload waiting for one stops (exit 125)
                    // on EOF; one waiting in its execve for the listener we could
                    // not take would wait for ever, so it goes now.
                    Err(e) => {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                        self.listener_failure =
                            Some(format!("taking the seccomp listener from the payload: {e}"));
                        self.notes
                            .push(format!("{UNMEDIATED}: taking the seccomp listener: {e}"))
                    }
                }
            }
            (Some(&NO_LISTENER), _) => {
                // It waits for our word too; not acknowledged, it stops.
                Self::acknowledge(&ch);
                if self.opts.notify {
                    self.notes
                        .push(format!("syscall denials not captured: {}", &text[1..]));
                }
                self.notes.push(format!("{UNMEDIATED}: {}", &text[1..]));
            }
            _ => {}
        }
    }

    fn at_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// When the run started: every denial, the proxy's too, is timed from it.
    pub fn started(&self) -> Instant {
        self.started
    }

    fn record(&mut self, d: Denial) {
        // --no-capture: the supervisor still mediates, and records nothing of its
        // own (Landlock's audit records stay).
        if !self.opts.notify && d.observed_by == crate::report::ObservedBy::SeccompNotify {
            return;
        }
        self.bounds.denial(&mut self.denials, &mut self.dropped, d);
    }

    /// A denial recorded even with --no-capture: an approver's refusal is
    /// the run's record of a decision, not an observation.
    fn record_always(&mut self, d: Denial) {
        self.bounds.denial(&mut self.denials, &mut self.dropped, d);
    }

    /// The caps reached in this run, each with how many items it left out.
    pub fn truncated(&self) -> BTreeMap<String, u64> {
        self.bounds.truncated.clone()
    }

    fn our_pid(&mut self, pid: u32) {
        if self.our_pids.len() < bounded::MAX_PIDS {
            self.our_pids.insert(pid);
        }
    }

    fn notification(&mut self, policy: &Policy, plan: &Plan) {
        let Some(listener) = &self.listener else {
            return;
        };
        let n = match sys::notif_recv(listener) {
            Ok(n) => n,
            // ENOENT: the caller died or was interrupted before we read it.
            Err(e)
                if e.raw_os_error() == Some(libc::ENOENT)
                    || e.raw_os_error() == Some(libc::EINTR) =>
            {
                return;
            }
            Err(_) => {
                self.listener = None;
                return;
            }
        };
        let nr = n.data.nr as i64;
        let args = n.data.args;
        let pid = n.pid;
        if self.our_pids.len() < bounded::MAX_PIDS {
            self.our_pids.insert(pid);
        }
        let name = syscalls::name(nr).unwrap_or("unknown");
        let exec_gated = self.approvals.as_ref().is_some_and(|a| a.exec_gated());
        if let Some(argv) = self.first_exec.take() {
            if name == "execve" {
                let at_ms = self.at_ms();
                let _ = sys::notif_send(listener, n.id, 0, true);
                self.bounds
                    .exec(&mut self.executed, pid, argv, at_ms, false);
                return;
            }
        }
        let mediated = matches!(name, "connect" | "sendto" | "sendmsg" | "sendmmsg");
        if mediated && policy.syscalls.decide(nr, &args).is_none() {
            let at_ms = self.at_ms();
            let denial = match &mut self.mediator {
                Some(m) => m.handle(name, &n, policy, plan, at_ms),
                None => {
                    // No mediator could be made: fail closed.
                    let _ = sys::notif_send(listener, n.id, libc::EACCES, false);
                    None
                }
            };
            if let Some(d) = denial {
                self.record(d);
            }
            return;
        }
        let mem = Mem::open(pid);
        // Refused by the policy: answer with its errno, and record it.
        if let Some(rule) = policy.syscalls.decide(nr, &args).cloned() {
            let (operation, mut target) = describe_call(name, &args, mem.as_ref());
            // Supervised calls: let run, or performed here, unless they reach outside.
            match rule.supervised {
                Some(Supervised::OwnProcess(arg)) => {
                    let ours = own_process::belongs_to_run(
                        args[arg as usize] as i32 as i64,
                        std::process::id(),
                    );
                    if ours && sys::notif_send(listener, n.id, 0, true).is_ok() {
                        return;
                    }
                }
                Some(Supervised::Metadata) => {
                    let still_waiting = || sys::notif_id_valid(listener, n.id);
                    let m = mem.as_ref().map(|m| m as &dyn metadata::Memory);
                    match metadata::handle(pid, name, &args, m, policy, plan, &still_waiting) {
                        metadata::Outcome::Done(errno) => {
                            let _ = sys::notif_send(listener, n.id, errno, false);
                            return;
                        }
                        metadata::Outcome::Refused(object) => target = object,
                    }
                }
                None => {}
            }
            let exe = exe(pid);
            let _ = sys::notif_send(listener, n.id, rule.errno.raw(), false);
            let kind = if matches!(name, "socket" | "socketpair") {
                crate::report::DenialKind::Net
            } else {
                crate::report::DenialKind::Syscall
            };
            let v = explain::decide(policy, plan, &Query::Syscall(name.to_string()));
            let d = Denial {
                kind,
                operation,
                target,
                pid,
                exe,
                errno: rule.errno.name().into(),
                rule: rule_text(&rule),
                suggestion: v.suggestion.unwrap_or_default(),
                observed_by: crate::report::ObservedBy::SeccompNotify,
                at_ms: self.at_ms(),
            };
            self.record(d);
            return;
        }
        if name == "memfd_create" {
            self.memfd(n.id, pid, &args, mem.as_ref());
            return;
        }
        // The change record takes the "before" state while the caller waits.
        if let (Some(rec), Some(m)) = (self.changes.as_mut(), mem.as_ref()) {
            if crate::seccomp::observes_change(name, &args) {
                for path in change_paths(name, &args, m, pid) {
                    rec.before(path, || exe(pid));
                }
            }
        }
        if let (Some(a), Some(m)) = (self.approvals.as_mut(), mem.as_ref()) {
            if !a.gates.read.is_empty() && matches!(name, "open" | "openat" | "openat2") {
                if let Some((gate, path, cloexec)) = read_gate(a, name, &args, m, pid) {
                    a.ask(
                        crate::approval::Subject::Read { id: n.id, cloexec },
                        crate::gates::GateKind::Read,
                        gate,
                        pid,
                        path.display().to_string(),
                        Vec::new(),
                        None,
                        Some(path),
                    );
                    self.decide();
                    return;
                }
            }
        }
        // Observed: read and decide while the caller waits (it may exit the moment
        // it runs on, taking /proc/PID with it), then let it run.
        let observed = (self.opts.trace || name.starts_with("execve"))
            .then(|| mem.as_ref().map(|m| observe(name, &args, m, pid)))
            .flatten();
        let at_ms = self.at_ms();
        let predicted = match (&observed, self.opts.trace) {
            (Some(Observed { query: Some(q), .. }), true) => {
                let v = explain::decide(policy, plan, q);
                (!v.allowed).then(|| predicted_denial(q, v, pid, at_ms))
            }
            _ => None,
        };
        if exec_gated && name.starts_with("execve") {
            match self.gate_exec(n.id, pid, name, &args, mem.as_ref(), observed.as_ref()) {
                Gated::Asked => return,
                Gated::Refused(mut d) => {
                    d.at_ms = at_ms;
                    if let Some(l) = &self.listener {
                        let _ = sys::notif_send(l, n.id, libc::EPERM, false);
                    }
                    self.record_always(d);
                    return;
                }
                Gated::Held => {}
            }
        }
        let Some(listener) = &self.listener else {
            return;
        };
        let valid = sys::notif_id_valid(listener, n.id);
        let _ = sys::notif_send(listener, n.id, 0, true);
        if !valid {
            return;
        }
        if let Some((argv, cut)) = observed.and_then(|o| o.argv) {
            if self.opts.notify {
                self.bounds.exec(&mut self.executed, pid, argv, at_ms, cut);
            }
        }
        if let Some(d) = predicted {
            self.record(d);
        }
    }

    /// An execve of a run with exec gates: asked about when what the call names
    /// is gated; otherwise held, so that what the kernel runs is checked at its
    /// exec event (see `approval`).
    #[allow(clippy::too_many_arguments)]
    fn gate_exec(
        &mut self,
        id: u64,
        pid: u32,
        name: &str,
        args: &[u64; 6],
        mem: Option<&Mem>,
        observed: Option<&Observed>,
    ) -> Gated {
        let Some(a) = self.approvals.as_mut() else {
            return Gated::Held;
        };
        // A thread's exec takes its group's pid, which the hold cannot follow.
        if tgid(pid).is_some_and(|t| t != pid) {
            return Gated::Refused(Denial {
                kind: crate::report::DenialKind::Fs,
                operation: "exec".into(),
                target: String::new(),
                pid,
                exe: exe(pid),
                errno: "EPERM".into(),
                rule: "approve.exec: with exec gates, a program is executed by its process's main thread (a shell, or fork and exec)".into(),
                suggestion: String::new(),
                observed_by: crate::report::ObservedBy::Approval,
                at_ms: 0,
            });
        }
        let named = mem
            .and_then(|m| m.cstr(if name == "execveat" { args[1] } else { args[0] }))
            .unwrap_or_default();
        let resolved = match observed.and_then(|o| o.query.as_ref()) {
            Some(Query::Fs(_, p)) => Some(p.clone()),
            _ => None,
        };
        let argv = observed
            .and_then(|o| o.argv.as_ref())
            .map(|(v, _)| v.clone())
            .unwrap_or_default();
        let gate = resolved.as_ref().and_then(|p| {
            let g = a.gate_before(p, &argv)?;
            Some((g, std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())))
        });
        if let Some((g, canon)) = gate {
            // What steers the program is shown and approved with its argv.
            let envp = if name == "execveat" { args[3] } else { args[2] };
            let env = mem.map(|m| steering_env(m, envp)).unwrap_or_default();
            let approved =
                crate::approval::Approved::new(pid, named, resolved.as_deref(), argv.clone(), env);
            a.ask(
                crate::approval::Subject::Exec { id },
                crate::gates::GateKind::Exec,
                g,
                pid,
                canon.display().to_string(),
                argv,
                Some(approved),
                None,
            );
            self.decide();
            return Gated::Asked;
        }
        match a.hold(pid, None, None) {
            Ok(()) => Gated::Held,
            Err(e) => Gated::Refused(unheld(pid, e)),
        }
    }

    /// Make the payload's memfd ourselves, sealed non-executable, and hand it over
    /// as the call's result. An explicit MFD_EXEC is refused.
    fn memfd(&mut self, id: u64, pid: u32, args: &[u64; 6], mem: Option<&Mem>) {
        let Some(listener) = &self.listener else {
            return;
        };
        let flags = args[1] as libc::c_uint;
        if flags & libc::MFD_EXEC != 0 {
            let exe = exe(pid);
            let _ = sys::notif_send(listener, id, libc::EPERM, false);
            let d = Denial {
                kind: crate::report::DenialKind::Syscall,
                operation: "memfd_create".into(),
                target: "MFD_EXEC".into(),
                pid,
                exe,
                errno: "EPERM".into(),
                rule: "executable memfds are refused (code outside [filesystem] exec)".into(),
                suggestion: String::new(),
                observed_by: crate::report::ObservedBy::SeccompNotify,
                at_ms: self.at_ms(),
            };
            self.record(d);
            return;
        }
        let name = mem.and_then(|m| m.cstr(args[0])).unwrap_or_default();
        let cname = std::ffi::CString::new(name).unwrap_or_default();
        let made = sys::memfd_create(&cname, flags | libc::MFD_NOEXEC_SEAL);
        let valid = sys::notif_id_valid(listener, id);
        match made {
            Ok(fd) if valid => {
                if sys::notif_addfd_send(listener, id, &fd, flags & libc::MFD_CLOEXEC != 0).is_err()
                {
                    let _ = sys::notif_send(listener, id, libc::EMFILE, false);
                }
            }
            Ok(_) => {}
            // Flags the kernel refuses (or no MFD_NOEXEC_SEAL before 6.3): answer with
            // the kernel's own errno rather than creating an executable memfd.
            Err(e) => {
                let _ = sys::notif_send(
                    listener,
                    id,
                    e.raw_os_error().unwrap_or(libc::EINVAL),
                    false,
                );
            }
        }
    }

    /// Read the records of the run's last events. The kernel queues a record for
    /// its audit thread when the event happens (before the payload could exit),
    /// and the thread hands it to readers as it takes it off the queue: once
    /// AUDIT_GET reports the queue empty, what the run caused has been sent, and a
    /// short poll covers a record the thread had just taken. Waiting on the queue
    /// instead of a fixed 20 ms: a run with audit on paid those 20 ms every time.
    /// Bounded by the same 20 ms for a queue that does not empty (a busy or stuck
    /// audit daemon, a backlog of the host's own records).
    fn settle_audit(&mut self) {
        const LIMIT: std::time::Duration = std::time::Duration::from_millis(20);
        let deadline = Instant::now() + LIMIT;
        loop {
            self.read_audit();
            let now = Instant::now();
            match audit_status() {
                Ok(s) if s.backlog == 0 => break,
                Ok(_) if now < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(_) => break,
                // Cannot ask: wait as long as the bound, as before.
                Err(_) => {
                    std::thread::sleep(deadline.saturating_duration_since(now));
                    break;
                }
            }
        }
        if let Some(fd) = &self.audit {
            // The thread sends a record right after taking it off the queue (a few
            // instructions, without sleeping); 0.2 ms covers it many times over.
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            let wait =
                nix::sys::time::TimeSpec::from_duration(std::time::Duration::from_micros(200));
            let _ = nix::poll::ppoll(&mut fds, Some(wait), None);
        }
        self.read_audit();
    }

    fn read_audit(&mut self) {
        let Some(fd) = self.audit.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match nix::sys::socket::recv(fd, &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut off = 0;
            while off + 16 <= n {
                let len =
                    u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or_default()) as usize;
                let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap_or_default());
                if len < 16 || off + len > n {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[off + 16..off + len]).into_owned();
                self.audit_record(ty, &text);
                off += (len + 3) & !3;
            }
        }
    }

    /// Keep what our run's denials need. The records of one event share its serial
    /// (`audit(TIME:SERIAL)`): the Landlock access record names the domain and the
    /// path, the SYSCALL record the pid and the executable.
    fn audit_record(&mut self, ty: u16, text: &str) {
        const SYSCALL: u16 = 1300;
        const LANDLOCK_ACCESS: u16 = 1423;
        const LANDLOCK_DOMAIN: u16 = 1424;
        let (head, body) = text.split_once("): ").unwrap_or(("", text));
        let serial = head
            .rsplit_once(':')
            .map(|(_, s)| s.to_string())
            .unwrap_or_default();
        let fields = parse_fields(body);
        match ty {
            // Only those of the events kept below (the access record comes first):
            // the host's other records would pile up for the whole run.
            SYSCALL if self.pending_serials.contains(&serial) => {
                self.audit_syscalls.insert(serial, fields);
            }
            LANDLOCK_DOMAIN => {
                let Some(domain) = fields.get("domain").cloned() else {
                    return;
                };
                let pid = fields.get("pid").and_then(|p| p.parse::<u32>().ok());
                if fields.get("status").map(String::as_str) == Some("allocated")
                    && self.domains.len() < bounded::MAX_DOMAINS
                    && pid.is_some_and(|p| self.is_ours(p))
                {
                    self.domains.insert(domain.clone());
                    self.audit_creators.insert(domain, fields);
                }
            }
            LANDLOCK_ACCESS => {
                let Some(domain) = fields.get("domain").cloned() else {
                    return;
                };
                let at_ms = self.at_ms();
                let bytes: usize = fields.iter().map(|(k, v)| k.len() + v.len() + 64).sum();
                if self.pending.len() >= bounded::MAX_PENDING
                    || self.pending_bytes + bytes > bounded::MAX_PENDING_BYTES
                {
                    self.bounds.reached("audit_records");
                    return;
                }
                self.pending_bytes += bytes;
                self.pending_serials.insert(serial.clone());
                self.pending.push((domain, serial, at_ms, fields));
            }
            _ => {}
        }
    }

    /// A pid of our tree: one we started or saw in a notification, or a descendant of ours.
    fn is_ours(&self, pid: u32) -> bool {
        if self.our_pids.contains(&pid) {
            return true;
        }
        let me = std::process::id();
        let mut p = pid;
        for _ in 0..64 {
            let Some(ppid) = crate::sandbox::parent_of(p as i32).map(|p| p as u32) else {
                return false;
            };
            if ppid == me || self.our_pids.contains(&ppid) {
                return true;
            }
            if ppid <= 1 {
                return false;
            }
            p = ppid;
        }
        false
    }

    /// A process the launcher started itself (the payload, or init).
    pub fn adopt(&mut self, pid: u32) {
        self.our_pid(pid);
    }

    /// Drain what is left once the run is over (audit records trail the denial),
    /// and turn our domain's records into denials.
    pub fn finish(&mut self, policy: &Policy, plan: &Plan) {
        if let Some(a) = self.approvals.as_mut() {
            a.finish();
        }
        self.confirm_audit();
        if self.audit.is_none() {
            return;
        }
        self.settle_audit();
        for (domain, serial, at_ms, f) in std::mem::take(&mut self.pending) {
            if !self.domains.contains(&domain) {
                continue;
            }
            let who = self
                .audit_syscalls
                .get(&serial)
                .or_else(|| self.audit_creators.get(&domain));
            let pid = who
                .and_then(|w| w.get("pid"))
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let exe = who.and_then(|w| w.get("exe")).cloned().unwrap_or_default();
            if let Some(d) = audit_denial(&f, policy, plan, pid, exe, at_ms) {
                self.record(d);
            }
        }
    }
}

/// What the gates made of an execve.
enum Gated {
    /// Asked about: answered later.
    Asked,
    /// Held: let it run, checked at its exec event.
    Held,
    /// Must not run.
    Refused(Denial),
}

/// An execve that could not be held for the gates' check: refused.
fn unheld(pid: u32, e: nix::errno::Errno) -> Denial {
    Denial {
        kind: crate::report::DenialKind::Fs,
        operation: "exec".into(),
        target: String::new(),
        pid,
        exe: exe(pid),
        errno: "EPERM".into(),
        rule: format!(
            "approve.exec: this exec could not be held for the gates' check (ptrace: {e}; a debugger attached?), so it does not run"
        ),
        suggestion: String::new(),
        observed_by: crate::report::ObservedBy::Approval,
        at_ms: 0,
    }
}

fn tgid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// An open (`name`, its arguments) of a gated file, read-only: the gate, the
/// file and whether the descriptor is close-on-exec. A quick look at the
/// name first: most opens are of other files.
fn read_gate(
    a: &crate::approval::Approvals,
    name: &str,
    args: &[u64; 6],
    mem: &Mem,
    pid: u32,
) -> Option<(usize, PathBuf, bool)> {
    let (dirfd, path, flags) = match name {
        "open" => (libc::AT_FDCWD, args[0], args[1]),
        "openat" => (args[0] as i32, args[1], args[2]),
        // struct open_how starts with its u64 flags.
        _ => (args[0] as i32, args[1], mem.u64(args[2])?),
    };
    let raw = mem.cstr(path)?;
    let file_name = Path::new(&raw).file_name()?;
    if !a
        .gates
        .read
        .iter()
        .any(|g| g.path.file_name() == Some(file_name))
    {
        return None;
    }
    let f = flags as i32;
    if f & libc::O_ACCMODE != libc::O_RDONLY
        || f & (libc::O_CREAT | libc::O_TRUNC | libc::O_PATH | libc::O_DIRECTORY) != 0
    {
        return None;
    }
    let abs = resolve(pid, dirfd, &raw)?;
    let canon = std::fs::canonicalize(&abs).unwrap_or(abs);
    let gate = a.gates.read_gate(&canon)?;
    Some((gate, canon, f & libc::O_CLOEXEC != 0))
}

/// Most of a gated file handed over (credentials are small).
const MAX_GATED_FILE: u64 = 16 << 20;

/// The gated file as handed over: its contents in a sealed memfd, reopened
/// read-only. The launcher reads the file itself (not through a link, a
/// regular file only); the descriptor it gives is a snapshot: nothing done
/// with it (fchmod, fchown, futimens, fsetxattr, a write) reaches the file,
/// and it leads nowhere else.
fn open_gated(path: &Path) -> std::io::Result<OwnedFd> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() > MAX_GATED_FILE {
        return Err(std::io::Error::from_raw_os_error(libc::EACCES));
    }
    let mut content = Vec::with_capacity(meta.len() as usize);
    (&mut f).take(MAX_GATED_FILE).read_to_end(&mut content)?;
    let name = std::ffi::CString::new("cordon-approved").unwrap_or_default();
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_NOEXEC_SEAL from 6.3; the contents are never executable through it anyway.
    let memfd = match sys::memfd_create(&name, flags | libc::MFD_NOEXEC_SEAL) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => sys::memfd_create(&name, flags)?,
        r => r?,
    };
    let mut w = std::fs::File::from(memfd);
    w.write_all(&content)?;
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    fcntl(
        &w,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_WRITE
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_SEAL,
        ),
    )?;
    // Read-only, at offset 0: a descriptor of its own.
    let ro = std::fs::OpenOptions::new().read(true).open(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&w)
    ))?;
    Ok(OwnedFd::from(ro))
}

fn rule_text(r: &SyscallRule) -> String {
    match &r.origin {
        Some(o) => format!("{} ({o})", r.reason),
        None => format!("{} (default seccomp deny list)", r.reason),
    }
}

fn exe(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// A denial the policy predicts for an observed call (--trace).
fn predicted_denial(q: &Query, v: explain::Verdict, pid: u32, at_ms: u64) -> Denial {
    let (kind, operation, target) = match q {
        Query::Fs(op, p) => (
            crate::report::DenialKind::Fs,
            op.as_str().to_string(),
            p.display().to_string(),
        ),
        Query::Connect(h, port) => (
            crate::report::DenialKind::Net,
            "connect".into(),
            format!("{h}:{port}"),
        ),
        Query::Bind(port) => (
            crate::report::DenialKind::Net,
            "bind".into(),
            format!("port {port}"),
        ),
        Query::ConnectUnix(p) => (
            crate::report::DenialKind::Net,
            "connect".into(),
            p.display().to_string(),
        ),
        Query::Syscall(s) => (crate::report::DenialKind::Syscall, s.clone(), s.clone()),
    };
    Denial {
        kind,
        operation,
        target,
        pid,
        exe: exe(pid),
        errno: v.errno.unwrap_or("EACCES").into(),
        rule: v.rule,
        suggestion: v.suggestion.unwrap_or_default(),
        observed_by: crate::report::ObservedBy::Predicted,
        at_ms,
    }
}

/// The caller's memory, read through /proc/PID/mem.
struct Mem(File);

impl Mem {
    fn open(pid: u32) -> Option<Mem> {
        File::open(format!("/proc/{pid}/mem")).ok().map(Mem)
    }
    fn u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.0.read_exact_at(&mut b, addr).ok()?;
        Some(u64::from_ne_bytes(b))
    }
    fn bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let mut b = vec![0u8; len];
        self.0.read_exact_at(&mut b, addr).ok()?;
        Some(b)
    }
    fn cstr(&self, addr: u64) -> Option<String> {
        if addr == 0 {
            return None;
        }
        let mut out = Vec::new();
        let mut chunk = [0u8; 256];
        while out.len() < 4096 {
            let at = addr + out.len() as u64;
            // Do not read across a page boundary in one go: the next page may be unmapped.
            let room = (4096 - (at % 4096)) as usize;
            let n = self.0.read_at(&mut chunk[..room.min(256)], at).ok()?;
            if n == 0 {
                break;
            }
            if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..end]);
                return Some(String::from_utf8_lossy(&out).into_owned());
            }
            out.extend_from_slice(&chunk[..n]);
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }
}

impl metadata::Memory for Mem {
    fn cstr(&self, addr: u64) -> Option<String> {
        Mem::cstr(self, addr)
    }
    fn bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        Mem::bytes(self, addr, len)
    }
}

/// An operation and target for a refused syscall, for reports.
fn describe_call(name: &str, a: &[u64; 6], mem: Option<&Mem>) -> (String, String) {
    let path = |i: usize| {
        mem.and_then(|m| m.cstr(a[i]))
            .unwrap_or_else(|| format!("{:#x}", a[i]))
    };
    match name {
        "socket" | "socketpair" => (
            name.into(),
            format!(
                "{}, {}, {}",
                family(a[0] as i32),
                sock_type(a[1] as i32),
                a[2] as i32
            ),
        ),
        "mount" => (name.into(), format!("{} on {}", path(0), path(1))),
        "umount2" | "chroot" | "swapon" | "swapoff" | "acct" => (name.into(), path(0)),
        "pivot_root" => (name.into(), format!("{} {}", path(0), path(1))),
        "ptrace" | "process_vm_readv" | "process_vm_writev" | "kcmp" => (
            name.into(),
            format!("pid {}", if name == "ptrace" { a[1] } else { a[0] } as i32),
        ),
        "pidfd_getfd" => (
            name.into(),
            format!("pidfd {}, fd {}", a[0] as i32, a[1] as i32),
        ),
        "ioctl" => (
            name.into(),
            format!("fd {}, request {:#x}", a[0] as i32, a[1] as u32),
        ),
        "clone" | "unshare" => (name.into(), format!("flags {:#x}", a[0])),
        "prlimit64" | "sched_setaffinity" | "sched_setscheduler" | "sched_setparam"
        | "sched_setattr" => (name.into(), format!("pid {}", a[0] as i32)),
        "setpriority" | "ioprio_set" => (
            name.into(),
            format!("which {}, who {}", a[0] as i32, a[1] as i32),
        ),
        "personality" => (name.into(), format!("{:#x}", a[0] as u32)),
        _ => (
            name.into(),
            format!("{name}({:#x}, {:#x}, {:#x})", a[0], a[1], a[2]),
        ),
    }
}

fn family(f: i32) -> String {
    match f {
        libc::AF_UNIX => "AF_UNIX".into(),
        libc::AF_INET => "AF_INET".into(),
        libc::AF_INET6 => "AF_INET6".into(),
        libc::AF_NETLINK => "AF_NETLINK".into(),
        libc::AF_PACKET => "AF_PACKET".into(),
        libc::AF_VSOCK => "AF_VSOCK".into(),
        libc::AF_ALG => "AF_ALG".into(),
        libc::AF_XDP => "AF_XDP".into(),
        n => format!("family {n}"),
    }
}

fn sock_type(t: i32) -> String {
    match t & 0xf {
        libc::SOCK_STREAM => "SOCK_STREAM".into(),
        libc::SOCK_DGRAM => "SOCK_DGRAM".into(),
        libc::SOCK_RAW => "SOCK_RAW".into(),
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET".into(),
        n => format!("type {n}"),
    }
}

/// What an observed call tells us.
struct Observed {
    /// The argv, and whether the reader left some of it out.
    argv: Option<(Vec<String>, bool)>,
    query: Option<Query>,
}

fn observe(name: &str, a: &[u64; 6], mem: &Mem, pid: u32) -> Observed {
    let at = |dirfd: u64, p: u64| -> Option<PathBuf> { resolve(pid, dirfd as i32, &mem.cstr(p)?) };
    let cwd = |p: u64| at(libc::AT_FDCWD as u64, p);
    let fs = |op: Op, p: Option<PathBuf>| p.map(|p| Query::Fs(op, p));
    let open_op = |flags: u64| {
        let f = flags as i32;
        if f & libc::O_ACCMODE != libc::O_RDONLY || f & (libc::O_CREAT | libc::O_TRUNC) != 0 {
            Op::Write
        } else {
            Op::Read
        }
    };
    let mut o = Observed {
        argv: None,
        query: None,
    };
    // execvp(3) tries every PATH entry in turn: record only a file that exists
    // (an empty path is fexecve on an open descriptor, a memfd included).
    let exists = |p: &Option<PathBuf>| {
        p.as_ref()
            .is_some_and(|p| p.as_os_str().is_empty() || p.symlink_metadata().is_ok())
    };
    match name {
        "execve" => {
            let path = cwd(a[0]);
            if exists(&path) || mem.cstr(a[0]).is_some_and(|s| s.is_empty()) {
                o.argv = argv(mem, a[1]);
            }
            o.query = fs(Op::Exec, path);
        }
        "execveat" => {
            let path = at(a[0], a[1]);
            if exists(&path) || mem.cstr(a[1]).is_some_and(|s| s.is_empty()) {
                o.argv = argv(mem, a[2]);
            }
            o.query = fs(Op::Exec, path);
        }
        "open" => o.query = fs(open_op(a[1]), cwd(a[0])),
        "creat" | "mkdir" | "mknod" | "unlink" | "rmdir" | "truncate" => {
            o.query = fs(Op::Write, cwd(a[0]))
        }
        "openat" => o.query = fs(open_op(a[2]), at(a[0], a[1])),
        "openat2" => o.query = fs(open_op(mem.u64(a[2]).unwrap_or(0)), at(a[0], a[1])),
        "mkdirat" | "mknodat" | "unlinkat" => o.query = fs(Op::Write, at(a[0], a[1])),
        "rename" | "link" => o.query = fs(Op::Write, cwd(a[1])),
        "renameat" | "renameat2" | "linkat" => o.query = fs(Op::Write, at(a[2], a[3])),
        "symlink" => o.query = fs(Op::Write, cwd(a[1])),
        "symlinkat" => o.query = fs(Op::Write, at(a[1], a[2])),
        "connect" | "bind" => {
            if let Some(b) = mem.bytes(a[1], (a[2] as usize).min(28)) {
                if let Some((host, port)) = inet(&b) {
                    o.query = Some(if name == "connect" {
                        Query::Connect(host, port)
                    } else {
                        Query::Bind(port)
                    });
                }
            }
        }
        _ => {}
    }
    // Reading or executing what does not exist fails with ENOENT, not a denial.
    if let Some(Query::Fs(op, p)) = &o.query {
        if *op != Op::Write && p.symlink_metadata().is_err() {
            o.query = None;
        }
    }
    o
}

/// The absolute paths a write-intent call names (see `changes::targets`).
fn change_paths(name: &str, a: &[u64; 6], mem: &Mem, pid: u32) -> Vec<PathBuf> {
    use crate::changes::Target;
    let fd_path = |fd: i32| {
        let link = if fd == libc::AT_FDCWD {
            format!("/proc/{pid}/cwd")
        } else {
            format!("/proc/{pid}/fd/{fd}")
        };
        std::fs::read_link(link).ok()
    };
    crate::changes::targets(name, a)
        .into_iter()
        .filter_map(|t| match t {
            Target::Fd(fd) => fd_path(fd),
            Target::At(dirfd, 0) => fd_path(dirfd),
            Target::At(dirfd, ptr) => match mem.cstr(ptr)? {
                s if s.is_empty() => fd_path(dirfd),
                s => resolve(pid, dirfd, &s),
            },
        })
        .filter(|p| p.is_absolute())
        .collect()
}

/// At most 256 arguments and about [`bounded::MAX_ARGV_ENTRY`] bytes of them:
/// what is kept of one entry; the flag says whether some were left out.
fn argv(mem: &Mem, ptr: u64) -> Option<(Vec<String>, bool)> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for i in 0..256u64 {
        let p = mem.u64(ptr + i * 8)?;
        if p == 0 {
            return Some((out, false));
        }
        if bytes > bounded::MAX_ARGV_ENTRY {
            return Some((out, true));
        }
        let a = mem.cstr(p)?;
        bytes += a.len();
        out.push(a);
    }
    Some((out, mem.u64(ptr + 256 * 8).is_some_and(|p| p != 0)))
}

/// The steering variables (`approval::STEERING`) of an envp array in the
/// caller's memory: what the approver is shown. The exec event compares them
/// with the kernel's copy, so a variable read wrong here only refuses.
fn steering_env(mem: &Mem, ptr: u64) -> Vec<String> {
    let mut all = Vec::new();
    for i in 0..8192u64 {
        let Some(p) = mem.u64(ptr + i * 8) else {
            break;
        };
        if p == 0 {
            break;
        }
        if let Some(s) = mem.cstr(p) {
            if crate::approval::STEERING.iter().any(|x| s.starts_with(x)) {
                all.push(s);
            }
        }
    }
    crate::approval::steering(all.iter().map(String::as_str))
}

/// An absolute path for `path` relative to `dirfd` of process `pid`.
fn resolve(pid: u32, dirfd: i32, path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if p.is_absolute() {
        return Some(p.to_path_buf());
    }
    let base = if dirfd == libc::AT_FDCWD {
        std::fs::read_link(format!("/proc/{pid}/cwd"))
    } else {
        std::fs::read_link(format!("/proc/{pid}/fd/{dirfd}"))
    };
    base.ok().map(|b| b.join(p))
}

/// (host, port) from a sockaddr_in / sockaddr_in6.
fn inet(b: &[u8]) -> Option<(String, u16)> {
    let fam = u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?) as i32;
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
    match fam {
        libc::AF_INET => {
            let ip = std::net::Ipv4Addr::new(*b.get(4)?, *b.get(5)?, *b.get(6)?, *b.get(7)?);
            Some((ip.to_string(), port))
        }
        libc::AF_INET6 => {
            let o: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            Some((std::net::Ipv6Addr::from(o).to_string(), port))
        }
        _ => None,
    }
}

/// `key=value key="quoted value"` fields of an audit record.
fn parse_fields(body: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_string();
        rest = &rest[eq + 1..];
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            value = r[..end].to_string();
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            value = unhex(&rest[..end]);
            rest = &rest[end..];
        }
        out.insert(key, value);
        rest = rest.trim_start();
    }
    out
}

/// Audit writes values with unusual bytes as bare hex.
fn unhex(s: &str) -> String {
    if s.len() >= 2
        && s.len().is_multiple_of(2)
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
    {
        let bytes: Option<Vec<u8>> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
            .collect();
        if let Some(b) = bytes {
            if let Ok(t) = String::from_utf8(b) {
                if t.starts_with('/') {
                    return t;
                }
            }
        }
    }
    s.to_string()
}

/// A Landlock access record as a denial.
fn audit_denial(
    f: &Fields,
    policy: &Policy,
    plan: &Plan,
    pid: u32,
    exe: String,
    at_ms: u64,
) -> Option<Denial> {
    let blockers = f.get("blockers")?.clone();
    let first = blockers.split(',').next().unwrap_or_default();
    let (kind, operation, query) = if let Some(right) = first.strip_prefix("fs.") {
        let op = match right {
            "read_file" | "read_dir" => Op::Read,
            "execute" => Op::Exec,
            _ => Op::Write,
        };
        let path = PathBuf::from(f.get("path").cloned().unwrap_or_default());
        (
            crate::report::DenialKind::Fs,
            op.as_str().to_string(),
            Some(Query::Fs(op, path)),
        )
    } else if let Some(right) = first.strip_prefix("net.") {
        let port: u16 = f
            .get("dest")
            .or(f.get("src"))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let host = f.get("daddr").cloned().unwrap_or_default();
        if right.starts_with("bind") {
            (
                crate::report::DenialKind::Net,
                "bind".to_string(),
                Some(Query::Bind(port)),
            )
        } else {
            (
                crate::report::DenialKind::Net,
                "connect".to_string(),
                Some(Query::Connect(host, port)),
            )
        }
    } else {
        (crate::report::DenialKind::Syscall, first.to_string(), None)
    };
    let target = match &query {
        Some(Query::Fs(_, p)) => p.display().to_string(),
        Some(Query::Connect(h, p)) => format!("{h}:{p}"),
        Some(Query::Bind(p)) => format!("port {p}"),
        _ => f
            .get("opid")
            .map(|p| format!("pid {p}"))
            .unwrap_or_default(),
    };
    let v = query.as_ref().map(|q| explain::decide(policy, plan, q));
    Some(Denial {
        kind,
        operation,
        target,
        pid,
        exe,
        errno: v.as_ref().and_then(|v| v.errno).unwrap_or("EACCES").into(),
        rule: v
            .as_ref()
            .filter(|v| !v.allowed)
            .map(|v| v.rule.clone())
            .unwrap_or_else(|| format!("Landlock ({blockers})")),
        suggestion: v.and_then(|v| v.suggestion).unwrap_or_default(),
        observed_by: crate::report::ObservedBy::Audit,
        at_ms,
    })
}

/// A netlink audit socket subscribed to the read-only log group (whether audit
/// is enabled is [`audit_enabled`]; we never enable it: that would change the
/// host for everyone).
fn open_audit() -> std::io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::NetlinkAudit,
    )?;
    // AUDIT_NLGRP_READLOG: a copy of every record, for readers with CAP_AUDIT_READ.
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1))?;
    Ok(fd)
}

/// What AUDIT_GET says (`struct audit_status`).
#[derive(Debug, Clone, Copy)]
struct AuditStatus {
    enabled: bool,
    /// Records queued for the kernel's audit thread, not yet handed to readers.
    backlog: u32,
}

/// AUDIT_GET: whether the kernel's audit is enabled, and its queue's length.
fn audit_status() -> std::io::Result<AuditStatus> {
    const AUDIT_GET: u16 = 1000;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkAudit,
    )?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
    let mut req = Vec::with_capacity(16);
    req.extend_from_slice(&16u32.to_ne_bytes());
    req.extend_from_slice(&AUDIT_GET.to_ne_bytes());
    req.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    nix::sys::socket::send(fd.as_raw_fd(), &req, MsgFlags::empty())?;
    let mut buf = [0u8; 512];
    let word = |b: &[u8], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    for _ in 0..4 {
        let n = nix::sys::socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        if n < 16 {
            break;
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        // After the 16-byte header, struct audit_status { u32 mask, enabled,
        // failure, pid, rate_limit, backlog_limit, lost, backlog; ... }.
        if ty == AUDIT_GET && n >= 16 + 32 {
            return Ok(AuditStatus {
                enabled: word(&buf, 20) != 0,
                backlog: word(&buf, 44),
            });
        }
        if ty == libc::NLMSG_ERROR as u16 {
            let err = word(&buf, 16) as i32;
            if err != 0 {
                return Err(std::io::Error::from_raw_os_error(-err));
            }
        }
    }
    Err(std::io::Error::other("no AUDIT_GET reply"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_fields() {
        let f = parse_fields(
            r#"domain=1a2b blockers=fs.write_file path="/etc/hosts" dev="vda" ino=123"#,
        );
        assert_eq!(f["domain"], "1a2b");
        assert_eq!(f["path"], "/etc/hosts");
        assert_eq!(f["ino"], "123");
        let f = parse_fields("domain=1 path=2F746D702F6120622063");
        assert_eq!(f["path"], "/tmp/a b c");
    }

    #[test]
    fn sockaddrs() {
        let mut b = vec![0u8; 16];
        b[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&443u16.to_be_bytes());
        b[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(inet(&b), Some(("127.0.0.1".into(), 443)));
    }
}
