"""MQTT 5 enhanced authentication (spec 4.12, AUTH packets) against a real `ganglion edge`:
SCRAM-SHA-512 (RFC 5802 / RFC 7677 with SHA-512) over the password file written by
`ganglion passwd`.

paho and mosquitto_pub cannot do SCRAM, so the client here is a small raw-socket MQTT 5 client
with a SCRAM client made of hashlib and hmac (independent of the broker's C++)."""
import base64
import hashlib
import hmac
import os
import socket
import struct
import subprocess
import tempfile
import time
import unittest

from support import GANGLION, V5, BrokerTestCase, unique

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 12, 13, 14, 15
AUTH_METHOD, AUTH_DATA, REASON_STRING = 0x15, 0x16, 0x1F
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


# --- raw MQTT 5 --------------------------------------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        n, b = divmod(n, 128)
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def props(method=None, data=None):
    body = b""
    if method is not None:
        body += bytes([AUTH_METHOD]) + utf8(method)
    if data is not None:
        body += bytes([AUTH_DATA]) + utf8(data)
    return varint(len(body)) + body


def packet(ptype, flags, body):
    return bytes([ptype << 4 | flags]) + varint(len(body)) + body


def read_varint(data, pos):
    mult = value = 0
    shift = 1
    while True:
        b = data[pos]
        pos += 1
        value += (b & 0x7F) * shift
        shift *= 128
        if not b & 0x80:
            return value, pos


def parse_props(body, pos):
    """The properties at `pos` as {id: value} (only what these tests look at is decoded)."""
    length, pos = read_varint(body, pos)
    end, out = pos + length, {}
    while pos < end:
        pid = body[pos]
        pos += 1
        if pid in (AUTH_METHOD, AUTH_DATA, REASON_STRING, 0x12, 0x03, 0x08, 0x09):
            n = struct.unpack_from("!H", body, pos)[0]
            out[pid] = body[pos + 2:pos + 2 + n]
            pos += 2 + n
        elif pid in (0x01, 0x24, 0x25, 0x28, 0x29, 0x2A, 0x17, 0x19):
            out[pid] = body[pos]
            pos += 1
        elif pid in (0x13, 0x21, 0x22, 0x23):
            out[pid] = struct.unpack_from("!H", body, pos)[0]
            pos += 2
        elif pid in (0x02, 0x11, 0x18, 0x27):
            out[pid] = struct.unpack_from("!I", body, pos)[0]
            pos += 4
        elif pid == 0x0B:
            out[pid], pos = read_varint(body, pos)
        else:
            raise AssertionError(f"property 0x{pid:02x} not decoded by this test")
    return out, end


class Reply:
    def __init__(self, ptype, flags, body):
        self.type, self.flags, self.body = ptype, flags, body
        self.reason, self.props = 0, {}
        if ptype in (CONNACK,):
            self.reason = body[1]
            self.props, _ = parse_props(body, 2)
        elif ptype in (AUTH, DISCONNECT):
            if body:
                self.reason = body[0]
            if len(body) > 1:
                self.props, _ = parse_props(body, 1)
        elif ptype == PUBACK:
            self.packet_id = struct.unpack_from("!H", body)[0]
            self.reason = body[2] if len(body) > 2 else 0
        elif ptype == SUBACK:
            self.packet_id = struct.unpack_from("!H", body)[0]
            _, pos = parse_props(body, 2)
            self.reasons = list(body[pos:])
        elif ptype == PUBLISH:
            n = struct.unpack_from("!H", body)[0]
            self.topic = body[2:2 + n].decode()
            pos = 2 + n + (2 if (flags >> 1) & 3 else 0)
            _, pos = parse_props(body, pos)
            self.payload = body[pos:]

    @property
    def data(self):
        return self.props.get(AUTH_DATA)

    @property
    def method(self):
        m = self.props.get(AUTH_METHOD)
        return m.decode() if m is not None else None

    def __repr__(self):
        return f"Reply(type={self.type}, reason=0x{self.reason:02x}, props={self.props})"


