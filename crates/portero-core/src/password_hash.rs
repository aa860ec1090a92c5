//! The computations behind stored secrets, with no threads or caches of their own: the salted
//! SHA-256 of generated secrets (`$s256$`), argon2id hashing and checking in a buffer the caller
//! keeps, and the recognition of legacy hashes. `argon2_pool` runs the argon2 ones on its
//! workers; `secret` is what the rest of the crate calls.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

use crate::legacy_hash::LegacyHash;

pub(crate) const S256_PREFIX: &str = "$s256$";

pub(crate) fn s256(salt: &[u8], secret: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(salt);
    ctx.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(ctx.finish())
}

/// Whether `stored` is a well-formed `$s256$<salt>$<digest>` (what [`s256`] and
/// `secret::hash_generated_secret` write): a salt of 16 to 64 bytes and a 32-byte digest, both base64url.
pub(crate) fn is_s256(stored: &str) -> bool {
    let Some((salt, digest)) = stored.strip_prefix(S256_PREFIX).and_then(|rest| rest.split_once('$')) else {
        return false;
    };
    let decoded_len = |text: &str| URL_SAFE_NO_PAD.decode(text).map(|bytes| bytes.len()).ok();
    matches!(decoded_len(salt), Some(16..=64)) && decoded_len(digest) == Some(32)
}

/// OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane (~30 ms here).
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const HASH_LEN: usize = 32;
/// 33 MiB of argon2 blocks (1 KiB each): see [`compute`].
const OWN_MAPPING_BLOCKS: usize = 33 * 1024;

/// The argon2id PHC string of `password` under a fresh salt, computed in `memory` (grown as
/// needed and kept by the caller).
pub(crate) fn hash_with_memory(password: &str, memory: &mut Vec<Block>) -> String {
    let mut salt = [0u8; 16];
    // aws-lc's RNG only fails if the OS has no entropy source at all: an empty hash never verifies.
    if aws_lc_rs::rand::fill(&mut salt).is_err() {
        return String::new();
    }
    let mut hash = [0u8; HASH_LEN];
    let argon2_params = params(M_COST_KIB, T_COST, P_COST, HASH_LEN);
    // Infallible for these constants and a 16-byte salt; an empty hash would never verify.
    if argon2_params.as_ref().is_none_or(|p| compute(p, password, &salt, &mut hash, memory).is_err()) {
        return String::new();
    }
    format!(
        "$argon2id$v=19$m={M_COST_KIB},t={T_COST},p={P_COST}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(hash)
    )
}

fn params(m_cost: u32, t_cost: u32, p_cost: u32, len: usize) -> Option<Params> {
    Params::new(m_cost, t_cost, p_cost, Some(len)).ok()
}

fn compute(
    params: &Params,
    presented: &str,
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> argon2::Result<()> {
    let blocks = params.block_count();
    if memory.len() < blocks {
        // Reserved past glibc's largest dynamic mmap threshold (32 MiB), so the buffer is
        // always its own mapping and dropping it hands its pages back to the system. Only the
        // 19 MiB argon2 touches become resident; smaller, it would be carved from a thread's
        // arena and kept there for good.
        memory.reserve_exact(blocks.max(OWN_MAPPING_BLOCKS) - memory.len());
        memory.resize(blocks, Block::default());
    }
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    hasher.hash_password_into_with_memory(presented.as_bytes(), salt, out, &mut memory[..blocks])
}

/// A native hash (`$s256$` or argon2id) check, computing argon2 in `memory`, which is grown as
/// needed and kept by the caller: a worker that reuses it allocates 19 MiB once.
pub(crate) fn verify_with_memory(presented: &str, stored: &str, memory: &mut Vec<Block>) -> bool {
    if let Some(rest) = stored.strip_prefix(S256_PREFIX) {
        let Some((salt, expected)) = rest.split_once('$') else { return false };
        let Ok(salt) = URL_SAFE_NO_PAD.decode(salt) else { return false };
        let actual = s256(&salt, presented);
        return actual.as_bytes().ct_eq(expected.as_bytes()).into();
    }
    let Some(phc) = Argon2idHash::parse(stored) else { return false };
    let Some(params) = params(phc.m_cost, phc.t_cost, phc.p_cost, phc.hash.len()) else { return false };
    let mut actual = vec![0u8; phc.hash.len()];
    if compute(&params, presented, &phc.salt, &mut actual, memory).is_err() {
        return false;
    }
    actual.ct_eq(&phc.hash).into()
}

/// `$argon2id$v=19$m=M,t=T,p=P$<salt>$<hash>` (PHC string format, base64 without padding).
struct Argon2idHash {
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Argon2idHash {
    fn parse(stored: &str) -> Option<Self> {
        let mut parts = stored.strip_prefix("$argon2id$v=19$")?.split('$');
        let (params, salt, hash) = (parts.next()?, parts.next()?, parts.next()?);
        let (mut m_cost, mut t_cost, mut p_cost) = (None, None, None);
        for param in params.split(',') {
            let (name, value) = param.split_once('=')?;
            let value: u32 = value.parse().ok()?;
            match name {
                "m" => m_cost = Some(value),
                "t" => t_cost = Some(value),
                "p" => p_cost = Some(value),
                _ => return None,
            }
        }
        // Stored hashes are ours, but a tampered row must not make a worker allocate gigabytes.
        let m_cost = m_cost.filter(|m| *m <= 256 * 1024)?;
        Some(Self {
            m_cost,
            t_cost: t_cost?,
            p_cost: p_cost?,
            salt: STANDARD_NO_PAD.decode(salt).ok()?,
            hash: STANDARD_NO_PAD.decode(hash).ok()?,
        })
    }
}

/// A stored hash that is not Portero's own (`$s256$`, native argon2id) but one `legacy_hash`
/// reads back. The prefix test comes first, so native hashes are not parsed twice.
pub(crate) fn legacy_form(stored: &str) -> Option<LegacyHash> {
    if stored.starts_with(S256_PREFIX) || stored.starts_with("$argon2id$v=19$") {
        return None;
    }
    LegacyHash::parse_stored(stored).ok().filter(|hash| !hash.is_portero_native())
}

/// A worker's check: native hashes as before; a legacy hash with its own scheme, then one
/// argon2 computation either way (the replacing hash on a match, a check against `dummy` on a
/// miss). Returns whether it matched and the replacement.
pub(crate) fn check_with_memory(
    presented: &str,
    stored: &str,
    dummy: &str,
    memory: &mut Vec<Block>,
) -> (bool, Option<String>) {
    let Some(legacy) = legacy_form(stored) else {
        return (verify_with_memory(presented, stored, memory), None);
    };
    if legacy.verify(presented) {
        (true, Some(hash_with_memory(presented, memory)))
    } else {
        let _ = verify_with_memory(presented, dummy, memory);
        (false, None)
    }
}
