//! The enforcement plan: what each layer (Landlock, mount namespace, seccomp)
//! will do for a policy on this kernel, which grants `deny`/`read_only`
//! carve-outs expand, what is missing (fail closed) and what this mode leaves
//! open (said once per run).
//!
//! Pure apart from listing the few directories that lie on the path from a grant
//! down to a carved-out entry (through [`Lister`], faked in tests). Never walks a tree.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::policy::{Access, Carve, FsPolicy, Grant, Kind, Network, Policy, beneath};
use crate::probe::{Host, Userns};
use crate::profile::{NsMode, Origin};
use crate::scratch::{self, DevPath, dev_path};

/// The kind of a directory entry, as `readdir` reports it (no `stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    Dir,
    Symlink,
    /// A unix socket (only [`socketish`] tells it apart from `Other`).
    Socket,
    Other,
}

/// Lists one directory. The real one reads the disk; tests pass a fake.
pub trait Lister {
    fn list(&self, dir: &Path) -> Vec<(OsString, EntryKind)>;
}

/// Lists directories on this machine.
#[derive(Debug)]
pub struct DiskLister;

impl Lister for DiskLister {
    fn list(&self, dir: &Path) -> Vec<(OsString, EntryKind)> {
        use std::os::unix::fs::FileTypeExt;
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut v: Vec<_> = rd
            .flatten()
            .map(|e| {
                // d_type from getdents; std falls back to lstat where it is DT_UNKNOWN.
                let kind = match e.file_type() {
                    Ok(t) if t.is_symlink() => EntryKind::Symlink,
                    Ok(t) if t.is_dir() => EntryKind::Dir,
                    Ok(t) if t.is_socket() => EntryKind::Socket,
                    _ => EntryKind::Other,
                };
                (e.file_name(), kind)
            })
            .collect();
        v.sort();
        v
    }
}

/// Why a Landlock rule exists, for `profile show` and `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// A grant as written.
    Grant(Origin),
    /// A grant expanded around a carve-out: this entry is a sibling on the way down.
    /// (Shared: one expansion makes a rule per sibling, a hundred or more in /etc.)
    Sibling { grant: Origin, carve: Arc<Path> },
    /// An ancestor of a denied path: listable only.
    Ancestor { grant: Origin, carve: Arc<Path> },
    /// What the run's private view makes of a grant: an allowlisted device,
    /// the run's own terminal, the private /dev/shm (see `scratch`).
    Private { grant: Origin, note: &'static str },
}

/// One Landlock path rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsRule {
    pub path: PathBuf,
    pub access: Access,
    /// Whether the path is a directory (non-directories get file rights only).
    pub dir: bool,
    pub why: Why,
}

/// A grant replaced by rules around a denied path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    pub grant: PathBuf,
    pub grant_origin: Origin,
    pub carve: PathBuf,
}

/// The mount-namespace view (namespaces on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mounts {
    /// Writable roots bound read-write over the read-only view; true = noexec.
    pub writable: Vec<(PathBuf, bool)>,
    /// Directories between a writable root and a read_only path, bound onto
    /// themselves so they cannot be renamed away and replaced.
    pub pins: Vec<PathBuf>,
    /// read_only paths bound read-only over the writable view.
    pub read_only: Vec<PathBuf>,
    /// deny paths hidden behind an empty mode-000 directory or file; true = directory.
    pub masks: Vec<(PathBuf, bool)>,
    /// A network namespace with only loopback (network off, or proxy).
    pub net: bool,
    /// Mode "proxy": loopback up, the proxy's and the resolver's sockets made
    /// in the namespace by init, and /etc/resolv.conf naming that resolver.
    pub proxy: bool,
    /// Private tmpfs mounts over the shared temporary directories.
    pub scratch: Vec<scratch::Scratch>,
    /// The fresh /dev.
    pub dev: scratch::DevView,
}

/// Something the profile asks for that this kernel cannot enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub what: String,
    pub needs: String,
}

impl fmt::Display for Piece {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (needs {})", self.what, self.needs)
    }
}

/// The plan for one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The namespace view, or None when namespaces are off.
    pub mounts: Option<Mounts>,
    /// Why namespaces are on or off.
    pub ns_reason: String,
    /// Namespaces were asked for (`required`) and are unavailable: never run.
    pub refuse: Option<String>,
    pub landlock_abi: i32,
    pub fs_rules: Vec<FsRule>,
    /// Rules the child adds after building the mount view (paths under /proc).
    pub fs_rules_late: Vec<FsRule>,
    pub expansions: Vec<Expansion>,
    /// Grants dropped because they lie inside a denied path.
    pub dropped: Vec<(Grant, PathBuf)>,
    /// Landlock TCP rules (connect ports, bind ports), when TCP is handled.
    pub tcp: Option<(Vec<u16>, Vec<u16>)>,
    /// Mode "filtered": the resolvers datagrams may go to (/etc/resolv.conf).
    pub resolvers: Vec<std::net::IpAddr>,
    pub scope_abstract_unix: bool,
    pub scope_signal: bool,
    /// Unenforceable here: refused unless --best-effort (then one warning each).
    pub missing: Vec<Piece>,
    /// Profile entries this mode does not enforce: warned once per run.
    pub warnings: Vec<String>,
    /// The run's own terminal (namespaces off: the one /dev/pts node rules reach).
    pub terminal: Option<PathBuf>,
    /// What this mode leaves open in general (doctor, --verbose, reports).
    pub gaps: Vec<String>,
}

