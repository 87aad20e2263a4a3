//! Preparation and entry: [`Prepared::new`] does every fallible step in the
//! launcher (plan, Landlock ruleset with every path opened, BPF compiled,
//! command resolved, environment built); [`spawn`] forks, and the child runs
//! one straight line in a fixed order, each step where it is for a reason.
//!
//! With namespaces the child is PID 1 of its namespaces ("init"): it makes the
//! network namespace, builds the mount view, then starts the payload (sharing
//! its memory until the payload's execve) and stays to reap and forward signals.
//! Meanwhile the launcher adds the Landlock path rules; init waits for its go.
//! Without namespaces, the payload is the launcher's direct child.

use std::ffi::{CString, OsString};
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use std::os::fd::{AsFd, AsRawFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::resource::Resource;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getppid, pipe2};
use seccompiler::BpfProgram;

use crate::env;
use crate::error::{Error, Result, exit};
use crate::exec;
use crate::landlock;
use crate::limits::{self, Memory, Processes};
use crate::monitor::{ChildEnd, Monitor};
use crate::namespaces;
use crate::plan::{DiskLister, Plan};
use crate::policy::Policy;
use crate::probe::Host;
use crate::profile::{Secret, SecretSource};
use crate::seccomp::Refusals;
use crate::sys;

/// Launch options that are not part of the profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Run with what this kernel can enforce, warning once per missing piece.
    pub best_effort: bool,
    /// Capture refused syscalls and executed commands (seccomp user notification).
    pub capture: bool,
    /// Also observe path and connect calls (--trace).
    pub trace: bool,
    /// Send write-intent calls to the change record (on unless --no-changes).
    pub changes: bool,
}

/// Signals the launcher forwards to the sandbox.
pub const FORWARDED: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGWINCH,
];

/// Everything the child needs, computed before the fork.
#[derive(Debug)]
pub struct Prepared {
    pub policy: Policy,
    pub plan: Plan,
    /// Warnings to print once: skipped paths, missing pieces (best effort), unenforced entries.
    pub warnings: Vec<String>,
    /// Made by [`Prepared::make_cgroups`]: before the fork, or while the child is
    /// held before its execve (see [`spawn`]).
    pub processes: Processes,
    pub memory: Memory,
    /// The limits this host enforces (built-in defaults that cannot hold left out).
    limits: crate::policy::Limits,
    cgroups_made: bool,
    /// Built-in default limits left out here, and why (see limits::effective).
    pub limit_notes: Vec<String>,
    pub program: std::path::PathBuf,
    pub command: Vec<OsString>,
    landlock: Option<landlock::Prepared>,
    bpf: Vec<BpfProgram>,
    /// `bpf` is left to the child (see errno_filter).
    bpf_lazy: bool,
    /// The capture variant of the filter: refusals go to the supervisor.
    bpf_notify: Option<Vec<BpfProgram>>,
    /// The payload's end of the channel that carries the listener to the launcher.
    capture: Option<ChildEnd>,
    /// No listener (a nested cordon) is a refusal: no namespaces, no --best-effort.
    mediation_required: bool,
    /// The notifying filter sends execve to the supervisor (capture is on).
    exec_observed: bool,
    program_c: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    rlimits: Vec<(Resource, u64, u64)>,
    ns: Option<namespaces::Prepared>,
    /// A session's namespaces to run in (its init's pidfd) instead of new ones.
    session: Option<OwnedFd>,
    inherited: Vec<RawFd>,
    /// The command is not found or not executable: the run ends with this
    /// (126 or 127) and its report, and nothing is started.
    pub unresolved: Option<Error>,
    /// Mode "proxy" without namespaces: the proxy's listener on the host's
    /// loopback (taken by the launcher once the tree runs).
    pub host_proxy: Option<std::net::TcpListener>,
}

