#!/usr/bin/env python3
"""Records the OpenFlow messages a real ovs-ofctl sends to a real OVS bridge.

Sits between ovs-ofctl and a bridge's management socket (OVS with a private rundir, e.g.
OVS_RUNDIR=/tmp/ovsref, a datapath_type=netdev bridge br0 with OpenFlow13 and OpenFlow14
enabled), passes every byte both ways, and prints each message ovs-ofctl sent, other than
HELLO, ECHO, FEATURES, BARRIER and the multipart requests it makes for its own checks, as one
hex line.

    capture.py REAL_MGMT_SOCK -- ovs-ofctl -O OpenFlow13 add-flow unix:SOCK 'FLOW'

SOCK in the command is replaced by the recorder's own socket path.
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading

SKIP = {0, 2, 5, 20}  # hello, echo request, features request, barrier request
SKIP_MULTIPART = {12, 13}  # table features, port desc: ovs-ofctl's own checks


def pump(src, dst, record):
    buf = b""
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            break
        if not data:
            break
        try:
            dst.sendall(data)
        except OSError:
            break
        if record is None:
            continue
        buf += data
        while len(buf) >= 8:
            _, typ, length, _ = struct.unpack("!BBHI", buf[:8])
            if length < 8 or len(buf) < length:
                break
            msg, buf = buf[:length], buf[length:]
            if typ in SKIP:
                continue
            if typ == 18 and struct.unpack("!H", msg[8:10])[0] in SKIP_MULTIPART:
                continue
            record.append(msg.hex())
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def relay(conn, real, out):
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    up.connect(real)
    back = threading.Thread(target=pump, args=(up, conn, None), daemon=True)
    back.start()
    pump(conn, up, out)
    back.join(timeout=5)
    conn.close()
    up.close()


def serve(listener, real, out, relays):
    # ovs-ofctl may open more than one connection (one per check it makes).
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        t = threading.Thread(target=relay, args=(conn, real, out), daemon=True)
        relays.append(t)
        t.start()


def main():
    real = sys.argv[1]
    cmd = sys.argv[3:]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "br0.mgmt")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        out = []
        relays = []
        t = threading.Thread(target=serve, args=(listener, real, out, relays), daemon=True)
        t.start()
        cmd = [a.replace("SOCK", path) for a in cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        listener.shutdown(socket.SHUT_RDWR)
        t.join(timeout=5)
        for r2 in list(relays):
            r2.join(timeout=5)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            sys.exit(r.returncode)
        for m in out:
            print(m)


if __name__ == "__main__":
    main()
