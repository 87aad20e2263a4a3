//! The change record: which files a run created, modified, deleted or renamed in
//! its writable roots, seen by the launcher independently of git (a payload can
//! hide its work from `git status` with `--skip-worktree` or `.git/info/exclude`,
//! not from this).
//!
//! It owns the decoding of write-intent calls into the paths they name
//! ([`targets`]), the "before" state taken while the caller waits (the filter
//! sends only those calls: `seccomp::OBSERVE_CHANGES`), the "after" state taken
//! once the whole tree has exited, the classification ([`classify`], pure), and
//! the report's `changes` object. It does not own the filter, the notification
//! loop (`monitor`), or enforcement: this is an audit trail. A racing thread can
//! rewrite a path in memory after the launcher read it and before the kernel
//! does; the record then names the wrong path (the write is still confined to
//! the writable roots by Landlock and the mount view).
//!
//! Files are compared by content where that is cheap (sha256 of regular files up
//! to [`HASH_MAX`]), otherwise by size and ctime (which the kernel sets on every
//! write and no call sets back); directories only by existence, mode and owner.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Regular files up to this size are hashed before and after.
pub const HASH_MAX: u64 = 64 * 1024;
/// Distinct paths recorded per run; past it the record says it was truncated.
pub const MAX_PATHS: usize = 20_000;
/// Bytes of recorded paths per run.
pub const MAX_PATH_BYTES: usize = 4 << 20;

/// Where a write-intent call names a file: a path string in the caller's
/// memory relative to a directory descriptor, or a descriptor itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `dirfd` (AT_FDCWD for the cwd) and the address of the path; a null
    /// address (utimensat's) or an empty path (AT_EMPTY_PATH) means `dirfd` itself.
    At(i32, u64),
    Fd(i32),
}

/// The files a call of `seccomp::OBSERVE_CHANGES` may change (x86_64 argument
/// order). A rename names both ends: the source's "before" is what the target
/// must match to count as renamed.
pub fn targets(name: &str, a: &[u64; 6]) -> Vec<Target> {
    let cwd = |i: usize| Target::At(libc::AT_FDCWD, a[i]);
    let at = |d: usize, p: usize| Target::At(a[d] as i32, a[p]);
    match name {
        "open" | "creat" | "mkdir" | "mknod" | "unlink" | "rmdir" | "truncate" | "chmod"
        | "chown" | "lchown" | "utime" | "utimes" => vec![cwd(0)],
        "openat" | "openat2" | "mkdirat" | "mknodat" | "unlinkat" | "fchmodat" | "fchmodat2"
        | "fchownat" | "utimensat" | "futimesat" => vec![at(0, 1)],
        "rename" => vec![cwd(0), cwd(1)],
        "renameat" | "renameat2" => vec![at(0, 1), at(2, 3)],
        "link" | "symlink" => vec![cwd(1)],
        "linkat" => vec![at(2, 3)],
        "symlinkat" => vec![at(1, 2)],
        "ftruncate" | "fchmod" | "fchown" => vec![Target::Fd(a[0] as i32)],
        _ => vec![],
    }
}

/// What kind of file a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// One path's state at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub kind: Kind,
    pub size: u64,
    /// Permission bits (and setuid, setgid, sticky).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub dev: u64,
    pub ino: u64,
    pub ctime: (i64, i64),
    /// Birth time where the file system keeps one: an inode number can be
    /// reused within a run, a birth time cannot.
    pub btime: Option<std::time::SystemTime>,
    /// Regular files up to [`HASH_MAX`] that we could read.
    pub sha256: Option<[u8; 32]>,
    /// A symbolic link's target.
    pub link: Option<PathBuf>,
}

/// A path as seen once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Absent,
    Present(State),
    /// It could not be looked at (a symbolic link on the way, no permission).
    Unknown,
}

/// One entry of the report's `changes` lists.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    /// For a rename, where it came from (`path` is where it went).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_after: Option<String>,
    /// Octal permission bits, where they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_after: Option<String>,
    /// The executable of the first process that asked to change it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub by: String,
}

