//! File-system confinement on this kernel, as root and as uid 65534, with
//! namespaces (mode auto: a read-only mount view, so writes outside the
//! writable roots fail with EROFS, and denied paths masked mode 000, EACCES)
//! and without (mode off: Landlock alone, EACCES).
//!
//! Every refusal has a control that shows the same access succeeding where
//! the profile allows it (or outside the sandbox), so the errno is the
//! sandbox's and not the file's permissions.

mod support;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A file owned by `user`.
fn file(p: &Path, body: &str, mode: u32, user: User) {
    std::fs::write(p, body).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    chown_r(p, user);
}

/// A directory owned by `user`.
fn dir(p: &Path, user: User) {
    std::fs::create_dir_all(p).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_r(p, user);
}

/// Listing a denied directory: the mount view masks it with an empty mode-000
/// directory (EACCES). Landlock alone cannot: the ancestor keeps ReadDir, which
/// Landlock applies to the whole hierarchy beneath it, so the names inside stay
/// listable (never readable). cordon documents this gap of mode "off" ("denied
/// directories can be listed (not read) where an ancestor is listable").
fn list_denied_dir(ns: Ns) -> &'static str {
    match ns {
        Ns::Auto => "EACCES",
        Ns::Off => "OK",
    }
}

#[test]
fn writes_outside_the_writable_roots_are_refused() {
    require_landlock("writes_outside_the_writable_roots_are_refused", 1);
    for user in users("writes_outside_the_writable_roots_are_refused") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let outside = tempdir(user);
            file(&outside.path().join("existing"), "old\n", 0o644, user);
            let o = |n: &str| outside.path().join(n).to_str().unwrap().to_string();
            let w = |n: &str| ws.path().join(n).to_str().unwrap().to_string();
            // What DAC alone allows: the user may write there.
            let ctl = probe_unsandboxed(user, &[("write", &o("control"))]);
            assert_eq!(ctl, ["OK"], "{user}: control write outside the sandbox");
            std::fs::remove_file(o("control")).unwrap();

            let p = ns_profile("workspace-write", ns);
            // TMPDIR is the workspace, so /tmp (where `outside` is) is not a writable root.
            let got = probe(
                user,
                &p,
                ws.path(),
                &[],
                &[("TMPDIR", s(ws.path()))],
                &[
                    ("write", &w("inside")),
                    ("mkdir", &w("subdir")),
                    ("write", &o("new")),
                    ("write", &o("existing")),
                    ("mkdir", &o("newdir")),
                ],
            );
            let denied = ns.write_denied();
            assert_eq!(got, ["OK", "OK", denied, denied, denied], "{user}, {ns}");
            assert_eq!(std::fs::read_to_string(w("inside")).unwrap(), "x\n");
            assert!(ws.path().join("subdir").is_dir());
            assert!(
                !Path::new(&o("new")).exists(),
                "{user}, {ns}: created outside"
            );
            assert!(
                !Path::new(&o("newdir")).exists(),
                "{user}, {ns}: mkdir outside"
            );
            assert_eq!(std::fs::read_to_string(o("existing")).unwrap(), "old\n");
        }
    }
}

#[test]
fn denied_secrets_are_unreadable() {
    require_landlock("denied_secrets_are_unreadable", 1);
    for user in users("denied_secrets_are_unreadable") {
        let h = home(user);
        let key = h.join(".ssh/id_ed25519");
        let netrc = h.join(".netrc");
        let ctl = probe_unsandboxed(user, &[("read", s(&key)), ("read", s(&netrc))]);
        assert_eq!(
            ctl,
            ["OK", "OK"],
            "{user}: control reads outside the sandbox"
        );
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let p = ns_profile("workspace-write", ns);
            let got = probe(
                user,
                &p,
                ws.path(),
                &[],
                &[],
                &[
                    ("read", s(&key)),
                    ("read", s(&netrc)),
                    ("list", s(&h.join(".ssh"))),
                    // The rest of the home directory stays readable.
                    ("read", s(&h.join(".bashrc"))),
                    ("list", s(&h)),
                ],
            );
            assert_eq!(
                got,
                ["EACCES", "EACCES", list_denied_dir(ns), "OK", "OK"],
                "{user}, {ns}"
            );
        }
    }
}

