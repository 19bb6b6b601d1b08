//! Replies that depend on nothing but the query's bytes, kept per thread
//! for the snapshot they were written from.
//!
//! A static record set, a NODATA, an NXDOMAIN or a REFUSED is the same
//! reply to the same query bytes (after the ID) for as long as a snapshot
//! lives: nothing in it comes from the client's address or the clock.
//! Reading the query, finding the name and writing such a reply costs as
//! much as the UDP loop around it; finding a kept one costs a hash of the
//! query's bytes, a compare and a copy. So the fast path keeps the replies
//! it wrote that are of that kind, and sends a kept one before it reads
//! the query ([`answer_or_send_kept`]).
//!
//! Kept are replies to queries without EDNS options ([`ReplyCache::keep`]
//! checks) that were not routed: a query with an ECS is routed or rare,
//! and one with a cookie gets a reply bound to its source and the time. A
//! routed query pays a look at its last two bytes
//! ([`ReplyCache::may_have_kept`]), which rules out nearly every ECS. A
//! reply is kept the second time its query is asked; the first leaves only
//! a hash, so a flood of names never asked again copies nothing and
//! displaces no kept reply. A kept reply names its snapshot by id, so a
//! swap makes every one stale at once. The table is direct-mapped and
//! fixed in size: it never grows.

use std::net::IpAddr;