/// Landlock ABI versions that bring what a policy needs.
pub mod abi {
    pub const REFER: i32 = 2;
    pub const TRUNCATE: i32 = 3;
    pub const TCP: i32 = 4;
    pub const IOCTL_DEV: i32 = 5;
    pub const SCOPES: i32 = 6;
    pub const AUDIT: i32 = 7;
    /// The newest ABI cordon requests (and is tested against).
    pub const TARGET: i32 = 7;
}

impl Plan {
    /// A plan with nothing in it, for unit tests that fill in what they check.
    #[cfg(test)]
    pub(crate) fn empty(landlock_abi: i32) -> Plan {
        Plan {
            mounts: None,
            ns_reason: String::new(),
            refuse: None,
            landlock_abi,
            fs_rules: vec![],
            fs_rules_late: vec![],
            expansions: vec![],
            dropped: vec![],
            tcp: None,
            resolvers: Vec::new(),
            scope_abstract_unix: false,
            scope_signal: false,
            missing: vec![],
            warnings: vec![],
            terminal: None,
            gaps: vec![],
        }
    }

    /// Plan `policy` for `host`. `ns_failed` carries the reason when an attempt
    /// to create namespaces already failed (mode auto falls back).
    pub fn new(policy: &Policy, host: &Host, ns_failed: Option<&str>, lister: &dyn Lister) -> Plan {
        let abi = host.landlock.abi().min(abi::TARGET);
        let userns_ok = match (&host.userns, ns_failed) {
            (_, Some(why)) => Err(why.to_string()),
            (Userns::Available, None) => Ok(()),
            (Userns::Unavailable(why), None) => Err(why.clone()),
        };
        let (use_ns, ns_reason, refuse) = match (policy.namespaces, userns_ok) {
            (NsMode::Off, _) => (false, "off in the profile".to_string(), None),
            (_, Ok(())) => (
                true,
                "user, mount, PID and IPC namespaces".to_string(),
                None,
            ),
            (NsMode::Auto, Err(why)) => (false, format!("unavailable: {why}"), None),
            (NsMode::Required, Err(why)) => (
                false,
                format!("unavailable: {why}"),
                Some(format!(
                    "namespaces are required by the profile but unavailable: {why}"
                )),
            ),
        };

        let mut plan = Plan {
            mounts: None,
            ns_reason,
            refuse,
            landlock_abi: abi,
            fs_rules: Vec::new(),
            fs_rules_late: Vec::new(),
            expansions: Vec::new(),
            dropped: Vec::new(),
            tcp: None,
            resolvers: Vec::new(),
            scope_abstract_unix: false,
            scope_signal: false,
            missing: Vec::new(),
            warnings: Vec::new(),
            terminal: None,
            gaps: Vec::new(),
        };
        let net_off = policy.net == Network::Off;
        let proxy = matches!(policy.net, Network::Proxy(_));
        if use_ns {
            let mut m = mounts(&policy.fs);
            m.net = net_off || proxy;
            m.proxy = proxy;
            if net_off || proxy {
                // Said as enforced: network off makes a network namespace too.
                plan.ns_reason = "user, mount, PID, IPC and network namespaces".into();
            }
            mask_runtime_dir(policy, host.euid, &mut m);
            scratch::privatize(
                &mut m,
                &policy.fs,
                &policy.tmpdir,
                &policy.workspace,
                &policy.cwd,
                &mut plan.gaps,
            );
            plan.mounts = Some(m);
        } else {
            no_ns_gaps(policy, &mut plan);
            plan.terminal = scratch::own_terminal();
        }
        plan_fs(&policy.fs, use_ns, lister, &mut plan);

        // Landlock itself.
        if abi == 0 {
            plan.missing.push(Piece {
                what: "file-system rules".into(),
                needs: format!("Landlock, which is {}", host.landlock),
            });
        } else if abi < abi::TRUNCATE && !use_ns {
            plan.missing.push(Piece {
                what: "refusing truncate(2) outside writable roots".into(),
                needs: "Landlock ABI 3 or namespaces".into(),
            });
        }
        // Network: seccomp refuses non-unix sockets when off; Landlock adds TCP rules.
        match &policy.net {
            Network::Off if abi >= abi::TCP => plan.tcp = Some((vec![], vec![])),
            Network::Off | Network::On => {}
            // Its own network namespace holds only loopback and the proxy.
            Network::Proxy(_) if use_ns => {}
            // Without: the proxy listens on the host's loopback, Landlock allows
            // TCP to its port alone (set when it is bound, sandbox::Prepared),
            // and the supervisor, which performs every connect, to 127.0.0.1 alone.
            Network::Proxy(_) if abi >= abi::TCP => plan.tcp = Some((vec![], vec![])),
            Network::Proxy(_) => plan.missing.push(Piece {
                what: "network mode \"proxy\" without namespaces (TCP to the proxy's port alone)"
                    .into(),
                needs: "Landlock ABI 4, or namespaces (with --best-effort the network is off)"
                    .into(),
            }),
            Network::Filtered { connect, bind, .. } => {
                if abi >= abi::TCP {
                    plan.tcp = Some((connect.clone(), bind.clone()));
                } else {
                    plan.missing.push(Piece {
                        what: "network mode \"filtered\" (TCP port rules)".into(),
                        needs: "Landlock ABI 4".into(),
                    });
                }
            }
        }
        // Mode "filtered" resolves names: datagrams to the resolvers alone,
        // which only a supervisor performing every send can hold to.
        if let Network::Filtered { dns: true, .. } = &policy.net {
            if host.seccomp && host.user_notif {
                let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                plan.resolvers = crate::netname::resolvers(&conf);
            } else {
                plan.gaps.push(
                    "names in mode \"filtered\": UDP stays refused without seccomp user notification (no supervisor to hold datagrams to the resolver), so only numeric addresses and /etc/hosts work".into(),
                );
            }
        }
        // Pathname unix sockets: only the seccomp supervisor confines them (no
        // Landlock right before ABI 9, see unix_policy::LANDLOCK_UNIX_ABI).
        if host.seccomp && !host.user_notif {
            let what = "confining pathname unix sockets (connect, sendto, sendmsg)";
            if use_ns {
                plan.gaps.push(format!(
                    "{what}: no seccomp user notification here; only the masks (deny, the user's runtime directory) hide host sockets"
                ));
            } else {
                plan.missing.push(Piece {
                    what: what.into(),
                    needs: "seccomp user notification (Linux 5.14)".into(),
                });
            }
        }
        if !host.seccomp {
            plan.missing.push(Piece {
                what: "the seccomp filter (socket families, syscall deny list)".into(),
                needs: "seccomp filters".into(),
            });
        }
        // Scopes: a network namespace already hides the host's abstract sockets, and a
        // PID namespace the host's processes; Landlock ABI 6 scopes them otherwise.
        if policy.scopes.abstract_unix {
            if abi >= abi::SCOPES {
                plan.scope_abstract_unix = true;
            } else if !(use_ns && net_off) {
                plan.missing.push(Piece {
                    what: "refusing abstract unix sockets outside the sandbox".into(),
                    needs: "Landlock ABI 6, or namespaces with network off".into(),
                });
            }
        }
        if policy.scopes.signal {
            if abi >= abi::SCOPES {
                plan.scope_signal = true;
            } else if !use_ns {
                plan.missing.push(Piece {
                    what: "refusing signals to processes outside the sandbox".into(),
                    needs: "Landlock ABI 6 or a PID namespace".into(),
                });
            }
        }
        plan
    }

