//! Resource limits: rlimits (core dumps always off; memory as RLIMIT_DATA so
//! JIT runtimes that reserve address space keep working), and the process
//! count, which needs a pids cgroup when the launcher runs as root (root
//! bypasses RLIMIT_NPROC, and RLIMIT_NPROC counts the uid's processes host-wide).

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::policy::Limits;

/// How the `processes` limit is enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processes {
    None,
    /// RLIMIT_NPROC: in a user namespace it counts the sandbox's own processes.
    Rlimit(u64),
    /// A pids cgroup the launcher created (and removes after the run).
    Cgroup {
        dir: PathBuf,
        procs: CString,
        max: u64,
    },
}

impl Processes {
    pub fn describe(&self) -> String {
        match self {
            Processes::None => "none".into(),
            Processes::Rlimit(n) => format!("{n} (RLIMIT_NPROC)"),
            Processes::Cgroup { dir, max, .. } => format!("{max} (pids cgroup {})", dir.display()),
        }
    }
}

/// The rlimits to set in the child: (resource, soft, hard).
pub fn rlimits(l: &Limits, processes: &Processes) -> Vec<(Resource, u64, u64)> {
    let mut v = vec![(Resource::RLIMIT_CORE, 0, 0)];
    if let Some(m) = l.memory {
        v.push((Resource::RLIMIT_DATA, m, m));
    }
    if let Processes::Rlimit(n) = processes {
        v.push((Resource::RLIMIT_NPROC, *n, *n));
    }
    if let Some(n) = l.open_files {
        // Never above the current hard limit: raising it needs privilege, and a
        // lower limit is the safe reading of the profile.
        let hard = getrlimit(Resource::RLIMIT_NOFILE)
            .map(|(_, h)| h)
            .unwrap_or(n);
        let n = n.min(hard);
        v.push((Resource::RLIMIT_NOFILE, n, n));
    }
    if let Some(cpu) = l.cpu {
        // SIGXCPU at the soft limit gives the program a moment before SIGKILL.
        let s = cpu.as_secs().max(1);
        v.push((Resource::RLIMIT_CPU, s, s + 2));
    }
    if let Some(n) = l.file_size {
        v.push((Resource::RLIMIT_FSIZE, n, n));
    }
    v
}

/// Apply in the child. Errors name the resource.
pub fn apply(list: &[(Resource, u64, u64)]) -> Result<(), String> {
    for &(r, soft, hard) in list {
        setrlimit(r, soft, hard).map_err(|e| format!("setting {r:?}: {e}"))?;
    }
    Ok(())
}

/// Choose the mechanism for `processes`. As root, create a pids cgroup (v1
/// hierarchy or a writable v2 one); elsewhere RLIMIT_NPROC. Err: no mechanism.
pub fn processes(l: &Limits, root: bool) -> Result<Processes, String> {
    let Some(max) = l.processes else {
        return Ok(Processes::None);
    };
    if !root {
        return Ok(Processes::Rlimit(max));
    }
    let name = format!("cordon-{}", std::process::id());
    let mut tried = Vec::new();
    for base in PIDS_BASES.map(Path::new) {
        if let Err(why) = pids_hierarchy(base) {
            if !why.is_empty() {
                tried.push(format!("{}: {why}", base.display()));
            }
            continue;
        }
        let dir = base.join(&name);
        match create(&dir, max) {
            Ok(()) => {
                let procs = CString::new(
                    dir.join("cgroup.procs")
                        .into_os_string()
                        .into_encoded_bytes(),
                )
                .map_err(|e| e.to_string())?;
                return Ok(Processes::Cgroup { dir, procs, max });
            }
            Err(e) => tried.push(format!("{}: {e}", dir.display())),
        }
    }
    Err(format!(
        "no writable pids cgroup for the process limit as root ({})",
        if tried.is_empty() {
            "none mounted".into()
        } else {
            tried.join("; ")
        }
    ))
}