impl Prepared {
    /// Plan and prepare `command` under `policy`. `ns_failed` is set when an
    /// attempt with namespaces failed and mode "auto" retries without them.
    pub fn new(
        mut policy: Policy,
        host: &Host,
        command: &[OsString],
        opts: Options,
        inherited: &[RawFd],
        ns_failed: Option<&str>,
    ) -> Result<Prepared> {
        let mut plan = Plan::new(&policy, host, ns_failed, &DiskLister);
        crate::timing::mark("prepare-plan");
        if let Some(why) = &plan.refuse {
            return Err(Error::Unenforceable {
                missing: why.clone(),
            });
        }
        let mut warnings = policy.warnings();
        if !plan.missing.is_empty() {
            if !opts.best_effort {
                let list: Vec<String> = plan.missing.iter().map(|p| p.to_string()).collect();
                return Err(Error::Unenforceable {
                    missing: list.join("; "),
                });
            }
            warnings.extend(plan.missing.iter().map(|p| format!("not enforced: {p}")));
        }
        warnings.extend(plan.warnings.iter().cloned());

        use crate::policy::Network;
        // Mode "proxy" without a network namespace: the proxy listens on the
        // host's loopback (bound now, so the tree's variables and Landlock's
        // one port can name it), the filter refuses every inet socket but TCP,
        // and the supervisor lets connections go to 127.0.0.1 alone
        // (explain::decide_inet). Without Landlock's TCP rules (--best-effort,
        // said above) nothing would keep the tree to the proxy: network off.
        let mut host_proxy = None;
        if plan.mounts.is_none() && matches!(policy.net, Network::Proxy(_)) {
            let seccomp_net = if plan.tcp.is_some() {
                let l = crate::proxy::listener("127.0.0.1:0")
                    .and_then(|l| Ok((l.local_addr()?.port(), l)))
                    .map_err(|e| Error::Launch {
                        step: "binding the proxy on the host's loopback",
                        source: e,
                    })?;
                let port = l.0;
                plan.tcp = Some((vec![port], vec![]));
                host_proxy = Some(l);
                Network::Filtered {
                    connect: vec![port],
                    bind: vec![],
                    dns: false,
                }
            } else {
                policy.net = Network::Off;
                Network::Off
            };
            policy.syscalls =
                crate::seccomp::SyscallPolicy::new(&policy.resolved.syscalls, &seccomp_net)?;
        }
        // Mode "filtered" without a supervisor: UDP stays refused (plan.gaps).
        if let Network::Filtered { dns, .. } = &mut policy.net {
            if *dns && plan.resolvers.is_empty() {
                *dns = false;
                policy.syscalls =
                    crate::seccomp::SyscallPolicy::new(&policy.resolved.syscalls, &policy.net)?;
            }
        }
        // The filter follows the isolation the plan chose (auto may fall back to none).
        policy.syscalls.set_isolation(plan.isolation());
        // Built-in default limits apply where they hold; the notes say where not.
        let (limits_now, notes) = limits::effective(
            &policy.limits,
            limits::Host::probe(host.is_root(), plan.namespaces()),
        );
        crate::timing::mark("prepare-limits");
        let landlock = landlock::prepare(&plan, true)?;
        crate::timing::mark("prepare-landlock");
        // The errno filter is the one installed only where the kernel has no user
        // notification; elsewhere it is the rare fallback (no listener to be had,
        // as in a nested cordon), compiled in the child when it is needed.
        let bpf_lazy = host.seccomp && host.user_notif;
        let bpf = if host.seccomp && !bpf_lazy {
            policy.syscalls.compile()?
        } else {
            Vec::new()
        };
        // A supervisor always, where the kernel has user notification: it performs
        // connect and send (unix_mediate) and memfd_create; capture adds the
        // refusals and execve, --trace the path calls, the change record the
        // write-intent calls.
        crate::timing::mark("prepare-bpf");
        let exec_gated = !policy.gates.exec.is_empty();
        // Approval gates: every execve goes to the supervisor (even with
        // --no-capture), and with read gates every open, since a filter cannot
        // tell one path from another.
        let gate_observe: Vec<&str> = [
            (!policy.gates.exec.is_empty(), crate::seccomp::OBSERVE_EXEC),
            (!policy.gates.read.is_empty(), crate::seccomp::OBSERVE_OPENS),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .flat_map(|(_, names)| names.iter().copied())
        .collect();
        let file_gates = !policy.gates.exec.is_empty() || !policy.gates.read.is_empty();
        if file_gates && !(host.seccomp && host.user_notif) {
            let missing =
                "approval gates (approve.exec, approve.read): they need seccomp user notification";
            if !opts.best_effort {
                return Err(Error::Unenforceable {
                    missing: missing.into(),
                });
            }
            warnings.push(format!(
                "{missing}; not enforced: gated commands run and gated files stay denied without asking"
            ));
        }
        let bpf_notify = if host.seccomp && host.user_notif {
            let mediated = crate::seccomp::mediated();
            Some(if opts.capture || !gate_observe.is_empty() {
                let mut observe: Vec<&str> = if opts.capture {
                    crate::seccomp::OBSERVE_EXEC.to_vec()
                } else {
                    Vec::new()
                };
                if opts.trace {
                    observe.extend_from_slice(crate::seccomp::OBSERVE_TRACE);
                }
                for n in &gate_observe {
                    if !observe.contains(n) {
                        observe.push(n);
                    }
                }
                let changes = if opts.changes && opts.capture {
                    crate::seccomp::OBSERVE_CHANGES
                } else {
                    &[]
                };
                policy.syscalls.compile_supervised(
                    &observe,
                    changes,
                    &mediated,
                    Refusals::Notify,
                )?
            } else {
                policy
                    .syscalls
                    .compile_supervised(&[], &[], &mediated, Refusals::Errno)?
            })
        } else {
            None
        };
        // Without a listener nothing confines pathname unix sockets; with
        // namespaces the mount view still masks what it masks.
        crate::timing::mark("prepare-bpf-notify");
        let mediation_required = plan.mounts.is_none() && !opts.best_effort;

        let host_env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        // The roots the run can write (and the temporary directory), where no
        // secret file may be taken from.
        let writable: Vec<&Path> = policy
            .fs
            .grants
            .iter()
            .filter(|g| g.access.can_write())
            .map(|g| g.path.as_path())
            .chain([policy.tmpdir.as_path(), policy.workspace.as_path()])
            .collect();
        let mut env = env::build(&policy.env, &host_env, &mut |n, s| {
            read_secret(n, s, &writable)
        })?;
        // Mode "proxy": every tool that honours the proxy variables is pointed
        // at the proxy (one that does not reaches nothing).
        if matches!(policy.net, crate::policy::Network::Proxy(_)) {
            let addr = match &host_proxy {
                Some((port, _)) => format!("127.0.0.1:{port}"),
                None => crate::proxy::PROXY_ADDR.to_string(),
            };
            let vars = crate::proxy::environment(&addr);
            env.retain(|(k, _)| !vars.iter().any(|(n, _)| n == k));
            env.extend(vars);
        }
        // Without namespaces the run's temporary directory is its own (scratch::RunTmp).
        if let (Some(t), None) = (&policy.run_tmp, &plan.mounts) {
            if !policy.env.set.iter().any(|(k, _)| k == "TMPDIR") {
                env.retain(|(k, _)| k != "TMPDIR");
                env.push(("TMPDIR".into(), t.to_string_lossy().into_owned()));
            }
        }
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str());
        // Not found or not executable is the run's outcome (126, 127), with a
        // report, not a launcher error: `unresolved` says so, and nothing runs.
        let (program, unresolved) = match exec::resolve(&command[0], path, &policy.cwd) {
            Ok(p) => (p, None),
            Err(e @ (Error::NotFound { .. } | Error::NotExecutable { .. })) => {
                (std::path::PathBuf::from(&command[0]), Some(e))
            }
            Err(e) => return Err(e),
        };
        let ns = plan
            .mounts
            .as_ref()
            .map(namespaces::Prepared::new)
            .transpose()?;
        // With namespaces, `spawn` adds the file-system rules after the clone.
        // Without them here: a forked child that added them itself, while the
        // launcher makes the cgroups, was no faster (its first run waits for
        // the other vCPU to wake).
        if ns.is_none() {
            landlock.add_rules(&plan)?;
        }
        crate::timing::mark("prepare-env");
        let (program_c, argv) = (exec::path_cstring(&program)?, exec::argv(command)?);
        let (envp, cwd) = (exec::envp(&env)?, exec::path_cstring(&policy.cwd)?);
        crate::timing::mark("prepare-exec");
        // The run's cgroups are made later (make_cgroups); without root the
        // process limit is an rlimit and needs none.
        let processes = if host.is_root() {
            Processes::None
        } else {
            limits::processes(&limits_now, false)
                .map_err(|m| Error::Unenforceable { missing: m })?
        };
        let rlimits = limits::rlimits(&limits_now, &processes);
        Ok(Prepared {
            program_c,
            argv,
            envp,
            cwd,
            program,
            command: command.to_vec(),
            policy,
            plan,
            warnings,
            processes,
            memory: Memory::None,
            limits: limits_now,
            cgroups_made: false,
            limit_notes: notes,
            landlock: Some(landlock),
            bpf,
            bpf_notify,
            capture: None,
            mediation_required,
            exec_observed: opts.capture || exec_gated,
            bpf_lazy,
            rlimits,
            ns,
            session: None,
            inherited: inherited.to_vec(),
            unresolved,
            host_proxy: host_proxy.map(|(_, l)| l),
        })
    }

    /// Hand the payload its end of the capture channel (see monitor::Monitor::new).
    /// With namespaces: the Landlock rules (without them, `new` added them)
    /// and the run's cgroups, made once the child exists.
    fn add_rules_and_cgroups(&mut self) -> Result<()> {
        if let Some(l) = &self.landlock {
            l.add_rules(&self.plan)?;
        }
        self.make_cgroups()
    }

