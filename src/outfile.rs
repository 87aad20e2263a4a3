//! The files cordon itself writes for a run: the report (through a temporary
//! file beside it) and the audit log. A payload must neither redirect them
//! (a symlink planted at the name), nor block them unnoticed (a directory
//! planted at the name, a pre-created temporary name), nor read or rewrite them.
//!
//! So each file's directory is opened once, before the run (`O_PATH`), and every
//! later open, rename and unlink is relative to that descriptor, never through a
//! link in the last component; its canonical directory must lie outside every
//! writable root of the run. Owns those opens and that check; does not decide
//! what is written (`report`) nor how the audit log is hidden from the run
//! (`commands` adds it to the policy's denied paths).

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fstat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::error::{Error, Result};
use crate::policy::beneath;

/// Which of cordon's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Own {
    Report,
    AuditLog,
}

impl Own {
    pub fn name(self) -> &'static str {
        match self {
            Own::Report => "report",
            Own::AuditLog => "audit log",
        }
    }
}

/// A file of cordon's own: its directory, opened at start, and its name there.
#[derive(Debug)]
pub struct OwnFile {
    pub what: Own,
    /// The path as asked, for messages.
    pub path: PathBuf,
    /// The directory, `O_PATH`: what it named when the run started.
    dir: OwnedFd,
    /// The directory's canonical path, read back from the descriptor.
    dir_path: PathBuf,
    name: OsString,
}

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

impl OwnFile {
    /// Open the directory of `path` (relative paths from the current directory).
    pub fn at(path: &Path, what: Own) -> Result<OwnFile> {
        let err = |source| Error::Output {
            what: match what {
                Own::Report => "cannot write the report",
                Own::AuditLog => "opening the audit log",
            },
            path: path.to_path_buf(),
            source,
        };
        let abs = std::path::absolute(path).map_err(err)?;
        // `file_name` is None for "/", "x/.." and the like: no file is named.
        let name = abs
            .file_name()
            .filter(|_| !path.as_os_str().as_encoded_bytes().ends_with(b"/"))
            .ok_or_else(|| err(std::io::Error::other("the path names no file")))?
            .to_os_string();
        let parent = abs.parent().unwrap_or(Path::new("/"));
        let dir = nix::fcntl::open(
            parent,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(io(e)))?;
        // What the descriptor names, not what the path names by now.
        let dir_path = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            .or_else(|_| std::fs::canonicalize(parent))
            .map_err(err)?;
        Ok(OwnFile {
            what,
            path: path.to_path_buf(),
            dir,
            dir_path,
            name,
        })
    }

    /// The file's canonical path (its directory canonical, its name as given).
    pub fn canonical(&self) -> PathBuf {
        self.dir_path.join(&self.name)
    }

    /// Refuse a file whose directory lies in a writable root of the run: the
    /// payload could plant a link or a directory there, or rewrite the file.
    pub fn refuse_inside<'a>(&self, roots: impl IntoIterator<Item = &'a Path>) -> Result<()> {
        match roots.into_iter().find(|r| beneath(&self.dir_path, r)) {
            Some(root) => Err(Error::OwnFileExposed {
                what: self.what.name(),
                path: self.path.clone(),
                root: root.to_path_buf(),
            }),
            None => Ok(()),
        }
    }

    fn error(&self, what: &'static str, source: std::io::Error) -> Error {
        Error::Output {
            what,
            path: self.path.clone(),
            source,
        }
    }

    /// Open for appending (created 0600 if missing): never through a symlink,
    /// never truncated, and only a regular file (a FIFO planted at the name
    /// would block the launcher; `O_NONBLOCK` makes the open return at once).
    pub fn open_append(&self) -> Result<File> {
        let what = "opening the audit log";
        let fd = openat(
            &self.dir,
            self.name.as_os_str(),
            OFlag::O_WRONLY
                | OFlag::O_APPEND
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.error(what, link_error(e)))?;
        let st = fstat(&fd).map_err(|e| self.error(what, io(e)))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(self.error(what, std::io::Error::other("not a regular file")));
        }
        Ok(File::from(fd))
    }

    /// A new temporary file beside the target, under a name nobody can predict,
    /// created exclusively (a name that exists is never reused or followed).
    fn create_temp(&self) -> std::io::Result<(OsString, File)> {
        use std::hash::{BuildHasher, Hasher};
        let mut last = Errno::EEXIST;
        for _ in 0..16 {
            let r = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            let mut tmp = OsString::from(".");
            tmp.push(&self.name);
            tmp.push(format!(".{r:016x}.tmp"));
            match openat(
                &self.dir,
                tmp.as_os_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_NOCTTY
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o666),
            ) {
                Ok(fd) => return Ok((tmp, File::from(fd))),
                Err(e @ Errno::EEXIST) => last = e,
                Err(e) => return Err(io(e)),
            }
        }
        Err(io(last))
    }

    fn unlink(&self, name: &OsString) {
        let _ = unlinkat(&self.dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir);
    }

    /// Fail before the run when a file cannot be created in the directory.
    pub fn check_writable(&self) -> Result<()> {
        let (tmp, _) = self
            .create_temp()
            .map_err(|e| self.error("cannot write the report next to", e))?;
        self.unlink(&tmp);
        Ok(())
    }

    /// Replace the file with `bytes` atomically: a temporary file, synced, then
    /// renamed over the name within the directory (a symlink at the name is
    /// replaced, not followed; a directory there makes the rename fail).
    pub fn replace(&self, bytes: &[u8]) -> Result<()> {
        let what = "writing report";
        let (tmp, mut f) = self.create_temp().map_err(|e| self.error(what, e))?;
        let done = f
            .write_all(bytes)
            .and_then(|_| f.sync_data())
            .and_then(|_| {
                renameat(&self.dir, tmp.as_os_str(), &self.dir, self.name.as_os_str()).map_err(io)
            });
        if let Err(e) = done {
            self.unlink(&tmp);
            return Err(self.error(what, e));
        }
        Ok(())
    }
}

