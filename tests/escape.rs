//! Escape tests: a C helper (tests/attack/attack.c) tries one escape per attack
//! class inside `cordon run` and prints `RESULT <class> <ok|ERRNO>`; each test
//! asserts the refusal and its exact errno, as root and as uid 65534, with
//! namespaces "auto" and "off".
//!
//! Where a mode cannot block a class, the expected result is `ok` (the attack
//! works) and the line names the gap: the test then fails the day the gap
//! closes (or widens), so the list of gaps stays true.
//!
//! Every fixture lives outside the writable roots except the workspace: TMPDIR
//! is set to the workspace, so the only writable roots are the workspace,
//! /dev/shm and, where a test adds it, a write-but-not-exec scratch directory.

mod support;
use support::*;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The namespace mode of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Auto,
    Off,
}

const MODES: [Mode; 2] = [Mode::Auto, Mode::Off];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Off => "off",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "namespaces {}", self.name())
    }
}

/// What every test needs first: root (to run as both users), Landlock ABI 6
/// (scopes: the off-mode expectations rely on them), the helper compiled, and
/// the harness's home directories created before tests race to create them.
fn setup(test: &str) -> Option<(Vec<User>, &'static Path)> {
    let users = users(test);
    if users.is_empty() || !require_landlock(test, 6) {
        return None;
    }
    static HOMES: OnceLock<()> = OnceLock::new();
    HOMES.get_or_init(|| {
        home(User::Root);
        home(User::Nobody);
    });
    static HELPER: OnceLock<Option<PathBuf>> = OnceLock::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attack/attack.c");
    let helper = HELPER
        .get_or_init(|| compile_c(test, &src, "attack"))
        .as_deref()?;
    Some((users, helper))
}

fn host_pidns() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .unwrap()
        .display()
        .to_string()
}

/// One attempt: `arg` is `class` or `class=ARG`; the expected answers per mode.
#[derive(Debug, Clone)]
struct Case {
    arg: String,
    auto: &'static str,
    off: &'static str,
}

impl Case {
    fn class(&self) -> &str {
        self.arg.split('=').next().unwrap()
    }
    fn expect(&self, mode: Mode) -> &'static str {
        match mode {
            Mode::Auto => self.auto,
            Mode::Off => self.off,
        }
    }
}

/// Expected `auto` with namespaces auto, `off` with namespaces off.
fn case(arg: impl fmt::Display, auto: &'static str, off: &'static str) -> Case {
    Case {
        arg: arg.to_string(),
        auto,
        off,
    }
}

/// The same answer in both modes.
fn both(arg: impl fmt::Display, expect: &'static str) -> Case {
    case(arg, expect, expect)
}

/// One user, one mode: a workspace owned by the user, an "outside" directory
/// owned by the user but outside every writable root, a write-only scratch
/// directory, the helper copied into the workspace, and a profile.
struct Fx {
    test: &'static str,
    user: User,
    mode: Mode,
    _ws: tempfile::TempDir,
    ws: PathBuf,
    outside: PathBuf,
    scratch: PathBuf,
    helper: PathBuf,
    profile: String,
    /// An argument of every helper run: finds its processes on the host.
    token: String,
}

impl fmt::Display for Fx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} as {}, {}]", self.test, self.user, self.mode)
    }
}

static SERIAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Fx {
    /// `deny` is added to `[filesystem] deny`; `extra` is appended as is (tables
    /// other than `[filesystem]` and `[namespaces]`).
    fn new(
        test: &'static str,
        user: User,
        mode: Mode,
        helper: &Path,
        deny: &[PathBuf],
        extra: &str,
    ) -> Fx {
        let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!(
            "{test}-{}-{}-{}-{n}",
            user.uid(),
            mode.name(),
            std::process::id()
        );
        let ws_dir = tempdir(user);
        let ws = std::fs::canonicalize(ws_dir.path()).unwrap();
        let shared = std::fs::canonicalize(shared_dir()).unwrap();
        let outside = shared.join(format!("outside-{tag}"));
        let scratch = shared.join(format!("scratch-{tag}"));
        for d in [&outside, &scratch] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
            chown_r(d, user);
        }
        let helper_copy = ws.join("attack");
        std::fs::copy(helper, &helper_copy).unwrap();
        std::fs::set_permissions(&helper_copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        chown_r(&helper_copy, user);
        let deny: Vec<String> = deny
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect();
        let text = format!(
            "extends = \"workspace-write\"\n\
             [filesystem]\n\
             write = [{:?}]\n\
             deny = [{}]\n\
             [namespaces]\n\
             mode = \"{}\"\n\
             {extra}\n",
            scratch.display().to_string(),
            deny.join(", "),
            mode.name(),
        );
        let profile = profile(&shared, &format!("{tag}.toml"), &text);
        Fx {
            test,
            user,
            mode,
            _ws: ws_dir,
            ws,
            outside,
            scratch,
            helper: helper_copy,
            profile,
            token: format!("tag=cordon-escape-{tag}"),
        }
    }

    /// A file in the outside directory, owned by the user, holding "original\n".
    fn outside_file(&self, name: &str) -> PathBuf {
        let p = self.outside.join(name);
        std::fs::write(&p, "original\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        chown_r(&p, self.user);
        p
    }

    fn home(&self) -> PathBuf {
        home(self.user)
    }

    /// `cordon run` of the helper with `args` (after the token and the namespace probe).
    fn command(&self, args: &[String]) -> Command {
        let mut c = cordon(self.user);
        c.env("TMPDIR", &self.ws)
            .current_dir(&self.ws)
            .args(["run", "-q", "-p", &self.profile, "-w"])
            .arg(&self.ws)
            .arg("--")
            .arg(&self.helper)
            .arg(&self.token)
            .arg(format!("ns={}", host_pidns()))
            .args(args);
        close_inherited_fds(&mut c);
        c
    }

    /// A shell line that repeats the run by hand (while the fixture exists).
    fn repro(&self, args: &[String], env: &str) -> String {
        let who = match self.user {
            User::Root => String::new(),
            User::Nobody => "setpriv --reuid=65534 --regid=65534 --clear-groups ".into(),
        };
        format!(
            "cd {ws} && env -i PATH=/usr/local/bin:/usr/bin:/bin HOME={home} LANG=C.UTF-8 TMPDIR={ws} {env}{who}{bin} run -q -p {p} -w {ws} -- {h} {t} ns={ns} {args}",
            ws = self.ws.display(),
            home = self.home().display(),
            bin = bin().display(),
            p = self.profile,
            h = self.helper.display(),
            t = self.token,
            ns = host_pidns(),
            args = args.join(" "),
        )
    }

    /// Run `cases` in one `cordon run` and check every answer.
    fn run_cases(&self, cases: &[Case], f: &mut Failures) -> Option<Run> {
        let args: Vec<String> = cases.iter().map(|c| c.arg.clone()).collect();
        let run = self.run(self.command(&args), &args, "", Duration::from_secs(120));
        if self.check_run(&run, 0, f) {
            self.check_cases(&run, cases, f);
            Some(run)
        } else {
            None
        }
    }

    /// Run `cmd` with its output in files (a process that outlives cordon and
    /// holds a pipe cannot hang the test), killing it after `limit`.
    fn run(&self, mut cmd: Command, args: &[String], env: &str, limit: Duration) -> Run {
        let logs = tempfile::tempdir().unwrap();
        let (o, e) = (logs.path().join("out"), logs.path().join("err"));
        cmd.stdout(File::create(&o).unwrap())
            .stderr(File::create(&e).unwrap());
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let (status, hung) = wait_for(&mut child, limit);
        Run {
            status,
            hung,
            elapsed: started.elapsed(),
            stdout: std::fs::read_to_string(&o).unwrap_or_default(),
            stderr: std::fs::read_to_string(&e).unwrap_or_default(),
            repro: self.repro(args, env),
        }
    }

    /// The run ended with `code`, and the namespace probe shows the mode. A
    /// fallback of mode auto to no namespaces (no user namespaces here) skips.
    fn check_run(&self, run: &Run, code: i32, f: &mut Failures) -> bool {
        if run.hung || run.status.code() != Some(code) {
            f.fail(
                self,
                run,
                "cordon run",
                &format!("exit {code}"),
                &if run.hung {
                    format!("still running after {:?}; killed", run.elapsed)
                } else {
                    format!("{}", run.status)
                },
            );
            return false;
        }
        let ns = run.results().get("ns").cloned().unwrap_or_default();
        let want = match self.mode {
            Mode::Auto => "private",
            Mode::Off => "host",
        };
        if ns != want {
            if self.mode == Mode::Auto && ns == "host" {
                skip(
                    self.test,
                    "namespaces mode auto fell back to none: user namespaces unavailable",
                );
            } else {
                f.fail(self, run, "ns", want, &ns);
            }
            return false;
        }
        true
    }

    fn check_cases(&self, run: &Run, cases: &[Case], f: &mut Failures) {
        let got = run.results();
        for c in cases {
            let want = c.expect(self.mode);
            let have = got
                .get(c.class())
                .map(String::as_str)
                .unwrap_or("<no RESULT line>");
            if have != want {
                f.fail(self, run, c.class(), want, have);
            }
        }
    }
}

/// `cordon` must pass on only the descriptors the test means to pass: whatever
/// the test runner left open (a jobserver pipe) is marked close-on-exec first.
fn close_inherited_fds(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: close_range(2) is async-signal-safe and touches no memory.
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

fn wait_for(child: &mut std::process::Child, limit: Duration) -> (ExitStatus, bool) {
    let end = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st, false);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            return (child.wait().unwrap(), true);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One finished `cordon run`.
struct Run {
    status: ExitStatus,
    hung: bool,
    elapsed: Duration,
    stdout: String,
    stderr: String,
    repro: String,
}

impl Run {
    /// class -> answer, from the `RESULT` lines.
    fn results(&self) -> BTreeMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|l| {
                let mut w = l.splitn(3, ' ');
                match (w.next(), w.next(), w.next()) {
                    (Some("RESULT"), Some(c), Some(r)) => Some((c.to_string(), r.to_string())),
                    _ => None,
                }
            })
            .collect()
    }

    /// The helper's INFO lines about `class`.
    fn info(&self, class: &str) -> Vec<&str> {
        let prefix = format!("INFO {class} ");
        self.stdout
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .collect()
    }
}

