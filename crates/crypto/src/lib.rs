//! # custos-crypto — small, auditable cryptography for the privacy kernel
//!
//! Owns every cryptographic operation Custos performs, so an auditor reads one crate:
//!
//! - [`MasterKey`] and [`Keyring`]: the master key and the purpose-separated keys derived
//!   from it with HKDF-SHA256 (key-wrapping, blind index, pseudonyms, signing-key wrap).
//! - [`DataKey`]: a subject's data key; AES-256-GCM envelope encryption of personal fields,
//!   each ciphertext bound to its subject and field by associated data.
//! - [`Keyring::blind_index`]: keyed HMAC lookups over encrypted values.
//! - [`Keyring::pseudonym`]: keyed-HMAC pseudonyms for analytics (L16).
//! - [`ReceiptSigner`]: Ed25519 signatures over consent receipts as compact JWS (RFC 7515,
//!   `alg: EdDSA`), verifiable by anyone with the published JWK.
//! - [`chain_hash`]: the link function of the consent ledger's hash chain.
//!
//! Randomness is always passed in (`&mut impl CryptoRngCore`) so tests can be
//! deterministic. Must not import: storage, HTTP, policy.
//!
//! AES-256-GCM with random 96-bit nonces is chosen over XChaCha20-Poly1305 because this
//! machine class has AES-NI (about 7x faster, see LIMITS). Each data key encrypts far fewer
//! than 2^32 messages (one subject's fields), so random nonces stay well inside the bound.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The operating system's CSPRNG, re-exported so callers need no extra dependency.
pub use rand_core::OsRng;

type HmacSha256 = Hmac<Sha256>;

/// Format tag prefixed to every sealed value, so the scheme can change later.
const SEAL_V1: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("ciphertext cannot be opened with this key (wrong key, wrong binding or tampered)")]
    Open,
    #[error("malformed ciphertext")]
    Malformed,
    #[error("key material has the wrong length (expected {expected} bytes)")]
    KeyLength { expected: usize },
    #[error("malformed or unverifiable signature")]
    Signature,
}

/// The root secret. Everything else is derived from it or wrapped by it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn generate(rng: &mut impl CryptoRngCore) -> MasterKey {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        MasterKey(k)
    }
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, CryptoError> {
        let k: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::KeyLength { expected: 32 })?;
        Ok(MasterKey(k))
    }
    /// Parses the base64 (standard or URL-safe) text form used in files and variables.
    pub fn from_base64(text: &str) -> Result<MasterKey, CryptoError> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| B64.decode(text.trim_end_matches('=')))
            .map_err(|_| CryptoError::KeyLength { expected: 32 })?;
        MasterKey::from_bytes(&bytes)
    }
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
    fn derive(&self, label: &str) -> [u8; 32] {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"custos/v1"), &self.0);
        let mut out = [0u8; 32];
        hk.expand(label.as_bytes(), &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }
}

/// Keys derived from the master key, one per job, so no key serves two purposes.
pub struct Keyring {
    kek: Aes256Gcm,
    index_key: HmacSha256,
    pseudonym_key: HmacSha256,
    secret_wrap: Aes256Gcm,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(<redacted>)")
    }
}

impl Keyring {
    pub fn new(master: &MasterKey) -> Keyring {
        let mut kek = master.derive("key-encryption");
        let mut idx = master.derive("blind-index");
        let mut pse = master.derive("pseudonym");
        let mut sw = master.derive("secret-wrap");
        let ring = Keyring {
            kek: Aes256Gcm::new(&kek.into()),
            index_key: <HmacSha256 as Mac>::new_from_slice(&idx).expect("any key length"),
            pseudonym_key: <HmacSha256 as Mac>::new_from_slice(&pse).expect("any key length"),
            secret_wrap: Aes256Gcm::new(&sw.into()),
        };
        kek.zeroize();
        idx.zeroize();
        pse.zeroize();
        sw.zeroize();
        ring
    }

    /// Wraps a subject's data key; `binding` (the subject id) is authenticated so a
    /// wrapped key cannot be moved to another subject.
    pub fn wrap(&self, key: &DataKey, binding: &[u8], rng: &mut impl CryptoRngCore) -> Vec<u8> {
        seal_with(&self.kek, binding, &key.0, rng)
    }

    pub fn unwrap(&self, wrapped: &[u8], binding: &[u8]) -> Result<DataKey, CryptoError> {
        let mut raw = open_with(&self.kek, binding, wrapped)?;
        let key = DataKey::from_bytes(&raw);
        raw.zeroize();
        key
    }

    /// Encrypts an installation secret (such as the receipt signing key) for storage.
    pub fn wrap_secret(&self, label: &str, secret: &[u8], rng: &mut impl CryptoRngCore) -> Vec<u8> {
        seal_with(&self.secret_wrap, label.as_bytes(), secret, rng)
    }

