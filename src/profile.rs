//! Profiles: the serde mirror of the TOML, the built-in profiles, `extends`
//! resolution and merging, and the command-line overrides layered on top.
//!
//! Everything here is parsing and merging: no syscalls beyond reading the profile
//! files. Every value keeps the file and line it came from ([`Origin`]) so that
//! `explain` and error messages can point at the line that decided.
//!
//! The built-ins are parsed at build time ([`precompiled`]); files at run time.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Result};
use crate::units::{Count, HumanDuration, HumanSize};

mod precompiled;
mod repo_local;
pub use repo_local::FILE as REPO_LOCAL;

/// The built-in profiles, embedded in the binary: (name, TOML text).
pub const BUILTINS: &[(&str, &str)] = &[
    ("read-only", include_str!("../profiles/read-only.toml")),
    (
        "workspace-write",
        include_str!("../profiles/workspace-write.toml"),
    ),
    ("online", include_str!("../profiles/online.toml")),
    ("strict", include_str!("../profiles/strict.toml")),
];

/// The profile `cordon run` uses when `-p` is not given.
pub const DEFAULT_PROFILE: &str = "workspace-write";

pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

pub fn builtin_names() -> String {
    BUILTINS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a value came from: a profile file (or built-in), line, column and key,
/// or the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: Arc<str>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub key: Option<&'static str>,
}

impl Origin {
    pub fn command_line(flag: &str) -> Self {
        Origin {
            source: format!("command line ({flag})").into(),
            line: None,
            column: None,
            key: None,
        }
    }

    /// The prefix of an error about this value: file, line, column and key, in
    /// the same form as a syntax error's.
    pub fn located(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => {
                let key = self
                    .key
                    .map(|k| format!(": key \"{k}\""))
                    .unwrap_or_default();
                format!("loading profile {}: line {l}, column {c}{key}", self.source)
            }
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.source),
            None => f.write_str(&self.source),
        }
    }
}

/// A value with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T: Serialize> Serialize for Item<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

// ----------------------------------------------------------------------------
// Typed enums of the schema (never strings after parsing)
// ----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetMode {
    /// Only AF_UNIX sockets; no TCP bind or connect; a network namespace where available.
    Off,
    /// The network is left alone (socket families are still limited by the filter).
    On,
    /// TCP to `connect_tcp` ports and bind to `bind_tcp` ports only (Landlock ABI 4).
    Filtered,
    /// Only names in `allow_domains` (on `allow_ports`), through a proxy the
    /// launcher runs; names resolve through the launcher (see `netname`, `proxy`).
    Proxy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permit {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NsMode {
    /// Use user, mount, PID (and network) namespaces where the kernel allows.
    Auto,
    /// Refuse to run where namespaces are unavailable.
    Required,
    /// Landlock and seccomp alone.
    Off,
}

/// One path entry: a plain string, or `{ path = "...", optional = true }`.
/// An optional path that does not exist on this machine is skipped silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathEntry {
    pub path: String,
    pub optional: bool,
}

impl Serialize for PathEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.optional {
            #[derive(Serialize)]
            struct T<'a> {
                path: &'a str,
                optional: bool,
            }
            T {
                path: &self.path,
                optional: true,
            }
            .serialize(s)
        } else {
            s.serialize_str(&self.path)
        }
    }
}

