//! AAC-LC in, Opus out: RTMP encoders send AAC, browsers play Opus. Each
//! AAC frame (1,024 samples) is decoded (symphonia's AAC decoder),
//! resampled to 48 kHz when it is not (rubato's FFT resampler, e.g. from
//! 44.1 kHz), and cut into 20 ms frames of 960 samples for libopus
//! (RFC 7587: the Opus RTP clock is 48 kHz whatever the audio's rate).
//! Output is always stereo (mono is sent on both channels).

use opus::{Application, Bitrate, Channels, Encoder};
use rubato::{FftFixedIn, Resampler};
use symphonia_codec_aac::AacDecoder;
use symphonia_core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia_core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia_core::packet::PacketRef;
use symphonia_core::units::{Duration, Timestamp};

use super::flv::{AOT_AAC_LC, AacConfig};

/// Samples per Opus frame at 48 kHz: 20 ms.
pub const OPUS_FRAME: usize = 960;
/// The Opus bitrate, bit/s (stereo music and speech).
const OPUS_BITRATE: i32 = 96_000;
/// Samples in one AAC-LC frame.
const AAC_FRAME: usize = 1024;

/// Why audio cannot be transcoded.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// Not AAC-LC (HE-AAC, more than two channels, …).
    #[error("{0}")]
    Unsupported(String),
    /// A frame the decoder could not read.
    #[error("AAC frame not decodable: {0}")]
    Decode(String),
    /// libopus refused.
    #[error("Opus encoder: {0}")]
    Opus(#[from] opus::Error),
}

/// One stream's AAC-LC to Opus transcoder.
pub struct AacToOpus {
    decoder: AacDecoder,
    resampler: Option<FftFixedIn<f32>>,
    encoder: Encoder,
    channels: usize,
    planar: Vec<Vec<f32>>,
    /// Interleaved stereo at 48 kHz, not yet encoded.
    fifo: Vec<f32>,
    packet: Vec<u8>,
}

impl std::fmt::Debug for AacToOpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacToOpus")
            .field("channels", &self.channels)
            .field("resampling", &self.resampler.is_some())
            .finish_non_exhaustive()
    }
}

impl AacToOpus {
    /// A transcoder for the stream whose AudioSpecificConfig is `asc`.
    ///
    /// Errors: [`AudioError::Unsupported`] for anything but AAC-LC with one
    /// or two channels (the message names the encoder setting to change).
    pub fn new(asc: &[u8]) -> Result<Self, AudioError> {
        let cfg = AacConfig::parse(asc).map_err(|e| AudioError::Unsupported(e.to_string()))?;
        if cfg.object_type != AOT_AAC_LC {
            return Err(AudioError::Unsupported(format!(
                "the audio is AAC object type {} ({}), not AAC-LC: set the encoder's AAC profile to LC \
                 (ffmpeg: -c:a aac -profile:a aac_low; OBS: the default AAC encoder)",
                cfg.object_type,
                if matches!(cfg.object_type, 5 | 29) {
                    "HE-AAC"
                } else {
                    "not LC"
                }
            )));
        }
        if !matches!(cfg.channels, 1 | 2) {
            return Err(AudioError::Unsupported(format!(
                "the AAC audio has channel configuration {}: send mono or stereo (ffmpeg: -ac 2)",
                cfg.channels
            )));
        }
        let mut params = AudioCodecParameters::new();
        params
            .for_codec(CODEC_ID_AAC)
            .with_extra_data(asc.to_vec().into_boxed_slice());
        let decoder = AacDecoder::try_new(&params, &AudioDecoderOptions::default())
            .map_err(|e| AudioError::Unsupported(format!("AAC: {e}")))?;
        let channels = usize::from(cfg.channels);
        let resampler = if cfg.sample_rate == 48_000 {
            None
        } else {
            Some(
                FftFixedIn::new(cfg.sample_rate as usize, 48_000, AAC_FRAME, 2, channels).map_err(
                    |e| {
                        AudioError::Unsupported(format!(
                            "resampling from {} Hz: {e}",
                            cfg.sample_rate
                        ))
                    },
                )?,
            )
        };
        let mut encoder = Encoder::new(48_000, Channels::Stereo, Application::Audio)?;
        encoder.set_bitrate(Bitrate::Bits(OPUS_BITRATE))?;
        Ok(Self {
            decoder,
            resampler,
            encoder,
            channels,
            planar: Vec::new(),
            fifo: Vec::with_capacity(4 * OPUS_FRAME),
            packet: vec![0; 1500],
        })
    }

