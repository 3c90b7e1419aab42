"""Transports and security of the edge broker with real clients: TLS, mutual TLS with the
certificate CN as identity, WebSocket, unix sockets, password file, ACL file."""
import os
import re
import socket
import ssl
import subprocess
import tempfile
import unittest

from support import (GANGLION, PUBACK, V311, V5, VERSIONS, BrokerTestCase, CertificateAuthority,
                     PahoClient, RawClient, connect_packet, mqtt_edge, password_line, publish_packet,
                     unique)

NAMES = {V311: "3.1.1", V5: "5"}


class PkiTestCase(BrokerTestCase):
    """A broker whose options may name files of a CA made for the class (cls.ca, cls.pki)."""

    @classmethod
    def broker_options(cls):
        return {}

    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.TemporaryDirectory(prefix="ganglion-pki-")
        try:
            cls.ca = CertificateAuthority(cls.pki.name)
            cls.server_cert, cls.server_key = cls.ca.issue("broker", server=True)
            cls.options = {"tls.certificate": cls.server_cert, "tls.key": cls.server_key,
                           **cls.broker_options()}
            super().setUpClass()
        except BaseException:
            cls.pki.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.pki.cleanup()

    def tls_context(self, cert=None):
        ctx = ssl.create_default_context(cafile=self.ca.cert)
        if cert:
            ctx.load_cert_chain(*cert)
        return ctx


class TlsTest(PkiTestCase):
    transports = ("tls", "tcp")

    def test_paho_over_tls_both_versions(self):
        for version, v in VERSIONS:
            with self.subTest(version=v):
                topic = unique("tls")
                sub = self.paho(version, transport="tls", tls={"ca_certs": self.ca.cert})
                sub.subscribe(topic, qos=2)
                pub = self.paho(version, transport="tls", tls={"ca_certs": self.ca.cert})
                pub.publish(topic, b"secret", qos=2)
                m = sub.expect()
                self.assertEqual((m.payload, m.qos), (b"secret", 2))

    def test_mosquitto_over_tls_both_versions_and_across_transports(self):
        for _, v in VERSIONS:
            with self.subTest(version=v):
                topic = unique("tls-mosq")
                sub = self.mosquitto_sub(topic, version=v, transport="tls",
                                         extra=("--cafile", self.ca.cert))
                self.mosquitto_pub(topic, "over tls", v, "--cafile", self.ca.cert, "-q", "1",
                                   transport="tls")
                self.mosquitto_pub(topic, "over tcp", v, "-q", "1", transport="tcp")
                self.assertEqual(sub.wait_messages(2), [f"{topic} over tls", f"{topic} over tcp"])

    def test_plain_mqtt_on_the_tls_port_gets_no_connack(self):
        raw = self.raw(4, transport="tls")
        raw.send(connect_packet(unique("plain")))
        self.assertEqual(raw.expect_closed(), [])

    def test_client_trusting_another_ca_refuses_the_broker(self):
        with tempfile.TemporaryDirectory() as d:
            other = CertificateAuthority(d, "other-ca")
            r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.addr("tls")[1]),
                                "--cafile", other.cert, "-t", "x", "-m", "y"],
                               capture_output=True, text=True, timeout=20)
            self.assertNotEqual(r.returncode, 0)


