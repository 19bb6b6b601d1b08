//! What the publisher knows, and the pure step that folds one change into it.
//!
//! [`State::apply`] takes a [`Change`] and returns what it made [`Dirty`];
//! it does no I/O, awaits nothing and reads no clock (times come in with
//! the change), so every rule of the control plane (late reports ignored,
//! unknown→up costing no rebuild, drains, latency ageing, reload
//! carry-over) is unit-tested here without a runtime. The async shell in
//! [`super`] reads files, runs probes and answers callers around it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;

use crate::cluster::observation::{AddressIdentity, identity};
use crate::cluster::pull::PeerReport;
use crate::cluster::quorum::{self, Decision};
use crate::cluster::{AddressVotes, ClusterView};
use crate::config::Config;
use crate::health::drains::{DrainKey, DrainRecord, Drains, service_key};
use crate::health::state::Observed;
use crate::health::{AddressKey, HealthView, Report, initial_observed};
use crate::routing::geo::GeoDb;
use crate::routing::latency::{LatencyTable, LatencyView, Ranking};
use crate::routing::uniform::UniformCache;
use crate::routing::{Router, cidr_map};
use crate::snapshot::{AnswerCounters, Inputs};

pub use super::drain_request::{DrainRequest, DrainTarget};

/// One measured RTT from a client prefix to a zone.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySample {
    pub prefix: IpNet,
    pub zone: usize,
    pub rtt_ms: f64,
}

/// A config that passed its checks, with what it brings along.
#[derive(Debug)]
pub struct Reloaded {
    pub config: Arc<Config>,
    /// The GeoIP database for it: the current one when `[geoip]` is the
    /// same, freshly opened otherwise.
    pub geo: Option<Arc<GeoDb>>,
    /// Observed state per address of the new config, carried over from the
    /// old one where the address stays (see `reload::carry_over`).
    pub observed: HashMap<AddressKey, Observed>,
}

/// One thing that happened, as the pure step sees it.
#[derive(Debug)]
pub enum Change {
    /// An address's observed state flipped (on this node), noticed `at`.
    Health { report: Report, at: Instant },
    /// An operator drained or undrained something on this node.
    Drain(DrainRequest),
    /// A peer's observations and drain records arrived.
    Peer(PeerReport),
    /// Latency measurements pushed through the admin API, received `at`.
    Latency {
        samples: Vec<LatencySample>,
        at: Instant,
    },
    /// Time passed: age out measurements and re-rank this node's probe
    /// RTTs (best smoothed RTT per zone, in ms).
    Tick {
        at: Instant,
        zone_rtts: Vec<(usize, f64)>,
    },
    /// The GeoIP files were replaced on disk and the new ones load.
    GeoReplaced(Arc<GeoDb>),
    /// A new config is to be served.
    Reloaded(Reloaded),
}

/// What a change touched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct Dirty {
    /// The answers may differ: build and publish a snapshot.
    pub snapshot: bool,
    /// The drains changed: persist them.
    pub drains: bool,
    /// An address's observed state changed (counted in metrics even when
    /// answers stay the same).
    pub health: bool,
    /// Something the cluster's votes depend on changed: recount them with
    /// [`State::settle`] before building.
    pub votes: bool,
}

impl std::ops::BitOrAssign for Dirty {
    fn bitor_assign(&mut self, other: Dirty) {
        self.snapshot |= other.snapshot;
        self.drains |= other.drains;
        self.health |= other.health;
        self.votes |= other.votes;
    }
}

