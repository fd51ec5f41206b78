//! Sans-IO protocol layers: no sockets, no clocks.
//!
//! Each parser returns "no packet" (`None`/`Err`) on bad input and never
//! panics; the caller counts and drops.

pub mod codec;
pub mod dcep;
pub mod demux;
pub mod dtls;
pub mod framing;
pub mod rtcp;
pub mod rtp;
pub mod sctp;
pub mod srtp;
pub mod stun;
pub mod twcc;
