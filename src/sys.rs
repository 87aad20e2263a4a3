//! The only module allowed `unsafe`: thin `io::Result` wrappers for the calls
//! that nix, caps, landlock and seccompiler do not cover. Each block says why it
//! is sound. Nothing here makes decisions.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use seccompiler::sock_filter;

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Landlock ABI version of the running kernel (`landlock_create_ruleset(2)` with
/// LANDLOCK_CREATE_RULESET_VERSION). Err carries ENOSYS or EOPNOTSUPP.
pub fn landlock_abi() -> io::Result<i32> {
    // SAFETY: NULL attr with size 0 and the VERSION flag is the documented probe;
    // the kernel reads no memory from us.
    let v = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, 0usize, 0usize, 1u32) };
    check(v).map(|v| v as i32)
}

/// landlock_add_rule(2) with a LANDLOCK_RULE_PATH_BENEATH rule: allow `access`
/// (LANDLOCK_ACCESS_FS_* bits) beneath the file or directory `parent` names.
/// The kernel takes its own reference to what `parent` names; the caller may
/// close it right after.
pub fn landlock_add_path_rule(
    ruleset: BorrowedFd,
    parent: BorrowedFd,
    access: u64,
) -> io::Result<()> {
    // struct landlock_path_beneath_attr is packed in the UAPI header (12 bytes).
    #[repr(C, packed)]
    struct PathBeneathAttr {
        allowed_access: u64,
        parent_fd: i32,
    }
    const LANDLOCK_RULE_PATH_BENEATH: libc::c_uint = 1;
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: parent.as_raw_fd(),
    };
    // SAFETY: `attr` is a valid landlock_path_beneath_attr that outlives the call;
    // the kernel copies it and keeps no reference to our memory. Both fds are
    // borrowed, open, and stay owned by the caller.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    check(rc).map(drop)
}

/// Close every descriptor in `fds`: one close_range(2) per run of consecutive
/// numbers instead of one close(2) each, which is what a batch of O_PATH fds
/// opened one after the other mostly is. Only descriptors in `fds` are closed.
pub fn close_all(fds: Vec<OwnedFd>) {
    let mut raw: Vec<RawFd> = fds.into_iter().map(IntoRawFd::into_raw_fd).collect();
    raw.sort_unstable();
    let mut i = 0;
    while i < raw.len() {
        let mut j = i;
        while j + 1 < raw.len() && raw[j + 1] == raw[j] + 1 {
            j += 1;
        }
        // SAFETY: raw[i..=j] are consecutive descriptors that we owned (taken out of
        // their OwnedFd above), so the range holds no descriptor of anyone else; each
        // is closed exactly once, here or in the fallback.
        let rc =
            unsafe { libc::syscall(libc::SYS_close_range, raw[i] as u32, raw[j] as u32, 0u32) };
        if rc < 0 {
            // Before Linux 5.9: one at a time.
            for &fd in &raw[i..=j] {
                // SAFETY: as above; close_range failed, so `fd` is still open and ours.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        i = j + 1;
    }
}

/// Install one seccomp filter with `flags`. With SECCOMP_FILTER_FLAG_NEW_LISTENER
/// the kernel returns the notification fd, which we own from then on.
pub fn seccomp_install(prog: &[sock_filter], flags: libc::c_ulong) -> io::Result<Option<OwnedFd>> {
    #[repr(C)]
    struct SockFprog {
        len: libc::c_ushort,
        filter: *const sock_filter,
    }
    let fprog = SockFprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies
    // the program (copy_from_user) and keeps no reference to our memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            flags,
            &fprog as *const SockFprog,
        )
    };
    let rc = check(rc)?;
    if flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as libc::c_ulong != 0 {
        // SAFETY: with NEW_LISTENER the return value is a new fd that nobody else owns.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as RawFd) }))
    } else {
        Ok(None)
    }
}

/// Set FD_CLOEXEC on every descriptor in `first..=last` (close_range(2), Linux 5.11).
pub fn cloexec_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            last,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    check(rc).map(drop)
}

