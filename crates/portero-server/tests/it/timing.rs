//! Failed client authentications cost the same whatever the reason: an unknown client id, a
//! wrong generated secret and a wrong operator-chosen (argon2) secret each run one argon2 check,
//! so timing does not tell which client ids exist or which have chosen secrets. Samples of the
//! three kinds are interleaved, so drift in the machine's speed hits all three alike; the bound
//! is loose (a factor of 2) because the claim is "the same work", not a benchmark.

use std::time::{Duration, Instant};

use portero_core::grant::GrantType;
use portero_core::secret::{hash_generated_secret, hash_password};
use portero_core::store::prelude::*;

use crate::harness::*;

const SAMPLES: usize = 25;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn unknown_clients_and_wrong_secrets_of_either_kind_cost_the_same() {
    let server = Server::start().await;
    for i in 0..SAMPLES {
        let chosen =
            base_client(&format!("chosen-{i}"), hash_password("operator-chosen"), &[GrantType::ClientCredentials]);
        server.db.create_client(&chosen).await.unwrap();
        let generated =
            base_client(&format!("generated-{i}"), hash_generated_secret("g"), &[GrantType::ClientCredentials]);
        server.db.create_client(&generated).await.unwrap();
    }
    let (mut unknown, mut chosen, mut generated) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        for (id, samples) in [
            (format!("nobody-{i}"), &mut unknown),
            (format!("chosen-{i}"), &mut chosen),
            (format!("generated-{i}"), &mut generated),
        ] {
            let started = Instant::now();
            let (status, _, body) =
                server.post_form("/oauth2/token", Some((&id, "wrong")), "grant_type=client_credentials").await;
            samples.push(started.elapsed());
            assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{id}");
        }
    }
    let (unknown, chosen, generated) = (median(unknown), median(chosen), median(generated));
    println!("median failed authentication: unknown {unknown:?}, chosen secret {chosen:?}, generated {generated:?}");
    for (kind, median) in [("unknown client", unknown), ("generated secret", generated)] {
        let ratio = median.as_secs_f64() / chosen.as_secs_f64();
        assert!((0.5..2.0).contains(&ratio), "{kind}: {median:?} against a wrong chosen secret's {chosen:?}");
    }
}