/// Every mismatch of a test, reported together at the end.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn fail(&mut self, fx: &Fx, run: &Run, what: &str, want: &str, have: &str) {
        let mut s = format!(
            "{fx} {what}: expected {want}, got {have}\n    repro: {}",
            run.repro
        );
        for l in run.info(what) {
            s.push_str(&format!("\n    {l}"));
        }
        if what == "cordon run" || what == "ns" {
            s.push_str(&format!(
                "\n    --- stdout\n{}\n    --- stderr\n{}",
                run.stdout, run.stderr
            ));
        }
        self.0.push(s);
    }

    /// A check of the state outside the sandbox after a run.
    fn state(&mut self, fx: &Fx, run: &Run, what: &str, ok: bool, detail: impl fmt::Display) {
        if !ok {
            self.0
                .push(format!("{fx} {what}: {detail}\n    repro: {}", run.repro));
        }
    }

    fn finish(self, test: &str) {
        assert!(
            self.0.is_empty(),
            "{test}: {} failure(s)\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| format!("<{e}>"))
}

/// A process outside the sandbox, killed and reaped on drop.
struct Outside(std::process::Child);

impl Outside {
    /// `sleep 1000` as `user`, with `env` as its whole environment.
    fn sleep(user: User, env: &[(&str, &str)]) -> Outside {
        let mut c = match user {
            User::Root => Command::new("sleep"),
            User::Nobody => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "sleep"]);
                c
            }
        };
        c.arg("1000")
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = c.spawn().unwrap();
        let pid = child.id() as i32;
        // setpriv execs sleep in place: wait until the pid runs sleep as `user`.
        let ready = (0..500).any(|_| {
            let ok = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"sleep\0"))
                && std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == user.uid());
            if !ok {
                std::thread::sleep(Duration::from_millis(10));
            }
            ok
        });
        assert!(ready, "the outside process {pid} did not start as {user}");
        Outside(child)
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------
// Writes outside the writable roots
// ---------------------------------------------------------------------------

#[test]
fn writes_outside_the_writable_roots() {
    const T: &str = "writes_outside_the_writable_roots";
    let Some((users, helper)) = setup(T) else {
        return;
    };
    let mut f = Failures::default();
    for &u in &users {
        for mode in MODES {
            let fx = Fx::new(T, u, mode, helper, &[], "");
            let ws = fx.ws.clone();
            let sym = fx.outside_file("t-symlink");
            let trunc = fx.outside_file("t-trunc");
            let hard = fx.outside_file("t-hardlink");
            let direct = fx.outside_file("t-write");
            let link_src = fx.outside_file("t-link");
            let ren_out = fx.outside_file("t-rename-out");
            let ren_in = fx.outside_file("t-rename-in");
            let chmod = fx.outside_file("t-chmod");
            let utime = fx.outside_file("t-utime");
            let mtime = std::fs::metadata(&utime).unwrap().mtime();
            // Planted in the workspace, pointing outside.
            std::os::unix::fs::symlink(&sym, ws.join("symlink")).unwrap();
            std::os::unix::fs::symlink(&trunc, ws.join("trunc-link")).unwrap();
            std::os::unix::fs::symlink(&fx.outside, ws.join("dirlink")).unwrap();
            std::fs::hard_link(&hard, ws.join("hardlink")).unwrap();
            std::fs::write(ws.join("payload"), "payload\n").unwrap();
            chown_r(&ws, u);
            let w = fx.ws.display().to_string();
            let cases = [
                // Control: the workspace itself is writable.
                both(format!("write-ws={w}/payload"), "ok"),
                // The read-only mount view answers EROFS before Landlock's EACCES.
                case(format!("write-symlink={w}/symlink"), "EROFS", "EACCES"),
                case(
                    format!("write-direct={}", direct.display()),
                    "EROFS",
                    "EACCES",
                ),
                case(format!("truncate={w}/trunc-link"), "EROFS", "EACCES"),
                case(
                    format!("create-via-dirlink={w}/dirlink/created"),
                    "EROFS",
                    "EACCES",
                ),
                // The sandbox cannot make a hard link to an outside file: a link
                // across mounts (auto) or one that would gain write rights (Landlock
                // without the refer right) is EXDEV.
                both(
                    format!("link={}:{w}/stolen-link", link_src.display()),
                    "EXDEV",
                ),
                // Renames across mounts are EXDEV; Landlock alone refuses removing
                // from / creating in the outside directory with EACCES.
                case(
                    format!("rename-out={w}/payload:{}", ren_out.display()),
                    "EXDEV",
                    "EACCES",
                ),
                case(
                    format!("rename-in={}:{w}/stolen", ren_in.display()),
                    "EXDEV",
                    "EACCES",
                ),
                // Landlock does not mediate chmod and utime: without namespaces
                // the seccomp supervisor refuses them outside writable roots.
                case(format!("chmod={}", chmod.display()), "EROFS", "EPERM"),
                case(format!("utime={}", utime.display()), "EROFS", "EPERM"),
                // GAP (every mode): a hard link planted in a writable root by someone
                // outside the sandbox is the outside file itself; path-based rules
                // (Landlock, bind mounts) see a workspace path. Not in the plan's gaps.
                both(format!("write-hardlink={w}/hardlink"), "ok"),
            ];
            let Some(run) = fx.run_cases(&cases, &mut f) else {
                continue;
            };
            let original = "original\n";
            for p in [&sym, &trunc, &direct, &ren_out, &chmod, &utime] {
                f.state(
                    &fx,
                    &run,
                    "outside file unchanged",
                    read(p) == original,
                    format!("{} now holds {:?}", p.display(), read(p)),
                );
            }
            f.state(
                &fx,
                &run,
                "rename-in",
                read(&ren_in) == original,
                format!("{} is gone or changed", ren_in.display()),
            );
            f.state(
                &fx,
                &run,
                "create-via-dirlink",
                !fx.outside.join("created").exists(),
                "created a file in the outside directory",
            );
            let nlink = std::fs::metadata(&link_src).unwrap().nlink();
            f.state(
                &fx,
                &run,
                "link",
                nlink == 1,
                format!("{} has {nlink} links", link_src.display()),
            );
            f.state(
                &fx,
                &run,
                "write-hardlink (gap)",
                read(&hard) == "original\nPWNED\n",
                format!("{} holds {:?}", hard.display(), read(&hard)),
            );
            let m = std::fs::metadata(&chmod).unwrap().mode() & 0o777;
            let want = 0o644;
            f.state(
                &fx,
                &run,
                "chmod state",
                m == want,
                format!("mode {m:o}, expected {want:o}"),
            );
            let t = std::fs::metadata(&utime).unwrap().mtime();
            let want = mtime;
            f.state(
                &fx,
                &run,
                "utime state",
                t == want,
                format!("mtime {t}, expected {want}"),
            );
        }
    }
    f.finish(T);
}

