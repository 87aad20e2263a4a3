//! The guard: files in the workspace that make the host's next ordinary
//! command run code (git's config and hooks, toolchain files, package-manager
//! rc files, editor and agent settings), kept as they were at launch.
//!
//! [`ENTRIES`] and [`GIT_ENTRIES`] are the one reviewable list, each entry with
//! its tool and the reason; `profile show` prints them. At launch the guard
//! finds every git directory the workspace holds (a bounded walk that reads
//! directory entries only) and keeps the state of each protected path,
//! existing or not (the bytes of small files). With namespaces, the existing
//! ones at the workspace's top are also bound read-only (through the
//! `read_only` mechanism and its parent pins). When the run ends (also on
//! timeout and interrupt; not when the launcher itself is SIGKILLed), every
//! protected path is compared with its launch state and put back, and git
//! directories the run created are neutralised ([`gitconfig::DANGEROUS`] keys
//! commented out, hooks removed, pointers out of the workspace removed); each
//! finding is a denial in the report (`observed_by: "guard"`).
//!
//! Owns the list, discovery and the end-of-run check. Does not build mounts
//! (plan/namespaces do, from the carves it returns) or write reports.

pub mod discover;
pub mod gitconfig;
mod gitindex;
pub mod state;
pub mod tree;
pub mod walk;

use discover::pointer;
pub use discover::{Found, Pass, Scope, discover};

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::sys::stat::SFlag;

use crate::policy::{Carve, Kind, Policy, beneath};
use crate::profile::Origin;
use crate::report::Denial;

/// Where a tool looks for its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Only at the workspace's top (where the editor or agent is opened).
    Top,
    /// In any directory (the tool searches from the current directory upward).
    Any,
}

/// One protected name: relative to the workspace (or to any directory of it).
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    pub dir: bool,
    pub depth: Depth,
    pub tool: &'static str,
    pub why: &'static str,
}

const fn e(
    name: &'static str,
    dir: bool,
    depth: Depth,
    tool: &'static str,
    why: &'static str,
) -> Entry {
    Entry {
        name,
        dir,
        depth,
        tool,
        why,
    }
}

use Depth::{Any, Top};

/// Files whose contents make a tool run a program for a command that builds
/// nothing (status, version, metadata, opening a folder, starting a session).
/// Not listed: what the user knowingly runs (tests, build scripts,
/// package.json scripts, Makefiles), and files that only select versions or
/// registries.
#[rustfmt::skip]
pub const ENTRIES: &[Entry] = &[
    e(".githooks", true, Top, "git", "a conventional core.hooksPath: its hooks run on the user's commit"),
    e(".husky", true, Top, "git (husky)", "husky sets core.hooksPath to .husky/_: its hooks run on commit"),
    e(".pre-commit-config.yaml", false, Top, "pre-commit", "the installed hook runs its `local` entries on commit"),
    e("lefthook.yml", false, Top, "lefthook", "the installed hook runs its commands on commit"),
    e(".lefthook.yml", false, Top, "lefthook", "the installed hook runs its commands on commit"),
    e("lefthook.yaml", false, Top, "lefthook", "the same as lefthook.yml"),
    e(".lefthook.yaml", false, Top, "lefthook", "the same as lefthook.yml"),
    e("lefthook-local.yml", false, Top, "lefthook", "merged over lefthook.yml: its commands run on commit"),
    e(".lefthook-local.yml", false, Top, "lefthook", "the same as lefthook-local.yml"),
    e("lefthook-local.yaml", false, Top, "lefthook", "the same as lefthook-local.yml"),
    e(".lefthook-local.yaml", false, Top, "lefthook", "the same as lefthook-local.yml"),
    e("rust-toolchain.toml", false, Any, "rustup", "[toolchain] path runs its binaries on every cargo/rustc call, even --version"),
    e("rust-toolchain", false, Any, "rustup", "the legacy form of rust-toolchain.toml (a path runs as the toolchain)"),
    e(".cargo/config.toml", false, Any, "cargo", "build.rustc-wrapper and rustc run on `cargo metadata`, which editors run on open"),
    e(".cargo/config", false, Any, "cargo", "the legacy name of .cargo/config.toml"),
    e(".npmrc", false, Any, "npm, pnpm", "script-shell, node-options (--require) and git= run programs in every npm command"),
    e(".yarnrc.yml", false, Any, "yarn (berry)", "yarnPath runs its script as yarn itself, for every yarn command"),
    e(".yarnrc", false, Any, "yarn (classic)", "yarn-path runs its script as yarn itself"),
    e(".pnpmfile.cjs", false, Top, "pnpm", "its hooks run in every install, even with --ignore-scripts"),
    e(".envrc", false, Any, "direnv", "run by the shell on cd into the directory"),
    e(".env", false, Any, "direnv, mise", "loaded into the shell's environment (PATH, LD_PRELOAD) on cd"),
    e(".tool-versions", false, Any, "asdf, mise", "a `path:` version runs binaries from any directory"),
    e("mise.toml", false, Any, "mise", "[hooks] and [env] _.source run on cd (trust is by path)"),
    e(".mise.toml", false, Any, "mise", "the same as mise.toml"),
    e("mise.local.toml", false, Any, "mise", "the same as mise.toml"),
    e(".mise.local.toml", false, Any, "mise", "the same as mise.toml"),
    e(".mise/config.toml", false, Any, "mise", "the same as mise.toml"),
    e("mise/config.toml", false, Top, "mise", "the same as mise.toml"),
    e(".config/mise.toml", false, Top, "mise", "the same as mise.toml"),
    e(".config/mise", true, Top, "mise", "the same as mise.toml"),
    e(".vscode", true, Top, "VS Code", "tasks.json folderOpen tasks run on open; settings name programs (git.path, interpreters)"),
    e(".devcontainer", true, Top, "VS Code, devcontainer", "initializeCommand runs on the host when the folder is opened"),
    e(".devcontainer.json", false, Top, "VS Code, devcontainer", "the same as .devcontainer/devcontainer.json"),
    e(".idea", true, Top, "JetBrains IDEs", "run configurations, startup tasks and tool paths"),
    e(".zed", true, Top, "Zed", "settings name language-server binaries; tasks"),
    e(".helix", true, Top, "Helix", "languages.toml names language-server commands"),
    e(".nvim.lua", false, Top, "Neovim (exrc)", "run on start in the directory"),
    e(".exrc", false, Top, "Vim, Neovim (exrc)", "run on start in the directory"),
    e(".cursor", true, Top, "Cursor", "mcp.json starts MCP servers; rules steer the agent"),
    e(".claude", true, Top, "Claude Code", "settings.json hooks (SessionStart) and MCP servers run on the next session"),
    e(".mcp.json", false, Top, "Claude Code, MCP clients", "project MCP servers are commands run when the agent starts"),
    e(".codex", true, Top, "Codex", "config.toml names MCP servers and a notify program"),
    e(".gemini", true, Top, "Gemini CLI", "settings.json names MCP servers and tool-discovery commands"),
    e(".opencode", true, Top, "opencode", "plugins in .opencode/plugin run when it starts"),
    e("opencode.json", false, Top, "opencode", "names MCP servers and formatters it runs"),
    e(".aider.conf.yml", false, Top, "aider", "lint-cmd and test-cmd run after every edit"),
    e(".continue", true, Top, "Continue", "config names MCP servers and commands"),
    e(".cordon", true, Top, "cordon", "profiles a later run may load"),
    e(".cordon.toml", false, Top, "cordon", "the repo-local policy every later run in the workspace applies"),
];

