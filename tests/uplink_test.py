"""The store-and-forward uplink end to end: real `ganglion edge`, Debian's mosquitto as the
upstream receiver, paho publishers. Batches are decoded here (format: src/uplink/README.md),
zstd bodies through the `zstd` command line tool."""
import getpass
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as paho

from support import CertificateAuthority, EdgeProcess, http_get, wait_for

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
ZSTD = shutil.which("zstd")


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


def decode_batch(data):
    """Returns (header dict, [(offset, ts_ms, topic, payload bytes)])."""
    magic, version, comp, _flags, seq, end, count, raw = struct.unpack_from(">4sBBHQQII", data, 0)
    assert magic == b"GUB1" and version == 1, (magic, version)
    pos = 32
    strings = []
    for _ in range(3):
        n = data[pos]
        strings.append(data[pos + 1:pos + 1 + n].decode())
        pos += 1 + n
    body = data[pos:]
    if comp == 1:
        body = subprocess.run([ZSTD, "-d", "-q", "-c"], input=body, stdout=subprocess.PIPE,
                              check=True).stdout
    assert len(body) == raw, (len(body), raw)
    records = []
    p = 0
    for _ in range(count):
        offset, ts = struct.unpack_from(">Qq", body, p)
        p += 16
        (tlen,) = struct.unpack_from(">H", body, p)
        p += 2
        topic = body[p:p + tlen].decode()
        p += tlen
        (plen,) = struct.unpack_from(">I", body, p)
        p += 4
        records.append((offset, ts, topic, body[p:p + plen]))
        p += plen
    assert p == len(body)
    header = dict(sequence=seq, end=end, count=count, node=strings[0], cls=strings[1],
                  region=strings[2], compression=comp, raw=raw, size=len(data))
    return header, records


class Mosquitto:
    """The upstream receiver on a fixed loopback port, with persistence so that a persistent
    subscriber's queue survives its restarts."""

    def __init__(self, tmp, port):
        self.port = port
        self.dir = tmp
        self.conf = os.path.join(tmp, "mosquitto.conf")
        self.log_path = os.path.join(tmp, "mosquitto.log")
        with open(self.conf, "w") as f:
            # Run as root, mosquitto would switch to the user "mosquitto", which cannot read
            # the test's private temporary folder.
            f.write(f"user {getpass.getuser()}\n"
                    f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    f"persistence true\npersistence_location {tmp}/\n"
                    "max_queued_messages 0\nmax_inflight_messages 100\n")
        self.proc = None

    def add_mutual_tls_listener(self, port, ca, cert, key):
        """A second listener that requires a client certificate signed by `ca`."""
        with open(self.conf, "a") as f:
            f.write(f"listener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
                    "require_certificate true\nuse_identity_as_username true\n")

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: port_open(self.port) or self.proc.poll() is not None, what="mosquitto")
        if self.proc.poll() is not None:
            raise AssertionError("mosquitto exited: " + open(self.log_path).read())
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
            self.log.close()
        wait_for(lambda: not port_open(self.port), what="mosquitto port closed")


class Collector:
    """The cloud's ingest in miniature: a persistent paho subscriber to ganglion/v1/+/up/#
    that decodes batches and drops duplicates by (node, class, record offset < last end)."""

    def __init__(self, port, client_id="collector"):
        self.lock = threading.Lock()
        self.records = {}      # class -> [(offset, topic, payload)]
        self.hwm = {}          # (node, class) -> end of the last ingested batch
        self.duplicates = 0    # records the batch sequence identified as already ingested
        self.batches = []      # headers in arrival order
        self.errors = []
        self.client = paho.Client(client_id=client_id, clean_session=False,
                                  protocol=paho.MQTTv311)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc: c.subscribe("ganglion/v1/+/up/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        try:
            header, records = decode_batch(msg.payload)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))
            return
        with self.lock:
            key = (header["node"], header["cls"])
            hwm = self.hwm.get(key, 0)
            for offset, _ts, topic, payload in records:
                if offset < hwm:
                    self.duplicates += 1
                    continue
                self.records.setdefault(header["cls"], []).append((offset, topic, payload))
            self.hwm[key] = max(hwm, header["end"])
            self.batches.append(header)

    def payloads(self, cls):
        with self.lock:
            return [p for _, _, p in self.records.get(cls, [])]

    def count(self, cls):
        with self.lock:
            return len(self.records.get(cls, []))

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def uplink_args(port, *extra, url=None):
    return ["--uplink.url", url or f"tcp://127.0.0.1:{port}",
            "--uplink.routes", "factory/+/alerts/# alert,factory/+/telemetry/# telemetry",
            "--uplink.batch_linger", "50ms", "--uplink.reconnect_min", "100ms",
            "--uplink.reconnect_max", "500ms", "--node.id", "site-7", *extra]


