//! Counting replies where they are made, with no shared write per query.
//!
//! Every UDP thread adding to the same atomics per reply would bounce their
//! cache lines between cores on each one, and a read-modify-write is the
//! dearest instruction an answer has. Instead each UDP thread owns a block
//! of cells ([`TallyCells`]) that only it writes (a plain load and store,
//! no locked add), registered with [`DnsCounters`] so `/metrics` adds them
//! up when it is read: nothing is flushed per batch, and a reply is in the
//! counters the moment it is counted. A thread that ends folds its cells
//! into the shared ones, so the registry holds live threads only.
//!
//! TCP answers count in a tally of the runtime thread that polls the
//! connection, registered the same way with the server it answers for
//! (`dns::server`); an unregistered tally, which `flush` adds to the
//! shared cells cell by cell, is for tests. Answer counters per (service,
//! endpoint) live in the snapshot and are few per batch: a tally keeps up
//! to [`TALLY_ANSWERS`] of them and adds them once per batch. A query
//! answered alone (a batch of one, the usual case below some thousands of
//! queries a second, or a TCP query) has nothing to gather with, and adds
//! to its counter at once ([`add_answer`]): the same one shared add,
//! without the tally's slots.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use hickory_proto::op::ResponseCode;

use super::{DnsCounters, QTYPES, RCODES, ReplyFacts};
use crate::dns::wire::Transport;

/// Query-type slots past the named types: other types, and no question
/// (the order `dns_families` renders them in).
const QTYPE_OTHER: usize = QTYPES.len();
const QTYPE_NONE: usize = QTYPES.len() + 1;
pub(super) const QTYPE_SLOTS: usize = QTYPES.len() + 2;
const RCODE_OTHER: usize = RCODES.len();
pub(super) const RCODE_SLOTS: usize = RCODES.len() + 1;

/// Slots for distinct answer counters in one [`ReplyTally`]; a batch
/// naming more endpoints than this adds the rest directly.
pub(super) const TALLY_ANSWERS: usize = 16;

/// Cell layout: one cell per (transport, fast path or not, query type,
/// rcode), so a reply is one bump, where counting queries, responses and
/// the fast path apart took three; `/metrics` sums the cells each of its
/// series covers. Truncated replies, rare, have the last cell.
const REPLY_CELLS: usize = 2 * 2 * QTYPE_SLOTS * RCODE_SLOTS;
pub(super) const SLOT_TRUNCATED: usize = REPLY_CELLS;
/// Fast-path replies sent again from those kept (`dns::fast::replies`).
pub(super) const SLOT_KEPT: usize = SLOT_TRUNCATED + 1;
const TALLY_SLOTS: usize = SLOT_KEPT + 1;

/// The cell of a reply with these traits.
#[inline]
pub(super) const fn reply_cell(
    transport: usize,
    is_fast: bool,
    qtype_slot: usize,
    rcode_slot: usize,
) -> usize {
    ((transport * 2 + is_fast as usize) * QTYPE_SLOTS + qtype_slot) * RCODE_SLOTS + rcode_slot
}

/// One counter per slot of the layout above.
#[derive(Debug)]
pub(super) struct TallyCells([AtomicU64; TALLY_SLOTS]);

