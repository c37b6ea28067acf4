#!/usr/bin/python3
"""A small QMP client for the emulated Proxmox VE node (tests/e2e/e2e-proxmox.sh, pve-qm.py).

QMP serves one client at a time: connect, read the greeting, negotiate, run, close. Like
Proxmox's own tools, a client that gets no greeting within the timeout gives up.

  qmp.py [-t S] SOCKET run CMD [JSON-ARGS] [CMD [JSON-ARGS]]...
      each command in turn; prints each "return" as one line of JSON; exit 1 on the first error
  qmp.py [-t S] SOCKET greet
      prints the seconds from connect() to the greeting
  qmp.py [-t S] SOCKET probe SECONDS EVERY
      connects every EVERY seconds for SECONDS; prints "n=N max=S median=S failed=N"
  qmp.py [-t S] SOCKET hold SECONDS READY-FILE
      holds the connection (QMP then serves no one else) for SECONDS; creates READY-FILE once
      it has the greeting
  qmp.py SOCKET eventd
      qmeventd's stand-in: listens on SOCKET, which every qemu's second monitor connects to;
      prints "connect PID EXE" for each peer, then the events it sends, and "close PID"
  qmp.py [-t S] SOCKET wait-migrate SECONDS
      polls query-migrate every 0.1 s until completed, failed or cancelled; prints
      "status total_time_ms"; exit 1 unless completed
"""
import json
import os
import socket
import struct
import sys
import threading
import time


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path, timeout=5.0):
        self.path = path
        self.timeout = timeout
        self.sock = None
        self.buf = b""
        self.greeting_s = None

    def __enter__(self):
        t0 = time.monotonic()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        try:
            self.sock.connect(self.path)
            greeting = self._read()
        except (OSError, QMPError) as e:
            self.sock.close()
            raise QMPError("%s: no greeting: %s" % (self.path, e)) from e
        self.greeting_s = time.monotonic() - t0
        if "QMP" not in greeting:
            raise QMPError("%s: not a QMP greeting: %s" % (self.path, greeting))
        self.cmd("qmp_capabilities")
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def _read(self):
        """The next message that is not an event."""
        while True:
            while b"\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise QMPError("connection closed")
                self.buf += data
            line, self.buf = self.buf.split(b"\n", 1)
            if not line.strip():
                continue
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name, args=None):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        try:
            reply = self._read()
        except QMPError:
            if name == "quit":
                return {}
            raise
        if "error" in reply:
            raise QMPError("%s: %s" % (name, reply["error"].get("desc", reply["error"])))
        return reply.get("return")


def greet(path, timeout):
    with QMP(path, timeout) as q:
        return q.greeting_s


def eventd_peer(conn):
    cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid = struct.unpack("3i", cred)[0]
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        exe = "?"
    print("connect %d %s" % (pid, exe), flush=True)
    f = conn.makefile("rwb")
    try:
        f.readline()  # the greeting
        f.write(b'{"execute": "qmp_capabilities"}\n')
        f.flush()
        for line in f:
            msg = json.loads(line)
            if "event" in msg:
                print("event %d %s" % (pid, msg["event"]), flush=True)
    except (OSError, ValueError):
        pass
    print("close %d" % pid, flush=True)
    conn.close()


def listen_unix(path, backlog):
    """A listening unix socket at path, in place of whatever was there."""
    try:
        os.unlink(path)
    except OSError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(backlog)
    return srv


def eventd(path):
    srv = listen_unix(path, 16)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=eventd_peer, args=(conn,), daemon=True).start()


def main(argv):
    timeout = 5.0
    if len(argv) > 2 and argv[1] == "-t":
        timeout = float(argv[2])
        argv = argv[:1] + argv[3:]
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    path, verb, rest = argv[1], argv[2], argv[3:]
    try:
        if verb == "run":
            with QMP(path, timeout) as q:
                i = 0
                while i < len(rest):
                    name, args = rest[i], None
                    if i + 1 < len(rest) and rest[i + 1].startswith("{"):
                        args = json.loads(rest[i + 1])
                        i += 1
                    i += 1
                    print(json.dumps(q.cmd(name, args)))
            return 0
        if verb == "greet":
            print("%.4f" % greet(path, timeout))
            return 0
        if verb == "probe":
            window, every = float(rest[0]), float(rest[1])
            lat, failed, end = [], 0, time.monotonic() + window
            while time.monotonic() < end:
                t = time.monotonic()
                try:
                    lat.append(greet(path, timeout))
                except QMPError as e:
                    failed += 1
                    sys.stderr.write("probe: %s\n" % e)
                time.sleep(max(0.0, every - (time.monotonic() - t)))
            lat.sort()
            print("n=%d max=%.4f median=%.4f failed=%d" % (
                len(lat), lat[-1] if lat else -1, lat[len(lat) // 2] if lat else -1, failed))
            return 0 if lat and not failed else 1
        if verb == "eventd":
            eventd(path)
        if verb == "hold":
            with QMP(path, timeout):
                open(rest[1], "w").close()
                time.sleep(float(rest[0]))
            return 0
        if verb == "wait-migrate":
            end = time.monotonic() + float(rest[0])
            with QMP(path, timeout) as q:
                while True:
                    st = q.cmd("query-migrate")
                    status = st.get("status", "none")
                    if status in ("completed", "failed", "cancelled") or time.monotonic() > end:
                        print(status, st.get("total-time", -1), st.get("error-desc", ""))
                        return 0 if status == "completed" else 1
                    time.sleep(0.1)
    except (QMPError, OSError, ValueError) as e:
        sys.stderr.write("qmp: %s\n" % e)
        return 1
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
