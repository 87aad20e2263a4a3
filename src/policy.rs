//! The validated policy: every check and normalisation of a resolved profile
//! against this machine. Paths are absolute and canonical, names are numbers or
//! enums, limits are typed. No side effects beyond `lstat`, `readlink` and
//! reading the few directories a `deny` glob names.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::profile::{Item, NetMode, NsMode, Origin, PathEntry, Permit, Profile, SecretSource};
use crate::seccomp::SyscallPolicy;
use crate::units::glob_match;
use crate::vars::{Context, unescape};

/// File-system access classes of the profile format, plus LIST for the
/// ancestors that deny carve-outs leave listable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Access(u8);

impl Access {
    pub const NONE: Access = Access(0);
    /// List directories only (what an ancestor of a carved-out path keeps).
    pub const LIST: Access = Access(8);
    /// Read files, list directories.
    pub const READ: Access = Access(1 | 8);
    /// Create, modify, truncate, rename, delete (implies READ).
    pub const WRITE: Access = Access(2 | 1 | 8);
    /// Execute files (implies READ: scripts and the dynamic loader must be read).
    pub const EXEC: Access = Access(4 | 1 | 8);

    pub fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn intersects(self, other: Access) -> bool {
        self.0 & other.0 != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// These rights minus the write bit (what a read_only carve-out keeps).
    pub fn without_write(self) -> Access {
        Access(self.0 & !2)
    }
    pub fn can_write(self) -> bool {
        self.0 & 2 != 0
    }
    pub fn can_exec(self) -> bool {
        self.0 & 4 != 0
    }
    pub fn can_read(self) -> bool {
        self.0 & 1 != 0
    }
    pub fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.0 & 1 != 0 {
            v.push("read");
        } else if self.0 & 8 != 0 {
            v.push("list");
        }
        if self.0 & 2 != 0 {
            v.push("write");
        }
        if self.0 & 4 != 0 {
            v.push("exec");
        }
        v
    }
}

impl std::ops::BitOr for Access {
    type Output = Access;
    fn bitor(self, o: Access) -> Access {
        Access(self.0 | o.0)
    }
}
impl std::ops::BitOrAssign for Access {
    fn bitor_assign(&mut self, o: Access) {
        self.0 |= o.0;
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&self.names().join("+"))
    }
}

/// One grant of the profile: `path` and everything beneath it gets `access`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub path: PathBuf,
    /// What `path` is (grants exist).
    pub kind: Kind,
    pub access: Access,
    pub origin: Origin,
}

/// A path that gets no access at all (`deny`) or stays read-only inside a writable root (`read_only`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carve {
    pub path: PathBuf,
    pub exists: bool,
    /// What `path` is; `Other` when it does not exist.
    pub kind: Kind,
    pub origin: Origin,
}

#[derive(Debug, Clone, Default)]
pub struct FsPolicy {
    /// Existing grant paths, canonical, in profile order.
    pub grants: Vec<Grant>,
    pub deny: Vec<Carve>,
    pub read_only: Vec<Carve>,
    /// Paths taken out of the guard's list (`[filesystem] unprotect`), absolute.
    pub unprotect: Vec<PathBuf>,
    /// Protected paths the guard found at launch and binds read-only with
    /// namespaces, like `read_only` (set by the launcher, not the profile).
    pub guarded: Vec<Carve>,
    /// Grants whose path does not exist here; `warn` unless the entry was optional.
    pub skipped: Vec<(Item<PathBuf>, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// Only AF_UNIX; no TCP bind or connect.
    Off,
    /// Left alone.
    On,
    /// TCP connect to / bind on the listed ports only; with `dns`, UDP too,
    /// to the resolvers of /etc/resolv.conf on port 53 alone (the supervisor
    /// performs every send: `unix_mediate`).
    Filtered {
        connect: Vec<u16>,
        bind: Vec<u16>,
        dns: bool,
    },
    /// Only the names and ports of `rules`, through the launcher's proxy.
    Proxy(crate::netname::Rules),
}

#[derive(Debug, Clone)]
pub struct EnvPolicy {
    pub keep: Vec<String>,
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
    pub secrets: Vec<(String, crate::profile::Secret)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Option<Duration>,
    pub memory: Option<u64>,
    pub processes: Option<u64>,
    pub open_files: Option<u64>,
    pub cpu: Option<Duration>,
    pub file_size: Option<u64>,
    /// Who set `memory` and `processes`: a built-in default is enforced where
    /// it can be and otherwise listed as not enforced, never refused.
    pub memory_from: LimitSource,
    pub processes_from: LimitSource,
}

/// Where a limit comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LimitSource {
    /// A profile of the user's, or the command line: enforced, or the run refused.
    #[default]
    Profile,
    /// A built-in profile's default.
    Builtin,
}

/// Landlock scopes (ABI 6): true means the payload is confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes {
    pub abstract_unix: bool,
    pub signal: bool,
}

/// A validated, absolute policy, ready to be prepared for this kernel.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub source: String,
    pub fs: FsPolicy,
    pub net: Network,
    pub env: EnvPolicy,
    pub limits: Limits,
    pub syscalls: SyscallPolicy,
    pub caps_keep: Vec<caps::Capability>,
    pub namespaces: NsMode,
    pub scopes: Scopes,
    /// Which pathname and abstract unix sockets connect and send may reach.
    pub unix: crate::unix_policy::UnixPolicy,
    pub audit_log: Option<PathBuf>,
    /// `[approve]`: what an approver decides.
    pub gates: crate::gates::Gates,
    pub workspace: PathBuf,
    pub cwd: PathBuf,
    /// What `${TMPDIR}` expanded to (canonical).
    pub tmpdir: PathBuf,
    /// The home directory (canonical), where one is known: suggestions never
    /// grant all of it.
    pub home: Option<PathBuf>,
    /// The run's own temporary directory (namespaces off), exported as TMPDIR;
    /// set by the launcher that made it.
    pub run_tmp: Option<PathBuf>,
    /// The resolved profile (extends merged, variables expanded).
    pub resolved: Profile,
}

