//! The guard's file operations: the state of one protected path at launch
//! (kind, owner, mode, and the bytes of small files), the comparison at the
//! end of the run, and the restoration.
//!
//! Every path is resolved from `/` with `openat2(RESOLVE_NO_SYMLINKS)`, so a
//! symlink the payload planted on the way never redirects what the launcher
//! (perhaps root) reads, writes or removes; the last component is never
//! followed. [`Dirs`] keeps the directories so opened for one pass (the
//! launch, or the end of the run once the payload's tree is gone), so that the
//! protected names in one directory cost one `fstatat` each instead of an
//! `openat2`, an `fstatat` and a `close`, and none where the pass listed the
//! directory and the name is not in it (the workspace's top, where dozens of
//! them usually do not exist). Owns no policy: the guard's module decides what
//! is protected.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// Files larger than this are compared by metadata only and cannot be put back.
pub const MAX_FILE: u64 = 1 << 20;
/// A protected directory keeps at most this many entries and bytes (the rest
/// is compared by metadata only).
pub const MAX_ENTRIES: usize = 4096;
pub const MAX_BYTES: u64 = 8 << 20;
/// How deep a protected directory is kept, and how deep a tree the guard removes
/// (deeper ones are moved aside instead).
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    /// The file type bits of st_mode.
    fmt: u32,
    ino: u64,
    ctime: (i64, i64),
    size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Meta {
    fn of(st: &FileStat) -> Meta {
        Meta {
            fmt: st.st_mode & SFlag::S_IFMT.bits(),
            ino: st.st_ino,
            ctime: (st.st_ctime, st.st_ctime_nsec),
            size: st.st_size as u64,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
        }
    }
}

/// The state of a path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Node {
    Missing,
    /// `bytes` is None for a file too large to keep.
    File {
        meta: Meta,
        #[serde(with = "hex")]
        bytes: Option<Vec<u8>>,
    },
    Link {
        meta: Meta,
        #[serde(with = "bytes_name")]
        target: OsString,
    },
    /// `children` is None past the size bounds: compared by metadata only.
    Dir {
        meta: Meta,
        #[serde(with = "names_as_bytes")]
        children: Option<BTreeMap<OsString, Node>>,
    },
    /// A fifo, socket or device node (never read; removed if it appears).
    Other {
        meta: Meta,
    },
}

/// File bytes as hex in the shared state (a JSON array of numbers is 2-4 times larger).
mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => {
                let mut t = String::with_capacity(b.len() * 2);
                for x in b {
                    t.push(char::from(b"0123456789abcdef"[usize::from(x >> 4)]));
                    t.push(char::from(b"0123456789abcdef"[usize::from(x & 15)]));
                }
                s.serialize_some(&t)
            }
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let Some(t) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(serde::de::Error::custom("not hex")),
        };
        t.as_bytes()
            .chunks(2)
            .map(|p| match p {
                [a, b] => Ok(digit(*a)? << 4 | digit(*b)?),
                _ => Err(serde::de::Error::custom("odd hex")),
            })
            .collect::<Result<Vec<u8>, D::Error>>()
            .map(Some)
    }
}

/// A link target as bytes.
mod bytes_name {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &OsString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v.as_bytes())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OsString, D::Error> {
        Vec::<u8>::deserialize(d).map(OsString::from_vec)
    }
}

/// Entry names as byte arrays (JSON map keys must be UTF-8 strings).
mod names_as_bytes {
    use std::collections::BTreeMap;
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Node;

    type Children = Option<BTreeMap<OsString, Node>>;

    pub fn serialize<S: Serializer>(v: &Children, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref()
            .map(|m| m.iter().map(|(k, n)| (k.as_bytes(), n)).collect::<Vec<_>>())
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Children, D::Error> {
        let v = Option::<Vec<(Vec<u8>, Node)>>::deserialize(d)?;
        Ok(v.map(|v| {
            v.into_iter()
                .map(|(k, n)| (OsString::from_vec(k), n))
                .collect()
        }))
    }
}

/// One difference found and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: PathBuf,
    /// "create", "modify" or "delete" (what the run did).
    pub operation: &'static str,
    /// What the guard did, or why it could not.
    pub outcome: String,
}

/// Open a directory without following a symlink anywhere on its path.
pub fn open_dir(path: &Path) -> nix::Result<OwnedFd> {
    dir_fd(path)
}

fn dir_fd(path: &Path) -> nix::Result<OwnedFd> {
    openat2(nix::fcntl::AT_FDCWD, path, no_symlinks())
}

fn split(path: &Path) -> Option<(&Path, &OsStr)> {
    Some((path.parent()?, path.file_name()?))
}

