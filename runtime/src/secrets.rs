//! Alteryx credentials: the redacting [`SecretString`], the [`Credentials`] a client needs,
//! and where they come from (AWS Secrets Manager in the recipe's JSON layout, or the
//! `ALTERYX_URL` / `ALTERYX_KEY` / `ALTERYX_SECRET` environment variables).
//!
//! OWNER: alteryx-client helper. The types below are a contract used by other modules.

use std::fmt;

/// A secret value that never prints: `Debug` and `Display` show `***`.
/// Read it only at the point of use with [`SecretString::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself. Call this only where the value is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(***)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
