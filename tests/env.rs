//! The child's environment, read back with /usr/bin/env inside the sandbox, as
//! root and as uid 65534: secrets and unkept variables dropped, PATH/HOME/LANG
//! kept, `[env] set` applied, loader and interpreter injection variables removed
//! even under `keep = ["*"]` unless kept by exact name, `[env.secrets]` injected.
//! The environment is built before the namespaces exist, so it does not depend
//! on the namespace mode: the scrubbing test runs in both modes, the others in
//! the default one.

mod support;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::*;

/// The environment `/usr/bin/env` prints inside `cordon run -p PROFILE`, with
/// `vars` added to the harness's clean environment.
fn env_inside(
    user: User,
    profile: &str,
    ws: &Path,
    vars: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let out = cordon(user)
        .args(["run", "-q", "-p", profile, "-w"])
        .arg(ws)
        .current_dir(ws)
        .envs(vars.iter().copied())
        .args(["--", "/usr/bin/env"])
        .output()
        .unwrap();
    assert_code(&out, 0, format!("env as {user} under {profile}"));
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `cordon run -q -p PROFILE -w WS -- /usr/bin/true` as `user`.
fn true_under(user: User, profile: &str, ws: &Path) -> std::process::Output {
    cordon(user)
        .args(["run", "-q", "-p", profile, "-w"])
        .arg(ws)
        .current_dir(ws)
        .args(["--", "/usr/bin/true"])
        .output()
        .unwrap()
}

const SECRETS: &[(&str, &str)] = &[
    ("GITHUB_TOKEN", "ghp_secret"),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
    ("FOO_PASSWORD", "hunter2"),
    ("SSH_AUTH_SOCK", "/nonexistent/cordon-test-agent.sock"),
];

#[test]
fn secrets_and_unkept_variables_are_dropped() {
    for user in users("secrets_and_unkept_variables_are_dropped") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let mut vars = SECRETS.to_vec();
            vars.push(("CORDON_TEST_UNKEPT", "x"));
            let env = env_inside(user, &ns_profile("workspace-write", ns), ws.path(), &vars);
            let ctx = format!("{user}, {ns}");
            for (k, _) in &vars {
                assert!(
                    !env.contains_key(*k),
                    "{ctx}: {k} reached the sandbox: {env:?}"
                );
            }
            assert_eq!(
                env.get("PATH").map(String::as_str),
                Some("/usr/local/bin:/usr/bin:/bin"),
                "{ctx}"
            );
            assert_eq!(
                env.get("HOME").map(PathBuf::from),
                Some(home(user)),
                "{ctx}"
            );
            assert_eq!(
                env.get("LANG").map(String::as_str),
                Some("C.UTF-8"),
                "{ctx}"
            );
        }
    }
}

/// `keep = ["*"]` keeps everything but what `remove` names: the secrets still go.
#[test]
fn remove_wins_over_keep_everything() {
    let p = profile_ns(
        "keep-all",
        "extends = \"workspace-write\"\n[env]\nkeep = [\"*\"]\n",
        Ns::Auto,
    );
    for user in users("remove_wins_over_keep_everything") {
        let ws = tempdir(user);
        let mut vars = SECRETS.to_vec();
        vars.push(("CORDON_TEST_UNKEPT", "x"));
        let env = env_inside(user, &p, ws.path(), &vars);
        for (k, _) in SECRETS {
            assert!(
                !env.contains_key(*k),
                "{user}: {k} reached the sandbox under keep = [\"*\"]"
            );
        }
        // The control: keep = ["*"] does keep an ordinary variable.
        assert_eq!(
            env.get("CORDON_TEST_UNKEPT").map(String::as_str),
            Some("x"),
            "{user}"
        );
    }
}

/// The C library the payload runs on: a harmless LD_PRELOAD value. Read from
/// the maps of a dynamically linked `cat`, not our own: test binaries are linked
/// statically (.cargo/config.toml) and map no libc.
fn libc_path() -> String {
    let out = std::process::Command::new("cat")
        .arg("/proc/self/maps")
        .output()
        .unwrap();
    let maps = String::from_utf8_lossy(&out.stdout);
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        .expect("libc in /proc/self/maps")
        .to_string()
}

