"""The real relay for the tests, an SSE subscriber over urllib, and a small
HTTP proxy that counts requests and can drop answers."""

import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
RELAY = None


class Relay:
    def __init__(self, secret, extra_env=None, binary=None):
        """extra_env: more settings (RELAY_AUTHORIZE_URL …); binary: reuse
        another Relay's build."""
        self.dir = tempfile.mkdtemp(prefix="relay-bin-")
        binary = binary or os.environ.get("RELAY_BIN")
        if not binary:
            binary = os.path.join(self.dir, "relay")
            subprocess.run(["go", "build", "-o", binary, "./app"], cwd=REPO, check=True)
        self.binary = binary
        self.publish_key = secrets.token_hex(32)
        env = dict(os.environ)
        env.update(
            RELAY_ADDR="127.0.0.1:0",
            RELAY_JWT_SECRET=secret,
            RELAY_PUBLISH_KEYS="django=%s:project_*,user_*_notifications" % self.publish_key,
            REDIS_URL="",
            RELAY_LOG_LEVEL="warn",
        )
        env.update(extra_env or {})
        for k in ("RELAY_URL", "RELAY_PUBLISH_KEY", "RELAY_PUBLISH_TOKEN", "RELAY_DEV"):
            env.pop(k, None)
        self.log = open(os.path.join(self.dir, "relay.log"), "w+b")
        self.proc = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=self.log, cwd=self.dir)
        line = self.proc.stdout.readline().decode()
        if "listening on " not in line:
            self.stop()
            raise RuntimeError("relay did not start: %r; its log: %s" % (line, self.log_text()))
        self.url = line.split("listening on ", 1)[1].split()[0]
        # Drain the rest of stdout so relay never blocks writing to it.
        self._drain = threading.Thread(target=self.proc.stdout.read, name="relay-stdout")
        self._drain.start()

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_drain", None):
            self._drain.join()
        self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def start(secret):
    global RELAY
    t0 = time.monotonic()
    RELAY = Relay(secret)
    print("relay started at %s in %.1fs (go build included)" % (RELAY.url, time.monotonic() - t0))


def stop():
    global RELAY
    if RELAY is not None:
        RELAY.stop()
        RELAY = None


class Subscriber:
    """An SSE stream of relay read by a thread: events land in self.events."""

    def __init__(self, token, channels, base=None):
        q = "&".join("channel=" + c for c in channels)
        req = urllib.request.Request(
            "%s/events?%s" % (base or RELAY.url, q),
            headers={"Accept": "text/event-stream", "Authorization": "Bearer " + token},
        )
        self._resp = urllib.request.urlopen(req, timeout=30)
        self.events = []  # (sse event name, id line, decoded data)
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="sse-subscriber")
        self._thread.start()
        self.wait_for(lambda evs: any(e[0] == "connection_established" for e in evs))

    def _read(self):
        name, id_, data = "message", None, []
        try:
            for raw in self._resp:
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if data:
                        with self._cond:
                            self.events.append((name, id_, json.loads("\n".join(data))))
                            self._cond.notify_all()
                    name, id_, data = "message", None, []
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("id:"):
                    id_ = line[3:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
        except (OSError, ValueError):
            pass  # closed by close()
        finally:
            with self._cond:
                self._cond.notify_all()

    def messages(self):
        """The stored events (those with an id) received since the stream's
        connection_established: presence_state and relay's own join of this
        subscriber come before it."""
        with self._cond:
            names = [n for n, _, _ in self.events]
            start = names.index("connection_established") + 1
            return [d for n, _, d in self.events[start:] if n == "message" and "id" in d]

    def wait_for(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(list(self.events)):
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    raise AssertionError("timed out waiting; received %r" % (self.events,))
                self._cond.wait(left)

    def wait_for_type(self, type_, timeout=10):
        self.wait_for(lambda evs: any(e[2].get("type") == type_ for e in evs if e[0] == "message"), timeout)

    def close(self):
        # urllib offers no way to interrupt a blocked read but shutting the socket.
        if self._resp.fp is not None:  # None once relay has ended the stream
            try:
                self._resp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)
        self._resp.close()
        assert not self._thread.is_alive(), "SSE reader did not end"


class Proxy:
    """Forwards every request to target, counting them. ``drop_answers`` lost
    answers: the request reaches relay, its answer never reaches the client.
    ``fail`` requests get that status (e.g. 503) without reaching relay."""

    def __init__(self, target):
        self.target = target
        self.requests = []  # (method, path, body)
        self.drop_answers = 0
        self.fail = []  # statuses for the next requests
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._forward()

            def do_POST(self):
                self._forward()

            def _forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                with proxy.lock:
                    proxy.requests.append((self.command, self.path, body))
                    fail = proxy.fail.pop(0) if proxy.fail else None
                    drop = proxy.drop_answers > 0
                    proxy.drop_answers -= drop
                if fail:
                    out = json.dumps({"error": "injected", "message": "the proxy failed this request"}).encode()
                    self._answer(fail, {"Content-Type": "application/json", "Retry-After": "0"}, out)
                    return
                req = urllib.request.Request(proxy.target + self.path, data=body, method=self.command)
                for h in ("Authorization", "Content-Type", "Accept", "Idempotency-Key"):
                    if self.headers.get(h):
                        req.add_header(h, self.headers[h])
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        status, headers, out = r.status, r.headers, r.read()
                except urllib.error.HTTPError as e:
                    status, headers, out = e.code, e.headers, e.read()
                if drop:
                    self.close_connection = True  # relay took it; the client never hears
                    return
                self._answer(status, headers, out)

            def _answer(self, status, headers, out):
                self.send_response(status)
                for h in ("Content-Type", "Retry-After", "Idempotent-Replayed"):
                    if headers.get(h):
                        self.send_header(h, headers[h])
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = False  # server_close joins the handler threads
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="proxy")
        self._thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


class FakeRelay(Proxy):
    """Answers every request with a fixed JSON (for relay routes that another
    engineer builds: /api/disconnect, /api/channels/<c>/cursor)."""

    def __init__(self, status, answer):
        super().__init__(target=None)
        proxy = self
        outer = self.server.RequestHandlerClass

        class Fixed(outer):
            def _forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                with proxy.lock:
                    proxy.requests.append((self.command, self.path, body, dict(self.headers)))
                self._answer(status, {"Content-Type": "application/json"}, json.dumps(answer).encode())

        self.server.RequestHandlerClass = Fixed
