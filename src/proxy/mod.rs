//! Network mode "proxy": the proxy and the resolver the launcher serves to the
//! sandboxed tree. Init makes their sockets inside the tree's own network
//! namespace (127.0.0.1:3128 for HTTP and SOCKS5, 127.0.0.1:53 for DNS) and
//! hands them over; the launcher accepts there and connects from the host's
//! namespace, so no bridge process and no veth are needed, and the tree
//! reaches nothing else. Without namespaces the listener is on the host's
//! loopback (Landlock's one port and the supervisor keep the tree to it), and
//! there is no resolver.
//!
//! Owns the serving threads and what they record (refusals as report
//! denials, allowed connections per name). Decides nothing itself: every
//! request goes through `netname::Rules`. Never terminates TLS: a CONNECT or
//! SOCKS5 stream is relayed as bytes.

mod dns;
mod http;
mod socks;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netname::{Refusal, Rules, Target};
use crate::report::Denial;

/// Where the proxy listens inside the tree's network namespace.
pub const PROXY_ADDR: &str = "127.0.0.1:3128";
/// Where the resolver answers inside it (/etc/resolv.conf names it).
pub const DNS_ADDR: &str = "127.0.0.1:53";
/// The tree's /etc/resolv.conf in mode "proxy".
pub const RESOLV_CONF: &str = "# cordon: names resolve through the launcher (network mode \"proxy\")\nnameserver 127.0.0.1\noptions edns0 trust-ad\n";

/// Connections served at once; more wait in the listen queue (recorded once).
const MAX_CONNECTIONS: usize = 512;
/// Lookups answered at once (each may wait on the host's resolver).
const MAX_LOOKUPS: usize = 64;
/// Refusals kept for the report; more are counted.
const MAX_DENIALS: usize = 1000;
/// Names counted in `domains`; more are counted in one entry.
const MAX_NAMES: usize = 1000;
/// The most of a payload-chosen name kept in a denial's fields.
const MAX_TEXT: usize = 512;
/// The most one splice moves (a pipe's default capacity): per direction of
/// a connection, so at most 64 MiB of pipe pages in flight at the connection cap.
const RELAY_BUFFER: usize = 64 * 1024;
/// A flow that has moved `BULK` bytes gets a pipe of `BIG_PIPE` (fewer
/// wake-ups per byte: a 1 GiB transfer 0.6x → 0.7x direct here), at most
/// `MAX_BIG_PIPES` at once, so the pipes' pages stay bounded (64 MiB of big
/// pipes beside the small ones).
const BULK: u64 = 1 << 20;
const BIG_PIPE: usize = 1 << 20;
const MAX_BIG_PIPES: usize = 64;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection to an allowed host may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The variables that point the tree's tools at the proxy at `addr`.
pub fn environment(addr: &str) -> Vec<(String, String)> {
    let http = format!("http://{addr}");
    let socks = format!("socks5h://{addr}");
    let mut v = Vec::new();
    for (k, val) in [
        ("HTTP_PROXY", &http),
        ("HTTPS_PROXY", &http),
        ("ALL_PROXY", &socks),
    ] {
        v.push((k.to_string(), val.clone()));
        v.push((k.to_ascii_lowercase(), val.clone()));
    }
    // Loopback inside the tree is the tree's own (a test server, a dev server).
    for k in ["NO_PROXY", "no_proxy"] {
        v.push((k.to_string(), "localhost,127.0.0.1,::1".to_string()));
    }
    v
}

/// Make the proxy's and the resolver's sockets, in init, inside the new
/// network namespace: loopback up, then bound. Returns them to be handed to
/// the launcher.
pub fn make_sockets() -> io::Result<(TcpListener, UdpSocket)> {
    crate::sys::loopback_up()?;
    let tcp = listener(PROXY_ADDR)?;
    let udp = UdpSocket::bind(DNS_ADDR)?;
    Ok((tcp, udp))
}

/// A listener for the proxy with a long queue: the connections beyond the
/// cap wait there instead of having their SYNs dropped.
pub fn listener(addr: &str) -> io::Result<TcpListener> {
    let l = TcpListener::bind(addr)?;
    nix::sys::socket::listen(&l, nix::sys::socket::Backlog::new(LISTEN_QUEUE)?)?;
    Ok(l)
}