    pub fn namespaces(&self) -> bool {
        self.mounts.is_some()
    }

    /// The isolation the seccomp filter is made for.
    pub fn isolation(&self) -> crate::seccomp::Isolation {
        if self.namespaces() {
            crate::seccomp::Isolation::Namespaces
        } else {
            crate::seccomp::Isolation::Host
        }
    }
}

/// What the no-namespace mode cannot do, per policy.
fn no_ns_gaps(policy: &Policy, plan: &mut Plan) {
    let writable: Vec<&Grant> = policy
        .fs
        .grants
        .iter()
        .filter(|g| g.access.can_write())
        .collect();
    for c in &policy.fs.read_only {
        if c.exists && writable.iter().any(|g| beneath(&c.path, &g.path)) {
            plan.warnings.push(format!(
                "read_only {} is not enforced without namespaces ({})",
                c.path.display(),
                plan.ns_reason
            ));
        }
    }
    if !policy.fs.guarded.is_empty() {
        plan.gaps.push(
            "files the guard protects are writable during the run; they are put back when it ends"
                .into(),
        );
    }
    plan.gaps.push(match &policy.run_tmp {
        Some(t) => format!(
            "${{TMPDIR}} is this run's own directory {}, removed when the run ends",
            t.display()
        ),
        None => format!(
            "${{TMPDIR}} is a fresh directory per run under {} (cordon-run-*), removed when the run ends",
            policy.tmpdir.display()
        ),
    });
    if !policy.fs.deny.is_empty() {
        plan.gaps.push(
            "denied directories can be listed (not read) where an ancestor is listable".into(),
        );
    }
    plan.gaps.push(
        "chmod, chown, utime and xattrs outside writable roots are refused by the seccomp supervisor only: with --no-capture, or where no listener can be had (a nested cordon), they are not mediated".into(),
    );
    // procfs is world-readable per process and its hidepid option is the host's
    // to set: a sandbox in the host's PID namespace sees every process.
    plan.gaps.push(
        "the command lines of every host process are readable (/proc/PID/cmdline): \
         tokens passed as arguments are visible"
            .into(),
    );
    plan.gaps.push(
        "inotify watches on readable host paths show when the host touches them (a side channel)"
            .into(),
    );
    // The roots a mount view would mount noexec are the ones left open here.
    for (root, _) in mounts(&policy.fs)
        .writable
        .iter()
        .filter(|(root, noexec)| *noexec && dev_path(root) == DevPath::Outside)
    {
        plan.gaps.push(format!(
            "files in writable {} (no exec) can still be mapped executable (ld.so, mmap)",
            root.display()
        ));
    }
}

