"""The `ganglion` binary as an operator runs it: edge node endpoints, config errors, signals."""
import os
import signal
import subprocess
import tempfile
import unittest

from support import GANGLION, EdgeProcess, http_get


def run(*args):
    return subprocess.run([GANGLION, *args], capture_output=True, text=True, timeout=30)


class EdgeProcessTest(unittest.TestCase):
    def test_version_prints_and_exits_zero(self):
        r = run("version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^ganglion \d+\.\d+\.\d+")

    def test_no_role_is_a_usage_error(self):
        self.assertEqual(run().returncode, 2)
        self.assertEqual(run("frobnicate").returncode, 2)

    def test_help_lists_roles(self):
        r = run("help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("edge", r.stdout)

    def test_edge_serves_health_ready_and_metrics_on_defaults(self):
        with EdgeProcess() as edge:
            status, body = http_get(edge.url("/healthz"))
            self.assertEqual((status, body), (200, '{"status":"ok"}'))
            status, _ = http_get(edge.url("/readyz"))
            self.assertEqual(status, 200)
            status, metrics = http_get(edge.url("/metrics"))
            self.assertEqual(status, 200)
            self.assertIn("# TYPE process_resident_memory_bytes gauge", metrics)
            self.assertIn('ganglion_build_info{version="', metrics)
            self.assertEqual(http_get(edge.url("/no/such/thing"))[0], 404)
            self.assertEqual(edge.stop(signal.SIGTERM), 0)

    def test_sigint_shuts_down_cleanly(self):
        with EdgeProcess() as edge:
            self.assertEqual(edge.stop(signal.SIGINT), 0)
            self.assertIn("edge node stopped", edge.output())

    def test_broken_config_names_file_line_column_and_expected_type(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "broken.yaml")
            with open(path, "w") as f:
                f.write("node:\n  id: plant-7\nhttp:\n  max_body: lots\n")
            r = run("edge", "--config", path, "--data.dir", os.path.join(d, "data"))
            self.assertEqual(r.returncode, 2)
            self.assertIn(f"{path}:4:13: http.max_body: expected size", r.stderr)

    def test_invalid_yaml_syntax_exits_2_with_position(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "broken.yaml")
            with open(path, "w") as f:
                f.write("http:\n  listen: [oops\n")
            r = run("edge", "--config", path)
            self.assertEqual(r.returncode, 2)
            self.assertRegex(r.stderr, rf"{path}:\d+:\d+: invalid YAML")

    def test_unknown_option_in_file_is_an_error(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "c.yaml")
            with open(path, "w") as f:
                f.write("htpp:\n  listen: 127.0.0.1:0\n")
            r = run("edge", "--config", path)
            self.assertEqual(r.returncode, 2)
            self.assertIn(f'{path}:1:1: unknown option "htpp"', r.stderr)

    def test_missing_config_file_is_a_configuration_error(self):
        r = run("edge", "--config", "/nonexistent/edge.yaml")
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot read config file", r.stderr)

    def test_command_line_option_overrides_file_and_is_validated(self):
        r = run("edge", "--io.threads", "-3")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--io.threads: io.threads: expected integer in 0..256", r.stderr)

    def test_port_in_use_is_a_runtime_failure(self):
        with EdgeProcess() as first:
            busy = first.endpoints["http"]
            with tempfile.TemporaryDirectory() as d:
                r = run("edge", "--data.dir", d, "--http.listen", busy)
                self.assertEqual(r.returncode, 1)
                self.assertIn("cannot listen", r.stderr)

    def test_config_file_sets_node_id(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "edge.yaml")
            with open(path, "w") as f:
                f.write("node:\n  id: plant-7\nlog:\n  format: json\n")
            with EdgeProcess("--config", path) as edge:
                self.assertEqual(edge.endpoints["node"], "plant-7")
                edge.stop()
                self.assertIn('"msg":"edge node plant-7 ready', edge.output())


class DocsTest(unittest.TestCase):
    def test_generated_option_references_are_up_to_date(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for role in ("edge", "cloud"):
            with open(os.path.join(root, "docs", f"configuration-{role}.md")) as f:
                committed = f.read()
            self.assertEqual(run("config", "reference", role).stdout, committed,
                             f"docs/configuration-{role}.md is stale: run `make docs`")

    def test_example_configs_are_valid(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for name in ("edge.yaml", "edge-secure.yaml"):
            r = run("config", "check", "edge", os.path.join(root, "examples", name))
            self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
