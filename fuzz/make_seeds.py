#!/usr/bin/env python3
"""Builds fuzz/seeds/<target>/ from real Chromium captures (testdata/)
and packets shaped like our own peers' (plain RTCP compounds, signaling JSON).
Re-run after the fixtures change:  python3 fuzz/make_seeds.py"""
import json, os, pathlib, struct

here = pathlib.Path(__file__).resolve().parent
fix = here.parent / "testdata"
out = here / "seeds"
pk = sorted((fix / "packets").glob("*.bin"))
read = lambda p: p.read_bytes()

def put(target, name, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)

def framed(datas, src=None):
    b = b""
    for d in datas:
        if src is not None:
            b += bytes([src])
        b += struct.pack(">H", len(d)) + d
    return b

for p in pk:
    d = read(p)
    put("demux", p.name, d)
    put("router", p.name, framed([d], src=0) + framed([d], src=1))
    if p.name.startswith("stun"):
        put("stun", p.name, d)
    if p.name.startswith("srtp-"):
        put("rtp", p.name, d)
        for sel in range(3):
            put("srtp_unprotect", f"{sel}-{p.name}", bytes([sel]) + d)
    if p.name.startswith("srtcp"):
        for sel in range(3):
            put("srtp_unprotect", f"{sel}-{p.name}", bytes([sel]) + d)
dtls = [p for p in pk if p.name.startswith("dtls")]
by_flight = {}
for p in dtls:
    by_flight.setdefault(p.name.split("-1of")[0].split("-2of")[0], []).append(p)
for k, ps in by_flight.items():
    put("dtls_transport", k + ".bin", framed([read(p) for p in sorted(ps)]))
put("dtls_transport", "chromium-client-hello-both-fragments.bin",
    framed([read(fix / "packets" / "dtls-client-hello-1of2.bin"), read(fix / "packets" / "dtls-client-hello-2of2.bin")]))

# Plain RTCP compounds as our peers send them: SR, RR+PLI, RR+NACK, FIR, BYE.
ssrc = lambda x: struct.pack(">I", x)
sr = bytes([0x80, 200, 0, 6]) + ssrc(1111) + struct.pack(">QIII", 1 << 40, 90000, 100, 9000)
rr = bytes([0x80, 201, 0, 1]) + ssrc(7)
pli = bytes([0x81, 206, 0, 2]) + ssrc(7) + ssrc(2222)
nack = bytes([0x81, 205, 0, 3]) + ssrc(7) + ssrc(2222) + struct.pack(">HH", 65534, 0b101)
fir = bytes([0x84, 206, 0, 4]) + ssrc(7) + ssrc(0) + ssrc(2222) + bytes([1, 0, 0, 0])
bye = bytes([0x81, 203, 0, 1]) + ssrc(7)
for name, d in {"sr": sr, "rr_pli": rr + pli, "rr_nack": rr + nack, "fir": rr + fir, "bye": rr + bye}.items():
    put("rtcp", name + ".bin", d)
    put("demux", "rtcp-" + name + ".bin", d)

for p in sorted((fix / "sdp").glob("*.sdp")):
    put("sdp_offer", p.name, read(p))
for p in sorted((fix / "call").glob("*.sdp")):
    put("sdp_offer", p.name, read(p))

offer = (fix / "sdp" / "offer-audio-video-sendrecv.sdp").read_text()
msgs = {
    "join": {"type": "join", "room": "demo", "name": "alice", "sdp": offer},
    "answer": {"type": "answer", "sdp": "v=0\r\n"},
    "leave": {"type": "leave"},
    "unknown": {"type": "dance"},
    "bad-field": {"type": "join", "room": 5},
}
for name, m in msgs.items():
    put("signaling_json", name + ".json", json.dumps(m).encode())
print("seeds written to", out)

# whip_offer: a selector byte (even WHIP, odd WHEP), then a real offer.
for p in sorted((fix / "sdp").glob("*offer*.sdp")):
    if p.name.endswith(".input.sdp"):
        continue
    put("whip_offer", "whip-" + p.name, b"\x00" + read(p))
    put("whip_offer", "whep-" + p.name, b"\x01" + read(p))

# flv_ingest: a selector byte, then FLV payload pieces [flags, len16, data]:
# an AVC sequence header, an IDR and a P-frame (AVCC), an AAC sequence
# header and the first AAC frames of a real ffmpeg encode (ADTS stripped).
def piece(flags, data):
    return bytes([flags]) + struct.pack(">H", len(data)) + data
record = bytes([1, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, 5, 0x67, 0x42, 0xc0, 0x1f, 0xda, 1, 0, 4, 0x68, 0xce, 0x3c, 0x80])
avcc = lambda nal: struct.pack(">I", len(nal)) + nal
adts = read(fix / "aac" / "sine-440hz-44100-stereo.adts")
frames, at = [], 0
while at + 7 <= len(adts) and len(frames) < 6:
    n = ((adts[at + 3] & 3) << 11) | (adts[at + 4] << 3) | (adts[at + 5] >> 5)
    frames.append(adts[at + 7:at + n])
    at += n
seed = b"\x00" + piece(0, record) + piece(8, avcc(b"\x65" + bytes(1500))) + piece(10, avcc(b"\x41\x9a\x00"))
seed += piece(5, b"\x12\x10") + b"".join(piece(1, f) for f in frames)
put("flv_ingest", "h264-aac", seed)
put("flv_ingest", "b-frames", b"\x00" + piece(0, record) + piece(0x88, avcc(b"\x65\x00")))
put("flv_ingest", "mp3", b"\x00" + piece(3, b"\xff\xfb\x90\x00"))
put("flv_ingest", "rtmp-handshake", b"\x00\x03" + bytes(1536))