#[test]
fn injection_variables_need_an_exact_keep() {
    let libc = libc_path();
    let injected = [
        ("LD_PRELOAD", libc.as_str()),
        ("BASH_ENV", "/dev/null"),
        ("NODE_OPTIONS", "--max-old-space-size=64"),
    ];
    let glob = profile_ns(
        "keep-glob",
        "extends = \"workspace-write\"\n[env]\nkeep = [\"*\", \"LD_*\", \"*_ENV\"]\n",
        Ns::Auto,
    );
    let exact = profile_ns(
        "keep-exact",
        "extends = \"workspace-write\"\n[env]\nkeep = [\"*\", \"LD_PRELOAD\", \"BASH_ENV\", \"NODE_OPTIONS\"]\n",
        Ns::Auto,
    );
    for user in users("injection_variables_need_an_exact_keep") {
        let ws = tempdir(user);
        let env = env_inside(user, &glob, ws.path(), &injected);
        for (k, _) in &injected {
            assert!(!env.contains_key(*k), "{user}: {k} kept by a glob: {env:?}");
        }
        let env = env_inside(user, &exact, ws.path(), &injected);
        for (k, v) in &injected {
            assert_eq!(
                env.get(*k).map(String::as_str),
                Some(*v),
                "{user}: {k} kept by exact name"
            );
        }
    }
}

#[test]
fn env_set_is_applied() {
    let p = profile_ns(
        "env-set",
        "extends = \"workspace-write\"\n[env.set]\nGREETING = \"hello world\"\nLANG = \"C\"\nLITERAL = \"$$HOME\"\n",
        Ns::Auto,
    );
    for user in users("env_set_is_applied") {
        let ws = tempdir(user);
        let env = env_inside(user, &p, ws.path(), &[]);
        assert_eq!(
            env.get("GREETING").map(String::as_str),
            Some("hello world"),
            "{user}"
        );
        assert_eq!(
            env.get("LANG").map(String::as_str),
            Some("C"),
            "{user}: set overrides a kept variable"
        );
        assert_eq!(
            env.get("LITERAL").map(String::as_str),
            Some("$HOME"),
            "{user}: $$ is a literal $"
        );
    }
}

#[test]
fn env_secrets_are_injected() {
    for user in users("env_secrets_are_injected") {
        let ws = tempdir(user);
        let store = tempdir(user);
        let secret_file = store.path().join("db-pass");
        std::fs::write(&secret_file, "s3cret-from-file\n").unwrap();
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        chown_r(&secret_file, user);
        let p = profile_ns(
            "secrets",
            &format!(
                "extends = \"workspace-write\"\n[env.secrets]\nAPI_TOKEN = {{ from = \"HOST_API_TOKEN\" }}\nDB_PASS = {{ file = \"{}\" }}\n",
                secret_file.display()
            ),
            Ns::Auto,
        );
        let env = env_inside(
            user,
            &p,
            ws.path(),
            &[("HOST_API_TOKEN", "s3cret-from-env")],
        );
        assert_eq!(
            env.get("API_TOKEN").map(String::as_str),
            Some("s3cret-from-env"),
            "{user}"
        );
        assert_eq!(
            env.get("DB_PASS").map(String::as_str),
            Some("s3cret-from-file"),
            "{user}"
        );
        assert!(
            !env.contains_key("HOST_API_TOKEN"),
            "{user}: the host variable itself leaked"
        );

        // A secret whose source is missing: cordon refuses (125), the command never runs.
        let marker = ws.path().join("marker");
        let out = cordon(user)
            .args(["run", "-q", "-p", &p, "-w"])
            .arg(ws.path())
            .current_dir(ws.path())
            .args(["--", "/usr/bin/touch"])
            .arg(&marker)
            .output()
            .unwrap();
        assert_code(&out, 125, format!("{user}: HOST_API_TOKEN unset"));
        let msg = assert_one_error_line(&out, "missing secret source");
        assert!(msg.contains("API_TOKEN"), "{user}: {msg}");
        assert!(
            !marker.exists(),
            "{user}: the command ran without its secret"
        );
    }
}