/// What git reads from each of its directories.
#[derive(Debug, Clone, Copy)]
pub struct GitEntry {
    pub name: &'static str,
    pub dir: bool,
    pub why: &'static str,
}

#[rustfmt::skip]
pub const GIT_ENTRIES: &[GitEntry] = &[
    GitEntry { name: "config", dir: false, why: "core.fsmonitor, core.hooksPath, pager, filters and aliases run programs on status, diff, commit" },
    GitEntry { name: "config.worktree", dir: false, why: "the same keys, per worktree (extensions.worktreeConfig)" },
    GitEntry { name: "commondir", dir: false, why: "points git at another directory whose config and hooks it uses" },
    GitEntry { name: "hooks", dir: true, why: "run on commit, checkout, merge, rebase, push" },
    GitEntry { name: "info", dir: true, why: "info/attributes assigns filter and diff drivers; info/exclude, sparse-checkout" },
    GitEntry { name: "gitdir", dir: false, why: "a linked worktree's pointer back to its checkout" },
];

/// Why a `.git` file or link in a work tree is protected.
pub(crate) const GIT_POINTER: &str =
    "a .git file or link points git at a directory whose config and hooks it uses";

/// Directories the walk does not enter: caches and dependency trees that hold
/// no repository of the user's and would dominate its cost.
#[rustfmt::skip]
pub(crate) const SKIP: &[&str] = &[
    "node_modules", "target", ".venv", "__pycache__", ".tox", ".mypy_cache", ".pytest_cache",
    ".gradle", ".cache",
];

/// The walk stops after this many directory entries (and says so).
pub const MAX_WALK: usize = 200_000;
pub(crate) const MAX_WALK_DEPTH: usize = 32;

/// A protected path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Protected {
    pub path: PathBuf,
    pub tool: Cow<'static, str>,
    pub why: Cow<'static, str>,
    /// At the workspace's top: bound read-only with namespaces when it exists.
    pub bind: bool,
}

impl Protected {
    pub fn rule(&self) -> String {
        format!("guard ({}): {}", self.tool, self.why)
    }
}

/// Whether a launch takes part in the shared state of the workspace's runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// A run: joins the workspace's shared launch state (or starts it).
    Run,
    /// `profile show`, `explain`: looks only.
    Look,
}

/// The guard of one run: the launch state of every protected path.
///
/// A launch is two steps. [`Guard::launch`] finds what is protected at the
/// workspace's top and what the mount view binds ([`Guard::carves`]);
/// [`Guard::record`] walks below the top (the per-directory files and nested
/// repositories, none of them bound), keeps the launch state (the snapshots)
/// and shares it with overlapping runs. Between the two the workspace's
/// shared-state lock is held. [`Guard::apply`] does both.
#[derive(Debug)]
pub struct Guard {
    scope: Scope,
    /// The launch state of each path: placeholders until [`Guard::record`]
    /// (a joined run has its nodes from the shared state at once).
    items: Vec<(Protected, tree::Node)>,
    launch_git_dirs: BTreeSet<PathBuf>,
    launch_nested: BTreeSet<PathBuf>,
    launch_worktrees: BTreeSet<PathBuf>,
    /// Directories above protected paths (below the workspace) that were
    /// symlinks at launch, with their targets: the user's own. One the run
    /// made is removed, one it retargeted is put back.
    launch_links: BTreeMap<PathBuf, PathBuf>,
    /// The launch walk (None when the run joined another's state: the end walks whole).
    walk: Option<walk::Walk>,
    shared: Option<state::Shared>,
    share: Share,
    carves: Vec<Carve>,
    /// What `launch` leaves to `record` (None once recorded).
    pending: std::sync::Mutex<Option<Pending>>,
    /// `finish` ran (else dropping the guard of a run does it, for the early exits).
    finished: std::cell::Cell<bool>,
    /// Another run in the workspace was live at launch: its launch state is ours.
    pub joined: bool,
    pub warnings: Vec<String>,
    /// Time spent at launch, and directory entries read (for -v).
    pub cost: std::time::Duration,
    visited: usize,
}

