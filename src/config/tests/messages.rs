//! Every message the config checks can produce, one bad snippet each.
//!
//! Each case is a config that is wrong in exactly one way, with `»` marking
//! where the problem must point. The test asserts the whole outcome: exactly
//! one problem, its message and hint word for word, and its line and column.
//! So a case fails if its check is removed (no problem, or another one), if
//! its wording changes, and if it starts pointing somewhere else. A message
//! ending in `…` is compared up to there, because the rest is a library's
//! own wording (the TOML parser's, hickory's).

use super::{MINIMAL, parse};

/// The cases of `[[services]]`, their endpoints, policies and checks.
mod services;

/// Where `»` points in `text`, counted independently of the implementation:
/// 1-based line, 1-based column in characters.
fn marker_position(text: &str) -> (usize, usize) {
    let at = text.find('»').unwrap_or_else(|| panic!("no » in:\n{text}"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap().chars().count() + 1;
    (line, column)
}

/// MINIMAL with `snippet` added at the end.
fn extra(snippet: &str) -> String {
    format!("{MINIMAL}{snippet}")
}

/// `text` with its only occurrence of `from` replaced by `to`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once");
    text.replace(from, to)
}

/// A second service, `api`, with one endpoint in `us-east`; `keys` go into
/// its [[services]] table.
fn api(keys: &str) -> String {
    format!(
        "\n[[services]]\nname = \"api\"\n{keys}\n[[services.endpoints]]\nzone = \"us-east\"\naddresses = [\"192.0.2.20\"]\n"
    )
}

/// MINIMAL with its endpoint named `blue` and `keys` added to it.
fn blue(keys: &str) -> String {
    edit(
        MINIMAL,
        "zone = \"us-east\"\n",
        &format!("zone = \"us-east\"\nname = \"blue\"\n{keys}"),
    )
}

/// A second endpoint of `www` in `us-east`, named `green`.
const GREEN: &str = "\n[[services.endpoints]]\nzone = \"us-east\"\nname = \"green\"\naddresses = [\"192.0.2.11\"]\n";

const EU_WEST: &str = "\n[[zones]]\nname = \"eu-west\"\nlatitude = 53.3\nlongitude = -6.3\n";

struct Case {
    text: String,
    message: String,
    hint: String,
}

fn case(text: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> Case {
    Case {
        text: text.into(),
        message: message.into(),
        hint: hint.into(),
    }
}

fn cases() -> Vec<Case> {
    let long_label = "x".repeat(64);
    let long_name = vec!["y".repeat(60); 4].join(".");
    let no_nameservers = edit(
        MINIMAL,
        "[[domain.nameservers]]\nname = \"ns1\"\naddresses = [\"192.0.2.53\"]\n",
        "",
    );
    let mut cases = vec![
        // Reading the file.
        case(
            edit(MINIMAL, "name = \"gslb.example.\"", "name = »gslb.example."),
            "invalid TOML: …",
            "fix the syntax; nothing else in the file is checked until it parses",
        ),
        case(
            extra("[server]\n»colour = \"blue\"\n"),
            "unknown key `colour` in [server]",
            "check the spelling against the configuration reference in README.md, or remove it",
        ),
        case(
            extra("[server]\nudp_sockets = »\"many\"\n"),
            "invalid type: …",
            "fix this value's type; the rest of the file is checked once it reads",
        ),
        // [domain]
        case(
            "»[[zones]]\nname = \"us-east\"\nlatitude = 1.0\nlongitude = 1.0\n",
            "missing [domain] table",
            "add a [domain] table with at least `name = \"gslb.example.\"` and a [[domain.nameservers]] entry",
        ),
        case(
            edit(
                MINIMAL,
                "name = \"gslb.example.\"",
                "name = »\"gslb.example\"",
            ),
            "domain name `gslb.example` is not fully qualified",
            "end it with a dot: `gslb.example.`",
        ),
        case(
            edit(MINIMAL, "name = \"gslb.example.\"", "name = »\".\""),
            "the domain cannot be the root",
            "name the subdomain delegated to Meridian, e.g. `gslb.example.com.`",
        ),
        case(
            edit(
                MINIMAL,
                "name = \"gslb.example.\"",
                &format!("name = »\"{long_label}.example.\""),
            ),
            format!("domain name `{long_label}.example.` is not valid: …"),
            "use dot-separated labels ending in a dot, e.g. `gslb.example.com.`",
        ),
        case(
            extra("\n[[domain.nameservers]]\nname = »\"ns1\"\naddresses = [\"192.0.2.54\"]\n"),
            "nameserver `ns1.gslb.example.` is listed twice",
            "remove the duplicate",
        ),
        case(
            extra("\n[[domain.nameservers]]\nname = »\"ns..2\"\naddresses = [\"192.0.2.54\"]\n"),
            "`ns..2` is not a domain name",
            "use dot-separated labels of letters, digits and hyphens",
        ),
        case(
            edit(
                MINIMAL,
                "name = \"ns1\"\naddresses = [\"192.0.2.53\"]\n",
                "name = »\"ns1\"\n",
            ),
            "nameserver `ns1.gslb.example.` is inside the domain but has no addresses",
            "add `addresses = [...]` (glue), or resolvers cannot reach it",
        ),
        case(
            edit(&no_nameservers, "[domain]\n", "»[domain]\n"),
            "the domain has no nameservers",
            "add a [[domain.nameservers]] entry with `name` and `addresses` for each node",
        ),
        case(
            edit(
                MINIMAL,
                "[\"192.0.2.53\"]",
                "[\"192.0.2.53\", »\"192.0.2.53\"]",
            ),
            "address `192.0.2.53` is listed twice",
            "remove the duplicate",
        ),
        case(
            edit(MINIMAL, "[\"192.0.2.53\"]", "[»\"192.0.2.530\"]"),
            "`192.0.2.530` is not an IP address",
            "write an IPv4 address like `192.0.2.10` or an IPv6 address like `2001:db8::10`, without a port",
        ),
        case(
            extra("\n[domain.soa]\nmname = »\"ns 1\"\n"),
            "`ns 1` is not a domain name",
            "use dot-separated labels of letters, digits and hyphens",
        ),
        case(
            extra("\n[domain.soa]\nrname = »\"ops@@example.\"\n"),
            "`ops.@example.` is not a domain name: …",
            "use dot-separated labels of letters, digits and hyphens",
        ),
        // Names as written anywhere.
        case(
            extra(&api("").replace("name = \"api\"", "name = »\"my api\"")),
            "`my api` is not a domain name",
            "use dot-separated labels of letters, digits and hyphens",
        ),
        case(
            extra(&api("").replace("name = \"api\"", &format!("name = »\"{long_label}\""))),
            format!("`{long_label}` is not a domain name: …"),
            "use dot-separated labels of letters, digits and hyphens",
        ),
        case(
            extra(&api("").replace("name = \"api\"", &format!("name = »\"{long_name}\""))),
            format!("`{long_name}` is too long once the domain is appended: …"),
            "shorten the name",
        ),
        case(
            extra(
                "\n[[records]]\nname = »\"www.other.example.\"\ntype = \"A\"\ndata = \"192.0.2.1\"\n",
            ),
            "`www.other.example.` is outside the domain `gslb.example.`",
            "write it relative to the domain (without a trailing dot) or as a name ending in `gslb.example.`",
        ),
        // [server]
        case(
            extra("[server]\ndns = [\"127.0.0.1:53\", »\"127.0.0.1:53\"]\n"),
            "DNS address `127.0.0.1:53` is listed twice",
            "remove the duplicate",
        ),
        case(
            extra("[server]\ndns = [»\"127.0.0.1\"]\n"),
            "`127.0.0.1` is not an address and port",
            "write it as `127.0.0.1:5300` or `[::1]:5300`",
        ),
        case(
            extra("[server]\nadmin = »\"localhost:8053\"\n"),
            "`localhost:8053` is not an address and port",
            "write it as `127.0.0.1:8053`; keep it on loopback unless a token protects it",
        ),
        case(
            extra("[server]\nudp_payload_max = »511\n"),
            "udp_payload_max 511 is out of range",
            "use a value between 512 and 4096; 1232 avoids fragmentation",
        ),
        case(
            extra("[server]\nudp_payload_max = »4097\n"),
            "udp_payload_max 4097 is out of range",
            "use a value between 512 and 4096; 1232 avoids fragmentation",
        ),
        case(
            extra("[server]\ntcp_idle_timeout = »\"0s\"\n"),
            "`0s` is not a duration",
            "write a positive number with a unit: `500ms`, `2s`, `1m`",
        ),
        case(
            extra("[server]\ntcp_read_timeout = »\"soon\"\n"),
            "`soon` is not a duration",
            "write a positive number with a unit: `500ms`, `2s`, `1m`",
        ),
        case(
            extra("[server]\ntcp_max_connections = »0\n"),
            "tcp_max_connections must be at least 1",
            "use e.g. 1024",
        ),
        case(
            extra("[server]\ntcp_max_connections_per_source = »0\n"),
            "tcp_max_connections_per_source must be at least 1",
            "use e.g. 64",
        ),
        case(
            extra("[server]\ntcp_max_queries = »0\n"),
            "tcp_max_queries must be at least 1",
            "use e.g. 100000",
        ),
        case(
            extra("[server]\nprobe_concurrency = »0\n"),
            "probe_concurrency must be at least 1",
            "use e.g. 512",
        ),
        case(
            extra("[server]\nadmin_token = »\"  0123456789abcde  \"\n"),
            "admin_token is too short",
            "use at least 16 random characters, e.g. from `openssl rand -hex 16`",
        ),
        case(
            extra("[server]\nprobe_metrics = »\"host\"\n"),
            "probe_metrics \"host\" is not known",
            "use \"address\" (series per endpoint address) or \"zone\" (summed per zone)",
        ),
        case(
            extra("[server]\ncookie_secret = »\"0123456789abcdef0123456789abcdeg\"\n"),
            "cookie_secret must be 32 hexadecimal characters (16 bytes)",
            "generate one with `openssl rand -hex 16`",
        ),
        case(
            extra("[server]\ncookie_secret = »\"0123456789abcdef\"\n"),
            "cookie_secret must be 32 hexadecimal characters (16 bytes)",
            "generate one with `openssl rand -hex 16`",
        ),
        case(
            extra("[server]\nrrl_slip = »1\n"),
            "rrl_slip is set but rate limiting is off",
            "set `rrl_responses_per_second` too, or remove `rrl_slip`",
        ),
        case(
            extra("[server]\nrrl_responses_per_second = »0\n"),
            "rrl_responses_per_second must be at least 1",
            "remove the key to turn rate limiting off",
        ),
        // [[records]]
        case(
            extra("\n[[records]]\nname = \"@\"\ntype = »\"SOA\"\ndata = \"x\"\n"),
            "the SOA record is built from [domain.soa]",
            "remove this record and set the fields in [domain.soa]",
        ),
        case(
            extra("\n[[records]]\nname = \"x\"\ntype = »\"HINFO\"\ndata = \"x\"\n"),
            "record type `HINFO` is not supported",
            "use one of A, AAAA, CNAME, TXT, MX, SRV, CAA, NS, PTR",
        ),
        case(
            extra("\n[[records]]\nname = »\"@\"\ntype = \"NS\"\ndata = \"ns2\"\n"),
            "NS records at the apex come from [[domain.nameservers]]",
            "list the node under [[domain.nameservers]] instead",
        ),
        case(
            extra("\n[[records]]\nname = \"x\"\ntype = \"TXT\"\ndata = »[\"a\", 1]\n"),
            "record data must be strings",
            "quote each value, e.g. `data = [\"10 mail\"]`",
        ),
        case(
            extra("\n[[records]]\nname = \"x\"\ntype = \"TXT\"\ndata = »[]\n"),
            "record data must be a string or a non-empty list of strings",
            "write it in zone-file form, e.g. `data = \"10 mail.gslb.example.\"` for MX",
        ),
        case(
            extra("\n[[records]]\nname = \"x\"\ntype = \"A\"\ndata = »\"  \"\n"),
            "`  ` is not valid A data: it is empty",
            "write an IPv4 address, e.g. `192.0.2.10`",
        ),
        case(
            extra("\n[[records]]\nname = \"x\"\ntype = \"AAAA\"\ndata = »\"192.0.2.1\"\n"),
            "`192.0.2.1` is not valid AAAA data: …",
            "write an IPv6 address, e.g. `2001:db8::10`",
        ),
        case(
            extra("\n[[records]]\nname = \"x\"\ntype = \"SRV\"\ndata = »\"10 sip\"\n"),
            "`10 sip` is not valid SRV data: …",
            "write `priority weight port target`, e.g. `10 5 5060 sip`",
        ),
        case(
            extra("\n[[records]]\nname = \"x\"\ntype = \"CAA\"\ndata = »\"issue\"\n"),
            "`issue` is not valid CAA data: …",
            "write `flags tag \"value\"`, e.g. `0 issue \"letsencrypt.org\"`",
        ),
        case(
            extra("\n[[records]]\nname = \"x\"\ntype = \"PTR\"\ndata = »\"a..b\"\n"),
            "`a..b` is not valid PTR data: …",
            "write a name, relative to the domain or ending in a dot",
        ),
        case(
            extra("\n[[records]]\nname = \"@\"\ntype = \"MX\"\ndata = »\"mail\"\n"),
            "`mail` is not valid MX data: …",
            "write `preference exchange`, e.g. `10 mail`",
        ),
        case(
            extra(
                "\n[[records]]\nname = \"x\"\ntype = \"A\"\ndata = »[\"192.0.2.1\", \"192.0.2.1\"]\n",
            ),
            "A record `x.gslb.example. 192.0.2.1` is defined twice",
            "remove the duplicate",
        ),
        case(
            extra(
                "\n[[records]]\nname = »\"x\"\ntype = \"CNAME\"\ndata = \"www\"\n[[records]]\nname = \"x\"\ntype = \"TXT\"\ndata = \"hi\"\n",
            ),
            "`x.gslb.example.` has a CNAME and other records",
            "a CNAME must be the only record at its name (RFC 1034); remove one of them",
        ),
        case(
            extra("\n[[records]]\nname = »\"@\"\ntype = \"CNAME\"\ndata = \"www\"\n"),
            "the domain apex cannot have a CNAME",
            "put the CNAME on a name below the apex",
        ),
        case(
            extra(
                "\n[[records]]\nname = \"sub\"\ntype = \"NS\"\ndata = \"ns.elsewhere.example.\"\n[[records]]\nname = »\"x.sub\"\ntype = \"TXT\"\ndata = \"hidden\"\n",
            ),
            "`x.sub.gslb.example.` is below the delegation `sub.gslb.example.`",
            "only glue (A/AAAA) may sit below a delegation; move the record into the child zone",
        ),
        case(
            extra(
                "\n[[records]]\nname = \"sub\"\ntype = \"NS\"\ndata = \"ns.elsewhere.example.\"\n[[records]]\nname = »\"sub\"\ntype = \"TXT\"\ndata = \"here\"\n",
            ),
            "`sub.gslb.example.` is a delegation and cannot also hold TXT records",
            "move the record into the child zone or remove the NS records",
        ),
        case(
            edit(
                &extra("\n[[records]]\nname = \"www\"\ntype = \"AAAA\"\ndata = \"2001:db8::1\"\n"),
                "name = \"www\"\n\n",
                "name = »\"www\"\n\n",
            ),
            "service `www.gslb.example.` clashes with a static AAAA record at the same name",
            "remove the static record; the service answers A and AAAA for this name",
        ),
        case(
            extra(&format!(
                "\n[[records]]\nname = \"sub\"\ntype = \"NS\"\ndata = \"ns.elsewhere.example.\"\n{}",
                api("").replace("name = \"api\"", "name = »\"api.sub\"")
            )),
            "service `api.sub.gslb.example.` is at or below the delegation `sub.gslb.example.`",
            "move the service out of the delegated subtree",
        ),
        // [[zones]]
        case(
            extra("\n[[zones]]\nname = »\"eu west\"\nlatitude = 53.3\nlongitude = -6.3\n"),
            "zone name `eu west` is not valid",
            "use letters, digits, `-` and `_`, e.g. `us-east`",
        ),
        case(
            extra("\n[[zones]]\nname = »\"us-east\"\nlatitude = 1.0\nlongitude = 1.0\n"),
            "zone `us-east` is defined twice",
            "give each [[zones]] entry its own name",
        ),
        case(
            extra("\n[[zones]]\nname = \"eu-west\"\nlatitude = »90.5\nlongitude = -6.3\n"),
            "latitude 90.5 is out of range",
            "use degrees between -90 and 90 (north is positive)",
        ),
        case(
            extra("\n[[zones]]\nname = \"eu-west\"\nlatitude = 53.3\nlongitude = »-180.5\n"),
            "longitude -180.5 is out of range",
            "use degrees between -180 and 180 (east is positive)",
        ),
        case(
            extra(&format!("{EU_WEST}continent = »\"eurasia\"\n")),
            "continent `EURASIA` is not a continent code",
            "use one of AF, AN, AS, EU, NA, OC, SA",
        ),
        case(
            extra(&format!("{EU_WEST}country = »\"irl\"\n")),
            "country `IRL` is not a two-letter country code",
            "use the ISO 3166-1 alpha-2 code, e.g. `US`, `IE`, `SG`",
        ),
        // [geoip]
        case(
            extra("\n[geoip]\nfiles = »[]\n"),
            "geoip.files must name one or two .mmdb files",
            "one file holding IPv4 and IPv6, or one per family",
        ),
        case(
            extra("\n[geoip]\nfiles = »[\"a.mmdb\", \"b.mmdb\", \"c.mmdb\"]\n"),
            "geoip.files must name one or two .mmdb files",
            "one file holding IPv4 and IPv6, or one per family",
        ),
        case(
            extra("\n[geoip]\nfiles = [\"a.mmdb\"]\nwatch_interval = »\"1 week\"\n"),
            "`1 week` is not a duration",
            "write a positive number with a unit: `500ms`, `2s`, `1m`",
        ),
        // [routing]
        case(
            extra("\n[routing]\nthis_zone = »\"mars\"\n"),
            "zone `mars` is not defined",
            "use one of: us-east",
        ),
        case(
            extra("\n[routing]\nlatency_margin = »1.0\n"),
            "latency_margin must be a fraction from 0 to below 1",
            "use e.g. 0.2 for 20%",
        ),
        case(
            extra("\n[routing]\nlatency_margin = »-0.1\n"),
            "latency_margin must be a fraction from 0 to below 1",
            "use e.g. 0.2 for 20%",
        ),
        case(
            extra("\n[routing]\nlatency_margin_ms = »-1.0\n"),
            "latency_margin_ms must not be negative",
            "use e.g. 5",
        ),
        case(
            extra("\n[routing]\nlatency_margin_ms = »inf\n"),
            "latency_margin_ms must not be negative",
            "use e.g. 5",
        ),
        case(
            extra("\n[routing]\nlatency_max_age = »\"never\"\n"),
            "`never` is not a duration",
            "write a positive number with a unit: `500ms`, `2s`, `1m`",
        ),
        // [[cidr_rules]]
        case(
            extra("\n[[cidr_rules]]\nnetworks = [»\"10.0.0.1/8\"]\nzones = [\"us-east\"]\n"),
            "`10.0.0.1/8` has host bits set",
            "write the network address: `10.0.0.0/8`",
        ),
        case(
            extra(
                "\n[[cidr_rules]]\nnetworks = [\"10.0.0.0/8\"]\nzones = [\"us-east\"]\n[[cidr_rules]]\nnetworks = [»\"10.0.0.0/8\"]\nzones = [\"us-east\"]\n",
            ),
            "network `10.0.0.0/8` is in two rules",
            "keep it in one rule",
        ),
        case(
            extra("\n[[cidr_rules]]\nnetworks = [»\"10.0.0.0\"]\nzones = [\"us-east\"]\n"),
            "`10.0.0.0` is not a network",
            "write it as `10.0.0.0/8` or `2001:db8::/32`",
        ),
        case(
            extra("\n[[cidr_rules]]\nnetworks = [\"10.0.0.0/8\"]\nzones = »[]\n"),
            "a CIDR rule needs at least one zone",
            "name the zones, most preferred first",
        ),
        case(
            extra("\n[[cidr_rules]]\nnetworks = [\"10.0.0.0/8\"]\nzones = [»\"mars\"]\n"),
            "zone `mars` is not defined",
            "use one of: us-east",
        ),
    ];
    cases.extend(services::cases());
    cases
}

#[test]
fn every_message_names_its_problem_where_it_was_written() {
    let mut failures = Vec::new();
    for (i, case) in cases().into_iter().enumerate() {
        let expected_at = marker_position(&case.text);
        let text = case.text.replacen('»', "", 1);
        let found = parse(&text).err().unwrap_or_default();
        let message_ok = |m: &str| match case.message.strip_suffix('…') {
            Some(prefix) => m.starts_with(prefix),
            None => m == case.message,
        };
        let ok = found.len() == 1
            && message_ok(&found[0].message)
            && found[0].hint.as_deref() == Some(case.hint.as_str())
            && (found[0].line, found[0].column) == expected_at;
        if !ok {
            failures.push(format!(
                "case {i}: expected {:?} (hint {:?}) at {}:{}, found {found:#?}\nin:\n{text}",
                case.message, case.hint, expected_at.0, expected_at.1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
