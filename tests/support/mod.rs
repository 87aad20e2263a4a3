//! Shared test harness: run the built `cordon` binary as root and as uid 65534,
//! make temp dirs both can use, and skip loudly (or fail, with
//! CORDON_TEST_STRICT=1) where a kernel feature is absent.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Who runs the launcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    Root,
    /// uid/gid 65534 through `setpriv --reuid=65534 --regid=65534 --clear-groups`.
    Nobody,
}

impl User {
    pub fn uid(self) -> u32 {
        match self {
            User::Root => 0,
            User::Nobody => 65534,
        }
    }
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            User::Root => "root",
            User::Nobody => "uid 65534",
        })
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn strict() -> bool {
    std::env::var_os("CORDON_TEST_STRICT").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Skip a test loudly, or fail it when CORDON_TEST_STRICT=1 (as CI sets).
pub fn skip(test: &str, why: &str) {
    if strict() {
        panic!("{test}: would skip ({why}), and CORDON_TEST_STRICT=1 forbids skipping");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// Users to run kernel tests as: root and uid 65534 when the tests run as
/// root (as in CI); only the current user otherwise (loudly).
pub fn users(test: &str) -> Vec<User> {
    if is_root() {
        vec![User::Root, User::Nobody]
    } else {
        skip(
            test,
            "not running as root: cannot also run as root and as uid 65534",
        );
        vec![]
    }
}

/// The binary, copied once to a world-readable place so uid 65534 can run it
/// even when the build tree lives under a private home directory.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_BIN_EXE_cordon"));
        let dir = harness_dir().join(format!("cordon-test-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        remove_at_exit(&dir);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dst = dir.join("cordon");
        std::fs::copy(src, &dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
        dst
    })
}

/// `cordon` as `user`, with a clean, predictable environment.
pub fn cordon(user: User) -> Command {
    let mut c = match user {
        User::Root => Command::new(bin()),
        User::Nobody => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(bin());
            c
        }
    };
    c.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home(user))
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null());
    c
}

/// A home directory for `user` with a few secrets in it, owned by that user.
pub fn home(user: User) -> PathBuf {
    let dir = harness_dir().join(format!(
        "cordon-test-home-{}-{}",
        user.uid(),
        std::process::id()
    ));
    remove_at_exit(&dir);
    if !dir.exists() {
        std::fs::create_dir_all(dir.join(".ssh")).unwrap();
        std::fs::write(dir.join(".ssh/id_ed25519"), "PRIVATE KEY\n").unwrap();
        std::fs::write(dir.join(".netrc"), "machine example.com password hunter2\n").unwrap();
        std::fs::write(dir.join(".bashrc"), "# rc\n").unwrap();
        chown_r(&dir, user);
    }
    dir
}

/// A temp dir owned by `user` (the workspace of a test).
pub fn tempdir(user: User) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("cordon-test-")
        .tempdir_in(harness_dir())
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_r(d.path(), user);
    d
}

pub fn chown_r(p: &Path, user: User) {
    if !is_root() {
        return;
    }
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{0}:{0}", user.uid()))
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Run `cordon run -p PROFILE -w WS -- sh -c SCRIPT` as `user`.
pub fn run_sh(user: User, profile: &str, ws: &Path, script: &str) -> Output {
    cordon(user)
        .args(["run", "-q", "-p", profile, "-w"])
        .arg(ws)
        .current_dir(ws)
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Assert an exit code and show both streams when it differs.
#[track_caller]
pub fn assert_code(out: &Output, code: i32, ctx: impl std::fmt::Display) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{ctx}: expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Landlock ABI of this kernel (0 when unavailable).
pub fn landlock_abi() -> i32 {
    // SAFETY: the documented version probe; no memory is passed.
    #[allow(unsafe_code)]
    let v = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, 0usize, 0usize, 1u32) };
    if v < 0 { 0 } else { v as i32 }
}

/// Skip (or fail under strict) unless Landlock has at least `abi`.
pub fn require_landlock(test: &str, abi: i32) -> bool {
    let have = landlock_abi();
    if have < abi {
        skip(
            test,
            &format!("Landlock ABI {abi} needed, this kernel has {have}"),
        );
        return false;
    }
    true
}

