//! Profiles through the binary: every shipped profile validates; every bad
//! input is refused with exit 125 and one located line (file, line, column,
//! key) before anything runs; `profile show`, `list` and `check --strict`.
//!
//! Bad inputs are fixtures: tests/fixtures/bad/NAME.toml with the expected
//! message in NAME.stderr (`{DIR}` stands for the fixture directory).

mod support;
use std::path::{Path, PathBuf};

use support::*;

/// The fixtures, copied where uid 65534 can read them. Returns the copy's directory.
fn fixtures() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad");
        let dst = shared_dir().join("bad");
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(&src).unwrap().flatten() {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
        chown_r(&dst, User::Root);
        std::process::Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&dst)
            .status()
            .unwrap();
        std::fs::canonicalize(dst).unwrap()
    })
}

/// `cordon run -p PROFILE -w WS -- /usr/bin/touch WS/marker` as `user`:
/// returns the output and whether the marker exists afterwards.
fn run_touch(user: User, profile: &str) -> (std::process::Output, bool) {
    let ws = tempdir(user);
    let marker = ws.path().join("marker");
    let out = cordon(user)
        .args(["run", "-p", profile, "-w"])
        .arg(ws.path())
        .current_dir(ws.path())
        .args(["--", "/usr/bin/touch"])
        .arg(&marker)
        .output()
        .unwrap();
    (out, marker.exists())
}

/// "line N, column M" in `msg`, as numbers.
fn line_column(msg: &str) -> Option<(usize, usize)> {
    let rest = &msg[msg.find("line ")? + 5..];
    let (line, rest) = rest.split_once(", column ")?;
    let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.parse().ok()?, col.parse().ok()?))
}

/// One bad fixture: refused by `run` (command never runs) and by `profile
/// check`, with one line naming `file` (the file at fault), a line and
/// column, and `key`, and equal to NAME.stderr.
fn bad(name: &str, file: &str, key: &str) {
    let dir = fixtures();
    let path = dir.join(format!("{name}.toml"));
    let path = path.to_str().unwrap();
    let expected = std::fs::read_to_string(dir.join(format!("{name}.stderr")))
        .unwrap()
        .trim_end()
        .replace("{DIR}", dir.to_str().unwrap());
    let at_fault = dir.join(file);
    for user in users(name) {
        // The marker mechanism works: a good profile runs the command.
        let (ok, made) = run_touch(user, "workspace-write");
        assert_code(&ok, 0, format!("{name}: control run as {user}"));
        assert!(
            made,
            "{name}: control run as {user} did not create the marker"
        );

        let (out, made) = run_touch(user, path);
        let ctx = format!("{name}: cordon run as {user}");
        assert_code(&out, 125, &ctx);
        assert!(!made, "{ctx}: the command ran although the profile is bad");
        let check = cordon(user)
            .args(["profile", "check", path])
            .current_dir(shared_dir())
            .output()
            .unwrap();
        assert_code(&check, 125, format!("{name}: profile check as {user}"));
        for (what, out) in [("run", &out), ("profile check", &check)] {
            let ctx = format!("{name}: cordon {what} as {user}");
            let msg = assert_one_error_line(out, &ctx);
            assert!(
                msg.contains(at_fault.to_str().unwrap()),
                "{ctx}: the message does not name the file at fault {}:\n{msg}",
                at_fault.display()
            );
            assert!(
                line_column(&msg).is_some(),
                "{ctx}: the message has no \"line N, column M\":\n{msg}"
            );
            assert!(
                msg.contains(key),
                "{ctx}: the message does not name the key `{key}`:\n{msg}"
            );
            assert_eq!(msg, expected, "{ctx}: message differs from {name}.stderr");
        }
    }
}

macro_rules! bad_fixtures {
    ($($name:ident => ($file:expr, $key:expr)),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                bad(stringify!($name), $file, $key);
            }
        )*
        const CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

bad_fixtures! {
    syntax_error => ("syntax_error.toml", "limits.timeout"),
    unknown_key => ("unknown_key.toml", "wirte"),
    bad_type => ("bad_type.toml", "limits.processes"),
    bad_type_list => ("bad_type_list.toml", "filesystem.read"),
    bad_value => ("bad_value.toml", "network.mode"),
    undefined_variable => ("undefined_variable.toml", "filesystem.read"),
    missing_extends => ("missing_extends.toml", "extends"),
    missing_builtin => ("missing_builtin.toml", "extends"),
    // The cycle closes on extends_cycle_back.toml's `extends` line.
    extends_cycle => ("extends_cycle_back.toml", "extends"),
    // Regular files only: /dev/zero would be read forever, a FIFO would block.
    extends_special => ("extends_special.toml", "extends"),
    secret_two_sources => ("secret_two_sources.toml", "env.secrets.API_TOKEN"),
}

