//! Discovery: the protected paths of a workspace now. The table's entries at
//! the top, per-directory entries found by the walk, and every git directory
//! reachable from a `.git` in the workspace (or the repository it lies in):
//! through `.git` files and links, `commondir`, `modules/` and `worktrees/`,
//! with the paths the repository's own config names (`core.hooksPath`,
//! `include.path`). Reads only.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{
    Depth::Any, ENTRIES, GIT_ENTRIES, GIT_POINTER, MAX_WALK, MAX_WALK_DEPTH, Protected, SKIP,
    gitconfig, tree, walk,
};
use crate::policy::{Kind, Policy, beneath};

/// What a walk of the workspace found.
#[derive(Debug, Default)]
pub struct Found {
    pub protected: Vec<Protected>,
    /// Git directories, each with the pointer (`.git` file, link or commondir) that led there.
    pub git_dirs: BTreeMap<PathBuf, Option<PathBuf>>,
    /// Per-directory entries found below the top.
    pub nested: BTreeSet<PathBuf>,
    /// Directories holding a `.git`.
    pub worktrees: BTreeSet<PathBuf>,
    /// Directory entries read.
    pub visited: usize,
    pub truncated: bool,
}

/// The inputs of discovery, from the policy.
#[derive(Debug, Clone)]
pub struct Scope {
    pub workspace: PathBuf,
    pub writable: Vec<PathBuf>,
    pub unprotect: Vec<PathBuf>,
}

impl Scope {
    /// None when the workspace is not writable (nothing there can change).
    pub fn of(policy: &Policy) -> Option<Scope> {
        let writable: Vec<PathBuf> = policy
            .fs
            .grants
            .iter()
            .filter(|g| g.access.can_write() && g.kind == Kind::Dir)
            .map(|g| g.path.clone())
            .collect();
        writable
            .iter()
            .any(|w| beneath(&policy.workspace, w))
            .then(|| Scope {
                workspace: policy.workspace.clone(),
                writable,
                unprotect: policy.fs.unprotect.clone(),
            })
    }

    pub(super) fn writable(&self, p: &Path) -> bool {
        self.writable.iter().any(|w| beneath(p, w))
    }

    /// Opted out by `[filesystem] unprotect` (the path or a directory above it).
    pub fn unprotected(&self, p: &Path) -> bool {
        self.unprotect.iter().any(|u| beneath(p, u))
    }

    /// Opt-outs inside a protected directory: left alone there.
    pub(super) fn exceptions_in(&self, p: &Path) -> Vec<PathBuf> {
        self.unprotect
            .iter()
            .filter(|u| beneath(u, p) && u.as_path() != p)
            .cloned()
            .collect()
    }
}

const BOUNDS: walk::Bounds = walk::Bounds {
    entries: MAX_WALK,
    depth: MAX_WALK_DEPTH,
    skip: SKIP,
};

/// What a visitor collects from the walk's entries.
#[derive(Default)]
struct Seen {
    worktrees: BTreeSet<PathBuf>,
    nested: BTreeSet<(PathBuf, usize)>,
}

impl Seen {
    /// One entry `name` of `dir` (`top`: the workspace itself).
    fn entry(&mut self, ws: &Path, dir: &Path, name: &OsStr, top: bool) {
        let n = name.as_bytes();
        if n == b".git" {
            self.worktrees.insert(dir.to_path_buf());
            return;
        }
        // Most names match no entry: one byte comparison rejects them.
        if !ANY_FIRST_BYTES.contains(&n.first().copied().unwrap_or(0)) {
            return;
        }
        for (i, e) in ENTRIES.iter().enumerate().filter(|(_, e)| e.depth == Any) {
            let (first, second) = match e.name.split_once('/') {
                Some((a, b)) => (a.as_bytes(), Some(b.as_bytes())),
                None => (e.name.as_bytes(), None),
            };
            match second {
                // rust-toolchain.toml below the top.
                None if !top && n == first => {
                    self.nested.insert((dir.join(name), i));
                }
                // .cargo/config.toml: seen from the directory holding .cargo, or from .cargo itself.
                Some(s) if !top && n == first => {
                    let p = dir.join(name).join(OsStr::from_bytes(s));
                    if std::fs::symlink_metadata(&p).is_ok() {
                        self.nested.insert((p, i));
                    }
                }
                Some(s)
                    if n == s
                        && dir.file_name().is_some_and(|f| f.as_bytes() == first)
                        && dir.parent().is_some_and(|p| p != ws) =>
                {
                    self.nested.insert((dir.join(name), i));
                }
                _ => {}
            }
        }
    }
}

