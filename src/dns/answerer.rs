//! What a query goes through between a socket loop and its reply: the
//! fast path or the general one, then response rate limiting and the
//! counters. Apart from `server`, which owns the sockets and the loops, so
//! that each stays one concern; both loops (UDP and TCP) answer through
//! [`Answerer`].

use std::net::IpAddr;
use std::time::Instant;

use super::answer::{Transport, answer};
use super::fast::{self, ThreadCaches};
use super::rrl::{self, RateLimiter, Verdict};
use crate::metrics::{Metrics, ReplyFacts, ReplyTally, add_answer};
use crate::snapshot::Snapshot;

/// What rate limiting lets through of a computed reply.
enum Gate {
    Send,
    /// Send this truncated reply instead (RRL slip).
    SendInstead(Vec<u8>),
    Withhold,
}

/// Response rate limiting, UDP only (`limiter` is the calling thread's
/// own, with the time its batch arrived); a query with a valid server
/// cookie has a real source and passes.
fn gate(
    limiter: Option<(&mut RateLimiter, Instant)>,
    snapshot: &Snapshot,
    metrics: &Metrics,
    source: IpAddr,
    has_valid_cookie: bool,
    request: &[u8],
    wire: &[u8],
) -> Gate {
    let (Some((limiter, now)), Some(settings)) = (limiter, &snapshot.config.server.rrl) else {
        return Gate::Send;
    };
    if has_valid_cookie {
        return Gate::Send;
    }
    match limiter.check(settings, source, now) {
        Verdict::Send => Gate::Send,
        Verdict::Slip => {
            metrics.dns.rate_limited(true);
            rrl::truncated(request, wire).map_or(Gate::Withhold, Gate::SendInstead)
        }
        Verdict::Drop => {
            metrics.dns.rate_limited(false);
            Gate::Withhold
        }
    }
}

/// Counts a reply that is being sent, and the endpoints it named: in the
/// tally when `gather` (its batch has others to add them with), else
/// straight to their counters.
#[inline(always)]
fn count(
    tally: &mut ReplyTally,
    snapshot: &Snapshot,
    transport: Transport,
    facts: &ReplyFacts,
    (is_fast, is_kept): (bool, bool),
    service: Option<(usize, &[usize])>,
    gather: bool,
) {
    tally.reply(transport, facts, is_fast);
    if is_kept {
        tally.kept();
    }
    if let Some((service, endpoints)) = service {
        for &e in endpoints {
            if gather {
                tally.answer(service, e, &snapshot.answer_counters);
            } else {
                add_answer(service, e, &snapshot.answer_counters);
            }
        }
    }
}

/// What answering needs besides the query: the thread's caches, and what
/// a reply goes through once made.
pub(super) struct Answerer<'a, 's> {
    pub(super) caches: &'a mut ThreadCaches,
    pub(super) gatekeeper: Gatekeeper<'a, 's>,
}

/// Rate limiting (UDP only) and counting, for a reply either path made;
/// apart from the caches, which the fast path's reply borrows.
pub(super) struct Gatekeeper<'a, 's> {
    pub(super) snapshot: &'s Snapshot,
    pub(super) metrics: &'a Metrics,
    /// With the time the batch arrived: one clock read per batch, not
    /// per query (a batch is answered within microseconds).
    pub(super) limiter: Option<(&'a mut RateLimiter, Instant)>,
    pub(super) tally: &'a mut ReplyTally,
    /// Other queries are answered with this one before the tally is
    /// flushed: answer counts are worth gathering.
    pub(super) gather: bool,
}

/// What either path reports about the reply it made, for rate limiting
/// and the counters.
struct Made<'m> {
    facts: ReplyFacts,
    service: Option<(usize, &'m [usize])>,
    has_valid_cookie: bool,
    is_fast: bool,
    is_kept: bool,
}

impl Answerer<'_, '_> {
    /// Answers one query into `out`, on the fast path when it can and the
    /// general path otherwise, rate limited and counted; false: send nothing.
    #[inline(always)]
    pub(super) fn answer(
        &mut self,
        request: &[u8],
        transport: Transport,
        source: &IpAddr,
        out: &mut Vec<u8>,
    ) -> bool {
        let snapshot = self.gatekeeper.snapshot;
        // Each path finishes on its own, so the fast path's reply goes to
        // the limiter and the counters without a merge with the other's.
        if snapshot.config.server.fast_path
            && let Some(reply) =
                fast::answer_or_send_kept(request, transport, *source, snapshot, self.caches, out)
        {
            let made = Made {
                facts: reply.facts,
                service: reply.service,
                has_valid_cookie: reply.has_valid_cookie,
                is_fast: true,
                is_kept: reply.is_kept,
            };
            return self.gatekeeper.pass(request, transport, source, out, made);
        }
        let Some(reply) = answer(request, transport, *source, snapshot) else {
            self.gatekeeper.metrics.dns.dropped();
            return false;
        };
        *out = reply.wire;
        let made = Made {
            facts: reply.facts,
            service: reply
                .service
                .as_ref()
                .map(|hit| (hit.service, hit.endpoints.as_slice())),
            has_valid_cookie: reply.has_valid_cookie,
            is_fast: false,
            is_kept: false,
        };
        self.gatekeeper.pass(request, transport, source, out, made)
    }
}

impl Gatekeeper<'_, '_> {
    /// Rate limits and counts the reply made into `out`; false: send nothing.
    #[inline(always)]
    fn pass(
        &mut self,
        request: &[u8],
        transport: Transport,
        source: &IpAddr,
        out: &mut Vec<u8>,
        made: Made<'_>,
    ) -> bool {
        let snapshot = self.snapshot;
        let limiter = self.limiter.as_mut().map(|(l, now)| (&mut **l, *now));
        match gate(
            limiter,
            snapshot,
            self.metrics,
            *source,
            made.has_valid_cookie,
            request,
            out,
        ) {
            Gate::Send => {}
            Gate::SendInstead(wire) => {
                *out = wire;
                return true;
            }
            Gate::Withhold => return false,
        }
        count(
            self.tally,
            snapshot,
            transport,
            &made.facts,
            (made.is_fast, made.is_kept),
            made.service,
            self.gather,
        );
        true
    }
}