    /// Transcodes one raw AAC frame; returns the Opus packets (20 ms each)
    /// completed by it, in order (none, one or two).
    ///
    /// Errors: [`AudioError::Decode`] for a frame the decoder refuses (the
    /// stream goes on with the next), [`AudioError::Opus`].
    pub fn push(&mut self, aac: &[u8]) -> Result<Vec<Vec<u8>>, AudioError> {
        let packet = PacketRef::new(0, Timestamp::new(0), Duration::new(AAC_FRAME as u64), aac);
        let decoded = self
            .decoder
            .decode_ref(&packet)
            .map_err(|e| AudioError::Decode(e.to_string()))?;
        decoded.copy_to_vecs_planar::<f32>(&mut self.planar);
        if self.planar.len() != self.channels || self.planar[0].len() != AAC_FRAME {
            return Err(AudioError::Decode(format!(
                "{} channels of {} samples, expected {} of {AAC_FRAME}",
                self.planar.len(),
                self.planar.first().map_or(0, Vec::len),
                self.channels
            )));
        }
        let resampled;
        let pcm: &[Vec<f32>] = match &mut self.resampler {
            Some(r) => {
                resampled = r
                    .process(&self.planar, None)
                    .map_err(|e| AudioError::Decode(format!("resampling: {e}")))?;
                &resampled
            }
            None => &self.planar,
        };
        let (left, right) = (&pcm[0], pcm.get(1).unwrap_or(&pcm[0]));
        for (l, r) in left.iter().zip(right) {
            self.fifo.push(*l);
            self.fifo.push(*r);
        }
        let mut out = Vec::new();
        while self.fifo.len() >= 2 * OPUS_FRAME {
            let n = self
                .encoder
                .encode_float(&self.fifo[..2 * OPUS_FRAME], &mut self.packet)?;
            out.push(self.packet[..n].to_vec());
            self.fifo.drain(..2 * OPUS_FRAME);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The raw AAC frames of an ADTS file, and the AudioSpecificConfig its
    /// headers describe (ISO/IEC 14496-3 §1.A.3.2; no CRC in these).
    fn adts(b: &[u8]) -> (Vec<u8>, Vec<&[u8]>) {
        let mut frames = Vec::new();
        let mut asc = Vec::new();
        let mut at = 0;
        while at + 7 <= b.len() {
            let h = &b[at..at + 7];
            assert_eq!((h[0], h[1] & 0xf6), (0xff, 0xf0), "ADTS sync, no CRC");
            let len =
                (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
            if asc.is_empty() {
                let object = (h[2] >> 6) + 1;
                let index = (h[2] >> 2) & 0x0f;
                let channels = ((h[2] & 1) << 2) | (h[3] >> 6);
                asc = vec![
                    (object << 3) | (index >> 1),
                    ((index & 1) << 7) | (channels << 3),
                ];
            }
            frames.push(&b[at + 7..at + len]);
            at += len;
        }
        (asc, frames)
    }

    fn transcode(file: &[u8]) -> Vec<Vec<u8>> {
        let (asc, frames) = adts(file);
        let mut t = AacToOpus::new(&asc).expect("AAC-LC");
        frames
            .iter()
            .flat_map(|f| t.push(f).expect("decodes"))
            .collect()
    }

    /// Decoding `packets` with libopus, after the first 100 ms: the RMS
    /// level and the left channel's zero crossings per second.
    fn heard(packets: &[Vec<u8>]) -> (f32, f32) {
        let mut d = opus::Decoder::new(48_000, Channels::Stereo).expect("decoder");
        let mut pcm = Vec::new();
        let mut frame = vec![0f32; 2 * OPUS_FRAME];
        for p in packets {
            let n = d.decode_float(p, &mut frame, false).expect("decodes");
            assert_eq!(n, OPUS_FRAME, "20 ms frames");
            pcm.extend_from_slice(&frame[..2 * n]);
        }
        let tail = &pcm[(pcm.len() / 5).min(9600)..];
        let rms = (tail.iter().map(|x| x * x).sum::<f32>() / tail.len() as f32).sqrt();
        let left: Vec<f32> = tail.iter().step_by(2).copied().collect();
        let crossings = left
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        (rms, crossings as f32 / (left.len() as f32 / 48_000.0))
    }

    /// A 440 Hz tone at ffmpeg's sine amplitude (1/8: RMS 0.088).
    fn assert_tone(packets: &[Vec<u8>]) {
        let (rms, crossings) = heard(packets);
        assert!(rms > 0.05, "the tone is there: rms {rms}");
        assert!(
            (840.0..920.0).contains(&crossings),
            "880 zero crossings/s for 440 Hz: {crossings}"
        );
    }

    #[test]
    fn aac_at_44_1_khz_stereo_becomes_20_ms_opus_frames_of_the_same_tone() {
        let packets = transcode(include_bytes!(
            "../../../testdata/aac/sine-440hz-44100-stereo.adts"
        ));
        // 0.5 s of 44.1 kHz is 22 AAC frames of 1,024 samples: 0.51 s of
        // 48 kHz, 25 Opus frames (the resampler's delay may hold one).
        assert!(
            (24..=26).contains(&packets.len()),
            "{} packets",
            packets.len()
        );
        assert_tone(&packets);
    }

    #[test]
    fn aac_at_48_khz_mono_is_not_resampled_and_plays_on_both_channels() {
        let packets = transcode(include_bytes!(
            "../../../testdata/aac/sine-440hz-48000-mono.adts"
        ));
        assert!(
            (23..=26).contains(&packets.len()),
            "{} packets",
            packets.len()
        );
        assert_tone(&packets);
    }

    #[test]
    fn he_aac_and_garbage_are_refused_with_the_setting_to_change() {
        let he = AacToOpus::new(&[0x2b, 0x10]).expect_err("HE-AAC");
        assert!(he.to_string().contains("aac_low"), "{he}");
        assert!(AacToOpus::new(&[0x12]).is_err());
        let (asc, _) = adts(include_bytes!(
            "../../../testdata/aac/sine-440hz-44100-stereo.adts"
        ));
        let mut t = AacToOpus::new(&asc).expect("AAC-LC");
        // Garbage and cut frames: refused or decoded, never a panic, and
        // good frames decode after them.
        let (_, frames) = adts(include_bytes!(
            "../../../testdata/aac/sine-440hz-44100-stereo.adts"
        ));
        for bad in [
            &[0xffu8; 40][..],
            &[],
            &frames[5][..frames[5].len() / 2],
            &[0x80; 3],
        ] {
            let _ = t.push(bad);
        }
        for f in &frames[6..10] {
            assert!(t.push(f).is_ok());
        }
    }
}
