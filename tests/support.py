"""Helpers for integration tests: start real ganglion processes on port 0 in temp folders."""
import base64
import hashlib
import itertools
import json
import os
import queue
import select
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
import uuid

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

GANGLION = os.environ.get("GANGLION_BIN", "ganglion")


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_get(url, timeout=5.0):
    """Returns (status, body) without raising on HTTP error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class EdgeProcess:
    """A real `ganglion edge` on loopback with port 0 listeners and its own data folder."""

    def __init__(self, *args, data_dir=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="ganglion-test-")
        self.data_dir = data_dir or os.path.join(self.tmp.name, "data")
        self.args = list(args)
        self.proc = None
        self.endpoints = None

    def start(self):
        endpoints = os.path.join(self.data_dir, "endpoints.json")
        if os.path.exists(endpoints):
            os.remove(endpoints)
        cmd = [GANGLION, "edge", "--data.dir", self.data_dir,
               "--http.listen", "127.0.0.1:0", *self.args]
        if not any(a.split("=")[0] == "--mqtt.listeners" for a in self.args):
            cmd += ["--mqtt.listeners", "tcp://127.0.0.1:0"]  # never 1883: tests run in parallel
        self.log = open(os.path.join(self.tmp.name, "edge.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(endpoints) or self.proc.poll() is not None,
                 what="edge endpoints.json")
        if self.proc.poll() is not None:
            raise AssertionError(f"edge exited with {self.proc.returncode}: {self.output()}")
        with open(endpoints) as f:
            self.endpoints = json.load(f)
        return self

    def url(self, path):
        return f"http://{self.endpoints['http']}{path}"

    def output(self):
        self.log.flush()
        with open(os.path.join(self.tmp.name, "edge.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=30):  # sanitizer builds stop slowly under load
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("edge did not stop on " + str(sig) + "; its output ends:\n"
                                     + self.output()[-4000:])
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        self.log.close()
        self.tmp.cleanup()

    def mqtt(self, transport="tcp"):
        """(host, port) of the first listener of `transport`, or the socket path for unix."""
        for url in self.endpoints["mqtt"]:
            scheme, _, address = url.partition("://")
            if scheme == transport:
                if transport == "unix":
                    return address
                host, _, port = address.rpartition(":")
                return host, int(port)
        raise AssertionError(f"no {transport} listener in {self.endpoints['mqtt']}")

    def restart(self, sig=signal.SIGTERM):
        """Stops the node and starts it again on the same data folder (ports change)."""
        self.stop(sig)
        self.log.close()
        # Port 0 listeners get new ports; the unix socket keeps its path.
        return self.start()

    def healthy(self):
        try:
            return http_get(self.url("/healthz"), timeout=2)[0] == 200
        except OSError:
            return False

    def metric(self, name):
        """Value of an unlabelled metric from /metrics, 0 when absent."""
        _, body = http_get(self.url("/metrics"))
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------------
# MQTT broker end-to-end helpers: an edge node with MQTT listeners, certificates, password
# lines, real clients (paho, mosquitto_pub/sub) and a raw packet client for hostile input.
# ---------------------------------------------------------------------------------------------
V311 = paho.MQTTv311
V5 = paho.MQTTv5
# (paho protocol, mosquitto_pub/sub -V value) for tests that run under both protocol versions.
VERSIONS = ((V311, "311"), (V5, "5"))


def unique(prefix="t"):
    """A fresh topic level / client id, so tests sharing one broker never see each other."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def mqtt_edge(*transports, options=None, args=()):
    """An EdgeProcess with MQTT listeners on port 0 ("tcp", "tls", "ws", "unix").

    `options` maps keys under `mqtt.` to values, e.g. {"max_packet_size": "128"}; values
    that are lists are joined with commas. $SYS is off unless asked for, to keep traffic quiet."""
    transports = transports or ("tcp",)
    edge = EdgeProcess(*args)
    listeners = []
    for t in transports:
        if t == "unix":
            listeners.append("unix://" + os.path.join(edge.tmp.name, "mqtt.sock"))
        else:
            listeners.append(f"{t}://127.0.0.1:0")
    opts = {"listeners": ",".join(listeners), "sys_interval": "0ms"}
    opts.update(options or {})
    for key, value in opts.items():
        edge.args += [f"--mqtt.{key}", str(value)]
    return edge