/// The report's `changes` object.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Changes {
    pub created: Vec<Change>,
    pub modified: Vec<Change>,
    pub deleted: Vec<Change>,
    pub renamed: Vec<Change>,
    /// Paths opened or touched for writing that ended as they began (identical
    /// content, or created and removed again within the run).
    #[serde(default)]
    pub unchanged: u64,
    /// A cap ([`MAX_PATHS`], [`MAX_PATH_BYTES`]) was reached: later paths are missing.
    #[serde(default)]
    pub truncated: bool,
}

impl Changes {
    pub fn count(&self) -> usize {
        self.created.len() + self.modified.len() + self.deleted.len() + self.renamed.len()
    }

    /// The exit summary's line, or nothing when nothing changed.
    pub fn summary(&self, report: Option<&Path>) -> String {
        let n = self.count();
        if n == 0 && !self.truncated {
            return String::new();
        }
        let parts: Vec<String> = [
            (self.created.len(), "created"),
            (self.modified.len(), "modified"),
            (self.deleted.len(), "deleted"),
            (self.renamed.len(), "renamed"),
        ]
        .iter()
        .filter(|(k, _)| *k > 0)
        .map(|(k, what)| format!("{k} {what}"))
        .collect();
        let where_ = match report {
            Some(p) => format!("see cordon report diff {}", p.display()),
            None => "not listed: no report".into(),
        };
        format!(
            "cordon: {n}{} file{} changed in the writable roots: {} ({where_})\n",
            if self.truncated { "+" } else { "" },
            if n == 1 { "" } else { "s" },
            if parts.is_empty() {
                "record truncated".to_string()
            } else {
                parts.join(", ")
            }
        )
    }

    /// `cordon report diff`: one line per change, paths escaped.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let size = |c: &Change| match (c.size_before, c.size_after) {
            (Some(b), Some(a)) if b != a => format!(" ({b} -> {a} bytes)"),
            (_, Some(a)) => format!(" ({a} bytes)"),
            (Some(b), None) => format!(" ({b} bytes)"),
            _ => String::new(),
        };
        let extra = |c: &Change| {
            let mut e = String::new();
            if let Some(k) = c.kind.filter(|k| *k != Kind::File) {
                e.push_str(&format!(" [{}]", format!("{k:?}").to_lowercase()));
            }
            if let (Some(b), Some(a)) = (&c.mode_before, &c.mode_after) {
                e.push_str(&format!(" mode {b} -> {a}"));
            }
            if !c.by.is_empty() {
                e.push_str(&format!(" by {}", escape(&c.by)));
            }
            e
        };
        for (what, list) in [
            ("created ", &self.created),
            ("modified", &self.modified),
            ("deleted ", &self.deleted),
        ] {
            for c in list {
                s.push_str(&format!(
                    "{what} {}{}{}\n",
                    escape(&c.path),
                    size(c),
                    extra(c)
                ));
            }
        }
        for c in &self.renamed {
            s.push_str(&format!(
                "renamed  {} -> {}{}{}\n",
                escape(c.from.as_deref().unwrap_or("?")),
                escape(&c.path),
                size(c),
                extra(c)
            ));
        }
        if self.count() == 0 {
            s.push_str("no files changed\n");
        }
        if self.unchanged > 0 {
            s.push_str(&format!(
                "({} path{} opened for writing ended unchanged)\n",
                self.unchanged,
                if self.unchanged == 1 { "" } else { "s" }
            ));
        }
        if self.truncated {
            s.push_str("(the record was truncated: later paths are missing)\n");
        }
        s
    }
}

/// Paths as `report diff` prints them: the escaping replay uses for text taken
/// from a report (backslashes doubled, controls and bidi overrides visible), so
/// a path cannot forge lines or move the cursor on the reader's terminal.
pub use crate::trust::escape_controls as escape;