impl<'de> Deserialize<'de> for PathEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PathEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path string or { path = \"...\", optional = true }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<PathEntry, E> {
                Ok(PathEntry {
                    path: v.to_string(),
                    optional: false,
                })
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<PathEntry, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct T {
                    path: String,
                    #[serde(default)]
                    optional: bool,
                }
                let t = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(PathEntry {
                    path: t.path,
                    optional: t.optional,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Where a secret's value comes from: a file, or one named host variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Read the value from this file (trailing newline removed).
    File(String),
    /// Copy the value of this variable from cordon's own environment.
    From(String),
}

/// A secret injected by name: `{ file = "PATH" }` or `{ from = "HOST_VAR" }`,
/// with `optional = true` when a missing file or unset variable leaves the
/// variable out instead of refusing the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub source: SecretSource,
    pub optional: bool,
}

impl Secret {
    pub fn required(source: SecretSource) -> Secret {
        Secret {
            source,
            optional: false,
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            file: Option<String>,
            from: Option<String>,
            #[serde(default)]
            optional: bool,
        }
        let r = Raw::deserialize(d)?;
        let source = match (r.file, r.from) {
            (Some(f), None) => SecretSource::File(f),
            (None, Some(v)) => SecretSource::From(v),
            _ => {
                return Err(serde::de::Error::custom(
                    "a secret names one source: { file = \"PATH\" } or { from = \"HOST_VAR\" }",
                ));
            }
        };
        Ok(Secret {
            source,
            optional: r.optional,
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match &self.source {
            SecretSource::File(f) => m.serialize_entry("file", f)?,
            SecretSource::From(v) => m.serialize_entry("from", v)?,
        }
        if self.optional {
            m.serialize_entry("optional", &true)?;
        }
        m.end()
    }
}

// ----------------------------------------------------------------------------
// Raw file types: one profile file as written
// ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    description: Option<String>,
    extends: Option<Spanned<Extends>>,
    filesystem: Option<RawFilesystem>,
    network: Option<RawNetwork>,
    env: Option<RawEnv>,
    limits: Option<RawLimits>,
    syscalls: Option<RawSyscalls>,
    capabilities: Option<RawCapabilities>,
    namespaces: Option<RawNamespaces>,
    process: Option<RawProcess>,
    audit: Option<RawAudit>,
    approve: Option<RawApprove>,
}

#[derive(Debug)]
struct Extends(Vec<String>);

impl<'de> Deserialize<'de> for Extends {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Extends;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a profile name or path, or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Extends, E> {
                Ok(Extends(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Extends, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Extends(out))
            }
        }
        d.deserialize_any(V)
    }
}

type List<T> = Option<Vec<Spanned<T>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilesystem {
    read: List<PathEntry>,
    write: List<PathEntry>,
    exec: List<PathEntry>,
    deny: List<PathEntry>,
    read_only: List<PathEntry>,
    unprotect: List<PathEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    mode: Option<Spanned<NetMode>>,
    connect_tcp: List<u16>,
    bind_tcp: List<u16>,
    abstract_unix: Option<Spanned<Permit>>,
    unix_connect: List<PathEntry>,
    allow_domains: List<String>,
    deny_domains: List<String>,
    allow_ports: List<u16>,
    presets: List<crate::netname::Preset>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    keep: List<String>,
    remove: List<String>,
    set: Option<BTreeMap<String, Spanned<String>>>,
    secrets: Option<BTreeMap<String, Spanned<Secret>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    timeout: Option<Spanned<HumanDuration>>,
    memory: Option<Spanned<HumanSize>>,
    processes: Option<Spanned<Count>>,
    open_files: Option<Spanned<Count>>,
    cpu: Option<Spanned<HumanDuration>>,
    file_size: Option<Spanned<HumanSize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSyscalls {
    deny: List<String>,
    allow: List<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapabilities {
    keep: List<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamespaces {
    mode: Option<Spanned<NsMode>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    signal_outside: Option<Spanned<Permit>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    log: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprove {
    exec: List<String>,
    read: List<PathEntry>,
    domains: Option<Spanned<crate::gates::DomainAsk>>,
    approver: Option<Spanned<crate::gates::Approver>>,
    timeout: Option<Spanned<HumanDuration>>,
}

// ----------------------------------------------------------------------------
// The merged profile
// ----------------------------------------------------------------------------

/// A profile with `extends` merged and command-line overrides applied.
/// Variables are not expanded yet (see [`Profile::expand`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Profile {
    /// Name shown to the user: the built-in name or the path given.
    #[serde(skip)]
    pub name: String,
    /// Where the top-level profile came from: "builtin" or its absolute path.
    #[serde(skip)]
    pub source: String,
    /// Text of every profile file that took part, for the report's sha256.
    #[serde(skip)]
    pub texts: Vec<Arc<str>>,
    /// The repo-local policy applied on top (`.cordon.toml`), its path.
    #[serde(skip)]
    pub repo_local: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub filesystem: Filesystem,
    pub network: Network,
    pub env: Env,
    pub limits: Limits,
    pub syscalls: Syscalls,
    pub capabilities: Capabilities,
    pub namespaces: Namespaces,
    pub process: Process,
    pub audit: Audit,
    #[serde(skip_serializing_if = "Approve::is_empty")]
    pub approve: Approve,
}

/// `[approve]`: the actions an approver decides (see `gates`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Approve {
    /// Argv patterns of gated commands.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<Item<String>>,
    /// Denied files that may be opened read-only once approved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<Item<PathEntry>>,
    /// Mode "proxy": whether a name outside allow_domains is asked about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domains: Option<Item<crate::gates::DomainAsk>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<Item<crate::gates::Approver>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Item<HumanDuration>>,
}

impl Approve {
    pub fn is_empty(&self) -> bool {
        self.exec.is_empty()
            && self.read.is_empty()
            && self.domains.is_none()
            && self.approver.is_none()
            && self.timeout.is_none()
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Filesystem {
    pub read: Vec<Item<PathEntry>>,
    pub write: Vec<Item<PathEntry>>,
    pub exec: Vec<Item<PathEntry>>,
    pub deny: Vec<Item<PathEntry>>,
    pub read_only: Vec<Item<PathEntry>>,
    /// Paths taken out of the guard's list (files that make the host run code).
    pub unprotect: Vec<Item<PathEntry>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Network {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Item<NetMode>>,
    pub connect_tcp: Vec<Item<u16>>,
    pub bind_tcp: Vec<Item<u16>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abstract_unix: Option<Item<Permit>>,
    /// Pathname unix sockets made outside the sandbox that it may connect to
    /// (paths, or a glob in the last component).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unix_connect: Vec<Item<PathEntry>>,
    /// Mode "proxy": the names (`*.example.com` for the names below it) and
    /// addresses the proxy connects to; `deny_domains` wins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_domains: Vec<Item<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny_domains: Vec<Item<String>>,
    /// Mode "proxy": the ports the proxy connects to (default 443 and 80).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_ports: Vec<Item<u16>>,
    /// Mode "proxy": named sets of domains added to `allow_domains`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub presets: Vec<Item<crate::netname::Preset>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Env {
    pub keep: Vec<Item<String>>,
    /// Whether a profile of the chain wrote `env.keep` (even `keep = []`);
    /// without one the command gets [`MINIMAL_ENV`].
    #[serde(skip)]
    pub keep_said: bool,
    pub remove: Vec<Item<String>>,
    pub set: BTreeMap<String, Item<String>>,
    pub secrets: BTreeMap<String, Item<Secret>>,
}

/// The commented starter profile `cordon profile init` writes.
pub const STARTER: &str = include_str!("profile/starter.toml");

/// The variables a command keeps when no profile of its chain says `env.keep`
/// (a profile that wants none writes `keep = []`): without them most programs
/// cannot even be found.
pub const MINIMAL_ENV: &[&str] = &["PATH", "HOME", "USER", "LANG", "TERM", "TMPDIR"];

impl Env {
    /// [`MINIMAL_ENV`] as the kept variables, unless a profile said `keep`.
    fn minimal_base(&mut self) {
        if std::mem::replace(&mut self.keep_said, true) {
            return;
        }
        let origin = Origin {
            source: "cordon's minimal environment (no profile says env.keep)".into(),
            line: None,
            column: None,
            key: Some("env.keep"),
        };
        self.keep = MINIMAL_ENV
            .iter()
            .map(|v| Item {
                value: v.to_string(),
                origin: origin.clone(),
            })
            .collect();
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Limits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Item<HumanDuration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Item<HumanSize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<Item<Count>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_files: Option<Item<Count>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Item<HumanDuration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<Item<HumanSize>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Syscalls {
    pub deny: Vec<Item<String>>,
    pub allow: Vec<Item<String>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Capabilities {
    pub keep: Vec<Item<String>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Namespaces {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Item<NsMode>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Process {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal_outside: Option<Item<Permit>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Audit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<Item<String>>,
}

/// How a profile was named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileRef {
    Builtin(String),
    Path(PathBuf),
}

impl ProfileRef {
    /// A path contains "/" or ends in ".toml"; anything else names a built-in.
    pub fn parse(s: &str) -> ProfileRef {
        if s.contains('/') || s.ends_with(".toml") {
            ProfileRef::Path(PathBuf::from(s))
        } else {
            ProfileRef::Builtin(s.to_string())
        }
    }
}

impl fmt::Display for ProfileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileRef::Builtin(n) => f.write_str(n),
            ProfileRef::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Additions from `cordon run` flags, merged as the last layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub exec: Vec<PathBuf>,
    pub net: Option<NetMode>,
    /// `--allow-domain`: names (or patterns) added to `allow_domains`.
    pub domains: Vec<String>,
    /// Variables added to `[env] set` (`cordon shell`'s prompt).
    pub set: Vec<(String, String)>,
}

impl Profile {
    /// Load a built-in or a profile file, resolving `extends`.
    pub fn load(r: &ProfileRef) -> Result<Profile> {
        Profile::load_in(r, Chain::default())
    }

    fn load_in(r: &ProfileRef, mut chain: Chain) -> Result<Profile> {
        let mut p = Profile::default();
        load_into(&mut p, r, None, &mut chain)?;
        p.env.minimal_base();
        p.name = r.to_string();
        p.source = match r {
            ProfileRef::Builtin(_) => "builtin".into(),
            ProfileRef::Path(path) => std::path::absolute(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
        };
        Ok(p)
    }

    /// Parse a profile from text (used for built-ins, tests and replayed reports).
    /// `extends` paths resolve relative to `dir`.
    pub fn from_text(name: &str, text: &str, dir: Option<&Path>) -> Result<Profile> {
        let mut p = Profile::default();
        let mut chain = Chain {
            stack: vec![name.to_string()],
            ..Chain::default()
        };
        apply_text(&mut p, name, text.into(), dir, &mut chain)?;
        p.env.minimal_base();
        p.name = name.to_string();
        p.source = name.to_string();
        Ok(p)
    }

    /// Layer the command-line flags on top. Relative paths are taken from `cwd`.
    pub fn apply_overrides(&mut self, o: &Overrides, cwd: &Path) {
        let add = |list: &mut Vec<Item<PathEntry>>, paths: &[PathBuf], flag: &str| {
            for p in paths {
                let abs = if p.is_absolute() {
                    p.clone()
                } else {
                    cwd.join(p)
                };
                // Escape "$" so that a literal path is not taken for a variable.
                let path = abs.to_string_lossy().replace('$', "$$");
                list.push(Item {
                    value: PathEntry {
                        path,
                        optional: false,
                    },
                    origin: Origin::command_line(flag),
                });
            }
        };
        add(&mut self.filesystem.read, &o.read, "--allow-read");
        add(&mut self.filesystem.write, &o.write, "--allow-write");
        add(&mut self.filesystem.exec, &o.exec, "--allow-exec");
        if let Some(mode) = o.net {
            self.network.mode = Some(Item {
                value: mode,
                origin: Origin::command_line("--net"),
            });
            // The flag replaces the profile's network mode whole: the ports of
            // a `filtered` profile mean nothing under `on` or `off` (and were
            // an error blaming the profile's line).
            if mode != NetMode::Filtered {
                self.network.connect_tcp.clear();
                self.network.bind_tcp.clear();
            }
            if mode != NetMode::Proxy {
                self.network.allow_domains.clear();
                self.network.deny_domains.clear();
                self.network.allow_ports.clear();
                self.network.presets.clear();
            }
        }
        for (k, v) in &o.set {
            self.env.set.insert(
                k.clone(),
                Item {
                    // Literal: a "$" in the prompt is not a profile variable.
                    value: v.replace('$', "$$"),
                    origin: Origin::command_line("cordon shell"),
                },
            );
        }
        for d in &o.domains {
            self.network.allow_domains.push(Item {
                value: d.clone(),
                origin: Origin::command_line("--allow-domain"),
            });
        }
    }

    pub fn net_mode(&self) -> NetMode {
        self.network
            .mode
            .as_ref()
            .map(|m| m.value)
            .unwrap_or(NetMode::Off)
    }

    pub fn ns_mode(&self) -> NsMode {
        self.namespaces
            .mode
            .as_ref()
            .map(|m| m.value)
            .unwrap_or(NsMode::Auto)
    }

    /// Visit the origin of every value, with its key ("filesystem.read") and index.
    pub fn visit_origins(&mut self, f: &mut dyn FnMut(&str, usize, &mut Origin)) {
        fn list<T>(key: &str, v: &mut [Item<T>], f: &mut dyn FnMut(&str, usize, &mut Origin)) {
            for (i, item) in v.iter_mut().enumerate() {
                f(key, i, &mut item.origin);
            }
        }
        fn one<T>(key: &str, v: &mut Option<Item<T>>, f: &mut dyn FnMut(&str, usize, &mut Origin)) {
            if let Some(item) = v {
                f(key, 0, &mut item.origin);
            }
        }
        let fs = &mut self.filesystem;
        list("filesystem.read", &mut fs.read, f);
        list("filesystem.write", &mut fs.write, f);
        list("filesystem.exec", &mut fs.exec, f);
        list("filesystem.deny", &mut fs.deny, f);
        list("filesystem.read_only", &mut fs.read_only, f);
        list("filesystem.unprotect", &mut fs.unprotect, f);
        one("network.mode", &mut self.network.mode, f);
        list("network.connect_tcp", &mut self.network.connect_tcp, f);
        list("network.bind_tcp", &mut self.network.bind_tcp, f);
        one("network.abstract_unix", &mut self.network.abstract_unix, f);
        list("network.unix_connect", &mut self.network.unix_connect, f);
        list("network.allow_domains", &mut self.network.allow_domains, f);
        list("network.deny_domains", &mut self.network.deny_domains, f);
        list("network.allow_ports", &mut self.network.allow_ports, f);
        list("network.presets", &mut self.network.presets, f);
        list("env.keep", &mut self.env.keep, f);
        list("env.remove", &mut self.env.remove, f);
        for (k, item) in self.env.set.iter_mut() {
            f(&format!("env.set.{k}"), 0, &mut item.origin);
        }
        for (k, item) in self.env.secrets.iter_mut() {
            f(&format!("env.secrets.{k}"), 0, &mut item.origin);
        }
        let l = &mut self.limits;
        one("limits.timeout", &mut l.timeout, f);
        one("limits.memory", &mut l.memory, f);
        one("limits.processes", &mut l.processes, f);
        one("limits.open_files", &mut l.open_files, f);
        one("limits.cpu", &mut l.cpu, f);
        one("limits.file_size", &mut l.file_size, f);
        list("syscalls.deny", &mut self.syscalls.deny, f);
        list("syscalls.allow", &mut self.syscalls.allow, f);
        list("capabilities.keep", &mut self.capabilities.keep, f);
        one("namespaces.mode", &mut self.namespaces.mode, f);
        one(
            "process.signal_outside",
            &mut self.process.signal_outside,
            f,
        );
        one("audit.log", &mut self.audit.log, f);
        let a = &mut self.approve;
        list("approve.exec", &mut a.exec, f);
        list("approve.read", &mut a.read, f);
        one("approve.domains", &mut a.domains, f);
        one("approve.approver", &mut a.approver, f);
        one("approve.timeout", &mut a.timeout, f);
    }

    /// Where every value came from, as text ("file:line"), for reports.
    pub fn origins(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        self.clone().visit_origins(&mut |k, _, o| {
            out.entry(k.to_string()).or_default().push(o.to_string())
        });
        out
    }

    /// Give values the origins a report recorded, so that a replayed denial names
    /// the profile line that decided in the recorded run.
    pub fn restore_origins(&mut self, recorded: &BTreeMap<String, Vec<String>>) {
        self.visit_origins(&mut |k, i, o| {
            if let Some(text) = recorded.get(k).and_then(|v| v.get(i)) {
                *o = Origin {
                    source: text.as_str().into(),
                    line: None,
                    column: None,
                    key: o.key,
                };
            }
        });
    }

    /// The profile as a standalone TOML document (no `extends`), for `profile show`
    /// and for reports that `replay` reads back.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// The profiles being merged (for cycles) and those already merged: a file
/// reached twice through a diamond of `extends` is merged once, so the work is
/// linear in the number of files, not exponential in the depth of the diamond.
#[derive(Debug, Default)]
struct Chain {
    stack: Vec<String>,
    loaded: std::collections::BTreeSet<String>,
    /// Parse the built-ins' TOML instead of taking their pre-parsed trees: the
    /// reference the test of the trees compares them with.
    builtins_from_toml: bool,
}

/// Profiles are small; anything larger is not a profile (and reading it whole
/// would be the profile's author deciding how much memory cordon spends).
pub const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// Read a profile file: a regular file of at most [`MAX_PROFILE_BYTES`]. Opened
/// non-blocking so a FIFO fails at once instead of waiting for a writer, and
/// checked on the descriptor, so the file read is the file checked.
fn read_profile_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let err = |source| Error::ReadProfile {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(err)?;
    let meta = f.metadata().map_err(err)?;
    let t = meta.file_type();
    if !t.is_file() {
        let kind = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(err(std::io::Error::other(format!(
            "{kind}: a profile must be a regular file"
        ))));
    }
    let mut bytes = Vec::new();
    f.take(MAX_PROFILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_PROFILE_BYTES {
        return Err(err(std::io::Error::other(format!(
            "larger than {} KiB: not a profile",
            MAX_PROFILE_BYTES >> 10
        ))));
    }
    Ok(bytes)
}

fn load_into(
    p: &mut Profile,
    r: &ProfileRef,
    base: Option<&Path>,
    chain: &mut Chain,
) -> Result<()> {
    match r {
        ProfileRef::Builtin(name) => {
            let text = builtin(name).ok_or_else(|| Error::UnknownBuiltin {
                name: name.clone(),
                known: builtin_names(),
            })?;
            let key = format!("builtin:{name}");
            check_cycle(&chain.stack, &key)?;
            if chain.loaded.contains(&key) {
                return Ok(());
            }
            chain.stack.push(key.clone());
            let file = format!("builtin/{name}.toml");
            let raw = builtin_raw(name, &file, text, chain)?;
            apply_raw(p, &file, raw, text.into(), None, chain)?;
            chain.stack.pop();
            chain.loaded.insert(key);
        }
        ProfileRef::Path(path) => {
            let full = match base {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path.clone(),
            };
            let canon = std::fs::canonicalize(&full).unwrap_or_else(|_| full.clone());
            let key = canon.display().to_string();
            check_cycle(&chain.stack, &key)?;
            if chain.loaded.contains(&key) {
                return Ok(());
            }
            let bytes = read_profile_file(&full)?;
            let text = String::from_utf8(bytes).map_err(|e| {
                // Locate the first bad byte: everything before it is valid text.
                let good = String::from_utf8_lossy(&e.as_bytes()[..e.utf8_error().valid_up_to()])
                    .into_owned();
                let (line, column) = LineIndex::new(&good).line_col(good.len());
                Error::ProfileAt {
                    file: full.display().to_string(),
                    line,
                    column,
                    message: "invalid UTF-8 (a profile is TOML text)".into(),
                }
            })?;
            chain.stack.push(key.clone());
            let name = full.display().to_string();
            apply_text(p, &name, text.into(), canon.parent(), chain)?;
            chain.stack.pop();
            chain.loaded.insert(key);
        }
    }
    Ok(())
}

fn check_cycle(stack: &[String], key: &str) -> Result<()> {
    if stack.iter().any(|k| k == key) {
        let mut chain: Vec<&str> = stack.iter().map(String::as_str).collect();
        chain.push(key);
        return Err(Error::ExtendsCycle {
            chain: chain.join(" -> "),
        });
    }
    Ok(())
}

/// A built-in as build.rs parsed it. Should its tree not deserialize (a case the
/// tree's deserializer misses), the TOML is parsed instead: the pre-parsed path
/// may change how fast a built-in loads, never what it loads to.
fn builtin_raw(name: &str, file: &str, text: &str, chain: &Chain) -> Result<RawProfile> {
    if !chain.builtins_from_toml {
        if let Some(raw) = precompiled::tree(name).and_then(|t| RawProfile::deserialize(t).ok()) {
            return Ok(raw);
        }
    }
    parse(file, text)
}

/// Parse one profile text and merge it (after its own `extends`) into `p`.
fn apply_text(
    p: &mut Profile,
    name: &str,
    text: Arc<str>,
    dir: Option<&Path>,
    chain: &mut Chain,
) -> Result<()> {
    let raw = parse(name, &text)?;
    apply_raw(p, name, raw, text, dir, chain)
}

/// Merge one parsed profile (after its own `extends`) into `p`. Spans are byte
/// offsets into `text`.
fn apply_raw(
    p: &mut Profile,
    name: &str,
    raw: RawProfile,
    text: Arc<str>,
    dir: Option<&Path>,
    chain: &mut Chain,
) -> Result<()> {
    let lines = LineIndex::new(&text);
    if let Some(ext) = &raw.extends {
        let (line, column) = lines.line_col(ext.span().start);
        for target in &ext.get_ref().0 {
            let r = ProfileRef::parse(target);
            load_into(p, &r, dir, chain).map_err(|e| match e {
                // A cycle is located once, at the extends that closes it, not at every level.
                e @ Error::Extends { .. } if e.is_cycle() => e,
                e => Error::Extends {
                    file: name.to_string(),
                    line,
                    column,
                    target: target.clone(),
                    source: Box::new(e),
                },
            })?;
        }
    }
    let src: Arc<str> = name.into();
    let at = |span: Range<usize>, key: &'static str| {
        let (line, column) = lines.line_col(span.start);
        Origin {
            source: src.clone(),
            line: Some(line),
            column: Some(column),
            key: Some(key),
        }
    };
    merge(p, raw, &at);
    p.texts.push(text);
    Ok(())
}

/// Lists append (child after parent); scalars and table entries override.
fn merge(p: &mut Profile, raw: RawProfile, at: &dyn Fn(Range<usize>, &'static str) -> Origin) {
    type At<'a> = &'a dyn Fn(Range<usize>, &'static str) -> Origin;
    fn list<T>(dst: &mut Vec<Item<T>>, src: List<T>, key: &'static str, at: At) {
        for s in src.into_iter().flatten() {
            let origin = at(s.span(), key);
            dst.push(Item {
                value: s.into_inner(),
                origin,
            });
        }
    }
    fn scalar<T>(dst: &mut Option<Item<T>>, src: Option<Spanned<T>>, key: &'static str, at: At) {
        if let Some(s) = src {
            let origin = at(s.span(), key);
            *dst = Some(Item {
                value: s.into_inner(),
                origin,
            });
        }
    }
    if raw.description.is_some() {
        p.description = raw.description;
    }
    if let Some(fs) = raw.filesystem {
        list(&mut p.filesystem.read, fs.read, "filesystem.read", at);
        list(&mut p.filesystem.write, fs.write, "filesystem.write", at);
        list(&mut p.filesystem.exec, fs.exec, "filesystem.exec", at);
        list(&mut p.filesystem.deny, fs.deny, "filesystem.deny", at);
        list(
            &mut p.filesystem.read_only,
            fs.read_only,
            "filesystem.read_only",
            at,
        );
        list(
            &mut p.filesystem.unprotect,
            fs.unprotect,
            "filesystem.unprotect",
            at,
        );
    }
    if let Some(n) = raw.network {
        scalar(&mut p.network.mode, n.mode, "network.mode", at);
        list(
            &mut p.network.connect_tcp,
            n.connect_tcp,
            "network.connect_tcp",
            at,
        );
        list(&mut p.network.bind_tcp, n.bind_tcp, "network.bind_tcp", at);
        scalar(
            &mut p.network.abstract_unix,
            n.abstract_unix,
            "network.abstract_unix",
            at,
        );
        list(
            &mut p.network.unix_connect,
            n.unix_connect,
            "network.unix_connect",
            at,
        );
        list(
            &mut p.network.allow_domains,
            n.allow_domains,
            "network.allow_domains",
            at,
        );
        list(
            &mut p.network.deny_domains,
            n.deny_domains,
            "network.deny_domains",
            at,
        );
        list(
            &mut p.network.allow_ports,
            n.allow_ports,
            "network.allow_ports",
            at,
        );
        list(&mut p.network.presets, n.presets, "network.presets", at);
    }
    if let Some(e) = raw.env {
        p.env.keep_said |= e.keep.is_some();
        list(&mut p.env.keep, e.keep, "env.keep", at);
        list(&mut p.env.remove, e.remove, "env.remove", at);
        for (k, v) in e.set.into_iter().flatten() {
            let origin = at(v.span(), "env.set");
            p.env.set.insert(
                k,
                Item {
                    value: v.into_inner(),
                    origin,
                },
            );
        }
        for (k, v) in e.secrets.into_iter().flatten() {
            let origin = at(v.span(), "env.secrets");
            p.env.secrets.insert(
                k,
                Item {
                    value: v.into_inner(),
                    origin,
                },
            );
        }
    }
    if let Some(l) = raw.limits {
        scalar(&mut p.limits.timeout, l.timeout, "limits.timeout", at);
        scalar(&mut p.limits.memory, l.memory, "limits.memory", at);
        scalar(&mut p.limits.processes, l.processes, "limits.processes", at);
        scalar(
            &mut p.limits.open_files,
            l.open_files,
            "limits.open_files",
            at,
        );
        scalar(&mut p.limits.cpu, l.cpu, "limits.cpu", at);
        scalar(&mut p.limits.file_size, l.file_size, "limits.file_size", at);
    }
    if let Some(s) = raw.syscalls {
        list(&mut p.syscalls.deny, s.deny, "syscalls.deny", at);
        list(&mut p.syscalls.allow, s.allow, "syscalls.allow", at);
    }
    if let Some(c) = raw.capabilities {
        list(&mut p.capabilities.keep, c.keep, "capabilities.keep", at);
    }
    if let Some(n) = raw.namespaces {
        scalar(&mut p.namespaces.mode, n.mode, "namespaces.mode", at);
    }
    if let Some(pr) = raw.process {
        scalar(
            &mut p.process.signal_outside,
            pr.signal_outside,
            "process.signal_outside",
            at,
        );
    }
    if let Some(a) = raw.audit {
        scalar(&mut p.audit.log, a.log, "audit.log", at);
    }
    if let Some(a) = raw.approve {
        list(&mut p.approve.exec, a.exec, "approve.exec", at);
        list(&mut p.approve.read, a.read, "approve.read", at);
        scalar(&mut p.approve.domains, a.domains, "approve.domains", at);
        scalar(&mut p.approve.approver, a.approver, "approve.approver", at);
        scalar(&mut p.approve.timeout, a.timeout, "approve.timeout", at);
    }
}

/// Parse one file's text. Errors carry the line, column and key path.
fn parse(name: &str, text: &str) -> Result<RawProfile> {
    let located = |span: Option<Range<usize>>, message: String, key: Option<String>| {
        let (line, column) = span
            .map(|s| LineIndex::new(text).line_col(s.start))
            .unwrap_or((1, 1));
        let message = match key {
            Some(k) if !message.starts_with("unknown key") => format!("key \"{k}\": {message}"),
            _ => message,
        };
        Error::ProfileAt {
            file: name.to_string(),
            line,
            column,
            message,
        }
    };
    let doc = toml::de::DeTable::parse(text).map_err(|e| {
        // The keys parsed before the error still name where it is.
        let (partial, _) = toml::de::DeTable::parse_recoverable(text);
        let key = e.span().and_then(|s| {
            key_at(partial.get_ref(), &s, "").or_else(|| {
                // A value cut short (an unterminated string) ends after its key, on its line.
                let lines = LineIndex::new(text);
                last_key_before(partial.get_ref(), s.start, "")
                    .filter(|(at, _)| lines.line(*at) == lines.line(s.start))
                    .map(|(_, k)| k)
            })
        });
        located(e.span(), tidy(e.message(), key.as_deref()), key)
    })?;
    RawProfile::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| {
        // Errors only: parse again for the spans of the keys (cheaper than keeping a copy).
        let keys = toml::de::DeTable::parse(text).ok();
        let key = e
            .span()
            .zip(keys)
            .and_then(|(s, k)| key_at(k.get_ref(), &s, ""));
        located(e.span(), tidy(e.message(), key.as_deref()), key)
    })
}

/// Rewrite serde's wording into the profile's vocabulary.
fn tidy(message: &str, key: Option<&str>) -> String {
    let m = message.trim_end().trim_end_matches('.');
    if let Some(rest) = m.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let section = key
            .and_then(|k| k.rsplit_once('.'))
            .map(|(s, _)| format!(" in [{s}]"))
            .unwrap_or_default();
        let expected = expected.trim_start_matches(", ").replace('`', "");
        let expected = if expected.is_empty() {
            String::new()
        } else {
            format!(" ({expected})")
        };
        return format!("unknown key \"{field}\"{section}{expected}");
    }
    m.replace("a sequence", "a list")
        .replace("a map", "a table")
        .replace("invalid type: ", "wrong type: ")
}

/// The dotted key path whose key or value span contains `span`. A `[table]`'s
/// own span covers only its header, so every table is searched.
fn key_at(table: &toml::de::DeTable, span: &Range<usize>, prefix: &str) -> Option<String> {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        if k.span().contains(&span.start) {
            return Some(path);
        }
        if let toml::de::DeValue::Table(t) = v.get_ref() {
            if let Some(found) = key_at(t, span, &path) {
                return Some(found);
            }
        }
        if v.span().contains(&span.start) {
            return Some(path);
        }
    }
    None
}

/// The key that starts last before `pos` (its offset and dotted path).
fn last_key_before(table: &toml::de::DeTable, pos: usize, prefix: &str) -> Option<(usize, String)> {
    let mut best: Option<(usize, String)> = None;
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        if k.span().start <= pos && best.as_ref().is_none_or(|(at, _)| k.span().start > *at) {
            best = Some((k.span().start, path.clone()));
        }
        if let toml::de::DeValue::Table(t) = v.get_ref() {
            if let Some(inner) = last_key_before(t, pos, &path) {
                if best.as_ref().is_none_or(|(at, _)| inner.0 > *at) {
                    best = Some(inner);
                }
            }
        }
    }
    best
}

/// Byte offset to 1-based line and column. The line starts are found once, so
/// locating every value of a profile is a binary search, not a rescan.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= offset.min(self.text.len()))
    }
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line(offset);
        let start = self.starts[line - 1];
        let column = String::from_utf8_lossy(&self.text.as_bytes()[start..offset])
            .chars()
            .count()
            + 1;
        (line, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Profile::from_text("t.toml", text, None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn every_builtin_parses() {
        for (name, _) in BUILTINS {
            let p = Profile::load(&ProfileRef::Builtin(name.to_string())).unwrap();
            assert!(p.description.is_some(), "{name} has no description");
        }
    }

    /// The trees build.rs makes must load to what the TOML loads to: every
    /// value, span and origin, for every built-in alone and as a parent.
    #[test]
    fn precompiled_builtins_match_their_toml() {
        let mut trees: Vec<_> = precompiled::names().collect();
        let mut names: Vec<_> = BUILTINS.iter().map(|(n, _)| *n).collect();
        trees.sort_unstable();
        names.sort_unstable();
        assert_eq!(trees, names, "profiles/*.toml and BUILTINS differ");
        for (name, text) in BUILTINS {
            let tree = precompiled::tree(name).unwrap();
            let fast = RawProfile::deserialize(tree).unwrap_or_else(|e| panic!("{name}: {e}"));
            let slow = parse(&format!("builtin/{name}.toml"), text).unwrap();
            assert_eq!(format!("{fast:#?}"), format!("{slow:#?}"), "{name}");
            let r = ProfileRef::Builtin(name.to_string());
            let fast = Profile::load(&r).unwrap();
            let slow = Profile::load_in(
                &r,
                Chain {
                    builtins_from_toml: true,
                    ..Chain::default()
                },
            )
            .unwrap();
            assert_eq!(format!("{fast:#?}"), format!("{slow:#?}"), "{name}");
        }
    }

    #[test]
    fn line_index() {
        let l = LineIndex::new("ab\ncd\n\nxé");
        assert_eq!(l.line_col(0), (1, 1));
        assert_eq!(l.line_col(2), (1, 3));
        assert_eq!(l.line_col(3), (2, 1));
        assert_eq!(l.line_col(7), (4, 1));
        assert_eq!(l.line_col(8), (4, 2));
        assert_eq!(l.line_col(99), (4, 3));
    }

    #[test]
    fn every_example_profile_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/profiles");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            Profile::load(&ProfileRef::Path(p.clone()))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
        assert!(n >= 3);
    }

    #[test]
    fn unknown_key_names_line_column_and_key() {
        let e = err("[filesystem]\nread = [\"/\"]\nwirte = [\"/tmp\"]\n");
        assert!(
            e.starts_with(
                "loading profile t.toml: line 3, column 1: unknown key \"wirte\" in [filesystem]"
            ),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = err("[limits]\nprocesses = \"many\"\n");
        assert!(
            e.contains("line 2, column 13") && e.contains("limits.processes"),
            "{e}"
        );
        let e = err("[filesystem]\nread = 5\n");
        assert!(e.contains("line 2") && e.contains("filesystem.read"), "{e}");
        let e = err("[network]\nmode = \"sometimes\"\n");
        assert!(e.contains("network.mode") && e.contains("sometimes"), "{e}");
    }

    #[test]
    fn syntax_error_is_located() {
        let e = err("[filesystem\nread = []\n");
        assert!(e.starts_with("loading profile t.toml: line 1"), "{e}");
    }

    #[test]
    fn bad_durations_and_sizes() {
        assert!(err("[limits]\ntimeout = \"30\"\n").contains("needs a unit"));
        assert!(err("[limits]\ntimeout = 30\n").contains("needs a unit"));
        assert!(err("[limits]\nmemory = \"4 bananas\"\n").contains("unknown size unit"));
    }

    #[test]
    fn lists_append_and_scalars_override() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.toml"), "[filesystem]\nread = [\"/a\"]\n[network]\nmode = \"on\"\n[env]\nset = { A = \"1\", B = \"1\" }\n").unwrap();
        let child = "extends = \"base.toml\"\n[filesystem]\nread = [\"/b\"]\n[network]\nmode = \"filtered\"\n[env]\nset = { B = \"2\" }\n";
        let p = Profile::from_text("child.toml", child, Some(dir.path())).unwrap();
        let reads: Vec<_> = p
            .filesystem
            .read
            .iter()
            .map(|i| i.value.path.as_str())
            .collect();
        assert_eq!(reads, ["/a", "/b"]);
        assert_eq!(p.net_mode(), NetMode::Filtered);
        assert_eq!(p.env.set["A"].value, "1");
        assert_eq!(p.env.set["B"].value, "2");
        assert_eq!(p.filesystem.read[0].origin.line, Some(2));
        assert!(p.filesystem.read[0].origin.source.ends_with("base.toml"));
    }

    #[test]
    fn extends_list_and_builtin() {
        let p = Profile::from_text("x", "extends = [\"read-only\", \"online\"]\n", None).unwrap();
        assert_eq!(p.net_mode(), NetMode::On);
        // Over a `filtered` profile, --net on or off drops its ports with its mode.
        for mode in [NetMode::On, NetMode::Off] {
            let mut p = Profile::from_text(
                "x",
                "[network]\nmode = \"filtered\"\nconnect_tcp = [443]\nbind_tcp = [8080]\n",
                None,
            )
            .unwrap();
            p.apply_overrides(
                &Overrides {
                    net: Some(mode),
                    ..Default::default()
                },
                Path::new("/cwd"),
            );
            assert_eq!(p.net_mode(), mode);
            assert!(p.network.connect_tcp.is_empty() && p.network.bind_tcp.is_empty());
        }
    }

    #[test]
    fn a_diamond_of_extends_merges_each_file_once() {
        // 40 levels, each extending the next level twice (through two files):
        // 2^40 loads if files were merged per reference.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for i in 0..40 {
            let next = |side: &str| format!("l{}{side}.toml", i + 1);
            let body = format!("extends = [\"{}\", \"{}\"]\n", next("a"), next("b"));
            std::fs::write(d.join(format!("l{i}a.toml")), &body).unwrap();
            std::fs::write(d.join(format!("l{i}b.toml")), &body).unwrap();
        }
        for side in ["a", "b"] {
            std::fs::write(
                d.join(format!("l40{side}.toml")),
                "[filesystem]\nread = [\"/usr\"]\n",
            )
            .unwrap();
        }
        let p = Profile::load(&ProfileRef::Path(d.join("l0a.toml"))).unwrap();
        // l40a and l40b each once.
        assert_eq!(p.filesystem.read.len(), 2);
        // A built-in reached twice is merged once too.
        let p = Profile::from_text("x", "extends = [\"read-only\", \"online\"]\n", None).unwrap();
        let ro = Profile::load(&ProfileRef::Builtin("read-only".into())).unwrap();
        assert_eq!(p.filesystem.deny.len(), ro.filesystem.deny.len());
    }

    #[test]
    fn extends_of_a_special_or_huge_file_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; (MAX_PROFILE_BYTES + 1) as usize]).unwrap();
        std::fs::create_dir(dir.path().join("dir.toml")).unwrap();
        for (target, why) in [
            (
                "/dev/zero",
                "a character device: a profile must be a regular file",
            ),
            ("fifo.toml", "a FIFO: a profile must be a regular file"),
            ("big.toml", "larger than 1024 KiB: not a profile"),
            ("dir.toml", "a directory: a profile must be a regular file"),
        ] {
            let text = format!("description = \"x\"\nextends = \"{target}\"\n");
            let e = Profile::from_text("c.toml", &text, Some(dir.path())).unwrap_err();
            let msg = crate::error::chain(&e);
            assert!(
                msg.starts_with(&format!(
                    "loading profile c.toml: line 2, column 11: extends `{target}`"
                )),
                "{msg}"
            );
            assert!(msg.ends_with(why), "{msg}");
        }
        // The top-level profile goes through the same reader.
        let e = Profile::load(&ProfileRef::Path(fifo)).unwrap_err();
        assert!(crate::error::chain(&e).ends_with("a FIFO: a profile must be a regular file"));
    }

    #[test]
    fn extends_cycle_and_missing_target() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "extends = \"b.toml\"\n").unwrap();
        std::fs::write(dir.path().join("b.toml"), "extends = \"a.toml\"\n").unwrap();
        let e = Profile::load(&ProfileRef::Path(dir.path().join("a.toml"))).unwrap_err();
        let e = crate::error::chain(&e);
        // Located once, at the extends that closes the cycle.
        assert!(
            e.contains("b.toml: line 1, column 11: extends `a.toml`: extends cycle:"),
            "{e}"
        );
        assert!(
            e.contains("a.toml -> ") && e.matches("loading profile").count() == 1,
            "{e}"
        );
        let e = Profile::from_text("c.toml", "\nextends = \"nope.toml\"\n", Some(dir.path()))
            .unwrap_err();
        let chain = crate::error::chain(&e);
        assert!(
            chain.starts_with(
                "loading profile c.toml: line 2, column 11: extends `nope.toml`: loading profile"
            ),
            "{chain}"
        );
        let e = Profile::from_text("c.toml", "extends = \"no-such-builtin\"\n", None).unwrap_err();
        assert!(crate::error::chain(&e).contains("unknown built-in profile `no-such-builtin`"));
    }

    #[test]
    fn optional_path_entries() {
        let p = Profile::from_text(
            "x",
            "[filesystem]\nread = [\"/a\", { path = \"/opt\", optional = true }]\n",
            None,
        )
        .unwrap();
        assert!(!p.filesystem.read[0].value.optional);
        assert!(p.filesystem.read[1].value.optional);
        assert!(
            err("[filesystem]\nread = [{ path = \"/a\", optinal = true }]\n").contains("optinal")
        );
    }

    #[test]
    fn overrides_are_a_layer() {
        let mut p = Profile::from_text("x", "[filesystem]\nwrite = [\"/w\"]\n", None).unwrap();
        p.apply_overrides(
            &Overrides {
                write: vec!["rel".into()],
                net: Some(NetMode::On),
                ..Default::default()
            },
            Path::new("/cwd"),
        );
        assert_eq!(p.filesystem.write[1].value.path, "/cwd/rel");
        assert_eq!(
            p.filesystem.write[1].origin.to_string(),
            "command line (--allow-write)"
        );
        assert_eq!(p.net_mode(), NetMode::On);
    }

    #[test]
    fn resolved_profile_round_trips_through_toml() {
        let p = Profile::load(&ProfileRef::Builtin("workspace-write".into())).unwrap();
        let text = p.to_toml();
        let q = Profile::from_text("resolved", &text, None).unwrap();
        assert_eq!(q.to_toml(), text);
    }

    #[test]
    fn random_bytes_are_an_error_not_a_panic() {
        let mut seed = 0x2545F4914F6CDD1Du64;
        for _ in 0..2000 {
            let len = (seed % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    b"[]=\"{}.,ab \n#'\\0"[(seed % 16) as usize]
                })
                .collect();
            let _ = Profile::from_text("fuzz", &String::from_utf8_lossy(&bytes), None);
        }
    }
}