/// How strictly to treat grant paths that do not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Skip,
    Error,
}

/// The validated `[approve]` section. The approver program must be one the
/// sandbox cannot rewrite (outside every writable root), and a read gate must
/// name a file the policy denies: anything else would be a gate that opens
/// itself.
fn gates(
    p: &Profile,
    fs: &FsPolicy,
    ctx: &crate::vars::Context,
    net: &Network,
) -> Result<crate::gates::Gates> {
    use crate::gates::{Approver, DomainAsk, ExecGate, Gates, ReadGate};
    let a = &p.approve;
    let mut g = Gates::default();
    for i in &a.exec {
        let mut gate = ExecGate::parse(&unescape(&i.value), i.origin.to_string())
            .map_err(|m| Error::invalid(i.origin.located(), m))?;
        if !gate.words[0].contains(['*', '?']) {
            gate.programs.extend(find_program(&gate.words[0], ctx));
        }
        g.exec.push(gate);
    }
    let writable = |path: &Path| {
        fs.grants
            .iter()
            .filter(|gr| gr.access.can_write())
            .map(|gr| gr.path.as_path())
            .chain([ctx.workspace.as_path(), canonical(&ctx.tmpdir).0.as_path()])
            .any(|w| path.starts_with(w))
    };
    for i in &a.read {
        let path = PathBuf::from(unescape(&i.value.path));
        if !path.is_absolute() {
            return Err(Error::invalid(
                i.origin.located(),
                format!("{} is not an absolute path", path.display()),
            ));
        }
        let (path, exists) = canonical(&path);
        if !exists && i.value.optional {
            continue;
        }
        let denied = fs.deny.iter().any(|c| path.starts_with(&c.path));
        let granted = fs
            .grants
            .iter()
            .any(|gr| gr.access.can_read() && path.starts_with(&gr.path));
        if granted && !denied {
            return Err(Error::invalid(
                i.origin.located(),
                format!(
                    "{} is readable without approval; a read gate names a file the profile denies",
                    path.display()
                ),
            ));
        }
        if writable(&path) {
            return Err(Error::invalid(
                i.origin.located(),
                format!(
                    "{} is inside a writable root of the run, where the payload could swap it",
                    path.display()
                ),
            ));
        }
        g.read.push(ReadGate {
            path,
            origin: i.origin.to_string(),
        });
    }
    if let Some(d) = &a.domains {
        if d.value == DomainAsk::Ask && !matches!(net, Network::Proxy(_)) {
            return Err(Error::invalid(
                d.origin.located(),
                "domains = \"ask\" needs network mode \"proxy\"",
            ));
        }
        g.domains = d.value;
    }
    if let Some(t) = &a.timeout {
        match t.value.0.get() {
            Some(d) if !d.is_zero() => g.timeout = d,
            _ => {
                return Err(Error::invalid(
                    t.origin.located(),
                    "an approver needs some time: a duration such as \"2m\"",
                ));
            }
        }
    }
    if let Some(ap) = &a.approver {
        g.approver_origin = ap.origin.to_string();
        g.approver = match &ap.value {
            Approver::Command(c) => {
                let mut c: Vec<String> = c.iter().map(|w| unescape(w)).collect();
                let program = find_program(&c[0], ctx).ok_or_else(|| {
                    Error::invalid(
                        ap.origin.located(),
                        format!("approver program {} not found", c[0]),
                    )
                })?;
                if writable(&program) {
                    return Err(Error::invalid(
                        ap.origin.located(),
                        format!(
                            "approver program {} is inside a writable root of the run: the payload could rewrite its own approver",
                            program.display()
                        ),
                    ));
                }
                c[0] = program.display().to_string();
                Approver::Command(c)
            }
            other => other.clone(),
        };
    }
    Ok(g)
}

/// An approver's program: a path (made canonical), or a name looked up in
/// the launcher's PATH. Only an executable regular file.
pub fn find_program(name: &str, ctx: &crate::vars::Context) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let ok = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if name.contains('/') {
        let p = if Path::new(name).is_absolute() {
            PathBuf::from(name)
        } else {
            ctx.cwd.join(name)
        };
        ok(&p).then_some(p)
    } else {
        ctx.env
            .get("PATH")
            .map(String::as_str)
            .unwrap_or("/usr/local/bin:/usr/bin:/bin")
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join(name))
            .find(|p| ok(p))
    }?;
    std::fs::canonicalize(found).ok()
}