/// fork(2). In the child only async-signal-safe work may follow until execve;
/// the caller (sandbox::spawn) upholds that: the child only makes syscalls on
/// data prepared before the fork, and never allocates through a lock another
/// thread could hold, because the launcher is single-threaded when it forks.
pub fn fork() -> io::Result<Option<libc::pid_t>> {
    // SAFETY: see above; the launcher has no other threads at this point.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Run `f` in a new process that shares our memory, this thread suspended until
/// the child calls execve or exits (CLONE_VM | CLONE_VFORK, the way posix_spawn
/// starts a program): no page tables to copy, no copy-on-write faults, and no
/// copied address space for the execve to tear down. `f` runs on a stack of
/// `stack_size` bytes of its own, below which an inaccessible guard page turns an
/// overflow into a fault rather than a write into our memory, and must leave only
/// through execve or [`exit_now`]. It may allocate (we are single-threaded and
/// suspended, so the heap is consistent), and what it changes in memory is what
/// we see when we resume. It has its own descriptor table, working directory,
/// credentials and signal mask (no CLONE_FILES, CLONE_FS, CLONE_THREAD).
pub fn vfork_into(stack_size: usize, f: &mut dyn FnMut() -> isize) -> io::Result<libc::pid_t> {
    extern "C" fn trampoline(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the `&mut &mut dyn FnMut` passed to clone below, alive
        // for as long as the child runs (the parent is suspended meanwhile).
        let f = unsafe { &mut *(arg as *mut &mut dyn FnMut() -> isize) };
        f() as libc::c_int
    }
    let page = 4096;
    let len = stack_size.next_multiple_of(page) + page;
    // SAFETY: an anonymous private mapping of `len` bytes; no existing memory is touched.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let free = || {
        // SAFETY: `base`/`len` is the mapping made above, no longer in use by anyone.
        unsafe { libc::munmap(base, len) };
    };
    // SAFETY: the lowest page of our own mapping becomes the guard.
    if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
        let e = io::Error::last_os_error();
        free();
        return Err(e);
    }
    let mut f = f;
    // SAFETY: the child starts in `trampoline` on the top of our mapping (the
    // stack grows down to the guard page) and never returns into our frames: `f`
    // leaves through execve or _exit. CLONE_VFORK keeps this thread, the
    // process's only one, suspended until then, so the mapping and `f` outlive
    // the child's use of them and no lock can be held by a thread it would wait on.
    let pid = unsafe {
        libc::clone(
            trampoline,
            (base as *mut u8).add(len) as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &mut f as *mut &mut dyn FnMut() -> isize as *mut libc::c_void,
        )
    };
    let result = if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid)
    };
    // The child has exec'd or exited (or never started): its stack is free.
    free();
    result
}

/// `_exit(2)`: leave the child without running the parent's atexit handlers or
/// flushing its stdio buffers twice.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// mount_setattr(2) (Linux 5.12): change mount attributes, recursively with AT_RECURSIVE.
pub fn mount_setattr(path: &CString, recursive: bool, set: u64, clear: u64) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive {
        libc::AT_RECURSIVE as libc::c_uint
    } else {
        0
    };
    // SAFETY: `path` is NUL-terminated and `attr` is a valid mount_attr whose size we pass.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(rc).map(drop)
}

/// Whether `fd` is open, and whether FD_CLOEXEC is set on it.
pub fn fd_flags(fd: RawFd) -> Option<bool> {
    // SAFETY: F_GETFD reads descriptor flags; an invalid fd only yields EBADF.
    let rc = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if rc < 0 {
        None
    } else {
        Some(rc & libc::FD_CLOEXEC != 0)
    }
}

/// Clear FD_CLOEXEC so `fd` survives execve (for descriptors the caller passed in).
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD on an fd we were given; only its flags change.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    check(rc as libc::c_long).map(drop)
}

/// clone(2) without a new stack: fork semantics plus the namespace `flags`.
/// Same contract as [`fork`]: the launcher is single-threaded here, and glibc's
/// fork bookkeeping (atfork handlers, the TCB's cached tid) is not needed by the
/// child, which makes only plain syscalls, forks once more (with fork(3), which
/// refreshes that state) and exits with _exit.
pub fn clone_fork(flags: libc::c_int) -> io::Result<Option<libc::pid_t>> {
    // SAFETY: no CLONE_VM, so the child gets a copy-on-write copy of our memory
    // and stack, exactly as with fork; see the contract above.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid as libc::pid_t)),
    }
}