    /// Run in the namespaces of `session` (prepared once for a session)
    /// instead of new ones: only when this command's mount view is the one
    /// the session built. Otherwise (a deny path or a protected git
    /// directory that appeared since, a different network mode) the command
    /// gets a sandbox of its own, and the reason is returned.
    pub fn join_session(&mut self, session: &SessionNs) -> std::result::Result<(), &'static str> {
        match &self.ns {
            None => Err("this command runs without namespaces"),
            Some(v) if *v != session.view => Err(
                "its mount view differs from the session's (a path to deny or protect appeared since the session started)",
            ),
            Some(v) if v.proxy => Err("network mode proxy gives each command a proxy of its own"),
            Some(_) if !session.view_holds() => Err(
                "a masked or read-only path of the session's view was replaced on the host since it started",
            ),
            Some(_) => match session.pidfd.try_clone() {
                Ok(fd) => {
                    self.session = Some(fd);
                    Ok(())
                }
                Err(_) => Err("its pidfd could not be duplicated"),
            },
        }
    }

    pub fn attach_capture(&mut self, end: Option<ChildEnd>) {
        self.capture = end;
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.policy.limits.timeout
    }

    pub fn namespaces(&self) -> bool {
        self.ns.is_some()
    }

    /// Make the run's cgroups (once): the pids cgroup as root, the memory cgroup
    /// where one can be had. A memory limit that is only partial here adds its
    /// warning (to `warnings` and the plan's, for the report).
    pub fn make_cgroups(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.cgroups_made, true) {
            return Ok(());
        }
        let root = nix::unistd::geteuid().is_root();
        let (processes, memory) = limits::make(&self.limits, root);
        // Kept before the error below, so that release_cgroups removes it.
        self.memory = memory;
        if root {
            self.processes = processes.map_err(|m| Error::Unenforceable { missing: m })?;
        }
        crate::timing::mark("cgroups");
        if let Some(w) = self.memory.warning() {
            self.plan.warnings.push(w.clone());
            self.warnings.push(w);
        }
        Ok(())
    }

    /// Mode "proxy": the proxy on `tcp` (and the resolver on `udp`), its
    /// denials timed from `started` (the run's start, as the monitor's); None
    /// in other modes.
    fn start_proxy(
        &self,
        tcp: std::net::TcpListener,
        udp: Option<std::net::UdpSocket>,
        monitor: &mut Monitor,
    ) -> std::io::Result<Option<crate::proxy::Proxy>> {
        match &self.policy.net {
            crate::policy::Network::Proxy(rules) => crate::proxy::Proxy::start(
                tcp,
                udp,
                rules.clone(),
                monitor.started(),
                monitor.domain_asker(),
            )
            .map(Some),
            _ => Ok(None),
        }
    }

    /// The run's cgroup where it can be frozen (cgroup v2): the approval
    /// gates' terminal question stops the payload's output while it is asked.
    pub fn freezer(&self) -> Option<std::path::PathBuf> {
        let dir = match (&self.processes, &self.memory) {
            (Processes::Cgroup { dir, .. }, _) | (_, Memory::Cgroup { dir, .. }) => dir,
            _ => return None,
        };
        let f = dir.join("cgroup.freeze");
        f.exists().then_some(f)
    }

    /// The cgroup.procs files of the run's cgroups.
    fn cgroup_procs(&self) -> Vec<&CString> {
        let mut v = Vec::new();
        if let Processes::Cgroup { procs, .. } = &self.processes {
            v.push(procs);
        }
        if let Memory::Cgroup { procs, .. } = &self.memory {
            // On cgroup v2 one cgroup holds both limits (limits::make).
            if !v.contains(&procs) {
                v.push(procs);
            }
        }
        v
    }

    /// Tell the child to go on (see [`await_go`]): the file-system rules are
    /// in, and here are the run's cgroups to join, as descriptors opened here
    /// (the child may no longer see the host's cgroup files; the kernel checks
    /// the opener's credentials) with their paths for its messages.
    fn send_go(&self, sync: &OwnedFd) -> Result<()> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        use std::os::unix::ffi::OsStrExt;
        let mut text = vec![GO];
        let mut files = Vec::new();
        for procs in self.cgroup_procs() {
            let path = std::path::Path::new(std::ffi::OsStr::from_bytes(procs.to_bytes()));
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| launch("opening the run's cgroup", e))?;
            files.push(OwnedFd::from(f));
            text.extend_from_slice(procs.as_bytes_with_nul());
        }
        if text.len() > GO_MAX {
            return Err(Error::Unenforceable {
                missing: "the run's cgroup paths are too long to hand to the child".into(),
            });
        }
        let fds: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
        let cmsg = [ControlMessage::ScmRights(&fds)];
        // A child that failed meanwhile cannot take it: its report follows.
        let _ = sendmsg::<()>(
            sync.as_raw_fd(),
            &[std::io::IoSlice::new(&text)],
            if fds.is_empty() { &[] } else { &cmsg },
            MsgFlags::MSG_NOSIGNAL,
            None,
        );
        Ok(())
    }

    /// Remove the run's cgroups: after the run, or when it does not start.
    pub fn release_cgroups(&self) {
        limits::cleanup(&self.processes);
        limits::cleanup_memory(&self.memory);
    }
}

/// The largest secret file read (execve's limit for one environment string).
const SECRET_MAX: u64 = 128 * 1024;

/// A secret's value; None when it is optional and its file or variable does
/// not exist (any other failure, such as a file it may not read, refuses).
/// A file must be a regular file of at most 128 KiB (a FIFO would block the
/// launcher, a device would fill its memory), and neither it nor what it
/// resolves to may lie in a root the run can write: a payload would replace it
/// with a link to a file it may not read, and the next run would hand it over.
fn read_secret(name: &str, s: &Secret, writable: &[&Path]) -> Result<Option<String>> {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let secret = |source| Error::Secret {
        name: name.to_string(),
        source,
    };
    let refuse = |f: &str, why: String| secret(std::io::Error::other(format!("{f}: {why}")));
    match &s.source {
        SecretSource::File(f) => {
            let resolved = match secret_path(Path::new(f), writable) {
                Ok(Ok(r)) => r,
                Ok(Err(w)) => {
                    return Err(refuse(
                        f,
                        format!(
                            "reached through {}, which the run can write: a secret there is the payload's to replace",
                            w.display()
                        ),
                    ));
                }
                Err(e) if s.optional && e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(None);
                }
                Err(e) => return Err(secret(std::io::Error::new(e.kind(), format!("{f}: {e}")))),
            };
            // Not blocking on a FIFO; the type checked on what was opened; no
            // link followed (every directory on the way was checked above and
            // lies outside what any run may write).
            let c = std::ffi::CString::new(resolved.as_os_str().as_encoded_bytes())
                .map_err(|e| secret(std::io::Error::other(format!("{f}: {e}"))))?;
            let root = std::fs::File::open("/")
                .map_err(|e| secret(std::io::Error::new(e.kind(), format!("{f}: {e}"))))?;
            let mut file = std::fs::File::from(
                sys::openat2(
                    root.as_fd(),
                    &c,
                    libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
                    libc::RESOLVE_NO_SYMLINKS,
                )
                .map_err(|e| secret(std::io::Error::new(e.kind(), format!("{f}: {e}"))))?,
            );
            let meta = file
                .metadata()
                .map_err(|e| secret(std::io::Error::new(e.kind(), format!("{f}: {e}"))))?;
            let kind = meta.file_type();
            if !kind.is_file() || kind.is_fifo() {
                return Err(refuse(f, "not a regular file".into()));
            }
            if meta.len() > SECRET_MAX {
                return Err(refuse(f, format!("larger than {} KiB", SECRET_MAX / 1024)));
            }
            let mut v = String::new();
            (&mut file)
                .take(SECRET_MAX + 1)
                .read_to_string(&mut v)
                .map_err(|e| secret(std::io::Error::new(e.kind(), format!("{f}: {e}"))))?;
            if v.len() as u64 > SECRET_MAX {
                return Err(refuse(f, format!("larger than {} KiB", SECRET_MAX / 1024)));
            }
            Ok(Some(v.strip_suffix('\n').map(str::to_string).unwrap_or(v)))
        }
        SecretSource::From(var) => match std::env::var(var) {
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) if s.optional => Ok(None),
            Err(_) => Err(secret(std::io::Error::other(format!(
                "host variable {var} is not set"
            )))),
        },
    }
}

