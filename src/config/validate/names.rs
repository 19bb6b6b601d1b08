//! Names as written in the config, resolved against the apex.

use std::cell::RefCell;

use hickory_proto::rr::Name;

use super::values::Complaint;

/// Resolves names against the domain's apex.
pub(super) struct Names {
    pub apex: Name,
    /// Relative names as written that read like fully qualified ones
    /// (see [`Names::looks_fully_qualified`]), for warnings.
    pub suspicious: RefCell<Vec<String>>,
}

impl Names {
    pub fn new(apex: Name) -> Names {
        Names {
            apex,
            suspicious: RefCell::new(Vec::new()),
        }
    }

    /// A relative name that reads as fully qualified: it ends with the
    /// domain itself (`www.lb.corp.test` in `lb.corp.test.`, which means
    /// `www.lb.corp.test.lb.corp.test.`), or has three or more labels and
    /// ends in the domain's top-level label (`lb.other.test` in
    /// `lb.corp.test.`). Either way the trailing dot was probably forgotten.
    fn looks_fully_qualified(&self, text: &str) -> bool {
        if text.ends_with('.') || !text.contains('.') {
            return false;
        }
        let text = text.to_ascii_lowercase();
        let apex = self.apex.to_ascii().to_ascii_lowercase();
        let apex = apex.trim_end_matches('.');
        if text == apex || text.ends_with(&format!(".{apex}")) {
            return true;
        }
        let top = apex.rsplit('.').next().unwrap_or(apex);
        text.split('.').count() >= 3 && text.rsplit('.').next() == Some(top)
    }

    fn note(&self, text: &str) {
        if self.looks_fully_qualified(text) {
            self.suspicious.borrow_mut().push(text.to_string());
        }
    }

    /// The warning for a name [`Names::note`] kept: message and hint.
    pub fn warning(&self, text: &str) -> Complaint {
        let meant = format!("{text}.");
        let apex = self.apex.to_ascii();
        let apex_bare = apex.trim_end_matches('.');
        let as_written = format!("{text}.{apex}");
        let relative = text
            .to_ascii_lowercase()
            .strip_suffix(&format!(".{}", apex_bare.to_ascii_lowercase()))
            .map(|r| text[..r.len()].to_string());
        let hint = match relative {
            Some(r) => {
                format!("if you meant `{meant}`, end it with a dot, or write it relative: `{r}`")
            }
            None => format!("if you meant `{meant}`, end it with a dot"),
        };
        (
            format!(
                "`{text}` has no trailing dot, so it is relative to the domain and means `{as_written}`"
            ),
            hint,
        )
    }

    /// An owner name: `@` is the apex, a name without a trailing dot is
    /// relative to it, an absolute name must be inside the domain. A
    /// wildcard (RFC 4592) is `*` as the whole leftmost label, nowhere else.
    pub fn owner(&self, text: &str) -> Result<Name, Complaint> {
        // Checked on the text, before the name parser's own complaint
        // about `*` inside a label, so the error says what a wildcard is.
        let labels = text.trim().trim_end_matches('.').split('.');
        if labels
            .enumerate()
            .any(|(at, label)| label.contains('*') && (at != 0 || label != "*"))
        {
            return Err((
                format!(
                    "`{text}` has `*` where a wildcard cannot be: only a leftmost label of `*` alone is one"
                ),
                "write a wildcard as `*.name` (e.g. `*.apps`, or `*` for every name in the domain)"
                    .to_string(),
            ));
        }
        let name = self.any(text)?;
        if !self.apex.zone_of(&name) {
            return Err((
                format!("`{text}` is outside the domain `{}`", self.apex),
                format!(
                    "write it relative to the domain (without a trailing dot) or as a name ending in `{}`",
                    self.apex
                ),
            ));
        }
        Ok(name)
    }

    /// Any name: relative names are completed with the apex.
    pub fn any(&self, text: &str) -> Result<Name, Complaint> {
        let text = text.trim();
        if text == "@" {
            return Ok(self.apex.clone());
        }
        self.note(text);
        if text.is_empty() || text.contains(char::is_whitespace) || text.contains("..") {
            return Err((
                format!("`{text}` is not a domain name"),
                "use dot-separated labels of letters, digits and hyphens".to_string(),
            ));
        }
        let name = Name::from_ascii(text).map_err(|e| {
            (
                format!("`{text}` is not a domain name: {e}"),
                "use dot-separated labels of letters, digits and hyphens".to_string(),
            )
        })?;
        if name.is_fqdn() {
            Ok(name)
        } else {
            name.append_domain(&self.apex).map_err(|e| {
                (
                    format!("`{text}` is too long once the domain is appended: {e}"),
                    "shorten the name".to_string(),
                )
            })
        }
    }

    /// A name from record data: completed with the apex when relative.
    pub fn absolutize(&self, name: Name) -> Name {
        if name.is_fqdn() {
            name
        } else {
            self.note(&name.to_ascii());
            name.clone().append_domain(&self.apex).unwrap_or(name)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const DOMAIN: &str = "[domain]\nname = \"t.example.\"\n[[domain.nameservers]]\nname = \"ns1\"\naddresses = [\"192.0.2.53\"]\n";

    fn problems(owner: &str, record_type: &str, data: &str) -> String {
        let text = format!(
            "{DOMAIN}[[records]]\nname = \"{owner}\"\ntype = \"{record_type}\"\ndata = \"{data}\"\n"
        );
        match Config::parse(&text, Path::new("t.toml")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_wildcard_is_a_whole_leftmost_star_label_only() {
        for good in ["*", "*.apps", "*.deep.apps", "*.t.example."] {
            assert_eq!(problems(good, "A", "192.0.2.1"), "", "{good}");
        }
        for bad in ["a*.b", "*.*", "x.*.y", "*a", "**.b", "b.*"] {
            let text = problems(bad, "A", "192.0.2.1");
            assert!(
                text.contains("has `*` where a wildcard cannot be") && text.contains("`*.name`"),
                "{bad}: {text}"
            );
        }
    }

    #[test]
    fn a_wildcard_cannot_be_a_delegation() {
        let text = problems("*.sub", "NS", "ns.elsewhere.example.");
        assert!(text.contains("cannot hold NS records"), "{text}");
        assert_eq!(problems("*.sub", "CNAME", "www"), "");
    }
}
