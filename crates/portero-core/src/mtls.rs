//! Mutual TLS (RFC 8705): the client certificate a request came with, what authenticating by it
//! compares (§2.1 subject DN, §2.2 public key), and certificate-bound tokens (§3, `x5t#S256`).
//!
//! The HTTP layer hands over the leaf certificate (DER) and whether it chained to the configured
//! client CA (`tls_client_ca` over direct TLS; a trusted proxy's `Client-Cert` header counts as
//! chained, the proxy having verified it). Nothing of a certificate is logged but its thumbprint.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::OAuthError;
use crate::store::Client;
use portero_wire::Confirmation;

/// The largest client certificate accepted (DER bytes): a leaf with a 4096-bit RSA key and
/// ordinary extensions is under 2 KiB.
pub const MAX_CERT_BYTES: usize = 16 * 1024;

/// The longest subject DN a client may be registered with.
pub const MAX_DN_CHARS: usize = 1024;

/// A client certificate, parsed once: its thumbprint, subject and public key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    thumbprint: String,
    /// The subject in sequence order, each RDN's attributes normalized and sorted; `None` when
    /// an attribute is not text (such a certificate cannot match a registered DN).
    subject: Option<Vec<Vec<(String, String)>>>,
    key: CertKey,
    chained: bool,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint)
            .field("chained", &self.chained)
            .finish_non_exhaustive()
    }
}

/// A certificate's public key, in the form its JWK would carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CertKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    P256 {
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
    /// A key type no JWK of a client can match.
    Other,
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("the client certificate is larger than {MAX_CERT_BYTES} bytes")]
    TooLarge,
    #[error("the client certificate is not a DER X.509 certificate")]
    Malformed,
}

impl ClientCertificate {
    /// Parses the leaf certificate `der`; `chained` says whether it chained to the client CA.
    pub fn from_der(der: &[u8], chained: bool) -> Result<Self, CertError> {
        if der.len() > MAX_CERT_BYTES {
            return Err(CertError::TooLarge);
        }
        let (rest, cert) = X509Certificate::from_der(der).map_err(|_| CertError::Malformed)?;
        if !rest.is_empty() {
            return Err(CertError::Malformed);
        }
        let subject = cert
            .subject()
            .iter()
            .map(|rdn| {
                let mut attributes = rdn
                    .iter()
                    .map(|atv| Some((atv.attr_type().to_id_string(), normalize_value(atv.as_str().ok()?))))
                    .collect::<Option<Vec<_>>>()?;
                attributes.sort();
                Some(attributes)
            })
            .collect::<Option<Vec<_>>>();
        Ok(Self { thumbprint: thumbprint(der), subject, key: cert_key(&cert), chained })
    }

    /// `base64url(SHA-256(DER))`, the `x5t#S256` of RFC 8705 §3.1.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Whether the certificate chained to the configured client CA (or came from the trusted proxy).
    pub fn chained(&self) -> bool {
        self.chained
    }

    /// Whether the subject is `dn` (RFC 4514 string form), compared attribute by attribute,
    /// case- and space-insensitively (RFC 8705 §2.1.2, RFC 4517 distinguishedNameMatch).
    pub fn subject_is(&self, dn: &str) -> bool {
        match (&self.subject, parse_dn(dn)) {
            (Some(subject), Ok(registered)) => *subject == registered,
            _ => false,
        }
    }

    /// Whether the certificate's public key is the key of one of the JWKs of `jwks` (a JWK Set,
    /// JSON text): the key material itself is compared, not a `kid` (RFC 8705 §2.2).
    pub fn key_in(&self, jwks: &str) -> bool {
        let Ok(set) = serde_json::from_str::<Value>(jwks) else {
            return false;
        };
        let keys = set.get("keys").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        self.key != CertKey::Other && keys.iter().any(|jwk| jwk_key(jwk).as_ref() == Some(&self.key))
    }
}

/// `base64url(SHA-256(der))`.
pub fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

