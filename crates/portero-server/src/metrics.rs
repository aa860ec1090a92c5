//! Prometheus metrics: token requests by grant, client and outcome, and their latency.
//! Labels only ever carry authenticated client ids, never what a caller typed, so an attacker
//! cannot grow the label set.

use std::sync::OnceLock;
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

/// Records one token-endpoint answer.
pub fn token_request(grant: &'static str, client_id: Option<&str>, outcome: &'static str, elapsed: Duration) {
    let client = client_id.unwrap_or("-").to_owned();
    metrics::counter!("portero_token_requests_total", "grant" => grant, "client_id" => client, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("portero_token_request_duration_seconds", "grant" => grant).record(elapsed.as_secs_f64());
}
