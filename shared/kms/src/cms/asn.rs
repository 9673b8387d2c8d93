//! The two ASN.1 types rasn-cms does not have, for the RSAES-OAEP parameters.

use rasn::prelude::*;

/// The RSAES-OAEP-params of RFC 8017 appendix A.2.1; absent fields mean the SHA-1 defaults,
/// which the parser refuses.
#[derive(AsnType, Decode, Debug)]
pub(super) struct RsaesOaepParams {
    #[rasn(tag(explicit(0)))]
    pub hash_algorithm: Option<AlgorithmId>,
    #[rasn(tag(explicit(1)))]
    pub mask_gen_algorithm: Option<AlgorithmId>,
    #[rasn(tag(explicit(2)))]
    pub p_source_algorithm: Option<AlgorithmId>,
}

/// An AlgorithmIdentifier whose parameters stay undecoded bytes.
#[derive(AsnType, Decode, Debug)]
pub(super) struct AlgorithmId {
    pub algorithm: ObjectIdentifier,
    pub parameters: Option<Any>,
}
