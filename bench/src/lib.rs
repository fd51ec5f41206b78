//! Benchmarks and the `sfu-load` load generator of sfu.
//!
//! The criterion benches live in `benches/`; [`load`] is the generator: a
//! real WebRTC client (signaling over the server's WebSocket, SDP, ICE, DTLS
//! client, SRTP) built from `sfu-core`'s client-role protocol code.

pub mod load;
