//! Without namespaces, calls that act on another process by pid (prlimit64,
//! setpriority, the sched_set* calls, ioprio_set) reach the host's processes of
//! the same user: the filter sends those naming a pid other than 0 to the
//! supervisor, which lets them run only on a process of the run (a descendant
//! of the launcher: the payload and what it started, orphans included, since
//! the launcher is their subreaper).
//!
//! Owns that check. Does not decide which calls come here (seccomp.rs), nor
//! answer or record them (monitor.rs). With namespaces the PID namespace hides
//! every outside process and nothing comes here.
//!
//! The pid is a register argument, so letting the call run (CONTINUE) acts on
//! the pid that was checked. What remains is pid reuse between the check and
//! the call: the target is pinned by a pidfd and must still be alive after the
//! ancestry walk, so its pid cannot have been freed before the answer; a target
//! that exits, is reaped and whose pid is taken by an outside process in the
//! microseconds between the answer and the call would need the pid space to
//! wrap meanwhile.

use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::sys;

/// pidfd_open(2)'s PIDFD_THREAD (O_EXCL): a pidfd for a thread, Linux 6.9.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// Whether thread or process `tid` belongs to the run of `launcher`.
pub fn belongs_to_run(tid: i64, launcher: u32) -> bool {
    let Ok(tid) = i32::try_from(tid) else {
        return false;
    };
    if tid <= 0 || tid as u32 == launcher {
        return false;
    }
    let pidfd = match sys::pidfd_open(tid, PIDFD_THREAD) {
        Ok(fd) => fd,
        // Before 6.9 a pidfd names a process only: then `tid` must be one.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match sys::pidfd_open(tid, 0) {
            Ok(fd) => fd,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    if !descends_from(tid, launcher) {
        return false;
    }
    // Still alive after the walk: the pid we walked from is still the pidfd's.
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
}

/// Whether `pid`'s chain of parents reaches `ancestor`.
fn descends_from(pid: i32, ancestor: u32) -> bool {
    let mut p = pid;
    // A chain longer than this is no tree of ours (pid_max bounds a real one).
    for _ in 0..4096 {
        match crate::sandbox::parent_of(p) {
            Some(pp) if pp as u32 == ancestor => return true,
            Some(pp) if pp > 1 => p = pp,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_children_belong_and_others_do_not() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let ours = belongs_to_run(child.id() as i64, me);
        let _ = child.kill();
        let _ = child.wait();
        assert!(ours, "a child of the launcher is the run's");
        // Our parent, ourselves, init, pid 0 and pids that do not fit a pid_t are not.
        let parent = nix::unistd::getppid().as_raw() as i64;
        for pid in [parent, me as i64, 1, 0, -1, 1 << 32] {
            assert!(!belongs_to_run(pid, me), "pid {pid}");
        }
    }
}
