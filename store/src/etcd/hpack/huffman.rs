//! Decoding of HPACK's Huffman-coded strings (RFC 7541 §5.2, code in Appendix B).
//!
//! The code is canonical: ordered by (length, symbol), each code is the previous one plus
//! one, shifted left whenever the length grows. So the code lengths alone define it, and
//! [`CANONICAL`] derives, at compile time, what a bit-at-a-time canonical decoder needs.

use super::HpackError;

/// Bit length of the code of each symbol: bytes 0..=255, then EOS (256). RFC 7541 Appendix B.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];

const EOS: u16 = 256;
const MAX_CODE_BITS: usize = 30;

/// Per code length: the first code of that length, how many codes have it, and where their
/// symbols start in `symbols` (which lists every symbol in canonical order).
struct Canonical {
    first_code: [u32; MAX_CODE_BITS + 1],
    count: [u32; MAX_CODE_BITS + 1],
    first_rank: [usize; MAX_CODE_BITS + 1],
    symbols: [u16; 257],
}

const CANONICAL: Canonical = canonical();

const fn canonical() -> Canonical {
    let mut t = Canonical {
        first_code: [0; MAX_CODE_BITS + 1],
        count: [0; MAX_CODE_BITS + 1],
        first_rank: [0; MAX_CODE_BITS + 1],
        symbols: [0; 257],
    };
    let mut code: u32 = 0;
    let mut rank = 0;
    let mut len = 1;
    while len <= MAX_CODE_BITS {
        t.first_code[len] = code;
        t.first_rank[len] = rank;
        let mut sym = 0;
        while sym < CODE_LENGTHS.len() {
            if CODE_LENGTHS[sym] as usize == len {
                t.symbols[rank] = sym as u16;
                t.count[len] += 1;
                rank += 1;
                code += 1;
            }
            sym += 1;
        }
        code <<= 1;
        len += 1;
    }
    // Every symbol got a code, and the code is complete: the last code of the longest
    // length is all ones (EOS), so no sequence of bits can fall outside the table.
    assert!(rank == 257);
    assert!(code == 1 << (MAX_CODE_BITS + 1));
    t
}

/// Appends the Huffman-decoded `src` to `out`. Fails on an EOS symbol inside the string and
/// on padding that is longer than 7 bits or is not the most significant bits of EOS (all
/// ones), as RFC 7541 §5.2 requires.
pub(super) fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let t = &CANONICAL;
    let mut code: u32 = 0;
    let mut len = 0;
    for &byte in src {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            let offset = code.wrapping_sub(t.first_code[len]);
            if code >= t.first_code[len] && offset < t.count[len] {
                let sym = t.symbols[t.first_rank[len] + offset as usize];
                if sym == EOS {
                    return Err(HpackError::BadHuffman);
                }
                out.push(sym as u8);
                code = 0;
                len = 0;
            } else if len == MAX_CODE_BITS {
                unreachable!("the code is complete (asserted in `canonical`)");
            }
        }
    }
    if len > 7 || code != (1 << len) - 1 {
        return Err(HpackError::BadHuffman);
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Huffman-encodes `src` (test input only: the codec itself never emits Huffman).
    pub(in crate::etcd::hpack) fn encode(src: &[u8]) -> Vec<u8> {
        let t = &CANONICAL;
        let (mut out, mut acc, mut bits) = (Vec::new(), 0u64, 0);
        for &b in src {
            let len = CODE_LENGTHS[b as usize] as usize;
            let rank = (t.first_rank[len]..).find(|&r| t.symbols[r] == u16::from(b)).expect("every byte has a code");
            acc = (acc << len) | u64::from(t.first_code[len] + (rank - t.first_rank[len]) as u32);
            bits += len;
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) as u8);
        }
        out
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    fn decoded(src: &[u8]) -> Result<Vec<u8>, HpackError> {
        let mut out = Vec::new();
        decode(src, &mut out).map(|()| out)
    }

    #[test]
    fn decodes_rfc7541_examples() {
        // Appendix C.4 and C.6.
        for (encoded, plain) in [
            ("f1e3c2e5f23a6ba0ab90f4ff", "www.example.com"),
            ("a8eb10649cbf", "no-cache"),
            ("25a849e95ba97d7f", "custom-key"),
            ("25a849e95bb8e8b4bf", "custom-value"),
            ("6402", "302"),
            ("aec3771a4b", "private"),
            ("d07abe941054d444a8200595040b8166e082a62d1bff", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("9d29ad171863c78f0b97c8e9ae82ae43d3", "https://www.example.com"),
        ] {
            assert_eq!(decoded(&hex(encoded)).expect(plain), plain.as_bytes());
            assert_eq!(encode(plain.as_bytes()), hex(encoded), "{plain}");
        }
    }

    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decoded(&encode(&all)).expect("decodes"), all);
        assert_eq!(decoded(&[]).expect("empty"), b"");
    }

    #[test]
    fn rejects_bad_padding_and_eos() {
        // A whole byte of padding.
        assert_eq!(decoded(&[0xff]), Err(HpackError::BadHuffman));
        // '0' is 00000 (5 bits); padding 000 is not EOS's prefix.
        assert_eq!(decoded(&[0x00]), Err(HpackError::BadHuffman));
        // EOS itself (30 ones), padded with ones.
        assert_eq!(decoded(&[0xff, 0xff, 0xff, 0xff]), Err(HpackError::BadHuffman));
        // '0' then 111 of padding is fine.
        assert_eq!(decoded(&[0x07]).expect("valid"), b"0");
    }
}
