//! Cleaning and validation of names given by users: service domains,
//! identity names, email addresses, phone numbers, secret keys.

use crate::error::{Error, Result};

/// Whether `s` holds a character that renders as nothing or reorders what
/// follows: control characters, bidirectional embeddings, overrides and
/// isolates, zero-width spaces and joiners, the byte-order mark, the soft
/// hyphen. Two names that look alike must not be two keys, and a name
/// must not display as something else.
pub fn has_invisible(s: &str) -> bool {
    s.chars().any(|c| {
        c.is_control()
            || matches!(
                c,
                '\u{00AD}'
                    | '\u{061C}'
                    | '\u{180E}'
                    | '\u{200B}'..='\u{200F}'
                    | '\u{202A}'..='\u{202E}'
                    | '\u{2060}'..='\u{2064}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{FEFF}'
            )
    })
}

fn refuse_invisible(what: &str, s: &str) -> Result<()> {
    if has_invisible(s) {
        return Err(Error::invalid(format!(
            "{what} contains an invisible, control or bidirectional-override character"
        )));
    }
    Ok(())
}

/// Cleans a URL or host to the domain a password is filed under: its
/// registrable domain by the public suffix list (`https://mail.google.com/x`
/// → `google.com`). Hosts with no registrable domain (`localhost`, an IP
/// address, an intranet name) are kept as the lowercased host.
///
/// # Errors
/// [`Error::InvalidInput`] when no host can be read from the input.
pub fn clean_domain(input: &str) -> Result<String> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid("the domain is empty"));
    }
    refuse_invisible("the domain", trimmed)?;
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(format!(
            "{trimmed:?} is not a domain or URL"
        )));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("https://{trimmed}")
    };
    let url = url::Url::parse(&with_scheme)
        .map_err(|e| Error::invalid(format!("{trimmed:?} is not a domain or URL ({e})")))?;
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => return Ok(ip.to_string()),
        Some(url::Host::Ipv6(ip)) => return Ok(format!("[{ip}]")),
        None => return Err(Error::invalid(format!("{trimmed:?} has no host name"))),
    };
    if host.is_empty() {
        return Err(Error::invalid(format!("{trimmed:?} has no host name")));
    }
    Ok(match psl::domain_str(&host) {
        Some(d) => d.to_string(),
        None => host,
    })
}

/// Longest identity name.
pub const MAX_IDENTITY_NAME: usize = 64;

/// Checks an identity name: 1–64 characters of `A-Z a-z 0-9 . _ -`, starting
/// with a letter or digit, and not shaped like a uuid (which would make
/// `NAME|UUID` arguments ambiguous). The name becomes the inbox local part.
///
/// # Errors
/// [`Error::InvalidInput`] saying what is wrong.
pub fn validate_identity_name(name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let starts_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > MAX_IDENTITY_NAME || !ok_chars || !starts_ok {
        return Err(Error::invalid(format!(
            "invalid identity name {name:?}: use 1-{MAX_IDENTITY_NAME} letters, digits, \
             '.', '_' or '-', starting with a letter or digit"
        )));
    }
    if uuid::Uuid::try_parse(name).is_ok() {
        return Err(Error::invalid("an identity name may not look like a uuid"));
    }
    Ok(())
}

/// Checks and lowercases the domain part of an inbox domain setting.
///
/// # Errors
/// [`Error::InvalidInput`] unless `domain` is a dotted DNS name.
pub fn validate_inbox_domain(domain: &str) -> Result<String> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = d.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    });
    if d.is_empty() || d.len() > 253 || !d.contains('.') || !labels_ok {
        return Err(Error::invalid(format!(
            "invalid inbox domain {domain:?}: expected a DNS name such as mail.example.com"
        )));
    }
    Ok(d)
}

/// Checks an email address (`local@domain`) and lowercases its domain.
///
/// # Errors
/// [`Error::InvalidInput`] unless the address has a plausible local part and
/// a dotted domain.
pub fn validate_email(email: &str) -> Result<String> {
    let email = email.trim();
    let bad = || Error::invalid(format!("invalid email address {email:?}"));
    let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.chars().all(|c| {
            c.is_ascii_graphic()
                && !matches!(
                    c,
                    '@' | '"' | '(' | ')' | ',' | ';' | '<' | '>' | '[' | ']' | '\\'
                )
        });
    if !local_ok {
        return Err(bad());
    }
    let domain = validate_inbox_domain(domain).map_err(|_| bad())?;
    Ok(format!("{local}@{domain}"))
}

/// Normalises a phone number to E.164 (`+` then 7–15 digits, no leading 0),
/// dropping spaces, dashes, dots and parentheses.
///
/// # Errors
/// [`Error::InvalidInput`] unless the result is E.164.
pub fn normalize_phone(phone: &str) -> Result<String> {
    let compact: String = phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+').unwrap_or("");
    let ok = (7..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    if !ok {
        return Err(Error::invalid(format!(
            "invalid phone number {phone:?}: expected E.164, e.g. +14155550123"
        )));
    }
    Ok(compact)
}

/// Longest secret key.
pub const MAX_SECRET_KEY: usize = 256;

/// A secret key as the blind index sees it: 1–256 characters, no control,
/// invisible or bidirectional-override characters, no leading or trailing
/// space; then in Unicode Normalization Form C (UAX #15), so two spellings
/// of "café" are one key. Keys are case-sensitive and stored only through
/// the blind index.
///
/// # Errors
/// [`Error::InvalidInput`] saying what is wrong.
pub fn clean_secret_key(key: &str) -> Result<String> {
    check_secret_key(key)?;
    Ok(nfc(key))
}

/// `s` in Unicode Normalization Form C.
pub fn nfc(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    if unicode_normalization::is_nfc(s) {
        s.to_string()
    } else {
        s.nfc().collect()
    }
}

/// Where a name written before NFC normalisation may be filed: the form
/// given, when it is not the normalised one, else its decomposed (NFD)
/// form, when that differs.
pub fn legacy_form(given: &str, normalised: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    if given != normalised {
        return Some(given.to_string());
    }
    if given.is_ascii() {
        return None;
    }
    let nfd: String = given.nfd().collect();
    (nfd != given).then_some(nfd)
}

/// A secret key or TOTP name as the blind index files it, with the form a
/// record written before NFC normalisation may carry (SPEC 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordName {
    /// The normalised name: what new records are filed under.
    pub name: String,
    /// Where an older record of that name may be filed instead.
    pub legacy: Option<String>,
}

