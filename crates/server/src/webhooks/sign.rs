//! Signatures by the Standard Webhooks specification: `webhook-signature` is
//! `v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, one per secret that signs,
//! separated by spaces; a secret is written `whsec_<base64 of its key>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of a new secret's key (the specification asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;

/// A new random key.
pub fn new_key() -> Vec<u8> {
    (0..SECRET_BYTES).map(|_| rand::random::<u8>()).collect()
}

/// A key as the API shows it: `whsec_` and its base64.
pub fn secret_text(key: &[u8]) -> String {
    format!("whsec_{}", STANDARD.encode(key))
}

/// One signature: `v1,` and the base64 of the HMAC.
pub fn signature(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: a signature by each key, space-separated.
pub fn header<'a>(
    keys: impl IntoIterator<Item = &'a [u8]>,
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> String {
    keys.into_iter().map(|key| signature(key, id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's published example.
    #[test]
    fn the_specifications_example_signs_the_same() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
        assert_eq!(secret_text(&key), secret);
        let signed =
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_rotation_signs_with_both_keys() {
        let (old, new) = (new_key(), new_key());
        assert_eq!(old.len(), SECRET_BYTES);
        let both = header([old.as_slice(), new.as_slice()], "evt_1", 7, b"{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts, [signature(&old, "evt_1", 7, b"{}"), signature(&new, "evt_1", 7, b"{}")]);
        assert_ne!(parts[0], parts[1]);
    }
}
