//! The signed domain a snapshot carries: what is signed, and that a
//! rebuild reuses what an earlier one signed.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::dns::fixture;
use crate::dnssec::testing::signed_config;
use crate::snapshot::Snapshot;

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn a_set(owner: &str, addrs: &[[u8; 4]]) -> Vec<Record> {
    addrs
        .iter()
        .map(|a| Record::from_rdata(name(owner), 30, RData::A(A((*a).into()))))
        .collect()
}

fn rebuild(previous: &Snapshot, drained: &[&str]) -> Snapshot {
    let mut drains = crate::health::drains::Drains::default();
    for zone in drained {
        drains.set_zone(zone, true);
    }
    let config = previous.config.clone();
    crate::snapshot::build(crate::snapshot::Inputs {
        health: crate::health::HealthView::build(&config, &HashMap::new(), &drains),
        config,
        drains,
        router: crate::routing::Router {
            geo: previous.router.geo.clone(),
            cidr: crate::routing::cidr_map(&previous.config),
            latency: Arc::default(),
            local_latency: None,
            peer_latency: Vec::new(),
            uniform: previous.router.uniform.clone(),
        },
        cluster: Default::default(),
        answer_counters: previous.answer_counters.clone(),
        generation: previous.generation + 1,
        signature_cache: previous.signature_cache.clone(),
    })
}

#[test]
fn every_set_a_decision_can_answer_with_is_signed_and_no_other() {
    let (config, _) = signed_config("");
    let snapshot = fixture::snapshot(config, &[]);
    let signed = snapshot.signed.as_ref().expect("a [dnssec] table signs");
    // split.apps: weighted, 2 answers out of 3 zones with one IPv4 each.
    let owner = "split.apps.gslb.example.";
    let (us, eu, ap) = ([192, 0, 2, 30], [198, 51, 100, 30], [203, 0, 113, 30]);
    for pair in [[us, eu], [us, ap], [eu, ap]] {
        assert!(
            signed.rrsig(&name(owner), &a_set(owner, &pair)).is_some(),
            "{pair:?}"
        );
    }
    assert!(
        signed.rrsig(&name(owner), &a_set(owner, &[us])).is_none(),
        "one zone alone is never the answer while three serve"
    );
    assert!(
        signed
            .rrsig(&name(owner), &a_set(owner, &[us, eu, ap]))
            .is_none()
    );
    // The wildcard service is signed under its own name, and found for
    // any name it covers.
    let www_like = a_set("x.apps.gslb.example.", &[[192, 0, 2, 60]]);
    let (_, wildcard) = signed
        .rrsig(&name("x.apps.gslb.example."), &www_like)
        .expect("signed at *.apps");
    assert_eq!(wildcard, Some(name("*.apps.gslb.example.")));
    assert!(signed.chain_len() > 5);
}

#[test]
fn a_rebuild_signs_only_sets_it_has_not_signed_in_this_window() {
    let (config, _) = signed_config("");
    let cold = fixture::snapshot(config, &[]);
    let cache = cold.signature_cache.clone();
    let first = cache.made();
    assert!(first > 20, "a cold build signs every set: {first}");
    let same = rebuild(&cold, &[]);
    assert_eq!(cache.made(), first, "the same health signs nothing");
    assert!(Arc::ptr_eq(&same.signature_cache, &cache));
    let drained = rebuild(&same, &["eu-west"]);
    let after_drain = cache.made();
    assert!(
        after_drain > first,
        "eu-west drained: `every` answers with us-east alone, a new set"
    );
    rebuild(&drained, &[]);
    rebuild(&drained, &["eu-west"]);
    assert_eq!(
        cache.made(),
        after_drain,
        "back and forth between signed sets signs nothing"
    );
}

#[test]
fn the_nsec_chain_covers_missing_names_in_canonical_order() {
    let (config, _) = signed_config("");
    let snapshot = fixture::snapshot(config, &[]);
    let signed = snapshot.signed.as_ref().unwrap();
    let apex = name("gslb.example.");
    assert_eq!(signed.matching(&apex).unwrap().owner, apex);
    for missing in [
        "nope.gslb.example.",
        "zzzz.gslb.example.",
        "a.gslb.example.",
    ] {
        let link = signed.covering(&name(missing)).unwrap();
        let found = crate::dnssec::testing::nsecs(std::slice::from_ref(&link.nsec));
        let (owner, next, _) = &found[0];
        let missing = name(missing);
        use crate::dnssec::canonical::compare_names;
        use std::cmp::Ordering::*;
        assert_eq!(compare_names(owner, &missing), Less, "{missing}");
        assert!(
            compare_names(&missing, next) == Less || *next == apex,
            "{missing} before {next}, or the chain wraps"
        );
    }
    // Glue below a delegation and empty non-terminals are not in the chain.
    assert!(
        signed
            .matching(&name("nonterminal.gslb.example."))
            .is_none()
    );
    assert!(
        signed
            .matching(&name("empty.nonterminal.gslb.example."))
            .is_none()
    );
    assert!(
        signed
            .matching(&name("deep.empty.nonterminal.gslb.example."))
            .is_some()
    );
    // A type a decision may lack has a bitmap without it.
    let split = signed.matching(&name("split.apps.gslb.example.")).unwrap();
    let (without, _) = split.without(RecordType::AAAA);
    let types = &crate::dnssec::testing::nsecs(std::slice::from_ref(without))[0].2;
    assert!(types.contains(&RecordType::A) && !types.contains(&RecordType::AAAA));
    let full = &crate::dnssec::testing::nsecs(std::slice::from_ref(&split.nsec))[0].2;
    assert!(full.contains(&RecordType::AAAA));
}

#[test]
fn an_unsigned_config_builds_no_signatures() {
    let snapshot = fixture::snapshot(fixture::config(""), &[]);
    assert!(snapshot.signed.is_none());
    assert_eq!(snapshot.signature_cache.made(), 0);
}