/// Write a profile into `dir` and return its path as a string.
pub fn profile(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p.to_str().unwrap().to_string()
}

/// A directory outside every test workspace, readable by all, for profiles and fixtures.
pub fn shared_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = harness_dir().join(format!("cordon-test-shared-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        remove_at_exit(&d);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    })
}

pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

// ---------------------------------------------------------------------------
// Kernel-suite helpers: namespace modes, a probe that prints the kernel's
// answer (OK or the errno name), host process lookups, bounded waits.
// ---------------------------------------------------------------------------

/// The namespace mode a kernel test configures in its profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    /// `[namespaces] mode = "auto"` (the default): user, mount, PID, IPC (+net when off).
    Auto,
    /// `[namespaces] mode = "off"`: Landlock and seccomp alone.
    Off,
}

impl Ns {
    pub const ALL: [Ns; 2] = [Ns::Auto, Ns::Off];

    pub fn name(self) -> &'static str {
        match self {
            Ns::Auto => "auto",
            Ns::Off => "off",
        }
    }

    /// The errno of a write outside the writable roots: the read-only mount
    /// view answers EROFS; Landlock alone answers EACCES.
    pub fn write_denied(self) -> &'static str {
        match self {
            Ns::Auto => "EROFS",
            Ns::Off => "EACCES",
        }
    }
}

impl std::fmt::Display for Ns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "namespaces {}", self.name())
    }
}

/// A name unique within this test process.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// A profile file in `shared_dir()` holding `text` plus `[namespaces] mode`
/// for `ns` (so `text` must not have a `[namespaces]` table of its own).
pub fn profile_ns(name: &str, text: &str, ns: Ns) -> String {
    let body = format!("{text}\n[namespaces]\nmode = \"{}\"\n", ns.name());
    profile(shared_dir(), &format!("{}.toml", unique(name)), &body)
}

/// The built-in `base` under namespace mode `ns`, as a profile path.
pub fn ns_profile(base: &str, ns: Ns) -> String {
    profile_ns(base, &format!("extends = \"{base}\"\n"), ns)
}

const PROBE_PY: &str = r#"
# cordon test probe: each OP ARG pair prints one line, OK or the errno name.
import errno, os, socket, subprocess, sys
FAMILIES = {
    "tcp": (socket.AF_INET, socket.SOCK_STREAM),
    "udp": (socket.AF_INET, socket.SOCK_DGRAM),
    "tcp6": (socket.AF_INET6, socket.SOCK_STREAM),
    "udp6": (socket.AF_INET6, socket.SOCK_DGRAM),
    "unix": (socket.AF_UNIX, socket.SOCK_STREAM),
}
def run(op, arg):
    if op == "read":
        with open(arg, "rb") as f:
            f.read()
    elif op == "write":
        with open(arg, "ab") as f:
            f.write(b"x\n")
    elif op == "list":
        os.listdir(arg)
    elif op == "mkdir":
        os.mkdir(arg)
    elif op == "exec":
        code = subprocess.run([arg]).returncode
        if code != 0:
            return "EXIT %d" % code
    elif op == "socket":
        fam, typ = FAMILIES[arg]
        socket.socket(fam, typ).close()
    elif op == "connect":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(("127.0.0.1", int(arg)))
        s.close()
    else:
        raise SystemExit("unknown probe op " + op)
    return "OK"
args = sys.argv[1:]
for op, arg in zip(args[::2], args[1::2]):
    try:
        result = run(op, arg)
    except OSError as e:
        result = errno.errorcode.get(e.errno, "errno %s" % e.errno)
    print(result, flush=True)
"#;

/// The system Python (not a pyenv shim): probes and socket tests use it.
pub const PYTHON: &str = "/usr/bin/python3";

/// The probe script, in `shared_dir()`.
pub fn probe_py() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let p = shared_dir().join("probe.py");
        std::fs::write(&p, PROBE_PY).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        p
    })
}

/// Probe arguments: (op, arg) pairs flattened for the command line.
pub fn probe_args(ops: &[(&str, &str)]) -> Vec<String> {
    ops.iter()
        .flat_map(|(op, arg)| [op.to_string(), arg.to_string()])
        .collect()
}

