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
    let video = tracks.video.as_ref().map(|profile| DirectVideo {
        pt: VIDEO_PT,
        codec: "H264",
        fmtp: Some(format!(
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}"
        )),
    });
    direct_offer(
        video.as_ref(),
        tracks.audio,
        (video_ssrc, audio_ssrc),
        "rtmp",
    )
}

/// A direct publisher's video m-section: payload type, `a=rtpmap` codec
/// name (90 kHz) and `a=fmtp`.
#[derive(Debug, Clone)]
pub struct DirectVideo {
    /// The payload type.
    pub pt: u8,
    /// `VP8`, `VP9`, `H264`.
    pub codec: &'static str,
    /// Its `a=fmtp` parameters.
    pub fmtp: Option<String>,
}

/// The offer of a publisher on a direct transport (an ingest, a file
/// played back): `video` if any, Opus audio if `audio`, with the SSRCs
/// `(video, audio)`, `label` as the session name and CNAME.
pub fn direct_offer(
    video: Option<&DirectVideo>,
    audio: bool,
    (video_ssrc, audio_ssrc): (u32, u32),
    label: &str,
) -> String {
    let mut mids = Vec::new();
    let mut media = String::new();
    if let Some(v) = video {
        let mid = mids.len();
        mids.push(mid.to_string());
        let pt = v.pt;
        let _ = write!(
            media,
            "m=video 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=sendonly\r\na=rtcp-mux\r\n\
             a=rtpmap:{pt} {}/90000\r\n",
            v.codec
        );
        if let Some(f) = &v.fmtp {
            let _ = write!(media, "a=fmtp:{pt} {f}\r\n");
        }
        let _ = write!(media, "a=ssrc:{video_ssrc} cname:{label}\r\n");
    }
    if audio {
        let mid = mids.len();
        mids.push(mid.to_string());
        let _ = write!(
            media,
            "m=audio 9 UDP/TLS/RTP/SAVPF {AUDIO_PT}\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=sendonly\r\na=rtcp-mux\r\n\
             a=rtpmap:{AUDIO_PT} opus/48000/2\r\na=fmtp:{AUDIO_PT} minptime=10;useinbandfec=1\r\n\
             a=ssrc:{audio_ssrc} cname:{label}\r\n"
        );
    }
    let fingerprint = vec!["00"; 32].join(":");
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns={label}\r\nt=0 0\r\na=group:BUNDLE {}\r\n\
         a=ice-ufrag:{label}\r\na=ice-pwd:directdirectdirectdirect\r\n\
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
