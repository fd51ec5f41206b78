//! What RTMP's FLV payloads carry for H.264 and AAC, parsed without
//! trusting a byte: the AVC decoder configuration record (ISO/IEC
//! 14496-15 §5.3.3.1: SPS, PPS and the NAL length size), length-prefixed
//! (AVCC) NAL units, and the AAC AudioSpecificConfig (ISO/IEC 14496-3
//! §1.6.2.1). The FLV tag headers themselves are the RTMP crate's.

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// Shorter than its fields say, or a field out of range.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// The decoder configuration an H.264 stream starts with (the AVC sequence
/// header).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AvcConfig {
    /// Bytes in each NAL unit's length prefix: 1, 2 or 4.
    pub length_size: usize,
    /// Sequence parameter sets (NAL units, header byte first).
    pub sps: Vec<Vec<u8>>,
    /// Picture parameter sets.
    pub pps: Vec<Vec<u8>>,
}

/// Most parameter sets of either kind taken from one record.
const MAX_PARAMETER_SETS: usize = 32;

impl AvcConfig {
    /// Parses an AVCDecoderConfigurationRecord.
    ///
    /// Errors: [`FlvError::Malformed`] when it is short, not version 1, or
    /// a parameter set overruns it.
    pub fn parse(b: &[u8]) -> Result<Self, FlvError> {
        let bad = || FlvError::Malformed("AVC decoder configuration record");
        if b.len() < 7 || b[0] != 1 {
            return Err(bad());
        }
        let length_size = usize::from(b[4] & 0x03) + 1;
        if length_size == 3 {
            return Err(bad());
        }
        let mut at = 5;
        let sets = |count: usize, at: &mut usize| -> Result<Vec<Vec<u8>>, FlvError> {
            let mut out = Vec::new();
            for _ in 0..count.min(MAX_PARAMETER_SETS) {
                let len = b.get(*at..*at + 2).ok_or_else(bad)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let set = b.get(*at + 2..*at + 2 + len).ok_or_else(bad)?;
                if set.is_empty() {
                    return Err(bad());
                }
                out.push(set.to_vec());
                *at += 2 + len;
            }
            Ok(out)
        };
        let n_sps = usize::from(b[5] & 0x1f);
        at += 1;
        let sps = sets(n_sps, &mut at)?;
        let n_pps = usize::from(*b.get(at).ok_or_else(bad)?);
        at += 1;
        let pps = sets(n_pps, &mut at)?;
        if sps.is_empty() || pps.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            length_size,
            sps,
            pps,
        })
    }
}

/// The NAL units of one AVCC access unit (each prefixed with its length in
/// `length_size` bytes).
///
/// Errors: [`FlvError::Malformed`] when a length overruns the payload or a
/// NAL unit is empty.
pub fn avcc_nal_units(b: &[u8], length_size: usize) -> Result<Vec<&[u8]>, FlvError> {
    let bad = || FlvError::Malformed("AVCC NAL unit lengths");
    if !matches!(length_size, 1 | 2 | 4) {
        return Err(bad());
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let len = b.get(at..at + length_size).ok_or_else(bad)?;
        let len = len.iter().fold(0usize, |n, x| (n << 8) | usize::from(*x));
        at += length_size;
        let nal = b
            .get(at..at.checked_add(len).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        if nal.is_empty() {
            return Err(bad());
        }
        out.push(nal);
        at += len;
    }
    Ok(out)
}

/// MPEG-4 audio object types that matter here (ISO/IEC 14496-3 Table 1.17).
pub const AOT_AAC_LC: u8 = 2;

/// The AAC AudioSpecificConfig of an AAC sequence header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// Audio object type: 2 is AAC-LC; 5 (SBR) and 29 (PS) are HE-AAC.
    pub object_type: u8,
    /// Sampling rate, Hz.
    pub sample_rate: u32,
    /// Channel configuration (1 mono, 2 stereo; 0: in a PCE).
    pub channels: u8,
}

const AAC_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

