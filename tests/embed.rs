//! The library, embedded as a Rust agent would embed it: a program with
//! threads of its own and children of its own runs 100 sandboxed commands
//! concurrently, and afterwards its children, signal mask, subreaper flag
//! and descriptors are as they were. As root and (this test binary re-run
//! under setpriv) as uid 65534, namespaces on and off.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cordon::session::Stdio;
use support::*;

/// Set in the re-run of this binary as uid 65534: what `embedded` needs.
const CHILD: &str = "CORDON_EMBED_CHILD";

fn open_fds() -> BTreeSet<String> {
    let mut v: BTreeSet<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            Some(format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            ))
        })
        .collect();
    // The directory read_dir had open.
    v.retain(|s| !s.contains("/proc/") || !s.contains("/fd"));
    v
}

fn sigmask() -> String {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("SigBlk:"))
        .unwrap()
        .to_string()
}

fn subreaper() -> bool {
    nix::sys::prctl::get_child_subreaper().unwrap()
}

/// The program's own child, killed and reaped whatever happens.
struct Own(std::process::Child);

impl Drop for Own {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The embedding program: returns a description of what went wrong, or Ok.
fn embedded(launcher: &Path, profile: &str, ws: &Path) -> Result<(), String> {
    // Threads of its own, running the whole time (one with signals blocked).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..3)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                if i == 0 {
                    let mut m = nix::sys::signal::SigSet::empty();
                    m.add(nix::sys::signal::Signal::SIGUSR1);
                    m.thread_block().unwrap();
                }
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n = n.wrapping_add(1);
                    std::thread::sleep(Duration::from_millis(1));
                }
                n
            })
        })
        .collect();
    // A child of its own, which no sandbox may reap, signal or kill.
    let mut own = Own(Command::new("/bin/sleep").arg("60").spawn().unwrap());
    let own = &mut own.0;
    let (fds0, mask0, reaper0) = (open_fds(), sigmask(), subreaper());

    let sandbox = cordon::Sandbox::builder()
        .profile(profile)
        .workspace(ws)
        .launcher(launcher)
        .build()
        .map_err(|e| format!("build: {}", cordon::error::chain(&e)))?;
    let errors = std::sync::Mutex::new(Vec::<String>::new());
    std::thread::scope(|s| {
        for t in 0..10 {
            let (sandbox, errors) = (&sandbox, &errors);
            s.spawn(move || {
                for i in 0..10 {
                    let n = t * 10 + i;
                    let out = sandbox
                        .command("/bin/sh")
                        .args(["-c", "echo \"$0 $GREETING\"; exit $(($0 % 7))"])
                        .arg(n.to_string())
                        .env("GREETING", "hello")
                        .current_dir(ws)
                        .output();
                    let msg = match out {
                        Err(e) => Some(format!("command {n}: {}", cordon::error::chain(&e))),
                        Ok(o) if o.outcome.code != (n % 7) as u8 => Some(format!(
                            "command {n}: exit {} ({:?})",
                            o.outcome.code,
                            text(&o.stderr)
                        )),
                        Ok(o) if text(&o.stdout) != format!("{n} hello\n") => {
                            Some(format!("command {n}: stdout {:?}", text(&o.stdout)))
                        }
                        Ok(o) if o.outcome.enforced.is_none() => {
                            Some(format!("command {n}: no enforced layers"))
                        }
                        Ok(_) => None,
                    };
                    errors.lock().unwrap().extend(msg);
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap();
    if !errors.is_empty() {
        return Err(format!(
            "{} of 100 commands failed: {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        ));
    }
    // The sandbox still denies: a write outside the workspace.
    let outside = harness_dir().join(format!("cordon-embed-{}", std::process::id()));
    let o = sandbox
        .command("/bin/sh")
        .args(["-c", "echo x > \"$0\""])
        .arg(&outside)
        .stderr(Stdio::Null)
        .status()
        .map_err(|e| cordon::error::chain(&e))?;
    if o.code == 0 || outside.exists() {
        let _ = std::fs::remove_file(&outside);
        return Err(format!(
            "a write outside the workspace worked (exit {})",
            o.code
        ));
    }
    // Not found is an outcome (127), as in `cordon run`.
    let o = sandbox
        .command("/no/such/program")
        .status()
        .map_err(|e| cordon::error::chain(&e))?;
    if o.code != 127 || o.not_executed.is_none() {
        return Err(format!(
            "a missing program: exit {} ({:?})",
            o.code, o.not_executed
        ));
    }
    // kill ends the command's tree.
    let mut c = sandbox
        .command("/bin/sleep")
        .arg("60")
        .spawn()
        .map_err(|e| cordon::error::chain(&e))?;
    c.kill().map_err(|e| cordon::error::chain(&e))?;
    let o = c.wait().map_err(|e| cordon::error::chain(&e))?;
    if o.code != 137 {
        return Err(format!("a killed command: exit {}", o.code));
    }
    drop((c, sandbox));

    // Nothing of the caller's was touched.
    if let Ok(Some(st)) = own.try_wait() {
        return Err(format!(
            "the program's own child ended during the runs: {st}"
        ));
    }
    own.kill().unwrap();
    let st = own.wait().unwrap();
    if std::os::unix::process::ExitStatusExt::signal(&st) != Some(9) {
        return Err(format!(
            "the program's own child was reaped by someone else: {st}"
        ));
    }
    let (fds1, mask1, reaper1) = (open_fds(), sigmask(), subreaper());
    if fds1 != fds0 {
        return Err(format!(
            "descriptors changed: before {fds0:?}, after {fds1:?}"
        ));
    }
    if mask1 != mask0 {
        return Err(format!("signal mask changed: {mask0} -> {mask1}"));
    }
    if reaper1 != reaper0 {
        return Err("the program became a child subreaper".into());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in busy {
        b.join().map_err(|_| "a thread of the program panicked")?;
    }
    Ok(())
}

#[test]
fn an_embedding_program_runs_100_commands_and_keeps_its_own_state() {
    if let Ok(spec) = std::env::var(CHILD) {
        // The re-run as uid 65534: launcher, profile, workspace.
        let parts: Vec<&str> = spec.split('\n').collect();
        if let Err(e) = embedded(Path::new(parts[0]), parts[1], Path::new(parts[2])) {
            panic!("as uid 65534: {e}");
        }
        return;
    }
    for user in users("an_embedding_program_runs_100_commands") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let ws = tempdir(user);
            let profile = ns_profile("workspace-write", ns);
            match user {
                User::Root => {
                    if let Err(e) = embedded(bin(), &profile, ws.path()) {
                        panic!("{ctx}: {e}");
                    }
                }
                User::Nobody => {
                    let me = copy_of_this_test();
                    let out = Command::new("setpriv")
                        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                        .arg(&me)
                        .args([
                            "--exact",
                            "an_embedding_program_runs_100_commands_and_keeps_its_own_state",
                            "--nocapture",
                            "--test-threads=1",
                        ])
                        .env_clear()
                        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                        .env("HOME", home(user))
                        .env(
                            CHILD,
                            format!("{}\n{}\n{}", bin().display(), profile, ws.path().display()),
                        )
                        .stdin(std::process::Stdio::null())
                        .output()
                        .unwrap();
                    assert_code(&out, 0, &ctx);
                    assert!(
                        text(&out.stdout).contains("1 passed"),
                        "{ctx}: the re-run ran the test\n{}",
                        text(&out.stdout)
                    );
                }
            }
        }
    }
}

/// This test binary, copied where uid 65534 can run it (removed at exit).
fn copy_of_this_test() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let dir = harness_dir().join(format!("cordon-embed-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        remove_at_exit(&dir);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dst = dir.join("embed-test");
        std::fs::copy(std::env::current_exe().unwrap(), &dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
        dst
    })
    .clone()
}
