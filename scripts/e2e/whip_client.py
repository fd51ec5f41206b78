#!/usr/bin/env python3
"""A WHIP publisher and a WHEP player built on aiortc (PyPI), not on our code.

  whip_client.py publish URL [--token T] [--seconds N]
      POSTs an offer of one VP8 video track (aiortc's test pattern) and one
      Opus audio track to URL (…/whip/ROOM), sends for N seconds, then
      DELETEs the session. Prints one JSON line per event.
  whip_client.py play URL [--seconds N]
      POSTs a receive-only offer (audio + video) to URL (…/whep/ROOM) and
      counts the video frames aiortc decodes in N seconds; prints
      {"event": "played", "frames": n, "width": w, "height": h}.

Exit status 0 when the session was created (and, for play, at least one
frame was decoded), else 1. Loopback only: aioice is told to gather the
127.0.0.1 host candidate (it skips loopback by default).
"""

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

import aioice.ice
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def emit(**fields):
    print(json.dumps(fields), flush=True)


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


async def post_offer(pc, url, token):
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, hdrs, body = await asyncio.to_thread(
        http, "POST", url, pc.localDescription.sdp.encode(), headers
    )
    if status != 201:
        emit(event="refused", status=status, reason=body.strip())
        return None
    location = urllib.parse.urljoin(url, hdrs.get("Location", ""))
    emit(event="created", status=status, location=location, etag=hdrs.get("ETag"))
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return location


async def publish(args):
    pc = RTCPeerConnection()
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    location = await post_offer(pc, args.url, args.token)
    if location is None:
        await pc.close()
        return 1
    await asyncio.sleep(args.seconds)
    status, _, _ = await asyncio.to_thread(http, "DELETE", location)
    emit(event="deleted", status=status)
    await pc.close()
    return 0


async def play(args):
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    counts = {"frames": 0, "width": 0, "height": 0}

    async def count(track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            counts["frames"] += 1
            counts["width"], counts["height"] = frame.width, frame.height

    @pc.on("track")
    def on_track(track):
        if track.kind == "video":
            asyncio.ensure_future(count(track))

    location = await post_offer(pc, args.url, args.token)
    if location is None:
        await pc.close()
        return 1
    await asyncio.sleep(args.seconds)
    emit(event="played", **counts)
    await asyncio.to_thread(http, "DELETE", location)
    await pc.close()
    return 0 if counts["frames"] > 0 else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["publish", "play"])
    p.add_argument("url")
    p.add_argument("--token")
    p.add_argument("--seconds", type=float, default=10)
    args = p.parse_args()
    run = publish if args.mode == "publish" else play
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
