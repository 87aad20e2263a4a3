//! What holds without namespaces (and is proved the same with them): calls on
//! another process (prlimit, renice, taskset, ionice, chrt) reach only the
//! run's own processes; SysV IPC is not the host's; setuid and setgid bits are
//! never set; metadata outside the writable roots does not change, also when a
//! thread swaps a symlink under a chmod; and `[limits] memory` counts shared
//! mappings, memfds and /dev/shm where a memory cgroup can be had, and says it
//! is partial where not.
mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use support::*;

/// A host process of `user`, outside the sandbox, killed and reaped on drop.
struct HostSleep(Child);

impl HostSleep {
    fn start(user: User) -> HostSleep {
        let mut c = match user {
            User::Root => Command::new("sleep"),
            User::Nobody => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "sleep"]);
                c
            }
        };
        let child = c
            .arg("60")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        HostSleep(child)
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for HostSleep {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the calls under test could change in process `pid`: its open-file
/// limit, nice value, scheduling policy, CPU affinity and I/O priority.
fn process_state(pid: i32) -> Vec<String> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<String> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ionice = Command::new("ionice")
        .args(["-p", &pid.to_string()])
        .output()
        .unwrap();
    vec![
        limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .to_string(),
        // Fields 19 (nice) and 41 (policy) of stat; the first after ')' is field 3.
        format!("nice {}", fields[16]),
        format!("policy {}", fields[38]),
        status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list"))
            .unwrap()
            .to_string(),
        text(&ionice.stdout),
    ]
}

/// Each command on pid P (outside) and C (the payload's own child), one line each: `who status command`.
/// (The child's file limit stays roomy: it may still be loading its libraries.)
const PROCESS_CALLS: &str = r#"
for c in "prlimit --pid $P --nofile=3:3" "renice -n 5 -p $P" "taskset -p 1 $P" "ionice -c 3 -p $P" "chrt -b -p 0 $P" "renice -n 6 -g 0" "ionice -c 3 -P 0"; do
    $c >/dev/null 2>&1; echo "outside $? $c"
done
sleep 30 & C=$!
for c in "prlimit --pid $C --nofile=40:40" "renice -n 5 -p $C" "taskset -p 1 $C" "ionice -c 3 -p $C" "chrt -b -p 0 $C"; do
    $c >/dev/null 2>&1; echo "own $? $c"
done
grep -q ' 40  *40  *files' /proc/$C/limits && echo "limit set on our own child"
kill $C
"#;

#[test]
fn outside_processes_keep_their_limits_and_priority() {
    for user in users("outside_processes_keep_their_limits_and_priority") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let host = HostSleep::start(user);
            let before = process_state(host.pid());
            let ws = tempdir(user);
            let p = ns_profile("workspace-write", ns);
            let script = format!("P={}\n{PROCESS_CALLS}", host.pid());
            let out = run_sh(user, &p, ws.path(), &script);
            let got = text(&out.stdout);
            let outside: Vec<&str> = got.lines().filter(|l| l.starts_with("outside")).collect();
            let own: Vec<&str> = got.lines().filter(|l| l.starts_with("own ")).collect();
            assert_eq!(outside.len(), 7, "{ctx}: {got}\n{}", text(&out.stderr));
            assert_eq!(own.len(), 5, "{ctx}: {got}\n{}", text(&out.stderr));
            for l in outside {
                assert!(
                    !l.starts_with("outside 0 "),
                    "{ctx}: worked on the host: {l}"
                );
            }
            for l in own {
                assert!(
                    l.starts_with("own 0 "),
                    "{ctx}: refused on our own child: {l}"
                );
            }
            assert!(got.contains("limit set on our own child"), "{ctx}: {got}");
            assert_eq!(
                process_state(host.pid()),
                before,
                "{ctx}: the host process changed"
            );
        }
    }
}

/// ipcmk's id of a new shared memory segment, removed on drop.
struct HostSegment(String);

impl HostSegment {
    fn create(user: User) -> HostSegment {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", user.uid()))
            .arg(format!("--regid={}", user.uid()))
            .args(["--clear-groups", "ipcmk", "-M", "4096"]);
        let out = c.output().unwrap();
        let s = text(&out.stdout);
        let id = s
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_else(|| panic!("ipcmk: {s}"))
            .to_string();
        assert!(id.parse::<i32>().is_ok(), "ipcmk said {s:?}");
        HostSegment(id)
    }
}

impl Drop for HostSegment {
    fn drop(&mut self) {
        let _ = Command::new("ipcrm").args(["-m", &self.0]).status();
    }
}

