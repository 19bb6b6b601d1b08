use super::*;

mod defaults;
mod dnssec;
mod incremental;
mod messages;
mod operator;

const MINIMAL: &str = r#"
[domain]
name = "gslb.example."

[[domain.nameservers]]
name = "ns1"
addresses = ["192.0.2.53"]

[[zones]]
name = "us-east"
latitude = 38.9
longitude = -77.4

[[services]]
name = "www"

[[services.endpoints]]
zone = "us-east"
addresses = ["192.0.2.10"]
"#;

/// The ordinary read; every case also goes through the read a start-up or
/// reload does (`Config::parse_after`), which must agree word for word.
fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let path = Path::new("test.toml");
    let fresh = Config::parse(text, path).map_err(|e| e.problems().to_vec());
    let cut = Config::parse_after(text, path, None).map_err(|e| e.problems().to_vec());
    incremental::assert_same(&fresh, &cut, text);
    fresh
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(p) => p,
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let config = parse(MINIMAL).expect("minimal config is valid");
    assert_eq!(config.domain.name.to_string(), "gslb.example.");
    assert_eq!(config.server.dns, vec!["127.0.0.1:5300".parse().unwrap()]);
    assert_eq!(config.server.udp_payload_max, 1232);
    assert_eq!(config.domain.soa.mname.to_string(), "ns1.gslb.example.");
    assert_eq!(
        config.domain.soa.rname.to_string(),
        "hostmaster.gslb.example."
    );
    assert_eq!(config.services[0].name.to_string(), "www.gslb.example.");
    assert_eq!(config.services[0].ttl, 30);
    let check = &config.services[0].endpoints[0].check;
    assert_eq!(
        (check.kind, check.port, check.path.as_str()),
        (CheckKind::Http, 80, "/")
    );
    assert_eq!((check.rise, check.fall), (2, 2));
}

#[test]
fn shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/example.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.zones.len(), 3);
    assert_eq!(config.services.len(), 1);
    assert_eq!(config.services[0].endpoints.len(), 3);
}

#[test]
fn unknown_keys_are_all_reported_with_their_position() {
    let text = MINIMAL
        .replace("latitude = 38.9", "latitude = 38.9\nlattitude = 1")
        .replace("[domain]\n", "[domain]\nttll = 5\n");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(
        p[0].message.contains("unknown key `ttll` in [domain]"),
        "{p:#?}"
    );
    assert_eq!((p[0].line, p[0].column), (3, 1));
    assert!(p[1].message.contains("`lattitude`"), "{p:#?}");
    assert!(p[1].message.contains("[zones[0]]"), "{p:#?}");
    let line = text
        .lines()
        .position(|l| l.starts_with("lattitude"))
        .unwrap()
        + 1;
    assert_eq!(p[1].line, line);
}

#[test]
fn three_different_mistakes_are_reported_together() {
    let text = MINIMAL
        .replace("zone = \"us-east\"", "zone = \"us-esat\"")
        .replace(
            "addresses = [\"192.0.2.53\"]",
            "addresses = [\"192.0.2.300\"]",
        )
        .replace("bogus", "")
        + "\n[[records]]\nname = \"www.other.example.\"\ntype = \"A\"\ndata = \"192.0.2.1\"\n";
    let p = problems(&text);
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(
        p.iter()
            .any(|p| p.message.contains("`192.0.2.300` is not an IP address"))
    );
    assert!(p.iter().any(
        |p| p.message.contains("zone `us-esat`, which is not defined")
            && p.hint.as_deref().unwrap().contains("us-east")
    ));
    assert!(p.iter().any(|p| p.message.contains("outside the domain")));
    // Sorted by position in the file, each with a real line.
    assert!(p.windows(2).all(|w| w[0].line <= w[1].line));
    for problem in &p {
        let line = text.lines().nth(problem.line - 1).unwrap();
        assert!(
            !line.trim().is_empty(),
            "{problem:?} points at an empty line"
        );
    }
}

#[test]
fn syntax_error_has_a_position() {
    let p = problems("[domain]\nname = \"gslb.example.\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].message.starts_with("invalid TOML"), "{p:?}");
    assert_eq!(p[0].line, 2);
}

#[test]
fn wrong_type_has_a_position() {
    let p = problems(&MINIMAL.replace("latitude = 38.9", "latitude = \"north\""));
    assert_eq!(p.len(), 1, "{p:?}");
    let line = MINIMAL
        .lines()
        .position(|l| l.starts_with("latitude"))
        .unwrap()
        + 1;
    assert_eq!(p[0].line, line, "{p:?}");
}

#[test]
fn duplicates_are_rejected() {
    let text = format!(
        "{MINIMAL}\n[[zones]]\nname = \"us-east\"\nlatitude = 1.0\nlongitude = 1.0\n\n[[services]]\nname = \"WWW\"\n[[services.endpoints]]\nzone = \"us-east\"\naddresses = [\"192.0.2.11\"]\n"
    );
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|p| p.message.contains("zone `us-east` is defined twice")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|p| p.message.contains("is defined twice") && p.message.contains("service")),
        "{p:#?}"
    );
}

#[test]
fn cname_with_other_data_is_rejected() {
    let text = format!(
        "{MINIMAL}\n[[records]]\nname = \"x\"\ntype = \"CNAME\"\ndata = \"www\"\n[[records]]\nname = \"x\"\ntype = \"TXT\"\ndata = \"hi\"\n"
    );
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|p| p.message.contains("has a CNAME and other records")),
        "{p:#?}"
    );
}

