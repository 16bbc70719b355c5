//! TOTP (RFC 6238) parameters, `otpauth://` Key URI parsing and export, and
//! code generation through the `totp-rs` crate.
//!
//! Every parameter is validated here before it reaches `totp-rs`, whose
//! `generate` panics on a zero period or too many digits.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::names;

/// Fewest secret bytes accepted (80 bits, what many services issue).
pub const MIN_SECRET_BYTES: usize = 10;
/// Secrets below this many bytes (128 bits) get a warning.
pub const RECOMMENDED_SECRET_BYTES: usize = 16;
/// Most secret bytes accepted.
pub const MAX_SECRET_BYTES: usize = 1024;
/// Longest period accepted, in seconds.
pub const MAX_PERIOD: u64 = 300;
/// Longest TOTP name.
pub const MAX_NAME: usize = 128;

/// The HMAC function of a TOTP, or Steam Guard's variant (SHA-1, 5
/// characters from Steam's alphabet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1.
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
    /// Steam Guard.
    Steam,
}

impl TotpAlgorithm {
    /// Parses `SHA1`, `SHA256`, `SHA512` or `STEAM` (any case, `SHA-1` too).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Ok(TotpAlgorithm::Sha1),
            "SHA256" => Ok(TotpAlgorithm::Sha256),
            "SHA512" => Ok(TotpAlgorithm::Sha512),
            "STEAM" => Ok(TotpAlgorithm::Steam),
            _ => Err(Error::invalid(format!(
                "unknown TOTP algorithm {s:?}: use SHA1, SHA256, SHA512 or STEAM"
            ))),
        }
    }

    /// The name used in URIs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TotpAlgorithm::Sha1 => "SHA1",
            TotpAlgorithm::Sha256 => "SHA256",
            TotpAlgorithm::Sha512 => "SHA512",
            TotpAlgorithm::Steam => "STEAM",
        }
    }

    fn to_crate(self) -> totp_rs::Algorithm {
        match self {
            TotpAlgorithm::Sha1 => totp_rs::Algorithm::SHA1,
            TotpAlgorithm::Sha256 => totp_rs::Algorithm::SHA256,
            TotpAlgorithm::Sha512 => totp_rs::Algorithm::SHA512,
            TotpAlgorithm::Steam => totp_rs::Algorithm::Steam,
        }
    }
}

impl fmt::Display for TotpAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TOTP enrolment: the seed and how codes are made from it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpParams {
    /// The shared secret (seed) bytes.
    pub secret: Zeroizing<Vec<u8>>,
    /// HMAC function.
    pub algorithm: TotpAlgorithm,
    /// Code length (6-8; 5 for Steam).
    pub digits: u8,
    /// Time step in seconds (1-300).
    pub period: u64,
    /// Issuer (service name), if known.
    pub issuer: Option<String>,
    /// Account name, if known.
    pub account: Option<String>,
}

impl fmt::Debug for TotpParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpParams")
            .field("secret", &"[redacted]")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .finish()
    }
}

/// Decodes a Base32 (RFC 4648) secret: case-insensitive, with or without
/// `=` padding, spaces and dashes ignored.
///
/// # Errors
/// [`Error::InvalidInput`] for an empty or non-Base32 secret. The message
/// never contains the secret.
pub fn decode_base32_secret(s: &str) -> Result<Zeroizing<Vec<u8>>> {
    let cleaned: Zeroizing<String> = Zeroizing::new(
        s.chars()
            .filter(|c| !matches!(c, ' ' | '\t' | '-' | '='))
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    if cleaned.is_empty() {
        return Err(Error::invalid("the TOTP secret is empty"));
    }
    data_encoding::BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| match e.kind {
            // (the message names a position, never the secret's characters)
            data_encoding::DecodeKind::Length => Error::invalid(format!(
                "the TOTP secret's length ({} Base32 characters) does not decode to whole \
                 bytes: a Base32 secret has 8k, 8k+2, 8k+4, 8k+5 or 8k+7 characters; is a \
                 character missing or extra?",
                cleaned.len()
            )),
            data_encoding::DecodeKind::Symbol => Error::invalid(format!(
                "the TOTP secret is not Base32: character {} (of {}, spaces, dashes and '=' \
                 removed) is not A-Z or 2-7",
                e.position + 1,
                cleaned.len()
            )),
            _ => Error::invalid(format!(
                "the TOTP secret is not valid Base32 at character {} (its last character \
                 carries bits that no byte uses: a typo near the end?)",
                e.position + 1
            )),
        })
}

