//! H.264 to RTP (RFC 6184, packetization-mode 1): a NAL unit that fits is
//! sent alone (§5.6), a larger one in FU-A fragments (§5.8), and a
//! keyframe is preceded by its SPS and PPS aggregated in one STAP-A
//! (§5.7.1), so a subscriber can start at any keyframe.

/// NAL unit types (ITU-T H.264 Table 7-1) and RFC 6184 payload types.
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// The `profile-level-id` of an SPS (RFC 6184 §8.1: profile_idc,
/// constraint flags and level_idc, the three bytes after the NAL header),
/// as six hex digits; `None` for an SPS shorter than that.
pub fn profile_level_id(sps: &[u8]) -> Option<String> {
    let b = sps.get(1..4)?;
    Some(format!("{:02x}{:02x}{:02x}", b[0], b[1], b[2]))
}

/// The RTP payloads of one access unit: `nals` (NAL units, header byte
/// first) cut to at most `mtu` bytes each, with `parameter_sets` (SPS then
/// PPS) in a STAP-A first when the unit holds an IDR slice and does not
/// carry its own. The last payload ends the access unit (set the RTP
/// marker bit on it, RFC 6184 §5.1). Access unit delimiters are dropped.
pub fn packetize(nals: &[&[u8]], parameter_sets: &[&[u8]], mtu: usize) -> Vec<Vec<u8>> {
    let mtu = mtu.max(64);
    let kind = |n: &[u8]| n.first().map_or(0, |b| b & 0x1f);
    let idr = nals.iter().any(|n| kind(n) == NAL_IDR);
    let has_sets = nals.iter().any(|n| kind(n) == NAL_SPS);
    let mut out = Vec::new();
    if idr && !has_sets && !parameter_sets.is_empty() {
        let size: usize = 1 + parameter_sets.iter().map(|s| 2 + s.len()).sum::<usize>();
        if size <= mtu {
            let nri = parameter_sets
                .iter()
                .map(|s| s[0] & 0x60)
                .max()
                .unwrap_or(0x60);
            let mut stap = Vec::with_capacity(size);
            stap.push(nri | STAP_A);
            for s in parameter_sets {
                stap.extend_from_slice(&(s.len() as u16).to_be_bytes());
                stap.extend_from_slice(s);
            }
            out.push(stap);
        } else {
            for s in parameter_sets {
                push_nal(&mut out, s, mtu);
            }
        }
    }
    for n in nals.iter().filter(|n| !n.is_empty() && kind(n) != NAL_AUD) {
        push_nal(&mut out, n, mtu);
    }
    out
}

/// Whether the NAL units hold an IDR slice (a keyframe).
pub fn is_idr(nals: &[&[u8]]) -> bool {
    nals.iter()
        .any(|n| n.first().is_some_and(|b| b & 0x1f == NAL_IDR))
}

/// Whether a NAL unit is a parameter set (SPS or PPS).
pub fn is_parameter_set(nal: &[u8]) -> bool {
    nal.first()
        .is_some_and(|b| matches!(b & 0x1f, NAL_SPS | NAL_PPS))
}

fn push_nal(out: &mut Vec<Vec<u8>>, nal: &[u8], mtu: usize) {
    if nal.len() <= mtu {
        out.push(nal.to_vec());
        return;
    }
    let (header, body) = (nal[0], &nal[1..]);
    let indicator = (header & 0xe0) | FU_A;
    let chunk = mtu - 2;
    let count = body.len().div_ceil(chunk);
    for (i, part) in body.chunks(chunk).enumerate() {
        let mut fu = Vec::with_capacity(part.len() + 2);
        let start = if i == 0 { 0x80 } else { 0 };
        let end = if i + 1 == count { 0x40 } else { 0 };
        fu.push(indicator);
        fu.push(start | end | (header & 0x1f));
        fu.extend_from_slice(part);
        out.push(fu);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyframe_gets_its_parameter_sets_in_a_stap_a_and_large_units_are_fragmented() {
        let sps = [0x67, 0x64, 0x00, 0x1f, 0xac];
        let pps = [0x68, 0xeb, 0xe3];
        let idr: Vec<u8> = std::iter::once(0x65)
            .chain((0..2500).map(|i| i as u8))
            .collect();
        let aud = [0x09, 0xf0];
        let p = packetize(&[&aud, &idr], &[&sps, &pps], 1200);
        assert_eq!(p[0][0] & 0x1f, STAP_A);
        assert_eq!(&p[0][1..3], &[0, 5]);
        assert_eq!(&p[0][3..8], &sps);
        assert_eq!(&p[0][8..10], &[0, 3]);
        // 2500 bytes of body in fragments of at most 1198: three FU-As.
        assert_eq!(p.len(), 4);
        assert_eq!(p[1][0], 0x60 | FU_A);
        assert_eq!(p[1][1], 0x80 | 5, "start bit and the IDR type");
        assert_eq!(p[2][1], 5);
        assert_eq!(p[3][1], 0x40 | 5, "end bit");
        let body: Vec<u8> = p[1..].iter().flat_map(|f| f[2..].to_vec()).collect();
        assert_eq!(body, idr[1..]);
        assert!(p.iter().all(|x| x.len() <= 1200));
        // A P-frame that fits goes alone, without parameter sets.
        let slice = [0x41, 1, 2, 3];
        assert_eq!(
            packetize(&[&slice], &[&sps, &pps], 1200),
            vec![slice.to_vec()]
        );
        assert_eq!(profile_level_id(&sps).as_deref(), Some("64001f"));
        assert!(is_idr(&[&idr]) && !is_idr(&[&slice]));
    }
}