/// Resolve a secret file's path one component at a time, as the kernel
/// would: Ok(Ok(resolved)), or Ok(Err(root)) when the resolution passes
/// through a writable root of the run (by path or, for a bind mount's alias,
/// by device and inode): a link the payload may re-point, or a directory it
/// may swap. Err: a component does not exist (NotFound) or cannot be read.
fn secret_path(
    path: &Path,
    writable: &[&Path],
) -> std::io::Result<std::result::Result<std::path::PathBuf, std::path::PathBuf>> {
    use std::os::unix::fs::MetadataExt;
    let roots: Vec<(u64, u64, &Path)> = writable
        .iter()
        .filter_map(|w| std::fs::metadata(w).ok().map(|m| (m.dev(), m.ino(), *w)))
        .collect();
    let abs = std::path::absolute(path)?;
    let stop = crate::policy::walk(&abs, &mut |next, meta| {
        if let Some(w) = writable.iter().find(|w| next.starts_with(w)) {
            return Some(Ok(w.to_path_buf()));
        }
        match meta {
            Err(e) => Some(Err(std::io::Error::new(e.kind(), e.to_string()))),
            Ok(m) => roots
                .iter()
                .find(|(d, i, _)| (m.dev(), m.ino()) == (*d, *i))
                .map(|(_, _, w)| Ok(w.to_path_buf())),
        }
    });
    match stop {
        Ok(resolved) => Ok(Ok(resolved)),
        Err(Ok(root)) => Ok(Err(root)),
        Err(Err(e)) => Err(e),
    }
}

/// Descriptors the caller passed in without close-on-exec: they reach the
/// payload. Everything cordon opens itself is close-on-exec.
pub fn inherited_fds() -> Vec<RawFd> {
    let mut v: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2 && sys::fd_flags(fd) == Some(false))
        .collect();
    v.sort_unstable();
    v
}

/// The launcher's view of a started sandbox.
#[derive(Debug)]
pub struct Spawned {
    /// The direct child: init (namespaces) or the payload.
    pub pid: Pid,
    pub ns: bool,
    /// init writes the payload's raw wait status here before exiting.
    pub status: Option<OwnedFd>,
    /// Mode "proxy": the proxy, serving before the payload could run.
    pub proxy: Option<crate::proxy::Proxy>,
    /// The launcher's end of its channel to init, open while the launcher
    /// lives: init, which cannot ask for its parent's pid across the PID
    /// namespace, sees it hang up if the launcher died before its death
    /// signal was set.
    pub launcher_end: Option<OwnedFd>,
}

/// Why a spawn failed.
#[derive(Debug)]
pub enum SpawnError {
    /// Namespaces could not be created here; mode "auto" retries without them.
    NsUnavailable(String),
    Failed(Error),
}

impl From<Error> for SpawnError {
    fn from(e: Error) -> Self {
        SpawnError::Failed(e)
    }
}

/// Blocked in the launcher before the fork, so no signal is lost between fork
/// and the supervision loop; the payload restores `old` before execve.
#[derive(Debug)]
pub struct Signals {
    pub fd: SignalFd,
    pub old: SigSet,
}

impl Signals {
    pub fn block() -> Result<Signals> {
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(s);
        }
        set.add(Signal::SIGCHLD);
        let mut old = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .map_err(|e| launch("blocking signals", e))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| launch("creating the signalfd", e))?;
        Ok(Signals { fd, old })
    }
}

fn launch(step: &'static str, e: impl Into<std::io::Error>) -> Error {
    Error::Launch {
        step,
        source: e.into(),
    }
}

