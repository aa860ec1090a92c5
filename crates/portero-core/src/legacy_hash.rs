//! Password and secret hashes imported from other providers (issue 14): a provider's merchants
//! move to Portero without new credentials.
//!
//! An import row carries one of these, recognised by [`LegacyHash::parse_str`] or
//! [`LegacyHash::from_json`]:
//! - bcrypt: `$2a$`, `$2b$`, `$2y$` (all verified alike) and Spring Security's `{bcrypt}$2a$...`;
//! - PBKDF2: Keycloak's credential object `{"algorithm": "pbkdf2-sha256", "iterations": N,
//!   "salt": B64, "value": B64}` (`pbkdf2-sha512`, and `pbkdf2` = SHA-1), also as Keycloak's
//!   export shape with `secretData`/`credentialData` strings; Django's
//!   `pbkdf2_sha256$N$SALT$B64` (`pbkdf2_sha1` too; the salt is the raw string); and PHC
//!   `$pbkdf2-sha256$i=N,l=L$B64$B64` (what [`LegacyHash::to_stored`] writes);
//! - `$scrypt$ln=..,r=..,p=..$B64$B64` and `$argon2id$`, `$argon2i$`, `$argon2d$` PHC strings;
//! - `plain:SECRET`: a plaintext the caller hashes itself on import (`secret::hash_password`).
//!
//! Parsing is cheap and bounded, whatever the file holds: it never runs a hash (an import of a
//! million rows must not run a slow hash per row), and it refuses parameters that would make a
//! later [`LegacyHash::verify`] hostile (a bcrypt cost of 31, 2^40 PBKDF2 iterations, gigabytes
//! of scrypt or argon2 memory). `verify` is slow by design: run it on a blocking pool.
//!
//! Stored forms. [`LegacyHash::to_stored`] gives the canonical PHC/MCF string Portero keeps
//! until the user's next successful login rehashes it: `$2b$..`, `$pbkdf2-sha256$i=..,l=..$..`,
//! `$scrypt$..`, `$argon2i$..`. None of them starts with `secret.rs`'s `$s256$`; the only one
//! starting with `$argon2id$v=19$` is an argon2id hash, which `secret::verify_blocking` checks
//! the same way ([`LegacyHash::is_portero_native`]: nothing to rehash). An argon2id hash of the
//! old version 16 is stored as `$argon2id$v=16$...`, which `secret.rs` refuses rather than
//! misreads; route a stored hash here when [`is_legacy_stored`] says so.
//!
//! A leaf module: it uses no other module of this crate.

use std::fmt;
use std::num::NonZeroU32;

use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::{digest, pbkdf2};
use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Longest hash string (or plaintext) accepted, in bytes.
pub const MAX_INPUT_LEN: usize = 1024;
/// bcrypt costs accepted: 2^16 rounds is already ~5 s a check.
pub const BCRYPT_COSTS: (u32, u32) = (4, 16);
/// PBKDF2 iteration counts accepted.
pub const PBKDF2_ITERATIONS: (u32, u32) = (1, 10_000_000);
/// Largest scrypt `ln` (log2 N).
pub const SCRYPT_MAX_LOG_N: u8 = 20;
/// Most memory one check may take (scrypt's 128·r·N, argon2's m): 256 MiB.
pub const MAX_MEMORY_BYTES: u64 = 256 * 1024 * 1024;
/// Most scrypt work, 128·r·N·p bytes mixed: four passes over the largest memory.
pub const SCRYPT_MAX_WORK_BYTES: u64 = 4 * MAX_MEMORY_BYTES;
/// Most argon2 passes (t) and lanes (p).
pub const ARGON2_MAX_PASSES: u32 = 16;
pub const ARGON2_MAX_LANES: u32 = 16;
/// Salt lengths accepted, in bytes (argon2 needs at least 8).
pub const SALT_LEN: (usize, usize) = (1, 64);
/// Derived-key lengths accepted, in bytes. PBKDF2 past its digest size repeats all iterations per
/// extra block, so the bound also bounds its cost (4 blocks for SHA-1, Keycloak's legacy size).
pub const HASH_LEN: (usize, usize) = (16, 64);

const BCRYPT_PW_MAX: usize = 72;

/// Why an imported hash was refused. Never quotes the secret or its hash; names it quotes (an
/// unknown scheme or parameter) are cut to a few safe characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashFormatError {
    #[error("empty hash")]
    Empty,
    #[error("hash is {len} bytes long, more than the {max} accepted")]
    TooLong { len: usize, max: usize },
    #[error(
        "unknown hash format{}: expected $2a$/$2b$/$2y$ or {{bcrypt}} (bcrypt), a Keycloak PBKDF2 object, \
         pbkdf2_sha256$ (Django), $pbkdf2-sha256$, $scrypt$, $argon2id$/$argon2i$/$argon2d$, or plain:",
        scheme_note(.scheme)
    )]
    UnknownFormat { scheme: Option<String> },
    #[error("malformed {kind} hash: {reason}")]
    Malformed { kind: &'static str, reason: &'static str },
    #[error("{kind} {param} is not a whole decimal number")]
    NotANumber { kind: &'static str, param: &'static str },
    #[error("{kind} {param} {value} is out of bounds ({min}..={max})")]
    OutOfBounds { kind: &'static str, param: &'static str, value: String, min: u64, max: u64 },
    #[error("{kind} {field} is not valid base64")]
    BadBase64 { kind: &'static str, field: &'static str },
    #[error("{kind} {field} is {len} bytes long, out of bounds ({min}..={max})")]
    BadLength { kind: &'static str, field: &'static str, len: usize, min: usize, max: usize },
    #[error("unsupported {kind} {what} `{value}`")]
    Unsupported { kind: &'static str, what: &'static str, value: String },
    #[error("not a stored hash: {0}")]
    NotStored(&'static str),
}

fn scheme_note(scheme: &Option<String>) -> String {
    scheme.as_ref().map(|s| format!(" `{s}`")).unwrap_or_default()
}

/// A name from the input, safe to put in an error or a log: at most 32 characters of
/// `[A-Za-z0-9_.-]`, anything else shown as `?`.
fn safe_name(name: &str) -> String {
    name.chars().take(32).map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '?' }).collect()
}

type Result<T> = std::result::Result<T, HashFormatError>;

