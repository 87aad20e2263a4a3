//! The launcher after the payload has started: forward signals, enforce the
//! timeout (SIGTERM to the whole tree, SIGKILL after a grace) and the hang-up
//! (the same, after a grace for the payload to end on its own), reap, end every
//! leftover process, and turn the payload's status into the contract's exit code.
//! Single-threaded: one poll loop over the signalfd (and, later, event sources).

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::exit;
use crate::monitor::Monitor;
use crate::plan::Plan;
use crate::policy::Policy;
use crate::sandbox::{STATUS_LEN, Signals, Spawned, descendants};

/// How long the tree gets between SIGTERM and SIGKILL on timeout.
pub const GRACE: Duration = Duration::from_secs(2);

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The payload's exit status, if it exited.
    pub exit_status: Option<i32>,
    /// The signal that ended the payload, if one did.
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration: Duration,
}

impl Outcome {
    /// A run whose command never started: not found (127) or not executable (126).
    pub fn not_executed(code: u8, started: Instant) -> Outcome {
        Outcome {
            exit_status: Some(code as i32),
            signal: None,
            timed_out: false,
            duration: started.elapsed(),
        }
    }

    /// The launcher's exit code under the contract.
    pub fn code(&self) -> u8 {
        if self.timed_out {
            return exit::TIMEOUT;
        }
        match (self.exit_status, self.signal) {
            (Some(c), _) => c as u8,
            (None, Some(s)) => (128 + s) as u8,
            (None, None) => exit::LAUNCHER,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// SIGHUP (the terminal hung up, or the session that started us ended):
    /// the payload has until then to end on its own, then the tree gets SIGTERM.
    HungUp(Instant),
    Terminating(Instant),
    Killed,
}

/// init of a finished run, still tearing its namespaces down: nothing of the
/// payload is left (init reaped it all before reporting), but init itself must
/// be reaped before the run's cgroups can go. Dropping it waits.
#[derive(Debug)]
pub struct Exiting(Option<Pid>);

impl Exiting {
    /// Nothing to wait for.
    pub fn none() -> Exiting {
        Exiting(None)
    }

    /// Wait until init is gone (its namespaces with it).
    pub fn reap(&mut self) {
        if let Some(pid) = self.0.take() {
            while let Err(nix::errno::Errno::EINTR) = waitpid(pid, None) {}
        }
    }
}

impl Drop for Exiting {
    fn drop(&mut self) {
        self.reap();
    }
}

/// Supervise until the payload ends; then make sure nothing of the tree is left.
/// With namespaces, init may still be exiting: its teardown (mounts, network)
/// runs while the caller checks what the run left, and [`Exiting::reap`] waits
/// for it.
pub fn supervise(
    child: Spawned,
    signals: &Signals,
    timeout: Option<Duration>,
    started: Instant,
    monitor: &mut Monitor,
    policy: &Policy,
    plan: &Plan,
) -> (Outcome, Exiting) {
    let deadline = timeout.map(|t| started + t);
    let mut phase = Phase::Running;
    let mut timed_out = false;
    let mut main: Option<WaitStatus> = None;
    // The payload's status: from waitpid, or (namespaces) from init's status pipe.
    // Outer None: still running; Some(None): gone without a status (killed with init).
    let mut done: Option<Option<WaitStatus>> = None;
    // init reported that nothing but itself is left in the namespace.
    let mut emptied = false;
    let leader = nix::unistd::getsid(None).ok() == Some(nix::unistd::getpid());
    while done.is_none() {
        let wake = match phase {
            Phase::Running => deadline,
            Phase::HungUp(at) => Some(deadline.map_or(at, |d| d.min(at))),
            Phase::Terminating(at) => Some(at),
            Phase::Killed => None,
        };
        // An approver's time running out.
        let wake = match (wake, monitor.wake_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let wait = match wake {
            Some(at) => PollTimeout::try_from(
                at.saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(i32::MAX as u128) as i32
                    + 1,
            )
            .unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        let (status_ready, ready) = {
            let mons = monitor.fds();
            let mut fds = vec![PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN)];
            if let Some(pipe) = &child.status {
                fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLIN));
            }
            let first = fds.len();
            fds.extend(mons.iter().map(|f| PollFd::new(f.0, f.1)));
            let _ = poll(&mut fds, wait);
            let ev = |f: &PollFd| f.revents().unwrap_or(PollFlags::empty());
            let status_ready = child.status.is_some() && !ev(&fds[1]).is_empty();
            (
                status_ready,
                fds[first..].iter().map(ev).collect::<Vec<_>>(),
            )
        };
        monitor.service(&ready, policy, plan);
        if status_ready {
            // init reports the payload's status (or closes the pipe when killed):
            // the run is over, whether or not init has finished dying.
            let (st, empty) = child.status.as_ref().map_or((None, false), read_status);
            done = Some(st);
            emptied = empty;
        }
        let now = Instant::now();
        match phase {
            Phase::Running | Phase::HungUp(_) if deadline.is_some_and(|d| now >= d) => {
                timed_out = true;
                terminate(&child);
                phase = Phase::Terminating(now + GRACE);
            }
            Phase::HungUp(at) if now >= at => {
                terminate(&child);
                phase = Phase::Terminating(now + GRACE);
            }
            Phase::Terminating(at) if now >= at => {
                kill_tree(&child, &mut main);
                phase = Phase::Killed;
            }
            _ => {}
        }
        while let Ok(Some(info)) = signals.fd.read_signal() {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            // A terminal's hang-up reaches only the session's leader: when that
            // is cordon (a terminal program started it), the payload hears it from us.
            let hang_up_for_us = sig == Signal::SIGHUP && leader;
            if sig != Signal::SIGCHLD && (info.ssi_code != libc::SI_KERNEL || hang_up_for_us) {
                // Sent by a process (kill(1), a CI runner): pass it on. A terminal's
                // signal (SI_KERNEL) already reached the payload in our process group.
                let _ = kill(child.pid, sig);
            }
            // Nobody is left to see the run: a payload that ignores the hang-up
            // (an agent, a server) would otherwise outlive its terminal.
            if sig == Signal::SIGHUP && phase == Phase::Running {
                phase = Phase::HungUp(Instant::now() + GRACE);
            }
        }
        // Reap on every wake-up: SIGCHLDs coalesce. The stops of execs held for
        // approval gates (ptrace reports them to us, their tracer) go to the monitor.
        let mut others = Vec::new();
        reap_into(child.pid, &mut main, &mut others);
        for st in others {
            monitor.waited(st);
        }
        monitor.poll_held();
        if done.is_none() && main.is_some() {
            done = Some(match &child.status {
                Some(pipe) => read_status(pipe).0,
                None => main,
            });
        }
    }
    let duration = started.elapsed();
    crate::timing::mark("status");
    let mut exiting = Exiting(None);
    if child.ns {
        // init exits right after reporting; make sure, and reap it. Its exit ends
        // every process left in the namespace, and completes only once they are all
        // released: after this wait nothing of the run is left. Left to our own
        // parent (PID 1 or a subreaper) as a zombie, init would count against the
        // user's RLIMIT_NPROC until reaped, and a parent that never reaps (an agent
        // running as PID 1 of a container) would collect one per run. When init
        // has already reaped the rest itself, the wait is the caller's, later.
        let _ = kill(child.pid, Signal::SIGKILL);
        if main.is_none() {
            if emptied {
                exiting = Exiting(Some(child.pid));
            } else {
                while let Err(nix::errno::Errno::EINTR) = waitpid(child.pid, None) {}
            }
        }
        reap(child.pid, &mut main);
    } else {
        // The payload is gone: nothing it started outlives the run.
        kill_tree(&child, &mut main);
        reap_all();
    }
    let (exit_status, signal) = match done.flatten() {
        Some(WaitStatus::Exited(_, c)) => (Some(c), None),
        Some(WaitStatus::Signaled(_, s, _)) => (None, Some(s as i32)),
        // init was killed before it could report: the tree was killed with it.
        _ => (None, Some(libc::SIGKILL)),
    };
    (
        Outcome {
            exit_status,
            signal,
            timed_out,
            duration,
        },
        exiting,
    )
}

fn reap(main_pid: Pid, main: &mut Option<WaitStatus>) {
    reap_into(main_pid, main, &mut Vec::new());
}

/// Reap; statuses of other processes (orphans of the tree reparented to us,
/// approvers, stops of execs we hold) go to `others`.
fn reap_into(main_pid: Pid, main: &mut Option<WaitStatus>, others: &mut Vec<WaitStatus>) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            // A held payload's stop is not its end.
            Ok(st @ (WaitStatus::PtraceEvent(..) | WaitStatus::Stopped(..))) => others.push(st),
            Ok(st) if st.pid() == Some(main_pid) => *main = Some(st),
            Ok(st) => others.push(st),
        }
    }
}