/// A custom profile where the workspace is readable and writable but not
/// executable: exec is refused there, both as the COMMAND (126) and from a
/// process inside (EACCES); --allow-exec and an `exec` grant allow it.
#[test]
fn exec_needs_exec_coverage() {
    require_landlock("exec_needs_exec_coverage", 1);
    for user in users("exec_needs_exec_coverage") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let bin = ws.path().join("bin");
            dir(&bin, user);
            let tru = bin.join("true");
            std::fs::copy("/bin/true", &tru).unwrap();
            std::fs::set_permissions(&tru, std::fs::Permissions::from_mode(0o755)).unwrap();
            chown_r(&tru, user);
            let no_exec = profile_ns(
                "no-exec",
                "extends = \"read-only\"\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\n",
                ns,
            );
            let ctx = format!("{user}, {ns}");

            // As the COMMAND: the launcher's 126, one line.
            let out = cordon(user)
                .args(["run", "-q", "-p", &no_exec, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .arg("--")
                .arg(&tru)
                .output()
                .unwrap();
            assert_code(&out, 126, format!("{ctx}: COMMAND outside exec"));
            let msg = assert_one_error_line(&out, &ctx);
            assert!(msg.contains(s(&tru)), "{ctx}: {msg}");

            // From within: execve answers EACCES; reading the same file works.
            let got = probe(
                user,
                &no_exec,
                ws.path(),
                &[],
                &[],
                &[("exec", s(&tru)), ("read", s(&tru))],
            );
            assert_eq!(got, ["EACCES", "OK"], "{ctx}: exec from within");
            // And from a shell: EACCES is "Permission denied", status 126.
            let out = run_sh(
                user,
                &no_exec,
                ws.path(),
                &format!("'{}'; echo status=$?", s(&tru)),
            );
            assert_code(&out, 0, format!("{ctx}: exec from a shell"));
            assert_eq!(
                text(&out.stdout),
                "status=126\n",
                "{ctx}: exec from a shell"
            );
            assert!(
                text(&out.stderr).contains("Permission denied"),
                "{ctx}: exec from a shell:\n{}",
                text(&out.stderr)
            );

            // --allow-exec widens the profile.
            let got = probe(
                user,
                &no_exec,
                ws.path(),
                &["--allow-exec", s(&bin)],
                &[],
                &[("exec", s(&tru))],
            );
            assert_eq!(got, ["OK"], "{ctx}: --allow-exec");
            let out = cordon(user)
                .args(["run", "-q", "-p", &no_exec, "--allow-exec", s(&bin), "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .arg("--")
                .arg(&tru)
                .output()
                .unwrap();
            assert_code(&out, 0, format!("{ctx}: COMMAND with --allow-exec"));

            // The default profile executes in the workspace.
            let p = ns_profile("workspace-write", ns);
            let got = probe(user, &p, ws.path(), &[], &[], &[("exec", s(&tru))]);
            assert_eq!(
                got,
                ["OK"],
                "{ctx}: workspace-write executes in the workspace"
            );
        }
    }
}

#[test]
fn allow_read_widens_a_profile() {
    require_landlock("allow_read_widens_a_profile", 1);
    for user in users("allow_read_widens_a_profile") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let data = tempdir(user);
            let f = data.path().join("notes.txt");
            file(&f, "notes\n", 0o644, user);
            let p = ns_profile("strict", ns);
            // strict reads no /tmp: the probe script itself needs --allow-read.
            let base = ["--allow-read", s(shared_dir())];
            let ops = [("read", s(&f)), ("list", s(data.path()))];
            let got = probe(user, &p, ws.path(), &base, &[], &ops);
            assert_eq!(
                got,
                ["EACCES", "EACCES"],
                "{user}, {ns}: strict reads outside"
            );
            let mut wide = base.to_vec();
            wide.extend(["--allow-read", s(data.path())]);
            let got = probe(user, &p, ws.path(), &wide, &[], &ops);
            assert_eq!(got, ["OK", "OK"], "{user}, {ns}: --allow-read");
            // Reading is not writing.
            let got = probe(user, &p, ws.path(), &wide, &[], &[("write", s(&f))]);
            assert_eq!(
                got,
                [ns.write_denied()],
                "{user}, {ns}: --allow-read does not allow writes"
            );
        }
    }
}

#[test]
fn allow_write_widens_a_profile() {
    require_landlock("allow_write_widens_a_profile", 1);
    for user in users("allow_write_widens_a_profile") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let out_dir = tempdir(user);
            let f = out_dir.path().join("out.txt");
            let p = ns_profile("workspace-write", ns);
            let env = [("TMPDIR", s(ws.path()))];
            let got = probe(user, &p, ws.path(), &[], &env, &[("write", s(&f))]);
            assert_eq!(
                got,
                [ns.write_denied()],
                "{user}, {ns}: before --allow-write"
            );
            let got = probe(
                user,
                &p,
                ws.path(),
                &["--allow-write", s(out_dir.path())],
                &env,
                &[("write", s(&f))],
            );
            assert_eq!(got, ["OK"], "{user}, {ns}: --allow-write");
            assert_eq!(std::fs::read_to_string(&f).unwrap(), "x\n");
        }
    }
}

