//! RTMP ingest: encoders (OBS, ffmpeg) push `rtmp://HOST/live/ROOM` and
//! appear in the room as a participant.
//!
//! - `rtmp`: the listener and one task per connection (the RTMP protocol
//!   itself is the sans-IO `shiguredo_rtmp` crate);
//! - `session`: a publisher's media, sans-IO: H.264 passes through
//!   (`h264`: RFC 6184 packetization; `flv`: the AVC and AAC configuration
//!   records), AAC-LC is transcoded to Opus (`audio`), both timed from the
//!   RTMP clock, with sender reports on one NTP base;
//! - `offer`: the SDP offer the server makes for the stream, so it joins
//!   like any publisher, on a direct transport
//!   (`sfu_core::transport::DirectTransport`) that takes its packets from
//!   here instead of a socket.

pub mod audio;
pub mod flv;
pub mod h264;
pub mod offer;
pub mod rtmp;
pub mod session;
