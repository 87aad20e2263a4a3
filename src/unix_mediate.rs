//! Connect and send mediation, in the launcher: the supervisor's side of the
//! calls [`crate::seccomp::mediated`] sends it (connect, sendto with an address,
//! sendmsg, sendmmsg).
//!
//! Race-free by construction: the supervisor never answers CONTINUE for a
//! call it mediates. It takes the caller's socket (pidfd_getfd, then
//! checks the notification is still pending), copies the address once,
//! resolves a pathname inside the caller's root as the caller would, decides
//! with [`crate::unix_policy`] (or, for TCP, the `explain` engine that mirrors
//! Landlock's port rules, which a connect made by the supervisor bypasses),
//! and then connects or sends itself, on the duplicate, to
//! `/proc/self/fd/<O_PATH fd of what it checked>`: a rewritten sockaddr or a
//! socket swapped under the same number changes nothing. Blocking calls run on
//! a bounded pool of worker threads that answer the notification themselves.
//!
//! sendmsg and sendmmsg are emulated the same way: every message is copied
//! (address, data up to a bound, control messages, SCM_RIGHTS descriptors taken
//! with pidfd_getfd) and sent by the supervisor with MSG_NOSIGNAL, raising
//! SIGPIPE in the caller where it did not ask for MSG_NOSIGNAL. Nothing is ever
//! answered with CONTINUE.
//!
//! Owns the effects (pidfd, openat2, statx, connect, sendto, threads); the
//! decisions live in `unix_policy` and `explain`. Does not record: it returns
//! the denial for the monitor to keep.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use crate::explain::{self, Query, Verdict};
use crate::plan::Plan;
use crate::policy::{Network, Policy};
use crate::report::Denial;
use crate::sys;
use crate::unix_policy::{AbstractWhere, Birth, decide_abstract};

/// At most this many calls block in the supervisor's workers at once; more
/// wait in the queue (a payload can only slow its own connects down).
const MAX_WORKERS: usize = 16;
/// The largest sendto payload copied; a stream send of more is a short write
/// (as the kernel may make), a datagram of more is EMSGSIZE.
const MAX_SEND: usize = 1 << 20;
/// sizeof(struct sockaddr_storage): the kernel refuses longer addresses (EINVAL).
const MAX_ADDR: usize = 128;
/// sizeof(struct msghdr) and sizeof(struct mmsghdr) on 64-bit Linux.
const MSGHDR: u64 = 56;
const MMSGHDR: u64 = 64;
/// The largest control buffer copied (the kernel's optmem limit is ~20 KiB).
const MAX_CONTROL: u64 = 64 * 1024;
/// UIO_MAXIOV: the kernel's bound on sendmmsg's vector.
const MAX_MMSG: u64 = 1024;

/// What a mediated call asks the supervisor to do, once allowed.
enum Job {
    Connect {
        sock: OwnedFd,
        addr: Vec<u8>,
        /// Keeps what was checked alive until the connect has named it.
        _target: Option<OwnedFd>,
    },
    SendTo {
        sock: OwnedFd,
        data: Vec<u8>,
        flags: i32,
        addr: Option<Vec<u8>>,
        _target: Option<OwnedFd>,
        /// The caller asked for SIGPIPE on a broken stream (no MSG_NOSIGNAL).
        sigpipe: Option<OwnedFd>,
    },
    /// sendmsg (one message) or sendmmsg (several; each one's msg_len is
    /// written back into the caller's vector).
    SendMsg {
        sock: OwnedFd,
        msgs: Vec<Msg>,
        flags: i32,
        /// sendmmsg: the caller's memory and each message's header address.
        vector: Option<(File, Vec<u64>)>,
        sigpipe: Option<OwnedFd>,
    },
}

/// One message of a sendmsg, copied: data, address, control messages with
/// the caller's descriptors replaced by our duplicates (kept alive here).
struct Msg {
    data: Vec<u8>,
    name: Option<Vec<u8>>,
    control: Vec<u8>,
    _fds: Vec<OwnedFd>,
    _target: Option<OwnedFd>,
}

/// Work sent to a worker: the notification to answer and what to do.
struct Task {
    id: u64,
    job: Job,
}

/// The supervisor's mediation state for one run.
#[derive(Debug)]
pub struct Mediator {
    listener: Arc<OwnedFd>,
    /// When the run started, on the clock inodes are stamped with.
    started: (i64, u32),
    /// The launcher's own network namespace (a socket in another one is in the
    /// sandbox's private namespace).
    own_netns: u64,
    pool: Pool,
}

