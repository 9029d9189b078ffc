//! The cryptography under the tokens: HMAC-SHA-256 (and -384, -512) from `ring`, installed as
//! jsonwebtoken's process-wide `CryptoProvider`.
//!
//! Hand-written glue rather than one of jsonwebtoken's own backends, because neither fits:
//! `rust_crypto` links the `rsa` crate, which carries RUSTSEC-2023-0071 (a timing side channel
//! with no fixed version), and `aws_lc_rs` adds a large C library to every cold build. `ring` is
//! already linked (rustls, under the database driver) and does the cryptography, with a
//! constant-time comparison; jsonwebtoken still does everything JWT. Conduit's tokens are HS256
//! only, so any other algorithm is refused here (the validation allows HS256 alone anyway).

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result, new_error};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use ring::hmac;

/// HMAC signatures through `ring`; JWKs are not supported (Conduit has none).
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory,
    verifier_factory,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Installs the provider for this process; later calls (and a provider already installed) change
/// nothing.
pub fn install() {
    // Err only when a provider is already installed, which is this one.
    let _ = PROVIDER.install_default();
}

/// `ring`'s HMAC for a JWT algorithm; `None` for any other algorithm.
fn hmac_of(algorithm: Algorithm) -> Option<hmac::Algorithm> {
    match algorithm {
        Algorithm::HS256 => Some(hmac::HMAC_SHA256),
        Algorithm::HS384 => Some(hmac::HMAC_SHA384),
        Algorithm::HS512 => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

/// An HMAC key and the JWT algorithm it signs or verifies for.
struct HmacKey {
    key: hmac::Key,
    algorithm: Algorithm,
}

impl HmacKey {
    fn new(algorithm: Algorithm, family: AlgorithmFamily, secret: &[u8]) -> Result<Self> {
        let hmac = hmac_of(algorithm).ok_or_else(|| new_error(ErrorKind::InvalidAlgorithm))?;
        if family != AlgorithmFamily::Hmac {
            return Err(new_error(ErrorKind::InvalidKeyFormat));
        }
        Ok(Self {
            key: hmac::Key::new(hmac, secret),
            algorithm,
        })
    }
}

impl Signer<Vec<u8>> for HmacKey {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(hmac::sign(&self.key, message).as_ref().to_vec())
    }
}

impl JwtSigner for HmacKey {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl Verifier<Vec<u8>> for HmacKey {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> std::result::Result<(), signature::Error> {
        hmac::verify(&self.key, message, signature).map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for HmacKey {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn signer_factory(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(HmacKey::new(
        *algorithm,
        key.family(),
        key.as_bytes(),
    )?))
}

fn verifier_factory(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(HmacKey::new(
        *algorithm,
        key.family(),
        key.try_get_as_bytes()?,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7515, appendix A.1: a JWS signed with HS256, checked against `ring`'s HMAC.
    #[test]
    fn verifies_the_rfc_7515_example_and_refuses_a_changed_payload() {
        install();
        let key = [
            3u8, 35, 53, 75, 43, 15, 165, 188, 131, 126, 6, 101, 119, 123, 166, 143, 90, 179, 40,
            230, 240, 84, 201, 40, 169, 15, 132, 178, 210, 80, 46, 191, 211, 251, 90, 146, 210, 6,
            71, 239, 150, 138, 180, 195, 119, 98, 61, 34, 61, 46, 33, 114, 5, 46, 79, 8, 192, 205,
            154, 245, 103, 208, 128, 163,
        ];
        let message = b"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let signature = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let decoding = DecodingKey::from_secret(&key);
        assert!(
            jsonwebtoken::crypto::verify(signature, message, &decoding, Algorithm::HS256)
                .expect("verifies")
        );
        let mut changed = message.to_vec();
        changed[40] ^= 1;
        assert!(
            !jsonwebtoken::crypto::verify(signature, &changed, &decoding, Algorithm::HS256)
                .expect("verifies")
        );
        let encoding = EncodingKey::from_secret(&key);
        assert_eq!(
            jsonwebtoken::crypto::sign(message, &encoding, Algorithm::HS256).expect("signs"),
            signature
        );
        assert!(jsonwebtoken::crypto::sign(message, &encoding, Algorithm::RS256).is_err());
    }
}