/// An imported hash, parsed and bounded; see the module documentation for the forms.
///
/// Debug output shows the scheme and its cost parameters, never salts, hashes or plaintexts.
/// `PartialEq` is for tests and bookkeeping and is not constant-time: check a secret with
/// [`verify`](Self::verify).
#[derive(Clone, PartialEq, Eq)]
pub enum LegacyHash {
    Bcrypt(BcryptHash),
    Pbkdf2(Pbkdf2Hash),
    Scrypt(ScryptHash),
    Argon2(Argon2Hash),
    /// A plaintext to hash on import; wiped from memory when dropped.
    Plain(PlainSecret),
}

impl fmt::Debug for LegacyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bcrypt(h) => f.debug_tuple("Bcrypt").field(h).finish(),
            Self::Pbkdf2(h) => f.debug_tuple("Pbkdf2").field(h).finish(),
            Self::Scrypt(h) => f.debug_tuple("Scrypt").field(h).finish(),
            Self::Argon2(h) => f.debug_tuple("Argon2").field(h).finish(),
            Self::Plain(p) => f.debug_tuple("Plain").field(p).finish(),
        }
    }
}

/// bcrypt's `2a`/`2b`/`2y` letter, kept so the stored form reads as the import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BcryptVariant {
    A,
    B,
    Y,
}

#[derive(Clone, PartialEq, Eq)]
pub struct BcryptHash {
    variant: BcryptVariant,
    cost: u32,
    salt: [u8; 16],
    hash: [u8; 23],
}

impl BcryptHash {
    pub fn variant(&self) -> BcryptVariant {
        self.variant
    }
    pub fn cost(&self) -> u32 {
        self.cost
    }
}

impl fmt::Debug for BcryptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BcryptHash").field("variant", &self.variant).field("cost", &self.cost).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pbkdf2Digest {
    /// Keycloak's legacy `pbkdf2`, Django's `pbkdf2_sha1`.
    Sha1,
    Sha256,
    Sha512,
}

