//! `cordon explain`: whether a profile allows one access, which rule decides
//! (with the profile file and line), and the smallest change that would allow
//! a denied access. Pure decisions over the policy and the plan, in the order
//! the kernel applies them; shared with run reports, which name the rule and
//! the suggestion of every recorded denial.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::plan::{FsRule, Plan, Why, is_device};
use crate::policy::{Access, Network, Policy, beneath, canonical};
use crate::scratch::{self, DevPath, dev_path};

/// A file-system operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Exec,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Exec => "exec",
        }
    }
}

/// One access to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Fs(Op, PathBuf),
    Connect(String, u16),
    /// Connect to (or send to) a pathname unix socket.
    ConnectUnix(PathBuf),
    Bind(u16),
    Syscall(String),
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::Fs(op, p) => write!(f, "{} {}", op.as_str(), p.display()),
            Query::Connect(h, p) => write!(f, "connect {h}:{p}"),
            Query::Bind(p) => write!(f, "bind {p}"),
            Query::ConnectUnix(p) => write!(f, "connect {}", p.display()),
            Query::Syscall(n) => write!(f, "syscall {n}"),
        }
    }
}

/// The answer: allowed or not, the deciding rule, and for a denial the errno
/// the kernel gives and the smallest profile change that would allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The rule that decides, with its origin (file:line) where there is one.
    pub rule: String,
    pub errno: Option<&'static str>,
    pub suggestion: Option<String>,
}

impl Verdict {
    pub(crate) fn allow(rule: String) -> Verdict {
        Verdict {
            allowed: true,
            rule,
            errno: None,
            suggestion: None,
        }
    }
    pub(crate) fn deny(rule: String, errno: &'static str, suggestion: Option<String>) -> Verdict {
        Verdict {
            allowed: false,
            rule,
            errno: Some(errno),
            suggestion,
        }
    }
}

pub(crate) fn q(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

/// The suggestion to add `at` to `[filesystem] KEY`, unless that would be a
/// bad change to copy: a grant of `/` or of the whole home directory (or one
/// above it), a write or exec grant in /proc or /sys, a read grant of /proc,
/// /sys or /sys/kernel whole, a path that names one process or one machine's
/// cgroup (it will not be there next run), the kernel's debugging interfaces,
/// or a path the built-in credentials list denies on purpose. Pure.
pub(crate) fn grant_suggestion(policy: &Policy, key: &str, at: &Path) -> Option<String> {
    let home = policy.home.as_deref().filter(|h| *h != Path::new("/"));
    if at == Path::new("/") || home.is_some_and(|h| beneath(h, at)) {
        return Some(format!(
            "none: granting {} whole is not suggested; grant a directory below it",
            q(at)
        ));
    }
    let mut parts = at
        .components()
        .skip(1)
        .map(|c| c.as_os_str().to_string_lossy());
    let (first, second, third) = (parts.next(), parts.next(), parts.next());
    // The kernel's own trees: never a write or exec grant, and never a read
    // grant of a directory that holds every process or the debugging
    // interfaces (/proc, /sys, /sys/kernel).
    let kernel = matches!(first.as_deref(), Some("proc" | "sys"));
    if kernel && key != "read" {
        return Some(
            "none: /proc and /sys are the kernel's; granting writes there is not suggested".into(),
        );
    }
    if matches!(
        (first.as_deref(), second.as_deref(), third.as_deref()),
        (Some("proc"), None, _) | (Some("sys"), None, _) | (Some("sys"), Some("kernel"), None)
    ) {
        return Some(format!(
            "none: {} holds every process or the kernel's debugging interfaces; grant the file itself",
            q(at)
        ));
    }
    match (first.as_deref(), second.as_deref(), third.as_deref()) {
        (Some("proc"), Some(n), _) if n.bytes().all(|b| b.is_ascii_digit()) => {
            return Some(
                "none: the path names one process (/proc/self is the caller's own)".into(),
            );
        }
        (Some("sys"), Some("fs"), Some("cgroup")) if at.components().count() > 4 => {
            return (key == "read").then(|| "add \"/sys/fs/cgroup\" to [filesystem] read".into());
        }
        (Some("sys"), Some("kernel"), Some("debug" | "tracing" | "security")) => {
            return Some(
                "none: the kernel's debugging and security interfaces are not suggested".into(),
            );
        }
        _ => {}
    }
    if builtin_denial(policy, at).is_some() {
        return Some(ON_PURPOSE.into());
    }
    Some(format!("add {} to [filesystem] {key}", q(at)))
}

const ON_PURPOSE: &str = "none: denied on purpose (a built-in denial: credentials, host secrets)";

/// The suggestion for a path a deny entry covers: take the entry out, unless
/// it is a built-in one.
fn undo_deny(policy: &Policy, entry: &Path) -> Option<String> {
    Some(match builtin_denial(policy, entry) {
        Some(_) => ON_PURPOSE.into(),
        None => format!("remove {} from [filesystem] deny", q(entry)),
    })
}

/// The built-in deny entry (the credentials list, host secrets) that covers
/// `p`, if any: denied on purpose, never a suggestion to undo.
fn builtin_denial<'a>(policy: &'a Policy, p: &Path) -> Option<&'a crate::policy::Carve> {
    policy
        .fs
        .deny
        .iter()
        .find(|d| beneath(p, &d.path) && d.origin.source.starts_with("builtin/"))
}

