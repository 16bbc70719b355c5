//! A string that holds secret material: zeroized on drop, redacted in Debug.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string (password, secret value). `Debug` never shows it, it
/// does not implement `Serialize` (an output type that includes one says
/// so with [`SecretString::serialize_exposed`]), and equality takes the
/// same time for every pair of equal-length values.
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for SecretString {}

impl SecretString {
    /// Wraps a string.
    pub fn new(s: String) -> Self {
        SecretString(Zeroizing::new(s))
    }

    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString::new(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        SecretString::new(s.to_string())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl SecretString {
    /// Serialises the secret as a plain string: for output types that
    /// deliberately carry it (`#[serde(serialize_with = ...)]`).
    ///
    /// # Errors
    /// Whatever the serializer returns.
    pub fn serialize_exposed<S: serde::Serializer>(
        secret: &SecretString,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&secret.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretString::from("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s, SecretString::from("hunter2"));
        assert_ne!(s, SecretString::from("hunter3"));
        assert_ne!(s, SecretString::from("hunter"));
    }
}