/// `deny` carves a path out of a broad grant: its ancestors stay listable,
/// its siblings readable, and the entry itself (file or directory) refused.
#[test]
fn deny_carve_out_keeps_ancestors_listable() {
    require_landlock("deny_carve_out_keeps_ancestors_listable", 1);
    for user in users("deny_carve_out_keeps_ancestors_listable") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let data = tempdir(user);
            let d = data.path();
            dir(&d.join("secret"), user);
            file(&d.join("secret/key.txt"), "key\n", 0o644, user);
            file(&d.join("secret.txt"), "secret\n", 0o644, user);
            file(&d.join("public.txt"), "public\n", 0o644, user);
            let p = profile_ns(
                "deny",
                &format!(
                    "extends = \"workspace-write\"\n[filesystem]\ndeny = [\"{0}/secret\", \"{0}/secret.txt\"]\n",
                    s(d)
                ),
                ns,
            );
            // TMPDIR is the workspace: `data` lies in a read-only part of the tree.
            let env = [("TMPDIR", s(ws.path()))];
            let got = probe(
                user,
                &p,
                ws.path(),
                &[],
                &env,
                &[
                    ("list", "/"),
                    ("list", s(d.parent().unwrap())),
                    ("list", s(d)),
                    ("read", s(&d.join("public.txt"))),
                    ("read", s(&d.join("secret.txt"))),
                    ("list", s(&d.join("secret"))),
                    ("read", s(&d.join("secret/key.txt"))),
                ],
            );
            assert_eq!(
                got,
                [
                    "OK",
                    "OK",
                    "OK",
                    "OK",
                    "EACCES",
                    list_denied_dir(ns),
                    "EACCES"
                ],
                "{user}, {ns}"
            );
            if ns == Ns::Off {
                // The gap is said, not silent.
                let mut c = cordon(user);
                c.args(["run", "-v", "-p", &p, "-w"])
                    .arg(ws.path())
                    .current_dir(ws.path());
                let out = c.envs(env).args(["--", "/bin/true"]).output().unwrap();
                assert_code(&out, 0, format!("{user}, {ns}: -v"));
                assert!(
                    text(&out.stderr).contains("denied directories can be listed"),
                    "{user}, {ns}: -v does not state the listing gap:\n{}",
                    text(&out.stderr)
                );
            }
            // `ls` of the parent lists the siblings.
            let mut c = cordon(user);
            c.args(["run", "-q", "-p", &p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path());
            let out = c.envs(env).args(["--", "/bin/ls"]).arg(d).output().unwrap();
            assert_code(&out, 0, format!("{user}, {ns}: ls of the parent"));
            assert!(
                text(&out.stdout).lines().any(|l| l == "public.txt"),
                "{user}, {ns}: ls of the parent:\n{}",
                text(&out.stdout)
            );
        }
    }
}

#[test]
fn strict_reads_what_runtimes_size_themselves_by() {
    // CPU count, cgroup limits and huge pages: read by Node, Python, Go and
    // the JVM at start; in strict they were denials in every summary. The rest
    // of /sys stays out of reach, and none of it is writable.
    require_landlock("strict_reads_what_runtimes_size_themselves_by", 1);
    let cpu = "/sys/devices/system/cpu/online";
    let thp = "/sys/kernel/mm/transparent_hugepage/enabled";
    let cgroup = [
        "/sys/fs/cgroup/cgroup.controllers",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("a cgroup file to read");
    let other = "/sys/kernel/notes";
    for user in users("strict_reads_what_runtimes_size_themselves_by") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let p = ns_profile("strict", ns);
            let base = ["--allow-read", s(shared_dir())];
            let ops = [
                ("read", cpu),
                ("read", thp),
                ("read", cgroup),
                ("read", other),
                ("write", cpu),
            ];
            let got = probe(user, &p, ws.path(), &base, &[], &ops);
            // The kernel's answer in every case here (the file's mode, Landlock,
            // sysfs's own check on a read-only mount).
            let write = "EACCES";
            assert_eq!(
                got,
                ["OK", "OK", "OK", "EACCES", write],
                "{user}, {ns}: {cpu}, {thp}, {cgroup}, {other}, write {cpu}"
            );
        }
    }
}