/// Kill and reap a child that must not go on (a step of the launcher failed
/// before its execve).
fn abandon(pid: Pid) {
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

/// Start the sandbox. Returns once the payload has called execve (or failed to).
///
/// `held` is launcher work that must be done before the payload runs but that
/// the child's own preparation does not need (the guard's launch snapshots).
/// With namespaces, where the payload waits for the launcher's word before its
/// execve (it hands over its seccomp listener and waits for the
/// acknowledgement), `held` is done after the clone, while init builds the
/// namespaces, instead of before it. Without them it is done before the fork:
/// the payload's own steps are short (~0.4 ms), so it would wait for `held`
/// anyway, and after a fork every page the launcher writes is a copy-on-write
/// fault (measured: 0.13 ms per launch less this way).
///
/// With namespaces the run's cgroups are made after the clone too, while init
/// builds its network namespace; their files come with the byte init waits
/// for, and init moves itself in (the payload is its child). A process moves
/// itself: moving another one takes the cgroup core's global lock, whose
/// writer waits for an RCU grace period (milliseconds).
pub fn spawn(
    prep: &mut Prepared,
    signals: &Signals,
    monitor: &mut Monitor,
    held: &mut dyn FnMut() -> Result<()>,
) -> std::result::Result<Spawned, SpawnError> {
    let gated = prep.capture.is_some() && prep.ns.is_some();
    if !gated {
        held()?;
    }
    let (err_r, err_w) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| launch("creating a pipe", e))?;
    monitor.expect_exec(
        &prep.program,
        prep.command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    );
    let launcher = nix::unistd::getpid();
    let spawned = if let Some(session) = prep.session.take() {
        // A session's namespaces. The rules and the cgroups are made here, in
        // the host's user namespace; then this launcher joins the session's
        // user namespace (it owns it) and its PID namespace for its children,
        // and clones the command's init into a PID namespace of its own
        // beneath the session's: everything the command starts ends with it,
        // as in `run` (init kills what is left), while the mount view, /tmp,
        // IPC and loopback are the session's. The launcher keeps the host's
        // /proc and file system.
        if let Err(e) = prep.add_rules_and_cgroups() {
            return Err(SpawnError::Failed(e));
        }
        monitor.start_audit();
        nix::sched::setns(
            session.as_fd(),
            nix::sched::CloneFlags::CLONE_NEWUSER | nix::sched::CloneFlags::CLONE_NEWPID,
        )
        .map_err(|e| SpawnError::Failed(launch("joining the session's namespaces", e)))?;
        let (sync_w, sync_r) = go_channel()?;
        let (status_r, status_w) =
            pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| launch("creating a pipe", e))?;
        // A new PID namespace must be cloned from inside the one it nests
        // in: a short-lived helper in the session's namespace clones init as
        // our child (CLONE_PARENT) and leaves.
        match sys::fork().map_err(|e| launch("fork", e))? {
            None => match sys::clone_fork(libc::CLONE_NEWPID | libc::CLONE_PARENT) {
                Ok(None) => {
                    drop((err_r, sync_w, status_r));
                    init(prep, signals, err_w, sync_r, status_w, None, Some(session))
                }
                Ok(Some(_)) => sys::exit_now(0),
                Err(e) => fail(&err_w, exit::LAUNCHER, false, &format!("clone: {e}")),
            },
            Some(helper) => {
                drop((sync_r, status_w, session));
                let helped = waitpid(Pid::from_raw(helper), None);
                // Our one child now is the command's init (the helper has
                // gone); none means the helper failed, and said why on err_w,
                // or was killed (the command was, before it started).
                let Some(pid) = only_child() else {
                    drop((sync_w, err_w));
                    if let Ok(WaitStatus::Signaled(_, sig, _)) = helped {
                        return Err(SpawnError::Failed(Error::Child {
                            message: format!("the command was killed ({sig}) before it started"),
                            code: 128 + sig as u8,
                        }));
                    }
                    let msg = wait_exec(err_r, monitor, &prep.policy, &prep.plan);
                    let text =
                        String::from_utf8_lossy(msg.get(2..).unwrap_or_default()).into_owned();
                    return Err(SpawnError::Failed(Error::Child {
                        message: text,
                        code: exit::LAUNCHER,
                    }));
                };
                release(prep, &sync_w, pid, gated, held)?;
                Spawned {
                    pid,
                    ns: true,
                    status: Some(status_r),
                    proxy: None,
                    launcher_end: Some(sync_w),
                }
            }
        }
    } else if prep.ns.is_some() {
        let (sync_w, sync_r) = go_channel()?;
        let (status_r, status_w) =
            pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| launch("creating a pipe", e))?;
        let (proxy_ours, proxy_init) = if prep.ns.as_ref().is_some_and(|n| n.proxy) {
            let (ours, theirs) =
                crate::proxy::channel().map_err(|e| launch("creating the proxy's channel", e))?;
            (Some(ours), Some(theirs))
        } else {
            (None, None)
        };
        match sys::clone_fork(namespaces::CLONE_FLAGS) {
            Err(e) => return Err(SpawnError::NsUnavailable(format!("clone: {e}"))),
            Ok(None) => {
                drop((err_r, sync_w, status_r, proxy_ours));
                init(prep, signals, err_w, sync_r, status_w, proxy_init, None)
            }
            Ok(Some(pid)) => {
                drop((sync_r, status_w, proxy_init));
                let pid = Pid::from_raw(pid);
                let maps = namespaces::write_maps(
                    pid.as_raw(),
                    nix::unistd::geteuid().as_raw(),
                    nix::unistd::getegid().as_raw(),
                );
                if let Err(e) = maps {
                    abandon(pid);
                    return Err(SpawnError::NsUnavailable(format!(
                        "writing the uid/gid maps: {e}"
                    )));
                }
                // Init waits for its uid map, then builds its mount view; the
                // rules and the cgroups are made meanwhile, and it joins those
                // just before it forks the payload. Should it have failed, the
                // sends fail and its report follows below.
                let _ = nix::unistd::write(&sync_w, &[MAPPED]);
                if let Err(e) = prep.add_rules_and_cgroups() {
                    abandon(pid);
                    return Err(SpawnError::Failed(e));
                }
                monitor.start_audit();
                // Mode "proxy": init made the sockets in its network namespace
                // (before it waited for the map); served before the payload
                // exists, or the run ends here.
                let proxy = match proxy_ours.as_ref().map(|chan| {
                    crate::proxy::take_over(chan)
                        .and_then(|(tcp, udp)| prep.start_proxy(tcp, Some(udp), monitor))
                }) {
                    Some(Err(e)) => {
                        abandon(pid);
                        return Err(SpawnError::Failed(launch("starting the proxy", e)));
                    }
                    Some(Ok(p)) => p,
                    None => None,
                };
                release(prep, &sync_w, pid, gated, held)?;
                Spawned {
                    pid,
                    ns: true,
                    status: Some(status_r),
                    proxy,
                    launcher_end: Some(sync_w),
                }
            }
        }
    } else {
        // Mode "proxy": the proxy on the host's loopback, serving before the
        // payload exists.
        let proxy = match prep.host_proxy.take() {
            Some(l) => prep
                .start_proxy(l, None, monitor)
                .map_err(|e| SpawnError::Failed(launch("starting the proxy", e)))?,
            None => None,
        };
        // The payload runs as soon as it is forked: audit records must be flowing by then.
        monitor.start_audit();
        let (sync_w, sync_r) = go_channel()?;
        match sys::fork().map_err(|e| launch("fork", e))? {
            None => {
                drop((err_r, sync_w));
                payload(prep, signals, err_w, Some((launcher, sync_r)))
            }
            Some(pid) => {
                drop(sync_r);
                let pid = Pid::from_raw(pid);
                // The cgroups are made while the child starts.
                if let Err(e) = prep.make_cgroups() {
                    abandon(pid);
                    return Err(SpawnError::Failed(e));
                }
                release(prep, &sync_w, pid, gated, held)?;
                drop(sync_w);
                Spawned {
                    pid,
                    ns: false,
                    status: None,
                    proxy,
                    launcher_end: None,
                }
            }
        }
    };
    drop(err_w);
    // The launcher keeps no copy of the payload's end of the capture channel.
    prep.capture = None;
    // The child has ~0.3 ms of its own steps before its execve, which the capture
    // supervisor must answer: time in which the launcher has nothing else to do.
    crate::timing::mark("fork");
    monitor.confirm_audit();
    crate::timing::mark("child-setup");
    // EOF: the payload's execve succeeded (the pipe is close-on-exec). Anything
    // else is the child's report of the step that failed. Meanwhile the payload's
    // own execve may wait on the capture supervisor, so serve it.
    let msg = wait_exec(err_r, monitor, &prep.policy, &prep.plan);
    // The launcher could not take the listener and killed the payload (which
    // did not wait for an acknowledgement: see install_notify).
    if let Some(why) = monitor.take_listener_failure() {
        let _ = waitpid(spawned.pid, None);
        return Err(SpawnError::Failed(Error::Unenforceable { missing: why }));
    }
    if msg.is_empty() {
        return Ok(spawned);
    }
    let _ = waitpid(spawned.pid, None);
    let code = msg[0];
    let unavailable = msg.get(1) == Some(&1);
    let text = String::from_utf8_lossy(msg.get(2..).unwrap_or_default()).into_owned();
    if unavailable {
        return Err(SpawnError::NsUnavailable(text));
    }
    Err(SpawnError::Failed(Error::Child {
        message: text,
        code,
    }))
}

/// Send the child its go (see [`Prepared::send_go`]), then, when capture gates
/// its execve, the work of the held window; the child is abandoned if either
/// fails.
fn release(
    prep: &mut Prepared,
    sync_w: &OwnedFd,
    pid: Pid,
    gated: bool,
    held: &mut dyn FnMut() -> Result<()>,
) -> std::result::Result<(), SpawnError> {
    let done = prep
        .send_go(sync_w)
        .and_then(|()| if gated { held() } else { Ok(()) });
    done.map_err(|e| {
        abandon(pid);
        SpawnError::Failed(e)
    })
}

/// This process's only child (its children listed by the kernel).
fn only_child() -> Option<Pid> {
    let me = nix::unistd::gettid();
    let list = std::fs::read_to_string(format!("/proc/self/task/{me}/children")).ok()?;
    let mut it = list.split_whitespace();
    let pid = it.next()?.parse().ok()?;
    it.next().is_none().then(|| Pid::from_raw(pid))
}

/// Read the child's status pipe to EOF while serving capture.
fn wait_exec(err_r: OwnedFd, monitor: &mut Monitor, policy: &Policy, plan: &Plan) -> Vec<u8> {
    let mut msg = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let (err_ready, ready) = {
            let mons = monitor.fds();
            let mut fds: Vec<PollFd> = vec![PollFd::new(err_r.as_fd(), PollFlags::POLLIN)];
            fds.extend(mons.iter().map(|f| PollFd::new(f.0, f.1)));
            // A held exec (approval gates) stops without a word on any of these:
            // look again soon.
            let wait = match monitor.wake_at() {
                _ if monitor.holding() => PollTimeout::from(5u8),
                Some(at) => PollTimeout::try_from(
                    at.saturating_duration_since(std::time::Instant::now())
                        .as_millis()
                        .min(60_000) as i32
                        + 1,
                )
                .unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            };
            if poll(&mut fds, wait).is_err() {
                continue;
            }
            let r: Vec<PollFlags> = fds
                .iter()
                .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                .collect();
            (r[0], r[1..].to_vec())
        };
        monitor.service(&ready, policy, plan);
        monitor.poll_held();
        if !err_ready.is_empty() {
            match nix::unistd::read(&err_r, &mut buf) {
                Ok(0) => return msg,
                Ok(n) => msg.extend_from_slice(&buf[..n]),
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return msg,
            }
        }
    }
}

/// The launcher's word to init that its uid map is written.
const MAPPED: u8 = b'1';
/// The launcher's word to the child that the rules are in; the cgroups follow.
const GO: u8 = b'2';
/// The go message's bound: its text (the cgroup paths) and descriptors.
const GO_MAX: usize = 4096;
const GO_FDS: usize = 4;