fn cert_key(cert: &X509Certificate<'_>) -> CertKey {
    let spki = cert.public_key();
    let bits = spki.subject_public_key.data.as_ref();
    match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.1" => match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
                CertKey::Rsa { n: unsigned(rsa.modulus).to_vec(), e: unsigned(rsa.exponent).to_vec() }
            }
            _ => CertKey::Other,
        },
        "1.2.840.10045.2.1" => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
            match (curve.as_deref(), bits) {
                (Some("1.2.840.10045.3.1.7"), [0x04, point @ ..]) if point.len() == 64 => {
                    CertKey::P256 { x: point[..32].to_vec(), y: point[32..].to_vec() }
                }
                _ => CertKey::Other,
            }
        }
        "1.3.101.112" if bits.len() == 32 => CertKey::Ed25519 { x: bits.to_vec() },
        _ => CertKey::Other,
    }
}

/// The key of a public JWK (`RSA`, `EC` on P-256, `OKP` Ed25519), as a certificate carries it.
fn jwk_key(jwk: &Value) -> Option<CertKey> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let bytes = |name: &str| URL_SAFE_NO_PAD.decode(member(name)?.trim_end_matches('=')).ok();
    match (member("kty")?, member("crv")) {
        ("RSA", _) => Some(CertKey::Rsa { n: unsigned(&bytes("n")?).to_vec(), e: unsigned(&bytes("e")?).to_vec() }),
        ("EC", Some("P-256")) => Some(CertKey::P256 { x: bytes("x")?, y: bytes("y")? }),
        ("OKP", Some("Ed25519")) => Some(CertKey::Ed25519 { x: bytes("x")? }),
        _ => None,
    }
}

/// A big-endian integer without its leading zero bytes (DER adds one to keep it positive).
fn unsigned(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The short names of RFC 4514 §3 (and the common `emailAddress`), by OID.
const ATTRIBUTE_NAMES: [(&str, &str); 11] = [
    ("CN", "2.5.4.3"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1"),
];

/// The OID of an attribute type written as a short name (any case) or as a dotted OID.
fn attribute_oid(name: &str) -> Option<String> {
    let upper = name.trim().to_ascii_uppercase();
    let upper = upper.strip_prefix("OID.").unwrap_or(&upper);
    if let Some((_, oid)) = ATTRIBUTE_NAMES.iter().find(|(short, _)| *short == upper) {
        return Some((*oid).to_owned());
    }
    if upper == "E" {
        return Some("1.2.840.113549.1.9.1".to_owned());
    }
    let dotted = !upper.is_empty() && upper.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    dotted.then(|| upper.to_owned())
}

/// Case- and space-insensitive form of an attribute value.
fn normalize_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Parses an RFC 4514 DN string (`CN=client,O=Acme\, Inc.,C=PE`) into the certificate's
/// sequence order (the string lists the last RDN first), values normalized, each RDN's
/// attributes sorted. Hex-encoded values (`#04..`) are not accepted.
pub fn parse_dn(text: &str) -> Result<Vec<Vec<(String, String)>>, &'static str> {
    if text.trim().is_empty() || text.chars().count() > MAX_DN_CHARS || text.chars().any(char::is_control) {
        return Err("the subject DN must be 1 to 1024 characters of text");
    }
    let mut rdns: Vec<Vec<(String, String)>> = vec![Vec::new()];
    let mut field = String::new();
    let mut name: Option<String> = None;
    let mut chars = text.chars().peekable();
    let finish = |name: &mut Option<String>, field: &mut String, rdn: &mut Vec<(String, String)>| {
        let Some(kind) = name.take() else { return Err("every attribute needs TYPE=value") };
        let oid = attribute_oid(&kind).ok_or("unknown attribute type (use CN, O, OU, C, L, ST, DC, UID or an OID)")?;
        let value = std::mem::take(field);
        if value.trim().starts_with('#') {
            return Err("hex-encoded attribute values are not supported");
        }
        rdn.push((oid, normalize_value(&value)));
        Ok(())
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next().ok_or("the DN ends in a lone backslash")?;
                if next.is_ascii_hexdigit() {
                    let low = chars.next().filter(char::is_ascii_hexdigit).ok_or("a bad \\XX escape")?;
                    let mut bytes =
                        vec![u8::from_str_radix(&format!("{next}{low}"), 16).map_err(|_| "a bad \\XX escape")?];
                    // A multi-byte UTF-8 character is written as several \XX escapes.
                    while std::str::from_utf8(&bytes).is_err() && bytes.len() < 4 {
                        let (Some('\\'), Some(h)) = (chars.next(), chars.next()) else {
                            return Err("a bad \\XX escape");
                        };
                        let l = chars.next().ok_or("a bad \\XX escape")?;
                        bytes.push(u8::from_str_radix(&format!("{h}{l}"), 16).map_err(|_| "a bad \\XX escape")?);
                    }
                    field.push_str(std::str::from_utf8(&bytes).map_err(|_| "a \\XX escape that is not UTF-8")?);
                } else {
                    field.push(next);
                }
            }
            '=' if name.is_none() => name = Some(std::mem::take(&mut field)),
            '+' => {
                let rdn = rdns.last_mut().ok_or("empty DN")?;
                finish(&mut name, &mut field, rdn)?;
            }
            ',' | ';' => {
                let rdn = rdns.last_mut().ok_or("empty DN")?;
                finish(&mut name, &mut field, rdn)?;
                rdns.push(Vec::new());
            }
            _ => field.push(c),
        }
    }
    let rdn = rdns.last_mut().ok_or("empty DN")?;
    finish(&mut name, &mut field, rdn)?;
    for rdn in &mut rdns {
        rdn.sort();
    }
    rdns.reverse();
    Ok(rdns)
}

