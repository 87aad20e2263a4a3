//! Report integrity: the digest over what `replay` acts on, the per-user
//! report key and its HMAC-SHA256 signature, and the escaping of report text
//! before it reaches a terminal.
//!
//! Owns the key file (`${XDG_STATE_HOME:-~/.local/state}/cordon/report-key`,
//! mode 0600, created once with O_EXCL and O_NOFOLLOW), the canonical form the
//! digest covers, and the verification verdict. Does not decide what a replay
//! may do with a verdict (`replay` does), and does not read profiles.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, fstat};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::report::Report;

/// The digest and signature a report carries (schema v1, optional: reports of
/// older cordons have neither).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Integrity {
    /// sha256 (hex) of the canonical JSON of the command, cwd, workspace and
    /// profile (name, source, sha256, resolved, origins).
    pub sha256: String,
    /// HMAC-SHA256 (hex) of `sha256` under the writer's report key; absent when
    /// the writer had no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_sha256: Option<String>,
}

/// Domain separation: a digest or a MAC of cordon's is never valid as another.
const DIGEST_CONTEXT: &[u8] = b"cordon report digest v1\n";
const SIGNATURE_CONTEXT: &[u8] = b"cordon report signature v1\n";

/// The key file's name inside the state directory.
pub const KEY_FILE: &str = "report-key";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// HMAC-SHA256 (RFC 2104) over sha2's SHA-256: 64-byte blocks, keys longer
/// than a block hashed first.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let (mut ipad, mut opad) = ([0x36u8; 64], [0x5cu8; 64]);
    for i in 0..64 {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer);
    out
}

/// Equal without an early exit, so that a forger learns nothing from timing.
fn equal_ct(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// JSON with object keys sorted at every level and no whitespace: the same
/// value always gives the same bytes, whatever order a file listed keys in.
pub fn canonical_json(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                canonical_json(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(e, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The digest of everything `replay` acts on: the command, where it ran, and
/// the recorded profile. Denials and timings are left out: replay never acts on them.
pub fn digest(r: &Report) -> String {
    let covered = serde_json::json!({
        "version": r.version,
        "command": r.command,
        "cwd": r.cwd,
        "workspace": r.workspace,
        "profile": {
            "name": r.profile.name,
            "source": r.profile.source,
            "sha256": r.profile.sha256,
            "resolved": r.profile.resolved,
            "origins": r.profile.origins,
        },
    });
    let mut text = String::new();
    canonical_json(&covered, &mut text);
    let mut h = Sha256::new();
    h.update(DIGEST_CONTEXT);
    h.update(text.as_bytes());
    hex(&h.finalize())
}

/// A per-user secret key (32 random bytes). Debug never shows it.
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    pub fn sign(&self, digest: &str) -> String {
        let mut msg = SIGNATURE_CONTEXT.to_vec();
        msg.extend_from_slice(digest.as_bytes());
        hex(&hmac_sha256(&self.0, &msg))
    }

    fn verify(&self, digest: &str, signature: &str) -> bool {
        let want = self.sign(digest);
        equal_ct(want.as_bytes(), signature.as_bytes())
    }
}

/// The digest and (with a key) the signature for a report about to be written.
pub fn seal(r: &Report, key: Option<&Key>) -> Integrity {
    let sha256 = digest(r);
    Integrity {
        hmac_sha256: key.map(|k| k.sign(&sha256)),
        sha256,
    }
}

/// What a report's integrity fields say about where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The digest matches and this user's key signed it: written here, unchanged.
    Signed,
    /// The digest matches, but nothing proves this user's cordon wrote it.
    Foreign(Foreign),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Foreign {
    /// No digest at all (an older cordon, or fields removed).
    NoDigest,
    /// A digest but no signature (the writer had no key).
    Unsigned,
    /// A signature this user's key did not make (another user, another machine, or forged).
    OtherKey,
    /// A signature, but this user has no report key to check it with.
    NoLocalKey,
    /// This user's key file exists but cannot be used (its mode, owner or content).
    KeyUnusable(String),
}

impl std::fmt::Display for Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Foreign::NoDigest => {
                "it carries no integrity digest: an older cordon wrote it, or it was edited"
            }
            Foreign::Unsigned => "it is not signed",
            Foreign::OtherKey => "it is not signed by this user's report key",
            Foreign::NoLocalKey => "this user has no report key to check its signature",
            Foreign::KeyUnusable(why) => return write!(f, "this user's key cannot be used: {why}"),
        })
    }
}

