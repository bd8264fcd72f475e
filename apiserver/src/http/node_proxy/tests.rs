use http_body_util::BodyExt;
use tokio::io::{duplex, AsyncWriteExt, BufReader};

use super::*;

async fn relayed(raw: &'static [u8]) -> (u16, String, String) {
    let (mut agent, proxy) = duplex(1024);
    tokio::spawn(async move { agent.write_all(raw).await });
    let mut reader = BufReader::new(proxy);
    let head = read_head(&mut reader).await.expect("a head");
    let response = relay(head, reader).await.unwrap();
    let code = response.status().as_u16();
    let ctype = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_string();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (code, ctype, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn chunked_success_bodies_are_decoded_and_streamed() {
    let raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n\
                4\r\none\n\r\n6;x=y\r\ntwo\nth\r\n5\r\nree\n!\r\n0\r\n\r\n";
    assert_eq!(relayed(raw).await, (200, "text/plain".into(), "one\ntwo\nthree\n!".into()));
}

#[tokio::test]
async fn error_answers_are_relayed_as_they_are() {
    let raw =
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"code\":404,\"x\":1}";
    assert_eq!(relayed(raw).await, (404, "application/json".into(), "{\"code\":404,\"x\":1".into()));
}

#[tokio::test]
async fn a_body_without_framing_runs_until_close() {
    let raw = b"HTTP/1.0 200 OK\r\n\r\nall of it";
    assert_eq!(relayed(raw).await.2, "all of it");
}

#[tokio::test]
async fn a_head_that_is_too_large_or_cut_is_refused() {
    let (mut agent, proxy) = duplex(1024);
    tokio::spawn(async move { agent.write_all(b"HTTP/1.1 200 OK\r\nx: y\r\n").await });
    assert_eq!(read_head(&mut BufReader::new(proxy)).await, None);
    let (mut agent, proxy) = duplex(64 * 1024);
    tokio::spawn(async move { agent.write_all(&[b'a'; MAX_HEAD_BYTES + 10]).await });
    assert_eq!(read_head(&mut BufReader::new(proxy)).await, None);
}

#[tokio::test]
async fn splice_copies_both_ways_until_a_side_closes() {
    let (mut client, client_side) = duplex(1024);
    let (agent_side, mut agent) = duplex(1024);
    let task = tokio::spawn(splice(client_side, agent_side));
    client.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    agent.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    agent.write_all(b"pong").await.unwrap();
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
    drop(client);
    drop(agent);
    task.await.unwrap();
}