/// The typed rules of mode "proxy"; an entry that is not a name, a
/// `*.` pattern or an address is an error at its line.
fn proxy_rules(n: &crate::profile::Network) -> Result<crate::netname::Rules> {
    use crate::netname::{DEFAULT_PORTS, Pattern, Rules};
    let patterns = |list: &[Item<String>]| -> Result<Vec<Pattern>> {
        list.iter()
            .map(|i| Pattern::parse(&i.value).map_err(|m| Error::invalid(i.origin.located(), m)))
            .collect()
    };
    let mut ports: Vec<u16> = Vec::new();
    for p in &n.allow_ports {
        if p.value == 0 {
            return Err(Error::invalid(p.origin.located(), "port 0 is no port"));
        }
        if !ports.contains(&p.value) {
            ports.push(p.value);
        }
    }
    if ports.is_empty() {
        ports = DEFAULT_PORTS.to_vec();
    }
    let mut allow = patterns(&n.allow_domains)?;
    for p in &n.presets {
        for d in p.value.domains() {
            allow.push(Pattern::Exact(d.to_string()));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    allow.retain(|p| seen.insert(p.to_string()));
    Ok(Rules {
        allow,
        deny: patterns(&n.deny_domains)?,
        ports,
    })
}

impl Policy {
    /// Expand and validate `profile` for the run described by `ctx`.
    pub fn new(profile: &Profile, ctx: &Context, missing: Missing) -> Result<Policy> {
        let resolved = profile.expand(ctx)?;
        let fs = fs_policy(&resolved, missing)?;
        let net = match resolved.net_mode() {
            NetMode::Off => Network::Off,
            NetMode::On => Network::On,
            NetMode::Filtered => Network::Filtered {
                connect: ports(&resolved.network.connect_tcp),
                bind: ports(&resolved.network.bind_tcp),
                // Until the host is known (sandbox::Prepared::new): with a
                // supervisor for every send, names resolve.
                dns: true,
            },
            NetMode::Proxy => Network::Proxy(proxy_rules(&resolved.network)?),
        };
        if !matches!(net, Network::Proxy(_)) {
            let n = &resolved.network;
            let first = n
                .allow_domains
                .first()
                .or(n.deny_domains.first())
                .map(|i| &i.origin)
                .or(n.allow_ports.first().map(|i| &i.origin))
                .or(n.presets.first().map(|i| &i.origin));
            if let Some(o) = first {
                return Err(Error::invalid(
                    o.located(),
                    "allow_domains, deny_domains, allow_ports and presets need mode = \"proxy\" (or --net proxy)",
                ));
            }
        }
        if !matches!(net, Network::Filtered { .. }) {
            if let Some(p) = resolved
                .network
                .connect_tcp
                .first()
                .or(resolved.network.bind_tcp.first())
            {
                return Err(Error::invalid(
                    p.origin.located(),
                    "connect_tcp and bind_tcp need mode = \"filtered\"",
                ));
            }
        }
        let env = EnvPolicy {
            keep: resolved.env.keep.iter().map(|i| i.value.clone()).collect(),
            remove: resolved
                .env
                .remove
                .iter()
                .map(|i| i.value.clone())
                .collect(),
            set: resolved
                .env
                .set
                .iter()
                .map(|(k, v)| (k.clone(), unescape(&v.value)))
                .collect(),
            secrets: resolved
                .env
                .secrets
                .iter()
                .map(|(k, v)| {
                    let mut secret = v.value.clone();
                    if let SecretSource::File(f) = &secret.source {
                        secret.source = SecretSource::File(unescape(f));
                    }
                    (k.clone(), secret)
                })
                .collect(),
        };
        for (name, item) in resolved
            .env
            .set
            .iter()
            .map(|(k, v)| (k, &v.origin))
            .chain(resolved.env.secrets.iter().map(|(k, v)| (k, &v.origin)))
        {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(Error::invalid(
                    item.located(),
                    format!("invalid variable name `{name}`"),
                ));
            }
        }
        let l = &resolved.limits;
        let limits = Limits {
            timeout: l.timeout.as_ref().and_then(|i| i.value.0.get()),
            memory: l.memory.as_ref().and_then(|i| i.value.0.get()),
            processes: l.processes.as_ref().and_then(|i| i.value.0.get()),
            open_files: l.open_files.as_ref().and_then(|i| i.value.0.get()),
            cpu: l.cpu.as_ref().and_then(|i| i.value.0.get()),
            file_size: l.file_size.as_ref().and_then(|i| i.value.0.get()),
            memory_from: limit_source(l.memory.as_ref().map(|i| &i.origin)),
            processes_from: limit_source(l.processes.as_ref().map(|i| &i.origin)),
        };
        let syscalls = SyscallPolicy::new(&resolved.syscalls, &net)?;
        let mut caps_keep = Vec::new();
        for item in &resolved.capabilities.keep {
            let name = item.value.to_ascii_uppercase();
            let name = if name.starts_with("CAP_") {
                name
            } else {
                format!("CAP_{name}")
            };
            let cap = caps::Capability::from_str(&name).map_err(|_| Error::UnknownCapability {
                origin: item.origin.located(),
                name: item.value.clone(),
            })?;
            if !caps_keep.contains(&cap) {
                caps_keep.push(cap);
            }
        }
        let scopes = Scopes {
            abstract_unix: resolved.network.abstract_unix.as_ref().map(|i| i.value)
                != Some(Permit::Allow),
            signal: resolved.process.signal_outside.as_ref().map(|i| i.value)
                != Some(Permit::Allow),
        };
        let unix = crate::unix_policy::UnixPolicy::new(
            &resolved.network.unix_connect,
            &fs,
            !scopes.abstract_unix,
        )?;
        let audit_log = resolved
            .audit
            .log
            .as_ref()
            .map(|i| PathBuf::from(unescape(&i.value)));
        let gates = gates(&resolved, &fs, ctx, &net)?;
        Ok(Policy {
            name: profile.name.clone(),
            source: profile.source.clone(),
            fs,
            net,
            env,
            limits,
            syscalls,
            caps_keep,
            namespaces: resolved.ns_mode(),
            scopes,
            unix,
            audit_log,
            gates,
            workspace: ctx.workspace.clone(),
            cwd: ctx.cwd.clone(),
            tmpdir: canonical(&ctx.tmpdir).0,
            home: ctx.home.as_deref().map(|h| canonical(h).0),
            run_tmp: None,
            resolved,
        })
    }

    /// Warnings to print once per run: grant paths that do not exist here.
    pub fn warnings(&self) -> Vec<String> {
        self.fs
            .skipped
            .iter()
            .filter(|(_, warn)| *warn)
            .map(|(i, _)| {
                format!(
                    "skipping {} ({}): does not exist",
                    i.value.display(),
                    i.origin
                )
            })
            .collect()
    }
}

/// A limit set in a built-in profile (its origin is `builtin/NAME.toml`).
fn limit_source(origin: Option<&crate::profile::Origin>) -> LimitSource {
    match origin {
        Some(o) if o.source.starts_with("builtin/") => LimitSource::Builtin,
        _ => LimitSource::Profile,
    }
}

fn ports(items: &[Item<u16>]) -> Vec<u16> {
    let set: BTreeSet<u16> = items.iter().map(|i| i.value).collect();
    set.into_iter().collect()
}

/// Whether `p` is `base` or lies beneath it. Both must be clean absolute paths
/// (as canonical ones are): a byte comparison, where `Path::starts_with` walks
/// components — this runs for every entry against every carve-out.
/// Top-level system directories: a workspace is writable and executable, so any
/// of these (or the whole tree above them) as a workspace hands the payload the
/// system. Pseudo-filesystems and the boot and program trees are refused at any
/// depth, since nothing beneath them is a project.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/dev",
    "/proc", "/sys", "/run", "/var", "/opt", "/srv", "/home", "/root", "/tmp", "/mnt", "/media",
    "/snap", "/nix",
];
const SYSTEM_TREES: &[&str] = &[
    "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/dev",
    "/proc", "/sys",
];

