#!/usr/bin/env python3
"""A bare RTMP client for what ffmpeg 5.1 cannot send (standard library only).

  rtmp_probe.py HOST PORT ROOM hevc
      Handshakes, connects to app "live", publishes ROOM, then sends an
      HEVC video tag (FLV codec id 12, as Chinese CDNs' encoders do).
      Prints {"status": true, "level": ..., "description": ...} for each
      onStatus the server sends, and {"closed": true} when it closes.
  rtmp_probe.py HOST PORT ROOM garbage
      Sends a broken handshake (version 0x42 and noise); prints
      {"closed": true} when the server closes the connection.

Every read has a 10 s timeout.
"""

import json
import os
import socket
import struct
import sys


def emit(**fields):
    print(json.dumps(fields), flush=True)


def amf_string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def amf(v):
    if v is None:
        return b"\x05"
    if isinstance(v, (int, float)):
        return b"\x00" + struct.pack(">d", float(v))
    if isinstance(v, str):
        return b"\x02" + amf_string(v)
    if isinstance(v, dict):
        out = b"\x03"
        for k, x in v.items():
            out += amf_string(k) + amf(x)
        return out + b"\x00\x00\x09"
    raise TypeError(v)


def message(csid, type_id, stream_id, body):
    """One message in one chunk (fmt 0); our chunk size is set to 65536 first."""
    return (
        bytes([csid])
        + b"\x00\x00\x00"
        + struct.pack(">I", len(body))[1:]
        + bytes([type_id])
        + struct.pack("<I", stream_id)
        + body
    )


def statuses(data):
    """The (level, description) of each onStatus found in raw server bytes."""
    out = []
    at = 0
    while True:
        at = data.find(b"onStatus", at)
        if at < 0:
            return out
        at += 8
        fields = {}
        for key in (b"level", b"description"):
            k = data.find(amf_string(key.decode()) + b"\x02", at)
            if k < 0:
                continue
            k += 2 + len(key) + 1
            if k + 2 > len(data):
                continue
            n = struct.unpack(">H", data[k : k + 2])[0]
            fields[key.decode()] = data[k + 2 : k + 2 + n].decode(errors="replace")
        out.append(fields)


def read_until_closed(s, want=None):
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            emit(timeout=True)
            return data
        except ConnectionError:
            chunk = b""
        if not chunk:
            emit(closed=True)
            return data
        data += chunk
        if want is not None and want in data:
            return data


def main():
    host, port, room, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    s = socket.create_connection((host, port), timeout=10)
    if mode == "garbage":
        s.sendall(b"\x42" + os.urandom(1536))
        read_until_closed(s)
        return
    s.sendall(b"\x03" + b"\x00" * 8 + os.urandom(1528))
    got = b""
    while len(got) < 1 + 1536 + 1536:
        chunk = s.recv(65536)
        if not chunk:
            emit(closed=True)
            return
        got += chunk
    s.sendall(got[1:1537])  # C2 echoes S1
    s.sendall(message(2, 1, 0, struct.pack(">I", 65536)))  # SetChunkSize
    tc_url = f"rtmp://{host}:{port}/live"
    s.sendall(
        message(3, 20, 0, amf("connect") + amf(1) + amf({"app": "live", "type": "nonprivate", "flashVer": "FMLE/3.0", "tcUrl": tc_url}))
    )
    s.sendall(message(3, 20, 0, amf("createStream") + amf(2) + amf(None)))
    s.sendall(message(8, 20, 1, amf("publish") + amf(3) + amf(None) + amf(room) + amf("live")))
    data = read_until_closed(s, b"NetStream.Publish.Start")
    # An HEVC keyframe's sequence header: frame type 1, codec id 12.
    s.sendall(message(6, 9, 1, bytes([0x1C, 0x00, 0, 0, 0]) + os.urandom(32)))
    data += read_until_closed(s)
    for st in statuses(data):
        emit(status=True, level=st.get("level"), description=st.get("description", ""))


if __name__ == "__main__":
    main()
