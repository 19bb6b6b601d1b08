//! One `[[services]]` entry read straight into a [`RawService`], for the
//! plain way entries are written, without the TOML crate's document.
//!
//! A reload that changes every service reads every entry again (see
//! `incremental`), and at 10,000 entries building the TOML crate's
//! document and deserializing it was half of the reload's work. Entries
//! are small and plain: the service's own tables, bare keys, one-line
//! strings without escapes, decimal integers, booleans, arrays of strings
//! and one-line inline tables. This reader takes exactly that and gives up
//! (`None`) on anything else (an escape, another number form, a dotted or
//! quoted key, a key it does not know or sees twice, a value of the wrong
//! type, a `geo` table), so the caller reads the entry the ordinary way
//! and whatever it reports is what `meridian check` reports. What it
//! accepts, it reads as the ordinary way does, spans included; the tests
//! compare the two on entries written to differ and on random edits.

use toml::Spanned;

use crate::config::raw::{RawCheck, RawEndpoint, RawService};
use crate::config::sections::is_bare;

/// `entry` (the text of one `[[services]]` entry, starting with its
/// header) as the service it defines; `None` when it is not written in the
/// plain way this reader takes.
pub(super) fn read(entry: &str) -> Option<RawService> {
    Reader {
        b: entry.as_bytes(),
        text: entry,
        i: 0,
    }
    .entry()
}

/// The table that keys are being read into.
#[derive(Clone, Copy, PartialEq)]
enum Table {
    /// Before `[[services]]`: no key may come yet.
    None,
    Service,
    ServiceCheck,
    Endpoint,
    EndpointCheck,
}

/// A service as read so far: its name is required, so it is kept apart
/// until the end.
#[derive(Default)]
struct Partial {
    name: Option<Spanned<String>>,
    policy: Option<Spanned<String>>,
    ttl: Option<Spanned<u32>>,
    check: Option<RawCheck>,
    all_down: Option<Spanned<String>>,
    fallback: Option<Vec<Spanned<String>>>,
    answers: Option<Spanned<usize>>,
    order: Option<Vec<Spanned<String>>>,
    endpoints: Vec<PartialEndpoint>,
}

/// An endpoint as read so far: `zone` is required, and a second
/// `addresses` must be told from an empty first one.
#[derive(Default)]
struct PartialEndpoint {
    zone: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    addresses: Option<Vec<Spanned<String>>>,
    min_healthy: Option<Spanned<usize>>,
    weight: Option<Spanned<u32>>,
    check: Option<RawCheck>,
}

/// Sets `slot` once; a key given twice is not TOML, so gives up.
fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// Control characters TOML allows in no string or comment (tab is fine).
fn is_control(c: u8) -> bool {
    (c < 0x20 && c != b'\t') || c == 0x7f
}