// ---------------------------------------------------------------------------
// Reads of denied paths
// ---------------------------------------------------------------------------

#[test]
fn reads_of_denied_paths() {
    const T: &str = "reads_of_denied_paths";
    let Some((users, helper)) = setup(T) else {
        return;
    };
    let mut f = Failures::default();
    for &u in &users {
        for mode in MODES {
            let fx = Fx::new(T, u, mode, helper, &[], "");
            let h = fx.home().display().to_string();
            let key = format!("{h}/.ssh/id_ed25519");
            std::os::unix::fs::symlink(&key, fx.ws.join("key-link")).unwrap();
            chown_r(&fx.ws, u);
            let cases = [
                // Control: the rest of the home directory is readable.
                both(format!("read-bashrc={h}/.bashrc"), "ok"),
                both(format!("read-key={key}"), "EACCES"),
                both(format!("read-netrc={h}/.netrc"), "EACCES"),
                both(format!("read-key-procroot=/proc/self/root{key}"), "EACCES"),
                both(
                    format!("read-key-symlink={}/key-link", fx.ws.display()),
                    "EACCES",
                ),
                both("read-shadow=/etc/shadow", "EACCES"),
                // GAP (namespaces off): "denied directories can be listed (not read)
                // where an ancestor is listable" -- the ancestor's ReadDir covers it.
                case(format!("list-ssh={h}/.ssh"), "EACCES", "ok"),
            ];
            fx.run_cases(&cases, &mut f);
        }
    }
    f.finish(T);
}

// ---------------------------------------------------------------------------
// Exec outside exec coverage
// ---------------------------------------------------------------------------

#[test]
fn exec_outside_exec_coverage() {
    const T: &str = "exec_outside_exec_coverage";
    let Some((users, helper)) = setup(T) else {
        return;
    };
    let mut f = Failures::default();
    for &u in &users {
        for mode in MODES {
            let fx = Fx::new(T, u, mode, helper, &[], "");
            let copy = fx.scratch.join("copy");
            let shm = PathBuf::from(format!("/dev/shm/{}", fx.token.trim_start_matches("tag=")));
            let cases = [
                // Control: the helper runs itself from the workspace (exec covered).
                both(format!("exec-ws={}", fx.helper.display()), "ok"),
                // Written into the read+write (not exec) scratch dir, then execve'd:
                // noexec bind (auto) and Landlock (both) answer EACCES.
                both(format!("copyexec-scratch={}", copy.display()), "EACCES"),
                // The private /dev/shm (auto) is writable, not executable; the host's
                // (off) is not even writable: no profile grants it.
                case(
                    format!("copyexec-shm={}", shm.display()),
                    "EACCES",
                    "WRITE_EACCES",
                ),
                // GAP (namespaces off): "files in writable <root> (no exec) can still be
                // mapped executable (ld.so, mmap)". With namespaces the noexec bind
                // makes mmap(PROT_EXEC) fail with EPERM (ld.so only says it failed).
                case(format!("ldso={}", copy.display()), "MAPFAIL", "ok"),
                case(format!("mmap-exec={}", copy.display()), "EPERM", "ok"),
                // memfd_create + write ELF + execveat(AT_EMPTY_PATH): no path, so neither
                // Landlock nor a noexec mount sees it. Expected refused (EACCES, as from
                // a MFD_NOEXEC_SEAL memfd under vm.memfd_noexec = 2); see the report.
                both("memfd-exec", "EACCES"),
            ];
            fx.run_cases(&cases, &mut f);
            let _ = std::fs::remove_file(&shm);
        }
    }
    f.finish(T);
}

// ---------------------------------------------------------------------------
// The seccomp deny list: namespaces, mounts, kernel attack surface
// ---------------------------------------------------------------------------