#[derive(Debug)]
struct Pool {
    tx: mpsc::Sender<Task>,
    rx: Arc<Mutex<mpsc::Receiver<Task>>>,
    idle: Arc<AtomicUsize>,
    threads: usize,
    listener: Arc<OwnedFd>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Task({})", self.id)
    }
}

impl Pool {
    fn submit(&mut self, task: Task) {
        if self.idle.load(Ordering::Acquire) == 0 && self.threads < MAX_WORKERS {
            let (rx, idle, listener) = (self.rx.clone(), self.idle.clone(), self.listener.clone());
            // Threads start only after the payload's execve (the first mediated
            // call comes from it): the launcher forks no more by then.
            if std::thread::Builder::new()
                .name("cordon-mediate".into())
                .spawn(move || worker(rx, idle, listener))
                .is_ok()
            {
                self.threads += 1;
            }
        }
        if self.threads == 0 {
            // No thread could be had: answer inline rather than not at all.
            run(&self.listener, task);
            return;
        }
        let _ = self.tx.send(task);
    }
}

fn worker(rx: Arc<Mutex<mpsc::Receiver<Task>>>, idle: Arc<AtomicUsize>, listener: Arc<OwnedFd>) {
    loop {
        idle.fetch_add(1, Ordering::AcqRel);
        let task = rx.lock().map(|r| r.recv());
        idle.fetch_sub(1, Ordering::AcqRel);
        match task {
            Ok(Ok(task)) => run(&listener, task),
            _ => return,
        }
    }
}

/// Perform the job and answer the notification with its result. A notification
/// whose caller is gone meanwhile makes the answer fail (ENOENT): nothing to do.
fn run(listener: &OwnedFd, task: Task) {
    let errno = |e: io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    match task.job {
        Job::Connect { sock, addr, .. } => {
            let r = sys::connect_raw(sock.as_fd(), &addr);
            let _ = match r {
                Ok(()) => sys::notif_send_val(listener, task.id, 0),
                Err(e) => sys::notif_send(listener, task.id, errno(e), false),
            };
        }
        Job::SendTo {
            sock,
            data,
            flags,
            addr,
            sigpipe,
            ..
        } => {
            let r = sys::sendto_raw(
                sock.as_fd(),
                &data,
                flags | libc::MSG_NOSIGNAL,
                addr.as_deref(),
            );
            let _ = match r {
                Ok(n) => sys::notif_send_val(listener, task.id, n as i64),
                Err(e) => {
                    if e.raw_os_error() == Some(libc::EPIPE) {
                        if let Some(p) = &sigpipe {
                            let _ = sys::pidfd_send_signal(p, libc::SIGPIPE);
                        }
                    }
                    sys::notif_send(listener, task.id, errno(e), false)
                }
            };
        }
        Job::SendMsg {
            sock,
            msgs,
            flags,
            vector,
            sigpipe,
        } => {
            let mut sent: Vec<usize> = Vec::new();
            let mut failed = None;
            for m in &msgs {
                match sys::sendmsg_raw(
                    sock.as_fd(),
                    &m.data,
                    m.name.as_deref(),
                    &m.control,
                    flags | libc::MSG_NOSIGNAL,
                ) {
                    Ok(n) => sent.push(n),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            // As the kernel: an error is returned only when nothing was sent.
            if sent.is_empty() {
                let e = failed.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL));
                if e.raw_os_error() == Some(libc::EPIPE) {
                    if let Some(p) = &sigpipe {
                        let _ = sys::pidfd_send_signal(p, libc::SIGPIPE);
                    }
                }
                let _ = sys::notif_send(listener, task.id, errno(e), false);
                return;
            }
            let val = match &vector {
                Some((mem, headers)) => {
                    for (n, h) in sent.iter().zip(headers) {
                        let _ = mem.write_all_at(&(*n as u32).to_ne_bytes(), h + MSGHDR);
                    }
                    sent.len() as i64
                }
                None => sent[0] as i64,
            };
            let _ = sys::notif_send_val(listener, task.id, val);
        }
    }
}

/// Where an address points, once classified by the socket's real family.
enum Target {
    /// A pathname unix socket (the bytes of sun_path up to its NUL).
    Path(Vec<u8>),
    /// An abstract unix address (the name after the leading NUL).
    Abstract(Vec<u8>),
    /// TCP (host, port), decided by the port rules.
    Tcp(String, u16),
    /// Anything else: no rule applies; the kernel judges the address.
    Other,
}

