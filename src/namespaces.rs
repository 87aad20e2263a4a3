//! Namespaces: the clone flags, the uid/gid maps the launcher writes for the
//! child, and the mount view the child builds as PID 1 of its namespace:
//! the host's tree read-only, writable roots bound read-write (noexec without
//! exec coverage), read_only paths bound read-only with their ancestors pinned,
//! denied paths masked by an empty mode-000 directory or file, the private
//! temporary directories and /dev (built by `scratch`), a fresh /proc,
//! and a new network namespace with only loopback (left down).
//!
//! Paths are turned into C strings during preparation; the child only makes
//! syscalls.

use std::ffi::CString;
use std::io;

use nix::mount::{MsFlags, mount};

use crate::error::Result;
use crate::exec::path_cstring;
use crate::plan::Mounts;
use crate::sys;

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// The mount view with every path as a C string.
#[derive(Debug, PartialEq, Eq)]
pub struct Prepared {
    writable: Vec<(CString, bool)>,
    pins: Vec<CString>,
    read_only: Vec<CString>,
    masks: Vec<(CString, bool)>,
    /// The private /tmp, ${TMPDIR} and /dev (see `scratch`).
    private: crate::scratch::Prepared,
    pub net: bool,
    /// Mode "proxy" (see `plan::Mounts::proxy`).
    pub proxy: bool,
}

/// Namespaces the child is cloned into (init adds the network namespace itself).
pub const CLONE_FLAGS: libc::c_int =
    libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC;

impl Prepared {
    pub fn new(m: &Mounts) -> Result<Prepared> {
        Ok(Prepared {
            writable: m
                .writable
                .iter()
                .map(|(p, noexec)| Ok((path_cstring(p)?, *noexec)))
                .collect::<Result<_>>()?,
            pins: m
                .pins
                .iter()
                .map(|p| path_cstring(p))
                .collect::<Result<_>>()?,
            read_only: m
                .read_only
                .iter()
                .map(|p| path_cstring(p))
                .collect::<Result<_>>()?,
            masks: m
                .masks
                .iter()
                .map(|(p, dir)| Ok((path_cstring(p)?, *dir)))
                .collect::<Result<_>>()?,
            private: crate::scratch::Prepared::new(m)?,
            net: m.net,
            proxy: m.proxy,
        })
    }
}

/// A failed step, and whether it shows that mounts are not possible at all
/// here (mode "auto" then falls back to running without namespaces).
#[derive(Debug)]
pub struct SetupError {
    pub message: String,
    pub unavailable: bool,
}

fn step<T>(
    r: std::result::Result<T, impl Into<io::Error>>,
    what: impl FnOnce() -> String,
) -> std::result::Result<T, SetupError> {
    r.map_err(|e| SetupError {
        message: format!("{}: {}", what(), e.into()),
        unavailable: false,
    })
}

fn show(c: &CString) -> String {
    c.to_string_lossy().into_owned()
}

/// Write the child's uid/gid maps (run by the launcher, which holds the
/// capabilities in the parent namespace that a full map needs as root).
pub fn write_maps(pid: libc::pid_t, uid: u32, gid: u32) -> io::Result<()> {
    let dir = format!("/proc/{pid}");
    if uid == 0 {
        // Root keeps every uid and gid as it is on the host, so file ownership reads true.
        std::fs::write(format!("{dir}/uid_map"), "0 0 4294967295\n")?;
        std::fs::write(format!("{dir}/gid_map"), "0 0 4294967295\n")?;
    } else {
        std::fs::write(format!("{dir}/setgroups"), "deny\n")?;
        std::fs::write(format!("{dir}/uid_map"), format!("{uid} {uid} 1\n"))?;
        std::fs::write(format!("{dir}/gid_map"), format!("{gid} {gid} 1\n"))?;
    }
    Ok(())
}