/// Directories opened without following a symlink anywhere on their path,
/// each once per pass of the guard. A directory whose parent is already open
/// is opened relative to it (`openat2` of one component, with the same
/// resolve flags), which is the resolution from `/` the parent had.
///
/// A descriptor keeps naming the directory it was opened on: a pass must not
/// outlive the state it was opened in. The launch's is dropped before the
/// payload can run; the end's is made after the payload's tree is gone, and
/// [`Dirs::forget`] drops what a restore replaced.
#[derive(Debug, Default)]
pub struct Dirs {
    // Keyed by the path's bytes (hashing a `Path` walks its components): the
    // guard's paths are built clean, one spelling each.
    open: HashMap<OsString, Result<Arc<OwnedFd>, Errno>>,
    /// What [`Dirs::lstat`] found (a path is asked about by discovery, then
    /// for the mount view's carves).
    stats: HashMap<OsString, Lstat>,
    /// The entries of directories listed whole ([`Dirs::index`]), sorted.
    listed: HashMap<OsString, Vec<Box<[u8]>>>,
}

/// FS_CASEFOLD_FL: lookups in the directory ignore case (ext4, f2fs, tmpfs).
const FS_CASEFOLD_FL: u32 = 0x4000_0000;

/// Whether a name found in no entry of this directory is absent: its
/// filesystem matches names byte for byte, and the directory is not
/// case-folded. Elsewhere (vfat, exfat, ntfs, cifs, a FUSE or network mount
/// of a case-insensitive disk, XFS with ascii-ci, an overlay of case-folded
/// layers) a lookup can find `.claude` where the listing says `.CLAUDE`.
fn exact_names(fd: &OwnedFd) -> bool {
    use nix::sys::statfs::{BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, F2FS_SUPER_MAGIC, TMPFS_MAGIC};
    let Ok(fs) = nix::sys::statfs::fstatfs(fd) else {
        return false;
    };
    let t = fs.filesystem_type();
    [
        EXT4_SUPER_MAGIC,
        BTRFS_SUPER_MAGIC,
        F2FS_SUPER_MAGIC,
        TMPFS_MAGIC,
    ]
    .contains(&t)
        && crate::sys::inode_flags(fd.as_fd()).is_ok_and(|f| f & FS_CASEFOLD_FL == 0)
}

/// A directory larger than this (`st_size`: 2 blocks on ext4, ~400 entries on
/// tmpfs or btrfs) is not listed for [`Dirs::index`]: reading it would cost
/// more than the lookups it saves.
const MAX_INDEX: i64 = 8192;

/// At most this many directories are kept open at once.
const MAX_OPEN: usize = 64;

/// What `lstat` of one path found (see [`Dirs::lstat`]).
#[derive(Debug, Clone, Copy)]
pub enum Lstat {
    Found(FileStat),
    /// Absent, found so without a symlink on the way: the launch state of
    /// this path is [`Node::Missing`] without looking again.
    Missing,
    /// Absent, or not reachable without a symlink (then found by the path, as
    /// `lstat(2)` does).
    Absent,
}

impl Dirs {
    /// The directory at `path`, or None when it cannot be opened without
    /// following a symlink (or does not exist).
    pub fn get(&mut self, path: &Path) -> Option<Arc<OwnedFd>> {
        self.open_dir(path).ok()
    }

    fn open_dir(&mut self, path: &Path) -> Result<Arc<OwnedFd>, Errno> {
        if let Some(d) = self.open.get(path.as_os_str()) {
            return d.clone();
        }
        let parent = match (path.parent(), path.file_name()) {
            (Some(p), Some(n)) => match self.open.get(p.as_os_str()) {
                Some(Ok(fd)) => Some((fd.clone(), n)),
                _ => None,
            },
            _ => None,
        };
        if self.open.len() >= MAX_OPEN {
            // A workspace with hundreds of nested repositories would hold a
            // descriptor each; what is dropped is opened again from `/`.
            self.open.clear();
        }
        let fd = if self.unlisted(path) {
            Err(Errno::ENOENT)
        } else {
            match parent {
                Some((p, name)) => openat2(&*p, name, no_symlinks()),
                None => dir_fd(path),
            }
        }
        .map(Arc::new);
        self.open.insert(path.as_os_str().to_owned(), fd.clone());
        fd
    }

    /// Whether `path` is its own canonical form: opened without a symlink on
    /// the way, absolute, with no `..`. Then an entry of it that is not a
    /// link is canonical too.
    pub fn canonical(&mut self, path: &Path) -> bool {
        path.is_absolute()
            && !path.components().any(|c| c == Component::ParentDir)
            && self.get(path).is_some()
    }