#[test]
fn service_clashing_with_static_address_is_rejected() {
    let text =
        format!("{MINIMAL}\n[[records]]\nname = \"www\"\ntype = \"A\"\ndata = \"192.0.2.1\"\n");
    let p = problems(&text);
    assert!(p.iter().any(|p| p.message.contains("clashes")), "{p:#?}");
}

#[test]
fn record_data_is_parsed_and_relative_names_completed() {
    let text = format!(
        "{MINIMAL}\n[[records]]\nname = \"@\"\ntype = \"mx\"\ndata = [\"10 mail\", \"20 mx.elsewhere.example.\"]\n"
    );
    let config = parse(&text).expect("valid");
    let targets: Vec<String> = config
        .records
        .iter()
        .map(|r| match &r.data {
            RData::MX(mx) => mx.exchange.to_string(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(targets, ["mail.gslb.example.", "mx.elsewhere.example."]);
}

#[test]
fn bad_record_data_names_the_type_and_hints() {
    let text = format!("{MINIMAL}\n[[records]]\nname = \"@\"\ntype = \"MX\"\ndata = \"mail\"\n");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].message.contains("not valid MX data"), "{p:#?}");
    assert!(
        p[0].hint.as_deref().unwrap().contains("preference"),
        "{p:#?}"
    );
}

#[test]
fn glue_is_required_for_nameservers_inside_the_domain() {
    let p = problems(&MINIMAL.replace("addresses = [\"192.0.2.53\"]", ""));
    assert!(p[0].message.contains("has no addresses"), "{p:#?}");
}

#[test]
fn records_below_a_delegation_must_be_glue() {
    let text = format!(
        "{MINIMAL}\n[[records]]\nname = \"sub\"\ntype = \"NS\"\ndata = \"ns.sub\"\n[[records]]\nname = \"ns.sub\"\ntype = \"A\"\ndata = \"192.0.2.7\"\n[[records]]\nname = \"x.sub\"\ntype = \"TXT\"\ndata = \"hidden\"\n"
    );
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].message.contains("below the delegation"), "{p:#?}");
}

#[test]
fn durations_parse_with_units() {
    use super::validate::parse_duration;
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
    assert_eq!(parse_duration("3"), None, "a duration needs a unit");
    assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
    assert_eq!(parse_duration("fast"), None);
    assert_eq!(parse_duration("2 fortnights"), None);
}

#[test]
fn check_timeout_longer_than_interval_is_rejected() {
    let text = MINIMAL.replace(
        "[[services.endpoints]]",
        "[services.check]\nkind = \"http\"\ninterval = \"1s\"\ntimeout = \"2s\"\n\n[[services.endpoints]]",
    );
    let p = problems(&text);
    assert!(p[0].message.contains("timeout is longer"), "{p:#?}");
}

#[test]
fn server_counts_and_choices_are_checked_with_their_position() {
    let text = format!(
        "[server]\ntcp_max_connections_per_source = 0\nprobe_metrics = \"host\"\n{MINIMAL}"
    );
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(
        p[0].message
            .contains("tcp_max_connections_per_source must be at least 1")
    );
    assert_eq!(p[0].line, 2);
    assert!(
        p[1].message.contains("probe_metrics \"host\" is not known"),
        "{p:#?}"
    );
    assert_eq!(p[1].line, 3);
    let config = parse(&format!(
        "[server]\nprobe_metrics = \"zone\"\nfast_path = false\n{MINIMAL}"
    ))
    .unwrap();
    assert!(config.server.probe_metrics_by_zone);
    assert!(!config.server.fast_path);
    let defaults = parse(MINIMAL).unwrap().server;
    assert!(defaults.fast_path && !defaults.probe_metrics_by_zone);
    assert_eq!(defaults.tcp_max_connections_per_source, 64);
}

#[test]
fn a_zone_may_hold_several_named_endpoints_of_a_service() {
    let text = MINIMAL.replace(
        "zone = \"us-east\"\naddresses = [\"192.0.2.10\"]\n",
        "zone = \"us-east\"\nname = \"blue\"\nweight = 90\naddresses = [\"192.0.2.10\"]\n\
         [[services.endpoints]]\nzone = \"us-east\"\nname = \"green\"\nweight = 10\n\
         addresses = [\"192.0.2.11\"]\n",
    );
    let config = parse(&text).expect("blue/green is valid");
    let svc = &config.services[0];
    assert_eq!(svc.endpoints.len(), 2);
    assert_eq!(svc.endpoints[1].name.as_deref(), Some("green"));
    assert_eq!(svc.endpoints[1].weight, 10);
    assert!(svc.is_split(0) && svc.has_splits());
    assert_eq!(svc.endpoint_index(0, Some("green")), Some(1));
    assert_eq!(
        svc.endpoint_index(0, None),
        None,
        "two in the zone: say which"
    );
    assert_eq!(svc.endpoints[1].label(&config.zones), "us-east/green");
    // A lone endpoint needs no name, and may have one.
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.services[0].endpoints[0].name, None);
    assert!(!config.services[0].has_splits());
    assert_eq!(config.services[0].endpoint_index(0, None), Some(0));
    let named = parse(&MINIMAL.replace(
        "zone = \"us-east\"\n",
        "zone = \"us-east\"\nname = \"blue\"\n",
    ))
    .unwrap();
    assert_eq!(
        named.services[0].endpoints[0].label(&named.zones),
        "us-east/blue"
    );
}
