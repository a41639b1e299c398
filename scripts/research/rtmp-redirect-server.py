#!/usr/bin/env python3
"""Throwaway RTMP server that answers every `connect` with the Wowza/FMS redirect convention:
_error(txn, null, {level:"error", code:"NetConnection.Connect.Rejected", description:...,
ex:{code:302, redirect:TARGET}}), then logs whatever the client sends until it closes (or 5 s).
Usage: redirect_server.py PORT TARGET_URL"""
import socket, struct, sys, threading, time, os

PORT, TARGET = int(sys.argv[1]), sys.argv[2]

def log(conn_id, msg):
    print(f"{time.strftime('%H:%M:%S')} conn{conn_id}: {msg}", flush=True)

def amf_str(s):
    b = s.encode(); return b"\x02" + struct.pack(">H", len(b)) + b
def amf_num(n): return b"\x00" + struct.pack(">d", n)
def amf_obj(pairs):
    out = b"\x03"
    for k, v in pairs:
        kb = k.encode(); out += struct.pack(">H", len(kb)) + kb + v
    return out + b"\x00\x00\x09"

def amf_read(b, i):
    t = b[i]; i += 1
    if t == 0: return struct.unpack(">d", b[i:i+8])[0], i + 8
    if t == 1: return bool(b[i]), i + 1
    if t == 2:
        n = struct.unpack(">H", b[i:i+2])[0]; return b[i+2:i+2+n].decode("utf8", "replace"), i + 2 + n
    if t in (3, 8):
        if t == 8: i += 4
        d = {}
        while True:
            n = struct.unpack(">H", b[i:i+2])[0]; i += 2
            if n == 0 and b[i] == 9: return d, i + 1
            k = b[i:i+n].decode(); i += n
            d[k], i = amf_read(b, i)
    if t in (5, 6): return None, i
    raise ValueError(f"amf type {t}")

def amf_all(b):
    out, i = [], 0
    try:
        while i < len(b):
            v, i = amf_read(b, i); out.append(v)
    except Exception as e:
        out.append(f"<undecoded: {e}>")
    return out

def chunk(csid, type_id, stream_id, payload, size=128):
    out = bytes([csid]) + b"\x00\x00\x00" + struct.pack(">I", len(payload))[1:] + bytes([type_id]) + struct.pack("<I", stream_id)
    for off in range(0, len(payload), size):
        if off: out += bytes([0xC0 | csid])
        out += payload[off:off+size]
    return out

class Reader:
    def __init__(self, sock): self.s, self.buf = sock, b""
    def need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d: raise EOFError
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]; return out

def serve(sock, cid):
    r = Reader(sock)
    sock.settimeout(5)
    try:
        c0c1 = r.need(1537)
        sock.sendall(b"\x03" + b"\x00" * 8 + os.urandom(1528) + c0c1[1:])
        r.need(1536)
        log(cid, "handshake done")
        in_size, prev, partial = 128, {}, {}
        while True:
            b0 = r.need(1)[0]; fmt, csid = b0 >> 6, b0 & 0x3F
            if csid == 0: csid = 64 + r.need(1)[0]
            elif csid == 1: x = r.need(2); csid = 64 + x[0] + x[1] * 256
            h = prev.get(csid, {"ts": 0, "len": 0, "type": 0, "sid": 0})
            if fmt <= 2:
                ts = int.from_bytes(r.need(3), "big")
            if fmt <= 1:
                h["len"] = int.from_bytes(r.need(3), "big"); h["type"] = r.need(1)[0]
            if fmt == 0:
                h["sid"] = struct.unpack("<I", r.need(4))[0]
            if fmt <= 2 and ts == 0xFFFFFF: r.need(4)
            prev[csid] = h
            have = partial.get(csid, b"")
            part = r.need(min(in_size, h["len"] - len(have)))
            have += part
            if len(have) < h["len"]:
                partial[csid] = have; continue
            partial[csid] = b""
            t, body = h["type"], have
            if t == 1:
                in_size = struct.unpack(">I", body)[0] & 0x7FFFFFFF; log(cid, f"set chunk size {in_size}")
            elif t in (20, 17):
                if t == 17: body = body[1:]
                vals = amf_all(body)
                log(cid, f"command {vals}")
                if vals and vals[0] == "connect":
                    info = amf_obj([
                        ("level", amf_str("error")),
                        ("code", amf_str("NetConnection.Connect.Rejected")),
                        ("description", amf_str(f"Connection redirected to {TARGET}")),
                        ("ex", amf_obj([("code", amf_num(302)), ("redirect", amf_str(TARGET))])),
                    ])
                    payload = amf_str("_error") + amf_num(vals[1]) + b"\x05" + info
                    sock.sendall(chunk(3, 20, 0, payload))
                    log(cid, f"sent _error NetConnection.Connect.Rejected ex.code=302 ex.redirect={TARGET}")
            else:
                log(cid, f"message type {t} ({len(body)} bytes)")
    except EOFError:
        log(cid, "client closed the connection")
    except socket.timeout:
        log(cid, "no more from the client for 5 s; closing")
    except Exception as e:
        log(cid, f"error {e!r}")
    finally:
        sock.close()

srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", PORT)); srv.listen(16)
print(f"redirect server on 127.0.0.1:{PORT} -> {TARGET}", flush=True)
n = 0
while True:
    s, a = srv.accept(); n += 1
    log(n, f"accepted from {a[0]}:{a[1]}")
    threading.Thread(target=serve, args=(s, n), daemon=True).start()