class CertificateAuthority:
    """A throwaway CA (EC P-256, 2 days) made with the openssl CLI; issues leaf certificates."""

    def __init__(self, folder, name="ganglion-test-ca"):
        self.folder = folder
        self.cert = os.path.join(folder, name + ".crt")
        self.key = os.path.join(folder, name + ".key")
        self._openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "2",
                      "-subj", f"/CN={name}",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self._serial = itertools.count(1000)

    def issue(self, cn, server=False):
        """Returns (cert path, key path) for `cn`; a server certificate is valid for 127.0.0.1."""
        base = os.path.join(self.folder, cn)
        csr, ext = base + ".csr", base + ".ext"
        self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", base + ".key", "-out", csr, "-subj", f"/CN={cn}")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n")
            if server:
                f.write("extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
            else:
                f.write("extendedKeyUsage=clientAuth\n")
        self._openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                      "-set_serial", str(next(self._serial)), "-days", "2", "-out", base + ".crt",
                      "-extfile", ext)
        return base + ".crt", base + ".key"

    @staticmethod
    def _openssl(*args):
        r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args)} failed: {r.stderr}")


def password_line(user, password, iterations=1000, salt=None):
    """A password file line in the broker's format (src/broker/password_file.h):
    user:$pbkdf2-sha512$<iterations>$<salt base64>$<hash base64>, standard base64 with padding.
    Few iterations keep logins fast in tests."""
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = lambda b: base64.b64encode(b).decode()
    return f"{user}:$pbkdf2-sha512${iterations}${b64(salt)}${b64(digest)}\n"


# --- paho ------------------------------------------------------------------------------------

