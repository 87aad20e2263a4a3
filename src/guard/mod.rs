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
pub mod state;
pub mod tree;
pub mod walk;

use discover::pointer;
pub use discover::{Found, Scope, discover};

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    e(".config/mise.toml", false, Top, "mise", "the same as mise.toml"),
    e(".config/mise", true, Top, "mise", "the same as mise.toml"),
    e(".vscode", true, Top, "VS Code", "tasks.json folderOpen tasks run on open; settings name programs (git.path, interpreters)"),
    e(".devcontainer", true, Top, "VS Code, devcontainer", "initializeCommand runs on the host when the folder is opened"),
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
#[derive(Debug)]
pub struct Guard {
    scope: Scope,
    items: Vec<(Protected, tree::Node)>,
    launch_git_dirs: BTreeSet<PathBuf>,
    launch_nested: BTreeSet<PathBuf>,
    launch_worktrees: BTreeSet<PathBuf>,
    /// The launch walk (None when the run joined another's state: the end walks whole).
    walk: Option<walk::Walk>,
    shared: Option<state::Shared>,
    share: Share,
    /// `finish` ran (else dropping the guard of a run does it, for the early exits).
    finished: std::cell::Cell<bool>,
    /// Another run in the workspace was live at launch: its launch state is ours.
    pub joined: bool,
    pub warnings: Vec<String>,
    /// Time spent at launch, and directory entries read (for -v).
    pub cost: std::time::Duration,
    visited: usize,
}

impl Guard {
    /// Discover and keep the launch state. None when the workspace is not writable.
    pub fn launch(policy: &Policy, share: Share) -> Option<Guard> {
        let t = Instant::now();
        let scope = Scope::of(policy)?;
        let shared = match share {
            Share::Run => state::Shared::locate(&scope.workspace, &scope.writable),
            Share::Look => None,
        };
        // Held until the state is written: runs that start together see one state.
        let held = shared.as_ref().and_then(state::Shared::lock);
        let mut st = match (&shared, &held) {
            (Some(sh), Some(h)) => sh.read(h),
            _ => state::State::default(),
        };
        let mut warnings = Vec::new();
        let mut visited = 0;
        let joined = st.active();
        let mut launch_walk = None;
        if !joined {
            let (found, w) = discover(&scope, None);
            launch_walk = Some(w);
            if found.truncated {
                warnings.push(format!(
                    "guard: stopped looking for nested repositories after {MAX_WALK} directory entries; those deeper are not protected"
                ));
            }
            visited = found.visited;
            st.items = found
                .protected
                .iter()
                .map(|p| (p.clone(), tree::snapshot(&p.path)))
                .collect();
            st.git_dirs = found.git_dirs.into_keys().collect();
            st.nested = found.nested.into_iter().collect();
            st.worktrees = found.worktrees.into_iter().collect();
        }
        if let (Some(sh), Some(h)) = (&shared, &held) {
            sh.join(&mut st);
            if !sh.write(&st, h) {
                warnings.push(
                    "guard: cannot record the launch state for runs that overlap this one".into(),
                );
            }
        }
        drop(held);
        let items = st
            .items
            .into_iter()
            .filter(|(p, _)| !scope.unprotected(&p.path))
            .collect();
        Some(Guard {
            items,
            launch_git_dirs: st.git_dirs.into_iter().collect(),
            launch_nested: st.nested.into_iter().collect(),
            launch_worktrees: st.worktrees.into_iter().collect(),
            walk: launch_walk,
            scope,
            shared,
            share,
            finished: std::cell::Cell::new(false),
            joined,
            warnings,
            cost: t.elapsed(),
            visited,
        })
    }

    /// Launch the guard for `policy` and give the policy its carves.
    pub fn apply(policy: &mut Policy, share: Share) -> Option<Guard> {
        let g = Guard::launch(policy, share)?;
        policy.fs.guarded = g.carves();
        Some(g)
    }

    /// Protected paths at the top that exist now (not as links, which a bind
    /// would follow), as read-only carves for the mount view. One with an
    /// opted-out path inside stays writable: it is put back at the end.
    pub fn carves(&self) -> Vec<Carve> {
        self.items
            .iter()
            .filter(|(p, _)| p.bind && self.scope.exceptions_in(&p.path).is_empty())
            .filter_map(|(p, _)| {
                let md = std::fs::symlink_metadata(&p.path).ok()?;
                (!md.file_type().is_symlink()).then(|| Carve {
                    path: p.path.clone(),
                    exists: true,
                    kind: if md.is_dir() { Kind::Dir } else { Kind::Other },
                    origin: Origin {
                        source: p.rule().into(),
                        line: None,
                        column: None,
                        key: None,
                    },
                })
            })
            .collect()
    }

    /// Put every protected path back, neutralise repositories the run created,
    /// and return what was found, as denials.
    pub fn finish(&self, started: Instant) -> (Vec<Denial>, Option<String>) {
        if self.share == Share::Look || self.finished.replace(true) {
            return (Vec::new(), None);
        }
        // The last of overlapping runs restores, from the first one's launch state.
        let held = self.shared.as_ref().and_then(state::Shared::lock);
        if let (Some(sh), Some(h)) = (&self.shared, &held) {
            let mut st = sh.read(h);
            sh.leave(&mut st);
            if st.active() {
                sh.write(&st, h);
                return (
                    Vec::new(),
                    Some("guard: another run in this workspace is live; the last one to end puts protected files back and reports them".into()),
                );
            }
            sh.remove(h);
        }
        let chown = nix::unistd::geteuid().is_root();
        let at_ms = started.elapsed().as_millis() as u64;
        let mut out = Vec::new();
        let denial = |path: &Path, operation: &str, rule: String, outcome: &str| Denial {
            kind: "fs".into(),
            operation: operation.into(),
            target: path.display().to_string(),
            pid: 0,
            exe: String::new(),
            errno: String::new(),
            rule: format!("{rule}; {outcome} when the run ended"),
            suggestion: format!("add \"{}\" to [filesystem] unprotect", path.display()),
            observed_by: "guard".into(),
            at_ms,
        };
        for (p, then) in &self.items {
            let except = self.scope.exceptions_in(&p.path);
            for c in tree::restore(&p.path, then, &except, chown) {
                out.push(denial(&c.path, c.operation, p.rule(), &c.outcome));
            }
        }
        // What the run added: per-directory files below the top, and repositories.
        let (now, _) = discover(
            &self.scope,
            self.walk.as_ref().map(|w| (w, &self.launch_worktrees)),
        );
        for p in &now.protected {
            if now.nested.contains(&p.path) && !self.launch_nested.contains(&p.path) {
                let outcome = tree::remove_path(&p.path);
                out.push(denial(&p.path, "create", p.rule(), &outcome));
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

    /// Git directories found at launch (for -v).
    pub fn git_dirs(&self) -> usize {
        self.launch_git_dirs.len()
    }

    /// Directory entries the launch walk read (for -v; 0 when the run joined another's state).
    pub fn visited(&self) -> usize {
        self.visited
    }

    /// The protected paths (for -v and tests).
    pub fn protected(&self) -> impl Iterator<Item = &Protected> {
        self.items.iter().map(|(p, _)| p)
    }
}

impl Drop for Guard {
    /// A run that ends before its report (a refused profile, a failed spawn)
    /// still leaves the shared state and puts back what it may have changed.
    fn drop(&mut self) {
        let _ = self.finish(Instant::now());
    }
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
        let (f, _) = discover(&scope(&ws), None);
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
