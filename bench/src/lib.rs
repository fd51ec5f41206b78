//! Benchmarks and the `sfu-load` load generator of sfu.
//!
//! The criterion benches live in `benches/`; [`load`] is the generator: a
//! real WebRTC client (signaling over the server's WebSocket, SDP, ICE, DTLS
//! client, SRTP) built from `sfu-core`'s client-role protocol code.

// The server's code handles what it can fail on; tests (integration tests
// are crates of their own, unit tests are allowed by clippy.toml) expect.
#![warn(clippy::expect_used)]

pub mod load;
