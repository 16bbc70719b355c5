//! Google Authenticator's export: `otpauth-migration://offline?data=…`,
//! where `data` is Base64 (percent-encoded in the URI) of a protobuf
//! `MigrationPayload` — the schema below, as published with Google
//! Authenticator's export format and used by its open-source readers.

use prost::Message;
use vault_core::{Error, Result, TotpAlgorithm, TotpParams};

/// `MigrationPayload`.
#[derive(Clone, PartialEq, Message)]
struct Payload {
    #[prost(message, repeated, tag = "1")]
    otp_parameters: Vec<OtpParameters>,
    #[prost(int32, tag = "2")]
    version: i32,
    #[prost(int32, tag = "3")]
    batch_size: i32,
    #[prost(int32, tag = "4")]
    batch_index: i32,
    #[prost(int32, tag = "5")]
    batch_id: i32,
}

/// `MigrationPayload.OtpParameters` (its `Debug` hides the seed).
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
struct OtpParameters {
    #[prost(bytes = "vec", tag = "1")]
    secret: Vec<u8>,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, tag = "3")]
    issuer: String,
    /// 0 unspecified (SHA1), 1 SHA1, 2 SHA256, 3 SHA512, 4 MD5.
    #[prost(int32, tag = "4")]
    algorithm: i32,
    /// 0 unspecified (6), 1 six, 2 eight.
    #[prost(int32, tag = "5")]
    digits: i32,
    /// 0 unspecified, 1 HOTP, 2 TOTP.
    #[prost(int32, tag = "6")]
    r#type: i32,
    #[prost(int64, tag = "7")]
    counter: i64,
}

impl std::fmt::Debug for OtpParameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpParameters")
            .field("secret", &"[redacted]")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("type", &self.r#type)
            .finish_non_exhaustive()
    }
}

impl Drop for OtpParameters {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

/// The entries of one export URI: each a TOTP name and its parameters,
/// or why it cannot be stored.
pub fn decode(uri: &str) -> Result<Vec<std::result::Result<(String, TotpParams), String>>> {
    let bad = |why: &str| Error::InvalidInput(format!("not an otpauth-migration URI: {why}"));
    let rest = uri
        .strip_prefix("otpauth-migration://offline?")
        .ok_or_else(|| bad("it must start with otpauth-migration://offline?"))?;
    let data = rest
        .split('&')
        .find_map(|kv| kv.strip_prefix("data="))
        .ok_or_else(|| bad("no data parameter"))?;
    let data = percent_encoding::percent_decode_str(data)
        .decode_utf8()
        .map_err(|_| bad("the data parameter is not UTF-8"))?;
    // Base64 as the app writes it (padded); unpadded is tolerated.
    let b64 = data.trim().replace(' ', "+");
    let bytes = zeroize::Zeroizing::new(
        data_encoding::BASE64
            .decode(b64.as_bytes())
            .or_else(|_| data_encoding::BASE64_NOPAD.decode(b64.trim_end_matches('=').as_bytes()))
            .map_err(|_| bad("the data parameter is not Base64"))?,
    );
    let payload = Payload::decode(bytes.as_slice()).map_err(|_| bad("the data is not a migration payload"))?;
    Ok(payload.otp_parameters.iter().map(entry).collect())
}

fn entry(p: &OtpParameters) -> std::result::Result<(String, TotpParams), String> {
    match p.r#type {
        2 | 0 => {}
        1 => return Err("an HOTP (counter-based) seed: ravi stores TOTP seeds only".into()),
        t => return Err(format!("unknown OTP type {t}")),
    }
    let algorithm = match p.algorithm {
        0 | 1 => TotpAlgorithm::Sha1,
        2 => TotpAlgorithm::Sha256,
        3 => TotpAlgorithm::Sha512,
        4 => return Err("MD5 TOTP is not supported".into()),
        a => return Err(format!("unknown algorithm {a}")),
    };
    let digits = match p.digits {
        0 | 1 => 6,
        2 => 8,
        d => return Err(format!("unknown digit count {d}")),
    };
    // The name is "Issuer:account" or "account".
    let (prefix, account) = match p.name.split_once(':') {
        Some((i, a)) => (Some(i.trim()), a.trim()),
        None => (None, p.name.trim()),
    };
    let issuer = Some(p.issuer.trim())
        .filter(|i| !i.is_empty())
        .or(prefix.filter(|i| !i.is_empty()))
        .map(str::to_string);
    let account = Some(account).filter(|a| !a.is_empty()).map(str::to_string);
    let params = TotpParams {
        secret: zeroize::Zeroizing::new(p.secret.clone()),
        algorithm,
        digits,
        period: 30,
        issuer: issuer.clone(),
        account: account.clone(),
    };
    params.validate().map_err(|e| e.to_string())?;
    let name = issuer.or(account).ok_or("the entry names no issuer or account")?;
    Ok((name, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri_of(p: &Payload) -> String {
        let b64 = data_encoding::BASE64.encode(&p.encode_to_vec());
        format!(
            "otpauth-migration://offline?data={}",
            percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC)
        )
    }

    #[test]
    fn decodes_totp_and_refuses_hotp_and_md5() {
        let one = |name: &str, issuer: &str, algorithm, digits, kind| OtpParameters {
            secret: b"12345678901234567890".to_vec(),
            name: name.into(),
            issuer: issuer.into(),
            algorithm,
            digits,
            r#type: kind,
            counter: 0,
        };
        let p = Payload {
            otp_parameters: vec![
                one("ACME:me@example.com", "ACME", 1, 1, 2),
                one("Bank:me", "", 2, 2, 2),
                one("counter", "X", 1, 1, 1),
                one("old", "Y", 4, 1, 2),
            ],
            version: 1,
            batch_size: 1,
            batch_index: 0,
            batch_id: 7,
        };
        let got = decode(&uri_of(&p)).unwrap();
        let (name, params) = got[0].as_ref().unwrap();
        assert_eq!(name, "ACME");
        assert_eq!(params.account.as_deref(), Some("me@example.com"));
        assert_eq!(params.secret.as_slice(), b"12345678901234567890");
        let (name, params) = got[1].as_ref().unwrap();
        assert_eq!(name, "Bank");
        assert_eq!((params.algorithm, params.digits), (TotpAlgorithm::Sha256, 8));
        assert!(got[2].as_ref().unwrap_err().contains("HOTP"));
        assert!(got[3].as_ref().unwrap_err().contains("MD5"));
    }

    #[test]
    fn debug_hides_the_seed() {
        let mut p = OtpParameters::default();
        p.secret = b"seed-canary-bytes".to_vec();
        p.name = "n".into();
        let shown = format!("{p:?} {:?}", Payload { otp_parameters: vec![p.clone()], ..Default::default() });
        assert!(!shown.contains("seed-canary") && !shown.contains("115, 101, 101, 100"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn bad_uris_are_errors() {
        for bad in [
            "otpauth://totp/x?secret=AAAA",
            "otpauth-migration://offline?nodata=1",
            "otpauth-migration://offline?data=%%%",
            "otpauth-migration://offline?data=AAEC",
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
