//! Which unix sockets a sandboxed process may connect (or send) to: the pure
//! decision behind the supervisor's connect mediation and `explain --connect PATH`.
//!
//! Owns the `[network] unix_connect` list (validated and canonical), the
//! default rule for pathname sockets (only sockets made inside the sandbox: in
//! a writable root and born during the run) and the rule for abstract
//! addresses. Does not open, stat or connect anything: `unix_mediate` does, and
//! passes in what it found.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::explain::Verdict;
use crate::policy::{Canon, FsPolicy, beneath};
use crate::profile::{Item, Origin, PathEntry};
use crate::units::{glob_match, is_glob};
use crate::vars::unescape;

/// Landlock has no right for connecting to pathname unix sockets up to ABI 7.
/// Planned layer: when an ABI brings one (LANDLOCK_ACCESS_FS_RESOLVE_UNIX was
/// proposed for ABI 9), add it to the handled rights with the `unix_connect`
/// entries and the writable roots as rules, and keep this mediation for the
/// "born during the run" part Landlock cannot express. Nothing uses it yet.
pub const LANDLOCK_UNIX_ABI: i32 = 9;

/// One `unix_connect` entry: a canonical path, or a canonical directory and a
/// glob for the last component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub dir: PathBuf,
    /// The last component (a glob when `glob`).
    pub name: String,
    pub glob: bool,
    /// As written after expansion, for messages.
    pub written: String,
    pub origin: Origin,
}

impl Allowed {
    fn matches(&self, path: &Path) -> bool {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return false;
        };
        dir == self.dir
            && if self.glob {
                glob_match(&self.name, &name.to_string_lossy())
            } else {
                name.to_string_lossy() == self.name
            }
    }
}

/// When a socket file was created, relative to the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Birth {
    Before,
    During,
    /// The file system keeps no birth time (statx without STATX_BTIME).
    Unknown,
}

/// What the decision needs from the policy.
#[derive(Debug, Clone, Default)]
pub struct UnixPolicy {
    pub allowed: Vec<Allowed>,
    /// Writable directories (canonical) with the grant's origin.
    pub writable: Vec<(PathBuf, Origin)>,
    /// Denied paths (canonical) with their origin.
    pub deny: Vec<(PathBuf, Origin)>,
    /// `abstract_unix = "allow"`.
    pub abstract_allowed: bool,
}

/// The rule named in reports and by `explain` for the default refusal.
pub const DEFAULT_RULE: &str = "pathname unix sockets made outside the sandbox are refused (default; [network] unix_connect lists exceptions)";

/// A session's control socket: `.../cordon/sessions/NAME.sock` or
/// `/tmp/cordon-UID/sessions/NAME.sock` (see `session::dir`).
pub fn is_session_socket(path: &Path) -> bool {
    let mut up = path.ancestors().skip(1);
    path.extension().is_some_and(|e| e == "sock")
        && up
            .next()
            .and_then(Path::file_name)
            .is_some_and(|n| n == "sessions")
        && up
            .next()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == "cordon" || n.starts_with("cordon-"))
}

