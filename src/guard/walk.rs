//! The guard's walk of the workspace: directory entries only (`getdents64`,
//! the kernel's d_type; no stat per file), one `fstat` per directory for its
//! inode and change time, bounded in entries and depth, cache and dependency
//! trees skipped. At the end of the run the walk is done again only where
//! something changed: a directory whose inode and ctime are those of launch
//! (and whose ctime was not recent then, so a coarse clock cannot hide a change)
//! has the same entries; only changed ones are listed again, and directories
//! that are new are walked whole.
//!
//! Owns the traversal; what an entry means is the caller's (a visitor).

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};

/// A directory as it was at launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    ctime: (i64, i64),
}

impl Stamp {
    fn of(st: &FileStat) -> Stamp {
        Stamp {
            ino: st.st_ino,
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }
}

/// Limits and the names not entered.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub entries: usize,
    pub depth: usize,
    pub skip: &'static [&'static str],
}

/// What a walk saw.
#[derive(Debug, Default)]
pub struct Walk {
    /// Every directory listed, in walk order.
    stamps: Vec<(PathBuf, Stamp)>,
    /// ctime from which a directory counts as recently changed at launch.
    recent: (i64, i64),
    pub visited: usize,
    pub truncated: bool,
}

/// Called for every entry: its directory, its name, and whether the directory
/// is the walk's root.
pub type Visitor<'a> = dyn FnMut(&Path, &OsStr, bool) + 'a;

const DT_DIR: u8 = 4;
const DT_UNKNOWN: u8 = 0;

/// Entries of a getdents64 buffer: (name, d_type).
pub(super) fn entries(buf: &[u8]) -> impl Iterator<Item = (&[u8], u8)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
        let rec = buf.get(at..at + 19)?;
        let reclen = usize::from(u16::from_ne_bytes([rec[16], rec[17]]));
        let kind = rec[18];
        let name = buf.get(at + 19..at + reclen)?;
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        at += reclen.max(1);
        Some((name, kind))
    })
}

struct Walker<'a, 'b> {
    root: &'a Path,
    bounds: Bounds,
    buf: Vec<u8>,
    out: Walk,
    visit: &'a mut Visitor<'b>,
}

impl Walker<'_, '_> {
    fn open_sub(dir: &OwnedFd, name: &OsStr) -> Option<OwnedFd> {
        openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
    }