/// Reset `sig` to its default disposition (the Rust runtime ignores SIGPIPE,
/// and an ignored signal stays ignored across execve).
pub fn default_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: installing SIG_DFL runs no handler code of ours.
    let prev = unsafe { libc::signal(sig, libc::SIG_DFL) };
    if prev == libc::SIG_ERR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Ignore `sig` (a session's server: a terminal's ^C is for its clients).
pub fn ignore_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: installing SIG_IGN runs no handler code of ours.
    let prev = unsafe { libc::signal(sig, libc::SIG_IGN) };
    if prev == libc::SIG_ERR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One seccomp user notification (SECCOMP_IOCTL_NOTIF_RECV).
pub fn notif_recv(listener: &OwnedFd) -> io::Result<libc::seccomp_notif> {
    // SAFETY: seccomp_notif is plain old data; the kernel requires it zeroed.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: RECV fills the struct we own and pass by pointer.
    let rc = unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) };
    check(rc as libc::c_long).map(|_| n)
}

/// Answer a notification: `error` (a positive errno) refuses the call; with
/// `cont` the kernel runs the call as if the filter had allowed it.
pub fn notif_send(listener: &OwnedFd, id: u64, error: i32, cont: bool) -> io::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: -error,
        flags: if cont {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    // SAFETY: SEND reads the response struct we own.
    let rc = unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    check(rc as libc::c_long).map(drop)
}

/// Whether notification `id` is still pending, i.e. the pid it named has not
/// been reused since: what we read from its memory belongs to it.
pub fn notif_id_valid(listener: &OwnedFd, id: u64) -> bool {
    // SAFETY: ID_VALID reads the u64 we pass by pointer.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id,
        ) == 0
    }
}

/// Take ownership of a descriptor the kernel just gave us (SCM_RIGHTS).
pub fn own_fd(raw: RawFd) -> OwnedFd {
    // SAFETY: `raw` was installed for us by recvmsg(2) and nothing else refers to it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// memfd_create(2) with the caller's flags (the supervisor adds MFD_NOEXEC_SEAL).
pub fn memfd_create(name: &std::ffi::CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; the new fd is owned by nobody else.
    let fd = unsafe { libc::syscall(libc::SYS_memfd_create, name.as_ptr(), flags) };
    check(fd).map(|fd| own_fd(fd as RawFd))
}

/// Install `src` in the notifying process and make it the syscall's return
/// value (SECCOMP_ADDFD_FLAG_SEND, Linux 5.14): the call is answered atomically.
pub fn notif_addfd_send(
    listener: &OwnedFd,
    id: u64,
    src: &OwnedFd,
    cloexec: bool,
) -> io::Result<()> {
    let add = libc::seccomp_notif_addfd {
        id,
        flags: libc::SECCOMP_ADDFD_FLAG_SEND as u32,
        srcfd: src.as_raw_fd() as u32,
        newfd: 0,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: ADDFD reads the struct we own; the kernel dups `srcfd` into the target.
    let rc = unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &add) };
    check(rc as libc::c_long).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::Pid;

    /// The payload's stack ends in a guard page: an overflow kills the child
    /// instead of writing into the memory it shares with its parent.
    #[test]
    fn a_shared_memory_child_that_overflows_its_stack_dies_of_it() {
        fn deep(n: u64) -> u64 {
            let frame = std::hint::black_box([n; 256]);
            if n == 0 {
                0
            } else {
                deep(n - 1).wrapping_add(frame[7])
            }
        }
        let canary = vec![0x5au8; 1 << 20];
        let mut ran = false;
        // No allocation in the child: other test threads share this heap.
        let pid = vfork_into(64 * 1024, &mut || {
            ran = true;
            std::hint::black_box(deep(1 << 20));
            exit_now(0)
        })
        .unwrap();
        let status = waitpid(Pid::from_raw(pid), None).unwrap();
        assert!(ran, "the child runs in our memory");
        assert!(
            matches!(status, WaitStatus::Signaled(..)),
            "the overflow must kill the child: {status:?}"
        );
        assert!(canary.iter().all(|&b| b == 0x5a), "our memory is intact");
    }
}

/// The three capability sets of the calling thread, as 64-bit masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