/// The first bytes of the names (and second components) of the per-directory entries.
pub(super) const ANY_FIRST_BYTES: &[u8] = b".rcm";

/// Find every protected path of the workspace now: the whole walk (`since`
/// None), or after a run, only what changed since the launch walk `since`
/// (plus the work trees known at launch, whose git directories may have grown
/// modules or worktrees).
pub fn discover(
    scope: &Scope,
    since: Option<(&walk::Walk, &BTreeSet<PathBuf>)>,
) -> (Found, walk::Walk) {
    let ws = &scope.workspace;
    let mut f = Found::default();
    for entry in ENTRIES {
        f.protected.push(Protected {
            path: ws.join(entry.name),
            tool: entry.tool.into(),
            why: entry.why.into(),
            bind: true,
        });
    }
    let mut seen = Seen::default();
    // The repository the workspace lies in, when the workspace has no .git of
    // its own: the user's git commands in the workspace read it.
    for a in ws.ancestors().skip(1) {
        if std::fs::symlink_metadata(a.join(".git")).is_ok() {
            seen.worktrees.insert(a.to_path_buf());
            break;
        }
    }
    let w = {
        let mut visit = |dir: &Path, name: &OsStr, top: bool| seen.entry(ws, dir, name, top);
        match since {
            None => walk::walk(ws, BOUNDS, &mut visit),
            Some((launch, _)) => walk::rewalk(ws, launch, BOUNDS, &mut visit),
        }
    };
    if let Some((_, known)) = since {
        seen.worktrees.extend(known.iter().cloned());
    }
    f.visited = w.visited;
    f.truncated = w.truncated;
    for (p, i) in &seen.nested {
        let e = &ENTRIES[*i];
        f.nested.insert(p.clone());
        f.protected.push(Protected {
            path: p.clone(),
            tool: e.tool.into(),
            why: e.why.into(),
            bind: false,
        });
    }
    for wt in &seen.worktrees {
        let top = wt == ws || !beneath(wt, ws);
        git_worktree(scope, wt, top, &mut f);
    }
    f.worktrees = seen.worktrees;
    f.protected
        .retain(|p| scope.writable(&p.path) && !scope.unprotected(&p.path));
    f.protected.sort_by(|a, b| a.path.cmp(&b.path));
    f.protected.dedup_by(|a, b| a.path == b.path);
    (f, w)
}

/// A work tree's `.git` (directory, file or link) and the git directories it reaches.
fn git_worktree(scope: &Scope, wt: &Path, top: bool, f: &mut Found) {
    let dotgit = wt.join(".git");
    let Ok(md) = std::fs::symlink_metadata(&dotgit) else {
        return;
    };
    let gitdir = if md.is_dir() {
        dotgit.clone()
    } else {
        f.protected.push(Protected {
            path: dotgit.clone(),
            tool: "git".into(),
            why: GIT_POINTER.into(),
            bind: top,
        });
        if md.file_type().is_symlink() {
            match std::fs::canonicalize(&dotgit) {
                Ok(p) => p,
                Err(_) => return,
            }
        } else {
            match pointer(&dotgit, "gitdir:") {
                Some(p) => p,
                None => return,
            }
        }
    };
    let via = (!md.is_dir()).then(|| dotgit.clone());
    git_dir(scope, &gitdir, Some(wt), via, top, f, 0);
}