/// Whether `before` and `after` differ in what a reviewer cares about.
fn differs(b: &State, a: &State) -> bool {
    if b.kind != a.kind || b.mode != a.mode || b.uid != a.uid || b.gid != a.gid {
        return true;
    }
    match b.kind {
        // Its entries are listed themselves; its own ctime moves with every one.
        Kind::Dir => false,
        Kind::Symlink => b.link != a.link,
        Kind::File => match (b.sha256, a.sha256) {
            (Some(x), Some(y)) => x != y,
            _ => b.size != a.size || b.ctime != a.ctime || (b.dev, b.ino) != (a.dev, a.ino),
        },
        Kind::Other => (b.dev, b.ino) != (a.dev, a.ino) || b.ctime != a.ctime,
    }
}

/// Whether `a` (same inode number) is the file `b` was, not a new file that
/// got its number after `b` was deleted: the birth time says so where the file
/// system keeps one; elsewhere the content (or, unhashed, the size) must match.
fn same_file(b: &State, a: &State) -> bool {
    if b.kind != a.kind {
        return false;
    }
    match (b.btime, a.btime) {
        (Some(x), Some(y)) => x == y,
        _ => match (b.sha256, a.sha256) {
            (Some(x), Some(y)) => x == y,
            _ => b.size == a.size,
        },
    }
}

fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn entry(path: &Path, b: Option<&State>, a: Option<&State>, by: &str) -> Change {
    let mode = |s: Option<&State>| s.map(|s| format!("{:04o}", s.mode));
    let mode_changed = matches!((b, a), (Some(b), Some(a)) if b.mode != a.mode);
    Change {
        path: path.to_string_lossy().into_owned(),
        from: None,
        kind: a.or(b).map(|s| s.kind),
        size_before: b.filter(|s| s.kind == Kind::File).map(|s| s.size),
        size_after: a.filter(|s| s.kind == Kind::File).map(|s| s.size),
        sha256_before: b.and_then(|s| s.sha256.as_ref()).map(hex),
        sha256_after: a.and_then(|s| s.sha256.as_ref()).map(hex),
        mode_before: mode(b).filter(|_| mode_changed),
        mode_after: mode(a).filter(|_| mode_changed),
        by: by.to_string(),
    }
}

/// One recorded path: its state before the first call that named it, after
/// the run, and who made that call.
#[derive(Debug, Clone)]
pub struct Observed {
    pub path: PathBuf,
    pub before: Seen,
    pub after: Seen,
    pub by: String,
}

/// Classify the recorded paths (pure). A path that existed before and is gone
/// after, whose inode now sits at a path that did not hold it before, was
/// renamed there (`mv`, a hard link then unlink, or a rename over an existing file).
pub fn classify(list: &[Observed], truncated: bool) -> Changes {
    let mut out = Changes {
        truncated,
        ..Changes::default()
    };
    // Indices of created/modified paths by the inode they hold after the run.
    let mut arrived: BTreeMap<(u64, u64), Vec<usize>> = BTreeMap::new();
    let mut gone = Vec::new();
    let mut kept = Vec::new();
    // Same content through another inode: unchanged, unless it is where a
    // gone path went (a rename over an identical file).
    let mut same = Vec::new();
    for (i, o) in list.iter().enumerate() {
        match (&o.before, &o.after) {
            (Seen::Absent, Seen::Absent) => out.unchanged += 1,
            (Seen::Present(_) | Seen::Unknown, Seen::Absent) => gone.push(i),
            (before, Seen::Present(a)) => {
                let same_inode =
                    matches!(before, Seen::Present(b) if (b.dev, b.ino) == (a.dev, a.ino));
                if !same_inode {
                    arrived.entry((a.dev, a.ino)).or_default().push(i);
                }
                match before {
                    Seen::Present(b) if !differs(b, a) => same.push(i),
                    _ => kept.push(i),
                }
            }
            (_, Seen::Unknown) => kept.push(i),
        }
    }
    let mut moved = HashSet::new();
    for &i in &gone {
        let o = &list[i];
        let Seen::Present(b) = &o.before else {
            out.deleted.push(entry(&o.path, None, None, &o.by));
            continue;
        };
        let to = arrived.get_mut(&(b.dev, b.ino)).and_then(|v| {
            let k = v
                .iter()
                .position(|&j| state(&list[j].after).is_some_and(|a| same_file(b, a)))?;
            Some(v.remove(k))
        });
        match to {
            Some(j) => {
                moved.insert(j);
                let t = &list[j];
                let mut c = entry(&t.path, Some(b), state(&t.after), &o.by);
                c.from = Some(o.path.to_string_lossy().into_owned());
                out.renamed.push(c);
            }
            None => out.deleted.push(entry(&o.path, Some(b), None, &o.by)),
        }
    }
    out.unchanged += same.iter().filter(|i| !moved.contains(*i)).count() as u64;
    for &i in kept.iter().filter(|i| !moved.contains(*i)) {
        let o = &list[i];
        let c = entry(&o.path, state(&o.before), state(&o.after), &o.by);
        match o.before {
            Seen::Absent => out.created.push(c),
            _ => out.modified.push(c),
        }
    }
    out
}