fn why(w: &Why) -> String {
    match w {
        Why::Grant(o) => o.to_string(),
        Why::Sibling { grant, carve } => {
            format!("{grant}, expanded around denied {}", carve.display())
        }
        Why::Ancestor { grant, carve } => format!(
            "{grant}; listing only: an ancestor of denied {}",
            carve.display()
        ),
        Why::Private { grant, note } => format!("{grant}; {note}"),
    }
}

/// Decide `query` under `policy` as planned for this kernel.
pub fn decide(policy: &Policy, plan: &Plan, query: &Query) -> Verdict {
    match query {
        Query::Fs(op, path) => decide_fs(policy, plan, *op, path),
        Query::Connect(host, port) => match &policy.net {
            Network::Proxy(rules) => decide_proxy(policy, rules, host, *port),
            _ => decide_net(policy, plan, *port, true),
        },
        Query::Bind(port) => decide_net(policy, plan, *port, false),
        Query::ConnectUnix(path) => policy.unix.explain(&canonical(path).0),
        Query::Syscall(name) => decide_syscall(policy, name),
    }
}

/// The access class `op` needs at `path` (a directory is read by listing it;
/// writing a missing path means creating it in its parent).
fn need(op: Op, path: &Path) -> (Access, PathBuf) {
    match op {
        Op::Read if path.is_dir() => (Access::LIST, path.to_path_buf()),
        Op::Read => (Access::READ, path.to_path_buf()),
        Op::Exec => (Access::EXEC, path.to_path_buf()),
        Op::Write if path.symlink_metadata().is_ok() => (Access::WRITE, path.to_path_buf()),
        Op::Write => (
            Access::WRITE,
            path.parent().unwrap_or(Path::new("/")).to_path_buf(),
        ),
    }
}

/// Resolve `path` as the kernel walks it, component by component, following
/// symlinks; stop at a masked path (a mode-000 directory cannot be searched, a
/// masked file cannot be opened), wherever the walk meets it.
fn walk(path: &Path, masks: &[(PathBuf, bool)]) -> Result<PathBuf, PathBuf> {
    crate::policy::walk(path, &mut |next, _| {
        masks
            .iter()
            .find(|(m, _)| m == next)
            .map(|(m, _)| m.clone())
    })
}

