//! Agent keys (X25519) and grants: an identity key wrapped to one agent.
//!
//! ```text
//! agent secret a (32 random bytes), public A = X25519(a, 9)
//! grant:  e random, E = X25519(e, 9), ss = X25519(e, A)  (refused if all-zero)
//!         wrap_key = HKDF-SHA256(salt = E || A, ikm = ss, info = LABEL_GRANT_KEY)
//!         wrapped  = envelope(wrap_key, Grant AD, IK)
//! open:   ss = X25519(a, E), same wrap_key
//! ```
//!
//! Text forms are Bech32 (BIP 173) with a checksum, so a mistyped key is
//! rejected: public keys `raviagent1…`, secret keys `RAVI-AGENT-SECRET-KEY-1…`.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bech32::{Bech32, Hrp};
use zeroize::Zeroizing;

use crate::envelope::{self, SealContext};
use crate::error::{Error, Result};
use crate::keys::SecretKey;
use crate::primitives::{KEY_LEN, hkdf_sha256_salted, random_bytes, x25519_public, x25519_shared};

/// HKDF info of a grant's wrap key.
pub const LABEL_GRANT_KEY: &str = "ravi/v1/grant/wrap-key";
/// Bech32 human-readable part of agent public keys.
pub const PUBLIC_HRP: &str = "raviagent";
/// Bech32 human-readable part of agent secret keys (written upper-case).
pub const SECRET_HRP: &str = "ravi-agent-secret-key-";

/// Decodes Bech32 with the classic BIP 173 checksum only (not Bech32m), as
/// SPEC §6b names it.
pub(crate) fn decode_bech32(s: &str) -> std::result::Result<(Hrp, Vec<u8>), String> {
    let checked = bech32::primitives::decode::CheckedHrpstring::new::<Bech32>(s)
        .map_err(|e| e.to_string())?;
    Ok((checked.hrp(), checked.byte_iter().collect()))
}

fn hrp(s: &str) -> Hrp {
    Hrp::parse(s).expect("the HRP constants are valid Bech32 HRPs")
}

/// An agent's X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AgentPublicKey([u8; KEY_LEN]);

impl AgentPublicKey {
    /// Parses `raviagent1…`, checking the Bech32 checksum.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for anything that is not a valid agent public key.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(Error::invalid(
                "invalid agent public key: it is written in lower case (raviagent1…)",
            ));
        }
        let (h, data) = decode_bech32(s).map_err(|e| {
            Error::invalid(format!(
                "invalid agent public key (expected raviagent1…; a typo breaks its checksum): {e}"
            ))
        })?;
        if h != hrp(PUBLIC_HRP) {
            return Err(Error::invalid(
                "not an agent public key (expected raviagent1…)",
            ));
        }
        let bytes: [u8; KEY_LEN] = data
            .try_into()
            .map_err(|_| Error::invalid("invalid agent public key length"))?;
        Ok(AgentPublicKey(bytes))
    }

    /// From raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        AgentPublicKey(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Display for AgentPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = bech32::encode::<Bech32>(hrp(PUBLIC_HRP), &self.0).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

impl fmt::Debug for AgentPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentPublicKey({self})")
    }
}

/// An agent's X25519 secret key. Zeroized on drop, never printed by Debug.
#[derive(Clone)]
pub struct AgentSecretKey {
    secret: SecretKey,
    /// `A = X25519(a, 9)`, computed once: every opening looks its grant up
    /// by it (a `ravi daemon` opens identities with one key all day).
    public: [u8; KEY_LEN],
    /// The last grant's ephemeral key `E` and `X25519(a, E)`: opening the
    /// same grant again (each request to a `ravi daemon`) skips the
    /// scalar multiplication. Shared by clones; zeroized with the last.
    last_shared: Arc<Mutex<Option<SharedWith>>>,
}

/// An X25519 shared secret and the peer key it was computed with.
type SharedWith = ([u8; KEY_LEN], Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for AgentSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AgentSecretKey([redacted])")
    }
}

impl AgentSecretKey {
    /// A fresh key pair from the OS random number generator.
    ///
    /// # Errors
    /// Only if the OS random number generator fails.
    pub fn generate() -> Result<Self> {
        Ok(AgentSecretKey::new(SecretKey::random()?))
    }

