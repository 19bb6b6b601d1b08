//! Names as written in the config, resolved against the apex.

use hickory_proto::rr::Name;

use super::values::Complaint;

/// Resolves names against the domain's apex.
pub(super) struct Names {
    pub apex: Name,
}

impl Names {
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
            name.clone().append_domain(&self.apex).unwrap_or(name)
        }
    }
}