/// Run the probe with `ops` inside `cordon run -q -p PROFILE -w WS EXTRA... --`
/// as `user` (cwd WS, `env` added to the harness's clean environment) and return
/// one answer per op. Panics (showing both streams) unless cordon exits 0.
pub fn probe(
    user: User,
    profile: &str,
    ws: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
    ops: &[(&str, &str)],
) -> Vec<String> {
    let mut c = cordon(user);
    c.args(["run", "-q", "-p", profile, "-w"])
        .arg(ws)
        .current_dir(ws);
    c.args(extra).envs(env.iter().copied());
    c.args(["--", PYTHON]).arg(probe_py()).args(probe_args(ops));
    let out = c.output().unwrap();
    assert_code(&out, 0, format!("probe {ops:?} as {user} under {profile}"));
    text(&out.stdout).lines().map(str::to_string).collect()
}

/// The same probe outside the sandbox, as `user`: shows what DAC alone allows.
pub fn probe_unsandboxed(user: User, ops: &[(&str, &str)]) -> Vec<String> {
    let mut c = match user {
        User::Root => Command::new(PYTHON),
        User::Nobody => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", PYTHON]);
            c
        }
    };
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home(user));
    c.arg(probe_py()).args(probe_args(ops)).stdin(Stdio::null());
    let out = c.output().unwrap();
    assert_code(&out, 0, format!("unsandboxed probe {ops:?} as {user}"));
    text(&out.stdout).lines().map(str::to_string).collect()
}

/// Mark every descriptor above 2 close-on-exec in the spawned process, so only
/// the standard streams (and what a test passes on purpose after this) reach
/// cordon, whatever the test runner left open.
pub fn only_std_fds(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: close_range is async-signal-safe and touches no memory.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            if libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Live (not zombie) host processes whose argv is exactly `argv`.
pub fn pids_with_argv(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read(format!("/proc/{pid}/cmdline"))
            .ok()
            .as_deref()
            == Some(&want[..])
            && pid_alive(pid)
        {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` names a process that has not exited (zombies count as dead).
pub fn pid_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | None)
}

/// Poll `f` every 10 ms until it holds or `limit` passes; returns whether it held.
pub fn poll_until(limit: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A started command whose output is collected by reader threads.
#[derive(Debug)]
pub struct Running {
    pub child: std::process::Child,
    out: std::sync::mpsc::Receiver<Vec<u8>>,
    err: std::sync::mpsc::Receiver<Vec<u8>>,
}

fn reader(mut r: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        let _ = tx.send(v);
    });
    rx
}

/// Start `cmd` with stdout and stderr captured.
pub fn start(mut cmd: Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    Running { child, out, err }
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait up to `limit` for the process (kill it and panic past that), then
    /// collect its output. Output still open 5 s after it exited means something
    /// it started outlived it: that panics too.
    pub fn finish(mut self, limit: std::time::Duration, ctx: impl std::fmt::Display) -> Output {
        let status = wait_limit(&mut self.child, limit, &ctx);
        let grab =
            |rx: &std::sync::mpsc::Receiver<Vec<u8>>, which: &str| {
                rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap_or_else(|_| {
                panic!("{ctx}: {which} still open 5 s after cordon exited: a process outlived it")
            })
            };
        let stdout = grab(&self.out, "stdout");
        let stderr = grab(&self.err, "stderr");
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

/// Wait for `child` up to `limit`; kill it and panic when it overruns.
pub fn wait_limit(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    ctx: &dyn std::fmt::Display,
) -> std::process::ExitStatus {
    let end = std::time::Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if std::time::Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            let mut e = String::new();
            if let Some(s) = child.stderr.as_mut() {
                let _ = std::io::Read::read_to_string(s, &mut e);
            }
            panic!("{ctx}: still running after {limit:?}; killed\n{e}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// stderr as lines, for "one line starting with `cordon: `" checks.
#[track_caller]
pub fn assert_one_error_line(out: &Output, ctx: impl std::fmt::Display) -> String {
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("cordon: "),
        "{ctx}: expected one line starting with \"cordon: \" on stderr, got:\n{err}"
    );
    lines[0].to_string()
}

// ---------------------------------------------------------------------------
// Escape-suite helpers (tests/escape.rs): C helpers compiled at run time, and
// host processes found by an argument.
// ---------------------------------------------------------------------------

/// Compile `src` (a C file) with `cc -O1` once per test process, into a
/// directory everyone can read and enter; the binary is world-executable.
/// None (after `skip`, which fails under CORDON_TEST_STRICT=1) without a compiler.
pub fn compile_c(test: &str, src: &Path, name: &str) -> Option<PathBuf> {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    static BUILT: Mutex<BTreeMap<String, Result<PathBuf, String>>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let r = built.entry(name.to_string()).or_insert_with(|| {
        let dir = harness_dir().join(format!("cordon-test-cc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        remove_at_exit(&dir);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = dir.join(name);
        match Command::new("cc")
            .arg("-O1")
            .arg("-o")
            .arg(&out)
            .arg(src)
            .output()
        {
            Ok(o) if o.status.success() => {
                std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
                Ok(out)
            }
            Ok(o) => panic!("cc {}: {}\n{}", src.display(), o.status, text(&o.stderr)),
            Err(e) => Err(format!("no C compiler (cc: {e})")),
        }
    });
    match r {
        Ok(p) => Some(p.clone()),
        Err(why) => {
            skip(test, why);
            None
        }
    }
}

/// Live (not zombie) host processes with an argument equal to `arg`.
pub fn pids_with_arg(arg: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmdline.split(|&b| b == 0).any(|a| a == arg.as_bytes()) && escape_pid_alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` has not exited (a zombie counts as dead).
pub fn escape_pid_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | None)
}

// ---------------------------------------------------------------------------
// Run-report helpers (tests/reports.rs, tests/replay.rs, tests/audit_capture.rs):
// read a report and check it against schema v1 as the README documents it.
// ---------------------------------------------------------------------------

/// Read and parse a run report; panics with the file's text when it is not JSON.
#[track_caller]
pub fn read_report(path: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("report {} not readable: {e}", path.display()));
    serde_json::from_str(&t)
        .unwrap_or_else(|e| panic!("report {} is not JSON: {e}\n{t}", path.display()))
}