class Mqtt5:
    """One MQTT 5 connection on a plain socket; every read has a timeout."""

    def __init__(self, address, timeout=10):
        self.sock = socket.create_connection(address, timeout=timeout)
        self.buf = b""
        self.messages = []  # PUBLISH packets read while waiting for something else

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def connect(self, client_id, method=None, data=None, username=None, keep_alive=60):
        flags = 0x02 | (0x80 if username is not None else 0)
        body = utf8("MQTT") + bytes([5, flags]) + struct.pack("!H", keep_alive)
        body += props(method, data) + utf8(client_id)
        if username is not None:
            body += utf8(username)
        self.send(packet(CONNECT, 0, body))

    def auth(self, reason, data, method=METHOD):
        self.send(packet(AUTH, 0, bytes([reason]) + props(method, data)))

    def subscribe(self, topic, qos=1, packet_id=1):
        self.send(packet(SUBSCRIBE, 2, struct.pack("!H", packet_id) + props() + utf8(topic)
                         + bytes([qos])))
        return self.expect(SUBACK).reasons

    def publish(self, topic, payload, qos=1, packet_id=2):
        body = utf8(topic) + (struct.pack("!H", packet_id) if qos else b"") + props() + payload
        self.send(packet(PUBLISH, qos << 1, body))
        return self.expect(PUBACK).reason if qos else None

    def read(self, timeout=10):
        """The next packet, or None once the broker closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                try:
                    length, pos = read_varint(self.buf, 1)
                except IndexError:
                    length = None
                if length is not None and len(self.buf) >= pos + length:
                    first, body = self.buf[0], self.buf[pos:pos + length]
                    self.buf = self.buf[pos + length:]
                    return Reply(first >> 4, first & 0x0F, body)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no packet from the broker within {timeout}s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk

    def expect(self, ptype, timeout=10):
        """The next packet of `ptype`; a PUBLISH that comes first is kept for later."""
        if ptype == PUBLISH and self.messages:
            return self.messages.pop(0)
        while True:
            p = self.read(timeout)
            if p is not None and p.type == PUBLISH and ptype != PUBLISH:
                self.messages.append(p)
                continue
            if p is None or p.type != ptype:
                raise AssertionError(f"got {p}, expected packet type {ptype}")
            return p

    def expect_closed(self, timeout=10):
        """Reads until the broker closes; returns what it sent before."""
        seen = []
        while True:
            p = self.read(timeout)
            if p is None:
                return seen
            seen.append(p)


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
        self.assertEqual((challenge.reason, challenge.method), (CONTINUE, METHOD))
        c.auth(CONTINUE, scram.client_final(challenge.data))
        ack = c.expect(CONNACK)
        self.assertEqual(ack.reason, expect, ack)
        return c, scram, ack

    def test_right_password_connects_and_the_server_proves_it_knows_the_password(self):
        c, scram, ack = self.login("alice", "wonderland")
        self.assertEqual(ack.method, METHOD)
        self.assertTrue(scram.server_final_ok(ack.data), ack.data)
        c.send(packet(PINGREQ, 0, b""))
        self.assertEqual(c.expect(PINGRESP).type, PINGRESP)

    def test_wrong_password_and_unknown_user_get_0x86(self):
        for user, password in (("alice", "guess"), ("mallory", "wonderland")):
            with self.subTest(user=user):
                c, _, ack = self.login(user, password, expect=0x86)
                self.assertIsNone(ack.data)
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
        c.auth(CONTINUE, again.client_final(challenge.data))
        done = c.expect(AUTH)
        self.assertEqual((done.reason, done.method), (0, METHOD))
        self.assertTrue(again.server_final_ok(done.data), done.data)
        self.assertEqual(c.publish(f"plant/{unique('after')}", b"still here"), 0x10)

    def test_failed_reauthentication_disconnects_with_0x87(self):
        c, _, _ = self.login("alice", "wonderland")
        again = Scram("alice", "not-the-password")
        c.auth(REAUTHENTICATE, again.client_first())
        c.auth(CONTINUE, again.client_final(c.expect(AUTH).data))
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