impl Default for TallyCells {
    fn default() -> Self {
        TallyCells(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl TallyCells {
    /// One more in `slot`, by the cells' only writer.
    #[inline]
    fn bump(&self, slot: usize) {
        let cell = &self.0[slot];
        cell.store(cell.load(Relaxed) + 1, Relaxed);
    }

    /// Moves every count into `shared`, leaving these at zero.
    fn drain_into(&self, shared: &TallyCells) {
        for (cell, total) in self.0.iter().zip(&shared.0) {
            let n = cell.swap(0, Relaxed);
            if n > 0 {
                total.fetch_add(n, Relaxed);
            }
        }
    }
}

/// The shared cells and the answering threads' own.
#[derive(Debug, Default)]
pub(super) struct Cells {
    /// Counts added by more than one writer: unregistered tallies and
    /// direct `DnsCounters::reply` (in tests), and the threads that ended.
    shared: TallyCells,
    threads: Mutex<Vec<Arc<TallyCells>>>,
}

impl Cells {
    /// Every slot summed over the shared cells and every live thread's,
    /// under one hold of the registry's lock.
    pub(super) fn totals(&self) -> Box<[u64; TALLY_SLOTS]> {
        let mut totals = Box::new([0u64; TALLY_SLOTS]);
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        for cells in std::iter::once(&self.shared).chain(threads.iter().map(|c| &**c)) {
            for (total, cell) in totals.iter_mut().zip(&cells.0) {
                *total += cell.load(Relaxed);
            }
        }
        totals
    }
}

/// The query type's slot: a table lookup for the codes below 256, where
/// every named type but CAA is.
#[inline]
fn qtype_slot(qtype: Option<u16>) -> usize {
    match qtype {
        Some(code) if code < 256 => usize::from(QTYPE_SLOT_BELOW_256[usize::from(code)]),
        Some(code) => QTYPES
            .iter()
            .position(|&(c, _)| c == code)
            .unwrap_or(QTYPE_OTHER),
        None => QTYPE_NONE,
    }
}

/// [`qtype_slot`] of each code below 256.
const QTYPE_SLOT_BELOW_256: [u8; 256] = {
    let mut table = [QTYPE_OTHER as u8; 256];
    let mut i = 0;
    while i < QTYPES.len() {
        let code = QTYPES[i].0 as usize;
        if code < 256 {
            table[code] = i as u8;
        }
        i += 1;
    }
    table
};

#[inline]
fn rcode_slot(rcode: ResponseCode) -> usize {
    match rcode {
        ResponseCode::NoError => 0,
        ResponseCode::NXDomain => 3,
        rcode => RCODES
            .iter()
            .position(|(c, _)| *c == rcode)
            .unwrap_or(RCODE_OTHER),
    }
}
const _: () = assert!(
    matches!(RCODES[0].0, ResponseCode::NoError) && matches!(RCODES[3].0, ResponseCode::NXDomain),
    "rcode_slot names these places"
);

impl DnsCounters {
    /// Counts one reply straight into the shared cells: the tests' way of
    /// counting without a tally, which tallies must add up to.
    #[cfg(test)]
    pub fn reply(&self, transport: Transport, facts: &ReplyFacts) {
        let shared = &self.cells.shared.0;
        let cell = reply_cell(
            transport as usize,
            false,
            qtype_slot(facts.qtype),
            rcode_slot(facts.rcode),
        );
        shared[cell].fetch_add(1, Relaxed);
        if facts.truncated {
            shared[SLOT_TRUNCATED].fetch_add(1, Relaxed);
        }
    }

    /// A tally for one answering thread (a UDP thread, or a runtime
    /// thread for its TCP connections), whose counts `/metrics` reads
    /// where they are; keep it for the thread's whole run.
    pub fn thread_tally(&self) -> ReplyTally {
        let cells = Arc::new(TallyCells::default());
        self.cells
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cells.clone());
        ReplyTally::with_cells(cells, Some(self.cells.clone()))
    }
}

/// One more answer naming `endpoint` of `service`, added to its counter
/// at once (nothing is counted for one that is not there): for a query
/// answered alone, where a tally would gather nothing.
#[inline]
pub fn add_answer(service: usize, endpoint: usize, counters: &[Vec<Arc<AtomicU64>>]) {
    add_answers(service, endpoint, 1, counters);
}

/// `n` more answers naming `endpoint` of `service` (see [`add_answer`]).
#[inline]
fn add_answers(service: usize, endpoint: usize, n: u64, counters: &[Vec<Arc<AtomicU64>>]) {
    if let Some(counter) = counters.get(service).and_then(|s| s.get(endpoint)) {
        counter.fetch_add(n, Relaxed);
    }
}

/// Counts for replies, kept by the thread answering them (see the module
/// doc). The answer counters are named by index, resolved against the
/// snapshot the batch was answered from when it is flushed.
#[derive(Debug)]
pub struct ReplyTally {
    cells: Arc<TallyCells>,
    /// The registry `cells` are in, for a thread's tally; `None` for one
    /// that `flush` adds to the shared cells.
    owner: Option<Arc<Cells>>,
    /// Answer counters by (service, endpoint) with their counts; the
    /// first `answers_len` are in use.
    answers: [(u32, u32, u64); TALLY_ANSWERS],
    answers_len: usize,
}

impl Default for ReplyTally {
    /// An unregistered tally: `flush` adds its counts to the shared ones.
    fn default() -> Self {
        ReplyTally::with_cells(Arc::new(TallyCells::default()), None)
    }
}

impl ReplyTally {
    fn with_cells(cells: Arc<TallyCells>, owner: Option<Arc<Cells>>) -> ReplyTally {
        ReplyTally {
            cells,
            owner,
            answers: [(0, 0, 0); TALLY_ANSWERS],
            answers_len: 0,
        }
    }

    /// Whether this is a thread's tally registered with `counters`, whose
    /// cells `/metrics` reads where they are.
    pub fn is_registered_with(&self, counters: &DnsCounters) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|owner| Arc::ptr_eq(owner, &counters.cells))
    }

