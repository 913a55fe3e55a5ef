//! Credentials keymeter hands out: API key secrets and session tokens. Both
//! carry 256 bits from the OS random source and are stored only as SHA-256
//! hashes. A fast hash is right here (unlike passwords): the inputs are
//! random and long, so there is nothing to guess.

use sha2::{Digest, Sha256};

use super::KeyType;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 43 base62 characters hold log2(62) * 43 = 256.03 bits.
const RANDOM_CHARS: usize = 43;
/// Random characters of a secret kept in its displayable prefix.
const PREFIX_RANDOM_CHARS: usize = 4;

/// Uniformly random base62 text from the OS random source.
fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).expect("the OS random source is unavailable");
        // 248 = 4 * 62: rejecting bytes at or above it keeps every character equally likely.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == len {
                break;
            }
            out.push(BASE62[usize::from(b % 62)] as char);
        }
    }
    out
}

/// The SHA-256 of a secret or token: what the database stores and searches.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.0.to_vec()
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(***)")
    }
}

/// A freshly generated API key secret, e.g. `sk_dev_3fA9…` (43 random characters).
pub struct KeySecret {
    secret: String,
    prefix_len: usize,
}

impl KeySecret {
    pub fn generate(key_type: KeyType) -> Self {
        let kind = key_type.secret_prefix();
        Self {
            secret: format!("{kind}{}", random_base62(RANDOM_CHARS)),
            prefix_len: kind.len() + PREFIX_RANDOM_CHARS,
        }
    }

    /// The first characters, safe to show in lists: `sk_dev_` plus four random characters.
    pub fn prefix(&self) -> &str {
        &self.secret[..self.prefix_len]
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.secret)
    }

    pub fn into_secret(self) -> String {
        self.secret
    }
}

/// A session bearer token, `kms_` and 43 random characters.
pub struct SessionToken(String);

impl SessionToken {
    pub fn generate() -> Self {
        Self(format!("kms_{}", random_base62(RANDOM_CHARS)))
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The token of an invitation's accept URL; the invitation stores only its hash.
pub struct InvitationToken(String);

impl InvitationToken {
    pub fn generate() -> Self {
        Self(format!("kmi_{}", random_base62(RANDOM_CHARS)))
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The value a sign-in's cookie holds in the browser that started it; the
/// flow stores only its hash, and completes only where it is presented.
pub struct BrowserBinding(String);

impl BrowserBinding {
    pub fn generate() -> Self {
        Self(random_base62(RANDOM_CHARS))
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_contract_shape() {
        for (key_type, kind) in [(KeyType::Dev, "sk_dev_"), (KeyType::Prod, "sk_prod_")] {
            let secret = KeySecret::generate(key_type);
            let prefix = secret.prefix().to_owned();
            let hash = secret.hash();
            let text = secret.into_secret();
            assert!(text.starts_with(kind));
            assert!(text.starts_with(&prefix));
            assert_eq!(prefix.len(), kind.len() + 4);
            let random = &text[kind.len()..];
            assert_eq!(random.len(), 43);
            assert!(random.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(hash == SecretHash::of(&text));
        }
    }

    #[test]
    fn secrets_do_not_repeat() {
        let a = KeySecret::generate(KeyType::Dev).into_secret();
        let b = KeySecret::generate(KeyType::Dev).into_secret();
        assert_ne!(a, b);
    }

    #[test]
    fn every_base62_character_appears() {
        let text = random_base62(20_000);
        for &c in BASE62 {
            assert!(text.as_bytes().contains(&c));
        }
    }
}