/// Between [`Guard::launch`] and [`Guard::record`].
#[derive(Debug)]
struct Pending {
    /// The workspace's shared-state lock.
    held: Option<state::Held>,
    /// A joined run's shared state, written back with this run in it.
    joined: Option<state::State>,
    /// The launch's directories: used before the payload can run, never after.
    dirs: tree::Dirs,
    /// Which of the guard's items `launch` found absent (the state `record`
    /// keeps for them).
    absent: Vec<bool>,
    /// Discovery below the top, left to `record` (it binds nothing).
    rest: Option<discover::Top>,
}

impl Guard {
    /// The first step of a launch: discover what is protected at the
    /// workspace's top, and what the mount view binds
    /// ([`carves`](Self::carves)). None when the workspace is not writable.
    /// The launch state is not kept yet, and the walk below the top is left to
    /// [`record`](Self::record) (unless it could change what is bound): call
    /// it before the payload can run.
    pub fn launch(policy: &Policy, share: Share) -> Option<Guard> {
        let t = Instant::now();
        let scope = Scope::of(policy)?;
        let shared = match share {
            Share::Run => state::Shared::locate(&scope.workspace, &scope.writable),
            Share::Look => None,
        };
        // Held until the state is written: runs that start together see one state.
        let held = shared.as_ref().and_then(state::Shared::lock);
        let st = match (&shared, &held) {
            (Some(sh), Some(h)) => sh.read(h),
            _ => state::State::default(),
        };
        // The directories this launch looks in, opened once; the workspace's
        // top listed, for the dozens of protected names it does not hold.
        let mut dirs = tree::Dirs::default();
        dirs.index(&scope.workspace);
        let joined = st.active();
        let mut g = Guard {
            items: Vec::new(),
            launch_git_dirs: BTreeSet::new(),
            launch_nested: BTreeSet::new(),
            launch_worktrees: BTreeSet::new(),
            launch_links: BTreeMap::new(),
            walk: None,
            scope,
            shared,
            share,
            carves: Vec::new(),
            pending: std::sync::Mutex::new(None),
            finished: std::cell::Cell::new(false),
            joined,
            warnings: Vec::new(),
            cost: std::time::Duration::ZERO,
            visited: 0,
        };
        let mut joined_state = None;
        let mut rest = None;
        if joined {
            g.items = st
                .items
                .iter()
                .filter(|(p, _)| !g.scope.unprotected(&p.path))
                .cloned()
                .collect();
            g.launch_git_dirs = st.git_dirs.iter().cloned().collect();
            g.launch_nested = st.nested.iter().cloned().collect();
            g.launch_worktrees = st.worktrees.iter().cloned().collect();
            g.launch_links = st.links.clone();
            joined_state = Some(st);
        } else {
            let top = discover::top(&g.scope, &mut dirs);
            if top.walk_may_unbind(&g.scope) {
                // Walk now, as one discovery: the carves depend on it.
                let (found, w) = discover::rest(&g.scope, top, &mut dirs);
                g.found(found, w);
            } else {
                // The walk adds nothing the mount view binds: `record` does it.
                g.items = top
                    .protected(&g.scope)
                    .into_iter()
                    .map(|p| (p, tree::Node::Missing))
                    .collect();
                rest = Some(top);
            }
        }
        // The carves, from one lstat of each bound path (through the
        // directories discovery opened); one found absent is absent at launch.
        let mut absent = vec![false; g.items.len()];
        for (i, (p, _)) in g.items.iter().enumerate() {
            if !p.bind || !g.scope.exceptions_in(&p.path).is_empty() {
                continue;
            }
            let st = match dirs.lstat(&p.path) {
                tree::Lstat::Found(st) => st,
                tree::Lstat::Missing => {
                    absent[i] = true;
                    continue;
                }
                tree::Lstat::Absent => continue,
            };
            let fmt = st.st_mode & SFlag::S_IFMT.bits();
            // Not links, which a bind would follow.
            if fmt == SFlag::S_IFLNK.bits() {
                continue;
            }
            g.carves.push(Carve {
                path: p.path.clone(),
                exists: true,
                kind: if fmt == SFlag::S_IFDIR.bits() {
                    Kind::Dir
                } else {
                    Kind::Other
                },
                origin: Origin {
                    source: p.rule().into(),
                    line: None,
                    column: None,
                    key: None,
                },
            });
        }
        *g.pending.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(Pending {
            held,
            joined: joined_state,
            dirs,
            absent,
            rest,
        });
        g.cost = t.elapsed();
        Some(g)
    }