const CAP_V3: u32 = 0x2008_0522; // _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// capget(2) for the calling thread: all three sets in one call (the caps crate
/// makes one call per set).
pub fn capget() -> io::Result<CapSets> {
    let mut h = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: version 3 takes a header and an array of two data structs, both
    // valid and writable for the duration of the call.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut CapHeader, d.as_mut_ptr()) };
    check(rc)?;
    let join = |lo: u32, hi: u32| lo as u64 | (hi as u64) << 32;
    Ok(CapSets {
        effective: join(d[0].effective, d[1].effective),
        permitted: join(d[0].permitted, d[1].permitted),
        inheritable: join(d[0].inheritable, d[1].inheritable),
    })
}

/// capset(2) for the calling thread: all three sets in one call.
pub fn capset(s: CapSets) -> io::Result<()> {
    let mut h = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let split = |m: u64| (m as u32, (m >> 32) as u32);
    let (e, p, i) = (split(s.effective), split(s.permitted), split(s.inheritable));
    let d = [
        CapData {
            effective: e.0,
            permitted: p.0,
            inheritable: i.0,
        },
        CapData {
            effective: e.1,
            permitted: p.1,
            inheritable: i.1,
        },
    ];
    // SAFETY: as in capget; the kernel only reads the data array.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr()) };
    check(rc).map(drop)
}

/// PR_CAPBSET_DROP of capability number `cap`. EINVAL: this kernel has no such capability.
pub fn capbset_drop(cap: u32) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
    check(rc as libc::c_long).map(drop)
}

/// seccomp(SECCOMP_GET_ACTION_AVAIL): whether the kernel's filters support the
/// return `action` (one syscall, where procfs's actions_avail is an open and a read).
pub fn seccomp_action_available(action: u32) -> bool {
    const SECCOMP_GET_ACTION_AVAIL: libc::c_ulong = 2;
    // SAFETY: the kernel reads one u32 from a valid pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_ACTION_AVAIL,
            0 as libc::c_ulong,
            &action as *const u32,
        )
    };
    rc == 0
}

/// Read directory entries of `fd` into `buf` (`getdents64(2)`): the bytes
/// filled, 0 at the end. The guard's walk reads entries this way: std's
/// `read_dir` costs an `fstat` and the full path's lookup per directory.
pub fn getdents64(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf, which we hold
    // mutably for the call; fd is a live descriptor borrowed for the call.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The inode flags of an open file or directory (`FS_IOC_GETFLAGS`: the
/// `FS_*_FL` bits, e.g. FS_CASEFOLD_FL). Err (ENOTTY, EINVAL) where the
/// filesystem keeps none.
pub fn inode_flags(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int to the pointer (the kernel's
    // put_user of an int, whatever size the request number declares), which
    // is ours and live for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(flags as u32)
    }
}

// ---------------------------------------------------------------------------
// Unix-socket mediation (unix_mediate): the supervisor takes the caller's
// socket, resolves the address as the caller would, and connects or sends
// itself.
// ---------------------------------------------------------------------------

/// pidfd_open(2) of thread `tid` (PIDFD_THREAD, Linux 6.9: a thread that is not
/// its group's leader has a pidfd of its own).
pub fn pidfd_open_thread(tid: u32) -> io::Result<OwnedFd> {
    const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
    // SAFETY: integer arguments only; the new fd is owned by nobody else.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid as libc::pid_t, PIDFD_THREAD) };
    check(fd).map(|fd| own_fd(fd as RawFd))
}

/// pidfd_getfd(2): a duplicate of descriptor `fd` of the process `pidfd` names
/// (the same open file description), close-on-exec.
pub fn pidfd_getfd(pidfd: &OwnedFd, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; the new fd is owned by nobody else.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0u32) };
    check(rc).map(|fd| own_fd(fd as RawFd))
}

/// pidfd_send_signal(2): `sig` to the thread or process `pidfd` names.
pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: NULL siginfo (the kernel fills in SI_USER), no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    check(rc).map(drop)
}

/// open_tree(2) with OPEN_TREE_CLONE | AT_RECURSIVE (Linux 5.2): a detached copy
/// of the mount tree at `path` (a recursive bind mount not yet attached anywhere).
pub fn open_tree_clone(path: &std::ffi::CStr) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: `path` is NUL-terminated; the kernel reads nothing else from us and
    // returns a new descriptor, owned here alone.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    // SAFETY: a non-negative return is a new descriptor nobody else owns.
    check(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// move_mount(2) with MOVE_MOUNT_F_EMPTY_PATH (Linux 5.2): attach the detached
/// tree `from` (from [`open_tree_clone`]) at `to`.
pub fn move_mount_to(from: BorrowedFd, to: &std::ffi::CStr) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    // SAFETY: both strings are NUL-terminated and `from` is a live descriptor.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    check(rc).map(drop)
}