#[test]
fn every_bad_fixture_has_a_test() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".stderr")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    let mut cases: Vec<String> = CASES.iter().map(|s| s.to_string()).collect();
    cases.sort();
    assert_eq!(
        names, cases,
        "tests/fixtures/bad/*.stderr and the cases in profiles.rs differ"
    );
    for n in &names {
        assert!(
            dir.join(format!("{n}.toml")).exists(),
            "{n}.stderr without {n}.toml"
        );
    }
}

/// Deterministic random bytes (xorshift64).
fn random_bytes(mut seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// Random bytes are refused, located, before anything runs. No key is asked
/// of them: garbage need not contain one.
#[test]
fn random_bytes_are_refused_with_a_location() {
    for user in users("random_bytes_are_refused_with_a_location") {
        for seed in [1u64, 2, 3, 0x2545_F491_4F6C_DD1D] {
            let p = shared_dir().join(format!("{}.toml", unique("random")));
            std::fs::write(&p, random_bytes(seed, 256)).unwrap();
            let path = p.to_str().unwrap();
            let (out, made) = run_touch(user, path);
            let ctx = format!("random bytes (seed {seed:#x}) as {user}");
            assert_code(&out, 125, &ctx);
            assert!(!made, "{ctx}: the command ran");
            let msg = assert_one_error_line(&out, &ctx);
            assert!(msg.contains(path), "{ctx}: the file is not named:\n{msg}");
            assert!(
                line_column(&msg).is_some(),
                "{ctx}: the message has no \"line N, column M\":\n{msg}"
            );
        }
    }
}

fn shipped_profiles() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

/// Every profiles/*.toml validates, by path and as the built-in of that name.
#[test]
fn every_shipped_profile_checks() {
    for user in users("every_shipped_profile_checks") {
        let ws = tempdir(user);
        for p in shipped_profiles() {
            // A copy, so that uid 65534 can read it wherever the tree lives.
            let copy = shared_dir().join(format!(
                "{}-{}",
                unique("shipped"),
                p.file_name().unwrap().to_str().unwrap()
            ));
            std::fs::copy(&p, &copy).unwrap();
            let copy = copy.to_str().unwrap();
            let name = p.file_stem().unwrap().to_str().unwrap();
            for (arg, shown) in [(copy, copy), (name, name)] {
                let out = cordon(user)
                    .args(["profile", "check", "-w"])
                    .arg(ws.path())
                    .arg(arg)
                    .current_dir(ws.path())
                    .output()
                    .unwrap();
                assert_code(&out, 0, format!("profile check {arg} as {user}"));
                assert_eq!(
                    text(&out.stdout).trim_end(),
                    format!("{shown}: ok"),
                    "profile check {arg} as {user}"
                );
            }
        }
    }
}

#[test]
fn profile_list_names_every_builtin_with_a_description() {
    for user in users("profile_list_names_every_builtin_with_a_description") {
        let out = cordon(user).args(["profile", "list"]).output().unwrap();
        assert_code(&out, 0, format!("profile list as {user}"));
        let listed: Vec<(String, String)> = text(&out.stdout)
            .lines()
            .map(|l| {
                let (n, d) = l.split_once(' ').unwrap_or((l, ""));
                (n.to_string(), d.trim().to_string())
            })
            .collect();
        let mut names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        let mut shipped: Vec<String> = shipped_profiles()
            .iter()
            .map(|p| p.file_stem().unwrap().to_str().unwrap().to_string())
            .collect();
        shipped.sort();
        assert_eq!(names, shipped, "profile list vs profiles/*.toml");
        for (n, d) in &listed {
            assert!(!d.is_empty(), "{n} has no description in profile list");
        }
    }
}

/// `profile show` prints TOML that parses and is itself a valid profile, and
/// `--json` prints JSON that parses, for every built-in.
#[test]
fn profile_show_prints_toml_and_json() {
    for user in users("profile_show_prints_toml_and_json") {
        let ws = tempdir(user);
        for p in shipped_profiles() {
            let name = p.file_stem().unwrap().to_str().unwrap();
            let show = |json: bool| {
                let mut c = cordon(user);
                c.args(["profile", "show", name, "-w"]).arg(ws.path());
                if json {
                    c.arg("--json");
                }
                let out = c.current_dir(ws.path()).output().unwrap();
                assert_code(
                    &out,
                    0,
                    format!("profile show {name} (json {json}) as {user}"),
                );
                text(&out.stdout)
            };
            let toml_text = show(false);
            let table: toml::Table = toml::from_str(&toml_text)
                .unwrap_or_else(|e| panic!("profile show {name}: not TOML: {e}\n{toml_text}"));
            assert!(
                table.contains_key("filesystem") && table.contains_key("network"),
                "profile show {name}: no [filesystem] or [network]:\n{toml_text}"
            );
            assert!(
                !table.contains_key("extends"),
                "profile show {name}: extends not merged"
            );
            // The resolved profile is a profile: check it.
            let resolved = profile(shared_dir(), &format!("{}.toml", unique(name)), &toml_text);
            let out = cordon(user)
                .args(["profile", "check", "-w"])
                .arg(ws.path())
                .arg(&resolved)
                .current_dir(ws.path())
                .output()
                .unwrap();
            assert_code(
                &out,
                0,
                format!("profile check of `profile show {name}` as {user}"),
            );

            let json_text = show(true);
            let v: serde_json::Value = serde_json::from_str(&json_text).unwrap_or_else(|e| {
                panic!("profile show {name} --json: not JSON: {e}\n{json_text}")
            });
            assert_eq!(v["name"], name, "profile show {name} --json: name");
            let ws_canon = std::fs::canonicalize(ws.path()).unwrap();
            assert_eq!(
                v["workspace"].as_str(),
                ws_canon.to_str(),
                "profile show {name} --json: workspace"
            );
            assert!(
                v["landlock_rules"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty()),
                "profile show {name} --json: no Landlock rules:\n{json_text}"
            );
            assert!(
                v["namespaces"].is_boolean(),
                "profile show {name} --json: namespaces"
            );
        }
    }
}

/// A grant path that does not exist: a warning by default, an error (125,
/// one line naming the path and the profile line) with --strict.
#[test]
fn profile_check_strict_refuses_a_missing_path() {
    let missing = format!("/nonexistent-{}/data", unique("cordon"));
    let p = profile(
        shared_dir(),
        &format!("{}.toml", unique("missing-path")),
        &format!("extends = \"workspace-write\"\n[filesystem]\nread = [\"{missing}\"]\n"),
    );
    for user in users("profile_check_strict_refuses_a_missing_path") {
        let ws = tempdir(user);
        let check = |strict: bool| {
            let mut c = cordon(user);
            c.args(["profile", "check"]);
            if strict {
                c.arg("--strict");
            }
            c.arg(&p).current_dir(ws.path()).output().unwrap()
        };
        let out = check(false);
        assert_code(&out, 0, format!("profile check (not strict) as {user}"));
        assert!(
            text(&out.stderr).contains(&missing),
            "not strict: no warning about {missing}:\n{}",
            text(&out.stderr)
        );
        let out = check(true);
        assert_code(&out, 125, format!("profile check --strict as {user}"));
        let msg = assert_one_error_line(&out, "profile check --strict");
        assert!(
            msg.contains(&missing) && msg.contains(&format!("{p}: line 3, column ")),
            "--strict: the message should name {missing} and {p} line 3:\n{msg}"
        );
    }
}

#[test]
fn profile_init_writes_a_starter_whose_every_example_is_valid() {
    let dir = tempdir(User::Root);
    let file = dir.path().join("starter.toml");
    let out = cordon(User::Root)
        .args(["profile", "init", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    assert_code(&out, 0, "profile init -o");
    let text_ = std::fs::read_to_string(&file).unwrap();
    let stdout = cordon(User::Root)
        .args(["profile", "init"])
        .output()
        .unwrap();
    assert_eq!(text(&stdout.stdout), text_, "stdout and -o write the same");
    // Never over an existing file.
    std::fs::write(&file, "mine\n").unwrap();
    let again = cordon(User::Root)
        .args(["profile", "init", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    assert_code(&again, 125, "profile init over an existing file");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine\n");

    // As written, and with every commented example taken in: both check.
    let examples: String = text_
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                }) =>
            {
                rest.to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(examples.contains("\nmode = \"proxy\""), "{examples}");
    for (name, body) in [
        ("as-written.toml", text_.as_str()),
        ("examples.toml", examples.as_str()),
    ] {
        let p = profile(shared_dir(), &unique(name), body);
        for user in users("profile_init_writes_a_starter_whose_every_example_is_valid") {
            let ws = tempdir(user);
            // The example's secret file, in the test's home for `user`.
            let secret = home(user).join(".config/my-tool/db-password");
            std::fs::create_dir_all(secret.parent().unwrap()).unwrap();
            std::fs::write(&secret, "pw\n").unwrap();
            chown_r(&home(user).join(".config/my-tool"), user);
            let check = cordon(user)
                .args(["profile", "check", &p, "-w"])
                .arg(ws.path())
                .output()
                .unwrap();
            assert_code(
                &check,
                0,
                format!("{user}: profile check {name}: {}", text(&check.stderr)),
            );
            let (out, touched) = run_touch(user, &p);
            assert_code(&out, 0, format!("{user}: run under {name}"));
            assert!(touched, "{user}: {name}: the workspace is writable");
        }
    }
}