fn decide_fs(policy: &Policy, plan: &Plan, op: Op, path: &Path) -> Verdict {
    let origin_of = |list: &[crate::policy::Carve], p: &Path| {
        list.iter()
            .find(|c| c.path == p)
            .map(|c| c.origin.to_string())
            .unwrap_or_default()
    };
    let walked = match &plan.mounts {
        Some(m) => walk(path, &m.masks),
        None => Ok(canonical(path).0),
    };

    // 0. The private view: only the allowlisted devices are there (namespaces) or
    //    reachable (Landlock), and a private tmpfs hides the host's temporary files.
    if let Ok(p) = &walked {
        let kind = dev_path(p);
        let own = plan.terminal.as_deref() == Some(p.as_path());
        let ns = plan.mounts.is_some();
        if kind == DevPath::Other || (kind == DevPath::PtsNode && (ns || !own)) {
            let errno = if ns { "ENOENT" } else { "EACCES" };
            return Verdict::deny(
                format!("{} ({} is not)", scratch::REACHABLE, p.display()),
                errno,
                None,
            );
        }
        if let Some(s) = plan.mounts.as_ref().and_then(|m| {
            m.scratch.iter().find(|s| {
                beneath(p, &s.path) && *p != s.path && !s.keep.iter().any(|k| beneath(p, &k.path))
            })
        }) {
            if op != Op::Write || !s.writable {
                return Verdict::deny(
                    format!(
                        "{} is a private tmpfs for the run: the host's files there are not visible",
                        s.path.display()
                    ),
                    "ENOENT",
                    grant_suggestion(policy, "read", p),
                );
            }
        }
    }

    // 1. The mount view (namespaces on): masks, then the read-only view.
    if let Some(m) = &plan.mounts {
        let path = walked.clone().unwrap_or_default();
        if let Err(mask) = &walked {
            let undo = undo_deny(policy, mask);
            return Verdict::deny(
                format!(
                    "deny {} ({}): masked",
                    mask.display(),
                    origin_of(&policy.fs.deny, mask)
                ),
                "EACCES",
                undo,
            );
        }
        // Device nodes stay writable on a read-only mount (/dev/null, terminals).
        if op == Op::Write && !is_device(&path) {
            let (_, at) = need(op, &path);
            if let Some(ro) = m.read_only.iter().find(|r| beneath(&path, r)) {
                // A path the guard protects, unless the profile lists it itself.
                let guard = !policy.fs.read_only.iter().any(|c| c.path == *ro);
                return if guard {
                    Verdict::deny(
                        format!(
                            "{} ({}): bound read-only",
                            ro.display(),
                            origin_of(&policy.fs.guarded, ro)
                        ),
                        "EROFS",
                        Some(format!("add {} to [filesystem] unprotect", q(ro))),
                    )
                } else {
                    Verdict::deny(
                        format!(
                            "read_only {} ({}): bound read-only",
                            ro.display(),
                            origin_of(&policy.fs.read_only, ro)
                        ),
                        "EROFS",
                        Some(format!("remove {} from [filesystem] read_only", q(ro))),
                    )
                };
            }
            let scratch_rw = m
                .scratch
                .iter()
                .any(|s| s.writable && beneath(&at, &s.path))
                || (m.dev.shm_writable && beneath(&at, Path::new("/dev/shm")));
            if !scratch_rw && !m.writable.iter().any(|(w, _)| beneath(&at, w)) {
                return Verdict::deny(
                    format!(
                        "{} is outside every writable root (read-only view)",
                        path.display()
                    ),
                    "EROFS",
                    grant_suggestion(policy, "write", &at),
                );
            }
        }
        if op == Op::Exec {
            if let Some((w, _)) = m
                .writable
                .iter()
                .find(|(w, noexec)| *noexec && beneath(&path, w))
            {
                return Verdict::deny(
                    format!(
                        "writable root {} is mounted noexec (no [filesystem] exec covers it)",
                        w.display()
                    ),
                    "EACCES",
                    grant_suggestion(policy, "exec", &path),
                );
            }
        }
    }

    // 2. Landlock: the union of every rule on the path or an ancestor directory,
    //    on the file the walk reached (Landlock judges the file, not the walk).
    let path = walked.unwrap_or_default();
    if plan.landlock_abi == 0 {
        return Verdict::allow("Landlock is not enforced on this kernel".into());
    }
    let (needed, at) = need(op, &path);
    // Without namespaces a run's ${TMPDIR} grant names a fresh directory beneath
    // the host's (made per run, scratch::RunTmp): the host's own is not granted.
    let per_run = plan.mounts.is_none() && policy.run_tmp.is_none();
    let rules: Vec<&FsRule> = plan
        .fs_rules
        .iter()
        .chain(plan.fs_rules_late.iter())
        .filter(|r| !(per_run && r.path == policy.tmpdir && matches!(r.why, Why::Grant(_))))
        .filter(|r| {
            if r.dir {
                beneath(&at, &r.path)
            } else {
                at == r.path
            }
        })
        .collect();
    let deciding = rules
        .iter()
        .filter(|r| r.access.contains(needed))
        .max_by_key(|r| r.path.components().count());
    let tmpdir_would = per_run
        && beneath(&at, &policy.tmpdir)
        && plan.fs_rules.iter().any(|r| {
            r.path == policy.tmpdir && r.access.contains(needed) && matches!(r.why, Why::Grant(_))
        });
    if deciding.is_none() && tmpdir_would {
        return Verdict::deny(
            format!(
                "without namespaces ${{TMPDIR}} is a fresh directory per run ({}/cordon-run-*); {} itself is not granted",
                policy.tmpdir.display(),
                policy.tmpdir.display()
            ),
            "EACCES",
            Some("write beneath $TMPDIR as the run sees it".into()),
        );
    }
    if let Some(r) = deciding {
        return Verdict::allow(format!(
            "{} {} ({})",
            r.access,
            r.path.display(),
            why(&r.why)
        ));
    }
    // Denied: name what is in the way and the smallest change.
    let key = match op {
        Op::Read => "read",
        Op::Write => "write",
        Op::Exec => "exec",
    };
    if let Some(d) = policy.fs.deny.iter().find(|c| beneath(&at, &c.path)) {
        return Verdict::deny(
            format!("deny {} ({})", d.path.display(), d.origin),
            "EACCES",
            undo_deny(policy, &d.path),
        );
    }
    let closest = rules.iter().max_by_key(|r| r.path.components().count());
    let rule = match closest {
        Some(r) => format!(
            "{} {} ({}) does not give {key}",
            r.access,
            r.path.display(),
            why(&r.why)
        ),
        None => format!("no [filesystem] rule covers {}", at.display()),
    };
    Verdict::deny(rule, "EACCES", grant_suggestion(policy, key, &at))
}