/// The listen queue's length (the kernel caps it at net.core.somaxconn).
const LISTEN_QUEUE: i32 = 1024;

/// What the proxy did during the run.
#[derive(Debug, Default)]
pub struct Record {
    pub denials: Vec<Denial>,
    /// Refusals beyond `denials`.
    pub dropped: u64,
    /// Allowed connections per name (or address) as the client asked for it.
    pub domains: BTreeMap<String, u64>,
    /// Names (`resolve` denials) already recorded: a lookup asks twice (A, AAAA).
    resolved_refusals: std::collections::BTreeSet<String>,
}

struct Shared {
    rules: Rules,
    /// `approve.domains = "ask"`: names outside the allowlist are asked about.
    asker: Option<crate::approval::DomainAsker>,
    started: Instant,
    record: Mutex<Record>,
    connections: AtomicUsize,
    lookups: AtomicUsize,
    /// The host resolver's answers, kept `NAME_TTL`: a client that opens many
    /// connections to one name (a package install) asks the resolver once.
    names: Mutex<std::collections::HashMap<String, (Instant, Vec<IpAddr>)>>,
    /// Connections served at once: `MAX_CONNECTIONS`, or fewer where the
    /// launcher's descriptors would not hold them (`FDS_PER_CONNECTION`).
    cap: usize,
    /// Flows with a big pipe now (`MAX_BIG_PIPES`).
    big_pipes: AtomicUsize,
    /// Accepting workers: waiting in accept(2), and in all.
    idle: AtomicUsize,
    workers: AtomicUsize,
    stopping: std::sync::atomic::AtomicBool,
    cap_said: std::sync::atomic::AtomicBool,
}

/// Descriptors one relayed connection holds: two sockets and two pipes.
const FDS_PER_CONNECTION: u64 = 6;
/// Descriptors kept for everything else the launcher opens meanwhile.
const FDS_RESERVED: u64 = 256;

/// How many connections the launcher's descriptors allow: its soft limit is
/// raised to the hard one first (the tree's own limits were set before).
fn connection_cap() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let soft = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    };
    let room = soft.saturating_sub(FDS_RESERVED) / FDS_PER_CONNECTION;
    (room as usize).clamp(1, MAX_CONNECTIONS)
}

/// How long a resolved name is reused within a run.
const NAME_TTL: Duration = Duration::from_secs(30);
/// Names kept at once (the cache is emptied when full).
const MAX_CACHED: usize = 1024;

impl Shared {
    fn deny(&self, operation: &str, target: String, answer: &str, r: Refusal) {
        let mut rec = self.record.lock().unwrap_or_else(|e| e.into_inner());
        if operation == "resolve" && !rec.resolved_refusals.insert(target.clone()) {
            return;
        }
        if rec.denials.len() >= MAX_DENIALS {
            rec.dropped += 1;
            return;
        }
        // The payload chose the name: what is kept of it is bounded.
        rec.denials.push(Denial {
            kind: crate::report::DenialKind::Net,
            operation: operation.into(),
            target: cut(target, MAX_TEXT),
            pid: 0,
            exe: String::new(),
            errno: answer.into(),
            rule: cut(format!("network mode \"proxy\": {}", r.rule), MAX_TEXT),
            suggestion: cut(r.suggestion, MAX_TEXT),
            observed_by: crate::report::ObservedBy::Proxy,
            at_ms: self.started.elapsed().as_millis() as u64,
        });
    }

    /// The rules' answer for `t:port`; a name outside the allowlist (not
    /// denied, on an allowed port) goes to the approver when the profile says
    /// `approve.domains = "ask"`, before anything connects.
    fn check(&self, t: &Target, port: u16) -> Result<(), Refusal> {
        let r = match self.rules.check(t, port) {
            Ok(_) => return Ok(()),
            Err(r) => r,
        };
        match &self.asker {
            Some(a) if self.rules.askable(t, port) => {
                if a.ask(format!("{t}:{port}")) {
                    Ok(())
                } else {
                    Err(Refusal {
                        rule: format!(
                            "{}; the approver did not allow it (approve.domains \"ask\")",
                            r.rule
                        ),
                        suggestion: r.suggestion,
                    })
                }
            }
            _ => Err(r),
        }
    }