/// Encodes secret bytes as unpadded upper-case Base32.
pub fn encode_base32_secret(secret: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(data_encoding::BASE32_NOPAD.encode(secret))
}

impl TotpParams {
    /// Parameters with the RFC defaults (SHA1, 6 digits, 30 s).
    pub fn with_defaults(secret: Zeroizing<Vec<u8>>) -> Self {
        TotpParams {
            secret,
            algorithm: TotpAlgorithm::Sha1,
            digits: 6,
            period: 30,
            issuer: None,
            account: None,
        }
    }

    /// Parameters with the RFC defaults for a Base32 secret.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or non-Base32 secret (case,
    /// padding, spaces and dashes are forgiven).
    pub fn from_base32_secret(secret: &str) -> Result<Self> {
        decode_base32_secret(secret).map(Self::with_defaults)
    }

    /// Sets the algorithm and, for Steam Guard, its fixed code length of 5.
    pub fn set_algorithm(&mut self, algorithm: TotpAlgorithm) {
        self.algorithm = algorithm;
        if algorithm == TotpAlgorithm::Steam {
            self.digits = 5;
        }
    }

    /// Checks every parameter is one ravi (and `totp-rs`) can use safely.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the bad parameter.
    pub fn validate(&self) -> Result<()> {
        match self.algorithm {
            TotpAlgorithm::Steam if self.digits != 5 => {
                return Err(Error::invalid("Steam Guard codes have 5 characters"));
            }
            TotpAlgorithm::Steam => {}
            _ if !(6..=8).contains(&self.digits) => {
                return Err(Error::invalid(format!(
                    "TOTP digits must be 6, 7 or 8 (got {})",
                    self.digits
                )));
            }
            _ => {}
        }
        if self.period == 0 || self.period > MAX_PERIOD {
            return Err(Error::invalid(format!(
                "TOTP period must be 1-{MAX_PERIOD} seconds (got {})",
                self.period
            )));
        }
        if self.secret.is_empty() {
            return Err(Error::invalid("the TOTP secret is empty"));
        }
        if self.secret.len() < MIN_SECRET_BYTES {
            return Err(Error::invalid(format!(
                "the TOTP secret is too short ({} bits; at least {} required)",
                self.secret.len() * 8,
                MIN_SECRET_BYTES * 8
            )));
        }
        if self.secret.len() > MAX_SECRET_BYTES {
            return Err(Error::invalid("the TOTP secret is too long"));
        }
        for (what, v) in [("issuer", &self.issuer), ("account", &self.account)] {
            // A colon would make the `issuer:account` label ambiguous.
            if let Some(v) = v
                && (v.chars().any(char::is_control) || v.contains(':') || v.len() > 256)
            {
                return Err(Error::invalid(format!(
                    "invalid TOTP {what}: at most 256 characters, no ':' or control characters"
                )));
            }
        }
        Ok(())
    }

    /// Whether the secret is shorter than the recommended 128 bits.
    pub fn is_weak_secret(&self) -> bool {
        self.secret.len() < RECOMMENDED_SECRET_BYTES
    }

    /// The code for the time step containing `unix_time`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the parameters are invalid (checked first,
    /// so `totp-rs` never sees a zero period or too many digits).
    pub fn code_at(&self, unix_time: u64) -> Result<Zeroizing<String>> {
        self.validate()?;
        let totp = totp_rs::Builder::new()
            .with_algorithm(self.algorithm.to_crate())
            .with_digits(self.digits)
            .with_step_duration(self.period)
            .with_secret(self.secret.to_vec())
            .build_noncompliant();
        Ok(Zeroizing::new(totp.generate(unix_time).to_string()))
    }

