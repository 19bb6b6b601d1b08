//! `[dnssec]`: defaults, and every problem pointing at the line and column
//! that caused it (`»` marks where).

use std::time::Duration;

use super::{MINIMAL, parse};
use crate::dnssec::key::Algorithm;
use crate::dnssec::testing::key_file;

fn at_marker(text: &str) -> (String, usize, usize) {
    let at = text.find('»').unwrap();
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap().chars().count() + 1;
    (text.replace('»', ""), line, column)
}

/// The one problem `snippet` (added to MINIMAL) causes, checked to be at
/// its marker; returns the message and hint.
fn problem(snippet: &str) -> (String, String) {
    let (text, line, column) = at_marker(&format!("{MINIMAL}{snippet}"));
    let problems = parse(&text)
        .err()
        .unwrap_or_else(|| panic!("accepted:\n{text}"));
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = &problems[0];
    assert_eq!((p.line, p.column), (line, column), "{p}");
    (p.message.clone(), p.hint.clone().unwrap_or_default())
}

#[test]
fn a_key_file_is_all_dnssec_needs() {
    let (path, dnskey) = key_file(Algorithm::EcdsaP256Sha256);
    let config = parse(&format!(
        "{MINIMAL}[dnssec]\nkey_file = \"{}\"\n",
        path.display()
    ))
    .unwrap();
    let dnssec = config.dnssec.expect("signed");
    assert_eq!(dnssec.key.dnskey(), &dnskey);
    assert_eq!(dnssec.validity, Duration::from_secs(14 * 86_400));
    assert_eq!(dnssec.refresh, Duration::from_secs(7 * 86_400), "half");
    assert_eq!(dnssec.dnskey_ttl, config.domain.ttl);
    assert!(dnssec.published.is_empty());
    assert!(parse(MINIMAL).unwrap().dnssec.is_none());

    // Ed25519, a published key, and every setting written out.
    let (ed, _) = key_file(Algorithm::Ed25519);
    let next = ed.with_file_name("next.key");
    let (_, next_key) = key_file(Algorithm::EcdsaP256Sha256);
    std::fs::write(&next, next_key.text("gslb.example.", 3600)).unwrap();
    let config = parse(&format!(
        "{MINIMAL}[dnssec]\nkey_file = \"{}\"\nalgorithm = \"ed25519\"\npublish = [\"{}\"]\n\
         validity = \"30d\"\nrefresh = \"10d\"\ndnskey_ttl = 600\n",
        ed.display(),
        next.display()
    ))
    .unwrap();
    let dnssec = config.dnssec.unwrap();
    assert_eq!(dnssec.key.algorithm(), Algorithm::Ed25519);
    assert_eq!(dnssec.published, [next_key]);
    assert_eq!(dnssec.validity, Duration::from_secs(30 * 86_400));
    assert_eq!(dnssec.refresh, Duration::from_secs(10 * 86_400));
    assert_eq!(dnssec.dnskey_ttl, 600);
}

#[test]
fn dnssec_problems_point_at_their_value() {
    let (ecdsa, _) = key_file(Algorithm::EcdsaP256Sha256);
    let ecdsa = ecdsa.display();
    let (message, hint) = problem("»[dnssec]\nvalidity = \"14d\"\n");
    assert_eq!(message, "[dnssec] has no key_file");
    assert!(hint.contains("meridian dnssec keygen"), "{hint}");

    let (message, hint) = problem("[dnssec]\nkey_file = »\"/nonexistent/k.pem\"\n");
    assert!(
        message.starts_with("cannot read dnssec.key_file /nonexistent/k.pem: "),
        "{message}"
    );
    assert!(hint.contains("relative to this file"), "{hint}");

    let not_a_key = ecdsa.to_string().replace("key.pem", "not-a-key.pem");
    std::fs::write(&not_a_key, "hello").unwrap();
    let (message, _) = problem(&format!("[dnssec]\nkey_file = »\"{not_a_key}\"\n"));
    assert!(message.contains("no PEM `PRIVATE KEY` block"), "{message}");

    let (message, hint) = problem(&format!(
        "[dnssec]\nkey_file = »\"{ecdsa}\"\nalgorithm = \"ed25519\"\n"
    ));
    assert!(
        message.ends_with(
            "is an algorithm 13 (ECDSAP256SHA256) key, but dnssec.algorithm is 15 (ED25519)"
        ),
        "{message}"
    );
    assert!(hint.contains("set dnssec.algorithm"), "{hint}");

    let (message, hint) = problem(&format!(
        "[dnssec]\nkey_file = \"{ecdsa}\"\nalgorithm = »\"rsasha256\"\n"
    ));
    assert_eq!(message, "dnssec.algorithm `rsasha256` is not offered");
    assert!(hint.contains("ecdsap256sha256"), "{hint}");

    let (message, _) = problem(&format!(
        "[dnssec]\nkey_file = \"{ecdsa}\"\nvalidity = »\"10m\"\n"
    ));
    assert_eq!(message, "`10m` is not a duration of an hour or more");

    let (message, _) = problem(&format!(
        "[dnssec]\nkey_file = \"{ecdsa}\"\nvalidity = \"10d\"\nrefresh = »\"6d\"\n"
    ));
    assert_eq!(
        message,
        "dnssec.refresh is more than half of dnssec.validity"
    );

    let other = ecdsa.to_string().replace("key.pem", "other.key");
    let (_, other_key) = key_file(Algorithm::EcdsaP256Sha256);
    std::fs::write(&other, other_key.text("elsewhere.example.", 60)).unwrap();
    let (message, _) = problem(&format!(
        "[dnssec]\nkey_file = \"{ecdsa}\"\npublish = [»\"{other}\"]\n"
    ));
    assert!(
        message.ends_with("is a DNSKEY of `elsewhere.example.`, not of this domain"),
        "{message}"
    );

    let (message, hint) = problem(&format!(
        "[dnssec]\nkey_file = \"{ecdsa}\"\n»key_fille = \"x\"\n"
    ));
    assert_eq!(message, "unknown key `key_fille` in [dnssec]");
    assert_eq!(hint, "did you mean `key_file`?");
}
