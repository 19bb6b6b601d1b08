//! Reading a query of the shape the fast path answers: the header, one
//! question, and at most an OPT whose options are an ECS and a cookie.
//! Kept apart from the answering so that what the fast path accepts is
//! one short read; anything else is `None`, and the general path's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::super::wire::{
    self, CLASS_IN, HEADER_LEN, NAME_MAX, OPTION_COOKIE, OPTION_ECS, TYPE_OPT,
};

/// The EDNS Client Subnet of a query, as sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct QueryEcs {
    pub(super) family: u16,
    pub(super) source_prefix: u8,
    pub(super) addr: IpAddr,
    /// Address bytes sent: the source prefix rounded up to bytes.
    pub(super) addr_len: u8,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct QueryEdns {
    pub(super) payload: u16,
    pub(super) dnssec_ok: bool,
    pub(super) ecs: Option<QueryEcs>,
    /// Where the COOKIE option's payload is, and its length.
    pub(super) cookie: Option<(u16, u16)>,
}

/// A query of the shape the fast path answers.
pub(super) struct Question {
    /// Bytes of the question (name, type, class) in the request.
    pub(super) end: usize,
    /// Length of the name in wire form (root label included).
    pub(super) name_len: usize,
    pub(super) qtype: u16,
    pub(super) edns: Option<QueryEdns>,
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Reads the request if it has the common shape; `None` otherwise.
pub(super) fn parse(request: &[u8]) -> Option<Question> {
    let header = request.get(..HEADER_LEN)?;
    // A query (QR=0) with opcode QUERY; one question, nothing else but an
    // optional OPT.
    if header[2] & 0xF8 != 0
        || header[4..10] != [0, 1, 0, 0, 0, 0]
        || header[10] != 0
        || header[11] > 1
    {
        return None;
    }
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*request.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        // Compression pointers and extended label types are left to the
        // general path, as are names over 255 bytes (below).
        if len > 63 {
            return None;
        }
        at += len;
    }
    let name_len = at - HEADER_LEN;
    if name_len > NAME_MAX {
        return None;
    }
    let qtype = read_u16(request, at)?;
    if !is_data_type(qtype) || read_u16(request, at + 2)? != CLASS_IN {
        return None;
    }
    let end = at + 4;
    let edns = if header[11] == 1 {
        Some(parse_opt(request, end)?)
    } else if request.len() != end {
        return None;
    } else {
        None
    };
    Some(Question {
        end,
        name_len,
        qtype,
        edns,
    })
}

/// Types the fast path answers: data types, whose answer is the record
/// set or NODATA. OPT in a question, the meta and query types (AXFR, ANY,
/// ...) have rules of their own and go to the general path.
fn is_data_type(qtype: u16) -> bool {
    matches!(qtype, 1..=127 | 256..=260) && qtype != TYPE_OPT
}

/// An OPT record at `at` that ends the packet: version 0, no extended
/// rcode, and no option but one well-formed ECS and one COOKIE.
#[inline(always)]
fn parse_opt(request: &[u8], at: usize) -> Option<QueryEdns> {
    // The fixed part in one bounds check: name (root), type, payload,
    // extended rcode, version, flags, rdlength.
    let opt: &[u8; 11] = request.get(at..at + 11)?.try_into().ok()?;
    let word = |i: usize| u16::from_be_bytes([opt[i], opt[i + 1]]);
    let rdlen = usize::from(word(9));
    if opt[0] != 0
        || word(1) != TYPE_OPT
        || opt[5] != 0
        || opt[6] != 0
        || request.len() != at + 11 + rdlen
    {
        return None;
    }
    let (mut ecs, mut cookie) = (None, None);
    let mut cursor = at + 11;
    // The option resolvers send most, alone: an IPv4 ECS of a /24 (code
    // 8, length 7, family 1, source 24, scope 0, three address bytes), read
    // with one compare. Its address has no bits past the prefix to check.
    if let Some(&[0, 8, 0, 7, 0, 1, 24, 0, a, b, c]) = request.get(cursor..) {
        ecs = Some(QueryEcs {
            family: 1,
            source_prefix: 24,
            addr: IpAddr::V4(Ipv4Addr::new(a, b, c, 0)),
            addr_len: 3,
        });
        cursor = request.len();
    }
    while cursor < request.len() {
        let head: &[u8; 4] = request.get(cursor..cursor + 4)?.try_into().ok()?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let data = request.get(cursor + 4..cursor + 4 + len)?;
        match code {
            OPTION_ECS if ecs.is_none() => ecs = Some(parse_ecs(data)?),
            OPTION_COOKIE if cookie.is_none() => cookie = Some(((cursor + 4) as u16, len as u16)),
            _ => return None,
        }
        cursor += 4 + len;
    }
    Some(QueryEdns {
        payload: word(3),
        dnssec_ok: opt[7] & 0x80 != 0,
        ecs,
        cookie,
    })
}

/// ECS per RFC 7871 7.1.1, written as the general path would accept it;
/// anything questionable goes to the general path, which answers FORMERR
/// where that is due. `data` is the option's payload.
#[inline(always)]
fn parse_ecs(data: &[u8]) -> Option<QueryEcs> {
    let (head, bytes) = data.split_first_chunk::<4>()?;
    let family = u16::from_be_bytes([head[0], head[1]]);
    let (source_prefix, scope) = (head[2], head[3]);
    let width = wire::ecs_family_bits(family)?;
    let addr_len = wire::ecs_address_len(source_prefix);
    // A scope is the server's to set, and the prefix must fit the family
    // (checked before the address is read); else FORMERR, the general
    // path's to give.
    if scope != 0 || source_prefix > width || bytes.len() != addr_len {
        return None;
    }
    // The address as sent, its bits past the prefix zero (RFC 7871
    // 7.1.1, the rule `wire::is_valid_query_ecs` applies for the general
    // path), read as bits so the IPv4 case needs no copy.
    let addr = if family == 1 {
        let bits = match *bytes {
            [a, b, c] => u32::from_be_bytes([a, b, c, 0]),
            [a, b, c, d] => u32::from_be_bytes([a, b, c, d]),
            [a, b] => u32::from_be_bytes([a, b, 0, 0]),
            [a] => u32::from_be_bytes([a, 0, 0, 0]),
            _ => 0,
        };
        if !wire::is_zero_past_prefix(u128::from(bits) << 96, source_prefix) {
            return None;
        }
        IpAddr::V4(Ipv4Addr::from(bits))
    } else {
        let mut octets = [0u8; 16];
        octets[..addr_len].copy_from_slice(bytes);
        let bits = u128::from_be_bytes(octets);
        if !wire::is_zero_past_prefix(bits, source_prefix) {
            return None;
        }
        IpAddr::V6(Ipv6Addr::from(bits))
    };
    Some(QueryEcs {
        family,
        source_prefix,
        addr,
        addr_len: addr_len as u8,
    })
}
