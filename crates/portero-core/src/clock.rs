//! The one place the wall clock is read. Everything below the endpoints takes `now` (unix
//! seconds) as an argument, so tests pin time and nothing reads the clock behind their back.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now. A clock set before 1970 reads as 0, which fails closed: every token minted
/// would be expired on arrival, and every stored expiry lies in the future of nothing issued.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
