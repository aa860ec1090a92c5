-- The one client-authentication method a client uses (RFC 7591 token_endpoint_auth_method);
-- NULL, as for every client made before this column, accepts client_secret_basic and
-- client_secret_post.
ALTER TABLE clients ADD COLUMN token_endpoint_auth_method TEXT;