/// The supervisor's answer for an inet address a socket of type `kind`
/// connects or sends to, where a mode decides more than Landlock's port
/// rules: datagrams in mode "filtered" go to the resolvers of
/// /etc/resolv.conf on port 53 alone; without a network namespace, mode
/// "proxy" reaches the proxy's port on loopback alone. None: the usual rules.
pub(crate) fn decide_inet(
    policy: &Policy,
    plan: &Plan,
    host: &str,
    port: u16,
    kind: i32,
) -> Option<Verdict> {
    let addr: std::net::IpAddr = host.parse().ok()?;
    match &policy.net {
        Network::Filtered { dns: true, .. } if kind == libc::SOCK_DGRAM => {
            let ok = port == 53
                && plan
                    .resolvers
                    .iter()
                    .any(|r| crate::netname::same_ip(*r, addr));
            Some(if ok {
                Verdict::allow(format!(
                    "network mode \"filtered\": the resolver {addr} of /etc/resolv.conf"
                ))
            } else {
                Verdict::deny(
                    "network mode \"filtered\": datagrams go to the resolvers of /etc/resolv.conf on port 53 alone".into(),
                    "EACCES",
                    Some("none: UDP is not filtered by port; use mode \"on\" for it".into()),
                )
            })
        }
        // With its own network namespace: loopback is all there is, so an
        // address elsewhere is a tool that ignores the proxy. The kernel would
        // answer ENETUNREACH; the supervisor answers the same, as a denial.
        Network::Proxy(_) if plan.mounts.is_some() => {
            let local = match addr {
                std::net::IpAddr::V4(v) => v.is_loopback() || v.is_unspecified(),
                std::net::IpAddr::V6(v) => {
                    v.is_loopback()
                        || v.is_unspecified()
                        || v.to_ipv4_mapped().is_some_and(|m| m.is_loopback())
                }
            };
            (!local).then(|| {
                Verdict::deny(
                    "network mode \"proxy\": the sandbox's network namespace has loopback alone; names are reached through the proxy".into(),
                    "ENETUNREACH",
                    Some("use the proxy (HTTPS_PROXY, ALL_PROXY) and add the name to [network] allow_domains".into()),
                )
            })
        }
        Network::Proxy(_) if plan.mounts.is_none() => {
            let proxy = plan.tcp.as_ref().and_then(|(c, _)| c.first().copied());
            let ok = kind == libc::SOCK_STREAM
                && Some(port) == proxy
                && crate::netname::same_ip(addr, std::net::Ipv4Addr::LOCALHOST.into());
            Some(if ok {
                Verdict::allow("network mode \"proxy\": the proxy".into())
            } else {
                Verdict::deny(
                    format!(
                        "network mode \"proxy\": only the proxy (127.0.0.1:{}) is reached, by name",
                        proxy.unwrap_or(0)
                    ),
                    "EACCES",
                    Some(
                        "use the proxy (HTTPS_PROXY) and add the name to [network] allow_domains"
                            .into(),
                    ),
                )
            })
        }
        _ => None,
    }
}

