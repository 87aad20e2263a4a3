//! Variable expansion in profile values: `${WORKSPACE}`, `${HOME}`, `${TMPDIR}`,
//! `${CWD}`, any `${NAME}` from the environment, a leading `~/`, and `$$` for a
//! literal `$`. Pure: the caller supplies the [`Context`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::profile::{Item, PathEntry, Profile, SecretSource};

/// What variables expand to for one run.
#[derive(Debug, Clone)]
pub struct Context {
    pub workspace: PathBuf,
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
    pub tmpdir: PathBuf,
    /// The launcher's environment (names and values), for `${NAME}` and `[env]`.
    pub env: BTreeMap<String, String>,
}

impl Context {
    /// The context of this process: its environment, cwd and the chosen workspace.
    pub fn from_process(workspace: Option<PathBuf>) -> Result<Context> {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let cwd = std::env::current_dir().map_err(|source| Error::Workspace {
            path: ".".into(),
            source,
        })?;
        Context::from_parts(workspace, cwd, env)
    }

    /// The context of a command another process asked for (a session's
    /// client): its environment and cwd, and the chosen workspace.
    pub fn from_parts(
        workspace: Option<PathBuf>,
        cwd: PathBuf,
        env: BTreeMap<String, String>,
    ) -> Result<Context> {
        let ws = workspace.unwrap_or_else(|| cwd.clone());
        let ws = std::fs::canonicalize(&ws).map_err(|source| Error::Workspace {
            path: ws.clone(),
            source,
        })?;
        if !ws.is_dir() {
            return Err(Error::Workspace {
                path: ws,
                source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
            });
        }
        let home = env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let tmpdir = env
            .get("TMPDIR")
            .filter(|t| !t.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| "/tmp".into());
        Ok(Context {
            workspace: ws,
            cwd,
            home,
            tmpdir,
            env,
        })
    }

    fn lookup(&self, name: &str) -> Option<String> {
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        match name {
            "WORKSPACE" => Some(path(&self.workspace)),
            "CWD" => Some(path(&self.cwd)),
            "HOME" => self.home.as_ref().map(path),
            "TMPDIR" => Some(path(&self.tmpdir)),
            _ => self.env.get(name).cloned(),
        }
    }

    /// Expand one value. `origin` names the profile line for errors.
    pub fn expand(&self, s: &str, origin: &dyn std::fmt::Display) -> Result<String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        if rest == "~" || rest.starts_with("~/") {
            let home = self
                .lookup("HOME")
                .ok_or_else(|| Error::UndefinedVariable {
                    origin: origin.to_string(),
                    name: "HOME".into(),
                })?;
            out.push_str(&home);
            rest = &rest[1..];
        }
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(r) = rest.strip_prefix('$') {
                out.push('$');
                rest = r;
            } else if let Some(r) = rest.strip_prefix('{') {
                let end = r.find('}').ok_or_else(|| {
                    Error::invalid(origin, format!("`{s}`: unterminated ${{...}}"))
                })?;
                let name = &r[..end];
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(Error::invalid(
                        origin,
                        format!("`{s}`: invalid variable name `{name}`"),
                    ));
                }
                let value = self.lookup(name).ok_or_else(|| Error::UndefinedVariable {
                    origin: origin.to_string(),
                    name: name.into(),
                })?;
                out.push_str(&value);
                rest = &r[end + 1..];
            } else {
                return Err(Error::invalid(
                    origin,
                    format!("`{s}`: write ${{NAME}} for a variable or $$ for a literal $"),
                ));
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// An origin shown in its located form, formatted only if an error needs it.
struct Located<'a>(&'a crate::profile::Origin);

impl std::fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.located())
    }
}

/// Escape a literal value so that expanding it again yields it unchanged.
pub fn escape(s: &str) -> String {
    s.replace('$', "$$")
}

