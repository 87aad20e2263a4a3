//! The command: resolved on the sandbox's PATH before any restriction (so
//! "not found" and "not executable" are answered as 127 and 126 before a fork),
//! and turned into the argv/envp C strings that `execve` takes.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Find `program` as execvp would, on `path` (the sandbox's PATH), relative to `cwd`.
pub fn resolve(program: &OsString, path: Option<&str>, cwd: &Path) -> Result<PathBuf> {
    let name = Path::new(program);
    if program.is_empty() {
        return Err(Error::NotFound {
            program: String::new(),
        });
    }
    if program.as_bytes().contains(&b'/') {
        let full = if name.is_absolute() {
            name.to_path_buf()
        } else {
            cwd.join(name)
        };
        return check(&full, program);
    }
    let mut not_exec = None;
    for dir in path.unwrap_or(DEFAULT_PATH).split(':') {
        let dir = if dir.is_empty() {
            cwd.to_path_buf()
        } else {
            PathBuf::from(dir)
        };
        let cand = dir.join(name);
        match check(&cand, program) {
            Ok(p) => return Ok(p),
            Err(e @ Error::NotExecutable { .. }) => {
                not_exec.get_or_insert(e);
            }
            Err(_) => {}
        }
    }
    Err(not_exec.unwrap_or_else(|| Error::NotFound {
        program: program.to_string_lossy().into_owned(),
    }))
}

fn check(p: &Path, program: &OsString) -> Result<PathBuf> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => Err(Error::NotExecutable {
            path: p.to_path_buf(),
            source: std::io::Error::from_raw_os_error(libc::EISDIR),
        }),
        // The real reason, not EACCES's "Permission denied", which reads as a
        // sandbox refusal (that one names `[filesystem] exec`).
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(Error::NotExecutable {
            path: p.to_path_buf(),
            source: std::io::Error::other(format!(
                "it has no execute bit (mode {:o})",
                m.permissions().mode() & 0o7777
            )),
        }),
        Ok(_) => Ok(p.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(Error::NotExecutable {
            path: p.to_path_buf(),
            source: e,
        }),
        Err(_) => Err(Error::NotFound {
            program: program.to_string_lossy().into_owned(),
        }),
    }
}

/// C strings for execve. Arguments with an interior NUL cannot be passed.
pub fn cstrings<I: IntoIterator<Item = Vec<u8>>>(items: I, what: &str) -> Result<Vec<CString>> {
    items
        .into_iter()
        .map(|b| CString::new(b).map_err(|_| Error::Usage(format!("{what} contains a NUL byte"))))
        .collect()
}

pub fn argv(cmd: &[OsString]) -> Result<Vec<CString>> {
    cstrings(cmd.iter().map(|a| a.clone().into_vec()), "an argument")
}

pub fn envp(env: &[(String, String)]) -> Result<Vec<CString>> {
    cstrings(
        env.iter().map(|(k, v)| format!("{k}={v}").into_bytes()),
        "an environment variable",
    )
}

pub fn path_cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Usage(format!("{} contains a NUL byte", p.display())))
}

/// The exit code for an execve errno: 127 for "not found", 126 otherwise.
pub fn exec_failure_code(errno: i32) -> u8 {
    if errno == libc::ENOENT || errno == libc::ENOTDIR {
        crate::error::exit::NOT_FOUND
    } else {
        crate::error::exit::NOT_EXECUTABLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_execvp() {
        let d = tempfile::tempdir().unwrap();
        let exe = d.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = d.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let path = d.path().to_str().unwrap();
        assert_eq!(
            resolve(&"tool".into(), Some(path), Path::new("/")).unwrap(),
            exe
        );
        assert!(matches!(
            resolve(&"plain".into(), Some(path), Path::new("/")),
            Err(Error::NotExecutable { .. })
        ));
        assert!(matches!(
            resolve(&"nope".into(), Some(path), Path::new("/")),
            Err(Error::NotFound { .. })
        ));
        assert!(resolve(&"./tool".into(), None, d.path()).is_ok());
        assert!(matches!(
            resolve(&d.path().as_os_str().to_owned(), None, Path::new("/")),
            Err(Error::NotExecutable { .. })
        ));
        assert!(matches!(
            resolve(&"".into(), None, Path::new("/")),
            Err(Error::NotFound { .. })
        ));
        assert_eq!(exec_failure_code(libc::ENOENT), 127);
        assert_eq!(exec_failure_code(libc::EACCES), 126);
    }
}