    /// The second step of a launch: walk below the workspace's top (on a
    /// large workspace the bulk of the guard's cost: ~3 ms for 10,000 files),
    /// keep the launch state of every protected path (a joined run has it
    /// already), record it in the workspace's shared state for runs that
    /// overlap this one, and release the lock [`launch`](Self::launch) took.
    /// Once only; later calls do nothing.
    ///
    /// Contract: call it after `launch` and before the payload can run. No
    /// process of the run may have executed anything of the payload's, or
    /// written to the workspace, before it returns: what it keeps is what the
    /// end of the run puts back, and a path `launch` found absent is kept as
    /// absent without looking again. It may run while the child builds its
    /// namespaces and mounts (those write nothing in the workspace); the
    /// descriptors the child inherits from `launch` (the lock, directories of
    /// the workspace) are close-on-exec, and the lock is released with
    /// `LOCK_UN`, not only by closing. Until it returns, other runs in this
    /// workspace wait in their `launch`. A walk stopped at its bounds, or a
    /// failure to share the state, adds to [`warnings`](Self::warnings). A
    /// guard dropped or finished without it puts nothing back (nothing of the
    /// run can have changed anything).
    pub fn record(&mut self) {
        let t = Instant::now();
        let Some(mut p) = self
            .pending
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let mut absent = p.absent;
        if let Some(top) = p.rest.take() {
            let (found, w) = discover::rest(&self.scope, top, &mut p.dirs);
            let first = std::mem::take(&mut self.items);
            self.found(found, w);
            debug_assert!(
                self.carves
                    .iter()
                    .all(|c| { self.items.iter().any(|(p, _)| p.path == c.path && p.bind) })
            );
            absent = same_paths(&first, &absent, &self.items);
        }
        // `profile show` and `explain` only look: their guard never restores.
        if self.share == Share::Run && !self.joined {
            for ((prot, node), absent) in self.items.iter_mut().zip(absent) {
                if !absent {
                    *node = tree::snapshot_in(&mut p.dirs, &prot.path);
                }
            }
            self.launch_links = links(
                &self.scope.workspace,
                self.items.iter().map(|(p, _)| p.path.as_path()),
                &mut p.dirs,
            );
        }
        drop(p.dirs);
        if let (Some(sh), Some(h)) = (&self.shared, &p.held) {
            let ok = match &mut p.joined {
                Some(st) => sh.write_joined(st, h),
                None => sh.write_launch(
                    state::Launch {
                        items: &self.items,
                        git_dirs: &self.launch_git_dirs,
                        nested: &self.launch_nested,
                        worktrees: &self.launch_worktrees,
                        links: &self.launch_links,
                    },
                    h,
                ),
            };
            if !ok {
                self.warnings.push(
                    "guard: cannot record the launch state for runs that overlap this one".into(),
                );
            }
        }
        drop(p.held);
        self.cost += t.elapsed();
    }

    /// Take a whole launch discovery's result.
    fn found(&mut self, found: Found, w: walk::Walk) {
        if found.truncated {
            self.warnings.push(format!(
                "guard: stopped looking for nested repositories after {MAX_WALK} directory entries; those deeper are not protected"
            ));
        }
        self.visited = found.visited;
        self.walk = Some(w);
        self.items = found
            .protected
            .into_iter()
            .filter(|p| !self.scope.unprotected(&p.path))
            .map(|p| (p, tree::Node::Missing))
            .collect();
        self.launch_git_dirs = found.git_dirs.into_keys().collect();
        self.launch_nested = found.nested;
        self.launch_worktrees = found.worktrees;
    }

    /// Launch the guard for `policy`, give the policy its carves and record
    /// the launch state ([`launch`](Self::launch), then [`record`](Self::record)).
    pub fn apply(policy: &mut Policy, share: Share) -> Option<Guard> {
        let mut g = Guard::launch(policy, share)?;
        policy.fs.guarded = g.carves();
        g.record();
        Some(g)
    }

    /// Protected paths at the top that existed at launch (not as links, which
    /// a bind would follow), as read-only carves for the mount view. One with
    /// an opted-out path inside stays writable: it is put back at the end.
    pub fn carves(&self) -> Vec<Carve> {
        self.carves.clone()
    }

