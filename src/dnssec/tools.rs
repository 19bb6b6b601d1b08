//! `meridian dnssec keygen` and `meridian dnssec ds`: the library half, so
//! the binary only parses arguments and prints.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use super::canonical;
use super::key::{Algorithm, KeyError, SigningKey};
use crate::config::Config;

/// Why a key could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot write {path}: {cause}; choose a directory you may write to with --out-dir")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// The files `keygen` wrote.
#[derive(Debug)]
pub struct Generated {
    /// PKCS#8 PEM, mode 0600: name it in `[dnssec] key_file`.
    pub private: PathBuf,
    /// The DNSKEY line: a trust anchor, or a `publish` entry in a rollover.
    pub public: PathBuf,
    pub key_tag: u16,
}

/// Makes a key pair for `domain` in `dir`, named as BIND names its keys
/// (`K<domain>+<algorithm>+<tag>`), `.pem` for the private half and `.key`
/// for the DNSKEY. Never overwrites a file.
pub fn keygen(domain: &Name, algorithm: Algorithm, dir: &Path) -> Result<Generated, ToolError> {
    let (pem, key) = SigningKey::generate(algorithm)?;
    let dnskey = key.dnskey();
    let owner = domain.to_lowercase().to_ascii();
    let stem = format!("K{owner}+{:03}+{:05}", algorithm.number(), dnskey.key_tag());
    let private = dir.join(format!("{stem}.pem"));
    let public = dir.join(format!("{stem}.key"));
    write_new(&private, pem.as_bytes(), 0o600)?;
    let line = format!(
        "; {} key for {owner}, tag {}\n{}\n",
        algorithm.mnemonic(),
        dnskey.key_tag(),
        dnskey.text(&owner, 3600)
    );
    write_new(&public, line.as_bytes(), 0o644)?;
    Ok(Generated {
        private,
        public,
        key_tag: dnskey.key_tag(),
    })
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ToolError> {
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|cause| ToolError::Write {
        path: path.to_path_buf(),
        cause,
    })
}

/// The DS records (SHA-256) of every key with the SEP flag the config
/// publishes, the signing key first: what to give the parent.
pub fn ds_records(config: &Config) -> Vec<String> {
    let Some(dnssec) = &config.dnssec else {
        return Vec::new();
    };
    let owner = config.domain.name.to_lowercase().to_ascii();
    let wire = canonical::name_wire(&config.domain.name);
    std::iter::once(dnssec.key.dnskey())
        .chain(dnssec.published.iter())
        .filter(|k| k.flags & 1 == 1)
        .map(|k| k.ds_text(&owner, &wire))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::dnssec::key::Dnskey;

    #[test]
    fn keygen_writes_a_private_key_only_its_owner_reads_and_a_matching_dnskey() {
        let dir = std::env::temp_dir().join(format!("meridian-keygen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let domain = Name::from_ascii("GSLB.example.").unwrap();
        let made = keygen(&domain, Algorithm::Ed25519, &dir).unwrap();
        let mode = std::fs::metadata(&made.private)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let key = SigningKey::from_pem(&std::fs::read_to_string(&made.private).unwrap()).unwrap();
        let (owner, public) =
            Dnskey::parse(&std::fs::read_to_string(&made.public).unwrap()).unwrap();
        assert_eq!(owner, "gslb.example.");
        assert_eq!(&public, key.dnskey());
        assert_eq!(made.key_tag, public.key_tag());
        assert!(
            made.private
                .to_string_lossy()
                .contains(&format!("Kgslb.example.+015+{:05}", made.key_tag))
        );
        // Never overwritten.
        let again = write_new(&made.private, b"x", 0o600);
        assert!(matches!(again, Err(ToolError::Write { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