impl UnixPolicy {
    /// Validate `[network] unix_connect` (expanded) against the file-system policy.
    pub fn new(
        entries: &[Item<PathEntry>],
        fs: &FsPolicy,
        abstract_allowed: bool,
    ) -> Result<UnixPolicy> {
        let mut canon = Canon::default();
        let mut allowed = Vec::new();
        for item in entries {
            let path = PathBuf::from(unescape(&item.value.path));
            if !path.is_absolute() {
                return Err(Error::invalid(
                    item.origin.located(),
                    format!(
                        "path `{}` must be absolute (or start with ${{WORKSPACE}}, ${{HOME}}, ~/ ...)",
                        path.display()
                    ),
                ));
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parent = path.parent().unwrap_or(Path::new("/"));
            if parent.to_string_lossy().contains(['*', '?']) {
                return Err(Error::invalid(
                    item.origin.located(),
                    "only the last path component may contain * or ?",
                ));
            }
            let glob = is_glob(&name);
            // A socket may not exist yet: the longest existing prefix is resolved,
            // the rest kept as written, as the connect-time path will be.
            let (dir, name) = if glob || name.is_empty() {
                (canon.get(parent).0, name)
            } else {
                let c = canon.get(&path).0;
                let n = c
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (c.parent().unwrap_or(Path::new("/")).to_path_buf(), n)
            };
            allowed.push(Allowed {
                dir,
                name,
                glob,
                written: path.display().to_string(),
                origin: item.origin.clone(),
            });
        }
        let writable = fs
            .grants
            .iter()
            .filter(|g| g.access.can_write() && g.kind == crate::policy::Kind::Dir)
            .map(|g| (g.path.clone(), g.origin.clone()))
            .collect();
        let deny = fs
            .deny
            .iter()
            .map(|c| (c.path.clone(), c.origin.clone()))
            .collect();
        Ok(UnixPolicy {
            allowed,
            writable,
            deny,
            abstract_allowed,
        })
    }

    /// May the sandbox connect to the pathname socket at `path` (resolved in the
    /// sandbox's view, canonical), born as `birth`?
    pub fn decide(&self, path: &Path, birth: Birth) -> Verdict {
        // cordon's own session sockets: whatever a profile lists or a payload
        // arranges (a session whose socket directory lies in a writable root,
        // a socket born during this run), a sandbox never reaches one.
        if is_session_socket(path) {
            return Verdict::deny(
                "cordon's session control sockets are never reachable from a sandbox".into(),
                "EACCES",
                None,
            );
        }
        if let Some(a) = self.allowed.iter().find(|a| a.matches(path)) {
            return Verdict::allow(format!("unix_connect \"{}\" ({})", a.written, a.origin));
        }
        let suggestion = Some(format!(
            "add \"{}\" to [network] unix_connect",
            path.display()
        ));
        if let Some((d, o)) = self.deny.iter().find(|(d, _)| beneath(path, d)) {
            return Verdict::deny(format!("deny {} ({o})", d.display()), "EACCES", suggestion);
        }
        let root = self.writable.iter().find(|(w, _)| beneath(path, w));
        match (root, birth) {
            (Some((w, o)), Birth::During) => Verdict::allow(format!(
                "made inside the sandbox: in writable {} ({o}), created during the run",
                w.display()
            )),
            (Some((w, _)), Birth::Before) => Verdict::deny(
                format!(
                    "{DEFAULT_RULE}: in writable {}, but created before the run",
                    w.display()
                ),
                "EACCES",
                suggestion,
            ),
            (Some((w, _)), Birth::Unknown) => Verdict::deny(
                format!(
                    "{DEFAULT_RULE}: in writable {}, but its file system keeps no birth time",
                    w.display()
                ),
                "EACCES",
                suggestion,
            ),
            (None, _) => Verdict::deny(
                format!("{DEFAULT_RULE}: not in a writable root"),
                "EACCES",
                suggestion,
            ),
        }
    }

    /// What `explain --connect PATH` says before any run: an existing socket was
    /// made before it; a missing one in a writable root may be made by the run.
    pub fn explain(&self, path: &Path) -> Verdict {
        if path.symlink_metadata().is_ok() {
            return self.decide(path, Birth::Before);
        }
        let v = self.decide(path, Birth::During);
        if v.allowed && !self.allowed.iter().any(|a| a.matches(path)) {
            return Verdict::allow(format!("{} (a socket the run creates there)", v.rule));
        }
        v
    }
}

/// Where an abstract listener may be reached from: the supervisor connects for
/// the caller, which bypasses Landlock's abstract-unix scope, so it decides the
/// scope itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbstractWhere {
    /// The socket lives in the sandbox's own network namespace (namespaces on,
    /// network off): every abstract name there was bound inside.
    PrivateNetns,
    /// A shared network namespace; `held_inside`: every socket bound to the
    /// name is held by a process of the sandbox (None: no socket has the name).
    Shared { held_inside: Option<bool> },
}