#[test]
fn refused_syscalls() {
    const T: &str = "refused_syscalls";
    let Some((users, helper)) = setup(T) else {
        return;
    };
    let mut f = Failures::default();
    for &u in &users {
        for mode in MODES {
            let fx = Fx::new(T, u, mode, helper, &[], "");
            let w = fx.ws.display().to_string();
            let cases = [
                both("unshare-newuser", "EPERM"),
                both("unshare-newns", "EPERM"),
                both("clone-newuser", "EPERM"),
                // ENOSYS, so that libc falls back to clone(2), whose flags the filter sees.
                both("clone3-newuser", "ENOSYS"),
                both(format!("mount={w}"), "EPERM"),
                both("fsopen", "ENOSYS"),
                both("open_tree", "ENOSYS"),
                both(format!("chroot={w}"), "EPERM"),
                both("keyctl", "EPERM"),
                both("add_key", "EPERM"),
                both("request_key", "EPERM"),
                both("bpf", "EPERM"),
                both("perf_event_open", "EPERM"),
                both("userfaultfd", "EPERM"),
                both("personality", "EPERM"),
                both("open_by_handle_at", "EPERM"),
                // The x32 guard. (Kernels without CONFIG_X86_X32_ABI answer ENOSYS too.)
                both("x32", "ENOSYS"),
                both("io_uring_setup", "ENOSYS"),
            ];
            fx.run_cases(&cases, &mut f);
        }
    }
    f.finish(T);
}

/// The helper's attacks work where nothing refuses them: run outside the
/// sandbox as each user, the classes the suite expects refused succeed, so a
/// refusal inside is cordon's doing (and a broken helper cannot pass for one).
#[test]
fn attacks_work_unsandboxed() {
    const T: &str = "attacks_work_unsandboxed";
    let Some((users, helper)) = setup(T) else {
        return;
    };
    let mut f = Failures::default();
    for &u in &users {
        let victim = Outside::sleep(u, &[("CORDON_SECRET", "x")]);
        let p = victim.pid();
        let mut cases = vec![
            "personality".to_string(),
            "keyctl".into(),
            "memfd-exec".into(),
            "tcp4".into(),
            "udp4".into(),
            format!("environ={p}"),
        ];
        // Host settings that refuse some of these on their own leave them out.
        let sysctl = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/{name}")).map(|s| s.trim().to_string())
        };
        let unset_or_0 = |name: &str| sysctl(name).ok().is_none_or(|v| v == "0");
        if u == User::Root || unset_or_0("kernel/apparmor_restrict_unprivileged_userns") {
            cases.push("unshare-newuser".into());
            cases.push("clone3-newuser".into());
        }
        if unset_or_0("kernel/yama/ptrace_scope") {
            cases.push(format!("ptrace={p}"));
        }
        if sysctl("kernel/io_uring_disabled").is_ok_and(|v| v == "0") {
            cases.push("io_uring_setup".into());
        }
        let mut c = match u {
            User::Root => Command::new(helper),
            User::Nobody => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                    .arg(helper);
                c
            }
        };
        c.args(&cases)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null());
        let out = c.output().unwrap();
        let stdout = text(&out.stdout);
        for class in &cases {
            let name = class.split('=').next().unwrap();
            let got = stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("RESULT {name} ")))
                .unwrap_or("<no RESULT line>");
            if got != "ok" {
                f.0.push(format!(
                    "[{T} as {u}] {name} unsandboxed: expected ok, got {got}\n{stdout}"
                ));
            }
        }
    }
    f.finish(T);
}

// ---------------------------------------------------------------------------
// Other processes
// ---------------------------------------------------------------------------

#[test]
fn other_processes() {
    const T: &str = "other_processes";
    let Some((users, helper)) = setup(T) else {
        return;
    };
    let mut f = Failures::default();
    for &u in &users {
        for mode in MODES {
            let fx = Fx::new(T, u, mode, helper, &[], "");
            let victim = Outside::sleep(u, &[("CORDON_OUTSIDE_SECRET", "s3cr3t-outside")]);
            let p = victim.pid();
            let cases = [
                // seccomp: refused whatever the target.
                both(format!("ptrace={p}"), "EPERM"),
                both(format!("process_vm_readv={p}"), "EPERM"),
                both(format!("pidfd_getfd={p}"), "EPERM"),
                // A PID namespace hides the process (ESRCH/ENOENT); without one,
                // Landlock's signal scope answers EPERM and its ptrace rule (through
                // /proc's ptrace_may_access) EACCES.
                case(format!("kill={p}"), "ESRCH", "EPERM"),
                case(format!("pidfd-kill={p}"), "ESRCH", "EPERM"),
                case(format!("environ={p}"), "ENOENT", "EACCES"),
                case(format!("mem={p}"), "ENOENT", "EACCES"),
                case(
                    format!("read-procroot-other=/proc/{p}/root/etc/passwd"),
                    "ENOENT",
                    "EACCES",
                ),
                // The sandbox's own parent (init, or the launcher without namespaces)
                // is outside the Landlock domain, and still holds the launcher's
                // environment (GITHUB_TOKEN below).
                both("environ-parent", "EACCES"),
                both("kill-parent", "EPERM"),
            ];
            let args: Vec<String> = cases.iter().map(|c| c.arg.clone()).collect();
            let mut cmd = fx.command(&args);
            cmd.env("GITHUB_TOKEN", "ghp_cordon_escape_test");
            let run = fx.run(
                cmd,
                &args,
                "GITHUB_TOKEN=ghp_cordon_escape_test ",
                Duration::from_secs(120),
            );
            if fx.check_run(&run, 0, &mut f) {
                fx.check_cases(&run, &cases, &mut f);
            }
            f.state(
                &fx,
                &run,
                "outside process",
                escape_pid_alive(p),
                format!("outside process {p} was killed"),
            );
        }
    }
    f.finish(T);
}

