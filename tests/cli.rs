//! The exit-code contract of `cordon run`, through the binary on this kernel:
//! the child's status; 128+N for signal N; 127 not found; 126 not executable;
//! 125 usage error or bad profile; `--help` 0. Errors are one line "cordon: ...".

mod support;
use std::os::unix::fs::PermissionsExt;

use support::*;

/// `cordon run -q -p PROFILE -w WS -- ARGS...` as `user`.
fn run(user: User, profile: &str, ws: &std::path::Path, args: &[&str]) -> std::process::Output {
    cordon(user)
        .args(["run", "-q", "-p", profile, "-w"])
        .arg(ws)
        .current_dir(ws)
        .arg("--")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn child_status_passes_through() {
    for user in users("child_status_passes_through") {
        let ws = tempdir(user);
        for ns in Ns::ALL {
            let p = ns_profile("workspace-write", ns);
            for code in [0, 3, 255] {
                let out = run_sh(user, &p, ws.path(), &format!("exit {code}"));
                assert_code(&out, code, format!("exit {code} as {user}, {ns}"));
                assert!(
                    out.stderr.is_empty(),
                    "exit {code}: cordon printed:\n{}",
                    text(&out.stderr)
                );
            }
        }
    }
}

#[test]
fn death_by_signal_is_128_plus_n() {
    for user in users("death_by_signal_is_128_plus_n") {
        let ws = tempdir(user);
        for ns in Ns::ALL {
            let p = ns_profile("workspace-write", ns);
            for (sig, code) in [("TERM", 143), ("KILL", 137), ("INT", 130), ("SEGV", 139)] {
                let out = run_sh(user, &p, ws.path(), &format!("kill -{sig} $$"));
                assert_code(&out, code, format!("kill -{sig} as {user}, {ns}"));
            }
        }
    }
}

#[test]
fn command_not_found_is_127() {
    for user in users("command_not_found_is_127") {
        let ws = tempdir(user);
        for ns in Ns::ALL {
            let p = ns_profile("workspace-write", ns);
            for cmd in [
                "cordon-no-such-command",
                "/nonexistent/cordon-no-such-command",
                "./missing",
            ] {
                let out = run(user, &p, ws.path(), &[cmd]);
                let ctx = format!("{cmd} as {user}, {ns}");
                assert_code(&out, 127, &ctx);
                let msg = assert_one_error_line(&out, &ctx);
                assert!(
                    msg.contains(cmd),
                    "{ctx}: the message does not name the command:\n{msg}"
                );
            }
        }
    }
}

#[test]
fn not_executable_is_126() {
    for user in users("not_executable_is_126") {
        let ws = tempdir(user);
        let plain = ws.path().join("plain.sh");
        std::fs::write(&plain, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        chown_r(&plain, user);
        let dir = ws.path().join("adir");
        std::fs::create_dir(&dir).unwrap();
        chown_r(&dir, user);
        for ns in Ns::ALL {
            let p = ns_profile("workspace-write", ns);
            for (cmd, why) in [
                (plain.to_str().unwrap(), "no execute bit (mode 644)"),
                (dir.to_str().unwrap(), "Is a directory"),
                ("./plain.sh", "no execute bit"),
            ] {
                let out = run(user, &p, ws.path(), &[cmd]);
                let ctx = format!("{cmd} as {user}, {ns}");
                assert_code(&out, 126, &ctx);
                let msg = assert_one_error_line(&out, &ctx);
                // The real reason, not a sandbox refusal.
                assert!(
                    msg.contains(why) && !msg.contains("[filesystem] exec"),
                    "{ctx}: {msg}"
                );
            }
            // The control: with the x bit the same file runs.
            let exe = ws.path().join("exe.sh");
            std::fs::write(&exe, "#!/bin/sh\nexit 0\n").unwrap();
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
            chown_r(&exe, user);
            let out = run(user, &p, ws.path(), &[exe.to_str().unwrap()]);
            assert_code(&out, 0, format!("executable control as {user}, {ns}"));
        }
    }
}

#[test]
fn usage_errors_are_125_on_one_line() {
    for user in users("usage_errors_are_125_on_one_line") {
        let ws = tempdir(user);
        let marker = ws.path().join("marker");
        let touch = ["/usr/bin/touch", marker.to_str().unwrap()];
        let cases: Vec<Vec<&str>> = vec![
            vec!["run"],
            vec!["run", "-q"],
            vec!["no-such-subcommand"],
            vec!["run", "--net", "sometimes", "--"],
            vec!["run", "-p"],
            vec!["profile", "show"],
        ];
        for args in cases {
            let mut all = args.clone();
            if all.last() == Some(&"--") {
                all.extend(touch);
            }
            let out = cordon(user)
                .args(&all)
                .current_dir(ws.path())
                .output()
                .unwrap();
            let ctx = format!("cordon {} as {user}", all.join(" "));
            assert_code(&out, 125, &ctx);
            assert_one_error_line(&out, &ctx);
            assert!(!marker.exists(), "{ctx}: the command ran");
        }
    }
}

/// A usage error names what is wrong in full, on its one line: the missing
/// argument (clap puts its name on a second line), the values a flag takes,
/// and the usage. Bare `cordon` is not an error: it prints its help.
#[test]
fn usage_errors_say_all_of_it_and_bare_cordon_prints_help() {
    let ws = tempdir(User::Root);
    let bare = |args: &[&str]| {
        let out = cordon(User::Root)
            .args(args)
            .current_dir(ws.path())
            .output()
            .unwrap();
        (out, format!("cordon {}", args.join(" ")))
    };
    for (args, wants) in [
        (
            vec!["run", "-p", "strict", "--"],
            vec!["<COMMAND>", "usage: cordon run"],
        ),
        (vec!["run"], vec!["<COMMAND>"]),
        (
            vec!["run", "--net", "sometimes", "--", "true"],
            vec!["possible values", "off"],
        ),
        (
            vec!["profile", "show"],
            vec!["<NAME|PATH>", "usage: cordon profile show"],
        ),
    ] {
        let (out, ctx) = bare(&args);
        assert_code(&out, 125, &ctx);
        let msg = assert_one_error_line(&out, &ctx);
        for w in wants {
            assert!(msg.contains(w), "{ctx}: {w:?} missing from {msg:?}");
        }
    }
    for args in [vec![], vec!["profile"]] {
        let (out, ctx) = bare(&args);
        assert_code(&out, 0, &ctx);
        let help = text(&out.stdout);
        assert!(help.contains("Usage: cordon"), "{ctx}: {help}");
        assert!(help.contains("Commands:"), "{ctx}: {help}");
    }
}

/// `-v` says which namespaces hold the run: with the network off (the
/// default profiles) a network namespace too, with it on none.
#[test]
fn verbose_names_the_network_namespace_when_there_is_one() {
    let ws = tempdir(User::Root);
    for (profile, net) in [("workspace-write", true), ("online", false)] {
        let out = cordon(User::Root)
            .args(["run", "-v", "-p", profile, "--", "true"])
            .current_dir(ws.path())
            .output()
            .unwrap();
        assert_code(&out, 0, profile);
        let line = text(&out.stderr)
            .lines()
            .find(|l| l.starts_with("cordon: namespaces: "))
            .unwrap_or_default()
            .to_string();
        if !line.starts_with("cordon: namespaces: on") {
            return skip(
                "verbose_names_the_network_namespace_when_there_is_one",
                "namespaces are off here",
            );
        }
        assert_eq!(
            line.contains("network namespaces"),
            net,
            "{profile}: {line}"
        );
    }
}

/// `--net on` and `--net off` over a `filtered` profile replace its mode and
/// its ports (they were an error blaming the profile's `connect_tcp` line):
/// `on` reaches a loopback port the profile did not list, `off` refuses even
/// the one it did.
#[test]
fn net_flag_over_a_filtered_profile() {
    let listed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (lp, op) = (
        listed.local_addr().unwrap().port(),
        other.local_addr().unwrap().port(),
    );
    for user in users("net_flag_over_a_filtered_profile") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let p = profile_ns(
                "filtered",
                &format!(
                    "extends = \"workspace-write\"\n[network]\nmode = \"filtered\"\nconnect_tcp = [{lp}]\n"
                ),
                ns,
            );
            let ctx = format!("as {user}, {ns}");
            // One connect to `port` under the profile and `flags`: OK or the errno.
            let connect = |flags: &[&str], port: u16| {
                let ops = [("connect", port.to_string())];
                let ops: Vec<(&str, &str)> = ops.iter().map(|(o, a)| (*o, a.as_str())).collect();
                probe(user, &p, ws.path(), flags, &[], &ops).remove(0)
            };
            assert_eq!(
                connect(&[], lp),
                "OK",
                "{ctx}: the listed port under filtered"
            );
            assert_ne!(
                connect(&[], op),
                "OK",
                "{ctx}: an unlisted port under filtered"
            );
            assert_eq!(connect(&["--net", "on"], op), "OK", "{ctx}: --net on");
            assert_ne!(connect(&["--net", "off"], lp), "OK", "{ctx}: --net off");
        }
    }
}

