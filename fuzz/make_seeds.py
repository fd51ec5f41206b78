#!/usr/bin/env python3
"""Builds fuzz/seeds/<target>/ from real Chromium captures (testdata/)
and packets shaped like our own peers' (plain RTCP compounds, signaling JSON).
Re-run after the fixtures change:  python3 fuzz/make_seeds.py"""
import json, os, pathlib, struct

here = pathlib.Path(__file__).resolve().parent
fix = here.parent.parent / "testdata"
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
