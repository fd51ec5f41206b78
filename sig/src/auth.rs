//! Join tokens: JWT (RFC 7519) signed with HS256 (RFC 7518 §3.2), carrying
//! the room, the holder's identity (`sub`) and an expiry (`exp`). An admin
//! token (claim `admin: true`, `sfu token --admin`) is for the recording
//! API, of one room or (no `room`) of every room; it admits to no room.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::protocol::Role;

/// The claims of a join token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The only room the token admits to (an admin token: the only room
    /// it manages; empty: every room).
    #[serde(default)]
    pub room: String,
    /// The holder's identity.
    pub sub: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// The role the holder joins as (`participant` or `viewer`); it wins
    /// over the join message's. Absent: the join message decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// An admin token: the recording API, not a join.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// Why a join token was refused. `code()` is the signaling error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The server requires a token and the join carried none.
    #[error("this server requires a join token: add \"token\" to the join message")]
    Missing,
    /// The token's `exp` has passed.
    #[error("the join token has expired; ask for a new one")]
    Expired,
    /// Bad signature, malformed, wrong algorithm or missing claims.
    #[error("the join token is not valid: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    /// The token names another room.
    #[error("the join token is for room {0:?}, not this one")]
    WrongRoom(String),
    /// The recording API got a token that is not an admin token.
    #[error("this needs an admin token (`sfu token --admin`), not a join token")]
    NotAdmin,
    /// Minting: the token could not be signed (it cannot fail with an
    /// HMAC key; never sent to a client).
    #[error("cannot sign the join token: {0}")]
    Signing(jsonwebtoken::errors::Error),
}

impl AuthError {
    /// Stable error code (docs/signaling.md).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "token-required",
            Self::Expired => "token-expired",
            Self::Invalid(_) => "token-invalid",
            Self::WrongRoom(_) => "token-wrong-room",
            Self::NotAdmin => "token-not-admin",
            Self::Signing(_) => "internal",
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Mints a token for `identity` in `room`, valid for `ttl`, for `role`
/// (`None`: the join message decides).
///
/// Errors: [`AuthError::Signing`] (it does not fail with an HMAC key).
pub fn mint(
    secret: &str,
    room: &str,
    identity: &str,
    ttl: Duration,
    role: Option<Role>,
) -> Result<String, AuthError> {
    sign(secret, &claims(room, identity, ttl, role, false))
}

/// Mints an admin token for `identity`, of `room` only or (empty) of
/// every room, valid for `ttl`.
///
/// Errors: [`AuthError::Signing`] (it does not fail with an HMAC key).
pub fn mint_admin(
    secret: &str,
    room: &str,
    identity: &str,
    ttl: Duration,
) -> Result<String, AuthError> {
    sign(secret, &claims(room, identity, ttl, None, true))
}

fn claims(room: &str, identity: &str, ttl: Duration, role: Option<Role>, admin: bool) -> Claims {
    let iat = now_secs();
    Claims {
        room: room.into(),
        sub: identity.into(),
        iat,
        exp: iat + ttl.as_secs(),
        role,
        admin,
    }
}

fn sign(secret: &str, claims: &Claims) -> Result<String, AuthError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(AuthError::Signing)
}

/// Checks `token` (signature, HS256 only, expiry with no leeway) and that it
/// names `room`; returns its claims.
///
/// Errors: [`AuthError::Missing`], [`AuthError::Expired`],
/// [`AuthError::Invalid`], [`AuthError::WrongRoom`].
pub fn verify(secret: &str, token: Option<&str>, room: &str) -> Result<Claims, AuthError> {
    let claims = decode(secret, token)?;
    if claims.room != room {
        return Err(AuthError::WrongRoom(claims.room));
    }
    Ok(claims)
}

/// Checks an admin token for managing `room`: valid as [`verify`] checks,
/// `admin: true`, and of that room or of every room.
///
/// Errors: [`AuthError::Missing`], [`AuthError::Expired`],
/// [`AuthError::Invalid`], [`AuthError::NotAdmin`],
/// [`AuthError::WrongRoom`].
pub fn verify_admin(secret: &str, token: Option<&str>, room: &str) -> Result<Claims, AuthError> {
    let claims = decode(secret, token)?;
    if !claims.admin {
        return Err(AuthError::NotAdmin);
    }
    if !claims.room.is_empty() && claims.room != room {
        return Err(AuthError::WrongRoom(claims.room));
    }
    Ok(claims)
}

fn decode(secret: &str, token: Option<&str>) -> Result<Claims, AuthError> {
    let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "sub"]);
    let data =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e),
            })?;
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn an_admin_token_manages_recordings_and_admits_to_no_room() {
        let any = mint_admin(SECRET, "", "ops", Duration::from_secs(60)).expect("mint");
        assert!(verify_admin(SECRET, Some(&any), "demo").is_ok());
        assert_eq!(
            verify(SECRET, Some(&any), "demo"),
            Err(AuthError::WrongRoom(String::new()))
        );
        let one = mint_admin(SECRET, "demo", "ops", Duration::from_secs(60)).expect("mint");
        assert!(verify_admin(SECRET, Some(&one), "demo").is_ok());
        assert_eq!(
            verify_admin(SECRET, Some(&one), "other"),
            Err(AuthError::WrongRoom("demo".into()))
        );
        let join = mint(SECRET, "demo", "alice", Duration::from_secs(60), None).expect("mint");
        assert_eq!(
            verify_admin(SECRET, Some(&join), "demo"),
            Err(AuthError::NotAdmin)
        );
        assert_eq!(verify_admin(SECRET, None, "demo"), Err(AuthError::Missing));
    }

    #[test]
    fn minted_token_admits_to_its_room_only() {
        let t = mint(SECRET, "demo", "alice", Duration::from_secs(60), None).expect("mint");
        let c = verify(SECRET, Some(&t), "demo").expect("valid");
        assert_eq!((c.room.as_str(), c.sub.as_str()), ("demo", "alice"));
        assert_eq!(
            verify(SECRET, Some(&t), "other"),
            Err(AuthError::WrongRoom("demo".into()))
        );
        assert!(matches!(
            verify("another-secret-another-secret-xx", Some(&t), "demo"),
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(verify(SECRET, None, "demo"), Err(AuthError::Missing));
        assert!(matches!(
            verify(SECRET, Some("not.a.jwt"), "demo"),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn expired_token_is_refused() {
        let claims = Claims {
            room: "demo".into(),
            sub: "a".into(),
            iat: 1,
            exp: now_secs() - 5,
            role: None,
            admin: false,
        };
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode");
        assert_eq!(verify(SECRET, Some(&t), "demo"), Err(AuthError::Expired));
    }

    #[test]
    fn unsigned_alg_none_token_is_refused() {
        // header {"alg":"none","typ":"JWT"}, valid-looking claims, no signature.
        let t = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb29tIjoiZGVtbyIsInN1YiI6ImEiLCJpYXQiOjEsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(matches!(
            verify(SECRET, Some(t), "demo"),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn a_token_carries_the_role_it_was_minted_for() {
        let t = mint(
            SECRET,
            "demo",
            "v",
            Duration::from_secs(60),
            Some(Role::Viewer),
        )
        .expect("mint");
        let c = verify(SECRET, Some(&t), "demo").expect("valid");
        assert_eq!(c.role, Some(Role::Viewer));
        let t = mint(SECRET, "demo", "p", Duration::from_secs(60), None).expect("mint");
        let c = verify(SECRET, Some(&t), "demo").expect("valid");
        assert_eq!(c.role, None, "absent: the join message decides");
    }
}
