"""`ganglion edge` bridged to a real upstream broker (Debian's mosquitto): both directions,
prefix remapping, no echo loops, and no loss of QoS 1 messages across an upstream restart."""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from support import EdgeProcess, wait_for

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Mosquitto:
    """The upstream broker on a fixed loopback port (kept across restarts)."""

    def __init__(self, tmp, port):
        self.port = port
        self.conf = os.path.join(tmp, "mosquitto.conf")
        self.log_path = os.path.join(tmp, "mosquitto.log")
        with open(self.conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: port_open(self.port) or self.proc.poll() is not None, what="mosquitto")
        if self.proc.poll() is not None:
            raise AssertionError("mosquitto exited: " + open(self.log_path).read())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()
        wait_for(lambda: not port_open(self.port), what="mosquitto port closed")


class Subscriber:
    """mosquitto_sub in the background; lines ("topic payload") collected as they arrive."""

    def __init__(self, port, topic, qos=1):
        self.lines = []
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-v", "-q", str(qos)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def has(self, line):
        return line in self.lines

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.reader.join(5)
        self.proc.stdout.close()


def pub(port, topic, message, qos=1, retain=False):
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-m", message,
            "-q", str(qos)]
    if retain:
        args.append("-r")
    r = subprocess.run(args, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr


def mqtt_port(edge):
    return int(edge.endpoints["mqtt"][0].rsplit(":", 1)[1])


class BridgeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ganglion-bridge-")
        self.upstream = Mosquitto(self.tmp.name, free_port())
        self.upstream.start()
        self.subs = []

    def tearDown(self):
        for s in self.subs:
            s.close()
        if self.upstream.proc and self.upstream.proc.poll() is None:
            self.upstream.stop()
        self.tmp.cleanup()

    def edge(self, *extra):
        return EdgeProcess("--mqtt.listeners", "tcp://127.0.0.1:0",
                           "--bridge.url", f"tcp://127.0.0.1:{self.upstream.port}",
                           "--bridge.reconnect_min", "100ms", "--bridge.reconnect_max", "500ms",
                           *extra)

    def subscribe(self, port, topic):
        s = Subscriber(port, topic)
        self.subs.append(s)
        return s

    def probe(self, pub_port, topic, sub, expect_topic):
        """Publishes probes until the subscriber sees one: the path (and the subscriber) works."""
        n = [0]

        def attempt():
            n[0] += 1
            pub(pub_port, topic, f"probe{n[0]}", qos=0)
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                if any(l.startswith(expect_topic + " probe") for l in sub.lines):
                    return True
                time.sleep(0.02)
            return False
        wait_for(attempt, timeout=20, what=f"{topic} -> {expect_topic}")

    def check_both_directions(self, *extra):
        with self.edge("--bridge.out", "sensors/# 1 site1/", "--bridge.in", "cmd/# 1 site1/",
                       *extra) as edge:
            local = mqtt_port(edge)
            up = self.upstream.port
            # Local -> upstream, with the remote prefix added.
            upstream_sub = self.subscribe(up, "site1/sensors/#")
            self.probe(local, "sensors/probe", upstream_sub, "site1/sensors/probe")
            pub(local, "sensors/temp", "21.5")
            wait_for(lambda: upstream_sub.has("site1/sensors/temp 21.5"), what="out message")
            # Upstream -> local, with the remote prefix removed.
            local_sub = self.subscribe(local, "cmd/#")
            self.probe(up, "site1/cmd/probe", local_sub, "cmd/probe")
            pub(up, "site1/cmd/valve", "open")
            wait_for(lambda: local_sub.has("cmd/valve open"), what="in message")
            # Not bridged: other local topics stay local.
            pub(local, "private/x", "secret")
            pub(local, "sensors/after", "1")
            wait_for(lambda: upstream_sub.has("site1/sensors/after 1"), what="ordering marker")
            self.assertFalse(any("private" in l for l in upstream_sub.lines))
            self.assertEqual(edge.stop(), 0, edge.output()[-4000:])

    def test_bridges_both_directions_mqtt5(self):
        self.check_both_directions()

    def test_bridges_both_directions_mqtt311(self):
        self.check_both_directions("--bridge.version", "311")

    def test_same_topic_both_ways_does_not_echo(self):
        with self.edge("--bridge.out", "loop/# 1", "--bridge.in", "loop/# 1") as edge:
            local = mqtt_port(edge)
            up = self.upstream.port
            upstream_sub = self.subscribe(up, "loop/#")
            local_sub = self.subscribe(local, "loop/#")
            self.probe(local, "loop/probe", upstream_sub, "loop/probe")
            pub(local, "loop/a", "once")
            wait_for(lambda: upstream_sub.has("loop/a once"), what="forwarded")
            pub(up, "loop/b", "down")  # a marker after it, arriving through the bridge
            wait_for(lambda: local_sub.has("loop/b down"), what="marker")
            wait_for(lambda: upstream_sub.has("loop/b down"), what="marker upstream")
            self.assertEqual(local_sub.lines.count("loop/a once"), 1)
            self.assertEqual(upstream_sub.lines.count("loop/a once"), 1)
            self.assertEqual(local_sub.lines.count("loop/b down"), 1)
            self.assertEqual(upstream_sub.lines.count("loop/b down"), 1)

    def test_qos1_messages_survive_an_upstream_restart(self):
        with self.edge("--bridge.out", "sensors/# 1 site1/") as edge:
            local = mqtt_port(edge)
            up = self.upstream.port
            upstream_sub = self.subscribe(up, "site1/sensors/#")
            self.probe(local, "sensors/probe", upstream_sub, "site1/sensors/probe")
            upstream_sub.close()
            self.subs.remove(upstream_sub)

            self.upstream.stop()
            wait_for(lambda: "upstream" in edge.output() and "unavailable" in edge.output(),
                     what="bridge noticed the outage")
            # Retained, so a subscriber that comes after the bridge caught up still sees each
            # one (mosquitto runs without persistence: the bridge's upstream session is gone).
            count = 20
            for i in range(count):
                pub(local, f"sensors/outage/{i}", f"m{i}", qos=1, retain=True)
            self.upstream.start()
            after = self.subscribe(up, "site1/sensors/outage/#")
            expected = {f"site1/sensors/outage/{i} m{i}" for i in range(count)}
            wait_for(lambda: expected <= set(after.lines), timeout=30,
                     what=f"{count} messages upstream after the restart")
            self.assertEqual(edge.stop(), 0, edge.output()[-4000:])


if __name__ == "__main__":
    unittest.main()
