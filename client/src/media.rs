//! Attachments sealed by the client: the server stores and serves opaque
//! bytes. AES-256-CBC with a random key and IV, then HMAC-SHA256 over IV and
//! ciphertext (encrypt-then-MAC, as WhatsApp seals media). The key, the MAC
//! key and the SHA-256 of what is uploaded travel inside the message's
//! Megolm ciphertext, never to the server in clear.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use anyhow::{Context, bail};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

const IV_BYTES: usize = 16;
const MAC_BYTES: usize = 32;

/// An attachment ready to upload: `bytes` (IV, ciphertext, MAC) and the
/// secret that opens them, for the sealed message body.
pub struct SealedMedia {
    pub bytes: Vec<u8>,
    pub secret: Value,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn mac(key: &[u8], data: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac
}

/// Seals `plain` with fresh keys.
pub fn seal_media(plain: &[u8]) -> SealedMedia {
    let mut rng = rand::rng();
    let (mut key, mut mac_key, mut iv) = ([0u8; 32], [0u8; 32], [0u8; IV_BYTES]);
    rng.fill_bytes(&mut key);
    rng.fill_bytes(&mut mac_key);
    rng.fill_bytes(&mut iv);
    let ciphertext = Encryptor::new(&key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain);
    let mut bytes = iv.to_vec();
    bytes.extend_from_slice(&ciphertext);
    let tag = mac(&mac_key, &bytes).finalize().into_bytes();
    bytes.extend_from_slice(&tag);
    let secret = json!({
        "key": hex::encode(key),
        "mac_key": hex::encode(mac_key),
        "sha256": sha256_hex(&bytes),
        "plain_sha256": sha256_hex(plain),
    });
    SealedMedia { bytes, secret }
}

/// Opens downloaded bytes with the secret from the message, checking the
/// hash of what was downloaded, the MAC, and the hash of the plaintext.
pub fn open_media(bytes: &[u8], secret: &Value) -> anyhow::Result<Vec<u8>> {
    let field = |name: &str| -> anyhow::Result<Vec<u8>> {
        Ok(hex::decode(secret[name].as_str().context("a media secret field")?)?)
    };
    if sha256_hex(bytes) != secret["sha256"].as_str().unwrap_or_default() {
        bail!("the downloaded bytes are not the ones the sender uploaded");
    }
    if bytes.len() < IV_BYTES + MAC_BYTES {
        bail!("too short to be sealed media");
    }
    let (body, tag) = bytes.split_at(bytes.len() - MAC_BYTES);
    mac(&field("mac_key")?, body).verify_slice(tag).map_err(|_| anyhow::anyhow!("the media MAC does not match"))?;
    let (iv, ciphertext) = body.split_at(IV_BYTES);
    let key: [u8; 32] = field("key")?.try_into().map_err(|_| anyhow::anyhow!("a media key is 32 bytes"))?;
    let iv: [u8; IV_BYTES] = iv.try_into().expect("split at 16");
    let plain = Decryptor::new(&key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| anyhow::anyhow!("bad padding in sealed media"))?;
    if sha256_hex(&plain) != secret["plain_sha256"].as_str().unwrap_or_default() {
        bail!("the opened media is not what the sender sealed");
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_media_opens_with_its_secret_only_and_any_change_is_caught() {
        let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let sealed = seal_media(&plain);
        assert!(!sealed.bytes.windows(64).any(|window| window == &plain[..64]), "no plaintext in the upload");
        assert_eq!(open_media(&sealed.bytes, &sealed.secret).expect("opens"), plain);
        let mut altered = sealed.bytes.clone();
        altered[40] ^= 1;
        assert!(open_media(&altered, &sealed.secret).is_err(), "a flipped bit is caught");
        let other = seal_media(&plain);
        assert!(open_media(&sealed.bytes, &other.secret).is_err(), "another secret does not open it");
    }
}