/// The channel of the launcher's words to the child (launcher's end first).
fn go_channel() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| launch("creating the launcher's channel to the child", e))
}

/// In the child: wait for the launcher's go (see [`Prepared::send_go`]) and
/// join the cgroups it names. EOF means the launcher is gone.
fn await_go(sync: &OwnedFd) -> std::result::Result<(), String> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut text = [0u8; GO_MAX];
    let mut space = nix::cmsg_space!([RawFd; GO_FDS]);
    let (n, fds) = {
        let mut iov = [std::io::IoSliceMut::new(&mut text)];
        let msg = match recvmsg::<()>(
            sync.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) if m.bytes > 0 => m,
            _ => sys::exit_now(exit::LAUNCHER as i32),
        };
        let mut fds = Vec::new();
        for c in msg
            .cmsgs()
            .map_err(|e| format!("reading the launcher's word: {e}"))?
        {
            if let ControlMessageOwned::ScmRights(got) = c {
                fds.extend(got.into_iter().map(sys::own_fd));
            }
        }
        (msg.bytes, fds)
    };
    if text[0] != GO {
        sys::exit_now(exit::LAUNCHER as i32);
    }
    let mut paths = text[1..n].split_inclusive(|&b| b == 0);
    for fd in fds {
        let path = paths
            .next()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        limits::join_fd(fd, path.trim_end_matches('\0'))?;
    }
    Ok(())
}

/// Report a failed step to the launcher and leave.
fn fail(err_w: &OwnedFd, code: u8, unavailable: bool, msg: &str) -> ! {
    let mut buf = vec![code, unavailable as u8];
    buf.extend_from_slice(msg.as_bytes());
    buf.truncate(4000); // one atomic pipe write
    let _ = nix::unistd::write(err_w, &buf);
    sys::exit_now(code as i32)
}

/// The payload's stack while it shares init's memory: its steps (capabilities,
/// Landlock, seccomp, error reports) need far less; untouched pages cost nothing.
const PAYLOAD_STACK: usize = 1 << 20;

/// PID 1 of the sandbox's namespaces.
fn init(
    prep: &mut Prepared,
    signals: &Signals,
    err_w: OwnedFd,
    sync_r: OwnedFd,
    status_w: OwnedFd,
    proxy: Option<OwnedFd>,
    session: Option<OwnedFd>,
) -> ! {
    // If the launcher dies, so does init, and with it the whole PID namespace.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    // Unless it died before that line: then its end of our channel is closed
    // (it keeps it open for the whole run), and messages it queued before
    // dying must not start a payload nobody supervises.
    let mut hup = [PollFd::new(sync_r.as_fd(), PollFlags::empty())];
    if poll(&mut hup, PollTimeout::ZERO).is_ok_and(|n| n > 0)
        && hup[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP))
    {
        sys::exit_now(exit::LAUNCHER as i32);
    }
    if let Some(s) = session {
        // A session's command: the session's mount view and (where the mode
        // makes one) network namespace; its own PID namespace (ours) and SysV
        // IPC namespace, so that neither its processes nor its segments
        // outlive it.
        let mut join = nix::sched::CloneFlags::CLONE_NEWNS;
        if prep.ns.as_ref().is_some_and(|n| n.net) {
            join |= nix::sched::CloneFlags::CLONE_NEWNET;
        }
        let joined = nix::sched::setns(s.as_fd(), join)
            .and_then(|()| nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWIPC));
        if let Err(e) = joined {
            fail(
                &err_w,
                exit::LAUNCHER,
                false,
                &format!("joining the session's mount view: {e}"),
            );
        }
        drop(s);
    } else {
        build_namespaces(prep, &err_w, &sync_r, proxy);
    }
    // The rules are in and the cgroups made: joined before the payload is
    // forked (it inherits them).
    if let Err(m) = await_go(&sync_r) {
        fail(&err_w, exit::LAUNCHER, false, &m);
    }
    drop(sync_r);
    run_init(prep, signals, err_w, status_w)
}

/// init's own namespaces: the network namespace, the proxy's sockets, then
/// (once the launcher wrote the uid map) the mount view.
fn build_namespaces(
    prep: &mut Prepared,
    err_w: &OwnedFd,
    sync_r: &OwnedFd,
    proxy: Option<OwnedFd>,
) {
    // The network namespace is made here rather than by the launcher's clone: it is
    // the costliest namespace (~0.5 ms), and here it is built while the launcher
    // writes our uid map and finishes its own preparation, instead of before.
    if prep.ns.as_ref().is_some_and(|n| n.net) {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            fail(
                err_w,
                exit::LAUNCHER,
                true,
                &format!("creating the network namespace: {e}"),
            );
        }
    }
    // Mode "proxy": the proxy's and the resolver's sockets, made in the new
    // network namespace (loopback up first) and handed to the launcher, which
    // serves them from the host's side.
    if let Some(chan) = proxy {
        if let Err(e) = crate::proxy::hand_over(&chan) {
            fail(
                err_w,
                exit::LAUNCHER,
                false,
                &format!("making the proxy's sockets in the network namespace: {e}"),
            );
        }
    }
    // Wait for the uid/gid maps; EOF means the launcher is gone.
    let mut mapped = [0u8; 1];
    if !matches!(nix::unistd::read(sync_r, &mut mapped), Ok(1) if mapped[0] == MAPPED) {
        sys::exit_now(exit::LAUNCHER as i32);
    }
    if let Err(e) = namespaces::setup(prep.ns.as_ref().expect("init runs with namespaces")) {
        fail(
            err_w,
            exit::LAUNCHER,
            e.unavailable,
            &format!("setting up namespaces: {}", e.message),
        );
    }
}

/// init from its namespaces on: fork the payload, forward signals, reap, and
/// report the payload's status once nothing else of the run is left.
fn run_init(prep: &mut Prepared, signals: &Signals, err_w: OwnedFd, status_w: OwnedFd) -> ! {
    // init also hears SIGUSR1: the launcher's "terminate the whole tree" (timeout).
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set.add(Signal::SIGUSR1);
    if sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
        fail(&err_w, exit::LAUNCHER, false, "blocking signals in init");
    }
    let sfd = match SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => fail(
            &err_w,
            exit::LAUNCHER,
            false,
            &format!("creating init's signalfd: {e}"),
        ),
    };
    // The payload shares init's memory until its execve (init waits meanwhile): a
    // fork would copy init's address space only for the execve to discard it.
    let (err_raw, status_raw) = (err_w.as_raw_fd(), status_w.as_raw_fd());
    let mut err_slot = Some(err_w);
    let forked = sys::vfork_into(PAYLOAD_STACK, &mut || {
        // Its own descriptor table: the status pipe is init's alone.
        let _ = nix::unistd::close(status_raw);
        match err_slot.take() {
            Some(err_w) => payload(prep, signals, err_w, None),
            None => sys::exit_now(exit::LAUNCHER as i32),
        }
    });
    let child = match forked {
        Ok(pid) => Pid::from_raw(pid),
        Err(e) => match err_slot.take() {
            Some(err_w) => fail(&err_w, exit::LAUNCHER, false, &format!("clone: {e}")),
            None => sys::exit_now(exit::LAUNCHER as i32),
        },
    };
    // The child took the OwnedFd (its memory is ours); our own table still has the fd.
    let _ = nix::unistd::close(err_raw);
    loop {
        let Ok(Some(info)) = sfd.read_signal() else {
            continue;
        };
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        match sig {
            Signal::SIGCHLD => loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(st) if st.pid() == Some(child) => {
                        // The run ends with the payload: what it left behind is killed
                        // and reaped here, before the status goes out, so that the
                        // launcher may check the workspace (the guard) while our own
                        // exit tears the namespaces down. The launcher reaps init
                        // (supervise), so nothing of the run outlives cordon or counts
                        // against the uid's RLIMIT_NPROC afterwards.
                        let mut msg = [0u8; STATUS_LEN];
                        msg[..4].copy_from_slice(&raw_status(st).to_ne_bytes());
                        msg[4] = end_namespace() as u8;
                        let _ = nix::unistd::write(&status_w, &msg);
                        sys::exit_now(0);
                    }
                    Ok(_) => {}
                }
            },
            // Timeout: SIGTERM to every process of the namespace but init.
            Signal::SIGUSR1 => {
                let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
            }
            // A terminal's signal reached the whole foreground group, payload included;
            // only signals sent by a process (the launcher) are forwarded.
            _ if info.ssi_code == libc::SI_KERNEL => {}
            _ => {
                let _ = kill(child, sig);
            }
        }
    }
}

