//! Prometheus metrics: token requests by grant, client and outcome, and their latency.
//! Labels only ever carry authenticated client ids, never what a caller typed, so an attacker
//! cannot grow the label set; and at most [`CLIENT_LABELS`] distinct ids get a series of their
//! own (the first seen), the rest are counted under `client_id="other"`, so a million clients
//! cost as much memory as a thousand.

use std::collections::HashSet;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets for token requests, in seconds (a few ms for signatures, ~30 ms for argon2).
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// The process-wide recorder, installed on first use.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("portero_token_request_duration_seconds".into()), BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Distinct client ids labelled one by one; beyond, `other`.
pub const CLIENT_LABELS: usize = 1_000;

/// The label for `client_id`: itself while fewer than [`CLIENT_LABELS`] ids have one (or it is
/// one of them), `other` after.
fn client_label(client_id: &str) -> String {
    static LABELLED: OnceLock<RwLock<HashSet<String>>> = OnceLock::new();
    let labelled = LABELLED.get_or_init(RwLock::default);
    if labelled.read().unwrap_or_else(|p| p.into_inner()).contains(client_id) {
        return client_id.to_owned();
    }
    let mut labelled = labelled.write().unwrap_or_else(|p| p.into_inner());
    if labelled.len() < CLIENT_LABELS || labelled.contains(client_id) {
        labelled.insert(client_id.to_owned());
        return client_id.to_owned();
    }
    "other".to_owned()
}

/// Records one token-endpoint answer.
pub fn token_request(grant: &'static str, client_id: Option<&str>, outcome: &'static str, elapsed: Duration) {
    let client = client_id.map_or_else(|| "-".to_owned(), client_label);
    metrics::counter!("portero_token_requests_total", "grant" => grant, "client_id" => client, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("portero_token_request_duration_seconds", "grant" => grant).record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_labels_stop_at_the_cap() {
        let first = client_label("metrics-test-first");
        assert_eq!(first, "metrics-test-first");
        for i in 0..CLIENT_LABELS {
            client_label(&format!("metrics-test-{i}"));
        }
        assert_eq!(client_label("metrics-test-one-too-many"), "other");
        assert_eq!(client_label("metrics-test-first"), "metrics-test-first", "a labelled id keeps its label");
    }
}
