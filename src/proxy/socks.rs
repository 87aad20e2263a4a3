//! The SOCKS5 side of the proxy (RFC 1928): no authentication, CONNECT only,
//! names resolved by the proxy (`socks5h://`), so that the rules see the name
//! the client asked for. BIND and UDP ASSOCIATE are refused.

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr, TcpStream};

use super::{Deadline, Failed, Shared, relay};
use crate::netname::{Refusal, Target};

const SUCCEEDED: u8 = 0;
const NOT_ALLOWED: u8 = 2;
const HOST_UNREACHABLE: u8 = 4;
const COMMAND_NOT_SUPPORTED: u8 = 7;
const ADDRESS_NOT_SUPPORTED: u8 = 8;

pub(super) fn serve(sh: &Shared, mut c: TcpStream) -> io::Result<()> {
    let deadline = Deadline::new();
    let mut hdr = [0u8; 2];
    deadline.read_exact(&c, &mut hdr)?;
    let mut methods = vec![0u8; hdr[1] as usize];
    deadline.read_exact(&c, &mut methods)?;
    if !methods.contains(&0) {
        return c.write_all(&[5, 0xff]);
    }
    c.write_all(&[5, 0])?;
    let mut req = [0u8; 4];
    deadline.read_exact(&c, &mut req)?;
    if req[0] != 5 {
        return Ok(());
    }
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            deadline.read_exact(&c, &mut a)?;
            Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            deadline.read_exact(&c, &mut len)?;
            let mut name = vec![0u8; len[0] as usize];
            deadline.read_exact(&c, &mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut a = [0u8; 16];
            deadline.read_exact(&c, &mut a)?;
            Ipv6Addr::from(a).to_string()
        }
        _ => return reply(&mut c, ADDRESS_NOT_SUPPORTED),
    };
    let mut port = [0u8; 2];
    deadline.read_exact(&c, &mut port)?;
    let port = u16::from_be_bytes(port);
    let shown = format!("{host}:{port}");
    if req[1] != 1 {
        sh.deny(
            "connect",
            shown,
            "SOCKS 7",
            Refusal {
                rule: format!(
                    "SOCKS5 command {} (only CONNECT is served: no BIND, no UDP)",
                    req[1]
                ),
                suggestion: "none".into(),
            },
        );
        return reply(&mut c, COMMAND_NOT_SUPPORTED);
    }
    let target = match Target::parse(&host) {
        Ok(t) => t,
        Err(why) => {
            sh.deny(
                "connect",
                shown,
                "SOCKS 2",
                Refusal {
                    rule: format!("not a host name: {why}"),
                    suggestion: "none".into(),
                },
            );
            return reply(&mut c, NOT_ALLOWED);
        }
    };
    if let Err(r) = sh.check(&target, port) {
        sh.deny("connect", format!("{target}:{port}"), "SOCKS 2", r);
        return reply(&mut c, NOT_ALLOWED);
    }
    match sh.open(&target, port) {
        Ok(up) => {
            sh.allowed(&target);
            reply(&mut c, SUCCEEDED)?;
            relay(sh, c, up, &[])
        }
        Err(Failed::Rule(r)) => {
            sh.deny("connect", format!("{target}:{port}"), "SOCKS 2", r);
            reply(&mut c, NOT_ALLOWED)
        }
        Err(Failed::Unreachable(r)) => {
            sh.deny("connect", format!("{target}:{port}"), "SOCKS 4", r);
            reply(&mut c, HOST_UNREACHABLE)
        }
    }
}

fn reply(c: &mut TcpStream, code: u8) -> io::Result<()> {
    // The bound address is not the client's business: 0.0.0.0:0.
    c.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0])
}