    /// Put every protected path back, neutralise repositories the run created,
    /// and return what was found, as denials.
    pub fn finish(&self, started: Instant) -> (Vec<Denial>, Option<String>) {
        if self.share == Share::Look || self.finished.replace(true) {
            return (Vec::new(), None);
        }
        // Not recorded: nothing of the run ran. Release the lock, keep nothing;
        // a first run (no live run at launch, none since: the lock was held)
        // leaves no files, as the last one to end would.
        if let Some(p) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            if let (Some(sh), Some(h), None) = (&self.shared, &p.held, &p.joined) {
                sh.remove(h);
            }
            return (Vec::new(), None);
        }
        // The last of overlapping runs restores, from the first one's launch state.
        let held = self.shared.as_ref().and_then(state::Shared::lock);
        if let (Some(sh), Some(h)) = (&self.shared, &held) {
            if sh.leave(h) {
                return (
                    Vec::new(),
                    Some("guard: another run in this workspace is live; the last one to end puts protected files back and reports them".into()),
                );
            }
        }
        let chown = nix::unistd::geteuid().is_root();
        let at_ms = started.elapsed().as_millis() as u64;
        let mut out = Vec::new();
        let denial = |path: &Path, operation: &str, rule: String, outcome: &str| Denial {
            kind: crate::report::DenialKind::Fs,
            operation: operation.into(),
            target: path.display().to_string(),
            pid: 0,
            exe: String::new(),
            errno: String::new(),
            rule: format!("{rule}; {outcome} when the run ended"),
            suggestion: format!("add \"{}\" to [filesystem] unprotect", path.display()),
            observed_by: crate::report::ObservedBy::Guard,
            at_ms,
        };
        // Opened now, with the payload's tree gone (never the launch's).
        let mut dirs = tree::Dirs::default();
        dirs.index(&self.scope.workspace);
        // A directory above a protected path that the run made a symlink (to a
        // directory of its own holding the file: `.cargo -> own`) redirects
        // the host's tools past every check below, which refuses to follow it.
        let paths: Vec<&Protected> = self.items.iter().map(|(p, _)| p).collect();
        for (link, operation, rule, outcome) in self.unlink_new(&paths, &mut dirs) {
            out.push(denial(&link, operation, rule, &outcome));
        }
        for (p, then) in &self.items {
            let except = self.scope.exceptions_in(&p.path);
            for c in tree::restore_in(&mut dirs, &p.path, then, &except, chown) {
                out.push(denial(&c.path, c.operation, p.rule(), &c.outcome));
            }
        }
        // What the run added: per-directory files below the top, and repositories.
        let since = self.walk.as_ref().map(|w| (w, &self.launch_worktrees));
        let (now, _) = discover(&self.scope, Pass::End(since), &mut dirs);
        // Found through a link the run made (`sub/.cargo -> ../own`): the link goes.
        let found: Vec<&Protected> = now.protected.iter().collect();
        let mut unlinked = Vec::new();
        for (link, operation, rule, outcome) in self.unlink_new(&found, &mut dirs) {
            out.push(denial(&link, operation, rule, &outcome));
            unlinked.push(link);
        }
        drop(dirs);
        for p in &now.protected {
            if unlinked.iter().any(|l| p.path.starts_with(l)) {
                continue;
            }
            if now.nested.contains(&p.path) && !self.launch_nested.contains(&p.path) {
                let outcome = tree::remove_path(&p.path);
                out.push(denial(&p.path, "create", p.rule(), &outcome));
            }
        }
        // Repositories the run made where the walk does not look (node_modules,
        // target, ...), registered as submodules of a repository it knows: a
        // `git status` there reads their config.
        let since = std::time::SystemTime::now()
            .checked_sub(started.elapsed())
            .unwrap_or(std::time::UNIX_EPOCH);
        let mut linked = Vec::new();
        for g in self.launch_git_dirs.iter().chain(now.git_dirs.keys()) {
            for sub in gitlinked(g, since) {
                if beneath(&sub, &self.scope.workspace)
                    && !self.launch_git_dirs.contains(&sub)
                    && !now.git_dirs.contains_key(&sub)
                    && !linked.contains(&sub)
                {
                    linked.push(sub);
                }
            }
        }
        for g in &linked {
            for (path, op, rule, outcome) in neutralise(g, &self.scope) {
                out.push(denial(&path, op, rule, &outcome));
            }
        }
        for (g, via) in &now.git_dirs {
            if self.launch_git_dirs.contains(g) {
                continue;
            }
            if beneath(g, &self.scope.workspace) {
                for (path, op, rule, outcome) in neutralise(g, &self.scope) {
                    out.push(denial(&path, op, rule, &outcome));
                }
            } else if let Some(ptr) = via {
                // A new pointer out of the workspace (to a directory of the payload's
                // in a scratch root): remove the pointer, leave the target alone.
                if !self.items.iter().any(|(p, _)| p.path == *ptr) && self.scope.writable(ptr) {
                    let outcome = tree::remove_path(ptr);
                    out.push(denial(
                        ptr,
                        "create",
                        format!("guard (git): {GIT_POINTER}"),
                        &outcome,
                    ));
                }
            }
        }
        drop(held);
        (out, None)
    }

    /// A directory above one of `paths` that the run made a symlink (to a
    /// directory of its own holding the file: `.cargo -> own`) redirects the
    /// host's tools past every check of the paths beneath, which refuses to
    /// follow it: removed, or put back where the user had a link at launch
    /// and the run retargeted it. (path, operation, rule, outcome) each.
    fn unlink_new(
        &self,
        paths: &[&Protected],
        dirs: &mut tree::Dirs,
    ) -> Vec<(PathBuf, &'static str, String, String)> {
        let now = links(
            &self.scope.workspace,
            paths.iter().map(|p| p.path.as_path()),
            dirs,
        );
        let mut out = Vec::new();
        for (link, target) in now {
            let then = self.launch_links.get(&link);
            if then == Some(&target) {
                continue;
            }
            let rule = paths
                .iter()
                .find(|p| p.path.starts_with(&link))
                .map(|p| p.rule())
                .unwrap_or_default();
            let (operation, outcome) = match then {
                Some(t) => ("modify", tree::relink(&link, t)),
                None => ("create", tree::remove_path(&link)),
            };
            dirs.forget(&link);
            out.push((link, operation, rule, outcome));
        }
        out
    }

    /// Git directories found at launch (for -v; those below the top once recorded).
    pub fn git_dirs(&self) -> usize {
        self.launch_git_dirs.len()
    }

    /// Directory entries the launch walk read (for -v; 0 when the run joined
    /// another's state, or before `record`).
    pub fn visited(&self) -> usize {
        self.visited
    }

    /// The protected paths (for -v and tests; those below the top once recorded).
    pub fn protected(&self) -> impl Iterator<Item = &Protected> {
        self.items.iter().map(|(p, _)| p)
    }
}