/// Why `ws` (canonical) is no place for a workspace, or None. The home directory
/// itself (and anything above it) is refused: the profiles' `deny` lists guard
/// named secrets, not a home that is writable and executable as a whole.
pub fn workspace_hazard(ws: &Path, home: Option<&Path>) -> Option<String> {
    if ws == Path::new("/") {
        return Some("the root of the file system".into());
    }
    if SYSTEM_DIRS.iter().any(|d| ws == Path::new(d)) {
        return Some("a system directory".into());
    }
    if let Some(t) = SYSTEM_TREES.iter().find(|t| beneath(ws, Path::new(t))) {
        return Some(format!("inside the system directory {t}"));
    }
    if let Some(home) = home.filter(|h| h.is_absolute() && *h != Path::new("/")) {
        let home = canonical(home).0;
        if ws == home {
            return Some("the home directory itself".into());
        }
        if beneath(&home, ws) {
            return Some(format!("above the home directory {}", home.display()));
        }
    }
    None
}

pub fn beneath(p: &Path, base: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (p, b) = (p.as_os_str().as_bytes(), base.as_os_str().as_bytes());
    b == b"/" || (p.starts_with(b) && (p.len() == b.len() || p[b.len()] == b'/'))
}

/// Lexically clean an absolute path: drop "." and resolve ".." without touching the disk.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Resolve the absolute `path` as the kernel walks it, component by component,
/// following symlinks (40 at most, then a link is taken as a plain name), and
/// show `visit` every path met on the way with its `lstat`, before it is
/// followed: `visit` may stop the walk with a value of its own (Err).
pub fn walk<T>(
    path: &Path,
    visit: &mut dyn FnMut(&Path, &std::io::Result<std::fs::Metadata>) -> Option<T>,
) -> std::result::Result<PathBuf, T> {
    use std::path::Component;
    let parts = |p: &Path| -> Vec<std::ffi::OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect()
    };
    let mut rest: std::collections::VecDeque<std::ffi::OsString> = parts(path).into();
    let mut cur = PathBuf::from("/");
    let mut hops = 0;
    while let Some(c) = rest.pop_front() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        let meta = std::fs::symlink_metadata(&next);
        if let Some(stop) = visit(&next, &meta) {
            return Err(stop);
        }
        let link = meta.as_ref().is_ok_and(|m| m.file_type().is_symlink());
        match link.then(|| std::fs::read_link(&next)) {
            Some(Ok(target)) if hops < 40 => {
                hops += 1;
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                let mut comps = parts(&target);
                comps.extend(rest.drain(..));
                rest = comps.into();
            }
            _ => cur = next,
        }
    }
    Ok(cur)
}

/// The canonical form of `path`: symlinks resolved for the longest prefix that
/// exists, the rest cleaned lexically. Returns whether the whole path exists.
pub fn canonical(path: &Path) -> (PathBuf, bool) {
    let (p, kind) = Canon::default().get_kind(path);
    (p, kind.is_some())
}

/// What an existing canonical path is, as the `lstat` that found it said: the
/// plan needs no `stat` of its own (directory rules, device nodes, sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A unix socket.
    Socket,
    /// A character or block device.
    Device,
    Other,
}

impl Kind {
    fn of(t: std::fs::FileType) -> Kind {
        use std::os::unix::fs::FileTypeExt;
        if t.is_dir() {
            Kind::Dir
        } else if t.is_socket() {
            Kind::Socket
        } else if t.is_char_device() || t.is_block_device() {
            Kind::Device
        } else {
            Kind::Other
        }
    }
}

