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
    /// relative to it, an absolute name must be inside the domain.
    pub fn owner(&self, text: &str) -> Result<Name, Complaint> {
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
