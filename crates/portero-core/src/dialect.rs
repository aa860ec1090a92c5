//! Dialects: the same token endpoint spoken the way each integration expects.
//!
//! Only the Pay-me dialect changes the answer: a JSON request with `action` gets `action`,
//! `success` and `authorization.meta.status` (code `00`/`01`, localized `message_ilgn`) on top
//! of the RFC 6749 fields, on success and on every error.

use serde_json::{Map, Value, json};

use crate::error::{ErrorCode, OAuthError};

/// The locale of envelope messages when neither client nor configuration names one.
pub const DEFAULT_LOCALE: &str = "es_PE";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialect {
    /// RFC 6749 as written (NetPay, Zertiban, Nequi, and any standard client).
    Standard,
    /// The Pay-me envelope, echoing the request's `action`.
    Envelope { action: String },
}

impl Dialect {
    /// `action` values are echoed, so they are held to a short, plain alphabet.
    pub fn envelope(action: &str) -> Result<Self, OAuthError> {
        let plain = !action.is_empty()
            && action.len() <= 64
            && action.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
        if plain {
            Ok(Self::Envelope { action: action.to_owned() })
        } else {
            Err(OAuthError::invalid_request("action must be a short word such as \"authorize\""))
        }
    }
}

/// A required API-version header (`ALG-API-VERSION: 1618440906`), checked for envelope requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersionRule {
    pub header: String,
    pub accepted: Vec<String>,
}

impl ApiVersionRule {
    /// Parses `NAME=V1[,V2...]`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (name, values) = spec.split_once('=').ok_or("expected NAME=V1[,V2...]")?;
        let accepted: Vec<String> =
            values.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect();
        let name = name.trim();
        if name.is_empty()
            || accepted.is_empty()
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("expected NAME=V1[,V2...] with a valid header name".into());
        }
        Ok(Self { header: name.to_owned(), accepted })
    }

    pub fn check(&self, presented: Option<&str>) -> Result<(), OAuthError> {
        match presented {
            Some(value) if self.accepted.iter().any(|v| v == value.trim()) => Ok(()),
            Some(_) => Err(OAuthError::invalid_request(format!("unsupported {} value", self.header))),
            None => Err(OAuthError::invalid_request(format!("the {} header is required", self.header))),
        }
    }
}

/// The status message for the envelope, in the locale's language (Spanish or English).
fn message(locale: &str, outcome: Result<(), ErrorCode>) -> &'static str {
    let spanish = !locale.to_ascii_lowercase().starts_with("en");
    match (outcome, spanish) {
        (Ok(()), true) => "Access Token creado",
        (Ok(()), false) => "Access Token created",
        (Err(code), true) => match code {
            ErrorCode::InvalidRequest => "Solicitud inválida",
            ErrorCode::InvalidClient => "Autenticación del cliente fallida",
            ErrorCode::InvalidGrant => "Credenciales o token inválidos",
            ErrorCode::UnauthorizedClient => "Cliente no autorizado para este tipo de concesión",
            ErrorCode::UnsupportedGrantType => "Tipo de concesión no soportado",
            ErrorCode::InvalidScope => "Alcance (scope) inválido",
            ErrorCode::InvalidTarget => "Audiencia inválida",
            ErrorCode::SlowDown => "Demasiados intentos, intente más tarde",
            ErrorCode::ServerError => "Error interno",
            ErrorCode::TemporarilyUnavailable => "Servicio temporalmente no disponible",
            ErrorCode::InvalidDpopProof => "Prueba DPoP inválida",
            ErrorCode::UseDpopNonce => "La prueba DPoP debe llevar el nonce del servidor",
            // Codes of resource servers and revocation, never answered by the token endpoint.
            _ => "Solicitud rechazada",
        },
        (Err(code), false) => match code {
            ErrorCode::InvalidRequest => "Invalid request",
            ErrorCode::InvalidClient => "Client authentication failed",
            ErrorCode::InvalidGrant => "Invalid credentials or token",
            ErrorCode::UnauthorizedClient => "Client not authorized for this grant type",
            ErrorCode::UnsupportedGrantType => "Unsupported grant type",
            ErrorCode::InvalidScope => "Invalid scope",
            ErrorCode::InvalidTarget => "Invalid audience",
            ErrorCode::SlowDown => "Too many attempts, try again later",
            ErrorCode::ServerError => "Internal error",
            ErrorCode::TemporarilyUnavailable => "Service temporarily unavailable",
            ErrorCode::InvalidDpopProof => "Invalid DPoP proof",
            ErrorCode::UseDpopNonce => "The DPoP proof must carry the server's nonce",
            // Codes of resource servers and revocation, never answered by the token endpoint.
            _ => "Request refused",
        },
    }
}

/// Wraps an RFC 6749 response body (success or error object) in the dialect's envelope.
pub fn wrap(dialect: &Dialect, body: Map<String, Value>, locale: &str, outcome: Result<(), ErrorCode>) -> Value {
    let Dialect::Envelope { action } = dialect else {
        return Value::Object(body);
    };
    let mut wrapped = Map::new();
    wrapped.insert("action".into(), action.as_str().into());
    wrapped.insert("success".into(), outcome.is_ok().into());
    wrapped.extend(body);
    let code = if outcome.is_ok() { "00" } else { "01" };
    wrapped.insert(
        "authorization".into(),
        json!({ "meta": { "status": {
            "code": code,
            "message_ilgn": [{ "locale": locale, "value": message(locale, outcome) }],
        }}}),
    );
    Value::Object(wrapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_rule() {
        let rule = ApiVersionRule::parse("ALG-API-VERSION=1618440906").unwrap();
        assert!(rule.check(Some("1618440906")).is_ok());
        assert!(rule.check(Some("1")).is_err());
        assert!(rule.check(None).is_err());
        assert!(ApiVersionRule::parse("novalue").is_err());
        assert!(ApiVersionRule::parse("BAD NAME=1").is_err());
    }

    #[test]
    fn envelope_success_and_error() {
        let dialect = Dialect::envelope("authorize").unwrap();
        let ok = wrap(&dialect, Map::new(), "es_PE", Ok(()));
        assert_eq!(ok["success"], true);
        assert_eq!(ok["authorization"]["meta"]["status"]["code"], "00");
        assert_eq!(ok["authorization"]["meta"]["status"]["message_ilgn"][0]["value"], "Access Token creado");
        let err = wrap(&dialect, Map::new(), "en_US", Err(ErrorCode::InvalidGrant));
        assert_eq!(err["success"], false);
        assert_eq!(err["authorization"]["meta"]["status"]["code"], "01");
        assert_eq!(err["authorization"]["meta"]["status"]["message_ilgn"][0]["locale"], "en_US");
        assert!(Dialect::envelope("<script>").is_err());
    }
}