/// openat2(2) with O_PATH | O_CLOEXEC and `resolve` (RESOLVE_* flags).
pub fn openat2_path(dir: BorrowedFd, path: &std::ffi::CStr, resolve: u64) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain old data; zeroed is valid (mode 0).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: `path` is NUL-terminated and `how` a valid open_how whose size we
    // pass; the kernel copies both. The new fd is owned by nobody else.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    check(fd).map(|fd| own_fd(fd as RawFd))
}

// ---------------------------------------------------------------------------
// The supervisor's own calls for the calls it checks or performs for the
// payload (own_process.rs, metadata.rs).
// ---------------------------------------------------------------------------

/// openat2(2) of `path` beneath `dirfd` with `flags` and RESOLVE_* `resolve`.
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &std::ffi::CStr,
    flags: libc::c_int,
    resolve: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain old data (three u64s); zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: `path` is NUL-terminated and `how` a valid struct of the size we
    // pass; the new descriptor belongs to nobody else.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    check(fd).map(|fd| own_fd(fd as RawFd))
}

/// openat2(2) with `O_PATH | O_NOFOLLOW | O_CLOEXEC` and RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS: a handle on what the absolute `path` names, reached
/// without following any symbolic link (a trailing one is returned itself).
pub fn open_path_nofollow(path: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // struct open_how (UAPI), spelled out: libc's is non-exhaustive.
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `path` is NUL-terminated and `how` a valid open_how whose size we
    // pass; the kernel only reads both. A non-negative result is a new descriptor
    // that nothing else owns.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    check(fd).map(|fd| own_fd(fd as RawFd))
}

/// The mode (type and permission bits) and birth time (seconds, nanoseconds)
/// of what `fd` names; no birth time where the file system keeps none.
pub fn statx_mode_btime(fd: BorrowedFd) -> io::Result<(u32, Option<(i64, u32)>)> {
    // SAFETY: statx is plain old data; zeroed is a valid value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the empty path with AT_EMPTY_PATH names `fd`; the kernel fills `st`.
    let rc = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_TYPE | libc::STATX_MODE | libc::STATX_BTIME,
            &mut st,
        )
    };
    check(rc as libc::c_long)?;
    let btime = (st.stx_mask & libc::STATX_BTIME != 0)
        .then_some((st.stx_btime.tv_sec, st.stx_btime.tv_nsec));
    Ok((st.stx_mode as u32, btime))
}

/// getsockopt(2) of an int option.
pub fn getsockopt_int(fd: BorrowedFd, level: i32, name: i32) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writing; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    check(rc as libc::c_long).map(|_| v)
}

/// The network namespace of socket `fd` (SIOCGSKNS), as its inode number.
pub fn socket_netns_ino(fd: BorrowedFd) -> io::Result<u64> {
    const SIOCGSKNS: libc::c_ulong = 0x894C;
    // SAFETY: SIOCGSKNS takes no argument and returns a new fd owned by nobody else.
    let ns = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCGSKNS as _) };
    let ns = own_fd(check(ns as libc::c_long)? as RawFd);
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::File::from(ns).metadata()?.ino())
}

/// connect(2) with a raw socket address.
pub fn connect_raw(fd: BorrowedFd, addr: &[u8]) -> io::Result<()> {
    // SAFETY: `addr` is valid for reading `addr.len()` bytes; the kernel copies it.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            addr.as_ptr() as *const libc::sockaddr,
            addr.len() as libc::socklen_t,
        )
    };
    check(rc as libc::c_long).map(drop)
}

/// sendto(2) with a raw socket address (None: no address).
pub fn sendto_raw(
    fd: BorrowedFd,
    buf: &[u8],
    flags: i32,
    addr: Option<&[u8]>,
) -> io::Result<usize> {
    let (a, alen) = match addr {
        Some(a) => (
            a.as_ptr() as *const libc::sockaddr,
            a.len() as libc::socklen_t,
        ),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: `buf` and `addr` are valid for reading their lengths; the kernel copies them.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            buf.as_ptr() as *const libc::c_void,
            buf.len(),
            flags,
            a,
            alen,
        )
    };
    check(rc as libc::c_long).map(|n| n as usize)
}