/// The publisher's working state: everything the next snapshot is built from.
pub struct State {
    pub config: Arc<Config>,
    /// Signatures made by earlier snapshots, handed to the next build.
    pub signature_cache: Arc<crate::dnssec::SignatureCache>,
    pub observed: HashMap<AddressKey, Observed>,
    pub drains: Drains,
    pub geo: Option<Arc<GeoDb>>,
    latency: LatencyTable,
    /// The frozen rankings, rebuilt only when measurements change (a
    /// million prefixes take a while to freeze).
    latency_view: Arc<LatencyView>,
    latency_dirty: bool,
    local_latency: Option<Ranking>,
    /// Bumped by every reload; reports from other epochs are late.
    pub epoch: u64,
    /// The generation of the last snapshot built from this state.
    pub generation: u64,
    /// Services answering by their all-down rule in the last snapshot, so
    /// entering and leaving that state is reported once.
    all_down: Vec<bool>,
    /// Each peer's latest observations, by index in `cluster.nodes`.
    peers: HashMap<usize, PeerView>,
    /// What the nodes agreed per address, and the votes behind it (empty
    /// for a node alone, which decides by its own probes).
    agreed: ClusterView,
    /// Something a vote depends on changed since `agreed` was computed:
    /// recompute before the next snapshot ([`State::settle`]), once per
    /// batch rather than once per change.
    votes_stale: bool,
    /// Each address's identity across nodes, for matching peers' votes;
    /// computed per config, only in a cluster.
    identities: HashMap<AddressKey, AddressIdentity>,
    /// The newest time a change brought, for judging peers' freshness.
    now: Option<Instant>,
    /// The GeoIP scope markings, rebuilt only when the config (epoch) or
    /// the database changes: health changes reuse them.
    pub uniform: UniformCache,
}

/// What one peer last said.
#[derive(Debug)]
struct PeerView {
    received_at: Instant,
    states: std::collections::BTreeMap<AddressIdentity, Observed>,
    /// The peer's own probe-RTT ranking, by this config's zone indices.
    ranking: Option<Ranking>,
}

impl State {
    /// The state behind a node's first snapshot (generation 1): every
    /// address as it starts, the given drains, no measurements.
    pub fn new(config: Arc<Config>, drains: Drains, geo: Option<Arc<GeoDb>>) -> State {
        State {
            signature_cache: Arc::default(),
            observed: initial_observed(&config),
            all_down: vec![false; config.services.len()],
            config,
            drains,
            geo,
            latency: LatencyTable::default(),
            latency_view: Arc::default(),
            latency_dirty: false,
            local_latency: None,
            epoch: 0,
            generation: 1,
            peers: HashMap::new(),
            agreed: ClusterView::default(),
            votes_stale: false,
            identities: HashMap::new(),
            now: None,
            uniform: UniformCache::default(),
        }
        .with_identities()
    }

    fn with_identities(mut self) -> State {
        self.index_identities();
        let _ = self.settle();
        self
    }

    fn is_clustered(&self) -> bool {
        self.config.cluster.nodes.len() > 1
    }

    /// Whether time alone can change anything here, so a `Change::Tick`
    /// is worth sending: peers go stale, measurements age, this node's
    /// probe RTTs rank its zones. Otherwise a tick changes nothing.
    pub fn is_time_driven(&self) -> bool {
        self.is_clustered() || !self.latency.is_empty() || self.config.routing.this_zone.is_some()
    }

    fn index_identities(&mut self) {
        self.identities = if self.is_clustered() {
            self.observed
                .keys()
                .map(|key| (*key, identity(&self.config, key)))
                .collect()
        } else {
            HashMap::new()
        };
        self.votes_stale = true;
    }

    /// Where drains are persisted, per the current config.
    pub fn state_file(&self) -> Option<&PathBuf> {
        self.config.server.state_file.as_ref()
    }

    /// Folds one change in.
    pub fn apply(&mut self, change: Change) -> Dirty {
        let mut dirty = match change {
            Change::Health { report, at } => {
                self.saw(at);
                self.apply_report(report)
            }
            Change::Drain(request) => self.apply_drain(request),
            Change::Peer(report) => {
                self.saw(report.received_at);
                self.apply_peer(report)
            }
            Change::Latency { samples, at } => {
                let n = samples.len();
                for sample in samples {
                    self.latency
                        .push(sample.prefix, sample.zone, sample.rtt_ms, at);
                }
                tracing::debug!(samples = n, "latency measurements added");
                self.latency_dirty = true;
                Dirty {
                    snapshot: true,
                    ..Dirty::default()
                }
            }
            Change::Tick { at, zone_rtts } => {
                self.saw(at);
                self.apply_tick(at, zone_rtts)
            }
            Change::GeoReplaced(db) => {
                self.geo = Some(db);
                Dirty {
                    snapshot: true,
                    ..Dirty::default()
                }
            }
            Change::Reloaded(reloaded) => self.apply_reload(reloaded),
        };
        // In a cluster every change may move the agreed state (own views,
        // peers' views, time making peers stale, the set of addresses); the
        // votes are recounted once the batch is in ([`State::settle`]).
        if self.is_clustered() {
            self.votes_stale = true;
            dirty.votes = true;
        }
        dirty
    }

