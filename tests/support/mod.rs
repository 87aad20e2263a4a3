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
        skip(test, "not running as root: cannot also run as root and as uid 65534");
        vec![]
    }
}

/// The binary, copied once to a world-readable place so uid 65534 can run it
/// even when the build tree lives under a private home directory.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_BIN_EXE_cordon"));
        let dir = std::env::temp_dir().join(format!("cordon-test-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
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
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(bin());
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
    let dir = std::env::temp_dir().join(format!("cordon-test-home-{}-{}", user.uid(), std::process::id()));
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
    let d = tempfile::Builder::new().prefix("cordon-test-").tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_r(d.path(), user);
    d
}

pub fn chown_r(p: &Path, user: User) {
    if !is_root() {
        return;
    }
    let st = Command::new("chown").arg("-R").arg(format!("{0}:{0}", user.uid())).arg(p).status().unwrap();
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
        skip(test, &format!("Landlock ABI {abi} needed, this kernel has {have}"));
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
        let d = std::env::temp_dir().join(format!("cordon-test-shared-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    })
}

pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}
