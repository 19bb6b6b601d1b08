//! The read that reuses a previous read's services must give exactly what
//! a fresh read gives: the same config, or the same problems at the same
//! places. Generated configs, seeded random edits, both reads compared.

use std::path::Path;

use super::*;

/// The same outcome: equal configs (but for the reuse index, which only a
/// cut read has), or equal problems.
pub(super) fn assert_same(
    fresh: &Result<Config, Vec<Problem>>,
    other: &Result<Config, Vec<Problem>>,
    text: &str,
) {
    match (fresh, other) {
        (Ok(a), Ok(b)) => assert_eq!(shown(a), shown(b), "configs differ for:\n{text}"),
        (Err(a), Err(b)) => assert_eq!(a, b, "problems differ for:\n{text}"),
        (a, b) => panic!(
            "fresh read {}, cut read {} for:\n{text}",
            if a.is_ok() { "accepted" } else { "rejected" },
            if b.is_ok() { "accepted" } else { "rejected" },
        ),
    }
}

fn shown(config: &Config) -> String {
    let mut config = config.clone();
    config.service_index = None;
    format!("{config:?}")
}

/// xorshift64*: a fixed sequence, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

const HEAD: &str = "[domain]\nname = \"gslb.test.\"\nservice_ttl = 20\n[[domain.nameservers]]\nname = \"ns1\"\naddresses = [\"192.0.2.53\"]\n";

fn zone(name: &str, lat: f64) -> String {
    format!("[[zones]]\nname = \"{name}\"\nlatitude = {lat}\nlongitude = 1.0\n")
}

fn service(i: usize, zones: &[&str], rng: &mut Rng) -> String {
    let mut s = format!("[[services]]\nname = \"svc{i}\"\n");
    match rng.below(4) {
        0 => s += "policy = \"failover\"\norder = [\"a\", \"b\"]\n",
        1 => s += "[services.check]\nkind = \"tcp\"\nport = 443\n",
        2 => {
            s += "# a comment with [[services]] in it\nfallback = [\n  \"192.0.2.99\",\n]\nall_down = \"fallback\"\n"
        }
        _ => {}
    }
    for (z, zone) in zones.iter().enumerate() {
        s += &format!(
            "[[services.endpoints]]\nzone = \"{zone}\"\naddresses = [\"10.{z}.{}.{}\"]\n",
            i / 250,
            i % 250 + 1
        );
    }
    s
}

/// One random edit of the parts.
fn edit(parts: &mut Vec<String>, rng: &mut Rng, next_id: &mut usize) {
    let services: Vec<usize> = (0..parts.len())
        .filter(|&i| parts[i].starts_with("[[services]]"))
        .collect();
    let pick = services[rng.below(services.len())];
    match rng.below(12) {
        0 => parts[pick] = parts[pick].replace("addresses = [\"10.0.", "addresses = [\"10.9."),
        1 => {
            *next_id += 1;
            parts.insert(pick, service(*next_id, &["a", "b"], rng));
        }
        2 if services.len() > 2 => {
            parts.remove(pick);
        }
        3 => {
            let other = services[rng.below(services.len())];
            parts.swap(pick, other);
        }
        // Something the checks reject, in a service that may have moved.
        4 => parts[pick] = parts[pick].replace("10.0.", "10.300."),
        5 => parts[pick] = parts[pick].replacen("zone = \"a\"", "zone = \"q\"", 1),
        6 => parts[pick] = parts[pick].replacen("\nname =", "\nnmae = \"x\"\nname =", 1),
        // A duplicate name.
        7 => parts[pick] = parts[pick].replacen("name = \"svc", "name = \"svc1", 1),
        // The context every service is checked against.
        8 => parts[1] = parts[1].replace("latitude = 1", "latitude = 2"),
        9 => parts[0] = parts[0].replace("service_ttl = 20", "service_ttl = 21"),
        10 => parts.insert(
            pick,
            "[[records]]\nname = \"t\"\ntype = \"TXT\"\ndata = \"x\"\n\n\n".into(),
        ),
        // A name reading as fully qualified: a warning, not an error.
        _ => parts[pick] = parts[pick].replacen("name = \"svc", "name = \"x.y.test", 1),
    }
}

fn read(text: &str, previous: Option<&Config>) -> Result<Config, Vec<Problem>> {
    Config::parse_after(text, Path::new("test.toml"), previous).map_err(|e| e.problems().to_vec())
}

#[test]
fn a_read_after_random_edits_equals_a_fresh_read() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..30 {
        let mut parts = vec![HEAD.to_string(), zone("a", 1.0), zone("b", 3.0)];
        let mut next_id = 40;
        for i in 0..40 {
            let s = service(i, &["a", "b"], &mut rng);
            parts.push(s);
        }
        let mut previous: Option<Config> = None;
        for step in 0..12 {
            let text = parts.concat();
            let fresh =
                Config::parse(&text, Path::new("test.toml")).map_err(|e| e.problems().to_vec());
            let cut = read(&text, previous.as_ref());
            assert_same(&fresh, &cut, &format!("round {round} step {step}:\n{text}"));
            if let Ok(config) = cut {
                assert!(config.service_index.is_some(), "a cut read keeps its index");
                previous = Some(config);
            }
            edit(&mut parts, &mut rng, &mut next_id);
        }
    }
}

#[test]
fn an_error_in_a_moved_service_points_at_its_new_line() {
    let body = |extra_lines: usize, bad: bool| {
        let mut text = format!("{HEAD}{}{}", zone("a", 1.0), zone("b", 3.0));
        text += &"# padding\n".repeat(extra_lines);
        let mut rng = Rng(7);
        for i in 0..5 {
            let s = service(i, &["a", "b"], &mut rng);
            text += &if bad && i == 3 {
                s.replace("10.0.", "10.300.")
            } else {
                s
            };
        }
        text
    };
    let previous = read(&body(0, false), None).expect("valid");
    let text = body(4, true);
    let problems = read(&text, Some(&previous)).expect_err("an address is wrong");
    assert_eq!(problems.len(), 1, "{problems:?}");
    let line = text.lines().position(|l| l.contains("10.300.")).unwrap() + 1;
    assert_eq!(problems[0].line, line);
    assert!(
        problems[0]
            .message
            .contains("`10.300.0.4` is not an IP address"),
        "{problems:?}"
    );
}

#[test]
fn a_changed_service_in_the_middle_is_read_and_the_rest_reused() {
    let mut rng = Rng(11);
    let services: Vec<String> = (0..9).map(|i| service(i, &["a", "b"], &mut rng)).collect();
    let text = |s: &[String]| format!("{HEAD}{}{}{}", zone("a", 1.0), zone("b", 3.0), s.concat());
    let previous = read(&text(&services), None).expect("valid");
    let mut changed = services.clone();
    changed[4] = changed[4].replace("10.0.0.5", "10.0.0.99");
    let next = read(&text(&changed), Some(&previous)).expect("valid");
    let address = next.services[4].endpoints[0].addresses[0];
    assert_eq!(address.to_string(), "10.0.0.99");
    assert_eq!(
        shown(&next),
        shown(&Config::parse(&text(&changed), Path::new("test.toml")).unwrap())
    );
}
