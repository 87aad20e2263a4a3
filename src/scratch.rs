//! The run's private scratch space and device view: what replaces the host's
//! shared `/tmp`, `${TMPDIR}`, `/dev/shm` and `/dev` for one run.
//!
//! With namespaces, init mounts a tmpfs at `/tmp` (and at `${TMPDIR}` when it is
//! elsewhere), re-attaching the granted paths that lie beneath it (a workspace
//! in `/tmp`), and a fresh `/dev`: a tmpfs, read-only once built, holding the
//! allowlisted nodes bound from the host, the usual symlinks, a new devpts
//! instance and a private `/dev/shm`. Without namespaces, the launcher makes a
//! fresh per-run directory ([`RunTmp`]) that `${TMPDIR}` names, and the planner
//! narrows every grant covering `/dev` to the allowlist and the run's own terminal.
//!
//! Owns the allowlist, these planning decisions (pure), the per-run directory and
//! the mount steps of the private view. Does not decide Landlock rights (plan,
//! landlock) or build the rest of the mount view (namespaces).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::plan::Mounts;
use crate::policy::{FsPolicy, beneath};
use crate::sys;

/// Device nodes bound from the host into the fresh /dev (and, without
/// namespaces, the only ones Landlock rules reach).
pub const BOUND: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// What the rule texts say is reachable under /dev.
pub const REACHABLE: &str = "devices: only null, zero, full, random, urandom, tty, ptmx, shm, \
     fd, stdin, stdout, stderr and the run's own terminal are reachable";

/// What a path under /dev is, for the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevPath {
    /// Not under /dev.
    Outside,
    /// /dev itself.
    Root,
    /// One of [`BOUND`].
    Bound,
    /// /dev/ptmx.
    Ptmx,
    /// /dev/shm or beneath it.
    Shm,
    /// /dev/pts itself.
    Pts,
    /// /dev/pts/N: a terminal (reachable only when it is the run's own, without namespaces).
    PtsNode,
    /// Everything else: block devices, consoles, /dev/mem ... never reachable.
    Other,
}

/// Classify `p` (canonical) against the allowlist.
pub fn dev_path(p: &Path) -> DevPath {
    // strip_prefix walks components: a byte test first, as most paths are elsewhere.
    if !beneath(p, Path::new("/dev")) {
        return DevPath::Outside;
    }
    let Ok(rest) = p.strip_prefix("/dev") else {
        return DevPath::Outside;
    };
    let mut c = rest.components();
    let Some(first) = c.next() else {
        return DevPath::Root;
    };
    let first = first.as_os_str();
    let more = c.next().is_some();
    match first.to_str() {
        Some("shm") => DevPath::Shm,
        Some("pts") if more => DevPath::PtsNode,
        Some("pts") => DevPath::Pts,
        Some("ptmx") if !more => DevPath::Ptmx,
        Some(n) if !more && BOUND.contains(&n) => DevPath::Bound,
        _ => DevPath::Other,
    }
}

/// A private tmpfs over a shared temporary directory (namespaces on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scratch {
    pub path: PathBuf,
    /// A write grant covers it (else the tmpfs is made read-only once built).
    pub writable: bool,
    /// No exec grant covers it.
    pub noexec: bool,
    /// Its mount point lies on an earlier scratch tmpfs and must be made there.
    pub nested: bool,
    /// Granted host paths beneath it, re-attached on the tmpfs (recursively,
    /// with every bind, pin and mask the view put beneath them).
    pub keep: Vec<Keep>,
}

/// A granted host path beneath a scratch root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    pub path: PathBuf,
    pub dir: bool,
}

/// The fresh /dev (namespaces on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevView {
    /// The private /dev/shm is writable (it follows the run's temp dir, or a grant).
    pub shm_writable: bool,
    /// The grant on the run's temporary directory that makes it writable.
    pub shm_write: Option<crate::profile::Origin>,
    /// Entries of /dev a `deny` names (or all, when it names /dev): left out.
    pub denied: Vec<String>,
}

