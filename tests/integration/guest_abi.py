"""The host side of guest-init's protocol (guest-init/isola_guest_abi.h) in Python: framing,
the HELLO/PROCESS handshake, and a run loop that relays stdin under the credit window and
collects stdout, stderr and the exit status. Tests use it to drive isola-init; the constants
must match the C header (test_guest_init.py checks that they do)."""
import json
import os
import selectors
import socket
import struct
import time

ABI_VERSION = 2
HOST_CID = 2
VSOCK_PORT = 1024
EXEC_PORT = 1025
MAX_EXECS = 16
HEADER_SIZE = 8
MAX_PROCESS = 1 << 20
MAX_DATA = 64 << 10
MAX_ERROR = 4096
STDIN_WINDOW = 256 << 10
MAX_MOUNTS = 64
LINGER_SECONDS = 10
EXIT_INTERNAL = 125

HELLO, PROCESS, STARTED, STDIN, STDIN_EOF, STDIN_ACK, STDOUT, STDERR, SIGNAL, EXIT, ERROR, \
    RESIZE = range(1, 13)
NAMES = {v: k for k, v in dict(HELLO=HELLO, PROCESS=PROCESS, STARTED=STARTED, STDIN=STDIN,
                                STDIN_EOF=STDIN_EOF, STDIN_ACK=STDIN_ACK, STDOUT=STDOUT,
                                STDERR=STDERR, SIGNAL=SIGNAL, EXIT=EXIT, ERROR=ERROR,
                                RESIZE=RESIZE).items()}


def frame(ftype, payload=b""):
    return struct.pack("<II", ftype, len(payload)) + payload


def u32(v):
    return struct.pack("<I", v)


class ProtocolError(Exception):
    pass


class Result:
    def __init__(self):
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.status = None
        self.errors = []  # ERROR frames from the guest
        self.pid = None  # STARTED
        self.frames = []  # (type, length) of every frame, in order
        self.closed_early = False  # the guest closed before EXIT


class GuestConnection:
    """One accepted connection from isola-init."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def send(self, ftype, payload=b""):
        self.sock.sendall(frame(ftype, payload))

    def recv(self, timeout=30):
        """The next frame as (type, payload), or None at end of stream."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= HEADER_SIZE:
                ftype, length = struct.unpack_from("<II", self.buf)
                if ftype not in NAMES:
                    raise ProtocolError(f"unknown frame type {ftype}")
                if len(self.buf) >= HEADER_SIZE + length:
                    payload = bytes(self.buf[HEADER_SIZE:HEADER_SIZE + length])
                    del self.buf[:HEADER_SIZE + length]
                    return ftype, payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the guest in time")
            self.sock.settimeout(left)
            data = self.sock.recv(1 << 20)
            if not data:
                if self.buf:
                    raise ProtocolError(f"{len(self.buf)} bytes of a partial frame at EOF")
                return None
            self.buf += data

    def handshake(self, timeout=30):
        """Read the guest's HELLO, answer with ours; returns the guest's version."""
        f = self.recv(timeout)
        if f is None or f[0] != HELLO or len(f[1]) != 8:
            raise ProtocolError(f"expected HELLO, got {f!r}")
        version, _flags = struct.unpack("<II", f[1])
        self.send(HELLO, struct.pack("<II", ABI_VERSION, 0))
        return version

    def send_process(self, config):
        self.send(PROCESS, json.dumps(config).encode())

    def run(self, stdin=b"", close_stdin=True, signals=(), timeout=60, on_started=None):
        """Relay until EXIT (or the guest closes). stdin is sent under the credit window;
        signals are (delay_seconds, signum) pairs sent after STARTED."""
        res = Result()
        credit = STDIN_WINDOW
        stdin = memoryview(bytes(stdin))
        eof_sent = False
        out = bytearray()
        pending_signals = sorted(signals)
        started_at = None
        self.sock.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while res.status is None:
                # Queue what the window allows, and send what the socket takes without
                # blocking: the guest's output must keep flowing while we write.
                while len(stdin) and credit > 0:
                    n = min(len(stdin), credit, MAX_DATA)
                    out += frame(STDIN, bytes(stdin[:n]))
                    stdin = stdin[n:]
                    credit -= n
                if not len(stdin) and close_stdin and not eof_sent:
                    out += frame(STDIN_EOF)
                    eof_sent = True
                if started_at is not None:
                    while pending_signals and \
                            time.monotonic() - started_at >= pending_signals[0][0]:
                        out += frame(SIGNAL, u32(pending_signals.pop(0)[1]))
                if out:
                    try:
                        del out[:self.sock.send(out)]
                    except BlockingIOError:
                        pass
                    except (BrokenPipeError, ConnectionResetError):
                        out.clear()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the guest did not exit in time")
                sel.modify(self.sock, selectors.EVENT_READ |
                           (selectors.EVENT_WRITE if out else 0))
                sel.select(min(left, 0.05))
                try:
                    data = self.sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                if not data:
                    res.closed_early = True
                    break
                self.buf += data
                while len(self.buf) >= HEADER_SIZE:
                    ftype, length = struct.unpack_from("<II", self.buf)
                    if len(self.buf) < HEADER_SIZE + length:
                        break
                    payload = bytes(self.buf[HEADER_SIZE:HEADER_SIZE + length])
                    del self.buf[:HEADER_SIZE + length]
                    res.frames.append((ftype, length))
                    if ftype == STDOUT:
                        res.stdout += payload
                    elif ftype == STDERR:
                        res.stderr += payload
                    elif ftype == STDIN_ACK:
                        credit += struct.unpack("<I", payload)[0]
                        if credit > STDIN_WINDOW:
                            raise ProtocolError("STDIN_ACK returned more credit than was used")
                    elif ftype == STARTED:
                        res.pid = struct.unpack("<I", payload)[0]
                        started_at = time.monotonic()
                        if on_started:
                            on_started(self)
                    elif ftype == EXIT:
                        res.status = struct.unpack("<I", payload)[0]
                    elif ftype == ERROR:
                        res.errors.append(payload.decode(errors="replace"))
                    else:
                        raise ProtocolError(f"unexpected frame {NAMES.get(ftype, ftype)}")
        finally:
            sel.close()
            self.sock.setblocking(True)
        return res

    def close(self):
        self.sock.close()


class Listener:
    """A unix socket the guest connects to (the VMM's "<uds>_<port>" in VM mode)."""

    def __init__(self, path):
        self.path = str(path)
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)

    def accept(self, timeout=30):
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        conn.settimeout(None)
        return GuestConnection(conn)

    def close(self):
        self.sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)