    /// List the directory at `path`, so that a name absent from it needs no
    /// lookup (the workspace's top, where dozens of protected names usually
    /// do not exist). Only where a listing says what a lookup would (see
    /// [`exact_names`]) and the directory is small; else names are looked up.
    pub fn index(&mut self, path: &Path) {
        let Some(fd) = self.get(path) else {
            return;
        };
        if !exact_names(&fd)
            || !nix::sys::stat::fstat(fd.as_fd()).is_ok_and(|st| st.st_size <= MAX_INDEX)
            || nix::unistd::lseek(fd.as_fd(), 0, nix::unistd::Whence::SeekSet).is_err()
        {
            return;
        }
        let mut buf = [0u8; 8192];
        let mut names: Vec<Box<[u8]>> = Vec::new();
        loop {
            match crate::sys::getdents64(fd.as_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => names.extend(super::walk::entries(&buf[..n]).map(|(n, _)| n.into())),
                // Incomplete: no listing.
                Err(_) => return,
            }
        }
        names.sort();
        self.listed.insert(path.as_os_str().to_owned(), names);
    }

    /// Whether [`index`](Self::index) listed the directory of `path` and its
    /// name was not there.
    pub fn unlisted(&self, path: &Path) -> bool {
        let Some((parent, name)) = split(path) else {
            return false;
        };
        self.listed.get(parent.as_os_str()).is_some_and(|names| {
            names
                .binary_search_by(|n| (**n).cmp(name.as_bytes()))
                .is_err()
        })
    }

    /// `lstat` of `path`: through its open directory when that can be opened
    /// without symlinks, else by the path.
    pub fn lstat(&mut self, path: &Path) -> Lstat {
        if let Some(st) = self.stats.get(path.as_os_str()) {
            return *st;
        }
        let st = self.lstat_now(path);
        self.stats.insert(path.as_os_str().to_owned(), st);
        st
    }

    fn lstat_now(&mut self, path: &Path) -> Lstat {
        if self.unlisted(path) {
            return Lstat::Missing;
        }
        if let Some((parent, name)) = split(path) {
            match self.open_dir(parent) {
                Ok(dir) => {
                    return match lstat_at(&dir, name) {
                        Ok(st) => Lstat::Found(st),
                        Err(Errno::ENOENT) => Lstat::Missing,
                        Err(_) => Lstat::Absent,
                    };
                }
                // A component is missing, reached before any symlink (which
                // would have failed the open with ELOOP first): a lookup that
                // follows links finds nothing either.
                Err(Errno::ENOENT) => return Lstat::Missing,
                Err(_) => {}
            }
        }
        match fstatat(nix::fcntl::AT_FDCWD, path, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Lstat::Found(st),
            Err(_) => Lstat::Absent,
        }
    }

    /// Drop `path`, what lies beneath it, and the listing of its directory
    /// (a restore changed it).
    pub fn forget(&mut self, path: &Path) {
        let parent = path.parent().map(Path::as_os_str);
        let gone = |p: &OsString| Path::new(p).starts_with(path);
        self.open.retain(|p, _| !gone(p));
        self.stats.retain(|p, _| !gone(p));
        self.listed
            .retain(|p, _| !gone(p) && Some(p.as_os_str()) != parent);
    }
}