class PahoClient:
    """A paho client with its network loop in a thread that records what arrives.

    Every wait has a timeout; connect() returns once CONNACK arrived (or raises)."""

    def __init__(self, version=V5, client_id=None, transport="tcp", clean=True):
        self.version = version
        self.client_id = client_id if client_id is not None else unique("paho")
        kwargs = {"client_id": self.client_id, "protocol": version, "transport": transport,
                  "reconnect_on_failure": False}
        if version != V5:
            kwargs["clean_session"] = clean
        self.clean = clean
        self.client = paho.Client(**kwargs)
        self.messages = queue.Queue()
        self.received = []
        self.connack = None       # (flags, reason code) of the last CONNACK
        self.disconnected = threading.Event()
        self.disconnect_rc = None
        self._acks = {}
        self._lock = threading.Lock()
        c = self.client
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_publish = self._on_publish
        c.on_disconnect = self._on_disconnect
        c.on_unsubscribe = self._on_unsubscribe

    # callbacks (paho thread)
    def _on_connect(self, c, userdata, flags, rc, properties=None):
        self.connack = (flags, rc if isinstance(rc, int) else rc.value)
        self._ack("connect").put(self.connack)

    def _on_message(self, c, userdata, msg):
        self.received.append(msg)
        self.messages.put(msg)

    def _on_subscribe(self, c, userdata, mid, granted, properties=None):
        codes = [g if isinstance(g, int) else g.value for g in granted]
        self._ack(("sub", mid)).put(codes)

    def _on_unsubscribe(self, c, userdata, mid, *rest):
        self._ack(("unsub", mid)).put(True)

    def _on_publish(self, c, userdata, mid):
        self._ack(("pub", mid)).put(True)

    def _on_disconnect(self, c, userdata, rc, properties=None):
        self.disconnect_rc = rc if isinstance(rc, int) else rc.value
        self.disconnected.set()

    def _ack(self, key):
        with self._lock:
            return self._acks.setdefault(key, queue.Queue())

    def _wait_ack(self, key, timeout, what):
        try:
            return self._ack(key).get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no {what} within {timeout}s") from None

    # API (test thread)
    def connect(self, address, session_expiry=None, will=None, username=None, password=None,
                tls=None, ws_path="/mqtt", timeout=10, expect_rc=0, properties=None):
        """Connects to (host, port). `will` = (topic, payload, qos, retain[, Properties]);
        `tls` = dict for tls_set (ca_certs, certfile, keyfile). Returns the CONNACK flags."""
        c = self.client
        if username is not None:
            c.username_pw_set(username, password)
        if will:
            topic, payload, qos, retain, *props = will
            c.will_set(topic, payload, qos, retain, props[0] if props else None)
        if tls:
            c.tls_set(**tls)
        if self.client._transport == "websockets":
            c.ws_set_options(path=ws_path)
        connect_kwargs = {"keepalive": 30}
        if self.version == V5:
            props = properties or Properties(PacketTypes.CONNECT)
            if session_expiry is not None:
                props.SessionExpiryInterval = session_expiry
            connect_kwargs["properties"] = props
            connect_kwargs["clean_start"] = self.clean
        c.connect(address[0], address[1], **connect_kwargs)
        c.loop_start()
        flags, rc = self._wait_ack("connect", timeout, "CONNACK")
        if expect_rc is not None and rc != expect_rc:
            raise AssertionError(f"{self.client_id}: CONNACK {rc}, expected {expect_rc}")
        return flags

    def subscribe(self, topic, qos=1, options=None, properties=None, timeout=10):
        """Subscribes and waits for SUBACK; returns its reason codes."""
        if self.version == V5:
            opts = options or SubscribeOptions(qos=qos)
            rc, mid = self.client.subscribe(topic, options=opts, properties=properties)
        else:
            rc, mid = self.client.subscribe(topic, qos)
        assert rc == paho.MQTT_ERR_SUCCESS, rc
        return self._wait_ack(("sub", mid), timeout, f"SUBACK for {topic}")

    def unsubscribe(self, topic, timeout=10):
        rc, mid = self.client.unsubscribe(topic)
        assert rc == paho.MQTT_ERR_SUCCESS, rc
        return self._wait_ack(("unsub", mid), timeout, f"UNSUBACK for {topic}")

    def publish(self, topic, payload, qos=0, retain=False, properties=None, timeout=10):
        """Publishes and, for QoS 1/2, waits until the flow completed."""
        info = self.client.publish(topic, payload, qos, retain, properties)
        assert info.rc == paho.MQTT_ERR_SUCCESS, info.rc
        if qos > 0:
            self._wait_ack(("pub", info.mid), timeout, f"PUBACK/PUBCOMP for {topic}")
        return info

    def expect(self, timeout=10):
        """The next message; fails after `timeout`."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no message within {timeout}s") from None

    def expect_n(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.client_id}: {len(out)} of {n} messages within {timeout}s: "
                                     f"{[(m.topic, m.payload) for m in out]}")
            try:
                out.append(self.messages.get(timeout=left))
            except queue.Empty:
                pass
        return out

    def expect_none(self, quiet=0.5):
        """Asserts nothing arrives within `quiet` seconds (a bound, not a synchronisation)."""
        try:
            m = self.messages.get(timeout=quiet)
        except queue.Empty:
            return
        raise AssertionError(f"{self.client_id}: unexpected message {m.topic} {m.payload!r}")

    def disconnect(self):
        self.client.disconnect()
        self.disconnected.wait(10)
        self.client.loop_stop()

    def kill(self):
        """Drops the connection without DISCONNECT, as a crashed client or lost network would."""
        sock = self.client.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        self.disconnected.wait(10)
        self.client.loop_stop()

    def close(self):
        try:
            if not self.disconnected.is_set() and self.connack:
                self.client.disconnect()
                self.disconnected.wait(5)
        finally:
            self.client.loop_stop()


def v5_properties(packet_type=PacketTypes.PUBLISH, **values):
    """paho Properties from keyword arguments, e.g. v5_properties(MessageExpiryInterval=5)."""
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


# --- mosquitto_pub / mosquitto_sub ---------------------------------------------------------

def _mosquitto_target(address):
    if isinstance(address, str):
        return ["--unix", address]
    return ["-h", address[0], "-p", str(address[1])]


def mosquitto_pub(address, topic, message, version="311", *extra, expect_rc=0, timeout=20):
    """Runs mosquitto_pub once; returns the CompletedProcess. message=None sends an empty
    (null) message, which deletes a retained one."""
    body = ["-n"] if message is None else ["-m", message]
    cmd = ["mosquitto_pub", *_mosquitto_target(address), "-V", version, "-t", topic, *body, *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if expect_rc is not None and r.returncode != expect_rc:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}: {r.stdout}{r.stderr}")
    return r


class MosquittoSub:
    """mosquitto_sub in the background, debug output on, each line recorded.

    Messages are printed as "MSG <topic> <payload>" (or as `fmt` says); wait_subscribed()
    returns once the SUBACK was handled."""

    def __init__(self, address, *topics, version="311", qos=1, extra=(), fmt="MSG %t %p"):
        # stdbuf: line-buffered output through the pipe, so lines arrive as they happen.
        cmd = ["stdbuf", "-oL", "mosquitto_sub", *_mosquitto_target(address), "-V", version,
               "-q", str(qos), "-d", "-F", fmt, *extra]
        for t in topics:
            cmd += ["-t", t]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self.lines = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def _wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"mosquitto_sub: timed out waiting for {what}; output:\n"
                                         + "\n".join(self.lines))
                self._cv.wait(left)

    def wait_subscribed(self, timeout=10):
        # "Subscribed" is printed at the end of mosquitto_sub's SUBACK callback; a SIGTERM that
        # lands inside that callback is sometimes ignored, so wait for the callback to finish.
        return self._wait(lambda: any(l.startswith("Subscribed (mid") for l in self.lines), timeout,
                          "SUBACK")

    def messages(self):
        with self._cv:
            return [l[4:] for l in self.lines if l.startswith("MSG ")]

    def wait_messages(self, n, timeout=10):
        self._wait(lambda: len([l for l in self.lines if l.startswith("MSG ")]) >= n, timeout,
                   f"{n} messages")
        return self.messages()

    def wait_exit(self, timeout=10):
        self.proc.wait(timeout)
        self._reader.join(5)
        self.proc.stdout.close()
        return self.proc.returncode

    def kill(self):
        """SIGKILL: the kernel closes the socket without DISCONNECT."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(5)
        self.proc.stdout.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # mosquitto_sub sends DISCONNECT on SIGTERM
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        self.proc.stdout.close()