impl Profile {
    /// Expand every variable: file-system paths, `[env] set` values, secret files,
    /// the audit log. The result is the "resolved" profile, with `$` escaped so it
    /// can be loaded again (by `replay`) without changing meaning.
    pub fn expand(&self, ctx: &Context) -> Result<Profile> {
        let mut p = self.clone();
        // An optional entry that names an undefined variable (${SSH_AUTH_SOCK} on a
        // machine without an agent) is skipped like one whose path does not exist.
        let paths = |list: &mut Vec<Item<PathEntry>>| -> Result<()> {
            let mut out = Vec::with_capacity(list.len());
            for mut item in list.drain(..) {
                match ctx.expand(&item.value.path, &Located(&item.origin)) {
                    Ok(v) => {
                        item.value.path = escape(&v);
                        out.push(item);
                    }
                    Err(Error::UndefinedVariable { .. }) if item.value.optional => {}
                    Err(e) => return Err(e),
                }
            }
            *list = out;
            Ok(())
        };
        paths(&mut p.filesystem.read)?;
        paths(&mut p.filesystem.write)?;
        paths(&mut p.filesystem.exec)?;
        paths(&mut p.filesystem.deny)?;
        paths(&mut p.filesystem.read_only)?;
        paths(&mut p.filesystem.unprotect)?;
        paths(&mut p.network.unix_connect)?;
        paths(&mut p.approve.read)?;
        if let Some(item) = &mut p.approve.approver {
            if let crate::gates::Approver::Command(c) = &mut item.value {
                for w in c.iter_mut() {
                    *w = escape(&ctx.expand(w, &Located(&item.origin))?);
                }
            }
        }
        for item in p.env.set.values_mut() {
            item.value = escape(&ctx.expand(&item.value, &Located(&item.origin))?);
        }
        for item in p.env.secrets.values_mut() {
            if let SecretSource::File(f) = &mut item.value.source {
                *f = escape(&ctx.expand(f, &Located(&item.origin))?);
            }
        }
        if let Some(item) = &mut p.audit.log {
            item.value = escape(&ctx.expand(&item.value, &Located(&item.origin))?);
        }
        Ok(p)
    }
}

/// Undo [`escape`]: the literal value of an already-expanded string.
pub fn unescape(s: &str) -> String {
    s.replace("$$", "$")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    fn ctx() -> Context {
        let mut env = BTreeMap::new();
        env.insert("FOO".to_string(), "bar".to_string());
        Context {
            workspace: "/w".into(),
            cwd: "/c".into(),
            home: Some("/h".into()),
            tmpdir: "/tmp".into(),
            env,
        }
    }

    #[test]
    fn expands_known_variables() {
        let c = ctx();
        assert_eq!(c.expand("${WORKSPACE}/src", &"t").unwrap(), "/w/src");
        assert_eq!(c.expand("~/.ssh", &"t").unwrap(), "/h/.ssh");
        assert_eq!(c.expand("~", &"t").unwrap(), "/h");
        assert_eq!(c.expand("${TMPDIR}", &"t").unwrap(), "/tmp");
        assert_eq!(c.expand("${CWD}/${FOO}", &"t").unwrap(), "/c/bar");
        assert_eq!(c.expand("/a$$b", &"t").unwrap(), "/a$b");
        assert_eq!(c.expand("/x~/y", &"t").unwrap(), "/x~/y");
    }

    #[test]
    fn undefined_and_malformed_variables_are_errors() {
        let c = ctx();
        let e = c.expand("${NOPE}/x", &"p.toml:3").unwrap_err().to_string();
        assert_eq!(e, "p.toml:3: undefined variable ${NOPE}");
        assert!(c.expand("${WORKSPACE", &"t").is_err());
        assert!(c.expand("$HOME", &"t").is_err());
        assert!(c.expand("${A-B}", &"t").is_err());
        let mut no_home = ctx();
        no_home.home = None;
        assert!(
            no_home
                .expand("~/.ssh", &"t")
                .unwrap_err()
                .to_string()
                .contains("${HOME}")
        );
    }

    #[test]
    fn optional_entries_with_undefined_variables_are_skipped() {
        let p = Profile::from_text(
            "t",
            "[filesystem]\ndeny = [{ path = \"${NOPE}\", optional = true }, \"~/.ssh\"]\n",
            None,
        )
        .unwrap();
        let e = p.expand(&ctx()).unwrap();
        assert_eq!(e.filesystem.deny.len(), 1);
        let p = Profile::from_text("t", "[filesystem]\ndeny = [\"${NOPE}\"]\n", None).unwrap();
        assert!(p.expand(&ctx()).is_err());
    }

    #[test]
    fn escape_round_trips() {
        let c = ctx();
        for s in ["/plain", "/with$dollar", "/$$double"] {
            assert_eq!(c.expand(&escape(s), &"t").unwrap(), s);
        }
    }
}
