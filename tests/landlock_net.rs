//! The network on this kernel, as root and as uid 65534, in both namespace
//! modes: "off" refuses IP sockets at socket() (seccomp, EAFNOSUPPORT) and, with
//! namespaces, adds an empty network namespace; "on" (--net on) and "filtered"
//! share the host's network, so a listener the test starts outside on 127.0.0.1
//! is reachable; "filtered" allows connect to the listed ports only (Landlock
//! ABI 4, EACCES for the others).

mod support;
use std::net::TcpListener;
use std::time::Duration;

use support::*;

/// A listener on 127.0.0.1 outside the sandbox, non-blocking so that the test
/// can ask whether a connection arrived.
fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// Whether a connection is waiting (or arrives within a moment).
fn accepted(l: &TcpListener) -> bool {
    poll_until(Duration::from_millis(200), || l.accept().is_ok())
}

#[test]
fn network_off_refuses_ip_sockets() {
    for user in users("network_off_refuses_ip_sockets") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let p = ns_profile("workspace-write", ns);
            let got = probe(
                user,
                &p,
                ws.path(),
                &[],
                &[],
                &[
                    ("socket", "tcp"),
                    ("socket", "udp"),
                    ("socket", "tcp6"),
                    ("socket", "udp6"),
                    // Unix sockets stay available.
                    ("socket", "unix"),
                ],
            );
            assert_eq!(
                got,
                [
                    "EAFNOSUPPORT",
                    "EAFNOSUPPORT",
                    "EAFNOSUPPORT",
                    "EAFNOSUPPORT",
                    "OK"
                ],
                "{user}, {ns}"
            );
        }
    }
}

/// With namespaces, network off also means a network namespace of its own
/// with only loopback; --net on keeps the host's network namespace.
#[test]
fn network_off_with_namespaces_has_its_own_network_namespace() {
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let host_ns = host_ns.to_str().unwrap();
    for user in users("network_off_with_namespaces_has_its_own_network_namespace") {
        let ws = tempdir(user);
        let script =
            "readlink /proc/self/ns/net; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";
        let off = run_sh(user, "workspace-write", ws.path(), script);
        assert_code(&off, 0, format!("{user}: network off"));
        let off = text(&off.stdout);
        let lines: Vec<&str> = off.lines().collect();
        assert!(lines.len() >= 2, "{user}: {off}");
        assert_ne!(
            lines[0], host_ns,
            "{user}: network off shares the host's network namespace"
        );
        assert_eq!(
            &lines[1..],
            ["lo"],
            "{user}: interfaces with the network off"
        );

        let on = cordon(user)
            .args(["run", "-q", "--net", "on", "-w"])
            .arg(ws.path())
            .current_dir(ws.path())
            .args(["--", "/bin/sh", "-c", script])
            .output()
            .unwrap();
        assert_code(&on, 0, format!("{user}: --net on"));
        assert_eq!(
            text(&on.stdout).lines().next(),
            Some(host_ns),
            "{user}: --net on does not share the host's network namespace"
        );
    }
}

#[test]
fn net_on_allows_tcp_connect_to_the_host() {
    for user in users("net_on_allows_tcp_connect_to_the_host") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let (l, port) = listener();
            let p = ns_profile("workspace-write", ns);
            let port_s = port.to_string();
            // Control: without --net on the same connect is refused.
            let got = probe(user, &p, ws.path(), &[], &[], &[("connect", &port_s)]);
            assert_eq!(got, ["EAFNOSUPPORT"], "{user}, {ns}: network off");
            assert!(
                !accepted(&l),
                "{user}, {ns}: a connection arrived with the network off"
            );
            let got = probe(
                user,
                &p,
                ws.path(),
                &["--net", "on"],
                &[],
                &[("connect", &port_s)],
            );
            assert_eq!(got, ["OK"], "{user}, {ns}: --net on");
            assert!(accepted(&l), "{user}, {ns}: the listener saw no connection");
        }
    }
}

#[test]
fn filtered_allows_exactly_the_listed_port() {
    if !require_landlock("filtered_allows_exactly_the_listed_port", 4) {
        return;
    }
    for user in users("filtered_allows_exactly_the_listed_port") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let (lp, p_port) = listener();
            let (lq, q_port) = listener();
            let p = profile_ns(
                "filtered",
                &format!(
                    "extends = \"workspace-write\"\n[network]\nmode = \"filtered\"\nconnect_tcp = [{p_port}]\n"
                ),
                ns,
            );
            let got = probe(
                user,
                &p,
                ws.path(),
                &[],
                &[],
                &[
                    ("connect", &p_port.to_string()),
                    ("connect", &q_port.to_string()),
                ],
            );
            assert_eq!(
                got,
                ["OK", "EACCES"],
                "{user}, {ns}: connect P={p_port}, Q={q_port}"
            );
            assert!(
                accepted(&lp),
                "{user}, {ns}: P's listener saw no connection"
            );
            assert!(
                !accepted(&lq),
                "{user}, {ns}: Q's listener got a connection"
            );
        }
    }
}