fn no_symlinks() -> OpenHow {
    OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

fn lstat_at(dir: &OwnedFd, name: &OsStr) -> nix::Result<FileStat> {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn read_file(dir: &OwnedFd, name: &OsStr, limit: u64) -> Option<Vec<u8>> {
    read_file_sized(dir, name, limit, limit)
}

/// Read at most `limit` bytes (None past it) of a file expected to hold `size`:
/// a buffer of that size takes it in one `read` and sees the end in another.
fn read_file_sized(dir: &OwnedFd, name: &OsStr, size: u64, limit: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut v = Vec::with_capacity(size.min(limit) as usize + 1);
    std::fs::File::from(fd)
        .take(limit + 1)
        .read_to_end(&mut v)
        .ok()?;
    (v.len() as u64 <= limit).then_some(v)
}

/// A budget shared by one protected tree.
struct Budget {
    entries: usize,
    bytes: u64,
}

/// The state of `path` now.
pub fn snapshot(path: &Path) -> Node {
    snapshot_in(&mut Dirs::default(), path)
}

/// The state of `path` now, its directory opened through `dirs`.
pub fn snapshot_in(dirs: &mut Dirs, path: &Path) -> Node {
    let Some((parent, name)) = split(path) else {
        return Node::Missing;
    };
    let Some(dir) = dirs.get(parent) else {
        return Node::Missing;
    };
    let mut budget = Budget {
        entries: MAX_ENTRIES,
        bytes: MAX_BYTES,
    };
    node_at(&dir, name, 0, &mut budget)
}

fn node_at(dir: &OwnedFd, name: &OsStr, depth: usize, b: &mut Budget) -> Node {
    let Ok(st) = lstat_at(dir, name) else {
        return Node::Missing;
    };
    let meta = Meta::of(&st);
    match kind(&st) {
        SFlag::S_IFREG => {
            let keep = meta.size <= MAX_FILE && meta.size <= b.bytes;
            let bytes = if keep {
                read_file(dir, name, meta.size)
            } else {
                None
            };
            if let Some(v) = &bytes {
                b.bytes -= v.len() as u64;
            }
            Node::File { meta, bytes }
        }
        SFlag::S_IFLNK => Node::Link {
            target: nix::fcntl::readlinkat(dir, name).unwrap_or_default(),
            meta,
        },
        SFlag::S_IFDIR => {
            let children = (depth < MAX_DEPTH)
                .then(|| children_at(dir, name, depth, b))
                .flatten();
            Node::Dir { meta, children }
        }
        _ => Node::Other { meta },
    }
}

fn sub_dir(dir: &OwnedFd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The entries of an open directory, sorted, read with `getdents64` from the
/// descriptor's current offset (a fresh descriptor: all of them).
fn names(fd: &OwnedFd) -> Vec<OsString> {
    let mut buf = [0u8; 8192];
    let mut v = Vec::new();
    loop {
        let n = match crate::sys::getdents64(fd.as_fd(), &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        v.extend(
            super::walk::entries(&buf[..n])
                .filter(|(n, _)| *n != b"." && *n != b"..")
                .map(|(n, _)| OsStr::from_bytes(n).to_os_string()),
        );
    }
    v.sort();
    v
}

/// git's `*.sample` hooks are never run (by git or any tool): neither kept
/// nor compared, which keeps a repository's launch state a few hundred bytes.
fn inert(name: &OsStr) -> bool {
    name.as_bytes().ends_with(b".sample")
}

fn children_at(
    dir: &OwnedFd,
    name: &OsStr,
    depth: usize,
    b: &mut Budget,
) -> Option<BTreeMap<OsString, Node>> {
    let fd = sub_dir(dir, name).ok()?;
    let mut out = BTreeMap::new();
    for n in names(&fd).into_iter().filter(|n| !inert(n)) {
        if b.entries == 0 {
            return None;
        }
        b.entries -= 1;
        let node = node_at(&fd, &n, depth + 1, b);
        out.insert(n, node);
    }
    Some(out)
}

/// Whether `now` differs from `then` in a way that matters: kind, content,
/// mode, owner or link target (a rewrite with the same bytes is no change).
fn same_leaf(dir: &OwnedFd, name: &OsStr, then: &Node, now: &FileStat) -> bool {
    let m = Meta::of(now);
    match then {
        Node::File { meta, bytes } => {
            if kind(now) != SFlag::S_IFREG
                || m.size != meta.size
                || (m.mode, m.uid, m.gid) != (meta.mode, meta.uid, meta.gid)
            {
                return false;
            }
            if (m.ino, m.ctime) == (meta.ino, meta.ctime) {
                return true;
            }
            match bytes {
                Some(b) => read_file(dir, name, meta.size).as_deref() == Some(&b[..]),
                None => false,
            }
        }
        Node::Link { target, .. } => {
            kind(now) == SFlag::S_IFLNK
                && nix::fcntl::readlinkat(dir, name).ok().as_ref() == Some(target)
        }
        Node::Other { meta } => (m.fmt, m.ino) == (meta.fmt, meta.ino),
        Node::Dir { .. } | Node::Missing => false,
    }
}

/// Compare `path` with its launch state `then` and put it back. Returns what changed.
/// Paths in `except` (opted out by the profile) are left as they are.
pub fn restore(path: &Path, then: &Node, except: &[PathBuf], uid_can_chown: bool) -> Vec<Change> {
    restore_in(&mut Dirs::default(), path, then, except, uid_can_chown)
}

/// [`restore`], the directory of `path` opened through `dirs` (what the
/// restore replaced is forgotten there).
pub fn restore_in(
    dirs: &mut Dirs,
    path: &Path,
    then: &Node,
    except: &[PathBuf],
    uid_can_chown: bool,
) -> Vec<Change> {
    let mut out = Vec::new();
    let Some((parent, name)) = split(path) else {
        return out;
    };
    if *then == Node::Missing && dirs.unlisted(path) {
        return out;
    }
    let dir = match dirs.open_dir(parent) {
        Ok(d) => d,
        Err(_) if *then == Node::Missing => return out,
        Err(e) => {
            out.push(Change {
                path: path.to_path_buf(),
                operation: "modify",
                outcome: format!(
                    "not restored: {} is not a directory here ({e})",
                    parent.display()
                ),
            });
            return out;
        }
    };
    let ctx = Ctx {
        except,
        chown: uid_can_chown,
    };
    restore_at(&dir, name, path, then, &ctx, &mut out);
    if !out.is_empty() {
        dirs.forget(path);
    }
    out
}

struct Ctx<'a> {
    except: &'a [PathBuf],
    chown: bool,
}

fn restore_at(
    dir: &OwnedFd,
    name: &OsStr,
    path: &Path,
    then: &Node,
    ctx: &Ctx,
    out: &mut Vec<Change>,
) {
    if ctx.except.iter().any(|e| e == path) {
        return;
    }
    let now = lstat_at(dir, name).ok();
    match (then, &now) {
        (Node::Missing, None) => {}
        (Node::Missing, Some(_)) => {
            let outcome = remove(dir, name, path);
            out.push(Change {
                path: path.to_path_buf(),
                operation: "create",
                outcome,
            });
        }
        (Node::Dir { meta, children }, Some(st)) if kind(st) == SFlag::S_IFDIR => {
            let m = Meta::of(st);
            if (m.mode, m.uid, m.gid) != (meta.mode, meta.uid, meta.gid) {
                let _ = nix::sys::stat::fchmodat(
                    dir,
                    name,
                    Mode::from_bits_truncate(meta.mode),
                    nix::sys::stat::FchmodatFlags::NoFollowSymlink,
                );
                out.push(Change {
                    path: path.to_path_buf(),
                    operation: "modify",
                    outcome: "mode restored".into(),
                });
            }
            let Some(children) = children else {
                if (m.ino, m.ctime) != (meta.ino, meta.ctime) {
                    out.push(Change {
                        path: path.to_path_buf(),
                        operation: "modify",
                        outcome: "not restored: too large to keep at launch".into(),
                    });
                }
                return;
            };
            let Ok(sub) = sub_dir(dir, name) else {
                return;
            };
            let mut all: Vec<OsString> = names(&sub).into_iter().filter(|n| !inert(n)).collect();
            all.extend(children.keys().cloned());
            all.sort();
            all.dedup();
            for n in all {
                let child = children.get(&n).unwrap_or(&Node::Missing);
                restore_at(&sub, &n, &path.join(&n), child, ctx, out);
            }
        }
        (_, Some(st)) if same_leaf(dir, name, then, st) => {}
        (_, now) => {
            let operation = if now.is_none() { "delete" } else { "modify" };
            let mut outcome = String::new();
            if now.is_some() {
                let r = remove(dir, name, path);
                if r != "removed" {
                    outcome = r;
                }
            }
            if outcome.is_empty() {
                outcome = match recreate(dir, name, then, ctx.chown) {
                    Ok(()) => "restored".into(),
                    Err(e) => format!("not restored: {e}"),
                };
            }
            out.push(Change {
                path: path.to_path_buf(),
                operation,
                outcome,
            });
        }
    }
}

/// Remove what is at `name` (a tree up to MAX_DEPTH deep; deeper, or on
/// failure, it is moved aside to a name no tool reads).
pub fn remove(dir: &OwnedFd, name: &OsStr, path: &Path) -> String {
    if remove_tree(dir, name, 0).is_ok() {
        return "removed".into();
    }
    let aside = format!(
        ".cordon-rejected-{}-{}",
        name.to_string_lossy(),
        std::process::id()
    );
    match renameat(dir, name, dir, aside.as_str()) {
        Ok(()) => format!("moved aside to {}", path.with_file_name(&aside).display()),
        Err(e) => format!("not removed: {e}"),
    }
}

fn remove_tree(dir: &OwnedFd, name: &OsStr, depth: usize) -> nix::Result<()> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR) | Err(Errno::EPERM) => {}
        Err(e) => return Err(e),
    }
    if depth >= MAX_DEPTH {
        return Err(Errno::ELOOP);
    }
    let sub = sub_dir(dir, name)?;
    for n in names(&sub) {
        remove_tree(&sub, &n, depth + 1)?;
    }
    unlinkat(dir, name, UnlinkatFlags::RemoveDir)
}