/// A report whose own hashes do not match its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tampered(pub String);

/// Recompute the report's hashes and check its signature. Pure: the caller
/// loads the key (an unusable key makes every signed report foreign, with why).
pub fn verify(r: &Report, key: Result<Option<&Key>, &KeyError>) -> Result<Verdict, Tampered> {
    let sha = &r.profile.sha256;
    if sha.len() != 64 || !sha.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Tampered(
            "its profile sha256 is not a sha256 (64 lowercase hex digits)".into(),
        ));
    }
    let Some(i) = &r.integrity else {
        return Ok(Verdict::Foreign(Foreign::NoDigest));
    };
    if !equal_ct(digest(r).as_bytes(), i.sha256.as_bytes()) {
        return Err(Tampered(
            "its integrity digest does not match its command, workspace or profile (edited after it was written)".into(),
        ));
    }
    Ok(match (&i.hmac_sha256, key) {
        (None, _) => Verdict::Foreign(Foreign::Unsigned),
        (Some(_), Err(e)) => Verdict::Foreign(Foreign::KeyUnusable(e.to_string())),
        (Some(_), Ok(None)) => Verdict::Foreign(Foreign::NoLocalKey),
        (Some(s), Ok(Some(k))) if k.verify(&i.sha256, s) => Verdict::Signed,
        (Some(_), Ok(Some(_))) => Verdict::Foreign(Foreign::OtherKey),
    })
}

// ---------------------------------------------------------------------------
// The key file
// ---------------------------------------------------------------------------

/// `${XDG_STATE_HOME:-$HOME/.local/state}/cordon`, from the given variables
/// (XDG_STATE_HOME counts only when absolute, as the XDG spec says).
pub fn key_dir_from(xdg_state_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    match (xdg_state_home, home) {
        (Some(x), _) if x.starts_with('/') => Some(Path::new(x).join("cordon")),
        (_, Some(h)) if h.starts_with('/') => Some(Path::new(h).join(".local/state/cordon")),
        _ => None,
    }
}

/// The state directory holding this user's report key.
pub fn key_dir() -> Option<PathBuf> {
    let var = |n| std::env::var(n).ok().filter(|v| !v.is_empty());
    key_dir_from(var("XDG_STATE_HOME").as_deref(), var("HOME").as_deref())
}

/// Why the key could not be used; the message names the file.
#[derive(Debug)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn key_err(path: &Path, what: &str, e: impl std::fmt::Display) -> KeyError {
    KeyError(format!("report key {}: {what}: {e}", path.display()))
}

/// Open the state directory without following a link at its last component,
/// and check that it is this user's and private.
fn open_dir(dir: &Path, create: bool) -> Result<Option<OwnedFd>, KeyError> {
    if create {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| key_err(dir, "creating its directory", e))?;
    }
    let fd = match nix::fcntl::open(
        dir,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) if !create => return Ok(None),
        Err(e) => return Err(key_err(dir, "opening its directory", e)),
    };
    private(&fd, dir, libc::S_IFDIR)?;
    Ok(Some(fd))
}

