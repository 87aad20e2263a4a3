//! Resource limits: rlimits (core dumps always off; memory as RLIMIT_DATA so
//! JIT runtimes that reserve address space keep working), the process count,
//! which needs a pids cgroup when the launcher runs as root (root bypasses
//! RLIMIT_NPROC, and RLIMIT_NPROC counts the uid's processes host-wide), and
//! the memory limit's cgroup: RLIMIT_DATA does not count shared mappings,
//! memfds or tmpfs files, a memory cgroup counts every page the run touches.
//!
//! Owns choosing, creating, joining and removing the run's cgroups. Does not
//! decide the limits (policy.rs) nor warn (the plan's warnings, via sandbox.rs).

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::policy::{LimitSource, Limits};

/// How the `processes` limit is enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processes {
    None,
    /// RLIMIT_NPROC: in a user namespace it counts the sandbox's own processes.
    Rlimit(u64),
    /// A pids cgroup the launcher created (and removes after the run).
    Cgroup {
        dir: PathBuf,
        /// The file the child writes itself into (see [`join_file`]).
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

/// How the `memory` limit is enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Memory {
    None,
    /// RLIMIT_DATA alone: shared anonymous mappings, memfds and tmpfs files
    /// (`/dev/shm`) are not counted. `why`: no memory cgroup could be made.
    Partial {
        max: u64,
        why: String,
    },
    /// A memory cgroup of the run (no swap), beside RLIMIT_DATA.
    Cgroup {
        dir: PathBuf,
        /// The file the child writes itself into (see [`join_file`]).
        procs: CString,
        max: u64,
    },
}

impl Memory {
    pub fn describe(&self) -> String {
        match self {
            Memory::None => "none".into(),
            Memory::Partial { max, why } => format!(
                "{max} bytes as RLIMIT_DATA only: shared mappings, memfds and /dev/shm are not counted ({why})"
            ),
            Memory::Cgroup { dir, max, .. } => {
                format!("{max} bytes (memory cgroup {}, no swap)", dir.display())
            }
        }
    }

    /// The warning a partial limit gets, once per run.
    pub fn warning(&self) -> Option<String> {
        match self {
            Memory::Partial { why, .. } => Some(format!(
                "[limits] memory is partial here: RLIMIT_DATA does not count shared mappings, memfds or /dev/shm ({why})"
            )),
            _ => None,
        }
    }
}

/// Choose the mechanism for `memory`: a memory cgroup below the launcher's own
/// (v1, or v2 where the memory controller is enabled for children there: as
/// root, or in a delegated subtree), else RLIMIT_DATA alone, said to be partial.
pub fn memory(l: &Limits) -> Memory {
    let Some(max) = l.memory else {
        return Memory::None;
    };
    let name = format!("cordon-{}", std::process::id());
    let mut tried = Vec::new();
    for (base, v2) in memory_bases() {
        let dir = base.join(&name);
        match create_memory(&dir, max, v2) {
            Ok(()) => match CString::new(join_file(&dir, v2).into_os_string().into_encoded_bytes())
            {
                Ok(procs) => {
                    sweep(&dir);
                    return Memory::Cgroup { dir, procs, max };
                }
                Err(e) => tried.push(e.to_string()),
            },
            Err(e) => tried.push(format!("{}: {e}", dir.display())),
        }
    }
    let why = if tried.is_empty() {
        "no memory cgroup controller available to this user".into()
    } else {
        tried.join("; ")
    };
    Memory::Partial { max, why }
}

/// Where a memory cgroup of the run may be made: below the launcher's own
/// cgroup, so the run stays inside whatever limits the caller has. (v2: true.)
fn memory_bases() -> Vec<(PathBuf, bool)> {
    // Asked twice per launch (Host::probe, then memory): the answer does not change.
    static BASES: std::sync::OnceLock<Vec<(PathBuf, bool)>> = std::sync::OnceLock::new();
    BASES.get_or_init(find_memory_bases).clone()
}

