//! Where named sessions live: one control socket per session in a directory
//! only this user can enter, and the checks a client makes before it trusts
//! a socket found there (a socket, this user's, answered by a process of this
//! user). Owns names, that directory and connecting; not what is said.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, UnixAddr, connect, getsockopt, socket, sockopt,
};

use crate::error::{Error, Result};

/// A session name: letters, digits, `.`, `_`, `-`; not starting with `.`.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a session name (1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`)",
            crate::trust::escape_controls(name)
        ))
    }
}

/// A fresh name: `s-` and eight hex digits from the kernel's random source.
pub fn new_name() -> String {
    use std::io::Read;
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    if b == [0; 4] {
        b = std::process::id().to_le_bytes();
    }
    format!("s-{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}

/// The base directory for this user's sessions, from the environment: in
/// `$XDG_RUNTIME_DIR` (the user's own, 0700, gone at logout), else `/run`
/// for root, else a directory of this uid in `/tmp` (checked, never trusted
/// because of its name).
pub fn base_from(xdg_runtime_dir: Option<&str>, uid: u32) -> PathBuf {
    match xdg_runtime_dir.filter(|d| d.starts_with('/')) {
        Some(d) => Path::new(d).join("cordon/sessions"),
        None if uid == 0 => PathBuf::from("/run/cordon/sessions"),
        None => PathBuf::from(format!("/tmp/cordon-{uid}/sessions")),
    }
}

fn base() -> PathBuf {
    base_from(
        std::env::var("XDG_RUNTIME_DIR").ok().as_deref(),
        nix::unistd::geteuid().as_raw(),
    )
}

/// The sessions directory, made if missing: every component that is made is
/// 0700, and the last two must be real directories of this user that nobody
/// else can write (a planted one is refused, never used).
pub fn ensure() -> Result<PathBuf> {
    let dir = base();
    let fail = |step, source| Error::Session {
        name: "directory".into(),
        step,
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| fail("creating the sessions directory", e))?;
    let uid = nix::unistd::geteuid().as_raw();
    for d in [dir.parent().unwrap_or(&dir), dir.as_path()] {
        let m =
            std::fs::symlink_metadata(d).map_err(|e| fail("checking the sessions directory", e))?;
        if !m.is_dir() || m.uid() != uid || m.mode() & 0o022 != 0 {
            return Err(Error::SessionRefused {
                name: "directory".into(),
                reason: format!(
                    "{} is not a directory of this user that only it can write; remove it",
                    d.display()
                ),
            });
        }
    }
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    Ok(dir)
}

/// The control socket of session `name`.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

/// The names of this user's sessions (live or not: `list` asks each).
pub fn names() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(base()) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let n = n.strip_suffix(".sock")?.to_string();
            check_name(&n).is_ok().then_some(n)
        })
        .collect();
    out.sort();
    out
}

/// Whether a socket file at `path` is one to trust: a socket of this user.
fn check_socket(name: &str, path: &Path) -> Result<()> {
    let m = std::fs::symlink_metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::SessionRefused {
            name: name.into(),
            reason: "no such session (cordon session list shows them)".into(),
        },
        _ => Error::Session {
            name: name.into(),
            step: "checking its control socket",
            source: e,
        },
    })?;
    use std::os::unix::fs::FileTypeExt;
    let uid = nix::unistd::geteuid().as_raw();
    if !m.file_type().is_socket() || m.uid() != uid {
        return Err(Error::SessionRefused {
            name: name.into(),
            reason: format!(
                "{} is not a socket of this user; refusing to talk to it",
                path.display()
            ),
        });
    }
    Ok(())
}

/// Connect to session `name`: its socket checked first, its server's
/// credentials after (the uid must be ours).
pub fn connect_to(name: &str) -> Result<OwnedFd> {
    check_name(name).map_err(|reason| Error::SessionRefused {
        name: crate::trust::escape_controls(name),
        reason,
    })?;
    let path = socket_path(&base(), name);
    check_socket(name, &path)?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::Session {
        name: name.into(),
        step: "creating a socket",
        source: e.into(),
    })?;
    let addr = UnixAddr::new(&path).map_err(|e| Error::Session {
        name: name.into(),
        step: "naming its control socket",
        source: e.into(),
    })?;
    connect(sock.as_raw_fd(), &addr).map_err(|e| match e {
        nix::errno::Errno::ECONNREFUSED | nix::errno::Errno::ENOENT => Error::SessionRefused {
            name: name.into(),
            reason: "the session has ended (its server is gone); `cordon session list` removes it"
                .into(),
        },
        e => Error::Session {
            name: name.into(),
            step: "connecting to its control socket",
            source: e.into(),
        },
    })?;
    let cred = getsockopt(&sock.as_fd(), sockopt::PeerCredentials).map_err(|e| Error::Session {
        name: name.into(),
        step: "reading its server's credentials",
        source: e.into(),
    })?;
    if cred.uid() != nix::unistd::geteuid().as_raw() {
        return Err(Error::SessionRefused {
            name: name.into(),
            reason: format!("its server runs as uid {}, not this user", cred.uid()),
        });
    }
    Ok(sock)
}

/// Remove the socket of a session whose server is gone.
pub fn remove_dead(name: &str) {
    let _ = std::fs::remove_file(socket_path(&base(), name));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["s-0a1b2c3d", "build", "a.b_c-d"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "a/b",
            "..",
            "a b",
            "x\u{1b}[2J",
            &"a".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let n = new_name();
        assert!(check_name(&n).is_ok() && n.len() == 10, "{n}");
    }

    #[test]
    fn the_base_directory_follows_the_runtime_directory() {
        assert_eq!(
            base_from(Some("/run/user/1000"), 1000),
            PathBuf::from("/run/user/1000/cordon/sessions")
        );
        assert_eq!(base_from(None, 0), PathBuf::from("/run/cordon/sessions"));
        assert_eq!(
            base_from(Some("relative"), 65534),
            PathBuf::from("/tmp/cordon-65534/sessions")
        );
    }
}