/// Check every field of schema v1 exists with the documented type (and the
/// enumerated strings hold one of their documented values).
#[track_caller]
pub fn check_report_schema(r: &serde_json::Value, ctx: &str) {
    use serde_json::Value;
    let field = |v: &'_ Value, path: &str| -> Value {
        v.pointer(path)
            .cloned()
            .unwrap_or_else(|| panic!("{ctx}: report has no {path}\n{v:#}"))
    };
    let string = |v: &Value, path: &str| -> String {
        field(v, path)
            .as_str()
            .unwrap_or_else(|| panic!("{ctx}: {path} is not a string in\n{v:#}"))
            .to_string()
    };
    let uint = |v: &Value, path: &str| -> u64 {
        field(v, path)
            .as_u64()
            .unwrap_or_else(|| panic!("{ctx}: {path} is not an unsigned integer in\n{v:#}"))
    };
    let int = |v: &Value, path: &str| -> i64 {
        field(v, path)
            .as_i64()
            .unwrap_or_else(|| panic!("{ctx}: {path} is not an integer in\n{v:#}"))
    };
    let boolean = |v: &Value, path: &str| -> bool {
        field(v, path)
            .as_bool()
            .unwrap_or_else(|| panic!("{ctx}: {path} is not a boolean in\n{v:#}"))
    };
    let strings = |v: &Value, path: &str| -> Vec<String> {
        field(v, path)
            .as_array()
            .unwrap_or_else(|| panic!("{ctx}: {path} is not an array in\n{v:#}"))
            .iter()
            .map(|s| {
                s.as_str()
                    .unwrap_or_else(|| panic!("{ctx}: {path} holds a non-string in\n{v:#}"))
                    .to_string()
            })
            .collect()
    };
    let array = |v: &Value, path: &str| -> Vec<Value> {
        field(v, path)
            .as_array()
            .unwrap_or_else(|| panic!("{ctx}: {path} is not an array in\n{v:#}"))
            .clone()
    };
    assert_eq!(uint(r, "/version"), 1, "{ctx}: version");
    assert!(
        !string(r, "/cordon_version").is_empty(),
        "{ctx}: cordon_version is empty"
    );
    let at = string(r, "/started_at");
    let b = at.as_bytes();
    assert!(
        b.len() == 24
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'.'
            && b[23] == b'Z'
            && at
                .bytes()
                .enumerate()
                .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit()),
        "{ctx}: started_at {at:?} is not RFC 3339 UTC with milliseconds"
    );
    uint(r, "/duration_ms");
    assert!(
        !strings(r, "/command").is_empty(),
        "{ctx}: command is empty"
    );
    for p in ["/cwd", "/workspace"] {
        assert!(string(r, p).starts_with('/'), "{ctx}: {p} is not absolute");
    }
    string(r, "/profile/name");
    string(r, "/profile/source");
    let sha = string(r, "/profile/sha256");
    assert!(
        sha.len() == 64
            && sha
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
        "{ctx}: profile.sha256 {sha:?} is not 64 lowercase hex digits"
    );
    assert!(
        field(r, "/profile/resolved").is_object(),
        "{ctx}: profile.resolved is not an object"
    );
    string(r, "/host/kernel");
    int(r, "/host/landlock_abi");
    boolean(r, "/host/namespaces");
    uint(r, "/host/uid");
    let ll = string(r, "/enforced/landlock");
    assert!(
        ["full", "partial", "none"].contains(&ll.as_str()),
        "{ctx}: enforced.landlock {ll:?}"
    );
    boolean(r, "/enforced/seccomp");
    let ns = string(r, "/enforced/namespaces");
    assert!(
        ["on", "off"].contains(&ns.as_str()),
        "{ctx}: enforced.namespaces {ns:?}"
    );
    strings(r, "/enforced/missing");
    int(r, "/exit_code");
    let sig = field(r, "/signal");
    assert!(
        sig.is_null() || sig.as_i64().is_some(),
        "{ctx}: signal {sig} is neither null nor an integer"
    );
    boolean(r, "/timed_out");
    for e in array(r, "/executed") {
        uint(&e, "/pid");
        strings(&e, "/argv");
        uint(&e, "/at_ms");
    }
    for d in array(r, "/denials") {
        let kind = string(&d, "/kind");
        assert!(
            ["fs", "net", "syscall", "limit"].contains(&kind.as_str()),
            "{ctx}: denial kind {kind:?}"
        );
        for k in [
            "/operation",
            "/target",
            "/exe",
            "/errno",
            "/rule",
            "/suggestion",
        ] {
            string(&d, k);
        }
        uint(&d, "/pid");
        let by = string(&d, "/observed_by");
        assert!(
            [
                "audit",
                "seccomp-notify",
                "predicted",
                "guard",
                "proxy",
                "approval"
            ]
            .contains(&by.as_str()),
            "{ctx}: observed_by {by:?}"
        );
        uint(&d, "/at_ms");
    }
    strings(r, "/capture/sources");
    strings(r, "/capture/notes");
    uint(r, "/capture/dropped");
    // Approval decisions: absent when none was asked.
    if r.get("approvals").is_some() {
        for a in array(r, "/approvals") {
            let kind = string(&a, "/kind");
            assert!(
                ["exec", "read", "domain"].contains(&kind.as_str()),
                "{ctx}: approval kind {kind:?}"
            );
            string(&a, "/rule");
            let who = string(&a, "/approver");
            assert!(
                ["tty", "deny", "command", "run"].contains(&who.as_str()),
                "{ctx}: approver {who:?}"
            );
            let answer = string(&a, "/answer");
            assert!(
                ["allow", "allow-run", "deny", "timeout", "unanswered"].contains(&answer.as_str()),
                "{ctx}: answer {answer:?}"
            );
            assert_eq!(uint(&a, "/shown/version"), 1, "{ctx}: shown.version");
            assert_eq!(string(&a, "/shown/kind"), kind, "{ctx}: shown.kind");
            for k in [
                "/shown/gate",
                "/shown/rule",
                "/shown/target",
                "/shown/cwd",
                "/shown/run/profile",
                "/shown/run/workspace",
                "/time",
            ] {
                string(&a, k);
            }
            strings(&a, "/shown/argv");
            strings(&a, "/shown/run/command");
            for p in array(&a, "/shown/parents") {
                uint(&p, "/pid");
                strings(&p, "/argv");
            }
            for k in ["/shown/pid", "/shown/timeout_ms", "/at_ms", "/waited_ms"] {
                uint(&a, k);
            }
            boolean(&a, "/ran");
        }
    }
}

