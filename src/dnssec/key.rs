//! DNSSEC keys: the signing key read from its file, DNSKEY records, key
//! tags and DS digests.
//!
//! File formats, chosen so standard tools can read them:
//! - the private key is PKCS#8 in PEM (`-----BEGIN PRIVATE KEY-----`), as
//!   `openssl pkey` reads and writes it; the algorithm is the key's own
//!   (P-256 for algorithm 13, Ed25519 for 15);
//! - the public key is one DNSKEY line in presentation format
//!   (`gslb.example. 3600 IN DNSKEY 257 3 13 <base64>`), which unbound
//!   takes as a trust anchor as is.
//!
//! Every key Meridian makes is a combined signing key (CSK): flags 257,
//! the secure entry point bit set, so its DS goes to the parent and it
//! signs every set in the domain.

use std::fmt;

use data_encoding::BASE64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

/// DNSKEY flags of a combined signing key: zone key (256) + SEP (1).
pub const CSK_FLAGS: u16 = 257;

/// The signing algorithms Meridian offers (RFC 8624 recommends both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// 13: ECDSA on P-256 with SHA-256 (RFC 6605), the default.
    EcdsaP256Sha256,
    /// 15: Ed25519 (RFC 8080).
    Ed25519,
}

impl Algorithm {
    pub fn number(self) -> u8 {
        match self {
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::Ed25519 => 15,
        }
    }

    pub fn from_number(number: u8) -> Option<Algorithm> {
        match number {
            13 => Some(Algorithm::EcdsaP256Sha256),
            15 => Some(Algorithm::Ed25519),
            _ => None,
        }
    }

    /// The name or number an operator writes: `ecdsap256sha256` or `13`,
    /// `ed25519` or `15`, any case.
    pub fn parse(text: &str) -> Option<Algorithm> {
        match text.trim().to_ascii_lowercase().as_str() {
            "13" | "ecdsap256sha256" | "ecdsa-p256-sha256" => Some(Algorithm::EcdsaP256Sha256),
            "15" | "ed25519" => Some(Algorithm::Ed25519),
            _ => None,
        }
    }

    pub fn mnemonic(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Algorithm::Ed25519 => "ED25519",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.number(), self.mnemonic())
    }
}

/// Why a key file cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no PEM `PRIVATE KEY` block; write the key as PKCS#8 PEM, e.g. with `meridian dnssec keygen`"
    )]
    NotPem,
    #[error("the PEM block is not valid base64; regenerate the key with `meridian dnssec keygen`")]
    BadBase64,
    #[error(
        "the key is neither an ECDSA P-256 nor an Ed25519 PKCS#8 key ({0}); Meridian signs with algorithms 13 and 15 only"
    )]
    Unsupported(String),
    #[error(
        "not a DNSKEY line; expected `<name> [ttl] [IN] DNSKEY <flags> 3 <algorithm> <base64>`"
    )]
    NotDnskey,
    #[error("DNSKEY algorithm {0} is not supported; use 13 (ECDSAP256SHA256) or 15 (ED25519)")]
    Algorithm(u8),
    #[error("cannot generate a key: the system's random source failed")]
    Random,
}

/// The public half as a DNSKEY's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dnskey {
    pub flags: u16,
    pub algorithm: Algorithm,
    /// The public key as DNSKEY carries it: X||Y for P-256 (RFC 6605
    /// section 4), the 32 raw bytes for Ed25519.
    pub public: Vec<u8>,
}