/// Mode "proxy": a name (or address) is reached through the proxy when the
/// rules allow it; names still have to resolve to a usable address when the
/// run asks, which `explain` does not try.
fn decide_proxy(policy: &Policy, rules: &crate::netname::Rules, host: &str, port: u16) -> Verdict {
    let origin_of = |text: &str| {
        policy
            .resolved
            .network
            .allow_domains
            .iter()
            .find(|i| crate::netname::Pattern::parse(&i.value).is_ok_and(|p| p.to_string() == text))
            .map(|i| i.origin.to_string())
            .or_else(|| {
                policy
                    .resolved
                    .network
                    .presets
                    .iter()
                    .find(|p| p.value.domains().contains(&text))
                    .map(|p| format!("preset \"{}\", {}", p.value.name(), p.origin))
            })
            .unwrap_or_default()
    };
    let target = match crate::netname::Target::parse(host) {
        Ok(t) => t,
        Err(why) => return Verdict::deny(format!("not a host name: {why}"), "EACCES", None),
    };
    match rules.check(&target, port) {
        Ok(rule) => Verdict::allow(format!(
            "through the proxy: allow_domains \"{rule}\" ({}), port {port} in allow_ports (the name must still resolve to a public address, or to one allow_domains lists)",
            origin_of(&rule)
        )),
        Err(r) => Verdict::deny(
            format!("network mode \"proxy\": {}", r.rule),
            "the proxy answers 403",
            Some(r.suggestion),
        ),
    }
}