impl AacConfig {
    /// Parses the first fields of an AudioSpecificConfig.
    ///
    /// Errors: [`FlvError::Malformed`] when it is shorter than 2 bytes or
    /// names a reserved sampling frequency index.
    pub fn parse(b: &[u8]) -> Result<Self, FlvError> {
        let bad = || FlvError::Malformed("AAC AudioSpecificConfig");
        if b.len() < 2 {
            return Err(bad());
        }
        let bits =
            u32::from_be_bytes([b[0], b[1], *b.get(2).unwrap_or(&0), *b.get(3).unwrap_or(&0)]);
        let mut object_type = (bits >> 27) as u8;
        let mut at = 5;
        if object_type == 31 {
            object_type = 32 + ((bits >> 21) & 0x3f) as u8;
            at += 6;
        }
        let index = ((bits >> (32 - at - 4)) & 0x0f) as usize;
        at += 4;
        let sample_rate = if index == 15 {
            if b.len() < 5 {
                return Err(bad());
            }
            let wide = u64::from_be_bytes([
                0,
                0,
                0,
                b[0],
                b[1],
                *b.get(2).unwrap_or(&0),
                *b.get(3).unwrap_or(&0),
                *b.get(4).unwrap_or(&0),
            ]);
            let v = (wide >> (40 - at - 24)) & 0x00ff_ffff;
            at += 24;
            v as u32
        } else {
            *AAC_RATES.get(index).ok_or_else(bad)?
        };
        let channels = if at + 4 <= 32 {
            ((bits >> (32 - at - 4)) & 0x0f) as u8
        } else {
            0
        };
        Ok(Self {
            object_type,
            sample_rate,
            channels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x264's record for High 3.1 (a real OBS/ffmpeg sequence header).
    const RECORD: [u8; 36] = [
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1c, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40,
        0x50, 0x05, 0xbb, 0x01, 0x6a, 0x02, 0x02, 0x02, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00,
        0x00, 0x1e, 0x07, 0x8c, 0x18, 0xcb,
    ];

    #[test]
    fn the_avc_record_gives_sps_pps_and_the_length_size() {
        let mut r = RECORD.to_vec();
        r.extend_from_slice(&[0x01, 0x00, 0x04, 0x68, 0xeb, 0xe3, 0xcb]);
        let c = AvcConfig::parse(&r).expect("parses");
        assert_eq!(c.length_size, 4);
        assert_eq!(c.sps.len(), 1);
        assert_eq!(&c.sps[0][..4], &[0x67, 0x64, 0x00, 0x1f]);
        assert_eq!(c.pps, vec![vec![0x68, 0xeb, 0xe3, 0xcb]]);
        // Cut anywhere, it is refused, never a panic.
        for n in 0..r.len() {
            assert!(AvcConfig::parse(&r[..n]).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn avcc_units_are_split_by_their_lengths() {
        let b = [0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x06];
        assert_eq!(
            avcc_nal_units(&b, 4).expect("splits"),
            vec![&[0x65, 1][..], &[0x06][..]]
        );
        assert!(avcc_nal_units(&[0, 0, 0, 9, 1], 4).is_err());
        assert!(avcc_nal_units(&[0, 0, 0, 0], 4).is_err());
        assert!(avcc_nal_units(&[0, 0xff, 0xff], 3).is_err());
        assert_eq!(avcc_nal_units(&[], 4).expect("empty"), Vec::<&[u8]>::new());
    }

    #[test]
    fn audio_specific_configs_name_their_object_type() {
        // AAC-LC, 44.1 kHz, stereo (ffmpeg's `-c:a aac`).
        let lc = AacConfig::parse(&[0x12, 0x10]).expect("parses");
        assert_eq!(
            lc,
            AacConfig {
                object_type: AOT_AAC_LC,
                sample_rate: 44_100,
                channels: 2
            }
        );
        // HE-AAC (SBR), 24 kHz core.
        assert_eq!(
            AacConfig::parse(&[0x2b, 0x10]).expect("parses").object_type,
            5
        );
        assert!(AacConfig::parse(&[0x12]).is_err());
        assert!(
            AacConfig::parse(&[0x17, 0x90]).is_err(),
            "index 15 needs 24 more bits"
        );
    }
}