#[test]
fn a_profile_without_env_keep_gets_the_minimal_base() {
    // No `extends`, no `[env]`: the command still finds its programs and its
    // home; anything else stays outside. `keep = []` said explicitly keeps none.
    let fs = "[filesystem]\nread = [\"/\"]\nexec = [\"/usr\", \"/bin\", \"/lib\", \"/lib64\"]\nwrite = [\"${WORKSPACE}\"]\n";
    for user in users("a_profile_without_env_keep_gets_the_minimal_base") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let ws = tempdir(user);
            let bare = profile_ns("no-env", fs, ns);
            let vars = [
                ("TERM", "xterm-test"),
                ("CORDON_TEST_UNKEPT", "x"),
                ("GITHUB_TOKEN", "ghp_x"),
            ];
            let env = env_inside(user, &bare, ws.path(), &vars);
            assert_eq!(
                env.get("PATH").map(String::as_str),
                Some("/usr/local/bin:/usr/bin:/bin"),
                "{ctx}: {env:?}"
            );
            assert_eq!(
                env.get("HOME"),
                Some(&home(user).display().to_string()),
                "{ctx}"
            );
            assert_eq!(
                env.get("LANG").map(String::as_str),
                Some("C.UTF-8"),
                "{ctx}"
            );
            assert_eq!(
                env.get("TERM").map(String::as_str),
                Some("xterm-test"),
                "{ctx}"
            );
            for k in ["CORDON_TEST_UNKEPT", "GITHUB_TOKEN"] {
                assert!(
                    !env.contains_key(k),
                    "{ctx}: {k} reached the sandbox: {env:?}"
                );
            }

            let none = profile_ns("keep-none", &format!("{fs}[env]\nkeep = []\n"), ns);
            let out = cordon(user)
                .args(["run", "-q", "-p", &none, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .args(["--", "/usr/bin/env"])
                .output()
                .unwrap();
            assert_code(&out, 0, format!("{ctx}: env under keep = []"));
            let printed = text(&out.stdout);
            for k in ["PATH=", "HOME=", "LANG="] {
                assert!(
                    !printed.lines().any(|l| l.starts_with(k)),
                    "{ctx}: keep = [] kept {k}: {printed}"
                );
            }
        }
    }
}