impl Pbkdf2Digest {
    fn algorithm(self) -> pbkdf2::Algorithm {
        match self {
            Self::Sha1 => pbkdf2::PBKDF2_HMAC_SHA1,
            Self::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// The PHC identifier, as the RustCrypto `pbkdf2` crate and passlib name it.
    fn phc_id(self) -> &'static str {
        match self {
            Self::Sha1 => "pbkdf2",
            Self::Sha256 => "pbkdf2-sha256",
            Self::Sha512 => "pbkdf2-sha512",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Pbkdf2Hash {
    digest: Pbkdf2Digest,
    iterations: NonZeroU32,
    salt: Vec<u8>,
    value: Vec<u8>,
}

impl Pbkdf2Hash {
    pub fn digest(&self) -> Pbkdf2Digest {
        self.digest
    }
    pub fn iterations(&self) -> u32 {
        self.iterations.get()
    }
}

impl fmt::Debug for Pbkdf2Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pbkdf2Hash")
            .field("digest", &self.digest)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct ScryptHash {
    log_n: u8,
    r: u32,
    p: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl ScryptHash {
    /// `(ln, r, p)`.
    pub fn params(&self) -> (u8, u32, u32) {
        (self.log_n, self.r, self.p)
    }
}

impl fmt::Debug for ScryptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScryptHash")
            .field("ln", &self.log_n)
            .field("r", &self.r)
            .field("p", &self.p)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Argon2Variant {
    Argon2d,
    Argon2i,
    Argon2id,
}

impl Argon2Variant {
    fn id(self) -> &'static str {
        match self {
            Self::Argon2d => "argon2d",
            Self::Argon2i => "argon2i",
            Self::Argon2id => "argon2id",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Argon2Hash {
    variant: Argon2Variant,
    /// 0x10 or 0x13.
    version: u32,
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Argon2Hash {
    pub fn variant(&self) -> Argon2Variant {
        self.variant
    }
    /// `(m KiB, t, p)`.
    pub fn params(&self) -> (u32, u32, u32) {
        (self.m_cost, self.t_cost, self.p_cost)
    }
}

impl fmt::Debug for Argon2Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2Hash")
            .field("variant", &self.variant)
            .field("version", &self.version)
            .field("m", &self.m_cost)
            .field("t", &self.t_cost)
            .field("p", &self.p_cost)
            .finish_non_exhaustive()
    }
}

/// A plaintext secret from `plain:`; its Debug is redacted and its memory wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainSecret(Zeroizing<String>);

impl PlainSecret {
    /// The plaintext, to hash on import.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PlainSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Standard base64, padding optional (Keycloak and Django pad; PHC does not).
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// bcrypt's own alphabet. Some encoders leave stray bits in a salt's last character; bcrypt
/// ignores them, so the decoder does too.
const BCRYPT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::BCRYPT,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

fn decode_b64(text: &str, kind: &'static str, field: &'static str, len: (usize, usize)) -> Result<Vec<u8>> {
    // passlib writes PHC strings in "adapted" base64, `.` for `+`; `.` is not standard base64.
    let decoded = if text.contains('.') { B64.decode(text.replace('.', "+")) } else { B64.decode(text) };
    let bytes = decoded.map_err(|_| HashFormatError::BadBase64 { kind, field })?;
    check_len(bytes, kind, field, len)
}

fn check_len(bytes: Vec<u8>, kind: &'static str, field: &'static str, (min, max): (usize, usize)) -> Result<Vec<u8>> {
    if (min..=max).contains(&bytes.len()) {
        Ok(bytes)
    } else {
        Err(HashFormatError::BadLength { kind, field, len: bytes.len(), min, max })
    }
}

/// A decimal parameter within `min..=max`, refusing signs, blanks and absurd lengths cheaply.
fn bounded(text: &str, kind: &'static str, param: &'static str, min: u64, max: u64) -> Result<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HashFormatError::NotANumber { kind, param });
    }
    let out_of_bounds = || HashFormatError::OutOfBounds { kind, param, value: safe_name(text), min, max };
    let value: u64 = text.parse().map_err(|_| out_of_bounds())?;
    if (min..=max).contains(&value) { Ok(value) } else { Err(out_of_bounds()) }
}

fn bounded_u32(text: &str, kind: &'static str, param: &'static str, (min, max): (u32, u32)) -> Result<u32> {
    let value = bounded(text, kind, param, min.into(), max.into())?;
    // In bounds, so it fits.
    Ok(u32::try_from(value).unwrap_or(max))
}

/// `a=1,b=2` PHC parameters, each name once.
fn phc_params<'a>(text: &'a str, kind: &'static str) -> Result<Vec<(&'a str, &'a str)>> {
    let mut params: Vec<(&str, &str)> = Vec::new();
    for pair in text.split(',') {
        let (name, value) =
            pair.split_once('=').ok_or(HashFormatError::Malformed { kind, reason: "parameter without `=`" })?;
        if params.iter().any(|(seen, _)| *seen == name) {
            return Err(HashFormatError::Malformed { kind, reason: "repeated parameter" });
        }
        params.push((name, value));
    }
    Ok(params)
}

fn unsupported_param(kind: &'static str, name: &str) -> HashFormatError {
    HashFormatError::Unsupported { kind, what: "parameter", value: safe_name(name) }
}

fn required<T>(value: Option<T>, kind: &'static str, reason: &'static str) -> Result<T> {
    value.ok_or(HashFormatError::Malformed { kind, reason })
}

fn pbkdf2_iterations(text: &str, kind: &'static str) -> Result<NonZeroU32> {
    let value = bounded_u32(text, kind, "iterations", PBKDF2_ITERATIONS)?;
    NonZeroU32::new(value).ok_or(HashFormatError::OutOfBounds {
        kind,
        param: "iterations",
        value: "0".into(),
        min: PBKDF2_ITERATIONS.0.into(),
        max: PBKDF2_ITERATIONS.1.into(),
    })
}

impl LegacyHash {
    /// Recognises a string form: bcrypt (also `{bcrypt}`), Django or PHC PBKDF2, scrypt,
    /// argon2, or `plain:`. Cheap: checks formats and bounds, computes no hash.
    pub fn parse_str(input: &str) -> Result<Self> {
        if input.is_empty() {
            return Err(HashFormatError::Empty);
        }
        if input.len() > MAX_INPUT_LEN {
            return Err(HashFormatError::TooLong { len: input.len(), max: MAX_INPUT_LEN });
        }
        if let Some(plain) = input.strip_prefix("plain:") {
            if plain.is_empty() {
                return Err(HashFormatError::Malformed { kind: "plain", reason: "empty secret" });
            }
            return Ok(Self::Plain(PlainSecret(Zeroizing::new(plain.to_owned()))));
        }
        if let Some(rest) = input.strip_prefix("{bcrypt}") {
            return parse_bcrypt(rest).map(Self::Bcrypt);
        }
        if let Some(rest) = input.strip_prefix("pbkdf2_sha256$") {
            return parse_django(rest, Pbkdf2Digest::Sha256).map(Self::Pbkdf2);
        }
        if let Some(rest) = input.strip_prefix("pbkdf2_sha1$") {
            return parse_django(rest, Pbkdf2Digest::Sha1).map(Self::Pbkdf2);
        }
        if let Some(prefix) = input.strip_prefix('{').and_then(|rest| rest.split_once('}')).map(|(p, _)| p) {
            return Err(HashFormatError::Unsupported { kind: "Spring", what: "prefix", value: safe_name(prefix) });
        }
        let Some(rest) = input.strip_prefix('$') else {
            return Err(HashFormatError::UnknownFormat { scheme: None });
        };
        let (id, rest) = rest.split_once('$').unwrap_or((rest, ""));
        match id {
            "2a" | "2b" | "2y" => parse_bcrypt(input).map(Self::Bcrypt),
            "pbkdf2" => parse_pbkdf2_phc(rest, Pbkdf2Digest::Sha1).map(Self::Pbkdf2),
            "pbkdf2-sha256" => parse_pbkdf2_phc(rest, Pbkdf2Digest::Sha256).map(Self::Pbkdf2),
            "pbkdf2-sha512" => parse_pbkdf2_phc(rest, Pbkdf2Digest::Sha512).map(Self::Pbkdf2),
            "scrypt" => parse_scrypt(rest).map(Self::Scrypt),
            "argon2id" => parse_argon2(rest, Argon2Variant::Argon2id).map(Self::Argon2),
            "argon2i" => parse_argon2(rest, Argon2Variant::Argon2i).map(Self::Argon2),
            "argon2d" => parse_argon2(rest, Argon2Variant::Argon2d).map(Self::Argon2),
            other => {
                let plausible = !other.is_empty()
                    && other.len() <= 32
                    && other.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                Err(HashFormatError::UnknownFormat { scheme: plausible.then(|| other.to_owned()) })
            }
        }
    }

    /// An import row's hash field: a string form (see [`parse_str`](Self::parse_str)) or a
    /// Keycloak credential object, flat (`algorithm`, `iterations` or `hashIterations`, `salt`,
    /// `value`) or as Keycloak exports it (`secretData` and `credentialData` JSON strings).
    pub fn from_json(value: &Value) -> Result<Self> {
        match value {
            Value::String(text) => Self::parse_str(text),
            Value::Object(_) => parse_keycloak(value).map(Self::Pbkdf2),
            _ => Err(HashFormatError::Malformed { kind: "import", reason: "hash is neither a string nor an object" }),
        }
    }

    /// Reads back what [`to_stored`](Self::to_stored) wrote (or a native argon2id hash). Refuses
    /// import-only forms (`plain:`, `{bcrypt}`, Django), and Portero's `$s256$`.
    pub fn parse_stored(stored: &str) -> Result<Self> {
        if !stored.starts_with('$') {
            return Err(HashFormatError::NotStored("stored hashes are PHC or MCF strings starting with `$`"));
        }
        if stored.starts_with("$s256$") {
            return Err(HashFormatError::NotStored("a Portero generated-secret hash, see secret.rs"));
        }
        Self::parse_str(stored)
    }

    /// The string to keep in the database, or `None` for a plaintext, which the caller hashes
    /// with Portero's own scheme instead.
    pub fn to_stored(&self) -> Option<String> {
        let phc = |bytes: &[u8]| STANDARD_NO_PAD.encode(bytes);
        Some(match self {
            Self::Bcrypt(h) => {
                let letter = match h.variant {
                    BcryptVariant::A => 'a',
                    BcryptVariant::B => 'b',
                    BcryptVariant::Y => 'y',
                };
                format!("$2{letter}${:02}${}{}", h.cost, BCRYPT_B64.encode(h.salt), BCRYPT_B64.encode(h.hash))
            }
            Self::Pbkdf2(h) => format!(
                "${}$i={},l={}${}${}",
                h.digest.phc_id(),
                h.iterations,
                h.value.len(),
                phc(&h.salt),
                phc(&h.value)
            ),
            Self::Scrypt(h) => format!("$scrypt$ln={},r={},p={}${}${}", h.log_n, h.r, h.p, phc(&h.salt), phc(&h.hash)),
            Self::Argon2(h) => format!(
                "${}$v={}$m={},t={},p={}${}${}",
                h.variant.id(),
                h.version,
                h.m_cost,
                h.t_cost,
                h.p_cost,
                phc(&h.salt),
                phc(&h.hash)
            ),
            Self::Plain(_) => return None,
        })
    }

    /// Whether this is already Portero's own scheme (argon2id, version 19, within the bounds
    /// `secret::verify_blocking` accepts): keep [`to_stored`](Self::to_stored) as is, no rehash.
    pub fn is_portero_native(&self) -> bool {
        matches!(self, Self::Argon2(h) if h.variant == Argon2Variant::Argon2id && h.version == 0x13)
    }

    /// A short name of the scheme, for logs and import reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bcrypt(_) => "bcrypt",
            Self::Pbkdf2(h) => h.digest.phc_id(),
            Self::Scrypt(_) => "scrypt",
            Self::Argon2(h) => h.variant.id(),
            Self::Plain(_) => "plain",
        }
    }

    /// Whether `presented` is the secret, comparing digests in constant time. Slow (that is
    /// the point of these schemes): call it off the async threads.
    pub fn verify(&self, presented: &str) -> bool {
        match self {
            Self::Bcrypt(h) => h.verify(presented.as_bytes()),
            Self::Pbkdf2(h) => {
                pbkdf2::verify(h.digest.algorithm(), h.iterations, &h.salt, presented.as_bytes(), &h.value).is_ok()
            }
            Self::Scrypt(h) => h.verify(presented.as_bytes()),
            Self::Argon2(h) => h.verify(presented.as_bytes()),
            Self::Plain(secret) => {
                let expected = digest::digest(&digest::SHA256, secret.expose().as_bytes());
                let actual = digest::digest(&digest::SHA256, presented.as_bytes());
                actual.as_ref().ct_eq(expected.as_ref()).into()
            }
        }
    }
}

/// Whether a stored hash is one of this module's non-native forms, to check with
/// [`LegacyHash::verify`] rather than `secret::verify_blocking`. Cheap (parses only).
pub fn is_legacy_stored(stored: &str) -> bool {
    LegacyHash::parse_stored(stored).is_ok_and(|hash| !hash.is_portero_native())
}

impl BcryptHash {
    fn verify(&self, password: &[u8]) -> bool {
        // bcrypt hashes the password with its NUL terminator and reads at most 72 bytes: longer
        // passwords were truncated by the provider that made the hash, so they are here too.
        let mut key = Zeroizing::new(Vec::with_capacity(password.len() + 1));
        key.extend_from_slice(password);
        key.push(0);
        key.truncate(BCRYPT_PW_MAX);
        let mut output = bcrypt::bcrypt(self.cost, self.salt, &key);
        let matched = output[..23].ct_eq(&self.hash).into();
        output.zeroize();
        matched
    }
}

impl ScryptHash {
    fn verify(&self, password: &[u8]) -> bool {
        let Ok(params) = scrypt::Params::new(self.log_n, self.r, self.p) else { return false };
        let mut output = Zeroizing::new(vec![0u8; self.hash.len()]);
        if scrypt::scrypt(password, &self.salt, &params, &mut output).is_err() {
            return false;
        }
        output.ct_eq(&self.hash).into()
    }
}

impl Argon2Hash {
    fn argon2_params(&self) -> std::result::Result<Params, argon2::Error> {
        Params::new(self.m_cost, self.t_cost, self.p_cost, Some(self.hash.len()))
    }

