//! Metadata changes without namespaces: chmod, chown, the xattr calls and the
//! utime calls are not mediated by Landlock, so the filter sends them to the
//! supervisor. It resolves the object as the caller would (from the caller's
//! cwd or descriptor, honouring AT_SYMLINK_NOFOLLOW) to an O_PATH descriptor,
//! checks that the object lies in a writable root and is not denied (the
//! `explain` decision the plan enforces), then performs the change itself on
//! that descriptor, with the payload's capabilities, and answers with the
//! result. Letting the call run instead (CONTINUE) would let another thread of
//! the caller swap the path between the check and the call.
//!
//! Owns the decoding, the resolution and the performing of these calls. Does
//! not decide which calls come here (seccomp.rs), nor record denials
//! (monitor.rs). With namespaces the read-only mounts answer EROFS and nothing
//! comes here; setuid and setgid bits are refused by the filter before.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use crate::explain::{self, Op, Query};
use crate::plan::Plan;
use crate::policy::Policy;
use crate::sys;

/// How a call was answered.
#[derive(Debug)]
pub enum Outcome {
    /// Performed (or failed as the kernel would have it): answer with this errno, 0 for success.
    Done(i32),
    /// The object lies outside the writable roots, or is denied: refuse and record.
    Refused(String),
}

/// The caller's memory, as the monitor reads it.
pub trait Memory {
    fn cstr(&self, addr: u64) -> Option<String>;
    fn bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>>;
}

/// The change a call asks for.
#[derive(Debug, PartialEq)]
enum Change {
    Mode(u32),
    Owner(u32, u32),
    SetXattr {
        name: CString,
        value: Vec<u8>,
        flags: i32,
    },
    RemoveXattr(CString),
    /// None: both times now.
    Times(Option<[libc::timespec; 2]>),
}

/// What the change applies to.
#[derive(Debug, PartialEq)]
enum Object {
    Path {
        dirfd: i32,
        path: CString,
        follow: bool,
    },
    /// The object of descriptor `fd`; `o_path` whether an O_PATH descriptor is
    /// accepted (the AT_EMPTY_PATH forms) or refused with EBADF (fchmod and kin).
    Fd { fd: i32, o_path: bool },
}

const XATTR_SIZE_MAX: usize = 65536;