/// Plan the private temporary directories and the fresh /dev into `m`: which
/// roots get a tmpfs, what is re-attached beneath them, and which binds, pins
/// and masks the tmpfs hides anyway (dropped: mounts cost launch time).
/// `tmpdir` is the run's `${TMPDIR}` (canonical).
pub fn privatize(
    m: &mut Mounts,
    fs: &FsPolicy,
    tmpdir: &Path,
    workspace: &Path,
    cwd: &Path,
    gaps: &mut Vec<String>,
) {
    let mut roots: Vec<PathBuf> = vec![PathBuf::from("/tmp")];
    if tmpdir != Path::new("/tmp") && tmpdir != Path::new("/") {
        if beneath(workspace, tmpdir) {
            gaps.push(format!(
                "${{TMPDIR}} {} holds the workspace: it is not replaced by a private tmpfs",
                tmpdir.display()
            ));
        } else {
            roots.push(tmpdir.to_path_buf());
        }
    }
    roots.retain(|r| {
        if r == workspace {
            gaps.push(format!(
                "the workspace is {}: it stays the host's directory",
                r.display()
            ));
            return false;
        }
        r.is_dir()
    });
    roots.sort();
    let granted = |r: &Path, pred: &dyn Fn(crate::policy::Access) -> bool| {
        fs.grants
            .iter()
            .any(|g| pred(g.access) && beneath(r, &g.path))
    };
    for (i, r) in roots.iter().enumerate() {
        let deeper: Vec<&PathBuf> = roots.iter().filter(|o| *o != r && beneath(o, r)).collect();
        let mut keep: Vec<Keep> = Vec::new();
        // Granted paths beneath the root, and the working directory (the payload
        // starts there; it was readable before the tmpfs covered it).
        let mut cands: Vec<(&Path, bool)> = fs
            .grants
            .iter()
            .map(|g| (g.path.as_path(), g.kind == crate::policy::Kind::Dir))
            .chain([(cwd, true)])
            .filter(|(p, _)| p != r && beneath(p, r))
            .filter(|(p, _)| !deeper.iter().any(|d| beneath(p, d)))
            .collect();
        cands.sort();
        for (path, dir) in cands {
            if keep.iter().any(|k| beneath(path, &k.path)) {
                continue;
            }
            keep.push(Keep {
                path: path.to_path_buf(),
                dir,
            });
        }
        m.scratch.push(Scratch {
            path: r.clone(),
            writable: granted(r, &|a| a.can_write()),
            noexec: !granted(r, &|a| a.can_exec()),
            nested: roots[..i].iter().any(|o| beneath(r, o)),
            keep,
        });
    }
    // What the tmpfs covers and nothing re-attaches is hidden: no mount for it.
    let hidden = |p: &Path, scratch: &[Scratch]| {
        scratch
            .iter()
            .any(|s| beneath(p, &s.path) && !s.keep.iter().any(|k| beneath(p, &k.path)))
    };
    let sc = m.scratch.clone();
    m.writable.retain(|(w, _)| !hidden(w, &sc));
    // A writable root beneath a scratch root was folded into it (as its top);
    // now it needs its own read-write bind, made before it is re-attached.
    for s in &sc {
        let mut tops: Vec<&crate::policy::Grant> = fs
            .grants
            .iter()
            .filter(|g| g.access.can_write() && g.path != s.path && beneath(&g.path, &s.path))
            // A deeper scratch root gets its own tmpfs, not a bind.
            .filter(|g| {
                !sc.iter()
                    .any(|o| o.path != s.path && beneath(&g.path, &o.path))
            })
            .filter(|g| g.kind != crate::policy::Kind::Device)
            .collect();
        tops.sort_by(|a, b| a.path.cmp(&b.path));
        for g in tops {
            if m.writable.iter().any(|(w, _)| beneath(&g.path, w)) {
                continue;
            }
            let exec = fs.grants.iter().any(|e| {
                e.access.can_exec() && (beneath(&g.path, &e.path) || beneath(&e.path, &g.path))
            });
            m.writable.push((g.path.clone(), !exec));
        }
    }
    m.writable.sort();
    let roots: Vec<PathBuf> = m.writable.iter().map(|(w, _)| w.clone()).collect();
    m.pins.retain(|p| !roots.contains(p));
    m.pins.retain(|p| !hidden(p, &sc));
    m.read_only.retain(|p| !hidden(p, &sc));
    m.masks.retain(|(p, _)| !hidden(p, &sc));
    // A deny under /dev leaves the entry out of the fresh /dev (a deny beneath
    // /dev/shm or /dev/pts leaves out the whole entry: fail closed).
    for c in &fs.deny {
        if let Ok(rest) = c.path.strip_prefix("/dev") {
            let name = rest
                .components()
                .next()
                .map(|n| n.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_else(|| "*".into());
            if !m.dev.denied.contains(&name) {
                m.dev.denied.push(name);
            }
        }
    }
    // The fresh /dev replaces every bind beneath the host's.
    m.writable.retain(|(w, _)| dev_path(w) == DevPath::Outside);
    m.masks.retain(|(p, _)| dev_path(p) == DevPath::Outside);
    m.read_only.retain(|p| dev_path(p) == DevPath::Outside);
    m.pins.retain(|p| dev_path(p) == DevPath::Outside);
    // The private /dev/shm is scratch space like the run's temporary directory:
    // writable when that is (or when a profile grants /dev/shm itself).
    m.dev.shm_write = fs
        .grants
        .iter()
        .find(|g| g.access.can_write() && beneath(tmpdir, &g.path))
        .map(|g| g.origin.clone());
    m.dev.shm_writable =
        m.dev.shm_write.is_some() || granted(Path::new("/dev/shm"), &|a| a.can_write());
}

/// The run's own terminal as a /dev/pts path: the controlling terminal of this
/// process (tty_nr in /proc/self/stat) when it is a pseudo-terminal whose node
/// is there. None without one.
pub fn own_terminal() -> Option<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let tty_nr: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(4)?
        .parse()
        .ok()?;
    let (major, minor) = (libc::major(tty_nr), libc::minor(tty_nr));
    // UNIX98 pty slaves: majors 136..=143, 256 minors each.
    if !(136..=143).contains(&major) {
        return None;
    }
    let n = (major - 136) * 256 + minor;
    let p = PathBuf::from(format!("/dev/pts/{n}"));
    let m = std::fs::symlink_metadata(&p).ok()?;
    use std::os::unix::fs::MetadataExt;
    (m.file_type().is_char_device() && m.rdev() == tty_nr).then_some(p)
}