    fn new(secret: SecretKey) -> Self {
        let public = x25519_public(secret.expose());
        AgentSecretKey {
            secret,
            public,
            last_shared: Arc::default(),
        }
    }

    /// `X25519(a, peer)`; `None` for a low-order peer key (all-zero output).
    fn shared_with(&self, peer: &[u8; KEY_LEN]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        if let Ok(last) = self.last_shared.lock()
            && let Some((p, shared)) = last.as_ref()
            && p == peer
        {
            return Some(shared.clone());
        }
        let shared = x25519_shared(self.secret.expose(), peer)?;
        if let Ok(mut last) = self.last_shared.lock() {
            *last = Some((*peer, shared.clone()));
        }
        Some(shared)
    }

    /// A key from fixed bytes (test vectors and fuzzing only).
    #[cfg(any(test, feature = "hazmat"))]
    pub(crate) fn from_seed(seed: [u8; KEY_LEN]) -> Self {
        AgentSecretKey::new(SecretKey::from_bytes(seed))
    }

    #[cfg(test)]
    pub(crate) fn secret_bytes(&self) -> &[u8; KEY_LEN] {
        self.secret.expose()
    }

    /// The matching public key.
    pub fn public(&self) -> AgentPublicKey {
        AgentPublicKey(self.public)
    }

    /// The secret key's text form, `RAVI-AGENT-SECRET-KEY-1…`.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(
            bech32::encode_upper::<Bech32>(hrp(SECRET_HRP), self.secret.expose())
                .expect("32 bytes fit a Bech32 string"),
        )
    }

    /// The contents of a key file: comments with the public key, then the
    /// secret key line.
    pub fn to_file_contents(&self) -> Zeroizing<String> {
        self.to_file_contents_with(&[])
    }

    /// As [`AgentSecretKey::to_file_contents`], with extra comment lines
    /// (each must start with `#`) before the key: pins, for example.
    pub fn to_file_contents_with(&self, comments: &[String]) -> Zeroizing<String> {
        let mut s = format!(
            "# ravi agent key: keep this file private (mode 0600)\n# public key: {}\n",
            self.public()
        );
        for c in comments
            .iter()
            .filter(|c| c.starts_with('#') && !c.contains('\n'))
        {
            s.push_str(c);
            s.push('\n');
        }
        s.push_str(self.to_text().as_str());
        s.push('\n');
        Zeroizing::new(s)
    }

    /// Parses a key file's contents: `#` comments and blank lines are
    /// ignored; exactly one secret key line must remain.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for anything else. Messages never echo the file.
    pub fn parse_file_contents(contents: &str) -> Result<Self> {
        let mut keys = contents
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = keys
            .next()
            .ok_or_else(|| Error::invalid("the agent key file holds no key"))?;
        if keys.next().is_some() {
            return Err(Error::invalid("the agent key file holds more than one key"));
        }
        if line.chars().any(|c| c.is_ascii_lowercase()) {
            return Err(Error::invalid(
                "the agent key file's key must be upper case (RAVI-AGENT-SECRET-KEY-1…)",
            ));
        }
        let (h, data) = decode_bech32(line)
            .map_err(|_| Error::invalid("the agent key file is not a valid ravi agent key"))?;
        let data = Zeroizing::new(data);
        if h != hrp(SECRET_HRP) {
            return Err(Error::invalid(
                "the agent key file is not a valid ravi agent key",
            ));
        }
        SecretKey::from_slice(&data)
            .map(AgentSecretKey::new)
            .ok_or_else(|| Error::invalid("the agent key file has a key of the wrong length"))
    }

    /// Reads a key file.
    ///
    /// # Errors
    /// [`Error::Io`] if unreadable; [`Error::InvalidInput`] if malformed.
    pub fn read_file(path: &Path) -> Result<Self> {
        use std::io::Read;
        const MAX: u64 = 4096;
        let io = |e| Error::io(format!("cannot read agent key file {}", path.display()), e);
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.is_dir() {
            return Err(Error::invalid(format!(
                "{} is a directory, not an agent key file",
                path.display()
            )));
        }
        if meta.len() > MAX {
            return Err(Error::invalid("the agent key file is too large"));
        }
        // Bounded also for what has no length (a pipe, a device).
        let mut bytes = Zeroizing::new(Vec::new());
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX {
            return Err(Error::invalid("the agent key file is too large"));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::invalid("the agent key file is not UTF-8 text"))?;
        Self::parse_file_contents(text)
    }

    /// Writes a new key file with mode 0600; never overwrites.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the file exists; [`Error::Io`] otherwise.
    pub fn write_new_file(&self, path: &Path, comments: &[String]) -> Result<()> {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Conflict(format!(
                    "{} already exists; not overwriting a key",
                    path.display()
                ))
            } else {
                Error::io(format!("cannot write {}", path.display()), e)
            }
        })?;
        f.write_all(self.to_file_contents_with(comments).as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }
}

