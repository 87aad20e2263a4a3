//! The seccomp filter: the default deny list, the socket-family rule that makes
//! "network off" real, profile adjustments, compilation to BPF (a prologue
//! that kills foreign architectures and answers the x32 range, a binary search
//! on the number, and a block of argument checks per number that has them; see
//! [`assemble`]), and installation. seccompiler provides the program types.
//!
//! One list of [`SyscallRule`]s is the single source of truth: it compiles to BPF,
//! it is evaluated in user space by [`SyscallPolicy::decide`] (for `explain` and
//! for the denial supervisor), and `profile show` prints it.
//!
//! Speed: every rule keys on a syscall number, and syscalls without a rule reach
//! `RET_ALLOW` after loading only the architecture and the number, so the kernel's
//! seccomp action cache answers them in constant time without running BPF; the
//! binary search keeps the rest short, and the installation (when the kernel
//! evaluates the filter for every number to build that cache) cheap.

use std::collections::BTreeMap;
use std::fmt;

use seccompiler::{BpfProgram, sock_filter};

use crate::error::{Error, Result};
use crate::policy::Network;
use crate::profile::{Item, Syscalls};
use crate::syscalls;

/// A comparison on the low 32 bits of one argument. The kernel reads these
/// arguments as `int`/`unsigned int`, so comparing 64 bits would let a payload
/// set high bits to slip past (CVE-2019-10063).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Eq(u8, u32),
    Ne(u8, u32),
    /// `(arg & mask) == mask`: a flag is set.
    HasFlag(u8, u32),
    /// The whole 64-bit argument is not zero: for pointers, where a payload
    /// controls the high bits (memory mapped at 0x1_0000_0000 has a NULL low half).
    NonZero64(u8),
}

impl Check {
    fn holds(self, args: &[u64; 6]) -> bool {
        let a = |i: u8| args[i as usize] as u32;
        match self {
            Check::Eq(i, v) => a(i) == v,
            Check::Ne(i, v) => a(i) != v,
            Check::HasFlag(i, m) => a(i) & m == m,
            Check::NonZero64(i) => args[i as usize] != 0,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Eq(i, v) => write!(f, "arg{i} == {v:#x}"),
            Check::Ne(i, v) => write!(f, "arg{i} != {v:#x}"),
            Check::HasFlag(i, m) => write!(f, "arg{i} & {m:#x}"),
            Check::NonZero64(i) => write!(f, "arg{i} != NULL"),
        }
    }
}

/// What the filter answers for a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errno {
    Eperm,
    Enosys,
    Eafnosupport,
}

impl Errno {
    pub fn raw(self) -> i32 {
        match self {
            Errno::Eperm => libc::EPERM,
            Errno::Enosys => libc::ENOSYS,
            Errno::Eafnosupport => libc::EAFNOSUPPORT,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Errno::Eperm => "EPERM",
            Errno::Enosys => "ENOSYS",
            Errno::Eafnosupport => "EAFNOSUPPORT",
        }
    }
}

/// One refusal: `name` (number `nr`) is refused with `errno` when all `checks` hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallRule {
    pub name: &'static str,
    pub nr: i64,
    pub checks: Vec<Check>,
    pub errno: Errno,
    /// Why the rule exists, shown by `explain` and in reports.
    pub reason: &'static str,
    /// The profile line that added it (`[syscalls] deny`), if any.
    pub origin: Option<String>,
    /// The supervisor looks at the call before it is refused (see [`Supervised`]).
    pub supervised: Option<Supervised>,
}

/// Calls the supervisor answers by looking at what they act on, rather than
/// refusing them outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervised {
    /// The call acts on the process whose pid (or tid) is argument `n`: the
    /// supervisor lets it run when that process belongs to the run. Without a
    /// supervisor (no listener) the filter refuses it: fail closed.
    OwnProcess(u8),
    /// A metadata change (chmod, chown, xattrs, times): the supervisor performs
    /// it itself when its object lies in a writable root, and refuses it
    /// otherwise. Without a supervisor it runs unmediated (a gap that `-v`,
    /// `doctor` and reports name), since refusing it would refuse it everywhere.
    Metadata,
}

/// Whether the sandbox has its own namespaces or sees the host's: without them
/// the host's processes and SysV IPC are reachable, and the filter refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    Namespaces,
    Host,
}

impl fmt::Display for SyscallRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if !self.checks.is_empty() {
            let c: Vec<String> = self.checks.iter().map(|c| c.to_string()).collect();
            write!(f, " if {}", c.join(" && "))?;
        }
        match self.supervised {
            None => write!(f, " -> {} ({})", self.errno.name(), self.reason),
            Some(Supervised::OwnProcess(_)) => write!(
                f,
                " -> supervisor: allowed for the run's own processes, else {} ({})",
                self.errno.name(),
                self.reason
            ),
            Some(Supervised::Metadata) => write!(
                f,
                " -> supervisor: performed inside writable roots, else {} ({})",
                self.errno.name(),
                self.reason
            ),
        }
    }
}

/// Whether a supervised filter sends refused calls to the supervisor (capture)
/// or answers them itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusals {
    Notify,
    Errno,
}

/// The final syscall policy of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallPolicy {
    pub rules: Vec<SyscallRule>,
    /// The profile's `[syscalls] allow`, applied again to the rules of an isolation.
    allowed: Vec<&'static str>,
}

const NS_MOUNT: &str = "namespaces and mounts";
const NEW_MOUNT_API: &str = "new mount API";
const KEYRING: &str = "kernel keyrings";
const OTHER_PROC: &str = "access to other processes";
const KERNEL: &str = "kernel attack surface";
const IO_URING: &str = "io_uring bypasses seccomp for its own operations";
const PRIV: &str = "privileged operation";
const TTY: &str = "terminal injection";
const SOCKET: &str = "socket family not allowed by [network] mode";
const PROFILE: &str = "[syscalls] deny";
const SETID: &str = "setuid and setgid bits are never set inside the sandbox";
const HOST_IPC: &str = "SysV IPC is the host's without namespaces";
const OUTSIDE_PROC: &str = "processes outside the sandbox are the host's without namespaces";
const METADATA: &str = "metadata outside writable roots (Landlock does not mediate it)";
/// The reasons of the rules [`SyscallPolicy::set_isolation`] adds.
const ISOLATION_REASONS: &[&str] = &[HOST_IPC, OUTSIDE_PROC, METADATA];

/// SysV IPC: the host's own objects without an IPC namespace.
const SYSV_IPC: &[&str] = &[
    "shmget",
    "shmat",
    "shmctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
];

/// Calls that change another process's limits, priority or scheduling, and the
/// argument that names it (0 is the caller itself).
const PID_TARGETS: &[(&str, u8)] = &[
    ("prlimit64", 0),
    ("sched_setaffinity", 0),
    ("sched_setscheduler", 0),
    ("sched_setparam", 0),
    ("sched_setattr", 0),
];

/// Metadata calls the supervisor mediates without namespaces.
pub const METADATA_CALLS: &[&str] = &[
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "setxattrat",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "removexattrat",
    "utime",
    "utimes",
    "futimesat",
    "utimensat",
];

/// Where the mode argument is, for the calls that can set setuid or setgid bits.
const MODE_ARG: &[(&str, u8)] = &[
    ("chmod", 1),
    ("fchmod", 1),
    ("fchmodat", 2),
    ("fchmodat2", 2),
    ("mknod", 1),
    ("mknodat", 2),
    ("creat", 1),
];
const PRIO_PROCESS: u32 = 0;
const PRIO_PGRP: u32 = 1;
const IOPRIO_WHO_PROCESS: u32 = 1;
const IOPRIO_WHO_PGRP: u32 = 2;
const OWN_PGRP: &str = "the caller's process group is cordon's, outside the sandbox";

const EPERM_ALWAYS: &[(&str, &str)] = &[
    ("unshare", NS_MOUNT),
    ("setns", NS_MOUNT),
    ("mount", NS_MOUNT),
    ("umount2", NS_MOUNT),
    ("pivot_root", NS_MOUNT),
    ("chroot", NS_MOUNT),
    ("add_key", KEYRING),
    ("keyctl", KEYRING),
    ("request_key", KEYRING),
    ("ptrace", OTHER_PROC),
    ("process_vm_readv", OTHER_PROC),
    ("process_vm_writev", OTHER_PROC),
    ("pidfd_getfd", OTHER_PROC),
    ("perf_event_open", OTHER_PROC),
    ("kcmp", OTHER_PROC),
    ("bpf", KERNEL),
    ("userfaultfd", KERNEL),
    ("init_module", PRIV),
    ("finit_module", PRIV),
    ("delete_module", PRIV),
    ("create_module", PRIV),
    ("query_module", PRIV),
    ("kexec_load", PRIV),
    ("kexec_file_load", PRIV),
    ("reboot", PRIV),
    ("swapon", PRIV),
    ("swapoff", PRIV),
    ("acct", PRIV),
    ("quotactl", PRIV),
    ("quotactl_fd", PRIV),
    ("syslog", PRIV),
    ("iopl", PRIV),
    ("ioperm", PRIV),
    ("settimeofday", PRIV),
    ("clock_settime", PRIV),
    ("clock_adjtime", PRIV),
    ("adjtimex", PRIV),
    ("sethostname", PRIV),
    ("setdomainname", PRIV),
    ("vhangup", PRIV),
    ("open_by_handle_at", PRIV),
    ("name_to_handle_at", PRIV),
    ("fanotify_init", PRIV),
    ("uselib", PRIV),
    ("modify_ldt", PRIV),
    ("lookup_dcookie", PRIV),
    ("nfsservctl", PRIV),
    ("mbind", PRIV),
    ("set_mempolicy", PRIV),
    ("set_mempolicy_home_node", PRIV),
    ("migrate_pages", PRIV),
    ("move_pages", PRIV),
];

const ENOSYS_ALWAYS: &[(&str, &str)] = &[
    // ENOSYS, not EPERM: libc then falls back to clone(2), which the filter can inspect.
    ("clone3", NS_MOUNT),
    ("open_tree", NEW_MOUNT_API),
    ("open_tree_attr", NEW_MOUNT_API),
    ("move_mount", NEW_MOUNT_API),
    ("fsopen", NEW_MOUNT_API),
    ("fsconfig", NEW_MOUNT_API),
    ("fsmount", NEW_MOUNT_API),
    ("fspick", NEW_MOUNT_API),
    ("mount_setattr", NEW_MOUNT_API),
    ("io_uring_setup", IO_URING),
    ("io_uring_enter", IO_URING),
    ("io_uring_register", IO_URING),
];

const CLONE_NEW_FLAGS: &[u32] = &[
    libc::CLONE_NEWNS as u32,
    libc::CLONE_NEWCGROUP as u32,
    libc::CLONE_NEWUTS as u32,
    libc::CLONE_NEWIPC as u32,
    libc::CLONE_NEWUSER as u32,
    libc::CLONE_NEWPID as u32,
    libc::CLONE_NEWNET as u32,
];

/// Refusals that are expected and frequent, answered without the supervisor.
const QUIET: &[&str] = &["clone3"];

/// Calls the supervisor always handles: every execve of the tree (recorded, then
/// run), and memfd_create (made by the supervisor with MFD_NOEXEC_SEAL, so code
/// written into a memfd cannot be executed outside `exec` coverage).
pub const OBSERVE_EXEC: &[&str] = &["execve", "execveat", "memfd_create"];

/// Approval gates on files (`approve.read`): the opens, whose path the
/// supervisor compares with the gated files.
pub const OBSERVE_OPENS: &[&str] = &["open", "openat", "openat2"];

/// With --trace, also the path and connect calls whose Landlock outcome the
/// supervisor predicts (Landlock does not report denials to unprivileged callers).
pub const OBSERVE_TRACE: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "unlink",
    "unlinkat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "truncate",
    "connect",
    "bind",
];

/// Calls the supervisor performs itself whatever the capture options (see
/// `unix_mediate`): connect, and sends that name an address, so that no
/// pathname unix socket made outside the sandbox is reached unless listed;
/// and memfd_create, made non-executable. `sendto` without an address goes to
/// the connected peer and stays in the kernel.
pub fn mediated() -> Vec<SyscallRule> {
    let rule = |name: &'static str, checks: Vec<Check>| {
        syscalls::number(name).map(|nr| SyscallRule {
            name,
            nr,
            checks,
            errno: Errno::Eperm,
            reason: "performed by the supervisor",
            origin: None,
            supervised: None,
        })
    };
    [
        rule("connect", vec![]),
        rule("sendto", vec![Check::NonZero64(4)]),
        rule("sendmsg", vec![]),
        rule("sendmmsg", vec![]),
        rule("memfd_create", vec![]),
    ]
    .into_iter()
    .flatten()
    .collect()
}

const W: u32 = libc::O_WRONLY as u32;
const RW: u32 = libc::O_RDWR as u32;
const CREAT: u32 = libc::O_CREAT as u32;
const TRUNC: u32 = libc::O_TRUNC as u32;