/// SIGTERM to the whole tree.
fn terminate(child: &Spawned) {
    if child.ns {
        // init sends SIGTERM to every process of the namespace.
        let _ = kill(child.pid, Signal::SIGUSR1);
    } else {
        for p in descendants() {
            let _ = kill(p, Signal::SIGTERM);
        }
    }
}

/// SIGKILL to the whole tree, until nothing is left.
fn kill_tree(child: &Spawned, main: &mut Option<WaitStatus>) {
    if child.ns {
        // Killing PID 1 of the namespace kills every process in it.
        let _ = kill(child.pid, Signal::SIGKILL);
        return;
    }
    for _ in 0..1000 {
        // Orphans of the tree are reparented to us (child subreaper), so no children
        // means no descendants: the common case costs one small read, not a /proc scan.
        if no_children() {
            return;
        }
        let left = descendants();
        if left.is_empty() {
            return;
        }
        for p in &left {
            let _ = kill(*p, Signal::SIGKILL);
        }
        // Reaping may collect the payload itself: keep its status.
        reap(child.pid, main);
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn no_children() -> bool {
    let me = std::process::id();
    match std::fs::read_to_string(format!("/proc/self/task/{me}/children")) {
        Ok(s) => s.trim().is_empty(),
        Err(_) => false,
    }
}

fn reap_all() {
    while waitpid(None, None).is_ok() {}
}

/// init's report (sandbox::STATUS_LEN bytes): the payload's status, and
/// whether nothing else is left in the namespace.
fn read_status(pipe: &OwnedFd) -> (Option<WaitStatus>, bool) {
    let mut b = [0u8; STATUS_LEN];
    match nix::unistd::read(pipe, &mut b) {
        Ok(STATUS_LEN) => {
            let raw = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            (WaitStatus::from_raw(Pid::from_raw(0), raw).ok(), b[4] == 1)
        }
        _ => (None, false),
    }
}
