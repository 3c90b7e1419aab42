"""Helpers for integration tests: start real ganglion processes on port 0 in temp folders."""
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request

GANGLION = os.environ.get("GANGLION_BIN", "ganglion")


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_get(url, timeout=5.0):
    """Returns (status, body) without raising on HTTP error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class EdgeProcess:
    """A real `ganglion edge` on loopback with port 0 listeners and its own data folder."""

    def __init__(self, *args, data_dir=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="ganglion-test-")
        self.data_dir = data_dir or os.path.join(self.tmp.name, "data")
        self.args = list(args)
        self.proc = None
        self.endpoints = None

    def start(self):
        endpoints = os.path.join(self.data_dir, "endpoints.json")
        if os.path.exists(endpoints):
            os.remove(endpoints)
        cmd = [GANGLION, "edge", "--data.dir", self.data_dir,
               "--http.listen", "127.0.0.1:0", *self.args]
        self.log = open(os.path.join(self.tmp.name, "edge.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(endpoints) or self.proc.poll() is not None,
                 what="edge endpoints.json")
        if self.proc.poll() is not None:
            raise AssertionError(f"edge exited with {self.proc.returncode}: {self.output()}")
        with open(endpoints) as f:
            self.endpoints = json.load(f)
        return self

    def url(self, path):
        return f"http://{self.endpoints['http']}{path}"

    def output(self):
        self.log.flush()
        with open(os.path.join(self.tmp.name, "edge.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("edge did not stop on " + str(sig))
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        self.log.close()
        self.tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