/// Put `node` back at `name` (nothing is there now).
fn recreate(dir: &OwnedFd, name: &OsStr, node: &Node, chown: bool) -> Result<(), String> {
    let own = |fd: &OwnedFd, meta: &Meta| {
        if chown {
            let _ = nix::unistd::fchown(
                fd,
                Some(nix::unistd::Uid::from_raw(meta.uid)),
                Some(nix::unistd::Gid::from_raw(meta.gid)),
            );
        }
        let _ = nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(meta.mode));
    };
    match node {
        Node::Missing => Ok(()),
        Node::File { meta, bytes } => {
            let Some(bytes) = bytes else {
                return Err("too large to keep at launch".into());
            };
            let fd = openat(
                dir,
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(|e| e.to_string())?;
            own(&fd, meta);
            let mut f = std::fs::File::from(fd);
            f.write_all(bytes).map_err(|e| e.to_string())
        }
        Node::Link { meta, target } => {
            nix::unistd::symlinkat(target.as_os_str(), dir, name).map_err(|e| e.to_string())?;
            if chown {
                let _ = nix::unistd::fchownat(
                    dir,
                    name,
                    Some(nix::unistd::Uid::from_raw(meta.uid)),
                    Some(nix::unistd::Gid::from_raw(meta.gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                );
            }
            Ok(())
        }
        Node::Dir { meta, children } => {
            nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o700))
                .map_err(|e| e.to_string())?;
            let sub = sub_dir(dir, name).map_err(|e| e.to_string())?;
            let mut first_err = None;
            for (n, c) in children.iter().flatten() {
                if let Err(e) = recreate(&sub, n, c, chown) {
                    first_err.get_or_insert(e);
                }
            }
            own(&sub, meta);
            match (children, first_err) {
                (None, _) => Err("too large to keep at launch (left empty)".into()),
                (_, Some(e)) => Err(e),
                _ => Ok(()),
            }
        }
        // A fifo or socket cannot be put back with its identity; leave it gone.
        Node::Other { .. } => Ok(()),
    }
}

