//! One launch state for the runs that overlap in a workspace. An agent runs
//! several commands at once; a run that started while another's payload had
//! changed a protected file would otherwise take that change as its launch
//! state and put it back after the first run removed it. So the first run's
//! state is kept in a private directory (`$XDG_RUNTIME_DIR/cordon-guard`,
//! `/run/user/UID/cordon-guard`, or `/run/cordon-guard` as root: never one a
//! sandbox can write), later runs join it, and the last one to end restores.
//!
//! Owns the state file, its lock and the list of live runs. Does not decide
//! what is protected or restore anything.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::Protected;
use super::tree::Node;
use crate::policy::beneath;

/// The shared launch state of a workspace.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Live runs: pid and start time (clock ticks after boot), so a reused pid
    /// is not taken for a run.
    runs: Vec<(u32, u64)>,
    pub items: Vec<(Protected, Node)>,
    pub git_dirs: Vec<PathBuf>,
    pub nested: Vec<PathBuf>,
    pub worktrees: Vec<PathBuf>,
    /// Directories above protected paths that were symlinks at launch, with
    /// their targets.
    #[serde(default)]
    pub links: std::collections::BTreeMap<PathBuf, PathBuf>,
}

impl State {
    pub fn active(&self) -> bool {
        !self.runs.is_empty()
    }
}

/// A first run's launch state, borrowed from its guard.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    pub items: &'a [(Protected, Node)],
    pub git_dirs: &'a BTreeSet<PathBuf>,
    pub nested: &'a BTreeSet<PathBuf>,
    pub worktrees: &'a BTreeSet<PathBuf>,
    pub links: &'a std::collections::BTreeMap<PathBuf, PathBuf>,
}

/// [`Launch`] as written: the fields and form of [`State`].
#[derive(Serialize)]
struct LaunchFile<'a> {
    runs: [(u32, u64); 1],
    items: &'a [(Protected, Node)],
    git_dirs: &'a BTreeSet<PathBuf>,
    nested: &'a BTreeSet<PathBuf>,
    worktrees: &'a BTreeSet<PathBuf>,
    links: &'a std::collections::BTreeMap<PathBuf, PathBuf>,
}

/// The live runs alone: what the end of a run reads first (the items are
/// skipped, not built).
#[derive(Deserialize)]
struct Runs {
    runs: Vec<(u32, u64)>,
}

/// Where the state of one workspace lives.
#[derive(Debug)]
pub struct Shared {
    pub(super) lock: PathBuf,
    pub(super) state: PathBuf,
}

/// The held lock (released on drop).
pub struct Held(#[allow(dead_code)] Flock<File>);

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held")
    }
}