fn decide_net(policy: &Policy, plan: &Plan, port: u16, connect: bool) -> Verdict {
    let (key, what) = if connect {
        ("connect_tcp", "connect to")
    } else {
        ("bind_tcp", "bind")
    };
    let mode = policy
        .resolved
        .network
        .mode
        .as_ref()
        .map(|m| m.origin.to_string())
        .unwrap_or_else(|| "default".into());
    match &policy.net {
        Network::On => Verdict::allow(format!("network mode \"on\" ({mode})")),
        Network::Proxy(_) if connect => Verdict::deny(
            format!("network mode \"proxy\" ({mode}): only the proxy is reached, by name"),
            "ECONNREFUSED",
            Some("name the host (cordon explain --connect NAME:PORT)".into()),
        ),
        Network::Proxy(_) => Verdict::allow(format!(
            "network mode \"proxy\" ({mode}): a loopback server inside the sandbox (its own network namespace)"
        )),
        Network::Off => Verdict::deny(
            format!("network mode \"off\" ({mode}): only unix sockets"),
            "EAFNOSUPPORT",
            Some(format!(
                "set [network] mode = \"filtered\" with {key} = [{port}], or mode = \"on\""
            )),
        ),
        Network::Filtered {
            connect: c,
            bind: b,
            ..
        } => {
            let list = if connect { c } else { b };
            let origin = if connect {
                &policy.resolved.network.connect_tcp
            } else {
                &policy.resolved.network.bind_tcp
            };
            if list.contains(&port) {
                let at = origin
                    .iter()
                    .find(|i| i.value == port)
                    .map(|i| i.origin.to_string())
                    .unwrap_or_default();
                Verdict::allow(format!("{key} {port} ({at})"))
            } else if plan.tcp.is_none() {
                Verdict::allow(format!(
                    "TCP port rules are not enforced on this kernel (Landlock ABI {})",
                    plan.landlock_abi
                ))
            } else {
                Verdict::deny(
                    format!(
                        "network mode \"filtered\" ({mode}): {port} is not in {key}; TCP {what} other ports is refused"
                    ),
                    "EACCES",
                    Some(format!("add {port} to [network] {key}")),
                )
            }
        }
    }
}