class MutualTlsTest(PkiTestCase):
    transports = ("tls",)

    @classmethod
    def broker_options(cls):
        acl = os.path.join(cls.pki.name, "acl")
        with open(acl, "w") as f:
            f.write("# devices own their subtree; the dashboard reads everything\n"
                    "pattern readwrite sensors/%u/#\n"
                    "user dashboard\n"
                    "topic read sensors/#\n")
        return {"tls.ca": cls.ca.cert, "tls.require_client_certificate": "true",
                "allow_anonymous": "false", "acl_file": acl}

    def client_cert(self, cn):
        return self.ca.issue(cn)

    def paho_tls(self, version, cn, **kw):
        cert, key = self.client_cert(cn)
        return self.paho(version, transport="tls",
                         tls={"ca_certs": self.ca.cert, "certfile": cert, "keyfile": key}, **kw)

    def test_client_without_certificate_is_refused(self):
        try:
            raw = RawClient(self.addr("tls"), 4, tls=self.tls_context())
        except (ssl.SSLError, ConnectionError):
            return  # refused during the handshake (TLS 1.2)
        self.addCleanup(raw.close)
        try:
            raw.send(connect_packet(unique("nocert")))
        except (ssl.SSLError, ConnectionError):
            return
        self.assertEqual(raw.expect_closed(), [])  # TLS 1.3: refused after the handshake
        for _, v in VERSIONS:
            r = self.mosquitto_pub("x", "y", v, "--cafile", self.ca.cert, transport="tls",
                                   expect_rc=None)
            self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_certificate_from_another_ca_is_refused(self):
        with tempfile.TemporaryDirectory() as d:
            rogue = CertificateAuthority(d, "rogue-ca").issue("sensor-a")
            r = self.mosquitto_pub("sensors/sensor-a/t", "y", "5", "--cafile", self.ca.cert,
                                   "--cert", rogue[0], "--key", rogue[1], transport="tls",
                                   expect_rc=None)
            self.assertNotEqual(r.returncode, 0)

    def test_certificate_cn_is_the_username_for_the_acl(self):
        for version, v in VERSIONS:
            with self.subTest(version=v):
                dashboard = self.paho_tls(version, "dashboard")
                self.assertEqual(dashboard.subscribe("sensors/#", qos=1), [1])
                # The CN wins over a username in CONNECT (no password file: none checked).
                device = self.paho_tls(version, "sensor-a", username="sensor-b", password="x")
                device.publish("sensors/sensor-a/temp", b"21.5", qos=1)
                device.publish("sensors/sensor-b/temp", b"forged", qos=1)
                m = dashboard.expect()
                self.assertEqual((m.topic, m.payload), ("sensors/sensor-a/temp", b"21.5"))
                dashboard.expect_none(0.3)
                # The dashboard may read but not write.
                dashboard.publish("sensors/sensor-a/temp", b"from dashboard", qos=1)
                dashboard.expect_none(0.3)
                self.assertEqual(device.subscribe("sensors/sensor-b/#", qos=1), [0x80 if version == V311 else 0x87])

    def test_denied_publish_gets_puback_0x87_over_mutual_tls(self):
        cert = self.client_cert("sensor-c")
        raw = self.raw(5, transport="tls", tls=self.tls_context(cert))
        raw.connect()
        raw.send(publish_packet("sensors/sensor-d/x", b"no", qos=1, version=5))
        self.assertEqual(raw.expect(PUBACK).reason, 0x87)
        raw.send(publish_packet("sensors/sensor-c/x", b"yes", qos=1, packet_id=2, version=5))
        self.assertIn(raw.expect(PUBACK).reason, (0x00, 0x10))  # 0x10: no matching subscribers

    def test_mosquitto_with_client_certificate(self):
        for _, v in VERSIONS:
            with self.subTest(version=v):
                cert, key = self.client_cert("dashboard")
                sub = self.mosquitto_sub("sensors/#", version=v, transport="tls",
                                         extra=("--cafile", self.ca.cert, "--cert", cert, "--key", key))
                dev_cert, dev_key = self.client_cert("sensor-m")
                self.mosquitto_pub("sensors/sensor-m/rpm", "900", v, "-q", "1", "--cafile", self.ca.cert,
                                   "--cert", dev_cert, "--key", dev_key, transport="tls")
                self.assertEqual(sub.wait_messages(1), ["sensors/sensor-m/rpm 900"])


class WebSocketTest(BrokerTestCase):
    transports = ("ws", "tcp")

    def test_paho_over_websocket_both_versions(self):
        for version, v in VERSIONS:
            with self.subTest(version=v):
                topic = unique("ws")
                sub = self.paho(version, transport="ws")
                sub.subscribe(topic, qos=2)
                mosq = self.mosquitto_sub(topic, version=v)
                pub = self.paho(version, transport="ws")
                for qos in (0, 1, 2):
                    pub.publish(topic, f"ws{qos}".encode(), qos=qos)
                self.assertEqual([(m.payload, m.qos) for m in sub.expect_n(3)],
                                 [(b"ws0", 0), (b"ws1", 1), (b"ws2", 2)])
                self.assertEqual(len(mosq.wait_messages(3)), 3)  # ws -> tcp
                self.mosquitto_pub(topic, "tcp to ws", v, "-q", "1")
                self.assertEqual(sub.expect().payload, b"tcp to ws")

    def test_upgrade_answers_with_the_mqtt_subprotocol(self):
        host, port = self.addr("ws")
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
        text = head.decode(errors="replace").lower()
        self.assertTrue(text.startswith("http/1.1 101"), text)
        self.assertIn("sec-websocket-protocol: mqtt", text)


