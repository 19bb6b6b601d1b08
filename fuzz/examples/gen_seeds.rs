//! Writes the seed corpora: real queries built with hickory-proto (plus a
//! few hand-made malformed packets) into `corpus/request/`, and config
//! texts (the shipped example, the fuzz snapshot's config, variants of
//! each policy and some broken ones) into `corpus/config/`. Every seed is
//! run through the same checks as the fuzz targets before it is written.
//!
//! Run from `fuzz/`: `cargo run --example gen_seeds` (stable is enough).
//! Files are named `seed-*`; existing seeds are overwritten, entries the
//! fuzzer found (named by hash) are left alone.

use std::net::IpAddr;
use std::path::Path;

use hickory_proto::op::{Edns, Message, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use meridian_fuzz::{big_txt_record, check_config_text, check_request, project_root};

fn query(name: &str, qtype: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.id = 0x1234;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    message
}

fn edns(payload: u16) -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    edns
}

fn with_edns(mut message: Message, edns: Edns) -> Message {
    message.set_edns(edns);
    message
}

fn ecs(name: &str, addr: &str, source: u8, scope: u8) -> Message {
    let mut e = edns(1232);
    let addr: IpAddr = addr.parse().unwrap();
    e.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(addr, source, scope)));
    with_edns(query(name, RecordType::A), e)
}