/// The shared memory ids of the host (as root every one is listed).
fn host_shm_ids() -> Vec<String> {
    std::fs::read_to_string("/proc/sysvipc/shm")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

const SYSV: &str = r#"
import ctypes, errno, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
r = libc.shmat(int(sys.argv[1]), None, 0)
print("attach", "ok" if r not in (None, 2**64 - 1) else errno.errorcode[ctypes.get_errno()])
made = libc.shmget(0, 4096, 0o1600)
print("create", "ok" if made >= 0 else errno.errorcode[ctypes.get_errno()])
keys = [l.split()[0] for l in open("/proc/sysvipc/shm").read().splitlines()[1:]]
print("visible keys", " ".join(keys))
"#;

#[test]
fn sysv_ipc_is_not_the_hosts() {
    for user in users("sysv_ipc_is_not_the_hosts") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let seg = HostSegment::create(user);
            let ws = tempdir(user);
            std::fs::write(ws.path().join("sysv.py"), SYSV).unwrap();
            let before = host_shm_ids();
            let p = ns_profile("workspace-write", ns);
            let out = run_sh(user, &p, ws.path(), &format!("{PYTHON} sysv.py {}", seg.0));
            assert_code(&out, 0, &ctx);
            let got = text(&out.stdout);
            assert!(
                !got.contains("attach ok"),
                "{ctx}: attached the host's segment: {got}"
            );
            assert_eq!(before, host_shm_ids(), "{ctx}: a segment outlived the run");
            match ns {
                Ns::Auto => {
                    // The private IPC namespace: only the sandbox's own segment
                    // (IPC_PRIVATE, key 0; ipcmk's has a random key).
                    assert!(got.contains("attach EINVAL"), "{ctx}: {got}");
                    assert!(got.contains("create ok"), "{ctx}: {got}");
                    assert!(got.contains("visible keys 0\n"), "{ctx}: {got}");
                }
                Ns::Off => {
                    assert!(got.contains("attach ENOSYS"), "{ctx}: {got}");
                    assert!(got.contains("create ENOSYS"), "{ctx}: {got}");
                }
            }
        }
    }
}

const SETID: &str = r#"
import errno, os
def attempt(name, f):
    try:
        f()
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
open("f", "w").close()
attempt("chmod-4755", lambda: os.chmod("f", 0o4755))
attempt("chmod-2755", lambda: os.chmod("f", 0o2755))
fd = os.open("f", os.O_RDONLY)
attempt("fchmod-6755", lambda: os.fchmod(fd, 0o6755))
attempt("create-4755", lambda: os.close(os.open("g", os.O_CREAT | os.O_WRONLY, 0o4755)))
attempt("mknod-2755", lambda: os.mknod("h", 0o102755))
attempt("chmod-755", lambda: os.chmod("f", 0o755))
"#;

#[test]
fn setuid_and_setgid_bits_are_never_set() {
    for user in users("setuid_and_setgid_bits_are_never_set") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let ws = tempdir(user);
            std::fs::write(ws.path().join("setid.py"), SETID).unwrap();
            let p = ns_profile("workspace-write", ns);
            let out = run_sh(user, &p, ws.path(), &format!("{PYTHON} setid.py"));
            assert_code(&out, 0, &ctx);
            let got = text(&out.stdout);
            for want in [
                "chmod-4755 EPERM",
                "chmod-2755 EPERM",
                "fchmod-6755 EPERM",
                "create-4755 EPERM",
                "mknod-2755 EPERM",
                "chmod-755 ok",
            ] {
                assert!(got.contains(want), "{ctx}: want {want} in:\n{got}");
            }
            for name in ["f", "g", "h"] {
                if let Ok(m) = std::fs::metadata(ws.path().join(name)) {
                    assert_eq!(m.mode() & 0o6000, 0, "{ctx}: {name} has a setid bit");
                }
            }
            assert_eq!(
                std::fs::metadata(ws.path().join("f")).unwrap().mode() & 0o7777,
                0o755,
                "{ctx}"
            );
        }
    }
}

const METADATA: &str = r#"
import errno, os, sys
def attempt(name, f):
    try:
        f()
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
for tag, p in zip(["outside", "denied", "inside"], sys.argv[1:]):
    attempt(tag + " chmod", lambda: os.chmod(p, 0o604))
    attempt(tag + " chown", lambda: os.chown(p, os.getuid(), os.getgid()))
    attempt(tag + " utime", lambda: os.utime(p, (1, 1)))
    attempt(tag + " xattr", lambda: os.setxattr(p, "user.cordon", b"1"))
"#;

/// What the payload could change about `p`: mode, owner, times, the test xattr.
fn file_state(p: &Path) -> (u32, u32, i64, Option<Vec<u8>>) {
    let m = std::fs::metadata(p).unwrap();
    let x = Command::new(PYTHON)
        .args([
            "-c",
            "import os,sys\ntry: print(os.getxattr(sys.argv[1], 'user.cordon'))\nexcept OSError: pass",
        ])
        .arg(p)
        .output()
        .unwrap();
    (m.mode(), m.uid(), m.mtime(), Some(x.stdout))
}