// ---------------------------------------------------------------------------
// Terminal injection
// ---------------------------------------------------------------------------

/// A pty whose slave is raw (so one injected byte is readable at once).
fn raw_pty() -> nix::pty::OpenptyResult {
    use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
    let pty = nix::pty::openpty(
        None::<&nix::pty::Winsize>,
        None::<&nix::sys::termios::Termios>,
    )
    .unwrap();
    let mut t = tcgetattr(&pty.slave).unwrap();
    cfmakeraw(&mut t);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &t).unwrap();
    pty
}

/// Whether input is waiting on the slave (something was injected).
fn pty_has_input(pty: &nix::pty::OpenptyResult) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(pty.slave.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).unwrap() > 0
}

#[test]
fn terminal_injection() {
    const T: &str = "terminal_injection";
    let Some((users, helper)) = setup(T) else {
        return;
    };
    let mut f = Failures::default();
    let legacy =
        std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti").map(|s| s.trim() == "1");
    for &u in &users {
        // Control: outside the sandbox, on its controlling terminal, the helper's
        // TIOCSTI (also with high bits) goes through where the kernel allows it,
        // and TIOCLINUX on a pty is EINVAL (ENOTTY without CONFIG_VT): inside,
        // EPERM is the filter's.
        if legacy.as_ref().is_ok_and(|l| *l) {
            let pty = raw_pty();
            let mut c = match u {
                User::Root => Command::new(helper),
                User::Nobody => {
                    let mut c = Command::new("setpriv");
                    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                        .arg(helper);
                    c
                }
            };
            c.args(["tiocsti", "tiocsti-high", "tioclinux"])
                .stdin(Stdio::from(pty.slave.try_clone().unwrap()));
            let out = text(&c.output().unwrap().stdout);
            for (class, want) in [
                ("tiocsti", "ok"),
                ("tiocsti-high", "ok"),
                ("tioclinux", "EINVAL|ENOTTY"),
            ] {
                let got = out
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("RESULT {class} ")))
                    .unwrap_or("<no RESULT line>");
                if !want.split('|').any(|w| w == got) {
                    f.0.push(format!(
                        "[{T} as {u}] unsandboxed {class}: expected {want}\n{out}"
                    ));
                }
            }
            if !pty_has_input(&pty) {
                f.0.push(format!(
                    "[{T} as {u}] unsandboxed TIOCSTI injected nothing\n{out}"
                ));
            }
        }
        for mode in MODES {
            let fx = Fx::new(T, u, mode, helper, &[], "");
            let pty = raw_pty();
            let cases = [
                // Control: an ordinary ioctl on the inherited terminal works.
                both("tiocgwinsz", "ok"),
                both("tiocsti", "EPERM"),
                // 0xffffffff00005412: the kernel reads the request as 32 bits (TIOCSTI).
                both("tiocsti-high", "EPERM"),
                both("tioclinux", "EPERM"),
            ];
            let args: Vec<String> = cases.iter().map(|c| c.arg.clone()).collect();
            let mut cmd = fx.command(&args);
            cmd.stdin(Stdio::from(pty.slave.try_clone().unwrap()));
            let run = fx.run(cmd, &args, "", Duration::from_secs(120));
            if fx.check_run(&run, 0, &mut f) {
                fx.check_cases(&run, &cases, &mut f);
            }
            f.state(
                &fx,
                &run,
                "terminal input",
                !pty_has_input(&pty),
                "bytes were injected into the terminal",
            );
            // The precondition: inside, the terminal became the helper's controlling
            // terminal, where the kernel itself would allow TIOCSTI.
            let not_ctty = run.info("tiocsti");
            f.state(
                &fx,
                &run,
                "controlling terminal",
                not_ctty.is_empty(),
                format!("the helper could not take the pty as its terminal: {not_ctty:?}"),
            );
        }
    }
    f.finish(T);
}

// ---------------------------------------------------------------------------
// Network off
// ---------------------------------------------------------------------------

