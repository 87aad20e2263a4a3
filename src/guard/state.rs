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

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
}

impl State {
    pub fn active(&self) -> bool {
        !self.runs.is_empty()
    }
}

/// Where the state of one workspace lives.
#[derive(Debug)]
pub struct Shared {
    lock: PathBuf,
    state: PathBuf,
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
        let dir = candidates.into_iter().find(|c| {
            !writable.iter().any(|w| beneath(c, w))
                && c.parent().is_some_and(Path::is_dir)
                && private_dir(c, uid)
        })?;
        let key: String = {
            use sha2::Digest;
            let h = sha2::Sha256::digest(ws.as_os_str().as_encoded_bytes());
            h.iter().take(12).map(|b| format!("{b:02x}")).collect()
        };
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

    /// The state, without the runs that have ended (a killed launcher's too).
    pub fn read(&self, _held: &Held) -> State {
        let mut text = String::new();
        let ok = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.state)
            .and_then(|mut f| f.read_to_string(&mut text))
            .is_ok();
        let mut st: State = if ok {
            serde_json::from_str(&text).unwrap_or_default()
        } else {
            State::default()
        };
        st.runs.retain(|r| alive(*r));
        if st.runs.is_empty() {
            // Every run that shared it has ended (or was killed): it describes nothing now.
            st = State::default();
        }
        st
    }

    pub fn write(&self, st: &State, _held: &Held) -> bool {
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

    /// Remove the state and its lock file (the last run, holding the lock).
    pub fn remove(&self, _held: &Held) {
        let _ = std::fs::remove_file(&self.state);
        let _ = std::fs::remove_file(&self.lock);
    }

    pub fn join(&self, st: &mut State) {
        st.runs.push(me());
    }

    pub fn leave(&self, st: &mut State) {
        let m = me();
        st.runs.retain(|r| *r != m);
    }
}

/// Create `dir` if needed; it must be ours and writable by no one else.
fn private_dir(dir: &Path, uid: u32) -> bool {
    let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o022 == 0)
}

fn me() -> (u32, u64) {
    let pid = std::process::id();
    (pid, start_time(pid).unwrap_or(0))
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
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
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let m = me();
        assert!(m.1 > 0);
        assert!(alive(m));
        assert!(!alive((m.0, m.1 + 1)));
    }
}