/// Abstract-address decision. EPERM is what Landlock's scope answers.
pub fn decide_abstract(p: &UnixPolicy, at: AbstractWhere) -> Verdict {
    if p.abstract_allowed {
        return Verdict::allow("abstract_unix = \"allow\"".into());
    }
    match at {
        AbstractWhere::PrivateNetns => {
            Verdict::allow("the sandbox's own network namespace (network off)".into())
        }
        AbstractWhere::Shared {
            held_inside: Some(true),
        } => Verdict::allow("abstract socket held by a process of the sandbox".into()),
        // Nobody listens: answer as the kernel would, without connecting (a
        // host process could bind the name between a check and a connect).
        AbstractWhere::Shared { held_inside: None } => Verdict::deny(
            "no abstract socket has this name".into(),
            "ECONNREFUSED",
            None,
        ),
        AbstractWhere::Shared {
            held_inside: Some(false),
        } => Verdict::deny(
            "abstract unix sockets outside the sandbox are refused (abstract_unix = \"deny\")"
                .into(),
            "EPERM",
            Some("set [network] abstract_unix = \"allow\"".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_sockets_are_never_reachable() {
        assert!(is_session_socket(Path::new(
            "/run/user/1000/cordon/sessions/s-1.sock"
        )));
        assert!(is_session_socket(Path::new(
            "/tmp/cordon-65534/sessions/wide.sock"
        )));
        assert!(is_session_socket(Path::new(
            "/tmp/cordon/sessions/wide.sock"
        )));
        assert!(!is_session_socket(Path::new("/ws/sessions/x.sock")));
        assert!(!is_session_socket(Path::new("/ws/cordon/sessions/x")));
    }
    use crate::policy::{Access, Grant, Kind};

    fn origin(line: usize) -> Origin {
        Origin {
            source: "p.toml".into(),
            line: Some(line),
            column: Some(1),
            key: Some("network.unix_connect"),
        }
    }

    fn policy(entries: &[&str]) -> UnixPolicy {
        let fs = FsPolicy {
            grants: vec![
                Grant {
                    path: "/ws".into(),
                    kind: Kind::Dir,
                    access: Access::WRITE,
                    origin: origin(1),
                },
                Grant {
                    path: "/usr".into(),
                    kind: Kind::Dir,
                    access: Access::READ,
                    origin: origin(2),
                },
            ],
            deny: vec![crate::policy::Carve {
                path: "/ws/secret".into(),
                exists: true,
                kind: Kind::Dir,
                origin: origin(3),
            }],
            ..Default::default()
        };
        let items: Vec<Item<PathEntry>> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| Item {
                value: PathEntry {
                    path: e.to_string(),
                    optional: false,
                },
                origin: origin(10 + i),
            })
            .collect();
        UnixPolicy::new(&items, &fs, false).unwrap()
    }

    #[test]
    fn default_allows_only_sockets_born_in_writable_roots() {
        let p = policy(&[]);
        let own = p.decide(Path::new("/ws/build/test.sock"), Birth::During);
        assert!(own.allowed, "{own:?}");
        assert!(own.rule.contains("created during the run"), "{}", own.rule);
        for (path, birth, why) in [
            ("/ws/old.sock", Birth::Before, "created before the run"),
            ("/ws/x.sock", Birth::Unknown, "no birth time"),
            (
                "/tmp/tmux-0/default",
                Birth::During,
                "not in a writable root",
            ),
            ("/usr/lib/x.sock", Birth::During, "not in a writable root"),
            ("/ws/secret/agent.sock", Birth::During, "deny /ws/secret"),
        ] {
            let v = p.decide(Path::new(path), birth);
            assert!(!v.allowed, "{path}: {v:?}");
            assert!(v.rule.contains(why), "{path}: {}", v.rule);
            assert_eq!(v.errno, Some("EACCES"));
            assert_eq!(
                v.suggestion.as_deref(),
                Some(format!("add \"{path}\" to [network] unix_connect").as_str())
            );
        }
    }

    #[test]
    fn unix_connect_entries_and_globs() {
        let p = policy(&["/run/user/1000/podman/podman.sock", "/tmp/app-*.sock"]);
        let v = p.decide(
            Path::new("/run/user/1000/podman/podman.sock"),
            Birth::Before,
        );
        assert!(v.allowed && v.rule.contains("p.toml:10"), "{v:?}");
        assert!(
            p.decide(Path::new("/tmp/app-1.sock"), Birth::Before)
                .allowed
        );
        assert!(p.decide(Path::new("/tmp/app-.sock"), Birth::Before).allowed);
        for no in [
            "/tmp/app-1.sockx",
            "/tmp/sub/app-1.sock",
            "/run/user/1000/podman",
        ] {
            assert!(!p.decide(Path::new(no), Birth::Before).allowed, "{no}");
        }
        // A listed path wins over a deny it lies in: the entry names it exactly.
        let p = policy(&["/ws/secret/agent.sock"]);
        assert!(
            p.decide(Path::new("/ws/secret/agent.sock"), Birth::Before)
                .allowed
        );
    }

    #[test]
    fn bad_entries_are_located_errors() {
        let fs = FsPolicy::default();
        let item = |p: &str| Item {
            value: PathEntry {
                path: p.into(),
                optional: false,
            },
            origin: origin(4),
        };
        let e = UnixPolicy::new(&[item("rel.sock")], &fs, false).unwrap_err();
        assert!(e.to_string().contains("line 4"), "{e}");
        let e = UnixPolicy::new(&[item("/tmp/*/x.sock")], &fs, false).unwrap_err();
        assert!(e.to_string().contains("last path component"), "{e}");
    }

    #[test]
    fn abstract_rule() {
        let mut p = policy(&[]);
        let shared = |h| AbstractWhere::Shared { held_inside: h };
        assert!(decide_abstract(&p, AbstractWhere::PrivateNetns).allowed);
        assert!(decide_abstract(&p, shared(Some(true))).allowed);
        assert_eq!(
            decide_abstract(&p, shared(None)).errno,
            Some("ECONNREFUSED")
        );
        let v = decide_abstract(&p, shared(Some(false)));
        assert!(!v.allowed);
        assert_eq!(v.errno, Some("EPERM"));
        p.abstract_allowed = true;
        assert!(decide_abstract(&p, shared(Some(false))).allowed);
    }
}
