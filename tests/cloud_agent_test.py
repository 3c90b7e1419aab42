"""The edge node's cloud agent against a real `ganglion cloud`: enrolment with a bootstrap
token, heartbeats over MQTT 5 with mutual TLS, the node's health in the registry going offline
when the edge stops and healthy again when it comes back (without the token: the identity is
kept under <data.dir>/cloud), desired state persisted on the node, the uplink on the enrolled
identity.

Skipped with a message when the binary has no `cloud` command (the controller is built by
another part)."""
import json
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from support import GANGLION, EdgeProcess, http_get, wait_for


def has_cloud_command():
    try:
        r = subprocess.run([GANGLION, "cloud", "--help"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


class CloudProcess:
    """A real `ganglion cloud` on loopback port 0 with short health grace periods."""

    def __init__(self, *args, mqtt_listen="tls://127.0.0.1:0"):
        self.tmp = tempfile.TemporaryDirectory(prefix="ganglion-cloud-test-")
        self.data_dir = os.path.join(self.tmp.name, "cloud")
        self.mqtt_listen = mqtt_listen
        self.args = list(args)
        self.proc = None
        self.admin_token = None

    def start(self):
        endpoints = os.path.join(self.data_dir, "endpoints.json")
        if os.path.exists(endpoints):
            os.remove(endpoints)
        self.out_path = os.path.join(self.tmp.name, "cloud.out")
        self.out = open(self.out_path, "ab")
        self.proc = subprocess.Popen(
            [GANGLION, "cloud", "--cloud.data_dir", self.data_dir,
             "--cloud.api.listen", "127.0.0.1:0", "--cloud.mqtt.listen", self.mqtt_listen,
             *self.args],
            stdout=self.out, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(endpoints) or self.proc.poll() is not None,
                 timeout=30, what="cloud endpoints.json")
        if self.proc.poll() is not None:
            raise AssertionError(f"cloud exited with {self.proc.returncode}: {self.output()}")
        with open(endpoints) as f:
            self.endpoints = json.load(f)
        if self.admin_token is None:
            m = wait_for(lambda: re.search(r"admin API token[^:]*: (\S+)", self.output()),
                         what="admin token on stdout")
            self.admin_token = m.group(1)
        self.ssl = ssl.create_default_context(cafile=self.endpoints["ca"])
        return self

    def output(self):
        self.out.flush()
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace")

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.endpoints["api"] + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.admin_token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def node(self, node_id):
        status, body = self.api("GET", "/v1/nodes")
        if status != 200:
            return None
        for item in body["items"]:
            if item["id"] == node_id:
                return item
        return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self):
        self.stop()
        self.out.close()
        self.tmp.cleanup()


@unittest.skipUnless(has_cloud_command(),
                     "`ganglion cloud` is not in this build (the controller part is missing)")
class CloudAgentTest(unittest.TestCase):
    def setUp(self):
        self.cloud = CloudProcess("--cloud.heartbeat.interval", "500ms",
                                  "--cloud.heartbeat.offline_grace", "3s",
                                  "--cloud.health.check_interval", "200ms").start()
        self.addCleanup(self.cloud.close)

    def token(self, uses=1):
        status, body = self.cloud.api("POST", "/v1/tokens",
                                      {"uses": uses, "ttl": "10m", "labels": {"site": "test"}})
        self.assertEqual(status, 201, body)
        return body["token"]

    def edge(self, node_id, *extra):
        e = EdgeProcess("--node.id", node_id, "--mqtt.listeners", "tcp://127.0.0.1:0",
                        "--cloud.url", self.cloud.endpoints["api"],
                        "--cloud.heartbeat_interval", "500ms", *extra)
        self.addCleanup(e.close)
        return e

    def health(self, node_id):
        n = self.cloud.node(node_id)
        return n["health"] if n else None

    def test_enrols_heartbeats_goes_offline_and_comes_back(self):
        edge = self.edge("edge-1", "--cloud.token", self.token()).start()
        wait_for(lambda: self.health("edge-1") == "healthy", timeout=20,
                 what="edge-1 healthy in the registry")
        node = self.cloud.node("edge-1")
        self.assertEqual(node["labels"].get("site"), "test")
        heartbeat = node["heartbeat"]
        for field in ("ts", "version", "cpu", "mem_bytes", "disk_free_bytes", "uplink_backlog",
                      "rules", "link_rtt_ms"):
            self.assertIn(field, heartbeat)

        # The node's side: enrolled, link up, heartbeats acknowledged; the key is owner-only.
        status, body = http_get(edge.url("/cloud"))
        self.assertEqual(status, 200)
        agent = json.loads(body)
        self.assertEqual(agent["enrolment"], "enrolled")
        self.assertTrue(agent["link_up"])
        self.assertEqual(agent["identity"]["ca_source"], "first-use")
        wait_for(lambda: json.loads(http_get(edge.url("/cloud"))[1])["heartbeats_acked"] >= 2,
                 what="acknowledged heartbeats")
        key = os.path.join(edge.data_dir, "cloud", "node.key")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        self.assertGreaterEqual(edge.metric("ganglion_cloud_heartbeats_sent_total"), 2)

        # Stopped: offline after the grace period.
        self.assertEqual(edge.stop(), 0, edge.output()[-4000:])
        wait_for(lambda: self.health("edge-1") == "offline", timeout=20,
                 what="edge-1 offline after the edge stopped")

        # Restarted without the (used) token: the stored identity is enough.
        i = edge.args.index("--cloud.token")
        del edge.args[i:i + 2]
        edge.log.close()
        edge.start()
        wait_for(lambda: self.health("edge-1") == "healthy", timeout=20,
                 what="edge-1 healthy again after the restart")
        self.assertNotIn("enrolment attempt", edge.output())

    def test_desired_state_is_persisted_on_the_node(self):
        edge = self.edge("edge-2", "--cloud.token", self.token()).start()
        wait_for(lambda: self.health("edge-2") == "healthy", timeout=20, what="edge-2 healthy")
        status, body = self.cloud.api("PATCH", "/v1/nodes/edge-2/twin",
                                      {"desired": {"modules": {"counter": "1.0"}}})
        self.assertEqual(status, 200, body)
        desired_file = os.path.join(edge.data_dir, "cloud", "desired.json")
        wait_for(lambda: os.path.exists(desired_file), what="desired.json on the node")
        with open(desired_file) as f:
            desired = json.load(f)
        self.assertEqual(desired["version"], body["desired"]["version"])
        agent = json.loads(http_get(edge.url("/cloud"))[1])
        self.assertEqual(agent["desired_version"], str(body["desired"]["version"]))
        # The new version is reported back.
        wait_for(lambda: self.cloud.node("edge-2")["twin"]["reported_version"] is not None
                 and self.cloud.api("GET", "/v1/nodes/edge-2/twin")[1]["reported"]["properties"]
                 .get("desired_version") == str(body["desired"]["version"]),
                 what="reported desired_version at the controller")

    def test_uplink_uses_the_enrolled_identity(self):
        edge = self.edge("edge-3", "--cloud.token", self.token(),
                         "--uplink.routes", "sensors/# telemetry").start()
        wait_for(lambda: self.health("edge-3") == "healthy", timeout=20, what="edge-3 healthy")
        status, body = http_get(edge.url("/uplink"))
        self.assertEqual(status, 200)
        uplink = json.loads(body)
        self.assertTrue(uplink.get("enabled"), uplink)
        self.assertEqual(uplink["url"], self.cloud.endpoints["mqtt"])
        wait_for(lambda: json.loads(http_get(edge.url("/uplink"))[1]).get("link") == "connected",
                 timeout=20, what="uplink connected to the controller with the node certificate")

    def test_simulated_fleet_enrols_and_heartbeats(self):
        tmp = tempfile.TemporaryDirectory(prefix="ganglion-sim-test-")
        self.addCleanup(tmp.cleanup)
        out_path = os.path.join(tmp.name, "sim.out")
        args = [GANGLION, "sim", "nodes", "--count", "20", "--cloud", self.cloud.endpoints["api"],
                "--token", self.token(uses=20), "--ca", self.cloud.endpoints["ca"],
                "--heartbeat", "500ms", "--batch-interval", "500ms", "--status-interval", "500ms",
                "--data", os.path.join(tmp.name, "sim"), "--prefix", "simt"]
        with open(out_path, "wb") as out:
            sim = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: sim.poll() is None and (sim.kill(), sim.wait()))

        def healthy():
            status, body = self.cloud.api("GET", "/v1/nodes")
            return status == 200 and sum(1 for n in body["items"]
                                         if n["id"].startswith("simt-") and n["health"] == "healthy") == 20
        wait_for(healthy, timeout=60, what="20 simulated nodes healthy")
        wait_for(lambda: re.search(r"connected 20 ", open(out_path).read()), timeout=10,
                 what="the simulator's status line showing 20 connected")
        # Their uplink batches are ingested (the controller acknowledges them).
        wait_for(lambda: re.search(r"batches/s [1-9]", open(out_path).read()), timeout=20,
                 what="batches flowing")
        sim.send_signal(signal.SIGINT)
        self.assertEqual(sim.wait(30), 0)
        self.assertNotRegex(open(out_path).read(), r"publish [1-9]")

        # A rerun on the same --data enrols nobody (the token is used up) and connects again.
        with open(out_path, "wb") as out:
            sim = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: re.search(r"connected 20 ", open(out_path).read()), timeout=60,
                 what="20 simulated nodes connected again from cached identities")
        self.assertNotRegex(open(out_path).read(), r"refused [1-9]")
        sim.send_signal(signal.SIGINT)
        self.assertEqual(sim.wait(30), 0)

    def simulator(self, cloud, count, *extra):
        """`ganglion sim nodes` enrolled with `cloud`; returns (process, path of its output)."""
        tmp = tempfile.TemporaryDirectory(prefix="ganglion-sim-test-")
        self.addCleanup(tmp.cleanup)
        status, body = cloud.api("POST", "/v1/tokens", {"uses": count, "ttl": "10m"})
        self.assertEqual(status, 201, body)
        out_path = os.path.join(tmp.name, "sim.out")
        with open(out_path, "wb") as out:
            sim = subprocess.Popen(
                [GANGLION, "sim", "nodes", "--count", str(count), "--cloud", cloud.endpoints["api"],
                 "--token", body["token"], "--ca", cloud.endpoints["ca"], "--status-interval", "200ms",
                 "--data", os.path.join(tmp.name, "sim"), "--prefix", "simr", *extra],
                stdout=out, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: sim.poll() is None and (sim.kill(), sim.wait()))
        return sim, out_path

    @staticmethod
    def status_lines(path, after=0):
        with open(path) as f:
            return [line for line in f.read().splitlines() if line.startswith("[")][after:]

    @staticmethod
    def tail(path):
        with open(path) as f:
            return f.read()[-3000:]

    def test_simulated_fleet_survives_controller_restarts(self):
        # The controller closing every node's connection at once (SIGTERM) crashed the
        # simulator (segfault within one or two restarts): MqttClient destroyed a node's TLS
        # stream when a write failed while its read was pending, and when that read then
        # completed (end of stream), Asio went on using the freed SSL engine.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cloud = CloudProcess(mqtt_listen=f"tls://127.0.0.1:{port}").start()
        self.addCleanup(cloud.close)
        sim, out_path = self.simulator(cloud, 40, "--heartbeat", "500ms", "--batch-interval", "100ms")
        wait_for(lambda: any("connected 40 " in l for l in self.status_lines(out_path)), timeout=60,
                 what="40 simulated nodes connected")
        for i in range(3):
            mark = len(self.status_lines(out_path))
            cloud.stop()
            wait_for(lambda: sim.poll() is not None or
                     any("connected 0 " in l for l in self.status_lines(out_path, mark)),
                     timeout=20, what=f"every simulated node's link down (restart {i + 1})")
            self.assertIsNone(sim.poll(), "the simulator exited: " + self.tail(out_path))
            cloud.out.close()
            cloud.start()
            mark = len(self.status_lines(out_path))
            wait_for(lambda: any("connected 40 " in l for l in self.status_lines(out_path, mark)),
                     timeout=90, what=f"40 simulated nodes connected again (restart {i + 1})")
        sim.send_signal(signal.SIGINT)
        self.assertEqual(sim.wait(30), 0, self.tail(out_path))

    def test_a_wrong_token_is_a_configuration_error(self):
        edge = self.edge("edge-4", "--cloud.token", "gbt_00000000000000000000000000000000")
        with self.assertRaises(AssertionError) as ctx:
            edge.start()
        self.assertIn("exited with 2", str(ctx.exception))
        self.assertIn("401", edge.output())
        self.assertNotIn("gbt_0000", edge.output())  # the token is never logged


if __name__ == "__main__":
    unittest.main()
