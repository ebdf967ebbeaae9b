"""Terminals in the foreground: run and exec with process.terminal relay a pty to ours."""
import os
import pty
import time


def run_on_pty(argv, stdin=b""):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    if stdin:
        time.sleep(0.3)
        os.write(fd, stdin)
    out = b""
    while True:
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        out += d
    _, st = os.waitpid(pid, 0)
    return out, os.waitstatus_to_exitcode(st)


def test_run_with_terminal(rt, bundle, cid):
    bundle.process["terminal"] = True
    bundle.args("sh", "-c", "tty; test -t 0 && echo isatty; echo console > /dev/console; exit 3")
    out, code = run_on_pty(rt.cmd("run", "-b", bundle.path, cid))
    assert code == 3
    assert out == b"/dev/pts/0\r\nisatty\r\nconsole\r\n", out


def test_run_terminal_input(rt, bundle, cid):
    bundle.process["terminal"] = True
    bundle.args("sh", "-c", "read line; echo got:$line")
    out, code = run_on_pty(rt.cmd("run", "-b", bundle.path, cid), stdin=b"hello\r")
    assert code == 0 and b"got:hello" in out, out


def test_exec_tty(rt, bundle, cid):
    bundle.args("sleep", "100")
    rt.ok("run", "-d", "-b", bundle.path, cid)
    out, code = run_on_pty(rt.cmd("exec", "-t", cid, "sh", "-c", "tty; exit 4"))
    assert code == 4 and out.startswith(b"/dev/pts/"), out
    # An exec's terminal is its own: the container's /dev/console is not rebound to it.
    r = rt.ok("exec", cid, "sh", "-c", "test -e /dev/console && echo yes || echo no")
    assert r.stdout == b"no\n"
    rt.ok("delete", "-f", cid)


def test_run_terminal_forwards_signals(rt, bundle, cid):
    """With a terminal relay, a signal to the runtime still reaches the container."""
    import signal
    bundle.process["terminal"] = True
    bundle.args("sh", "-c", "trap 'exit 5' TERM; echo ready; while :; do sleep 0.05; done")
    pid, fd = pty.fork()
    if pid == 0:
        argv = rt.cmd("run", "-b", bundle.path, cid)
        os.execv(argv[0], argv)
    out = b""
    while b"ready" not in out:
        out += os.read(fd, 1024)
    time.sleep(0.1)
    os.kill(pid, signal.SIGTERM)
    while True:
        try:
            if not os.read(fd, 1024):
                break
        except OSError:
            break
    _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 5
