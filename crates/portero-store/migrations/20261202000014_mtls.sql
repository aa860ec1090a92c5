-- Mutual TLS (RFC 8705). A `tls_client_auth` client is registered with the subject DN its
-- certificate must carry (RFC 4514 string form, compared normalized); a client may have its
-- access tokens bound to the TLS client certificate of the request (`x5t#S256`).
ALTER TABLE clients ADD COLUMN tls_client_auth_subject_dn TEXT;
ALTER TABLE clients ADD COLUMN tls_client_certificate_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;