    /// List `fd` (the directory at `path`), report every entry, and return the
    /// subdirectories to enter.
    fn list(&mut self, fd: &OwnedFd, path: &Path) -> Vec<std::ffi::OsString> {
        let top = path == self.root;
        let mut subdirs = Vec::new();
        loop {
            let n = match crate::sys::getdents64(fd.as_fd(), &mut self.buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let buf = std::mem::take(&mut self.buf);
            for (name, kind) in entries(&buf[..n]) {
                if name == b"." || name == b".." {
                    continue;
                }
                self.out.visited += 1;
                let name = OsStr::from_bytes(name);
                (self.visit)(path, name, top);
                if name == ".git"
                    || self
                        .bounds
                        .skip
                        .iter()
                        .any(|s| s.as_bytes() == name.as_bytes())
                {
                    continue;
                }
                let is_dir = match kind {
                    DT_DIR => true,
                    DT_UNKNOWN => fstatat(fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits()),
                    _ => false,
                };
                if is_dir {
                    subdirs.push(name.to_os_string());
                }
            }
            self.buf = buf;
        }
        subdirs
    }

    fn enter(&mut self, fd: OwnedFd, path: &Path, depth: usize) {
        if self.out.visited > self.bounds.entries {
            self.out.truncated = true;
            return;
        }
        if let Ok(st) = fstat(fd.as_fd()) {
            self.out.stamps.push((path.to_path_buf(), Stamp::of(&st)));
        }
        let subdirs = self.list(&fd, path);
        if depth >= self.bounds.depth {
            return;
        }
        for s in subdirs {
            if let Some(sub) = Self::open_sub(&fd, &s) {
                self.enter(sub, &path.join(&s), depth + 1);
            }
        }
    }
}

fn now_minus(d: Duration) -> (i64, i64) {
    let t = SystemTime::now()
        .checked_sub(d)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    (t.as_secs() as i64, i64::from(t.subsec_nanos()))
}

fn open_root(root: &Path) -> Option<OwnedFd> {
    nix::fcntl::open(
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

/// Walk `root` whole.
pub fn walk(root: &Path, bounds: Bounds, visit: &mut Visitor<'_>) -> Walk {
    // Changes within this margin before the walk might share a coarse ctime
    // tick with a change during the run: such directories are listed again.
    let recent = now_minus(Duration::from_secs(2));
    let mut w = Walker {
        root,
        bounds,
        buf: vec![0; 32 * 1024],
        out: Walk {
            recent,
            ..Walk::default()
        },
        visit,
    };
    if let Some(fd) = open_root(root) {
        w.enter(fd, root, 0);
    }
    w.out
}

/// Walk again after the run: list only directories that changed since
/// `launch`, and walk new ones whole. Reports entries of those only.
pub fn rewalk(root: &Path, launch: &Walk, bounds: Bounds, visit: &mut Visitor<'_>) -> Walk {
    let mut w = Walker {
        root,
        bounds,
        buf: vec![0; 32 * 1024],
        out: Walk::default(),
        visit,
    };
    let mut known: Option<std::collections::HashSet<&Path>> = None;
    for (dir, then) in &launch.stamps {
        let Ok(st) = fstatat(nix::fcntl::AT_FDCWD, dir, AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFDIR.bits() {
            continue;
        }
        if Stamp::of(&st) == *then && then.ctime < launch.recent {
            continue;
        }
        // Listed without following a link planted on the way.
        let Ok(fd) = super::tree::open_dir(dir) else {
            continue;
        };
        let depth = dir
            .strip_prefix(root)
            .map(|r| r.components().count())
            .unwrap_or(0);
        let subdirs = w.list(&fd, dir);
        if depth >= bounds.depth {
            continue;
        }
        for s in subdirs {
            let p = dir.join(&s);
            let known = known
                .get_or_insert_with(|| launch.stamps.iter().map(|(p, _)| p.as_path()).collect());
            if known.contains(p.as_path()) {
                continue;
            }
            if let Some(sub) = Walker::open_sub(&fd, &s) {
                w.enter(sub, &p, depth + 1);
            }
        }
    }
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds {
        entries: 10_000,
        depth: 8,
        skip: &["node_modules"],
    };

    fn seen(root: &Path, w: impl FnOnce(&mut Visitor<'_>) -> Walk) -> (Vec<PathBuf>, Walk) {
        let mut v = Vec::new();
        let walk = w(&mut |d: &Path, n: &OsStr, _| {
            v.push(d.join(n).strip_prefix(root).unwrap().to_path_buf())
        });
        v.sort();
        (v, walk)
    }

    #[test]
    fn the_walk_sees_every_entry_but_skips_trees_and_the_rewalk_only_changes() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        for p in ["a/b/c", "a/d", "node_modules/x", ".git/objects"] {
            std::fs::create_dir_all(root.join(p)).unwrap();
        }
        std::fs::write(root.join("a/b/c/f"), "").unwrap();
        let (v, launch) = seen(&root, |f| walk(&root, B, f));
        let names: Vec<&str> = v.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                ".git",
                "a",
                "a/b",
                "a/b/c",
                "a/b/c/f",
                "a/d",
                "node_modules"
            ]
        );
        // Fresh directories are "recent": listed again, their new entries seen.
        std::fs::create_dir_all(root.join("a/d/new/deeper")).unwrap();
        let (v, _) = seen(&root, |f| rewalk(&root, &launch, B, f));
        assert!(v.contains(&PathBuf::from("a/d/new")), "{v:?}");
        assert!(v.contains(&PathBuf::from("a/d/new/deeper")), "{v:?}");
        // An unchanged, old directory is not listed again.
        let mut old = launch;
        old.recent = (i64::MAX, 0);
        let (v, _) = seen(&root, |f| rewalk(&root, &old, B, f));
        assert!(!v.contains(&PathBuf::from("a/b/c/f")), "{v:?}");
        assert!(v.contains(&PathBuf::from("a/d/new")), "{v:?}");
    }

    #[test]
    fn bounds_stop_the_walk_and_say_so() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        for i in 0..50 {
            std::fs::create_dir_all(root.join(format!("d{i}/e"))).unwrap();
        }
        let b = Bounds { entries: 10, ..B };
        let w = walk(&root, b, &mut |_, _, _| {});
        assert!(w.truncated && w.visited < 100);
    }
}