/// A notified call, as the supervisor read it.
struct Call {
    id: u64,
    tid: u32,
    args: [u64; 6],
}

/// Why a call is answered without being performed.
enum Refused {
    /// The kernel's own error (EBADF, EFAULT, ENOENT...): not a denial.
    Errno(i32),
    /// Caller gone: no answer.
    Gone,
    /// Refused by the policy.
    Denied(Verdict, String),
}

impl From<io::Error> for Refused {
    fn from(e: io::Error) -> Refused {
        Refused::Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl Mediator {
    /// The mediator of a run that started at `started` (coarse realtime).
    pub fn new(listener: &OwnedFd, started: (i64, u32)) -> io::Result<Mediator> {
        let listener = Arc::new(listener.try_clone()?);
        let own_netns = std::fs::metadata("/proc/self/ns/net")?.ino();
        let (tx, rx) = mpsc::channel();
        Ok(Mediator {
            pool: Pool {
                tx,
                rx: Arc::new(Mutex::new(rx)),
                idle: Arc::new(AtomicUsize::new(0)),
                threads: 0,
                listener: listener.clone(),
            },
            listener,
            started,
            own_netns,
        })
    }

    /// Handle a mediated call (`name` is one of [`crate::seccomp::mediated`]'s,
    /// but memfd_create, which the monitor makes itself). Answers the
    /// notification (now or from a worker); returns the denial to record.
    pub fn handle(
        &mut self,
        name: &str,
        n: &libc::seccomp_notif,
        policy: &Policy,
        plan: &Plan,
        at_ms: u64,
    ) -> Option<Denial> {
        let call = Call {
            id: n.id,
            tid: n.pid,
            args: n.data.args,
        };
        let r = match name {
            "connect" => self.connect(&call, policy, plan),
            "sendto" => self.sendto(&call, policy, plan),
            "sendmsg" | "sendmmsg" => self.sendmsg(name, &call, policy, plan),
            _ => Err(Refused::Errno(libc::ENOSYS)),
        };
        match r {
            Ok(job) => {
                self.pool.submit(Task { id: call.id, job });
                None
            }
            Err(Refused::Gone) => None,
            Err(Refused::Errno(0)) => {
                let _ = sys::notif_send_val(&self.listener, call.id, 0);
                None
            }
            Err(Refused::Errno(e)) => {
                let _ = sys::notif_send(&self.listener, call.id, e, false);
                None
            }
            Err(Refused::Denied(v, target)) => {
                let errno = v.errno.unwrap_or("EACCES");
                // Read while the caller waits: it may exit the moment it runs on.
                let exe = std::fs::read_link(format!("/proc/{}/exe", call.tid))
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let _ = sys::notif_send(&self.listener, call.id, errno_number(errno), false);
                let operation = if name == "connect" { "connect" } else { "send" };
                Some(Denial {
                    kind: crate::report::DenialKind::Net,
                    operation: operation.into(),
                    target,
                    pid: call.tid,
                    exe,
                    errno: errno.into(),
                    rule: v.rule,
                    suggestion: v.suggestion.unwrap_or_default(),
                    observed_by: crate::report::ObservedBy::SeccompNotify,
                    at_ms,
                })
            }
        }
    }

    /// The caller's socket `fd`, and its memory; None when the call is gone.
    fn take(&self, call: &Call, fd: u64) -> Result<(OwnedFd, File), Refused> {
        let pidfd = sys::pidfd_open_thread(call.tid).map_err(gone_or)?;
        let sock = sys::pidfd_getfd(&pidfd, fd as i32)?;
        let mem = File::open(format!("/proc/{}/mem", call.tid)).map_err(gone_or)?;
        // The tid could have been reused before pidfd_open: the notification
        // still pending means the thread it names is the one that called.
        if !sys::notif_id_valid(&self.listener, call.id) {
            return Err(Refused::Gone);
        }
        Ok((sock, mem))
    }

    fn connect(&self, call: &Call, policy: &Policy, plan: &Plan) -> Result<Job, Refused> {
        let (sock, mem) = self.take(call, call.args[0])?;
        let addr = read_addr(&mem, call.args[1], call.args[2])?;
        let (addr, target) = self.check(call, &sock, &addr, policy, plan, "connect")?;
        Ok(Job::Connect {
            sock,
            addr,
            _target: target,
        })
    }

    fn sendto(&self, call: &Call, policy: &Policy, plan: &Plan) -> Result<Job, Refused> {
        let a = call.args;
        let (sock, mem) = self.take(call, a[0])?;
        let flags = a[3] as i32;
        let addr = if a[5] as u32 == 0 {
            None
        } else {
            let raw = read_addr(&mem, a[4], a[5])?;
            Some(self.destination(call, &sock, &raw, flags, policy, plan)?)
        };
        let stream = sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_TYPE)?
            == libc::SOCK_STREAM;
        let len = a[2] as usize;
        if len > MAX_SEND && !stream {
            return Err(Refused::Errno(libc::EMSGSIZE));
        }
        let mut data = vec![0u8; len.min(MAX_SEND)];
        if !data.is_empty() {
            mem.read_exact_at(&mut data, a[1])
                .map_err(|_| Refused::Errno(libc::EFAULT))?;
        }
        let sigpipe = if flags & libc::MSG_NOSIGNAL == 0 {
            sys::pidfd_open_thread(call.tid).ok()
        } else {
            None
        };
        let (addr, target) = match addr {
            Some((a, t)) => (Some(a), t),
            None => (None, None),
        };
        Ok(Job::SendTo {
            sock,
            data,
            flags,
            addr,
            _target: target,
            sigpipe,
        })
    }

    /// sendmsg/sendmmsg: copy every message (address, data, control messages
    /// with the caller's descriptors taken by pidfd_getfd), decide on each
    /// address, and send them ourselves.
    fn sendmsg(
        &self,
        name: &str,
        call: &Call,
        policy: &Policy,
        plan: &Plan,
    ) -> Result<Job, Refused> {
        let a = call.args;
        let (sock, _) = self.take(call, a[0])?;
        let mem = File::options()
            .read(true)
            .write(name == "sendmmsg")
            .open(format!("/proc/{}/mem", call.tid))
            .map_err(gone_or)?;
        let pidfd = sys::pidfd_open_thread(call.tid).map_err(gone_or)?;
        let (headers, flags): (Vec<u64>, i32) = if name == "sendmsg" {
            (vec![a[1]], a[2] as i32)
        } else {
            let n = (a[2] & 0xffff_ffff).min(MAX_MMSG);
            ((0..n).map(|i| a[1] + i * MMSGHDR).collect(), a[3] as i32)
        };
        let stream = sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_TYPE)?
            == libc::SOCK_STREAM;
        let mut msgs = Vec::new();
        let mut total = 0usize;
        for (i, &h) in headers.iter().enumerate() {
            let r = self.message(call, &sock, &mem, &pidfd, h, stream, flags, policy, plan);
            match r {
                Ok(m) => {
                    total += m.data.len();
                    msgs.push(m);
                }
                // A later message's error ends the batch; the kernel reports what
                // was sent before it.
                Err(Refused::Errno(_)) if i > 0 => break,
                Err(e) => return Err(e),
            }
            if total >= MAX_SEND {
                break;
            }
        }
        if msgs.is_empty() {
            // sendmmsg with vlen 0 sends nothing and returns 0.
            return Err(Refused::Errno(0));
        }
        let vector = (name == "sendmmsg").then(|| (mem, headers[..msgs.len()].to_vec()));
        Ok(Job::SendMsg {
            sock,
            msgs,
            flags,
            vector,
            sigpipe: (flags & libc::MSG_NOSIGNAL == 0).then_some(pidfd),
        })
    }

