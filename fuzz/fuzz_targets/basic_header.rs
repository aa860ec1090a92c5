//! The Basic header: never panic; and form-encoding an id and secret, then base64, decodes back
//! to the same id and secret (RFC 6749 §2.3.1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portero_core::client_auth::decode_basic;

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (b as char).to_string(),
            b' ' => "+".into(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = decode_basic(header);
    }
    let text = String::from_utf8_lossy(data);
    let (id, secret) = text.split_once('\u{1}').unwrap_or((&text, ""));
    if id.is_empty() || id.chars().chain(secret.chars()).any(char::is_control) {
        return;
    }
    let header = format!("Basic {}", base64(format!("{}:{}", form_encode(id), form_encode(secret)).as_bytes()));
    let decoded = decode_basic(&header).expect("a well-formed header decodes");
    assert_eq!((decoded.id.as_str(), decoded.secret.as_str()), (id, secret));
});