class UnixSocketTest(BrokerTestCase):
    transports = ("unix", "tcp")

    def test_raw_client_on_unix_socket_both_versions(self):
        for version in (4, 5):
            with self.subTest(version=version):
                topic = unique("unix")
                raw = self.raw(version, transport="unix")
                raw.connect()
                self.assertEqual(raw.subscribe((topic, 1)), [1])
                self.paho(V5).publish(topic, b"from tcp", qos=1)
                m = raw.read()
                self.assertEqual((m.topic, m.payload, m.qos), (topic, b"from tcp", 1))

    def test_mosquitto_on_unix_socket_both_versions(self):
        for _, v in VERSIONS:
            with self.subTest(version=v):
                topic = unique("unix-mosq")
                tcp_sub = self.mosquitto_sub(topic, version=v, transport="tcp")
                unix_sub = self.mosquitto_sub(topic, version=v, transport="unix")
                self.mosquitto_pub(topic, "via unix", v, "-q", "1", transport="unix")
                self.assertEqual(tcp_sub.wait_messages(1), [f"{topic} via unix"])
                self.assertEqual(unix_sub.wait_messages(1), [f"{topic} via unix"])


class PasswordAndAclTest(BrokerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.files = tempfile.TemporaryDirectory(prefix="ganglion-auth-")
        passwd = os.path.join(cls.files.name, "passwd")
        with open(passwd, "w") as f:
            f.write("# test users\n")
            f.write(password_line("alice", "wonderland"))
            f.write(password_line("bob", "builder", iterations=1500))
        acl = os.path.join(cls.files.name, "acl")
        with open(acl, "w") as f:
            f.write("user alice\n"
                    "topic readwrite plant/#\n"
                    "topic deny plant/secret/#\n"
                    "topic read fleet/#\n"
                    "\n"
                    "user bob\n"
                    "topic read plant/#\n"
                    "\n"
                    "pattern readwrite clients/%c/#\n"
                    "pattern read users/%u/#\n")
        cls.options = {"password_file": passwd, "acl_file": acl, "allow_anonymous": "false"}
        try:
            super().setUpClass()
        except BaseException:
            cls.files.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.files.cleanup()

    def alice(self, version, **kw):
        return self.paho(version, username="alice", password="wonderland", **kw)

    def bob(self, version, **kw):
        return self.paho(version, username="bob", password="builder", **kw)

    def test_valid_credentials_are_accepted(self):
        for version, v in VERSIONS:
            with self.subTest(version=v):
                topic = f"plant/{unique('line')}"
                sub = self.alice(version)
                sub.subscribe(topic, qos=1)
                self.mosquitto_pub(topic, "hi", v, "-u", "alice", "-P", "wonderland", "-q", "1")
                self.assertEqual(sub.expect().payload, b"hi")

    def test_bad_password_unknown_user_and_anonymous_are_refused(self):
        cases = [("alice", "wrong", 4, 0x86), ("mallory", "wonderland", 4, 0x86), (None, None, 5, 0x87)]
        for user, password, rc311, rc5 in cases:
            for version, v in VERSIONS:
                with self.subTest(user=user, version=v):
                    c = PahoClient(version)
                    self.addCleanup(c.close)
                    kw = {"username": user, "password": password} if user else {}
                    c.connect(self.addr(), expect_rc=rc311 if version == V311 else rc5, **kw)
                    args = ("-u", user, "-P", password) if user else ()
                    r = self.mosquitto_pub("plant/x", "y", v, *args, expect_rc=None)
                    self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_denied_publish_is_dropped_with_0x87_in_v5(self):
        topic = f"plant/{unique('ro')}"
        watcher = self.alice(V5)
        watcher.subscribe(topic, qos=1)
        for version in (4, 5):
            with self.subTest(version=version):
                raw = self.raw(version)
                raw.connect(username="bob", password="builder")
                raw.send(publish_packet(topic, b"bob may only read", qos=1, version=version))
                self.assertEqual(raw.expect(PUBACK).reason, 0x87 if version == 5 else 0)
        # paho and mosquitto_pub as bob: acknowledged (3.1.1) and dropped.
        self.bob(V311).publish(topic, b"dropped", qos=1)
        self.mosquitto_pub(topic, "dropped too", "311", "-u", "bob", "-P", "builder", "-q", "1")
        watcher.expect_none(0.5)

    def test_denied_subscribe_gets_0x80_or_0x87(self):
        for version, v in VERSIONS:
            with self.subTest(version=v):
                denied = 0x80 if version == V311 else 0x87
                bob = self.bob(version)
                self.assertEqual(bob.subscribe("fleet/#", qos=1), [denied])
                self.assertEqual(bob.subscribe("plant/#", qos=1), [1])
                alice = self.alice(version)
                self.assertEqual(alice.subscribe("plant/secret/#", qos=1), [denied])
                self.assertEqual(alice.subscribe("#", qos=1), [denied])  # not covered by plant/#
                raw = self.raw(5 if version == V5 else 4)
                raw.connect(username="bob", password="builder")
                self.assertEqual(raw.subscribe(("fleet/a", 1), ("plant/a", 2)), [denied, 2])

    def test_subscription_overlapping_a_deny_rule_does_not_receive_denied_topics(self):
        line = unique("line")
        alice = self.alice(V5)
        self.assertEqual(alice.subscribe("plant/+/x", qos=1), [1])
        publisher = self.alice(V5)
        publisher.publish("plant/secret/x", b"hidden", qos=1)  # alice may not write there either
        self.paho(V5, username="bob", password="builder")  # unrelated login in between
        publisher.publish(f"plant/{line}/x", b"visible", qos=1)
        self.assertEqual(alice.expect().payload, b"visible")
        alice.expect_none(0.3)

    def test_client_id_and_username_patterns(self):
        for version, v in VERSIONS:
            with self.subTest(version=v):
                cid = unique("dev")
                bob = self.bob(version, client_id=cid)
                self.assertEqual(bob.subscribe(f"clients/{cid}/#", qos=1), [1])
                self.assertEqual(bob.subscribe("users/bob/#", qos=1), [1])
                denied = 0x80 if version == V311 else 0x87
                self.assertEqual(bob.subscribe("users/alice/#", qos=1), [denied])
                self.assertEqual(bob.subscribe(f"clients/{cid}x/#", qos=1), [denied])
                bob.publish(f"clients/{cid}/up", b"own", qos=1)
                self.assertEqual(bob.expect().payload, b"own")
                # Another client id writing to bob's clients/<id> subtree is dropped.
                self.alice(version, client_id=unique("other")).publish(f"clients/{cid}/up", b"x", qos=1)
                bob.expect_none(0.3)


class PasswdCommandTest(unittest.TestCase):
    """Users written by `ganglion passwd` can log in to the broker."""

    def test_user_added_by_ganglion_passwd_logs_in(self):
        probe = subprocess.run([GANGLION, "--help"], capture_output=True, text=True, timeout=30)
        if not re.search(r"^\s+passwd\s", probe.stdout, re.M):
            self.skipTest("`ganglion passwd` is not in this build yet")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "passwd")
            r = subprocess.run([GANGLION, "passwd", "--create", path, "carol", "--password", "s3cret",
                                "--iterations", "1000"], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(path) as f:
                self.assertRegex(f.read(), r"^carol:\$pbkdf2-sha512\$1000\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+\n$")
            with mqtt_edge(options={"password_file": path, "allow_anonymous": "false"}) as edge:
                for version, v in VERSIONS:
                    with self.subTest(version=v):
                        good = PahoClient(version)
                        self.addCleanup(good.close)
                        good.connect(edge.mqtt(), username="carol", password="s3cret")
                        bad = PahoClient(version)
                        self.addCleanup(bad.close)
                        bad.connect(edge.mqtt(), username="carol", password="nope",
                                    expect_rc=4 if version == V311 else 0x86)


if __name__ == "__main__":
    unittest.main()