/// The denials of a report.
pub fn report_denials(r: &serde_json::Value) -> Vec<serde_json::Value> {
    r["denials"].as_array().cloned().unwrap_or_default()
}
// ---- end of run-report helpers ----

// ---------------------------------------------------------------------------
// Own-files helpers (tests/own_files.rs and every test that writes a report
// or an audit log): cordon refuses either inside a writable root of the run,
// and the built-ins make `${TMPDIR}` (/tmp here) and the workspace writable.
// ---------------------------------------------------------------------------

/// A temp dir owned by `user`, outside every writable root of the built-in
/// profiles (under /var/tmp, not /tmp), for reports and audit logs.
pub fn outside_dir(user: User) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("cordon-test-out-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_r(d.path(), user);
    d
}

// ---------------------------------------------------------------------------
// Where the harness keeps its files (tests/scratch.rs): outside /tmp, which a
// sandbox with namespaces replaces by a private tmpfs. The sandbox then sees
// workspaces, homes and fixtures as host files, and a test about /tmp itself
// makes its directories there on purpose (`tempdir_in_tmp`).
// ---------------------------------------------------------------------------

/// /var/tmp where it exists (the host's persistent scratch directory, never
/// made private by cordon), else the process's temp dir.
pub fn harness_dir() -> PathBuf {
    let v = Path::new("/var/tmp");
    if v.is_dir() {
        v.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A temp dir owned by `user` directly under /tmp.
pub fn tempdir_in_tmp(user: User) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("cordon-test-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_r(d.path(), user);
    d
}

/// Run `cmd` under a seccomp filter that refuses user namespaces the way
/// container runtimes' default profiles do (unshare and clone with CLONE_NEWUSER
/// get EPERM, clone3 ENOSYS).
pub fn without_userns(mut cmd: Command) -> Command {
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule,
    };
    use std::os::unix::process::CommandExt;
    let newuser = libc::CLONE_NEWUSER as u64;
    let rules = [
        (libc::SYS_unshare, vec![]),
        (
            libc::SYS_clone,
            vec![
                SeccompRule::new(vec![
                    SeccompCondition::new(
                        0,
                        SeccompCmpArgLen::Dword,
                        SeccompCmpOp::MaskedEq(newuser),
                        newuser,
                    )
                    .unwrap(),
                ])
                .unwrap(),
            ],
        ),
    ];
    let filter = SeccompFilter::new(
        rules.into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap();
    let prog: BpfProgram = filter.try_into().unwrap();
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, vec![])].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap();
    let prog3: BpfProgram = clone3.try_into().unwrap();
    // SAFETY: the closure only installs two prepared filters (no allocation, no locks).
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            seccompiler::apply_filter(&prog).map_err(std::io::Error::other)?;
            seccompiler::apply_filter(&prog3).map_err(std::io::Error::other)
        });
    }
    cmd
}

// ---------------------------------------------------------------------------
// The harness's per-process directories (the binary's copy, homes, shared
// profiles, compiled helpers) are removed when the test process exits, also
// after a failed test: the harness exits through exit(3), which runs atexit
// handlers. A process killed by a signal leaves them (nothing can run then).
// ---------------------------------------------------------------------------

static AT_EXIT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Remove `dir` (recursively) when this test process exits.
pub fn remove_at_exit(dir: &Path) {
    extern "C" fn remove_all() {
        let dirs = std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()));
        for d in dirs {
            let _ = std::fs::remove_dir_all(&d);
        }
    }
    let mut dirs = AT_EXIT.lock().unwrap_or_else(|e| e.into_inner());
    if dirs.is_empty() {
        // SAFETY: atexit only stores the pointer of a function that lives as long
        // as the program; the handler touches nothing but the list above.
        #[allow(unsafe_code)]
        unsafe {
            libc::atexit(remove_all);
        }
    }
    if !dirs.iter().any(|d| d == dir) {
        dirs.push(dir.to_path_buf());
    }
}