    pub fn unwrap_secret(&self, label: &str, wrapped: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open_with(&self.secret_wrap, label.as_bytes(), wrapped)
    }

    /// A keyed, deterministic 16-byte index of a (normalized) value, for equality lookups
    /// over encrypted columns. `domain` separates indexes (phone vs. token).
    pub fn blind_index(&self, domain: &str, value: &[u8]) -> [u8; 16] {
        keyed_digest(&self.index_key, domain, value)
    }

    /// A keyed pseudonym for analytics; a different key from the blind index so the
    /// analytics store cannot be joined with lookup indexes.
    pub fn pseudonym(&self, domain: &str, value: &[u8]) -> [u8; 16] {
        keyed_digest(&self.pseudonym_key, domain, value)
    }
}

fn keyed_digest(key: &HmacSha256, domain: &str, value: &[u8]) -> [u8; 16] {
    let mut mac = key.clone();
    mac.update(&(domain.len() as u32).to_be_bytes());
    mac.update(domain.as_bytes());
    mac.update(value);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

fn seal_with(
    cipher: &Aes256Gcm,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of in-memory data does not fail");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(SEAL_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(cipher: &Aes256Gcm, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != SEAL_V1 {
        return Err(CryptoError::Malformed);
    }
    let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| CryptoError::Open)
}

/// A subject's data key. Destroying its wrapped copy makes every ciphertext under it
/// unreadable, in the live database and in every backup (crypto-shredding).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    pub fn generate(rng: &mut impl CryptoRngCore) -> DataKey {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        DataKey(k)
    }
    fn from_bytes(bytes: &[u8]) -> Result<DataKey, CryptoError> {
        let k: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::KeyLength { expected: 32 })?;
        Ok(DataKey(k))
    }
    /// A cipher for this key; build once per request and seal/open many fields.
    pub fn cipher(&self) -> FieldCipher {
        FieldCipher(Aes256Gcm::new(&self.0.into()))
    }
}

/// Seals and opens one subject's fields. `binding` is the field's identity (subject id +
/// field name), authenticated but not stored, so a ciphertext copied to another row or
/// another subject does not open.
pub struct FieldCipher(Aes256Gcm);

impl FieldCipher {
    pub fn seal(&self, binding: &[u8], plaintext: &[u8], rng: &mut impl CryptoRngCore) -> Vec<u8> {
        seal_with(&self.0, binding, plaintext, rng)
    }
    pub fn open(&self, binding: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open_with(&self.0, binding, sealed)
    }
}

/// Signs consent receipts (Ed25519) as compact JWS.
pub struct ReceiptSigner {
    key: SigningKey,
    kid: String,
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl ReceiptSigner {
    pub fn generate(rng: &mut impl CryptoRngCore) -> ReceiptSigner {
        ReceiptSigner::from_secret(&SigningKey::generate(rng).to_bytes()).expect("32-byte secret")
    }
    pub fn from_secret(secret: &[u8]) -> Result<ReceiptSigner, CryptoError> {
        let bytes: [u8; 32] = secret
            .try_into()
            .map_err(|_| CryptoError::KeyLength { expected: 32 })?;
        let key = SigningKey::from_bytes(&bytes);
        // The key id is the RFC 7638 JWK thumbprint, so it follows from the public key.
        let x = B64.encode(key.verifying_key().as_bytes());
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = B64.encode(Sha256::digest(canonical.as_bytes()));
        Ok(ReceiptSigner { key, kid })
    }
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
    pub fn kid(&self) -> &str {
        &self.kid
    }
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
    /// The public key as a JWK (RFC 8037), for `/.well-known/` publication.
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": B64.encode(self.key.verifying_key().as_bytes()),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        })
    }
    /// Compact JWS over `payload` (already-serialized JSON).
    pub fn sign_jws(&self, payload: &[u8]) -> String {
        let header = format!(r#"{{"alg":"EdDSA","kid":"{}","typ":"JWT"}}"#, self.kid);
        let signing_input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let sig = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(sig.to_bytes()))
    }
}

/// Verifies a compact JWS made by [`ReceiptSigner::sign_jws`] and returns its payload.
pub fn verify_jws(key: &VerifyingKey, jws: &str) -> Result<Vec<u8>, CryptoError> {
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CryptoError::Signature);
    };
    let header: serde_json::Value =
        serde_json::from_slice(&B64.decode(h).map_err(|_| CryptoError::Signature)?)
            .map_err(|_| CryptoError::Signature)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("EdDSA") {
        return Err(CryptoError::Signature);
    }
    let sig_bytes: [u8; 64] = B64
        .decode(s)
        .map_err(|_| CryptoError::Signature)?
        .try_into()
        .map_err(|_| CryptoError::Signature)?;
    let sig = ed25519_dalek::Signature::from_bytes(&sig_bytes);
    key.verify(format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| CryptoError::Signature)?;
    B64.decode(p).map_err(|_| CryptoError::Signature)
}