impl RecordName {
    /// A secret key ([`clean_secret_key`]).
    pub fn secret(given: &str) -> Result<Self> {
        let name = clean_secret_key(given)?;
        let legacy = legacy_form(given, &name);
        Ok(RecordName { name, legacy })
    }

    /// The forms to look a record up by, the normalised one first.
    pub fn forms(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.legacy.as_deref())
    }
}

fn check_secret_key(key: &str) -> Result<()> {
    if key.is_empty() || key.chars().count() > MAX_SECRET_KEY {
        return Err(Error::invalid(format!(
            "a secret key must be 1-{MAX_SECRET_KEY} characters"
        )));
    }
    if key.chars().any(char::is_control) || key.trim() != key {
        return Err(Error::invalid(
            "a secret key may not contain control characters or leading/trailing spaces",
        ));
    }
    refuse_invisible("the secret key", key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_are_refused() {
        for bad in [
            "API\u{200B}KEY",
            "KEY\u{202E}gnp.exe",
            "A\u{2066}B",
            "\u{FEFF}KEY",
            "soft\u{00AD}hyphen",
            "zw\u{200D}j",
        ] {
            assert!(has_invisible(bad), "{bad:?}");
            assert!(clean_secret_key(bad).is_err(), "{bad:?}");
            assert!(clean_domain(&format!("{bad}.com")).is_err(), "{bad:?}");
        }
        for ok in ["API_KEY", "café", "日本語", "Ünïcödé"] {
            assert!(!has_invisible(ok), "{ok}");
            clean_secret_key(ok).unwrap();
        }
    }

    #[test]
    fn domains_are_cleaned() {
        for (input, want) in [
            ("https://mail.google.com/inbox", "google.com"),
            ("a.b.example.co.uk", "example.co.uk"),
            ("GitHub.com", "github.com"),
            (
                "https://user:pw@login.example.org:8443/x?y#z",
                "example.org",
            ),
            ("example.com.", "example.com"),
            ("localhost:8080", "localhost"),
            ("http://127.0.0.1:3000/", "127.0.0.1"),
            ("foo.github.io", "foo.github.io"),
            ("intranet", "intranet"),
        ] {
            assert_eq!(clean_domain(input).unwrap(), want, "{input}");
        }
        for bad in ["", "   ", "a b.com", "https://", "http://[::1"] {
            assert!(clean_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn identity_names() {
        for ok in ["alice", "agent-7", "A.B_c", "0day"] {
            validate_identity_name(ok).unwrap();
        }
        for bad in [
            "",
            "-x",
            "a b",
            "a@b",
            &"x".repeat(65),
            "0f8fad5b-d9cb-469f-a165-70867728950e",
        ] {
            assert!(validate_identity_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_and_domains() {
        assert_eq!(
            validate_email("Bob@Example.COM").unwrap(),
            "Bob@example.com"
        );
        for bad in [
            "bob",
            "@x.com",
            "bob@",
            "bob@localhost",
            "a b@x.com",
            "bob@-x.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_inbox_domain("Mail.Example.com.").unwrap(),
            "mail.example.com"
        );
        assert!(validate_inbox_domain("nodot").is_err());
    }

    #[test]
    fn phones() {
        assert_eq!(
            normalize_phone("+1 (415) 555-0123").unwrap(),
            "+14155550123"
        );
        for bad in [
            "4155550123",
            "+0123456789",
            "+12",
            "+1234567890123456",
            "+1415abc0123",
            "",
        ] {
            assert!(normalize_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_keys() {
        clean_secret_key("OPENAI_API_KEY").unwrap();
        clean_secret_key("with space inside").unwrap();
        for bad in ["", " lead", "trail ", "a\nb", &"k".repeat(257)] {
            assert!(clean_secret_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nfc_blind_index_vector() {
        // SPEC 6: both spellings of "café" are the bytes 63 61 66 c3 a9, and
        // with index key 42×32 the secret (kind 2) blind index below.
        for given in ["caf\u{e9}", "cafe\u{301}"] {
            let key = clean_secret_key(given).unwrap();
            assert_eq!(key.as_bytes(), [0x63, 0x61, 0x66, 0xc3, 0xa9]);
            assert_eq!(
                data_encoding::HEXLOWER.encode(&crate::primitives::hmac_sha256(
                    &[0x42; 32],
                    &[&[2], key.as_bytes()]
                )),
                "22a9b1637a755fdb0e81061a913764e62d91bd8883abafdb03c390c0f1f617ee"
            );
        }
        assert_eq!(
            legacy_form("caf\u{e9}", "caf\u{e9}").as_deref(),
            Some("cafe\u{301}")
        );
        assert_eq!(
            legacy_form("cafe\u{301}", "caf\u{e9}").as_deref(),
            Some("cafe\u{301}")
        );
        assert_eq!(legacy_form("plain", "plain"), None);
    }
}