impl Dnskey {
    /// DNSKEY RDATA (RFC 4034 section 2.1): flags, protocol 3, algorithm, key.
    pub fn rdata(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.public.len());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.push(3);
        out.push(self.algorithm.number());
        out.extend_from_slice(&self.public);
        out
    }

    /// The key tag (RFC 4034 appendix B), which RRSIG and DS name the key by.
    pub fn key_tag(&self) -> u16 {
        let mut sum: u32 = 0;
        for (i, byte) in self.rdata().iter().enumerate() {
            sum += if i % 2 == 0 {
                u32::from(*byte) << 8
            } else {
                u32::from(*byte)
            };
        }
        sum += (sum >> 16) & 0xffff;
        (sum & 0xffff) as u16
    }

    /// The SHA-256 DS digest (RFC 4509): over the owner's canonical wire
    /// form and the DNSKEY RDATA.
    pub fn ds_digest(&self, owner_wire: &[u8]) -> Vec<u8> {
        let mut data = owner_wire.to_vec();
        data.extend_from_slice(&self.rdata());
        ring::digest::digest(&ring::digest::SHA256, &data)
            .as_ref()
            .to_vec()
    }

    /// The DS record in presentation format, for the parent.
    pub fn ds_text(&self, owner: &str, owner_wire: &[u8]) -> String {
        format!(
            "{owner} IN DS {} {} 2 {}",
            self.key_tag(),
            self.algorithm.number(),
            data_encoding::HEXUPPER.encode(&self.ds_digest(owner_wire))
        )
    }

    /// The DNSKEY record in presentation format.
    pub fn text(&self, owner: &str, ttl: u32) -> String {
        format!(
            "{owner} {ttl} IN DNSKEY {} 3 {} {}",
            self.flags,
            self.algorithm.number(),
            BASE64.encode(&self.public)
        )
    }

    /// Reads a DNSKEY line (comments after `;` and blank lines ignored):
    /// the owner, then optional TTL and class, `DNSKEY`, flags, protocol,
    /// algorithm and the base64 key (which may be split by spaces).
    pub fn parse(text: &str) -> Result<(String, Dnskey), KeyError> {
        let line = text
            .lines()
            .map(|l| l.split(';').next().unwrap_or("").trim())
            .find(|l| !l.is_empty())
            .ok_or(KeyError::NotDnskey)?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let at = fields
            .iter()
            .position(|f| f.eq_ignore_ascii_case("DNSKEY"))
            .ok_or(KeyError::NotDnskey)?;
        if at == 0 || fields.len() < at + 5 {
            return Err(KeyError::NotDnskey);
        }
        let flags: u16 = fields[at + 1].parse().map_err(|_| KeyError::NotDnskey)?;
        if fields[at + 2] != "3" {
            return Err(KeyError::NotDnskey);
        }
        let number: u8 = fields[at + 3].parse().map_err(|_| KeyError::NotDnskey)?;
        let algorithm = Algorithm::from_number(number).ok_or(KeyError::Algorithm(number))?;
        let public = BASE64
            .decode(fields[at + 4..].concat().as_bytes())
            .map_err(|_| KeyError::BadBase64)?;
        let expected = match algorithm {
            Algorithm::EcdsaP256Sha256 => 64,
            Algorithm::Ed25519 => 32,
        };
        if public.len() != expected {
            return Err(KeyError::NotDnskey);
        }
        Ok((
            fields[0].to_string(),
            Dnskey {
                flags,
                algorithm,
                public,
            },
        ))
    }

    /// Checks `signature` over `data` with this key (ring's verifier), so
    /// tests can show a signature validates without a resolver.
    pub fn verify(&self, data: &[u8], signature: &[u8]) -> bool {
        match self.algorithm {
            Algorithm::EcdsaP256Sha256 => {
                let mut point = vec![4u8];
                point.extend_from_slice(&self.public);
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(data, signature)
                    .is_ok()
            }
            Algorithm::Ed25519 => {
                signature::UnparsedPublicKey::new(&signature::ED25519, &self.public)
                    .verify(data, signature)
                    .is_ok()
            }
        }
    }
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// The private key that signs, with its DNSKEY.
pub struct SigningKey {
    pair: Pair,
    dnskey: Dnskey,
    /// ECDSA needs fresh randomness per signature; `SystemRandom` is a
    /// handle to the OS source, cheap to keep.
    random: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private half is never printed.
        f.debug_struct("SigningKey")
            .field("algorithm", &self.dnskey.algorithm)
            .field("key_tag", &self.dnskey.key_tag())
            .finish()
    }
}

