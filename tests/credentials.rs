//! Credentials every built-in hides: every home-directory entry of the
//! credentials list in `profiles/read-only.toml` is planted in a fresh home,
//! and a payload under each built-in tries to read each one, as root and as
//! uid 65534, namespaces auto and off. The list is read from the profile, so an
//! entry added there is tested without touching this file. Beside the refusals,
//! a file of the same agents' state that is not a credential stays readable
//! (the profiles hide secrets, not whole tools).

mod support;
use std::path::{Path, PathBuf};

use support::*;

/// The `"~/..."` entries of read-only.toml's deny list, without globs.
fn listed_home_entries() -> Vec<String> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/read-only.toml"),
    )
    .unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    v["filesystem"]["deny"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .filter_map(|s| s.strip_prefix("~/"))
        .filter(|s| !s.contains('*') && !s.contains('?'))
        .map(str::to_string)
        .collect()
}

/// A home holding every listed entry as a file whose content is a marker, plus
/// harmless neighbours the ordinary use reads. Removed on drop.
struct Home {
    dir: tempfile::TempDir,
    secrets: Vec<PathBuf>,
}

impl Home {
    fn new(user: User) -> Home {
        let dir = tempdir(user);
        let mut secrets = Vec::new();
        for e in listed_home_entries() {
            let p = dir.path().join(&e);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, format!("SECRET {e}\n")).unwrap();
            secrets.push(p);
        }
        for (f, body) in [
            (".claude/settings.json", "{}\n"),
            (".codex/config.toml", "# settings\n"),
            (".gemini/settings.json", "{}\n"),
            (".config/git/config", "[user]\n\tname = u\n"),
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        chown_r(dir.path(), user);
        Home { dir, secrets }
    }
}

#[test]
fn every_listed_credential_is_unreadable_under_every_builtin() {
    let entries = listed_home_entries();
    // The files the issue named are on the list (a rename would drop them silently).
    for named in [
        ".claude/.credentials.json",
        ".codex/auth.json",
        ".gemini/oauth_creds.json",
        ".config/git/credentials",
        ".pgpass",
        ".ssh",
        ".aws",
        ".netrc",
    ] {
        assert!(entries.iter().any(|e| e == named), "{named} is not listed");
    }
    for user in users("every_listed_credential_is_unreadable_under_every_builtin") {
        let home = Home::new(user);
        let home_s = home.dir.path().display().to_string();
        let ws = tempdir(user);
        let neighbours = [
            ".claude/settings.json",
            ".codex/config.toml",
            ".gemini/settings.json",
            ".config/git/config",
        ];
        let neighbour_paths: Vec<PathBuf> =
            neighbours.iter().map(|f| home.dir.path().join(f)).collect();
        for ns in Ns::ALL {
            for builtin in ["read-only", "workspace-write", "online", "strict"] {
                let p = ns_profile(builtin, ns);
                let ctx = format!("under {builtin} as {user}, {ns}");
                let secrets = read_each(user, &p, ws.path(), &home_s, &home.secrets);
                for (s, r) in home.secrets.iter().zip(&secrets) {
                    assert!(
                        r.ends_with("Permission denied"),
                        "{} {ctx}: {r}",
                        s.display()
                    );
                }
                // Beside them: the agents' ordinary settings (strict grants no home).
                let got = read_each(user, &p, ws.path(), &home_s, &neighbour_paths);
                for (f, r) in neighbours.iter().zip(&got) {
                    if builtin == "strict" {
                        assert!(r.ends_with("Permission denied"), "{f} {ctx}: {r}");
                    } else {
                        assert_eq!(r, "OK", "{f} {ctx}");
                    }
                }
            }
        }
    }
}

/// `cat` each path inside the sandbox (HOME = `home`): one line per path, "OK"
/// or cat's error. A shell rather than the Python probe: strict cannot read /tmp.
fn read_each(user: User, profile: &str, ws: &Path, home: &str, paths: &[PathBuf]) -> Vec<String> {
    let script = r#"for f in "$@"; do if e=$(cat -- "$f" 2>&1 >/dev/null); then echo OK; else echo "$e"; fi; done"#;
    let out = cordon(user)
        .args(["run", "-q", "-p", profile, "-w"])
        .arg(ws)
        .current_dir(ws)
        .env("HOME", home)
        .args(["--", "/bin/sh", "-c", script, "sh"])
        .args(paths)
        .output()
        .unwrap();
    assert_code(
        &out,
        0,
        format!("reading {} paths under {profile}", paths.len()),
    );
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), paths.len(), "{lines:?}");
    lines
}