/// An option cordon does not know, before `--`, is a usage error (125): it must
/// not be taken for the command (a typo like --allow-wirte would otherwise
/// report "command not found", 127, and hide the mistake).
#[test]
fn unknown_option_before_the_command_is_a_usage_error() {
    for user in users("unknown_option_before_the_command_is_a_usage_error") {
        let ws = tempdir(user);
        let marker = ws.path().join("marker");
        for args in [
            vec!["run", "--bogus", "--", "/usr/bin/touch"],
            vec!["run", "--allow-wirte", "/tmp", "--", "/usr/bin/touch"],
        ] {
            let out = cordon(user)
                .args(&args)
                .arg(&marker)
                .current_dir(ws.path())
                .output()
                .unwrap();
            let ctx = format!("cordon {} as {user}", args.join(" "));
            assert_code(&out, 125, &ctx);
            let msg = assert_one_error_line(&out, &ctx);
            assert!(
                msg.starts_with("cordon: usage: "),
                "{ctx}: not a usage error:\n{msg}"
            );
            assert!(!marker.exists(), "{ctx}: the command ran");
        }
    }
}

#[test]
fn bad_profile_is_125_on_one_line() {
    for user in users("bad_profile_is_125_on_one_line") {
        let ws = tempdir(user);
        let marker = ws.path().join("marker");
        let broken = profile(
            shared_dir(),
            &format!("{}.toml", unique("broken")),
            "[filesystem]\nread = [\"/\"\n",
        );
        let missing = shared_dir().join("does-not-exist.toml");
        for p in ["no-such-builtin", &broken, missing.to_str().unwrap()] {
            let out = run(
                user,
                p,
                ws.path(),
                &["/usr/bin/touch", marker.to_str().unwrap()],
            );
            let ctx = format!("-p {p} as {user}");
            assert_code(&out, 125, &ctx);
            assert_one_error_line(&out, &ctx);
            assert!(!marker.exists(), "{ctx}: the command ran");
        }
    }
}

