"""The device SDK and `ganglion sim devices` end to end against a real `ganglion edge`:
gd_example_sensor publishes through the edge to mosquitto_sub, keeps readings in its ring
buffer while the edge is down and flushes them in order after the restart; the device
simulator's message counts, rates and ground truth."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from support import GANGLION, MosquittoSub, mqtt_edge, unique, wait_for

BIN_DIR = os.path.dirname(shutil.which(GANGLION) or GANGLION)
SENSOR = os.path.join(BIN_DIR, "gd_example_sensor")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readings(sub):
    """(topic, payload dict) of every message mosquitto_sub printed."""
    out = []
    for line in sub.messages():
        topic, _, payload = line.partition(" ")
        out.append((topic, json.loads(payload)))
    return out


@unittest.skipUnless(os.path.exists(SENSOR), "gd_example_sensor not built")
class SensorExample(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ganglion-device-")
        self.addCleanup(self.tmp.cleanup)

    def start_edge(self, port=0):
        edge = mqtt_edge("tcp")
        if port:
            edge.args = [a.replace("tcp://127.0.0.1:0", f"tcp://127.0.0.1:{port}") for a in edge.args]
        edge.start()
        self.addCleanup(edge.close)
        return edge

    def sensor(self, port, site, *args):
        log = open(os.path.join(self.tmp.name, "sensor.log"), "w")
        self.addCleanup(log.close)
        p = subprocess.Popen([SENSOR, "--host", "127.0.0.1", "--port", str(port), "--site", site,
                              "--id", "sensor-1", *args], stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        return p

    def sensor_log(self):
        with open(os.path.join(self.tmp.name, "sensor.log")) as f:
            return f.read()

    def test_publishes_json_readings_with_sequence_numbers(self):
        edge = self.start_edge()
        site = unique("site")
        sub = MosquittoSub(edge.mqtt("tcp"), f"sites/{site}/sensor/+/telemetry")
        self.addCleanup(sub.stop)
        sub.wait_subscribed()
        p = self.sensor(edge.mqtt("tcp")[1], site, "--count", "5", "--interval-ms", "50")
        self.assertEqual(p.wait(20), 0, self.sensor_log())
        sub.wait_messages(5)
        got = readings(sub)
        self.assertEqual([m["seq"] for _, m in got], [0, 1, 2, 3, 4])
        for topic, m in got:
            self.assertEqual(topic, f"sites/{site}/sensor/sensor-1/telemetry")
            self.assertEqual(m["device"], "sensor-1")
            self.assertGreater(m["ts"], 1_600_000_000_000)
            self.assertTrue(20 < m["temperature_c"] < 60)
            self.assertTrue(0 < m["vibration_rms_g"] < 1)

    def test_ring_buffer_flushes_every_reading_in_order_after_the_edge_restarts(self):
        port = free_port()
        edge = self.start_edge(port)
        site = unique("site")
        # A persistent session, so the edge keeps what arrives while mosquitto_sub reconnects.
        sub = MosquittoSub(("127.0.0.1", port), f"sites/{site}/sensor/+/telemetry",
                           extra=("-c", "-i", unique("sub")))
        self.addCleanup(sub.stop)
        sub.wait_subscribed()
        count = 80
        p = self.sensor(port, site, "--count", str(count), "--interval-ms", "50")
        wait_for(lambda: len(sub.messages()) >= 10, timeout=20, what="first readings")
        edge.stop()  # SIGTERM: the sensor loses its broker mid-stream
        edge.log.close()
        down_at = time.monotonic()
        time.sleep(1.5)  # ~30 readings go into the ring
        edge.start()     # same data folder and port
        self.assertGreater(time.monotonic() - down_at, 1.0)
        self.assertEqual(p.wait(60), 0, self.sensor_log())
        wait_for(lambda: {m["seq"] for _, m in readings(sub)} >= set(range(count)), timeout=30,
                 what=f"all {count} readings at the subscriber")
        seqs = [m["seq"] for _, m in readings(sub)]
        # In order: every reading is the next new one or a QoS 1 redelivery of an older one.
        highest = -1
        for s in seqs:
            if s > highest:
                self.assertEqual(s, highest + 1, f"gap before {s}: {seqs}")
                highest = s
        self.assertEqual(highest, count - 1)
        self.assertIn("backoff", self.sensor_log())  # the link really went down
        done = [l for l in self.sensor_log().splitlines() if l.startswith("sensor: done:")]
        self.assertTrue(done and "dropped 0" in done[0], self.sensor_log())


class SimDevices(unittest.TestCase):
    def test_fleet_publishes_at_the_rate_and_records_injected_anomalies(self):
        edge = mqtt_edge("tcp")
        edge.start()
        self.addCleanup(edge.close)
        site = unique("site")
        sub = MosquittoSub(edge.mqtt("tcp"), f"sites/{site}/#", qos=1)
        self.addCleanup(sub.stop)
        sub.wait_subscribed()
        tmp = tempfile.TemporaryDirectory(prefix="ganglion-simdev-")
        self.addCleanup(tmp.cleanup)
        truth_path = os.path.join(tmp.name, "truth.jsonl")
        devices, rate, seconds = 30, 5.0, 4
        r = subprocess.run([GANGLION, "sim", "devices", "--broker", f"tcp://127.0.0.1:{edge.mqtt('tcp')[1]}",
                            "--site", site, "--devices", str(devices), "--rate", f"{rate:g}/s",
                            "--duration", f"{seconds}s", "--anomaly-rate", "0.05", "--seed", "42",
                            "--ground-truth", truth_path, "--status-interval", "1s"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        self.assertTrue(any("connected 30/30" in l for l in lines), r.stdout)
        summary = json.loads(next(l for l in lines if l.startswith("summary "))[len("summary "):])
        sent = summary["telemetry"] + summary["events"]
        expected = devices * rate * seconds
        self.assertGreater(sent, 0.6 * expected, summary)
        self.assertLess(sent, 1.3 * expected, summary)
        self.assertEqual(summary["publish_errors"], 0)
        for kind in ("temperature", "vibration", "power", "door", "badge", "camera"):
            self.assertGreater(summary["by_kind"][kind], 0, kind)

        wait_for(lambda: len(sub.messages()) >= sent, timeout=15, what=f"{sent} messages")
        got = readings(sub)
        self.assertEqual(len(got), sent)
        seen = {}
        for topic, m in got:
            parts = topic.split("/")
            self.assertEqual(parts[:2], ["sites", site])
            self.assertEqual(parts[3], m["device"])
            self.assertEqual(parts[4], "events" if parts[2] in ("door", "badge", "camera") else "telemetry")
            self.assertIn("ts", m)
            seen.setdefault(m["device"], []).append(m["seq"])
        self.assertEqual(len(seen), devices)
        for device, seqs in seen.items():
            self.assertEqual(sorted(seqs), list(range(len(seqs))), device)  # per-device, gap-free

        with open(truth_path) as f:
            truth = [json.loads(l) for l in f]
        self.assertEqual(len(truth), summary["ground_truth"])
        self.assertGreaterEqual(len(truth), 1)
        self.assertEqual(len(truth), summary["anomalies"])
        by_device = {d: set(s) for d, s in seen.items()}
        for a in truth:
            self.assertIn(a["kind"], ("temperature", "vibration", "power", "door", "badge", "camera"))
            self.assertLessEqual(a["seq_start"], a["seq_end"])
            self.assertLessEqual(a["start"], a["end"])
            self.assertTrue(a["topic"].startswith(f"sites/{site}/{a['kind']}/{a['device']}/"))
            # Every anomalous message was really published.
            self.assertTrue(set(range(a["seq_start"], a["seq_end"] + 1)) <= by_device[a["device"]], a)
        # Injected anomalies are visible in the data, e.g. bearing faults raise the RMS.
        faults = [a for a in truth if a["anomaly"] == "bearing_fault"]
        for a in faults:
            msgs = {m["seq"]: m for _, m in got if m["device"] == a["device"]}
            normal = [m["rms_g"] for s, m in msgs.items() if not a["seq_start"] <= s <= a["seq_end"]]
            faulty = [msgs[s]["rms_g"] for s in range(a["seq_start"], a["seq_end"] + 1)]
            if normal:
                self.assertGreater(min(faulty), 2 * max(normal), a)


if __name__ == "__main__":
    unittest.main()