fn state(s: &Seen) -> Option<&State> {
    match s {
        Seen::Present(s) => Some(s),
        _ => None,
    }
}

/// The launcher's recorder: the writable roots, and each path's "before".
#[derive(Debug)]
pub struct Recorder {
    roots: Vec<PathBuf>,
    deny: Vec<PathBuf>,
    /// Raw paths already handled (a cache: cleared when it grows too large).
    raw: HashSet<PathBuf>,
    before: BTreeMap<PathBuf, (Seen, String)>,
    bytes: usize,
    truncated: bool,
}

impl Recorder {
    /// `roots`: the writable directories; `deny`: paths never looked at (a
    /// denied file in a writable root must not have its hash in a report).
    pub fn new(roots: Vec<PathBuf>, deny: Vec<PathBuf>) -> Recorder {
        Recorder {
            roots,
            deny,
            raw: HashSet::new(),
            before: BTreeMap::new(),
            bytes: 0,
            truncated: false,
        }
    }

    /// A call is about to change `path` (absolute, as the caller named it):
    /// remember its state now, the first time. `exe` names who asked, lazily.
    pub fn before(&mut self, path: PathBuf, exe: impl FnOnce() -> String) {
        if self.raw.contains(&path) {
            return;
        }
        if self.raw.len() >= MAX_PATHS * 2 {
            self.raw.clear();
        }
        let Some(key) = canonical(&path) else { return };
        self.raw.insert(path);
        if !self.roots.iter().any(|r| key.starts_with(r))
            || self.deny.iter().any(|d| key.starts_with(d))
            || self.before.contains_key(&key)
        {
            return;
        }
        let len = key.as_os_str().len();
        if self.before.len() >= MAX_PATHS || self.bytes + len > MAX_PATH_BYTES {
            self.truncated = true;
            return;
        }
        self.bytes += len;
        let seen = look(&key);
        self.before.insert(key, (seen, exe()));
    }

    /// Look at every recorded path again (the tree has exited) and classify.
    pub fn finish(self) -> Changes {
        let list: Vec<Observed> = self
            .before
            .into_iter()
            .map(|(path, (before, by))| {
                let after = look(&path);
                Observed {
                    path,
                    before,
                    after,
                    by,
                }
            })
            .collect();
        classify(&list, self.truncated)
    }
}

/// Give `monitor` a recorder for `policy`'s writable directories, when the
/// filter sends it write-intent calls (`on`).
pub fn attach(monitor: &mut crate::monitor::Monitor, policy: &crate::policy::Policy, on: bool) {
    if !on {
        monitor
            .notes
            .push("file changes not recorded (--no-changes or --no-capture)".into());
        return;
    }
    let roots = policy
        .fs
        .grants
        .iter()
        .filter(|g| g.access.can_write() && g.kind == crate::policy::Kind::Dir)
        .map(|g| g.path.clone())
        .collect();
    let deny = policy.fs.deny.iter().map(|d| d.path.clone()).collect();
    monitor.changes = Some(Recorder::new(roots, deny));
}