fn find_memory_bases() -> Vec<(PathBuf, bool)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut out = Vec::new();
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if ctrl.split(',').any(|c| c == "memory") {
            let base = Path::new("/sys/fs/cgroup/memory").join(rel);
            if base.join("memory.limit_in_bytes").exists() {
                out.push((base, false));
            }
        } else if ctrl.is_empty() {
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let base = Path::new(root).join(rel);
                let enabled = std::fs::read_to_string(base.join("cgroup.subtree_control"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .any(|c| c == "memory");
                if enabled {
                    out.push((base, true));
                }
            }
        }
    }
    out
}

fn create_memory(dir: &Path, max: u64, v2: bool) -> io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_dir(dir)?;
            std::fs::create_dir(dir)?;
        }
        r => r?,
    }
    let set = |file: &str, v: &str| std::fs::write(dir.join(file), v);
    let r = if v2 {
        set("memory.max", &max.to_string()).and_then(|()| {
            // No swap: pages swapped out would leave the limit. Absent without swap accounting.
            match set("memory.swap.max", "0") {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        })
    } else {
        set("memory.limit_in_bytes", &max.to_string()).and_then(|()| {
            match set("memory.memsw.limit_in_bytes", &max.to_string()) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        })
    };
    r.inspect_err(|_| {
        let _ = std::fs::remove_dir(dir);
    })
}

/// Where the launcher could create a memory cgroup, for `doctor` (nothing is created).
pub fn memory_cgroup_base() -> Option<PathBuf> {
    memory_bases()
        .into_iter()
        .map(|(b, _)| b)
        .find(|b| nix::unistd::access(b, nix::unistd::AccessFlags::W_OK).is_ok())
}

/// What [`make`] made: the process limit's mechanism (an error when it has
/// none) and the memory cgroup.
pub type Made = (Result<Processes, String>, Memory);

/// Make the run's cgroups for `l` (the limits `effective` left): the pids
/// cgroup as root, the memory cgroup where one can be had.
pub fn make(l: &Limits, root: bool) -> Made {
    let memory = memory(l);
    if root && !matches!(&memory, Memory::Cgroup { procs, .. } if is_v2(procs)) {
        return (processes(l, true), memory);
    }
    with_processes(memory, l.processes, root)
}

/// The process limit beside `memory`, made: on cgroup v2 in the memory cgroup itself.
fn with_processes(memory: Memory, max: Option<u64>, root: bool) -> Made {
    let processes = match (&memory, max) {
        (_, _) if !root => Ok(Processes::None),
        (_, None) => Ok(Processes::None),
        // cgroup v2: a process is in one cgroup of the hierarchy, so a pids
        // cgroup beside the memory one would hold the run only until init
        // joined the other (and at the root of a container both have the same
        // name): the memory cgroup takes the process limit too.
        (Memory::Cgroup { dir, procs, .. }, Some(max)) if is_v2(procs) => {
            match std::fs::write(dir.join("pids.max"), max.to_string()) {
                Ok(()) => Ok(Processes::Cgroup {
                    dir: dir.clone(),
                    procs: procs.clone(),
                    max,
                }),
                Err(e) => Err(format!(
                    "the memory cgroup {} (cgroup v2) cannot take the process limit, and a second cgroup of the same hierarchy cannot hold the run too: {e} (the pids controller is not enabled for it)",
                    dir.display()
                )),
            }
        }
        // Not reached: make takes the other cases.
        _ => Ok(Processes::None),
    };
    (processes, memory)
}

/// Whether a join file is a cgroup v2 one (see [`join_file`]).
fn is_v2(procs: &std::ffi::CStr) -> bool {
    procs.to_bytes().ends_with(b"/cgroup.procs")
}

/// What this host can enforce, for [`effective`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    pub root: bool,
    pub namespaces: bool,
    pub pids_cgroup: bool,
    pub memory_cgroup: bool,
    /// The memory cgroup would be a v2 one; it then holds the process limit
    /// too, which needs the pids controller there (`pids_with_memory`).
    pub memory_v2: bool,
    pub pids_with_memory: bool,
}