/// Plan the mount view: writable roots, pins, read-only binds, masks.
fn mounts(fs: &FsPolicy) -> Mounts {
    let mut m = Mounts::default();
    let covered = |p: &Path| fs.grants.iter().any(|g| beneath(p, &g.path));
    let mut roots: Vec<&Grant> = fs.grants.iter().filter(|g| g.access.can_write()).collect();
    roots.sort_by(|a, b| a.path.cmp(&b.path));
    let mut tops: Vec<PathBuf> = Vec::new();
    for g in roots {
        if tops.iter().any(|t| beneath(&g.path, t)) {
            continue;
        }
        if g.kind == Kind::Device {
            // Device nodes are writable on a read-only mount; no bind needed.
            continue;
        }
        tops.push(g.path.clone());
    }
    for t in &tops {
        let exec = fs
            .grants
            .iter()
            .any(|g| g.access.can_exec() && (beneath(t, &g.path) || beneath(&g.path, t)));
        m.writable.push((t.clone(), !exec));
    }
    // Pin the directories between a writable root and a read_only or masked
    // path: a mount point cannot be renamed, so the payload can neither move
    // .git aside and put its own in place, nor move ~/.local aside and plant a
    // report key of its own where the masked one was.
    let pin = |m: &mut Mounts, path: &Path| {
        let Some(root) = tops.iter().find(|t| beneath(path, t)) else {
            return;
        };
        let mut pins: Vec<PathBuf> = path
            .ancestors()
            .skip(1)
            .take_while(|a| a.starts_with(root) && *a != root.as_path())
            .map(Path::to_path_buf)
            .collect();
        pins.reverse();
        for p in pins {
            if !m.pins.contains(&p) {
                m.pins.push(p);
            }
        }
    };
    // The guard's protected paths are bound exactly like read_only ones.
    for c in fs.read_only.iter().chain(&fs.guarded).filter(|c| c.exists) {
        if m.read_only.contains(&c.path) {
            continue;
        }
        if tops.iter().any(|t| beneath(&c.path, t)) {
            pin(&mut m, &c.path);
            m.read_only.push(c.path.clone());
        }
    }
    for c in fs.deny.iter().filter(|c| c.exists && covered(&c.path)) {
        pin(&mut m, &c.path);
        m.masks.push((c.path.clone(), c.kind == Kind::Dir));
    }
    m
}

/// Mask the user's runtime directory (`$XDG_RUNTIME_DIR`, `/run/user/UID`: the
/// session bus, agents, the Wayland and PulseAudio sockets) in the mount view,
/// beside the unix-socket mediation: what holds where no seccomp listener can
/// be had. Left alone when the profile grants a path inside it, lists a
/// `unix_connect` socket in it, or writes above it.
fn mask_runtime_dir(policy: &Policy, euid: u32, m: &mut Mounts) {
    let mut dirs = vec![PathBuf::from(format!("/run/user/{euid}"))];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if x.is_absolute() {
            dirs.push(x);
        }
    }
    for dir in dirs {
        let (dir, exists) = crate::policy::canonical(&dir);
        let covered = policy.fs.grants.iter().any(|g| beneath(&dir, &g.path));
        let used = policy.fs.grants.iter().any(|g| beneath(&g.path, &dir))
            || policy.unix.allowed.iter().any(|a| beneath(&a.dir, &dir))
            || m.writable.iter().any(|(w, _)| beneath(&dir, w));
        if exists
            && dir.is_dir()
            && covered
            && !used
            && !m.masks.iter().any(|(p, _)| beneath(&dir, p))
        {
            m.masks.push((dir, true));
        }
    }
}

/// A character or block device: writable even on a read-only mount.
pub(crate) fn is_device(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p)
        .map(|m| m.file_type().is_char_device() || m.file_type().is_block_device())
        .unwrap_or(false)
}

/// A [`Lister`] that lists the root once for two uses: without namespaces "/"
/// is listed to find /dev, and again when a grant of "/" is expanded (a
/// listing costs the file system's readdir, ~20 µs for the root).
struct RootOnce<'a> {
    inner: &'a dyn Lister,
    root: std::cell::RefCell<Option<Vec<(OsString, EntryKind)>>>,
}

impl Lister for RootOnce<'_> {
    fn list(&self, dir: &Path) -> Vec<(OsString, EntryKind)> {
        if dir.as_os_str() != "/" {
            return self.inner.list(dir);
        }
        if let Some(v) = self.root.borrow_mut().take() {
            return v;
        }
        let v = self.inner.list(dir);
        *self.root.borrow_mut() = Some(v.clone());
        v
    }
}