/// How many symlinks one lookup follows before giving up, as the kernel's ELOOP.
const MAX_LINKS: u32 = 40;

/// Canonical paths with the directories on the way cached: one `lstat` per new
/// component, where `realpath(3)` would `readlink` every component of every path.
/// A symlink is resolved here too (one `readlink`, then its target component by
/// component through the same cache), so that what it names is known as well.
///
/// A directory the caller will ask about again and again (the home directory,
/// where the built-ins name dozens of credentials that mostly do not exist;
/// see [`Canon::list`]) is read once instead: its entries' types answer every
/// lookup in it, and a name it lacks costs nothing.
#[derive(Debug, Default)]
pub struct Canon {
    /// Keyed by the path's bytes: hashing a `Path` walks its components. Holds
    /// both the paths asked for and the canonical ones met on the way.
    cache: std::collections::HashMap<Vec<u8>, (PathBuf, Option<Kind>), PathHash>,
    /// Per canonical directory: lookups so far, or its entries once read.
    dirs: std::collections::HashMap<Vec<u8>, Listing, PathHash>,
}

#[derive(Debug)]
enum Listing {
    /// To be read at the next lookup in it.
    Wanted,
    Read(std::collections::HashMap<Vec<u8>, std::fs::FileType, PathHash>),
    /// Too large to be worth reading, or unreadable: lstat each name.
    No,
}

/// Lookups in one directory from which reading it whole is cheaper: reading
/// costs about as much as a dozen failed lstats where entries are hashed
/// (ext4's htree hashes every name of a directory it lists).
const LIST_FROM: usize = 16;
/// Larger directories are not read: lstat per name is cheaper there.
const LIST_MAX: usize = 1024;

/// What the canonical directory `dir` holds as `name` (`full` is both):
/// None if nothing (or unreadable).
fn lstat_in(
    dirs: &mut std::collections::HashMap<Vec<u8>, Listing, PathHash>,
    dir: &[u8],
    name: &[u8],
    full: &Path,
) -> Option<std::fs::FileType> {
    use std::os::unix::ffi::OsStrExt;
    let state = dirs.get_mut(dir);
    match state {
        Some(Listing::Read(entries)) => entries.get(name).copied(),
        Some(state @ Listing::Wanted) => {
            *state = read_listing(Path::new(std::ffi::OsStr::from_bytes(dir)))
                .map_or(Listing::No, Listing::Read);
            match state {
                Listing::Read(entries) => entries.get(name).copied(),
                _ => std::fs::symlink_metadata(full).ok().map(|m| m.file_type()),
            }
        }
        _ => std::fs::symlink_metadata(full).ok().map(|m| m.file_type()),
    }
}

fn read_listing(
    dir: &Path,
) -> Option<std::collections::HashMap<Vec<u8>, std::fs::FileType, PathHash>> {
    use std::os::unix::ffi::OsStringExt;
    let mut out = std::collections::HashMap::default();
    for e in std::fs::read_dir(dir).ok()? {
        let e = e.ok()?;
        // d_type from getdents; std lstats only where it is DT_UNKNOWN.
        out.insert(e.file_name().into_vec(), e.file_type().ok()?);
        if out.len() > LIST_MAX {
            return None;
        }
    }
    Some(out)
}

/// FxHash (rustc's) for Canon's keys: SipHash was a tenth of its time, five
/// lookups per path. The keys are the paths of one profile, so resistance to
/// crafted collisions buys nothing here.
type PathHash = std::hash::BuildHasherDefault<FxHasher>;

