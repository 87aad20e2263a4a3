//! The resolver of mode "proxy": one question per query, A and AAAA only,
//! for the names the rules allow, answered from the host's resolver and
//! without the addresses a name must not lead to (`netname::Rules::usable`).
//! Every other name is NXDOMAIN (and a denial), every other type an empty
//! answer: no TXT, no CNAME chains, nothing to tunnel through.

use std::net::IpAddr;

use super::Shared;
use crate::netname::Target;

const A: u16 = 1;
const AAAA: u16 = 28;
const NOERROR: u8 = 0;
const SERVFAIL: u8 = 2;
const NXDOMAIN: u8 = 3;
const FORMERR: u8 = 1;
const TTL: u32 = 30;

/// A parsed question.
#[derive(Debug, PartialEq, Eq)]
struct Question {
    /// The name as labels joined by dots, as asked.
    name: String,
    qtype: u16,
    /// The header and question, as received (the answer repeats them).
    end: usize,
}

fn question(q: &[u8]) -> Option<Question> {
    if q.len() < 12 || q[2] & 0x80 != 0 {
        return None;
    }
    let qdcount = u16::from_be_bytes([q[4], q[5]]);
    if qdcount != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        // No compression in a question we accept.
        if len > 63 {
            return None;
        }
        let l = q.get(i..i + len)?;
        labels.push(String::from_utf8_lossy(l).into_owned());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let end = i + 4;
    if q.len() < end {
        return None;
    }
    Some(Question {
        name: labels.join("."),
        qtype,
        end,
    })
}

fn response(q: &[u8], end: usize, rcode: u8, answers: &[IpAddr], qtype: u16) -> Vec<u8> {
    let mut r = Vec::with_capacity(end + answers.len() * 28);
    r.extend_from_slice(&q[..end]);
    // QR, the opcode and RD as asked, RA; the rcode.
    r[2] = 0x80 | (q[2] & 0x79);
    r[3] = 0x80 | rcode;
    let ans: Vec<&IpAddr> = answers
        .iter()
        .filter(|a| matches!((a, qtype), (IpAddr::V4(_), A) | (IpAddr::V6(_), AAAA)))
        .collect();
    r[6..8].copy_from_slice(&(ans.len() as u16).to_be_bytes());
    r[8..12].fill(0);
    for a in ans {
        // A pointer to the question's name.
        r.extend_from_slice(&[0xc0, 12]);
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&TTL.to_be_bytes());
        match a {
            IpAddr::V4(v) => {
                r.extend_from_slice(&4u16.to_be_bytes());
                r.extend_from_slice(&v.octets());
            }
            IpAddr::V6(v) => {
                r.extend_from_slice(&16u16.to_be_bytes());
                r.extend_from_slice(&v.octets());
            }
        }
    }
    r
}

/// SERVFAIL for a query that could not be served (too many at once).
pub(super) fn failure(q: &[u8]) -> Option<Vec<u8>> {
    let qn = question(q)?;
    Some(response(q, qn.end, SERVFAIL, &[], qn.qtype))
}

/// The answer to one query; None for what is no query at all.
pub(super) fn answer(sh: &Shared, q: &[u8]) -> Option<Vec<u8>> {
    // A response is never answered (two resolvers must not answer each other).
    if q.get(2).is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    let Some(qn) = question(q) else {
        if q.len() >= 12 {
            let mut r = q[..12].to_vec();
            r[2] = 0x80 | (q[2] & 0x79);
            r[3] = 0x80 | FORMERR;
            r[4..12].fill(0);
            return Some(r);
        }
        return None;
    };
    let name = match Target::parse(&qn.name) {
        Ok(Target::Name(n)) => n,
        _ => return Some(response(q, qn.end, NXDOMAIN, &[], qn.qtype)),
    };
    if let Err(r) = sh.rules.may_resolve(&name) {
        sh.deny("resolve", name, "NXDOMAIN", r);
        return Some(response(q, qn.end, NXDOMAIN, &[], qn.qtype));
    }
    if qn.qtype != A && qn.qtype != AAAA {
        return Some(response(q, qn.end, NOERROR, &[], qn.qtype));
    }
    let addrs: Vec<IpAddr> = match sh.resolve(&name) {
        Ok(a) => a,
        Err(_) => return Some(response(q, qn.end, NXDOMAIN, &[], qn.qtype)),
    };
    let usable = sh
        .rules
        .usable(&Target::Name(name), &addrs)
        .unwrap_or_default();
    let mut seen = Vec::new();
    for a in usable {
        if !seen.contains(&a) {
            seen.push(a);
        }
    }
    Some(response(q, qn.end, NOERROR, &seen, qn.qtype))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn questions_and_answers_on_the_wire() {
        let q = query("Api.Example.com", AAAA);
        let qn = question(&q).unwrap();
        assert_eq!(qn.name, "Api.Example.com");
        assert_eq!(qn.qtype, AAAA);
        let addrs: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        let r = response(&q, qn.end, NOERROR, &addrs, AAAA);
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80, "a response");
        assert_eq!(r[3] & 0x0f, NOERROR);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "only the AAAA record");
        assert_eq!(
            &r[r.len() - 16..],
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        let r = response(&q, qn.end, NXDOMAIN, &[], A);
        assert_eq!(r[3] & 0x0f, NXDOMAIN);
        // Responses, truncated and compressed questions are not questions.
        let mut resp = q.clone();
        resp[2] |= 0x80;
        assert!(question(&resp).is_none());
        assert!(question(&q[..q.len() - 1]).is_none());
        let mut compressed = q[..12].to_vec();
        compressed.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(question(&compressed).is_none());
    }
}
