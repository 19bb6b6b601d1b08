//! Where the answer path's routing decisions are built: buffers reused
//! from one decision to the next, and what a GeoIP record alone decides,
//! remembered per record.
//!
//! A memo miss (a client network not seen in this snapshot) must cost
//! little and allocate nothing: a flood of random client subnets misses on
//! every query. Distances from a record's location to the zones, and the
//! endpoint order a record gives a service, are the same for every client
//! the record places, and a database has few distinct locations.
//!
//! Invariant: what is remembered belongs to one snapshot (record keys to
//! its database, rows to its zones, orders to its services);
//! [`Workspace::forget_places`] is called when the snapshot changes.

use std::collections::HashMap;

use super::geo::{Location, RecordKey};
use super::settled::SettledChoices;
use crate::config::Config;

/// Buffers a decision is built in. [`route`](super::route) uses fresh ones; the answer
/// path's memo keeps one per thread so that a miss allocates nothing once
/// they have grown, and lets it remember, per GeoIP record, the distances
/// from the record's location to every zone: a database has few distinct
/// locations, and the trigonometry is most of a miss's cost otherwise.
///
/// Invariant: remembered distances belong to one snapshot (record keys to
/// its database, rows to its zones); [`Workspace::forget_places`] must be
/// called when the snapshot changes.
#[derive(Debug, Default)]
pub struct Workspace {
    /// Every endpoint of the service, preferred first.
    pub(crate) order: Vec<usize>,
    /// The endpoints chosen to answer with (see [`route_in`](super::route_in)).
    pub chosen: Vec<usize>,
    pub(crate) scored: Vec<(f64, usize)>,
    /// (zone rank, in-zone score, endpoint), for splitting zones that
    /// hold several endpoints (see `routing::split_zones`).
    pub(crate) split: Vec<(usize, f64, usize)>,
    distances_now: Vec<f64>,
    pub(crate) service_name: String,
    /// Whether to keep distances per record (only the memo's workspace,
    /// which lives long enough to reuse them).
    remembers_places: bool,
    /// Row start in `distances` per GeoIP record; keys come from the
    /// database, whose records are few, and the map is bounded anyway.
    places: HashMap<RecordKey, u32, foldhash::fast::RandomState>,
    /// `config.zones.len()` distances per remembered record.
    distances: Vec<f64>,
    /// Endpoint orders by (service, GeoIP record), for orders that rest
    /// on the record alone (see `routing::by_record`) and are short.
    orders: HashMap<(u32, RecordKey), KnownOrder, foldhash::fast::RandomState>,
    /// The chosen endpoints by (service, record), for decisions a record
    /// settles alone (see `routing::settled`).
    pub(crate) settled: SettledChoices,
}

/// Endpoints a remembered order holds at most.
const ORDER_INLINE: usize = 8;

/// An order of a service's endpoints remembered for a GeoIP record.
#[derive(Debug, Clone, Copy)]
struct KnownOrder {
    len: u8,
    order: [u16; ORDER_INLINE],
    /// It came from node probe RTTs (`Basis::LocalLatency`), not from
    /// distances alone.
    is_local_latency: bool,
}

/// Records whose distances a workspace remembers before starting over.
const PLACES_CAPACITY: usize = 1 << 14;

impl Workspace {
    /// A workspace that remembers distances per GeoIP record.
    pub fn remembering_places() -> Workspace {
        Workspace {
            remembers_places: true,
            ..Workspace::default()
        }
    }

    /// Forgets remembered distances (a new snapshot: another database or
    /// other zones).
    pub fn forget_places(&mut self) {
        self.places.clear();
        self.distances.clear();
        self.orders.clear();
        self.settled.clear();
    }

    /// Whether this workspace remembers per record (the memo's does).
    pub fn remembers_places(&self) -> bool {
        self.remembers_places
    }

    /// Distances from `location` (GeoIP record `record`) to every zone of
    /// `config`, computed once per record when remembering.
    pub fn distances(
        &mut self,
        config: &Config,
        location: &Location,
        record: Option<RecordKey>,
    ) -> &[f64] {
        let n = config.zones.len();
        let compute = |out: &mut Vec<f64>| {
            // The same function as `routing::distance_km`, so the same values.
            out.extend(
                config
                    .zones
                    .iter()
                    .map(|z| location.distance_km(z.latitude, z.longitude)),
            );
        };
        let Some(record) = record.filter(|_| self.remembers_places) else {
            self.distances_now.clear();
            compute(&mut self.distances_now);
            return &self.distances_now;
        };
        if self.places.len() >= PLACES_CAPACITY {
            self.forget_places();
        }
        let start = match self.places.get(&record) {
            Some(start) => *start as usize,
            None => {
                let start = self.distances.len();
                compute(&mut self.distances);
                self.places.insert(record, start as u32);
                start
            }
        };
        &self.distances[start..start + n]
    }
}

impl Workspace {
    /// Appends the order remembered for (service, record) to `order`;
    /// `Some(is_local_latency)` if there was one.
    pub fn recall_order(&mut self, key: (u32, RecordKey)) -> Option<bool> {
        if !self.remembers_places {
            return None;
        }
        let known = self.orders.get(&key)?;
        let ids = &known.order[..usize::from(known.len)];
        self.order.extend(ids.iter().map(|e| usize::from(*e)));
        Some(known.is_local_latency)
    }

    /// Remembers `order` as the order for (service, record), if short.
    pub fn remember_order(&mut self, key: (u32, RecordKey), is_local_latency: bool) {
        if !self.remembers_places || self.order.len() > ORDER_INLINE {
            return;
        }
        if self.orders.len() >= PLACES_CAPACITY * 4 {
            self.orders.clear();
        }
        let mut order = [0u16; ORDER_INLINE];
        for (slot, e) in order.iter_mut().zip(&self.order) {
            // Fewer than ORDER_INLINE endpoints: every index fits.
            *slot = *e as u16;
        }
        self.orders.insert(
            key,
            KnownOrder {
                len: self.order.len() as u8,
                order,
                is_local_latency,
            },
        );
    }
}