/// Answer a notification with a successful return value `val`.
pub fn notif_send_val(listener: &OwnedFd, id: u64, val: i64) -> io::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val,
        error: 0,
        flags: 0,
    };
    // SAFETY: SEND reads the response struct we own.
    let rc = unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    check(rc as libc::c_long).map(drop)
}

/// CLOCK_REALTIME_COARSE (seconds, nanoseconds): the clock file systems stamp
/// new inodes with, so a file made after this call has a birth time at or after it.
pub fn realtime_coarse() -> (i64, u32) {
    // SAFETY: timespec is plain old data; the kernel fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock id and a writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    (ts.tv_sec, ts.tv_nsec as u32)
}

/// sendmsg(2) of one buffer with an optional address and a control buffer
/// (already laid out as cmsghdrs).
pub fn sendmsg_raw(
    fd: BorrowedFd,
    data: &[u8],
    name: Option<&[u8]>,
    control: &[u8],
    flags: i32,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain old data; zeroed is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(n) = name {
        msg.msg_name = n.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = n.len() as libc::socklen_t;
    }
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !control.is_empty() {
        msg.msg_control = control.as_ptr() as *mut libc::c_void;
        msg.msg_controllen = control.len() as _; // size_t in glibc, socklen_t in musl
    }
    // SAFETY: every pointer in `msg` points into buffers that outlive the call,
    // with their lengths; the kernel only reads them.
    let rc = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, flags) };
    check(rc as libc::c_long).map(|n| n as usize)
}

/// pidfd_open(2) with `flags` (PIDFD_THREAD for a thread).
pub fn pidfd_open(pid: libc::pid_t, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; the new descriptor belongs to nobody else.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
    check(fd).map(|fd| own_fd(fd as RawFd))
}

/// fchmodat2(2) on the object `fd` refers to itself (AT_EMPTY_PATH; O_PATH
/// descriptors included, Linux 6.6).
pub fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: an empty NUL-terminated path and integer arguments.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode,
            libc::AT_EMPTY_PATH,
        )
    };
    check(rc).map(drop)
}

/// fchownat(2) on the object `fd` refers to itself (AT_EMPTY_PATH).
pub fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: an empty NUL-terminated path and integer arguments.
    let rc = unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) };
    check(rc as libc::c_long).map(drop)
}

/// utimensat(2) on the object `fd` refers to itself (AT_EMPTY_PATH); None: now.
pub fn utimens_fd(fd: BorrowedFd<'_>, times: Option<[libc::timespec; 2]>) -> io::Result<()> {
    let ptr = times.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
    // SAFETY: an empty NUL-terminated path, and NULL or two timespecs we own.
    let rc = unsafe { libc::utimensat(fd.as_raw_fd(), c"".as_ptr(), ptr, libc::AT_EMPTY_PATH) };
    check(rc as libc::c_long).map(drop)
}

/// setxattr(2) (it follows the path: the supervisor passes /proc/self/fd/N).
pub fn setxattr(
    path: &std::ffi::CStr,
    name: &std::ffi::CStr,
    value: &[u8],
    flags: libc::c_int,
) -> io::Result<()> {
    // SAFETY: NUL-terminated strings and a buffer of the length we pass.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    check(rc as libc::c_long).map(drop)
}

/// removexattr(2) (it follows the path, as `setxattr`).
pub fn removexattr(path: &std::ffi::CStr, name: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated strings.
    let rc = unsafe { libc::removexattr(path.as_ptr(), name.as_ptr()) };
    check(rc as libc::c_long).map(drop)
}

/// Bring the loopback interface of the caller's network namespace up
/// (SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP): mode "proxy" serves the
/// proxy and the resolver on 127.0.0.1 there.
pub fn loopback_up() -> io::Result<()> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    let s = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain data; zeroed it is a valid request whose name we
    // fill with "lo" and a NUL (within IFNAMSIZ).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes ifru_flags inside `req`,
    // which lives across the call.
    check(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } as libc::c_long)?;
    // SAFETY: the union's flags member was just written by the kernel.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    check(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } as libc::c_long)?;
    Ok(())
}