    /// Parses an `otpauth://totp/LABEL?secret=...` Key URI.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for anything but a well-formed TOTP URI: HOTP
    /// URIs are refused, an issuer prefix that disagrees with the `issuer`
    /// parameter is refused, and bad parameters are refused as by
    /// [`TotpParams::validate`].
    pub fn from_uri(uri: &str) -> Result<Self> {
        let uri = uri.trim();
        let bad = |why: &str| Error::invalid(format!("invalid otpauth URI: {why}"));
        let parsed = url::Url::parse(uri).map_err(|_| bad("not a URI"))?;
        if !parsed.scheme().eq_ignore_ascii_case("otpauth") {
            return Err(bad("the scheme must be otpauth://"));
        }
        match parsed.host_str().map(str::to_ascii_lowercase).as_deref() {
            Some("totp") => {}
            Some("hotp") => {
                return Err(Error::invalid(
                    "HOTP (counter-based) otpauth URIs are not supported; only otpauth://totp/",
                ));
            }
            _ => return Err(bad("the type must be totp (otpauth://totp/...)")),
        }
        let label = percent_decode_str(parsed.path().trim_start_matches('/'))
            .decode_utf8()
            .map_err(|_| bad("the label is not UTF-8"))?;
        let (label_issuer, account) = match label.split_once(':') {
            Some((i, a)) => (Some(i.trim().to_string()), a.trim().to_string()),
            None => (None, label.trim().to_string()),
        };
        let mut secret = None;
        let mut issuer = None;
        let mut algorithm = None;
        let mut digits = None;
        let mut period = None;
        let mut encoder = None;
        for (k, v) in parsed.query_pairs() {
            let slot = match k.to_ascii_lowercase().as_str() {
                "secret" => &mut secret,
                "issuer" => &mut issuer,
                "algorithm" => &mut algorithm,
                "digits" => &mut digits,
                "period" => &mut period,
                "encoder" => &mut encoder,
                _ => continue,
            };
            if slot.is_some() {
                return Err(bad(&format!("parameter {k:?} appears twice")));
            }
            *slot = Some(Zeroizing::new(v.into_owned()));
        }
        let secret = secret.ok_or_else(|| bad("the secret parameter is missing"))?;
        let issuer = issuer
            .map(|i| i.trim().to_string())
            .filter(|i| !i.is_empty());
        let label_issuer = label_issuer.filter(|i| !i.is_empty());
        if let (Some(l), Some(p)) = (&label_issuer, &issuer)
            && l != p
        {
            return Err(bad(&format!(
                "the label's issuer {l:?} disagrees with the issuer parameter {p:?}"
            )));
        }
        let issuer = issuer.or(label_issuer);
        let steam = issuer
            .as_deref()
            .is_some_and(|i| i.eq_ignore_ascii_case("steam"))
            || encoder
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case("steam"));
        let mut params = TotpParams::with_defaults(decode_base32_secret(&secret)?);
        params.issuer = issuer;
        params.account = Some(account).filter(|a| !a.is_empty());
        if let Some(a) = algorithm {
            params.algorithm = TotpAlgorithm::parse(&a)?;
        }
        if let Some(d) = digits {
            params.digits = d.parse().map_err(|_| bad("digits must be a number"))?;
        }
        if let Some(p) = period {
            params.period = p.parse().map_err(|_| bad("period must be a number"))?;
        }
        if steam {
            params.algorithm = TotpAlgorithm::Steam;
            params.digits = 5;
        }
        params.validate()?;
        Ok(params)
    }

    /// The Key URI of these parameters. It contains the seed.
    pub fn to_uri(&self) -> Zeroizing<String> {
        self.to_uri_named(None)
    }

    /// The Key URI, labelled with `name` when the parameters have neither
    /// issuer nor account (a seed enrolled from a bare secret keeps its
    /// name instead of an empty label).
    pub fn to_uri_named(&self, name: Option<&str>) -> Zeroizing<String> {
        const LABEL: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~')
            .remove(b'@');
        let enc = |s: &str| utf8_percent_encode(s, LABEL).to_string();
        let account = self.account.as_deref().unwrap_or("");
        let label = match (&self.issuer, name) {
            (Some(i), _) => format!("{}:{}", enc(i), enc(account)),
            (None, Some(n)) if account.is_empty() => enc(n),
            (None, _) => enc(account),
        };
        let mut uri = format!(
            "otpauth://totp/{label}?secret={}",
            encode_base32_secret(&self.secret).as_str()
        );
        if let Some(i) = &self.issuer {
            uri.push_str(&format!("&issuer={}", enc(i)));
        }
        if self.algorithm == TotpAlgorithm::Steam {
            uri.push_str("&encoder=steam");
            // Steam Guard's step is 30 s; another one given is kept.
            if self.period != 30 {
                uri.push_str(&format!("&period={}", self.period));
            }
        } else {
            uri.push_str(&format!(
                "&algorithm={}&digits={}&period={}",
                self.algorithm, self.digits, self.period
            ));
        }
        Zeroizing::new(uri)
    }
}

