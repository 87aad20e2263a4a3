//! Kernel feature detection: Landlock ABI, seccomp, user namespaces, the uid.
//! Used by `doctor`, by the enforcement plan, and by tests to decide skips.
//! Probes only read; none of them changes this process.

use std::fmt;
use std::fs;

use crate::sys;

/// What this kernel's Landlock can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landlock {
    /// Available with this ABI version.
    Abi(i32),
    /// Built in but not enabled at boot (EOPNOTSUPP).
    Disabled,
    /// Not built into the kernel, or blocked by a seccomp filter (ENOSYS).
    Missing,
}

impl Landlock {
    pub fn abi(self) -> i32 {
        match self {
            Landlock::Abi(v) => v,
            _ => 0,
        }
    }
}

impl fmt::Display for Landlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Landlock::Abi(v) => write!(f, "ABI {v}"),
            Landlock::Disabled => f.write_str("disabled at boot (EOPNOTSUPP)"),
            Landlock::Missing => f.write_str("unavailable (ENOSYS)"),
        }
    }
}

/// Whether user namespaces look usable, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Userns {
    Available,
    Unavailable(String),
}

/// Facts about the running system.
#[derive(Debug, Clone)]
pub struct Host {
    pub kernel: String,
    pub landlock: Landlock,
    pub seccomp: bool,
    pub user_notif: bool,
    pub userns: Userns,
    pub uid: u32,
    pub euid: u32,
}

impl Host {
    pub fn probe() -> Host {
        let landlock = match sys::landlock_abi() {
            Ok(v) if v > 0 => Landlock::Abi(v),
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Landlock::Disabled,
            _ => Landlock::Missing,
        };
        let euid = nix::unistd::geteuid().as_raw();
        Host {
            kernel: kernel_release(),
            landlock,
            // Without filter support built in, seccomp(2) refuses every operation.
            seccomp: sys::seccomp_action_available(libc::SECCOMP_RET_ERRNO),
            user_notif: sys::seccomp_action_available(libc::SECCOMP_RET_USER_NOTIF),
            userns: userns(euid),
            uid: nix::unistd::getuid().as_raw(),
            euid,
        }
    }

    pub fn is_root(&self) -> bool {
        self.euid == 0
    }
}

pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn read_num(path: &str) -> Option<i64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The sysctls that decide whether an unprivileged user namespace may be created.
/// A seccomp filter around us can still refuse `unshare`; the launcher then falls
/// back (mode "auto") or refuses (mode "required") when it actually tries.
fn userns(euid: u32) -> Userns {
    if !std::path::Path::new("/proc/self/ns/user").exists() {
        return Userns::Unavailable("the kernel has no user namespaces".into());
    }
    if read_num("/proc/sys/user/max_user_namespaces") == Some(0) {
        return Userns::Unavailable("user.max_user_namespaces is 0".into());
    }
    if euid != 0 {
        if read_num("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
            return Userns::Unavailable("kernel.unprivileged_userns_clone is 0".into());
        }
        if read_num("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
            return Userns::Unavailable("AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)".into());
        }
    }
    Userns::Available
}

/// Actually create the namespaces cordon uses, in a throwaway child (for
/// `doctor`; a run learns the same by trying, and falls back in mode auto).
pub fn try_namespaces() -> Result<(), String> {
    let flags = crate::namespaces::CLONE_FLAGS | libc::CLONE_NEWNET;
    match sys::clone_fork(flags) {
        Ok(None) => sys::exit_now(0),
        Ok(Some(pid)) => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            Ok(())
        }
        Err(e) => Err(format!(
            "clone with new user, mount, PID, IPC and network namespaces: {e}"
        )),
    }
}