/// Whether this file system takes user xattrs (then the inside one must work).
fn xattrs_work(dir: &Path) -> bool {
    let f = dir.join(".xattr-probe");
    std::fs::write(&f, "").unwrap();
    let ok = Command::new(PYTHON)
        .args([
            "-c",
            "import os,sys; os.setxattr(sys.argv[1], 'user.t', b'1')",
        ])
        .arg(&f)
        .status()
        .unwrap()
        .success();
    let _ = std::fs::remove_file(&f);
    ok
}

fn outside_files(user: User) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempdir(user);
    let plain = dir.path().join("plain");
    let secret = dir.path().join("secret");
    for f in [&plain, &secret] {
        std::fs::write(f, "x\n").unwrap();
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    chown_r(dir.path(), user);
    (dir, plain, secret)
}

/// Writable: the workspace only (not /tmp, where the test's other directories live).
fn ws_only_profile(name: &str, deny: &Path, ns: Ns) -> String {
    profile_ns(
        name,
        &format!(
            "extends = \"read-only\"\n[filesystem]\nwrite = [\"${{WORKSPACE}}\"]\ndeny = [\"{}\"]\n",
            deny.display()
        ),
        ns,
    )
}

#[test]
fn metadata_outside_writable_roots_does_not_change() {
    for user in users("metadata_outside_writable_roots_does_not_change") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let (_out_dir, plain, secret) = outside_files(user);
            let ws = tempdir(user);
            let mine = ws.path().join("mine");
            std::fs::write(&mine, "x\n").unwrap();
            std::fs::write(ws.path().join("meta.py"), METADATA).unwrap();
            chown_r(ws.path(), user);
            let before = [file_state(&plain), file_state(&secret)];
            let p = ws_only_profile("metadata", &secret, ns);
            let script = format!(
                "{PYTHON} meta.py {} {} {}",
                plain.display(),
                secret.display(),
                mine.display()
            );
            let out = run_sh(user, &p, ws.path(), &script);
            assert_code(&out, 0, &ctx);
            let got = text(&out.stdout);
            let refused = match ns {
                Ns::Auto => "EROFS",
                Ns::Off => "EPERM",
            };
            for tag in ["outside", "denied"] {
                for op in ["chmod", "chown", "utime", "xattr"] {
                    let line = format!("{tag} {op} ");
                    let l = got.lines().find(|l| l.starts_with(&line)).unwrap_or("");
                    assert!(
                        l.ends_with(refused) || (tag == "denied" && l.ends_with("EACCES")),
                        "{ctx}: {line}: {l}\n{got}"
                    );
                }
            }
            for op in ["chmod", "chown", "utime"] {
                assert!(
                    got.contains(&format!("inside {op} ok")),
                    "{ctx}: {op}\n{got}"
                );
            }
            if xattrs_work(ws.path()) {
                assert!(got.contains("inside xattr ok"), "{ctx}\n{got}");
            }
            assert_eq!(
                [file_state(&plain), file_state(&secret)],
                before,
                "{ctx}: an outside file changed"
            );
            let m = std::fs::metadata(&mine).unwrap();
            assert_eq!((m.mode() & 0o777, m.mtime()), (0o604, 1), "{ctx}");
        }
    }
}

/// One thread swaps `link` between a file inside and one outside; the main
/// thread chmods `link` all the while.
const RACE: &str = r#"
import os, sys, threading, time
inside, outside = sys.argv[1], sys.argv[2]
stop = time.time() + 1.5
def flip():
    i = 0
    while time.time() < stop:
        tmp = "l.tmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(outside if i % 2 else inside, tmp)
        os.replace(tmp, "link")
        i += 1
os.symlink(inside, "link")
t = threading.Thread(target=flip)
t.start()
n = ok = 0
while time.time() < stop:
    try:
        os.chmod("link", 0o666 if n % 2 else 0o600)
        ok += 1
    except OSError:
        pass
    n += 1
t.join()
print("tries", n, "ok", ok)
"#;

#[test]
fn a_symlink_swapped_under_chmod_never_reaches_outside() {
    for user in users("a_symlink_swapped_under_chmod_never_reaches_outside") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let (_out_dir, plain, secret) = outside_files(user);
            let ws = tempdir(user);
            let inside = ws.path().join("inside");
            std::fs::write(&inside, "x\n").unwrap();
            std::fs::write(ws.path().join("race.py"), RACE).unwrap();
            chown_r(ws.path(), user);
            let p = ws_only_profile("race", &secret, ns);
            let script = format!("{PYTHON} race.py {} {}", inside.display(), plain.display());
            let out = run_sh(user, &p, ws.path(), &script);
            assert_code(&out, 0, &ctx);
            let got = text(&out.stdout);
            let ok: u64 = got
                .split_whitespace()
                .nth(3)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(ok > 0, "{ctx}: no chmod of the inside file worked: {got}");
            assert_eq!(
                std::fs::metadata(&plain).unwrap().mode() & 0o7777,
                0o640,
                "{ctx}: the outside file's mode changed ({got})"
            );
        }
    }
}