    /// One msghdr at `h`, copied and checked.
    #[allow(clippy::too_many_arguments)]
    fn message(
        &self,
        call: &Call,
        sock: &OwnedFd,
        mem: &File,
        pidfd: &OwnedFd,
        h: u64,
        stream: bool,
        flags: i32,
        policy: &Policy,
        plan: &Plan,
    ) -> Result<Msg, Refused> {
        let efault = |_| Refused::Errno(libc::EFAULT);
        let mut b = [0u8; MSGHDR as usize];
        mem.read_exact_at(&mut b, h).map_err(efault)?;
        let word = |at: usize| u64::from_ne_bytes(b[at..at + 8].try_into().unwrap_or_default());
        let (name_ptr, name_len) = (word(0), word(8) & 0xffff_ffff);
        let (iov_ptr, iov_len) = (word(16), word(24));
        let (ctl_ptr, ctl_len) = (word(32), word(40));
        let (name, target) = if name_ptr != 0 && name_len != 0 {
            let raw = read_addr(mem, name_ptr, name_len)?;
            let (a, t) = self.destination(call, sock, &raw, flags, policy, plan)?;
            (Some(a), t)
        } else {
            (None, None)
        };
        if iov_len > 1024 {
            return Err(Refused::Errno(libc::EMSGSIZE));
        }
        let mut data = Vec::new();
        for i in 0..iov_len {
            let mut v = [0u8; 16];
            mem.read_exact_at(&mut v, iov_ptr + i * 16)
                .map_err(efault)?;
            let base = u64::from_ne_bytes(v[0..8].try_into().unwrap_or_default());
            let len = u64::from_ne_bytes(v[8..16].try_into().unwrap_or_default()) as usize;
            let room = MAX_SEND - data.len();
            if len > room && !stream {
                return Err(Refused::Errno(libc::EMSGSIZE));
            }
            let take = len.min(room);
            let at = data.len();
            data.resize(at + take, 0);
            if take > 0 {
                mem.read_exact_at(&mut data[at..], base).map_err(efault)?;
            }
            if data.len() >= MAX_SEND {
                break;
            }
        }
        if ctl_len > MAX_CONTROL {
            return Err(Refused::Errno(libc::ENOBUFS));
        }
        let mut raw = vec![0u8; ctl_len as usize];
        if !raw.is_empty() {
            mem.read_exact_at(&mut raw, ctl_ptr).map_err(efault)?;
        }
        let (control, fds) = rebuild_control(&raw, |fd| sys::pidfd_getfd(pidfd, fd))?;
        Ok(Msg {
            data,
            name,
            control,
            _fds: fds,
            _target: target,
        })
    }