#[test]
fn network_off() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener};
    const T: &str = "network_off";
    let Some((users, helper)) = setup(T) else {
        return;
    };
    let mut f = Failures::default();
    for &u in &users {
        for mode in MODES {
            // Listeners outside the sandbox: abstract (stream, datagram) and a
            // pathname socket under the user's home that the profile denies.
            let name = format!(
                "cordon-escape-{}-{}-{}",
                std::process::id(),
                u.uid(),
                mode.name()
            );
            let abs =
                UnixListener::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
            let dgram_name = format!("{name}-dgram");
            let dgram =
                UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&dgram_name).unwrap())
                    .unwrap();
            let sock = home(u).join(format!("{name}.sock"));
            let _ = std::fs::remove_file(&sock);
            let path = UnixListener::bind(&sock).unwrap();
            std::os::unix::fs::chown(&sock, Some(u.uid()), Some(u.uid())).unwrap();
            for l in [&abs, &path] {
                l.set_nonblocking(true).unwrap();
            }
            dgram.set_nonblocking(true).unwrap();
            let fx = Fx::new(T, u, mode, helper, std::slice::from_ref(&sock), "");
            let cases = [
                // Control: unix sockets stay available.
                both("unix-stream", "ok"),
                both("tcp4", "EAFNOSUPPORT"),
                both("udp4", "EAFNOSUPPORT"),
                both("tcp6", "EAFNOSUPPORT"),
                both("udp6", "EAFNOSUPPORT"),
                both("raw4", "EAFNOSUPPORT"),
                both("raw6", "EAFNOSUPPORT"),
                both("packet", "EAFNOSUPPORT"),
                both("netlink-netfilter", "EAFNOSUPPORT"),
                both("netlink-route", "EAFNOSUPPORT"),
                both("socketpair-inet", "EAFNOSUPPORT"),
                // A network namespace has its own abstract names (ECONNREFUSED);
                // without one, Landlock's abstract-unix scope answers EPERM.
                case(format!("abstract={name}"), "ECONNREFUSED", "EPERM"),
                case(
                    format!("abstract-dgram={dgram_name}"),
                    "ECONNREFUSED",
                    "EPERM",
                ),
                // The mask (mode-000 file) makes connect's write check fail: EACCES;
                // without namespaces the supervisor refuses it (made outside the
                // sandbox, not in [network] unix_connect; tests/unix_sockets.rs).
                both(format!("unix-path={}", sock.display()), "EACCES"),
            ];
            if let Some(run) = fx.run_cases(&cases, &mut f) {
                f.state(
                    &fx,
                    &run,
                    "abstract listener",
                    abs.accept().is_err(),
                    "accepted a connection from the sandbox",
                );
                let mut b = [0u8; 8];
                f.state(
                    &fx,
                    &run,
                    "abstract datagram",
                    dgram.recv(&mut b).is_err(),
                    "received a datagram from the sandbox",
                );
                let accepted = path.accept().is_ok();
                f.state(
                    &fx,
                    &run,
                    "pathname listener",
                    !accepted,
                    format!("accepted a connection: {accepted}"),
                );
            }
            let _ = std::fs::remove_file(&sock);
        }
    }
    f.finish(T);
}

// ---------------------------------------------------------------------------
// Descriptors and environment
// ---------------------------------------------------------------------------

#[test]
fn leaked_descriptors_and_secrets() {
    const T: &str = "leaked_descriptors_and_secrets";
    let Some((users, helper)) = setup(T) else {
        return;
    };
    let secret = format!("cordon-secret-{}", std::process::id());
    let env: Vec<(&str, String)> = vec![
        ("GITHUB_TOKEN", format!("ghp_{secret}")),
        ("AWS_SECRET_ACCESS_KEY", secret.clone()),
        ("OPENAI_API_KEY", secret.clone()),
        ("NPM_TOKEN", secret.clone()),
        ("DATABASE_PASSWORD", secret.clone()),
        ("SSH_AUTH_SOCK", "/nonexistent/agent.sock".into()),
        ("LD_PRELOAD", "/nonexistent/libcordon-evil.so".into()),
        ("LD_LIBRARY_PATH", "/nonexistent".into()),
        ("BASH_ENV", "/nonexistent/rc".into()),
        ("PYTHONPATH", "/nonexistent".into()),
        ("TERM", "xterm".into()),
    ];
    let mut f = Failures::default();
    for &u in &users {
        for mode in MODES {
            let fx = Fx::new(T, u, mode, helper, &[], "");
            let mut cases = vec![
                // Only the standard streams and the descriptor the caller passed on
                // purpose (7, not close-on-exec); none of the launcher's own.
                both("fds", "0,1,2,7"),
                // Controls: kept variables pass.
                both("getenv-LANG=LANG", "ok"),
                both("getenv-TERM=TERM", "ok"),
                both(format!("envscan={secret}"), "ENOENT"),
            ];
            for (k, _) in &env {
                if *k != "TERM" {
                    cases.push(both(format!("getenv-{k}={k}"), "ENOENT"));
                }
            }
            let args: Vec<String> = cases.iter().map(|c| c.arg.clone()).collect();
            let mut cmd = fx.command(&args);
            cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
            let passed = std::os::fd::OwnedFd::from(File::open(&fx.helper).unwrap());
            pass_fd(&mut cmd, &passed, 7);
            let shown: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
            let run = fx.run(
                cmd,
                &args,
                &format!("{shown}(with fd 7 open) "),
                Duration::from_secs(120),
            );
            drop(passed);
            if fx.check_run(&run, 0, &mut f) {
                fx.check_cases(&run, &cases, &mut f);
            }
        }
    }
    f.finish(T);
}

/// Make `file` descriptor `fd` (not close-on-exec) of the spawned process. The
/// caller keeps `file` open until the process has started.
fn pass_fd(cmd: &mut Command, file: &std::os::fd::OwnedFd, fd: i32) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let raw = file.as_raw_fd();
    // SAFETY: dup2(2) and fcntl(2) are async-signal-safe; `raw` is open in the
    // parent while the command is spawned (the caller holds it).
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself leaves close-on-exec set: when the parent's
            // descriptor already has the number (other tests' files decide which
            // numbers are free), clear the flag instead.
            let r = if raw == fd {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, fd)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------
// Limits: fork bomb, memory bomb, a daemon after the timeout
// ---------------------------------------------------------------------------

