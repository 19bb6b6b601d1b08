//! The values a config gets for every key left out, as README.md documents
//! them. Written as literals, not read from `config::defaults`, so a slip in
//! that table fails here.

use std::time::Duration;

use super::{MINIMAL, parse};
use crate::config::{AllDown, CheckKind, Policy};

#[test]
fn every_default_is_the_documented_one() {
    let text = format!("{MINIMAL}\n[geoip]\nfiles = [\"geo.mmdb\"]\n");
    let config = parse(&text).expect("valid");

    let server = &config.server;
    assert_eq!(server.dns, ["127.0.0.1:5300".parse().unwrap()]);
    assert_eq!(server.admin, None);
    assert_eq!(server.udp_payload_max, 1232);
    assert_eq!(server.udp_sockets, 0);
    assert_eq!(server.tcp_idle_timeout, Duration::from_secs(10));
    assert_eq!(server.tcp_read_timeout, Duration::from_secs(5));
    assert_eq!(server.tcp_max_connections, 1024);
    assert_eq!(server.tcp_max_connections_per_source, 64);
    assert_eq!(server.tcp_max_queries, 100_000);
    assert_eq!(server.probe_concurrency, 512);
    assert_eq!(server.state_file, None);
    assert_eq!(server.admin_token, None);
    assert_eq!(server.cookie_secret, None);
    assert_eq!(server.rrl, None);
    assert!(server.fast_path);
    assert!(!server.probe_metrics_by_zone);
    let rrl = parse(&format!(
        "[server]\nrrl_responses_per_second = 100\n{MINIMAL}"
    ))
    .unwrap()
    .server
    .rrl
    .unwrap();
    assert_eq!((rrl.responses_per_second, rrl.slip), (100, 2));

    let domain = &config.domain;
    assert_eq!((domain.ttl, domain.service_ttl), (300, 30));
    let soa = &domain.soa;
    assert_eq!(soa.mname.to_string(), "ns1.gslb.example.");
    assert_eq!(soa.rname.to_string(), "hostmaster.gslb.example.");
    assert_eq!(
        (
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum,
            soa.ttl
        ),
        (1, 3600, 600, 604_800, 60, 3600)
    );
    let with_record = parse(&format!(
        "{MINIMAL}\n[[records]]\nname = \"x\"\ntype = \"TXT\"\ndata = \"hi\"\n"
    ))
    .unwrap();
    assert_eq!(with_record.records[0].ttl, 300);

    let service = &config.services[0];
    assert_eq!(service.policy, Policy::Nearest);
    assert_eq!(service.ttl, 30);
    assert_eq!(service.answers, 1);
    assert_eq!(service.all_down, AllDown::FailOpen);
    let endpoint = &service.endpoints[0];
    assert_eq!((endpoint.min_healthy, endpoint.weight), (1, 1));
    let check = &endpoint.check;
    assert_eq!(check.kind, CheckKind::Http);
    assert_eq!(check.port, 80);
    assert_eq!(check.path, "/");
    assert_eq!(check.host, None);
    assert_eq!(check.expect_status, 200..=399);
    assert_eq!(check.body_contains, None);
    assert!(!check.insecure);
    assert_eq!(check.interval, Duration::from_secs(1));
    assert_eq!(check.timeout, Duration::from_secs(1));
    assert_eq!((check.rise, check.fall), (2, 2));
    let port_of = |kind: &str| {
        parse(&format!("{MINIMAL}\n[services.check]\nkind = \"{kind}\"\n"))
            .unwrap()
            .services[0]
            .endpoints[0]
            .check
            .port
    };
    assert_eq!(port_of("https"), 443);
    assert_eq!(port_of("none"), 0);

    let geoip = config.geoip.as_ref().unwrap();
    assert_eq!(geoip.watch_interval, Duration::from_secs(5));
    let routing = &config.routing;
    assert_eq!(routing.this_zone, None);
    assert_eq!(routing.latency_margin, 0.2);
    assert_eq!(routing.latency_margin_ms, 5.0);
    assert_eq!(routing.latency_max_age, Duration::from_secs(600));
    assert_eq!(*routing, crate::config::RoutingSettings::default());
    assert!(config.cidr_rules.is_empty());
}