    /// The address a send may use (TCP ignores it but with MSG_FASTOPEN).
    fn destination(
        &self,
        call: &Call,
        sock: &OwnedFd,
        raw: &[u8],
        flags: i32,
        policy: &Policy,
        plan: &Plan,
    ) -> Result<(Vec<u8>, Option<OwnedFd>), Refused> {
        let kind = sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_TYPE)?;
        if kind == libc::SOCK_STREAM && flags & libc::MSG_FASTOPEN == 0 && is_inet(sock) {
            return Ok((raw.to_vec(), None));
        }
        self.check(call, sock, raw, policy, plan, "send")
    }

    /// Decide on `addr` for `sock`; allowed: the address to use (a pathname
    /// rewritten to the O_PATH descriptor of what was checked, kept alive).
    fn check(
        &self,
        call: &Call,
        sock: &OwnedFd,
        addr: &[u8],
        policy: &Policy,
        plan: &Plan,
        what: &str,
    ) -> Result<(Vec<u8>, Option<OwnedFd>), Refused> {
        let domain = sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_DOMAIN)?;
        match classify(domain, addr) {
            Target::Path(p) => {
                let (fd, resolved) = resolve(call.tid, &p)?;
                let (mode, btime) = sys::statx_mode_btime(fd.as_fd())?;
                if mode & libc::S_IFMT != libc::S_IFSOCK {
                    // As the kernel: the write check first (a mask is mode 000),
                    // then "not a socket".
                    let e = if mode & 0o222 == 0 {
                        libc::EACCES
                    } else {
                        libc::ECONNREFUSED
                    };
                    return Err(Refused::Errno(e));
                }
                let birth = match btime {
                    None => Birth::Unknown,
                    Some(t) if t >= self.started => Birth::During,
                    Some(_) => Birth::Before,
                };
                let v = policy.unix.decide(&resolved, birth);
                if !v.allowed {
                    return Err(Refused::Denied(v, resolved.display().to_string()));
                }
                let via = format!("/proc/self/fd/{}", fd.as_raw_fd());
                Ok((sockaddr_un(via.as_bytes()), Some(fd)))
            }
            Target::Abstract(name) => {
                let private = plan.mounts.as_ref().is_some_and(|m| m.net)
                    && sys::socket_netns_ino(sock.as_fd()).is_ok_and(|ns| ns != self.own_netns);
                let at = if private {
                    AbstractWhere::PrivateNetns
                } else {
                    AbstractWhere::Shared {
                        held_inside: if policy.unix.abstract_allowed {
                            None
                        } else {
                            held_inside(&name)
                        },
                    }
                };
                let v = decide_abstract(&policy.unix, at);
                if !v.allowed {
                    if v.errno == Some("ECONNREFUSED") {
                        return Err(Refused::Errno(libc::ECONNREFUSED));
                    }
                    let shown = String::from_utf8_lossy(&name).replace('\0', "@");
                    return Err(Refused::Denied(v, format!("@{shown}")));
                }
                Ok((addr.to_vec(), None))
            }
            Target::Tcp(host, port) => {
                let kind = sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_TYPE)?;
                // Landlock's port rules cover TCP only; the filter leaves other inet
                // sockets to the network mode.
                // Datagrams (mode "filtered": to the resolver only) and mode
                // "proxy" (loopback alone in its own network namespace; the
                // proxy's port on 127.0.0.1 alone without one).
                if let Some(v) = explain::decide_inet(policy, plan, &host, port, kind) {
                    if !v.allowed {
                        return Err(Refused::Denied(v, format!("{host}:{port}")));
                    }
                    return Ok((addr.to_vec(), None));
                }
                // Mode "proxy": the tree's network namespace holds loopback and
                // the proxy only; names are decided by the proxy itself.
                let own_netns = matches!(policy.net, Network::Proxy(_));
                if kind == libc::SOCK_STREAM && policy.net != Network::On && !own_netns {
                    let v = explain::decide(policy, plan, &Query::Connect(host.clone(), port));
                    if !v.allowed {
                        let v = Verdict {
                            errno: Some("EACCES"),
                            ..v
                        };
                        let _ = what;
                        return Err(Refused::Denied(v, format!("{host}:{port}")));
                    }
                }
                Ok((addr.to_vec(), None))
            }
            Target::Other => Ok((addr.to_vec(), None)),
        }
    }
}

