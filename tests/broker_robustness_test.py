"""Hostile and broken input on raw sockets, and limits: the broker ends the offending
connection (with the reason code the spec asks for) and keeps serving everyone else."""
import random
import socket
import struct
import threading
import time
import unittest

from support import (CONNACK, DISCONNECT, PUBLISH, PUBREC, SUBSCRIBE, V5, BrokerTestCase,
                     RawClient, connect_packet, mqtt_str, packet, publish_packet, subscribe_packet,
                     unique, wait_for)


def kinds(packets):
    return [(p.type, p.reason) for p in packets]


class BadInputTest(BrokerTestCase):
    options = {"max_packet_size": "1KiB", "receive_maximum": "2"}

    def setUp(self):
        # A bystander that must keep working through every test.
        self.topic = unique("bystander")
        self.bystander = self.paho(V5)
        self.bystander.subscribe(self.topic, qos=1)

    def assert_others_keep_working(self):
        self.paho(V5).publish(self.topic, b"still here", qos=1)
        self.assertEqual(self.bystander.expect().payload, b"still here")
        self.assertTrue(self.edge.healthy())

    def test_malformed_remaining_length_closes_the_connection(self):
        five_byte_length = b"\xff\xff\xff\xff\x7f"
        raw = self.raw(4)
        raw.send(b"\x10" + five_byte_length)
        self.assertEqual(raw.expect_closed(), [])
        for version, expected in ((4, []), (5, [(DISCONNECT, 0x81)])):
            with self.subTest(version=version):
                raw = self.raw(version)
                raw.connect()
                raw.send(b"\x30" + five_byte_length)
                self.assertEqual(kinds(raw.expect_closed()), expected)
        self.assert_others_keep_working()

    def test_second_connect_is_a_protocol_error(self):
        for version, expected in ((4, []), (5, [(DISCONNECT, 0x82)])):
            with self.subTest(version=version):
                raw = self.raw(version)
                raw.connect()
                raw.send(connect_packet(unique("again"), version=version))
                self.assertEqual(kinds(raw.expect_closed()), expected)
        self.assert_others_keep_working()

    def test_publish_before_connect_closes_without_answer(self):
        for version in (4, 5):
            with self.subTest(version=version):
                raw = self.raw(version)
                raw.send(publish_packet(self.topic, b"sneaky", qos=0, version=version))
                self.assertEqual(raw.expect_closed(), [])
        self.bystander.expect_none(0.2)
        self.assert_others_keep_working()

    def test_packet_larger_than_max_packet_size_ends_the_connection(self):
        raw = self.raw(5)
        ack = raw.connect()
        self.assertEqual(ack.props.get("maximum_packet_size"), 1024)
        raw.send(publish_packet(self.topic, b"x" * 2000, qos=0, version=5))
        self.assertEqual(kinds(raw.expect_closed()), [(DISCONNECT, 0x95)])
        raw = self.raw(4)
        raw.connect()
        raw.send(publish_packet(self.topic, b"x" * 2000, qos=1, version=4))
        self.assertEqual(raw.expect_closed(), [])
        # An oversize CONNECT gets no session (MQTT 5 allows a CONNACK 0x95 first).
        raw = self.raw(5)
        raw.send(connect_packet(unique("big"), version=5, props={"user_property": [("k", "v" * 2000)]}))
        self.assertIn(kinds(raw.expect_closed()), ([], [(CONNACK, 0x95)]))
        self.bystander.expect_none(0.2)
        self.assert_others_keep_working()

    def test_invalid_utf8_or_wildcard_topic_is_malformed(self):
        bad_topics = {"invalid UTF-8": b"a/\xff\xfe", "NUL": b"a/\x00b", "surrogate": b"a/\xed\xa0\x80",
                      "wildcard": b"a/+/b"}
        for name, topic in bad_topics.items():
            for version in (4, 5):
                with self.subTest(topic=name, version=version):
                    raw = self.raw(version)
                    raw.connect()
                    body = mqtt_str(topic) + (b"\x00" if version == 5 else b"") + b"payload"
                    raw.send(packet(PUBLISH, 0, body))
                    seen = kinds(raw.expect_closed())
                    if version == 4:
                        self.assertEqual(seen, [])
                    elif name == "wildcard":
                        self.assertIn(seen, ([(DISCONNECT, 0x81)], [(DISCONNECT, 0x90)]))
                    else:
                        self.assertEqual(seen, [(DISCONNECT, 0x81)])  # spec 1.5.4: malformed
        self.assert_others_keep_working()

    def test_invalid_utf8_in_subscribe_filter_is_malformed(self):
        raw = self.raw(5)
        raw.connect()
        body = struct.pack("!H", 1) + b"\x00" + mqtt_str(b"f/\xc3\x28") + b"\x01"
        raw.send(packet(SUBSCRIBE, 0x02, body))
        self.assertEqual(kinds(raw.expect_closed()), [(DISCONNECT, 0x81)])
        self.assert_others_keep_working()

    def test_subscribe_with_wrong_fixed_header_flags_is_malformed(self):
        raw = self.raw(4)
        raw.connect()
        good = subscribe_packet([(unique("f"), 1)])
        raw.send(bytes([0x80]) + good[1:])  # flags must be 0b0010
        self.assertEqual(raw.expect_closed(), [])
        self.assert_others_keep_working()

    def test_unsupported_protocol_level_gets_connack_0x01(self):
        raw = self.raw(4)
        raw.send(connect_packet(unique("future"), version=9))
        self.assertEqual(kinds(raw.expect_closed()), [(CONNACK, 0x01)])
        self.assert_others_keep_working()

    def test_too_many_qos2_awaiting_pubrel_is_receive_maximum_exceeded(self):
        raw = self.raw(5)
        ack = raw.connect()
        self.assertEqual(ack.props.get("receive_maximum"), 2)
        topic = unique("q2")
        for pid in (1, 2):
            raw.send(publish_packet(topic, b"q2", qos=2, packet_id=pid, version=5))
            self.assertEqual(raw.expect(PUBREC).packet_id, pid)
        raw.send(publish_packet(topic, b"q2", qos=2, packet_id=3, version=5))  # no PUBREL sent
        self.assertEqual(kinds(raw.expect_closed()), [(DISCONNECT, 0x93)])
        self.assert_others_keep_working()

    def test_random_garbage_from_many_connections_does_not_hurt_the_broker(self):
        rng = random.Random(20240611)
        before = self.edge.metric("ganglion_mqtt_protocol_errors_total")
        clients = [self.raw(4) for _ in range(8)]
        for i, c in enumerate(clients):
            # Half start with a valid CONNECT, so garbage reaches the connected state too.
            if i % 2:
                c.connect()
            for _ in range(4):
                try:
                    c.send(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600))))
                except OSError:
                    break  # already closed by the broker
        for c in clients:
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        for c in clients:
            c.expect_closed(timeout=15)
        self.assertTrue(self.edge.healthy())
        self.assertGreater(self.edge.metric("ganglion_mqtt_protocol_errors_total"), before)
        self.assert_others_keep_working()


