//! Small cryptographic building blocks shared by every part: random tokens, hashing of
//! high-entropy secrets, constant-time comparison, and protection of personal data at rest.

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `bytes` bytes from the operating system's CSPRNG.
pub fn random_bytes(bytes: usize) -> Vec<u8> {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf
}

/// A random URL-safe token carrying `bytes` bytes of entropy from the operating system's CSPRNG.
pub fn random_token(bytes: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(bytes))
}

/// SHA-256 of a high-entropy secret, URL-safe base64. Enough for random tokens and client
/// secrets (nothing to brute-force); never for passwords people choose.
pub fn sha256_b64(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input))
}

/// Compares two secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Errors of the data-protection layer.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("data-protection key file {0}: {1}")]
    KeyFile(String, String),
    #[error("protected value cannot be decrypted (wrong data key?)")]
    Decrypt,
}

/// Protects personal data and private keys at rest with one 32-byte key shared by all nodes:
/// AES-256-GCM for values that must be read back, and a keyed HMAC "blind index" for values
/// that must be looked up (national IDs) without storing them in clear.
pub struct DataProtector {
    aead: LessSafeKey,
    index: hmac::Key,
}

impl DataProtector {
    /// Loads the key file, creating it (mode 0600) with a fresh random key if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let err = |e: &dyn std::fmt::Display| CryptoError::KeyFile(path.display().to_string(), e.to_string());
        let key = match std::fs::read_to_string(path) {
            Ok(text) => STANDARD.decode(text.trim()).map_err(|e| err(&e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key_file(path).map_err(|e| err(&e))?,
            Err(e) => return Err(err(&e)),
        };
        if key.len() != 32 {
            return Err(err(&"must hold 32 bytes, base64-encoded"));
        }
        Ok(Self::from_key(&key))
    }

    /// Builds a protector from raw key bytes (32 bytes).
    pub fn from_key(key: &[u8]) -> Self {
        // Separate sub-keys so the index key never equals the encryption key.
        let enc = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), b"idp/aead");
        let idx = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), b"idp/index");
        #[allow(clippy::expect_used)] // 32 bytes is always a valid AES-256 key
        let unbound = UnboundKey::new(&aead::AES_256_GCM, enc.as_ref()).expect("AES-256 key length");
        Self { aead: LessSafeKey::new(unbound), index: hmac::Key::new(hmac::HMAC_SHA256, idx.as_ref()) }
    }

    /// Deterministic keyed index of a value, for equality look-ups.
    pub fn index(&self, value: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.index, value.as_bytes()))
    }

    /// Encrypts a value; the result is `base64(nonce || ciphertext || tag)`.
    pub fn seal(&self, plain: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut buf = plain.to_vec();
        #[allow(clippy::expect_used)] // sealing only fails for inputs larger than 64 GiB
        self.aead.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf).expect("seal");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        STANDARD.encode(out)
    }

    /// Decrypts what [`seal`](Self::seal) produced.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let raw = STANDARD.decode(sealed).map_err(|_| CryptoError::Decrypt)?;
        if raw.len() < 12 + 16 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, rest) = raw.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Decrypt)?;
        let mut buf = rest.to_vec();
        let plain = self.aead.open_in_place(nonce, Aad::empty(), &mut buf).map_err(|_| CryptoError::Decrypt)?;
        Ok(plain.to_vec())
    }
}

/// Creates the key file with a fresh key, or — when another process (a replica starting at the
/// same instant) made it first — reads that one, so every process ends with the same key. The
/// key is written whole to a file of its own and then linked into place, which is atomic and
/// fails if the name exists: nobody ever reads a half-written key file.
fn create_key_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut key = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staged = path.with_file_name(format!(".{name}.{}", random_token(8)));
    write_private(&staged, STANDARD.encode(&key).as_bytes())?;
    let linked = std::fs::hard_link(&staged, path);
    let _ = std::fs::remove_file(&staged);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)?;
            STANDARD.decode(text.trim()).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        }
        Err(e) => Err(e),
    }
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_creating_the_key_file_at_once_all_end_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        let keys: Vec<String> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| DataProtector::load_or_create(&path).map(|p| p.index("A123456789"))))
                .collect();
            runs.into_iter().map(|r| r.join().unwrap().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["data.key"], "nothing staged is left behind");
    }

    #[test]
    fn sealed_values_open_and_tampering_is_detected() {
        let p = DataProtector::from_key(&[7u8; 32]);
        let sealed = p.seal(b"A123456789");
        assert_eq!(p.open(&sealed).unwrap(), b"A123456789");
        let mut raw = STANDARD.decode(&sealed).unwrap();
        raw[14] ^= 1;
        assert!(p.open(&STANDARD.encode(raw)).is_err());
        assert_eq!(p.index("A123456789"), p.index("A123456789"));
        assert_ne!(p.index("A123456789"), DataProtector::from_key(&[8u8; 32]).index("A123456789"));
    }
}