fn create(dir: &Path, max: u64) -> io::Result<()> {
    match std::fs::create_dir(dir) {
        // Left by an earlier launcher with our pid that could not clean up (it was
        // killed): empty, so removable; one still in use is never adopted.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_dir(dir)?;
            std::fs::create_dir(dir)?;
        }
        r => r?,
    }
    std::fs::write(dir.join("pids.max"), max.to_string()).inspect_err(|_| {
        let _ = std::fs::remove_dir(dir);
    })
}

/// Where a pids cgroup may be made: the v1 hierarchy, a hybrid v2 one, a pure v2 one.
const PIDS_BASES: [&str; 3] = [
    "/sys/fs/cgroup/pids",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup",
];

/// Whether `base` is a cgroup hierarchy whose children get the pids controller.
/// Err("") when it is no cgroup hierarchy at all.
fn pids_hierarchy(base: &Path) -> Result<(), String> {
    if !base.join("cgroup.procs").exists() {
        return Err(String::new());
    }
    // cgroup v2 needs the pids controller enabled for children of this level.
    let v2 = base.join("cgroup.subtree_control");
    if v2.exists()
        && !std::fs::read_to_string(&v2)
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == "pids")
    {
        return Err("pids controller not enabled".into());
    }
    Ok(())
}

/// Where the launcher could create a pids cgroup, for `doctor` (nothing is created).
pub fn pids_cgroup_base() -> Option<&'static str> {
    PIDS_BASES.into_iter().find(|b| {
        let base = Path::new(b);
        pids_hierarchy(base).is_ok()
            && nix::unistd::access(base, nix::unistd::AccessFlags::W_OK).is_ok()
    })
}

/// Move the calling process into the cgroup (in the child, before it forks).
pub fn join(procs: &CString) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    let path = Path::new(std::ffi::OsStr::from_bytes(procs.as_bytes()));
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(b"0"))
        .map_err(|e| format!("joining the pids cgroup {}: {e}", path.display()))
}

/// Remove the cgroup after the run. Every process of the payload has exited by
/// now, but init may still be in its own exit (its mount namespace's teardown
/// comes before it leaves the cgroup), and until then the removal fails with
/// EBUSY: wait for it, a few ms at most, rather than leave the cgroup behind.
pub fn cleanup(p: &Processes) {
    let Processes::Cgroup { dir, .. } = p else {
        return;
    };
    for _ in 0..2000 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(1))
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A cgroup left by a launcher that was killed, with the pid we now have,
    /// must not make the run fail: it is empty, so it is removed and made again.
    #[test]
    fn a_stale_cgroup_of_the_same_name_is_replaced() {
        let base = match pids_cgroup_base() {
            Some(b) if nix::unistd::geteuid().is_root() => Path::new(b),
            _ => {
                return crate::testing::skip(
                    "a_stale_cgroup_of_the_same_name_is_replaced",
                    "needs root and a writable pids cgroup hierarchy",
                );
            }
        };
        let dir = base.join(format!("cordon-test-stale-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let made = create(&dir, 7);
        let max = std::fs::read_to_string(dir.join("pids.max"));
        cleanup(&Processes::Cgroup {
            dir: dir.clone(),
            procs: CString::default(),
            max: 7,
        });
        made.unwrap();
        assert_eq!(max.unwrap().trim(), "7");
        assert!(!dir.exists(), "cleanup removes it");
    }

    #[test]
    fn core_is_always_off_and_memory_is_data() {
        let l = Limits {
            memory: Some(1 << 30),
            cpu: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        let v = rlimits(&l, &Processes::Rlimit(10));
        assert_eq!(v[0], (Resource::RLIMIT_CORE, 0, 0));
        assert!(v.contains(&(Resource::RLIMIT_DATA, 1 << 30, 1 << 30)));
        assert!(!v.iter().any(|(r, _, _)| *r == Resource::RLIMIT_AS));
        assert!(v.contains(&(Resource::RLIMIT_NPROC, 10, 10)));
        assert!(v.contains(&(Resource::RLIMIT_CPU, 60, 62)));
    }
}
