//! What a new operator tripped over: each test here failed before its fix.

use super::{MINIMAL, parse, problems};

/// MINIMAL with its domain renamed to `lb.corp.test.` and `extra` appended.
fn corp(extra: &str) -> String {
    format!(
        "{}{extra}",
        MINIMAL.replace("name = \"gslb.example.\"", "name = \"lb.corp.test.\"")
    )
}

#[test]
fn a_mail_address_rname_is_not_relative_to_the_domain() {
    let text = corp("").replace(
        "[[domain.nameservers]]",
        "[domain.soa]\nrname = \"dns-team@corp.test\"\n\n[[domain.nameservers]]",
    );
    let config = parse(&text).expect("valid");
    assert_eq!(config.domain.soa.rname.to_ascii(), "dns-team.corp.test.");
}

#[test]
fn a_name_that_looks_fully_qualified_without_its_dot_is_warned_about() {
    let text = corp(
        "\n[[records]]\nname = \"www.lb.corp.test\"\ntype = \"CNAME\"\ndata = \"web.other.test\"\n",
    );
    let config = parse(&text).expect("a warning does not reject the config");
    let warnings = config.warnings.join("\n");
    let line = text
        .lines()
        .position(|l| l.contains("\"www.lb.corp.test\""))
        .unwrap()
        + 1;
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.starts_with(&format!("test.toml:{line}:"))
                && w.contains("warning: `www.lb.corp.test` has no trailing dot")
                && w.contains("means `www.lb.corp.test.lb.corp.test.`")
                && w.contains("end it with a dot, or write it relative: `www`")),
        "{warnings}"
    );
    assert!(
        warnings.contains("`web.other.test` has no trailing dot"),
        "a record target too: {warnings}"
    );
    let plain = parse(&corp(
        "\n[[records]]\nname = \"web\"\ntype = \"CNAME\"\ndata = \"web.other.test.\"\n",
    ))
    .unwrap();
    assert!(plain.warnings.is_empty(), "{:?}", plain.warnings);
}

#[test]
fn a_mistake_in_a_service_check_table_is_reported_once() {
    let text = MINIMAL.replace(
        "name = \"www\"\n",
        "name = \"www\"\ncheck = { kind = \"htp\" }\n",
    ) + "\n[[zones]]\nname = \"eu\"\nlatitude = 1.0\nlongitude = 1.0\n\n[[services.endpoints]]\nzone = \"eu\"\naddresses = [\"192.0.2.11\"]\n";
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].message.contains("check kind `htp`"), "{found:#?}");
}

#[test]
fn a_duration_without_a_unit_is_rejected() {
    let text = MINIMAL.replace(
        "name = \"www\"\n",
        "name = \"www\"\ncheck = { interval = \"5\" }\n",
    );
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].message, "`5` is not a duration");
    assert!(found[0].hint.as_deref().unwrap().contains("with a unit"));
}

#[test]
fn an_unknown_key_gets_a_did_you_mean() {
    let text = MINIMAL.replace("latitude = 38.9", "lattitude = 38.9\nlatitude = 38.9");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].hint.as_deref(), Some("did you mean `latitude`?"));
}

#[test]
fn a_state_file_in_a_missing_directory_is_an_error() {
    let text =
        format!("[server]\nstate_file = \"/nonexistent-meridian-dir/state.json\"\n{MINIMAL}");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0]
            .message
            .contains("state_file's directory /nonexistent-meridian-dir does not exist"),
        "{found:#?}"
    );
}