def status(edge):
    code, body = http_get(edge.url("/uplink"))
    assert code == 200, body
    return json.loads(body)


def redelivered_dropped(edge):
    return sum(c["dropped"]["redelivered"] for c in status(edge)["classes"])


def class_status(edge, cls):
    for c in status(edge)["classes"]:
        if c["name"] == cls:
            return c
    raise AssertionError(cls)


def publish_all(host_port, messages, qos=1):
    """Publishes (topic, payload) with paho, waits for every PUBACK; returns the client."""
    c = paho.Client(client_id=f"pub-{random.random()}", protocol=paho.MQTTv311)
    c.connect(*host_port)
    c.loop_start()
    infos = [c.publish(t, p, qos=qos) for t, p in messages]
    for i in infos:
        i.wait_for_publish(10)
    c.loop_stop()
    c.disconnect()
    return all(i.is_published() for i in infos)


@unittest.skipUnless(ZSTD, "needs the zstd command line tool (Debian package zstd)")
class UplinkTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ganglion-uplink-")
        self.port = free_port()
        self.mosquitto = Mosquitto(self.tmp.name, self.port)
        self.collector = None
        self.edge = None

    def tearDown(self):
        if self.edge:
            self.edge.close()
        if self.collector:
            self.collector.close()
        self.mosquitto.stop()
        self.tmp.cleanup()

    def start_edge(self, *extra, data_dir=None, url=None):
        self.edge = EdgeProcess(*uplink_args(self.port, *extra, url=url), data_dir=data_dir)
        self.edge.start()
        wait_for(lambda: status(self.edge)["routes_subscribed"], what="uplink routes subscribed")
        return self.edge

    def test_routes_go_up_in_batches_with_policy_applied(self):
        self.mosquitto.start()
        self.collector = Collector(self.port)
        self.start_edge("--uplink.policy.local_only", "factory/+/telemetry/camera",
                        "--uplink.policy.fields",
                        "factory/# drop operator.badge,factory/# hash worker_id,factory/# redact card",
                        "--uplink.policy.hash_key", "s3cret", "--uplink.policy.region", "eu-west")
        msgs = [(f"factory/a/telemetry/t{i % 3}", json.dumps({"n": i, "worker_id": "w9",
                 "operator": {"name": "Ann", "badge": "B-17"}, "card": "4111"})) for i in range(50)]
        msgs.append(("factory/a/telemetry/camera", "raw jpeg bytes"))
        msgs.append(("factory/a/alerts/fire", json.dumps({"n": 1000, "level": "high"})))
        msgs.append(("other/topic", "not routed"))
        self.assertTrue(publish_all(self.edge.mqtt(), msgs))
        wait_for(lambda: self.collector.count("telemetry") == 50 and self.collector.count("alert") == 1,
                 timeout=15, what="batches upstream")
        self.assertEqual(self.collector.errors, [])
        docs = [json.loads(p) for p in self.collector.payloads("telemetry")]
        self.assertEqual([d["n"] for d in docs], list(range(50)))
        import hashlib, hmac
        want = hmac.new(b"s3cret", b"w9", hashlib.sha256).hexdigest()
        for d in docs:
            self.assertEqual(d["worker_id"], want)
            self.assertEqual(d["operator"], {"name": "Ann"})
            self.assertEqual(d["card"], "***")
        headers = [h for h in self.collector.batches if h["cls"] == "telemetry"]
        self.assertEqual(headers[0]["node"], "site-7")
        self.assertEqual(headers[0]["region"], "eu-west")
        self.assertEqual(headers[0]["compression"], 1)
        # Committed once acknowledged; the policy's counters are visible.
        wait_for(lambda: class_status(self.edge, "telemetry")["backlog_records"] == 0, what="backlog 0")
        st = class_status(self.edge, "telemetry")
        self.assertEqual(st["records_acked"], 50)
        self.assertEqual(st["dropped"]["local_only"], 1)
        _, body = http_get(self.edge.url("/uplink/policy"))
        policy = json.loads(body)
        self.assertEqual(policy["local_only"][0]["dropped"], 1)
        self.assertEqual({f["action"]: f["applied"] for f in policy["fields"]},
                         {"drop": 50, "hash": 50, "redact": 50})
        self.assertNotIn("s3cret", body)
        self.assertEqual(status(self.edge)["link"], "connected")
        wait_for(lambda: self.edge.metric("ganglion_uplink_link_up") == 1, what="link metric")
        _, metrics = http_get(self.edge.url("/metrics"))
        self.assertIn('ganglion_uplink_records_acked_total{class="telemetry"} 50', metrics)
        self.assertIn('ganglion_uplink_dropped_total{class="telemetry",reason="local_only"} 1', metrics)

    def test_uplink_over_mutual_tls_to_mosquitto_and_a_foreign_ca_is_refused(self):
        ca = CertificateAuthority(self.tmp.name)
        server_cert, server_key = ca.issue("upstream", server=True)
        node_cert, node_key = ca.issue("site-7")
        foreign = CertificateAuthority(os.path.join(self.tmp.name), name="foreign-ca")
        tls_port = free_port()
        self.mosquitto.add_mutual_tls_listener(tls_port, ca.cert, server_cert, server_key)
        self.mosquitto.start()
        self.collector = Collector(self.port)  # reads on the plain listener
        url = f"tls://127.0.0.1:{tls_port}"
        data_dir = os.path.join(self.tmp.name, "edge-data")
        # A node that trusts another CA refuses the receiver's certificate: nothing goes up,
        # the records wait in the log.
        client_cert = ("--uplink.tls.certificate", node_cert, "--uplink.tls.key", node_key)
        self.start_edge("--uplink.tls.ca", foreign.cert, *client_cert, url=url, data_dir=data_dir)
        msgs = [(f"factory/a/telemetry/t{i % 3}", json.dumps({"n": i})) for i in range(30)]
        self.assertTrue(publish_all(self.edge.mqtt(), msgs[:10]))
        wait_for(lambda: status(self.edge)["last_error"] != "", what="a TLS error")
        st = status(self.edge)
        self.assertNotEqual(st["link"], "connected")
        self.assertIn("certificate", st["last_error"].lower())
        self.assertEqual(class_status(self.edge, "telemetry")["backlog_records"], 10)
        self.assertEqual(self.collector.count("telemetry"), 0)
        self.edge.close()
        # With the right CA and its certificate the backlog drains over mutual TLS.
        self.start_edge("--uplink.tls.ca", ca.cert, *client_cert, url=url, data_dir=data_dir)
        self.assertTrue(publish_all(self.edge.mqtt(), msgs[10:]))
        wait_for(lambda: self.collector.count("telemetry") == 30, timeout=20, what="30 records upstream")
        self.assertEqual([json.loads(p)["n"] for p in self.collector.payloads("telemetry")],
                         list(range(30)))
        self.assertEqual(status(self.edge)["link"], "connected")
        self.assertEqual(self.collector.errors, [])

    def test_records_pile_up_while_upstream_is_down_then_drain_in_priority_order(self):
        # Register the collector's persistent session, then take the receiver away.
        self.mosquitto.start()
        self.collector = Collector(self.port)
        time.sleep(0.3)
        self.collector.close()
        self.mosquitto.stop()
        self.start_edge()
        telemetry = [(f"factory/b/telemetry/s{i % 5}", json.dumps({"seq": i, "v": i * 0.5}))
                     for i in range(2000)]
        alerts = [(f"factory/b/alerts/a", json.dumps({"seq": i})) for i in range(20)]
        self.assertTrue(publish_all(self.edge.mqtt(), telemetry + alerts))
        wait_for(lambda: class_status(self.edge, "telemetry")["backlog_records"] == 2000,
                 what="telemetry backlog")
        # Each route is its own subscription: alerts may be logged after the telemetry.
        wait_for(lambda: class_status(self.edge, "alert")["backlog_records"] == 20,
                 what="alert backlog")
        self.assertNotEqual(status(self.edge)["link"], "connected")
        # Local pub/sub keeps working while the link is down.
        self.assertTrue(publish_all(self.edge.mqtt(), [("local/only", "x")]))
        self.mosquitto.start()
        self.collector = Collector(self.port)
        wait_for(lambda: self.collector.count("telemetry") == 2000 and self.collector.count("alert") == 20,
                 timeout=30, what="drained upstream")
        seqs = [json.loads(p)["seq"] for p in self.collector.payloads("telemetry")]
        self.assertEqual(seqs, list(range(2000)))
        # Alerts drained first: the first batch after the reconnect is an alert batch.
        self.assertEqual(self.collector.batches[0]["cls"], "alert")
        wait_for(lambda: class_status(self.edge, "telemetry")["backlog_records"] == 0, what="committed")
        self.assertGreaterEqual(status(self.edge)["connects"], 1)

    def test_full_disk_budget_drops_by_policy_and_local_pubsub_goes_on(self):
        # No receiver at all; a tiny budget fills after a few hundred records.
        self.start_edge("--uplink.disk_budget", "16KiB", "--uplink.segment_bytes", "4KiB",
                        "--uplink.classes", "alert priority=2 full=refuse-newest,telemetry priority=1 full=refuse-newest")
        received = []
        sub = paho.Client(client_id="local-sub", protocol=paho.MQTTv311)
        sub.on_message = lambda c, u, m: received.append(m.payload)
        sub.connect(*self.edge.mqtt())
        sub.subscribe("factory/+/telemetry/#", qos=1)
        sub.loop_start()
        time.sleep(0.2)
        msgs = [("factory/c/telemetry/x", json.dumps({"seq": i, "pad": "x" * 100})) for i in range(500)]
        start = time.monotonic()
        self.assertTrue(publish_all(self.edge.mqtt(), msgs), "devices were not blocked")
        self.assertLess(time.monotonic() - start, 20)
        wait_for(lambda: len(received) == 500, what="local subscriber got everything")
        sub.loop_stop()
        sub.disconnect()
        st = class_status(self.edge, "telemetry")
        self.assertGreater(st["dropped"]["quota"], 0)
        self.assertEqual(st["dropped"]["quota"] + st["logged"], 500)
        self.assertLessEqual(status(self.edge)["disk_bytes"], 16 * 1024 + 4096)
        wait_for(lambda: self.edge.metric("ganglion_uplink_link_up") == 0 and
                 'reason="quota"} 0' not in http_get(self.edge.url("/metrics"))[1].split(
                     'ganglion_uplink_dropped_total{class="telemetry"')[1][:40],
                 what="quota drops in /metrics")
        self.assertIn("cannot log a message", self.edge.output())

    def test_kill_9_at_random_moments_loses_no_acknowledged_message(self):
        self.mosquitto.start()
        self.collector = Collector(self.port)
        data_dir = os.path.join(self.tmp.name, "edge-data")
        rng = random.Random(int(os.environ.get("UPLINK_SEED", "1234")))
        acked = set()
        seq = 0
        kills = 0
        recognised = 0  # broker redeliveries the uplink recognised, over all incarnations
        for round_ in range(6):
            edge = EdgeProcess(*uplink_args(self.port, "--uplink.fsync", "always"), data_dir=data_dir)
            edge.start()
            if round_ == 0:
                wait_for(lambda: status(edge)["routes_subscribed"], what="routes")
            lock = threading.Lock()
            mids = {}
            pub = paho.Client(client_id=f"pub-{round_}", protocol=paho.MQTTv311)

            def on_publish(c, u, mid, mids=mids):
                with lock:
                    if mid in mids:
                        acked.add(mids.pop(mid))
                    else:
                        mids[mid] = None  # PUBACK before publish() returned

            pub.on_publish = on_publish
            pub.connect(*edge.mqtt())
            pub.loop_start()
            deadline = time.monotonic() + rng.uniform(0.3, 1.2)
            while time.monotonic() < deadline:
                info = pub.publish(f"factory/k/telemetry/m{seq % 4}", json.dumps({"seq": seq}), qos=1)
                with lock:
                    if mids.get(info.mid, 0) is None:
                        acked.add(seq)
                        del mids[info.mid]
                    else:
                        mids[info.mid] = seq
                seq += 1
                if seq % 50 == 0:
                    time.sleep(0.005)
            recognised += redelivered_dropped(edge)
            edge.kill()  # SIGKILL while publishing and draining
            kills += 1
            pub.loop_stop()
            edge.log.close()
            edge.tmp.cleanup()
        # The last incarnation drains whatever is left.
        self.edge = EdgeProcess(*uplink_args(self.port), data_dir=data_dir)
        self.edge.start()
        self.assertGreater(len(acked), 100)

        def got():
            return {json.loads(p)["seq"] for p in self.collector.payloads("telemetry")}

        wait_for(lambda: acked <= got(), timeout=60,
                 what=f"all {len(acked)} acknowledged messages upstream")
        payloads = [json.loads(p)["seq"] for p in self.collector.payloads("telemetry")]
        redelivered = len(payloads) - len(set(payloads))
        # Every duplicate that reached the receiver was identified by the batch sequence. The
        # broker's redeliveries after a kill (delivered to the uplink, logged, acknowledged, but
        # the acknowledgement not yet journaled) were recognised by their stored id and not
        # logged again.
        recognised += redelivered_dropped(self.edge)
        print(f"\nkill-9: {kills} kills, {seq} published, {len(acked)} acknowledged, all upstream; "
              f"{self.collector.duplicates} duplicate records dropped by sequence, "
              f"{recognised} broker redeliveries recognised and not logged again, "
              f"{redelivered} records logged twice", flush=True)
        self.assertEqual(redelivered, 0, "a message reached the receiver under two offsets")
        self.assertEqual(self.collector.errors, [])


if __name__ == "__main__":
    unittest.main()