/// This user's, of the expected type, and no access for group or others.
fn private(fd: &OwnedFd, path: &Path, kind: libc::mode_t) -> Result<(), KeyError> {
    let st = fstat(fd).map_err(|e| key_err(path, "stat", e))?;
    if st.st_mode & libc::S_IFMT != kind {
        return Err(KeyError(format!(
            "report key {}: not a {}",
            path.display(),
            if kind == libc::S_IFDIR {
                "directory"
            } else {
                "regular file"
            }
        )));
    }
    if st.st_uid != nix::unistd::geteuid().as_raw() || st.st_mode & 0o077 != 0 {
        return Err(KeyError(format!(
            "report key {}: owned by uid {} with mode {:o}; it must be this user's and private (delete it to make a new key)",
            path.display(),
            st.st_uid,
            st.st_mode & 0o7777
        )));
    }
    Ok(())
}

fn read_key(dirfd: &OwnedFd, path: &Path) -> Result<Option<Key>, KeyError> {
    let fd = match openat(
        dirfd.as_fd(),
        KEY_FILE,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(key_err(path, "opening", e)),
    };
    private(&fd, path, libc::S_IFREG)?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(256)
        .read_to_string(&mut text)
        .map_err(|e| key_err(path, "reading", e))?;
    match unhex(text.trim_end()) {
        Some(b) if b.len() == 32 => {
            let mut k = [0u8; 32];
            k.copy_from_slice(&b);
            Ok(Some(Key(k)))
        }
        _ => Err(KeyError(format!(
            "report key {}: malformed (delete it to make a new key)",
            path.display()
        ))),
    }
}

/// This user's report key, if there is one. Never creates it.
pub fn load_key() -> Result<Option<Key>, KeyError> {
    let Some(dir) = key_dir() else {
        return Ok(None);
    };
    let path = dir.join(KEY_FILE);
    match open_dir(&dir, false)? {
        Some(fd) => read_key(&fd, &path),
        None => Ok(None),
    }
}

