//! The sealed log key as the parent hands it back at start: decoding never panics, whatever
//! decodes is its own canonical encoding, and opening it with a wrong data key or genesis is
//! refused (the parent may return any blob; only one sealed by this enclave opens).

use ea_kms::SealedLogKey;

/// Runs one input.
pub fn run(data: &[u8]) {
    if let Ok(sealed) = SealedLogKey::from_bytes(data) {
        let again = sealed.to_bytes().expect("a decoded sealed key encodes");
        assert_eq!(again, data, "decode then encode changed the bytes");
        assert!(
            sealed
                .open(
                    &[0; 32],
                    &ea_kms::LogKeyBinding {
                        genesis_hash: [0; 32],
                        genesis_image: [0; 32],
                        image: [0; 32],
                    }
                )
                .is_err(),
            "opened with an all-zero data key"
        );
        assert!(
            sealed.open_legacy(&[0; 32], &[0; 32]).is_err(),
            "opened with an all-zero data key"
        );
    }
    // The same bytes as the store's key set (per-image keys): decoding never panics.
    if let Ok(set) = ea_kms::SealedKeySet::from_bytes(data) {
        assert_eq!(
            set.to_bytes().expect("a decoded key set encodes"),
            data,
            "decode then encode changed the bytes"
        );
    }
}