/// The change record (see `changes`): calls that may create, modify, delete or
/// rename a file, observed before they run; each entry is refused-or-observed
/// when all its checks hold, and a number's entries are alternatives. Opens
/// are sent only with a write-intent flag (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC;
/// O_TMPFILE needs a write mode too), so reads stay in the kernel; openat2's
/// flags live in memory the filter cannot see, so it is always sent.
pub const OBSERVE_CHANGES: &[(&str, &[Check])] = &[
    ("open", &[Check::HasFlag(1, W)]),
    ("open", &[Check::HasFlag(1, RW)]),
    ("open", &[Check::HasFlag(1, CREAT)]),
    ("open", &[Check::HasFlag(1, TRUNC)]),
    ("openat", &[Check::HasFlag(2, W)]),
    ("openat", &[Check::HasFlag(2, RW)]),
    ("openat", &[Check::HasFlag(2, CREAT)]),
    ("openat", &[Check::HasFlag(2, TRUNC)]),
    ("openat2", &[]),
    ("creat", &[]),
    ("mkdir", &[]),
    ("mkdirat", &[]),
    ("mknod", &[]),
    ("mknodat", &[]),
    ("unlink", &[]),
    ("unlinkat", &[]),
    ("rmdir", &[]),
    ("rename", &[]),
    ("renameat", &[]),
    ("renameat2", &[]),
    ("link", &[]),
    ("linkat", &[]),
    ("symlink", &[]),
    ("symlinkat", &[]),
    ("truncate", &[]),
    ("ftruncate", &[]),
    ("chmod", &[]),
    ("fchmod", &[]),
    ("fchmodat", &[]),
    ("fchmodat2", &[]),
    ("chown", &[]),
    ("fchown", &[]),
    ("lchown", &[]),
    ("fchownat", &[]),
    ("utime", &[]),
    ("utimes", &[]),
    ("utimensat", &[]),
    ("futimesat", &[]),
];

/// Whether `name` with `args` is one the change record observes (the user-space
/// mirror of [`OBSERVE_CHANGES`] in the filter; with --trace every open arrives).
pub fn observes_change(name: &str, args: &[u64; 6]) -> bool {
    OBSERVE_CHANGES
        .iter()
        .any(|(n, checks)| *n == name && checks.iter().all(|c| c.holds(args)))
}

const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541C;
const TIOCSETD: u32 = 0x5423;
const NETLINK_ROUTE: u32 = 0;

/// Rules that inspect arguments and therefore cannot be removed by `[syscalls] allow`
/// without saying what they protect.
const GUARDED: &[(&str, &str)] = &[
    ("socket", "socket families are set by [network] mode"),
    ("socketpair", "socket families are set by [network] mode"),
];

impl SyscallPolicy {
    /// The default deny list for `net`, adjusted by the profile's `[syscalls]`.
    pub fn new(profile: &Syscalls, net: &Network) -> Result<SyscallPolicy> {
        let mut rules = Vec::new();
        let mut push =
            |name: &'static str, checks: Vec<Check>, errno: Errno, reason: &'static str| {
                // Names missing on this architecture (e.g. create_module) have nothing to refuse.
                if let Some(nr) = syscalls::number(name) {
                    rules.push(SyscallRule {
                        name,
                        nr,
                        checks,
                        errno,
                        reason,
                        origin: None,
                        supervised: None,
                    });
                }
            };
        for &(name, why) in EPERM_ALWAYS {
            push(name, vec![], Errno::Eperm, why);
        }
        for &(name, why) in ENOSYS_ALWAYS {
            push(name, vec![], Errno::Enosys, why);
        }
        for &flag in CLONE_NEW_FLAGS {
            push(
                "clone",
                vec![Check::HasFlag(0, flag)],
                Errno::Eperm,
                NS_MOUNT,
            );
        }
        // personality(2): only the query (0xffffffff) and the plain Linux persona.
        push(
            "personality",
            vec![Check::Ne(0, 0), Check::Ne(0, 0xffff_ffff)],
            Errno::Eperm,
            PRIV,
        );
        for cmd in [TIOCSTI, TIOCLINUX, TIOCSETD] {
            push("ioctl", vec![Check::Eq(1, cmd)], Errno::Eperm, TTY);
        }
        for (name, checks) in socket_rules(net) {
            push(name, checks, Errno::Eafnosupport, SOCKET);
        }
        for (name, checks) in setid_rules() {
            push(name, checks, Errno::Eperm, SETID);
        }
        // The caller's own process group (who 0) is cordon's, on the host, even
        // in a PID namespace: the kernel takes it from the caller, not by number.
        for (name, which) in [("setpriority", PRIO_PGRP), ("ioprio_set", IOPRIO_WHO_PGRP)] {
            push(
                name,
                vec![Check::Eq(0, which), Check::Eq(1, 0)],
                Errno::Eperm,
                OWN_PGRP,
            );
        }
        // openat2's mode lives in a struct the filter cannot read: ENOSYS, which
        // its callers already handle (kernels before 5.6), and they fall back to openat.
        push("openat2", vec![], Errno::Enosys, SETID);

        let mut allowed = Vec::new();
        for item in &profile.allow {
            let name = known(item)?;
            if let Some((_, why)) = GUARDED.iter().find(|(n, _)| *n == name) {
                return Err(Error::invalid(
                    item.origin.located(),
                    format!("`{name}` cannot be allowed: {why}"),
                ));
            }
            rules.retain(|r| r.name != name);
            allowed.push(name);
        }
        for item in &profile.deny {
            let name = known(item)?;
            let nr = syscalls::number(name).unwrap_or_default();
            rules.retain(|r| !(r.name == name && r.errno == Errno::Eperm && r.origin.is_some()));
            rules.push(SyscallRule {
                name,
                nr,
                checks: vec![],
                errno: Errno::Eperm,
                reason: PROFILE,
                origin: Some(item.origin.to_string()),
                supervised: None,
            });
        }
        Ok(SyscallPolicy { rules, allowed })
    }

    /// Adjust the rules to the isolation the run actually has (the plan decides,
    /// and mode `auto` may fall back to `Host` after a failed attempt; calling
    /// this again replaces the rules of the previous isolation). Without
    /// namespaces: SysV IPC refused (ENOSYS, as on a kernel without it);
    /// setpriority and ioprio_set on a process group or a user refused (the
    /// payload shares cordon's process group); calls on another pid sent to the
    /// supervisor; metadata changes mediated by the supervisor.
    pub fn set_isolation(&mut self, iso: Isolation) {
        self.rules
            .retain(|r| !ISOLATION_REASONS.contains(&r.reason));
        if iso == Isolation::Namespaces {
            return;
        }
        let mut add = |name: &'static str, checks: Vec<Check>, errno, reason, sup| {
            if self.allowed.contains(&name) {
                return;
            }
            if let Some(nr) = syscalls::number(name) {
                self.rules.push(SyscallRule {
                    name,
                    nr,
                    checks,
                    errno,
                    reason,
                    origin: None,
                    supervised: sup,
                });
            }
        };
        for &name in SYSV_IPC {
            add(name, vec![], Errno::Enosys, HOST_IPC, None);
        }
        for &(name, arg) in PID_TARGETS {
            let own = Some(Supervised::OwnProcess(arg));
            add(
                name,
                vec![Check::Ne(arg, 0)],
                Errno::Eperm,
                OUTSIDE_PROC,
                own,
            );
        }
        for (name, who) in [
            ("setpriority", PRIO_PROCESS),
            ("ioprio_set", IOPRIO_WHO_PROCESS),
        ] {
            add(
                name,
                vec![Check::Ne(0, who)],
                Errno::Eperm,
                OUTSIDE_PROC,
                None,
            );
            let own = Some(Supervised::OwnProcess(1));
            let checks = vec![Check::Eq(0, who), Check::Ne(1, 0)];
            add(name, checks, Errno::Eperm, OUTSIDE_PROC, own);
        }
        for &name in METADATA_CALLS {
            let m = Some(Supervised::Metadata);
            add(name, vec![], Errno::Eperm, METADATA, m);
        }
    }

    /// The rules the filter enforces without a supervisor: a [`Supervised::Metadata`]
    /// rule is dropped (the call runs), an [`Supervised::OwnProcess`] one refuses.
    fn unsupervised(&self) -> impl Iterator<Item = &SyscallRule> {
        self.rules
            .iter()
            .filter(|r| r.supervised != Some(Supervised::Metadata))
    }

    /// [`SyscallPolicy::decide`] for a filter without a supervisor (no listener).
    pub fn decide_unsupervised(&self, nr: i64, args: &[u64; 6]) -> Option<&SyscallRule> {
        self.unsupervised()
            .find(|r| r.nr == nr && r.checks.iter().all(|c| c.holds(args)))
    }

    /// The rule that refuses this call, if any (user-space mirror of the BPF).
    pub fn decide(&self, nr: i64, args: &[u64; 6]) -> Option<&SyscallRule> {
        self.rules
            .iter()
            .find(|r| r.nr == nr && r.checks.iter().all(|c| c.holds(args)))
    }

    /// The rules that name `name`, for `explain --syscall`.
    pub fn rules_for<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a SyscallRule> + 'a {
        self.rules.iter().filter(move |r| r.name == name)
    }

    /// Compile to BPF: one program, our prologue, a binary search over the numbers
    /// that have rules, and seccompiler's code for the argument checks (see
    /// [`assemble`]). Should a number carry rules of two errnos (a profile's `deny`
    /// of a call the default list refuses with another errno), each errno gets a
    /// program of its own, which keeps the kernel's precedence between filters.
    pub fn compile(&self) -> Result<Vec<BpfProgram>> {
        let quiet = self.quiet();
        let classes = [Errno::Eperm, Errno::Enosys, Errno::Eafnosupport];
        let q = &quiet;
        let of = |errno: Errno| {
            self.unsupervised()
                .filter(move |r| r.errno == errno && !q.contains(&r.nr))
        };
        let mut seen = std::collections::BTreeMap::new();
        let overlap = classes
            .iter()
            .flat_map(|&e| of(e).map(move |r| (r.nr, e)))
            .any(|(nr, e)| *seen.entry(nr).or_insert(e) != e);
        let ret = |e: Errno| libc::SECCOMP_RET_ERRNO | e.raw() as u32;
        if overlap {
            return classes
                .iter()
                .map(|&e| {
                    let mut parts = Parts::default();
                    parts.add(of(e), &[], ret(e))?;
                    assemble(&quiet, parts)
                })
                .collect();
        }
        let mut parts = Parts::default();
        for e in classes {
            parts.add(of(e), &[], ret(e))?;
        }
        Ok(vec![assemble(&quiet, parts)?])
    }

    /// Compile for capture: one program in which every refused call, and every
    /// observed call, goes to the supervisor (SECCOMP_RET_USER_NOTIF), except the
    /// prologue's own answers. The supervisor answers with
    /// [`SyscallPolicy::decide`]'s errno, or lets an observed call run.
    pub fn compile_notify(&self, observe: &[&str]) -> Result<Vec<BpfProgram>> {
        self.compile_supervised(observe, &[], &[], Refusals::Notify)
    }

    /// Compile a program with a supervisor: `observe` (by name), the calls of
    /// `observe_if` whose checks hold (see [`OBSERVE_CHANGES`]; a number with
    /// checks is no longer answered by the kernel's action cache: its every call
    /// runs the BPF) and `mediated` (with their argument checks) go to it, and so
    /// do the refusals with [`Refusals::Notify`] (capture); with
    /// [`Refusals::Errno`] the filter answers them itself, except those that share
    /// a number with a supervised call (the supervisor answers them with
    /// [`SyscallPolicy::decide`]'s errno).
    pub fn compile_supervised(
        &self,
        observe: &[&str],
        observe_if: &[(&str, &[Check])],
        mediated: &[SyscallRule],
        refusals: Refusals,
    ) -> Result<Vec<BpfProgram>> {
        let quiet = self.quiet();
        let observed: Vec<i64> = observe.iter().filter_map(|n| syscalls::number(n)).collect();
        // The observations are rules like the refusals, with the same action (the
        // supervisor tells them apart): rule_map ORs a number's rules and lets an
        // unconditional one, or an `observe` entry, swallow the conditional ones.
        let extra: Vec<SyscallRule> = observe_if
            .iter()
            .filter_map(|&(name, checks)| {
                Some(SyscallRule {
                    name: syscalls::canonical_name(name)?,
                    nr: syscalls::number(name)?,
                    checks: checks.to_vec(),
                    errno: Errno::Eperm,
                    reason: "observed",
                    origin: None,
                    supervised: None,
                })
            })
            .collect();
        // Refusals the supervisor looks at first (calls on another process, and
        // metadata without namespaces) go to it whenever there is one: a number
        // with any call for the supervisor goes there whole (one answer per number).
        let supervised: Vec<i64> = mediated
            .iter()
            .chain(extra.iter())
            .chain(self.rules.iter().filter(|r| r.supervised.is_some()))
            .map(|r| r.nr)
            .chain(observed.clone())
            .collect();
        let to_supervisor = |r: &SyscallRule| {
            !quiet.contains(&r.nr) && (refusals == Refusals::Notify || supervised.contains(&r.nr))
        };
        let mut parts = Parts::default();
        if refusals == Refusals::Errno {
            // One program needs one answer per number: a number refused with two
            // errnos (a profile's deny of a call the list refuses otherwise) makes
            // the supervisor answer every refusal, as with capture.
            let mut seen = BTreeMap::new();
            let overlap = self
                .rules
                .iter()
                .any(|r| *seen.entry(r.nr).or_insert(r.errno) != r.errno);
            if overlap {
                return self.compile_supervised(observe, observe_if, mediated, Refusals::Notify);
            }
            for e in [Errno::Eperm, Errno::Enosys, Errno::Eafnosupport] {
                parts.add(
                    self.rules
                        .iter()
                        .filter(|r| r.errno == e && !quiet.contains(&r.nr) && !to_supervisor(r)),
                    &[],
                    libc::SECCOMP_RET_ERRNO | e.raw() as u32,
                )?;
            }
        }
        // A refusal without arguments swallows a mediated call's checks on the same
        // number (rule_map): all of it goes to the supervisor, which answers the
        // refusal first.
        parts.add(
            self.rules
                .iter()
                .filter(|r| to_supervisor(r))
                .chain(mediated.iter())
                .chain(extra.iter()),
            &observed,
            libc::SECCOMP_RET_USER_NOTIF,
        )?;
        Ok(vec![assemble(&quiet, parts)?])
    }

    /// Refused syscalls the guard answers itself (see [`QUIET`]), if the profile keeps them refused.
    fn quiet(&self) -> Vec<i64> {
        self.rules
            .iter()
            // A profile's own `deny` of one of them is not quiet (it is recorded); clone3
            // still answers ENOSYS there: the built-in rule for it stays and answers first.
            .filter(|r| QUIET.contains(&r.name) && r.checks.is_empty() && r.errno == Errno::Enosys)
            .map(|r| r.nr)
            .collect()
    }

    /// Lines for `profile show`.
    pub fn describe(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.to_string()).collect()
    }
}