    fn allowed(&self, t: &Target) {
        let mut rec = self.record.lock().unwrap_or_else(|e| e.into_inner());
        let key = t.to_string();
        if rec.domains.len() >= MAX_NAMES && !rec.domains.contains_key(&key) {
            *rec.domains.entry("(other names)".into()).or_default() += 1;
        } else {
            *rec.domains.entry(key).or_default() += 1;
        }
    }

    /// The host resolver's addresses for `name` (cached for `NAME_TTL`).
    fn resolve(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        let now = Instant::now();
        {
            let cache = self.names.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, addrs)) = cache.get(name) {
                if now.duration_since(*at) < NAME_TTL {
                    return Ok(addrs.clone());
                }
            }
        }
        let mut addrs: Vec<IpAddr> = Vec::new();
        for a in (name, 0).to_socket_addrs()? {
            if !addrs.contains(&a.ip()) {
                addrs.push(a.ip());
            }
        }
        let mut cache = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(name.to_string(), (now, addrs.clone()));
        Ok(addrs)
    }

    /// Resolve and connect to an allowed target, or say why not: a refusal
    /// of the rules (`Failed::Rule`: the name leads to an address it must
    /// not) or a host that cannot be reached.
    fn open(&self, t: &Target, port: u16) -> Result<TcpStream, Failed> {
        let addrs: Vec<IpAddr> = match t {
            Target::Ip(a) => vec![*a],
            Target::Name(n) => self.resolve(n).map_err(|e| {
                Failed::Unreachable(Refusal {
                    rule: format!("{n} does not resolve on the host: {e}"),
                    suggestion: "check the name".into(),
                })
            })?,
        };
        let usable = self.rules.usable(t, &addrs).map_err(Failed::Rule)?;
        let mut last = None;
        for a in usable {
            match TcpStream::connect_timeout(&SocketAddr::new(a, port), CONNECT_TIMEOUT) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(format!("{a}: {e}")),
            }
        }
        Err(Failed::Unreachable(Refusal {
            rule: format!("no connection to {t}:{port} ({})", last.unwrap_or_default()),
            suggestion: "none: the host is unreachable from here".into(),
        }))
    }
}

/// Why an allowed request got no connection.
enum Failed {
    /// The rules refuse where the name leads (a special address): a denial.
    Rule(Refusal),
    /// Not resolvable, or no answer: recorded too, as the run's evidence.
    Unreachable(Refusal),
}

/// The running proxy.
pub struct Proxy {
    shared: Arc<Shared>,
    listener: Arc<TcpListener>,
    stop: Option<OwnedFd>,
    main: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

impl Proxy {
    /// Serve `listener` (and `dns`) under `rules` until [`Proxy::finish`].
    pub fn start(
        listener: TcpListener,
        dns: Option<UdpSocket>,
        rules: Rules,
        started: Instant,
        asker: Option<crate::approval::DomainAsker>,
    ) -> io::Result<Proxy> {
        let shared = Arc::new(Shared {
            rules,
            asker,
            started,
            record: Mutex::new(Record::default()),
            connections: AtomicUsize::new(0),
            lookups: AtomicUsize::new(0),
            names: Mutex::new(std::collections::HashMap::new()),
            cap: connection_cap(),
            big_pipes: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            workers: AtomicUsize::new(0),
            stopping: std::sync::atomic::AtomicBool::new(false),
            cap_said: std::sync::atomic::AtomicBool::new(false),
        });
        let (stop_r, stop_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // Workers wait in accept(2) themselves: the kernel wakes one per
        // connection, as it wakes a server, instead of an accepting thread
        // starting another (a thread's first run costs up to ~0.4 ms here).
        // Until the first connection one thread waits for everything (a run
        // that opens none starts one thread, not two).
        listener.set_nonblocking(false)?;
        let listener = Arc::new(listener);
        if let Some(d) = &dns {
            d.set_nonblocking(true)?;
        }
        let (sh, l) = (shared.clone(), listener.clone());
        let main = Some(
            std::thread::Builder::new()
                .name("cordon-proxy".into())
                .spawn(move || serve(sh, l, dns, stop_r))?,
        );
        Ok(Proxy {
            shared,
            listener,
            stop: Some(stop_w),
            main,
        })
    }

    /// Stop accepting, let the connections that remain end (the tree is gone,
    /// so they do at once), and return the record.
    pub fn finish(mut self) -> Record {
        self.shared.stopping.store(true, Ordering::Release);
        // Wakes every worker in accept(2) (EINVAL on a listener shut down).
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        // The resolver's thread is told to stop, not waited for: waking it
        // on the other CPU would be on the user's time, and it ends with the
        // process anyway. What it recorded is taken under the lock below.
        drop(self.stop.take());
        drop(self.main.take());
        let until = Instant::now() + Duration::from_millis(200);
        while (self.shared.connections.load(Ordering::Acquire) > 0
            || self.shared.lookups.load(Ordering::Acquire) > 0)
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut rec = self.shared.record.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *rec)
    }
}

/// A proxy dropped without `finish` (a launch that failed after it started)
/// stops serving all the same: its workers wake from accept(2) and end.
impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        drop(self.stop.take());
    }
}

