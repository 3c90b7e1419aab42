"""`ganglion cloud` end to end: enrolment over HTTPS, nodes over MQTT 5 with mutual TLS (paho),
the REST API with bearer tokens, and every refusal case.

One controller per test class, on port 0 in a temporary folder, with short heartbeat periods.
Node keys and CSRs are made with the openssl CLI; batches are built here (GUB1, zstd via the
zstd CLI, or the JSON fallback)."""
import json
import os
import re
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

from support import GANGLION, CertificateAuthority, PahoClient, V5, unique, wait_for


def openssl(*args, input=None):
    r = subprocess.run(["openssl", *args], capture_output=True, timeout=30, input=input)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {r.stderr.decode()}")
    return r.stdout


class Cloud:
    """A real `ganglion cloud` with port-0 listeners and short health periods."""

    def __init__(self, *args):
        self.tmp = tempfile.TemporaryDirectory(prefix="ganglion-cloud-")
        self.data = os.path.join(self.tmp.name, "data")
        self.log_path = os.path.join(self.tmp.name, "cloud.log")
        cmd = [GANGLION, "cloud", "--cloud.data_dir", self.data, "--cloud.api.listen", "127.0.0.1:0",
               "--cloud.mqtt.listen", "tls://127.0.0.1:0", "--cloud.heartbeat.interval", "400ms",
               "--cloud.heartbeat.offline_grace", "1500ms", "--cloud.health.check_interval", "100ms",
               "--io.threads", "2", *args]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        endpoints = os.path.join(self.data, "endpoints.json")
        wait_for(lambda: os.path.exists(endpoints) or self.proc.poll() is not None, what="endpoints.json")
        if self.proc.poll() is not None:
            raise AssertionError(f"cloud exited with {self.proc.returncode}: {self.output()}")
        with open(endpoints) as f:
            self.endpoints = json.load(f)
        self.ca = self.endpoints["ca"]
        self.admin = wait_for(lambda: self._admin_token(), what="admin token on stdout")
        self.ssl = ssl.create_default_context(cafile=self.ca)
        host, port = self.endpoints["mqtt"][len("tls://"):].rsplit(":", 1)
        self.mqtt = (host, int(port))

    def _admin_token(self):
        m = re.search(r"admin API token \(shown once, store it now\): (gat_[0-9a-f]{32})", self.output())
        return m.group(1) if m else None

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def api(self, method, path, body=None, token="admin", raw=None):
        """(status, parsed JSON body) without raising on HTTP errors; token=None sends none."""
        headers = {}
        if token == "admin":
            token = self.admin
        if token:
            headers["Authorization"] = "Bearer " + token
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.endpoints["api"] + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ssl) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def token(self, labels="site=eu-1,type=factory", ttl="1h", uses=1):
        status, body = self.api("POST", "/v1/tokens", {"labels": labels, "ttl": ttl, "uses": uses})
        assert status == 201, (status, body)
        return body["token"]

    def node(self, node_id):
        status, body = self.api("GET", "/v1/nodes/" + node_id)
        assert status == 200, (status, body)
        return body

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.tmp.cleanup()