/// Open the directory holding `path` without following symlinks (for the
/// guard's own rewrites and removals of single entries).
pub fn parent_fd(path: &Path) -> Option<(OwnedFd, &OsStr)> {
    let (parent, name) = split(path)?;
    Some((dir_fd(parent).ok()?, name))
}

/// Read a small regular file without following symlinks anywhere on its path.
pub fn read_small(path: &Path) -> Option<Vec<u8>> {
    read_small_in(&mut Dirs::default(), path)
}

/// What is at `path` (not followed) when [`read_small`] cannot read it: a
/// symlink, something other than a regular file, or a file over the size
/// limit. None when it is absent, readable, or its directory cannot be
/// reached without a symlink.
pub fn unreadable(path: &Path) -> Option<&'static str> {
    let (dir, name) = parent_fd(path)?;
    let st = lstat_at(&dir, name).ok()?;
    match kind(&st) {
        SFlag::S_IFREG if (st.st_size as u64) <= MAX_FILE => None,
        SFlag::S_IFREG => Some("a file over 1 MiB"),
        SFlag::S_IFLNK => Some("a symlink"),
        _ => Some("not a regular file"),
    }
}

/// The target of the symlink at `path` (its directory reached without one).
pub fn link_target(path: &Path) -> Option<PathBuf> {
    let (dir, name) = parent_fd(path)?;
    nix::fcntl::readlinkat(&dir, name).ok().map(PathBuf::from)
}

/// Put back the symlink at `path` with its launch `target` (the run
/// retargeted it): the outcome, as [`remove_path`] says it.
pub fn relink(path: &Path, target: &Path) -> String {
    let Some((dir, name)) = parent_fd(path) else {
        return "not restored: its directory is not reachable without a symlink".into();
    };
    let _ = nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    match nix::unistd::symlinkat(target, &dir, name) {
        Ok(()) => format!("restored (a link to {})", target.display()),
        Err(e) => format!("removed; not restored: {e}"),
    }
}

/// Whether `path` (not followed) is a symlink.
pub fn is_link(path: &Path) -> bool {
    parent_fd(path)
        .and_then(|(d, n)| lstat_at(&d, n).ok())
        .is_some_and(|st| kind(&st) == SFlag::S_IFLNK)
}

/// A regular file of at most `max` bytes, read without following symlinks
/// anywhere on its path.
pub fn read_limited(path: &Path, max: u64) -> Option<Vec<u8>> {
    let (dir, name) = parent_fd(path)?;
    let st = lstat_at(&dir, name).ok()?;
    (kind(&st) == SFlag::S_IFREG && (st.st_size as u64) <= max)
        .then(|| read_file_sized(&dir, name, st.st_size as u64, max))
        .flatten()
}

/// [`read_small`], its directory opened through `dirs`.
pub fn read_small_in(dirs: &mut Dirs, path: &Path) -> Option<Vec<u8>> {
    let (parent, name) = split(path)?;
    let dir = dirs.get(parent)?;
    let st = lstat_at(&dir, name).ok()?;
    (kind(&st) == SFlag::S_IFREG && (st.st_size as u64) <= MAX_FILE)
        .then(|| read_file_sized(&dir, name, st.st_size as u64, MAX_FILE))
        .flatten()
}