/// The run's changes, once the tree has exited; `None` (and a note) when no
/// call could reach the recorder, so that an empty record never means "nothing changed"
/// unless it was watched.
pub fn finish(monitor: &mut crate::monitor::Monitor) -> Option<Changes> {
    let rec = monitor.changes.take()?;
    if !monitor.sources.iter().any(|s| s == "seccomp-notify") {
        monitor
            .notes
            .push("file changes not recorded: no seccomp listener in this run".into());
        return None;
    }
    if rec.truncated {
        monitor.notes.push(format!(
            "the change record was truncated at {MAX_PATHS} paths or {MAX_PATH_BYTES} bytes of paths"
        ));
    }
    Some(rec.finish())
}

/// `path` with its parent's symbolic links, `.` and `..` resolved (its last
/// component is what the call acts on, and is kept as named).
fn canonical(path: &Path) -> Option<PathBuf> {
    let name = path.file_name();
    let ends_plain = matches!(path.components().next_back(), Some(Component::Normal(_)));
    match (path.parent(), name) {
        (Some(parent), Some(name)) if ends_plain => std::fs::canonicalize(parent)
            .ok()
            .map(|p| p.join(name))
            .or_else(|| Some(lexical(path))),
        _ => std::fs::canonicalize(path)
            .ok()
            .or_else(|| Some(lexical(path))),
    }
}

/// `.` and `..` resolved by name, for a path whose parent no longer exists.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The state of what `path` names, reached without following any symbolic link
/// (the payload controls the tree, and the launcher may be root): a handle on
/// the path itself, its metadata from the handle, and for a small regular file
/// its content read through the handle's magic link (the same inode).
fn look(path: &Path) -> Seen {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return Seen::Unknown;
    };
    let fd = match crate::sys::open_path_nofollow(&c) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            return Seen::Absent;
        }
        Err(_) => return Seen::Unknown,
    };
    let f = std::fs::File::from(fd);
    let Ok(m) = f.metadata() else {
        return Seen::Unknown;
    };
    let ft = m.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    };
    let via = format!("/proc/self/fd/{}", f.as_raw_fd());
    let sha256 = (kind == Kind::File && m.len() <= HASH_MAX)
        .then(|| hash(&via))
        .flatten();
    let link = (kind == Kind::Symlink)
        .then(|| std::fs::read_link(path).ok())
        .flatten();
    Seen::Present(State {
        kind,
        size: m.len(),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        dev: m.dev(),
        ino: m.ino(),
        ctime: (m.ctime(), m.ctime_nsec()),
        btime: m.created().ok(),
        sha256,
        link,
    })
}

