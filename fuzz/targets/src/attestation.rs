//! Attestation documents from arbitrary bytes: parsing and verification never panic, and a
//! document that verifies is exactly what the unverified parser reads. The same holds in the
//! insecure QEMU mode, which besides accepts nothing a real root accepts.

use std::sync::OnceLock;

use ea_attestation::{
    parse_unverified, verify, RootKind, TrustRoot, ValidationTime, VerifyOptions,
};

static ROOT: OnceLock<TrustRoot> = OnceLock::new();

/// Runs one input.
pub fn run(data: &[u8]) {
    let parsed = parse_unverified(data);
    let root = ROOT.get_or_init(|| TrustRoot::aws_nitro_root_g1().expect("embedded AWS root"));
    // The seeds' own times and one inside the production document's leaf validity.
    for at in [
        ValidationTime::DocumentTime,
        ValidationTime::At(1_665_655_000_000),
    ] {
        let options = VerifyOptions::new(root.clone())
            .at(at)
            .dangerous_allow_debug(true)
            .pcr(3, vec![0; 48])
            .nonce(data.get(..8).unwrap_or_default().to_vec())
            .max_age(std::time::Duration::from_secs(60), 1_665_651_482_136);
        if let Ok(verified) = verify(data, &options) {
            assert_eq!(
                parsed.as_ref().ok(),
                Some(&*verified),
                "verify accepted what parse_unverified reads differently"
            );
        }
        let lenient = VerifyOptions::new(root.clone())
            .at(at)
            .dangerous_allow_debug(true);
        if let Ok(verified) = verify(data, &lenient) {
            assert_eq!(parsed.as_ref().ok(), Some(&*verified));
        }
    }
    // The insecure QEMU mode (the `qemu-unsigned` seed is QEMU's shape): what it accepts is
    // what the parser reads, and it is reported as unsigned.
    let qemu = VerifyOptions::new(TrustRoot::insecure_qemu_unsigned())
        .dangerous_allow_debug(true)
        .pcr(3, vec![4; 48]);
    if let Ok(verified) = verify(data, &qemu) {
        assert_eq!(parsed.as_ref().ok(), Some(&*verified));
        assert_eq!(verified.report().root, RootKind::InsecureQemuUnsigned);
    }
}
