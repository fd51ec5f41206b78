//! The SDP offer an ingest joins its room with, made by the server from the
//! stream: one `sendonly` m-section per track (H.264 with the stream's
//! `profile-level-id`, Opus), each with its SSRC. It goes through the same
//! parsing, validation and publishing as a browser's; only its transport
//! differs (a direct one: the ICE and DTLS attributes are placeholders no
//! one checks).

use std::fmt::Write;

use super::session::{AUDIO_PT, Tracks, VIDEO_PT};

/// The offer for `tracks`, with `video_ssrc` and `audio_ssrc`.
pub fn offer(tracks: &Tracks, video_ssrc: u32, audio_ssrc: u32) -> String {
    let mut mids = Vec::new();
    let mut media = String::new();
    if let Some(profile) = &tracks.video {
        let mid = mids.len();
        mids.push(mid.to_string());
        let _ = write!(
            media,
            "m=video 9 UDP/TLS/RTP/SAVPF {VIDEO_PT}\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=sendonly\r\na=rtcp-mux\r\n\
             a=rtpmap:{VIDEO_PT} H264/90000\r\n\
             a=fmtp:{VIDEO_PT} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}\r\n\
             a=ssrc:{video_ssrc} cname:rtmp\r\n"
        );
    }
    if tracks.audio {
        let mid = mids.len();
        mids.push(mid.to_string());
        let _ = write!(
            media,
            "m=audio 9 UDP/TLS/RTP/SAVPF {AUDIO_PT}\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=sendonly\r\na=rtcp-mux\r\n\
             a=rtpmap:{AUDIO_PT} opus/48000/2\r\na=fmtp:{AUDIO_PT} minptime=10;useinbandfec=1\r\n\
             a=ssrc:{audio_ssrc} cname:rtmp\r\n"
        );
    }
    let fingerprint = vec!["00"; 32].join(":");
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=rtmp\r\nt=0 0\r\na=group:BUNDLE {}\r\n\
         a=ice-ufrag:rtmp\r\na=ice-pwd:rtmpingestrtmpingestrtmp\r\n\
         a=fingerprint:sha-256 {fingerprint}\r\na=setup:actpass\r\n{media}",
        mids.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offer_parses_and_publishes_each_track() {
        let tracks = Tracks {
            video: Some("64001f".into()),
            audio: true,
        };
        let sdp = offer(&tracks, 11, 22);
        let parsed = crate::sdp::parse(&sdp).expect("parses");
        crate::sdp::validate_offer(&parsed).expect("valid");
        assert_eq!(parsed.media.len(), 2);
        assert!(parsed.media.iter().all(|m| m.publishes()));
        assert_eq!(parsed.media[0].ssrc, Some(11));
        let audio_only = offer(
            &Tracks {
                video: None,
                audio: true,
            },
            1,
            2,
        );
        assert_eq!(
            crate::sdp::parse(&audio_only).expect("parses").media.len(),
            1
        );
    }
}