/// Replace the contents of a regular file in place (keeping its inode, owner
/// and mode) without following symlinks.
pub fn rewrite(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let (dir, name) = parent_fd(path).ok_or("parent is not a directory")?;
    let fd = openat(
        &dir,
        name,
        OFlag::O_WRONLY | OFlag::O_TRUNC | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| e.to_string())?;
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| e.to_string())?;
    if kind(&st) != SFlag::S_IFREG {
        return Err("not a regular file".into());
    }
    std::fs::File::from(fd)
        .write_all(bytes)
        .map_err(|e| e.to_string())
}

/// Remove the entry at `path` (see [`remove`]).
pub fn remove_path(path: &Path) -> String {
    match parent_fd(path) {
        Some((dir, name)) => remove(&dir, name, path),
        None => "not removed: its directory is not reachable without a symlink".into(),
    }
}

/// Whether `path` is a directory (not a symlink to one), resolved without symlinks.
pub fn is_dir(path: &Path) -> bool {
    parent_fd(path)
        .and_then(|(d, n)| lstat_at(&d, n).ok())
        .is_some_and(|st| kind(&st) == SFlag::S_IFDIR)
}

/// The entries of a directory, without following symlinks.
pub fn list(path: &Path) -> Vec<OsString> {
    dir_fd(path).map(|fd| names(&fd)).unwrap_or_default()
}

