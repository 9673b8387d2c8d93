//! KMS's CiphertextForRecipient from arbitrary bytes: the BER CMS parser and the opening
//! never panic; and (for inputs marked with a leading 0xff) what the builder makes of the
//! rest, in DER or chunked BER, opens to exactly that.

use std::sync::OnceLock;

use ea_kms::cms::{Encoding, Envelope, EnvelopeBuilder, RecipientCheck};
use ea_kms::RecipientKey;

static KEY: OnceLock<RecipientKey> = OnceLock::new();

/// Runs one input.
pub fn run(data: &[u8]) {
    let key = KEY.get_or_init(|| RecipientKey::generate().expect("an RSA key"));
    if let Ok(envelope) = Envelope::parse(data) {
        let _ = envelope.recipient_key_id();
        // Seeds are made for other keys: this reaches OAEP (one RSA decryption, the slow
        // part), which refuses; whatever the parse let through must be refused, not panic.
        let _ = envelope.open(key, RecipientCheck::AnyKeyId);
    }
    // RSA is slow: the round trip runs for a small share of the inputs only.
    if let [0xff, chunk, plaintext @ ..] = data {
        let encoding = match chunk {
            0 => Encoding::Der,
            n => Encoding::Ber {
                chunk_len: usize::from(*n),
            },
        };
        let built = EnvelopeBuilder::new(key.public_key_der())
            .expect("our own key")
            .encoding(encoding)
            .build(plaintext)
            .expect("plaintexts this short always build");
        let opened = ea_kms::cms::open(&built, key, RecipientCheck::KeyId)
            .expect("what the builder makes opens");
        assert_eq!(opened.as_slice(), plaintext);
    }
}