fn request_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Message)> = Vec::new();
    let mut add = |label: &str, m: Message| seeds.push((label.to_string(), m));
    let d = "gslb.example.";
    // Every kind of name the snapshot has, plain and with EDNS.
    let names = [
        ("apex", d.to_string()),
        ("www", format!("www.{d}")),
        ("mail", format!("mail.{d}")),
        ("docs", format!("docs.{d}")),
        ("chain1", format!("chain1.{d}")),
        ("loop-a", format!("loop-a.{d}")),
        ("self", format!("self.{d}")),
        ("away", format!("away.{d}")),
        ("dangling", format!("dangling.{d}")),
        ("sub", format!("sub.{d}")),
        ("below-sub", format!("www.sub.{d}")),
        ("ns1-sub", format!("ns1.sub.{d}")),
        ("geo", format!("geo.{d}")),
        ("failover", format!("failover.{d}")),
        ("weighted", format!("weighted.{d}")),
        ("blue-green", format!("bg.{d}")),
        ("latency", format!("latency.{d}")),
        ("all-many", format!("all.many.{d}")),
        ("ent", format!("c.deep.{d}")),
        ("deep", format!("a.b.c.deep.{d}")),
        ("wild", format!("x.wild.{d}")),
        ("wild-deep", format!("a.b.wild.{d}")),
        ("wild-real", format!("x.real.wild.{d}")),
        ("wild-alias", format!("x.wild-alias.{d}")),
        ("wild-pool", format!("host.pool.{d}")),
        ("wild-self", format!("*.pool.{d}")),
        ("missing", format!("missing.{d}")),
        ("outside", "example.com.".to_string()),
        ("root", ".".to_string()),
        ("case", "WwW.GsLb.ExAmPlE.".to_string()),
    ];
    for (label, name) in &names {
        add(&format!("{label}-a"), query(name, RecordType::A));
        add(
            &format!("{label}-aaaa-edns"),
            with_edns(query(name, RecordType::AAAA), edns(1232)),
        );
    }
    for qtype in [
        RecordType::SOA,
        RecordType::NS,
        RecordType::MX,
        RecordType::TXT,
        RecordType::CAA,
        RecordType::ANY,
        RecordType::SRV,
        RecordType::PTR,
        RecordType::DS,
        RecordType::DNSKEY,
        RecordType::AXFR,
        RecordType::IXFR,
        RecordType::OPT,
        RecordType::Unknown(65280),
    ] {
        add(&format!("apex-{qtype}"), query(d, qtype));
    }
    add("sip-srv", query(&format!("_sip._udp.{d}"), RecordType::SRV));
    add("ptr", query(&format!("ptr.{d}"), RecordType::PTR));
    add("sub-ds", query(&format!("sub.{d}"), RecordType::DS));
    add("sub-ns", query(&format!("sub.{d}"), RecordType::NS));
    add("www-any", query(&format!("www.{d}"), RecordType::ANY));
    add("www-cname", query(&format!("docs.{d}"), RecordType::CNAME));
    // Truncation: the big TXT set over plain UDP, small and large EDNS.
    add("big-txt", query(&format!("big.{d}"), RecordType::TXT));
    for payload in [0, 512, 1232, 4096, 65535] {
        add(
            &format!("big-txt-edns{payload}"),
            with_edns(query(&format!("big.{d}"), RecordType::TXT), edns(payload)),
        );
    }
    // EDNS: DO bit, version 1 (BADVERS), an unknown option, NSID.
    let mut e = edns(1232);
    e.set_dnssec_ok(true);
    add(
        "do-bit",
        with_edns(query(&format!("www.{d}"), RecordType::A), e),
    );
    let mut e = edns(1232);
    e.set_version(1);
    add(
        "badvers",
        with_edns(query(&format!("www.{d}"), RecordType::A), e),
    );
    let mut e = edns(1232);
    e.options_mut()
        .insert(EdnsOption::Unknown(65001, vec![1, 2, 3, 4]));
    e.options_mut()
        .insert(EdnsOption::Unknown(u16::from(EdnsCode::NSID), vec![]));
    add(
        "edns-unknown-opt",
        with_edns(query(&format!("mail.{d}"), RecordType::A), e),
    );
    // DNS cookies: client only, client plus a server cookie we did not
    // mint, and the wrong length (FORMERR).
    for (label, cookie) in [
        ("cookie-client", vec![1u8, 2, 3, 4, 5, 6, 7, 8]),
        ("cookie-server", (1u8..=24).collect::<Vec<u8>>()),
        ("cookie-short", vec![1u8, 2, 3]),
        ("cookie-long", vec![7u8; 41]),
    ] {
        let mut e = edns(1232);
        e.options_mut()
            .insert(EdnsOption::Unknown(u16::from(EdnsCode::Cookie), cookie));
        add(
            label,
            with_edns(query(&format!("www.{d}"), RecordType::A), e),
        );
    }
    // ECS: located in each region, both families, prefix 0, and invalid.
    add("ecs-us", ecs(&format!("www.{d}"), "8.8.8.0", 24, 0));
    add("ecs-eu", ecs(&format!("www.{d}"), "193.0.0.0", 24, 0));
    add("ecs-ap", ecs(&format!("geo.{d}"), "202.12.27.0", 24, 0));
    add("ecs-v6", ecs(&format!("www.{d}"), "2001:67c:2e8::", 48, 0));
    add("ecs-zero", ecs(&format!("www.{d}"), "0.0.0.0", 0, 0));
    add("ecs-cidr", ecs(&format!("www.{d}"), "10.1.2.0", 24, 0));
    add(
        "ecs-weighted",
        ecs(&format!("weighted.{d}"), "1.2.3.0", 24, 0),
    );
    add(
        "ecs-latency",
        ecs(&format!("latency.{d}"), "193.0.0.0", 24, 0),
    );
    add("ecs-scope", ecs(&format!("www.{d}"), "8.8.8.0", 24, 8));
    add("ecs-hostbits", ecs(&format!("www.{d}"), "8.8.8.8", 16, 0));
    // Other classes and opcodes.
    let mut m = query("version.bind.", RecordType::TXT);
    m.queries[0].set_query_class(DNSClass::CH);
    add("chaos-version", m);
    let mut m = query(&format!("www.{d}"), RecordType::A);
    m.queries[0].set_query_class(DNSClass::ANY);
    add("class-any", m);
    for (label, op) in [
        ("notify", OpCode::Notify),
        ("update", OpCode::Update),
        ("status", OpCode::Status),
        ("iquery", OpCode::Unknown(1)),
    ] {
        let mut m = query(d, RecordType::SOA);
        m.metadata.op_code = op;
        add(&format!("opcode-{label}"), m);
    }
    let mut m = Message::query();
    m.metadata.id = 7;
    add("no-question", m);
    let mut m = query(&format!("www.{d}"), RecordType::A);
    m.add_query(Query::query(Name::from_ascii(d).unwrap(), RecordType::SOA));
    add("two-questions", m);
    let mut m = query(&format!("www.{d}"), RecordType::A);
    m.metadata.checking_disabled = true;
    m.metadata.authentic_data = true;
    add("cd-ad", m);

    let mut out: Vec<(String, Vec<u8>)> = seeds
        .into_iter()
        .map(|(label, m)| (label, m.to_vec().expect("seed encodes")))
        .collect();

    // Hand-made malformed packets.
    let header = |flags: [u8; 2], counts: [u16; 4]| -> Vec<u8> {
        let mut h = vec![0xab, 0xcd, flags[0], flags[1]];
        for c in counts {
            h.extend_from_slice(&c.to_be_bytes());
        }
        h
    };
    let www = query(&format!("www.{d}"), RecordType::A).to_vec().unwrap();
    out.push(("short-header".into(), www[..7].to_vec()));
    out.push(("header-only".into(), header([1, 0], [0, 0, 0, 0])));
    out.push(("truncated-question".into(), www[..www.len() - 3].to_vec()));
    let mut response = www.clone();
    response[2] |= 0x80;
    out.push(("response-bit".into(), response));
    let mut loop_q = header([1, 0], [1, 0, 0, 0]);
    loop_q.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    out.push(("compression-self-loop".into(), loop_q));
    let mut loop2 = header([1, 0], [1, 0, 0, 0]);
    loop2.extend_from_slice(&[1, b'a', 0xc0, 12, 0, 1, 0, 1]);
    out.push(("compression-loop".into(), loop2));
    let mut forward = header([1, 0], [1, 0, 0, 0]);
    forward.extend_from_slice(&[0xc0, 20, 0, 1, 0, 1, 0, 0, 3, b'w', b'w', b'w', 0]);
    out.push(("compression-forward".into(), forward));
    let mut huge = header([1, 0], [0xffff, 0xffff, 0xffff, 0xffff]);
    huge.extend_from_slice(&www[12..]);
    out.push(("huge-counts".into(), huge));
    let mut extra = www.clone();
    extra[11] = 1; // ARCOUNT 1 with no record.
    out.push(("missing-additional".into(), extra));
    let mut trailing = www.clone();
    trailing.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    out.push(("trailing-bytes".into(), trailing));
    let mut long_label = header([1, 0], [1, 0, 0, 0]);
    long_label.push(63);
    long_label.extend(std::iter::repeat_n(b'x', 63));
    long_label.extend_from_slice(&[0, 0, 1, 0, 1]);
    out.push(("long-label".into(), long_label));
    let mut two_opt = with_edns(query(&format!("www.{d}"), RecordType::A), edns(1232))
        .to_vec()
        .unwrap();
    // Append a second OPT record (root name, type 41) and bump ARCOUNT.
    two_opt.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    two_opt[11] = 2;
    out.push(("two-opt".into(), two_opt));
    // ECS with an IPv4 source prefix of 33 (hickory will not encode it).
    let mut ecs33 = www.clone();
    ecs33[11] = 1;
    ecs33.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 13]);
    ecs33.extend_from_slice(&[0, 8, 0, 9, 0, 1, 33, 0, 8, 8, 8, 8, 0x80]);
    out.push(("ecs-v4-33".into(), ecs33));
    // ECS with an unknown address family.
    let mut family = www.clone();
    family[11] = 1;
    family.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 11]);
    family.extend_from_slice(&[0, 8, 0, 7, 0, 9, 24, 0, 1, 2, 3]);
    out.push(("ecs-family-9".into(), family));
    out
}

