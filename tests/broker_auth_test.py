"""MQTT 5 enhanced authentication (spec 4.12, AUTH packets) against a real `ganglion edge`:
SCRAM-SHA-512 (RFC 5802 / RFC 7677 with SHA-512) over the password file written by
`ganglion passwd`.

paho and mosquitto_pub cannot do SCRAM, so the client here is a small raw-socket MQTT 5 client
with a SCRAM client made of hashlib and hmac (independent of the broker's C++)."""
import base64
import hashlib
import hmac
import os
import subprocess
import tempfile
import time
import unittest

from support import (AUTH, CONNACK, DISCONNECT, GANGLION, PINGREQ, PINGRESP, PUBACK, PUBLISH, V5,
                     BrokerTestCase, RawClient, auth_packet, connect_packet, packet,
                     publish_packet, unique)

CONTINUE, REAUTHENTICATE = 0x18, 0x19
METHOD = "SCRAM-SHA-512"


# --- SCRAM client (RFC 5802), hashlib + hmac only ----------------------------------------------

class Scram:
    def __init__(self, user, password, hash_name="sha512", nonce=None):
        self.user, self.password, self.hash_name = user, password.encode(), hash_name
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        escaped = user.replace("=", "=3D").replace(",", "=2C")
        self.bare = f"n={escaped},r={self.nonce}"

    def client_first(self):
        return ("n,," + self.bare).encode()

    def client_final(self, server_first):
        server_first = server_first.decode()
        attrs = dict(a.split("=", 1) for a in server_first.split(","))
        assert attrs["r"].startswith(self.nonce) and len(attrs["r"]) > len(self.nonce), attrs
        salt, iterations = base64.b64decode(attrs["s"]), int(attrs["i"])
        salted = hashlib.pbkdf2_hmac(self.hash_name, self.password, salt, iterations)
        mac = lambda key, msg: hmac.new(key, msg, self.hash_name).digest()
        client_key = mac(salted, b"Client Key")
        stored_key = hashlib.new(self.hash_name, client_key).digest()
        without_proof = "c=biws,r=" + attrs["r"]
        self.auth_message = ",".join((self.bare, server_first, without_proof)).encode()
        proof = bytes(a ^ b for a, b in zip(client_key, mac(stored_key, self.auth_message)))
        self.server_signature = mac(mac(salted, b"Server Key"), self.auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def server_final_ok(self, data):
        return data == b"v=" + base64.b64encode(self.server_signature)


# --- MQTT 5 with AUTH, on support.RawClient ----------------------------------------------------

class Mqtt5(RawClient):
    """A raw MQTT 5 connection that speaks the AUTH exchange."""

    def __init__(self, address):
        super().__init__(address, version=5)
        self.set_aside_publishes = True  # a delivery may come before the PUBACK we wait for

    def connect(self, client_id, method=None, data=None, username=None):
        """Sends CONNECT only: with a method the broker answers AUTH before any CONNACK."""
        auth = {"authentication_method": method} if method is not None else {}
        if data is not None:
            auth["authentication_data"] = data
        self.send(connect_packet(client_id, version=5, username=username, props=auth))

    def auth(self, reason, data, method=METHOD):
        self.send(auth_packet(reason, {"authentication_method": method,
                                       "authentication_data": data}))

    def subscribe(self, topic, qos=1, packet_id=1):
        return super().subscribe((topic, qos), packet_id=packet_id)

    def publish(self, topic, payload, qos=1, packet_id=2):
        self.send(publish_packet(topic, payload, qos, packet_id, version=5))
        return self.expect(PUBACK).reason if qos else None


def method(p):
    return p.props.get("authentication_method")


def data(p):
    return p.props.get("authentication_data")


class EnhancedAuthTest(BrokerTestCase):
    """Users written by `ganglion passwd`; an ACL per user; anonymous clients refused."""

    @classmethod
    def setUpClass(cls):
        cls.files = tempfile.TemporaryDirectory(prefix="ganglion-scram-")
        passwd = os.path.join(cls.files.name, "passwd")
        for user, password in (("alice", "wonderland"), ("bob", "builder")):
            r = subprocess.run([GANGLION, "passwd", *(["--create"] if user == "alice" else []),
                                passwd, user, "--password", password, "--iterations", "4096"],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                cls.files.cleanup()
                raise AssertionError(f"ganglion passwd failed: {r.stderr}")
        acl = os.path.join(cls.files.name, "acl")
        with open(acl, "w") as f:
            f.write("user alice\ntopic readwrite plant/#\n\nuser bob\ntopic read plant/#\n")
        cls.options = {"password_file": passwd, "acl_file": acl, "allow_anonymous": "false",
                       "connect_timeout": "1s"}
        try:
            super().setUpClass()
        except BaseException:
            cls.files.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.files.cleanup()

    def client(self):
        c = Mqtt5(self.addr())
        self.addCleanup(c.close)
        return c

    def login(self, user, password, client_id=None, expect=0):
        """The SCRAM exchange up to the CONNACK; returns (client, scram, connack)."""
        c = self.client()
        scram = Scram(user, password)
        c.connect(client_id or unique("scram"), METHOD, scram.client_first())
        challenge = c.expect(AUTH)
        self.assertEqual((challenge.reason, method(challenge)), (CONTINUE, METHOD))
        c.auth(CONTINUE, scram.client_final(data(challenge)))
        ack = c.expect(CONNACK)
        self.assertEqual(ack.reason, expect, ack)
        return c, scram, ack

    def test_right_password_connects_and_the_server_proves_it_knows_the_password(self):
        c, scram, ack = self.login("alice", "wonderland")
        self.assertEqual(method(ack), METHOD)
        self.assertTrue(scram.server_final_ok(data(ack)), data(ack))
        c.send(packet(PINGREQ, 0, b""))
        self.assertEqual(c.expect(PINGRESP).type, PINGRESP)

    def test_wrong_password_and_unknown_user_get_0x86(self):
        for user, password in (("alice", "guess"), ("mallory", "wonderland")):
            with self.subTest(user=user):
                c, _, ack = self.login(user, password, expect=0x86)
                self.assertIsNone(data(ack))
                self.assertEqual(c.expect_closed(), [])

    def test_unknown_method_gets_0x8c(self):
        for method in ("SCRAM-SHA-256", "PLAIN", "scram-sha-512"):
            with self.subTest(method=method):
                c = self.client()
                c.connect(unique("m"), method, Scram("alice", "wonderland").client_first())
                self.assertEqual(c.expect(CONNACK).reason, 0x8C)
                self.assertEqual(c.expect_closed(), [])

    def test_auth_with_another_method_mid_exchange_is_a_protocol_error(self):
        c = self.client()
        c.connect(unique("m"), METHOD, Scram("alice", "wonderland").client_first())
        c.expect(AUTH)
        c.auth(CONTINUE, b"c=biws,r=x,p=AAAA", method="SCRAM-SHA-256")
        self.assertEqual(c.expect(CONNACK).reason, 0x82)
        self.assertEqual(c.expect_closed(), [])

    def test_client_silent_mid_exchange_is_dropped_by_the_connect_timeout(self):
        c = self.client()
        started = time.monotonic()
        c.connect(unique("silent"), METHOD, Scram("alice", "wonderland").client_first())
        self.assertEqual(c.expect(AUTH).reason, CONTINUE)
        # connect_timeout is 1s: no CONNACK, just the close.
        self.assertEqual(c.expect_closed(timeout=10), [])
        self.assertLess(time.monotonic() - started, 8)

    def test_reauthentication_with_the_same_method(self):
        c, _, _ = self.login("alice", "wonderland")
        again = Scram("alice", "wonderland")
        c.auth(REAUTHENTICATE, again.client_first())
        challenge = c.expect(AUTH)
        self.assertEqual(challenge.reason, CONTINUE)
        c.auth(CONTINUE, again.client_final(data(challenge)))
        done = c.expect(AUTH)
        self.assertEqual((done.reason, method(done)), (0, METHOD))
        self.assertTrue(again.server_final_ok(data(done)), data(done))
        self.assertEqual(c.publish(f"plant/{unique('after')}", b"still here"), 0x10)

    def test_failed_reauthentication_disconnects_with_0x87(self):
        c, _, _ = self.login("alice", "wonderland")
        again = Scram("alice", "not-the-password")
        c.auth(REAUTHENTICATE, again.client_first())
        c.auth(CONTINUE, again.client_final(data(c.expect(AUTH))))
        seen = c.expect_closed()
        self.assertEqual([(p.type, p.reason) for p in seen], [(DISCONNECT, 0x87)])

    def test_authorised_client_publishes_and_subscribes_under_its_acl(self):
        topic = f"plant/{unique('line')}"
        alice, _, _ = self.login("alice", "wonderland")
        self.assertEqual(alice.subscribe(topic, qos=1), [1])
        self.assertEqual(alice.subscribe("secret/#", qos=1, packet_id=3), [0x87])
        bob, _, _ = self.login("bob", "builder")
        self.assertEqual(bob.subscribe(topic, qos=0), [0])
        # bob may read plant/# but not write it; alice may do both.
        self.assertEqual(bob.publish(topic, b"from bob"), 0x87)
        self.assertEqual(alice.publish(topic, b"from alice"), 0)
        got = [alice.expect(PUBLISH), bob.expect(PUBLISH)]
        self.assertEqual([(m.topic, m.payload) for m in got], [(topic, b"from alice")] * 2)
        # A plain-password login still works next to SCRAM.
        plain = self.paho(V5, username="bob", password="builder")
        plain.subscribe(topic, qos=1)
        self.assertEqual(alice.publish(topic, b"again", packet_id=4), 0)
        self.assertEqual(plain.expect().payload, b"again")


if __name__ == "__main__":
    unittest.main()
