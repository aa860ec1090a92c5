-- DPoP (RFC 9449). A client may be required to send a proof with every token request
-- (`--require-dpop`); a refresh token issued with a proof is bound to the proof's key, by
-- that key's JWK SHA-256 thumbprint (`jkt`), and is refused without a proof from that key.
ALTER TABLE clients ADD COLUMN require_dpop BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE refresh_tokens ADD COLUMN jkt TEXT;

-- private_key_jwt clients may name where their JWK Set is published instead of registering it
-- (RFC 7591 `jwks_uri`); Portero fetches and caches it.
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