    fn verify(&self, password: &[u8]) -> bool {
        let Ok(params) = self.argon2_params() else { return false };
        let algorithm = match self.variant {
            Argon2Variant::Argon2d => Algorithm::Argon2d,
            Argon2Variant::Argon2i => Algorithm::Argon2i,
            Argon2Variant::Argon2id => Algorithm::Argon2id,
        };
        let version = if self.version == 0x10 { Version::V0x10 } else { Version::V0x13 };
        let mut output = Zeroizing::new(vec![0u8; self.hash.len()]);
        if Argon2::new(algorithm, version, params).hash_password_into(password, &self.salt, &mut output).is_err() {
            return false;
        }
        output.ct_eq(&self.hash).into()
    }
}

/// `$2b$12$` + 22 characters of salt + 31 of hash, in bcrypt's base64.
fn parse_bcrypt(input: &str) -> Result<BcryptHash> {
    const KIND: &str = "bcrypt";
    let malformed = |reason| HashFormatError::Malformed { kind: KIND, reason };
    let rest = input.strip_prefix("$2").ok_or(malformed("expected $2a$, $2b$ or $2y$"))?;
    let variant = match rest.as_bytes().first() {
        Some(b'a') => BcryptVariant::A,
        Some(b'b') => BcryptVariant::B,
        Some(b'y') => BcryptVariant::Y,
        _ => return Err(malformed("expected $2a$, $2b$ or $2y$")),
    };
    let rest = rest[1..].strip_prefix('$').ok_or(malformed("expected $2a$, $2b$ or $2y$"))?;
    let (cost, body) = rest.split_once('$').ok_or(malformed("missing cost"))?;
    if cost.len() != 2 {
        return Err(malformed("the cost must be two digits"));
    }
    let cost = bounded_u32(cost, KIND, "cost", BCRYPT_COSTS)?;
    if body.len() != 53 || !body.is_ascii() {
        return Err(malformed("expected 53 characters of salt and hash after the cost"));
    }
    let (salt, hash) = body.split_at(22);
    let salt = BCRYPT_B64.decode(salt).map_err(|_| HashFormatError::BadBase64 { kind: KIND, field: "salt" })?;
    let hash = BCRYPT_B64.decode(hash).map_err(|_| HashFormatError::BadBase64 { kind: KIND, field: "hash" })?;
    Ok(BcryptHash {
        variant,
        cost,
        salt: salt.try_into().map_err(|_| malformed("salt is not 16 bytes"))?,
        hash: hash.try_into().map_err(|_| malformed("hash is not 23 bytes"))?,
    })
}

/// Django: `ITER$SALT$B64HASH` after `pbkdf2_sha256$`; the salt is used as its raw bytes.
fn parse_django(rest: &str, digest: Pbkdf2Digest) -> Result<Pbkdf2Hash> {
    const KIND: &str = "Django PBKDF2";
    let mut parts = rest.split('$');
    let (Some(iterations), Some(salt), Some(value), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HashFormatError::Malformed { kind: KIND, reason: "expected pbkdf2_sha256$ITERATIONS$SALT$HASH" });
    };
    Ok(Pbkdf2Hash {
        digest,
        iterations: pbkdf2_iterations(iterations, KIND)?,
        salt: check_len(salt.as_bytes().to_vec(), KIND, "salt", SALT_LEN)?,
        value: decode_b64(value, KIND, "hash", HASH_LEN)?,
    })
}

