"""`ganglion demo` end to end (the main job, shortened): a controller, three edge sites and
their simulated devices as real processes on loopback, one site's link cut and restored.
The run must end with zero lost events against the simulator's ground truth, a bandwidth
ratio, reaction latency percentiles and anomaly-detection precision and recall; Ctrl-C must
stop everything and leave no process behind."""
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest

from support import GANGLION, wait_for

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "demo")


def processes_mentioning(text):
    """PIDs of live processes whose command line contains `text`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(pid))
    return found


class DemoTest(unittest.TestCase):
    def test_short_scenario_loses_nothing_across_the_partition(self):
        with tempfile.TemporaryDirectory() as tmp:
            work = os.path.join(tmp, "work")
            summary_file = os.path.join(tmp, "summary.json")
            proc = subprocess.run(
                [GANGLION, "demo", "--duration", "24s", "--devices", "36", "--rate", "4",
                 "--anomaly-rate", "0.02", "--cut-at", "6s", "--cut-for", "8s",
                 "--view", "lines", "--examples", EXAMPLES, "--dir", work,
                 "--summary-json", summary_file],
                capture_output=True, text=True, timeout=240)
            output = proc.stdout + proc.stderr
            self.assertEqual(proc.returncode, 0, output)
            self.assertIn("== ganglion demo: summary ==", proc.stdout)
            with open(summary_file) as f:
                s = json.load(f)
            self.assertEqual(len(s["sites"]), 3)

            # Nothing lost across the partition, counted against what the devices sent.
            self.assertEqual(s["lost"], 0, output)
            self.assertGreater(s["events_sent"], 100)
            self.assertEqual(s["events_in_cloud"], s["events_sent"], output)
            self.assertEqual(s["uplink_records_in_cloud"], s["uplink_records_logged"])
            self.assertEqual(s["uplink_dropped"], 0)
            cut = next(x for x in s["sites"] if x["site"] == s["cut"]["site"])
            self.assertGreater(cut["backlog_peak"], 0, "the cut site's backlog grew")
            self.assertGreaterEqual(s["cut"]["drained_after_restore_s"], 0)
            for site in s["sites"]:
                self.assertEqual(site["events_in_cloud"], site["events_sent"], site)

            # Less goes up than a send-everything design would upload.
            self.assertGreater(s["bandwidth_ratio"], 2.0)
            self.assertLess(s["uplinked_bytes"], s["send_everything_bytes"])

            # Local reactions, measured from the device event to the actuator command.
            self.assertGreater(s["reactions"], 0)
            lat = s["reaction_latency_ms"]
            self.assertLessEqual(lat["p50"], lat["p99"])
            self.assertLess(lat["p99"], 1000)

            # Detection against the ground truth.
            self.assertGreater(s["anomalies"], 5)
            self.assertGreaterEqual(s["precision"], 0.8, s["per_anomaly"])
            self.assertGreaterEqual(s["recall"], 0.8, s["per_anomaly"])

            # Data kept on site by policy: camera events stayed, badge ids were hashed.
            self.assertGreater(s["kept_on_site"], 0)
            self.assertGreater(s["fields_protected"], 0)
            self.assertEqual(s["malformed"], 0)

            self.assertEqual(processes_mentioning(work), [], "stray processes")

    def test_ctrl_c_stops_every_process(self):
        with tempfile.TemporaryDirectory() as tmp:
            work = os.path.join(tmp, "work")
            proc = subprocess.Popen(
                [GANGLION, "demo", "--duration", "120s", "--devices", "12", "--view", "lines",
                 "--examples", EXAMPLES, "--dir", work],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                sites = ("factory-eu", "shop-us", "tower-ap")
                wait_for(lambda: all(os.path.exists(os.path.join(work, s, "endpoints.json"))
                                     for s in sites), timeout=60, interval=0.1,
                         what="three running sites")
                self.assertGreaterEqual(len(processes_mentioning(work)), 4)  # cloud + 3 edges
                time.sleep(1)
                proc.send_signal(signal.SIGINT)
                out, _ = proc.communicate(timeout=60)
                self.assertEqual(proc.returncode, 130, out)
                self.assertEqual(processes_mentioning(work), [], "stray processes")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


if __name__ == "__main__":
    unittest.main()
