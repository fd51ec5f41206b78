#!/usr/bin/env python3
"""A data-channel participant built on aiortc (PyPI), not on our code.

  dc_client.py WS_URL ROOM NAME [--send N] [--rate R] [--after-ready F]
               [--go-file F] [--seconds S]

Joins ROOM over the server's WebSocket (docs/signaling.md) with an offer of
data channels only (aiortc's SCTP and DCEP), so the server offers it no
media, and opens a `chat` channel.
Once its channel is open it writes F (--after-ready) and, when --go-file F
exists, sends N text messages "NAME i" (i = 0..N-1) at R per second.
It then listens until S seconds have passed since the join and prints one
JSON line: {"event": "done", "from": {participant: {"texts": [...],
"binaries": [{"size": n, "sha256": hex}]}}}, where the keys are the
participant ids the server named in `data-channel`.

Loopback only: aioice is told to gather the 127.0.0.1 host candidate.
"""

import argparse
import asyncio
import hashlib
import json
import os
import sys

import aioice.ice
import websockets
from aiortc import RTCPeerConnection, RTCSessionDescription

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def emit(**fields):
    print(json.dumps(fields), flush=True)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("room")
    ap.add_argument("name")
    ap.add_argument("--send", type=int, default=0)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--after-ready", default=None)
    ap.add_argument("--go-file", default=None)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()

    pc = RTCPeerConnection()
    chat = pc.createDataChannel("chat")
    owner = {}  # server channel id -> participant id
    held = {}  # server channel id -> messages before its owner is known
    got = {}  # participant id -> {"texts": [...], "binaries": [...]}

    def record(who, data):
        entry = got.setdefault(who, {"texts": [], "binaries": []})
        if isinstance(data, (bytes, bytearray)):
            entry["binaries"].append({"size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
            return
        try:
            j = json.loads(data)
            text = j["text"] if isinstance(j, dict) and isinstance(j.get("text"), str) else data
        except ValueError:
            text = data
        entry["texts"].append(text)

    @pc.on("datachannel")
    def on_channel(ch):
        if ch.label != "chat":
            return

        @ch.on("message")
        def on_message(data):
            who = owner.get(ch.id)
            if who is None:
                held.setdefault(ch.id, []).append(data)
            else:
                record(who, data)

    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with websockets.connect(args.url, max_size=2**22) as ws:
        await ws.send(json.dumps({"type": "join", "room": args.room, "name": args.name,
                                  "sdp": pc.localDescription.sdp}))

        async def sender():
            while chat.readyState != "open":
                await asyncio.sleep(0.05)
            emit(event="ready")
            if args.after_ready:
                open(args.after_ready, "w").close()
            if args.go_file:
                while not os.path.exists(args.go_file):
                    await asyncio.sleep(0.05)
            for i in range(args.send):
                chat.send(f"{args.name} {i}")
                # Keep aiortc's own queue short: it has no backpressure.
                while chat.bufferedAmount > 64 * 1024:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(1.0 / args.rate)
            emit(event="sent", count=args.send)

        task = asyncio.ensure_future(sender())
        while True:
            left = args.seconds - (loop.time() - start)
            if left <= 0:
                break
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=left)
            except asyncio.TimeoutError:
                break
            msg = json.loads(raw)
            t = msg.get("type")
            if t == "answer":
                await pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
                emit(event="joined", id=msg["id"])
            elif t == "update":
                # Not expected: an offer of data channels alone is offered
                # no tracks (docs/signaling.md).
                emit(event="error", code="unexpected-update", message="a data-only client was offered media")
            elif t == "data-channel":
                owner[msg["id"]] = msg["from"]
                for data in held.pop(msg["id"], []):
                    record(msg["from"], data)
            elif t == "error":
                emit(event="error", code=msg.get("code"), message=msg.get("message"))
        task.cancel()
        await ws.send(json.dumps({"type": "leave"}))
    await pc.close()
    emit(event="done", **{"from": got})


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001 - reported, then a failing exit
        emit(event="failed", error=repr(e))
        sys.exit(1)