/// The directories strictly between `ws` and a protected path that are
/// symlinks, with their targets (each once; below a symlink nothing more is
/// looked at).
fn links<'a>(
    ws: &Path,
    paths: impl Iterator<Item = &'a Path>,
    dirs: &mut tree::Dirs,
) -> BTreeMap<PathBuf, PathBuf> {
    let mut out = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for path in paths {
        let Ok(rel) = path.strip_prefix(ws) else {
            continue;
        };
        let mut a = ws.to_path_buf();
        let parts: Vec<_> = rel.components().collect();
        for c in parts.iter().take(parts.len().saturating_sub(1)) {
            a.push(c);
            if out.contains_key(&a) {
                break;
            }
            if !seen.insert(a.clone()) {
                continue;
            }
            let link = matches!(dirs.lstat(&a), tree::Lstat::Found(st)
                if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits());
            if link {
                out.insert(a.clone(), tree::link_target(&a).unwrap_or_default());
                break;
            }
        }
    }
    out
}

/// `flags` (one per item of `from`) carried to the items of `to` at the same
/// paths; both lists are sorted (as discovery returns them).
fn same_paths(
    from: &[(Protected, tree::Node)],
    flags: &[bool],
    to: &[(Protected, tree::Node)],
) -> Vec<bool> {
    let mut out = vec![false; to.len()];
    let mut i = 0;
    for (j, (p, _)) in to.iter().enumerate() {
        while i < from.len() && discover::path_order(&from[i].0.path, &p.path).is_lt() {
            i += 1;
        }
        if i < from.len() && from[i].0.path == p.path {
            out[j] = flags[i];
        }
    }
    out
}

impl Drop for Guard {
    /// A run that ends before its report (a refused profile, a failed spawn)
    /// still leaves the shared state and puts back what it may have changed.
    fn drop(&mut self) {
        let _ = self.finish(Instant::now());
    }
}

/// The git directories of the submodules (gitlinks) in the index of the
/// repository whose git directory is `g` that were made after `since` (their
/// birth time): read only when the index itself changed since then. A
/// repository the user had is never among them.
fn gitlinked(g: &Path, since: std::time::SystemTime) -> Vec<PathBuf> {
    let index = g.join("index");
    let changed = std::fs::symlink_metadata(&index)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since);
    let Some(work_tree) = g.parent().filter(|_| g.ends_with(".git")) else {
        return Vec::new();
    };
    if !changed {
        return Vec::new();
    }
    let Some(bytes) = tree::read_limited(&index, 64 << 20) else {
        return Vec::new();
    };
    gitindex::gitlinks(&bytes)
        .into_iter()
        .map(|rel| work_tree.join(rel).join(".git"))
        .filter(|sub| {
            std::fs::symlink_metadata(sub)
                .and_then(|m| m.created())
                .is_ok_and(|t| t >= since)
        })
        .collect()
}

/// Make a git directory the run created harmless: dangerous config keys
/// commented out, hooks other than git's samples removed.
fn neutralise(g: &Path, scope: &Scope) -> Vec<(PathBuf, &'static str, String, String)> {
    let mut out = Vec::new();
    for name in ["config", "config.worktree"] {
        let p = g.join(name);
        if scope.unprotected(&p) {
            continue;
        }
        // A config that cannot be read here (a link to one elsewhere, padded
        // past the limit) is one git reads whole: it goes.
        if let Some(what) = tree::unreadable(&p) {
            let outcome = tree::remove_path(&p);
            out.push((
                p.clone(),
                "create",
                format!("guard (git): a repository the run created has {what} as its {name}"),
                outcome,
            ));
            continue;
        }
        let Some(bytes) = tree::read_small(&p) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        if let Some((fixed, removed)) = gitconfig::neutralise(&text) {
            let outcome = match tree::rewrite(&p, fixed.as_bytes()) {
                Ok(()) => "commented out".to_string(),
                Err(e) => format!("not neutralised: {e}"),
            };
            for (key, why) in removed {
                out.push((
                    p.clone(),
                    "modify",
                    format!("guard (git): {key} in a repository the run created: {why}"),
                    outcome.clone(),
                ));
            }
        }
    }
    let hooks = g.join("hooks");
    // Hooks through a link to a directory of the payload's: the link goes.
    if tree::is_link(&hooks) && !scope.unprotected(&hooks) {
        let outcome = tree::remove_path(&hooks);
        out.push((
            hooks.clone(),
            "create",
            "guard (git): a repository the run created has a symlink as its hooks".into(),
            outcome,
        ));
    }
    for n in tree::list(&hooks) {
        let p = hooks.join(&n);
        if n.as_bytes().ends_with(b".sample") || scope.unprotected(&p) {
            continue;
        }
        let outcome = tree::remove_path(&p);
        out.push((
            p,
            "create",
            "guard (git): a hook in a repository the run created".into(),
            outcome,
        ));
    }
    let commondir = g.join("commondir");
    if let Some(c) = pointer(&commondir, "") {
        if !beneath(&c, &scope.workspace) && !scope.unprotected(&commondir) {
            let outcome = tree::remove_path(&commondir);
            out.push((
                commondir,
                "create",
                "guard (git): a repository the run created points out of the workspace".into(),
                outcome,
            ));
        }
    }
    out
}