/// A failure to reach the caller: gone (the thread exited: no answer is
/// owed), or the launcher's own trouble (out of descriptors, EMFILE), which
/// is answered with that errno so the call never waits for ever.
fn gone_or(e: io::Error) -> Refused {
    match e.raw_os_error() {
        Some(libc::ESRCH | libc::ENOENT) | None => Refused::Gone,
        Some(code) => Refused::Errno(code),
    }
}

fn is_inet(sock: &OwnedFd) -> bool {
    matches!(
        sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_DOMAIN),
        Ok(libc::AF_INET | libc::AF_INET6)
    )
}

fn errno_number(name: &str) -> i32 {
    match name {
        "EPERM" => libc::EPERM,
        "EAFNOSUPPORT" => libc::EAFNOSUPPORT,
        "ECONNREFUSED" => libc::ECONNREFUSED,
        "ENETUNREACH" => libc::ENETUNREACH,
        _ => libc::EACCES,
    }
}

/// Copy the caller's address (`len` as the kernel reads it: an int).
fn read_addr(mem: &File, ptr: u64, len: u64) -> Result<Vec<u8>, Refused> {
    let len = len as u32 as i32;
    if len < 0 || len as usize > MAX_ADDR {
        return Err(Refused::Errno(libc::EINVAL));
    }
    let mut b = vec![0u8; len as usize];
    if !b.is_empty() {
        mem.read_exact_at(&mut b, ptr)
            .map_err(|_| Refused::Errno(libc::EFAULT))?;
    }
    Ok(b)
}

/// What `addr` names for a socket of family `domain` (the socket's, not the
/// address's: a mismatched address is the kernel's to refuse).
fn classify(domain: i32, addr: &[u8]) -> Target {
    let fam = addr
        .get(0..2)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]) as i32)
        .unwrap_or(-1);
    match (domain, fam) {
        (libc::AF_UNIX, libc::AF_UNIX) if addr.len() > 2 => {
            let path = &addr[2..];
            if path[0] == 0 {
                Target::Abstract(path[1..].to_vec())
            } else {
                let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                Target::Path(path[..end].to_vec())
            }
        }
        (libc::AF_INET, libc::AF_INET) if addr.len() >= 16 => Target::Tcp(
            std::net::Ipv4Addr::new(addr[4], addr[5], addr[6], addr[7]).to_string(),
            u16::from_be_bytes([addr[2], addr[3]]),
        ),
        (libc::AF_INET6, libc::AF_INET6) if addr.len() >= 24 => {
            let o: [u8; 16] = addr[8..24].try_into().unwrap_or_default();
            Target::Tcp(
                std::net::Ipv6Addr::from(o).to_string(),
                u16::from_be_bytes([addr[2], addr[3]]),
            )
        }
        // A short inet address (EINVAL), AF_UNSPEC (disconnect), netlink...: the
        // kernel answers these from the bytes as given.
        _ => Target::Other,
    }
}

