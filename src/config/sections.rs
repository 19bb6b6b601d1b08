//! Where each `[[services]]` entry's text is in a config file, without
//! parsing it.
//!
//! A reload re-reads the whole file, but an operator usually changes a few
//! lines of it: at 10,000 services, parsing and checking every service again
//! was most of a reload's time. This scanner cuts the text at its table
//! headers so a reload can reuse each service whose text is unchanged (see
//! `validate::incremental`). It follows TOML's lexical rules only as far as
//! needed to tell a header from the rest (strings of all four kinds,
//! comments, arrays and inline tables spanning lines), and gives up
//! (`None`) on anything it does not fully understand, such as quoted keys in
//! a header: the caller then reads the file the ordinary way.

use std::ops::Range;

/// The byte ranges of the `[[services]]` entries of `text`, in file order:
/// each from the start of its `[[services]]` line to the start of the next
/// header line that is not one of its sub-tables (`[services.check]`,
/// `[[services.endpoints]]`, ...), or the end of the text. `None` when the
/// text is not plainly laid out that way (or is not valid TOML).
pub(crate) fn service_ranges(text: &str) -> Option<Vec<Range<usize>>> {
    let b = text.as_bytes();
    let mut out: Vec<Range<usize>> = Vec::new();
    // The start of the service entry being read, if the last top-level
    // header was `[[services]]` or one of its sub-tables.
    let mut open: Option<usize> = None;
    let mut i = 0;
    while i < b.len() {
        let line_start = i;
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i < b.len() && b[i] == b'[' {
            let (header, end) = header(b, i)?;
            match header {
                Header::Service => {
                    if let Some(start) = open.take() {
                        out.push(start..line_start);
                    }
                    open = Some(line_start);
                }
                Header::ServiceSub => {
                    open?;
                }
                Header::Other => {
                    if let Some(start) = open.take() {
                        out.push(start..line_start);
                    }
                }
            };
            i = end;
        } else {
            i = value_line(b, i)?;
        }
    }
    if let Some(start) = open {
        out.push(start..b.len());
    }
    Some(out)
}

enum Header {
    /// `[[services]]`: a new entry.
    Service,
    /// A table inside the current entry.
    ServiceSub,
    Other,
}

/// A byte a TOML bare key may hold (letters, digits, `_` and `-`).
pub(super) fn is_bare(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Reads a header line from its `[`; the header's kind and the index just
/// past the line's end. Only bare keys: anything else gives up.
fn header(b: &[u8], mut i: usize) -> Option<(Header, usize)> {
    let array = b.get(i + 1) == Some(&b'[');
    i += if array { 2 } else { 1 };
    // Only the first key and how many there are decide the kind: no list
    // of them is kept (a file has tens of thousands of headers).
    let mut first: &[u8] = &[];
    let mut count = 0;
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        let start = i;
        while i < b.len() && is_bare(b[i]) {
            i += 1;
        }
        if i == start {
            return None;
        }
        if count == 0 {
            first = &b[start..i];
        }
        count += 1;
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        match b.get(i)? {
            b'.' => i += 1,
            b']' => break,
            _ => return None,
        }
    }
    i += 1;
    if array {
        if b.get(i) != Some(&b']') {
            return None;
        }
        i += 1;
    }
    let end = rest_of_line(b, i)?;
    let kind = match (first, count, array) {
        (b"services", 1, true) => Header::Service,
        // `[services]` itself, or a table of it outside any entry, is a
        // layout this scanner does not cut.
        (b"services", 1, false) => return None,
        (b"services", _, _) => Header::ServiceSub,
        _ => Header::Other,
    };
    Some((kind, end))
}

/// After a header: blanks and an optional comment to the end of the line;
/// the index just past the newline.
fn rest_of_line(b: &[u8], mut i: usize) -> Option<usize> {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t' || b[i] == b'\r') {
        i += 1;
    }
    match b.get(i) {
        None => Some(i),
        Some(b'\n') => Some(i + 1),
        Some(b'#') => Some(line_end(b, i)),
        Some(_) => None,
    }
}

/// The index just past the next newline (or the end).
fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p + 1)
}