// Separate profiles: as uid 65534 without namespaces RLIMIT_NPROC counts the
// user's processes host-wide, so a process limit would let a concurrent fork
// bomb starve the memory bomb's own fork.
const PROCESS_LIMIT: &str = "[limits]\nprocesses = 64\ntimeout = \"60s\"\n";
const MEMORY_LIMIT: &str = "[limits]\nmemory = \"256MiB\"\ntimeout = \"60s\"\n";

/// Nothing of the run is left on the host: processes carrying its token.
fn no_leftovers(fx: &Fx, run: &Run, f: &mut Failures) {
    let token = fx.token.clone();
    let gone = (0..300).any(|_| {
        let left = pids_with_arg(&token);
        if !left.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
        left.is_empty()
    });
    f.state(
        fx,
        run,
        "leftover processes",
        gone,
        format!(
            "still alive after cordon returned: {:?}",
            pids_with_arg(&token)
        ),
    );
}

#[test]
fn fork_bomb_under_limits() {
    const T: &str = "fork_bomb_under_limits";
    let Some((users, helper)) = setup(T) else {
        return;
    };
    let mut f = Failures::default();
    for &u in &users {
        for mode in MODES {
            let fx = Fx::new(T, u, mode, helper, &[], PROCESS_LIMIT);
            // The payload reports its first refused fork and exits 0; cordon ends the
            // rest of the tree (still forking) and returns the payload's status.
            let cases = [both("forkbomb", "EAGAIN")];
            if let Some(run) = fx.run_cases(&cases, &mut f) {
                no_leftovers(&fx, &run, &mut f);
            }
        }
    }
    f.finish(T);
}

#[test]
fn memory_bomb_under_limits() {
    const T: &str = "memory_bomb_under_limits";
    let Some((users, helper)) = setup(T) else {
        return;
    };
    let mut f = Failures::default();
    for &u in &users {
        for mode in MODES {
            let fx = Fx::new(T, u, mode, helper, &[], MEMORY_LIMIT);
            let cases = [both("membomb", "ENOMEM")];
            if let Some(run) = fx.run_cases(&cases, &mut f) {
                let mib: Option<u64> = run.info("membomb").iter().find_map(|l| {
                    l.strip_prefix("INFO membomb allocated ")?
                        .split(' ')
                        .next()?
                        .parse()
                        .ok()
                });
                f.state(
                    &fx,
                    &run,
                    "memory limit",
                    mib.is_some_and(|m| m <= 256),
                    format!("allocated {mib:?} MiB under memory = 256MiB"),
                );
            }
        }
    }
    f.finish(T);
}

/// The host pid of the process carrying `token` whose pid in its own PID
/// namespace is `nspid` (the daemon writes the pid it sees).
fn host_pid_of(token: &str, nspid: &str) -> Option<i32> {
    let nspid: i32 = nspid.trim().parse().ok()?;
    pids_with_arg(token).into_iter().find(|p| {
        std::fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .and_then(|l| l.split_whitespace().last())
                .and_then(|n| n.parse::<i32>().ok())
                == Some(nspid)
        })
    })
}

#[test]
fn daemon_dies_with_the_run() {
    const T: &str = "daemon_dies_with_the_run";
    let Some((users, helper)) = setup(T) else {
        return;
    };
    let mut f = Failures::default();
    for &u in &users {
        for mode in MODES {
            // setsid + double fork, SIGTERM and SIGHUP ignored; then the payload sleeps
            // until the 1 s timeout (exit 124: SIGTERM to the tree, SIGKILL after the grace).
            let fx = Fx::new(T, u, mode, helper, &[], "[limits]\ntimeout = \"1s\"\n");
            let pidfile = fx.ws.join("daemon.pid");
            let args = vec![format!("daemon={}", pidfile.display()), "sleep".to_string()];
            let mut child = fx
                .command(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let started = Instant::now();
            let mut daemon = None;
            for _ in 0..1000 {
                daemon = host_pid_of(&fx.token, &read(&pidfile));
                if daemon.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let (status, hung) = wait_for(&mut child, Duration::from_secs(60));
            let run = Run {
                status,
                hung,
                elapsed: started.elapsed(),
                stdout: String::new(),
                stderr: String::new(),
                repro: fx.repro(&args, ""),
            };
            f.state(
                &fx,
                &run,
                "daemon started",
                daemon.is_some(),
                "the daemonized grandchild never showed up on the host",
            );
            if let Some(d) = daemon {
                f.state(
                    &fx,
                    &run,
                    "daemon",
                    !escape_pid_alive(d),
                    format!("the daemon (host pid {d}) outlived the run"),
                );
            }
            f.state(
                &fx,
                &run,
                "timeout",
                !hung && status.code() == Some(124),
                format!("expected exit 124 after the 1 s timeout, got {status} (hung: {hung})"),
            );
            no_leftovers(&fx, &run, &mut f);

            // The same daemon when the payload exits at once: it must not outlive the run.
            let fx = Fx::new(T, u, mode, helper, &[], "[limits]\ntimeout = \"60s\"\n");
            let pidfile = fx.ws.join("daemon.pid");
            let cases = [both(format!("daemon={}", pidfile.display()), "ok")];
            if let Some(run) = fx.run_cases(&cases, &mut f) {
                no_leftovers(&fx, &run, &mut f);
            }
        }
    }
    f.finish(T);
}