/// [`list`], the directory opened through `dirs` (listed from its start).
pub fn list_in(dirs: &mut Dirs, path: &Path) -> Vec<OsString> {
    let Some(fd) = dirs.get(path) else {
        return Vec::new();
    };
    if nix::unistd::lseek(fd.as_fd(), 0, nix::unistd::Whence::SeekSet).is_err() {
        return Vec::new();
    }
    names(&fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn ws() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = std::fs::canonicalize(d.path()).unwrap();
        (d, p)
    }

    #[test]
    fn created_files_are_removed_and_changed_ones_put_back() {
        let (_d, ws) = ws();
        std::fs::create_dir(ws.join("hooks")).unwrap();
        std::fs::write(ws.join("hooks/applypatch-msg"), "sample\n").unwrap();
        std::fs::write(ws.join("config"), "[core]\n").unwrap();
        std::fs::set_permissions(ws.join("config"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        let hooks = snapshot(&ws.join("hooks"));
        let config = snapshot(&ws.join("config"));
        let missing = snapshot(&ws.join("commondir"));
        assert_eq!(missing, Node::Missing);

        std::fs::write(ws.join("hooks/pre-commit"), "evil\n").unwrap();
        std::fs::remove_file(ws.join("hooks/applypatch-msg")).unwrap();
        std::fs::remove_file(ws.join("config")).unwrap();
        std::fs::write(ws.join("config"), "[core]\nfsmonitor=x\n").unwrap();
        std::fs::create_dir_all(ws.join("commondir/deep")).unwrap();

        let c = restore(&ws.join("hooks"), &hooks, &[], false);
        let ops: Vec<(&str, String)> = c
            .iter()
            .map(|c| {
                (
                    c.operation,
                    c.path.file_name().unwrap().to_string_lossy().into(),
                )
            })
            .collect();
        assert_eq!(
            ops,
            [
                ("delete", "applypatch-msg".into()),
                ("create", "pre-commit".into())
            ]
        );
        assert_eq!(
            std::fs::read_to_string(ws.join("hooks/applypatch-msg")).unwrap(),
            "sample\n"
        );
        assert!(!ws.join("hooks/pre-commit").exists());

        let c = restore(&ws.join("config"), &config, &[], false);
        assert_eq!(c[0].operation, "modify");
        assert_eq!(
            std::fs::read_to_string(ws.join("config")).unwrap(),
            "[core]\n"
        );
        let mode = std::fs::metadata(ws.join("config"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);

        let c = restore(&ws.join("commondir"), &missing, &[], false);
        assert_eq!(c[0].operation, "create");
        assert!(!ws.join("commondir").exists());
        // Unchanged now: nothing more to do.
        assert!(restore(&ws.join("hooks"), &hooks, &[], false).is_empty());
        assert!(restore(&ws.join("config"), &config, &[], false).is_empty());
    }

    #[test]
    fn a_planted_symlink_on_the_path_is_not_followed() {
        let (_d, ws) = ws();
        let (_o, outside) = self::ws();
        std::fs::create_dir(ws.join(".git")).unwrap();
        std::fs::write(ws.join(".git/config"), "mine\n").unwrap();
        std::fs::write(outside.join("config"), "outside\n").unwrap();
        let then = snapshot(&ws.join(".git/config"));
        std::fs::rename(ws.join(".git"), ws.join(".git-aside")).unwrap();
        std::os::unix::fs::symlink(&outside, ws.join(".git")).unwrap();
        let c = restore(&ws.join(".git/config"), &then, &[], false);
        assert!(c[0].outcome.starts_with("not restored"), "{c:?}");
        assert_eq!(
            std::fs::read_to_string(outside.join("config")).unwrap(),
            "outside\n"
        );
        // The link itself, as a protected entry, is replaced by what was there.
        let (_e, ws2) = self::ws();
        std::fs::write(ws2.join("f"), "x").unwrap();
        let then = snapshot(&ws2.join("f"));
        std::fs::remove_file(ws2.join("f")).unwrap();
        std::os::unix::fs::symlink(outside.join("config"), ws2.join("f")).unwrap();
        restore(&ws2.join("f"), &then, &[], false);
        assert_eq!(std::fs::read_to_string(ws2.join("f")).unwrap(), "x");
        assert_eq!(
            std::fs::read_to_string(outside.join("config")).unwrap(),
            "outside\n"
        );
    }

    #[test]
    fn a_snapshot_survives_the_shared_state_file() {
        let (_d, ws) = ws();
        std::fs::create_dir(ws.join("hooks")).unwrap();
        std::fs::write(ws.join("hooks/pre-commit"), b"#!/bin/sh\n\xff").unwrap();
        std::os::unix::fs::symlink("target", ws.join("hooks/link")).unwrap();
        let n = snapshot(&ws.join("hooks"));
        let text = serde_json::to_string(&n).unwrap();
        assert_eq!(serde_json::from_str::<Node>(&text).unwrap(), n);
    }

    #[test]
    fn a_listed_directory_answers_for_absent_names_until_a_restore_changes_it() {
        let d = tempfile::Builder::new()
            .prefix("cordon-guard-test")
            .tempdir_in("/var/tmp")
            .unwrap();
        let ws = std::fs::canonicalize(d.path()).unwrap();
        std::fs::write(ws.join("present"), "x").unwrap();
        let mut dirs = Dirs::default();
        dirs.index(&ws);
        let listed = dirs.listed.contains_key(ws.as_os_str());
        if listed {
            assert!(dirs.unlisted(&ws.join("absent")) && !dirs.unlisted(&ws.join("present")));
        }
        assert!(matches!(dirs.lstat(&ws.join("present")), Lstat::Found(_)));
        assert!(matches!(dirs.lstat(&ws.join("absent")), Lstat::Missing));
        assert!(matches!(
            dirs.lstat(&ws.join("absent/below")),
            Lstat::Missing
        ));
        // What the pass itself creates is seen once the restore forgets it.
        std::fs::write(ws.join("absent"), "x").unwrap();
        let then = Node::File {
            meta: match snapshot(&ws.join("present")) {
                Node::File { meta, .. } => meta,
                n => panic!("{n:?}"),
            },
            bytes: Some(b"x".to_vec()),
        };
        std::fs::remove_file(ws.join("absent")).unwrap();
        let c = restore_in(&mut dirs, &ws.join("absent"), &then, &[], false);
        assert_eq!(c[0].operation, "delete");
        assert!(!dirs.unlisted(&ws.join("absent")));
        assert!(matches!(dirs.lstat(&ws.join("absent")), Lstat::Found(_)));
    }

    #[test]
    fn a_pass_keeps_a_bounded_number_of_directories_open() {
        let (_d, ws) = ws();
        let mut dirs = Dirs::default();
        for i in 0..(3 * MAX_OPEN) {
            let d = ws.join(format!("d{i}"));
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("f"), "x").unwrap();
            assert!(matches!(dirs.lstat(&d.join("f")), Lstat::Found(_)));
            assert!(matches!(dirs.lstat(&d.join("g")), Lstat::Missing));
            assert!(dirs.open.len() <= MAX_OPEN);
        }
        assert!(matches!(
            snapshot_in(&mut dirs, &ws.join("d0/f")),
            Node::File { .. }
        ));
    }

    #[test]
    fn a_too_deep_tree_is_moved_aside() {
        let (_d, ws) = ws();
        let mut p = ws.join(".vscode");
        for _ in 0..(MAX_DEPTH + 3) {
            p = p.join("d");
        }
        std::fs::create_dir_all(&p).unwrap();
        let c = restore(&ws.join(".vscode"), &Node::Missing, &[], false);
        assert!(c[0].outcome.starts_with("moved aside"), "{c:?}");
        assert!(!ws.join(".vscode").exists());
    }
}