# --- raw MQTT ---------------------------------------------------------------------------------

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)

# MQTT 5 property identifiers (spec 2.2.2.2) and how their values are encoded.
_PROPS = {
    "payload_format": (0x01, "byte"), "message_expiry": (0x02, "u32"),
    "content_type": (0x03, "str"), "response_topic": (0x08, "str"),
    "correlation_data": (0x09, "bin"), "subscription_id": (0x0B, "varint"),
    "session_expiry": (0x11, "u32"), "assigned_client_id": (0x12, "str"),
    "server_keep_alive": (0x13, "u16"), "reason_string": (0x1F, "str"),
    "will_delay": (0x18, "u32"), "receive_maximum": (0x21, "u16"),
    "topic_alias_maximum": (0x22, "u16"), "topic_alias": (0x23, "u16"),
    "maximum_qos": (0x24, "byte"), "retain_available": (0x25, "byte"),
    "user_property": (0x26, "pair"), "maximum_packet_size": (0x27, "u32"),
    "authentication_method": (0x15, "str"), "authentication_data": (0x16, "bin"),
}
_PROP_BY_ID = {pid: (name, kind) for name, (pid, kind) in _PROPS.items()}


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    b = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack("!H", len(b)) + b


def properties(**props):
    """Encoded MQTT 5 properties (length prefix included). user_property takes a list of pairs."""
    body = bytearray()
    for name, value in props.items():
        pid, kind = _PROPS[name]
        values = value if kind == "pair" else [value]
        for v in values:
            body.append(pid)
            if kind == "byte":
                body.append(v)
            elif kind == "u16":
                body += struct.pack("!H", v)
            elif kind == "u32":
                body += struct.pack("!I", v)
            elif kind == "varint":
                body += varint(v)
            elif kind in ("str", "bin"):
                body += mqtt_str(v)
            elif kind == "pair":
                body += mqtt_str(v[0]) + mqtt_str(v[1])
    return varint(len(body)) + bytes(body)