impl Host {
    pub fn probe(root: bool, namespaces: bool) -> Host {
        let memory = memory_bases()
            .into_iter()
            .find(|(b, _)| nix::unistd::access(b, nix::unistd::AccessFlags::W_OK).is_ok());
        let (memory_v2, pids_with_memory) = match &memory {
            Some((base, true)) => (
                true,
                std::fs::read_to_string(base.join("cgroup.subtree_control"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .any(|c| c == "pids"),
            ),
            _ => (false, false),
        };
        Host {
            root,
            namespaces,
            pids_cgroup: pids_cgroup_base().is_some(),
            memory_cgroup: memory.is_some(),
            memory_v2,
            pids_with_memory,
        }
    }
}

/// The limits to enforce: a built-in default that cannot be enforced as it
/// means here is left out, with a note saying so (shown by `-v` and `doctor`,
/// and in the report's `enforced.missing`). A limit the user's profile sets is
/// kept, and enforced or refused as before.
pub fn effective(l: &Limits, host: Host) -> (Limits, Vec<String>) {
    let mut out = *l;
    let mut notes = Vec::new();
    // A memory cgroup on cgroup v2 takes the process limit too (see make).
    let shared_v2 = l.memory.is_some() && host.memory_cgroup && host.memory_v2;
    if let (Some(n), LimitSource::Builtin) = (l.processes, l.processes_from) {
        let why = if host.root && shared_v2 && !host.pids_with_memory {
            Some(
                "root bypasses RLIMIT_NPROC, and the memory cgroup (cgroup v2) that holds the run does not have the pids controller",
            )
        } else if host.root && !shared_v2 && !host.pids_cgroup {
            Some("root bypasses RLIMIT_NPROC and no pids cgroup is writable")
        } else if !host.root && !host.namespaces {
            Some(
                "without a user namespace RLIMIT_NPROC counts every process of the user on the host",
            )
        } else {
            None
        };
        if let Some(why) = why {
            out.processes = None;
            notes.push(format!(
                "built-in default processes = {n} not enforced here: {why}"
            ));
        }
    }
    if let (Some(n), LimitSource::Builtin) = (l.memory, l.memory_from) {
        if !host.memory_cgroup {
            out.memory = None;
            notes.push(format!(
                "built-in default memory = {} not enforced here: it needs a memory cgroup (RLIMIT_DATA alone does not count shared memory)",
                crate::units::format_size(n)
            ));
        }
    }
    (out, notes)
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
        let v2 = match pids_hierarchy(base) {
            Ok(v2) => v2,
            Err(why) => {
                if !why.is_empty() {
                    tried.push(format!("{}: {why}", base.display()));
                }
                continue;
            }
        };
        let dir = base.join(&name);
        match create(&dir, max) {
            Ok(()) => {
                let procs = CString::new(join_file(&dir, v2).into_os_string().into_encoded_bytes())
                    .map_err(|e| e.to_string())?;
                sweep(&dir);
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

/// Whether `base` is a cgroup hierarchy whose children get the pids controller,
/// and whether it is v2. Err("") when it is no cgroup hierarchy at all.
fn pids_hierarchy(base: &Path) -> Result<bool, String> {
    if !base.join("cgroup.procs").exists() {
        return Err(String::new());
    }
    // cgroup v2 needs the pids controller enabled for children of this level.
    let control = base.join("cgroup.subtree_control");
    let v2 = control.exists();
    if v2
        && !std::fs::read_to_string(&control)
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == "pids")
    {
        return Err("pids controller not enabled".into());
    }
    Ok(v2)
}

/// Where the launcher could create a pids cgroup, for `doctor` (nothing is created).
pub fn pids_cgroup_base() -> Option<&'static str> {
    PIDS_BASES.into_iter().find(|b| {
        let base = Path::new(b);
        pids_hierarchy(base).is_ok()
            && nix::unistd::access(base, nix::unistd::AccessFlags::W_OK).is_ok()
    })
}

/// The file through which the child moves itself into the cgroup `dir`. On a
/// v1 hierarchy (`v2` false), `tasks`: it moves the calling thread alone, which takes no
/// global lock, whereas `cgroup.procs` moves the whole thread group under the
/// write side of cgroup_threadgroup_rwsem, which waits for an RCU grace period
/// (5 to 15 ms here, in one launch of three) unless the hierarchy is mounted
/// with favordynmods. The child is single-threaded when it joins (init when
/// the launcher hands it the run's cgroups, before it forks the payload; the
/// payload right after its fork), so both move the same.
/// A v2 domain cgroup has only `cgroup.procs`.
fn join_file(dir: &Path, v2: bool) -> PathBuf {
    dir.join(if v2 { "cgroup.procs" } else { "tasks" })
}

/// Move the calling process, single-threaded, into the cgroup whose
/// cgroup.procs (v1: tasks) file `procs` the launcher opened (in the child,
/// before it forks; the kernel checks the opener's credentials).
pub fn join_fd(procs: std::os::fd::OwnedFd, path: &str) -> Result<(), String> {
    use std::io::Write;
    std::fs::File::from(procs)
        .write_all(b"0")
        .map_err(|e| format!("joining the cgroup {path}: {e}"))
}

/// Remove the cgroup after the run. Every process of the payload has exited by
/// now, but init may still be in its own exit (its mount namespace's teardown
/// comes before it leaves the cgroup), and until then the removal fails with
/// EBUSY: wait for it, a few ms at most, rather than leave the cgroup behind.
pub fn cleanup(p: &Processes) {
    if let Processes::Cgroup { dir, .. } = p {
        remove(dir);
    }
}

/// Remove the memory cgroup after the run, as [`cleanup`].
pub fn cleanup_memory(m: &Memory) {
    if let Memory::Cgroup { dir, .. } = m {
        remove(dir);
    }
}

/// Remove the run's cgroup `dir`.
fn remove(dir: &Path) {
    remove_one(dir);
}

/// Remove the empty cgroups beside `ours` of launchers that are gone (killed
/// before they could remove theirs, e.g. by SIGKILL): a cgroup named after a
/// pid that no longer runs belongs to nobody, and rmdir removes only an empty
/// one. Done when the run's own cgroup is made (while the child is held, see
/// sandbox::spawn), not when it is removed, which the user waits for.
fn sweep(ours: &Path) {
    let Some(parent) = ours.parent() else { return };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("cordon-"))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        );
        if gone && pid > 0 && e.path() != ours {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

fn remove_one(dir: &Path) {
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

    /// As root with a memory controller: the run's cgroup is made below ours
    /// with the limit and no swap, and removed again.
    #[test]
    fn memory_cgroup_is_made_below_ours_and_removed() {
        if !nix::unistd::geteuid().is_root() || memory_cgroup_base().is_none() {
            return crate::testing::skip(
                "memory_cgroup_is_made_below_ours_and_removed",
                "needs root and a memory cgroup controller",
            );
        }
        let l = Limits {
            memory: Some(256 << 20),
            ..Default::default()
        };
        let m = memory(&l);
        let Memory::Cgroup { dir, max, .. } = &m else {
            panic!("{m:?}");
        };
        assert_eq!(*max, 256 << 20);
        let limit = std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
            .or_else(|_| std::fs::read_to_string(dir.join("memory.max")))
            .unwrap();
        cleanup_memory(&m);
        assert_eq!(limit.trim(), (256u64 << 20).to_string());
        assert!(!dir.exists(), "cleanup removes it");
        assert!(m.warning().is_none());
        let p = Memory::Partial {
            max: 1,
            why: "x".into(),
        };
        assert!(p.warning().unwrap().contains("partial"));
    }

    #[test]
    fn builtin_defaults_are_enforced_where_they_can_be() {
        let l = Limits {
            memory: Some(8 << 30),
            processes: Some(4096),
            memory_from: LimitSource::Builtin,
            processes_from: LimitSource::Builtin,
            ..Default::default()
        };
        let all = Host {
            root: true,
            namespaces: true,
            pids_cgroup: true,
            memory_cgroup: true,
            memory_v2: false,
            pids_with_memory: false,
        };
        assert_eq!(effective(&l, all), (l, vec![]));
        let bare_root = Host {
            pids_cgroup: false,
            memory_cgroup: false,
            ..all
        };
        let (e, notes) = effective(&l, bare_root);
        assert_eq!((e.processes, e.memory), (None, None));
        assert_eq!(notes.len(), 2, "{notes:?}");
        // Unprivileged: RLIMIT_NPROC holds in a user namespace, not without one.
        let user = Host {
            root: false,
            ..bare_root
        };
        assert_eq!(effective(&l, user).0.processes, Some(4096));
        let user_no_ns = Host {
            namespaces: false,
            ..user
        };
        assert_eq!(effective(&l, user_no_ns).0.processes, None);
        // The user's own limits are never left out.
        let mine = Limits {
            memory_from: LimitSource::Profile,
            processes_from: LimitSource::Profile,
            ..l
        };
        assert_eq!(effective(&mine, bare_root), (mine, vec![]));
        // cgroup v2: the memory cgroup holds the process limit too, so it is
        // enforced only where that cgroup has the pids controller, whatever
        // pids cgroup could be made elsewhere in the hierarchy.
        let v2 = Host {
            memory_v2: true,
            pids_with_memory: true,
            pids_cgroup: false,
            ..all
        };
        assert_eq!(effective(&l, v2), (l, vec![]));
        let v2_no_pids = Host {
            pids_with_memory: false,
            pids_cgroup: true,
            ..v2
        };
        let (e, notes) = effective(&l, v2_no_pids);
        assert_eq!((e.processes, e.memory), (None, Some(8 << 30)));
        assert!(notes[0].contains("pids controller"), "{notes:?}");
        // Without a memory limit the pids cgroup is the run's only one.
        let no_memory = Limits { memory: None, ..l };
        assert_eq!(effective(&no_memory, v2_no_pids).0.processes, Some(4096));
    }

    /// cgroup v2 (a directory standing in for the hierarchy): one cgroup holds
    /// both limits, and init is told to join it once. Before, the pids cgroup
    /// and the memory cgroup had the same name at a container's root: the
    /// second was made by removing the first, and the process limit was lost.
    #[test]
    fn on_cgroup_v2_one_cgroup_holds_both_limits() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("cordon-1");
        std::fs::create_dir(&dir).unwrap();
        let procs =
            CString::new(join_file(&dir, true).into_os_string().into_encoded_bytes()).unwrap();
        assert!(is_v2(&procs) && !is_v2(c"/sys/fs/cgroup/pids/cordon-1/tasks"));
        let memory = Memory::Cgroup {
            dir: dir.clone(),
            procs: procs.clone(),
            max: 1 << 30,
        };
        let (p, _) = with_processes(memory.clone(), Some(64), true);
        assert_eq!(
            p.unwrap(),
            Processes::Cgroup {
                dir: dir.clone(),
                procs: procs.clone(),
                max: 64
            }
        );
        assert_eq!(std::fs::read_to_string(dir.join("pids.max")).unwrap(), "64");
        // Without the pids controller there (no pids.max to write): refused, not split.
        let gone = Memory::Cgroup {
            dir: d.path().join("absent"),
            procs,
            max: 1 << 30,
        };
        let err = with_processes(gone, Some(64), true).0.unwrap_err();
        assert!(err.contains("cannot take the process limit"), "{err}");
    }

    /// A cgroup left by a launcher that was killed is removed by the next run's cleanup.
    #[test]
    fn cgroups_of_dead_launchers_are_swept() {
        let base = match pids_cgroup_base() {
            Some(b) if nix::unistd::geteuid().is_root() => Path::new(b),
            _ => {
                return crate::testing::skip(
                    "cgroups_of_dead_launchers_are_swept",
                    "needs root and a writable pids cgroup hierarchy",
                );
            }
        };
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = base.join(format!("cordon-{dead}"));
        let ours = base.join(format!("cordon-test-sweep-{}", std::process::id()));
        let _ = std::fs::create_dir(&stale);
        std::fs::create_dir(&ours).unwrap();
        let alive = base.join(format!("cordon-{}", std::process::id()));
        let _ = std::fs::create_dir(&alive);
        sweep(&ours);
        cleanup(&Processes::Cgroup {
            dir: ours.clone(),
            procs: CString::default(),
            max: 1,
        });
        let alive_kept = alive.exists();
        let _ = std::fs::remove_dir(&alive);
        assert!(
            !ours.exists() && !stale.exists(),
            "ours and the dead launcher's go"
        );
        assert!(alive_kept, "a live launcher's stays");
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
