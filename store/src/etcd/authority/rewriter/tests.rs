use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::etcd::authority::AuthorityFix;
use crate::etcd::hpack::tests::client_literal;
use crate::etcd::hpack::{Decoder, Field};

const SETTINGS: u8 = 0x4;
const DATA: u8 = 0x0;
const WINDOW_UPDATE: u8 = 0x8;

const PATH: &[u8] = b"/etcdserverpb.Maintenance/Status";
const URL: &[u8] = b"http://127.0.0.1:2379";
const HOST: &[u8] = b"127.0.0.1:2379";

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn connection(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frames.concat());
    out
}

/// Runs `input` through a fresh rewriter, `chunk` bytes at a time.
fn run(input: &[u8], chunk: usize) -> Vec<u8> {
    let mut r = Rewriter::default();
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        r.feed(piece, &mut out);
    }
    r.finish(&mut out);
    out
}

#[derive(Debug, PartialEq)]
struct Frame {
    kind: u8,
    flags: u8,
    stream_id: u32,
    payload: Vec<u8>,
}

fn frames(out: &[u8]) -> Vec<Frame> {
    assert_eq!(&out[..PREFACE.len()], PREFACE);
    let mut rest = &out[PREFACE.len()..];
    let mut frames = Vec::new();
    while let Some(h) = FrameHeader::parse(rest) {
        let end = FRAME_HEADER_BYTES + h.len;
        frames.push(Frame {
            kind: h.kind,
            flags: h.flags,
            stream_id: h.stream_id,
            payload: rest[FRAME_HEADER_BYTES..end].to_vec(),
        });
        rest = &rest[end..];
    }
    assert!(rest.is_empty(), "trailing bytes");
    frames
}

/// Decodes a HEADERS frame's block (its CONTINUATIONs following) with a fresh decoder: only
/// a block that needs no dynamic table decodes this way.
fn standalone_block(frames: &[Frame], at: usize) -> Vec<Field> {
    let first = &frames[at];
    assert_eq!(first.kind, HEADERS);
    assert_eq!(first.flags & PADDED, 0);
    let skip = if first.flags & PRIORITY != 0 { PRIORITY_BYTES } else { 0 };
    let mut block = first.payload[skip..].to_vec();
    let mut i = at;
    while frames[i].flags & END_HEADERS == 0 {
        i += 1;
        assert_eq!((frames[i].kind, frames[i].stream_id), (CONTINUATION, first.stream_id));
        block.extend_from_slice(&frames[i].payload);
    }
    Decoder::new(SERVER_HEADER_TABLE_SIZE).decode(&block, usize::MAX).expect("re-encoded block decodes alone")
}

fn field(name: &[u8], value: &[u8]) -> Field {
    Field { name: name.to_vec(), value: value.to_vec(), never_indexed: false }
}

/// :method POST, :scheme http, as grpc-go sends them (indexed static entries).
const POST_HTTP: [u8; 2] = [0x83, 0x86];

#[test]
fn strips_the_scheme_from_authority_and_changes_nothing_else() {
    let mut block = POST_HTTP.to_vec();
    block.extend(client_literal(0x00, 4, b"", PATH, false));
    block.extend(client_literal(0x00, 1, b"", URL, false));
    block.extend(client_literal(0x00, 31, b"", b"application/grpc", false));
    block.extend(client_literal(0x10, 0, b"te", b"trailers", false));
    let settings = frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]);
    let data = frame(DATA, END_STREAM, 1, b"\0\0\0\0\x05hello");
    let window = frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0x10, 0]);
    let input = connection(&[settings.clone(), frame(HEADERS, END_HEADERS, 1, &block), data.clone(), window.clone()]);
    for chunk in [1, 7, 100, input.len()] {
        let out = frames(&run(&input, chunk));
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].payload, settings[FRAME_HEADER_BYTES..]);
        assert_eq!((out[1].kind, out[1].flags, out[1].stream_id), (HEADERS, END_HEADERS, 1));
        let mut te = field(b"te", b"trailers");
        te.never_indexed = true;
        assert_eq!(
            standalone_block(&out, 1),
            vec![
                field(b":method", b"POST"),
                field(b":scheme", b"http"),
                field(b":path", PATH),
                field(b":authority", HOST),
                field(b"content-type", b"application/grpc"),
                te,
            ]
        );
        assert_eq!(
            out[2],
            Frame { kind: DATA, flags: END_STREAM, stream_id: 1, payload: data[FRAME_HEADER_BYTES..].to_vec() }
        );
        assert_eq!(out[3].payload, window[FRAME_HEADER_BYTES..]);
    }
}