    /// One more reply: its query (by transport and type), its response
    /// (by rcode), and whether the fast path made it.
    #[inline]
    pub fn reply(&mut self, transport: Transport, facts: &ReplyFacts, is_fast: bool) {
        self.cells.bump(reply_cell(
            transport as usize,
            is_fast,
            qtype_slot(facts.qtype),
            rcode_slot(facts.rcode),
        ));
        if facts.truncated {
            self.cells.bump(SLOT_TRUNCATED);
        }
    }

    /// One more of the replies counted as fast that was sent again from
    /// those kept for the same query bytes.
    #[inline]
    pub fn kept(&mut self) {
        self.cells.bump(SLOT_KEPT);
    }

    /// One more answer naming `endpoint` of `service`, whose counter is
    /// `counters[service][endpoint]` (nothing is counted for one that is
    /// not there).
    #[inline]
    pub fn answer(&mut self, service: usize, endpoint: usize, counters: &[Vec<Arc<AtomicU64>>]) {
        let key = (service as u32, endpoint as u32);
        for slot in &mut self.answers[..self.answers_len] {
            if (slot.0, slot.1) == key {
                slot.2 += 1;
                return;
            }
        }
        // A counter that is not there is skipped by `flush`, not here: the
        // common case (room left) looks nothing up.
        if self.answers_len < TALLY_ANSWERS {
            self.answers[self.answers_len] = (key.0, key.1, 1);
            self.answers_len += 1;
        } else {
            add_answer(service, endpoint, counters);
        }
    }

    /// Adds the answer counts to `answers`, the counters of the snapshot
    /// they were answered from, and for an unregistered tally the reply
    /// counts to the shared cells; starts over.
    #[inline]
    pub fn flush(&mut self, counters: &DnsCounters, answers: &[Vec<Arc<AtomicU64>>]) {
        if self.owner.is_none() {
            self.cells.drain_into(&counters.cells.shared);
        }
        if self.answers_len == 0 {
            return;
        }
        for &(service, endpoint, n) in &self.answers[..self.answers_len] {
            add_answers(service as usize, endpoint as usize, n, answers);
        }
        self.answers_len = 0;
    }
}