class Node:
    """A fake edge node: its own key, a CSR, the certificate from enrolment, a paho client."""

    def __init__(self, cloud, node_id, key=None):
        self.cloud, self.id = cloud, node_id
        self.dir = tempfile.mkdtemp(dir=cloud.tmp.name)
        self.key = key or os.path.join(self.dir, "node.key")
        if not key:
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.key)
        self.cert = os.path.join(self.dir, "node.pem")
        self.client = None

    def csr(self, cn=None):
        return openssl("req", "-new", "-key", self.key, "-subj", f"/CN={cn or self.id}").decode()

    def enroll(self, token, csr=None, node_id=None):
        return self.cloud.api("POST", "/v1/enroll",
                              {"token": token, "node_id": node_id or self.id, "csr": csr or self.csr()}, token=None)

    def enroll_ok(self, token):
        status, body = self.enroll(token)
        assert status == 200, (status, body)
        with open(self.cert, "w") as f:
            f.write(body["certificate"])
        return body

    def connect(self, expect_rc=0):
        self.client = PahoClient(V5, client_id=self.id)
        self.client.connect(self.cloud.mqtt, expect_rc=expect_rc,
                            tls={"ca_certs": self.cloud.ca, "certfile": self.cert, "keyfile": self.key})
        return self.client

    def heartbeat(self, **extra):
        hb = {"ts": int(time.time() * 1000), "version": "0.1.0", "cpu": 0.25, "mem_bytes": 1 << 20,
              "disk_free_bytes": 1 << 30, "uplink_backlog": 0, "rules": 3, "link_rtt_ms": 12}
        hb.update(extra)
        self.client.publish(f"ganglion/v1/{self.id}/heartbeat", json.dumps(hb), qos=1)


def gub1(node, cls, seq, records, compress=True):
    """An uplink batch, format version 1 (src/uplink/README.md); records = [(offset, ts, topic, payload)]."""
    body = b"".join(struct.pack(">QqH", o, ts, len(t)) + t.encode() + struct.pack(">I", len(p)) + p.encode()
                    for o, ts, t, p in records)
    end = records[-1][0] + 1 if records else seq
    payload = subprocess.run(["zstd", "-q", "-c", "--content-size", "-C"], input=body, capture_output=True,
                             check=True).stdout if compress else body
    head = b"GUB1" + struct.pack(">BBHQQII", 1, 1 if compress else 0, 0, seq, end, len(records), len(body))
    for s in (node, cls, "eu-west"):
        head += bytes([len(s)]) + s.encode()
    return head + payload


class CloudTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cloud = Cloud()

    @classmethod
    def tearDownClass(cls):
        cls.cloud.close()

    def enrolled(self, prefix="node", labels="site=eu-1,type=factory"):
        node = Node(self.cloud, unique(prefix))
        node.enroll_ok(self.cloud.token(labels=labels))
        return node

    # --- the vertical slice -------------------------------------------------------------------

    def test_enrolled_node_heartbeats_healthy_then_goes_offline(self):
        node = Node(self.cloud, unique("n"))
        body = node.enroll_ok(self.cloud.token())
        self.assertEqual(body["node_id"], node.id)
        self.assertTrue(body["mqtt_url"].startswith("tls://127.0.0.1:"))
        self.assertGreater(body["expires_at"], time.time() + 29 * 86400)
        with open(self.cloud.ca) as f:
            self.assertEqual(body["ca"], f.read())
        subject = openssl("x509", "-noout", "-subject", "-in", node.cert).decode()
        self.assertIn(f"CN = {node.id}", subject)
        openssl("verify", "-CAfile", self.cloud.ca, node.cert)

        node.connect()
        node.heartbeat()

        def listed_healthy():
            _, nodes = self.cloud.api("GET", "/v1/nodes")
            mine = [n for n in nodes["items"] if n["id"] == node.id]
            return mine and mine[0]["health"] == "healthy" and mine[0]
        n = wait_for(listed_healthy, what="node healthy in GET /v1/nodes")
        self.assertEqual(n["labels"], {"site": "eu-1", "type": "factory"})
        self.assertEqual(n["version"], "0.1.0")
        self.assertEqual(n["heartbeat"]["rules"], 3)
        # No more heartbeats: degraded (late), then offline after the grace period.
        wait_for(lambda: self.cloud.node(node.id)["health"] == "offline", timeout=10, what="offline")
        history = [(h["from"], h["to"]) for h in self.cloud.node(node.id)["health_history"]]
        self.assertEqual(history, [("offline", "healthy"), ("healthy", "degraded"), ("degraded", "offline")])
        node.heartbeat()
        wait_for(lambda: self.cloud.node(node.id)["health"] == "healthy", what="healthy again")
        node.client.close()

    def test_reported_problems_make_a_node_degraded(self):
        node = self.enrolled()
        node.connect()
        node.heartbeat(problems=["disk almost full"])
        wait_for(lambda: self.cloud.node(node.id)["health"] == "degraded", what="degraded")
        self.assertIn("disk almost full", self.cloud.node(node.id)["health_reason"])
        node.client.close()

    def test_batch_is_stored_once_even_when_published_twice(self):
        node = self.enrolled()
        node.connect()
        now = int(time.time() * 1000)
        recs = [(10 + i, now - 1000 + i, "factory/line1/temp", json.dumps({"temp": 20 + i})) for i in range(5)]
        batch = gub1(node.id, "telemetry", 10, recs)
        for _ in range(2):
            node.client.publish(f"ganglion/v1/{node.id}/up/telemetry", batch, qos=1)
        wait_for(lambda: self.cloud.node(node.id)["ingest"]["duplicates"] == 1, what="duplicate counted")
        ingest = self.cloud.node(node.id)["ingest"]
        self.assertEqual((ingest["batches"], ingest["records"], ingest["stored_records"]), (1, 5, 5))
        # A resend cut differently after a crash: records below the high-water mark are dropped.
        more = [(13 + i, now - 500 + i, "factory/line1/temp", json.dumps({"temp": 30})) for i in range(4)]
        node.client.publish(f"ganglion/v1/{node.id}/up/telemetry", gub1(node.id, "telemetry", 13, more, compress=False), qos=1)
        wait_for(lambda: self.cloud.node(node.id)["ingest"]["batches"] == 2, what="second batch")
        self.assertEqual(self.cloud.node(node.id)["ingest"]["stored_records"], 7)  # offsets 15, 16 are new
        # The JSON fallback, deduplicated by (node, class, seq).
        jb = json.dumps({"node": node.id, "class": "alerts", "seq": 1,
                         "records": [{"ts": now, "topic": "factory/alarm", "payload": {"temp": 99}}]})
        for _ in range(2):
            node.client.publish(f"ganglion/v1/{node.id}/up/alerts", jb, qos=1)
        wait_for(lambda: self.cloud.node(node.id)["ingest"]["duplicates"] == 2, what="json duplicate")
        self.assertEqual(self.cloud.node(node.id)["ingest"]["stored_records"], 8)

        status, q = self.cloud.api("GET", f"/v1/query?metric=temp&agg=max&bucket=1h&where=node={node.id}&from=-1h")
        self.assertEqual(status, 200, q)
        self.assertEqual(len(q["series"]), 1)
        self.assertEqual(sum(p["samples"] for p in q["series"][0]["points"]), 8)
        self.assertEqual(max(p["value"] for p in q["series"][0]["points"]), 99)
        status, q = self.cloud.api("GET", "/v1/query?metric=temp&agg=count&group_by=site&where=site=eu-1")
        self.assertEqual(status, 200, q)
        self.assertIn("eu-1", [s["group"] for s in q["series"]])
        node.client.close()

    def test_malformed_batches_are_rejected_and_counted(self):
        node = self.enrolled()
        node.connect()
        topic = f"ganglion/v1/{node.id}/up/telemetry"
        good = gub1(node.id, "telemetry", 0, [(0, 1, "t", "{}")], compress=False)
        for bad in (b"garbage", b"GUB1\x01", good[:-3], gub1("someone-else", "telemetry", 0, [(0, 1, "t", "{}")]),
                    b'{"node": "x"}', good[:-1] + b"\x00\x00"):
            node.client.publish(topic, bad, qos=1)
        wait_for(lambda: self.cloud.node(node.id)["ingest"]["rejected"] == 6, what="6 rejected")
        self.assertEqual(self.cloud.node(node.id)["ingest"]["stored_records"], 0)
        node.client.publish(topic, good, qos=1)
        wait_for(lambda: self.cloud.node(node.id)["ingest"]["stored_records"] == 1, what="good batch after bad ones")
        node.client.close()

    def test_node_cannot_publish_as_another_node(self):
        a, b = self.enrolled(), self.enrolled()
        a.connect()
        a.client.publish(f"ganglion/v1/{b.id}/heartbeat", json.dumps({"version": "evil"}), qos=1)
        a.heartbeat()
        wait_for(lambda: self.cloud.node(a.id)["health"] == "healthy", what="a healthy")
        self.assertEqual(self.cloud.node(b.id)["last_heartbeat"], 0)
        self.assertEqual(a.client.subscribe(f"ganglion/v1/{b.id}/desired"), [0x87])
        a.client.close()

    def test_desired_twin_is_published_retained(self):
        node = self.enrolled()
        status, body = self.cloud.api("PATCH", f"/v1/nodes/{node.id}/twin", {"desired": {"rules": {"r1": "on"}, "x": 1}})
        self.assertEqual(status, 200, body)
        status, body = self.cloud.api("PATCH", f"/v1/nodes/{node.id}/twin", {"desired": {"x": None}})
        self.assertEqual(body["desired"], {"version": 2, "properties": {"rules": {"r1": "on"}}})
        node.connect()
        node.client.subscribe(f"ganglion/v1/{node.id}/desired")
        doc = json.loads(node.client.expect().payload)
        self.assertEqual(doc["version"], 2)
        self.assertEqual(doc["properties"], {"rules": {"r1": "on"}})
        self.assertTrue(doc["digest"].startswith("sha256:"))
        node.client.publish(f"ganglion/v1/{node.id}/reported", json.dumps({"rules": {"r1": "running"}}), qos=1)
        wait_for(lambda: self.cloud.api("GET", f"/v1/nodes/{node.id}/twin")[1]["reported"]["version"] == 1,
                 what="reported twin")
        node.client.close()

    def test_revoked_node_is_disconnected_and_refused(self):
        node = self.enrolled()
        node.connect()
        node.heartbeat()
        status, body = self.cloud.api("POST", f"/v1/nodes/{node.id}/revoke")
        self.assertEqual(status, 200, body)
        self.assertTrue(node.client.disconnected.wait(5), "live session not closed")
        node.client.close()
        node.connect(expect_rc=0x87)
        node.client.close()
        self.assertEqual(self.cloud.node(node.id)["status"], "revoked")
        # Enrolling again under the revoked id is refused too.
        self.assertEqual(node.enroll(self.cloud.token())[0], 409)

    def test_renewal_with_the_current_certificate(self):
        node = self.enrolled()
        old_serial = self.cloud.node(node.id)["certificate"]["serial"]
        ctx = ssl.create_default_context(cafile=self.cloud.ca)
        ctx.load_cert_chain(node.cert, node.key)

        def renew(context, body):
            req = urllib.request.Request(self.cloud.endpoints["api"] + "/v1/renew", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10, context=context) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
        # Without a client certificate, or for another node: refused.
        self.assertEqual(renew(self.cloud.ssl, {"node_id": node.id, "csr": node.csr()})[0], 401)
        self.assertEqual(renew(ctx, {"node_id": "other", "csr": node.csr("other")})[0], 401)
        status, body = renew(ctx, {"node_id": node.id, "csr": node.csr()})
        self.assertEqual(status, 200, body)
        self.assertNotEqual(self.cloud.node(node.id)["certificate"]["serial"], old_serial)
        # The old certificate is no longer the current one.
        self.assertEqual(renew(ctx, {"node_id": node.id, "csr": node.csr()})[0], 401)

    # --- refusals -----------------------------------------------------------------------------

    def test_expired_reused_and_forged_tokens_are_refused_and_audited(self):
        expired = self.cloud.token(ttl="1s")
        time.sleep(1.2)
        self.assertEqual(Node(self.cloud, unique("e")).enroll(expired)[0], 401)
        once = self.cloud.token()
        Node(self.cloud, unique("u")).enroll_ok(once)
        self.assertEqual(Node(self.cloud, unique("u")).enroll(once)[0], 401)
        self.assertEqual(Node(self.cloud, unique("f")).enroll("gbt_" + "0" * 32)[0], 401)
        self.assertEqual(Node(self.cloud, unique("f")).enroll("")[0], 401)
        twice = self.cloud.token(uses=2)
        Node(self.cloud, unique("m")).enroll_ok(twice)
        Node(self.cloud, unique("m")).enroll_ok(twice)
        self.assertEqual(Node(self.cloud, unique("m")).enroll(twice)[0], 401)
        _, audit = self.cloud.api("GET", "/v1/audit?limit=1000")
        denied = [e["detail"] for e in audit["items"] if e["action"] == "node.enroll" and e["outcome"] == "denied"]
        for why in ("expired", "used up", "unknown", "no token"):
            self.assertIn(why, denied)
        self.assertNotIn(once, self.cloud.output())  # secrets never logged
        self.assertNotIn(once, json.dumps(audit))

    def test_concurrent_enrolments_share_commits_and_each_is_audited_once(self):
        # Enrolments that arrive together are stored in one group commit (token use, node,
        # audit entry: all or nothing each). A token for 6 uses and 10 nodes enrolling at
        # once: exactly 6 get a certificate, the others 401, each outcome audited once.
        token = self.cloud.token(uses=6)
        nodes = [Node(self.cloud, unique("g")) for _ in range(10)]
        csrs = [n.csr() for n in nodes]
        results = [None] * len(nodes)

        def enrol(i):
            results[i] = nodes[i].enroll(token, csr=csrs[i])

        threads = [threading.Thread(target=enrol, args=(i,)) for i in range(len(nodes))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        statuses = sorted(r[0] for r in results)
        self.assertEqual(statuses, [200] * 6 + [401] * 4)
        enrolled = {n.id for n, r in zip(nodes, results) if r[0] == 200}
        for n, r in zip(nodes, results):
            if r[0] == 200:
                self.assertIn("BEGIN CERTIFICATE", r[1]["certificate"])
                self.assertEqual(self.cloud.node(n.id)["id"], n.id)
            else:
                self.assertEqual(self.cloud.api("GET", "/v1/nodes/" + n.id)[0], 404)
        _, audit = self.cloud.api("GET", "/v1/audit?limit=1000")
        ours = [e for e in audit["items"] if e["action"] == "node.enroll" and e["target"] in {n.id for n in nodes}]
        self.assertEqual(sorted(e["target"] for e in ours if e["outcome"] == "ok"), sorted(enrolled))
        self.assertEqual(sum(1 for e in ours if e["outcome"] == "denied"), 4)

    def test_bad_csr_node_id_and_taken_id(self):
        node = Node(self.cloud, unique("c"))
        self.assertEqual(node.enroll(self.cloud.token(), csr="-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n")[0], 400)
        self.assertEqual(node.enroll(self.cloud.token(), csr=node.csr(cn="someone-else"))[0], 400)
        self.assertEqual(node.enroll(self.cloud.token(), node_id="Bad/Id#")[0], 400)
        # A tampered CSR (signature no longer matches).
        der = bytearray(openssl("req", "-in", "/dev/stdin", "-outform", "DER", input=node.csr().encode()))
        der[-5] ^= 0xFF
        pem = openssl("req", "-inform", "DER", "-in", "/dev/stdin", "-outform", "PEM", input=bytes(der)).decode()
        self.assertEqual(node.enroll(self.cloud.token(), csr=pem)[0], 400)
        # RSA 1024 is too weak.
        weak = os.path.join(node.dir, "weak.key")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", weak)
        self.assertEqual(Node(self.cloud, unique("w"), key=weak).enroll(self.cloud.token())[0], 400)
        node.enroll_ok(self.cloud.token())
        # The same id with another key: taken. With the same key: re-issued.
        self.assertEqual(Node(self.cloud, node.id).enroll(self.cloud.token())[0], 409)
        self.assertEqual(node.enroll(self.cloud.token())[0], 200)

    def test_foreign_ca_client_certificate_is_refused(self):
        node = self.enrolled()
        foreign = CertificateAuthority(node.dir, "foreign-ca")
        cert, key = foreign.issue(node.id)
        client = PahoClient(V5, client_id=node.id)
        with self.assertRaises(Exception):
            client.connect(self.cloud.mqtt, tls={"ca_certs": self.cloud.ca, "certfile": cert, "keyfile": key}, timeout=3)
        client.close()
        # No client certificate at all.
        client = PahoClient(V5, client_id=node.id)
        with self.assertRaises(Exception):
            client.connect(self.cloud.mqtt, tls={"ca_certs": self.cloud.ca}, timeout=3)
        client.close()

    def test_api_needs_a_token_with_the_right_role(self):
        self.assertEqual(self.cloud.api("GET", "/v1/nodes", token=None)[0], 401)
        self.assertEqual(self.cloud.api("GET", "/v1/nodes", token="gat_" + "1" * 32)[0], 401)
        self.assertEqual(self.cloud.api("GET", "/healthz", token=None)[0], 200)
        status, viewer = self.cloud.api("POST", "/v1/api-tokens", {"name": "dash", "role": "viewer"})
        self.assertEqual(status, 201, viewer)
        status, operator = self.cloud.api("POST", "/v1/api-tokens", {"name": "ops", "role": "operator"})
        self.assertEqual(status, 201, operator)
        v, o = viewer["token"], operator["token"]
        self.assertEqual(self.cloud.api("GET", "/v1/nodes", token=v)[0], 200)
        self.assertEqual(self.cloud.api("GET", "/metrics", token=v)[0], 200)
        self.assertEqual(self.cloud.api("POST", "/v1/tokens", {"ttl": "1h"}, token=v)[0], 403)
        self.assertEqual(self.cloud.api("POST", "/v1/tokens", {"ttl": "1h"}, token=o)[0], 201)
        self.assertEqual(self.cloud.api("GET", "/v1/audit", token=o)[0], 403)
        self.assertEqual(self.cloud.api("POST", "/v1/api-tokens", {"name": "x", "role": "admin"}, token=o)[0], 403)
        self.assertEqual(self.cloud.api("POST", "/v1/tokens", raw=b"{not json")[0], 400)
        self.assertEqual(self.cloud.api("GET", "/v1/query?metric=temp;drop")[0], 400)
        self.assertEqual(self.cloud.api("GET", "/v1/query?metric=temp&agg=median")[0], 400)
        _, audit = self.cloud.api("GET", "/v1/audit?limit=1000")
        self.assertTrue(any(e["outcome"] == "denied" and e["actor"] == "api:dash" for e in audit["items"]))

    def test_labels_and_events_stream(self):
        events = []
        req = urllib.request.Request(self.cloud.endpoints["api"] + "/v1/events",
                                     headers={"Authorization": "Bearer " + self.cloud.admin})
        stream = urllib.request.urlopen(req, timeout=10, context=self.cloud.ssl)

        def read():
            try:
                for line in stream:
                    events.append(line.decode().strip())
            except Exception:
                pass
        threading.Thread(target=read, daemon=True).start()
        node = self.enrolled()
        status, body = self.cloud.api("PATCH", f"/v1/nodes/{node.id}", {"labels": {"rack": "r7", "type": None}})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["labels"], {"site": "eu-1", "rack": "r7"})
        wait_for(lambda: "event: node.enrolled" in events and "event: node.labels" in events, what="SSE events")
        self.assertTrue(any(node.id in e for e in events if e.startswith("data:")))
        stream.close()

    def test_ctl_lists_nodes_and_creates_tokens(self):
        node = self.enrolled()
        env = dict(os.environ, GANGLION_URL=self.cloud.endpoints["api"], GANGLION_TOKEN=self.cloud.admin,
                   GANGLION_CA=self.cloud.ca, HOME=self.cloud.tmp.name)
        r = subprocess.run([GANGLION, "ctl", "get", "nodes", "-o", "json"], env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(node.id, [n["id"] for n in json.loads(r.stdout)["items"]])
        r = subprocess.run([GANGLION, "ctl", "get", "nodes"], env=env, capture_output=True, text=True, timeout=30)
        self.assertIn(node.id, r.stdout)
        r = subprocess.run([GANGLION, "ctl", "token", "create", "--labels", "site=us-2", "--ttl", "10m", "--uses", "3"],
                           env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        Node(self.cloud, unique("ctl")).enroll_ok(r.stdout.strip())
        r = subprocess.run([GANGLION, "ctl", "label", "node", node.id, "zone=b"], env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([GANGLION, "ctl", "describe", "node", node.id], env=env, capture_output=True, text=True, timeout=30)
        self.assertIn("zone=b", r.stdout)
        r = subprocess.run([GANGLION, "ctl", "revoke", "no-such-node"], env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        bad = dict(env, GANGLION_TOKEN="gat_" + "2" * 32)
        r = subprocess.run([GANGLION, "ctl", "get", "nodes"], env=bad, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("401", r.stderr)
        r = subprocess.run([GANGLION, "ctl", "get", "nodes"], env=dict(os.environ, HOME=self.cloud.tmp.name,
                           GANGLION_URL="", GANGLION_TOKEN=""), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)

    def test_ctl_get_nodes_reads_every_page(self):
        site = unique("paged")
        token = self.cloud.token(labels=f"site={site}", uses=5)
        ids = sorted(Node(self.cloud, unique("pg")).enroll_ok(token)["node_id"] for _ in range(5))
        env = dict(os.environ, GANGLION_URL=self.cloud.endpoints["api"], GANGLION_TOKEN=self.cloud.admin,
                   GANGLION_CA=self.cloud.ca, HOME=self.cloud.tmp.name)
        # Two per page: three requests (limit=2, then continue twice), one list.
        r = subprocess.run([GANGLION, "ctl", "get", "nodes", "-l", f"site={site}", "--chunk-size", "2", "-o", "json"],
                           env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        body = json.loads(r.stdout)
        self.assertEqual([n["id"] for n in body["items"]], ids)
        self.assertNotIn("continue", body)
        r = subprocess.run([GANGLION, "ctl", "get", "nodes", "-l", f"site={site}", "--chunk-size", "1"],
                           env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([line.split()[0] for line in r.stdout.splitlines()[1:]], ids)
        r = subprocess.run([GANGLION, "ctl", "get", "nodes", "--chunk-size", "0"], env=env, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 2)


class CloudRestartTest(unittest.TestCase):
    def test_restart_keeps_registry_and_does_not_print_a_new_token(self):
        first = Cloud()
        try:
            node = Node(first, unique("r"))
            node.enroll_ok(first.token())
            first.proc.terminate()
            first.proc.wait(10)
            data = first.data
            args = ["--cloud.data_dir", data]
            log = os.path.join(first.tmp.name, "second.log")
            with open(log, "wb") as out:
                os.remove(os.path.join(data, "endpoints.json"))
                proc = subprocess.Popen([GANGLION, "cloud", "--cloud.api.listen", "127.0.0.1:0",
                                         "--cloud.mqtt.listen", "tls://127.0.0.1:0", *args], stdout=out, stderr=subprocess.STDOUT)
                try:
                    wait_for(lambda: os.path.exists(os.path.join(data, "endpoints.json")), what="restart")
                    with open(os.path.join(data, "endpoints.json")) as f:
                        first.endpoints = json.load(f)
                    self.assertEqual(first.node(node.id)["id"], node.id)  # same admin token still valid
                finally:
                    proc.terminate()
                    proc.wait(10)
            with open(log) as f:
                self.assertNotIn("admin API token", f.read())
            for name in ("ca.key", "server.key", "signing.key"):
                self.assertEqual(os.stat(os.path.join(data, "pki", name)).st_mode & 0o777, 0o600)
        finally:
            first.close()


if __name__ == "__main__":
    unittest.main()