struct Reader<'a> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// Blanks, an optional comment, and the end of the line (or text).
    fn end_of_line(&mut self) -> Option<()> {
        self.blanks();
        if self.peek() == Some(b'#') {
            while let Some(c) = self.peek() {
                if c == b'\n' {
                    break;
                }
                if is_control(c) {
                    return None;
                }
                self.i += 1;
            }
        }
        match self.peek() {
            None => Some(()),
            Some(b'\n') => {
                self.i += 1;
                Some(())
            }
            Some(_) => None,
        }
    }

    fn entry(mut self) -> Option<RawService> {
        let mut service = Partial::default();
        let mut table = Table::None;
        while self.i < self.b.len() {
            self.blanks();
            match self.peek() {
                Some(b'\n' | b'#') => self.end_of_line()?,
                Some(b'[') => {
                    table = self.header(table, &mut service)?;
                    self.end_of_line()?;
                }
                Some(_) => {
                    self.key_value(table, &mut service)?;
                    self.end_of_line()?;
                }
                None => break,
            }
        }
        let mut endpoints = Vec::with_capacity(service.endpoints.len());
        for e in service.endpoints {
            endpoints.push(RawEndpoint {
                zone: e.zone?,
                name: e.name,
                addresses: e.addresses.unwrap_or_default(),
                min_healthy: e.min_healthy,
                weight: e.weight,
                check: e.check,
            });
        }
        Some(RawService {
            name: service.name?,
            policy: service.policy,
            ttl: service.ttl,
            check: service.check,
            all_down: service.all_down,
            fallback: service.fallback,
            answers: service.answers,
            order: service.order,
            geo: None,
            endpoints,
        })
    }

    /// A table header; the table its keys go into.
    fn header(&mut self, table: Table, service: &mut Partial) -> Option<Table> {
        let rest = &self.b[self.i..];
        let (next, len) = if rest.starts_with(b"[[services]]") {
            // Only the entry's own header, once.
            (table == Table::None).then_some((Table::Service, 12))?
        } else if table == Table::None {
            return None;
        } else if rest.starts_with(b"[services.check]") {
            set(&mut service.check, RawCheck::default())?;
            (Table::ServiceCheck, 16)
        } else if rest.starts_with(b"[[services.endpoints]]") {
            service.endpoints.push(PartialEndpoint::default());
            (Table::Endpoint, 22)
        } else if rest.starts_with(b"[services.endpoints.check]") {
            let endpoint = service.endpoints.last_mut()?;
            set(&mut endpoint.check, RawCheck::default())?;
            (Table::EndpointCheck, 26)
        } else {
            return None;
        };
        self.i += len;
        Some(next)
    }

    fn key(&mut self) -> Option<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(is_bare) {
            self.i += 1;
        }
        let key = &self.text[start..self.i];
        self.blanks();
        // A dotted or quoted key, or no `=`: not plain.
        (!key.is_empty() && self.peek() == Some(b'=')).then_some(())?;
        self.i += 1;
        self.blanks();
        Some(key)
    }

    fn key_value(&mut self, table: Table, service: &mut Partial) -> Option<()> {
        let key = self.key()?;
        match table {
            Table::None => None,
            Table::Service => self.service_key(key, service),
            Table::ServiceCheck => self.check_key(key, service.check.as_mut()?),
            Table::Endpoint => self.endpoint_key(key, service.endpoints.last_mut()?),
            Table::EndpointCheck => {
                let endpoint = service.endpoints.last_mut()?;
                self.check_key(key, endpoint.check.as_mut()?)
            }
        }
    }

    fn service_key(&mut self, key: &str, s: &mut Partial) -> Option<()> {
        match key {
            "name" => set(&mut s.name, self.string()?),
            "policy" => set(&mut s.policy, self.string()?),
            "ttl" => set(&mut s.ttl, self.integer()?),
            "all_down" => set(&mut s.all_down, self.string()?),
            "fallback" => set(&mut s.fallback, self.strings()?),
            "answers" => set(&mut s.answers, self.integer()?),
            "order" => set(&mut s.order, self.strings()?),
            "check" => set(&mut s.check, self.inline_check()?),
            _ => None,
        }
    }

    fn endpoint_key(&mut self, key: &str, e: &mut PartialEndpoint) -> Option<()> {
        match key {
            "zone" => set(&mut e.zone, self.string()?),
            "name" => set(&mut e.name, self.string()?),
            "addresses" => set(&mut e.addresses, self.strings()?),
            "min_healthy" => set(&mut e.min_healthy, self.integer()?),
            "weight" => set(&mut e.weight, self.integer()?),
            "check" => set(&mut e.check, self.inline_check()?),
            _ => None,
        }
    }

    fn check_key(&mut self, key: &str, c: &mut RawCheck) -> Option<()> {
        match key {
            "kind" => set(&mut c.kind, self.string()?),
            "port" => set(&mut c.port, self.integer()?),
            "path" => set(&mut c.path, self.string()?),
            "host" => set(&mut c.host, self.string()?.into_inner()),
            "expect_status" => set(&mut c.expect_status, self.string()?),
            "body_contains" => set(&mut c.body_contains, self.string()?.into_inner()),
            "insecure" => set(&mut c.insecure, self.boolean()?),
            "interval" => set(&mut c.interval, self.string()?),
            "timeout" => set(&mut c.timeout, self.string()?),
            "rise" => set(&mut c.rise, self.integer()?),
            "fall" => set(&mut c.fall, self.integer()?),
            _ => None,
        }
    }

    /// `check = { kind = "tcp", port = 443 }`: one line, no trailing comma.
    fn inline_check(&mut self) -> Option<RawCheck> {
        (self.peek() == Some(b'{')).then_some(())?;
        self.i += 1;
        self.blanks();
        let mut check = RawCheck::default();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Some(check);
        }
        loop {
            let key = self.key()?;
            self.check_key(key, &mut check)?;
            self.blanks();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.blanks();
                }
                b'}' => {
                    self.i += 1;
                    return Some(check);
                }
                _ => return None,
            }
        }
    }

    /// A one-line basic or literal string without escapes, spanned over
    /// its quotes as the TOML crate spans it.
    fn string(&mut self) -> Option<Spanned<String>> {
        let start = self.i;
        let quote = self.peek().filter(|&q| q == b'"' || q == b'\'')?;
        if self.b[self.i..].starts_with(&[quote; 3]) {
            return None;
        }
        self.i += 1;
        let body = self.i;
        loop {
            let c = self.peek()?;
            if c == quote {
                break;
            }
            if is_control(c) || (c == b'\\' && quote == b'"') {
                return None;
            }
            self.i += 1;
        }
        let value = self.text[body..self.i].to_string();
        self.i += 1;
        Some(Spanned::new(start..self.i, value))
    }

    /// `[ "a", "b" ]`, over several lines if need be, a trailing comma
    /// allowed; comments inside are not plain.
    fn strings(&mut self) -> Option<Vec<Spanned<String>>> {
        (self.peek() == Some(b'[')).then_some(())?;
        self.i += 1;
        let mut out = Vec::new();
        loop {
            self.space_in_array();
            if self.peek()? == b']' {
                self.i += 1;
                return Some(out);
            }
            out.push(self.string()?);
            self.space_in_array();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(out);
                }
                _ => return None,
            }
        }
    }

    fn space_in_array(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n')) {
            self.i += 1;
        }
    }

    /// A decimal integer (no sign, no `_`, no leading zero) that fits `T`.
    fn integer<T: TryFrom<u64>>(&mut self) -> Option<Spanned<T>> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let digits = &self.text[start..self.i];
        let plain = match digits.len() {
            0 => false,
            1 => true,
            // Beyond 18 digits an i64 may overflow: the TOML crate's call.
            n => n <= 18 && !digits.starts_with('0'),
        };
        (plain && self.is_value_end()).then_some(())?;
        let value = T::try_from(digits.parse::<u64>().ok()?).ok()?;
        Some(Spanned::new(start..self.i, value))
    }

    fn boolean(&mut self) -> Option<bool> {
        let rest = &self.b[self.i..];
        let (value, len) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.i += len;
        self.is_value_end().then_some(value)
    }

    /// Whether a number or boolean ends here, rather than going on as a
    /// float, a date or a longer word.
    fn is_value_end(&self) -> bool {
        matches!(
            self.peek(),
            None | Some(b' ' | b'\t' | b'\n' | b'#' | b',' | b'}' | b']')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::error::Problems;
    use crate::test_rng::Rng;
    use toml::de::DeTable;

    /// The ordinary read of one entry, as `incremental` falls back to:
    /// `None` on any problem or warning.
    fn ordinary(entry: &str) -> Option<RawService> {
        let mut problems = Problems::new(std::path::Path::new("t.toml"), entry);
        let root = DeTable::parse(entry).ok()?;
        let mut raw = super::super::shape::read(entry, root, &mut problems).ok()?;
        (problems.is_clean() && raw.services.len() == 1).then_some(())?;
        raw.services.pop()
    }

    const PLAIN: &[&str] = &[
        "[[services]]\nname = \"svc0\"\n[services.check]\nkind = \"none\"\n[[services.endpoints]]\nzone = \"us-east\"\naddresses = [\"10.1.0.1\"]\n[[services.endpoints]]\nzone = \"eu-west\"\naddresses = [\"10.2.0.1\"]\n",
        "[[services]]\nname = \"svc1\"\nttl = 31\n[services.check]\nkind = \"none\"\n[[services.endpoints]]\nzone = \"a\"\naddresses = [\"10.1.0.2\"]",
        "  [[services]] # www\nname = 'www'  # literal\npolicy = \"failover\"\norder = [\"a\", 'b',]\nanswers = 2\nall_down = \"fallback\"\nfallback = [\n  \"192.0.2.99\",\n  \"192.0.2.98\"\n]\n\n# between\n[[services.endpoints]]\n\tzone = \"a\"\nname = \"blue\"\nweight = 0\nmin_healthy = 1\naddresses = []\ncheck = { kind = \"http\", path = \"/health\", port = 8080, insecure = true, rise = 2, fall = 3 }\n[[services.endpoints]]\nzone = \"a\"\nname = \"green\"\naddresses = [\"2001:db8::1\", \"192.0.2.1\"]\n[services.endpoints.check]\nkind = \"https\"\nhost = \"wëb.example\"\nbody_contains = \"ok\"\nexpect_status = \"2xx\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n[services.check]\nkind = \"tcp\"\nport = 0\n",
        "[[services]]\nname = \"x\"\nttl = 4294967295\ncheck = { kind = \"none\" }\n",
        "[[services]]\nname = \"\"\nfallback = []\ncheck = {}\n",
    ];

    #[test]
    fn plain_entries_read_as_the_toml_crate_reads_them() {
        for entry in PLAIN {
            let plain = read(entry).unwrap_or_else(|| panic!("not read as plain:\n{entry}"));
            let ordinary = ordinary(entry).expect("the ordinary read accepts it");
            assert_eq!(format!("{plain:?}"), format!("{ordinary:?}"), "{entry}");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_ordinary_read() {
        let base = "[[services]]\nname = \"www\"\n";
        for extra in [
            "policy = \"a\\\"b\"\n",
            "policy = \"\"\"x\"\"\"\n",
            "ttl = +30\n",
            "ttl = 3_0\n",
            "ttl = 030\n",
            "ttl = 0x1e\n",
            "ttl = 30.0\n",
            "ttl = -1\n",
            "ttl = 4294967296\n",
            "ttl = \"30\"\n",
            "answers = 1979-05-27\n",
            "check.kind = \"none\"\n",
            "\"policy\" = \"x\"\n",
            "polcy = \"x\"\n",
            "policy = \"x\"\npolicy = \"y\"\n",
            "order = [\"a\", # c\n]\n",
            "order = [[\"a\"]]\n",
            "order = [\"a\" \"b\"]\n",
            "check = { kind = \"none\", }\n",
            "check = { kind = \"none\"\n}\n",
            "check = { kind = \"none\" }\n[services.check]\n",
            "[services.geo]\ndefault = [\"a\"]\n",
            "[services.endpoints.check]\nkind = \"none\"\n",
            "[[services.endpoints]]\naddresses = [\"192.0.2.1\"]\n",
            "[[services.endpoints]]\nzone = \"a\"\naddresses = []\naddresses = []\n",
            "[[services]]\nname = \"two\"\n",
            "[services]\n",
            "policy = \"x\" y\n",
            "policy = \"x\"\r\n",
            "policy = \"a\u{7}\"\n",
            "# bell \u{7}\n",
            "check = { insecure = yes }\n",
            "check = { insecure = truely }\n",
        ] {
            let entry = format!("{base}{extra}");
            assert!(read(&entry).is_none(), "read as plain:\n{entry}");
        }
        assert!(read("name = \"x\"\n[[services]]\n").is_none());
        assert!(read("[[services]]\nttl = 3\n").is_none(), "no name");
    }

    /// Random edits of the plain entries: whatever this reader still
    /// accepts, the TOML crate reads the same, spans and all.
    #[test]
    fn what_it_accepts_after_random_edits_the_toml_crate_reads_the_same() {
        const BITS: &[&str] = &[
            "\"",
            "'",
            "\\",
            "#",
            "=",
            ".",
            " ",
            "\n",
            "[",
            "]",
            "{",
            "}",
            ",",
            "0",
            "7",
            "x",
            "é",
            "\t",
            "-",
            "_",
            "name = \"n\"\n",
            "[services.check]\n",
            "true",
            "+",
        ];
        let mut rng = Rng(0x5eed_0f91_a1c3_u64);
        let (mut accepted, mut declined) = (0, 0);
        for _ in 0..4000 {
            let mut text: Vec<String> = rng.pick(PLAIN).chars().map(String::from).collect();
            for _ in 0..=rng.below(3) {
                let at = rng.below(text.len() as u64 + 1) as usize;
                match rng.below(3) {
                    0 if at < text.len() => {
                        text.remove(at);
                    }
                    1 if at < text.len() => {
                        let copy = text[at].clone();
                        text.insert(at, copy);
                    }
                    _ => text.insert(at, rng.pick(BITS).to_string()),
                }
            }
            let entry = text.concat();
            match read(&entry) {
                Some(plain) => {
                    accepted += 1;
                    let ordinary = ordinary(&entry)
                        .unwrap_or_else(|| panic!("accepted, but not by the TOML crate:\n{entry}"));
                    assert_eq!(format!("{plain:?}"), format!("{ordinary:?}"), "{entry}");
                }
                None => declined += 1,
            }
        }
        assert!(accepted > 200 && declined > 500, "{accepted} / {declined}");
    }
}
