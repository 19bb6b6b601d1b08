//! Replies that depend on nothing but the query's bytes, kept per thread
//! for the snapshot they were written from.
//!
//! A static record set, a NODATA, an NXDOMAIN or a REFUSED is the same
//! reply to the same query bytes (after the ID) for as long as a snapshot
//! lives: nothing in it comes from the client's address or the clock.
//! Reading the query, finding the name and writing such a reply costs as
//! much as the UDP loop around it; finding a kept one costs a hash of three
//! words, a compare and a copy. So the fast path keeps the replies it
//! wrote that are of that kind, and sends a kept one before it reads the
//! query ([`super::answer_or_send_kept`]).
//!
//! Kept are replies to queries without EDNS options ([`ReplyCache::keep`]
//! checks) that were not routed: a query with an ECS is routed or rare,
//! and one with a cookie gets a reply bound to its source and the time. A
//! routed query pays a look at its last two bytes
//! ([`ReplyCache::may_have_kept`]), which rules out nearly every ECS. A
//! kept reply names its snapshot by id, so a swap makes every one stale at
//! once. The table is direct-mapped and fixed in size: a flood of distinct
//! names overwrites slots, it never grows.

use std::net::IpAddr;

use super::{FastReply, answer};
use crate::dns::names::mix;
use crate::dns::wire::{self, HEADER_LEN, Transport};
use crate::metrics::ReplyFacts;
use crate::routing::memo::DecisionMemo;
use crate::snapshot::Snapshot;

/// What the fast path keeps per answering thread: routing decisions by
/// client network, and the replies that depend only on the query's bytes.
#[derive(Default)]
pub struct ThreadCaches {
    pub memo: DecisionMemo,
    pub replies: ReplyCache,
}

impl ThreadCaches {
    pub fn new() -> ThreadCaches {
        ThreadCaches::default()
    }

    /// A reply is kept from `snapshot` for `request`'s bytes.
    #[cfg(test)]
    pub fn has_kept(&self, snapshot: u64, request: &[u8]) -> bool {
        ReplyCache::may_have_kept(request)
            && self
                .replies
                .send_kept(snapshot, request, &mut Vec::new())
                .is_some()
    }
}

/// [`answer`], or the reply kept for the same bytes: the fast path as the
/// sockets' loops take it. A reply [`answer`] writes is kept unless it was
/// routed (the client's network or address is in it) or the query had
/// EDNS options (a cookie's reply is bound to the source and the time).
#[inline(always)]
pub fn answer_or_send_kept<'m>(
    request: &[u8],
    transport: Transport,
    source: IpAddr,
    snapshot: &Snapshot,
    caches: &'m mut ThreadCaches,
    out: &mut Vec<u8>,
) -> Option<FastReply<'m>> {
    let ThreadCaches { memo, replies } = caches;
    // A routed query (with an ECS) pays this look at its last two bytes.
    let may_have_kept = ReplyCache::may_have_kept(request);
    if may_have_kept && let Some(facts) = replies.send_kept(snapshot.id, request, out) {
        return Some(FastReply {
            facts,
            has_valid_cookie: false,
            service: None,
        });
    }
    let reply = answer(request, transport, source, snapshot, memo, out);
    if may_have_kept
        && let Some(made) = &reply
        && made.service.is_none()
    {
        replies.keep(snapshot.id, request, out, made.facts);
    }
    reply
}

/// Query bytes after the ID a reply can be kept for; a longer query (a
/// name near 100 bytes) is answered afresh each time.
const KEY_MAX: usize = 120;
/// The longest reply kept; a longer one (signed, or many records) is
/// written each time. No UDP limit is below it (`wire::reply_limit`), so
/// a kept reply is the same over UDP and TCP and the transport is not
/// part of the key.
const REPLY_MAX: usize = wire::PLAIN_UDP_MAX;
/// Slots in a thread's table: enough for the static names and negative
/// answers a domain is asked in the common case.
const SLOTS: usize = 256;
/// An OPT record without options: root name, type, payload, TTL,
/// rdlength.
const OPT_LEN: usize = 11;

/// A thread's kept replies (about 160 KiB).
pub struct ReplyCache {
    slots: Box<[Slot]>,
}

#[derive(Clone)]
struct Slot {
    /// The snapshot the reply was written from; 0 (no snapshot has it)
    /// for an empty slot.
    snapshot: u64,
    hash: u64,
    facts: ReplyFacts,
    key_len: u16,
    reply_len: u16,
    key: [u8; KEY_MAX],
    reply: [u8; REPLY_MAX],
}

impl Slot {
    const EMPTY: Slot = Slot {
        snapshot: 0,
        hash: 0,
        facts: ReplyFacts {
            qtype: None,
            rcode: hickory_proto::op::ResponseCode::NoError,
            truncated: false,
        },
        key_len: 0,
        reply_len: 0,
        key: [0; KEY_MAX],
        reply: [0; REPLY_MAX],
    };
}

/// Where a query's reply would be kept.
#[derive(Debug, Clone, Copy)]
struct ReplyKey {
    hash: u64,
}