/// The control messages of a send, with every SCM_RIGHTS descriptor replaced
/// by `take(fd)` (ours, returned to be kept alive until the send) and
/// SCM_CREDENTIALS naming the sender that sends: the kernel checks the pid
/// against the sending process, which is the launcher.
fn rebuild_control(
    raw: &[u8],
    mut take: impl FnMut(i32) -> io::Result<OwnedFd>,
) -> Result<(Vec<u8>, Vec<OwnedFd>), Refused> {
    const HDR: usize = 16;
    let mut out = raw.to_vec();
    let mut fds = Vec::new();
    let mut off = 0;
    while off + HDR <= raw.len() {
        let len = u64::from_ne_bytes(raw[off..off + 8].try_into().unwrap_or_default()) as usize;
        let level = i32::from_ne_bytes(raw[off + 8..off + 12].try_into().unwrap_or_default());
        let kind = i32::from_ne_bytes(raw[off + 12..off + 16].try_into().unwrap_or_default());
        if len < HDR || off + len > raw.len() {
            return Err(Refused::Errno(libc::EINVAL));
        }
        let body = off + HDR..off + len;
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            for at in body.clone().step_by(4).filter(|at| at + 4 <= off + len) {
                let fd = i32::from_ne_bytes(raw[at..at + 4].try_into().unwrap_or_default());
                let ours = take(fd).map_err(|_| Refused::Errno(libc::EBADF))?;
                out[at..at + 4].copy_from_slice(&ours.as_raw_fd().to_ne_bytes());
                fds.push(ours);
            }
        } else if level == libc::SOL_SOCKET && kind == libc::SCM_CREDENTIALS && len >= HDR + 4 {
            out[off + HDR..off + HDR + 4]
                .copy_from_slice(&(std::process::id() as i32).to_ne_bytes());
        }
        off += len.next_multiple_of(8);
    }
    Ok((out, fds))
}

/// A sockaddr_un for `path`.
fn sockaddr_un(path: &[u8]) -> Vec<u8> {
    let mut v = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
    v.extend_from_slice(path);
    v.push(0);
    v
}

/// Open (O_PATH) the socket file `path` names for thread `tid`, resolved as the
/// thread would: inside its root (its mount view), relative paths from its
/// working directory. Returns the descriptor and its path in that view.
fn resolve(tid: u32, path: &[u8]) -> Result<(OwnedFd, PathBuf), Refused> {
    let proc = format!("/proc/{tid}");
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(format!("{proc}/root"))
        .map_err(gone_or)?;
    let full = if path.first() == Some(&b'/') {
        PathBuf::from(std::ffi::OsStr::from_bytes(path))
    } else {
        // Resolved in the root from the cwd's path: a directory renamed meanwhile
        // makes us open another file, which is then the one checked and connected.
        let cwd = std::fs::read_link(format!("{proc}/cwd")).map_err(gone_or)?;
        cwd.join(std::ffi::OsStr::from_bytes(path))
    };
    let c = CString::new(full.as_os_str().as_bytes()).map_err(|_| Refused::Errno(libc::EINVAL))?;
    let fd = sys::openat2_path(
        root.as_fd(),
        &c,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )?;
    // The path the kernel reached, in the caller's view (d_path from its mount
    // namespace's root, which is its root: the sandbox cannot chroot).
    let resolved = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    Ok((fd, resolved))
}