/// Decode `name(args)`; Err is the errno the kernel would give.
fn decode(name: &str, a: &[u64; 6], mem: &dyn Memory) -> Result<(Object, Change), i32> {
    let string = |addr: u64| -> Result<CString, i32> {
        let s = mem.cstr(addr).ok_or(libc::EFAULT)?;
        CString::new(s).map_err(|_| libc::EINVAL)
    };
    let int = |i: usize| a[i] as i32;
    let at_flags = |flags: u64, allowed: i32| -> Result<(bool, bool), i32> {
        let f = flags as i32;
        if f & !allowed != 0 {
            return Err(libc::EINVAL);
        }
        Ok((
            f & libc::AT_SYMLINK_NOFOLLOW == 0,
            f & libc::AT_EMPTY_PATH != 0,
        ))
    };
    let nofollow_empty = libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH;
    // An at-call's object: the descriptor itself for an empty path with AT_EMPTY_PATH.
    let at = |dirfd: i32, p: u64, follow: bool, empty_ok: bool| -> Result<Object, i32> {
        let path = string(p)?;
        if path.is_empty() {
            return if empty_ok {
                Ok(Object::Fd {
                    fd: dirfd,
                    o_path: true,
                })
            } else {
                Err(libc::ENOENT)
            };
        }
        Ok(Object::Path {
            dirfd,
            path,
            follow,
        })
    };
    let cwd = |p: u64, follow: bool| at(libc::AT_FDCWD, p, follow, false);
    let fd = |i: usize| Object::Fd {
        fd: int(i),
        o_path: false,
    };
    let xattr = |name: u64, value: u64, size: u64, flags: u64| -> Result<Change, i32> {
        let size = size as usize;
        if size > XATTR_SIZE_MAX {
            return Err(libc::E2BIG);
        }
        let value = if size == 0 {
            Vec::new()
        } else {
            mem.bytes(value, size).ok_or(libc::EFAULT)?
        };
        Ok(Change::SetXattr {
            name: string(name)?,
            value,
            flags: flags as i32,
        })
    };
    let times = |addr: u64, unit: Unit| -> Result<Change, i32> {
        if addr == 0 {
            return Ok(Change::Times(None));
        }
        let n = if unit == Unit::Utimbuf { 16 } else { 32 };
        let b = mem.bytes(addr, n).ok_or(libc::EFAULT)?;
        let w = |i: usize| i64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let ts = |sec: i64, nsec: i64| libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        };
        Ok(Change::Times(Some(match unit {
            Unit::Utimbuf => [ts(w(0), 0), ts(w(1), 0)],
            Unit::Timeval => {
                if [w(1), w(3)].iter().any(|u| !(0..1_000_000).contains(u)) {
                    return Err(libc::EINVAL);
                }
                [ts(w(0), w(1) * 1000), ts(w(2), w(3) * 1000)]
            }
            Unit::Timespec => [ts(w(0), w(1)), ts(w(2), w(3))],
        })))
    };
    Ok(match name {
        "chmod" => (cwd(a[0], true)?, Change::Mode(a[1] as u32)),
        "fchmod" => (fd(0), Change::Mode(a[1] as u32)),
        "fchmodat" => (at(int(0), a[1], true, false)?, Change::Mode(a[2] as u32)),
        "fchmodat2" => {
            let (follow, empty) = at_flags(a[3], nofollow_empty)?;
            (at(int(0), a[1], follow, empty)?, Change::Mode(a[2] as u32))
        }
        "chown" | "lchown" => (
            cwd(a[0], name == "chown")?,
            Change::Owner(a[1] as u32, a[2] as u32),
        ),
        "fchown" => (fd(0), Change::Owner(a[1] as u32, a[2] as u32)),
        "fchownat" => {
            let (follow, empty) = at_flags(a[4], nofollow_empty)?;
            (
                at(int(0), a[1], follow, empty)?,
                Change::Owner(a[2] as u32, a[3] as u32),
            )
        }
        "setxattr" | "lsetxattr" => (
            cwd(a[0], name == "setxattr")?,
            xattr(a[1], a[2], a[3], a[4])?,
        ),
        "fsetxattr" => (fd(0), xattr(a[1], a[2], a[3], a[4])?),
        "setxattrat" => {
            let (follow, empty) = at_flags(a[2], nofollow_empty)?;
            // struct xattr_args { u64 value; u32 size; u32 flags; }
            if a[5] as usize != 16 {
                return Err(libc::EINVAL);
            }
            let b = mem.bytes(a[4], 16).ok_or(libc::EFAULT)?;
            let value = u64::from_ne_bytes(b[0..8].try_into().unwrap_or_default());
            let size = u32::from_ne_bytes(b[8..12].try_into().unwrap_or_default());
            let flags = u32::from_ne_bytes(b[12..16].try_into().unwrap_or_default());
            (
                at(int(0), a[1], follow, empty)?,
                xattr(a[3], value, size as u64, flags as u64)?,
            )
        }
        "removexattr" | "lremovexattr" => (
            cwd(a[0], name == "removexattr")?,
            Change::RemoveXattr(string(a[1])?),
        ),
        "fremovexattr" => (fd(0), Change::RemoveXattr(string(a[1])?)),
        "removexattrat" => {
            let (follow, empty) = at_flags(a[2], nofollow_empty)?;
            (
                at(int(0), a[1], follow, empty)?,
                Change::RemoveXattr(string(a[3])?),
            )
        }
        "utime" => (cwd(a[0], true)?, times(a[1], Unit::Utimbuf)?),
        "utimes" => (cwd(a[0], true)?, times(a[1], Unit::Timeval)?),
        "futimesat" => (at(int(0), a[1], true, false)?, times(a[2], Unit::Timeval)?),
        "utimensat" => {
            let (follow, empty) = at_flags(a[3], nofollow_empty)?;
            let object = if a[1] == 0 {
                // futimens(3): the descriptor itself.
                Object::Fd {
                    fd: int(0),
                    o_path: false,
                }
            } else {
                at(int(0), a[1], follow, empty)?
            };
            (object, times(a[2], Unit::Timespec)?)
        }
        _ => return Err(libc::ENOSYS),
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Utimbuf,
    Timeval,
    Timespec,
}

/// Handle `name(args)` of thread `tid`. `still_waiting` says whether the caller
/// still waits for this notification (its pid not reused): asked after the
/// caller's memory and descriptors were read, before anything is changed.
pub fn handle(
    tid: u32,
    name: &str,
    args: &[u64; 6],
    mem: Option<&dyn Memory>,
    policy: &Policy,
    plan: &Plan,
    still_waiting: &dyn Fn() -> bool,
) -> Outcome {
    let Some(mem) = mem else {
        return Outcome::Done(libc::EPERM);
    };
    let (object, change) = match decode(name, args, mem) {
        Ok(d) => d,
        Err(e) => return Outcome::Done(e),
    };
    let fd = match open_object(tid, &object) {
        Ok(fd) => fd,
        Err(e) => return Outcome::Done(e),
    };
    if !still_waiting() {
        return Outcome::Done(libc::ESRCH);
    }
    let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let path = match std::fs::read_link(&proc_path) {
        Ok(p) if p.is_absolute() => p,
        Ok(p) => return Outcome::Refused(p.display().to_string()),
        Err(_) => return Outcome::Done(libc::EPERM),
    };
    let symlink =
        nix::sys::stat::fstat(&fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK);
    // The decision follows a symlink: for the link itself, ask about the
    // directory that holds it (an entry of a writable directory is writable).
    let subject = match path.parent() {
        Some(dir) if symlink => dir,
        _ => &path,
    };
    if !allowed(policy, plan, subject) {
        return Outcome::Refused(path.display().to_string());
    }
    let keep = policy.caps_keep.iter().fold(0u64, |m, c| m | c.bitmask());
    let result = with_caps(keep, || perform(&fd, &proc_path, symlink, change));
    Outcome::Done(result.err().and_then(|e| e.raw_os_error()).unwrap_or(0))
}

/// Whether the payload may change `path`: what it may write.
fn allowed(policy: &Policy, plan: &Plan, path: &std::path::Path) -> bool {
    explain::decide(policy, plan, &Query::Fs(Op::Write, PathBuf::from(path))).allowed
}

/// An O_PATH descriptor for the object, resolved from the caller's cwd or
/// descriptor. Absolute paths resolve from our root, which is the caller's:
/// without namespaces the payload shares the launcher's mount namespace, and
/// chroot is refused by the filter.
fn open_object(tid: u32, object: &Object) -> Result<OwnedFd, i32> {
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EPERM);
    let proc_fd = |fd: i32| -> Result<OwnedFd, i32> {
        let p = CString::new(format!("/proc/{tid}/fd/{fd}")).map_err(|_| libc::EBADF)?;
        sys::openat2(cwd_fd(), &p, libc::O_PATH, 0).map_err(|e| match errno(e) {
            libc::ENOENT => libc::EBADF,
            e => e,
        })
    };
    match object {
        Object::Fd { fd, o_path } => {
            if !o_path && is_o_path(tid, *fd) {
                return Err(libc::EBADF);
            }
            proc_fd(*fd)
        }
        Object::Path {
            dirfd,
            path,
            follow,
        } => {
            let path = own_proc_path(tid, path);
            let base = if path.as_bytes().first() == Some(&b'/') {
                None
            } else if *dirfd == libc::AT_FDCWD {
                let p = CString::new(format!("/proc/{tid}/cwd")).map_err(|_| libc::EBADF)?;
                Some(sys::openat2(cwd_fd(), &p, libc::O_PATH, 0).map_err(errno)?)
            } else {
                Some(proc_fd(*dirfd)?)
            };
            let flags = libc::O_PATH | if *follow { 0 } else { libc::O_NOFOLLOW };
            let dir = base.as_ref().map_or(cwd_fd(), |b| b.as_fd());
            sys::openat2(dir, &path, flags, 0).map_err(errno)
        }
    }
}

