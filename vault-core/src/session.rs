//! Session tokens: a random session id and session key, held only by the
//! caller. The vault stores the root key sealed under the session key, with
//! the session id and expiry in the associated data.
//!
//! Token text: `ravi_session_` || base64url-nopad(session_id (16) || session_key (32)).

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::SecretKey;
use crate::primitives::random_bytes;

/// Prefix of every session token.
pub const TOKEN_PREFIX: &str = "ravi_session_";
/// Default session lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Longest session lifetime.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A session token: what the caller holds to open the vault without the
/// passphrase. Zeroized on drop; `Debug` shows only the session id.
#[derive(Clone)]
pub struct SessionToken {
    /// Random session id (public: stored in the vault).
    pub(crate) id: [u8; 16],
    /// Random session key (secret: never stored).
    pub(crate) key: SecretKey,
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionToken({}, [redacted])", self.id_text())
    }
}

fn locked_malformed() -> Error {
    Error::Locked("invalid session token (malformed)".into())
}

impl SessionToken {
    /// A fresh token.
    pub(crate) fn generate() -> Result<Self> {
        let mut id = [0u8; 16];
        random_bytes(&mut id)?;
        Ok(SessionToken {
            id,
            key: SecretKey::random()?,
        })
    }

    /// The session id as stored in the vault (lowercase hex).
    pub fn id_text(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.id)
    }

    /// Parses a token.
    ///
    /// # Errors
    /// [`Error::Locked`] for anything malformed; the message never echoes it.
    pub fn parse(s: &str) -> Result<Self> {
        let body = s
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(locked_malformed)?;
        let raw = Zeroizing::new(
            data_encoding::BASE64URL_NOPAD
                .decode(body.as_bytes())
                .map_err(|_| locked_malformed())?,
        );
        if raw.len() != 48 {
            return Err(locked_malformed());
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&raw[..16]);
        let key = SecretKey::from_slice(&raw[16..]).ok_or_else(locked_malformed)?;
        Ok(SessionToken { id, key })
    }

    /// The token text. It opens the vault: treat it like the passphrase.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new([0u8; 48]);
        raw[..16].copy_from_slice(&self.id);
        raw[16..].copy_from_slice(self.key.expose());
        Zeroizing::new(format!(
            "{TOKEN_PREFIX}{}",
            data_encoding::BASE64URL_NOPAD.encode(raw.as_ref())
        ))
    }
}

/// Parses a duration: a number with an optional unit `s`, `m`, `h` or `d`
/// (`90s`, `15m`, `1h`, `7d`; the unit is required: a bare number is
/// refused rather than guessed).
///
/// # Errors
/// [`Error::InvalidInput`] for a malformed duration, zero, or one above
/// [`MAX_TTL`].
pub fn parse_ttl(s: &str) -> Result<Duration> {
    let s = s.trim();
    let bad = || {
        Error::invalid(format!(
            "invalid duration {s:?}: give a unit, e.g. 90s, 15m, 1h or 7d"
        ))
    };
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        _ => return Err(bad()),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = n.checked_mul(mult).ok_or_else(bad)?;
    if secs == 0 {
        return Err(Error::invalid("a session lifetime must be above zero"));
    }
    if secs > MAX_TTL.as_secs() {
        return Err(Error::invalid("a session lifetime may be at most 30 days"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        let t = SessionToken::generate().unwrap();
        let text = t.to_text();
        assert!(text.starts_with(TOKEN_PREFIX));
        let back = SessionToken::parse(&text).unwrap();
        assert_eq!(back.id, t.id);
        assert_eq!(back.key, t.key);
        assert!(!format!("{t:?}").contains(&text[TOKEN_PREFIX.len() + 22..]));
    }

    #[test]
    fn malformed_tokens_are_locked_errors() {
        let good = SessionToken::generate().unwrap().to_text();
        for bad in [
            "",
            "ravi_session_",
            "ravi_session_!!!!",
            &good[..good.len() - 2],
            &format!("{}AA", good.as_str()),
            &good.replace("ravi_session_", "ravi_sessiox_"),
        ] {
            let e = SessionToken::parse(bad).unwrap_err();
            assert_eq!(e.class(), crate::ErrorClass::Locked, "{bad}");
        }
    }

    #[test]
    fn ttls() {
        assert!(parse_ttl("90").is_err(), "a unit is required");
        assert_eq!(parse_ttl("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("30d").unwrap(), MAX_TTL);
        for bad in [
            "",
            "0",
            "31d",
            "1w",
            "-1h",
            "h",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