/// Touch 1 GiB through one of three ways RLIMIT_DATA does not count.
const MEMORY: &str = r#"
import mmap, os, sys
n = 1 << 30
how = sys.argv[1]
if how == "shared":
    m = mmap.mmap(-1, n, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
elif how == "memfd":
    fd = os.memfd_create("bomb")
    os.ftruncate(fd, n)
    m = mmap.mmap(fd, n)
else:
    fd = os.open(sys.argv[2], os.O_CREAT | os.O_RDWR, 0o600)
    os.ftruncate(fd, n)
    m = mmap.mmap(fd, n)
for i in range(0, n, 4096):
    m[i] = 1
print("touched", flush=True)
"#;

/// A file in /dev/shm, removed on drop (tmpfs pages outlive the run otherwise).
struct ShmFile(PathBuf);

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn memory_limit_counts_shared_memory_or_says_it_is_partial() {
    for user in users("memory_limit_counts_shared_memory_or_says_it_is_partial") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let ws = tempdir(user);
            std::fs::write(ws.path().join("mem.py"), MEMORY).unwrap();
            let p = profile_ns(
                "memory",
                "extends = \"workspace-write\"\n[limits]\nmemory = \"256MiB\"\n",
                ns,
            );
            if user == User::Nobody {
                // No delegated memory cgroup here for uid 65534: the run says so, once.
                let out = cordon(user)
                    .args(["run", "-v", "-p", &p, "-w"])
                    .arg(ws.path())
                    .current_dir(ws.path())
                    .args(["--", "/bin/true"])
                    .output()
                    .unwrap();
                assert_code(&out, 0, &ctx);
                let err = text(&out.stderr);
                let cgroup = err.contains("cordon: memory: 268435456 bytes (memory cgroup");
                let partial = err
                    .matches("warning: [limits] memory is partial here")
                    .count();
                assert!(
                    cgroup || partial == 1,
                    "{ctx}: neither enforced nor said to be partial:\n{err}"
                );
                continue;
            }
            for how in ["shared", "memfd", "shm"] {
                let shm = ShmFile(PathBuf::from(format!("/dev/shm/{}", unique("cordon-bomb"))));
                let out = run_sh(
                    user,
                    &p,
                    ws.path(),
                    &format!("{PYTHON} mem.py {how} {}", shm.0.display()),
                );
                let got = text(&out.stdout);
                assert!(
                    !got.contains("touched"),
                    "{ctx}, {how}: 1 GiB touched under 256MiB\n{}",
                    text(&out.stderr)
                );
                assert_ne!(out.status.code(), Some(0), "{ctx}, {how}");
                // The launcher survives and reports the payload's end, nothing of its own.
                assert!(
                    !text(&out.stderr).contains("cordon: "),
                    "{ctx}, {how}: {}",
                    text(&out.stderr)
                );
            }
        }
    }
}

/// `--no-capture` keeps the supervisor (it mediates sockets too): without
/// namespaces another process's limits stay refused, the run's own child and
/// the caller itself still work.
#[test]
fn with_no_capture_the_supervisor_still_decides_other_pids() {
    for user in users("with_no_capture_the_supervisor_still_decides_other_pids") {
        let ctx = format!("{user}, --no-capture, namespaces off");
        let host = HostSleep::start(user);
        let before = process_state(host.pid());
        let ws = tempdir(user);
        let p = ns_profile("workspace-write", Ns::Off);
        let script = format!(
            "prlimit --pid {} --nofile=3:3; echo \"outside $?\"\n\
             sleep 30 & C=$!; prlimit --pid $C --nofile=40:40; echo \"own $?\"; kill $C\n\
             prlimit --nofile=100:100; echo \"self $?\"",
            host.pid()
        );
        let out = cordon(user)
            .args(["run", "-q", "--no-capture", "-p", &p, "-w"])
            .arg(ws.path())
            .current_dir(ws.path())
            .args(["--", "/bin/sh", "-c", &script])
            .output()
            .unwrap();
        let got = text(&out.stdout);
        // --no-capture turns recording off, not the supervisor: it still tells
        // the run's own processes from the host's. (Without any listener, a nested
        // cordon with --best-effort, the filter refuses every other pid: the
        // seccomp unit tests check that program.)
        for want in ["outside 1", "own 0", "self 0"] {
            assert!(got.contains(want), "{ctx}: want {want} in:\n{got}");
        }
        assert_eq!(process_state(host.pid()), before, "{ctx}");
    }
}
