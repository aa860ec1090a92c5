//! RFC 6750 §3 errors: what a resource server answers when a token does not do.

use http::StatusCode;
use portero_wire::ErrorCode;
use portero_wire::jws::JwsError;

/// Why a request's token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No bearer token at all (RFC 6750 §3.1: a bare challenge, no error code).
    #[error("no bearer token")]
    Missing,
    /// The request is malformed (two tokens, a bad header).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Expired, forged, for another audience or issuer, unknown key, wrong type...
    #[error("invalid token: {0}")]
    InvalidToken(Rejection),
    /// Valid token, but without a scope this call needs (the scopes required).
    #[error("insufficient scope: {0}")]
    InsufficientScope(String),
    /// Valid token, but not for the tenant named by `x-tenant-id`.
    #[error("wrong tenant: {0}")]
    WrongTenant(String),
    /// The JWKS or the introspection endpoint could not be reached.
    #[error("token service unavailable: {0}")]
    Unavailable(String),
    /// The system clock is before 1970: no token's expiry can be judged.
    #[error("the system clock is before the Unix epoch")]
    Clock,
    /// RFC 9449 §7.1: the DPoP proof is missing, malformed, for another request, or replayed.
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(String),
    /// RFC 9449 §7.1: the token of a DPoP request (or a DPoP-bound token sent as Bearer) is
    /// invalid; challenged in the DPoP scheme.
    #[error("invalid DPoP token: {0}")]
    DpopInvalidToken(Rejection),
}

/// Why a token is invalid (the detail of [`VerifyError::InvalidToken`]; never sent to the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Longer than any token Portero issues.
    #[error("token too long")]
    TooLong,
    /// Not a JWS this crate accepts, or a bad signature.
    #[error("{0}")]
    Jws(#[from] JwsError),
    /// The header's `typ` is not `at+jwt` (RFC 9068 §2.1).
    #[error("not an access token (typ must be at+jwt)")]
    NotAnAccessToken,
    /// The header has no `kid`.
    #[error("no kid")]
    NoKeyId,
    /// No published key has this `kid`.
    #[error("unknown key id {0:?}")]
    UnknownKeyId(String),
    /// The payload (or introspection answer) is not access-token claims.
    #[error("malformed claims")]
    MalformedClaims,
    /// `exp` has passed (beyond the leeway).
    #[error("expired")]
    Expired,
    /// `nbf` has not come yet (beyond the leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not include the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// `sub` is empty.
    #[error("no subject")]
    NoSubject,
    /// The introspection endpoint says the token is not an active access token.
    #[error("inactive token")]
    Inactive,
    /// The token is bound to a DPoP key (`cnf.jkt`) but came as a Bearer token.
    #[error("DPoP-bound token sent without a proof")]
    DpopBound,
    /// The DPoP proof was made with another key than the token's.
    #[error("the DPoP proof's key is not the token's")]
    WrongDpopKey,
    /// `Authorization: DPoP` with a token that is not bound to any key.
    #[error("not a DPoP-bound token")]
    NotDpopBound,
    /// The token is bound to a TLS client certificate (`cnf["x5t#S256"]`, RFC 8705 §3) and the
    /// connection presented none.
    #[error("certificate-bound token without a client certificate")]
    NoCertificate,
    /// The token is bound to another TLS client certificate than the connection's.
    #[error("certificate-bound token over another client certificate")]
    WrongCertificate,
}

impl From<JwsError> for VerifyError {
    fn from(error: JwsError) -> Self {
        Self::InvalidToken(Rejection::Jws(error))
    }
}

impl From<Rejection> for VerifyError {
    fn from(rejection: Rejection) -> Self {
        Self::InvalidToken(rejection)
    }
}

impl VerifyError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Missing | Self::InvalidToken(_) | Self::InvalidDpopProof(_) | Self::DpopInvalidToken(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope(_) | Self::WrongTenant(_) => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Clock => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 6750 §3.1 code of the challenge, if it carries one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Missing | Self::Unavailable(_) | Self::Clock => None,
            Self::InvalidRequest(_) => Some(ErrorCode::InvalidRequest),
            Self::InvalidToken(_) | Self::DpopInvalidToken(_) => Some(ErrorCode::InvalidToken),
            Self::InvalidDpopProof(_) => Some(ErrorCode::InvalidDpopProof),
            Self::InsufficientScope(_) | Self::WrongTenant(_) => Some(ErrorCode::InsufficientScope),
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3). It says what kind of failure this is,
    /// never the detail.
    pub fn challenge(&self) -> String {
        let Some(code) = self.error_code() else { return "Bearer realm=\"api\"".to_owned() };
        if let Some(description) = self.dpop_description() {
            let algs = portero_wire::dpop::SIGNING_ALGS.join(" ");
            return format!("DPoP error=\"{code}\", error_description=\"{description}\", algs=\"{algs}\"");
        }
        let (description, scope) = match self {
            Self::InvalidRequest(_) => ("the request is malformed", None),
            Self::InvalidToken(_) => ("the access token is invalid", None),
            Self::InsufficientScope(scope) => ("the token lacks a required scope", Some(scope)),
            _ => ("the token is not valid for this tenant", None),
        };
        let mut challenge = format!("Bearer realm=\"api\", error=\"{code}\", error_description=\"{description}\"");
        if let Some(scope) = scope {
            // Scope tokens cannot contain '"' or '\' (RFC 6749 §3.3), so no escaping is needed.
            challenge.push_str(&format!(", scope=\"{scope}\""));
        }
        challenge
    }

    /// For the refusals challenged in the DPoP scheme (RFC 9449 §7.1), what to say.
    fn dpop_description(&self) -> Option<&'static str> {
        match self {
            Self::InvalidDpopProof(_) => Some("the DPoP proof is invalid"),
            Self::DpopInvalidToken(Rejection::DpopBound) => Some("the token is DPoP-bound: send it with a proof"),
            Self::DpopInvalidToken(_) => Some("the access token is invalid"),
            _ => None,
        }
    }
}

/// Why a [`Verifier`](crate::Verifier) could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither keys, a JWKS URL nor an introspection endpoint was given.
    #[error("no key source: give keys, a JWKS URL or an introspection endpoint")]
    NoKeySource,
    /// The HTTP client could not be built (TLS setup, say).
    #[error("the HTTP client could not be built: {0}")]
    HttpClient(String),
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for VerifyError {
    fn into_response(self) -> axum::response::Response {
        tracing::debug!(error = %self, "request refused");
        let mut response = self.status().into_response();
        if let Ok(value) = http::HeaderValue::from_str(&self.challenge()) {
            response.headers_mut().insert(http::header::WWW_AUTHENTICATE, value);
        }
        response
    }
}