    /// Recounts the votes if anything they depend on changed; returns
    /// whether the answers, or the votes shown, changed. Cheap when
    /// nothing did, and a no-op for a node alone.
    pub fn settle(&mut self) -> bool {
        if !std::mem::take(&mut self.votes_stale) || !self.is_clustered() {
            return false;
        }
        self.agree()
    }

    fn saw(&mut self, at: Instant) {
        if self.now.is_none_or(|now| now < at) {
            self.now = Some(at);
        }
    }

    /// This node's name in the cluster, for drain versions.
    fn node_name(&self) -> &str {
        self.config.cluster.this_name().unwrap_or("")
    }

    fn apply_peer(&mut self, report: PeerReport) -> Dirty {
        let PeerReport {
            node,
            observations,
            received_at,
        } = report;
        let known = self.config.cluster.nodes.get(node).map(|n| n.name.as_str());
        if known != Some(observations.node.as_str()) || Some(node) == self.config.cluster.this_node
        {
            tracing::warn!(
                expected = known.unwrap_or("none"),
                got = %observations.node,
                "observations from an unexpected node ignored; check [[cluster.nodes]] admin addresses"
            );
            return Dirty::default();
        }
        let taken = self.drains.merge(&observations.drains);
        if taken {
            tracing::info!(peer = %observations.node, "drain records taken from peer");
        }
        let zones: Vec<(usize, f64)> = observations
            .latency
            .iter()
            .filter_map(|(zone, rtt)| Some((self.config.zone_index(zone)?, *rtt)))
            .collect();
        let ranking = (!zones.is_empty()).then_some(Ranking { zones });
        let order =
            |r: Option<&Ranking>| r.map(|r| r.zones.iter().map(|z| z.0).collect::<Vec<_>>());
        let reranked = order(self.peers.get(&node).and_then(|p| p.ranking.as_ref()))
            != order(ranking.as_ref());
        self.peers.insert(
            node,
            PeerView {
                received_at,
                states: observations.states(),
                ranking,
            },
        );
        Dirty {
            snapshot: taken || reranked,
            drains: taken,
            health: false,
            votes: false,
        }
    }

    /// Recomputes the agreed state of every address from this node's view
    /// and its fresh peers'; returns whether anything answers use, or
    /// anything the votes show, changed.
    fn agree(&mut self) -> bool {
        let identities = &self.identities;
        let cluster = &self.config.cluster;
        let rule = quorum::Rule {
            cluster_size: cluster.size(),
            quorum: cluster.quorum,
        };
        let peers: Vec<(usize, Option<&PeerView>)> = cluster
            .peers()
            .map(|(i, _)| {
                let fresh = self.peers.get(&i).filter(|p| {
                    self.now.is_some_and(|now| {
                        now.saturating_duration_since(p.received_at) <= cluster.stale_after
                    })
                });
                (i, fresh)
            })
            .collect();
        let mut next = ClusterView::default();
        for (key, own) in &self.observed {
            let Some(id) = identities.get(key) else {
                continue;
            };
            let votes: Vec<(usize, Option<Observed>)> = peers
                .iter()
                .map(|(i, view)| {
                    (
                        *i,
                        view.map(|v| v.states.get(id).copied().unwrap_or(Observed::Unknown)),
                    )
                })
                .collect();
            let last = self
                .agreed
                .addresses
                .get(key)
                .map_or(*own, |a| a.decision.state);
            let decision: Decision = quorum::decide(rule, *own, votes.iter().map(|v| v.1), last);
            next.is_fail_static |= decision.is_fail_static;
            next.fresh_nodes = decision.fresh;
            next.addresses.insert(
                *key,
                AddressVotes {
                    own: *own,
                    decision,
                    votes,
                },
            );
        }
        if next.is_fail_static != self.agreed.is_fail_static {
            if next.is_fail_static {
                tracing::warn!(
                    fresh = next.fresh_nodes,
                    needed = rule.min_fresh(),
                    "too few nodes with fresh observations to decide health; keeping the last agreed state (fail static)"
                );
            } else {
                tracing::info!(
                    fresh = next.fresh_nodes,
                    "enough nodes with fresh observations again; health decided by quorum"
                );
            }
        }
        // The votes shown in `/v1/zones` count as a change too.
        let changed = next != self.agreed;
        self.agreed = next;
        changed
    }

