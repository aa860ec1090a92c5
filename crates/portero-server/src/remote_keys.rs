//! Fetching the JWK Sets of clients registered with a `jwks_uri`, for the core's cache: a GET
//! with verified TLS (http only to loopback, checked again here), no redirects, 5 s to answer,
//! and at most 64 KiB of body.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use portero_core::remote_keys::{Fetched, KeyFetch, acceptable_uri};

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BODY: usize = 64 * 1024;

pub struct HttpKeyFetch {
    http: reqwest::Client,
}

impl HttpKeyFetch {
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(TIMEOUT).redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Self { http })
    }
}

impl KeyFetch for HttpKeyFetch {
    fn fetch<'a>(&'a self, url: &'a str) -> Pin<Box<dyn Future<Output = Result<Fetched, String>> + Send + 'a>> {
        Box::pin(async move {
            if !acceptable_uri(url) {
                return Err("not an https (or loopback http) URL".to_owned());
            }
            let mut response = self.http.get(url).send().await.map_err(|e| e.without_url().to_string())?;
            if !response.status().is_success() {
                return Err(format!("answered {}", response.status()));
            }
            let max_age =
                response.headers().get(reqwest::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).and_then(max_age);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| e.without_url().to_string())? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(format!("a JWK Set over {MAX_BODY} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            let body = serde_json::from_slice(&body).map_err(|_| "not JSON".to_owned())?;
            Ok(Fetched { body, max_age })
        })
    }
}

/// `max-age=N` of a `Cache-Control` value (`no-store`/`no-cache` as 0: the cache clamps it).
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|directive| match directive.split_once('=') {
        Some((name, seconds)) if name.eq_ignore_ascii_case("max-age") => {
            seconds.trim().parse().ok().map(Duration::from_secs)
        }
        None if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache") => {
            Some(Duration::ZERO)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control() {
        assert_eq!(max_age("public, max-age=600"), Some(Duration::from_secs(600)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