/// Landlock rules: grants as written, expanded around the carve-outs that only
/// Landlock can enforce in this mode.
fn plan_fs(fs: &FsPolicy, use_ns: bool, lister: &dyn Lister, plan: &mut Plan) {
    let lister = &RootOnce {
        inner: lister,
        root: Default::default(),
    };
    let writable: Vec<&Grant> = fs.grants.iter().filter(|g| g.access.can_write()).collect();
    let in_writable = |p: &Path| {
        writable
            .iter()
            .find(|g| beneath(p, &g.path))
            .map(|g| g.path.clone())
    };
    // The denied paths Landlock must enforce by expansion. With namespaces every
    // existing one is masked instead. (read_only is enforced by the mount view
    // alone: expanding it would take write away from the writable root itself.)
    let mut carves: Vec<&Path> = Vec::new();
    for c in &fs.deny {
        if !c.exists {
            // Expanding for a path that is not there would take the writable root's
            // own write away; say instead that it could be created.
            if let Some(w) = in_writable(&c.path) {
                plan.gaps.push(format!(
                    "deny {}: does not exist and could be created inside writable {}",
                    c.path.display(),
                    w.display()
                ));
            }
        } else if use_ns {
            // masked by the mount view
        } else if socketish(c, lister) {
            plan.gaps.push(format!("deny {}: connecting to a unix socket is not mediated by Landlock before ABI 9 without namespaces", c.path.display()));
        } else {
            if let Some(w) = in_writable(&c.path) {
                plan.gaps.push(format!("deny {} lies in writable {}: entries of the directories above it cannot be created or removed", c.path.display(), w.display()));
            }
            carves.push(&c.path);
        }
    }

    // Without namespaces /dev is the host's: grants covering it are expanded
    // around it, and only the allowlist gets rules (device_rules).
    if !use_ns
        && fs
            .grants
            .iter()
            .any(|g| beneath(Path::new("/dev"), &g.path))
        && lister
            .list(Path::new("/"))
            .iter()
            .any(|(n, k)| n == "dev" && *k == EntryKind::Dir)
    {
        carves.push(Path::new("/dev"));
    }
    for g in &fs.grants {
        // Inside (or at) a denied path: the deny wins, in every mode.
        if let Some(c) = fs.deny.iter().find(|c| beneath(&g.path, &c.path)) {
            plan.dropped.push((g.clone(), c.path.clone()));
            continue;
        }
        if dev_grant(g, &fs.deny, use_ns, plan) {
            continue;
        }
        let below: Vec<&Path> = carves
            .iter()
            .copied()
            .filter(|c| beneath(c, &g.path))
            .collect();
        if below.is_empty() || !g.access.can_read() {
            let rule = FsRule {
                path: g.path.clone(),
                access: g.access,
                dir: g.kind == Kind::Dir,
                why: Why::Grant(g.origin.clone()),
            };
            // A rule on /proc names the host's proc; the namespace mounts a fresh one.
            // A private tmpfs is a new inode too: its rule is opened once it is there.
            let private = plan
                .mounts
                .as_ref()
                .is_some_and(|m| m.scratch.iter().any(|s| s.path == g.path));
            if use_ns && (g.path.starts_with("/proc") || private) {
                plan.fs_rules_late.push(rule);
            } else {
                plan.fs_rules.push(rule);
            }
            continue;
        }
        for c in &below {
            plan.expansions.push(Expansion {
                grant: g.path.clone(),
                grant_origin: g.origin.clone(),
                carve: c.to_path_buf(),
            });
        }
        expand(&g.path, g, &below, lister, &mut plan.fs_rules);
        if below.contains(&Path::new("/dev")) {
            device_rules(g, &fs.deny, plan);
        }
    }
    // The private /dev/shm is scratch space like the temporary directory: it is
    // writable when that is (a profile may also grant /dev/shm itself).
    if let Some(m) = &plan.mounts {
        let explicit = plan
            .fs_rules_late
            .iter()
            .any(|r| r.path == Path::new("/dev/shm"));
        let left_out = m.dev.denied.iter().any(|d| d == "shm" || d == "*");
        if let (false, false, Some(origin)) = (explicit, left_out, &m.dev.shm_write) {
            plan.fs_rules_late.push(FsRule {
                path: PathBuf::from("/dev/shm"),
                access: Access::WRITE,
                dir: true,
                why: Why::Private {
                    grant: origin.clone(),
                    note: "the private /dev/shm is writable with the run's temporary directory",
                },
            });
        }
    }
}

/// The entry of /dev that `p` lies in (`pts` for /dev/pts/3).
fn dev_entry(p: &Path) -> Option<std::path::Component<'_>> {
    // strip_prefix walks components: a byte test first, as most paths are elsewhere.
    if !beneath(p, Path::new("/dev")) {
        return None;
    }
    p.strip_prefix("/dev").ok()?.components().next()
}

/// What the private view makes of a grant at or beneath /dev; false when the
/// grant lies elsewhere. With namespaces the fresh /dev holds only the
/// allowlist (its devpts, /dev/shm and /dev itself are new inodes: late rules);
/// without, rules reach only the allowlist and the run's own terminal.
fn dev_grant(g: &Grant, deny: &[Carve], use_ns: bool, plan: &mut Plan) -> bool {
    let kind = dev_path(&g.path);
    // Most grants lie elsewhere: return before comparing them with every deny.
    if kind == DevPath::Outside {
        return false;
    }
    let as_is = FsRule {
        path: g.path.clone(),
        access: g.access,
        dir: g.kind == Kind::Dir,
        why: Why::Grant(g.origin.clone()),
    };
    let private = |path: &Path, dir: bool, note: &'static str| FsRule {
        path: path.to_path_buf(),
        access: g.access,
        dir,
        why: Why::Private {
            grant: g.origin.clone(),
            note,
        },
    };
    let mut ignored = |why: &str| {
        plan.warnings.push(format!(
            "ignoring the grant on {} ({}): {why}",
            g.path.display(),
            g.origin
        ))
    };
    // With namespaces a deny under /dev leaves the whole entry out of the fresh
    // /dev (scratch::privatize): no rule names what is not there.
    let left_out = deny.iter().find(|c| {
        c.path.as_os_str() == "/dev"
            || (dev_entry(&c.path).is_some()
                && (dev_entry(&c.path) == dev_entry(&g.path)
                    || (kind == DevPath::Ptmx
                        && dev_entry(&c.path) == dev_entry(Path::new("/dev/pts")))))
    });
    if let (true, DevPath::Root | DevPath::Ptmx | DevPath::Shm | DevPath::Pts, Some(c)) =
        (use_ns, kind, left_out)
    {
        plan.dropped.push((g.clone(), c.path.clone()));
        return true;
    }
    match (kind, use_ns) {
        (DevPath::Outside, _) => return false,
        (DevPath::Bound, _) | (DevPath::Ptmx | DevPath::Shm, false) => plan.fs_rules.push(as_is),
        (DevPath::Ptmx, true) => plan.fs_rules_late.push(private(
            Path::new("/dev/pts/ptmx"),
            false,
            "/dev/ptmx of the new devpts instance",
        )),
        (DevPath::Root | DevPath::Pts, true) => plan.fs_rules_late.push(as_is),
        (DevPath::Shm, true) if g.path == Path::new("/dev/shm") => plan.fs_rules_late.push(as_is),
        (DevPath::Shm, true) => ignored("the private /dev/shm starts empty"),
        (DevPath::PtsNode, true) => ignored("the sandbox has its own devpts instance"),
        (DevPath::Pts | DevPath::PtsNode, false) => match plan.terminal.clone() {
            Some(t) if kind == DevPath::Pts || t == g.path => {
                plan.fs_rules
                    .push(private(&t, false, "the run's own terminal"))
            }
            // No terminal of our own: nothing under /dev/pts is ours to grant.
            None if kind == DevPath::Pts => {}
            _ => ignored("only the run's own terminal is reachable"),
        },
        (DevPath::Root, false) => device_rules(g, deny, plan),
        (DevPath::Other, _) => ignored(scratch::REACHABLE),
    }
    true
}