/// The context of a grant, bound into its associated data.
pub(crate) struct GrantContext<'a> {
    pub vault_id: &'a [u8; 16],
    pub identity_id: &'a [u8; 16],
    pub grant_id: &'a [u8; 16],
    pub epoch: u32,
    pub name: &'a str,
    pub inbox: &'a str,
    pub phone: &'a str,
}

impl GrantContext<'_> {
    fn seal_context<'b>(
        &'b self,
        ephemeral: &'b [u8; 32],
        recipient: &'b [u8; 32],
    ) -> SealContext<'b> {
        SealContext::Grant {
            vault_id: self.vault_id,
            identity_id: self.identity_id,
            grant_id: self.grant_id,
            epoch: self.epoch,
            ephemeral,
            recipient,
            name: self.name,
            inbox: self.inbox,
            phone: self.phone,
        }
    }
}

fn grant_wrap_key(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> SecretKey {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(recipient);
    SecretKey::from_bytes(*hkdf_sha256_salted(
        &salt,
        shared,
        LABEL_GRANT_KEY.as_bytes(),
    ))
}

/// Wraps an identity key to an agent. Returns `(ephemeral public, envelope)`.
pub(crate) fn wrap_to_agent(
    recipient: &AgentPublicKey,
    ctx: &GrantContext<'_>,
    identity_key: &SecretKey,
) -> Result<([u8; 32], Vec<u8>)> {
    let mut e = Zeroizing::new([0u8; 32]);
    random_bytes(e.as_mut())?;
    let ephemeral = x25519_public(&e);
    let shared = x25519_shared(&e, recipient.as_bytes())
        .ok_or_else(|| Error::invalid("the agent public key is a low-order point; refusing it"))?;
    let key = grant_wrap_key(&shared, &ephemeral, recipient.as_bytes());
    let wrapped = envelope::seal(
        &key,
        &ctx.seal_context(&ephemeral, recipient.as_bytes()),
        identity_key.expose(),
    )?;
    Ok((ephemeral, wrapped))
}

/// Unwraps an identity key with an agent's secret key; `None` on any failure.
pub(crate) fn unwrap_as_agent(
    secret: &AgentSecretKey,
    ctx: &GrantContext<'_>,
    ephemeral: &[u8; 32],
    wrapped: &[u8],
) -> Option<SecretKey> {
    let recipient = secret.public();
    let shared = secret.shared_with(ephemeral)?;
    let key = grant_wrap_key(&shared, ephemeral, recipient.as_bytes());
    let pt = envelope::open(
        &key,
        &ctx.seal_context(ephemeral, recipient.as_bytes()),
        wrapped,
    )?;
    SecretKey::from_slice(&pt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> GrantContext<'static> {
        GrantContext {
            vault_id: &[1; 16],
            identity_id: &[2; 16],
            grant_id: &[3; 16],
            epoch: 1,
            name: "alice",
            inbox: "alice@example.com",
            phone: "",
        }
    }

    #[test]
    fn public_key_text_round_trip_and_checksum() {
        let k = AgentSecretKey::generate().unwrap();
        let text = k.public().to_string();
        assert!(text.starts_with("raviagent1"), "{text}");
        assert_eq!(AgentPublicKey::parse(&text).unwrap(), k.public());
        // one changed character breaks the checksum
        let mut chars: Vec<char> = text.chars().collect();
        let last = chars.len() - 3;
        chars[last] = if chars[last] == 'q' { 'p' } else { 'q' };
        let typo: String = chars.into_iter().collect();
        assert!(AgentPublicKey::parse(&typo).is_err());
        assert!(AgentPublicKey::parse("raviagent1").is_err());
        assert!(AgentPublicKey::parse(k.to_text().as_str()).is_err());
        // exactly the variant and casing SPEC names: classic Bech32, lower
        // case for public keys, upper case for secret keys
        let m = bech32::encode::<bech32::Bech32m>(hrp(PUBLIC_HRP), k.public().as_bytes()).unwrap();
        assert!(AgentPublicKey::parse(&m).is_err(), "Bech32m is refused");
        assert!(AgentPublicKey::parse(&text.to_ascii_uppercase()).is_err());
        let lower = format!("{}\n", k.to_text().to_ascii_lowercase());
        assert!(AgentSecretKey::parse_file_contents(&lower).is_err());
    }

    #[test]
    fn key_file_round_trip() {
        let k = AgentSecretKey::generate().unwrap();
        let contents = k.to_file_contents();
        assert!(contents.contains("RAVI-AGENT-SECRET-KEY-1"));
        let back = AgentSecretKey::parse_file_contents(&contents).unwrap();
        assert_eq!(back.public(), k.public());
        assert!(!format!("{k:?}").contains(&k.to_text()[25..]));
        for bad in [
            "",
            "# only a comment\n",
            "garbage",
            &format!("{}\n{}", k.to_text().as_str(), k.to_text().as_str()),
        ] {
            assert!(AgentSecretKey::parse_file_contents(bad).is_err(), "{bad:?}");
        }
        let pubtext = k.public().to_string();
        assert!(AgentSecretKey::parse_file_contents(&pubtext).is_err());
    }

    #[test]
    fn the_public_key_is_rfc_7748s() {
        // RFC 7748 §6.1: Alice's private key and X25519(a, 9).
        let hex = |s: &str| -> [u8; 32] {
            let v: Vec<u8> = (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect();
            v.try_into().unwrap()
        };
        let a = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let k = AgentSecretKey::from_seed(a);
        assert_eq!(k.public().as_bytes(), &public);
        // (the same from its text form, and after a clone)
        let back = AgentSecretKey::parse_file_contents(&k.to_text()).unwrap();
        assert_eq!(back.clone().public().as_bytes(), &public);
    }

    #[test]
    fn grant_round_trip_and_binding() {
        let agent = AgentSecretKey::generate().unwrap();
        let other = AgentSecretKey::generate().unwrap();
        let ik = SecretKey::from_bytes([9; 32]);
        let (eph, wrapped) = wrap_to_agent(&agent.public(), &ctx(), &ik).unwrap();
        assert_eq!(unwrap_as_agent(&agent, &ctx(), &eph, &wrapped).unwrap(), ik);
        assert!(unwrap_as_agent(&other, &ctx(), &eph, &wrapped).is_none());
        let moved = GrantContext { epoch: 2, ..ctx() };
        assert!(unwrap_as_agent(&agent, &moved, &eph, &wrapped).is_none());
        let renamed = GrantContext {
            name: "mallory",
            ..ctx()
        };
        assert!(unwrap_as_agent(&agent, &renamed, &eph, &wrapped).is_none());
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 1;
            assert!(unwrap_as_agent(&agent, &ctx(), &eph, &bad).is_none());
        }
        let mut bad_eph = eph;
        bad_eph[0] ^= 1;
        assert!(unwrap_as_agent(&agent, &ctx(), &bad_eph, &wrapped).is_none());
        assert!(wrap_to_agent(&AgentPublicKey::from_bytes([0; 32]), &ctx(), &ik).is_err());
        // The shared secret remembered for the last grant is the one for
        // that grant's ephemeral key only: two grants taken in turn, by the
        // key and by a clone (which shares it), and a low-order key between.
        let ik2 = SecretKey::from_bytes([7; 32]);
        let (eph2, wrapped2) = wrap_to_agent(&agent.public(), &ctx(), &ik2).unwrap();
        let twin = agent.clone();
        for _ in 0..2 {
            assert_eq!(unwrap_as_agent(&agent, &ctx(), &eph, &wrapped).unwrap(), ik);
            assert_eq!(
                unwrap_as_agent(&twin, &ctx(), &eph2, &wrapped2).unwrap(),
                ik2
            );
            assert!(unwrap_as_agent(&agent, &ctx(), &eph, &wrapped2).is_none());
            assert!(unwrap_as_agent(&twin, &ctx(), &[0; 32], &wrapped).is_none());
        }
    }
}