fn word(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

impl ReplyKey {
    /// The key of a parsed `request` whose question ends at
    /// `question_end` and whose OPT, if any, has no options; `None` when
    /// it is too long or too short to keep.
    #[inline(always)]
    fn of(request: &[u8], question_end: usize) -> Option<ReplyKey> {
        let len = request.len();
        // The name's first eight bytes are read at HEADER_LEN.
        if !(HEADER_LEN + 8..=KEY_MAX + 2).contains(&len) {
            return None;
        }
        // The flags (RD, CD) and the length, then the name's start, the
        // question's end (the name's end, type and class) and the OPT's
        // payload size and DO bit: what tells apart the queries one domain
        // is asked. Whatever else differs, the whole key is compared.
        let flags = u64::from(u16::from_le_bytes([request[2], request[3]]));
        let mut h = mix((len as u64) << 16 | flags, word(request, HEADER_LEN));
        h = mix(h, word(request, question_end.max(HEADER_LEN + 8) - 8));
        if question_end != len {
            h = mix(h, word(request, len - 8));
        }
        Some(ReplyKey { hash: h })
    }
}

/// Where the question of a query the fast path answered ends: its name
/// is labels without compression.
fn question_end(request: &[u8]) -> Option<usize> {
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*request.get(at)?);
        at += 1 + len;
        if len == 0 {
            return Some(at + 4);
        }
    }
}

impl Default for ReplyCache {
    fn default() -> Self {
        ReplyCache::new()
    }
}

impl ReplyCache {
    pub fn new() -> ReplyCache {
        ReplyCache {
            slots: vec![Slot::EMPTY; SLOTS].into_boxed_slice(),
        }
    }

    #[inline(always)]
    fn slot(key: ReplyKey) -> usize {
        (key.hash >> 56) as usize % SLOTS
    }

    /// Whether `request` may have a kept reply, by a look at its last two
    /// bytes: the class IN of a question that ends the query, or the zero
    /// rdlength of an OPT without options, whose type's high byte (zero)
    /// is ten bytes back. An IPv4 ECS of a /24 has its option code there
    /// (8); rarely, another ECS passes, and then finds nothing.
    #[inline(always)]
    pub(super) fn may_have_kept(request: &[u8]) -> bool {
        match request {
            [.., a, b] => match u16::from_be_bytes([*a, *b]) {
                1 => true,
                0 => request.len() >= OPT_LEN && request[request.len() - 10] == 0,
                _ => false,
            },
            _ => false,
        }
    }

    /// Writes into `out` the reply kept from this snapshot for `request`,
    /// with this query's ID, and returns its facts. The query is not
    /// parsed: its question is taken to end where an OPT without options
    /// starts, or at its end. Only parsed queries' replies are kept, and
    /// the whole query is compared, so a query that is not what it seems
    /// finds nothing.
    #[inline(never)]
    pub(super) fn send_kept(
        &self,
        snapshot: u64,
        request: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<ReplyFacts> {
        let question_end = match *request.get(11)? {
            0 => request.len(),
            1 => request.len().checked_sub(OPT_LEN)?,
            _ => return None,
        };
        let key = ReplyKey::of(request, question_end)?;
        let slot = &self.slots[Self::slot(key)];
        if slot.snapshot != snapshot
            || slot.hash != key.hash
            || slot.key[..usize::from(slot.key_len)] != request[2..]
        {
            return None;
        }
        out.clear();
        out.extend_from_slice(&slot.reply[..usize::from(slot.reply_len)]);
        out[..2].copy_from_slice(&request[..2]);
        Some(slot.facts)
    }

    /// Keeps `reply`, written by the fast path from `snapshot` for
    /// `request` and not routed, when the query has no EDNS options (its
    /// question ends the query, or an OPT of fixed size alone follows it).
    /// A reply too long is not kept.
    #[inline(never)]
    pub(super) fn keep(&mut self, snapshot: u64, request: &[u8], reply: &[u8], facts: ReplyFacts) {
        let Some(question_end) = question_end(request) else {
            return;
        };
        let options_follow = match request.get(11) {
            Some(0) => question_end != request.len(),
            Some(1) => question_end + OPT_LEN != request.len(),
            _ => true,
        };
        if options_follow {
            return;
        }
        let Some(key) = ReplyKey::of(request, question_end) else {
            return;
        };
        if reply.len() > REPLY_MAX {
            return;
        }
        let slot = &mut self.slots[Self::slot(key)];
        let bytes = &request[2..];
        slot.snapshot = snapshot;
        slot.hash = key.hash;
        slot.facts = facts;
        slot.key_len = bytes.len() as u16;
        slot.key[..bytes.len()].copy_from_slice(bytes);
        slot.reply_len = reply.len() as u16;
        slot.reply[..reply.len()].copy_from_slice(reply);
    }

    /// Replies kept from `snapshot`.
    #[cfg(test)]
    pub(in crate::dns) fn kept(&self, snapshot: u64) -> usize {
        self.slots.iter().filter(|s| s.snapshot == snapshot).count()
    }
}