/// This user's report key, created on first use: 32 bytes from the kernel's
/// random source, written to a private temporary file (O_CREAT|O_EXCL|O_NOFOLLOW,
/// mode 0600) and linked into place, so that a concurrent first use finds
/// either no key or a whole one.
pub fn ensure_key() -> Result<Key, KeyError> {
    let dir = key_dir().ok_or_else(|| {
        KeyError("report key: neither XDG_STATE_HOME nor HOME is an absolute path".into())
    })?;
    let path = dir.join(KEY_FILE);
    let dirfd = open_dir(&dir, true)?.ok_or_else(|| key_err(&dir, "opening", Errno::ENOENT))?;
    if let Some(k) = read_key(&dirfd, &path)? {
        return Ok(k);
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| key_err(&path, "reading /dev/urandom", e))?;
    let tmp = format!(".{KEY_FILE}.{}", std::process::id());
    let create = || {
        openat(
            dirfd.as_fd(),
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
    };
    let fd = match create() {
        // A temporary file a crashed run of this same pid left behind.
        Err(Errno::EEXIST) => {
            let _ = nix::unistd::unlinkat(
                dirfd.as_fd(),
                tmp.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            create()
        }
        r => r,
    }
    .map_err(|e| key_err(&path, "creating", e))?;
    let unlink_tmp = || {
        let _ = nix::unistd::unlinkat(
            dirfd.as_fd(),
            tmp.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    };
    let mut f = std::fs::File::from(fd);
    if let Err(e) = f
        .write_all(format!("{}\n", hex(&bytes)).as_bytes())
        .and_then(|_| f.sync_all())
    {
        unlink_tmp();
        return Err(key_err(&path, "writing", e));
    }
    drop(f);
    // link(2) never replaces and never follows a link at the new name.
    let linked = nix::unistd::linkat(
        dirfd.as_fd(),
        tmp.as_str(),
        dirfd.as_fd(),
        KEY_FILE,
        nix::fcntl::AtFlags::empty(),
    );
    unlink_tmp();
    match linked {
        Ok(()) => Ok(Key(bytes)),
        // Another first use won the race: use its key.
        Err(Errno::EEXIST) => {
            read_key(&dirfd, &path)?.ok_or_else(|| key_err(&path, "reading", Errno::ENOENT))
        }
        Err(e) => Err(key_err(&path, "linking into place", e)),
    }
}

/// Before a run whose writable roots cover the key's location, make sure the
/// key exists (so the profiles' deny masks it and a payload cannot plant its
/// own). Returns whether it was created. One `statx` when the key exists.
pub fn guard_key_location<'a>(
    mut writable: impl Iterator<Item = &'a Path>,
) -> Result<bool, KeyError> {
    let Some(dir) = key_dir() else {
        return Ok(false);
    };
    if std::fs::symlink_metadata(dir.join(KEY_FILE)).is_ok() {
        return Ok(false);
    }
    // Grants are canonical: compare with the canonical form of the nearest
    // ancestor that exists.
    let mut existing = dir.as_path();
    let canon = loop {
        if let Ok(c) = std::fs::canonicalize(existing) {
            break c.join(dir.strip_prefix(existing).unwrap_or(Path::new("")));
        }
        match existing.parent() {
            Some(p) => existing = p,
            None => return Ok(false),
        }
    };
    if writable.any(|w| canon.starts_with(w)) {
        ensure_key().map(|_| true)
    } else {
        Ok(false)
    }
}

// ---------------------------------------------------------------------------
// Terminal safety
// ---------------------------------------------------------------------------

/// Report text made safe for a terminal: C0 and C1 controls, DEL and the
/// bidirectional overrides become visible escapes (`\n`, `\x1b`, `\u{202e}`),
/// so a recorded command or path cannot move the cursor, retitle the window or
/// reorder what the user reads. Used for text taken from a report (`replay`,
/// `report diff`); unlike `term::escape` it doubles backslashes, so a printed
/// command or path reads back unambiguously.
pub fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (0x80..0xa0).contains(&(c as u32))
                || matches!(c as u32, 0x200e | 0x200f | 0x202a..=0x202e | 0x2066..=0x2069) =>
            {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_rfc4231_vectors() {
        // RFC 4231 test cases 1, 2 and 6 (a key longer than a block).
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x"],"x":null}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#).unwrap();
        let (mut sa, mut sb) = (String::new(), String::new());
        canonical_json(&a, &mut sa);
        canonical_json(&b, &mut sb);
        assert_eq!(sa, r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#);
        assert_eq!(sa, sb);
    }

    #[test]
    fn key_dir_follows_xdg() {
        assert_eq!(
            key_dir_from(Some("/s"), Some("/h")),
            Some(PathBuf::from("/s/cordon"))
        );
        assert_eq!(
            key_dir_from(Some("rel"), Some("/h")),
            Some(PathBuf::from("/h/.local/state/cordon"))
        );
        assert_eq!(
            key_dir_from(None, Some("/h")),
            Some(PathBuf::from("/h/.local/state/cordon"))
        );
        assert_eq!(key_dir_from(None, Some("h")), None);
    }

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(escape_controls("ls -l"), "ls -l");
        assert_eq!(escape_controls("a\x1b]0;x\x07b"), "a\\x1b]0;x\\x07b");
        assert_eq!(escape_controls("a\nb\\"), "a\\nb\\\\");
        assert_eq!(escape_controls("\u{9b}31m\u{202e}"), "\\u{9b}31m\\u{202e}");
        assert_eq!(escape_controls("été"), "été");
    }

    #[test]
    fn signatures_verify_only_under_their_key() {
        let (k1, k2) = (Key([1; 32]), Key([2; 32]));
        let d = "00".repeat(32);
        let s = k1.sign(&d);
        assert!(k1.verify(&d, &s));
        assert!(!k2.verify(&d, &s));
        assert!(!k1.verify(&"11".repeat(32), &s));
    }
}