/// A fresh directory for one run's temporary files (namespaces off): mode 0700,
/// owned by the launcher's user, made with mkdir (never follows a planted link;
/// a name that exists is simply skipped), removed at the end without following
/// symlinks, also after a timeout or an interruption.
#[derive(Debug)]
pub struct RunTmp {
    path: PathBuf,
}

impl RunTmp {
    /// Make `parent/cordon-run-XXXXXXXX`.
    pub fn create(parent: &Path) -> Result<RunTmp> {
        use std::hash::{BuildHasher, Hasher};
        let fail = |source| Error::Launch {
            step: "creating the run's temporary directory",
            source,
        };
        for attempt in 0u32..64 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            h.write_u32(attempt);
            let path = parent.join(format!("cordon-run-{:016x}", h.finish()));
            match nix::unistd::mkdir(&path, Mode::from_bits_truncate(0o700)) {
                Ok(()) => return Ok(RunTmp { path }),
                Err(nix::errno::Errno::EEXIST) => continue,
                Err(e) => {
                    return Err(fail(io::Error::other(format!(
                        "{}: {}",
                        parent.display(),
                        e.desc()
                    ))));
                }
            }
        }
        Err(fail(io::Error::other(format!(
            "{}: every name tried exists",
            parent.display()
        ))))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the directory and everything in it; the error names the first
    /// entry that could not be removed.
    pub fn remove(mut self) -> io::Result<()> {
        let p = std::mem::take(&mut self.path);
        remove_tree(&p)
    }
}

impl Drop for RunTmp {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = remove_tree(&self.path);
        }
    }
}

/// Remove `path` (a directory) and its contents through directory descriptors:
/// no symlink is followed, and a directory the payload made unreadable or
/// unwritable (chmod is not mediated by Landlock) is given back 0700 first.
fn remove_tree(path: &Path) -> io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or_default();
    let pfd = nix::fcntl::open(
        parent,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    remove_entry(pfd.as_fd(), Path::new(name), path)
}