/// PHC: `i=N[,l=L]$SALT$HASH` (RustCrypto, and our stored form) or passlib's `N$SALT$HASH`.
fn parse_pbkdf2_phc(rest: &str, digest: Pbkdf2Digest) -> Result<Pbkdf2Hash> {
    const KIND: &str = "PBKDF2";
    let mut parts = rest.split('$');
    let (Some(params), Some(salt), Some(value), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(HashFormatError::Malformed { kind: KIND, reason: "expected $pbkdf2-sha256$i=N,l=L$SALT$HASH" });
    };
    let (mut iterations, mut length) = (None, None);
    if params.contains('=') {
        for (name, value) in phc_params(params, KIND)? {
            match name {
                "i" => iterations = Some(value),
                "l" => length = Some(bounded(value, KIND, "l", HASH_LEN.0 as u64, HASH_LEN.1 as u64)?),
                other => return Err(unsupported_param(KIND, other)),
            }
        }
    } else {
        iterations = Some(params);
    }
    let iterations = pbkdf2_iterations(required(iterations, KIND, "missing i (iterations)")?, KIND)?;
    let value = decode_b64(value, KIND, "hash", HASH_LEN)?;
    if length.is_some_and(|l| l != value.len() as u64) {
        return Err(HashFormatError::Malformed { kind: KIND, reason: "l is not the hash's length" });
    }
    Ok(Pbkdf2Hash { digest, iterations, salt: decode_b64(salt, KIND, "salt", SALT_LEN)?, value })
}

/// Keycloak's credential, flat or as exported (`secretData`, `credentialData` JSON strings).
fn parse_keycloak(object: &Value) -> Result<Pbkdf2Hash> {
    const KIND: &str = "Keycloak PBKDF2";
    let malformed = |reason| HashFormatError::Malformed { kind: KIND, reason };
    let Value::Object(top) = object else { return Err(malformed("not an object")) };
    let nested = |name: &str| -> Result<Option<Value>> {
        match top.get(name) {
            None => Ok(None),
            Some(Value::String(text)) if text.len() <= MAX_INPUT_LEN => {
                serde_json::from_str(text).map(Some).map_err(|_| malformed("secretData or credentialData is not JSON"))
            }
            Some(Value::String(_)) => Err(malformed("secretData or credentialData is too long")),
            Some(_) => Err(malformed("secretData and credentialData must be JSON strings")),
        }
    };
    let (secret_data, credential_data) = (nested("secretData")?, nested("credentialData")?);
    let mut fields: Vec<(&str, &Value)> = Vec::new();
    for source in [Some(object), secret_data.as_ref(), credential_data.as_ref()].into_iter().flatten() {
        let Value::Object(map) = source else { return Err(malformed("secretData or credentialData is not an object")) };
        for (name, value) in map {
            match name.as_str() {
                "type" => {
                    if value != "password" {
                        let value = value.as_str().map_or_else(|| "non-string".to_owned(), safe_name);
                        return Err(HashFormatError::Unsupported { kind: KIND, what: "credential type", value });
                    }
                }
                // Keycloak's bookkeeping, and the nested documents themselves.
                "id" | "createdDate" | "userLabel" | "secretData" | "credentialData" | "priority" => {}
                "additionalParameters" => {
                    if !matches!(value, Value::Object(p) if p.is_empty()) {
                        return Err(HashFormatError::Unsupported {
                            kind: KIND,
                            what: "field",
                            value: "additionalParameters".into(),
                        });
                    }
                }
                "algorithm" | "iterations" | "hashIterations" | "salt" | "value" | "hashedSaltedValue" => {
                    let canonical = match name.as_str() {
                        "hashIterations" => "iterations",
                        "hashedSaltedValue" => "value",
                        other => other,
                    };
                    if fields.iter().any(|(seen, _)| *seen == canonical) {
                        return Err(malformed("a field is given twice"));
                    }
                    fields.push((canonical, value));
                }
                other => {
                    return Err(HashFormatError::Unsupported { kind: KIND, what: "field", value: safe_name(other) });
                }
            }
        }
    }
    let field = |name: &str| fields.iter().find(|(seen, _)| *seen == name).map(|(_, value)| *value);
    let string = |name: &'static str, reason: &'static str| match field(name) {
        Some(Value::String(text)) => Ok(text.as_str()),
        _ => Err(malformed(reason)),
    };
    let digest = match string("algorithm", "algorithm must be a string")? {
        "pbkdf2-sha256" => Pbkdf2Digest::Sha256,
        "pbkdf2-sha512" => Pbkdf2Digest::Sha512,
        "pbkdf2" => Pbkdf2Digest::Sha1,
        other => return Err(HashFormatError::Unsupported { kind: KIND, what: "algorithm", value: safe_name(other) }),
    };
    let iterations = match field("iterations") {
        Some(Value::Number(number)) => match number.as_u64() {
            Some(n) => pbkdf2_iterations(&n.to_string(), KIND)?,
            None if number.is_i64() => {
                return Err(HashFormatError::OutOfBounds {
                    kind: KIND,
                    param: "iterations",
                    value: safe_name(&number.to_string()),
                    min: PBKDF2_ITERATIONS.0.into(),
                    max: PBKDF2_ITERATIONS.1.into(),
                });
            }
            None => return Err(HashFormatError::NotANumber { kind: KIND, param: "iterations" }),
        },
        Some(_) => return Err(HashFormatError::NotANumber { kind: KIND, param: "iterations" }),
        None => return Err(malformed("missing iterations")),
    };
    let salt = decode_b64(string("salt", "salt must be a base64 string")?, KIND, "salt", SALT_LEN)?;
    let value = decode_b64(string("value", "value must be a base64 string")?, KIND, "value", HASH_LEN)?;
    Ok(Pbkdf2Hash { digest, iterations, salt, value })
}

