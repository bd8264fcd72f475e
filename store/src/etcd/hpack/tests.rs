use super::*;
use proptest::prelude::*;

/// A literal field as a client's encoder may send it. `kind` is 0x40 (with indexing),
/// 0x00 (without) or 0x10 (never indexed); `name` is used when `name_index` is 0.
pub(crate) fn client_literal(kind: u8, name_index: usize, name: &[u8], value: &[u8], huffman: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode_integer(&mut out, kind, if kind == 0x40 { 6 } else { 4 }, name_index);
    for s in if name_index == 0 { vec![name, value] } else { vec![value] } {
        if huffman {
            let coded = super::huffman::tests::encode(s);
            encode_integer(&mut out, 0x80, 7, coded.len());
            out.extend_from_slice(&coded);
        } else {
            encode_string(&mut out, s);
        }
    }
    out
}

const LIMIT: usize = 4096;
const BIG: usize = 1 << 20;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn pairs(fields: &[Field]) -> Vec<(String, String)> {
    fields.iter().map(|f| (String::from_utf8_lossy(&f.name).into(), String::from_utf8_lossy(&f.value).into())).collect()
}

fn expect(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

#[test]
fn decodes_rfc7541_c4_requests_with_huffman_and_dynamic_table() {
    let mut d = Decoder::new(LIMIT);
    let first = d.decode(&hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"), BIG).expect("C.4.1");
    let base = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")];
    assert_eq!(pairs(&first), expect(&base));
    assert_eq!(d.size, 57);
    let second = d.decode(&hex("8286 84be 5886 a8eb 1064 9cbf"), BIG).expect("C.4.2");
    assert_eq!(pairs(&second), expect(&[base[0], base[1], base[2], base[3], ("cache-control", "no-cache")]));
    assert_eq!(d.size, 110);
    let third = d.decode(&hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"), BIG).expect("C.4.3");
    assert_eq!(
        pairs(&third),
        expect(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value")
        ])
    );
    assert_eq!(d.size, 164);
}

#[test]
fn size_updates_evict_and_are_bounded() {
    let mut d = Decoder::new(LIMIT);
    d.decode(&hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"), BIG).expect("C.4.1");
    // Size 0 empties the table, so index 62 is gone.
    assert_eq!(d.decode(&[0x20, 0x82], BIG).expect("update").len(), 1);
    assert_eq!(d.decode(&[0xbe], BIG), Err(HpackError::BadIndex(62)));
    let mut over = Vec::new();
    encode_integer(&mut over, 0x20, 5, LIMIT + 1);
    assert_eq!(Decoder::new(LIMIT).decode(&over, BIG), Err(HpackError::TableSizeTooLarge(LIMIT + 1)));
    assert_eq!(Decoder::new(LIMIT).decode(&[0x82, 0x20], BIG), Err(HpackError::LateSizeUpdate));
}

#[test]
fn entries_larger_than_the_table_empty_it() {
    let mut d = Decoder::new(64);
    // Literal with indexing, new name "a", value "b": 34 bytes, fits.
    d.decode(&[0x40, 1, b'a', 1, b'b'], BIG).expect("fits");
    assert_eq!(d.table.len(), 1);
    // 32 + 1 + 40 bytes does not: the table ends up empty.
    let mut big = vec![0x40, 1, b'c', 40];
    big.extend([b'x'; 40]);
    d.decode(&big, BIG).expect("decodes");
    assert_eq!((d.table.len(), d.size), (0, 0));
}

#[test]
fn rejects_malformed_blocks() {
    let mut d = Decoder::new(LIMIT);
    assert_eq!(d.decode(&[0x80], BIG), Err(HpackError::BadIndex(0)));
    assert_eq!(d.decode(&[0x41], BIG), Err(HpackError::Truncated));
    assert_eq!(d.decode(&[0x41, 0x7f], BIG), Err(HpackError::Truncated));
    assert_eq!(d.decode(&[0x41, 0x05, b'a'], BIG), Err(HpackError::Truncated));
    assert_eq!(d.decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], BIG), Err(HpackError::IntegerOverflow));
    assert_eq!(d.decode(&[0x82, 0x82], 2 * (7 + 3 + 32) - 1), Err(HpackError::ListTooLarge(83)));
}

#[test]
fn encoding_uses_no_dynamic_table() {
    let fields = vec![
        Field { name: b":method".to_vec(), value: b"POST".to_vec(), never_indexed: false },
        Field { name: b":authority".to_vec(), value: b"127.0.0.1:2379".to_vec(), never_indexed: false },
        Field { name: b"authorization".to_vec(), value: b"secret".to_vec(), never_indexed: true },
        Field { name: b":path".to_vec(), value: b"/".to_vec(), never_indexed: true },
        Field { name: b"x-custom".to_vec(), value: vec![b'v'; 300], never_indexed: false },
    ];
    let mut block = Vec::new();
    encode(&fields, &mut block);
    assert_eq!(&block[..2], &[0x83, 0x01]);
    let mut d = Decoder::new(LIMIT);
    assert_eq!(d.decode(&block, BIG).expect("decodes"), fields);
    assert!(d.table.is_empty());
}

fn field() -> impl Strategy<Value = Field> {
    let name = prop_oneof![
        proptest::sample::select(STATIC_TABLE.map(|(n, _)| n).to_vec()).prop_map(|n| n.as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    let value = prop_oneof![Just(b"GET".to_vec()), Just(Vec::new()), proptest::collection::vec(any::<u8>(), 0..200)];
    (name, value, any::<bool>()).prop_map(|(name, value, never_indexed)| Field { name, value, never_indexed })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(fields in proptest::collection::vec(field(), 0..20)) {
        let mut block = Vec::new();
        encode(&fields, &mut block);
        let mut d = Decoder::new(LIMIT);
        prop_assert_eq!(d.decode(&block, BIG).expect("own output decodes"), fields);
        prop_assert!(d.table.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(blocks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..4)) {
        let mut d = Decoder::new(LIMIT);
        for block in blocks {
            let _ = d.decode(&block, 4096);
            prop_assert!(d.size <= d.max_size);
        }
    }
}
