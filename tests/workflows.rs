//! What an agent does all day, under the default profile (workspace-write) in a
//! fresh workspace, as root and as uid 65534, with and without namespaces:
//! git, a C compiler, python, mktemp, /dev/null, and cargo with the user's own
//! toolchain. Each must simply work (exit 0) and leave its result behind.

mod support;
use std::path::Path;

use support::*;

/// `sh -c SCRIPT` under workspace-write in `ws`, with a temporary directory of
/// its own. (The harness's home lies directly in /tmp, and its denied ~/.ssh
/// and ~/.netrc inside a writable /tmp would, without namespaces, leave /tmp
/// itself list-only: a documented gap of that mode, and not a layout a real
/// home has. So TMPDIR is a directory beside it, as on a real machine.)
fn run_default(user: User, ns: Ns, ws: &Path, script: &str) -> std::process::Output {
    let tmp = tempdir(user);
    cordon(user)
        .args(["run", "-q", "-p", &ns_profile("workspace-write", ns), "-w"])
        .arg(ws)
        .current_dir(ws)
        .env("TMPDIR", tmp.path())
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .unwrap()
}

#[test]
fn git_init_add_commit_branch() {
    for user in users("git_init_add_commit_branch") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let out = run_default(
                user,
                ns,
                ws.path(),
                "set -e
                 git init -q
                 echo hello > README
                 git add README
                 git -c user.name=Test -c user.email=test@example.com commit -q -m first
                 git checkout -q -b feature
                 echo more >> README
                 git -c user.name=Test -c user.email=test@example.com commit -q -am second
                 git rev-parse --abbrev-ref HEAD
                 git log --format=%s",
            );
            let ctx = format!("git as {user}, {ns}");
            assert_code(&out, 0, &ctx);
            assert_eq!(text(&out.stdout), "feature\nsecond\nfirst\n", "{ctx}");
            assert!(ws.path().join(".git/refs/heads/feature").exists(), "{ctx}");
        }
    }
}

#[test]
fn compile_and_run_c() {
    for user in users("compile_and_run_c") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let out = run_default(
                user,
                ns,
                ws.path(),
                "set -e
                 printf '#include <stdio.h>\\nint main(void){puts(\"compiled\");return 0;}\\n' > hello.c
                 cc -O0 -o hello hello.c
                 ./hello",
            );
            let ctx = format!("cc as {user}, {ns}");
            assert_code(&out, 0, &ctx);
            assert_eq!(text(&out.stdout), "compiled\n", "{ctx}");
        }
    }
}

#[test]
fn python_mktemp_and_dev_null() {
    for user in users("python_mktemp_and_dev_null") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let out = run_default(
                user,
                ns,
                ws.path(),
                &format!(
                    "set -e
                     {PYTHON} -c 'open(\"py.txt\", \"w\").write(\"from python\\n\")'
                     t=$(mktemp)
                     echo tmp > \"$t\"
                     cat \"$t\"
                     rm \"$t\"
                     d=$(mktemp -d)
                     rmdir \"$d\"
                     echo gone > /dev/null
                     cat py.txt"
                ),
            );
            let ctx = format!("python/mktemp/dev-null as {user}, {ns}");
            assert_code(&out, 0, &ctx);
            assert_eq!(text(&out.stdout), "tmp\nfrom python\n", "{ctx}");
            assert_eq!(
                std::fs::read_to_string(ws.path().join("py.txt")).unwrap(),
                "from python\n"
            );
        }
    }
}

/// `cargo build --offline` of a crate without dependencies, with the user's own
/// toolchain in /root/.cargo and /root/.rustup (HOME=/root).
///
/// Root only: /root is mode 700 here, so uid 65534 cannot reach that toolchain
/// at all (checked below; should /root ever be searchable by others, the test
/// runs as uid 65534 too).
#[test]
fn cargo_build_offline_with_the_users_toolchain() {
    use std::os::unix::fs::PermissionsExt;
    let cargo_home = Path::new("/root/.cargo");
    if !cargo_home.join("bin/cargo").exists() || !Path::new("/root/.rustup").is_dir() {
        skip(
            "cargo_build_offline_with_the_users_toolchain",
            "no toolchain in /root/.cargo and /root/.rustup",
        );
        return;
    }
    let root_mode = std::fs::metadata("/root").unwrap().permissions().mode();
    for user in users("cargo_build_offline_with_the_users_toolchain") {
        if user == User::Nobody && root_mode & 0o001 == 0 {
            eprintln!(
                "cargo case not run as uid 65534: /root is mode {:o}",
                root_mode & 0o777
            );
            continue;
        }
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let krate = ws.path().join("hello");
            std::fs::create_dir_all(krate.join("src")).unwrap();
            std::fs::write(
                krate.join("Cargo.toml"),
                "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
            )
            .unwrap();
            std::fs::write(
                krate.join("src/main.rs"),
                "fn main() { println!(\"built by cargo\"); }\n",
            )
            .unwrap();
            chown_r(ws.path(), user);
            let out = cordon(user)
                .args(["run", "-q", "-p", &ns_profile("workspace-write", ns), "-w"])
                .arg(ws.path())
                .current_dir(&krate)
                .env("HOME", "/root")
                .env("CARGO_HOME", "/root/.cargo")
                .env("RUSTUP_HOME", "/root/.rustup")
                .env("PATH", "/root/.cargo/bin:/usr/local/bin:/usr/bin:/bin")
                .args([
                    "--",
                    "/bin/sh",
                    "-c",
                    "cargo build --offline -q && ./target/debug/hello",
                ])
                .output()
                .unwrap();
            let ctx = format!("cargo build as {user}, {ns}");
            assert_code(&out, 0, &ctx);
            assert_eq!(text(&out.stdout), "built by cargo\n", "{ctx}");
        }
    }
}
