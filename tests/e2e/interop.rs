//! Interoperability with real DNS clients: BIND's `dig` and Knot's `kdig`
//! (Debian `bind9-dnsutils` and `knot-dnsutils`) against a running node.
//!
//! These tools parse replies independently of hickory-proto, so they catch
//! wire-format mistakes that a test using the same library on both ends
//! would not. When a tool is missing the test fails under CI (`CI=true`)
//! and is reported as SKIPPED otherwise (see `harness::require_tool`).

use std::path::PathBuf;
use std::process::Command;

use crate::harness::*;

/// Finds `tool` on PATH: see [`require_tool`] for what a missing tool does.
fn require(tool: &str, package: &str) -> Option<PathBuf> {
    require_tool(tool, package)
}

/// Runs a tool and returns its standard output; it must exit with 0.
fn run(tool: &PathBuf, args: &[String]) -> String {
    let output = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} {args:?} exited with {}:\n{stdout}\n{}",
        tool.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `dig` pointed at `node`, not recursing, one try, short timeout.
fn dig(dig: &PathBuf, node: &Node, extra: &[&str]) -> Dig {
    let mut args: Vec<String> = [
        "+norec",
        "+tries=1",
        "+time=2",
        "-p",
        &node.dns.port().to_string(),
        "@127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    Dig::parse(&run(dig, &args))
}

/// The parts of dig's output the tests look at.
#[derive(Debug, Default)]
struct Dig {
    text: String,
    status: String,
    flags: Vec<String>,
    answer_count: usize,
    authority_count: usize,
    /// The `; EDNS:` line, if the reply had an OPT.
    edns: Option<String>,
    /// "UDP" or "TCP", from the `;; SERVER:` line.
    transport: String,
    /// Records per section, each split into whitespace-separated fields.
    answer: Vec<Vec<String>>,
    authority: Vec<Vec<String>>,
    additional: Vec<Vec<String>>,
}

impl Dig {
    fn parse(text: &str) -> Dig {
        let mut dig = Dig {
            text: text.to_string(),
            ..Dig::default()
        };
        let mut section: Option<&str> = None;
        for line in text.lines() {
            if let Some(rest) = line.split_once("status: ").map(|(_, r)| r) {
                dig.status = rest.split(',').next().unwrap().trim().to_string();
            } else if let Some(rest) = line.strip_prefix(";; flags:") {
                let (flags, counts) = rest.split_once(';').expect("flags; counts");
                dig.flags = flags.split_whitespace().map(str::to_string).collect();
                let count = |label: &str| -> usize {
                    counts
                        .split(',')
                        .find_map(|c| c.trim().strip_prefix(label))
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or_else(|| panic!("no {label} count in {counts:?}"))
                };
                dig.answer_count = count("ANSWER:");
                dig.authority_count = count("AUTHORITY:");
            } else if line.starts_with("; EDNS:") {
                dig.edns = Some(line.to_string());
            } else if let Some(rest) = line.strip_prefix(";; SERVER:") {
                dig.transport = rest
                    .rsplit('(')
                    .next()
                    .unwrap()
                    .trim_end_matches(')')
                    .to_string();
            } else if line == ";; ANSWER SECTION:" {
                section = Some("answer");
            } else if line == ";; AUTHORITY SECTION:" {
                section = Some("authority");
            } else if line == ";; ADDITIONAL SECTION:" {
                section = Some("additional");
            } else if line.trim().is_empty() {
                section = None;
            } else if !line.starts_with(';')
                && let Some(name) = section
            {
                let fields = line.split_whitespace().map(str::to_string).collect();
                match name {
                    "answer" => dig.answer.push(fields),
                    "authority" => dig.authority.push(fields),
                    _ => dig.additional.push(fields),
                }
            }
        }
        dig
    }

    fn flags(&self) -> Vec<&str> {
        self.flags.iter().map(String::as_str).collect()
    }
}

fn fields(record: &[String]) -> Vec<&str> {
    record.iter().map(String::as_str).collect()
}

#[test]
fn dig_a_query_gets_an_authoritative_answer() {
    let Some(dig_bin) = require("dig", "bind9-dnsutils") else {
        return;
    };
    let node = Node::start(&all_policy_example());
    let reply = dig(&dig_bin, &node, &["www.gslb.example.", "A"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert_eq!(reply.flags(), ["qr", "aa"], "AA set, no RD, no RA");
    assert_eq!(reply.transport, "UDP");
    assert_eq!(reply.answer_count, 3);
    assert_eq!(reply.authority_count, 0);
    let mut answer: Vec<Vec<&str>> = reply.answer.iter().map(|r| fields(r)).collect();
    answer.sort();
    assert_eq!(
        answer,
        [
            ["www.gslb.example.", "30", "IN", "A", "192.0.2.10"],
            ["www.gslb.example.", "30", "IN", "A", "198.51.100.10"],
            ["www.gslb.example.", "30", "IN", "A", "203.0.113.10"],
        ]
    );
    // dig sends EDNS with a client cookie by default: the OPT comes back
    // with our payload size and the client cookie plus our server cookie.
    assert_eq!(
        reply.edns.as_deref(),
        Some("; EDNS: version: 0, flags:; udp: 1232")
    );
    let cookie = reply
        .text
        .lines()
        .find(|l| l.starts_with("; COOKIE: "))
        .unwrap_or_else(|| panic!("no cookie in the reply:\n{}", reply.text));
    // 8 bytes of client cookie and 16 of server cookie, in hex.
    let hex = cookie["; COOKIE: ".len()..]
        .split_whitespace()
        .next()
        .unwrap();
    assert_eq!(hex.len(), 48, "{cookie}");
    assert!(
        hex[16..].starts_with("01000000"),
        "an RFC 9018 server cookie: {cookie}"
    );
}

/// dig remembers nothing between runs, but it can send a server cookie it
/// was given (+cookie=...): the second query's cookie must be recognised,
/// and a forged one must not be. "Recognised" is what a valid cookie buys:
/// under a rate limit of 1 response a second, with every response over it
/// slipped (an empty TC=1 reply), queries carrying our server cookie are
/// all answered and queries carrying a forged one are mostly slipped.
#[test]
fn dig_returns_our_server_cookie_and_it_is_accepted() {
    let Some(dig_bin) = require("dig", "bind9-dnsutils") else {
        return;
    };
    let node = Node::start(&all_policy_example().replace(
        "[server]\n",
        "[server]\nrrl_responses_per_second = 1\nrrl_slip = 1\n",
    ));
    let first = dig(
        &dig_bin,
        &node,
        &["+cookie=0011223344556677", "mail.gslb.example.", "A"],
    );
    let line = first
        .text
        .lines()
        .find(|l| l.starts_with("; COOKIE: "))
        .unwrap_or_else(|| panic!("no cookie in the reply:\n{}", first.text))
        .to_string();
    let full = line["; COOKIE: ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(full.starts_with("0011223344556677"), "{line}");
    assert_eq!(full.len(), 48, "{line}");
    let option = format!("+cookie={full}");
    let second = dig(&dig_bin, &node, &[&option, "mail.gslb.example.", "A"]);
    assert_eq!(second.status, "NOERROR", "{}", second.text);
    assert_eq!(second.answer.len(), 1);
    assert!(
        second.text.contains("; COOKIE: 0011223344556677"),
        "{}",
        second.text
    );

    // 20 queries in one dig run with our server cookie: none is limited.
    let replies = dig_batch(&dig_bin, &node, &option, 20);
    let slipped = replies.iter().filter(|r| r.flags().contains(&"tc")).count();
    assert_eq!(replies.len(), 20, "every query was answered");
    assert_eq!(
        slipped, 0,
        "a valid server cookie exempts from rate limiting"
    );
    assert!(replies.iter().all(|r| r.answer.len() == 1));

    // The same with the server cookie's last byte changed: limited.
    let mut forged = full.clone();
    let last = if forged.ends_with('0') { "1" } else { "0" };
    forged.replace_range(47.., last);
    let start = std::time::Instant::now();
    let replies = dig_batch(&dig_bin, &node, &format!("+cookie={forged}"), 20);
    let elapsed = start.elapsed();
    let slipped = replies.iter().filter(|r| r.flags().contains(&"tc")).count();
    // Each of the node's two UDP threads may hold one token when the batch
    // starts and refills one a second: at most this many are answered.
    let allowed = 2 * (2 + elapsed.as_secs() as usize);
    assert!(allowed < 20, "the batch took {elapsed:?}: too slow to tell");
    assert!(
        slipped >= 20 - allowed,
        "a forged server cookie is no exemption: {slipped} of {} slipped in {elapsed:?}",
        replies.len()
    );
}

/// `n` queries for mail's A in one dig run (`-f`, batch mode), each with
/// `cookie` and `+ignore` (a TC=1 reply is taken as it is); the replies.
fn dig_batch(dig_bin: &PathBuf, node: &Node, cookie: &str, n: usize) -> Vec<Dig> {
    let dir = private_dir();
    let batch = dir.join("batch");
    std::fs::write(&batch, "mail.gslb.example. A\n".repeat(n)).unwrap();
    let port = node.dns.port().to_string();
    let args: Vec<String> = [
        "+norec",
        "+tries=1",
        "+time=2",
        "+ignore",
        cookie,
        "-p",
        &port,
        "@127.0.0.1",
        "-f",
        batch.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let text = run(dig_bin, &args);
    std::fs::remove_dir_all(dir).unwrap();
    // Each reply's output starts with dig's `; <<>> DiG` banner.
    let replies: Vec<Dig> = text
        .split("; <<>> DiG")
        .filter(|chunk| chunk.contains(";; flags:"))
        .map(Dig::parse)
        .collect();
    assert!(replies.iter().all(|r| r.status == "NOERROR"), "{text}");
    replies
}

#[test]
fn dig_with_recursion_desired_gets_rd_back_and_no_ra() {
    let Some(dig_bin) = require("dig", "bind9-dnsutils") else {
        return;
    };
    let node = Node::start(&all_policy_example());
    // `+rec` after the default `+norec` turns RD back on.
    let reply = dig(&dig_bin, &node, &["+rec", "mail.gslb.example.", "A"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert_eq!(reply.flags(), ["qr", "aa", "rd"], "RD copied, RA not set");
    assert!(
        reply
            .text
            .contains("WARNING: recursion requested but not available"),
        "{}",
        reply.text
    );
    assert_eq!(
        fields(&reply.answer[0]),
        ["mail.gslb.example.", "300", "IN", "A", "192.0.2.25"]
    );
}

#[test]
fn dig_nxdomain_carries_the_soa() {
    let Some(dig_bin) = require("dig", "bind9-dnsutils") else {
        return;
    };
    let node = Node::start(&all_policy_example());
    let reply = dig(&dig_bin, &node, &["nope.gslb.example.", "A"]);
    assert_eq!(reply.status, "NXDOMAIN", "{}", reply.text);
    assert_eq!(reply.flags(), ["qr", "aa"]);
    assert_eq!(reply.answer_count, 0);
    assert_eq!(reply.authority_count, 1);
    assert_eq!(
        fields(&reply.authority[0]),
        [
            "gslb.example.",
            "60",
            "IN",
            "SOA",
            "ns-us-east.gslb.example.",
            "hostmaster.gslb.example.",
            "2026112301",
            "3600",
            "600",
            "604800",
            "60",
        ]
    );

    // NODATA: NOERROR, the same SOA, nothing in the answer.
    let reply = dig(&dig_bin, &node, &["www.gslb.example.", "MX"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert_eq!(reply.flags(), ["qr", "aa"]);
    assert_eq!(reply.answer_count, 0);
    assert_eq!(reply.authority.len(), 1);
    assert_eq!(reply.authority[0][1], "60");
    assert_eq!(reply.authority[0][3], "SOA");

    // Outside the domain: REFUSED, not authoritative.
    let reply = dig(&dig_bin, &node, &["example.com.", "A"]);
    assert_eq!(reply.status, "REFUSED", "{}", reply.text);
    assert_eq!(reply.flags(), ["qr"]);
}

#[test]
fn dig_over_tcp_gets_the_same_answer() {
    let Some(dig_bin) = require("dig", "bind9-dnsutils") else {
        return;
    };
    let node = Node::start(&all_policy_example());
    let reply = dig(&dig_bin, &node, &["+tcp", "gslb.example.", "MX"]);
    assert_eq!(reply.transport, "TCP", "{}", reply.text);
    assert_eq!(reply.status, "NOERROR");
    assert_eq!(reply.flags(), ["qr", "aa"]);
    assert_eq!(
        reply.answer.iter().map(|r| fields(r)).collect::<Vec<_>>(),
        [[
            "gslb.example.",
            "300",
            "IN",
            "MX",
            "10",
            "mail.gslb.example."
        ]]
    );
    assert_eq!(
        reply
            .additional
            .iter()
            .map(|r| fields(r))
            .collect::<Vec<_>>(),
        [["mail.gslb.example.", "300", "IN", "A", "192.0.2.25"]]
    );

    let reply = dig(&dig_bin, &node, &["+tcp", "www.gslb.example.", "A"]);
    assert_eq!(reply.transport, "TCP");
    assert_eq!(reply.flags(), ["qr", "aa"]);
    assert_eq!(reply.answer.len(), 3);
}

#[test]
fn dig_sees_truncation_and_falls_back_to_tcp() {
    let Some(dig_bin) = require("dig", "bind9-dnsutils") else {
        return;
    };
    let node = Node::start(&large_txt_config());

    // A 512-byte EDNS buffer, truncation not retried: TC, no answer, OPT kept.
    let reply = dig(
        &dig_bin,
        &node,
        &["+bufsize=512", "+ignore", "big.gslb.example.", "TXT"],
    );
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert_eq!(reply.flags(), ["qr", "aa", "tc"]);
    assert_eq!(reply.transport, "UDP");
    assert_eq!(reply.answer_count, 0);
    assert!(reply.edns.is_some(), "OPT kept in the truncated reply");

    // Without EDNS the same.
    let reply = dig(
        &dig_bin,
        &node,
        &["+noedns", "+ignore", "medium.gslb.example.", "TXT"],
    );
    assert_eq!(reply.flags(), ["qr", "aa", "tc"], "{}", reply.text);
    assert_eq!(reply.answer_count, 0);
    assert!(reply.edns.is_none(), "no OPT: the query had none");

    // dig's default: retry over TCP on TC and get everything.
    let reply = dig(
        &dig_bin,
        &node,
        &["+bufsize=512", "big.gslb.example.", "TXT"],
    );
    assert!(
        reply.text.contains("Truncated, retrying in TCP mode"),
        "{}",
        reply.text
    );
    assert_eq!(reply.transport, "TCP");
    assert_eq!(reply.flags(), ["qr", "aa"]);
    assert_eq!(reply.answer_count, 20);
    assert_eq!(reply.answer.len(), 20);
    assert!(reply.answer.iter().all(|r| r[1] == "300" && r[3] == "TXT"));

    // Within our 1232-byte limit, the medium set needs no retry.
    let reply = dig(
        &dig_bin,
        &node,
        &["+bufsize=1232", "+ignore", "medium.gslb.example.", "TXT"],
    );
    assert_eq!(reply.flags(), ["qr", "aa"], "{}", reply.text);
    assert_eq!(reply.transport, "UDP");
    assert_eq!(reply.answer_count, 6);
}

#[test]
fn kdig_edns_payload_badvers_and_options() {
    let Some(kdig) = require("kdig", "knot-dnsutils") else {
        return;
    };
    let node = Node::start(&all_policy_example());
    let base = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "+norec",
            "+retry=0",
            "+time=2",
            "-p",
            &node.dns.port().to_string(),
            "@127.0.0.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    // The client offers 4096; we say 1232.
    let out = run(&kdig, &base(&["+bufsize=4096", "www.gslb.example.", "A"]));
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("Flags: qr aa;"), "{out}");
    assert!(
        out.contains(";; Version: 0; flags: ; UDP size: 1232 B; ext-rcode: NOERROR"),
        "{out}"
    );

    // EDNS version 1: BADVERS, answered with version 0.
    let out = run(&kdig, &base(&["+edns=1", "www.gslb.example.", "A"]));
    assert!(out.contains("status: BADVERS"), "{out}");
    assert!(out.contains("ANSWER: 0;"), "{out}");
    assert!(
        out.contains(";; Version: 0; flags: ; UDP size: 1232 B; ext-rcode: BADVERS"),
        "{out}"
    );

    // DO copied; an unknown option (and NSID, which we do not offer) ignored.
    let out = run(
        &kdig,
        &base(&[
            "+dnssec",
            "+nsid",
            "+ednsopt=65001:deadbeef",
            "www.gslb.example.",
            "A",
        ]),
    );
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(
        out.contains(";; Version: 0; flags: do; UDP size: 1232 B; ext-rcode: NOERROR"),
        "{out}"
    );
    assert!(!out.contains("65001"), "unknown option not echoed: {out}");
    assert!(!out.contains("NSID"), "NSID not offered: {out}");
    assert!(out.contains("ANSWER: 3;"), "{out}");
}

/// The README's promise, with the real dig: the shipped example sends a US,
/// a European and an Asian client subnet to three different zones, and
/// says in the ECS option how widely each answer applies.
#[test]
fn dig_subnets_from_three_regions_get_three_zones() {
    let Some(dig_bin) = require("dig", "bind9-dnsutils") else {
        return;
    };
    let node = Node::start_example();
    let mut seen = Vec::new();
    for (subnet, want) in [
        ("8.8.8.0/24", "192.0.2.10"),
        ("193.0.0.0/24", "198.51.100.10"),
        ("202.12.27.0/24", "203.0.113.10"),
    ] {
        let option = format!("+subnet={subnet}");
        let reply = dig(&dig_bin, &node, &[&option, "www.gslb.example.", "A"]);
        assert_eq!(reply.status, "NOERROR", "{}", reply.text);
        let answer: Vec<Vec<&str>> = reply.answer.iter().map(|r| fields(r)).collect();
        assert_eq!(
            answer,
            [["www.gslb.example.", "30", "IN", "A", want]],
            "{subnet}"
        );
        seen.push(reply.answer[0][4].clone());
        // `; CLIENT-SUBNET: 8.8.8.0/24/16`: the source prefix echoed, then
        // the scope, which must be the one explain reports for this client
        // (the GeoIP network of the subnet), and never wider than /24.
        let ecs = reply
            .text
            .lines()
            .find_map(|l| l.strip_prefix("; CLIENT-SUBNET: "))
            .unwrap_or_else(|| panic!("no ECS echoed for {subnet}:\n{}", reply.text));
        let (source, scope) = ecs.trim().rsplit_once('/').expect("address/source/scope");
        assert_eq!(source, subnet, "{ecs}");
        let scope: u64 = scope.parse().expect("a numeric scope");
        let (status, explained) = crate::health::admin(
            &node,
            "GET",
            &format!("/v1/explain?name=www&client={subnet}"),
            None,
        );
        assert_eq!(status, 200, "{explained}");
        assert_eq!(
            Some(scope),
            explained["ecs_scope"].as_u64(),
            "{subnet}: {explained}"
        );
        assert!((1..=24).contains(&scope), "{subnet}: scope /{scope}");
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "three regions, three zones: {seen:?}");
}

// Every test above, again with the fast path switched off.
crate::also_on_general_path! {
    dig_a_query_gets_an_authoritative_answer,
    dig_returns_our_server_cookie_and_it_is_accepted,
    dig_with_recursion_desired_gets_rd_back_and_no_ra,
    dig_nxdomain_carries_the_soa,
    dig_over_tcp_gets_the_same_answer,
    dig_sees_truncation_and_falls_back_to_tcp,
    kdig_edns_payload_badvers_and_options,
    dig_subnets_from_three_regions_get_three_zones,
}

#[test]
fn dig_nsid_and_ch_txt_id_server_name_the_node() {
    let Some(dig_bin) = require("dig", "bind9-dnsutils") else {
        return;
    };
    let text = all_policy_example().replace("[server]", "[server]\nidentity = \"ns-test-1\"");
    assert!(
        text.contains("identity"),
        "the example has a [server] table"
    );
    let node = Node::start(&text);
    let reply = dig(&dig_bin, &node, &["+nsid", "www.gslb.example.", "A"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert!(
        reply.text.contains("; NSID: ") && reply.text.contains("\"ns-test-1\""),
        "{}",
        reply.text
    );
    let reply = dig(&dig_bin, &node, &["CH", "TXT", "id.server."]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert_eq!(reply.answer.len(), 1, "{}", reply.text);
    assert_eq!(
        reply.answer[0].last().map(String::as_str),
        Some("\"ns-test-1\"")
    );
    let reply = dig(&dig_bin, &node, &["CH", "TXT", "hostname.bind."]);
    let last = reply.answer.first().and_then(|a| a.last());
    assert_eq!(
        last.map(String::as_str),
        Some("\"ns-test-1\""),
        "{}",
        reply.text
    );
}