impl Shared {
    /// A private directory no writable root covers, or None (then each run
    /// keeps its own state; `profile show` and -v say so).
    pub fn locate(ws: &Path, writable: &[PathBuf]) -> Option<Shared> {
        let uid = nix::unistd::geteuid().as_raw();
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
            if x.is_absolute() {
                candidates.push(x.join("cordon-guard"));
            }
        }
        candidates.push(PathBuf::from(format!("/run/user/{uid}/cordon-guard")));
        if uid == 0 {
            candidates.push(PathBuf::from("/run/cordon-guard"));
        }
        let dir = candidates
            .into_iter()
            .find(|c| !writable.iter().any(|w| beneath(c, w)) && private_dir(c, uid))?;
        let key: String = sha256(ws.as_os_str().as_encoded_bytes())
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        Some(Shared {
            lock: dir.join(format!("{key}.lock")),
            state: dir.join(format!("{key}.json")),
        })
    }

    pub fn lock(&self) -> Option<Held> {
        // The last run removes the lock file; a run that was waiting on the old
        // one then holds a lock on nothing and tries again.
        for _ in 0..100 {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&self.lock)
                .ok()?;
            let held = Flock::lock(f, FlockArg::LockExclusive).ok()?;
            let same = match (held.metadata(), std::fs::symlink_metadata(&self.lock)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if same {
                return Some(Held(held));
            }
        }
        None
    }

    fn text(&self) -> Option<String> {
        let mut text = String::new();
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.state)
            .and_then(|mut f| f.read_to_string(&mut text))
            .ok()
            .map(|_| text)
    }

    /// The state, without the runs that have ended (a killed launcher's too).
    pub fn read(&self, _held: &Held) -> State {
        let mut st: State = self
            .text()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        st.runs.retain(|r| alive(*r));
        if st.runs.is_empty() {
            // Every run that shared it has ended (or was killed): it describes nothing now.
            st = State::default();
        }
        st
    }

    /// The first run's launch state, with this run as its only live one.
    pub fn write_launch(&self, l: Launch<'_>, held: &Held) -> bool {
        let file = LaunchFile {
            runs: [me()],
            items: l.items,
            git_dirs: l.git_dirs,
            nested: l.nested,
            worktrees: l.worktrees,
            links: l.links,
        };
        self.write(&file, held)
    }

    /// Join a live state (as [`read`](Self::read) returned it).
    pub fn write_joined(&self, st: &mut State, held: &Held) -> bool {
        st.runs.push(me());
        self.write(st, held)
    }

    fn write<T: Serialize>(&self, st: &T, _held: &Held) -> bool {
        let Ok(text) = serde_json::to_string(st) else {
            return false;
        };
        let tmp = self
            .state
            .with_extension(format!("{}.tmp", std::process::id()));
        let ok = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, &self.state))
            .is_ok();
        if !ok {
            let _ = std::fs::remove_file(&tmp);
        }
        ok
    }

    /// Take this run out of the state. True when other runs are still live
    /// (the state is written back without this one); false when it was the
    /// last (the state and its lock file are removed).
    pub fn leave(&self, held: &Held) -> bool {
        let m = me();
        let text = self.text();
        // The live runs first: the whole state is parsed only when another
        // run is left to write it back for.
        let others: Vec<(u32, u64)> = text
            .as_deref()
            .and_then(|t| serde_json::from_str::<Runs>(t).ok())
            .map(|r| r.runs)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| *r != m && alive(*r))
            .collect();
        if !others.is_empty() {
            // A state that does not parse whole describes nothing (as `read` has it).
            if let Some(mut st) = text
                .as_deref()
                .and_then(|t| serde_json::from_str::<State>(t).ok())
            {
                st.runs = others;
                self.write(&st, held);
                return true;
            }
        }
        self.remove(held);
        false
    }

    /// Remove the state and its lock file (the last run, holding the lock).
    pub fn remove(&self, _held: &Held) {
        let _ = std::fs::remove_file(&self.state);
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// SHA-256, for the one short input a run hashes before its payload (the
/// workspace's path, which names its state). The `sha2` crate's first call
/// probes the CPU with three `cpuid`s to pick an implementation, and a virtual
/// machine traps each one (~26 µs each on the machine the launch was measured
/// on): more than the hash of a path costs in plain Rust. The state's name is
/// the same as with `sha2` (a test compares them).
fn sha256(data: &[u8]) -> [u8; 32] {
    #[rustfmt::skip]
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (o, x) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// Create `dir` if needed (in a directory that exists); it must be ours and
/// writable by no one else.
fn private_dir(dir: &Path, uid: u32) -> bool {
    let md = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return false,
                _ => std::fs::symlink_metadata(dir),
            }
        }
        md => md,
    };
    md.is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o022 == 0)
}

/// This run: its pid and start time (read once per process).
fn me() -> (u32, u64) {
    static ME: OnceLock<(u32, u64)> = OnceLock::new();
    *ME.get_or_init(|| {
        let pid = std::process::id();
        (pid, start_time(pid).unwrap_or(0))
    })
}

fn start_time(pid: u32) -> Option<u64> {
    // One read: the line is far shorter than the buffer (the command name is
    // at most 64 bytes).
    let mut buf = [0u8; 1024];
    let mut f = File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    let stat = std::str::from_utf8(&buf[..n]).ok()?;
    // Field 22, counted after the command name's closing parenthesis.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

fn alive((pid, start): (u32, u64)) -> bool {
    start_time(pid) == Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_named_as_with_the_sha2_crate() {
        use sha2::Digest;
        for n in [0, 1, 55, 56, 63, 64, 65, 119, 120, 200, 4096] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
            assert_eq!(
                sha256(&data)[..],
                sha2::Sha256::digest(&data)[..],
                "{n} bytes"
            );
        }
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let m = me();
        assert!(m.1 > 0);
        assert!(alive(m));
        assert!(!alive((m.0, m.1 + 1)));
    }
}