#[test]
fn follows_huffman_and_the_dynamic_table_across_blocks() {
    // The first block indexes :path, :authority and user-agent; the second refers to them
    // (62 = user-agent, 63 = :authority, 64 = :path) after a no-op table size update.
    let mut first = POST_HTTP.to_vec();
    first.extend(client_literal(0x40, 4, b"", PATH, true));
    first.extend(client_literal(0x40, 1, b"", URL, true));
    first.extend(client_literal(0x40, 0, b"user-agent", b"grpc-go/1.26.0", true));
    let mut second = vec![0x3f, 0xe1, 0x1f];
    second.extend(POST_HTTP);
    second.extend([0xc0, 0xbf, 0xbe]);
    let input =
        connection(&[frame(HEADERS, END_HEADERS, 1, &first), frame(HEADERS, END_HEADERS | END_STREAM, 3, &second)]);
    let out = frames(&run(&input, 5));
    let post = [field(b":method", b"POST"), field(b":scheme", b"http")];
    let expected = |rest: Vec<Field>| [post.to_vec(), rest].concat();
    assert_eq!(
        standalone_block(&out, 0),
        expected(vec![field(b":path", PATH), field(b":authority", HOST), field(b"user-agent", b"grpc-go/1.26.0")])
    );
    assert_eq!(
        standalone_block(&out, 1),
        expected(vec![field(b":path", PATH), field(b":authority", HOST), field(b"user-agent", b"grpc-go/1.26.0")])
    );
    assert_eq!((out[1].stream_id, out[1].flags), (3, END_HEADERS | END_STREAM));
}

#[test]
fn splits_blocks_larger_than_a_frame_into_continuations() {
    let big = vec![b'x'; 20_000];
    let mut block = POST_HTTP.to_vec();
    block.extend(client_literal(0x00, 1, b"", b"https://example.com:2379/", false));
    block.extend(client_literal(0x10, 0, b"x-big", &big, true));
    // The client's own split: HEADERS, then two CONTINUATIONs.
    let (a, rest) = block.split_at(10);
    let (b, c) = rest.split_at(9_000);
    let input = connection(&[
        frame(HEADERS, END_STREAM, 5, a),
        frame(CONTINUATION, 0, 5, b),
        frame(CONTINUATION, END_HEADERS, 5, c),
        frame(DATA, END_STREAM, 7, b""),
    ]);
    let out = frames(&run(&input, 4096));
    assert_eq!(out.len(), 3);
    assert_eq!((out[0].kind, out[0].flags, out[0].payload.len()), (HEADERS, END_STREAM, MAX_FRAME_PAYLOAD));
    assert_eq!((out[1].kind, out[1].flags, out[1].stream_id), (CONTINUATION, END_HEADERS, 5));
    let mut big_field = field(b"x-big", &big);
    big_field.never_indexed = true;
    let post = [field(b":method", b"POST"), field(b":scheme", b"http")];
    assert_eq!(
        standalone_block(&out, 0),
        [post.to_vec(), vec![field(b":authority", b"example.com:2379"), big_field]].concat()
    );
    assert_eq!(out[2].kind, DATA);
}

#[test]
fn drops_padding_and_keeps_priority() {
    let mut block = POST_HTTP.to_vec();
    block.extend(client_literal(0x00, 1, b"", URL, false));
    let priority = [0x80, 0, 0, 1, 15];
    let mut payload = vec![7];
    payload.extend(priority);
    payload.extend(&block);
    payload.extend([0; 7]);
    let input = connection(&[frame(HEADERS, PADDED | PRIORITY | END_HEADERS | END_STREAM, 1, &payload)]);
    let out = frames(&run(&input, 3));
    assert_eq!(out[0].flags, PRIORITY | END_HEADERS | END_STREAM);
    assert_eq!(out[0].payload[..PRIORITY_BYTES], priority);
    let fields = standalone_block(&out, 0);
    assert_eq!(fields[2], field(b":authority", HOST));
}