#[test]
fn a_failed_run_names_the_variables_the_profile_removed() {
    for user in users("a_failed_run_names_the_variables_the_profile_removed") {
        let ws = tempdir(user);
        let run = |script: &str| {
            cordon(user)
                .args(["run", "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .env("ANTHROPIC_API_KEY", "sk-ant-value-never-shown")
                .args(["--", "/bin/sh", "-c", script])
                .output()
                .unwrap()
        };
        let failed = run("exit 3");
        assert_code(&failed, 3, format!("{user}: a failing command"));
        let err = text(&failed.stderr);
        assert!(
            err.contains("ANTHROPIC_API_KEY (matched *_KEY)"),
            "{user}: the summary does not name the removed key: {err}"
        );
        assert!(
            !err.contains("sk-ant-value"),
            "{user}: a value was printed: {err}"
        );
        let ok = run("exit 0");
        assert_code(&ok, 0, format!("{user}: a command that succeeds"));
        assert!(
            !text(&ok.stderr).contains("ANTHROPIC_API_KEY"),
            "{user}: named after a run that succeeded: {}",
            text(&ok.stderr)
        );
    }
}

#[test]
fn optional_secrets_are_left_out_when_their_source_is_missing() {
    for user in users("optional_secrets_are_left_out_when_their_source_is_missing") {
        let ws = tempdir(user);
        let store = tempdir(user);
        let present = store.path().join("present");
        std::fs::write(&present, "from-file\n").unwrap();
        chown_r(&present, user);
        let unreadable = store.path().join("unreadable");
        std::fs::write(&unreadable, "x\n").unwrap();
        std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
        let absent = store.path().join("absent");
        let secrets = format!(
            "extends = \"workspace-write\"\n[env.secrets]\n\
             FROM_SET = {{ from = \"HOST_SET\", optional = true }}\n\
             FROM_UNSET = {{ from = \"HOST_UNSET\", optional = true }}\n\
             FILE_PRESENT = {{ file = \"{}\", optional = true }}\n\
             FILE_ABSENT = {{ file = \"{}\", optional = true }}\n",
            present.display(),
            absent.display()
        );
        let p = profile_ns("optional-secrets", &secrets, Ns::Auto);
        let env = env_inside(user, &p, ws.path(), &[("HOST_SET", "from-env")]);
        assert_eq!(
            env.get("FROM_SET").map(String::as_str),
            Some("from-env"),
            "{user}"
        );
        assert_eq!(
            env.get("FILE_PRESENT").map(String::as_str),
            Some("from-file"),
            "{user}"
        );
        for k in ["FROM_UNSET", "FILE_ABSENT", "HOST_SET"] {
            assert!(!env.contains_key(k), "{user}: {k} in {env:?}");
        }
        // Optional means "may not exist", not "may fail": a file cordon may not
        // read still refuses the run (as uid 65534; root reads any mode).
        if user == User::Nobody {
            let p = profile_ns(
                "optional-unreadable",
                &format!(
                    "extends = \"workspace-write\"\n[env.secrets]\nX = {{ file = \"{}\", optional = true }}\n",
                    unreadable.display()
                ),
                Ns::Auto,
            );
            let out = true_under(user, &p, ws.path());
            assert_code(&out, 125, format!("{user}: an unreadable optional secret"));
        }
    }
}

#[test]
fn secret_files_the_run_could_replace_or_that_are_not_files_are_refused() {
    // A secret file in a root the run can write would be the payload's to
    // replace with a link to a key it may not read, handed over by the next
    // run; a FIFO would block the launcher, a device fill its memory.
    for user in users("secret_files_the_run_could_replace_or_that_are_not_files_are_refused") {
        let ws = tempdir(user);
        let store = tempdir(user);
        std::fs::write(ws.path().join("token"), "t\n").unwrap();
        std::os::unix::fs::symlink(ws.path().join("token"), store.path().join("link")).unwrap();
        // A directory link in the workspace on the way (the payload re-points
        // it between runs), reached from outside through another link.
        std::fs::write(store.path().join("key"), "k\n").unwrap();
        std::os::unix::fs::symlink(store.path(), ws.path().join("dlink")).unwrap();
        std::os::unix::fs::symlink(ws.path().join("dlink"), store.path().join("chain")).unwrap();
        nix::unistd::mkfifo(
            &store.path().join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        std::fs::write(store.path().join("big"), vec![b'a'; 200 * 1024]).unwrap();
        chown_r(ws.path(), user);
        chown_r(store.path(), user);
        let cases = [
            (ws.path().join("token"), "which the run can write"),
            (store.path().join("link"), "which the run can write"),
            (store.path().join("chain/key"), "which the run can write"),
            (store.path().join("fifo"), "not a regular file"),
            (store.path().join("big"), "larger than 128 KiB"),
            (std::path::PathBuf::from("/dev/zero"), "/dev/zero"),
        ];
        for (file, why) in cases {
            let ctx = format!("{user}: {}", file.display());
            let p = profile_ns(
                "secret-file",
                &format!(
                    "extends = \"workspace-write\"\n[env.secrets]\nTOK = {{ file = \"{}\", optional = true }}\n",
                    file.display()
                ),
                Ns::Auto,
            );
            let out = true_under(user, &p, ws.path());
            assert_code(&out, 125, &ctx);
            let err = text(&out.stderr);
            assert!(
                err.contains("reading secret TOK") && err.contains(why),
                "{ctx}: {err}"
            );
        }
    }
}
