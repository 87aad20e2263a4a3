//! What a session's clients and its server say to each other, and how.
//!
//! Requests go over the control socket (SOCK_SEQPACKET: one message is one
//! request, with the descriptors it passes as SCM_RIGHTS). Every request that
//! has an answer passes a channel of its own (a SOCK_STREAM socket) as its
//! first descriptor, so that clients on several threads never read each
//! other's answers; on a channel the server and the command's worker write
//! one JSON event per line, and the client writes `Signal` lines.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, BufRead, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

use crate::report::Report;

/// The largest request: a command's argv and its client's environment.
/// Larger ones are refused on the client's side with this bound named.
pub const MAX_REQUEST: usize = 160 * 1024;
/// Descriptors per request: a channel and the command's stdin, stdout, stderr.
pub const MAX_FDS: usize = 4;
/// The largest event line read from a channel (a report, bounded by its caps).
pub const MAX_EVENT: u64 = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Run a command. Descriptors: its channel, stdin, stdout, stderr.
    Run(RunRequest),
    /// Describe the session. Descriptor: the channel for the answer.
    Info,
    /// End every command, then the session. Descriptor: the channel, which
    /// gets the session's description once everything has ended.
    Stop,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub argv: Vec<OsString>,
    /// The client's environment: the base the profile's `[env]` filters.
    pub env: BTreeMap<String, String>,
    /// Variables set whatever the profile's filters say (the library's `env`).
    pub set: Vec<(String, String)>,
    /// Where the command starts.
    pub cwd: PathBuf,
    /// Write this command's run report here (as `cordon run --report`).
    pub report: Option<PathBuf>,
    /// Print no warnings or summary of cordon's own on the command's stderr.
    pub quiet: bool,
    /// Print cordon's errors there (the CLI; the library gets them typed).
    pub errors: bool,
    /// Refuse to run when the profile file changed since the session started.
    pub fresh: bool,
}

/// One line on a command's channel.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Event {
    /// The server took the command (its id in the session).
    Started { id: u64 },
    /// The command ended (or never started).
    Done(Done),
    /// The answer to `Info` and `Stop`.
    Info(Info),
    /// From the client: send this signal to the command (forwarded to the
    /// payload as `cordon run` forwards the signals it gets; 9 ends the tree).
    Signal { signal: i32 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Done {
    /// The contract's exit code.
    pub code: u8,
    /// Why cordon failed (exit 125), or why the command did not run (126, 127).
    pub error: Option<String>,
    pub report: Option<Box<Report>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Info {
    pub name: String,
    /// The server's pid.
    pub pid: u32,
    pub profile: String,
    pub workspace: String,
    pub started_at: String,
    /// Commands run so far, and how many are running.
    pub commands: u64,
    pub running: u64,
    /// The profile file changed since the session started.
    pub profile_changed: bool,
    /// Warnings of the session's preparation (best effort: what is missing).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Why the server could not start (the library's handshake); the rest is empty then.
    #[serde(default)]
    pub error: Option<String>,
}

/// Send one request with its descriptors.
pub fn send(sock: BorrowedFd<'_>, req: &Request, fds: &[RawFd]) -> io::Result<()> {
    let bytes = serde_json::to_vec(req).map_err(io::Error::other)?;
    if bytes.len() > MAX_REQUEST {
        return Err(io::Error::other(format!(
            "the request is {} bytes, more than the bound of {MAX_REQUEST} (argv and environment)",
            bytes.len()
        )));
    }
    let iov = [io::IoSlice::new(&bytes)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// What came on the control socket: a request and its descriptors, a request
/// that does not parse (its descriptors are closed), or the end.
#[derive(Debug)]
pub enum Received {
    Request(Request, Vec<OwnedFd>),
    Bad(String),
    End,
}

pub fn recv(sock: BorrowedFd<'_>) -> io::Result<Received> {
    let mut buf = vec![0u8; MAX_REQUEST + 1];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(got) = c {
            fds.extend(got.into_iter().map(crate::sys::own_fd));
        }
    }
    let (n, truncated) = (
        msg.bytes,
        msg.flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC),
    );
    if n == 0 && fds.is_empty() {
        return Ok(Received::End);
    }
    if truncated {
        return Ok(Received::Bad("a request larger than the bound".into()));
    }
    match serde_json::from_slice(&buf[..n]) {
        Ok(r) => Ok(Received::Request(r, fds)),
        Err(e) => Ok(Received::Bad(format!("a request that does not parse: {e}"))),
    }
}

/// Write one event line to a channel.
pub fn write_event(mut w: impl Write, e: &Event) -> io::Result<()> {
    let mut line = serde_json::to_vec(e).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)
}

/// Read the next event line of a channel; `None` at its end.
pub fn read_event(r: &mut impl BufRead) -> io::Result<Option<Event>> {
    let mut line = Vec::new();
    let n = r.by_ref().take(MAX_EVENT).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_events_round_trip() {
        let r = Request::Run(RunRequest {
            argv: vec!["/bin/echo".into(), OsString::from("a b")],
            env: BTreeMap::from([("HOME".into(), "/root".into())]),
            set: vec![("X".into(), "1".into())],
            cwd: "/w".into(),
            report: None,
            quiet: true,
            errors: false,
            fresh: false,
        });
        let back: Request = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert!(matches!(back, Request::Run(ref rr) if rr.argv.len() == 2 && rr.quiet));
        let mut out = Vec::new();
        write_event(&mut out, &Event::Started { id: 7 }).unwrap();
        write_event(&mut out, &Event::Signal { signal: 15 }).unwrap();
        let mut rd = io::BufReader::new(&out[..]);
        assert!(matches!(
            read_event(&mut rd).unwrap(),
            Some(Event::Started { id: 7 })
        ));
        assert!(matches!(
            read_event(&mut rd).unwrap(),
            Some(Event::Signal { signal: 15 })
        ));
        assert!(read_event(&mut rd).unwrap().is_none());
    }

    #[test]
    fn unknown_requests_are_refused() {
        assert!(serde_json::from_str::<Request>(r#"{"op":"widen","path":"/"}"#).is_err());
        assert!(
            serde_json::from_str::<Request>(
                r#"{"op":"run","argv":[],"env":{},"set":[],"cwd":"/","report":null,"quiet":true,"errors":true,"fresh":false,"policy":"on"}"#
            )
            .is_err(),
            "unknown fields of a run are refused"
        );
    }
}