fn config_seeds() -> Vec<(String, String)> {
    let root = project_root();
    let example = std::fs::read_to_string(root.join("zones/example.toml")).unwrap();
    let mut seeds = vec![
        ("example".to_string(), example.clone()),
        (
            "fuzz-request".to_string(),
            meridian_fuzz::request_config_text(),
        ),
    ];
    let minimal = r#"[domain]
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
    seeds.push(("minimal".into(), minimal.into()));
    for (label, from, to) in [
        ("policy-all", "policy = \"nearest\"", "policy = \"all\""),
        (
            "policy-failover",
            "policy = \"nearest\"",
            "policy = \"failover\"\norder = [\"eu-west\", \"us-east\"]",
        ),
        (
            "policy-weighted",
            "policy = \"nearest\"",
            "policy = \"weighted\"\nanswers = 2",
        ),
        (
            "policy-latency",
            "policy = \"nearest\"",
            "policy = \"latency\"",
        ),
        (
            "policy-geo",
            "policy = \"nearest\"\nttl = 30",
            "policy = \"geo\"\n[services.geo]\ndefault = [\"us-east\"]\ncontinents = { EU = [\"eu-west\"] }\nregions = { \"US-CA\" = [\"us-east\"] }",
        ),
        (
            "blue-green",
            "[[services.endpoints]]\nzone = \"us-east\"\n",
            "[[services.endpoints]]\nzone = \"us-east\"\nname = \"green\"\nweight = 0\naddresses = [\"192.0.2.11\"]\n\n[[services.endpoints]]\nzone = \"us-east\"\nname = \"blue\"\n",
        ),
        (
            "fallback",
            "ttl = 30\n",
            "ttl = 30\nall_down = \"fallback\"\nfallback = [\"192.0.2.1\"]\n",
        ),
        (
            "http-check",
            "kind = \"none\"",
            "kind = \"https\"\npath = \"/health\"\nhost = \"lb.example\"\nexpect_status = \"200-299\"\nbody_contains = \"ok\"\ninsecure = true\ninterval = \"2s\"\ntimeout = \"500ms\"\nrise = 3\nfall = 2",
        ),
        ("tcp-check", "kind = \"none\"", "kind = \"tcp\"\nport = 443"),
        (
            "server-all-keys",
            "udp_payload_max = 1232",
            "udp_payload_max = 4096\nudp_sockets = 2\ntcp_idle_timeout = \"5s\"\ntcp_max_connections = 64\nprobe_concurrency = 16\nadmin_token = \"0123456789abcdef0123\"\ncookie_secret = \"00112233445566778899aabbccddeeff\"\nrrl_responses_per_second = 20\nrrl_slip = 3\ntcp_max_queries = 100\ntcp_read_timeout = \"2s\"",
        ),
        (
            "routing-cidr",
            "[[zones]]",
            "[routing]\nthis_zone = \"us-east\"\nlatency_margin = 0.3\nlatency_margin_ms = 2\nlatency_max_age = \"1m\"\n\n[[cidr_rules]]\nnetworks = [\"10.0.0.0/8\"]\nzones = [\"eu-west\"]\n\n[[zones]]",
        ),
        // Broken ones: unknown keys, wrong types, bad references, syntax.
        ("unknown-key", "ttl = 300", "ttll = 300"),
        ("wrong-type", "ttl = 300", "ttl = \"300\""),
        ("bad-zone-ref", "zone = \"eu-west\"", "zone = \"eu-wset\""),
        ("bad-address", "\"192.0.2.10\"", "\"192.0.2.300\""),
        ("bad-toml", "[domain]", "[domain"),
        ("duplicate-record", "name = \"mail\"", "name = \"docs\""),
        ("unicode", "name = \"us-east\"", "name = \"ús-éast-東京\""),
        (
            "out-of-domain",
            "data = \"www\"",
            "data = \"www.example.net.\"",
        ),
        ("apex-cname", "name = \"docs\"", "name = \"@\""),
        (
            "bad-cookie-secret",
            "udp_payload_max = 1232",
            "cookie_secret = \"xyz\"\nrrl_slip = -1",
        ),
    ] {
        assert!(
            example.contains(from),
            "{label}: {from:?} not in the example"
        );
        seeds.push((label.into(), example.replacen(from, to, 1)));
    }
    seeds.push(("big-txt".into(), format!("{example}\n{}", big_txt_record())));
    seeds.push(("empty".into(), String::new()));
    seeds.push(("crlf".into(), example.replace('\n', "\r\n")));
    seeds
}

fn write(dir: &Path, label: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("seed-{label}")), bytes).unwrap();
}

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let requests = request_seeds();
    for (label, bytes) in &requests {
        check_request(bytes);
        write(&corpus.join("request"), label, bytes);
    }
    let configs = config_seeds();
    for (label, text) in &configs {
        check_config_text(text);
        write(&corpus.join("config"), label, text.as_bytes());
    }
    println!(
        "wrote {} request and {} config seeds under {}",
        requests.len(),
        configs.len(),
        corpus.display()
    );
}