#[test]
fn help_and_version_exit_0() {
    for user in users("help_and_version_exit_0") {
        for args in [
            vec!["--help"],
            vec!["run", "--help"],
            vec!["profile", "--help"],
            vec!["--version"],
        ] {
            let out = cordon(user).args(&args).output().unwrap();
            let ctx = format!("cordon {} as {user}", args.join(" "));
            assert_code(&out, 0, &ctx);
            assert!(!out.stdout.is_empty(), "{ctx}: printed nothing");
        }
        let out = cordon(user).arg("--help").output().unwrap();
        let help = text(&out.stdout);
        for word in ["run", "profile", "doctor", "125", "126", "127", "124"] {
            assert!(
                help.contains(word),
                "--help does not mention {word}:\n{help}"
            );
        }
    }
}

/// A command that prints on stderr is not cordon's error: nothing is added.
#[test]
fn child_stderr_is_the_childs_own() {
    for user in users("child_stderr_is_the_childs_own") {
        let ws = tempdir(user);
        let out = run_sh(user, "workspace-write", ws.path(), "echo oops >&2; exit 2");
        assert_code(&out, 2, user);
        assert_eq!(text(&out.stderr), "oops\n");
    }
}

/// A workspace is writable and executable: `/`, a system directory or the home
/// directory itself (also reached through a symlink) is refused before anything
/// runs, with one line and the way out; `--allow-unsafe-workspace` is that way.
#[test]
fn broad_workspaces_are_refused() {
    for user in users("broad_workspaces_are_refused") {
        let dir = tempdir(user);
        let to_root = dir.path().join("to-root");
        std::os::unix::fs::symlink("/", &to_root).unwrap();
        let home = home(user);
        // In the home directory: the workspace of the override run below.
        let marker = home.join("broad-workspace-ran");
        let touch = format!("touch {}", marker.display());
        for ns in Ns::ALL {
            let p = ns_profile("workspace-write", ns);
            for (ws, why) in [
                (
                    std::path::Path::new("/"),
                    "workspace /: the root of the file system",
                ),
                (
                    to_root.as_path(),
                    "workspace /: the root of the file system",
                ),
                (
                    std::path::Path::new("/usr"),
                    "workspace /usr: a system directory",
                ),
                (home.as_path(), "the home directory itself"),
            ] {
                let out = cordon(user)
                    .args(["run", "-p", &p, "-w"])
                    .arg(ws)
                    .args(["--", "/bin/sh", "-c", &touch])
                    .output()
                    .unwrap();
                let ctx = format!("-w {} as {user}, {ns}", ws.display());
                assert_code(&out, 125, &ctx);
                let line = assert_one_error_line(&out, &ctx);
                assert!(line.contains(why), "{ctx}: {line}");
                assert!(line.contains("--allow-unsafe-workspace"), "{ctx}: {line}");
                assert!(!marker.exists(), "{ctx}: the command ran");
            }
            // The explicit override runs (in the home directory: harmless here). The
            // marker goes to the home's .cache: without namespaces the home's own
            // entries cannot be created (its deny carve-outs, a known gap).
            let cache = home.join(".cache");
            std::fs::create_dir_all(&cache).unwrap();
            chown_r(&cache, user);
            let ran = cache.join("broad-workspace-ran");
            let out = cordon(user)
                .args(["run", "-q", "--allow-unsafe-workspace", "-p", &p, "-w"])
                .arg(&home)
                .args(["--", "/bin/sh", "-c", &format!("touch {}", ran.display())])
                .output()
                .unwrap();
            assert_code(&out, 0, format!("override as {user}, {ns}"));
            assert!(
                ran.exists(),
                "override as {user}, {ns}: the command did not run"
            );
            std::fs::remove_file(&ran).unwrap();
        }
    }
}