/// Rules for the allowlisted devices under a grant that covers /dev (namespaces
/// off): /dev itself listable, each allowlisted node with the grant's rights.
/// A `deny` at or above a path, or (fail closed) inside it, removes its rule.
fn device_rules(g: &Grant, deny: &[Carve], plan: &mut Plan) {
    let denied = |p: &Path| {
        deny.iter()
            .any(|c| beneath(p, &c.path) || beneath(&c.path, p))
    };
    let rule = |path: PathBuf, access: Access, dir: bool, note: &'static str| FsRule {
        path,
        access,
        dir,
        why: Why::Private {
            grant: g.origin.clone(),
            note,
        },
    };
    if deny.iter().any(|c| beneath(Path::new("/dev"), &c.path)) {
        return;
    }
    plan.fs_rules
        .push(rule("/dev".into(), Access::LIST, true, scratch::REACHABLE));
    for n in scratch::BOUND.iter().chain(&["ptmx"]) {
        let p = Path::new("/dev").join(n);
        if is_device(&p) && !denied(&p) {
            plan.fs_rules
                .push(rule(p, g.access, false, scratch::REACHABLE));
        }
    }
    if Path::new("/dev/shm").is_dir() && !denied(Path::new("/dev/shm")) {
        plan.fs_rules
            .push(rule("/dev/shm".into(), g.access, true, scratch::REACHABLE));
    }
    if let Some(t) = plan.terminal.clone().filter(|t| !denied(t)) {
        plan.fs_rules
            .push(rule(t, g.access, false, "the run's own terminal"));
    }
}

/// A unix socket, or a directory of them (/tmp/.X11-unix): Landlock before
/// ABI 9 cannot stop a connect(2) to them, so expanding around them buys nothing.
fn socketish(c: &Carve, lister: &dyn Lister) -> bool {
    match c.kind {
        Kind::Socket => true,
        Kind::Dir => lister
            .list(&c.path)
            .iter()
            .any(|(_, k)| *k == EntryKind::Socket),
        _ => false,
    }
}