/// Cleans a TOTP name: a URL or host is cleaned like a password domain
/// (`https://github.com/login` → `github.com`); any other name is trimmed
/// and lowercased.
///
/// # Errors
/// [`Error::InvalidInput`] for an empty, overlong or control-character name.
pub fn clean_totp_name(input: &str) -> Result<String> {
    let t = input.trim();
    if t.is_empty() || t.chars().count() > MAX_NAME || names::has_invisible(t) {
        return Err(Error::invalid(format!(
            "a TOTP name must be 1-{MAX_NAME} characters without control, invisible or \
             bidirectional-override characters"
        )));
    }
    let looks_like_host =
        t.contains("://") || (t.contains('.') && !t.contains(char::is_whitespace));
    if looks_like_host && let Ok(d) = names::clean_domain(t) {
        return Ok(d);
    }
    Ok(names::nfc(&t.to_lowercase()))
}

impl names::RecordName {
    /// A TOTP name ([`clean_totp_name`]); older releases
    /// lowercased it without normalising (a host-like name was cleaned as a
    /// domain, which IDNA normalises, then as now).
    pub fn totp(given: &str) -> Result<Self> {
        let name = clean_totp_name(given)?;
        let old = given.trim().to_lowercase();
        let legacy = if names::nfc(&old) == name {
            names::legacy_form(&old, &name)
        } else {
            None
        };
        Ok(Self { name, legacy })
    }
}

/// A code with its validity window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TotpCode {
    /// The TOTP's name.
    pub name: String,
    /// The code.
    pub code: String,
    /// Its length.
    pub digits: u8,
    /// The time step in seconds.
    pub period: u64,
    /// The algorithm.
    pub algorithm: TotpAlgorithm,
    /// Seconds until the code's window ends.
    pub remaining_seconds: u64,
    /// When the window ends (RFC 3339 UTC).
    pub valid_until: String,
}

/// Where the code for `now` sits in its window, honouring `min_validity`:
/// returns the time to generate the code for and the seconds to wait.
///
/// # Errors
/// [`Error::InvalidInput`] if `min_validity` is not below the period.
pub fn plan_code(period: u64, now: u64, min_validity: Option<u64>) -> Result<(u64, u64)> {
    let period = period.max(1);
    let remaining = period - now % period;
    match min_validity {
        Some(m) if m >= period => Err(Error::invalid(format!(
            "the minimum validity must be below the period ({period} s)"
        ))),
        Some(m) if remaining < m => now
            .checked_add(remaining)
            .map(|t| (t, remaining))
            .ok_or_else(|| Error::invalid("the time is out of range")),
        _ => Ok((now, 0)),
    }
}

