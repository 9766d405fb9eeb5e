#!/usr/bin/env python3
"""Independent reader of TensorBoard event files (test_pipeline): TFRecord framing with masked CRC-32C checked
on every length and payload, and tensorflow.Event / Summary protobufs decoded from the wire format by hand.

CRC-32C here is the bitwise definition (no table), so it shares nothing with r2rec's table-driven one.
Usage: read_tfevents.py FILE...  ->  prints JSON [{"step": s, "wall_time": t, "tag": name, "value": v}, ...] for
every scalar; exits 1 naming the file and byte offset on any framing, CRC or protobuf error."""
import json
import struct
import sys


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf, i):
    shift = v = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def fields(buf):
    """Yields (field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(buf):
        k, i = varint(buf, i)
        f, w = k >> 3, k & 7
        if w == 0:
            v, i = varint(buf, i)
        elif w == 1:
            v, i = buf[i:i + 8], i + 8
        elif w == 5:
            v, i = buf[i:i + 4], i + 4
        elif w == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % w)
        yield f, w, v
    if i != len(buf):
        raise ValueError("message overruns its length")


def read(path):
    out = []
    data = open(path, "rb").read()
    i = 0
    first = True
    while i < len(data):
        if i + 12 > len(data):
            raise ValueError("%s: truncated header at byte %d" % (path, i))
        header = data[i:i + 8]
        (n,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", data[i + 8:i + 12])
        if masked(header) != hcrc:
            raise ValueError("%s: length CRC mismatch at byte %d" % (path, i))
        payload = data[i + 12:i + 12 + n]
        (pcrc,) = struct.unpack("<I", data[i + 12 + n:i + 16 + n])
        if len(payload) != n or masked(payload) != pcrc:
            raise ValueError("%s: payload CRC mismatch at byte %d" % (path, i))
        i += 16 + n
        wall, step, version, summary = None, 0, None, None
        for f, w, v in fields(payload):
            if f == 1 and w == 1:
                (wall,) = struct.unpack("<d", v)
            elif f == 2 and w == 0:
                step = v
            elif f == 3 and w == 2:
                version = v.decode()
            elif f == 5 and w == 2:
                summary = v
        if first:
            if version != "brain.Event:2":
                raise ValueError("%s: first event has file_version %r" % (path, version))
            first = False
            continue
        if summary is None:
            continue
        for f, w, value in fields(summary):
            if f != 1 or w != 2:
                continue
            tag, simple = None, None
            for g, x, y in fields(value):
                if g == 1 and x == 2:
                    tag = y.decode()
                elif g == 2 and x == 5:
                    (simple,) = struct.unpack("<f", y)
            out.append({"step": step, "wall_time": wall, "tag": tag, "value": simple})
    return out


def main():
    rows = []
    try:
        for p in sys.argv[1:]:
            rows += read(p)
    except (ValueError, IndexError, struct.error) as e:
        print(e, file=sys.stderr)
        return 1
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