#[test]
fn forwards_what_it_does_not_understand_unchanged() {
    let ok_block = [POST_HTTP.to_vec(), client_literal(0x00, 1, b"", URL, false)].concat();
    let long = vec![b'y'; MAX_FRAME_PAYLOAD - 100];
    let oversized: Vec<Vec<u8>> = std::iter::once(frame(HEADERS, 0, 1, &POST_HTTP))
        .chain((0..5).map(|_| frame(CONTINUATION, 0, 1, &long)))
        .collect();
    let cases = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        PREFACE[..10].to_vec(),
        connection(&[frame(HEADERS, END_HEADERS, 1, &[0x80]), frame(DATA, 0, 1, b"x")]),
        connection(&[frame(HEADERS, END_HEADERS, 1, &[0x82, 0x20])]),
        connection(&[frame(HEADERS, 0, 1, &ok_block), frame(DATA, 0, 1, b"x")]),
        connection(&[frame(CONTINUATION, END_HEADERS, 1, &ok_block)]),
        connection(&[frame(HEADERS, END_HEADERS, 0, &ok_block)]),
        connection(&[frame(HEADERS, PADDED | END_HEADERS, 1, &[200, 0x82])]),
        connection(&[frame(PUSH_PROMISE, END_HEADERS, 1, &[0, 0, 0, 2, 0x82])]),
        connection(&[frame(HEADERS, 0, 1, &ok_block), frame(CONTINUATION, END_HEADERS, 3, &[0x82])]),
        connection(&oversized),
        connection(&[frame(HEADERS, END_HEADERS, 1, &ok_block)])[..PREFACE.len() + 12].to_vec(),
    ];
    for (i, input) in cases.iter().enumerate() {
        assert_eq!(run(input, 1), *input, "case {i}");
        assert_eq!(run(input, input.len()), *input, "case {i}");
    }
}

#[test]
fn gives_up_after_rewriting_and_forwards_the_rest() {
    let block = [POST_HTTP.to_vec(), client_literal(0x00, 1, b"", URL, false)].concat();
    let bad = frame(HEADERS, END_HEADERS, 3, &[0xff, 0x7f]);
    let data = frame(DATA, 0, 3, b"after");
    let out = run(&connection(&[frame(HEADERS, END_HEADERS, 1, &block), bad.clone(), data.clone()]), 2);
    let tail = [bad, data].concat();
    assert!(out.ends_with(&tail));
    let rewritten = frames(&out[..out.len() - tail.len()]);
    assert_eq!(standalone_block(&rewritten, 0)[2], field(b":authority", HOST));
}

#[tokio::test]
async fn the_wrapper_rewrites_reads_and_passes_writes() {
    let block = [POST_HTTP.to_vec(), client_literal(0x00, 1, b"", URL, true)].concat();
    let input = connection(&[frame(HEADERS, END_HEADERS, 1, &block), frame(DATA, END_STREAM, 1, &[7; 40_000])]);
    let (mut client, server) = tokio::io::duplex(1024);
    let mut server = AuthorityFix::new(server);
    let sent = input.clone();
    let writer = tokio::spawn(async move {
        client.write_all(&sent).await.expect("write");
        client.shutdown().await.expect("shutdown");
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.expect("read reply");
        reply
    });
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, run(&input, input.len()));
    server.write_all(b"settings and such").await.expect("write");
    server.shutdown().await.expect("shutdown");
    drop(server);
    assert_eq!(writer.await.expect("join"), b"settings and such");
}

proptest! {
    /// However the bytes arrive, the output is the same, and nothing panics.
    #[test]
    fn output_does_not_depend_on_how_input_is_split(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        chunk in 1usize..50,
        with_preface in any::<bool>(),
    ) {
        let input = if with_preface { [PREFACE, &body].concat() } else { body };
        prop_assert_eq!(run(&input, chunk), run(&input, input.len().max(1)));
    }

    /// Frames built from random pieces (header frames included) never panic the rewriter,
    /// and any split gives the same output.
    #[test]
    fn random_frames_are_handled(
        parts in proptest::collection::vec(
            (prop_oneof![Just(HEADERS), Just(CONTINUATION), Just(DATA), any::<u8>()], any::<u8>(), 0u32..4, proptest::collection::vec(any::<u8>(), 0..60)),
            0..8,
        ),
        chunk in 1usize..30,
    ) {
        let input = connection(&parts.iter().map(|(k, f, s, p)| frame(*k, *f, *s, p)).collect::<Vec<_>>());
        prop_assert_eq!(run(&input, chunk), run(&input, input.len()));
    }
}