/// Parses the `x` member of a published Ed25519 JWK.
pub fn verifying_key_from_jwk(jwk: &serde_json::Value) -> Result<VerifyingKey, CryptoError> {
    let x = jwk
        .get("x")
        .and_then(|x| x.as_str())
        .ok_or(CryptoError::Signature)?;
    let bytes: [u8; 32] = B64
        .decode(x)
        .map_err(|_| CryptoError::Signature)?
        .try_into()
        .map_err(|_| CryptoError::Signature)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| CryptoError::Signature)
}

/// The hash of the ledger's genesis predecessor.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// One link of a hash chain: `SHA-256("custos-ledger-v1" || prev || len(record) || record)`.
/// Any change to a record, or its removal or reordering, changes every later link.
pub fn chain_hash(prev: &[u8; 32], record: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"custos-ledger-v1");
    h.update(prev);
    h.update((record.len() as u64).to_be_bytes());
    h.update(record);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn ring() -> Keyring {
        Keyring::new(&MasterKey::generate(&mut OsRng))
    }

    #[test]
    fn a_sealed_field_opens_only_with_its_key_and_binding() {
        let ring = ring();
        let key = DataKey::generate(&mut OsRng);
        let c = key.cipher();
        let sealed = c.seal(b"subject-1/nickname", b"Xiao Ming", &mut OsRng);
        assert_eq!(
            c.open(b"subject-1/nickname", &sealed).unwrap(),
            b"Xiao Ming"
        );
        assert_eq!(
            c.open(b"subject-2/nickname", &sealed),
            Err(CryptoError::Open)
        );
        let other = DataKey::generate(&mut OsRng).cipher();
        assert_eq!(
            other.open(b"subject-1/nickname", &sealed),
            Err(CryptoError::Open)
        );
        let wrapped = ring.wrap(&key, b"subject-1", &mut OsRng);
        let back = ring.unwrap(&wrapped, b"subject-1").unwrap();
        assert_eq!(
            back.cipher().open(b"subject-1/nickname", &sealed).unwrap(),
            b"Xiao Ming"
        );
        assert!(ring.unwrap(&wrapped, b"subject-2").is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            c.open(b"subject-1/nickname", &tampered),
            Err(CryptoError::Open)
        );
        assert_eq!(c.open(b"x", &[1, 2]), Err(CryptoError::Malformed));
    }

    #[test]
    fn blind_index_and_pseudonym_are_keyed_and_separate() {
        let a = ring();
        let b = ring();
        let v = b"+8613800138000";
        assert_eq!(a.blind_index("phone", v), a.blind_index("phone", v));
        assert_ne!(a.blind_index("phone", v), b.blind_index("phone", v));
        assert_ne!(a.blind_index("phone", v), a.blind_index("token", v));
        assert_ne!(a.blind_index("phone", v), a.pseudonym("phone", v));
    }

    #[test]
    fn a_signed_receipt_verifies_and_a_changed_one_does_not() {
        let s = ReceiptSigner::generate(&mut OsRng);
        let jws = s.sign_jws(br#"{"purpose":"ads"}"#);
        let vk = verifying_key_from_jwk(&s.public_jwk()).unwrap();
        assert_eq!(verify_jws(&vk, &jws).unwrap(), br#"{"purpose":"ads"}"#);
        let parts: Vec<&str> = jws.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(br#"{"purpose":"all"}"#),
            parts[2]
        );
        assert_eq!(verify_jws(&vk, &forged), Err(CryptoError::Signature));
        let restored = ReceiptSigner::from_secret(&s.secret_bytes()).unwrap();
        assert_eq!(restored.kid(), s.kid());
    }

    #[test]
    fn the_chain_changes_when_any_record_changes() {
        let h1 = chain_hash(&GENESIS, b"one");
        let h2 = chain_hash(&h1, b"two");
        assert_ne!(chain_hash(&chain_hash(&GENESIS, b"onE"), b"two"), h2);
        assert_ne!(chain_hash(&chain_hash(&GENESIS, b"two"), b"one"), h2);
    }

    #[test]
    fn master_key_round_trips_through_base64_and_rejects_bad_lengths() {
        let k = MasterKey::generate(&mut OsRng);
        let back = MasterKey::from_base64(&k.to_base64()).unwrap();
        assert_eq!(back.0, k.0);
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
    }
}