/// Build the view. Runs in the child, as PID 1 of the new PID namespace, with
/// the capabilities of its own user namespace.
pub fn setup(p: &Prepared) -> std::result::Result<(), SetupError> {
    let root = CString::from(c"/");
    // Nothing we mount may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| SetupError {
        message: format!("making the mount tree private: {e}"),
        unavailable: true,
    })?;
    // The whole host view read-only; writable roots are bound back read-write below.
    step(
        sys::mount_setattr(&root, true, MOUNT_ATTR_RDONLY, 0),
        || "making / read-only".into(),
    )?;
    for (w, noexec) in &p.writable {
        step(
            mount(
                Some(w.as_c_str()),
                w.as_c_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            ),
            || format!("binding writable root {}", show(w)),
        )?;
        let set = if *noexec { MOUNT_ATTR_NOEXEC } else { 0 };
        step(sys::mount_setattr(w, false, set, MOUNT_ATTR_RDONLY), || {
            format!("making {} writable", show(w))
        })?;
    }
    // A mount point cannot be renamed or removed, so a payload cannot move .git
    // aside and put a directory of its own (with hooks) in its place.
    for d in &p.pins {
        step(
            mount(
                Some(d.as_c_str()),
                d.as_c_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            ),
            || format!("pinning {}", show(d)),
        )?;
    }
    for r in &p.read_only {
        step(
            mount(
                Some(r.as_c_str()),
                r.as_c_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            ),
            || format!("binding read-only {}", show(r)),
        )?;
        step(sys::mount_setattr(r, true, MOUNT_ATTR_RDONLY, 0), || {
            format!("making {} read-only", show(r))
        })?;
    }
    if !p.masks.is_empty() || p.proxy {
        // Stage an empty directory and an empty file, both mode 000, on a tmpfs over
        // /proc and bind them over the denied paths. The fresh proc mounted below
        // covers the stage (no umount: detaching a mount waits for an RCU grace period).
        step(
            mount(
                Some("tmpfs"),
                "/proc",
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=4k,mode=0700"),
            ),
            || "mounting the mask stage".into(),
        )?;
        step(
            nix::unistd::mkdir("/proc/d", nix::sys::stat::Mode::empty()),
            || "creating the mask directory".into(),
        )?;
        step(
            nix::sys::stat::mknod(
                "/proc/f",
                nix::sys::stat::SFlag::S_IFREG,
                nix::sys::stat::Mode::empty(),
                0,
            ),
            || "creating the mask file".into(),
        )?;
        if p.proxy {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            step(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o444)
                    .open("/proc/r")
                    .and_then(|mut f| f.write_all(crate::proxy::RESOLV_CONF.as_bytes())),
                || "writing the resolver's resolv.conf".into(),
            )?;
        }
        // A bind mount takes its source mount's flags: with the stage read-only
        // (it is already nosuid, nodev, noexec), every mask is born with all four,
        // one call for the stage instead of one per mask.
        step(
            sys::mount_setattr(&CString::from(c"/proc"), false, MOUNT_ATTR_RDONLY, 0),
            || "making the mask stage read-only".into(),
        )?;
        for (m, dir) in &p.masks {
            let src = if *dir { "/proc/d" } else { "/proc/f" };
            step(
                mount(
                    Some(src),
                    m.as_c_str(),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                ),
                || format!("masking {}", show(m)),
            )?;
        }
        // Names resolve through the launcher (mode "proxy"). Without the file,
        // glibc asks 127.0.0.1 anyway.
        if p.proxy && std::path::Path::new("/etc/resolv.conf").exists() {
            step(
                mount(
                    Some("/proc/r"),
                    "/etc/resolv.conf",
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                ),
                || "binding /etc/resolv.conf".into(),
            )?;
        }
    }
    // The private temporary directories and the fresh /dev: after the binds and
    // masks (the trees re-attached on the tmpfs carry theirs), before /proc.
    crate::scratch::build_view(&p.private).map_err(|message| SetupError {
        message,
        unavailable: false,
    })?;
    // A fresh /proc for the new PID namespace: the payload sees only its own tree.
    step(
        mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        ),
        || "mounting /proc".into(),
    )?;
    // The network namespace's loopback stays down: with the network off, seccomp
    // refuses every inet socket, so an up `lo` would serve nothing, and bringing
    // it up (IPv4 and IPv6 address setup) was ~0.1 ms of every launch.
    // memfds in this PID namespace are never executable (Linux 6.3). Only a root
    // launcher may write the knob; for others the capture supervisor seals memfds.
    let _ = std::fs::write("/proc/sys/vm/memfd_noexec", "2");
    Ok(())
}