class SlowClientTest(BrokerTestCase):
    options = {"connect_timeout": "3s"}

    def test_partial_connect_and_silent_sockets_are_closed_after_the_connect_timeout(self):
        partial = self.raw(4)
        partial.send(connect_packet(unique("slow"))[:7])
        silent = self.raw(4)
        start = time.monotonic()
        # Meanwhile the broker serves others.
        topic = unique("busy")
        sub = self.paho(V5)
        sub.subscribe(topic, qos=1)
        self.paho(V5).publish(topic, b"served", qos=1)
        self.assertEqual(sub.expect().payload, b"served")
        results = {}

        def wait_closed(name, client):
            results[name] = (client.expect_closed(timeout=20), time.monotonic() - start)

        threads = [threading.Thread(target=wait_closed, args=(n, c))
                   for n, c in (("partial", partial), ("silent", silent))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(25)
        for name in ("partial", "silent"):
            seen, elapsed = results[name]
            self.assertEqual(seen, [], name)
            self.assertGreaterEqual(elapsed, 2.5, name)
            self.assertLess(elapsed, 9, name)


class QosAndRetainLimitTest(BrokerTestCase):
    options = {"maximum_qos": "1", "retain_available": "false"}

    def test_connack_announces_the_limits_and_subscriptions_are_downgraded(self):
        raw = self.raw(5)
        ack = raw.connect()
        self.assertEqual((ack.props.get("maximum_qos"), ack.props.get("retain_available")), (1, 0))
        self.assertEqual(raw.subscribe((unique("q"), 2)), [1])
        old = self.raw(4)
        old.connect()
        self.assertEqual(old.subscribe((unique("q"), 2)), [1])

    def test_publish_above_maximum_qos_or_retained_is_refused(self):
        for (name, pkt), reason in (
                (("qos 2", publish_packet(unique("q"), b"x", qos=2, version=5)), 0x9B),
                (("retain", publish_packet(unique("r"), b"x", qos=1, retain=True, version=5)), 0x9A)):
            with self.subTest(case=name):
                raw = self.raw(5)
                raw.connect()
                raw.send(pkt)
                self.assertEqual(kinds(raw.expect_closed()), [(DISCONNECT, reason)])

    def test_will_above_the_limits_is_refused_at_connect(self):
        raw = self.raw(5)
        raw.connect(will=(unique("w"), b"x", 2, False), expect_reason=0x9B)
        raw = self.raw(5)
        raw.connect(will=(unique("w"), b"x", 0, True), expect_reason=0x9A)


class ConnectionLimitTest(BrokerTestCase):
    options = {"max_connections": "3"}

    def test_extra_client_is_refused_until_one_leaves(self):
        held = [self.raw(4) for _ in range(3)]
        for c in held:
            c.connect()
        for version, code in ((4, 0x03), (5, 0x97)):
            with self.subTest(version=version):
                extra = self.raw(version)
                extra.connect(expect_reason=code)
                self.assertEqual(extra.expect_closed(), [])
        for v in ("311", "5"):
            r = self.mosquitto_pub("t", "x", v, expect_rc=None)
            self.assertNotEqual(r.returncode, 0)
        held[0].close()

        def admitted():
            c = RawClient(self.addr(), 4)
            self.addCleanup(c.close)
            return c.connect(expect_reason=None).reason == 0

        wait_for(admitted, timeout=10, interval=0.1, what="a free connection slot")


if __name__ == "__main__":
    unittest.main()
