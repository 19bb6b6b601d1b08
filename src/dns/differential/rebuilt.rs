//! A snapshot built after another (`snapshot::build_after`) shares with
//! it every service whose config entry and health stayed, and the name
//! tables when no name changed. Whatever it shares, it must answer exactly
//! as a snapshot built afresh from the same inputs, on both paths.

use std::collections::HashMap;

use hickory_proto::op::Message;

use super::super::answer::answer as general_answer;
use super::super::fast::{ThreadCaches, answer_or_send_kept};
use super::super::fixture::{
    EXTRA_SERVICES, built_after_and_afresh, config, config_read_after, snapshot, snapshot_observed,
};
use super::super::wire::Transport;
use super::{Cases, query};
use crate::health::AddressKey;
use crate::health::state::Observed;
use crate::snapshot::Snapshot;

/// A snapshot built after another shares the records of every service
/// whose config entry and health stayed, and answers exactly as one
/// built afresh: here one service's entry changed (a new TTL), another's
/// health changed (an address was down before), and the rest stayed.
#[test]
fn a_snapshot_built_after_another_answers_as_one_built_afresh() {
    let before = config("");
    let www = before.service_index("www").expect("www");
    let api = before.service_index("api").expect("api");
    let down = HashMap::from([(
        AddressKey {
            service: www,
            endpoint: 0,
            address: 0,
        },
        Observed::Down,
    )]);
    let previous = snapshot_observed(before.clone(), &down, &[]);
    // As the config read makes it: unchanged entries are the very ones
    // read before, a changed entry is new.
    let mut next = (*before).clone();
    let mut changed = (*next.services[api]).clone();
    changed.ttl += 1;
    next.services[api] = std::sync::Arc::new(changed);
    let (after, afresh) =
        built_after_and_afresh(&previous, std::sync::Arc::new(next), &HashMap::new());
    for (i, records) in after.table.services.iter().enumerate() {
        assert_eq!(**records, *afresh.table.services[i], "service {i}");
        let shared = std::sync::Arc::ptr_eq(records, &previous.table.services[i]);
        assert_eq!(shared, i != www && i != api, "service {i} shared: {shared}");
    }
    assert_answers_alike(&after, &afresh);
}

/// A service removed in front moves every index after it: the others are
/// still found in the previous snapshot and shared.
#[test]
fn a_snapshot_built_after_a_service_was_removed_shares_the_rest() {
    let before = config("");
    let previous = snapshot(before.clone(), &[]);
    let mut next = (*before).clone();
    next.services.remove(0);
    let (after, afresh) =
        built_after_and_afresh(&previous, std::sync::Arc::new(next), &HashMap::new());
    for (i, records) in after.table.services.iter().enumerate() {
        assert_eq!(**records, *afresh.table.services[i], "service {i}");
        assert!(
            std::sync::Arc::ptr_eq(records, &previous.table.services[i + 1]),
            "service {i} is service {} before",
            i + 1
        );
    }
    assert_answers_alike(&after, &afresh);
}

/// Read as a reload reads the file: a change inside a service entry
/// keeps every name, and the next snapshot shares the names' tables; a
/// change outside the entries (a record added) or a service renamed
/// does not. Either way it answers as a snapshot built afresh.
#[test]
fn a_reload_that_keeps_the_names_shares_them() {
    let first = config_read_after(EXTRA_SERVICES, "", None);
    let previous = snapshot(first.clone(), &[]);
    let api_ttl =
        EXTRA_SERVICES.replace("name = \"api\"\npolicy", "name = \"api\"\nttl = 45\npolicy");
    assert_ne!(api_ttl, EXTRA_SERVICES, "the entry changed");
    let renamed = EXTRA_SERVICES.replace("name = \"api\"", "name = \"api2\"");
    let cases = [
        ("api's TTL", api_ttl.clone(), "", true),
        (
            "a record added",
            EXTRA_SERVICES.to_string(),
            "[[records]]\nname = \"new\"\ntype = \"A\"\ndata = \"192.0.2.200\"\n",
            false,
        ),
        ("api renamed", renamed, "", false),
    ];
    for (case, services, extra, shared) in cases {
        let next = config_read_after(&services, extra, Some(&first));
        let (after, afresh) = built_after_and_afresh(&previous, next, &HashMap::new());
        assert_eq!(
            after.table.shares_names_with(&previous.table),
            shared,
            "{case}"
        );
        assert_eq!(
            after.fast.shares_names_with(&previous.fast),
            shared,
            "{case}"
        );
        assert!(!afresh.table.shares_names_with(&previous.table), "{case}");
        assert_answers_alike(&after, &afresh);
    }
}

/// Generated queries get the same replies from both snapshots, on the
/// fast path and on the general path.
fn assert_answers_alike(after: &Snapshot, afresh: &Snapshot) {
    let mut cases = Cases(0xa_f7e5);
    let mut caches = [ThreadCaches::new(), ThreadCaches::new()];
    let mut answered = 0;
    for _ in 0..5_000 {
        let (request, source) = query(&mut cases, afresh);
        let transport = if cases.one_in(4) {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        // Each snapshot's fast reply (with the service and endpoints it
        // named) and general reply.
        let mut replies = |at: usize, snapshot: &Snapshot| {
            let mut out = Vec::new();
            let fast = answer_or_send_kept(
                &request,
                transport,
                source,
                snapshot,
                &mut caches[at],
                &mut out,
            )
            .map(|a| {
                let named = a.service.map(|(s, e)| (s, e.to_vec()));
                (
                    named,
                    Message::from_vec(&out).expect("the fast reply parses"),
                )
            });
            let general = general_answer(&request, transport, source, snapshot).expect("a reply");
            (fast, Message::from_vec(&general.wire).unwrap())
        };
        // Server cookies carry the time in seconds: a second may end
        // between the two snapshots' replies, so on a difference both are
        // asked again.
        let mut attempts = 0;
        let (from_after, from_afresh) = loop {
            attempts += 1;
            let both = (replies(0, after), replies(1, afresh));
            if both.0 == both.1 || attempts == 3 {
                break both;
            }
        };
        assert_eq!(from_after, from_afresh, "request {request:02x?}");
        answered += usize::from(from_after.0.is_some());
    }
    assert!(
        answered > 1_500,
        "the fast path answered {answered} of 5000"
    );
}