/// Reads a line that is not a header (a key and value, a comment or
/// blank), with whatever lines its value continues onto (multi-line
/// strings, arrays and inline tables); the index just past its end.
fn value_line(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth: usize = 0;
    while i < b.len() {
        // Most bytes are none of the ones below: a table look-up skips
        // them for a fraction of the match's cost (a 10,000-service file
        // is read this way on every reload).
        if !SPECIAL[usize::from(b[i])] {
            i += 1;
            continue;
        }
        i = match b[i] {
            b'\n' if depth == 0 => return Some(i + 1),
            // To the newline, which the next turn reads.
            b'#' => b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |p| i + p),
            b'[' | b'{' => {
                depth += 1;
                i + 1
            }
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                i + 1
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => multi_line(b, i + 3, b'"')?,
            b'\'' if b[i..].starts_with(b"\'\'\'") => multi_line(b, i + 3, b'\'')?,
            b'"' => single_line(b, i + 1, b'"')?,
            b'\'' => single_line(b, i + 1, b'\'')?,
            _ => i + 1,
        };
    }
    (depth == 0).then_some(i)
}

/// The bytes [`value_line`] acts on.
const SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut k = 0;
    let bytes = b"\n#[]{}\"'";
    while k < bytes.len() {
        table[bytes[k] as usize] = true;
        k += 1;
    }
    table
};

/// A one-line string's body from `i`; the index just past its closing
/// quote. Basic strings (`"`) have backslash escapes, literal ones none.
fn single_line(b: &[u8], mut i: usize, quote: u8) -> Option<usize> {
    while i < b.len() {
        match b[i] {
            b'\n' => return None,
            b'\\' if quote == b'"' => i += 1,
            c if c == quote => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// A multi-line string's body from `i`; the index just past its closing
/// triple quote, with the up to two quotes TOML lets sit right before it.
fn multi_line(b: &[u8], mut i: usize, quote: u8) -> Option<usize> {
    while i < b.len() {
        if b[i] == b'\\' && quote == b'"' {
            i += 2;
            continue;
        }
        if b[i] == quote && b.get(i + 1) == Some(&quote) && b.get(i + 2) == Some(&quote) {
            let mut end = i + 3;
            let mut extra = 0;
            while extra < 2 && b.get(end) == Some(&quote) {
                end += 1;
                extra += 1;
            }
            return Some(end);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str) -> Option<Vec<&str>> {
        service_ranges(text).map(|rs| rs.into_iter().map(|r| &text[r]).collect())
    }

    #[test]
    fn each_entry_runs_to_the_next_header_outside_it() {
        let text = "[domain]\nname = \"x.\"\n[[services]]\nname = \"a\"\n[services.check]\nkind = \"none\"\n[[services.endpoints]]\nzone = \"z\"\n\n# between\n  [[services]] # b\nname = \"b\"\n[[zones]]\nname = \"z\"\n[[services]]\nname = \"c\"";
        let parts = cut(text).unwrap();
        assert_eq!(
            parts,
            [
                "[[services]]\nname = \"a\"\n[services.check]\nkind = \"none\"\n[[services.endpoints]]\nzone = \"z\"\n\n# between\n",
                "  [[services]] # b\nname = \"b\"\n",
                "[[services]]\nname = \"c\"",
            ]
        );
    }

    #[test]
    fn brackets_inside_strings_comments_and_values_are_not_headers() {
        let text = "[[services]]\nname = \"a\"\nfallback = [\n[\"x\"],\n]\nnote = \"\"\"\n[[zones]]\n\"\"\"\nlit = '''\n[x]'''''\nq = \"\\\"[y]\"\n# [[zones]]\ngeo = { default = [\"z\"] }\n[[zones]]\nname = \"z\"\n";
        let parts = cut(text).unwrap();
        assert_eq!(parts.len(), 1);
        assert!(
            parts[0].ends_with("geo = { default = [\"z\"] }\n"),
            "{parts:?}"
        );
    }

    #[test]
    fn layouts_it_does_not_cut_give_up() {
        // A quoted key, a service sub-table outside an entry, `[services]`,
        // an unterminated string, an unclosed array.
        for text in [
            "[[\"services\"]]\nname = \"a\"\n",
            "[services.check]\nkind = \"none\"\n",
            "[services]\n",
            "[[services]]\nname = \"a\n",
            "[[services]]\nfallback = [\"a\"\n",
            "[[services]] x\n",
        ] {
            assert_eq!(cut(text), None, "{text}");
        }
    }

    #[test]
    fn no_services_is_no_ranges() {
        assert_eq!(
            cut("[domain]\nname = \"x.\"\n").unwrap(),
            Vec::<&str>::new()
        );
    }
}