/// Builds the [`TotpCode`] for `t` (the validity window is `t`'s step).
///
/// # Errors
/// As [`TotpParams::code_at`].
pub fn code_for(name: &str, params: &TotpParams, t: u64) -> Result<TotpCode> {
    let code = params.code_at(t)?;
    let remaining = params.period - t % params.period;
    let end = t.saturating_add(remaining);
    let valid_until = crate::clock::rfc3339_checked(end)
        .ok_or_else(|| Error::invalid("the time is out of range"))?;
    Ok(TotpCode {
        name: name.to_string(),
        code: code.to_string(),
        digits: params.digits,
        period: params.period,
        algorithm: params.algorithm,
        remaining_seconds: remaining,
        valid_until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(seed: &[u8], alg: TotpAlgorithm, digits: u8, period: u64) -> TotpParams {
        TotpParams {
            secret: Zeroizing::new(seed.to_vec()),
            algorithm: alg,
            digits,
            period,
            issuer: None,
            account: None,
        }
    }

    /// RFC 6238 Appendix B, all 18 cells. Each algorithm has its own seed:
    /// the ASCII "1234567890" repeated to 20, 32 and 64 bytes.
    #[test]
    fn rfc6238_appendix_b() {
        let sha1 = b"12345678901234567890".to_vec();
        let sha256 = b"12345678901234567890123456789012".to_vec();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in table {
            for (seed, alg, want) in [
                (&sha1, TotpAlgorithm::Sha1, c1),
                (&sha256, TotpAlgorithm::Sha256, c256),
                (&sha512, TotpAlgorithm::Sha512, c512),
            ] {
                let got = params(seed, alg, 8, 30).code_at(t).unwrap();
                assert_eq!(got.as_str(), want, "t={t} {alg}");
            }
        }
    }

    /// RFC 4226 Appendix D through the same path: step 1, counter as time.
    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        let p = params(b"12345678901234567890", TotpAlgorithm::Sha1, 6, 1);
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(p.code_at(counter as u64).unwrap().as_str(), *want);
        }
    }

    #[test]
    fn steam_codes_use_steams_alphabet() {
        let p = params(b"12345678901234567890", TotpAlgorithm::Steam, 5, 30);
        let code = p.code_at(1_700_000_000).unwrap();
        assert_eq!(code.len(), 5);
        assert!(
            code.chars()
                .all(|c| "23456789BCDFGHJKMNPQRTVWXY".contains(c)),
            "{}",
            code.as_str()
        );
    }

    #[test]
    fn invalid_parameters_never_reach_the_crate() {
        let seed = b"12345678901234567890";
        for p in [
            params(seed, TotpAlgorithm::Sha1, 6, 0),
            params(seed, TotpAlgorithm::Sha1, 6, 301),
            params(seed, TotpAlgorithm::Sha1, 5, 30),
            params(seed, TotpAlgorithm::Sha1, 9, 30),
            params(seed, TotpAlgorithm::Sha1, 10, 30),
            params(seed, TotpAlgorithm::Steam, 6, 30),
            params(b"", TotpAlgorithm::Sha1, 6, 30),
            params(b"123456789", TotpAlgorithm::Sha1, 6, 30),
        ] {
            assert!(p.code_at(0).is_err(), "{p:?}");
        }
        let p80 = params(b"1234567890", TotpAlgorithm::Sha1, 6, 30);
        assert!(p80.code_at(0).is_ok());
        assert!(p80.is_weak_secret());
        assert!(!params(seed, TotpAlgorithm::Sha1, 6, 30).is_weak_secret());
    }

    #[test]
    fn base32_is_forgiving_but_strict() {
        let want = b"12345678901234567890";
        for s in [
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
        ] {
            assert_eq!(&decode_base32_secret(s).unwrap()[..], want, "{s}");
        }
        assert_eq!(&decode_base32_secret("MZXW6===").unwrap()[..], b"foo");
        assert_eq!(&decode_base32_secret("mzxw6").unwrap()[..], b"foo");
        for bad in ["", "   ", "0189", "GEZD!", "A"] {
            assert!(decode_base32_secret(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base32_errors_say_what_is_wrong() {
        let msg = |s: &str| decode_base32_secret(s).unwrap_err().to_string();
        assert!(
            msg("JBSWY3DPE").contains("length (9 Base32 characters)"),
            "{}",
            msg("JBSWY3DPE")
        );
        assert!(
            msg("JBSW!3DP").contains("character 5"),
            "{}",
            msg("JBSW!3DP")
        );
        assert!(!msg("JBSW!3DP").contains('!'));
        assert!(msg("JBSWY3DPEHPK3PX").contains("character 15"));
        assert!(msg("").contains("empty"));
        let p = TotpParams::from_uri("otpauth://totp/?secret=GEZDGNBVGY3TQOJQ").unwrap();
        assert!(p.to_uri_named(Some("gh")).starts_with("otpauth://totp/gh?"));
        assert!(p.to_uri().starts_with("otpauth://totp/?"));
    }

    #[test]
    fn key_uri_parsing() {
        let p = TotpParams::from_uri(
            "otpauth://totp/ACME%20Co:john.doe@email.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ&issuer=ACME%20Co&algorithm=SHA256&digits=8&period=60",
        )
        .unwrap();
        assert_eq!(p.issuer.as_deref(), Some("ACME Co"));
        assert_eq!(p.account.as_deref(), Some("john.doe@email.com"));
        assert_eq!(
            (p.algorithm, p.digits, p.period),
            (TotpAlgorithm::Sha256, 8, 60)
        );
        let d = TotpParams::from_uri("otpauth://totp/alice?secret=gezdgnbvgy3tqojq").unwrap();
        assert_eq!(
            (d.algorithm, d.digits, d.period),
            (TotpAlgorithm::Sha1, 6, 30)
        );
        assert_eq!(d.issuer, None);
        let s =
            TotpParams::from_uri("otpauth://totp/Steam:gaben?secret=GEZDGNBVGY3TQOJQ&issuer=Steam")
                .unwrap();
        assert_eq!((s.algorithm, s.digits), (TotpAlgorithm::Steam, 5));
        // label issuer alone counts
        let l = TotpParams::from_uri("otpauth://totp/GitHub:me?secret=GEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(l.issuer.as_deref(), Some("GitHub"));
    }

    #[test]
    fn key_uri_errors() {
        for (uri, needle) in [
            ("otpauth://hotp/x?secret=GEZDGNBVGY3TQOJQ&counter=1", "HOTP"),
            (
                "otpauth://totp/A:x?secret=GEZDGNBVGY3TQOJQ&issuer=B",
                "disagrees",
            ),
            ("otpauth://totp/x?issuer=B", "missing"),
            ("otpauth://totp/x?secret=!!!!", "Base32"),
            (
                "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ&digits=9",
                "digits",
            ),
            (
                "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ&digits=x",
                "digits",
            ),
            (
                "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ&period=0",
                "period",
            ),
            (
                "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ&period=301",
                "period",
            ),
            (
                "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ&algorithm=MD5",
                "algorithm",
            ),
            ("otpauth://totp/x?secret=GEZDGNBV", "short"),
            (
                "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ&secret=GEZDGNBVGY3TQOJQ",
                "twice",
            ),
            ("https://totp/x?secret=GEZDGNBVGY3TQOJQ", "scheme"),
            ("otpauth://other/x?secret=GEZDGNBVGY3TQOJQ", "type"),
            ("not a uri", "URI"),
        ] {
            let err = TotpParams::from_uri(uri).unwrap_err().to_string();
            assert!(err.contains(needle), "{uri}: {err}");
            assert!(!err.contains("GEZDGNBV"), "the secret leaked into {err}");
        }
    }

    #[test]
    fn uri_round_trip() {
        let mut p = params(b"12345678901234567890", TotpAlgorithm::Sha512, 7, 45);
        p.issuer = Some("Big Corp: EU".replace(':', ""));
        p.account = Some("ops@example.com".into());
        let back = TotpParams::from_uri(&p.to_uri()).unwrap();
        assert_eq!(back, p);
        let mut s = params(b"12345678901234567890", TotpAlgorithm::Steam, 5, 30);
        s.issuer = Some("Steam".into());
        s.account = Some("gaben".into());
        assert_eq!(TotpParams::from_uri(&s.to_uri()).unwrap(), s);
        assert!(!format!("{p:?}").contains("1234567890"));
    }

    #[test]
    fn names() {
        assert_eq!(
            clean_totp_name("https://github.com/login").unwrap(),
            "github.com"
        );
        assert_eq!(
            clean_totp_name("accounts.google.com").unwrap(),
            "google.com"
        );
        assert_eq!(clean_totp_name(" My Bank ").unwrap(), "my bank");
        assert_eq!(clean_totp_name("GitHub").unwrap(), "github");
        assert!(clean_totp_name("").is_err());
        assert!(clean_totp_name("a\nb").is_err());
    }

    #[test]
    fn min_validity_plan() {
        // 10 s into a 30 s window: 20 s remain
        assert_eq!(plan_code(30, 100, None).unwrap(), (100, 0));
        assert_eq!(plan_code(30, 100, Some(20)).unwrap(), (100, 0));
        assert_eq!(plan_code(30, 100, Some(21)).unwrap(), (120, 20));
        assert!(plan_code(30, 100, Some(30)).is_err());
        assert!(plan_code(30, u64::MAX - 1, Some(29)).is_err());
        let p = params(b"12345678901234567890", TotpAlgorithm::Sha1, 6, 30);
        assert!(code_for("x", &p, u64::MAX).is_err());
        let c = code_for(
            "x",
            &params(b"12345678901234567890", TotpAlgorithm::Sha1, 8, 30),
            59,
        )
        .unwrap();
        assert_eq!(c.remaining_seconds, 1);
        assert_eq!(c.valid_until, "1970-01-01T00:01:00Z");
        assert_eq!(c.code, "94287082");
    }
}
