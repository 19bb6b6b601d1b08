//! The current-state gauges of `/metrics`: what the snapshot being served
//! says now (an address up, drained, serving; a service all down or
//! failing open; the GeoIP files' age), read at scrape time so they cannot
//! drift from what DNS answers. Here rather than in `metrics` because they
//! read the snapshot, which the metrics the answer path counts must not.

use std::fmt::Write;

use crate::metrics::{AddressLabels, escape, header, labels};

/// Current state, read from the snapshot being served at scrape time (so
/// it cannot drift from what DNS answers): per endpoint address whether it
/// is up, drained and serving; per service whether every endpoint is out
/// and whether it is failing open; the GeoIP files' build times.
pub(super) fn render_state(out: &mut String, snapshot: &crate::snapshot::Snapshot) {
    let config = &snapshot.config;
    let mut rows: Vec<(String, [u8; 3])> = Vec::new();
    let mut services: Vec<(String, u8, u8)> = Vec::new();
    for (s, service) in config.services.iter().enumerate() {
        let name = service.name.to_string();
        let views = snapshot.health.endpoints.get(s);
        let mut any_serving = false;
        for (e, endpoint) in service.endpoints.iter().enumerate() {
            let view = views.and_then(|v| v.get(e));
            let drained = view.is_some_and(|v| v.is_drained);
            let serving = view.is_some_and(|v| v.is_serving());
            any_serving |= serving;
            for (a, address) in endpoint.addresses.iter().enumerate() {
                let up = view
                    .and_then(|v| v.addresses.get(a))
                    .is_some_and(|o| o.is_usable());
                let l = labels(&AddressLabels {
                    service: name.clone(),
                    zone: config.zones[endpoint.zone].name.clone(),
                    address: address.to_string(),
                });
                rows.push((
                    l,
                    [u8::from(up), u8::from(drained), u8::from(serving && up)],
                ));
            }
        }
        let fail_open = !any_serving && service.all_down == crate::config::AllDown::FailOpen;
        services.push((name, u8::from(!any_serving), u8::from(fail_open)));
    }
    rows.sort();
    services.sort();
    let families = [
        (
            "meridian_endpoint_address_up",
            "1 while the address's health checks pass (as decided; drains aside).",
        ),
        (
            "meridian_endpoint_address_drained",
            "1 while an operator drain (of the zone or this endpoint) holds the address out.",
        ),
        (
            "meridian_endpoint_address_serving",
            "1 while the address can be in answers: up, and its endpoint up and not drained.",
        ),
    ];
    for (i, (family, help)) in families.iter().enumerate() {
        header(out, family, "gauge", help);
        for (l, values) in &rows {
            let _ = writeln!(out, "{family}{{{l}}} {}", values[i]);
        }
    }
    header(
        out,
        "meridian_service_all_down",
        "gauge",
        "1 while no endpoint of the service is serving (down or drained everywhere).",
    );
    for (service, all_down, _) in &services {
        let _ = writeln!(
            out,
            "meridian_service_all_down{{service=\"{}\"}} {all_down}",
            escape(service)
        );
    }
    header(
        out,
        "meridian_service_failing_open",
        "gauge",
        "1 while the service is all down and answers with every endpoint (all_down = \"fail-open\").",
    );
    for (service, _, fail_open) in &services {
        let _ = writeln!(
            out,
            "meridian_service_failing_open{{service=\"{}\"}} {fail_open}",
            escape(service)
        );
    }
    header(
        out,
        "meridian_snapshots_live",
        "gauge",
        "Snapshots in memory: 1 served, 2 briefly during a swap; more for long means a replaced one is held.",
    );
    let _ = writeln!(
        out,
        "meridian_snapshots_live {}",
        crate::snapshot::live_snapshots()
    );
    header(
        out,
        "meridian_geoip_build_timestamp_seconds",
        "gauge",
        "Unix time the GeoIP database file being used was built, per file.",
    );
    if let Some(geo) = &snapshot.router.geo {
        for (path, built) in geo.build_epochs() {
            let _ = writeln!(
                out,
                "meridian_geoip_build_timestamp_seconds{{file=\"{}\"}} {built}",
                escape(&path.display().to_string())
            );
        }
    }
}