fn hash(via: &str) -> Option<[u8; 32]> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(via)
        .ok()?;
    let mut buf = Vec::with_capacity(HASH_MAX as usize + 1);
    f.take(HASH_MAX + 1).read_to_end(&mut buf).ok()?;
    if buf.len() as u64 > HASH_MAX {
        return None;
    }
    Some(Sha256::digest(&buf).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(ino: u64, content: &[u8]) -> Seen {
        Seen::Present(State {
            kind: Kind::File,
            size: content.len() as u64,
            mode: 0o644,
            uid: 0,
            gid: 0,
            dev: 1,
            ino,
            ctime: (ino as i64, 0),
            btime: None,
            sha256: Some(Sha256::digest(content).into()),
            link: None,
        })
    }

    fn big(ino: u64, size: u64, ctime: i64) -> Seen {
        Seen::Present(State {
            kind: Kind::File,
            size,
            mode: 0o644,
            uid: 0,
            gid: 0,
            dev: 1,
            ino,
            ctime: (ctime, 0),
            btime: None,
            sha256: None,
            link: None,
        })
    }

    fn obs(path: &str, before: Seen, after: Seen) -> Observed {
        Observed {
            path: path.into(),
            before,
            after,
            by: String::new(),
        }
    }

    fn paths(l: &[Change]) -> Vec<&str> {
        l.iter().map(|c| c.path.as_str()).collect()
    }

    #[test]
    fn each_kind_of_change() {
        let c = classify(
            &[
                obs("/w/new", Seen::Absent, file(10, b"x")),
                obs("/w/mod", file(2, b"a"), file(2, b"b")),
                obs("/w/del", file(3, b"d"), Seen::Absent),
                obs("/w/from", file(4, b"r"), Seen::Absent),
                obs("/w/to", Seen::Absent, file(4, b"r")),
                obs("/w/same", file(5, b"s"), file(5, b"s")),
                obs("/w/tmp", Seen::Absent, Seen::Absent),
            ],
            false,
        );
        assert_eq!(paths(&c.created), ["/w/new"]);
        assert_eq!(paths(&c.modified), ["/w/mod"]);
        assert_eq!(paths(&c.deleted), ["/w/del"]);
        assert_eq!(paths(&c.renamed), ["/w/to"]);
        assert_eq!(c.renamed[0].from.as_deref(), Some("/w/from"));
        assert_eq!(c.unchanged, 2);
        assert_eq!(c.count(), 4);
        assert_eq!(c.modified[0].size_before, Some(1));
        assert!(c.modified[0].sha256_before != c.modified[0].sha256_after);
    }

    #[test]
    fn identical_content_is_unchanged_even_through_a_new_inode() {
        // An editor's save: write a temp file, rename it over the original.
        let c = classify(
            &[
                obs("/w/f", file(1, b"same"), file(9, b"same")),
                obs("/w/.f.swp", Seen::Absent, Seen::Absent),
            ],
            false,
        );
        assert_eq!(c.count(), 0);
        assert_eq!(c.unchanged, 2);
        // The same save with new content is a modification, not a rename.
        let c = classify(
            &[
                obs("/w/f", file(1, b"old"), file(9, b"new")),
                obs("/w/.f.tmp", Seen::Absent, Seen::Absent),
            ],
            false,
        );
        assert_eq!(paths(&c.modified), ["/w/f"]);
        assert!(c.renamed.is_empty());
    }

    #[test]
    fn a_reused_inode_number_is_not_a_rename() {
        let born = |s: Seen, t: u64| match s {
            Seen::Present(mut s) => {
                s.btime = Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t));
                Seen::Present(s)
            }
            s => s,
        };
        let c = classify(
            &[
                obs("/w/del", born(file(3, b"d"), 1), Seen::Absent),
                obs("/w/planted", Seen::Absent, born(file(3, b"d"), 2)),
            ],
            false,
        );
        assert_eq!(paths(&c.deleted), ["/w/del"]);
        assert_eq!(paths(&c.created), ["/w/planted"]);
        // Without birth times, different content says the same.
        let c = classify(
            &[
                obs("/w/del", file(3, b"d"), Seen::Absent),
                obs("/w/planted", Seen::Absent, file(3, b"p")),
            ],
            false,
        );
        assert_eq!(paths(&c.deleted), ["/w/del"]);
        assert_eq!(paths(&c.created), ["/w/planted"]);
    }

    #[test]
    fn rename_over_an_existing_file() {
        let c = classify(
            &[
                obs("/w/a", file(1, b"a"), Seen::Absent),
                obs("/w/b", file(2, b"b"), file(1, b"a")),
            ],
            false,
        );
        assert_eq!(paths(&c.renamed), ["/w/b"]);
        assert_eq!(c.renamed[0].from.as_deref(), Some("/w/a"));
        assert!(c.modified.is_empty() && c.deleted.is_empty());
        // Over a file with the same content.
        let c = classify(
            &[
                obs("/w/a", file(1, b"a"), Seen::Absent),
                obs("/w/b", file(2, b"a"), file(1, b"a")),
            ],
            false,
        );
        assert_eq!(paths(&c.renamed), ["/w/b"]);
        assert_eq!((c.unchanged, c.count()), (0, 1));
    }

    #[test]
    fn large_files_compare_by_size_and_ctime() {
        let c = classify(
            &[
                obs("/w/same", big(1, 1 << 20, 5), big(1, 1 << 20, 5)),
                obs("/w/rewritten", big(2, 1 << 20, 5), big(2, 1 << 20, 6)),
                obs("/w/grown", big(3, 1 << 20, 5), big(3, 2 << 20, 5)),
            ],
            false,
        );
        assert_eq!(paths(&c.modified), ["/w/rewritten", "/w/grown"]);
    }

    #[test]
    fn mode_changes_and_directories() {
        let mut chmod = file(1, b"x");
        if let Seen::Present(s) = &mut chmod {
            s.mode = 0o755;
        }
        let dir = |ino, ctime| {
            Seen::Present(State {
                kind: Kind::Dir,
                size: 4096,
                mode: 0o755,
                uid: 0,
                gid: 0,
                dev: 1,
                ino,
                ctime: (ctime, 0),
                btime: None,
                sha256: None,
                link: None,
            })
        };
        let c = classify(
            &[
                obs("/w/x", file(1, b"x"), chmod),
                obs("/w/d", dir(7, 1), dir(7, 2)),
                obs("/w/newdir", Seen::Absent, dir(8, 1)),
            ],
            false,
        );
        assert_eq!(paths(&c.modified), ["/w/x"]);
        assert_eq!(c.modified[0].mode_before.as_deref(), Some("0644"));
        assert_eq!(c.modified[0].mode_after.as_deref(), Some("0755"));
        assert_eq!(paths(&c.created), ["/w/newdir"]);
        assert_eq!(c.created[0].kind, Some(Kind::Dir));
        assert_eq!(c.unchanged, 1);
    }

    #[test]
    fn targets_of_each_call() {
        let a = [3, 0x10, 5, 0x20, 0, 0];
        let at = libc::AT_FDCWD;
        assert_eq!(targets("openat", &a), [Target::At(3, 0x10)]);
        assert_eq!(targets("open", &a), [Target::At(at, 3)]);
        assert_eq!(
            targets("renameat2", &a),
            [Target::At(3, 0x10), Target::At(5, 0x20)]
        );
        assert_eq!(
            targets("rename", &a),
            [Target::At(at, 3), Target::At(at, 0x10)]
        );
        assert_eq!(targets("linkat", &a), [Target::At(5, 0x20)]);
        assert_eq!(targets("symlinkat", &a), [Target::At(0x10, 5)]);
        assert_eq!(targets("ftruncate", &a), [Target::Fd(3)]);
        assert!(targets("read", &a).is_empty());
        // Every observed call names at least one target.
        for (name, _) in crate::seccomp::OBSERVE_CHANGES {
            assert!(!targets(name, &a).is_empty(), "{name}");
        }
    }

    #[test]
    fn summary_and_rendering() {
        let c = classify(
            &[
                obs("/w/new\nfake", Seen::Absent, file(10, b"x")),
                obs("/w/m", file(2, b"a"), file(2, b"bb")),
            ],
            false,
        );
        assert_eq!(
            c.summary(Some(Path::new("r.json"))),
            "cordon: 2 files changed in the writable roots: 1 created, 1 modified (see cordon report diff r.json)\n"
        );
        let text = c.render();
        assert!(
            text.contains("created  /w/new\\nfake (1 bytes)\n"),
            "{text}"
        );
        assert!(text.contains("modified /w/m (1 -> 2 bytes)\n"), "{text}");
        assert_eq!(Changes::default().summary(None), "");
        assert_eq!(escape("a\u{1b}[2Jb\\"), "a\\x1b[2Jb\\\\");
    }

    #[test]
    fn lexical_resolution() {
        assert_eq!(lexical(Path::new("/w/a/../b/./c")), PathBuf::from("/w/b/c"));
    }
}
