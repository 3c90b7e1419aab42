"""Streaming rules end to end: a real `ganglion edge`, REST calls made with curl and the
request bodies eKuiper documents, mosquitto_pub publishing JSON telemetry, mosquitto_sub and
paho receiving what the rules publish, a Python http.server as webhook, Lua functions, the
`ganglion rule` CLI, and an edge restart."""
import http.server
import json
import os
import subprocess
import threading
import time
import unittest

from support import GANGLION, BrokerTestCase, MosquittoSub, PahoClient, mosquitto_pub, mqtt_edge, unique, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "examples", "rules")


def curl(edge, method, path, body=None):
    """(status, body text) of one request through the curl command line tool."""
    cmd = ["curl", "-s", "-S", "-o", "-", "-w", "\n%{http_code}", "-X", method, edge.url(path)]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "-d", body if isinstance(body, str) else json.dumps(body)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    text, _, code = r.stdout.rpartition("\n")
    return int(code), text


class Hook(http.server.BaseHTTPRequestHandler):
    received = None  # a list, set per server

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self.server.received.append((self.path, self.headers.get("Content-Type"), self.rfile.read(n).decode()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class RulesTestBase(BrokerTestCase):
    """One edge node per class (BrokerTestCase) plus helpers for streams and rules."""

    def sub(self, *topics):
        s = MosquittoSub(self.addr(), *topics)
        self.addCleanup(s.stop)
        s.wait_subscribed()
        return s

    def pub(self, topic, payload):
        mosquitto_pub(self.addr(), topic, payload if isinstance(payload, str) else json.dumps(payload),
                      "311", "-q", "1")

    def stream(self, name, topic, fields="temperature FLOAT, deviceId STRING"):
        # The body exactly as eKuiper documents it.
        body = '{"sql": "CREATE STREAM %s (%s) WITH (DATASOURCE=\\"%s\\", FORMAT=\\"json\\")"}' % (name, fields, topic)
        code, text = curl(self.edge, "POST", "/streams", body)
        self.assertEqual((code, text), (201, f"Stream {name} is created."))

    def rule(self, doc, expect=201):
        code, text = curl(self.edge, "POST", "/rules", doc)
        self.assertEqual(code, expect, text)
        return text


class RulesTest(RulesTestBase):
    def test_filter_rule_publishes_alerts_to_a_templated_topic(self):
        s, dev = unique("demo").replace("-", "_"), unique("dev")
        self.stream(s, f"devices/{dev}/+/telemetry")
        text = self.rule('{"id": "%s", "sql": "SELECT * FROM %s WHERE temperature > 50", '
                         '"actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": "alerts/{{.deviceId}}", '
                         '"qos": 1, "retained": false, "sendSingle": true}}, {"log": {}}]}' % (s, s))
        self.assertEqual(text, f"Rule {s} was created successfully.")
        sub = self.sub(f"alerts/{dev}-1", f"alerts/{dev}-2")
        self.pub(f"devices/{dev}/1/telemetry", {"temperature": 20.5, "deviceId": f"{dev}-1"})
        self.pub(f"devices/{dev}/2/telemetry", {"temperature": 75, "deviceId": f"{dev}-2"})
        msgs = sub.wait_messages(1)
        time.sleep(0.3)
        self.assertEqual(sub.messages(), [f'alerts/{dev}-2 {{"temperature":75,"deviceId":"{dev}-2"}}'])

        code, status = curl(self.edge, "GET", f"/rules/{s}/status")
        self.assertEqual(code, 200)
        st = json.loads(status)
        self.assertEqual(st["status"], "running")
        self.assertEqual(st[f"source_{s}_0_records_in_total"], 2)
        self.assertEqual(st["sink_mqtt_0_0_records_out_total"], 1)
        self.assertEqual(st["sink_log_1_0_records_in_total"], 1)
        self.assertIn("op_2_filter_0_records_out_total", st)
        code, rules = curl(self.edge, "GET", "/rules")
        self.assertIn({"id": s, "status": "Running"}, json.loads(rules))
        code, desc = curl(self.edge, "GET", f"/streams/{s}")
        desc = json.loads(desc)
        self.assertEqual(desc["Name"], s)
        self.assertEqual(desc["StreamFields"], [{"Name": "temperature", "FieldType": "float"},
                                                {"Name": "deviceId", "FieldType": "string"}])
        self.assertEqual(desc["Options"]["DATASOURCE"], f"devices/{dev}/+/telemetry")
        code, names = curl(self.edge, "GET", "/streams")
        self.assertIn(s, json.loads(names))
        code, d = curl(self.edge, "GET", f"/rules/{s}")
        self.assertEqual(json.loads(d)["actions"][0]["mqtt"]["topic"], "alerts/{{.deviceId}}")
        # Prometheus, labelled by rule (refreshed every second).
        wait_for(lambda: f'ganglion_rule_records_out_total{{rule="{s}"}} 1' in
                 subprocess.run(["curl", "-s", self.edge.url("/metrics")], capture_output=True, text=True).stdout,
                 what="rule metrics in /metrics")

    def test_meta_topic_routes_by_the_topic_a_reading_came_on(self):
        # eKuiper's meta(topic): the device id is only in the topic, and the sink's topic
        # template reads it from the row.
        s, dev = unique("meta").replace("-", "_"), unique("dev")
        self.stream(s, f"plants/{dev}/+/vibration", fields="")
        self.rule('{"id": "%s", "sql": "SELECT split_value(meta(topic), \\"/\\", 2) AS machine, '
                  'meta(qos) AS qos, rms FROM %s WHERE rms > 4 AND meta(topic) LIKE \\"%%/m2/%%\\"", '
                  '"actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", '
                  '"topic": "maintenance/{{.machine}}", "sendSingle": true}}]}' % (s, s))
        sub = self.sub(f"maintenance/#")
        for machine, rms in (("m1", 9.5), ("m2", 2.0), ("m2", 7.25)):
            self.pub(f"plants/{dev}/{machine}/vibration", {"rms": rms})
        sub.wait_messages(1)
        time.sleep(0.3)
        self.assertEqual(sub.messages(), ['maintenance/m2 {"machine":"m2","qos":1,"rms":7.25}'])

    def test_tumbling_window_average_grouped_by_device(self):
        s, dev = unique("win").replace("-", "_"), unique("dev")
        self.stream(s, f"plant/{dev}/+")
        self.rule({"id": s, "sql": f"SELECT deviceId, avg(temperature) AS avg_t, count(*) AS n FROM {s} "
                                   "GROUP BY deviceId, TUMBLINGWINDOW(ss, 1)",
                   "actions": [{"mqtt": {"topic": f"avg/{dev}/{{{{.deviceId}}}}", "sendSingle": True}}]})
        paho = PahoClient()
        self.addCleanup(paho.close)
        paho.connect(self.addr())
        paho.subscribe(f"avg/{dev}/#")
        # All within one 1 s window (aligned to the second): wait for a fresh second first.
        time.sleep(1.0 - (time.time() % 1.0) + 0.05)
        for dev_id, t in (("a", 10), ("b", 30), ("a", 20), ("b", 50)):
            self.pub(f"plant/{dev}/{dev_id}", {"deviceId": dev_id, "temperature": t})
        msgs = paho.expect_n(2, timeout=5)
        got = {m.topic: json.loads(m.payload) for m in msgs}
        self.assertEqual(got, {f"avg/{dev}/a": {"deviceId": "a", "avg_t": 15.0, "n": 2},
                               f"avg/{dev}/b": {"deviceId": "b", "avg_t": 40.0, "n": 2}})

    def test_example_rule_with_analytic_functions_over_partitions(self):
        # examples/rules/status_changes.json as shipped (lag, had_changed, OVER (PARTITION BY
        # ... WHEN ...)), only the stream and the rule renamed for this test.
        s, dev = unique("demo").replace("-", "_"), unique("dev")
        self.stream(s, f"machines/{dev}/+/status", fields="deviceId STRING, status STRING, ts BIGINT")
        with open(os.path.join(EXAMPLES, "status_changes.json")) as f:
            doc = json.load(f)
        doc["id"] = s
        doc["sql"] = doc["sql"].replace("FROM demo", f"FROM {s}")
        doc["actions"][0]["mqtt"]["topic"] = f"{dev}/status/{{{{.deviceId}}}}"
        self.rule(json.dumps(doc))
        sub = self.sub(f"{dev}/status/#")
        for device, ts, status in (("d1", 1000, "idle"), ("d2", 1500, "run"), ("d1", 2000, "idle"),
                                   ("d1", 4000, "run"), ("d2", 4500, "run"), ("d2", 9500, "fault")):
            self.pub(f"machines/{dev}/{device}/status", {"deviceId": device, "ts": ts, "status": status})
        sub.wait_messages(4)
        time.sleep(0.3)
        got = sorted(sub.messages())
        self.assertEqual(got, sorted([
            f'{dev}/status/d1 {{"deviceId":"d1","status":"idle","previous":null,"previous_ms":0}}',
            f'{dev}/status/d2 {{"deviceId":"d2","status":"run","previous":null,"previous_ms":0}}',
            f'{dev}/status/d1 {{"deviceId":"d1","status":"run","previous":"idle","previous_ms":3000}}',
            f'{dev}/status/d2 {{"deviceId":"d2","status":"fault","previous":"run","previous_ms":8000}}',
        ]))
        code, status = curl(self.edge, "GET", f"/rules/{s}/status")
        st = json.loads(status)
        self.assertEqual(st[f"source_{s}_0_records_in_total"], 6)
        self.assertEqual(st["sink_mqtt_0_0_records_out_total"], 4)

    def test_webhook_sink_posts_each_row(self):
        server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
        server.received = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        s, dev = unique("hook").replace("-", "_"), unique("dev")
        self.stream(s, f"hook/{dev}")
        self.rule('{"id": "%s", "sql": "SELECT deviceId, temperature FROM %s WHERE temperature > 50", '
                  '"actions": [{"rest": {"url": "http://127.0.0.1:%d/hook", "method": "post", '
                  '"sendSingle": true, "timeout": 5000}}]}' % (s, s, server.server_port))
        self.pub(f"hook/{dev}", {"deviceId": "x", "temperature": 99})
        self.pub(f"hook/{dev}", {"deviceId": "y", "temperature": 1})
        wait_for(lambda: server.received, what="the webhook call")
        time.sleep(0.3)
        self.assertEqual(server.received, [("/hook", "application/json", '{"deviceId":"x","temperature":99}')])

    def test_lua_function_as_sink_and_as_sql_scalar(self):
        s, dev = unique("lua").replace("-", "_"), unique("dev")
        fn_sink, fn_scalar = s + "_sink", s + "_c2f"
        with open(os.path.join(EXAMPLES, "c_to_f.lua")) as f:
            source = f.read()
        code, text = curl(self.edge, "POST", "/functions", {"name": fn_scalar, "source": source})
        self.assertEqual((code, text), (201, f"Function {fn_scalar} was created."))
        code, text = curl(self.edge, "POST", "/functions", {
            "name": fn_sink,
            "source": 'function handle(e) emit("lua/%s/" .. e.payload.deviceId, {hot = e.payload.temperature > 50}, 1) end' % dev})
        self.assertEqual(code, 201, text)
        self.stream(s, f"lua/{dev}/in")
        self.rule({"id": s + "_a", "sql": f"SELECT deviceId, {fn_scalar}(temperature) AS f FROM {s}",
                   "actions": [{"mqtt": {"topic": f"lua/{dev}/scalar", "sendSingle": True}}]})
        self.rule({"id": s + "_b", "sql": f"SELECT * FROM {s}", "actions": [{"function": {"name": fn_sink}}]})
        sub = self.sub(f"lua/{dev}/scalar", f"lua/{dev}/d1")
        self.pub(f"lua/{dev}/in", {"deviceId": "d1", "temperature": 100})
        got = sorted(sub.wait_messages(2))
        self.assertEqual(got, [f'lua/{dev}/d1 {{"hot":true}}', f'lua/{dev}/scalar {{"deviceId":"d1","f":212}}'])
        code, fns = curl(self.edge, "GET", "/functions")
        self.assertIn(fn_scalar, [f["name"] for f in json.loads(fns)])
        # A function a rule uses cannot be deleted.
        code, text = curl(self.edge, "DELETE", f"/functions/{fn_sink}")
        self.assertEqual(code, 400, text)

    def test_stop_start_restart_delete(self):
        s, dev = unique("life").replace("-", "_"), unique("dev")
        self.stream(s, f"life/{dev}")
        self.rule({"id": s, "sql": f"SELECT deviceId FROM {s}",
                   "actions": [{"mqtt": {"topic": f"life/{dev}/out", "sendSingle": True}}]})
        sub = self.sub(f"life/{dev}/out")
        self.assertEqual(curl(self.edge, "POST", f"/rules/{s}/stop"), (200, f"Rule {s} was stopped."))
        code, rules = curl(self.edge, "GET", "/rules")
        self.assertIn({"id": s, "status": "Stopped: canceled manually."}, json.loads(rules))
        self.assertEqual(json.loads(curl(self.edge, "GET", f"/rules/{s}/status")[1])["status"], "stopped")
        self.pub(f"life/{dev}", {"deviceId": "one"})
        self.assertEqual(curl(self.edge, "POST", f"/rules/{s}/start"), (200, f"Rule {s} was started"))
        self.pub(f"life/{dev}", {"deviceId": "two"})
        sub.wait_messages(1)
        self.assertEqual(curl(self.edge, "POST", f"/rules/{s}/restart"), (200, f"Rule {s} was restarted"))
        self.pub(f"life/{dev}", {"deviceId": "three"})
        sub.wait_messages(2)
        # Update: a new SQL takes effect.
        code, text = curl(self.edge, "PUT", f"/rules/{s}", {
            "id": s, "sql": f"SELECT upper(deviceId) AS d FROM {s}",
            "actions": [{"mqtt": {"topic": f"life/{dev}/out", "sendSingle": True}}]})
        self.assertEqual((code, text), (200, f"Rule {s} was updated successfully."))
        self.pub(f"life/{dev}", {"deviceId": "four"})
        sub.wait_messages(3)
        self.assertEqual(curl(self.edge, "DELETE", f"/rules/{s}"), (200, f"Rule {s} is dropped."))
        self.assertEqual(curl(self.edge, "GET", f"/rules/{s}")[0], 404)
        self.pub(f"life/{dev}", {"deviceId": "five"})
        time.sleep(0.5)
        self.assertEqual(sub.messages(), [f'life/{dev}/out {{"deviceId":"two"}}',
                                          f'life/{dev}/out {{"deviceId":"three"}}',
                                          f'life/{dev}/out {{"d":"FOUR"}}'])
        self.assertEqual(curl(self.edge, "DELETE", f"/streams/{s}"), (200, f"Stream {s} is dropped."))

    def test_invalid_sql_is_refused_with_line_column_and_caret(self):
        s = unique("bad").replace("-", "_")
        self.stream(s, "bad/topic")
        code, text = curl(self.edge, "POST", "/rules",
                          '{"id": "%s", "sql": "SELECT *\\nFROM %s\\nWHERE temperature >", "actions": [{"log": {}}]}' % (s, s))
        self.assertEqual(code, 400)
        err = json.loads(text)
        self.assertEqual(err["error"], 1000)
        self.assertEqual(err["message"],
                         "line 3, column 20: expected expression after '>', found end of input\n"
                         "WHERE temperature >\n"
                         "                   ^")
        code, text = curl(self.edge, "POST", "/rules",
                          {"id": s, "sql": f"SELECT nosuch FROM {s}", "actions": [{"log": {}}]})
        self.assertEqual(code, 400)
        self.assertIn("line 1, column 8: unknown field 'nosuch'", json.loads(text)["message"])
        self.assertEqual(curl(self.edge, "GET", f"/rules/{s}")[0], 404)
        self.assertNotIn(s, [r["id"] for r in json.loads(curl(self.edge, "GET", "/rules")[1])])
        code, text = curl(self.edge, "POST", "/streams", {"sql": "CREATE STREAM x (a FLOT)"})
        self.assertEqual(code, 400)
        self.assertIn("line 1, column 20", json.loads(text)["message"])

    def test_payloads_not_matching_the_schema_are_counted_and_skipped(self):
        s, dev = unique("schema").replace("-", "_"), unique("dev")
        self.stream(s, f"schema/{dev}")
        self.rule({"id": s, "sql": f"SELECT temperature FROM {s}",
                   "actions": [{"mqtt": {"topic": f"schema/{dev}/out", "sendSingle": True}}]})
        sub = self.sub(f"schema/{dev}/out")
        self.pub(f"schema/{dev}", {"temperature": "hot"})
        self.pub(f"schema/{dev}", "not json")
        self.pub(f"schema/{dev}", {"temperature": 1})
        sub.wait_messages(1)
        st = json.loads(curl(self.edge, "GET", f"/rules/{s}/status")[1])
        self.assertEqual(st["dropped_decode_total"], 2)
        self.assertEqual(st["status"], "running")

    def test_cli_happy_path(self):
        s, dev = unique("cli").replace("-", "_"), unique("dev")
        d = ["--data.dir", self.edge.data_dir]

        def run(*args, rc=0):
            r = subprocess.run([GANGLION, *args, *d], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, rc, r.stdout + r.stderr)
            return r.stdout + r.stderr

        self.assertIn(f"Stream {s} is created.",
                      run("stream", "create", f'CREATE STREAM {s} (t FLOAT, id STRING) WITH (DATASOURCE="cli/{dev}")'))
        self.assertIn(s, run("stream", "list"))
        self.assertIn('"FieldType":"float"', run("stream", "describe", s))
        self.assertIn(f"Rule {s} was created successfully.",
                      run("rule", "create", s, "--sql", f"SELECT * FROM {s} WHERE t > 50",
                          "--action", f"mqtt:topic=cli/{dev}/{{{{.id}}}},qos=1,sendSingle=true", "--action", "log"))
        sub = self.sub(f"cli/{dev}/+")
        self.pub(f"cli/{dev}", {"t": 60, "id": "m1"})
        self.assertEqual(sub.wait_messages(1), [f'cli/{dev}/m1 {{"t":60,"id":"m1"}}'])
        out = run("rule", "list")
        self.assertRegex(out, rf"{s}\s+Running")
        self.assertIn('"status":"running"', run("rule", "status", s))
        self.assertIn(f"Rule {s} was stopped.", run("rule", "stop", s))
        self.assertIn(f"Rule {s} was started", run("rule", "start", s))
        self.assertIn('"sql":"SELECT * FROM', run("rule", "describe", s))
        # An error answer: exit code 1 with the message; a usage error: 2.
        self.assertIn("line 1, column 14", run("rule", "create", s + "x", "--sql", "SELECT * FROM", "--action", "log", rc=1))
        run("rule", "create", s + "y", "--sql", "SELECT 1 FROM x", rc=2)
        rule_file = os.path.join(self.edge.tmp.name, f"{s}.json")
        with open(rule_file, "w") as f:
            json.dump({"id": s + "_file", "sql": f"SELECT id FROM {s}", "actions": [{"log": {}}],
                       "options": {"isEventTime": False, "lateTolerance": 1000, "sendMetaToSink": False}}, f)
        self.assertIn(f"Rule {s}_file was created successfully.", run("rule", "create", "-f", rule_file))
        self.assertIn(f"Rule {s}_file is dropped.", run("rule", "drop", s + "_file"))
        self.assertIn(f"Rule {s} is dropped.", run("rule", "drop", s))
        self.assertIn(f"Stream {s} is dropped.", run("stream", "drop", s))
        # From eKuiper-style JSON files, and a Lua function from a file.
        fn = s + "_f"
        self.assertIn(f"Function {fn} was created.",
                      run("function", "create", fn, "-f", os.path.join(EXAMPLES, "c_to_f.lua")))
        self.assertIn(fn, run("function", "list"))
        self.assertIn(f"Function {fn} is dropped.", run("function", "drop", fn))


class RulesPersistenceTest(unittest.TestCase):
    def test_streams_rules_and_functions_survive_an_edge_restart(self):
        edge = mqtt_edge("tcp")
        self.addCleanup(edge.close)
        edge.start()
        self.assertEqual(curl(edge, "POST", "/streams",
                              '{"sql": "CREATE STREAM demo (temperature FLOAT, deviceId STRING) WITH (DATASOURCE=\\"devices/+/telemetry\\", FORMAT=\\"json\\")"}')[0], 201)
        self.assertEqual(curl(edge, "POST", "/functions",
                              {"name": "c2f", "source": "function handle(c) return c * 9 / 5 + 32 end"})[0], 201)
        with open(os.path.join(EXAMPLES, "alerts.json")) as f:
            self.assertEqual(curl(edge, "POST", "/rules", f.read())[0], 201)
        self.assertEqual(curl(edge, "POST", "/rules",
                              {"id": "paused", "sql": "SELECT c2f(temperature) AS f FROM demo",
                               "actions": [{"mqtt": {"topic": "f/out", "sendSingle": True}}]})[0], 201)
        self.assertEqual(curl(edge, "POST", "/rules/paused/stop")[0], 200)
        edge.restart()
        self.assertEqual(json.loads(curl(edge, "GET", "/streams")[1]), ["demo"])
        rules = json.loads(curl(edge, "GET", "/rules")[1])
        self.assertEqual(rules, [{"id": "alerts", "status": "Running"},
                                 {"id": "paused", "status": "Stopped: canceled manually."}])
        sub = MosquittoSub(edge.mqtt("tcp"), "alerts/#", "f/out")
        self.addCleanup(sub.stop)
        sub.wait_subscribed()
        mosquitto_pub(edge.mqtt("tcp"), "devices/d9/telemetry", '{"temperature": 80, "deviceId": "d9"}')
        self.assertEqual(sub.wait_messages(1), ['alerts/d9 {"temperature":80,"deviceId":"d9"}'])
        self.assertEqual(curl(edge, "POST", "/rules/paused/start")[0], 200)
        mosquitto_pub(edge.mqtt("tcp"), "devices/d9/telemetry", '{"temperature": 100, "deviceId": "d9"}')
        msgs = sub.wait_messages(3)
        self.assertIn('f/out {"f":212}', msgs)


if __name__ == "__main__":
    unittest.main()