/// The list as text, for `profile show`.
pub fn describe() -> String {
    let mut s = String::new();
    for e in ENTRIES {
        s.push_str(&format!(
            "# guard: {}{} ({}{}): {}\n",
            e.name,
            if e.dir { "/" } else { "" },
            e.tool,
            if e.depth == Any {
                ", in any directory"
            } else {
                ""
            },
            e.why
        ));
    }
    for e in GIT_ENTRIES {
        s.push_str(&format!(
            "# guard: <every git dir>/{}{} (git): {}\n",
            e.name,
            if e.dir { "/" } else { "" },
            e.why
        ));
    }
    s.push_str(&format!(
        "# guard: <work tree>/.git file or link (git): {GIT_POINTER}\n"
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::discover::ANY_FIRST_BYTES;
    use super::*;

    fn scope(ws: &Path) -> Scope {
        Scope {
            workspace: ws.to_path_buf(),
            writable: vec![ws.to_path_buf()],
            unprotect: vec![],
        }
    }

    fn git(args: &[&str], dir: &Path) {
        let st = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
    }

    #[test]
    fn discovery_finds_nested_repositories_worktrees_and_hookspath() {
        let d = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(d.path()).unwrap();
        git(&["init", "-q"], &ws);
        git(&["config", "core.hooksPath", "tools/hooks"], &ws);
        std::fs::create_dir_all(ws.join("vendor/lib")).unwrap();
        git(&["init", "-q"], &ws.join("vendor/lib"));
        std::fs::create_dir_all(ws.join("sub/.cargo")).unwrap();
        std::fs::write(ws.join("sub/.cargo/config.toml"), "").unwrap();
        std::fs::create_dir_all(ws.join("node_modules/x/.git")).unwrap();
        let (f, _) = discover(&scope(&ws), Pass::Launch, &mut tree::Dirs::default());
        let has = |p: &str| f.protected.iter().any(|x| x.path == ws.join(p));
        for p in [
            ".git/config",
            ".git/hooks",
            ".git/commondir",
            "tools/hooks",
            "vendor/lib/.git/config",
            "vendor/lib/.git/hooks",
            "sub/.cargo/config.toml",
            ".claude",
            "rust-toolchain.toml",
        ] {
            assert!(has(p), "{p} not protected: {:#?}", f.protected);
        }
        assert!(
            !has("node_modules/x/.git/config"),
            "skipped trees are not walked"
        );
        assert!(f.git_dirs.contains_key(&ws.join("vendor/lib/.git")));
        let bound = |p: &str| f.protected.iter().any(|x| x.path == ws.join(p) && x.bind);
        assert!(bound(".git/config") && !bound("vendor/lib/.git/config"));
    }

    fn policy(ws: &Path) -> Policy {
        let ctx = crate::vars::Context {
            workspace: ws.to_path_buf(),
            cwd: ws.to_path_buf(),
            home: None,
            tmpdir: "/tmp".into(),
            env: Default::default(),
        };
        let text = "[filesystem]\nwrite = [\"${WORKSPACE}\"]\n";
        let p = crate::profile::Profile::from_text("t.toml", text, None).unwrap();
        Policy::new(&p, &ctx, crate::policy::Missing::Skip).unwrap()
    }

    #[test]
    fn a_launch_is_recorded_in_a_second_step_and_one_never_recorded_keeps_nothing() {
        let d = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(d.path()).unwrap();
        git(&["init", "-q"], &ws);
        std::fs::write(ws.join(".envrc"), "launch\n").unwrap();
        let mut policy = policy(&ws);
        let mut g = Guard::launch(&policy, Share::Run).unwrap();
        // Everything the mount view needs is known before the launch state is kept.
        let carves = g.carves();
        let carved = |p: &str| carves.iter().any(|c| c.path == ws.join(p));
        assert!(carved(".envrc") && carved(".git/config") && carved(".git/hooks"));
        assert!(!carved(".claude") && !carved("rust-toolchain.toml"));
        policy.fs.guarded = carves;
        g.record();
        g.record();
        let shared = state::Shared::locate(&ws, std::slice::from_ref(&ws)).is_some();
        // The lock is free again, and the state is there to join; a launch that
        // is never recorded is not a live run of the workspace.
        let other = Guard::launch(&policy, Share::Run).unwrap();
        assert_eq!(other.joined, shared);
        drop(other);
        std::fs::write(ws.join(".envrc"), "changed\n").unwrap();
        std::fs::create_dir(ws.join(".claude")).unwrap();
        let (found, note) = g.finish(Instant::now());
        assert_eq!(note, None);
        let ops: BTreeSet<(String, &str)> = found
            .iter()
            .map(|d| (d.target.clone(), d.operation.as_str()))
            .collect();
        assert_eq!(
            ops,
            BTreeSet::from([
                (ws.join(".envrc").display().to_string(), "modify"),
                (ws.join(".claude").display().to_string(), "create"),
            ])
        );
        assert_eq!(
            std::fs::read_to_string(ws.join(".envrc")).unwrap(),
            "launch\n"
        );
        assert!(!ws.join(".claude").exists());
        // Dropped before `record`: nothing is put back, and no file is left.
        let g = Guard::launch(&policy, Share::Run).unwrap();
        std::fs::write(ws.join(".envrc"), "later\n").unwrap();
        assert!(g.finish(Instant::now()).0.is_empty());
        assert_eq!(
            std::fs::read_to_string(ws.join(".envrc")).unwrap(),
            "later\n"
        );
        if let Some(sh) = state::Shared::locate(&ws, std::slice::from_ref(&ws)) {
            assert!(!sh.lock.exists() && !sh.state.exists());
        }
    }

    /// The carves as the whole list of protected paths gives them.
    fn carves_of(g: &Guard) -> BTreeSet<PathBuf> {
        g.protected()
            .filter(|p| p.bind && g.scope.exceptions_in(&p.path).is_empty())
            .filter(|p| {
                std::fs::symlink_metadata(&p.path).is_ok_and(|m| !m.file_type().is_symlink())
            })
            .map(|p| p.path.clone())
            .collect()
    }

    #[test]
    fn the_walk_below_the_top_waits_for_record_unless_it_could_unbind_a_path() {
        let d = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(d.path()).unwrap();
        git(&["init", "-q"], &ws);
        git(&["config", "core.hooksPath", "tools/hooks"], &ws);
        std::fs::create_dir_all(ws.join("tools/hooks")).unwrap();
        std::fs::create_dir_all(ws.join("vendor/lib")).unwrap();
        git(&["init", "-q"], &ws.join("vendor/lib"));
        std::fs::create_dir_all(ws.join("sub/.cargo")).unwrap();
        std::fs::write(ws.join("sub/.cargo/config.toml"), "").unwrap();
        std::fs::write(ws.join("sub/.envrc"), "").unwrap();
        let policy = policy(&ws);
        let has = |g: &Guard, p: &str| g.protected().any(|x| x.path == ws.join(p));

        let mut g = Guard::launch(&policy, Share::Look).unwrap();
        assert!(has(&g, ".git/config") && has(&g, "tools/hooks"));
        assert!(!has(&g, "vendor/lib/.git/config") && !has(&g, "sub/.envrc"));
        let carves: BTreeSet<PathBuf> = g.carves().into_iter().map(|c| c.path).collect();
        g.record();
        assert!(has(&g, "vendor/lib/.git/config") && has(&g, "sub/.cargo/config.toml"));
        assert!(g.git_dirs() == 2 && g.visited() > 0);
        assert_eq!(carves, carves_of(&g));
        assert!(carves.contains(&ws.join("tools/hooks")));

        // A file the repository's config includes is bound, unless the walk
        // finds it as a per-directory file: then discovery walks at launch.
        git(&["config", "include.path", "../sub/.envrc"], &ws);
        git(&["config", "--add", "include.path", "../tools/extra"], &ws);
        std::fs::write(ws.join("tools/extra"), "").unwrap();
        let mut g = Guard::launch(&policy, Share::Look).unwrap();
        assert!(has(&g, "vendor/lib/.git/config"));
        let carves: BTreeSet<PathBuf> = g.carves().into_iter().map(|c| c.path).collect();
        g.record();
        assert_eq!(carves, carves_of(&g));
        assert!(carves.contains(&ws.join("tools/extra")));
        assert!(!carves.contains(&ws.join("sub/.envrc")));
    }

    #[test]
    fn what_launch_found_absent_is_carried_to_the_whole_list_by_path() {
        let item = |p: &str| {
            (
                Protected {
                    path: p.into(),
                    tool: "t".into(),
                    why: "w".into(),
                    bind: true,
                },
                tree::Node::Missing,
            )
        };
        // In the order discovery sorts them: a separator before any other byte.
        let from: Vec<_> = ["/w/a", "/w/a/c", "/w/e"].map(item).into();
        let to: Vec<_> = ["/w/a", "/w/a/b", "/w/a/c", "/w/a-b", "/w/d", "/w/e"]
            .map(item)
            .into();
        assert!(to.is_sorted_by(|a, b| discover::path_order(&a.0.path, &b.0.path).is_le()));
        assert_eq!(
            same_paths(&from, &[true, true, false], &to),
            [true, false, true, false, false, false]
        );
    }

    #[test]
    fn protected_paths_sort_as_paths_do() {
        let names = [
            "/w",
            "/w/a",
            "/w/a-b",
            "/w/a/b",
            "/w/a.b",
            "/w/a/b/c",
            "/w/ab",
            "/w/a b",
            "/w-x",
            "/w/.git",
            "/w/.git/hooks",
            "/w/.gitx",
            "/w/.git-x",
            "/x",
            "/",
            "/w/a/\u{e9}",
        ];
        let mut by_path: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
        let mut by_bytes = by_path.clone();
        by_path.sort();
        by_bytes.sort_by(|a, b| discover::path_order(a, b));
        assert_eq!(by_path, by_bytes);
    }

    #[test]
    fn unprotect_removes_a_path_and_leaves_exceptions_inside_directories() {
        let ws = PathBuf::from("/w");
        let mut s = scope(&ws);
        s.unprotect = vec![ws.join(".vscode/settings.json"), ws.join(".envrc")];
        assert!(s.unprotected(&ws.join(".envrc")));
        assert!(!s.unprotected(&ws.join(".vscode")));
        assert_eq!(
            s.exceptions_in(&ws.join(".vscode")),
            [ws.join(".vscode/settings.json")]
        );
    }

    #[test]
    fn the_list_names_a_tool_and_a_reason_for_every_entry() {
        for e in ENTRIES {
            assert!(!e.tool.is_empty() && !e.why.is_empty(), "{}", e.name);
            assert!(
                !e.name.starts_with('/') && !e.name.contains(".."),
                "{}",
                e.name
            );
        }
        assert!(describe().contains("rust-toolchain.toml"));
        for e in ENTRIES.iter().filter(|e| e.depth == Any) {
            for part in e.name.split('/') {
                assert!(ANY_FIRST_BYTES.contains(&part.as_bytes()[0]), "{}", e.name);
            }
        }
    }
}
