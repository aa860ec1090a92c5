//! RFC 7515 §4.1.11: a JWS whose header carries `crit` names extensions the recipient must
//! understand; `portero-verify` understands none, so such a token is refused however good its
//! signature.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portero_core::keys::{Alg, Signer};
use portero_verify::{Jwks, Verifier, VerifyError};
use serde_json::json;

const ISSUER: &str = "https://auth.example";
const AUDIENCE: &str = "https://api.example";

struct Key {
    signer: Signer,
    kid: String,
    alg: Alg,
}

impl Key {
    fn new(alg: Alg) -> Self {
        let signer = Signer::from_pkcs8(alg, &Signer::generate_pkcs8(alg).unwrap()).unwrap();
        let kid = signer.thumbprint();
        Self { signer, kid, alg }
    }

    fn verifier(&self) -> Verifier {
        let set = Jwks::from_json(&json!({ "keys": [self.signer.public_jwk(&self.kid, self.alg)] })).unwrap();
        Verifier::builder(ISSUER, AUDIENCE).keys(set).build().unwrap()
    }

    /// A compact JWS over valid access-token claims, with `extra` header members.
    fn token(&self, extra: serde_json::Value) -> String {
        let mut header = json!({ "alg": self.alg.as_str(), "kid": self.kid, "typ": "at+jwt" });
        for (name, value) in extra.as_object().unwrap() {
            header[name] = value.clone();
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let claims = json!({ "iss": ISSUER, "sub": "merchant-42", "aud": AUDIENCE, "iat": now, "exp": now + 300,
                             "client_id": "merchant-42", "scope": "post:charges" });
        let signed =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = URL_SAFE_NO_PAD.encode(self.signer.sign(signed.as_bytes()).unwrap());
        format!("{signed}.{signature}")
    }
}

#[tokio::test]
async fn a_token_with_a_crit_header_is_refused() {
    for alg in [Alg::Rs256, Alg::Es256, Alg::EdDsa] {
        let key = Key::new(alg);
        let verifier = key.verifier();
        let plain = verifier.verify(&key.token(json!({}))).await;
        assert_eq!(plain.unwrap().sub, "merchant-42", "{alg:?}: the same token without crit verifies");

        let critical = [
            json!({ "crit": ["exp"], "exp": 1 }),
            json!({ "crit": ["b64"], "b64": false }),
            json!({ "crit": [] }),
            json!({ "crit": null }),
        ];
        for extra in critical {
            match verifier.verify(&key.token(extra.clone())).await {
                Err(VerifyError::InvalidToken(why)) => {
                    assert!(why.to_string().contains("critical"), "{alg:?} {extra}: {why}")
                }
                other => panic!("{alg:?} {extra}: accepted or wrong error: {other:?}"),
            }
        }
    }
}