impl Drop for ReplyTally {
    /// A thread's cells leave the registry with their counts folded into
    /// the shared cells, both under the registry's lock, so a reading in
    /// between counts them once.
    fn drop(&mut self) {
        let Some(owner) = &self.owner else {
            return;
        };
        let mut threads = owner.threads.lock().unwrap_or_else(|e| e.into_inner());
        self.cells.drain_into(&owner.shared);
        threads.retain(|cells| !Arc::ptr_eq(cells, &self.cells));
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::RecordType;

    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn query_type_codes_are_the_types_they_are_named_for() {
        for &(code, name) in QTYPES {
            let named: RecordType = name.parse().expect("a type hickory knows");
            assert_eq!(u16::from(named), code, "{name}");
        }
    }

    /// 200 varied replies and answers, counted by `count` into `into`,
    /// and by direct counting into `direct`.
    fn count_alike(
        direct: &Metrics,
        into: &Metrics,
        mut count: impl FnMut(Transport, &ReplyFacts, usize, &[Vec<Arc<AtomicU64>>], usize),
    ) {
        let counters: Vec<Arc<AtomicU64>> = (0..TALLY_ANSWERS + 5)
            .map(|i| into.answer_counter("www", &format!("zone{i}")))
            .collect();
        let answers = vec![counters.clone()];
        for i in 0..200usize {
            let facts = ReplyFacts {
                qtype: Some([1, 28, 15, 99][i % 4]),
                rcode: [ResponseCode::NoError, ResponseCode::NXDomain][i % 2],
                truncated: i % 7 == 0,
            };
            let transport = [Transport::Udp, Transport::Tcp][i % 2];
            direct.dns.reply(transport, &facts);
            direct
                .answer_counter("www", &format!("zone{}", i % counters.len()))
                .fetch_add(1, Relaxed);
            count(transport, &facts, i % counters.len(), &answers, i);
        }
    }

    /// The value of the one series named `series` in `text`.
    fn series(text: &str, series: &str) -> u64 {
        let line = text
            .lines()
            .find(|l| l.split(' ').next() == Some(series))
            .unwrap_or_else(|| panic!("no {series} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn each_series_sums_the_reply_cells_it_covers() {
        let metrics = Metrics::default();
        let mut tally = metrics.dns.thread_tally();
        // (transport, qtype, rcode, fast path, how many)
        let replies = [
            (Transport::Udp, Some(1), ResponseCode::NoError, true, 5),
            (Transport::Udp, Some(1), ResponseCode::NXDomain, false, 3),
            (Transport::Tcp, Some(1), ResponseCode::NoError, true, 2),
            (Transport::Udp, Some(257), ResponseCode::Refused, false, 4),
            (Transport::Udp, Some(999), ResponseCode::NXDomain, true, 1),
            (Transport::Tcp, None, ResponseCode::FormErr, false, 6),
            (
                Transport::Udp,
                Some(28),
                ResponseCode::Unknown(3000),
                true,
                7,
            ),
        ];
        for (transport, qtype, rcode, is_fast, n) in replies {
            let facts = ReplyFacts {
                qtype,
                rcode,
                truncated: false,
            };
            for _ in 0..n {
                tally.reply(transport, &facts, is_fast);
            }
        }
        let text = metrics.render();
        let expect = [
            (
                "meridian_dns_queries_total{transport=\"udp\",qtype=\"A\"}",
                8,
            ),
            (
                "meridian_dns_queries_total{transport=\"tcp\",qtype=\"A\"}",
                2,
            ),
            (
                "meridian_dns_queries_total{transport=\"udp\",qtype=\"AAAA\"}",
                7,
            ),
            (
                "meridian_dns_queries_total{transport=\"udp\",qtype=\"CAA\"}",
                4,
            ),
            (
                "meridian_dns_queries_total{transport=\"udp\",qtype=\"other\"}",
                1,
            ),
            (
                "meridian_dns_queries_total{transport=\"tcp\",qtype=\"none\"}",
                6,
            ),
            (
                "meridian_dns_queries_total{transport=\"tcp\",qtype=\"AAAA\"}",
                0,
            ),
            ("meridian_dns_responses_total{rcode=\"NOERROR\"}", 7),
            ("meridian_dns_responses_total{rcode=\"NXDOMAIN\"}", 4),
            ("meridian_dns_responses_total{rcode=\"REFUSED\"}", 4),
            ("meridian_dns_responses_total{rcode=\"FORMERR\"}", 6),
            ("meridian_dns_responses_total{rcode=\"other\"}", 7),
            ("meridian_dns_fast_path_total", 15),
            ("meridian_dns_truncated_total", 0),
        ];
        for (name, want) in expect {
            assert_eq!(series(&text, name), want, "{name}");
        }
    }

    #[test]
    fn an_answer_added_at_once_reaches_its_own_counter_only() {
        let metrics = Metrics::default();
        let row: Vec<Arc<AtomicU64>> = (0..3)
            .map(|i| metrics.answer_counter("www", &format!("zone{i}")))
            .collect();
        let answers = vec![row.clone()];
        add_answer(0, 1, &answers);
        add_answer(0, 1, &answers);
        add_answer(0, 2, &answers);
        // Not there: counted nowhere, and no panic.
        add_answer(0, 3, &answers);
        add_answer(1, 0, &answers);
        let counts: Vec<u64> = row.iter().map(|c| c.load(Relaxed)).collect();
        assert_eq!(counts, [0, 2, 1]);
    }

    #[test]
    fn an_unregistered_tally_adds_what_direct_counting_would_once_flushed() {
        let (direct, batched) = (Metrics::default(), Metrics::default());
        let mut tally = ReplyTally::default();
        let mut last = Vec::new();
        count_alike(
            &direct,
            &batched,
            |transport, facts, endpoint, answers, i| {
                tally.reply(transport, facts, false);
                tally.answer(0, endpoint, answers);
                // Out of range: counted nowhere, on either side.
                tally.answer(1, 0, answers);
                tally.answer(0, answers[0].len(), answers);
                // Flushed along the way, the last few not yet.
                if i % 50 == 40 {
                    tally.flush(&batched.dns, answers);
                }
                last = answers.to_vec();
            },
        );
        assert_ne!(direct.render(), batched.render(), "not flushed yet");
        tally.flush(&batched.dns, &last);
        assert_eq!(direct.render(), batched.render());
    }

    #[test]
    fn a_threads_tally_is_read_where_it_counts_and_kept_when_it_ends() {
        let (direct, threaded) = (Metrics::default(), Metrics::default());
        let mut tallies = [threaded.dns.thread_tally(), threaded.dns.thread_tally()];
        count_alike(
            &direct,
            &threaded,
            |transport, facts, endpoint, answers, i| {
                let tally = &mut tallies[i % 2];
                tally.reply(transport, facts, false);
                tally.answer(0, endpoint, answers);
                // Answer counters wait for the batch's flush; replies do not.
                tally.flush(&threaded.dns, answers);
            },
        );
        assert_eq!(direct.render(), threaded.render());
        assert_eq!(threaded.dns.cells.threads.lock().unwrap().len(), 2);
        let [first, second] = tallies;
        std::thread::spawn(move || drop(first)).join().unwrap();
        assert_eq!(
            direct.render(),
            threaded.render(),
            "an ended thread's counts stay"
        );
        drop(second);
        assert_eq!(direct.render(), threaded.render());
        assert!(threaded.dns.cells.threads.lock().unwrap().is_empty());
        // A fresh thread adds to what the ended ones left.
        let mut third = threaded.dns.thread_tally();
        let facts = ReplyFacts {
            qtype: None,
            rcode: ResponseCode::Refused,
            truncated: false,
        };
        third.reply(Transport::Udp, &facts, false);
        direct.dns.reply(Transport::Udp, &facts);
        assert_eq!(direct.render(), threaded.render());
    }

    #[test]
    fn a_tally_knows_the_server_it_is_registered_with_and_leaves_its_counts_there() {
        // A runtime thread's TCP tally, as `dns::server` keeps it: replaced
        // by one registered with the server it answers for when that
        // changes, the replaced one folding its counts into its own.
        let (first, second) = (Metrics::default(), Metrics::default());
        let mut tally = ReplyTally::default();
        assert!(!tally.is_registered_with(&first.dns));
        let facts = ReplyFacts {
            qtype: Some(1),
            rcode: ResponseCode::NoError,
            truncated: false,
        };
        let tcp_a = "meridian_dns_queries_total{transport=\"tcp\",qtype=\"A\"}";
        for (metrics, replies) in [(&first, 3), (&second, 2), (&first, 4)] {
            if !tally.is_registered_with(&metrics.dns) {
                tally = metrics.dns.thread_tally();
            }
            assert!(tally.is_registered_with(&metrics.dns));
            for _ in 0..replies {
                tally.reply(Transport::Tcp, &facts, true);
            }
        }
        assert!(!tally.is_registered_with(&second.dns));
        assert_eq!(series(&first.render(), tcp_a), 7);
        assert_eq!(series(&second.render(), tcp_a), 2);
        drop(tally);
        assert_eq!(
            series(&first.render(), tcp_a),
            7,
            "kept when the thread ends"
        );
    }
}