/// The path a `gitdir: X` or commondir file names, absolute.
pub(super) fn pointer(file: &Path, prefix: &str) -> Option<PathBuf> {
    let text = tree::read_small(file)?;
    let text = String::from_utf8_lossy(&text);
    let target = text
        .trim()
        .strip_prefix(prefix)
        .unwrap_or(text.trim())
        .trim();
    if target.is_empty() {
        return None;
    }
    let base = file.parent()?;
    let p = base.join(target);
    Some(std::fs::canonicalize(&p).unwrap_or_else(|_| crate::policy::clean(&p)))
}

fn git_dir(
    scope: &Scope,
    g: &Path,
    wt: Option<&Path>,
    via: Option<PathBuf>,
    top: bool,
    f: &mut Found,
    depth: usize,
) {
    if depth > 8 || f.git_dirs.contains_key(g) {
        return;
    }
    f.git_dirs.insert(g.to_path_buf(), via);
    for e in GIT_ENTRIES {
        let p = g.join(e.name);
        f.protected.push(Protected {
            path: p.clone(),
            tool: "git".into(),
            why: e.why.into(),
            bind: top,
        });
        // A hooks directory or config that is a link: protect what it names too.
        if let Ok(real) = std::fs::canonicalize(&p) {
            if real != p {
                f.protected.push(Protected {
                    path: real,
                    tool: "git".into(),
                    why: e.why.into(),
                    bind: false,
                });
            }
        }
    }
    // Paths the user's own config points at: a hooks directory or included file
    // in the work tree is as good as .git/hooks.
    if let Some(text) = tree::read_small(&g.join("config")) {
        let text = String::from_utf8_lossy(&text);
        let base = wt.unwrap_or(g);
        for v in gitconfig::values(&text, "core.hookspath") {
            if let Some(p) = user_path(base, &v) {
                f.protected.push(Protected {
                    path: p,
                    tool: "git".into(),
                    why: "the directory core.hooksPath names: its hooks run on commit".into(),
                    bind: top,
                });
            }
        }
        for key in ["include.path", "includeif.*.path"] {
            for v in gitconfig::values(&text, key) {
                if let Some(p) = user_path(g, &v) {
                    f.protected.push(Protected {
                        path: p,
                        tool: "git".into(),
                        why: "a file the repository's config includes".into(),
                        bind: top,
                    });
                }
            }
        }
    }
    let commondir = g.join("commondir");
    if let Some(c) = pointer(&commondir, "") {
        git_dir(scope, &c, None, Some(commondir), top, f, depth + 1);
    }
    for sub in ["worktrees", "modules"] {
        git_dirs_under(scope, &g.join(sub), top, f, depth + 1, 0);
    }
}

/// Submodule and worktree git directories (a submodule's name may hold slashes).
fn git_dirs_under(scope: &Scope, dir: &Path, top: bool, f: &mut Found, depth: usize, level: usize) {
    if level > 4 {
        return;
    }
    for n in tree::list(dir) {
        let p = dir.join(&n);
        if !tree::is_dir(&p) {
            continue;
        }
        if std::fs::symlink_metadata(p.join("HEAD")).is_ok()
            || std::fs::symlink_metadata(p.join("config")).is_ok()
            || std::fs::symlink_metadata(p.join("gitdir")).is_ok()
        {
            git_dir(scope, &p, None, None, top, f, depth);
        } else {
            git_dirs_under(scope, &p, top, f, depth, level + 1);
        }
    }
}

/// A path from the user's git config ("~/" and relative forms), if absolute after expansion.
fn user_path(base: &Path, v: &str) -> Option<PathBuf> {
    if v.is_empty() || v.starts_with('~') || v.starts_with("%(") {
        // In the user's home: outside the workspace.
        return None;
    }
    Some(crate::policy::clean(&base.join(v)))
}