fn remove_entry(dir: std::os::fd::BorrowedFd, name: &Path, shown: &Path) -> io::Result<()> {
    use nix::sys::stat::{FchmodatFlags, SFlag, fchmodat, fstatat};
    use nix::unistd::{UnlinkatFlags, unlinkat};
    use std::os::unix::ffi::OsStrExt;
    let ctx = |e: nix::errno::Errno| io::Error::other(format!("{}: {}", shown.display(), e.desc()));
    let st = fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).map_err(ctx)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
        return unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(ctx);
    }
    // Nothing of the run is alive any more: the entry is still the directory
    // fstatat saw, so the chmod cannot land elsewhere.
    let _ = fchmodat(
        dir,
        name,
        Mode::from_bits_truncate(0o700),
        FchmodatFlags::FollowSymlink,
    );
    let sub = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(ctx)?;
    let mut listing = nix::dir::Dir::from_fd(nix::unistd::dup(&sub).map_err(ctx)?).map_err(ctx)?;
    let names: Vec<Vec<u8>> = listing
        .iter()
        .flatten()
        .map(|e| e.file_name().to_bytes().to_vec())
        .filter(|n| n != b"." && n != b"..")
        .collect();
    drop(listing);
    let mut first = Ok(());
    for n in names {
        let child = Path::new(std::ffi::OsStr::from_bytes(&n));
        let r = remove_entry(sub.as_fd(), child, &shown.join(child));
        if first.is_ok() {
            first = r;
        }
    }
    first?;
    unlinkat(dir, name, UnlinkatFlags::RemoveDir).map_err(ctx)
}

/// A [`Scratch`] with its paths as C strings.
#[derive(Debug, PartialEq, Eq)]
struct ScratchC {
    root: CString,
    writable: bool,
    noexec: bool,
    nested: bool,
    keep: Vec<(CString, bool)>,
}

/// The private view's paths as C strings, made during preparation.
#[derive(Debug, PartialEq, Eq)]
pub struct Prepared {
    scratch: Vec<ScratchC>,
    shm_writable: bool,
    /// The host's allowlisted nodes (/dev/null), and where each is bound on the
    /// stage of the fresh /dev (/proc/null, see [`build_view`]).
    bound: Vec<(CString, CString)>,
    /// Entries of the fresh /dev a `deny` leaves out ("*": all of them).
    denied: Vec<String>,
}

impl Prepared {
    pub fn new(m: &Mounts) -> Result<Prepared> {
        let c = |p: &Path| crate::exec::path_cstring(p);
        Ok(Prepared {
            scratch: m
                .scratch
                .iter()
                .map(|s| {
                    Ok(ScratchC {
                        root: c(&s.path)?,
                        writable: s.writable,
                        noexec: s.noexec,
                        nested: s.nested,
                        keep: s
                            .keep
                            .iter()
                            .map(|k| Ok((c(&k.path)?, k.dir)))
                            .collect::<Result<_>>()?,
                    })
                })
                .collect::<Result<_>>()?,
            shm_writable: m.dev.shm_writable,
            bound: BOUND
                .iter()
                .filter(|n| !m.dev.denied.iter().any(|d| d == *n || d == "*"))
                .map(|n| Ok((c(&Path::new("/dev").join(n))?, c(&staged(n))?)))
                .collect::<Result<_>>()?,
            denied: m.dev.denied.clone(),
        })
    }
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// Where the fresh /dev is built before it is moved onto /dev: /proc, which
/// the fresh proc mounted after it covers anyway. There the host's nodes are
/// still in sight at /dev, so each is bound with one mount(2), where building
/// in place took an open_tree clone before the tmpfs hid them and a move_mount
/// after (three calls per node with the close).
const DEV_STAGE: &CStr = c"/proc";

/// `entry` on the stage of the fresh /dev.
fn staged(entry: &str) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(DEV_STAGE.to_bytes())).join(entry)
}

/// A failed mount step: what was being done, and the errno.
pub type StepError = String;

fn step<T>(
    r: std::result::Result<T, impl Into<io::Error>>,
    what: impl FnOnce() -> String,
) -> std::result::Result<T, StepError> {
    r.map_err(|e| format!("{}: {}", what(), e.into()))
}