/// Whether every socket bound to abstract `name` (in the launcher's network
/// namespace, which the caller shares) is held by a process of the sandbox;
/// None when no socket has the name. /proc/net/unix shows a NUL of the name
/// as '@', so names differing only there all count, and one held outside is
/// enough to refuse.
fn held_inside(name: &[u8]) -> Option<bool> {
    let table = std::fs::read("/proc/self/net/unix").ok()?;
    let mut want = b"@".to_vec();
    want.extend(name.iter().map(|&b| if b == 0 { b'@' } else { b }));
    let mut inodes = Vec::new();
    for line in table.split(|&b| b == b'\n').skip(1) {
        // Num RefCount Protocol Flags Type St Inode Path
        let mut rest = line;
        let mut fields = Vec::new();
        for _ in 0..7 {
            let Some(start) = rest.iter().position(|&b| b != b' ') else {
                break;
            };
            rest = &rest[start..];
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        if fields.len() == 7 && rest.first() == Some(&b' ') && rest[1..] == want[..] {
            inodes.push(String::from_utf8_lossy(fields[6]).into_owned());
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let mut held = std::collections::BTreeSet::new();
    for pid in crate::sandbox::descendants() {
        for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(t) = std::fs::read_link(e.path()) {
                let t = t.to_string_lossy();
                if let Some(ino) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    held.insert(ino.to_string());
                }
            }
        }
    }
    Some(inodes.iter().all(|i| held.contains(i)))
}

/// Whether `path` names a socket this sandbox may reach, for `explain`.
pub fn explain_path(policy: &Policy, path: &Path) -> Verdict {
    policy.unix.explain(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(path: &[u8]) -> Vec<u8> {
        let mut v = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(path);
        v
    }

    #[test]
    fn addresses_are_classified_by_the_socket_family() {
        assert!(
            matches!(classify(libc::AF_UNIX, &un(b"/tmp/x\0junk")), Target::Path(p) if p == b"/tmp/x")
        );
        assert!(matches!(classify(libc::AF_UNIX, &un(b"rel")), Target::Path(p) if p == b"rel"));
        assert!(
            matches!(classify(libc::AF_UNIX, &un(b"\0name\0x")), Target::Abstract(n) if n == b"name\0x")
        );
        // Unnamed, or an inet address on a unix socket: the kernel's to judge.
        assert!(matches!(classify(libc::AF_UNIX, &un(b"")), Target::Other));
        let mut inet = vec![0u8; 16];
        inet[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        inet[2..4].copy_from_slice(&8080u16.to_be_bytes());
        inet[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert!(matches!(classify(libc::AF_UNIX, &inet), Target::Other));
        assert!(matches!(classify(libc::AF_INET, &inet), Target::Tcp(h, 8080) if h == "127.0.0.1"));
        // A unix address on an inet socket is not read as a path.
        assert!(matches!(
            classify(libc::AF_INET, &un(b"/tmp/x")),
            Target::Other
        ));
    }

    #[test]
    fn control_messages_carry_our_descriptors() {
        let cmsg = |level: i32, kind: i32, body: &[u8]| {
            let mut v = ((16 + body.len()) as u64).to_ne_bytes().to_vec();
            v.extend_from_slice(&level.to_ne_bytes());
            v.extend_from_slice(&kind.to_ne_bytes());
            v.extend_from_slice(body);
            v.resize(v.len().next_multiple_of(8), 0);
            v
        };
        let mut rights = 7i32.to_ne_bytes().to_vec();
        rights.extend_from_slice(&9i32.to_ne_bytes());
        let mut raw = cmsg(libc::SOL_SOCKET, libc::SCM_RIGHTS, &rights);
        raw.extend(cmsg(libc::SOL_SOCKET, libc::SCM_CREDENTIALS, &[1u8; 12]));
        raw.extend(cmsg(libc::SOL_IP, 8, &[5u8; 12]));
        let mut asked = Vec::new();
        let (out, fds) = rebuild_control(&raw, |fd| {
            asked.push(fd);
            Ok(File::open("/dev/null")?.into())
        })
        .unwrap_or_else(|_| panic!("valid control messages"));
        assert_eq!(asked, [7, 9]);
        assert_eq!(fds.len(), 2);
        let fd_at = |at: usize| i32::from_ne_bytes(out[at..at + 4].try_into().unwrap());
        assert_eq!(fd_at(16), fds[0].as_raw_fd());
        assert_eq!(fd_at(20), fds[1].as_raw_fd());
        assert_eq!(
            fd_at(24 + 16),
            std::process::id() as i32,
            "credentials name the sender"
        );
        assert_eq!(
            out[out.len() - 16..out.len() - 4],
            [5u8; 12],
            "other messages pass as they are"
        );
        // A length running past the buffer is the kernel's EINVAL; a bad fd EBADF.
        let mut bad = raw.clone();
        bad[0] = 200;
        assert!(matches!(
            rebuild_control(&bad, |_| Err(io::Error::other("x"))),
            Err(Refused::Errno(libc::EINVAL))
        ));
        assert!(matches!(
            rebuild_control(&raw, |_| Err(io::Error::other("x"))),
            Err(Refused::Errno(libc::EBADF))
        ));
    }

    #[test]
    fn rewritten_address_names_the_checked_descriptor() {
        let a = sockaddr_un(b"/proc/self/fd/7");
        assert_eq!(&a[2..], b"/proc/self/fd/7\0");
    }
}