#[derive(Debug, Default)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl Canon {
    /// Read the directories that hold at least [`LIST_FROM`] of `paths`
    /// (absolute) at their first lookup, instead of lstat per name.
    pub fn list<'a>(&mut self, paths: impl Iterator<Item = &'a Path>) {
        use std::os::unix::ffi::OsStrExt;
        let mut count: std::collections::HashMap<&[u8], usize, PathHash> = Default::default();
        for p in paths {
            let b = p.as_os_str().as_bytes();
            if let Some(slash) = b.iter().rposition(|&c| c == b'/') {
                *count.entry(&b[..slash.max(1)]).or_default() += 1;
            }
        }
        for (dir, n) in count {
            if n >= LIST_FROM {
                let (canonical, is_dir) = self.get(Path::new(std::ffi::OsStr::from_bytes(dir)));
                if is_dir {
                    self.dirs
                        .entry(canonical.into_os_string().into_encoded_bytes())
                        .or_insert(Listing::Wanted);
                }
            }
        }
    }

    pub fn get(&mut self, path: &Path) -> (PathBuf, bool) {
        let (p, kind) = self.get_kind(path);
        (p, kind.is_some())
    }

    /// The canonical form of `path` and what it is, or None when it does not exist.
    pub fn get_kind(&mut self, path: &Path) -> (PathBuf, Option<Kind>) {
        use std::os::unix::ffi::OsStrExt;
        let b = path.as_os_str().as_bytes();
        // Clean already (no "", "." or ".." component): the common case, no copy.
        let clean_already = b.first() == Some(&b'/')
            && (b.len() == 1
                || b[1..]
                    .split(|&c| c == b'/')
                    .all(|seg| !matches!(seg, b"" | b"." | b"..")));
        if clean_already {
            self.get_clean(b, 0)
        } else {
            let cleaned = clean(path);
            self.get_clean(cleaned.as_os_str().as_bytes(), 0)
        }
    }

    fn get_clean(&mut self, b: &[u8], links: u32) -> (PathBuf, Option<Kind>) {
        let kind = self.ensure(b, links);
        (self.cached(b).to_path_buf(), kind)
    }

    /// The cached canonical form of `b`, which [`Canon::ensure`] has resolved.
    fn cached(&self, b: &[u8]) -> &Path {
        if b == b"/" {
            Path::new("/")
        } else {
            &self.cache[b].0
        }
    }

    /// Resolve `b` (absolute and clean) into the cache; returns what it is. The
    /// parent is looked up in place rather than copied out: one allocation for
    /// the path and one for the key per new entry.
    fn ensure(&mut self, b: &[u8], links: u32) -> Option<Kind> {
        use std::ffi::OsStr;
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let Some(slash) = b.iter().rposition(|&c| c == b'/').filter(|_| b.len() > 1) else {
            return Some(Kind::Dir);
        };
        if let Some((_, kind)) = self.cache.get(b) {
            return *kind;
        }
        let (parent, name) = (&b[..slash.max(1)], &b[slash + 1..]);
        let dir_kind = self.ensure(parent, links);
        // `full` is the canonical parent, a slash (unless it is "/") and the name:
        // byte work, where Path::join/parent/file_name parse components.
        let dir = self.cached(parent).as_os_str().as_bytes();
        let dir_len = dir.len();
        let mut full = Vec::with_capacity(dir_len + 1 + name.len());
        full.extend_from_slice(dir);
        if dir_len > 1 {
            full.push(b'/');
        }
        full.extend_from_slice(name);
        // Reached through a link (or spelled otherwise): `full`, canonical up to its
        // last component, resolves the same, and later lookups of it cost nothing.
        let other_spelling = (full != b).then(|| full.clone());
        let full = PathBuf::from(std::ffi::OsString::from_vec(full));
        let out = if dir_kind != Some(Kind::Dir) {
            // Nothing exists beneath what is not a directory (ENOENT or ENOTDIR).
            (full, None)
        } else {
            let dir = &full.as_os_str().as_bytes()[..dir_len];
            match lstat_in(&mut self.dirs, dir, name, &full) {
                None => (full, None),
                Some(t) if t.is_symlink() => {
                    let dir = PathBuf::from(OsStr::from_bytes(dir));
                    match self.follow(&dir, &full, links) {
                        Some(target) => target,
                        // A dangling link, or a loop: what it names does not exist.
                        None => (full, None),
                    }
                }
                Some(t) => (full, Some(Kind::of(t))),
            }
        };
        let kind = out.1;
        if let Some(key) = other_spelling {
            self.cache.insert(key, out.clone());
        }
        self.cache.insert(b.to_vec(), out);
        kind
    }

    /// Resolve the symlink `link` (in the canonical directory `dir`) as the kernel
    /// would: ".." applies to what the components before it resolved to. None when
    /// the target does not exist, or after [`MAX_LINKS`] links.
    fn follow(&mut self, dir: &Path, link: &Path, links: u32) -> Option<(PathBuf, Option<Kind>)> {
        use std::os::unix::ffi::OsStrExt;
        if links >= MAX_LINKS {
            return None;
        }
        let target = std::fs::read_link(link).ok()?;
        let t = target.as_os_str().as_bytes();
        let (mut cur, mut kind) = if t.first() == Some(&b'/') {
            (PathBuf::from("/"), Some(Kind::Dir))
        } else {
            (dir.to_path_buf(), Some(Kind::Dir))
        };
        for seg in t.split(|&c| c == b'/') {
            match seg {
                b"" | b"." => {}
                b".." => {
                    // `cur` is canonical: its lexical parent is its real parent.
                    if kind != Some(Kind::Dir) {
                        return None;
                    }
                    cur.pop();
                }
                name => {
                    if kind != Some(Kind::Dir) {
                        return None;
                    }
                    let mut key = std::os::unix::ffi::OsStringExt::into_vec(cur.into_os_string());
                    if key != b"/" {
                        key.push(b'/');
                    }
                    key.extend_from_slice(name);
                    (cur, kind) = self.get_clean(&key, links + 1);
                }
            }
        }
        // "dir/" names a directory or nothing.
        if t.ends_with(b"/") && kind != Some(Kind::Dir) {
            return None;
        }
        kind.map(|k| (cur, Some(k)))
    }
}

fn absolute(item: &Item<PathEntry>) -> Result<PathBuf> {
    let p = PathBuf::from(unescape(&item.value.path));
    if !p.is_absolute() {
        return Err(Error::invalid(
            item.origin.located(),
            format!(
                "path `{}` must be absolute (or start with ${{WORKSPACE}}, ${{HOME}}, ~/ ...)",
                p.display()
            ),
        ));
    }
    Ok(p)
}