/// `rules` by number, plus `always` (numbers matched whatever the arguments):
/// None for a number matched whatever its arguments (an unconditional rule
/// swallows the conditional ones on the same number), else the checks of its
/// rules (alternatives, each an AND).
fn rule_map<'a>(
    rules: impl Iterator<Item = &'a SyscallRule>,
    always: &[i64],
) -> BTreeMap<i64, Option<Vec<Vec<Check>>>> {
    let mut by_nr: BTreeMap<i64, Option<Vec<Vec<Check>>>> = BTreeMap::new();
    for r in rules {
        let entry = by_nr.entry(r.nr).or_insert_with(|| Some(Vec::new()));
        if r.checks.is_empty() {
            *entry = None;
        } else if let Some(list) = entry {
            list.push(r.checks.clone());
        }
    }
    for &nr in always {
        by_nr.insert(nr, None);
    }
    by_nr
}

fn known(item: &Item<String>) -> Result<&'static str> {
    syscalls::canonical_name(&item.value).ok_or_else(|| Error::UnknownSyscall {
        origin: item.origin.located(),
        name: item.value.clone(),
        arch: std::env::consts::ARCH,
    })
}

/// The rules that keep setuid and setgid bits out: a mode argument with either
/// bit (each rule an AND of checks, so one rule per bit), and open/openat/creat
/// creating a file (O_CREAT, or O_TMPFILE, whose bits include O_DIRECTORY) with one.
fn setid_rules() -> Vec<(&'static str, Vec<Check>)> {
    let mut v = Vec::new();
    for bit in [libc::S_ISUID, libc::S_ISGID] {
        for &(name, arg) in MODE_ARG {
            v.push((name, vec![Check::HasFlag(arg, bit)]));
        }
        for (name, flags, mode) in [("open", 1, 2), ("openat", 2, 3)] {
            for create in [libc::O_CREAT as u32, TMPFILE] {
                v.push((
                    name,
                    vec![Check::HasFlag(flags, create), Check::HasFlag(mode, bit)],
                ));
            }
        }
    }
    v
}

/// `__O_TMPFILE`, the bit of O_TMPFILE that is not O_DIRECTORY.
const TMPFILE: u32 = (libc::O_TMPFILE & !libc::O_DIRECTORY) as u32;

/// The socket rules per network mode. Each rule is an AND of checks; a call is
/// refused when any rule matches.
fn socket_rules(net: &Network) -> Vec<(&'static str, Vec<Check>)> {
    let unix = libc::AF_UNIX as u32;
    let inet = libc::AF_INET as u32;
    let inet6 = libc::AF_INET6 as u32;
    let netlink = libc::AF_NETLINK as u32;
    let mut rules = vec![("socketpair", vec![Check::Ne(0, unix)])];
    match net {
        Network::Off => rules.push(("socket", vec![Check::Ne(0, unix)])),
        // Proxy: the tree's own network namespace (the plan refuses it without
        // one), where loopback and the proxy are all there is.
        Network::On | Network::Filtered { .. } | Network::Proxy(_) => {
            rules.push((
                "socket",
                vec![
                    Check::Ne(0, unix),
                    Check::Ne(0, inet),
                    Check::Ne(0, inet6),
                    Check::Ne(0, netlink),
                ],
            ));
            rules.push((
                "socket",
                vec![Check::Eq(0, netlink), Check::Ne(2, NETLINK_ROUTE)],
            ));
        }
    }
    if let Network::Filtered { dns, .. } = net {
        // Landlock filters TCP only: every other inet socket (raw, SCTP, MPTCP;
        // UDP unless `dns`, when the supervisor lets datagrams go to the
        // resolver alone) is refused. The type's low nibble is the kind
        // (SOCK_NONBLOCK and SOCK_CLOEXEC live above it): SOCK_STREAM is 1,
        // SOCK_DGRAM 2; bit 4 or 8, or bits 1 and 2 together, mean another kind.
        let tcp = libc::IPPROTO_TCP as u32;
        let udp = libc::IPPROTO_UDP as u32;
        let (other_kinds, protocols): (&[u32], &[u32]) = if *dns {
            (&[3, 4, 8], &[tcp, udp])
        } else {
            (&[2, 4, 8], &[tcp])
        };
        for fam in [inet, inet6] {
            for &mask in other_kinds {
                rules.push(("socket", vec![Check::Eq(0, fam), Check::HasFlag(1, mask)]));
            }
            let mut not_ours = vec![Check::Eq(0, fam), Check::Ne(2, 0)];
            not_ours.extend(protocols.iter().map(|&p| Check::Ne(2, p)));
            rules.push(("socket", not_ours));
        }
    }
    rules
}

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const BPF_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const BPF_JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// offsetof(struct seccomp_data, nr) and (..., arch).
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

#[cfg(not(target_endian = "little"))]
compile_error!("the filter reads an argument's low half at its offset (little-endian)");

/// offsetof(struct seccomp_data, args[i]): the low half of the argument.
fn arg_lo(i: u8) -> u32 {
    16 + 8 * i as u32
}

/// The high half of argument `i`.
fn arg_hi(i: u8) -> u32 {
    arg_lo(i) + 4
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// One test of an argument as the filter makes it: a [`Check`], with a one-bit
/// flag test as a single JSET, which several rules can share (see [`merged`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Test {
    Eq(u8, u32),
    Ne(u8, u32),
    /// Some bit of the mask is set (low 32 bits).
    Any(u8, u32),
    /// Every bit of the mask is set (low 32 bits).
    All(u8, u32),
    NonZero64(u8),
}

impl From<Check> for Test {
    fn from(c: Check) -> Test {
        match c {
            Check::Eq(i, v) => Test::Eq(i, v),
            Check::Ne(i, v) => Test::Ne(i, v),
            Check::HasFlag(i, m) if m.count_ones() == 1 => Test::Any(i, m),
            Check::HasFlag(i, m) => Test::All(i, m),
            Check::NonZero64(i) => Test::NonZero64(i),
        }
    }
}

/// A number's rules (alternatives, each an AND of tests) with the rules that
/// differ only in one bit tested on the same argument merged into one:
/// (A and bit x) or (A and bit y) is A and (x or y), one JSET. The seven
/// CLONE_NEW* rules of clone become one test, the four setid rules of open one
/// rule of two tests.
fn merged(rules: &[Vec<Check>]) -> Vec<Vec<Test>> {
    let canon = |mut r: Vec<Test>| {
        r.sort();
        r.dedup();
        r
    };
    let mut out: Vec<Vec<Test>> = rules
        .iter()
        .map(|r| canon(r.iter().map(|&c| Test::from(c)).collect()))
        .collect();
    out.sort();
    out.dedup();
    let merge = |a: &[Test], b: &[Test]| -> Option<Vec<Test>> {
        if a.len() != b.len() {
            return None;
        }
        let mut differ = (0..a.len()).filter(|&k| a[k] != b[k]);
        let (Some(k), None) = (differ.next(), differ.next()) else {
            return None;
        };
        match (a[k], b[k]) {
            (Test::Any(i, m), Test::Any(j, n)) if i == j => {
                let mut r = a.to_vec();
                r[k] = Test::Any(i, m | n);
                Some(canon(r))
            }
            _ => None,
        }
    };
    'again: loop {
        for i in 0..out.len() {
            for j in i + 1..out.len() {
                if let Some(m) = merge(&out[i], &out[j]) {
                    out[i] = m;
                    out.remove(j);
                    continue 'again;
                }
            }
        }
        return out;
    }
}

fn too_long() -> Error {
    Error::Unsupported("a seccomp rule's checks are too long for a conditional jump".into())
}

/// The code of one number's rules: each rule's tests in turn, RET `ret` when all
/// hold, on to the next rule when one fails, RET_ALLOW after the last. The
/// accumulator comes in holding the number; a word is loaded only when the
/// accumulator does not hold it already (a run of tests on one argument loads it once).
fn block(rules: &[Vec<Test>], ret: u32) -> Result<Vec<sock_filter>> {
    let mut out: Vec<sock_filter> = Vec::new();
    let mut acc = Some(SECCOMP_DATA_NR);
    for rule in rules {
        // This rule's failing jumps (instruction, whether its jt is the failing
        // side) and what each leaves in the accumulator for the next rule.
        let mut fails: Vec<(usize, bool, Option<u32>)> = Vec::new();
        let load = |out: &mut Vec<sock_filter>, acc: &mut Option<u32>, off: u32| {
            if *acc != Some(off) {
                out.push(insn(BPF_LD_W_ABS, 0, 0, off));
                *acc = Some(off);
            }
        };
        for &t in rule {
            match t {
                Test::Eq(i, v) | Test::Ne(i, v) => {
                    load(&mut out, &mut acc, arg_lo(i));
                    fails.push((out.len(), matches!(t, Test::Ne(..)), acc));
                    out.push(insn(BPF_JEQ_K, 0, 0, v));
                }
                Test::Any(i, m) => {
                    load(&mut out, &mut acc, arg_lo(i));
                    fails.push((out.len(), false, acc));
                    out.push(insn(BPF_JSET_K, 0, 0, m));
                }
                Test::All(i, m) => {
                    load(&mut out, &mut acc, arg_lo(i));
                    out.push(insn(BPF_AND_K, 0, 0, m));
                    acc = None;
                    fails.push((out.len(), false, acc));
                    out.push(insn(BPF_JEQ_K, 0, 0, m));
                }
                Test::NonZero64(i) => {
                    load(&mut out, &mut acc, arg_lo(i));
                    // A non-zero low half passes at once, past the high half's test.
                    out.push(insn(BPF_JEQ_K, 0, 2, 0));
                    out.push(insn(BPF_LD_W_ABS, 0, 0, arg_hi(i)));
                    fails.push((out.len(), true, Some(arg_hi(i))));
                    out.push(insn(BPF_JEQ_K, 0, 0, 0));
                    // Passed with either half in the accumulator.
                    acc = None;
                }
            }
        }
        out.push(insn(BPF_RET_K, 0, 0, ret));
        let next = out.len();
        for &(at, jt, _) in &fails {
            let off = u8::try_from(next - at - 1).map_err(|_| too_long())?;
            if jt {
                out[at].jt = off;
            } else {
                out[at].jf = off;
            }
        }
        // The next rule is entered only through these jumps.
        acc = match fails.split_first() {
            Some((&(_, _, first), rest)) if rest.iter().all(|f| f.2 == first) => first,
            _ => None,
        };
    }
    out.push(insn(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ALLOW));
    Ok(out)
}

/// Where the search sends a number it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Refused whatever the arguments: return this action.
    Ret(u32),
    /// Arguments decide: jump to this block (see [`block`]).
    Block(usize),
}

/// The numbers a program dispatches on, and the blocks their argument checks live in.
#[derive(Default)]
struct Parts {
    leaves: Vec<(u32, Target)>,
    blocks: Vec<Vec<sock_filter>>,
}

impl Parts {
    /// Add `rules` (and `always`, numbers matched whatever the arguments),
    /// answered with `ret`.
    fn add<'a>(
        &mut self,
        rules: impl Iterator<Item = &'a SyscallRule>,
        always: &[i64],
        ret: u32,
    ) -> Result<()> {
        for (nr, checks) in rule_map(rules, always) {
            let target = match checks {
                None => Target::Ret(ret),
                Some(alternatives) => {
                    self.blocks.push(block(&merged(&alternatives), ret)?);
                    Target::Block(self.blocks.len() - 1)
                }
            };
            self.leaves.push((nr as u32, target));
        }
        Ok(())
    }
}

/// One step of the search before its jumps are resolved.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// The number is at least `k`: on to step `right`, else to the next step.
    Split { k: u32, right: usize },
    /// `first..=last`: to `target`, any other number is allowed.
    Leaf {
        first: u32,
        last: u32,
        target: Target,
    },
}

/// The steps of a balanced binary search over sorted, disjoint `leaves`, left
/// subtree first.
fn flatten(leaves: &[(u32, u32, Target)], ops: &mut Vec<Op>) {
    match leaves {
        [] => {}
        &[(first, last, target)] => ops.push(Op::Leaf {
            first,
            last,
            target,
        }),
        _ => {
            let mid = leaves.len() / 2;
            let at = ops.len();
            ops.push(Op::Split {
                k: leaves[mid].0,
                right: 0,
            });
            flatten(&leaves[..mid], ops);
            let right = ops.len();
            if let Op::Split { right: r, .. } = &mut ops[at] {
                *r = right;
            }
            flatten(&leaves[mid..], ops);
        }
    }
}