/// The namespaces of a session, built once: user, mount (the policy's view,
/// with its private `/tmp`, `/dev` and `/dev/shm`), PID, IPC and network
/// (loopback up), held by a session init that reaps what the commands leave
/// behind and ends with the server (its death signal) or [`SessionNs::end`].
#[derive(Debug)]
pub struct SessionNs {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    /// The mount view it holds; a command whose own differs runs apart.
    view: namespaces::Prepared,
    /// When it was made (coarse realtime): sockets born since are its own.
    pub started: (i64, u32),
    /// The ids of its mounts once built: a host that replaces a masked or
    /// read-only path (a rename over it, a delete and re-create) detaches
    /// that mount in every namespace, and the view no longer holds.
    mounts: Vec<u64>,
    /// The server's end of init's channel: closed, init ends the namespaces.
    _alive: OwnedFd,
}

/// The mount ids of process `pid`'s mount namespace.
fn mount_ids(pid: Pid) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    let mut ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    ids.sort_unstable();
    Some(ids)
}

impl SessionNs {
    /// Whether every mount of the view, as built, is still there.
    pub fn view_holds(&self) -> bool {
        match mount_ids(self.pid) {
            Some(now) => self.mounts.iter().all(|m| now.binary_search(m).is_ok()),
            None => false,
        }
    }

    /// End every process of the session's namespaces, and them.
    pub fn end(self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

/// Build a session's namespaces from `prep` (a launch prepared with them).
pub fn start_session(mut prep: Prepared) -> Result<SessionNs> {
    let Some(view) = prep.ns.take() else {
        return Err(Error::Unsupported(
            "a session without namespaces shares nothing between its commands".into(),
        ));
    };
    let started = sys::realtime_coarse();
    let (err_r, err_w) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| launch("creating a pipe", e))?;
    let (sync_w, sync_r) = go_channel()?;
    match sys::clone_fork(namespaces::CLONE_FLAGS).map_err(|e| launch("clone", e))? {
        None => {
            drop((err_r, sync_w));
            session_init(&view, err_w, sync_r)
        }
        Some(pid) => {
            drop((sync_r, err_w));
            let pid = Pid::from_raw(pid);
            let ready = namespaces::write_maps(
                pid.as_raw(),
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
            .map_err(|e| launch("writing the session's uid/gid maps", e))
            .and_then(|()| {
                nix::unistd::write(&sync_w, &[MAPPED])
                    .map_err(|e| launch("telling the session's init", e))
            });
            if let Err(e) = ready {
                abandon(pid);
                return Err(e);
            }
            let mut msg = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::fs::File::from(err_r), &mut msg);
            if !msg.is_empty() {
                let _ = waitpid(pid, None);
                return Err(Error::Child {
                    message: String::from_utf8_lossy(msg.get(2..).unwrap_or_default()).into_owned(),
                    code: exit::LAUNCHER,
                });
            }
            let pidfd = sys::pidfd_open(pid.as_raw(), 0).map_err(|e| launch("pidfd_open", e))?;
            let Some(mounts) = mount_ids(pid) else {
                abandon(pid);
                return Err(launch(
                    "reading the session's mounts",
                    std::io::Error::last_os_error(),
                ));
            };
            Ok(SessionNs {
                mounts,
                pid,
                pidfd,
                view,
                started,
                _alive: sync_w,
            })
        }
    }
}

/// PID 1 of a session's namespaces: builds them, then reaps until the
/// server's end of `sync_r` closes.
fn session_init(view: &namespaces::Prepared, err_w: OwnedFd, sync_r: OwnedFd) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if view.net {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            fail(
                &err_w,
                exit::LAUNCHER,
                true,
                &format!("creating the network namespace: {e}"),
            );
        }
        // The session's commands reach each other on loopback (and nothing else).
        if let Err(e) = sys::loopback_up() {
            fail(
                &err_w,
                exit::LAUNCHER,
                false,
                &format!("bringing loopback up: {e}"),
            );
        }
    }
    let mut mapped = [0u8; 1];
    if !matches!(nix::unistd::read(&sync_r, &mut mapped), Ok(1) if mapped[0] == MAPPED) {
        sys::exit_now(exit::LAUNCHER as i32);
    }
    if let Err(e) = namespaces::setup(view) {
        fail(
            &err_w,
            exit::LAUNCHER,
            e.unavailable,
            &format!("setting up namespaces: {}", e.message),
        );
    }
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .unwrap_or_else(|e| fail(&err_w, exit::LAUNCHER, false, &format!("signalfd: {e}")));
    drop(err_w);
    loop {
        let mut fds = [
            PollFd::new(sync_r.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        let _ = poll(&mut fds, PollTimeout::NONE);
        let gone = fds[0].revents().is_some_and(|r| !r.is_empty());
        while sfd.read_signal().is_ok_and(|s| s.is_some()) {}
        while matches!(
            waitpid(None, Some(WaitPidFlag::WNOHANG)),
            Ok(st) if st != WaitStatus::StillAlive
        ) {}
        if gone {
            end_namespace();
            sys::exit_now(0);
        }
    }
}

/// init's report to the launcher: the payload's wait status (4 bytes, as the
/// kernel encodes it), then 1 when no other process is left in the namespace.
pub const STATUS_LEN: usize = 5;

/// In init, after the payload's exit: SIGKILL to every other process of the
/// namespace, reaping until there is none. True when none is left: init's
/// children are all gone, and every process of a PID namespace descends from
/// its init (orphans are reparented to it). A fork racing the kill cannot slip
/// through: the kernel fails a fork whose parent has a signal pending once the
/// child would be on the task list, which kill(-1) walks.
fn end_namespace() -> bool {
    loop {
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
        match waitpid(None, None) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECHILD) => return true,
            Err(_) => return false,
        }
    }
}

/// The wait status as the kernel encodes it, to pass through a pipe.
pub fn raw_status(st: WaitStatus) -> i32 {
    match st {
        WaitStatus::Exited(_, code) => (code & 0xff) << 8,
        WaitStatus::Signaled(_, sig, core) => sig as i32 | if core { 0x80 } else { 0 },
        _ => 0,
    }
}

