//! What the router reads of video payloads and headers: the VP8 and VP9
//! payload descriptors, keyframe detection, and AV1's dependency
//! descriptor (appendix A of the AV1 RTP specification), decoded alone and
//! against a template structure decoded from the input's first part, and
//! followed through the stream's chains (`router::svc::Chains`) with the
//! packets around it given up.
//! Input: a length byte, a descriptor that may carry a structure, then
//! another descriptor.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sfu_core::proto::codec::{
    DependencyDescriptor, MAX_CHAINS, VideoCodec, Vp8Descriptor, Vp9Descriptor,
};
use sfu_core::router::svc::Chains;

fuzz_target!(|data: &[u8]| {
    let _ = Vp8Descriptor::parse(data);
    if let Some(d) = Vp9Descriptor::parse(data) {
        let f = d.frame();
        assert_eq!(f.keyframe(), d.keyframe());
    }
    for c in [VideoCodec::Vp8, VideoCodec::Vp9, VideoCodec::H264, VideoCodec::Av1] {
        let _ = c.is_keyframe(data);
    }
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (first, second) = rest.split_at(usize::from(n).min(rest.len()));
    let structure = DependencyDescriptor::parse(first, None).and_then(|d| d.structure);
    let mut chains = Chains::default();
    if let Some(s) = &structure {
        chains.set_structure(s);
    }
    if let Some(d) = DependencyDescriptor::parse(second, structure.as_deref()) {
        let _ = d.frame(false);
        assert!(d.references().count() <= sfu_core::proto::codec::MAX_REFERENCES);
        assert!(d.chain_fdiffs().len() <= MAX_CHAINS);
        chains.on_packet(&d, 2);
        chains.on_lost(1);
        chains.on_lost(3);
        let _ = chains.broken_layers();
        chains.on_reset();
        chains.on_packet(&d, 4);
        let _ = chains.broken_layers();
    }
});
