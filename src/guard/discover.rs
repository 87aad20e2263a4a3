//! Discovery: the protected paths of a workspace now. The table's entries at
//! the top, per-directory entries found by the walk, and every git directory
//! reachable from a `.git` in the workspace (or the repository it lies in):
//! through `.git` files and links, `commondir`, `modules/` and `worktrees/`,
//! with the paths the repository's own config names (`core.hooksPath`,
//! `include.path`). Reads only.
//!
//! The end of the run needs less ([`Pass::End`]): the per-directory files and
//! git directories the run may have added, not the entries of every git
//! directory again (those are the launch state's, already put back).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{
    Depth::Any, ENTRIES, GIT_ENTRIES, GIT_POINTER, MAX_WALK, MAX_WALK_DEPTH, Protected, SKIP,
    gitconfig, tree, walk,
};
use crate::policy::{Kind, Policy, beneath};
use nix::sys::stat::SFlag;

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

/// Which discovery.
#[derive(Debug, Clone, Copy)]
pub enum Pass<'a> {
    /// At launch: every protected path.
    Launch,
    /// When the run ends: the per-directory files below the top (in
    /// `protected` and `nested`) and the git directories (`git_dirs`), not the
    /// entries of each git directory. With the launch walk and the work trees
    /// known at launch, only the directories that changed since are listed
    /// (the git directories of those work trees are looked at again: they may
    /// have grown modules or worktrees); without, the whole walk.
    End(Option<(&'a walk::Walk, &'a BTreeSet<PathBuf>)>),
}

/// Find the protected paths of the workspace now (see [`Pass`]), directories
/// opened through `dirs`.
pub fn discover(scope: &Scope, pass: Pass<'_>, dirs: &mut tree::Dirs) -> (Found, walk::Walk) {
    let ws = &scope.workspace;
    let mut f = Found::default();
    let (launch, since) = match pass {
        Pass::Launch => (true, None),
        Pass::End(since) => (false, since),
    };
    if launch {
        for entry in ENTRIES {
            f.protected.push(Protected {
                path: ws.join(entry.name),
                tool: entry.tool.into(),
                why: entry.why.into(),
                bind: true,
            });
        }
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
    let mut cx = Cx { dirs, launch };
    for wt in &seen.worktrees {
        let top = wt == ws || !beneath(wt, ws);
        git_worktree(&mut cx, wt, top, &mut f);
    }
    f.worktrees = seen.worktrees;
    f.protected
        .retain(|p| scope.writable(&p.path) && !scope.unprotected(&p.path));
    f.protected.sort_by(|a, b| path_order(&a.path, &b.path));
    f.protected.dedup_by(|a, b| a.path == b.path);
    (f, w)
}

/// What discovery works with.
struct Cx<'a> {
    dirs: &'a mut tree::Dirs,
    /// [`Pass::Launch`]: the entries of each git directory too.
    launch: bool,
}

/// The kind of what `lstat` found, or None.
fn lstat_kind(dirs: &mut tree::Dirs, p: &Path) -> Option<SFlag> {
    match dirs.lstat(p) {
        tree::Lstat::Found(st) => {
            Some(SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()))
        }
        _ => None,
    }
}

/// The order of `Path`'s `Ord` (component by component) for clean paths, from
/// their bytes: a separator sorts before any byte of a name. Comparing
/// components costs a parse of both paths per comparison.
pub(super) fn path_order(a: &Path, b: &Path) -> std::cmp::Ordering {
    fn key(p: &Path) -> impl Iterator<Item = u8> + '_ {
        p.as_os_str()
            .as_bytes()
            .iter()
            .map(|&c| if c == b'/' { 0 } else { c })
    }
    key(a).cmp(key(b))
}

/// A work tree's `.git` (directory, file or link) and the git directories it reaches.
fn git_worktree(cx: &mut Cx<'_>, wt: &Path, top: bool, f: &mut Found) {
    let dotgit = wt.join(".git");
    let Some(kind) = lstat_kind(cx.dirs, &dotgit) else {
        return;
    };
    let is_dir = kind == SFlag::S_IFDIR;
    let gitdir = if is_dir {
        dotgit.clone()
    } else {
        f.protected.push(Protected {
            path: dotgit.clone(),
            tool: "git".into(),
            why: GIT_POINTER.into(),
            bind: top,
        });
        if kind == SFlag::S_IFLNK {
            match std::fs::canonicalize(&dotgit) {
                Ok(p) => p,
                Err(_) => return,
            }
        } else {
            match pointer_in(cx.dirs, &dotgit, "gitdir:") {
                Some(p) => p,
                None => return,
            }
        }
    };
    let via = (!is_dir).then(|| dotgit.clone());
    git_dir(cx, &gitdir, Some(wt), via, top, f, 0);
}

/// The path a `gitdir: X` or commondir file names, absolute.
pub(super) fn pointer(file: &Path, prefix: &str) -> Option<PathBuf> {
    pointer_in(&mut tree::Dirs::default(), file, prefix)
}

fn pointer_in(dirs: &mut tree::Dirs, file: &Path, prefix: &str) -> Option<PathBuf> {
    let text = tree::read_small_in(dirs, file)?;
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
    cx: &mut Cx<'_>,
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
    if cx.launch {
        git_entries(cx, g, wt, top, f);
    }
    let commondir = g.join("commondir");
    if let Some(c) = pointer_in(cx.dirs, &commondir, "") {
        git_dir(cx, &c, None, Some(commondir), top, f, depth + 1);
    }
    for sub in ["worktrees", "modules"] {
        git_dirs_under(cx, &g.join(sub), top, f, depth + 1, 0);
    }
}

/// What git reads from the git directory `g`, and the paths its config names.
fn git_entries(cx: &mut Cx<'_>, g: &Path, wt: Option<&Path>, top: bool, f: &mut Found) {
    // Then an entry that is not a link is its own canonical path: no
    // readlink of every component per entry to find that out.
    let canonical = cx.dirs.canonical(g);
    for e in GIT_ENTRIES {
        let p = g.join(e.name);
        f.protected.push(Protected {
            path: p.clone(),
            tool: "git".into(),
            why: e.why.into(),
            bind: top,
        });
        let resolve = !canonical
            || match cx.dirs.lstat(&p) {
                tree::Lstat::Found(st) => {
                    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits()
                }
                tree::Lstat::Missing => false,
                tree::Lstat::Absent => true,
            };
        // A hooks directory or config that is a link: protect what it names too.
        if resolve {
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
    }
    // Paths the user's own config points at: a hooks directory or included file
    // in the work tree is as good as .git/hooks.
    if let Some(text) = tree::read_small_in(cx.dirs, &g.join("config")) {
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
}

/// Submodule and worktree git directories (a submodule's name may hold slashes).
fn git_dirs_under(
    cx: &mut Cx<'_>,
    dir: &Path,
    top: bool,
    f: &mut Found,
    depth: usize,
    level: usize,
) {
    if level > 4 {
        return;
    }
    for n in tree::list_in(cx.dirs, dir) {
        let p = dir.join(&n);
        if lstat_kind(cx.dirs, &p) != Some(SFlag::S_IFDIR) {
            continue;
        }
        if ["HEAD", "config", "gitdir"]
            .iter()
            .any(|m| lstat_kind(cx.dirs, &p.join(m)).is_some())
        {
            git_dir(cx, &p, None, None, top, f, depth);
        } else {
            git_dirs_under(cx, &p, top, f, depth, level + 1);
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