/// What the mode without namespaces leaves open is said by `doctor` and `-v`,
/// not learnt from a run: other processes' command lines, inotify on host paths.
#[test]
fn doctor_and_verbose_name_what_no_namespaces_leaves_open() {
    let out = cordon(User::Root).arg("doctor").output().unwrap();
    let doc = text(&out.stdout);
    assert!(doc.contains("without namespaces"), "{doc}");
    assert!(doc.contains("/proc/PID/cmdline"), "{doc}");
    assert!(doc.contains("inotify"), "{doc}");
    for user in users("doctor_and_verbose_name_what_no_namespaces_leaves_open") {
        let ws = tempdir(user);
        let p = ns_profile("workspace-write", Ns::Off);
        let out = cordon(user)
            .args(["run", "-v", "-p", &p, "-w"])
            .arg(ws.path())
            .args(["--", "/bin/true"])
            .output()
            .unwrap();
        assert_code(&out, 0, format!("-v as {user}"));
        let err = text(&out.stderr);
        assert!(
            err.contains("not covered in this mode: the command lines of every host process"),
            "{user}: {err}"
        );
    }
}

#[test]
fn shell_runs_an_interactive_shell_in_the_sandbox_with_a_marked_prompt() {
    // The shell reads its commands from a pipe here (-i keeps it interactive:
    // prompts on stderr); a terminal is not needed for what is checked.
    use std::io::Write;
    for user in users("shell_runs_an_interactive_shell_in_the_sandbox_with_a_marked_prompt") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let ws = tempdir(user);
            let p = ns_profile("workspace-write", ns);
            let label = std::path::Path::new(&p)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let outside = harness_dir().join(format!(
                "cordon-shell-{}-{}",
                user.uid(),
                std::process::id()
            ));
            let mut child = cordon(user)
                .args(["shell", "-q", "-p", &p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .env("SHELL", "/usr/sbin/nologin")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let script = format!(
                "echo inside=$CORDON_SHELL\necho made > made.txt\necho x > {}\nexit 7\n",
                outside.display()
            );
            child
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert_code(&out, 7, format!("{ctx}: the shell's exit status"));
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            assert!(stdout.contains(&format!("inside={p}")), "{ctx}: {stdout}");
            assert!(
                stderr.contains(&format!("(cordon:{label})")),
                "{ctx}: no marked prompt in:\n{stderr}"
            );
            assert!(
                ws.path().join("made.txt").exists(),
                "{ctx}: the workspace is writable"
            );
            assert!(
                !outside.exists(),
                "{ctx}: the shell wrote outside its workspace"
            );
        }
    }
}

#[test]
fn completions_and_man_page() {
    let bin = bin();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = std::process::Command::new(bin)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_code(&out, 0, format!("completions {shell}"));
        let script = text(&out.stdout);
        for word in ["shell", "explain", "--allow-domain"] {
            assert!(script.contains(word), "completions {shell}: no {word}");
        }
    }
    // The bash script is bash.
    let out = std::process::Command::new(bin)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let check = std::process::Command::new("bash")
        .args(["-n", "-c", &text(&out.stdout)])
        .output()
        .unwrap();
    assert!(check.status.success(), "bash -n: {}", text(&check.stderr));
    let man = std::process::Command::new(bin).arg("man").output().unwrap();
    assert_code(&man, 0, "man");
    let page = text(&man.stdout);
    assert!(page.contains(".TH cordon 1"), "{page}");
    assert!(page.contains("shell"), "the page lists the subcommands");
    // A reader that closes early: no panic, no error.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' completions bash | head -c 10 >/dev/null; '{}' man | head -c 10",
            bin.display(),
            bin.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
    let bad = std::process::Command::new(bin)
        .args(["completions", "nope"])
        .output()
        .unwrap();
    assert_code(&bad, 125, "completions for an unknown shell");
}
