"""DPoP proofs (and client assertions) for Portero's tests, made by an independent JOSE
implementation (PyJWT with `cryptography`), with RFC 7638 thumbprints and `ath` values computed
here with hashlib.

Reads one JSON object on stdin:
  {"keys": {NAME: PEM, ...},        # keys from an earlier run, to sign with the same keys again
   "requests": [{"key": NAME,       # a (P-256), b (P-256), ed (Ed25519), rsa (RSA-2048, PS256)
                 "claims": {...},   # the proof's claims
                 "ath_of": TOKEN,   # optional: add `ath` for this access token
                 "header": {...},   # optional: members added to or overriding the header
                 "private_jwk": true,    # optional: put the private key in the header's jwk
                 "assertion": true}]}    # optional: a plain JWT (header {"kid": NAME}), e.g.
                                         # a private_key_jwt client assertion
Prints {"keys": {NAME: PEM}, "proofs": [...], "thumbprints": {NAME: jkt},
        "jwks": {"keys": [public JWK with "kid": NAME, ...]}}.
"""
import base64, hashlib, json, sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ALGS = {"a": "ES256", "b": "ES256", "ed": "EdDSA", "rsa": "PS256"}
TOOLS = {"a": ECAlgorithm, "b": ECAlgorithm, "ed": OKPAlgorithm, "rsa": RSAAlgorithm}


def generate(name):
    if name == "ed":
        return ed25519.Ed25519PrivateKey.generate()
    if name == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk):
    members = {"EC": ["crv", "kty", "x", "y"], "OKP": ["crv", "kty", "x"], "RSA": ["e", "kty", "n"]}[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64(hashlib.sha256(canonical.encode()).digest())


def main():
    given = json.load(sys.stdin)
    keys = {n: serialization.load_pem_private_key(p.encode(), None) for n, p in given.get("keys", {}).items()}
    for name in ALGS:
        keys.setdefault(name, generate(name))
    public = {n: json.loads(TOOLS[n].to_jwk(k.public_key())) for n, k in keys.items()}
    proofs = []
    for request in given["requests"]:
        name = request["key"]
        header = {"kid": name} if request.get("assertion") else {"typ": "dpop+jwt", "jwk": public[name]}
        header.update(request.get("header", {}))
        if request.get("private_jwk"):
            header["jwk"] = json.loads(TOOLS[name].to_jwk(keys[name]))
        claims = dict(request["claims"])
        if "ath_of" in request:
            claims["ath"] = b64(hashlib.sha256(request["ath_of"].encode()).digest())
        proofs.append(jwt.encode(claims, keys[name], algorithm=ALGS[name], headers=header))
    pems = {
        n: k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption()).decode()
        for n, k in keys.items()
    }
    jwks = {"keys": [dict(j, kid=n) for n, j in public.items()]}
    thumbprints = {n: thumbprint(j) for n, j in public.items()}
    print(json.dumps({"keys": pems, "proofs": proofs, "thumbprints": thumbprints, "jwks": jwks}))


main()