/// RFC 8705 §3: the confirmation of a token issued to `client` on a request that presented
/// `certificate`, added to what the DPoP check gave (`cnf`; a request with both a proof and a
/// certificate gets both members). Only clients registered with
/// `tls_client_certificate_bound_access_tokens` get certificate-bound tokens.
pub fn confirm(
    client: &Client,
    certificate: Option<&ClientCertificate>,
    cnf: Option<Confirmation>,
) -> Result<Option<Confirmation>, OAuthError> {
    if !client.tls_bound_tokens {
        return Ok(cnf);
    }
    let Some(certificate) = certificate else {
        // RFC 8705 names no error for this; the request lacks what this client's registration
        // requires of every request, which is RFC 6749 §5.2's `invalid_request` (the client is
        // authenticated and allowed the grant, so neither invalid_client nor unauthorized_client).
        return Err(OAuthError::invalid_request(
            "this client's tokens are bound to its TLS client certificate: connect with it",
        )
        .with_detail(format!("client {:?} sent no client certificate", client.id)));
    };
    let mut cnf = cnf.unwrap_or_default();
    cnf.x5t_s256 = Some(certificate.thumbprint().to_owned());
    Ok(Some(cnf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(text: &str) -> Vec<Vec<(String, String)>> {
        parse_dn(text).unwrap()
    }

    #[test]
    fn dns_compare_in_normal_form() {
        assert_eq!(dn("CN=Client A,O=Acme"), dn("cn=client  a , o=ACME"));
        assert_eq!(
            dn("CN=a,O=Acme\\, Inc."),
            vec![vec![("2.5.4.10".to_owned(), "acme, inc.".to_owned())], vec![("2.5.4.3".to_owned(), "a".to_owned())]]
        );
        assert_eq!(dn("CN=a+UID=b,O=x"), dn("UID=b+CN=a,O=x"));
        assert_eq!(dn("2.5.4.3=a"), dn("CN=a"));
        assert_eq!(dn("CN=caf\\C3\\A9"), dn("CN=café"));
        assert_ne!(dn("CN=a,O=b"), dn("O=b,CN=a"), "RDN order matters");
        for bad in ["", "CN", "XX=a", "CN=#0403", "CN=a\\", "CN=\u{0}"] {
            assert!(parse_dn(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn leading_zeros_do_not_count() {
        assert_eq!(unsigned(&[0, 0, 1, 0]), &[1, 0]);
        assert_eq!(unsigned(&[0]), &[] as &[u8]);
    }
}