    /// Fresh peers' probe-RTT rankings, by the zone each runs in.
    fn peer_latency(&self) -> Vec<(usize, Ranking)> {
        let cluster = &self.config.cluster;
        cluster
            .peers()
            .filter_map(|(i, node)| {
                let peer = self.peers.get(&i)?;
                let fresh = self.now.is_some_and(|now| {
                    now.saturating_duration_since(peer.received_at) <= cluster.stale_after
                });
                Some((node.zone, peer.ranking.clone().filter(|_| fresh)?))
            })
            .collect()
    }

    /// The state answers use per address: the quorum's in a cluster, this
    /// node's own alone.
    fn agreed_states(&self) -> std::borrow::Cow<'_, HashMap<AddressKey, Observed>> {
        if !self.is_clustered() {
            return std::borrow::Cow::Borrowed(&self.observed);
        }
        std::borrow::Cow::Owned(
            self.agreed
                .addresses
                .iter()
                .map(|(k, a)| (*k, a.decision.state))
                .collect(),
        )
    }

    fn apply_report(&mut self, report: Report) -> Dirty {
        if report.epoch != self.epoch {
            return Dirty::default();
        }
        let Report {
            key,
            transition,
            reason,
            ..
        } = report;
        let (service, zone, address) = self.names(key);
        tracing::info!(
            service = %service,
            zone = %zone,
            endpoint = %address,
            from = transition.from.name(),
            to = transition.to.name(),
            drained = {
                let service = &self.config.services[key.service];
                let name = service.endpoints[key.endpoint].name.as_deref();
                self.drains.is_drained(&service.name, zone, name)
            },
            reason = %reason,
            "health transition"
        );
        self.observed.insert(key, transition.to);
        Dirty {
            // Unknown to up changes nothing the answers use.
            snapshot: transition.from.is_usable() != transition.to.is_usable(),
            health: true,
            drains: false,
            votes: false,
        }
    }

    fn apply_drain(&mut self, request: DrainRequest) -> Dirty {
        let DrainRequest {
            target,
            drained,
            who,
            reason,
            at_ms,
        } = request;
        let (key, service) = match &target {
            DrainTarget::Zone(zone) => (DrainKey::Zone(zone.clone()), None),
            DrainTarget::Endpoint {
                service,
                zone,
                endpoint,
            } => {
                let name = &self.config.services[*service].name;
                let key = DrainKey::Endpoint {
                    service: service_key(name),
                    zone: zone.clone(),
                    endpoint: endpoint.clone(),
                };
                (key, Some(name.to_string()))
            }
        };
        let version = self.drains.next_version(&key, at_ms, self.node_name());
        let changed = self.drains.set(
            key,
            DrainRecord {
                drained,
                version,
                who: who.clone(),
                reason: reason.clone(),
            },
        );
        let (zone, endpoint) = match &target {
            DrainTarget::Zone(zone) => (zone.as_str(), None),
            DrainTarget::Endpoint { zone, endpoint, .. } => (zone.as_str(), endpoint.as_deref()),
        };
        tracing::info!(
            zone,
            service = service.as_deref().unwrap_or("*"),
            endpoint = endpoint.unwrap_or("*"),
            drained,
            changed,
            who = %who,
            reason = reason.as_deref().unwrap_or(""),
            "operator {}",
            if drained { "drain" } else { "undrain" }
        );
        // The record is new even when the state is not: persist it so the
        // newest version survives a restart and spreads to peers.
        Dirty {
            snapshot: changed,
            drains: true,
            health: false,
            votes: false,
        }
    }

    fn apply_tick(&mut self, at: Instant, zone_rtts: Vec<(usize, f64)>) -> Dirty {
        let mut dirty = Dirty::default();
        if self.latency.expire(at, self.config.routing.latency_max_age) {
            self.latency_dirty = true;
            dirty.snapshot = true;
        }
        if let Some(here) = self.config.routing.this_zone {
            let routing = &self.config.routing;
            let ranking = self.latency.local_view(
                zone_rtts,
                routing.latency_margin,
                routing.latency_margin_ms,
            );
            let order = |r: &Option<Ranking>| {
                r.as_ref()
                    .map(|r| r.zones.iter().map(|z| z.0).collect::<Vec<_>>())
            };
            if order(&ranking) != order(&self.local_latency) {
                let names: Vec<&str> = order(&ranking)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|z| self.config.zones[z].name.as_str())
                    .collect();
                tracing::info!(
                    zone = %self.config.zones[here].name,
                    ranking = %names.join(" "),
                    "local latency ranking changed"
                );
                dirty.snapshot = true;
            }
            self.local_latency = ranking;
        }
        dirty
    }

    fn apply_reload(&mut self, reloaded: Reloaded) -> Dirty {
        let Reloaded {
            config: next,
            geo,
            observed,
        } = reloaded;
        let zone_names = |c: &Config| c.zones.iter().map(|z| z.name.clone()).collect::<Vec<_>>();
        if zone_names(&next) != zone_names(&self.config) {
            // Measurements are kept by zone position; a new zone list would
            // misattribute them.
            self.latency = LatencyTable::default();
            self.latency_dirty = true;
            self.local_latency = None;
        }
        self.observed = observed;
        self.geo = geo;
        // A service that stays keeps its all-down state, so a reload during
        // an outage does not count and log a new one.
        // By position while the names line up (a reload that moves no
        // service), by name past the first that does not.
        let mut by_name: Option<HashMap<String, bool>> = None;
        let all_down: Vec<bool> = next
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if let (Some(old), Some(down)) = (self.config.services.get(i), self.all_down.get(i))
                    && old.name == s.name
                {
                    return *down;
                }
                by_name
                    .get_or_insert_with(|| {
                        self.config
                            .services
                            .iter()
                            .zip(&self.all_down)
                            .map(|(s, down)| (service_key(&s.name), *down))
                            .collect()
                    })
                    .get(&service_key(&s.name))
                    .copied()
                    .unwrap_or(false)
            })
            .collect();
        self.all_down = all_down;
        self.config = next;
        // The votes' last agreed states follow their addresses, whose
        // positions in the config may have moved.
        let old_agreed: HashMap<AddressIdentity, AddressVotes> =
            std::mem::take(&mut self.agreed.addresses)
                .into_iter()
                .filter_map(|(key, votes)| Some((self.identities.get(&key)?.clone(), votes)))
                .collect();
        self.index_identities();
        self.agreed.addresses = self
            .identities
            .iter()
            .filter_map(|(key, id)| Some((*key, old_agreed.get(id)?.clone())))
            .collect();
        self.epoch += 1;
        tracing::info!(
            file = %self.config.source.display(),
            zones = self.config.zones.len(),
            services = self.config.services.len(),
            "config reloaded"
        );
        Dirty {
            snapshot: true,
            ..Dirty::default()
        }
    }

    /// The inputs of the next snapshot, which takes the next generation.
    pub fn next_inputs(&mut self, answer_counters: AnswerCounters) -> Inputs {
        let _ = self.settle();
        self.generation += 1;
        if self.latency_dirty {
            let routing = &self.config.routing;
            self.latency_view = Arc::new(
                self.latency
                    .view(routing.latency_margin, routing.latency_margin_ms),
            );
            self.latency_dirty = false;
        }
        Inputs {
            config: self.config.clone(),
            health: HealthView::build(&self.config, &self.agreed_states(), &self.drains),
            cluster: self.agreed.clone(),
            drains: self.drains.clone(),
            router: Router {
                geo: self.geo.clone(),
                cidr: cidr_map(&self.config),
                latency: self.latency_view.clone(),
                local_latency: self.local_latency.clone(),
                peer_latency: self.peer_latency(),
                uniform: self
                    .uniform
                    .get(&self.config, self.geo.as_ref(), self.epoch),
            },
            answer_counters,
            generation: self.generation,
            signature_cache: self.signature_cache.clone(),
        }
    }

    /// Notes which services answer by their all-down rule in a snapshot
    /// just built; returns the services that entered (`true`) or left
    /// (`false`) that state since the last one.
    pub fn all_down_changes(
        &mut self,
        is_all_down: impl Iterator<Item = bool>,
    ) -> Vec<(usize, bool)> {
        let mut changes = Vec::new();
        for (i, now) in is_all_down.enumerate() {
            if let Some(before) = self.all_down.get_mut(i)
                && *before != now
            {
                *before = now;
                changes.push((i, now));
            }
        }
        changes
    }

    /// Service, zone and address of a probed address, as the config names them.
    pub fn names(&self, key: AddressKey) -> (String, &str, IpAddr) {
        let service = &self.config.services[key.service];
        let endpoint = &service.endpoints[key.endpoint];
        (
            service.name.to_string(),
            &self.config.zones[endpoint.zone].name,
            endpoint.addresses[key.address],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::state::Transition;
    use crate::snapshot::{build, detached_counters};

    fn config_text() -> String {
        let service = "policy = \"failover\"\norder = [\"a\", \"b\"]";
        crate::test_config::www(service, &["192.0.2.1"], "192.0.2.2")
    }

    fn config(text: &str) -> Arc<Config> {
        crate::test_config::shared(text)
    }

    fn state() -> State {
        State::new(config(&config_text()), Drains::default(), None)
    }

    fn key(endpoint: usize) -> AddressKey {
        AddressKey {
            service: 0,
            endpoint,
            address: 0,
        }
    }

    fn report(epoch: u64, endpoint: usize, from: Observed, to: Observed) -> Change {
        Change::Health {
            report: Report {
                epoch,
                key: key(endpoint),
                transition: Transition { from, to },
                reason: "test".into(),
            },
            at: Instant::now(),
        }
    }

    /// The zones the service answers with in a snapshot built from `state`.
    fn answer(state: &mut State) -> Vec<String> {
        let counters = detached_counters(&state.config);
        let snapshot = build(state.next_inputs(counters));
        let health = &snapshot.health.endpoints[0];
        snapshot.config.services[0]
            .endpoints
            .iter()
            .zip(health)
            .filter(|(_, view)| view.is_serving())
            .map(|(e, _)| snapshot.config.zones[e.zone].name.clone())
            .collect()
    }

    #[test]
    fn a_flip_to_down_rebuilds_and_unknown_to_up_does_not() {
        let mut state = state();
        let dirty = state.apply(report(0, 0, Observed::Unknown, Observed::Up));
        assert_eq!(
            dirty,
            Dirty {
                snapshot: false,
                drains: false,
                health: true,
                votes: false,
            }
        );
        let dirty = state.apply(report(0, 0, Observed::Up, Observed::Down));
        assert!(dirty.snapshot && dirty.health && !dirty.drains);
        assert_eq!(state.observed[&key(0)], Observed::Down);
        assert_eq!(answer(&mut state), ["b"]);
    }

    #[test]
    fn a_late_report_from_before_a_reload_is_ignored() {
        let mut state = state();
        state.epoch = 3;
        let dirty = state.apply(report(2, 0, Observed::Up, Observed::Down));
        assert_eq!(dirty, Dirty::default());
        assert_eq!(state.observed[&key(0)], Observed::Unknown);
    }

    #[test]
    fn a_drain_is_dirty_once_and_an_undrain_restores() {
        let mut state = state();
        let drain =
            |drained| Change::Drain(DrainRequest::new(DrainTarget::Zone("a".into()), drained));
        let dirty = state.apply(drain(true));
        assert!(dirty.snapshot && dirty.drains);
        assert_eq!(answer(&mut state), ["b"]);
        assert!(!state.apply(drain(true)).snapshot, "already drained");
        assert!(state.apply(drain(false)).snapshot);
        assert_eq!(answer(&mut state), ["a", "b"]);

        let endpoint = Change::Drain(DrainRequest::new(
            DrainTarget::Endpoint {
                service: 0,
                zone: "b".into(),
                endpoint: None,
            },
            true,
        ));
        assert!(state.apply(endpoint).snapshot);
        assert_eq!(answer(&mut state), ["a"]);
        // Observed health is untouched by drains.
        assert_eq!(state.observed[&key(1)], Observed::Unknown);
    }

    #[test]
    fn a_reload_takes_the_carried_health_and_starts_a_new_epoch() {
        let mut state = state();
        assert!(
            state
                .apply(report(0, 0, Observed::Up, Observed::Down))
                .snapshot
        );
        assert!(
            state
                .apply(Change::Drain(DrainRequest::new(
                    DrainTarget::Zone("b".into()),
                    true
                )))
                .drains
        );
        let next = config(&config_text().replace("192.0.2.2", "192.0.2.3"));
        let observed = HashMap::from([(key(0), Observed::Down), (key(1), Observed::Unknown)]);
        let dirty = state.apply(Change::Reloaded(Reloaded {
            config: next.clone(),
            geo: None,
            observed,
        }));
        assert!(dirty.snapshot);
        assert_eq!(state.epoch, 1);
        assert!(Arc::ptr_eq(&state.config, &next));
        assert_eq!(state.observed[&key(0)], Observed::Down, "kept");
        assert!(state.drains.is_zone_drained("b"), "drains stay");
        // Reports of the old epoch no longer count.
        assert_eq!(
            state.apply(report(0, 0, Observed::Down, Observed::Up)),
            Dirty::default()
        );
        assert!(
            state
                .apply(report(1, 0, Observed::Down, Observed::Up))
                .snapshot
        );
    }

    #[test]
    fn every_build_takes_the_next_generation() {
        let mut state = state();
        assert_eq!(state.generation, 1);
        let counters = detached_counters(&state.config);
        assert_eq!(build(state.next_inputs(counters.clone())).generation, 2);
        assert_eq!(build(state.next_inputs(counters)).generation, 3);
    }

    #[test]
    fn a_reload_during_an_outage_is_not_a_new_outage() {
        let mut state = state();
        assert_eq!(state.all_down_changes([true].into_iter()), [(0, true)]);
        let observed = state.observed.clone();
        let _ = state.apply(Change::Reloaded(Reloaded {
            config: config(&config_text().replace("latitude = 10.0", "latitude = 11.0")),
            geo: None,
            observed,
        }));
        assert_eq!(
            state.all_down_changes([true].into_iter()),
            [],
            "still down, not new"
        );
        assert_eq!(state.all_down_changes([false].into_iter()), [(0, false)]);
    }

    /// A three-node cluster of this config, as node `a-node` sees it.
    fn clustered() -> State {
        let text = config_text()
            + r#"
[[zones]]
name = "c"
latitude = 20.0
longitude = 20.0
[cluster]
token = "a-token-of-enough-length"
[[cluster.nodes]]
name = "a-node"
zone = "a"
admin = "http://127.0.0.1:1"
[[cluster.nodes]]
name = "b-node"
zone = "b"
admin = "http://127.0.0.1:2"
[[cluster.nodes]]
name = "c-node"
zone = "c"
admin = "http://127.0.0.1:3"
"#;
        let config = Config::parse(&text, "test.toml".as_ref())
            .expect("test config is valid")
            .for_node(Some("a-node"))
            .unwrap();
        State::new(Arc::new(config), Drains::default(), None)
    }

    fn peer(state: &State, node: usize, down: bool, at: Instant) -> Change {
        let name = state.config.cluster.nodes[node].name.clone();
        let config = &state.config;
        let addresses = crate::health::address_keys(config)
            .map(|key| {
                let (service, zone, address) = identity(config, &key);
                crate::cluster::observation::AddressObservation {
                    service,
                    zone,
                    address,
                    state: if down && key.endpoint == 0 {
                        Observed::Down
                    } else {
                        Observed::Up
                    },
                    consecutive_ok: 0,
                    consecutive_fail: 0,
                    rtt_ms: None,
                    last_result: None,
                    last_probe_ms: None,
                }
            })
            .collect();
        Change::Peer(PeerReport {
            node,
            observations: crate::cluster::observation::NodeObservations {
                node: name,
                config_digest: String::new(),
                generation: 1,
                sent_at_ms: 0,
                addresses,
                drains: Default::default(),
                latency: vec![("b".into(), 4.0), ("a".into(), 9.0)],
            },
            received_at: at,
        })
    }

    #[test]
    fn peers_votes_decide_and_stale_peers_leave_the_last_agreed_state() {
        let mut state = clustered();
        let t0 = Instant::now();
        let own_down = |state: &mut State| {
            state.apply(Change::Health {
                report: Report {
                    epoch: 0,
                    key: key(0),
                    transition: Transition {
                        from: Observed::Up,
                        to: Observed::Down,
                    },
                    reason: "cut".into(),
                },
                at: t0,
            })
        };
        let _ = state.apply(peer(&state, 1, false, t0));
        let _ = state.apply(peer(&state, 2, false, t0));
        let _ = own_down(&mut state);
        assert_eq!(
            answer(&mut state),
            ["a", "b"],
            "this node alone sees a down"
        );
        assert_eq!(state.agreed.fresh_nodes, 3);
        // b agrees: two of three.
        assert!(state.apply(peer(&state, 1, true, t0)).votes);
        assert!(state.settle(), "the recount changes the answers");
        assert!(!state.settle(), "nothing changed since");
        assert_eq!(answer(&mut state), ["b"]);
        // Both peers go stale: fail static on the agreed `down`, even if
        // this node's own view recovers.
        let later = t0 + state.config.cluster.stale_after + std::time::Duration::from_secs(1);
        let _ = state.apply(Change::Tick {
            at: later,
            zone_rtts: Vec::new(),
        });
        assert!(state.settle());
        assert!(state.agreed.is_fail_static);
        state.observed.insert(key(0), Observed::Up);
        let _ = state.apply(Change::Tick {
            at: later,
            zone_rtts: Vec::new(),
        });
        assert_eq!(answer(&mut state), ["b"], "last agreed state kept");
    }

    #[test]
    fn a_fresh_peers_latency_ranking_reaches_the_router() {
        let mut state = clustered();
        let t0 = Instant::now();
        assert!(state.apply(peer(&state, 1, false, t0)).snapshot);
        let counters = detached_counters(&state.config);
        let inputs = state.next_inputs(counters);
        assert_eq!(inputs.router.peer_latency.len(), 1);
        let (zone, ranking) = &inputs.router.peer_latency[0];
        assert_eq!(*zone, 1, "b-node runs in b");
        assert_eq!(ranking.zones, [(1, 4.0), (0, 9.0)]);
        let later = t0 + state.config.cluster.stale_after + std::time::Duration::from_secs(1);
        let _ = state.apply(Change::Tick {
            at: later,
            zone_rtts: Vec::new(),
        });
        let counters = detached_counters(&state.config);
        assert!(
            state.next_inputs(counters).router.peer_latency.is_empty(),
            "stale"
        );
    }

    #[test]
    fn all_down_is_reported_on_entering_and_leaving_only() {
        let mut state = state();
        assert_eq!(state.all_down_changes([false].into_iter()), []);
        assert_eq!(state.all_down_changes([true].into_iter()), [(0, true)]);
        assert_eq!(state.all_down_changes([true].into_iter()), []);
        assert_eq!(state.all_down_changes([false].into_iter()), [(0, false)]);
    }

    #[test]
    fn only_measurements_a_cluster_or_a_zone_of_its_own_make_time_matter() {
        let mut state = state();
        assert!(!state.is_time_driven(), "a lone node with nothing measured");
        let sample = LatencySample {
            prefix: "203.0.113.0/24".parse().unwrap(),
            zone: 1,
            rtt_ms: 5.0,
        };
        let at = Instant::now();
        let _ = state.apply(Change::Latency {
            samples: vec![sample],
            at,
        });
        assert!(state.is_time_driven(), "a measurement ages");
        let max_age = state.config.routing.latency_max_age;
        let _ = state.apply(Change::Tick {
            at: at + max_age + std::time::Duration::from_secs(1),
            zone_rtts: Vec::new(),
        });
        assert!(!state.is_time_driven(), "aged out, nothing left");
        assert!(clustered().is_time_driven(), "peers go stale");
    }

    #[test]
    fn measurements_expire_on_a_tick_after_their_max_age() {
        let mut state = state();
        let t0 = Instant::now();
        let sample = LatencySample {
            prefix: "203.0.113.0/24".parse().unwrap(),
            zone: 1,
            rtt_ms: 5.0,
        };
        let dirty = state.apply(Change::Latency {
            samples: vec![sample],
            at: t0,
        });
        assert!(dirty.snapshot);
        let max_age = state.config.routing.latency_max_age;
        let early = state.apply(Change::Tick {
            at: t0 + max_age / 2,
            zone_rtts: Vec::new(),
        });
        assert!(!early.snapshot, "nothing expired yet");
        let late = state.apply(Change::Tick {
            at: t0 + max_age + std::time::Duration::from_secs(1),
            zone_rtts: Vec::new(),
        });
        assert!(late.snapshot, "the measurement aged out");
    }
}