fn decide_syscall(policy: &Policy, name: &str) -> Verdict {
    if crate::syscalls::number(name).is_none() {
        return Verdict::deny(
            format!("`{name}` is not a syscall on {}", std::env::consts::ARCH),
            "ENOSYS",
            None,
        );
    }
    let rules: Vec<_> = policy.syscalls.rules_for(name).collect();
    let Some(first) = rules.first() else {
        return Verdict::allow("not in the filter's deny list".into());
    };
    let origin = first
        .origin
        .clone()
        .map(|o| format!(" ({o})"))
        .unwrap_or_default();
    let text: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
    let suggestion = if matches!(name, "socket" | "socketpair") {
        Some("socket families follow [network] mode".to_string())
    } else {
        Some(format!("add \"{name}\" to [syscalls] allow"))
    };
    let rule = format!("{}{origin}", text.join("; "));
    if rules
        .iter()
        .all(|r| !r.checks.is_empty() || r.supervised.is_some())
    {
        // Refused only for some arguments, or by the supervisor for some
        // targets: say so, and report it as denied for those.
        return Verdict {
            allowed: false,
            rule: format!("refused when: {rule}"),
            errno: Some(first.errno.name()),
            suggestion,
        };
    }
    Verdict::deny(rule, first.errno.name(), suggestion)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::DiskLister;
    use crate::policy::Missing;
    use crate::probe::Host;
    use crate::probe::{Landlock, Userns};
    use crate::profile::Profile;
    use crate::vars::Context;
    use std::collections::BTreeMap;

    fn host(userns: bool) -> Host {
        Host {
            kernel: "test".into(),
            landlock: Landlock::Abi(7),
            seccomp: true,
            user_notif: true,
            userns: if userns {
                Userns::Available
            } else {
                Userns::Unavailable("test".into())
            },
            uid: 1000,
            euid: 1000,
        }
    }

    fn setup(text: &str, ns: bool) -> (tempfile::TempDir, Policy, Plan) {
        let d = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(d.path()).unwrap();
        for f in ["src/main.rs", "secret/key", "bin/tool", "notes.txt"] {
            std::fs::create_dir_all(ws.join(f).parent().unwrap()).unwrap();
            std::fs::write(ws.join(f), "x").unwrap();
        }
        let ctx = Context {
            workspace: ws.clone(),
            cwd: ws.clone(),
            home: Some(ws.clone()),
            tmpdir: "/tmp".into(),
            env: BTreeMap::new(),
        };
        let p = Profile::from_text("t.toml", text, None).unwrap();
        let policy = Policy::new(&p, &ctx, Missing::Skip).unwrap();
        let plan = Plan::new(&policy, &host(ns), None, &DiskLister);
        (d, policy, plan)
    }

    const PROFILE: &str = "[filesystem]\nread = [\"${WORKSPACE}\"]\nwrite = [\"${WORKSPACE}/src\"]\nexec = [\"${WORKSPACE}/bin\"]\ndeny = [\"${WORKSPACE}/secret\"]\n";

    #[test]
    fn the_shared_tmp_and_devices_are_explained_per_mode() {
        let text = "[filesystem]\nread = [\"/\"]\nwrite = [\"${TMPDIR}\"]\n";
        for ns in [false, true] {
            let (_d, policy, plan) = setup(text, ns);
            let v = decide(&policy, &plan, &Query::Fs(Op::Write, "/tmp/x".into()));
            if ns {
                assert!(v.allowed, "{v:?}");
            } else {
                assert!(
                    !v.allowed && v.rule.contains("fresh directory per run"),
                    "{v:?}"
                );
            }
            let v = decide(&policy, &plan, &Query::Fs(Op::Read, "/dev/loop0".into()));
            assert!(!v.allowed && v.rule.starts_with("devices: only"), "{v:?}");
            let v = decide(&policy, &plan, &Query::Fs(Op::Read, "/dev/null".into()));
            assert!(v.allowed, "{v:?}");
        }
    }

    #[test]
    fn suggestions_never_grant_the_home_a_process_or_a_built_in_denial() {
        let (d, policy, _) = setup(PROFILE, true);
        let home = policy.home.clone().unwrap();
        let s =
            |key: &str, p: &str| grant_suggestion(&policy, key, Path::new(p)).unwrap_or_default();
        assert!(s("write", "/").starts_with("none: granting \"/\" whole"));
        let h = home.display().to_string();
        assert!(s("write", &h).starts_with("none: granting"), "{h}");
        let above = home.parent().unwrap().display().to_string();
        assert!(s("write", &above).starts_with("none: granting"), "{above}");
        assert_eq!(
            s("write", &format!("{h}/src")),
            format!("add \"{h}/src\" to [filesystem] write"),
            "below the home is fine"
        );
        assert!(s("read", "/proc/4242/environ").starts_with("none: the path names one process"));
        assert_eq!(
            s(
                "read",
                "/sys/fs/cgroup/memory/user.slice/cordon-9/memory.max"
            ),
            "add \"/sys/fs/cgroup\" to [filesystem] read"
        );
        // The kernel's trees: no write grant anywhere in them, no read grant
        // of a directory holding every process or the debugging interfaces.
        for (key, p) in [
            ("write", "/sys/fs/cgroup/x/y"),
            ("write", "/sys/kernel"),
            ("write", "/proc"),
            ("write", "/proc/sys/kernel/core_pattern"),
            ("exec", "/sys/fs/cgroup"),
            ("read", "/proc"),
            ("read", "/sys"),
            ("read", "/sys/kernel"),
        ] {
            assert!(s(key, p).starts_with("none: "), "{key} {p}: {}", s(key, p));
        }
        assert_eq!(
            s("read", "/sys/devices/system/cpu/online"),
            "add \"/sys/devices/system/cpu/online\" to [filesystem] read"
        );
        assert!(s("read", "/sys/kernel/debug/tracing/trace").starts_with("none: the kernel's"));
        assert_eq!(
            s("read", "/opt/tool"),
            "add \"/opt/tool\" to [filesystem] read"
        );
        drop(d);

        // A built-in credentials entry: never a suggestion to undo it.
        let (d, policy, plan) = {
            let d = tempfile::tempdir().unwrap();
            let ws = std::fs::canonicalize(d.path()).unwrap();
            std::fs::create_dir_all(ws.join(".ssh")).unwrap();
            std::fs::write(ws.join(".ssh/id_rsa"), "k").unwrap();
            let ctx = Context {
                workspace: ws.join("proj"),
                cwd: ws.clone(),
                home: Some(ws.clone()),
                tmpdir: "/tmp".into(),
                env: BTreeMap::new(),
            };
            std::fs::create_dir_all(ws.join("proj")).unwrap();
            let p = Profile::from_text("t.toml", "extends = \"workspace-write\"\n", None).unwrap();
            let policy = Policy::new(&p, &ctx, Missing::Skip).unwrap();
            let plan = Plan::new(&policy, &host(true), None, &DiskLister);
            (d, policy, plan)
        };
        let key = policy.home.as_ref().unwrap().join(".ssh/id_rsa");
        let v = decide(&policy, &plan, &Query::Fs(Op::Read, key.clone()));
        assert!(!v.allowed);
        assert_eq!(v.suggestion.as_deref(), Some(ON_PURPOSE), "{v:?}");
        assert_eq!(
            grant_suggestion(&policy, "read", &key).as_deref(),
            Some(ON_PURPOSE)
        );
        drop(d);
    }

    #[test]
    fn file_system_decisions_name_the_rule_and_the_change() {
        for ns in [false, true] {
            let (d, policy, plan) = setup(PROFILE, ns);
            let ws = std::fs::canonicalize(d.path()).unwrap();
            let v = decide(&policy, &plan, &Query::Fs(Op::Read, ws.join("notes.txt")));
            assert!(v.allowed && v.rule.contains("t.toml:2"), "{v:?}");
            let v = decide(&policy, &plan, &Query::Fs(Op::Read, ws.join("secret/key")));
            assert!(!v.allowed && v.rule.contains("t.toml:5"), "{v:?}");
            assert_eq!(
                v.suggestion.as_deref(),
                Some(
                    format!(
                        "remove \"{}\" from [filesystem] deny",
                        ws.join("secret").display()
                    )
                    .as_str()
                )
            );
            let v = decide(&policy, &plan, &Query::Fs(Op::Write, ws.join("notes.txt")));
            assert!(!v.allowed, "{v:?}");
            assert_eq!(v.errno, Some(if ns { "EROFS" } else { "EACCES" }));
            assert!(v.suggestion.unwrap().contains("[filesystem] write"));
            let v = decide(&policy, &plan, &Query::Fs(Op::Write, ws.join("src/new.rs")));
            assert!(v.allowed, "{v:?}");
            assert!(decide(&policy, &plan, &Query::Fs(Op::Exec, ws.join("bin/tool"))).allowed);
            let v = decide(&policy, &plan, &Query::Fs(Op::Exec, ws.join("src/main.rs")));
            assert!(!v.allowed && v.suggestion.unwrap().contains("[filesystem] exec"));
        }
    }

    #[test]
    fn network_and_syscall_decisions() {
        let (_d, policy, plan) = setup(
            "[network]\nmode = \"filtered\"\nconnect_tcp = [443]\n",
            true,
        );
        assert!(decide(&policy, &plan, &Query::Connect("example.com".into(), 443)).allowed);
        let v = decide(&policy, &plan, &Query::Connect("example.com".into(), 80));
        assert!(
            !v.allowed && v.suggestion.as_deref() == Some("add 80 to [network] connect_tcp"),
            "{v:?}"
        );
        let v = decide(&policy, &plan, &Query::Bind(8080));
        assert!(!v.allowed);
        let v = decide(&policy, &plan, &Query::Syscall("ptrace".into()));
        assert!(
            !v.allowed
                && v.errno == Some("EPERM")
                && v.suggestion.as_deref() == Some("add \"ptrace\" to [syscalls] allow")
        );
        assert!(decide(&policy, &plan, &Query::Syscall("read".into())).allowed);
        let (_d, policy, plan) = setup("[network]\nmode = \"off\"\n", true);
        let v = decide(&policy, &plan, &Query::Connect("127.0.0.1".into(), 80));
        assert!(!v.allowed && v.errno == Some("EAFNOSUPPORT"));
    }
}