/// Grant `g.access` to every entry of `dir` except the denied ones, recursing
/// into entries that lie on the way to one; `dir` itself keeps listing only.
fn expand(dir: &Path, g: &Grant, carves: &[&Path], lister: &dyn Lister, out: &mut Vec<FsRule>) {
    let carve: Arc<Path> = Arc::from(carves[0]);
    out.push(FsRule {
        path: dir.to_path_buf(),
        access: Access::LIST,
        dir: true,
        why: Why::Ancestor {
            grant: g.origin.clone(),
            carve: carve.clone(),
        },
    });
    for (name, kind) in lister.list(dir) {
        let child = dir.join(&name);
        let here: Vec<&Path> = carves
            .iter()
            .copied()
            .filter(|c| beneath(c, &child))
            .collect();
        if here.is_empty() {
            // A symlink is followed at access time to wherever it points, which has
            // its own rules; granting it here would grant its target.
            if kind != EntryKind::Symlink {
                out.push(FsRule {
                    path: child,
                    access: g.access,
                    dir: kind == EntryKind::Dir,
                    why: Why::Sibling {
                        grant: g.origin.clone(),
                        carve: carve.clone(),
                    },
                });
            }
        } else if kind == EntryKind::Dir && !here.contains(&child.as_path()) {
            expand(&child, g, &here, lister, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Fake(BTreeMap<&'static str, Vec<(&'static str, EntryKind)>>);
    impl Lister for Fake {
        fn list(&self, dir: &Path) -> Vec<(OsString, EntryKind)> {
            self.0
                .get(dir.to_str().unwrap())
                .map(|v| v.iter().map(|(n, k)| (OsString::from(n), *k)).collect())
                .unwrap_or_default()
        }
    }

    fn origin() -> Origin {
        Origin {
            source: "t".into(),
            line: Some(1),
            column: None,
            key: None,
        }
    }

    fn fs(grants: &[(&str, Access)], deny: &[&str]) -> FsPolicy {
        FsPolicy {
            grants: grants
                .iter()
                .map(|(p, a)| Grant {
                    path: p.into(),
                    kind: Kind::Dir,
                    access: *a,
                    origin: origin(),
                })
                .collect(),
            deny: deny
                .iter()
                .map(|p| Carve {
                    path: p.into(),
                    exists: true,
                    kind: Kind::Dir,
                    origin: origin(),
                })
                .collect(),
            read_only: vec![],
            unprotect: vec![],
            guarded: vec![],
            skipped: vec![],
        }
    }

    fn empty_plan() -> Plan {
        Plan::empty(7)
    }

    fn tree() -> Fake {
        use EntryKind::*;
        let mut m = BTreeMap::new();
        m.insert(
            "/",
            vec![("etc", Dir), ("home", Dir), ("usr", Dir), ("lib", Symlink)],
        );
        m.insert("/home", vec![("u", Dir), ("v", Dir)]);
        m.insert(
            "/home/u",
            vec![
                (".ssh", Dir),
                (".bashrc", Other),
                ("src", Dir),
                ("link", Symlink),
                (".netrc", Other),
            ],
        );
        Fake(m)
    }

    #[test]
    fn deny_expands_siblings_and_keeps_ancestors_listable() {
        let f = fs(&[("/", Access::READ)], &["/home/u/.ssh"]);
        let mut plan = empty_plan();
        plan_fs(&f, false, &tree(), &mut plan);
        let rules: BTreeMap<String, Access> = plan
            .fs_rules
            .iter()
            .map(|r| (r.path.display().to_string(), r.access))
            .collect();
        assert_eq!(rules["/"], Access::LIST);
        assert_eq!(rules["/home"], Access::LIST);
        assert_eq!(rules["/home/u"], Access::LIST);
        assert_eq!(rules["/etc"], Access::READ);
        assert_eq!(rules["/home/v"], Access::READ);
        assert_eq!(rules["/home/u/src"], Access::READ);
        assert_eq!(rules["/home/u/.bashrc"], Access::READ);
        assert!(
            !rules.contains_key("/home/u/.ssh"),
            "the denied entry gets no rule"
        );
        assert!(
            !rules.contains_key("/home/u/link"),
            "symlinks are not followed by expansion"
        );
        assert!(!rules.contains_key("/lib"));
        assert_eq!(plan.expansions.len(), 1);
    }

    #[test]
    fn without_namespaces_dev_is_narrowed_to_the_allowlist_and_the_own_terminal() {
        let mut m = tree().0;
        m.get_mut("/").unwrap().push(("dev", EntryKind::Dir));
        m.insert(
            "/dev",
            vec![
                ("loop0", EntryKind::Other),
                ("null", EntryKind::Other),
                ("pts", EntryKind::Dir),
            ],
        );
        let mut f = fs(&[("/", Access::READ)], &[]);
        for (p, kind) in [
            ("/dev/pts", Kind::Dir),
            ("/dev/kvm", Kind::Device),
            ("/dev/null", Kind::Device),
        ] {
            f.grants.push(Grant {
                path: p.into(),
                kind,
                access: Access::WRITE,
                origin: origin(),
            });
        }
        let mut plan = empty_plan();
        plan.terminal = Some("/dev/pts/7".into());
        plan_fs(&f, false, &Fake(m.clone()), &mut plan);
        let rules: Vec<(String, Access)> = plan
            .fs_rules
            .iter()
            .map(|r| (r.path.display().to_string(), r.access))
            .collect();
        let has = |p: &str| rules.iter().any(|(q, _)| q == p);
        assert!(
            !has("/dev/loop0") && !has("/dev/kvm") && !has("/dev/pts"),
            "{rules:?}"
        );
        assert!(rules.contains(&("/".into(), Access::LIST)), "{rules:?}");
        assert!(rules.contains(&("/dev".into(), Access::LIST)), "{rules:?}");
        assert!(
            rules.contains(&("/dev/pts/7".into(), Access::WRITE)),
            "{rules:?}"
        );
        assert!(
            rules.contains(&("/dev/null".into(), Access::WRITE)),
            "{rules:?}"
        );
        assert!(rules.contains(&("/etc".into(), Access::READ)), "{rules:?}");
        assert!(
            plan.warnings.iter().any(|w| w.contains("/dev/kvm")),
            "{:?}",
            plan.warnings
        );
        // With namespaces the fresh /dev holds the allowlist: its devpts is a late rule.
        let mut plan = empty_plan();
        plan_fs(&f, true, &Fake(m), &mut plan);
        assert!(plan.fs_rules.iter().any(|r| r.path == Path::new("/")));
        assert!(
            plan.fs_rules_late
                .iter()
                .any(|r| r.path == Path::new("/dev/pts"))
        );
        assert!(
            !plan
                .fs_rules
                .iter()
                .any(|r| r.path == Path::new("/dev/kvm"))
        );
    }

    #[test]
    fn a_deny_under_dev_holds_in_both_modes() {
        let mut m = tree().0;
        m.get_mut("/").unwrap().push(("dev", EntryKind::Dir));
        let mut f = fs(&[("/", Access::READ)], &["/dev/pts", "/dev/null"]);
        f.deny[1].kind = Kind::Device;
        for (p, kind) in [("/dev/ptmx", Kind::Device), ("/dev/zero", Kind::Device)] {
            f.grants.push(Grant {
                path: p.into(),
                kind,
                access: Access::WRITE,
                origin: origin(),
            });
        }
        let mut plan = empty_plan();
        plan.terminal = Some("/dev/pts/7".into());
        plan_fs(&f, false, &Fake(m.clone()), &mut plan);
        let paths: Vec<&Path> = plan.fs_rules.iter().map(|r| r.path.as_path()).collect();
        assert!(!paths.contains(&Path::new("/dev/null")), "{paths:?}");
        assert!(!paths.contains(&Path::new("/dev/pts/7")), "{paths:?}");
        assert!(paths.contains(&Path::new("/dev/zero")), "{paths:?}");
        let mut plan = empty_plan();
        plan_fs(&f, true, &Fake(m), &mut plan);
        assert!(
            plan.fs_rules_late.is_empty(),
            "ptmx lives in the left-out devpts: {:?}",
            plan.fs_rules_late
        );
        assert!(
            plan.dropped
                .iter()
                .any(|(g, _)| g.path == Path::new("/dev/ptmx"))
        );
    }

    #[test]
    fn two_denies_in_one_directory_and_other_grants_untouched() {
        let f = fs(
            &[("/", Access::READ), ("/usr", Access::EXEC)],
            &["/home/u/.ssh", "/home/u/.netrc"],
        );
        let mut plan = empty_plan();
        plan_fs(&f, false, &tree(), &mut plan);
        let paths: Vec<String> = plan
            .fs_rules
            .iter()
            .map(|r| r.path.display().to_string())
            .collect();
        assert!(
            !paths
                .iter()
                .any(|p| p.ends_with(".ssh") || p.ends_with(".netrc")),
            "{paths:?}"
        );
        assert!(
            plan.fs_rules
                .iter()
                .any(|r| r.path == Path::new("/usr") && r.access == Access::EXEC)
        );
        assert_eq!(
            paths.iter().filter(|p| *p == "/home/u").count(),
            1,
            "one ancestor rule per directory"
        );
    }

    #[test]
    fn denied_sockets_are_gaps_not_expansions() {
        let mut m = tree().0;
        m.insert(
            "/tmp/.X11-unix",
            vec![("X0", EntryKind::Socket), ("lock", EntryKind::Other)],
        );
        m.insert("/run", vec![("docker.sock", EntryKind::Socket)]);
        let mut f = fs(
            &[("/", Access::READ)],
            &["/tmp/.X11-unix", "/run/docker.sock"],
        );
        f.deny[1].kind = Kind::Socket;
        let mut plan = empty_plan();
        plan_fs(&f, false, &Fake(m), &mut plan);
        assert!(plan.expansions.is_empty(), "{:?}", plan.expansions);
        assert_eq!(plan.fs_rules.len(), 1);
        assert_eq!(
            plan.gaps
                .iter()
                .filter(|g| g.contains("unix socket"))
                .count(),
            2,
            "{:?}",
            plan.gaps
        );
    }

    #[test]
    fn grant_inside_a_denied_path_is_dropped() {
        let f = fs(
            &[("/home/u/.ssh", Access::READ), ("/usr", Access::READ)],
            &["/home/u/.ssh"],
        );
        let mut plan = empty_plan();
        plan_fs(&f, false, &tree(), &mut plan);
        assert_eq!(plan.dropped.len(), 1);
        assert_eq!(plan.fs_rules.len(), 1);
    }

    #[test]
    fn with_namespaces_existing_denies_are_masked_not_expanded() {
        let f = fs(&[("/", Access::READ)], &["/home/u/.ssh"]);
        let mut plan = empty_plan();
        plan_fs(&f, true, &tree(), &mut plan);
        assert_eq!(plan.fs_rules.len(), 1);
        assert!(plan.expansions.is_empty());
    }

    #[test]
    fn a_missing_deny_inside_a_writable_root_is_a_gap_not_an_expansion() {
        let mut f = fs(&[("/home/u", Access::WRITE)], &["/home/u/.aws"]);
        f.deny[0].exists = false;
        for ns in [true, false] {
            let mut plan = empty_plan();
            plan_fs(&f, ns, &tree(), &mut plan);
            assert_eq!(
                plan.fs_rules.len(),
                1,
                "the writable root keeps its own write"
            );
            assert_eq!(plan.fs_rules[0].access, Access::WRITE);
            assert!(plan.gaps[0].contains("could be created"), "{:?}", plan.gaps);
        }
    }

    #[test]
    fn with_namespaces_proc_rules_wait_for_the_fresh_proc() {
        let f = fs(&[("/proc", Access::READ), ("/usr", Access::READ)], &[]);
        let mut plan = empty_plan();
        plan_fs(&f, true, &tree(), &mut plan);
        assert_eq!(plan.fs_rules_late.len(), 1);
        assert_eq!(plan.fs_rules.len(), 1);
        let mut plan = empty_plan();
        plan_fs(&f, false, &tree(), &mut plan);
        assert_eq!(plan.fs_rules.len(), 2);
    }

    #[test]
    fn mount_view_pins_ancestors_of_masked_paths() {
        // A masked key two levels inside the writable home: ~/.local and
        // ~/.local/state are pinned, so neither can be moved aside.
        let f = fs(
            &[("/", Access::READ), ("/h", Access::WRITE)],
            &["/h/.local/state/cordon", "/h/.ssh", "/etc/shadow"],
        );
        let m = mounts(&f);
        assert_eq!(
            m.pins,
            vec![PathBuf::from("/h/.local"), PathBuf::from("/h/.local/state")]
        );
        assert_eq!(m.masks.len(), 3);
    }

    #[test]
    fn mount_view_pins_ancestors_of_read_only_paths() {
        let d = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(ws.join(".git/hooks")).unwrap();
        let mut f = fs(
            &[
                ("/", Access::READ),
                (ws.to_str().unwrap(), Access::WRITE),
                (ws.to_str().unwrap(), Access::EXEC),
            ],
            &[],
        );
        f.read_only = vec![Carve {
            path: ws.join(".git/hooks"),
            exists: true,
            kind: Kind::Dir,
            origin: origin(),
        }];
        let m = mounts(&f);
        assert_eq!(m.writable, vec![(ws.clone(), false)]);
        assert_eq!(m.pins, vec![ws.join(".git")]);
        assert_eq!(m.read_only, vec![ws.join(".git/hooks")]);
        let f2 = fs(&[(ws.to_str().unwrap(), Access::WRITE)], &[]);
        assert_eq!(
            mounts(&f2).writable,
            vec![(ws, true)],
            "no exec coverage: noexec"
        );
    }
}