fn cwd_fd() -> std::os::fd::BorrowedFd<'static> {
    nix::fcntl::AT_FDCWD
}

/// `/proc/self` and `/proc/thread-self` name the resolving process: ours. Make
/// them the caller's. (Whatever a path resolves to, only an object in a
/// writable root is changed.)
fn own_proc_path(tid: u32, path: &CString) -> CString {
    let s = path.to_string_lossy();
    let tgid = tgid_of(tid).unwrap_or(tid);
    let swapped = if let Some(rest) = s.strip_prefix("/proc/self/") {
        format!("/proc/{tgid}/{rest}")
    } else if let Some(rest) = s.strip_prefix("/proc/thread-self/") {
        format!("/proc/{tgid}/task/{tid}/{rest}")
    } else {
        return path.clone();
    };
    CString::new(swapped).unwrap_or_else(|_| path.clone())
}

/// The process of thread `tid`.
fn tgid_of(tid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

/// Whether the caller's descriptor `fd` was opened with O_PATH (fchmod and kin answer EBADF).
fn is_o_path(tid: u32, fd: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{tid}/fdinfo/{fd}"))
        .ok()
        .and_then(|s| {
            let f = s.lines().find_map(|l| l.strip_prefix("flags:"))?;
            i64::from_str_radix(f.trim(), 8).ok()
        })
        .is_some_and(|f| f & libc::O_PATH as i64 != 0)
}

fn perform(fd: &OwnedFd, proc_path: &str, symlink: bool, change: Change) -> std::io::Result<()> {
    let err = std::io::Error::from_raw_os_error;
    let cpath = || CString::new(proc_path).map_err(|_| err(libc::EINVAL));
    match change {
        // Linux has no mode for a symlink: the kernel answers EOPNOTSUPP.
        Change::Mode(_) if symlink => Err(err(libc::EOPNOTSUPP)),
        Change::Mode(m) => sys::chmod_fd(fd.as_fd(), m),
        Change::Owner(u, g) => sys::chown_fd(fd.as_fd(), u, g),
        // Symlinks take only trusted.* and security.* attributes, which need
        // capabilities the payload does not have.
        Change::SetXattr { .. } | Change::RemoveXattr(_) if symlink => Err(err(libc::EPERM)),
        Change::SetXattr { name, value, flags } => sys::setxattr(&cpath()?, &name, &value, flags),
        Change::RemoveXattr(name) => sys::removexattr(&cpath()?, &name),
        Change::Times(t) => sys::utimens_fd(fd.as_fd(), t),
    }
}

/// Run `f` with the payload's effective capabilities (`keep`): as root the
/// launcher holds every capability, and the payload's call must not gain
/// CAP_FOWNER, CAP_CHOWN or CAP_DAC_OVERRIDE through us. Capabilities are
/// per thread, and the supervisor runs on the launcher's only thread.
fn with_caps<T>(keep: u64, f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    let Ok(saved) = sys::capget() else {
        return Err(std::io::Error::from_raw_os_error(libc::EPERM));
    };
    if saved.effective & !keep == 0 {
        return f();
    }
    let lowered = sys::CapSets {
        effective: saved.effective & keep,
        ..saved
    };
    if sys::capset(lowered).is_err() {
        return Err(std::io::Error::from_raw_os_error(libc::EPERM));
    }
    let r = f();
    let _ = sys::capset(saved);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Vec<(u64, Vec<u8>)>);
    impl Memory for Fake {
        fn cstr(&self, addr: u64) -> Option<String> {
            let b = &self.0.iter().find(|(a, _)| *a == addr)?.1;
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            Some(String::from_utf8_lossy(&b[..end]).into_owned())
        }
        fn bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
            let b = &self.0.iter().find(|(a, _)| *a == addr)?.1;
            b.get(..len).map(<[u8]>::to_vec)
        }
    }

    fn path(p: &str, follow: bool) -> Object {
        Object::Path {
            dirfd: libc::AT_FDCWD,
            path: CString::new(p).unwrap(),
            follow,
        }
    }

    #[test]
    fn calls_decode_to_object_and_change() {
        let mem = Fake(vec![
            (0x10, b"f\0".to_vec()),
            (0x20, b"\0".to_vec()),
            (0x30, b"user.x\0".to_vec()),
            (0x40, b"val".to_vec()),
            (
                0x50,
                [1i64, 2, 3, 4]
                    .iter()
                    .flat_map(|v| v.to_ne_bytes())
                    .collect(),
            ),
        ]);
        let d = |n: &str, a: [u64; 6]| decode(n, &a, &mem);
        assert_eq!(
            d("chmod", [0x10, 0o644, 0, 0, 0, 0]),
            Ok((path("f", true), Change::Mode(0o644)))
        );
        assert_eq!(
            d("lchown", [0x10, 1, 2, 0, 0, 0]),
            Ok((path("f", false), Change::Owner(1, 2)))
        );
        let nofollow = libc::AT_SYMLINK_NOFOLLOW as u64;
        assert_eq!(
            d("fchownat", [libc::AT_FDCWD as u64, 0x10, 1, 2, nofollow, 0]).map(|d| d.0),
            Ok(path("f", false))
        );
        assert_eq!(
            d("fchownat", [5, 0x20, 1, 2, libc::AT_EMPTY_PATH as u64, 0]).map(|d| d.0),
            Ok(Object::Fd {
                fd: 5,
                o_path: true
            })
        );
        assert_eq!(d("fchownat", [5, 0x20, 1, 2, 0, 0]), Err(libc::ENOENT));
        assert_eq!(
            d("fchmodat2", [5, 0x10, 0o600, 0x8000, 0, 0]),
            Err(libc::EINVAL)
        );
        assert_eq!(
            d("fsetxattr", [3, 0x30, 0x40, 3, 0, 0]),
            Ok((
                Object::Fd {
                    fd: 3,
                    o_path: false
                },
                Change::SetXattr {
                    name: CString::new("user.x").unwrap(),
                    value: b"val".to_vec(),
                    flags: 0
                }
            ))
        );
        assert_eq!(
            d("setxattr", [0x10, 0x30, 0x40, 1 << 20, 0, 0]),
            Err(libc::E2BIG)
        );
        let ts = |s, n| libc::timespec {
            tv_sec: s,
            tv_nsec: n,
        };
        assert_eq!(
            d("utimensat", [4, 0, 0x50, 0, 0, 0]),
            Ok((
                Object::Fd {
                    fd: 4,
                    o_path: false
                },
                Change::Times(Some([ts(1, 2), ts(3, 4)]))
            ))
        );
        assert_eq!(
            d("utimes", [0x10, 0x50, 0, 0, 0, 0]).map(|d| d.1),
            Ok(Change::Times(Some([ts(1, 2000), ts(3, 4000)])))
        );
        assert_eq!(
            d("utime", [0x10, 0, 0, 0, 0, 0]).map(|d| d.1),
            Ok(Change::Times(None))
        );
        assert_eq!(d("chmod", [0x99, 0o644, 0, 0, 0, 0]), Err(libc::EFAULT));
    }

    #[test]
    fn proc_self_is_the_callers() {
        let me = std::process::id();
        let p = own_proc_path(me, &CString::new("/proc/self/fd/3").unwrap());
        assert_eq!(p.to_str().unwrap(), format!("/proc/{me}/fd/3"));
        let q = CString::new("/etc/hosts").unwrap();
        assert_eq!(own_proc_path(me, &q), q);
    }
}