use super::{FastReply, answer, parse};
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

    /// Starts fetching what answering `upcoming` (a query of the batch,
    /// not yet read) will read from the memo: see
    /// [`DecisionMemo::prefetch`]. Only a query that ends in its ECS is
    /// looked at (most do): a flood of new networks is a flood of ECS
    /// subnets, and the guess must cost next to nothing for the rest.
    #[inline(always)]
    pub fn prefetch_for(&self, upcoming: &[u8]) {
        if let Some(client) = wire::trailing_ecs_client(upcoming) {
            self.memo.prefetch(client);
        }
    }

    /// A reply is kept from `snapshot` for `request`'s bytes.
    #[cfg(test)]
    pub fn has_kept(&self, snapshot: u64, request: &[u8]) -> bool {
        ReplyCache::may_have_kept(request)
            && ReplyCache::key_of(request)
                .is_some_and(|key| self.replies.find(snapshot, key, request).is_some())
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
    let mut key = None;
    if ReplyCache::may_have_kept(request) {
        match replies.send_kept(snapshot.id, request, out) {
            Ok(facts) => {
                return Some(FastReply {
                    facts,
                    has_valid_cookie: false,
                    service: None,
                    is_kept: true,
                });
            }
            Err(missed) => key = missed,
        }
    }
    let reply = answer(request, transport, source, snapshot, memo, out);
    if let Some(key) = key
        && let Some(made) = &reply
        && made.service.is_none()
    {
        replies.keep(snapshot.id, key, request, out, made.facts);
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
/// Keys missed lately, remembered by hash alone (8 KiB).
const SEEN: usize = 1024;
/// An OPT record without options: root name, type, payload, TTL,
/// rdlength.
const OPT_LEN: usize = 11;

/// A thread's kept replies (about 175 KiB).
pub struct ReplyCache {
    slots: Box<[Slot]>,
    /// Hashes of keys missed lately, one per place: a reply is kept only
    /// when its key is found here, asked before.
    seen: Box<[u64]>,
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

/// Where a query's reply would be kept, and where its question was taken
/// to end.
#[derive(Debug, Clone, Copy)]
struct ReplyKey {
    hash: u64,
    question_end: usize,
}

impl ReplyKey {
    /// The key of `request`, taken to have its question end at
    /// `question_end`; `None` when it is too long or too short to keep.
    #[inline(always)]
    fn of(request: &[u8], question_end: usize) -> Option<ReplyKey> {
        let len = request.len();
        if !(HEADER_LEN + 8..=KEY_MAX + 2).contains(&len) {
            return None;
        }
        // Every byte after the ID, a word at a time (the last word
        // overlapping the one before; the length is mixed in first):
        // names of a flood that differ in one letter land apart. A
        // multiply and a rotation a word; the whole key is compared
        // anyway.
        let bytes = &request[2..];
        let (words, _) = bytes.as_chunks::<8>();
        let mut h = len as u64;
        for word in &words[..(bytes.len() - 1) / 8] {
            h = (h ^ u64::from_le_bytes(*word))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(29);
        }
        let last = bytes.last_chunk::<8>()?;
        Some(ReplyKey {
            hash: mix(h, u64::from_le_bytes(*last)),
            question_end,
        })
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
            seen: vec![0; SEEN].into_boxed_slice(),
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
    fn may_have_kept(request: &[u8]) -> bool {
        match request {
            [.., a, b] => match u16::from_be_bytes([*a, *b]) {
                1 => true,
                0 => request.len() >= OPT_LEN && request[request.len() - 10] == 0,
                _ => false,
            },
            _ => false,
        }
    }

    /// The key `request` is looked up by. The query is not parsed: its
    /// question is taken to end where an OPT without options starts, or at
    /// its end. Only parsed queries' replies are kept, and the whole query
    /// is compared, so a query that is not what it seems finds nothing.
    fn key_of(request: &[u8]) -> Option<ReplyKey> {
        let question_end = match request.get(11) {
            Some(0) => request.len(),
            Some(1) if request.len() >= OPT_LEN => request.len() - OPT_LEN,
            _ => return None,
        };
        ReplyKey::of(request, question_end)
    }

    /// The slot keeping a reply from `snapshot` for `request`.
    fn find(&self, snapshot: u64, key: ReplyKey, request: &[u8]) -> Option<&Slot> {
        let slot = &self.slots[Self::slot(key)];
        (slot.snapshot == snapshot
            && slot.hash == key.hash
            && slot.key[..usize::from(slot.key_len)] == request[2..])
            .then_some(slot)
    }

    /// Writes into `out` the reply kept from this snapshot for `request`,
    /// with this query's ID, and returns its facts. Else the key to keep
    /// the reply under once written, if the key was missed lately too: a
    /// query asked once only leaves its hash among the recently seen, so a
    /// flood of names never asked again (NXDOMAIN for random labels) costs
    /// no copies and displaces no kept reply.
    #[inline(never)]
    fn send_kept(
        &mut self,
        snapshot: u64,
        request: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<ReplyFacts, Option<ReplyKey>> {
        let key = Self::key_of(request).ok_or(None)?;
        if let Some(slot) = self.find(snapshot, key, request) {
            out.clear();
            out.extend_from_slice(&slot.reply[..usize::from(slot.reply_len)]);
            out[..2].copy_from_slice(&request[..2]);
            return Ok(slot.facts);
        }
        // A mark from an older snapshot only keeps a reply a query early.
        let seen = &mut self.seen[(key.hash >> 40) as usize % SEEN];
        if *seen == key.hash {
            return Err(Some(key));
        }
        *seen = key.hash;
        Err(None)
    }

    /// Keeps `reply`, written by the fast path from `snapshot` for
    /// `request` and not routed, under the key [`ReplyCache::send_kept`]
    /// gave, when the query has no EDNS options (its question ends where
    /// the key took it to). A reply too long is not kept.
    #[inline(never)]
    fn keep(
        &mut self,
        snapshot: u64,
        key: ReplyKey,
        request: &[u8],
        reply: &[u8],
        facts: ReplyFacts,
    ) {
        // The fast path's own reading of the query: its question ends
        // where the key took it to only if no option follows.
        if parse(request).is_none_or(|question| question.end != key.question_end)
            || reply.len() > REPLY_MAX
        {
            return;
        }
        let slot = &mut self.slots[Self::slot(key)];
        slot.snapshot = snapshot;
        slot.hash = key.hash;
        let bytes = &request[2..];
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