/// Assemble one filter program: kill foreign-architecture calls; answer ENOSYS
/// to x32 calls (numbers with the x32 bit on x86_64); then a binary search over
/// the numbers that have rules, the `quiet` ones among them. A number refused
/// whatever its arguments is answered where the search finds it; one whose
/// arguments decide jumps into its block. Every other number reaches RET_ALLOW.
///
/// Why this shape: an allowed call costs ~10 instructions whatever the list, and
/// the kernel, when the filter is installed, checks, translates and JITs every
/// instruction (~0.13 µs each here) and runs the filter once per syscall number
/// to fill its action cache. So the program is kept short: a leaf is one
/// conditional jump whose two sides reach a RET shared by the leaves with the
/// same answer and the final RET_ALLOW (a longer form where those lie more than
/// 255 instructions ahead), a run of numbers with one answer is one leaf of two,
/// and each checked number has a block of its own, reached straight from its
/// leaf. (seccompiler's code for the checks tested the numbers one after the
/// other again and spent two or three instructions per flag test; the launch's
/// filter went from 498 instructions to about 200.)
fn assemble(quiet: &[i64], parts: Parts) -> Result<BpfProgram> {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return Err(Error::Unsupported(format!(
        "seccomp filters are not supported on {}",
        std::env::consts::ARCH
    )));
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let Parts { leaves, blocks } = parts;
        let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        let mut prog = vec![
            insn(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH),
            insn(BPF_JEQ_K, 1, 0, AUDIT_ARCH),
            insn(BPF_RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
            insn(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR),
            insn(BPF_JGE_K, 0, 1, X32_SYSCALL_BIT),
            insn(BPF_RET_K, 0, 0, enosys),
        ];
        // Refusals answered here, never sent to the supervisor: libc's clone3 probe
        // comes with every thread, and its ENOSYS fallback is expected, not a finding.
        // They come first so that they win over any other leaf of their number.
        let mut all: Vec<(u32, Target)> = quiet
            .iter()
            .map(|&nr| (nr as u32, Target::Ret(enosys)))
            .collect();
        all.extend(leaves);
        all.sort_by_key(|l| l.0);
        all.dedup_by_key(|l| l.0);
        let mut ops = Vec::new();
        flatten(&ranges(&all), &mut ops);
        // The RETs the short leaves share, after RET_ALLOW; the blocks after them.
        let mut rets: Vec<u32> = all
            .iter()
            .filter_map(|l| match l.1 {
                Target::Ret(r) => Some(r),
                Target::Block(_) => None,
            })
            .collect();
        rets.sort_unstable();
        rets.dedup();
        let short_len = |op: &Op| match op {
            Op::Split { .. } => 1,
            Op::Leaf { first, last, .. } if first == last => 1,
            Op::Leaf { .. } => 2,
        };
        let long_len = |op: &Op| match op {
            Op::Split { .. } => 2,
            Op::Leaf { first, last, .. } if first == last => 3,
            Op::Leaf { .. } => 4,
        };
        // Every step starts in its short form; one whose jumps do not reach takes
        // its long form, which moves what follows: repeat until nothing changes.
        let mut long = vec![false; ops.len()];
        let layout = |long: &[bool]| {
            let mut pos = Vec::with_capacity(ops.len() + 1);
            let mut at = prog.len();
            for (op, &l) in ops.iter().zip(long) {
                pos.push(at);
                at += if l { long_len(op) } else { short_len(op) };
            }
            pos.push(at);
            pos
        };
        let (pos, allow_at, target_at) = loop {
            let pos = layout(&long);
            let allow_at = *pos.last().unwrap_or(&prog.len());
            let mut block_at = Vec::with_capacity(blocks.len());
            let mut at = allow_at + 1 + rets.len();
            for b in &blocks {
                block_at.push(at);
                at += b.len();
            }
            let rets = &rets;
            let target_at = move |t: Target| match t {
                Target::Ret(r) => allow_at + 1 + rets.iter().position(|&x| x == r).unwrap_or(0),
                Target::Block(n) => block_at[n],
            };
            let reach = |from: usize, to: usize| to - from - 1 <= u8::MAX as usize;
            let mut changed = false;
            for (i, op) in ops.iter().enumerate() {
                if long[i] {
                    continue;
                }
                let fits = match *op {
                    Op::Split { right, .. } => reach(pos[i], pos[right]),
                    Op::Leaf {
                        first,
                        last,
                        target,
                    } if first == last => {
                        reach(pos[i], allow_at) && reach(pos[i], target_at(target))
                    }
                    Op::Leaf { target, .. } => {
                        reach(pos[i], allow_at) && reach(pos[i] + 1, target_at(target))
                    }
                };
                if !fits {
                    long[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break (pos, allow_at, target_at);
            }
        };
        let total = allow_at + 1 + rets.len() + blocks.iter().map(Vec::len).sum::<usize>();
        if total > libc::BPF_MAXINSNS as usize {
            return Err(Error::Unsupported(format!(
                "the seccomp filter needs {total} instructions, more than the kernel's {}",
                libc::BPF_MAXINSNS
            )));
        }
        let off = |from: usize, to: usize| (to - from - 1) as u8;
        let ja = |from: usize, to: usize| insn(BPF_JA, 0, 0, (to - from - 1) as u32);
        let answer = |at: usize, t: Target| match t {
            Target::Ret(r) => insn(BPF_RET_K, 0, 0, r),
            Target::Block(_) => ja(at, target_at(t)),
        };
        for (i, op) in ops.iter().enumerate() {
            let p = pos[i];
            debug_assert_eq!(prog.len(), p);
            match (*op, long[i]) {
                (Op::Split { k, right }, false) => {
                    prog.push(insn(BPF_JGE_K, off(p, pos[right]), 0, k));
                }
                (Op::Split { k, right }, true) => {
                    prog.push(insn(BPF_JGE_K, 0, 1, k));
                    prog.push(ja(p + 1, pos[right]));
                }
                (
                    Op::Leaf {
                        first,
                        last,
                        target,
                    },
                    false,
                ) if first == last => {
                    prog.push(insn(
                        BPF_JEQ_K,
                        off(p, target_at(target)),
                        off(p, allow_at),
                        first,
                    ));
                }
                (
                    Op::Leaf {
                        first,
                        last,
                        target,
                    },
                    true,
                ) if first == last => {
                    prog.push(insn(BPF_JEQ_K, 0, 1, first));
                    prog.push(answer(p + 1, target));
                    prog.push(ja(p + 2, allow_at));
                }
                (
                    Op::Leaf {
                        first,
                        last,
                        target,
                    },
                    false,
                ) => {
                    prog.push(insn(BPF_JGE_K, 0, off(p, allow_at), first));
                    prog.push(insn(
                        BPF_JGT_K,
                        off(p + 1, allow_at),
                        off(p + 1, target_at(target)),
                        last,
                    ));
                }
                (
                    Op::Leaf {
                        first,
                        last,
                        target,
                    },
                    true,
                ) => {
                    // first <= nr <= last, or on to RET_ALLOW.
                    prog.push(insn(BPF_JGE_K, 0, 2, first));
                    prog.push(insn(BPF_JGT_K, 1, 0, last));
                    prog.push(answer(p + 2, target));
                    prog.push(ja(p + 3, allow_at));
                }
            }
        }
        prog.push(insn(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ALLOW));
        prog.extend(rets.iter().map(|&r| insn(BPF_RET_K, 0, 0, r)));
        for b in blocks {
            prog.extend(b);
        }
        Ok(prog)
    }
}

/// Merge runs of consecutive numbers answered with the same return into one
/// leaf `(first, last, target)`: the default list refuses runs such as 163–176
/// (acct … delete_module) and 425–433 (io_uring and the new mount API), and every
/// leaf saved is instructions fewer for the kernel to check, translate, JIT
/// and run once per number for its action cache at each launch. Numbers whose
/// arguments decide keep a leaf each.
fn ranges(leaves: &[(u32, Target)]) -> Vec<(u32, u32, Target)> {
    let mut out: Vec<(u32, u32, Target)> = Vec::with_capacity(leaves.len());
    for &(nr, target) in leaves {
        match (out.last_mut(), target) {
            (Some((_, last, Target::Ret(prev))), Target::Ret(ret))
                if *prev == ret && last.checked_add(1) == Some(nr) =>
            {
                *last = nr;
            }
            _ => out.push((nr, nr, target)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Origin, Syscalls};

    fn item(s: &str) -> Item<String> {
        Item {
            value: s.into(),
            origin: Origin {
                source: "t".into(),
                line: Some(1),
                column: None,
                key: None,
            },
        }
    }

    fn nr(name: &str) -> i64 {
        syscalls::number(name).unwrap()
    }

    #[test]
    fn default_list_refuses_the_classics() {
        let p = SyscallPolicy::new(&Syscalls::default(), &Network::On).unwrap();
        let z = [0u64; 6];
        for name in [
            "ptrace",
            "unshare",
            "mount",
            "keyctl",
            "bpf",
            "userfaultfd",
            "perf_event_open",
            "pidfd_getfd",
        ] {
            assert_eq!(
                p.decide(nr(name), &z).map(|r| r.errno),
                Some(Errno::Eperm),
                "{name}"
            );
        }
        for name in ["clone3", "io_uring_setup", "fsopen", "open_tree"] {
            assert_eq!(
                p.decide(nr(name), &z).map(|r| r.errno),
                Some(Errno::Enosys),
                "{name}"
            );
        }
        for name in [
            "execve",
            "prctl",
            "seccomp",
            "landlock_create_ruleset",
            "memfd_create",
            "read",
            "openat",
        ] {
            assert!(p.decide(nr(name), &z).is_none(), "{name} must stay allowed");
        }
    }

    #[test]
    fn argument_rules_use_the_low_32_bits() {
        let p = SyscallPolicy::new(&Syscalls::default(), &Network::On).unwrap();
        let ioctl = |cmd: u64| p.decide(nr("ioctl"), &[1, cmd, 0, 0, 0, 0]).is_some();
        assert!(ioctl(0x5412));
        assert!(
            ioctl(0xffff_ffff_0000_5412),
            "high bits must not hide TIOCSTI"
        );
        assert!(ioctl(0x541C));
        assert!(!ioctl(0x5401), "TCGETS stays allowed");
        let clone = |flags: u64| p.decide(nr("clone"), &[flags, 0, 0, 0, 0, 0]).is_some();
        assert!(clone(libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64));
        assert!(!clone(libc::CLONE_VM as u64 | libc::CLONE_THREAD as u64));
        let pers = |v: u64| p.decide(nr("personality"), &[v, 0, 0, 0, 0, 0]).is_some();
        assert!(!pers(0) && !pers(0xffff_ffff));
        assert!(pers(0x0400000), "READ_IMPLIES_EXEC is refused");
    }

    #[test]
    fn socket_families_per_mode() {
        let sock = |net: &Network, fam: i32, ty: i32, proto: i32| {
            let p = SyscallPolicy::new(&Syscalls::default(), net).unwrap();
            p.decide(
                nr("socket"),
                &[fam as u64, ty as u64, proto as u64, 0, 0, 0],
            )
            .is_none()
        };
        let filtered = Network::Filtered {
            connect: vec![443],
            bind: vec![],
            dns: false,
        };
        assert!(sock(&Network::Off, libc::AF_UNIX, libc::SOCK_STREAM, 0));
        assert!(!sock(&Network::Off, libc::AF_INET, libc::SOCK_STREAM, 0));
        assert!(!sock(&Network::Off, libc::AF_INET6, libc::SOCK_DGRAM, 0));
        assert!(!sock(&Network::Off, libc::AF_NETLINK, libc::SOCK_RAW, 0));
        assert!(sock(&Network::On, libc::AF_INET6, libc::SOCK_DGRAM, 0));
        assert!(sock(&Network::On, libc::AF_NETLINK, libc::SOCK_RAW, 0));
        assert!(
            !sock(&Network::On, libc::AF_NETLINK, libc::SOCK_RAW, 12),
            "netfilter netlink"
        );
        for fam in [libc::AF_PACKET, libc::AF_VSOCK, libc::AF_ALG, libc::AF_XDP] {
            assert!(!sock(&Network::On, fam, libc::SOCK_RAW, 0));
        }
        assert!(sock(
            &filtered,
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0
        ));
        assert!(sock(
            &filtered,
            libc::AF_INET6,
            libc::SOCK_STREAM,
            libc::IPPROTO_TCP
        ));
        assert!(!sock(
            &filtered,
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK,
            0
        ));
        assert!(!sock(&filtered, libc::AF_INET, libc::SOCK_RAW, 1));
        assert!(
            !sock(&filtered, libc::AF_INET, libc::SOCK_STREAM, 132),
            "SCTP escapes Landlock TCP rules"
        );
        // Names resolve: UDP (0 or IPPROTO_UDP) too, and nothing else more.
        let dns = Network::Filtered {
            connect: vec![443],
            bind: vec![],
            dns: true,
        };
        for fam in [libc::AF_INET, libc::AF_INET6] {
            assert!(sock(&dns, fam, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0));
            assert!(sock(&dns, fam, libc::SOCK_DGRAM, libc::IPPROTO_UDP));
            assert!(sock(&dns, fam, libc::SOCK_STREAM, libc::IPPROTO_TCP));
            assert!(
                !sock(&dns, fam, libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
                "ping sockets"
            );
            assert!(!sock(&dns, fam, libc::SOCK_DGRAM, 136), "UDP-Lite");
            for ty in [libc::SOCK_RAW, libc::SOCK_RDM, libc::SOCK_SEQPACKET, 6, 10] {
                assert!(!sock(&dns, fam, ty, 0), "type {ty}");
            }
            assert!(!sock(&dns, fam, libc::SOCK_STREAM, 132), "SCTP");
        }
        let p = SyscallPolicy::new(&Syscalls::default(), &Network::On).unwrap();
        assert!(
            p.decide(nr("socketpair"), &[libc::AF_INET as u64, 1, 0, 0, 0, 0])
                .is_some()
        );
        assert!(
            p.decide(nr("socketpair"), &[libc::AF_UNIX as u64, 1, 0, 0, 0, 0])
                .is_none()
        );
    }

    #[test]
    fn profile_adjusts_by_name() {
        let s = Syscalls {
            deny: vec![item("chmod")],
            allow: vec![item("ptrace")],
        };
        let p = SyscallPolicy::new(&s, &Network::Off).unwrap();
        assert!(p.decide(nr("ptrace"), &[0; 6]).is_none());
        let r = p.decide(nr("chmod"), &[0; 6]).unwrap();
        assert_eq!(r.origin.as_deref(), Some("t:1"));
        let e = SyscallPolicy::new(
            &Syscalls {
                deny: vec![item("frobnicate")],
                allow: vec![],
            },
            &Network::Off,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "t:1: unknown syscall `frobnicate` for {}",
                std::env::consts::ARCH
            )
        );
        assert!(
            SyscallPolicy::new(
                &Syscalls {
                    deny: vec![],
                    allow: vec![item("socket")]
                },
                &Network::Off
            )
            .is_err()
        );
    }

    #[test]
    fn setid_bits_are_refused_in_every_isolation() {
        for iso in [Isolation::Namespaces, Isolation::Host] {
            let mut p = SyscallPolicy::new(&Syscalls::default(), &Network::Off).unwrap();
            p.set_isolation(iso);
            let refused = |name: &str, args: [u64; 6]| {
                p.decide_unsupervised(nr(name), &args)
                    .is_some_and(|r| r.reason == SETID)
            };
            let high = 0xdead_0000_0000_0000u64;
            assert!(refused("chmod", [0, 0o4755, 0, 0, 0, 0]));
            assert!(refused("fchmod", [3, 0o2755 | high, 0, 0, 0, 0]));
            assert!(refused("fchmodat", [0, 0, 0o6755, 0, 0, 0]));
            assert!(refused("fchmodat2", [0, 0, 0o4700, 0, 0, 0]));
            assert!(refused("mknodat", [0, 0, 0o104755, 0, 0, 0]));
            assert!(!refused("chmod", [0, 0o755, 0, 0, 0, 0]));
            assert!(
                !refused("fchmodat", [0, 0, 0o1777, 0, 0, 0]),
                "sticky is fine"
            );
            let creat = (libc::O_CREAT | libc::O_WRONLY) as u64;
            assert!(refused("openat", [0, 0, creat, 0o4755, 0, 0]));
            assert!(refused("open", [0, creat, 0o2755, 0, 0, 0]));
            assert!(refused("creat", [0, 0o4755, 0, 0, 0, 0]));
            let tmp = (libc::O_TMPFILE | libc::O_RDWR) as u64;
            assert!(refused("openat", [0, 0, tmp, 0o4755, 0, 0]));
            assert!(!refused("openat", [0, 0, creat, 0o755, 0, 0]));
            assert!(
                !refused("openat", [0, 0, 0, 0o4755, 0, 0]),
                "no O_CREAT: mode unused"
            );
            assert!(p.decide(nr("openat2"), &[0; 6]).is_some());
        }
    }

    #[test]
    fn host_isolation_refuses_sysv_and_supervises_other_pids() {
        let mut p = SyscallPolicy::new(&Syscalls::default(), &Network::Off).unwrap();
        let ns = p.clone();
        p.set_isolation(Isolation::Host);
        p.set_isolation(Isolation::Host);
        assert_eq!(
            p.rules.len(),
            {
                let mut q = ns.clone();
                q.set_isolation(Isolation::Host);
                q.rules.len()
            },
            "idempotent"
        );
        for name in SYSV_IPC {
            assert!(
                ns.decide(nr(name), &[0; 6]).is_none(),
                "{name} with namespaces"
            );
            assert_eq!(
                p.decide(nr(name), &[0; 6]).map(|r| r.errno),
                Some(Errno::Enosys)
            );
        }
        let sup = |name: &str, args: [u64; 6]| p.decide(nr(name), &args).map(|r| r.supervised);
        assert_eq!(sup("prlimit64", [0, 7, 1, 0, 0, 0]), None, "self");
        assert_eq!(
            sup("prlimit64", [1234, 7, 1, 0, 0, 0]),
            Some(Some(Supervised::OwnProcess(0)))
        );
        assert_eq!(
            sup("prlimit64", [1 << 32, 7, 1, 0, 0, 0]),
            None,
            "the kernel reads a pid_t: 1 << 32 is 0, the caller"
        );
        assert_eq!(sup("setpriority", [0, 0, 5, 0, 0, 0]), None);
        assert_eq!(
            sup("setpriority", [0, 99, 5, 0, 0, 0]),
            Some(Some(Supervised::OwnProcess(1)))
        );
        assert_eq!(
            sup("setpriority", [1, 0, 5, 0, 0, 0]),
            Some(None),
            "PRIO_PGRP"
        );
        assert_eq!(
            sup("ioprio_set", [2, 0, 0, 0, 0, 0]),
            Some(None),
            "IOPRIO_WHO_PGRP"
        );
        assert_eq!(
            sup("chmod", [0, 0o644, 0, 0, 0, 0]),
            Some(Some(Supervised::Metadata))
        );
        // Without a supervisor: another pid refused, metadata left to run.
        assert!(
            p.decide_unsupervised(nr("prlimit64"), &[1234, 7, 1, 0, 0, 0])
                .is_some()
        );
        assert!(
            p.decide_unsupervised(nr("chmod"), &[0, 0o644, 0, 0, 0, 0])
                .is_none()
        );
        // Back to namespaces: none of it.
        p.set_isolation(Isolation::Namespaces);
        assert_eq!(p, ns);
        // [syscalls] allow takes a call out of the isolation's rules too.
        let allow = Syscalls {
            deny: vec![],
            allow: vec![item("shmget")],
        };
        let mut a = SyscallPolicy::new(&allow, &Network::Off).unwrap();
        a.set_isolation(Isolation::Host);
        assert!(a.decide(nr("shmget"), &[0; 6]).is_none());
    }

    #[test]
    fn notify_program_has_no_trace_returns_left() {
        let p = SyscallPolicy::new(&Syscalls::default(), &Network::Off).unwrap();
        let progs = p.compile_notify(OBSERVE_EXEC).unwrap();
        assert_eq!(progs.len(), 1);
        let main = &progs[0];
        assert!(
            main.iter()
                .any(|i| i.code == BPF_RET_K && i.k == libc::SECCOMP_RET_USER_NOTIF)
        );
        assert!(!main.iter().any(|i| i.code == BPF_RET_K
            && i.k & libc::SECCOMP_RET_ACTION_FULL == libc::SECCOMP_RET_TRACE));
    }

    #[test]
    fn clone3_is_answered_by_the_guard_not_the_supervisor() {
        let clone3 = syscalls::number("clone3").unwrap();
        let p = SyscallPolicy::new(&Syscalls::default(), &Network::Off).unwrap();
        let prog = &p.compile_notify(OBSERVE_EXEC).unwrap()[0];
        assert_eq!(
            run(prog, clone3 as u32, &[0; 6]),
            ERRNO | libc::ENOSYS as u32
        );
        assert_eq!(
            p.decide(clone3, &[0; 6]).map(|r| r.errno),
            Some(Errno::Enosys)
        );
        let allowed = SyscallPolicy::new(
            &Syscalls {
                deny: vec![],
                allow: vec![item("clone3")],
            },
            &Network::Off,
        )
        .unwrap();
        let prog = &allowed.compile_notify(OBSERVE_EXEC).unwrap()[0];
        assert_eq!(
            run(prog, clone3 as u32, &[0; 6]),
            libc::SECCOMP_RET_ALLOW,
            "allow removes it from the guard too"
        );
    }

    const ERRNO: u32 = libc::SECCOMP_RET_ERRNO;
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

    /// A classic-BPF interpreter for the instructions seccompiler and `assemble`
    /// emit, run on a `struct seccomp_data`, to check programs without a kernel.
    fn run_data(prog: &[sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
        let word = |off: u32| -> u32 {
            match off {
                0 => nr,
                4 => arch,
                16..=63 => {
                    let a = args[(off as usize - 16) / 8];
                    if off.is_multiple_of(8) {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    }
                }
                _ => panic!("load at offset {off}"),
            }
        };
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let i = &prog[pc];
            pc += 1;
            let class = i.code as u32 & 0x07;
            match class {
                libc::BPF_LD if i.code == BPF_LD_W_ABS => acc = word(i.k),
                libc::BPF_ALU if i.code as u32 == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => {
                    acc &= i.k
                }
                libc::BPF_RET if i.code == BPF_RET_K => return i.k,
                libc::BPF_JMP if i.code == BPF_JA => pc += i.k as usize,
                libc::BPF_JMP => {
                    let op = i.code as u32 & 0xf0;
                    assert_eq!(i.code as u32 & 0x08, libc::BPF_K, "only K jumps");
                    let taken = match op {
                        libc::BPF_JEQ => acc == i.k,
                        libc::BPF_JGE => acc >= i.k,
                        libc::BPF_JGT => acc > i.k,
                        libc::BPF_JSET => acc & i.k != 0,
                        _ => panic!("jump op {op:#x}"),
                    };
                    pc += (if taken { i.jt } else { i.jf }) as usize;
                }
                _ => panic!("instruction {:#x}", i.code),
            }
        }
    }

    fn run(prog: &[sock_filter], nr: u32, args: &[u64; 6]) -> u32 {
        run_data(prog, AUDIT_ARCH_X86_64, nr, args)
    }

    /// The kernel's verdict over several filters: the most restrictive action wins
    /// (for equal actions, the most recently installed filter's data).
    fn run_all(progs: &[BpfProgram], nr: u32, args: &[u64; 6]) -> u32 {
        progs
            .iter()
            .rev()
            .map(|p| run(p, nr, args))
            .fold(libc::SECCOMP_RET_ALLOW, |best, r| {
                let act = |v: u32| v & libc::SECCOMP_RET_ACTION_FULL;
                // Lower action values are more restrictive, as the kernel orders them.
                if (act(r) as i32) < (act(best) as i32) {
                    r
                } else {
                    best
                }
            })
    }

    /// Argument vectors that exercise every check of the default rules, with
    /// high bits set to prove only the low 32 bits count.
    fn arg_cases() -> Vec<[u64; 6]> {
        let mut v = vec![[0; 6], [u64::MAX; 6]];
        let interesting: Vec<u64> = [
            0u64,
            1,
            2,
            0x5412,
            0x541C,
            0x5423,
            0x5401,
            0xffff_ffff,
            0x0400000,
            libc::AF_UNIX as u64,
            libc::AF_INET as u64,
            libc::AF_INET6 as u64,
            libc::AF_NETLINK as u64,
            libc::AF_PACKET as u64,
            libc::SOCK_STREAM as u64 | libc::SOCK_CLOEXEC as u64,
            libc::SOCK_DGRAM as u64,
            libc::IPPROTO_TCP as u64,
            libc::IPPROTO_UDP as u64,
            libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64,
            libc::CLONE_NEWNET as u64,
            libc::CLONE_VM as u64 | libc::CLONE_THREAD as u64,
            1234,
        ]
        .into_iter()
        .flat_map(|x| [x, x | 0xdead_0000_0000_0000])
        .collect();
        for &a in &interesting {
            for &b in &interesting {
                for &c in &[0u64, libc::IPPROTO_TCP as u64, 17] {
                    v.push([a, b, c, 0, 0, 0]);
                }
            }
        }
        // Modes (second to fourth argument) and open flags for the setid rules.
        let creat = [
            0,
            libc::O_CREAT as u64 | libc::O_WRONLY as u64,
            libc::O_TMPFILE as u64 | libc::O_RDWR as u64,
        ];
        for m in [0o4755u64, 0o2755, 0o755, 0o6000, 0o1777] {
            for hi in [0, 0xdead_0000_0000_0000] {
                let m = m | hi;
                for f in creat {
                    v.push([0, m, m, m, 0, 0]);
                    v.push([0, f, m, m, 0, 0]);
                    v.push([0, 0, f, m, 0, 0]);
                }
            }
        }
        v
    }

    fn policies() -> Vec<SyscallPolicy> {
        let nets = [
            Network::Off,
            Network::On,
            Network::Filtered {
                connect: vec![443],
                bind: vec![],
                dns: false,
            },
            Network::Filtered {
                connect: vec![443],
                bind: vec![],
                dns: true,
            },
        ];
        let tweaks = [
            Syscalls::default(),
            Syscalls {
                deny: vec![item("getppid"), item("clone3"), item("read")],
                allow: vec![item("ptrace"), item("clone3")],
            },
            Syscalls {
                deny: vec![item("io_uring_setup"), item("openat")],
                allow: vec![],
            },
        ];
        let mut out = Vec::new();
        for net in &nets {
            for t in &tweaks {
                out.push(SyscallPolicy::new(t, net).unwrap());
            }
            // Without namespaces: the default list and one adjusted.
            for t in &tweaks[..2] {
                let mut p = SyscallPolicy::new(t, net).unwrap();
                p.set_isolation(Isolation::Host);
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn errno_filter_agrees_with_decide_for_every_number() {
        let cases = arg_cases();
        for p in policies() {
            let progs = p.compile().unwrap();
            for nr in 0..=470u32 {
                for args in &cases {
                    let want = match p.decide_unsupervised(nr as i64, args) {
                        Some(r) => ERRNO | r.errno.raw() as u32,
                        None => libc::SECCOMP_RET_ALLOW,
                    };
                    let got = run_all(&progs, nr, args);
                    // Where a number has rules of two errnos the kernel picks one of
                    // them; either refuses, which is what matters.
                    if got != want {
                        assert!(
                            got & libc::SECCOMP_RET_ACTION_FULL == ERRNO
                                && want & libc::SECCOMP_RET_ACTION_FULL == ERRNO
                                && progs.len() > 1,
                            "nr {nr} args {args:x?}: filter {got:#x}, decide {want:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn notify_filter_agrees_with_decide_for_every_number() {
        let cases = arg_cases();
        let observed: Vec<i64> = OBSERVE_EXEC
            .iter()
            .filter_map(|n| syscalls::number(n))
            .collect();
        for p in policies() {
            let progs = p.compile_notify(OBSERVE_EXEC).unwrap();
            let quiet = p.quiet();
            for nr in 0..=470u32 {
                for args in &cases {
                    let want = if quiet.contains(&(nr as i64)) {
                        ERRNO | libc::ENOSYS as u32
                    } else if observed.contains(&(nr as i64)) || p.decide(nr as i64, args).is_some()
                    {
                        libc::SECCOMP_RET_USER_NOTIF
                    } else {
                        libc::SECCOMP_RET_ALLOW
                    };
                    assert_eq!(run_all(&progs, nr, args), want, "nr {nr} args {args:x?}");
                }
            }
        }
    }

    /// The mediated calls reach the supervisor with either kind of refusal
    /// handling; sendto only with an address, tested on all 64 bits (a pointer
    /// whose low half is zero must not slip through).
    #[test]
    fn mediated_calls_go_to_the_supervisor() {
        let notif = libc::SECCOMP_RET_USER_NOTIF;
        for refusals in [Refusals::Notify, Refusals::Errno] {
            for p in policies() {
                let progs = p
                    .compile_supervised(&[], &[], &mediated(), refusals)
                    .unwrap();
                let sendto = nr("sendto") as u32;
                let with = |a4: u64| [3, 0x1000, 1, 0, a4, 16];
                if p.decide(sendto as i64, &with(0)).is_none() {
                    assert_eq!(run_all(&progs, sendto, &with(0)), libc::SECCOMP_RET_ALLOW);
                }
                for a4 in [0x1000, 0x1_0000_0000, u64::MAX] {
                    assert_eq!(run_all(&progs, sendto, &with(a4)), notif, "{a4:#x}");
                }
                for name in ["connect", "sendmsg", "sendmmsg", "memfd_create"] {
                    assert_eq!(run_all(&progs, nr(name) as u32, &[0; 6]), notif, "{name}");
                }
                let ptrace = nr("ptrace") as u32;
                // A number refused with two errnos sends every refusal to the
                // supervisor (one program, one answer per number).
                let mut seen = BTreeMap::new();
                let overlap = p
                    .rules
                    .iter()
                    .any(|r| *seen.entry(r.nr).or_insert(r.errno) != r.errno);
                let want = match (refusals, p.decide(ptrace as i64, &[0; 6])) {
                    (_, None) => libc::SECCOMP_RET_ALLOW,
                    (Refusals::Errno, Some(r)) if !overlap => ERRNO | r.errno.raw() as u32,
                    (_, Some(_)) => notif,
                };
                assert_eq!(run_all(&progs, ptrace, &[0; 6]), want);
            }
        }
    }

    /// The change record's filter sends exactly the calls [`observes_change`]
    /// names (opens only with a write-intent flag, whatever the high bits), and
    /// still refuses what it refused.
    #[test]
    fn change_filter_agrees_with_its_mirror() {
        let flags: Vec<u64> = [
            libc::O_RDONLY,
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            libc::O_WRONLY,
            libc::O_RDWR,
            libc::O_RDONLY | libc::O_CREAT,
            libc::O_RDONLY | libc::O_TRUNC,
            libc::O_WRONLY | libc::O_APPEND,
            libc::O_TMPFILE | libc::O_RDWR,
            libc::O_PATH,
        ]
        .into_iter()
        .flat_map(|f| [f as u64, f as u64 | 0xdead_0000_0000_0000])
        .collect();
        let mut cases = Vec::new();
        for &f in &flags {
            cases.push([libc::AT_FDCWD as u64, 0x1000, f, 0, 0, 0]);
            cases.push([0x1000, f, 0o644, 0, 0, 0]);
        }
        cases.extend(arg_cases().into_iter().step_by(7));
        let observed: Vec<i64> = OBSERVE_EXEC
            .iter()
            .filter_map(|n| syscalls::number(n))
            .collect();
        for p in policies() {
            let progs = p
                .compile_supervised(OBSERVE_EXEC, OBSERVE_CHANGES, &[], Refusals::Notify)
                .unwrap();
            let quiet = p.quiet();
            for nr in 0..=470u32 {
                let name = syscalls::name(nr as i64).unwrap_or("");
                for args in &cases {
                    let want = if quiet.contains(&(nr as i64)) {
                        ERRNO | libc::ENOSYS as u32
                    } else if observed.contains(&(nr as i64))
                        || p.decide(nr as i64, args).is_some()
                        || observes_change(name, args)
                    {
                        libc::SECCOMP_RET_USER_NOTIF
                    } else {
                        libc::SECCOMP_RET_ALLOW
                    };
                    assert_eq!(run_all(&progs, nr, args), want, "{name} args {args:x?}");
                }
            }
        }
        let nr = |n| syscalls::number(n).unwrap() as u32;
        let prog = p_default()
            .compile_supervised(OBSERVE_EXEC, OBSERVE_CHANGES, &[], Refusals::Notify)
            .unwrap();
        let at = libc::AT_FDCWD as u64;
        let ro = [
            at,
            0x1000,
            libc::O_RDONLY as u64 | libc::O_CLOEXEC as u64,
            0,
            0,
            0,
        ];
        let wr = [
            at,
            0x1000,
            libc::O_WRONLY as u64 | libc::O_CREAT as u64,
            0,
            0,
            0,
        ];
        assert_eq!(run_all(&prog, nr("openat"), &ro), libc::SECCOMP_RET_ALLOW);
        assert_eq!(
            run_all(&prog, nr("openat"), &wr),
            libc::SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(
            run_all(&prog, nr("openat2"), &ro),
            libc::SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(run_all(&prog, nr("read"), &ro), libc::SECCOMP_RET_ALLOW);
    }

    fn p_default() -> SyscallPolicy {
        SyscallPolicy::new(&Syscalls::default(), &Network::Off).unwrap()
    }

    #[test]
    fn foreign_architectures_are_killed_and_x32_refused() {
        let p = SyscallPolicy::new(&Syscalls::default(), &Network::Off).unwrap();
        let mut all = p.compile().unwrap();
        all.extend(p.compile_notify(OBSERVE_EXEC).unwrap());
        for prog in &all {
            assert_eq!(
                run_data(prog, 0x4000_0003, 0, &[0; 6]),
                libc::SECCOMP_RET_KILL_PROCESS,
                "i386"
            );
            for nr in [X32_SYSCALL_BIT, X32_SYSCALL_BIT | 39, u32::MAX] {
                assert_eq!(run(prog, nr, &[0; 6]), ERRNO | libc::ENOSYS as u32);
            }
        }
    }

    #[test]
    fn runs_with_one_answer_become_one_leaf() {
        let (eperm, enosys) = (
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        );
        let leaves = [
            (1, Target::Ret(eperm)),
            (2, Target::Ret(eperm)),
            (3, Target::Ret(eperm)),
            (4, Target::Ret(enosys)),
            (5, Target::Block(0)),
            (6, Target::Block(1)),
            (8, Target::Ret(eperm)),
            (9, Target::Ret(enosys)),
            (10, Target::Ret(enosys)),
        ];
        let got: Vec<(u32, u32, bool)> = ranges(&leaves)
            .into_iter()
            .map(|(a, b, t)| (a, b, matches!(t, Target::Block(_))))
            .collect();
        assert_eq!(
            got,
            [
                (1, 3, false),
                (4, 4, false),
                (5, 5, true),
                (6, 6, true),
                (8, 8, false),
                (9, 10, false),
            ]
        );
        // The default list's runs (163-176, 425-433 ...), one-instruction leaves
        // and merged flag tests keep the program short.
        let p = SyscallPolicy::new(&Syscalls::default(), &Network::Off).unwrap();
        let prog = &p.compile().unwrap()[0];
        assert!(prog.len() < 250, "{} instructions", prog.len());
        let notify = &p.compile_notify(OBSERVE_EXEC).unwrap()[0];
        assert!(notify.len() < 250, "{} instructions", notify.len());
    }

    #[test]
    fn blocks_agree_with_the_checks_they_compile() {
        // Every kind of test, alone and in rules that share an argument or not.
        let cases: Vec<Vec<Vec<Check>>> = vec![
            vec![vec![Check::HasFlag(1, 0x30)]],
            vec![vec![Check::NonZero64(4)], vec![Check::Eq(0, 7)]],
            vec![
                vec![Check::Eq(0, 1), Check::NonZero64(0)],
                vec![Check::Ne(0, 1), Check::HasFlag(0, 4)],
            ],
            vec![
                vec![Check::Eq(2, 3)],
                vec![Check::Eq(2, 4)],
                vec![Check::HasFlag(2, 0x30), Check::Ne(1, 0)],
            ],
            vec![
                vec![Check::HasFlag(1, 1), Check::HasFlag(2, 8)],
                vec![Check::HasFlag(1, 2), Check::HasFlag(2, 8)],
                vec![Check::HasFlag(1, 1), Check::HasFlag(2, 16)],
                vec![Check::HasFlag(1, 2), Check::HasFlag(2, 16)],
            ],
        ];
        let vals = [
            0u64,
            1,
            2,
            3,
            4,
            7,
            8,
            16,
            0x10,
            0x30,
            0xffff_ffff,
            0x1_0000_0000,
            0xdead_0000_0000_0001,
        ];
        for alternatives in &cases {
            let prog = block(&merged(alternatives), ERRNO | 1).unwrap();
            for &a in &vals {
                for &b in &vals {
                    for &c in &vals {
                        let args = [a, b, c, 0, a, 0];
                        let want = alternatives
                            .iter()
                            .any(|r| r.iter().all(|ch| ch.holds(&args)));
                        // The block is entered with the number (0 here) in the accumulator.
                        let got = run(&prog, 0, &args) == ERRNO | 1;
                        assert_eq!(got, want, "{alternatives:?} {args:x?}");
                    }
                }
            }
        }
        // The four setid rules of open become one rule of two tests, clone's seven one.
        let open: Vec<Vec<Check>> = setid_rules()
            .into_iter()
            .filter(|(n, _)| *n == "open")
            .map(|(_, c)| c)
            .collect();
        assert_eq!((open.len(), merged(&open).len()), (4, 1));
        let clone: Vec<Vec<Check>> = CLONE_NEW_FLAGS
            .iter()
            .map(|&f| vec![Check::HasFlag(0, f)])
            .collect();
        assert_eq!(
            merged(&clone),
            vec![vec![Test::Any(
                0,
                CLONE_NEW_FLAGS.iter().fold(0, |a, f| a | f)
            )]]
        );
    }

    #[test]
    fn long_searches_use_unconditional_jumps() {
        // 400 numbers: the left half of the search is longer than a conditional
        // jump reaches, and so are the shared returns and the blocks from most leaves.
        let parts = Parts {
            leaves: (0..400)
                .map(|n| {
                    (
                        n * 2,
                        if n % 3 == 0 {
                            Target::Block((n % 2) as usize)
                        } else {
                            Target::Ret(ERRNO | 2)
                        },
                    )
                })
                .collect(),
            blocks: vec![
                vec![insn(BPF_RET_K, 0, 0, ERRNO | 1)],
                vec![insn(BPF_RET_K, 0, 0, ERRNO | 3)],
            ],
        };
        let prog = assemble(&[], parts).unwrap();
        for nr in 0..820u32 {
            let want = match (nr % 2 == 0 && nr < 800, (nr / 2) % 3 == 0) {
                (false, _) => libc::SECCOMP_RET_ALLOW,
                (true, true) if (nr / 2) % 2 == 0 => ERRNO | 1,
                (true, true) => ERRNO | 3,
                (true, false) => ERRNO | 2,
            };
            assert_eq!(run(&prog, nr, &[0; 6]), want, "nr {nr}");
        }
    }

    #[test]
    fn allowed_calls_take_few_instructions() {
        // What the kernel's action-cache emulation and every inspected call pay.
        let p = SyscallPolicy::new(&Syscalls::default(), &Network::Off).unwrap();
        let prog = &p.compile_notify(OBSERVE_EXEC).unwrap()[0];
        let getpid = syscalls::number("getpid").unwrap() as u32;
        let mut steps = 0;
        let mut pc = 0;
        while prog[pc].code != BPF_RET_K {
            let i = &prog[pc];
            steps += 1;
            pc += 1 + if i.code == BPF_JA {
                i.k as usize
            } else if i.code as u32 & 0x07 == libc::BPF_JMP {
                // Follow getpid's path through the search.
                let taken = match i.code as u32 & 0xf0 {
                    libc::BPF_JEQ => getpid == i.k,
                    libc::BPF_JGE => getpid >= i.k,
                    libc::BPF_JGT => getpid > i.k,
                    _ => false,
                };
                (if taken { i.jt } else { i.jf }) as usize
            } else {
                0
            };
        }
        assert!(steps < 20, "{steps} instructions to allow getpid");
    }

    #[test]
    fn compiles() {
        for net in [
            Network::Off,
            Network::On,
            Network::Filtered {
                connect: vec![1],
                bind: vec![],
                dns: false,
            },
        ] {
            let p = SyscallPolicy::new(&Syscalls::default(), &net).unwrap();
            let progs = p.compile().unwrap();
            assert_eq!(progs.len(), 1);
            assert!(progs.iter().all(|p| !p.is_empty() && p.len() < 4096));
        }
    }

    // ---------------------------------------------------------------------
    // The generator (`merged`, `block`, `assemble`) under random policies and
    // random rule sets against what they mean, every program checked the way
    // the kernel checks it, and the kernel running the programs in a child.
    // ---------------------------------------------------------------------

    /// xorshift64*: no new crates.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
        fn pick<T: Copy>(&mut self, v: &[T]) -> T {
            v[self.below(v.len())]
        }
    }

    /// What the kernel's `bpf_check_classic` and `seccomp_check_filter` accept:
    /// the opcodes seccomp allows, loads of aligned words inside `struct
    /// seccomp_data`, every jump inside the program, a RET last, at most
    /// BPF_MAXINSNS instructions. Also: only the answers `rets` are returned.
    fn assert_kernel_accepts(prog: &[sock_filter], rets: &[u32]) {
        let len = prog.len();
        assert!(
            len >= 1 && len <= libc::BPF_MAXINSNS as usize,
            "{len} instructions"
        );
        for (pc, i) in prog.iter().enumerate() {
            match i.code {
                BPF_LD_W_ABS => {
                    assert!(i.k < 64 && i.k % 4 == 0, "load at {} (pc {pc})", i.k)
                }
                BPF_AND_K => {}
                BPF_RET_K => assert!(rets.contains(&i.k), "RET {:#x} at {pc}", i.k),
                BPF_JA => assert!((i.k as usize) < len - pc - 1, "JA {} at {pc} of {len}", i.k),
                BPF_JEQ_K | BPF_JGE_K | BPF_JGT_K | BPF_JSET_K => assert!(
                    pc + i.jt as usize + 1 < len && pc + i.jf as usize + 1 < len,
                    "jump {}/{} at {pc} of {len}",
                    i.jt,
                    i.jf
                ),
                c => panic!("opcode {c:#x} at {pc}"),
            }
        }
        assert_eq!(
            prog[len - 1].code,
            BPF_RET_K,
            "the last instruction returns"
        );
    }

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const NOTIF: u32 = libc::SECCOMP_RET_USER_NOTIF;
    const ENOSYS_RET: u32 = ERRNO | libc::ENOSYS as u32;

    fn errno_rets() -> Vec<u32> {
        vec![
            ALLOW,
            libc::SECCOMP_RET_KILL_PROCESS,
            ERRNO | libc::EPERM as u32,
            ERRNO | libc::ENOSYS as u32,
            ERRNO | libc::EAFNOSUPPORT as u32,
        ]
    }

    fn all_names() -> Vec<&'static str> {
        (0..=470).filter_map(syscalls::name).collect()
    }

    /// A random profile: long `deny` lists (runs and isolated numbers, so the
    /// search outgrows one conditional jump), `allow` lists that take rules with
    /// checks away, every network mode, either isolation.
    fn random_policy(rng: &mut Rng, spare: &[&str]) -> SyscallPolicy {
        let names = all_names();
        let candidates: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !spare.contains(n))
            .collect();
        let mut deny = Vec::new();
        match rng.below(4) {
            0 => {}
            1 => {
                for _ in 0..rng.below(20) {
                    deny.push(item(rng.pick(&candidates)));
                }
            }
            2 => {
                // Every other number: no runs to merge, the longest search.
                let phase = rng.below(2);
                for (k, n) in candidates.iter().enumerate() {
                    if k % 2 == phase {
                        deny.push(item(n));
                    }
                }
            }
            _ => {
                let p = 1 + rng.below(9);
                for n in &candidates {
                    if rng.below(10) < p {
                        deny.push(item(n));
                    }
                }
            }
        }
        let mut allow = Vec::new();
        let checked = [
            "clone",
            "ioctl",
            "personality",
            "open",
            "openat",
            "chmod",
            "fchmodat",
            "setpriority",
            "ioprio_set",
            "prlimit64",
            "mknodat",
            "creat",
            "clone3",
            "ptrace",
            "shmget",
            "fchmod",
            "sched_setaffinity",
        ];
        for _ in 0..rng.below(4) {
            let n = rng.pick(&checked);
            if !spare.contains(&n) {
                allow.push(item(n));
            }
        }
        let net = match rng.below(3) {
            0 => Network::Off,
            1 => Network::On,
            _ => Network::Filtered {
                connect: vec![443],
                bind: vec![],
                dns: false,
            },
        };
        let mut p = SyscallPolicy::new(&Syscalls { deny, allow }, &net).unwrap();
        if rng.below(2) == 0 {
            p.set_isolation(Isolation::Host);
        }
        p
    }

    /// Values around every constant the checks of `checks` compare with, with
    /// single bits of every mask, so each comparison is tried on both sides.
    fn value_pool(checks: impl Iterator<Item = Check>) -> Vec<u32> {
        let mut v = vec![0u32, 1, 2, 0x7fff_ffff, 0x8000_0000, u32::MAX];
        for c in checks {
            match c {
                Check::Eq(_, x) | Check::Ne(_, x) => {
                    v.extend([
                        x,
                        x ^ 1,
                        x.wrapping_add(1),
                        x.wrapping_sub(1),
                        !x,
                        x | 0x8000_0000,
                    ]);
                }
                Check::HasFlag(_, m) => {
                    v.extend([m, !m, m | 0x8000_0000, m & m.wrapping_sub(1)]);
                    v.extend((0..32).map(|b| 1u32 << b).filter(|b| m & b != 0));
                    v.extend((0..32).map(|b| m & !(1u32 << b)).filter(|&x| x != m));
                }
                Check::NonZero64(_) => {}
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    fn random_args(rng: &mut Rng, pool: &[u32]) -> [u64; 6] {
        let his = [0u64, 0xffff_ffff, 1, 0x8000_0000];
        let mut a = [0u64; 6];
        for x in &mut a {
            let lo = match rng.below(8) {
                0 => rng.next() as u32,
                1 => 0,
                _ => rng.pick(pool),
            };
            let hi = match rng.below(4) {
                0 => rng.next() >> 32,
                1 | 2 => 0,
                _ => rng.pick(&his),
            };
            *x = (hi << 32) | lo as u64;
        }
        a
    }

    /// The numbers worth trying for a program: those with a rule and their
    /// neighbours (the edges of ranges and of the search's splits), every
    /// number below 471, and numbers past the table.
    fn numbers_for(rule_nrs: &[i64], rng: &mut Rng) -> (Vec<u32>, Vec<u32>) {
        let mut hot: Vec<u32> = rule_nrs
            .iter()
            .flat_map(|&n| [n - 1, n, n + 1])
            .filter(|&n| n >= 0)
            .map(|n| n as u32)
            .collect();
        hot.sort_unstable();
        hot.dedup();
        let mut cold: Vec<u32> = (0..=470).filter(|n| !hot.contains(n)).collect();
        cold.extend([
            471,
            1000,
            0x3fff_ffff,
            X32_SYSCALL_BIT,
            X32_SYSCALL_BIT | 1,
            0x7fff_ffff,
            0x8000_0000,
            u32::MAX,
            rng.next() as u32,
            rng.next() as u32 & 0x3fff_ffff,
        ]);
        (hot, cold)
    }

    /// The answer the policy means for `compile()`'s programs.
    fn want_errno(p: &SyscallPolicy, quiet: &[i64], nr: u32, args: &[u64; 6]) -> u32 {
        if nr >= X32_SYSCALL_BIT || quiet.contains(&(nr as i64)) {
            return ENOSYS_RET;
        }
        match p.decide_unsupervised(nr as i64, args) {
            Some(r) => ERRNO | r.errno.raw() as u32,
            None => ALLOW,
        }
    }

    /// The answer the policy means for `compile_supervised`'s program (its doc):
    /// quiet refusals answered by the guard; with capture, or for a number
    /// refused with two errnos, or one with any call for the supervisor, every
    /// refusal and every observed or mediated call to the supervisor; else the
    /// refusal's errno.
    struct Supervision<'a> {
        p: &'a SyscallPolicy,
        quiet: Vec<i64>,
        observed: Vec<i64>,
        observe_if: Vec<(i64, &'a [Check])>,
        mediated: &'a [SyscallRule],
        all_to_supervisor: bool,
        supervised_nrs: Vec<i64>,
    }

    impl<'a> Supervision<'a> {
        fn new(
            p: &'a SyscallPolicy,
            observe: &[&str],
            observe_if: &'a [(&'a str, &'a [Check])],
            mediated: &'a [SyscallRule],
            refusals: Refusals,
        ) -> Supervision<'a> {
            let mut seen = BTreeMap::new();
            let overlap = p
                .rules
                .iter()
                .any(|r| *seen.entry(r.nr).or_insert(r.errno) != r.errno);
            let observed: Vec<i64> = observe.iter().filter_map(|n| syscalls::number(n)).collect();
            let observe_if: Vec<(i64, &[Check])> = observe_if
                .iter()
                .filter_map(|&(n, c)| Some((syscalls::number(n)?, c)))
                .collect();
            let mut supervised_nrs = observed.clone();
            supervised_nrs.extend(mediated.iter().map(|r| r.nr));
            supervised_nrs.extend(observe_if.iter().map(|o| o.0));
            supervised_nrs.extend(
                p.rules
                    .iter()
                    .filter(|r| r.supervised.is_some())
                    .map(|r| r.nr),
            );
            Supervision {
                p,
                quiet: p.quiet(),
                observed,
                observe_if,
                mediated,
                all_to_supervisor: refusals == Refusals::Notify || overlap,
                supervised_nrs,
            }
        }

        fn want(&self, nr: u32, args: &[u64; 6]) -> u32 {
            let n = nr as i64;
            if nr >= X32_SYSCALL_BIT || self.quiet.contains(&n) {
                return ENOSYS_RET;
            }
            let holds = |cs: &[Check]| cs.iter().all(|c| c.holds(args));
            let wanted = self.observed.contains(&n)
                || self.mediated.iter().any(|r| r.nr == n && holds(&r.checks))
                || self.observe_if.iter().any(|&(o, cs)| o == n && holds(cs));
            let refused = self.p.decide(n, args);
            if self.all_to_supervisor || self.supervised_nrs.contains(&n) {
                if wanted || refused.is_some() {
                    NOTIF
                } else {
                    ALLOW
                }
            } else {
                match refused {
                    Some(r) => ERRNO | r.errno.raw() as u32,
                    None => ALLOW,
                }
            }
        }
    }

    /// Both answers refuse with some errno, where a number has rules of two
    /// errnos and `compile()` made one program per errno (the kernel picks one).
    fn either_errno(progs: &[BpfProgram], got: u32, want: u32) -> bool {
        progs.len() > 1
            && got & libc::SECCOMP_RET_ACTION_FULL == ERRNO
            && want & libc::SECCOMP_RET_ACTION_FULL == ERRNO
    }

    fn check_program_family(
        p: &SyscallPolicy,
        rng: &mut Rng,
        what: &str,
        progs: &[BpfProgram],
        want: &dyn Fn(u32, &[u64; 6]) -> u32,
        extra_nrs: &[i64],
        extra_checks: &[Check],
    ) {
        let mut rets = errno_rets();
        rets.push(NOTIF);
        for prog in progs {
            assert_kernel_accepts(prog, &rets);
        }
        let mut rule_nrs: Vec<i64> = p.rules.iter().map(|r| r.nr).collect();
        rule_nrs.extend(p.quiet());
        rule_nrs.extend_from_slice(extra_nrs);
        let pool = value_pool(
            p.rules
                .iter()
                .flat_map(|r| r.checks.iter().copied())
                .chain(extra_checks.iter().copied()),
        );
        let (hot, cold) = numbers_for(&rule_nrs, rng);
        let mut cases: Vec<[u64; 6]> = vec![[0; 6], [u64::MAX; 6], [1 << 32; 6]];
        for _ in 0..48 {
            cases.push(random_args(rng, &pool));
        }
        for (nrs, n_args) in [(&hot, cases.len()), (&cold, 4)] {
            for &nr in nrs {
                for args in &cases[..n_args] {
                    let got = run_all(progs, nr, args);
                    let w = want(nr, args);
                    assert!(
                        got == w || either_errno(progs, got, w),
                        "{what}: nr {nr} ({:?}) args {args:x?}: filter {got:#x}, policy {w:#x}\nrules: {:#?}",
                        syscalls::name(nr as i64),
                        p.describe()
                    );
                }
            }
        }
        // Foreign architectures are killed whatever the number.
        for prog in progs {
            for arch in [
                0x4000_0003u32,
                0xC000_00B7,
                0,
                0x4000_003E,
                rng.next() as u32,
            ] {
                if arch == AUDIT_ARCH_X86_64 {
                    continue;
                }
                for &nr in hot.iter().take(5).chain(&[0, 59]) {
                    assert_eq!(
                        run_data(prog, arch, nr, &[0; 6]),
                        libc::SECCOMP_RET_KILL_PROCESS,
                        "{what}: arch {arch:#x}"
                    );
                }
            }
        }
    }

    /// Many random profiles, each compiled every way a launch compiles it,
    /// against what the policy means. Seeds: CORDON_SECCOMP_SEEDS=N runs 1..=N.
    #[test]
    fn random_policies_agree_with_decide_in_every_program() {
        let seeds: u64 = std::env::var("CORDON_SECCOMP_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(24);
        let med = mediated();
        let med_checks: Vec<Check> = med.iter().flat_map(|r| r.checks.clone()).collect();
        let change_checks: Vec<Check> = OBSERVE_CHANGES
            .iter()
            .flat_map(|(_, c)| c.iter().copied())
            .collect();
        for seed in 1..=seeds {
            let mut rng = Rng::new(seed);
            let p = random_policy(&mut rng, &[]);
            let what = format!("seed {seed}");
            // The plain filter (no supervisor).
            let progs = p.compile().unwrap();
            let quiet = p.quiet();
            check_program_family(
                &p,
                &mut rng,
                &format!("{what} compile"),
                &progs,
                &|nr, a| want_errno(&p, &quiet, nr, a),
                &[],
                &[],
            );
            // No capture: mediated calls and supervised refusals to the supervisor.
            let progs = p
                .compile_supervised(&[], &[], &med, Refusals::Errno)
                .unwrap();
            assert_eq!(progs.len(), 1);
            let sup = Supervision::new(&p, &[], &[], &med, Refusals::Errno);
            check_program_family(
                &p,
                &mut rng,
                &format!("{what} errno+mediated"),
                &progs,
                &|nr, a| sup.want(nr, a),
                &med.iter().map(|r| r.nr).collect::<Vec<_>>(),
                &med_checks,
            );
            // Capture, with or without --trace and the change record.
            let mut observe: Vec<&str> = OBSERVE_EXEC.to_vec();
            if rng.below(2) == 0 {
                observe.extend_from_slice(OBSERVE_TRACE);
            }
            let changes: &[(&str, &[Check])] = if rng.below(2) == 0 {
                OBSERVE_CHANGES
            } else {
                &[]
            };
            let progs = p
                .compile_supervised(&observe, changes, &med, Refusals::Notify)
                .unwrap();
            assert_eq!(progs.len(), 1);
            let mut nrs: Vec<i64> = med.iter().map(|r| r.nr).collect();
            nrs.extend(observe.iter().filter_map(|n| syscalls::number(n)));
            nrs.extend(changes.iter().filter_map(|(n, _)| syscalls::number(n)));
            let mut checks = med_checks.clone();
            checks.extend_from_slice(&change_checks);
            let sup = Supervision::new(&p, &observe, changes, &med, Refusals::Notify);
            check_program_family(
                &p,
                &mut rng,
                &format!(
                    "{what} capture (trace {}, changes {})",
                    observe.len() > 3,
                    !changes.is_empty()
                ),
                &progs,
                &|nr, a| sup.want(nr, a),
                &nrs,
                &checks,
            );
        }
    }

    /// Random rule sets (alternatives of ANDs, every kind of check, on few
    /// arguments and few values so that tests share arguments, masks overlap
    /// and rules differ in one bit or in more) compiled by `merged` and
    /// `block`, against the checks themselves; then placed behind a search of
    /// many numbers so that the leaves reach them with every form of jump.
    #[test]
    fn random_blocks_agree_with_their_checks() {
        let seeds: u64 = std::env::var("CORDON_SECCOMP_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(24)
            * 40;
        let masks = [1u32, 2, 4, 3, 6, 0x8000_0000, 0x8000_0001, 0];
        let vals = [0u32, 1, 2, 3, 0xffff_ffff, 0x8000_0000];
        let random_check = |rng: &mut Rng| {
            let i = rng.below(3) as u8;
            match rng.below(6) {
                0 => Check::Eq(i, rng.pick(&vals)),
                1 => Check::Ne(i, rng.pick(&vals)),
                2 => Check::NonZero64(i),
                _ => Check::HasFlag(i, rng.pick(&masks)),
            }
        };
        let his = [0u64, 1, 0xffff_ffff];
        let lows = [
            0u32,
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            0x8000_0000,
            0x8000_0001,
            0xffff_ffff,
        ];
        for seed in 1..=seeds {
            let mut rng = Rng::new(seed);
            let rules: Vec<Vec<Check>> = (0..1 + rng.below(8))
                .map(|_| {
                    (0..1 + rng.below(4))
                        .map(|_| random_check(&mut rng))
                        .collect()
                })
                .collect();
            let prog = block(&merged(&rules), ERRNO | 1).unwrap();
            let mut wrapped = vec![insn(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR)];
            wrapped.extend(prog.iter().map(|i| insn(i.code, i.jt, i.jf, i.k)));
            assert_kernel_accepts(&wrapped, &[ALLOW, ERRNO | 1]);
            for _ in 0..200 {
                let mut args = [0u64; 6];
                for a in args.iter_mut().take(3) {
                    *a = (rng.pick(&his) << 32) | rng.pick(&lows) as u64;
                }
                let want = rules.iter().any(|r| r.iter().all(|c| c.holds(&args)));
                let got = run(&prog, 0, &args);
                assert_eq!(
                    got,
                    if want { ERRNO | 1 } else { ALLOW },
                    "seed {seed}: {rules:?} -> {:?}, args {args:x?}",
                    merged(&rules)
                );
            }
        }
    }

    /// The errno a call gets in the kernel test when the filter under test
    /// allows it: a filter installed first answers it (the call never runs).
    const SENTINEL: u32 = 999;
    /// What USER_NOTIF becomes in the kernel test (no listener is needed).
    const NOTIF_STANDIN: u32 = 998;

    /// Install `progs` in a forked child behind a filter that refuses every
    /// tested number with SENTINEL (equal actions: the later filter's errno
    /// wins, so an allowed call gets SENTINEL and a refused one the program's
    /// errno; nothing runs, so mount, reboot or clone are safe to try), make
    /// every call, and return the errno of each (-1: the call ran). USER_NOTIF
    /// returns are replaced by ERRNO|NOTIF_STANDIN. None where seccomp is
    /// unavailable. Only numbers the syscall table names belong in `calls`
    /// (with the x32 range): a kernel may have private ones.
    #[allow(unsafe_code)]
    fn kernel_errnos(progs: &[BpfProgram], calls: &[(u32, [u64; 6])]) -> Option<Vec<i32>> {
        let mut nrs: Vec<u32> = calls.iter().map(|c| c.0).collect();
        nrs.sort_unstable();
        nrs.dedup();
        let mut sentinel = vec![insn(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR)];
        for &nr in &nrs {
            sentinel.push(insn(BPF_JEQ_K, 0, 1, nr));
            sentinel.push(insn(BPF_RET_K, 0, 0, ERRNO | SENTINEL));
        }
        sentinel.push(insn(BPF_RET_K, 0, 0, ALLOW));
        let progs: Vec<BpfProgram> = progs
            .iter()
            .map(|p| {
                p.iter()
                    .map(|i| {
                        let k = if i.code == BPF_RET_K && i.k == NOTIF {
                            ERRNO | NOTIF_STANDIN
                        } else {
                            i.k
                        };
                        insn(i.code, i.jt, i.jf, k)
                    })
                    .collect()
            })
            .collect();
        let mut fds = [0; 2];
        // SAFETY: a plain pipe(2) into a local array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child makes system calls only (no allocation, no locks)
        // and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: syscalls on memory prepared before the fork.
            unsafe {
                libc::close(fds[0]);
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    libc::_exit(3);
                }
                if crate::sys::seccomp_install(&sentinel, 0).is_err() {
                    libc::_exit(3);
                }
                for p in &progs {
                    if let Err(e) = crate::sys::seccomp_install(p, 0) {
                        libc::_exit(100 + e.raw_os_error().unwrap_or(0));
                    }
                }
                // One errno per call, written at once (a dying call shows where).
                for (nr, a) in calls {
                    let r = libc::syscall(*nr as libc::c_long, a[0], a[1], a[2], a[3], a[4], a[5]);
                    let e: i32 = if r == -1 {
                        *libc::__errno_location()
                    } else {
                        -1
                    };
                    if libc::write(fds[1], &e as *const i32 as *const libc::c_void, 4) != 4 {
                        libc::_exit(5);
                    }
                }
                libc::_exit(0);
            }
        }
        // SAFETY: closing our copy of the write end.
        unsafe { libc::close(fds[1]) };
        let mut reader = std::fs::File::from(unsafe {
            // SAFETY: the read end is ours alone.
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[0])
        });
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut bytes).unwrap();
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status),
            "child status {status:#x} after {} calls, next {:x?}",
            bytes.len() / 4,
            calls.get(bytes.len() / 4),
        );
        match libc::WEXITSTATUS(status) {
            0 => {}
            3 => return None,
            c if c >= 100 => panic!(
                "the kernel refused a program: {}",
                std::io::Error::from_raw_os_error(c - 100)
            ),
            c => panic!("child exit {c}"),
        }
        assert_eq!(bytes.len(), 4 * calls.len());
        Some(
            bytes
                .chunks(4)
                .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
                .collect(),
        )
    }

    /// The kernel runs the programs as the interpreter does: for the default
    /// policies in every network mode and isolation, a long random one and one
    /// refusing every other number (long forms everywhere), each program kind.
    #[test]
    fn the_kernel_agrees_with_the_interpreter() {
        // The child installs the programs after the filter that refuses the
        // tested numbers (seccomp), reports with write(2) and leaves with exit_group(2).
        let spare = ["seccomp", "write", "exit_group", "exit"];
        let mut policies = Vec::new();
        for net in [
            Network::Off,
            Network::On,
            Network::Filtered {
                connect: vec![443],
                bind: vec![],
                dns: false,
            },
        ] {
            for iso in [Isolation::Namespaces, Isolation::Host] {
                let mut p = SyscallPolicy::new(&Syscalls::default(), &net).unwrap();
                p.set_isolation(iso);
                policies.push(p);
            }
        }
        let mut rng = Rng::new(0x5ecc);
        while policies.len() < 10 {
            let p = random_policy(&mut rng, &spare);
            if p.rules.len() > 150 {
                policies.push(p);
            }
        }
        let med = mediated();
        let mut long_forms = 0;
        for (k, p) in policies.iter().enumerate() {
            let mut observe = OBSERVE_EXEC.to_vec();
            observe.extend_from_slice(OBSERVE_TRACE);
            let kinds = [
                ("compile", p.compile().unwrap()),
                (
                    "errno+mediated",
                    p.compile_supervised(&[], &[], &med, Refusals::Errno)
                        .unwrap(),
                ),
                (
                    "capture+changes",
                    p.compile_supervised(OBSERVE_EXEC, OBSERVE_CHANGES, &med, Refusals::Notify)
                        .unwrap(),
                ),
                (
                    "capture+trace",
                    p.compile_supervised(&observe, &[], &med, Refusals::Notify)
                        .unwrap(),
                ),
            ];
            let mut nrs: Vec<i64> = p.rules.iter().map(|r| r.nr).collect();
            nrs.extend(med.iter().map(|r| r.nr));
            nrs.extend(
                OBSERVE_CHANGES
                    .iter()
                    .filter_map(|(n, _)| syscalls::number(n)),
            );
            let (hot, cold) = numbers_for(&nrs, &mut rng);
            let pool = value_pool(
                p.rules
                    .iter()
                    .chain(&med)
                    .flat_map(|r| r.checks.iter().copied())
                    .chain(OBSERVE_CHANGES.iter().flat_map(|(_, c)| c.iter().copied())),
            );
            let mut calls = Vec::new();
            for &nr in hot.iter().chain(&cold) {
                // Only numbers the table names (and the x32 range, which the
                // filter answers first): some kernels have private numbers.
                let name = match syscalls::name(nr as i64) {
                    Some(n) => n,
                    None if nr >= X32_SYSCALL_BIT => "",
                    None => continue,
                };
                if spare.contains(&name) {
                    continue;
                }
                calls.push((nr, [0; 6]));
                calls.push((nr, [u64::MAX; 6]));
                if hot.contains(&nr) {
                    for _ in 0..12 {
                        calls.push((nr, random_args(&mut rng, &pool)));
                    }
                }
            }
            for (what, progs) in &kinds {
                long_forms += progs.iter().flatten().filter(|i| i.code == BPF_JA).count();
                let Some(got) = kernel_errnos(progs, &calls) else {
                    if std::env::var_os("CORDON_TEST_STRICT").is_some_and(|v| v != "0") {
                        panic!("seccomp is unavailable, and CORDON_TEST_STRICT=1 forbids skipping");
                    }
                    eprintln!("skipped: seccomp is unavailable here");
                    return;
                };
                for (&(nr, args), &e) in calls.iter().zip(&got) {
                    let want = match run_all(progs, nr, &args) {
                        ALLOW => SENTINEL as i32,
                        NOTIF => NOTIF_STANDIN as i32,
                        r if r & libc::SECCOMP_RET_ACTION_FULL == ERRNO => (r & 0xffff) as i32,
                        r => panic!("unexpected answer {r:#x}"),
                    };
                    assert_eq!(
                        e,
                        want,
                        "policy {k} {what}: nr {nr} ({:?}) args {args:x?}",
                        syscalls::name(nr as i64)
                    );
                }
            }
        }
        assert!(long_forms > 0, "no program took a long form");
    }
}