def packet(ptype, flags, body):
    return bytes([ptype << 4 | flags]) + varint(len(body)) + body


def connect_packet(client_id="", version=4, clean=True, keep_alive=60, will=None, username=None,
                   password=None, props=None, will_props=None):
    """CONNECT; `will` = (topic, payload, qos, retain); `props` / `will_props` are dicts for
    properties() (MQTT 5 only)."""
    flags = 0x02 if clean else 0
    if will:
        flags |= 0x04 | (will[2] << 3) | (0x20 if will[3] else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    body = mqtt_str("MQTT") + bytes([version, flags]) + struct.pack("!H", keep_alive)
    if version == 5:
        body += properties(**(props or {}))
    body += mqtt_str(client_id)
    if will:
        if version == 5:
            body += properties(**(will_props or {}))
        body += mqtt_str(will[0]) + mqtt_str(will[1])
    if username is not None:
        body += mqtt_str(username)
    if password is not None:
        body += mqtt_str(password)
    return packet(CONNECT, 0, body)


def publish_packet(topic, payload=b"", qos=0, packet_id=1, retain=False, dup=False, version=4,
                   props=None):
    body = mqtt_str(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if version == 5:
        body += properties(**(props or {}))
    body += payload.encode() if isinstance(payload, str) else payload
    return packet(PUBLISH, (dup << 3) | (qos << 1) | int(retain), body)


def subscribe_packet(filters, packet_id=1, version=4, props=None):
    """`filters`: list of (filter, options byte); the options byte is the QoS for 3.1.1."""
    body = struct.pack("!H", packet_id)
    if version == 5:
        body += properties(**(props or {}))
    for f, opts in filters:
        body += mqtt_str(f) + bytes([opts])
    return packet(SUBSCRIBE, 0x02, body)


def ack_packet(ptype, packet_id, version=4, reason=0):
    body = struct.pack("!H", packet_id)
    if version == 5 and reason:
        body += bytes([reason])
    return packet(ptype, 0x02 if ptype == PUBREL else 0, body)


def auth_packet(reason, props=None):
    """MQTT 5 AUTH (enhanced authentication, spec 3.15); `props` as for properties()."""
    return packet(AUTH, 0, bytes([reason]) + properties(**(props or {})))


def disconnect_packet(version=4, reason=0, props=None):
    if version == 5 and (reason or props):
        return packet(DISCONNECT, 0, bytes([reason]) + properties(**(props or {})))
    return packet(DISCONNECT, 0, b"")


class Packet:
    """A decoded packet from the broker; fields filled for the types tests look at."""

    def __init__(self, ptype, flags, body, version):
        self.type, self.flags, self.body = ptype, flags, body
        self.reason = 0
        self.props = {}
        self.packet_id = None
        pos = 0
        if ptype == CONNACK:
            self.session_present = bool(body[0] & 1)
            self.reason = body[1]
            pos = 2
            if version == 5 and len(body) > 2:
                self.props, pos = _decode_props(body, pos)
        elif ptype == PUBLISH:
            n = struct.unpack_from("!H", body)[0]
            self.topic = body[2:2 + n].decode()
            pos = 2 + n
            self.qos = (flags >> 1) & 3
            self.retain = bool(flags & 1)
            self.dup = bool(flags & 8)
            if self.qos:
                self.packet_id = struct.unpack_from("!H", body, pos)[0]
                pos += 2
            if version == 5:
                self.props, pos = _decode_props(body, pos)
            self.payload = body[pos:]
        elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, SUBACK):
            self.packet_id = struct.unpack_from("!H", body)[0]
            pos = 2
            if ptype == SUBACK:
                if version == 5:
                    self.props, pos = _decode_props(body, pos)
                self.reasons = list(body[pos:])
            elif version == 5 and len(body) > 2:
                self.reason = body[2]
        elif ptype in (DISCONNECT, AUTH) and body:
            self.reason = body[0]
            if version == 5 and len(body) > 1:
                self.props, pos = _decode_props(body, 1)

    def __repr__(self):
        return f"Packet(type={self.type}, reason=0x{self.reason:02x}, body={self.body[:40]!r})"


def _read_varint(data, pos):
    mult, value = 1, 0
    while True:
        b = data[pos]
        pos += 1
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, pos
        mult *= 128


def _decode_props(body, pos):
    length, pos = _read_varint(body, pos)
    end = pos + length
    props = {}
    while pos < end:
        pid = body[pos]
        pos += 1
        name, kind = _PROP_BY_ID.get(pid, (f"0x{pid:02x}", None))
        if kind == "byte":
            v, pos = body[pos], pos + 1
        elif kind == "u16":
            v, pos = struct.unpack_from("!H", body, pos)[0], pos + 2
        elif kind == "u32":
            v, pos = struct.unpack_from("!I", body, pos)[0], pos + 4
        elif kind == "varint":
            v, pos = _read_varint(body, pos)
        elif kind in ("str", "bin"):
            n = struct.unpack_from("!H", body, pos)[0]
            v, pos = body[pos + 2:pos + 2 + n], pos + 2 + n
            if kind == "str":
                v = v.decode()
        elif kind == "pair":
            n = struct.unpack_from("!H", body, pos)[0]
            k = body[pos + 2:pos + 2 + n].decode()
            pos += 2 + n
            n = struct.unpack_from("!H", body, pos)[0]
            v = (k, body[pos + 2:pos + 2 + n].decode())
            pos += 2 + n
            props.setdefault(name, []).append(v)
            continue
        else:
            raise AssertionError(f"property 0x{pid:02x} not understood by the test decoder")
        if name == "subscription_id":
            props.setdefault(name, []).append(v)
        else:
            props[name] = v
    return props, end


class RawClient:
    """A hand-driven MQTT connection over TCP or a unix socket, for what real clients won't do."""

    def __init__(self, address, version=4, timeout=10, tls=None):
        """`address`: (host, port) or a unix socket path; `tls`: an ssl.SSLContext (the
        handshake happens here and raises ssl.SSLError when refused)."""
        self.version = version
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=address[0])
        self.buf = b""
        self.closed = False
        # With set_aside_publishes, expect(t) for another type t keeps a PUBLISH that comes
        # first (a delivery racing an ack) for the next expect(PUBLISH).
        self.set_aside_publishes = False
        self.messages = []

    def send(self, data):
        self.sock.sendall(data)

    def connect(self, client_id=None, expect_reason=0, **kwargs):
        """Sends CONNECT and returns the CONNACK packet (checking its reason code)."""
        client_id = unique("raw") if client_id is None else client_id
        self.client_id = client_id
        self.send(connect_packet(client_id, version=self.version, **kwargs))
        ack = self.expect(CONNACK)
        if expect_reason is not None and ack.reason != expect_reason:
            raise AssertionError(f"CONNACK reason 0x{ack.reason:02x}, expected 0x{expect_reason:02x}")
        return ack

    def read(self, timeout=10):
        """The next packet, or None when the broker closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                try:
                    length, pos = _read_varint(self.buf, 1)
                except IndexError:
                    length, pos = None, 0
                if length is not None and len(self.buf) >= pos + length:
                    first = self.buf[0]
                    body = self.buf[pos:pos + length]
                    self.buf = self.buf[pos + length:]
                    return Packet(first >> 4, first & 0x0F, body, self.version)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no packet from the broker within {timeout}s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            self.buf += chunk

    def expect(self, ptype, timeout=10):
        if ptype == PUBLISH and self.messages:
            return self.messages.pop(0)
        p = self.read(timeout)
        while self.set_aside_publishes and p is not None and p.type == PUBLISH and ptype != PUBLISH:
            self.messages.append(p)
            p = self.read(timeout)
        if p is None:
            raise AssertionError(f"connection closed while waiting for packet type {ptype}")
        if p.type != ptype:
            raise AssertionError(f"got {p}, expected packet type {ptype}")
        return p

    def expect_closed(self, timeout=10):
        """Reads until the broker closes; returns the packets it sent before closing."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection still open after {timeout}s; got {seen}")
            p = self.read(left)
            if p is None:
                return seen
            seen.append(p)

    def expect_silence(self, quiet=0.5):
        """Asserts the broker sends nothing for `quiet` seconds."""
        pending = self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0
        r, _, _ = select.select([self.sock], [], [], 0 if pending else quiet)
        if r or pending or self.buf:
            p = self.read(1)
            raise AssertionError(f"unexpected {p}")

    def subscribe(self, *filters, packet_id=1, props=None):
        """filters: (filter, options) pairs; returns the SUBACK reason codes."""
        self.send(subscribe_packet(list(filters), packet_id, self.version, props))
        return self.expect(SUBACK).reasons

    def abort(self):
        """Closes with a TCP reset and no DISCONNECT."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class BrokerTestCase(unittest.TestCase):
    """One edge node per test class (listeners `transports`, mqtt.* `options`); clients made
    through paho(), raw() and mosquitto_sub() are closed after each test. Each test uses its
    own topics (unique()), so tests of a class do not see each other's messages."""

    transports = ("tcp",)
    options = {}

    @classmethod
    def setUpClass(cls):
        cls.edge = mqtt_edge(*cls.transports, options=cls.options)
        try:
            cls.edge.start()
        except BaseException:
            cls.edge.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.edge.close()

    def tearDown(self):
        if self.edge.proc.poll() is not None:
            self.fail(f"edge exited with {self.edge.proc.returncode}:\n{self.edge.output()[-4000:]}")

    def until_broker_sees_leave(self, leave):
        """Calls leave() (a client disconnecting or dying) and waits until the broker counts one
        connected client fewer: a client may see its socket closed before the broker does."""
        before = self.edge.metric("ganglion_mqtt_clients_connected")
        leave()
        wait_for(lambda: self.edge.metric("ganglion_mqtt_clients_connected") < before,
                 what="the broker to see the client leave")

    def addr(self, transport="tcp"):
        return self.edge.mqtt(transport)

    def paho(self, version=V5, transport="tcp", client_id=None, clean=True, connect=True, **kw):
        """A connected PahoClient (closed at test end); `kw` goes to PahoClient.connect()."""
        paho_transport = "websockets" if transport == "ws" else "tcp"
        c = PahoClient(version, client_id=client_id, transport=paho_transport, clean=clean)
        self.addCleanup(c.close)
        if connect:
            c.connect(self.addr(transport), **kw)
        return c

    def raw(self, version=4, transport="tcp", tls=None):
        c = RawClient(self.addr(transport), version, tls=tls)
        self.addCleanup(c.close)
        return c

    def mosquitto_sub(self, *topics, version="311", transport="tcp", subscribed=True, **kw):
        """A background mosquitto_sub; waits for its SUBACK unless subscribed=False."""
        s = MosquittoSub(self.addr(transport), *topics, version=version, **kw)
        self.addCleanup(s.stop)
        if subscribed:
            s.wait_subscribed()
        return s

    def mosquitto_pub(self, topic, message, version="311", *extra, transport="tcp", **kw):
        return mosquitto_pub(self.addr(transport), topic, message, version, *extra, **kw)