/// Start one more accepting worker, unless the cap is reached (then the
/// connections beyond it wait in the listen queue, and a denial says so once).
fn spawn_worker(sh: &Arc<Shared>, listener: &Arc<TcpListener>) -> io::Result<()> {
    let taken = sh
        .workers
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < sh.cap).then_some(n + 1)
        });
    if taken.is_err() {
        if !sh.cap_said.swap(true, Ordering::AcqRel) {
            sh.deny(
                "connect",
                "(any)".into(),
                "queued",
                Refusal {
                    rule: format!(
                        "{} connections at once through the proxy is the cap; more wait until one ends",
                        sh.cap
                    ),
                    suggestion: "none: fewer connections at once".into(),
                },
            );
        }
        return Ok(());
    }
    let (sh2, l2) = (sh.clone(), listener.clone());
    let spawned = std::thread::Builder::new()
        .name("cordon-proxy-conn".into())
        .stack_size(64 * 1024)
        .spawn(move || worker(&sh2, &l2));
    if let Err(e) = spawned {
        sh.workers.fetch_sub(1, Ordering::AcqRel);
        return Err(e);
    }
    Ok(())
}

/// Accept and serve connections until the proxy stops, keeping one worker
/// waiting in accept(2) while there is room.
fn worker(sh: &Arc<Shared>, listener: &Arc<TcpListener>) {
    loop {
        sh.idle.fetch_add(1, Ordering::AcqRel);
        let r = listener.accept();
        sh.idle.fetch_sub(1, Ordering::AcqRel);
        if sh.stopping.load(Ordering::Acquire) {
            break;
        }
        match r {
            Ok((stream, _)) => {
                sh.connections.fetch_add(1, Ordering::AcqRel);
                if sh.idle.load(Ordering::Acquire) == 0 {
                    let _ = spawn_worker(sh, listener);
                }
                let _ = connection(sh, stream);
                sh.connections.fetch_sub(1, Ordering::AcqRel);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Out of descriptors or memory for a moment: the queue keeps the client.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    sh.workers.fetch_sub(1, Ordering::AcqRel);
}

/// Wait for the first connection (then start the accepting workers) and
/// answer the resolver: one short thread per query (each may wait on the
/// host's resolver), at most `MAX_LOOKUPS` at once.
fn serve(sh: Arc<Shared>, listener: Arc<TcpListener>, dns: Option<UdpSocket>, stop: OwnedFd) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut workers = false;
    loop {
        let mut fds = vec![PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
        if let Some(d) = &dns {
            fds.push(PollFd::new(d.as_fd(), PollFlags::POLLIN));
        }
        if !workers {
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            return;
        }
        if !workers && ready.last() == Some(&true) {
            workers = true;
            // Two: one takes the waiting connection, one waits for the next.
            let _ = spawn_worker(&sh, &listener);
            let _ = spawn_worker(&sh, &listener);
        }
        let Some(dns) = dns.as_ref().filter(|_| ready.get(1) == Some(&true)) else {
            continue;
        };
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = dns.recv_from(&mut buf) {
            let q = buf[..n].to_vec();
            let Ok(sock) = dns.try_clone() else { continue };
            if sh.lookups.load(Ordering::Acquire) >= MAX_LOOKUPS {
                if let Some(r) = dns::failure(&q) {
                    let _ = sock.send_to(&r, from);
                }
                continue;
            }
            sh.lookups.fetch_add(1, Ordering::AcqRel);
            let sh2 = sh.clone();
            let spawned = std::thread::Builder::new()
                .name("cordon-proxy-dns".into())
                .stack_size(64 * 1024)
                .spawn(move || {
                    if let Some(r) = dns::answer(&sh2, &q) {
                        let _ = sock.send_to(&r, from);
                    }
                    sh2.lookups.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_err() {
                sh.lookups.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// The time a client has for its whole request (head, or SOCKS handshake):
/// a client that sends one byte now and then does not hold a worker for ever.
struct Deadline(Instant);

impl Deadline {
    fn new() -> Deadline {
        Deadline(Instant::now() + REQUEST_TIMEOUT)
    }

    /// One read, given what is left of the time.
    fn read(&self, mut s: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.0.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        s.set_read_timeout(Some(left))?;
        std::io::Read::read(&mut s, buf)
    }

    fn read_exact(&self, s: &TcpStream, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read(s, buf)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => buf = &mut buf[n..],
            }
        }
        Ok(())
    }
}

/// One client connection: SOCKS5 if its first byte says so, else HTTP.
fn connection(sh: &Shared, client: TcpStream) -> io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let _ = client.set_nodelay(true);
    let mut first = [0u8; 1];
    if client.peek(&mut first)? == 0 {
        return Ok(());
    }
    match first[0] {
        5 => socks::serve(sh, client),
        _ => http::serve(sh, client),
    }
}

/// Relay both ways until each side has ended, in this thread: the pages go
/// socket to pipe to socket (splice), never through the launcher's memory,
/// and no second thread is started per connection. The request timeout is lifted.
fn relay(sh: &Shared, client: TcpStream, upstream: TcpStream, early: &[u8]) -> io::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    client.set_read_timeout(None)?;
    let _ = upstream.set_nodelay(true);
    if !early.is_empty() {
        (&upstream).write_all(early)?;
    }
    client.set_nonblocking(true)?;
    upstream.set_nonblocking(true)?;
    let mut flows = [
        Flow::new(sh, &client, &upstream)?,
        Flow::new(sh, &upstream, &client)?,
    ];
    loop {
        if flows.iter().all(|f| f.done) {
            return Ok(());
        }
        let mut fds = Vec::with_capacity(2);
        let mut owner = Vec::with_capacity(2);
        for (i, f) in flows.iter().enumerate() {
            if f.done {
                continue;
            }
            if f.queued > 0 {
                fds.push(PollFd::new(f.to.as_fd(), PollFlags::POLLOUT));
            } else {
                fds.push(PollFd::new(f.from.as_fd(), PollFlags::POLLIN));
            }
            owner.push(i);
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let ready: Vec<usize> = fds
            .iter()
            .zip(&owner)
            .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, i)| *i)
            .collect();
        drop(fds);
        for i in ready {
            if flows[i].step().is_err() {
                // A side is gone for good: so is the relay.
                let _ = client.shutdown(Shutdown::Both);
                let _ = upstream.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
    }
}

/// One direction of a relay: `from`, a pipe, `to`.
struct Flow<'a> {
    sh: &'a Shared,
    /// Bytes moved so far (u64::MAX once the pipe is big), and whether
    /// growing it was tried.
    moved: u64,
    big: bool,
    from: &'a TcpStream,
    to: &'a TcpStream,
    pr: OwnedFd,
    pw: OwnedFd,
    /// Bytes in the pipe, not yet written to `to`.
    queued: usize,
    done: bool,
}

impl Drop for Flow<'_> {
    fn drop(&mut self) {
        if self.moved == u64::MAX {
            self.sh.big_pipes.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<'a> Flow<'a> {
    fn new(sh: &'a Shared, from: &'a TcpStream, to: &'a TcpStream) -> io::Result<Flow<'a>> {
        let (pr, pw) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        Ok(Flow {
            sh,
            moved: 0,
            big: false,
            from,
            to,
            pr,
            pw,
            queued: 0,
            done: false,
        })
    }

    /// How much one splice asks for: the pipe's capacity, grown once the flow
    /// is a bulk transfer and a big pipe is free.
    fn chunk(&mut self) -> usize {
        if !self.big && self.moved >= BULK {
            // Asked once: refused (the cap, a user's pipe quota), it stays small.
            self.big = true;
            let took = self
                .sh
                .big_pipes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < MAX_BIG_PIPES).then_some(n + 1)
                })
                .is_ok();
            let grown = took
                && nix::fcntl::fcntl(
                    &self.pw,
                    nix::fcntl::FcntlArg::F_SETPIPE_SZ(BIG_PIPE as i32),
                )
                .is_ok();
            if took && !grown {
                self.sh.big_pipes.fetch_sub(1, Ordering::AcqRel);
            }
            if grown {
                self.moved = u64::MAX;
            }
        }
        if self.moved == u64::MAX {
            BIG_PIPE
        } else {
            RELAY_BUFFER
        }
    }

    /// Move what can be moved now. Err: the relay cannot go on.
    fn step(&mut self) -> io::Result<()> {
        use nix::errno::Errno;
        use nix::fcntl::{SpliceFFlags, splice};
        // Not SPLICE_F_MORE: it corks the socket, and a short answer then waits ~200 ms.
        let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
        loop {
            if self.queued > 0 {
                match splice(&self.pr, None, self.to, None, self.queued, flags) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(m) => self.queued -= m,
                    Err(Errno::EAGAIN) => return Ok(()),
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            let chunk = self.chunk();
            match splice(self.from, None, &self.pw, None, chunk, flags) {
                Ok(0) => {
                    // The end of this direction: pass it on, the other goes on.
                    let _ = self.to.shutdown(Shutdown::Write);
                    self.done = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.queued = n;
                    if self.moved != u64::MAX {
                        self.moved += n as u64;
                    }
                }
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// `s` cut to at most `max` bytes (at a character boundary), marked when cut.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("[cordon: cut]");
    }
    s
}

/// A port as written: digits only (Rust's parser also takes "+80").
fn port(p: &str) -> Option<u16> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

/// `host:port` as a client wrote it (`[v6]:port` for an IPv6 address).
fn split_host_port(s: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => port(p)?,
            None if after.is_empty() => default_port?,
            None => return None,
        };
        return Some((h.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h.to_string(), port(p)?)),
        Some(_) => None,
        None => Some((s.to_string(), default_port?)),
    }
}

/// The channel over which init hands the sockets to the launcher: (launcher's end, init's end).
pub fn channel() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// In init: make the sockets and send them over `chan`.
pub fn hand_over(chan: &OwnedFd) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let (tcp, udp) = make_sockets()?;
    let fds = [tcp.as_raw_fd(), udp.as_raw_fd()];
    let iov = [io::IoSlice::new(b"p")];
    sendmsg::<()>(
        chan.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// In the launcher: take the sockets init made.
pub fn take_over(chan: &OwnedFd) -> io::Result<(TcpListener, UdpSocket)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut buf = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 2]);
    let msg = recvmsg::<()>(
        chan.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut got = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            got.extend(fds.into_iter().map(crate::sys::own_fd));
        }
    }
    let mut it = got.into_iter();
    match (it.next(), it.next()) {
        (Some(t), Some(u)) => Ok((TcpListener::from(t), UdpSocket::from(u))),
        _ => Err(io::Error::other("init sent no proxy sockets")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_as_clients_write_them() {
        assert_eq!(
            split_host_port("example.com:443", None),
            Some(("example.com".into(), 443))
        );
        assert_eq!(
            split_host_port("example.com", Some(80)),
            Some(("example.com".into(), 80))
        );
        assert_eq!(
            split_host_port("[::1]:8080", None),
            Some(("::1".into(), 8080))
        );
        assert_eq!(split_host_port("[::1]", Some(80)), Some(("::1".into(), 80)));
        assert_eq!(split_host_port("example.com", None), None);
        assert_eq!(split_host_port("::1:80", None), None);
        assert_eq!(split_host_port("example.com:http", None), None);
        assert_eq!(split_host_port("example.com:+80", None), None);
        assert_eq!(split_host_port("[::1]:+80", None), None);
    }

    #[test]
    fn payload_chosen_text_is_bounded() {
        assert_eq!(cut("abc".into(), 5), "abc");
        assert_eq!(cut("abcdef".into(), 3), "abc[cordon: cut]");
        assert_eq!(cut("aé".into(), 2), "a[cordon: cut]");
    }

    #[test]
    fn the_tree_is_pointed_at_the_proxy() {
        let env = environment(PROXY_ADDR);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HTTPS_PROXY"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("https_proxy"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("ALL_PROXY"), Some("socks5h://127.0.0.1:3128"));
        assert!(get("NO_PROXY").is_some_and(|v| v.contains("127.0.0.1")));
    }
}