/// The payload: limits, capabilities, no_new_privs, Landlock, seccomp, execve.
/// Without namespaces, `launcher` is the launcher's pid and the channel its
/// word comes on (see [`await_go`]).
fn payload(
    prep: &mut Prepared,
    signals: &Signals,
    err_w: OwnedFd,
    launcher: Option<(Pid, OwnedFd)>,
) -> ! {
    let die = |msg: String| -> ! { fail(&err_w, exit::LAUNCHER, false, &msg) };
    // The payload starts with the caller's signal state, not the launcher's.
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&signals.old), None);
    let _ = sys::default_signal(libc::SIGPIPE);
    if let Some((parent, sync)) = launcher {
        // The launcher may have died before prctl: then nobody would kill us.
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        if getppid() != parent {
            sys::exit_now(exit::LAUNCHER as i32);
        }
        await_go(&sync).unwrap_or_else(|m| die(m));
    }
    // Limits first: they need no privilege and cover everything below.
    limits::apply(&prep.rlimits).unwrap_or_else(|m| die(m));
    if let Err(e) = nix::unistd::chdir(prep.cwd.as_c_str()) {
        die(format!("changing to {}: {e}", prep.cwd.to_string_lossy()));
    }
    // Capabilities before no_new_privs and seccomp; dropping the bounding set needs CAP_SETPCAP.
    crate::caps::drop_all_except(&prep.policy.caps_keep).unwrap_or_else(|m| die(m));
    // no_new_privs: Landlock and seccomp need it unprivileged, and setuid binaries gain nothing.
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        die(format!("setting no_new_privs: {e}"));
    }
    // Landlock: the ruleset and its path fds were made in the launcher.
    if let Some(ll) = prep.landlock.take() {
        if let Err(m) = ll.restrict() {
            die(m);
        }
    }
    // Only the caller's own descriptors pass through execve.
    if sys::cloexec_range(3, u32::MAX).is_err() {
        die("marking descriptors close-on-exec".into());
    }
    for &fd in &prep.inherited {
        let _ = sys::clear_cloexec(fd);
    }
    // seccomp last: it may refuse calls made above; execve stays allowed. With
    // capture, refusals go to the launcher, which answers with the same errno.
    match (prep.bpf_notify.as_ref(), prep.capture.take()) {
        (Some(progs), Some(chan)) => install_notify(
            progs,
            &|| errno_filter(prep),
            &chan.0,
            prep.mediation_required,
            prep.exec_observed,
        )
        .unwrap_or_else(|m| die(m)),
        _ => errno_filter(prep)
            .and_then(|f| install(&f))
            .unwrap_or_else(|m| die(m)),
    }
    let e = nix::unistd::execve(&prep.program_c, &prep.argv, &prep.envp).unwrap_err();
    let code = exec::exec_failure_code(e as i32);
    let hint = if e == nix::errno::Errno::EACCES {
        " (is it under [filesystem] exec?)"
    } else {
        ""
    };
    fail(
        &err_w,
        code,
        false,
        &format!("{}: {}{hint}", prep.program.display(), e.desc()),
    )
}

/// The errno filter: prepared, or compiled now (in the child) where it is
/// only the fallback. The policy is the one the launcher prepared, so the
/// program is the same either way.
fn errno_filter(
    prep: &Prepared,
) -> std::result::Result<std::borrow::Cow<'_, [BpfProgram]>, String> {
    if !prep.bpf_lazy {
        return Ok(std::borrow::Cow::Borrowed(&prep.bpf));
    }
    prep.policy
        .syscalls
        .compile()
        .map(std::borrow::Cow::Owned)
        .map_err(|e| format!("compiling the seccomp filter: {e}"))
}

fn install(progs: &[BpfProgram]) -> std::result::Result<(), String> {
    for prog in progs {
        sys::seccomp_install(prog, 0).map_err(|e| format!("installing the seccomp filter: {e}"))?;
    }
    Ok(())
}

/// Install the notifying filter and send the listener to the launcher. Where a
/// listener cannot be had (one already exists above us, as in a nested cordon),
/// install the errno filters instead and say why.
///
/// When the filter sends execve to the supervisor (`exec_observed`), the
/// payload does not wait for the acknowledgement: its execve waits for the
/// supervisor anyway, and until the supervisor answers it the listener is
/// still open in the payload (it closes on exec), so the launcher can take it
/// first. A launcher that cannot take it kills the payload. One round trip less
/// per launch.
fn install_notify<'p>(
    progs: &[BpfProgram],
    fallback: &dyn Fn() -> std::result::Result<std::borrow::Cow<'p, [BpfProgram]>, String>,
    chan: &OwnedFd,
    required: bool,
    exec_observed: bool,
) -> std::result::Result<(), String> {
    let [main] = progs else {
        return Err("the capture filter is not one program".into());
    };
    // The filter sends sendmsg to the supervisor, which has no listener yet: the
    // listener cannot travel by SCM_RIGHTS. We write its number (write(2) is not
    // mediated; the launcher learns our pid from SO_PASSCRED), the launcher takes
    // it with pidfd_getfd and acknowledges; only then may we close it and exec.
    // WAIT_KILLABLE_RECV (5.19): once the supervisor has read a call, only a
    // fatal signal interrupts the caller's wait. Otherwise a handled signal (Go's
    // preemption SIGURG, SIGCHLD, SIGALRM) would restart a call the supervisor
    // is performing, and a send would be made twice.
    const WAIT_KILLABLE_RECV: libc::c_ulong = 1 << 5;
    let flags = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as libc::c_ulong;
    let installed = match sys::seccomp_install(main, flags | WAIT_KILLABLE_RECV) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => sys::seccomp_install(main, flags),
        other => other,
    };
    match installed {
        Ok(Some(listener)) => {
            let msg = format!(
                "{}{}",
                crate::monitor::LISTENER as char,
                std::os::fd::AsRawFd::as_raw_fd(&listener)
            );
            nix::unistd::write(chan, msg.as_bytes())
                .map_err(|e| format!("handing the seccomp listener to the launcher: {e}"))?;
            if exec_observed {
                // Close-on-exec (the kernel makes it so): it stays open until then.
                let _ = std::os::fd::IntoRawFd::into_raw_fd(listener);
                return Ok(());
            }
            let mut ack = [0u8; 1];
            match nix::unistd::read(chan, &mut ack) {
                Ok(1) => {}
                _ => return Err("the launcher did not take the seccomp listener".into()),
            }
            drop(listener);
            Ok(())
        }
        Ok(None) => Err("installing the seccomp filter: no listener returned".into()),
        Err(e) if required => Err(format!(
            "this kernel cannot enforce the profile: confining pathname unix sockets \
             (needs a seccomp listener, not available here: {e}; a nested cordon has none); \
             run with --best-effort, or with namespaces, to accept this"
        )),
        Err(e) => {
            install(&fallback()?)?;
            let why = format!(
                "{}a seccomp listener is not available here ({e})",
                crate::monitor::NO_LISTENER as char
            );
            nix::unistd::write(chan, why.as_bytes())
                .map_err(|e| format!("telling the launcher there is no seccomp listener: {e}"))?;
            // The launcher may still be preparing (see spawn): wait for its word.
            let mut ack = [0u8; 1];
            match nix::unistd::read(chan, &mut ack) {
                Ok(1) => Ok(()),
                _ => Err("the launcher did not acknowledge".into()),
            }
        }
    }
}

/// The parent of `pid`, from /proc/PID/stat (the command name may contain
/// spaces and parentheses: the fields follow the last ')').
pub(crate) fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Descendants of this process, found through /proc (children first discovered
/// are signalled first). Used to end the tree without a PID namespace.
pub fn descendants() -> Vec<Pid> {
    let me = std::process::id() as i32;
    let parent_of: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            Some((pid, parent_of(pid)?))
        })
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![me];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &parent_of {
            if ppid == p && !out.contains(&Pid::from_raw(pid)) {
                out.push(Pid::from_raw(pid));
                frontier.push(pid);
            }
        }
    }
    out
}