/// ELOOP from `O_NOFOLLOW` means a symlink sits at the name: say so.
fn link_error(e: Errno) -> std::io::Error {
    if e == Errno::ELOOP {
        std::io::Error::other(
            "it is a symbolic link, and cordon does not follow links for the files it writes",
        )
    } else {
        io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = std::fs::canonicalize(d.path()).unwrap();
        (d, p)
    }

    #[test]
    fn refused_inside_a_writable_root_named_in_the_message() {
        let (_d, p) = dir();
        std::fs::create_dir(p.join("sub")).unwrap();
        let f = OwnFile::at(&p.join("sub/audit.log"), Own::AuditLog).unwrap();
        assert_eq!(f.canonical(), p.join("sub/audit.log"));
        let e = f.refuse_inside([p.as_path()]).unwrap_err().to_string();
        assert!(
            e.contains(&p.join("sub/audit.log").display().to_string())
                && e.contains(&format!("writable root {}", p.display())),
            "{e}"
        );
        assert!(f.refuse_inside([Path::new("/nonexistent")]).is_ok());
        // A sibling whose name shares a prefix is not beneath.
        let other = p.join("su");
        assert!(f.refuse_inside([other.as_path()]).is_ok());
    }

    #[test]
    fn a_link_in_the_directory_path_is_resolved_before_the_check() {
        let (_d, p) = dir();
        std::fs::create_dir(p.join("real")).unwrap();
        std::os::unix::fs::symlink(p.join("real"), p.join("link")).unwrap();
        let f = OwnFile::at(&p.join("link/r.json"), Own::Report).unwrap();
        assert_eq!(f.canonical(), p.join("real/r.json"));
        let real = p.join("real");
        assert!(f.refuse_inside([real.as_path()]).is_err());
    }

    #[test]
    fn the_log_is_never_opened_through_a_link_nor_truncated() {
        let (_d, p) = dir();
        let target = p.join("bashrc");
        std::fs::write(&target, "# rc\n").unwrap();
        std::os::unix::fs::symlink(&target, p.join("audit.log")).unwrap();
        let e = OwnFile::at(&p.join("audit.log"), Own::AuditLog)
            .unwrap()
            .open_append()
            .unwrap_err();
        assert!(
            crate::error::chain(&e).contains("symbolic link"),
            "{}",
            crate::error::chain(&e)
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "# rc\n");
        std::fs::write(p.join("real.log"), "old\n").unwrap();
        let mut f = OwnFile::at(&p.join("real.log"), Own::AuditLog)
            .unwrap()
            .open_append()
            .unwrap();
        f.write_all(b"new\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(p.join("real.log")).unwrap(),
            "old\nnew\n"
        );
        nix::unistd::mkfifo(&p.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        assert!(
            OwnFile::at(&p.join("fifo"), Own::AuditLog)
                .unwrap()
                .open_append()
                .is_err()
        );
    }

    #[test]
    fn the_report_replaces_a_link_and_fails_on_a_directory() {
        let (_d, p) = dir();
        let target = p.join("bashrc");
        std::fs::write(&target, "# rc\n").unwrap();
        std::os::unix::fs::symlink(&target, p.join("r.json")).unwrap();
        let f = OwnFile::at(&p.join("r.json"), Own::Report).unwrap();
        f.check_writable().unwrap();
        f.replace(b"{}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "# rc\n");
        assert!(!p.join("r.json").is_symlink());
        assert_eq!(std::fs::read_to_string(p.join("r.json")).unwrap(), "{}\n");
        std::fs::remove_file(p.join("r.json")).unwrap();
        std::fs::create_dir(p.join("r.json")).unwrap();
        let e = f.replace(b"{}\n").unwrap_err().to_string();
        assert!(e.starts_with("writing report "), "{e}");
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(&p)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn paths_that_name_no_file_are_refused() {
        assert!(OwnFile::at(Path::new("/"), Own::Report).is_err());
        assert!(OwnFile::at(Path::new("/tmp/"), Own::Report).is_err());
        assert!(OwnFile::at(Path::new("/no/such/dir/r.json"), Own::Report).is_err());
    }
}