#[test]
fn secrets_come_from_files_or_the_environment() {
    let dir = std::env::temp_dir().join(format!("meridian-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("admin.token"), "0123456789abcdef0123\n").unwrap();
    std::fs::write(dir.join("cookie.hex"), "000102030405060708090a0b0c0d0e0f\n").unwrap();
    let text = format!(
        "[server]\nadmin_token_file = \"admin.token\"\ncookie_secret_file = \"cookie.hex\"\n{MINIMAL}"
    );
    let path = dir.join("meridian.toml");
    let config = crate::config::Config::parse(&text, &path).expect("valid");
    assert_eq!(
        config.server.admin_token.as_deref(),
        Some("0123456789abcdef0123")
    );
    assert_eq!(config.server.cookie_secret.unwrap()[15], 15);

    let env = |name: &str| match name {
        "MERIDIAN_ADMIN_TOKEN" => Some("from-the-environment-0001".to_string()),
        _ => None,
    };
    let config = config.with_env(env).unwrap();
    assert_eq!(
        config.server.admin_token.as_deref(),
        Some("from-the-environment-0001")
    );
    let short = |name: &str| (name == "MERIDIAN_COOKIE_SECRET").then(|| "abc".to_string());
    assert!(config.with_env(short).is_err());

    std::fs::remove_file(dir.join("admin.token")).unwrap();
    let err = crate::config::Config::parse(&text, &path).unwrap_err();
    assert!(
        err.to_string().contains("cannot read admin_token_file"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_cluster_example_is_valid_for_each_of_its_nodes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("zones/cluster.toml")).unwrap();
    // Its secrets and state live in /etc/meridian and /var/lib/meridian on
    // a node; here, in a directory of the test's own.
    let dir = std::env::temp_dir().join(format!("meridian-cluster-ex-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("admin.token"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("cluster.token"),
        "fedcba9876543210fedcba9876543210\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("cookie.secret"),
        "000102030405060708090a0b0c0d0e0f\n",
    )
    .unwrap();
    let text = text
        .replace("/etc/meridian/", &format!("{}/", dir.display()))
        .replace("/var/lib/meridian/", &format!("{}/", dir.display()));
    let config = crate::config::Config::parse(&text, &dir.join("meridian.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(
        config.domain.soa.rname.to_ascii(),
        "hostmaster.example.com."
    );
    assert_eq!(config.cluster.nodes.len(), 3);
    assert!(config.server.admin_token.is_some() && config.server.cookie_secret.is_some());
    for node in ["ns-us-east", "ns-eu-west", "ns-ap-south"] {
        config.clone().for_node(Some(node)).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_cname_that_answers_itself_is_warned_about() {
    let cname = |name: &str, data: &str| {
        format!("\n[[records]]\nname = \"{name}\"\ntype = \"CNAME\"\ndata = \"{data}\"\n")
    };
    let warned = |extra: &str| {
        let config = parse(&corp(extra)).expect("a warning does not reject the config");
        config.warnings.join("\n")
    };
    // A wildcard whose target it covers: `x.apps` is answered by `*.apps`
    // with a CNAME to `x.apps` again.
    let loop_below = warned(&cname("*.apps", "x.apps"));
    assert!(
        loop_below.contains("the CNAME `*.apps.lb.corp.test.` -> `x.apps.lb.corp.test.`")
            && loop_below.contains("covered by the wildcard itself"),
        "{loop_below}"
    );
    assert!(warned(&cname("self", "self")).contains("points at itself"));
    // Not loops: a target outside the wildcard, the wildcard's own parent,
    // a target that exists, and one under an existing name (an empty
    // non-terminal too) that the wildcard therefore does not cover.
    for fine in [
        cname("*.apps", "ingress.lb.corp.test."),
        cname("*.apps", "apps"),
        cname("*.apps", "x.apps")
            + "\n[[records]]\nname = \"x.apps\"\ntype = \"TXT\"\ndata = \"here\"\n",
        cname("*.apps", "a.team.apps")
            + "\n[[records]]\nname = \"b.team.apps\"\ntype = \"TXT\"\ndata = \"here\"\n",
    ] {
        let warnings = warned(&fine);
        assert!(!warnings.contains("CNAME"), "{fine}: {warnings}");
    }
}
