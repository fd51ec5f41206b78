//! The STUN and TURN servers handed to clients in the join reply
//! (`ice_servers` of `answer`, in the shape of WebRTC's `RTCIceServer`), so
//! clients whose network blocks UDP to us, or allows only a relay, still
//! connect. Each is configured with fixed credentials, or with the secret
//! of coturn's `use-auth-secret`, from which every member gets its own
//! time-limited ones (the TURN REST API convention,
//! draft-uberti-behave-turn-rest-00 §2.2: username `expiry:user`, password
//! `base64(HMAC-SHA1(secret, username))`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};

/// How long minted TURN credentials are valid by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// One configured server (`[[ice_servers]]` in the TOML file, or the
/// `--ice-servers` flag as an inline TOML array of tables).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    /// `stun:`, `stuns:`, `turn:` or `turns:` URLs (RFC 7064, RFC 7065),
    /// e.g. `turn:turn.example.com:3478?transport=udp`.
    pub urls: Vec<String>,
    /// A fixed TURN username (with `credential`).
    #[serde(default)]
    pub username: Option<String>,
    /// A fixed TURN password (with `username`).
    #[serde(default)]
    pub credential: Option<String>,
    /// coturn's `static-auth-secret`: each member gets time-limited
    /// credentials made from it instead.
    #[serde(default)]
    pub secret: Option<String>,
    /// Validity of minted credentials, seconds (86,400 by default).
    #[serde(default)]
    pub ttl: Option<u64>,
}

/// What a client puts in `RTCPeerConnection({iceServers})`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// The server's URLs.
    pub urls: Vec<String>,
    /// TURN username, if it needs one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub username: Option<String>,
    /// TURN password, if it needs one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub credential: Option<String>,
}

/// Parses the `--ice-servers` flag: an inline TOML array of tables, as
/// the file's `ice_servers` key takes, e.g.
/// `[{urls = ["turn:127.0.0.1:3478"], secret = "s3cret"}]`.
///
/// Errors: why it is not such an array (the TOML error).
pub fn parse_flag(v: &str) -> Result<Vec<IceServerConfig>, String> {
    #[derive(Deserialize)]
    struct Wrap {
        ice_servers: Vec<IceServerConfig>,
    }
    toml::from_str::<Wrap>(&format!("ice_servers = {v}"))
        .map(|w| w.ice_servers)
        .map_err(|e| e.message().to_string())
}

/// Checks each server: URLs with a known scheme; for TURN, either a
/// username and credential or a secret, not both.
///
/// Errors: what is wrong, naming the server by its first URL.
pub fn validate(servers: &[IceServerConfig]) -> Result<(), String> {
    for s in servers {
        let name = s.urls.first().cloned().unwrap_or_default();
        if s.urls.is_empty() {
            return Err("an ICE server has no urls".into());
        }
        let mut turn = false;
        for u in &s.urls {
            match u.split_once(':').map(|(scheme, _)| scheme) {
                Some("stun" | "stuns") => {}
                Some("turn" | "turns") => turn = true,
                _ => {
                    return Err(format!("{u:?} is not a stun:, stuns:, turn: or turns: URL"));
                }
            }
        }
        let fixed = s.username.is_some() || s.credential.is_some();
        match (turn, fixed, s.secret.as_deref()) {
            (_, true, Some(_)) => {
                return Err(format!(
                    "{name}: give either username and credential, or secret, not both"
                ));
            }
            (_, _, Some("")) => return Err(format!("{name}: the secret is empty")),
            (true, false, None) => {
                return Err(format!(
                    "{name}: a TURN server needs username and credential, or secret"
                ));
            }
            (_, true, None) if s.username.is_none() || s.credential.is_none() => {
                return Err(format!("{name}: username and credential go together"));
            }
            _ => {}
        }
        if s.ttl == Some(0) {
            return Err(format!("{name}: ttl must be at least 1 second"));
        }
    }
    Ok(())
}

/// The servers as member `who` (its participant id) gets them at `now`:
/// fixed credentials as configured, minted ones valid for the server's ttl.
pub fn for_member(servers: &[IceServerConfig], who: &str, now: SystemTime) -> Vec<IceServer> {
    servers
        .iter()
        .map(|s| {
            let (username, credential) = match &s.secret {
                Some(secret) => {
                    let ttl = s.ttl.map_or(DEFAULT_TTL, Duration::from_secs);
                    let (u, p) = mint(secret, who, now + ttl);
                    (Some(u), Some(p))
                }
                None => (s.username.clone(), s.credential.clone()),
            };
            IceServer {
                urls: s.urls.clone(),
                username,
                credential,
            }
        })
        .collect()
}

/// TURN REST credentials for `who` valid until `expiry`: (`expiry:who`,
/// base64 HMAC-SHA1 of it keyed with `secret`), as coturn's
/// `use-auth-secret` checks them.
pub fn mint(secret: &str, who: &str, expiry: SystemTime) -> (String, String) {
    let secs = expiry.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let username = format!("{secs}:{who}");
    // HMAC takes a key of any length (RFC 2104 §3): this cannot fail.
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_credentials_are_coturns_rest_scheme() {
        // RFC 2202 §3 test case 2 as the HMAC-SHA1 check: key "Jefe",
        // data "what do ya want for nothing?".
        let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        let d = mac.finalize().into_bytes();
        assert_eq!(
            d.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        let expiry = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (u, p) = mint("s3cret", "p7", expiry);
        assert_eq!(u, "1800000000:p7");
        let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(b"s3cret").expect("key");
        mac.update(u.as_bytes());
        assert_eq!(
            p,
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(p.len(), 28, "20 bytes in base64");
    }

    #[test]
    fn the_flag_parses_and_bad_servers_are_named() {
        let s = parse_flag(
            r#"[{urls = ["turn:127.0.0.1:3478?transport=udp"], secret = "x", ttl = 600},
                {urls = ["stun:stun.example.com"]}]"#,
        )
        .expect("parses");
        assert_eq!(s.len(), 2);
        assert_eq!(validate(&s), Ok(()));
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let got = for_member(&s, "p3", now);
        assert_eq!(got[0].username.as_deref(), Some("1600:p3"));
        assert!(got[0].credential.is_some());
        assert_eq!(got[1].username, None, "STUN needs none");
        let json = serde_json::to_string(&got[1]).expect("json");
        assert_eq!(json, r#"{"urls":["stun:stun.example.com"]}"#);
        for (bad, why) in [
            (r#"[{urls = []}]"#, "no urls"),
            (r#"[{urls = ["http://x"]}]"#, "not a stun:"),
            (r#"[{urls = ["turn:x"]}]"#, "needs username"),
            (r#"[{urls = ["turn:x"], username = "u"}]"#, "go together"),
            (
                r#"[{urls = ["turn:x"], username = "u", credential = "c", secret = "s"}]"#,
                "not both",
            ),
            (r#"[{urls = ["turn:x"], secret = ""}]"#, "empty"),
        ] {
            let e = validate(&parse_flag(bad).expect("parses")).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(parse_flag("[{url = 'x'}]").is_err(), "unknown key");
        assert!(parse_flag("nope").is_err());
    }
}