/// `ln=..,r=..,p=..$SALT$HASH` after `$scrypt$`.
fn parse_scrypt(rest: &str) -> Result<ScryptHash> {
    const KIND: &str = "scrypt";
    let mut parts = rest.split('$');
    let (Some(params), Some(salt), Some(hash), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(HashFormatError::Malformed { kind: KIND, reason: "expected $scrypt$ln=..,r=..,p=..$SALT$HASH" });
    };
    let (mut log_n, mut r, mut p) = (None, None, None);
    for (name, value) in phc_params(params, KIND)? {
        match name {
            "ln" => log_n = Some(bounded(value, KIND, "ln", 1, SCRYPT_MAX_LOG_N.into())?),
            // N is at least 2, so these alone already exceed the memory or work bound below.
            "r" => r = Some(bounded(value, KIND, "r", 1, MAX_MEMORY_BYTES / 256)?),
            "p" => p = Some(bounded(value, KIND, "p", 1, SCRYPT_MAX_WORK_BYTES / 256)?),
            other => return Err(unsupported_param(KIND, other)),
        }
    }
    let log_n = required(log_n, KIND, "missing ln")?;
    let r = required(r, KIND, "missing r")?;
    let p = required(p, KIND, "missing p")?;
    // Each factor is bounded above, so these products cannot overflow a u64.
    let memory = 128 * r * (1u64 << log_n);
    if memory > MAX_MEMORY_BYTES {
        return Err(HashFormatError::OutOfBounds {
            kind: KIND,
            param: "memory (128·r·2^ln bytes)",
            value: memory.to_string(),
            min: 0,
            max: MAX_MEMORY_BYTES,
        });
    }
    if memory.saturating_mul(p) > SCRYPT_MAX_WORK_BYTES {
        return Err(HashFormatError::OutOfBounds {
            kind: KIND,
            param: "work (128·r·p·2^ln bytes)",
            value: memory.saturating_mul(p).to_string(),
            min: 0,
            max: SCRYPT_MAX_WORK_BYTES,
        });
    }
    let hash = ScryptHash {
        log_n: u8::try_from(log_n).unwrap_or(SCRYPT_MAX_LOG_N),
        r: u32::try_from(r).unwrap_or(u32::MAX),
        p: u32::try_from(p).unwrap_or(u32::MAX),
        salt: decode_b64(salt, KIND, "salt", SALT_LEN)?,
        hash: decode_b64(hash, KIND, "hash", HASH_LEN)?,
    };
    if scrypt::Params::new(hash.log_n, hash.r, hash.p).is_err() {
        return Err(HashFormatError::Malformed { kind: KIND, reason: "parameters refused by scrypt" });
    }
    Ok(hash)
}

