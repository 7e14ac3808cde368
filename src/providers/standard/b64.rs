//! Base64 with the standard alphabet (RFC 4648 §4), as Standard Webhooks secrets and signatures
//! are written. Decoding takes padding or its absence (some senders strip it from secrets) but
//! nothing else loose: no other alphabet, no whitespace, no stray bits after the last byte, so
//! each byte string has exactly two accepted spellings.

use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(false),
);

/// The padded encoding of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    ENGINE.encode(bytes)
}

/// The bytes `text` encodes, with or without its padding; `None` when it is not canonical
/// standard base64.
pub fn decode(text: &[u8]) -> Option<Vec<u8>> {
    // The engine also takes partial padding (`Zg=`); padding that is there must be whole.
    if text.ends_with(b"=") && !text.len().is_multiple_of(4) {
        return None;
    }
    ENGINE.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 4648 §10.
    const VECTORS: &[(&str, &str)] = &[
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn matches_the_rfc_4648_vectors_with_and_without_padding() {
        for (plain, encoded) in VECTORS {
            assert_eq!(encode(plain.as_bytes()), *encoded);
            assert_eq!(
                decode(encoded.as_bytes()).as_deref(),
                Some(plain.as_bytes())
            );
            let bare = encoded.trim_end_matches('=');
            assert_eq!(
                decode(bare.as_bytes()).as_deref(),
                Some(plain.as_bytes()),
                "{bare}"
            );
        }
        assert_eq!(encode(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn refuses_anything_not_canonical_standard_base64() {
        for bad in [
            "Zg=",     // padding, but not to a multiple of four
            "Zg===",   // too much padding
            "Z",       // one character carries no whole byte
            "Z===",    // nor with padding
            "====",    // padding alone
            "Zh==",    // spare bits set
            "Zm9=",    // spare bits set
            "Zm9v-_",  // URL-safe alphabet
            "Zm9v Yg", // whitespace
            "Zm9vYg==\n",
            "Zm=9v", // padding inside
        ] {
            assert_eq!(decode(bad.as_bytes()), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let text = encode(&bytes);
            prop_assert_eq!(decode(text.as_bytes()), Some(bytes.clone()));
            prop_assert_eq!(decode(text.trim_end_matches('=').as_bytes()), Some(bytes));
        }
    }
}