fn show(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

/// Make `path` and the directories above it, below `base` (on a fresh tmpfs).
fn make_mount_point(base: &CStr, path: &CStr, dir: bool) -> std::result::Result<(), StepError> {
    let (base, full) = (
        Path::new(base.to_str().unwrap_or("/")),
        Path::new(path.to_str().unwrap_or("/")),
    );
    let rel = full.strip_prefix(base).unwrap_or(full);
    let mut cur = base.to_path_buf();
    let n = rel.components().count();
    for (i, comp) in rel.components().enumerate() {
        cur.push(comp);
        let last = i + 1 == n;
        let r = if last && !dir {
            // An empty regular file, made without opening it.
            nix::sys::stat::mknod(
                &cur,
                nix::sys::stat::SFlag::S_IFREG,
                Mode::from_bits_truncate(0o600),
                0,
            )
        } else {
            match nix::unistd::mkdir(&cur, Mode::from_bits_truncate(0o755)) {
                Err(nix::errno::Errno::EEXIST) => Ok(()),
                r => r,
            }
        };
        step(r, || format!("making the mount point {}", cur.display()))?;
    }
    Ok(())
}

/// Build the private temporary directories and the fresh /dev. Runs in init,
/// after the rest of the view (so the re-attached trees carry their binds and
/// masks) and before the fresh /proc.
pub fn build_view(p: &Prepared) -> std::result::Result<(), StepError> {
    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    for ScratchC {
        root,
        noexec,
        nested,
        keep,
        ..
    } in &p.scratch
    {
        // Detached copies of what stays visible beneath the root, taken before the
        // tmpfs hides them.
        let clones = keep
            .iter()
            .map(|(k, dir)| {
                step(sys::open_tree_clone(k), || format!("keeping {}", show(k)))
                    .map(|fd| (k, *dir, fd))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if *nested {
            make_mount_point(c"/", root, true)?;
        }
        let mut flags = nosuid_nodev;
        if *noexec {
            flags |= MsFlags::MS_NOEXEC;
        }
        step(
            mount(
                Some("tmpfs"),
                root.as_c_str(),
                Some("tmpfs"),
                flags,
                Some("mode=1777"),
            ),
            || format!("mounting a private tmpfs at {}", show(root)),
        )?;
        for (k, dir, fd) in clones {
            make_mount_point(root, k, dir)?;
            step(sys::move_mount_to(fd.as_fd(), k), || {
                format!("re-attaching {}", show(k))
            })?;
        }
    }
    // Read-only last: a nested root's mount point is made on the tmpfs above it.
    for ScratchC { root, writable, .. } in &p.scratch {
        if !*writable {
            step(
                sys::mount_setattr(root, false, MOUNT_ATTR_RDONLY, 0),
                || format!("making {} read-only", show(root)),
            )?;
        }
    }

    // The fresh /dev, built on its stage (DEV_STAGE) and moved onto /dev whole.
    step(
        mount(
            Some("tmpfs"),
            DEV_STAGE,
            Some("tmpfs"),
            nosuid_nodev | MsFlags::MS_NOEXEC,
            Some("mode=0755,size=64k"),
        ),
        || "mounting the fresh /dev".into(),
    )?;
    for (node, at) in &p.bound {
        step(
            nix::sys::stat::mknod(
                at.as_c_str(),
                nix::sys::stat::SFlag::S_IFREG,
                Mode::from_bits_truncate(0o666),
                0,
            ),
            || format!("making the mount point {}", show(node)),
        )?;
        match mount(
            Some(node.as_c_str()),
            at.as_c_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => {}
            // A node this host lacks is simply absent, as on the host.
            Err(nix::errno::Errno::ENOENT) => step(nix::unistd::unlink(at.as_c_str()), || {
                format!("removing the mount point {}", show(node))
            })?,
            Err(e) => return Err(format!("binding {}: {e}", show(node))),
        }
    }
    let kept = |entry: &str| {
        !p.denied
            .iter()
            .any(|d| d == "*" || Path::new(entry).file_name() == Some(d.as_ref()))
    };
    for (target, link) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ]
    .into_iter()
    .filter(|(_, link)| kept(link))
    {
        step(
            nix::unistd::symlinkat(target, nix::fcntl::AT_FDCWD, &staged(link)),
            || format!("linking /dev/{link}"),
        )?;
    }
    for d in ["pts", "shm"].into_iter().filter(|d| kept(d)) {
        step(
            nix::unistd::mkdir(&staged(d), Mode::from_bits_truncate(0o755)),
            || format!("making /dev/{d}"),
        )?;
    }
    // A new devpts instance: the payload sees its own ptys only, and programs that
    // allocate one (script, expect, tmux) keep working. The run's own terminal stays
    // reachable through the inherited descriptors and /dev/tty.
    if kept("pts") {
        step(
            mount(
                Some("devpts"),
                &staged("pts"),
                Some("devpts"),
                MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                Some("newinstance,ptmxmode=0666,mode=620"),
            ),
            || "mounting a new devpts instance".into(),
        )?;
    }
    // Not writable: the empty directory on the read-only /dev says the same, one
    // mount fewer.
    if p.shm_writable && kept("shm") {
        step(
            mount(
                Some("tmpfs"),
                &staged("shm"),
                Some("tmpfs"),
                nosuid_nodev,
                Some("mode=1777"),
            ),
            || "mounting the private /dev/shm".into(),
        )?;
    }
    step(
        sys::mount_setattr(&CString::from(DEV_STAGE), false, MOUNT_ATTR_RDONLY, 0),
        || "making /dev read-only".into(),
    )?;
    step(
        mount(
            Some(DEV_STAGE),
            "/dev",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        ),
        || "moving the fresh /dev in place".into(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowlist_classifies_dev_paths() {
        for (p, want) in [
            ("/dev", DevPath::Root),
            ("/dev/null", DevPath::Bound),
            ("/dev/urandom", DevPath::Bound),
            ("/dev/tty", DevPath::Bound),
            ("/dev/ptmx", DevPath::Ptmx),
            ("/dev/shm", DevPath::Shm),
            ("/dev/shm/x", DevPath::Shm),
            ("/dev/pts", DevPath::Pts),
            ("/dev/pts/3", DevPath::PtsNode),
            ("/dev/loop0", DevPath::Other),
            ("/dev/vda", DevPath::Other),
            ("/dev/console", DevPath::Other),
            ("/dev/tty1", DevPath::Other),
            ("/dev/vcs", DevPath::Other),
            ("/dev/null/x", DevPath::Other),
            ("/devx", DevPath::Outside),
            ("/tmp", DevPath::Outside),
        ] {
            assert_eq!(dev_path(Path::new(p)), want, "{p}");
        }
    }

    #[test]
    fn private_tmp_keeps_granted_paths_and_the_cwd_and_drops_hidden_mounts() {
        use crate::policy::{Access, Grant, Kind};
        let t = tempfile::Builder::new().tempdir_in("/tmp").unwrap();
        let tmpdir = t.path().join("t");
        std::fs::create_dir(&tmpdir).unwrap();
        let (ws, cwd) = (t.path().join("ws"), t.path().join("elsewhere"));
        let o = crate::profile::Origin {
            source: "t".into(),
            line: None,
            column: None,
            key: None,
        };
        let grant = |p: &Path, access| Grant {
            path: p.to_path_buf(),
            kind: Kind::Dir,
            access,
            origin: o.clone(),
        };
        let fs = FsPolicy {
            grants: vec![
                grant(Path::new("/"), Access::READ),
                grant(&ws, Access::WRITE),
                grant(&ws.join("sub"), Access::WRITE),
                grant(&tmpdir, Access::WRITE),
            ],
            ..Default::default()
        };
        let mut m = Mounts {
            writable: vec![(PathBuf::from("/tmp"), true)],
            masks: vec![
                (PathBuf::from("/tmp/.X11-unix"), true),
                (ws.join(".ssh"), true),
            ],
            ..Default::default()
        };
        let mut gaps = vec![];
        privatize(&mut m, &fs, &tmpdir, &ws, &cwd, &mut gaps);
        let roots: Vec<&Path> = m.scratch.iter().map(|s| s.path.as_path()).collect();
        assert_eq!(roots, vec![Path::new("/tmp"), tmpdir.as_path()]);
        let tmp = &m.scratch[0];
        assert!(!tmp.writable && tmp.noexec && !tmp.nested);
        let kept: Vec<&Path> = tmp.keep.iter().map(|k| k.path.as_path()).collect();
        assert_eq!(
            kept,
            vec![cwd.as_path(), ws.as_path()],
            "ws/sub rides with ws"
        );
        assert!(m.scratch[1].writable && m.scratch[1].nested && m.scratch[1].keep.is_empty());
        assert_eq!(
            m.writable,
            vec![(ws.clone(), true)],
            "the ws gets its own bind"
        );
        assert_eq!(
            m.masks,
            vec![(ws.join(".ssh"), true)],
            "a hidden mask is dropped"
        );
        assert!(m.dev.shm_writable, "shm follows the writable TMPDIR");
    }

    #[test]
    fn run_tmp_is_private_and_removed_without_following_links() {
        let parent = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        let t = RunTmp::create(parent.path()).unwrap();
        let p = t.path().to_path_buf();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::create_dir_all(p.join("a/b")).unwrap();
        std::fs::write(p.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), p.join("a/link")).unwrap();
        std::fs::set_permissions(p.join("a"), std::fs::Permissions::from_mode(0o000)).unwrap();
        t.remove().unwrap();
        assert!(!p.exists());
        assert!(
            outside.path().join("keep").exists(),
            "the link was not followed"
        );
    }
}