/// `[v=19$]m=..,t=..,p=..$SALT$HASH` after `$argon2id$` (no `v` means version 16).
fn parse_argon2(rest: &str, variant: Argon2Variant) -> Result<Argon2Hash> {
    const KIND: &str = "argon2";
    let malformed = |reason| HashFormatError::Malformed { kind: KIND, reason };
    let mut parts: Vec<&str> = rest.split('$').collect();
    let version = match parts.first().and_then(|first| first.strip_prefix("v=")) {
        Some("19") => 0x13,
        Some("16") => 0x10,
        Some(other) => {
            return Err(HashFormatError::Unsupported { kind: KIND, what: "version", value: safe_name(other) });
        }
        None => 0x10,
    };
    if parts.first().is_some_and(|first| first.starts_with("v=")) {
        parts.remove(0);
    }
    let [params, salt, hash] = parts[..] else {
        return Err(malformed("expected $argon2id$v=19$m=..,t=..,p=..$SALT$HASH"));
    };
    let (mut m_cost, mut t_cost, mut p_cost) = (None, None, None);
    for (name, value) in phc_params(params, KIND)? {
        match name {
            "m" => m_cost = Some(bounded_u32(value, KIND, "m (KiB)", (1, (MAX_MEMORY_BYTES / 1024) as u32))?),
            "t" => t_cost = Some(bounded_u32(value, KIND, "t", (1, ARGON2_MAX_PASSES))?),
            "p" => p_cost = Some(bounded_u32(value, KIND, "p", (1, ARGON2_MAX_LANES))?),
            other => return Err(unsupported_param(KIND, other)),
        }
    }
    let hash = Argon2Hash {
        variant,
        version,
        m_cost: required(m_cost, KIND, "missing m")?,
        t_cost: required(t_cost, KIND, "missing t")?,
        p_cost: required(p_cost, KIND, "missing p")?,
        salt: decode_b64(salt, KIND, "salt", (8, SALT_LEN.1))?,
        hash: decode_b64(hash, KIND, "hash", HASH_LEN)?,
    };
    if hash.argon2_params().is_err() {
        return Err(malformed("parameters refused by argon2 (m must be at least 8·p)"));
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(input: &str) -> LegacyHash {
        match LegacyHash::parse_str(input) {
            Ok(hash) => hash,
            Err(error) => panic!("{input}: {error}"),
        }
    }

    fn error(input: &str) -> HashFormatError {
        match LegacyHash::parse_str(input) {
            Ok(hash) => panic!("{input} parsed as {hash:?}"),
            Err(error) => error,
        }
    }

    fn round_trips(hash: &LegacyHash) {
        let stored = hash.to_stored().expect("not plain");
        assert_eq!(&LegacyHash::parse_stored(&stored).expect("stored form parses"), hash, "{stored}");
    }

    // jBCrypt's test vectors (checked against Python's bcrypt).
    const BCRYPT_VECTORS: [(&str, &str); 3] = [
        ("", "$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s."),
        ("a", "$2a$06$m0CrhHm10qJ3lXRY.5zDGO3rS2KdeeWLuGmsfGlMfOxih58VYVfxe"),
        ("abc", "$2a$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i"),
    ];

    #[test]
    fn bcrypt_vectors() {
        for (password, stored) in BCRYPT_VECTORS {
            let hash = parse(stored);
            assert!(hash.verify(password), "{stored}");
            assert!(!hash.verify(&format!("{password}x")));
            assert_eq!(hash.to_stored().as_deref(), Some(stored));
            assert!(!hash.is_portero_native());
            for variant in ["$2b$", "$2y$"] {
                assert!(parse(&stored.replacen("$2a$", variant, 1)).verify(password));
            }
            let spring = parse(&format!("{{bcrypt}}{stored}"));
            assert!(spring.verify(password));
            assert_eq!(spring.to_stored().as_deref(), Some(stored));
        }
    }

    #[test]
    fn bcrypt_truncates_at_72_bytes_like_its_makers() {
        let hash = parse(BCRYPT_VECTORS[1].1);
        assert!(!hash.verify(&"a".repeat(72)));
        let LegacyHash::Bcrypt(inner) = &hash else { panic!("bcrypt") };
        // A 72-byte password ignores its NUL; anything past byte 72 is ignored.
        let long = "p".repeat(72);
        let mut key = long.clone().into_bytes();
        key.truncate(72);
        let output = bcrypt::bcrypt(4, inner.salt, &key);
        let made = BcryptHash {
            variant: BcryptVariant::B,
            cost: 4,
            salt: inner.salt,
            hash: output[..23].try_into().expect("23"),
        };
        let made = LegacyHash::Bcrypt(made);
        assert!(made.verify(&long));
        assert!(made.verify(&format!("{long}and more")));
        assert!(!made.verify(&"p".repeat(71)));
    }

    #[test]
    fn keycloak_pbkdf2_vectors() {
        // RFC 6070 (SHA-1, 4096 iterations) and the SHA-256/SHA-512 analogues, 1 iteration.
        let cases = [
            ("pbkdf2", 4096, "SwB5AbdlSJq+rUnZJvch0GWkKcE="),
            ("pbkdf2-sha256", 1, "Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs="),
            (
                "pbkdf2-sha512",
                1,
                "hn9wzxreAs/zdSWZo6U9xK80x6ZpgVrl1RNVThyM8lLALUcKKFoFAbrZmb/pQ8CPBQI119aLHaVeY/c7YKV/zg==",
            ),
        ];
        for (algorithm, iterations, value) in cases {
            let row = json!({"algorithm": algorithm, "iterations": iterations, "salt": "c2FsdA==", "value": value});
            let hash = LegacyHash::from_json(&row).expect(algorithm);
            assert_eq!(hash.kind(), algorithm);
            assert!(hash.verify("password"), "{algorithm}");
            assert!(!hash.verify("passwort"));
            round_trips(&hash);
            let stored = hash.to_stored().expect("stored");
            assert!(stored.starts_with(&format!("${algorithm}$i={iterations},l=")), "{stored}");
            assert!(is_legacy_stored(&stored));
        }
    }

    #[test]
    fn keycloak_export_shape() {
        let row = json!({
            "type": "password",
            "createdDate": 1_700_000_000_000u64,
            "secretData": r#"{"value":"Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs=","salt":"c2FsdA==","additionalParameters":{}}"#,
            "credentialData": r#"{"hashIterations":1,"algorithm":"pbkdf2-sha256","additionalParameters":{}}"#,
        });
        let hash = LegacyHash::from_json(&row).expect("export shape");
        assert!(hash.verify("password"));
        let row = json!({"algorithm": "pbkdf2-sha256", "iterations": 1, "hashIterations": 1, "salt": "c2FsdA==", "value": "Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs="});
        assert!(matches!(LegacyHash::from_json(&row), Err(HashFormatError::Malformed { .. })));
        let row = json!({"algorithm": "pbkdf2-sha256", "iteration": 1, "salt": "c2FsdA==", "value": "Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs="});
        assert_eq!(
            LegacyHash::from_json(&row).expect_err("typo").to_string(),
            "unsupported Keycloak PBKDF2 field `iteration`"
        );
        let row = json!({"algorithm": "argon2", "iterations": 1, "salt": "c2FsdA==", "value": "Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs="});
        assert_eq!(
            LegacyHash::from_json(&row).expect_err("argon2").to_string(),
            "unsupported Keycloak PBKDF2 algorithm `argon2`"
        );
        let otp = json!({"type": "otp", "algorithm": "pbkdf2-sha256", "iterations": 1, "salt": "c2FsdA==", "value": "Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs="});
        assert_eq!(
            LegacyHash::from_json(&otp).expect_err("otp").to_string(),
            "unsupported Keycloak PBKDF2 credential type `otp`"
        );
        assert!(LegacyHash::from_json(&json!(42)).is_err());
        assert!(LegacyHash::from_json(&json!("plain:x")).is_ok());
    }

    #[test]
    fn django_pbkdf2() {
        // hashlib.pbkdf2_hmac('sha256', b'hunter2', b'seasalt', 1000), base64.
        let django = "pbkdf2_sha256$1000$seasalt$aZOLUDnbVq4qfmIhIFCkAqvDNHspRzj9l43SgVe7GOM=";
        let hash = parse(django);
        assert!(hash.verify("hunter2"));
        assert!(!hash.verify("hunter3"));
        round_trips(&hash);
        assert!(LegacyHash::parse_stored(django).is_err(), "Django form is import-only");
    }

    #[test]
    fn scrypt_rfc7914_vector() {
        let phc = "$scrypt$ln=10,r=8,p=16$TmFDbA$/bq+HJ00cgB4VucZDQHp/nxq18vII3gw53N2Y0s3MWIurzDZLiKjiG/xCSedmDDaxyevuUqD7m2DYMvfoswGQA";
        let hash = parse(phc);
        assert!(hash.verify("password"));
        assert!(!hash.verify("Password"));
        assert_eq!(hash.to_stored().as_deref(), Some(phc));
        // passlib's adapted base64 (`.` for `+`) reads the same.
        assert_eq!(parse(&phc.replace('+', ".")), hash);
    }

    #[test]
    fn argon2_reference_vectors() {
        // The reference implementation's "password"/"somesalt", t=2, m=64 MiB, p=1.
        let argon2i = "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA";
        let argon2id = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        let i = parse(argon2i);
        assert!(i.verify("password") && !i.verify("password1"));
        assert!(!i.is_portero_native());
        assert!(is_legacy_stored(argon2i));
        let id = parse(argon2id);
        assert!(id.verify("password") && !id.verify("drowssap"));
        assert!(id.is_portero_native());
        assert!(!is_legacy_stored(argon2id));
        assert_eq!(id.to_stored().as_deref(), Some(argon2id));
        assert!(crate::secret::verify_blocking("password", argon2id), "secret.rs verifies native hashes alike");
    }

    #[test]
    fn portero_hashes_are_told_apart() {
        let native = crate::secret::hash_password("hunter2");
        let hash = LegacyHash::parse_stored(&native).expect("argon2id");
        assert!(hash.is_portero_native());
        assert_eq!(hash.to_stored().as_deref(), Some(native.as_str()));
        let generated = crate::secret::hash_generated_secret("g");
        assert!(matches!(LegacyHash::parse_stored(&generated), Err(HashFormatError::NotStored(_))));
        assert!(!is_legacy_stored(&generated));
        // Every legacy stored form fails secret.rs's check instead of being misread by it.
        let legacy = parse(BCRYPT_VECTORS[0].1).to_stored().expect("bcrypt");
        assert!(!crate::secret::verify_blocking("", &legacy));
    }

    #[test]
    fn plain_is_returned_for_hashing() {
        let hash = parse("plain:s3cret$with:colons");
        let LegacyHash::Plain(secret) = &hash else { panic!("plain") };
        assert_eq!(secret.expose(), "s3cret$with:colons");
        assert!(hash.verify("s3cret$with:colons") && !hash.verify("s3cret"));
        assert_eq!(hash.to_stored(), None);
        assert!(LegacyHash::parse_stored("plain:x").is_err());
        assert!(matches!(error("plain:"), HashFormatError::Malformed { .. }));
    }

    #[test]
    fn debug_shows_no_secret_material() {
        let inputs = [
            "plain:hunter2-the-secret".to_owned(),
            BCRYPT_VECTORS[1].1.to_owned(),
            "pbkdf2_sha256$1000$seasalt$aZOLUDnbVq4qfmIhIFCkAqvDNHspRzj9l43SgVe7GOM=".to_owned(),
            "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA".to_owned(),
        ];
        for input in inputs {
            let debug = format!("{:?}", parse(&input));
            for needle in ["hunter2", "m0CrhHm10", "seasalt", "aZOLUD", "c29tZXNhbHQ", "wWKIMhR9", "115, 101"] {
                assert!(!debug.contains(needle), "{debug}");
            }
        }
        assert_eq!(format!("{:?}", parse("plain:x")), "Plain(<redacted>)");
        assert_eq!(format!("{:?}", parse(BCRYPT_VECTORS[0].1)), "Bcrypt(BcryptHash { variant: A, cost: 6, .. })");
    }

    #[test]
    fn hostile_parameters_are_refused_with_reasons() {
        let bcrypt31 = BCRYPT_VECTORS[0].1.replacen("$06$", "$31$", 1);
        assert_eq!(error(&bcrypt31).to_string(), "bcrypt cost 31 is out of bounds (4..=16)");
        assert!(matches!(error(&BCRYPT_VECTORS[0].1.replacen("$06$", "$03$", 1)), HashFormatError::OutOfBounds { .. }));
        assert!(matches!(error(&BCRYPT_VECTORS[0].1.replacen("$06$", "$6$", 1)), HashFormatError::Malformed { .. }));
        assert!(matches!(error(&BCRYPT_VECTORS[0].1.replacen("$06$", "$+6$", 1)), HashFormatError::NotANumber { .. }));
        assert!(matches!(error(&BCRYPT_VECTORS[0].1[..59]), HashFormatError::Malformed { .. }));
        assert!(matches!(error(&format!("{}!", &BCRYPT_VECTORS[0].1[..59])), HashFormatError::BadBase64 { .. }));

        for iterations in ["0", "1099511627776", "99999999999999999999999999", "10000001"] {
            let django = format!("pbkdf2_sha256${iterations}$seasalt$aZOLUDnbVq4qfmIhIFCkAqvDNHspRzj9l43SgVe7GOM=");
            assert!(matches!(error(&django), HashFormatError::OutOfBounds { param: "iterations", .. }), "{iterations}");
        }
        assert_eq!(
            error("pbkdf2_sha256$0$seasalt$aZOLUDnbVq4qfmIhIFCkAqvDNHspRzj9l43SgVe7GOM=").to_string(),
            "Django PBKDF2 iterations 0 is out of bounds (1..=10000000)"
        );
        assert!(matches!(
            error("pbkdf2_sha256$-5$s$aZOLUDnbVq4qfmIhIFCkAqvDNHspRzj9l43SgVe7GOM="),
            HashFormatError::NotANumber { .. }
        ));
        assert_eq!(
            error("pbkdf2_sha256$1000$seasalt$not*base64").to_string(),
            "Django PBKDF2 hash is not valid base64"
        );
        for iterations in [json!(0), json!(1u64 << 40), json!(-1), json!(1.5), json!("1000")] {
            let row = json!({"algorithm": "pbkdf2-sha256", "iterations": iterations, "salt": "c2FsdA==", "value": "Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs="});
            assert!(LegacyHash::from_json(&row).is_err(), "{iterations}");
        }
        let row = json!({"algorithm": "pbkdf2-sha256", "iterations": 1, "salt": "c2FsdA==", "value": "Zm9v"});
        assert_eq!(
            LegacyHash::from_json(&row).expect_err("short").to_string(),
            "Keycloak PBKDF2 value is 3 bytes long, out of bounds (16..=64)"
        );

        let salt_hash = "TmFDbA$/bq+HJ00cgB4VucZDQHp/nxq18vII3gw53N2Y0s3MWIurzDZLiKjiG/xCSedmDDaxyevuUqD7m2DYMvfoswGQA";
        for params in [
            "ln=21,r=8,p=1",
            "ln=20,r=8,p=1",
            "ln=14,r=8,p=1000000",
            "ln=14,r=4294967295,p=1",
            "ln=64,r=1,p=1",
            "ln=0,r=8,p=1",
        ] {
            assert!(
                matches!(error(&format!("$scrypt${params}${salt_hash}")), HashFormatError::OutOfBounds { .. }),
                "{params}"
            );
        }
        assert!(matches!(error(&format!("$scrypt$ln=10,r=8${salt_hash}")), HashFormatError::Malformed { .. }));
        assert!(matches!(
            error(&format!("$scrypt$ln=10,r=8,p=1,ln=10${salt_hash}")),
            HashFormatError::Malformed { .. }
        ));
        assert!(matches!(
            error(&format!("$scrypt$ln=10,r=8,p=1,x=1${salt_hash}")),
            HashFormatError::Unsupported { .. }
        ));

        let argon = "c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA";
        for params in ["m=4194304,t=2,p=1", "m=65536,t=100000,p=1", "m=65536,t=2,p=255", "m=8,t=2,p=4"] {
            assert!(LegacyHash::parse_str(&format!("$argon2i$v=19${params}${argon}")).is_err(), "{params}");
        }
        assert!(matches!(
            error(&format!("$argon2i$v=20$m=65536,t=2,p=1${argon}")),
            HashFormatError::Unsupported { .. }
        ));
        assert!(matches!(
            error(&format!("$argon2i$v=19$m=65536,t=2,p=1,keyid=abc${argon}")),
            HashFormatError::Unsupported { .. }
        ));
        assert!(matches!(error("$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$@@@"), HashFormatError::BadBase64 { .. }));
    }

    #[test]
    fn unknown_and_oversized_inputs() {
        assert_eq!(error(""), HashFormatError::Empty);
        assert!(matches!(error(&"a".repeat(MAX_INPUT_LEN + 1)), HashFormatError::TooLong { .. }));
        assert_eq!(error("$md5$abc"), HashFormatError::UnknownFormat { scheme: Some("md5".into()) });
        assert!(error("$1$abc").to_string().starts_with("unknown hash format `1`: expected"));
        // A raw password by mistake is never echoed.
        let raw = error("Tr0ub4dor&3");
        assert_eq!(raw, HashFormatError::UnknownFormat { scheme: None });
        assert!(!raw.to_string().contains("Tr0ub4dor"));
        assert_eq!(error("{sha256}abc").to_string(), "unsupported Spring prefix `sha256`");
    }
}
