//! Signs client assertions (and DPoP proofs) ahead of a load test, so the load generator only
//! sends them: `bench/proofs.py` runs it. Each line of each output file is one request's
//! `ASSERTION[ PROOF]`, every one with its own `jti`.
//!
//! ```text
//! presign KEY.pem CLIENT_ID TOKEN_URL COUNT FILES OUT_PREFIX [DPOP_KEY.pem]
//! presign --jwks KEY.pem KID      # prints the key's public JWK Set
//! ```

use std::io::Write as _;

use portero_client::SigningKey;

fn key(path: &str) -> SigningKey {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    SigningKey::from_text(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--jwks") {
        let key = key(&args[1]).with_kid(args[2].clone());
        println!("{}", serde_json::json!({ "keys": [key.public_jwk()] }));
        return;
    }
    let [key_path, client_id, url, count, files, prefix, rest @ ..] = args.as_slice() else {
        panic!("usage: presign KEY.pem CLIENT_ID TOKEN_URL COUNT FILES OUT_PREFIX [DPOP_KEY.pem]");
    };
    let assertion_key = key(key_path).with_kid("bench");
    let dpop_key = rest.first().map(|path| key(path));
    let (count, files): (usize, usize) = (count.parse().expect("COUNT"), files.parse().expect("FILES"));
    let mut outputs: Vec<_> = (0..files)
        .map(|i| std::io::BufWriter::new(std::fs::File::create(format!("{prefix}.{i}")).expect("output file")))
        .collect();
    for i in 0..count {
        let out = &mut outputs[i % files];
        let assertion = assertion_key.client_assertion(client_id, url).expect("signing");
        match &dpop_key {
            Some(dpop) => {
                let proof = dpop.dpop_proof("POST", url, None, None).expect("signing");
                writeln!(out, "{assertion} {proof}")
            }
            None => writeln!(out, "{assertion}"),
        }
        .expect("writing");
    }
    for mut out in outputs {
        out.flush().expect("writing");
    }
}