fn fs_policy(p: &Profile, missing: Missing) -> Result<FsPolicy> {
    let mut fs = FsPolicy::default();
    let mut canon = Canon::default();
    {
        let f = &p.filesystem;
        let all: Vec<PathBuf> = [&f.read, &f.write, &f.exec, &f.deny, &f.read_only]
            .into_iter()
            .flatten()
            .filter_map(|i| absolute(i).ok())
            .collect();
        canon.list(all.iter().map(|p| p.as_path()));
    }
    let classes = [
        (&p.filesystem.read, Access::READ),
        (&p.filesystem.write, Access::WRITE),
        (&p.filesystem.exec, Access::EXEC),
    ];
    for (list, access) in classes {
        for item in list {
            let path = absolute(item)?;
            let (canonical, kind) = canon.get_kind(&path);
            if let Some(kind) = kind {
                fs.grants.push(Grant {
                    path: canonical,
                    kind,
                    access,
                    origin: item.origin.clone(),
                });
            } else if missing == Missing::Error && !item.value.optional {
                return Err(Error::MissingPath {
                    origin: item.origin.located(),
                    path,
                });
            } else {
                fs.skipped.push((
                    Item {
                        value: path,
                        origin: item.origin.clone(),
                    },
                    !item.value.optional,
                ));
            }
        }
    }
    for (list, out) in [
        (&p.filesystem.deny, &mut fs.deny),
        (&p.filesystem.read_only, &mut fs.read_only),
    ] {
        for item in list {
            let path = absolute(item)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if crate::units::is_glob(&name) {
                // A glob in the last component matches entries of one directory.
                let parent = path.parent().unwrap_or(Path::new("/"));
                if parent.to_string_lossy().contains(['*', '?']) {
                    return Err(Error::invalid(
                        item.origin.located(),
                        "only the last path component may contain * or ?",
                    ));
                }
                let (dir, _) = canon.get(parent);
                let mut matched: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| glob_match(&name, &e.file_name().to_string_lossy()))
                    .map(|e| e.path())
                    .collect();
                matched.sort();
                for m in matched {
                    let (path, kind) = canon.get_kind(&m);
                    out.push(Carve {
                        path,
                        exists: kind.is_some(),
                        kind: kind.unwrap_or(Kind::Other),
                        origin: item.origin.clone(),
                    });
                }
            } else {
                let (path, kind) = canon.get_kind(&path);
                out.push(Carve {
                    path,
                    exists: kind.is_some(),
                    kind: kind.unwrap_or(Kind::Other),
                    origin: item.origin.clone(),
                });
            }
        }
    }
    for item in &p.filesystem.unprotect {
        // The guard names paths by their parent's canonical path and their own
        // name (a protected link is itself protected, not followed).
        let path = clean(&absolute(item)?);
        let name = path.file_name().map(|n| n.to_os_string());
        let (parent, _) = canon.get_kind(path.parent().unwrap_or(Path::new("/")));
        fs.unprotect
            .push(name.map(|n| parent.join(n)).unwrap_or(path));
    }
    Ok(fs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use std::collections::BTreeMap;

    #[test]
    fn broad_workspaces_are_refused() {
        let home = Some(Path::new("/home/u"));
        for (ws, why) in [
            ("/", "the root of the file system"),
            ("/usr", "a system directory"),
            ("/tmp", "a system directory"),
            ("/home", "a system directory"),
            ("/etc/nginx", "inside the system directory /etc"),
            ("/proc/self", "inside the system directory /proc"),
            ("/home/u", "the home directory itself"),
        ] {
            assert_eq!(
                workspace_hazard(Path::new(ws), home).as_deref(),
                Some(why),
                "{ws}"
            );
        }
        for ws in [
            "/home/u/src/app",
            "/tmp/x",
            "/srv/app",
            "/var/lib/ci/build",
            "/work/main",
        ] {
            assert_eq!(workspace_hazard(Path::new(ws), home), None, "{ws}");
        }
        // Above the home directory.
        assert_eq!(
            workspace_hazard(Path::new("/data"), Some(Path::new("/data/users/u"))).as_deref(),
            Some("above the home directory /data/users/u")
        );
        // HOME unset or "/" (some service users): no home check, no panic.
        assert_eq!(workspace_hazard(Path::new("/work"), None), None);
        assert_eq!(
            workspace_hazard(Path::new("/work"), Some(Path::new("/"))),
            None
        );
    }

    fn ctx(ws: &Path) -> Context {
        Context {
            workspace: ws.to_path_buf(),
            cwd: ws.to_path_buf(),
            home: Some(ws.join("home")),
            tmpdir: "/tmp".into(),
            env: BTreeMap::new(),
        }
    }

    #[test]
    fn paths_are_canonical_and_missing_ones_skipped() {
        let d = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(ws.join("real")).unwrap();
        std::os::unix::fs::symlink(ws.join("real"), ws.join("link")).unwrap();
        let text = "[filesystem]\nread = [\"${WORKSPACE}/link\", \"${WORKSPACE}/gone\", { path = \"${WORKSPACE}/opt\", optional = true }]\n";
        let p = Profile::from_text("t", text, None).unwrap();
        let pol = Policy::new(&p, &ctx(&ws), Missing::Skip).unwrap();
        assert_eq!(pol.fs.grants[0].path, ws.join("real"));
        assert_eq!(pol.fs.skipped.len(), 2);
        assert_eq!(
            pol.warnings().len(),
            1,
            "optional entries are skipped silently"
        );
        assert!(pol.warnings()[0].contains("gone"));
        let e = Policy::new(&p, &ctx(&ws), Missing::Error)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gone") && e.contains("does not exist"), "{e}");
    }

    #[test]
    fn relative_paths_are_refused() {
        let p = Profile::from_text("t", "[filesystem]\nread = [\"src\"]\n", None).unwrap();
        let e = Policy::new(&p, &ctx(Path::new("/")), Missing::Skip)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("loading profile t: line 2, column 9: key \"filesystem.read\": path `src` must be absolute"),
            "{e}"
        );
    }

    #[test]
    fn deny_globs_expand_in_one_directory() {
        let d = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(d.path()).unwrap();
        for f in ["credentials", "credentials.toml", "config.toml"] {
            std::fs::write(ws.join(f), "").unwrap();
        }
        let p = Profile::from_text(
            "t",
            "[filesystem]\ndeny = [\"${WORKSPACE}/credentials*\"]\n",
            None,
        )
        .unwrap();
        let pol = Policy::new(&p, &ctx(&ws), Missing::Skip).unwrap();
        let denied: Vec<_> = pol
            .fs
            .deny
            .iter()
            .map(|c| c.path.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(denied, ["credentials", "credentials.toml"]);
    }

    #[test]
    fn unknown_capability_and_ports_outside_filtered() {
        let p = Profile::from_text("t", "[capabilities]\nkeep = [\"CAP_NOPE\"]\n", None).unwrap();
        assert!(
            Policy::new(&p, &ctx(Path::new("/")), Missing::Skip)
                .unwrap_err()
                .to_string()
                .contains("CAP_NOPE")
        );
        let p = Profile::from_text("t", "[capabilities]\nkeep = [\"net_bind_service\"]\n", None)
            .unwrap();
        assert_eq!(
            Policy::new(&p, &ctx(Path::new("/")), Missing::Skip)
                .unwrap()
                .caps_keep,
            [caps::Capability::CAP_NET_BIND_SERVICE]
        );
        let p = Profile::from_text(
            "t",
            "[network]\nmode = \"off\"\nconnect_tcp = [443]\n",
            None,
        )
        .unwrap();
        assert!(
            Policy::new(&p, &ctx(Path::new("/")), Missing::Skip)
                .unwrap_err()
                .to_string()
                .contains("filtered")
        );
    }

    #[test]
    fn canon_answers_from_a_directory_it_read_as_from_lstat() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(root.join("dir")).unwrap();
        std::fs::write(root.join("file"), "").unwrap();
        std::os::unix::fs::symlink("dir", root.join("rel-link")).unwrap();
        std::os::unix::fs::symlink("missing", root.join("dangling")).unwrap();
        std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
        let names = [
            "absent1", "absent2", "absent3", "dir", "file", "rel-link", "dangling", "sock",
            "absent4", "dir/x",
        ];
        // One Canon per name lstats; the shared one reads the directory.
        let mut shared = Canon::default();
        let mut many: Vec<PathBuf> = names.iter().map(|n| root.join(n)).collect();
        many.resize(LIST_FROM + 1, root.join("absent1"));
        shared.list(many.iter().map(|p| p.as_path()));
        for n in names {
            let want = Canon::default().get_kind(&root.join(n));
            assert_eq!(shared.get_kind(&root.join(n)), want, "{n}");
        }
        assert!(matches!(
            shared.dirs.get(root.as_os_str().as_encoded_bytes()),
            Some(Listing::Read(_))
        ));
        assert_eq!(
            shared.get_kind(&root.join("rel-link")),
            (root.join("dir"), Some(Kind::Dir))
        );
        assert_eq!(shared.get_kind(&root.join("sock")).1, Some(Kind::Socket));
        assert_eq!(shared.get_kind(&root.join("dangling")).1, None);
    }

    #[test]
    fn canon_resolves_links_and_caches() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        let mut c = Canon::default();
        assert_eq!(c.get(&root.join("link/x")), (root.join("real/x"), false));
        assert_eq!(c.get(&root.join("link")), (root.join("real"), true));
        assert_eq!(
            c.get(&root.join("./real/../real")),
            (root.join("real"), true)
        );
        assert_eq!(c.get(Path::new("/")), (PathBuf::from("/"), true));
        assert_eq!(
            c.get(Path::new("/nonexistent-cordon/a")),
            (PathBuf::from("/nonexistent-cordon/a"), false)
        );
    }

    #[test]
    fn canon_follows_links_as_the_kernel_does() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        std::fs::write(root.join("real/f"), "").unwrap();
        std::fs::write(root.join("x"), "").unwrap();
        // ".." after a link applies to the link's target, not lexically.
        symlink("real/sub", root.join("a")).unwrap();
        symlink("a/../f", root.join("up")).unwrap();
        symlink(root.join("real"), root.join("abs")).unwrap();
        symlink("abs/sub/../../x", root.join("chain")).unwrap();
        symlink("x/", root.join("slash")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        symlink("nowhere", root.join("dangling")).unwrap();
        let mut c = Canon::default();
        for name in [
            "a", "up", "abs", "chain", "slash", "loop1", "dangling", "abs/f",
        ] {
            let p = root.join(name);
            let (got, kind) = c.get_kind(&p);
            match std::fs::canonicalize(&p) {
                Ok(want) => {
                    assert_eq!(got, want, "{name}");
                    let dir = std::fs::metadata(&want).unwrap().is_dir();
                    assert_eq!(
                        kind,
                        Some(if dir { Kind::Dir } else { Kind::Other }),
                        "{name}"
                    );
                }
                Err(_) => assert_eq!((got, kind), (p, None), "{name}"),
            }
        }
        assert_eq!(c.get_kind(Path::new("/dev/null")).1, Some(Kind::Device));
    }

    #[test]
    fn beneath_is_a_component_prefix() {
        assert!(beneath(Path::new("/a/b"), Path::new("/a")));
        assert!(beneath(Path::new("/a"), Path::new("/a")));
        assert!(beneath(Path::new("/a"), Path::new("/")));
        assert!(!beneath(Path::new("/ab"), Path::new("/a")));
        assert!(!beneath(Path::new("/a"), Path::new("/a/b")));
    }

    #[test]
    fn clean_is_lexical() {
        assert_eq!(clean(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(clean(Path::new("/../x")), PathBuf::from("/x"));
    }
}
