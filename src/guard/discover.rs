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
    /// Walk the workspace (whole, or what changed since a launch walk).
    fn walk(&mut self, ws: &Path, since: Option<(&walk::Walk, &BTreeSet<PathBuf>)>) -> walk::Walk {
        let mut visit = |dir: &Path, name: &OsStr, top: bool| self.entry(ws, dir, name, top);
        match since {
            None => walk::walk(ws, BOUNDS, &mut visit),
            Some((launch, _)) => walk::rewalk(ws, launch, BOUNDS, &mut visit),
        }
    }

    /// The per-directory files found, as protected paths (and in `f.nested`).
    fn nested_items(&self, f: &mut Found) -> Vec<Protected> {
        self.nested
            .iter()
            .map(|(p, i)| {
                let e = &ENTRIES[*i];
                f.nested.insert(p.clone());
                Protected {
                    path: p.clone(),
                    tool: e.tool.into(),
                    why: e.why.into(),
                    bind: false,
                }
            })
            .collect()
    }

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
    let since = match pass {
        Pass::Launch => return rest(scope, top(scope, dirs), dirs),
        Pass::End(since) => since,
    };
    let ws = &scope.workspace;
    let mut f = Found::default();
    let mut seen = Seen::default();
    seen.worktrees.extend(enclosing(ws));
    let w = seen.walk(ws, since);
    if let Some((_, known)) = since {
        seen.worktrees.extend(known.iter().cloned());
    }
    f.visited = w.visited;
    f.truncated = w.truncated;
    let nested = seen.nested_items(&mut f);
    f.protected.extend(nested);
    let mut cx = Cx {
        dirs,
        launch: false,
    };
    for wt in &seen.worktrees {
        git_worktree(&mut cx, wt, is_top(ws, wt), &mut f);
    }
    f.worktrees = seen.worktrees;
    settle(scope, &mut f.protected);
    (f, w)
}

/// The first step of discovery at launch (see [`top`]).
#[derive(Debug)]
pub struct Top {
    /// The table's entries at the top, then the git entries of the work trees
    /// in `done`: in the order a whole discovery finds them.
    f: Found,
    /// The work trees looked at: the repository the workspace lies in, and
    /// the workspace's own.
    done: BTreeSet<PathBuf>,
}

impl Top {
    /// The protected paths found so far, as [`discover`] returns them.
    pub fn protected(&self, scope: &Scope) -> Vec<Protected> {
        let mut v = self.f.protected.clone();
        settle(scope, &mut v);
        v
    }

    /// Whether the walk could change which of these paths are bound: a
    /// per-directory file it finds comes before the git directories' entries
    /// (after the table's), and the first entry of a path is the one kept. So
    /// a bound git entry (a file the config includes, a hooks path) that the
    /// walk could also find below the top would lose its bind.
    pub fn walk_may_unbind(&self, scope: &Scope) -> bool {
        let ws = &scope.workspace;
        // A table entry's path keeps its own (bound) entry, found first.
        let in_table = |p: &Path| {
            p.strip_prefix(ws).is_ok_and(|r| {
                ENTRIES
                    .iter()
                    .any(|e| r.as_os_str().as_bytes() == e.name.as_bytes())
            })
        };
        self.f.protected[ENTRIES.len()..]
            .iter()
            .any(|p| p.bind && may_be_nested(ws, &p.path) && !in_table(&p.path))
    }
}

/// What lies at the workspace's top: the table's entries there, and the git
/// directories of the repository the workspace is (or lies in), with what
/// their config names. Every path the mount view binds is among these; the
/// walk below the top ([`rest`]) adds only paths that are not bound.
pub fn top(scope: &Scope, dirs: &mut tree::Dirs) -> Top {
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
    let mut done: BTreeSet<PathBuf> = enclosing(ws).into_iter().collect();
    // What the walk's first listing would report: any entry named .git.
    if !matches!(
        dirs.lstat(&ws.join(".git")),
        tree::Lstat::Missing | tree::Lstat::Absent
    ) {
        done.insert(ws.clone());
    }
    let mut cx = Cx { dirs, launch: true };
    for wt in &done {
        git_worktree(&mut cx, wt, is_top(ws, wt), &mut f);
    }
    Top { f, done }
}

/// The rest of discovery at launch: the walk below the top, its per-directory
/// files and the repositories it finds. The same result as one discovery: the
/// work trees the walk finds all sort after those `top` looked at (they lie
/// beneath the workspace), so their git directories come in the same order.
pub fn rest(scope: &Scope, top: Top, dirs: &mut tree::Dirs) -> (Found, walk::Walk) {
    let ws = &scope.workspace;
    let Top { mut f, done } = top;
    let mut seen = Seen::default();
    let w = seen.walk(ws, None);
    f.visited = w.visited;
    f.truncated = w.truncated;
    // Where a whole discovery puts them: after the table's entries, before
    // the git directories' (which wins a duplicate depends on it).
    let nested = seen.nested_items(&mut f);
    f.protected.splice(ENTRIES.len()..ENTRIES.len(), nested);
    let mut cx = Cx { dirs, launch: true };
    for wt in seen.worktrees.iter().filter(|wt| !done.contains(*wt)) {
        git_worktree(&mut cx, wt, is_top(ws, wt), &mut f);
    }
    f.worktrees = done;
    f.worktrees.append(&mut seen.worktrees);
    settle(scope, &mut f.protected);
    (f, w)
}

/// Whether the walk could find `p` as a per-directory file below the top
/// (the same conditions as [`Seen::entry`]).
fn may_be_nested(ws: &Path, p: &Path) -> bool {
    let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
        return false;
    };
    if dir == ws || !beneath(dir, ws) {
        return false;
    }
    let name = name.as_bytes();
    if !ANY_FIRST_BYTES.contains(&name.first().copied().unwrap_or(0)) {
        return false;
    }
    ENTRIES
        .iter()
        .filter(|e| e.depth == Any)
        .any(|e| match e.name.split_once('/') {
            None => name == e.name.as_bytes(),
            Some((first, second)) => {
                name == second.as_bytes()
                    && dir
                        .file_name()
                        .is_some_and(|f| f.as_bytes() == first.as_bytes())
                    && dir.parent().is_some_and(|p| p != ws)
            }
        })
}

/// The repository the workspace lies in, when the workspace has no .git of
/// its own: the user's git commands in the workspace read it.
fn enclosing(ws: &Path) -> Option<PathBuf> {
    ws.ancestors()
        .skip(1)
        .find(|a| std::fs::symlink_metadata(a.join(".git")).is_ok())
        .map(Path::to_path_buf)
}

/// A work tree at the workspace's top (or above it): its git directories are bound.
fn is_top(ws: &Path, wt: &Path) -> bool {
    wt == ws || !beneath(wt, ws)
}

/// Opted-out and unwritable paths dropped, sorted, one entry per path (the first found).
fn settle(scope: &Scope, protected: &mut Vec<Protected>) {
    protected.retain(|p| scope.writable(&p.path) && !scope.unprotected(&p.path));
    protected.sort_by(|a, b| path_order(&a.path, &b.path));
    protected.dedup_by(|a, b| a.path == b.path);
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
/// components costs a parse of both paths per comparison; this finds the
/// first byte that differs eight at a time.
pub(super) fn path_order(a: &Path, b: &Path) -> std::cmp::Ordering {
    let (a, b) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap_or_default());
        let y = u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        if x != y {
            break;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    // The end of a path sorts before anything after it, a separator next.
    let key = |s: &[u8]| s.get(i).map(|&c| if c == b'/' { 0 } else { c });
    key(a).cmp(&key(b))
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