impl SigningKey {
    /// Reads a PKCS#8 PEM private key of either algorithm.
    pub fn from_pem(text: &str) -> Result<SigningKey, KeyError> {
        let der = pem_body(text)?;
        let random = SystemRandom::new();
        let ecdsa =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &random);
        let (pair, algorithm, public) = match ecdsa {
            Ok(pair) => {
                let public = pair.public_key().as_ref()[1..].to_vec();
                (Pair::Ecdsa(pair), Algorithm::EcdsaP256Sha256, public)
            }
            Err(ecdsa_err) => match Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
                Ok(pair) => {
                    let public = pair.public_key().as_ref().to_vec();
                    (Pair::Ed25519(pair), Algorithm::Ed25519, public)
                }
                Err(_) => return Err(KeyError::Unsupported(ecdsa_err.to_string())),
            },
        };
        Ok(SigningKey {
            pair,
            dnskey: Dnskey {
                flags: CSK_FLAGS,
                algorithm,
                public,
            },
            random,
        })
    }

    /// A new key pair: the private key as PKCS#8 PEM, and the key itself.
    pub fn generate(algorithm: Algorithm) -> Result<(String, SigningKey), KeyError> {
        let random = SystemRandom::new();
        let der = match algorithm {
            Algorithm::EcdsaP256Sha256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &random)
            }
            Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&random),
        }
        .map_err(|_| KeyError::Random)?;
        let pem = to_pem(der.as_ref());
        let key = SigningKey::from_pem(&pem)?;
        Ok((pem, key))
    }

    pub fn dnskey(&self) -> &Dnskey {
        &self.dnskey
    }

    pub fn algorithm(&self) -> Algorithm {
        self.dnskey.algorithm
    }

    /// Signs `data`: 64 bytes for both algorithms (r||s for P-256).
    /// `None` only if the OS random source fails (ECDSA).
    pub fn sign(&self, data: &[u8]) -> Option<Vec<u8>> {
        match &self.pair {
            Pair::Ecdsa(pair) => pair
                .sign(&self.random, data)
                .ok()
                .map(|s| s.as_ref().to_vec()),
            Pair::Ed25519(pair) => Some(pair.sign(data).as_ref().to_vec()),
        }
    }
}

fn to_pem(der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

fn pem_body(text: &str) -> Result<Vec<u8>, KeyError> {
    let start = text
        .find("-----BEGIN PRIVATE KEY-----")
        .ok_or(KeyError::NotPem)?;
    let rest = &text[start + "-----BEGIN PRIVATE KEY-----".len()..];
    let end = rest
        .find("-----END PRIVATE KEY-----")
        .ok_or(KeyError::NotPem)?;
    let body: String = rest[..end].split_whitespace().collect();
    BASE64
        .decode(body.as_bytes())
        .map_err(|_| KeyError::BadBase64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_reads_back_and_signs_verifiably_for_both_algorithms() {
        for algorithm in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
            let (pem, key) = SigningKey::generate(algorithm).unwrap();
            let again = SigningKey::from_pem(&pem).unwrap();
            assert_eq!(again.dnskey(), key.dnskey(), "{algorithm}");
            assert_eq!(key.algorithm(), algorithm);
            let signature = key.sign(b"some data").unwrap();
            assert_eq!(signature.len(), 64);
            assert!(key.dnskey().verify(b"some data", &signature));
            assert!(!key.dnskey().verify(b"other data", &signature));
            // The DNSKEY text reads back to the same key.
            let (owner, parsed) = Dnskey::parse(&key.dnskey().text("gslb.example.", 3600)).unwrap();
            assert_eq!(owner, "gslb.example.");
            assert_eq!(&parsed, key.dnskey());
        }
    }

    #[test]
    fn key_tag_and_ds_match_rfc_6605_example() {
        // RFC 6605 section 6.1: the example P-256 key, its tag and DS.
        let (_, key) = Dnskey::parse(
            "example.net. 3600 IN DNSKEY 257 3 13 ( \
             GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edb \
             krSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA== )"
                .replace(['(', ')'], "")
                .as_str(),
        )
        .unwrap();
        assert_eq!(key.key_tag(), 55648);
        let owner = [
            7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'n', b'e', b't', 0,
        ];
        assert_eq!(
            data_encoding::HEXUPPER.encode(&key.ds_digest(&owner)),
            "B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17"
        );
    }

    #[test]
    fn bad_files_are_named_errors() {
        assert_eq!(SigningKey::from_pem("hello").unwrap_err(), KeyError::NotPem);
        assert_eq!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----")
                .unwrap_err(),
            KeyError::BadBase64
        );
        assert!(matches!(
            SigningKey::from_pem(&to_pem(b"not a key")),
            Err(KeyError::Unsupported(_))
        ));
        assert_eq!(
            Dnskey::parse("x. IN DNSKEY 257 3 8 AAAA").unwrap_err(),
            KeyError::Algorithm(8)
        );
        assert_eq!(
            Dnskey::parse("x. IN A 1.2.3.4").unwrap_err(),
            KeyError::NotDnskey
        );
        for algorithm in ["13", "ECDSAP256SHA256", "15", "ed25519"] {
            assert!(Algorithm::parse(algorithm).is_some(), "{algorithm}");
        }
        assert!(Algorithm::parse("8").is_none());
    }
}
