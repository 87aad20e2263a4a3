//! The one thing the guard reads from a git index: which entries are
//! gitlinks (submodules, mode 160000), by path. Index versions 2, 3 and 4
//! (path prefix compression); anything it does not understand yields no
//! entry rather than an error. Pure: bytes in, paths out.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

const GITLINK: u32 = 0o160000;
/// ctime, mtime (8 each), dev, ino, mode, uid, gid, size (4 each).
const STAT: usize = 40;

/// The paths of the gitlinks in `index` (relative to the work tree).
pub fn gitlinks(index: &[u8]) -> Vec<PathBuf> {
    parse(index).unwrap_or_default()
}

fn parse(b: &[u8]) -> Option<Vec<PathBuf>> {
    if b.get(..4)? != b"DIRC" {
        return None;
    }
    let version = u32::from_be_bytes(b.get(4..8)?.try_into().ok()?);
    let count = u32::from_be_bytes(b.get(8..12)?.try_into().ok()?) as usize;
    if !(2..=4).contains(&version) {
        return None;
    }
    // SHA-1 here; a SHA-256 repository's index has 32-byte names, told by
    // its extension list only: both are tried, the one that parses whole wins.
    [20, 32]
        .into_iter()
        .find_map(|hash| entries(b, version, count, hash))
}

fn entries(b: &[u8], version: u32, count: usize, hash: usize) -> Option<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut at = 12;
    let mut prev: Vec<u8> = Vec::new();
    for _ in 0..count {
        let start = at;
        let mode = u32::from_be_bytes(b.get(at + 24..at + 28)?.try_into().ok()?);
        at += STAT + hash;
        let flags = u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?);
        at += 2;
        if version >= 3 && flags & 0x4000 != 0 {
            at += 2;
        }
        let path = if version == 4 {
            // How many bytes to drop from the end of the previous path (a
            // varint of git's own offset encoding), then the rest, NUL-ended.
            let mut byte = *b.get(at)?;
            at += 1;
            let mut strip = (byte & 0x7f) as usize;
            while byte & 0x80 != 0 {
                byte = *b.get(at)?;
                at += 1;
                strip = ((strip + 1) << 7) | (byte & 0x7f) as usize;
            }
            let end = at + b.get(at..)?.iter().position(|&c| c == 0)?;
            let mut path = prev.get(..prev.len().checked_sub(strip)?)?.to_vec();
            path.extend_from_slice(&b[at..end]);
            at = end + 1;
            path
        } else {
            let end = at + b.get(at..)?.iter().position(|&c| c == 0)?;
            let path = b[at..end].to_vec();
            // Entries are padded with 1 to 8 NULs to a multiple of 8 bytes.
            at = start + (end - start + 8) / 8 * 8;
            path
        };
        if mode & 0o170000 == GITLINK {
            out.push(PathBuf::from(OsString::from_vec(path.clone())));
        }
        prev = path;
    }
    // What follows the entries is extensions and a checksum: at least the hash.
    (b.len() >= at + hash).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index git itself writes, for a repository with a file and two
    /// submodules, in each version: the same two gitlinks.
    #[test]
    fn gitlinks_in_every_index_version_git_writes() {
        let Ok(git) = which_git() else {
            return crate::testing::skip(
                "gitlinks_in_every_index_version_git_writes",
                "git is not installed",
            );
        };
        let d = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new(&git)
                .args(["-c", "user.name=u", "-c", "user.email=u@example.com"])
                .args(args)
                .current_dir(d.path())
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
        };
        run(&["init", "-q"]);
        std::fs::write(d.path().join("file"), "x").unwrap();
        for sub in ["node_modules/a", "deep/er/b"] {
            let p = d.path().join(sub);
            std::fs::create_dir_all(&p).unwrap();
            let out = std::process::Command::new(&git)
                .args(["-c", "user.name=u", "-c", "user.email=u@example.com"])
                .args(["init", "-q"])
                .current_dir(&p)
                .output()
                .unwrap();
            assert!(out.status.success());
            let out = std::process::Command::new(&git)
                .args(["-c", "user.name=u", "-c", "user.email=u@example.com"])
                .args(["commit", "-q", "--allow-empty", "-m", "x"])
                .current_dir(&p)
                .output()
                .unwrap();
            assert!(out.status.success());
        }
        run(&["add", "file", "node_modules/a", "deep/er/b"]);
        for version in ["2", "3", "4"] {
            run(&["update-index", "--index-version", version]);
            let bytes = std::fs::read(d.path().join(".git/index")).unwrap();
            assert_eq!(
                gitlinks(&bytes),
                [PathBuf::from("deep/er/b"), PathBuf::from("node_modules/a")],
                "index version {version}"
            );
        }
        assert!(gitlinks(b"DIRC\0\0\0\x02\0\0\0\x05short").is_empty());
        assert!(gitlinks(b"").is_empty());
    }

    fn which_git() -> Result<PathBuf, ()> {
        ["/usr/bin/git", "/usr/local/bin/git"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or(())
    }
}
