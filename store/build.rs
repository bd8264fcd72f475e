//! Compiles the replica-to-replica protocol (`proto/peer.proto`) into a tonic client and server.

fn main() -> std::io::Result<()> {
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["proto/peer.proto"], &["proto"])
}
