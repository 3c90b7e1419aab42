"""Sessions and connection lifecycle of the edge broker with real clients: wills, persistent
sessions (across reconnects and broker restarts), session and message expiry, keep-alive and
client-id takeover."""
import signal
import time
import unittest

from support import (DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBLISH, SUBACK, V311, V5, VERSIONS,
                     BrokerTestCase, PacketTypes, PahoClient, ack_packet, disconnect_packet,
                     mqtt_edge, packet, subscribe_packet, unique, v5_properties, wait_for)

NAMES = {V311: "3.1.1", V5: "5"}


class WillTest(BrokerTestCase):
    def watch(self, topic, version=V5):
        w = self.paho(version)
        w.subscribe(topic, qos=1)
        return w

    def test_will_is_published_when_the_connection_drops(self):
        for version, v in VERSIONS:
            with self.subTest(client="paho", version=v):
                topic = unique("will")
                watcher = self.watch(topic, version)
                dying = self.paho(version, will=(topic, b"gone", 1, False))
                dying.kill()
                m = watcher.expect()
                self.assertEqual((m.topic, m.payload, m.qos), (topic, b"gone", 1))
            with self.subTest(client="mosquitto_sub SIGKILL", version=v):
                topic = unique("will-mosq")
                watcher = self.watch(topic, version)
                dying = self.mosquitto_sub(unique("idle"), version=v,
                                           extra=("--will-topic", topic, "--will-payload", "crashed",
                                                  "--will-qos", "1"))
                dying.kill()
                self.assertEqual(watcher.expect().payload, b"crashed")
            with self.subTest(client="raw reset", version=v):
                topic = unique("will-raw")
                watcher = self.watch(topic, version)
                raw = self.raw(5 if version == V5 else 4)
                raw.connect(will=(topic, b"reset", 1, False))
                raw.abort()
                self.assertEqual(watcher.expect().payload, b"reset")

    def test_no_will_after_a_normal_disconnect(self):
        for version, v in VERSIONS:
            with self.subTest(client="paho", version=v):
                topic = unique("nowill")
                watcher = self.watch(topic)
                leaving = self.paho(version, will=(topic, b"should not", 1, False))
                leaving.disconnect()
                watcher.expect_none(0.5)
            with self.subTest(client="mosquitto_sub SIGTERM", version=v):
                # On SIGTERM mosquitto_sub sends DISCONNECT; with -V 5 its reason is 0x04
                # "Disconnect with Will Message", which asks for the will.
                topic = unique("nowill-mosq")
                watcher = self.watch(topic)
                leaving = self.mosquitto_sub(unique("idle"), version=v,
                                             extra=("--will-topic", topic, "--will-payload", "0x04"))
                leaving.stop()
                if v == "5":
                    self.assertEqual(watcher.expect().payload, b"0x04")
                else:
                    watcher.expect_none(0.5)

    def test_v5_disconnect_with_will_message_publishes_the_will(self):
        topic = unique("will-0x04")
        watcher = self.watch(topic)
        raw = self.raw(5)
        raw.connect(will=(topic, b"asked for", 0, False))
        raw.send(disconnect_packet(5, reason=0x04))
        self.assertEqual(watcher.expect().payload, b"asked for")

    def test_retained_will_with_properties(self):
        topic = unique("will-ret")
        props = v5_properties(PacketTypes.WILLMESSAGE, ContentType="text/plain",
                              UserProperty=[("why", "test")])
        live = self.watch(topic)  # sees the will when the broker publishes it
        dying = self.paho(V5, will=(topic, b"last words", 1, True, props))
        dying.kill()
        self.assertEqual(live.expect(timeout=10).payload, b"last words")
        # Subscribed after the will went out: it arrives as the retained message. (Subscribing
        # right after kill() raced the broker noticing the dead connection: under load the
        # will came as a live message, retain 0.)
        watcher = self.paho(V5)
        watcher.subscribe(topic, qos=1)
        m = watcher.expect()
        self.assertEqual((m.payload, m.retain), (b"last words", True))
        self.assertEqual(m.properties.ContentType, "text/plain")
        self.assertEqual(m.properties.UserProperty, [("why", "test")])

    def test_will_delay_postpones_the_will(self):
        topic = unique("will-delay")
        watcher = self.watch(topic)
        client_id = unique("delayed")
        will_props = v5_properties(PacketTypes.WILLMESSAGE, WillDelayInterval=2)
        dying = self.paho(V5, client_id=client_id, session_expiry=60,
                          will=(topic, b"late", 1, False, will_props))
        dropped = time.monotonic()
        dying.kill()
        m = watcher.expect(timeout=10)
        elapsed = time.monotonic() - dropped
        self.assertEqual(m.payload, b"late")
        self.assertGreaterEqual(elapsed, 1.8, "will published before its delay")

    def test_reconnect_within_will_delay_cancels_the_will(self):
        for tool in ("paho", "mosquitto"):
            with self.subTest(client=tool):
                topic = unique("will-cancel")
                watcher = self.watch(topic)
                client_id = unique("back")
                if tool == "paho":
                    will_props = v5_properties(PacketTypes.WILLMESSAGE, WillDelayInterval=2)
                    dying = self.paho(V5, client_id=client_id, session_expiry=60,
                                      will=(topic, b"never", 1, False, will_props))
                else:
                    dying = self.mosquitto_sub(unique("idle"), version="5",
                                               extra=("-i", client_id, "-c", "-x", "60",
                                                      "--will-topic", topic, "--will-payload", "never",
                                                      "-D", "will", "will-delay-interval", "2"))
                # Reconnect only once the broker saw the drop: a reconnect that races the drop
                # is a takeover, tested on its own below.
                self.until_broker_sees_leave(dying.kill)
                back = self.paho(V5, client_id=client_id, clean=False, session_expiry=60)
                self.assertTrue(back.connack[0]["session present"])
                watcher.expect_none(3.0)  # past the 2 s delay: cancelled, not late

    def test_takeover_within_will_delay_does_not_publish_the_will(self):
        topic = unique("will-takeover")
        watcher = self.watch(topic)
        client_id = unique("twin")
        first = self.raw(5)
        first.connect(client_id, clean=False, props={"session_expiry": 60},
                      will=(topic, b"never", 1, False), will_props={"will_delay": 1})
        second = self.raw(5)
        self.assertTrue(second.connect(client_id, clean=False,
                                       props={"session_expiry": 60}).session_present)
        self.assertEqual([(p.type, p.reason) for p in first.expect_closed()], [(DISCONNECT, 0x8E)])
        watcher.expect_none(2.0)  # past the 1 s delay

    def test_will_delay_longer_than_session_expiry_fires_when_the_session_ends(self):
        topic = unique("will-expiry")
        watcher = self.watch(topic)
        will_props = v5_properties(PacketTypes.WILLMESSAGE, WillDelayInterval=30)
        dying = self.paho(V5, session_expiry=0, will=(topic, b"now", 1, False, will_props))
        dying.kill()
        self.assertEqual(watcher.expect(timeout=5).payload, b"now")


class PersistentSessionTest(BrokerTestCase):
    def test_offline_qos1_messages_are_delivered_on_reconnect(self):
        for version, v in VERSIONS:
            with self.subTest(client="paho", version=v):
                topic, client_id = unique("offline"), unique("persist")
                sub = self.paho(version, client_id=client_id, clean=False, session_expiry=60)
                self.assertFalse(sub.connack[0]["session present"])
                sub.subscribe(topic, qos=1)
                sub.disconnect()
                pub = self.paho(version)
                for i in range(3):
                    pub.publish(topic, f"q1-{i}".encode(), qos=1)
                pub.publish(topic, b"q0 is not queued", qos=0)
                pub.publish(topic, b"q2", qos=2)
                back = self.paho(version, client_id=client_id, clean=False, session_expiry=60)
                self.assertTrue(back.connack[0]["session present"])
                got = back.expect_n(4)
                self.assertEqual([m.payload for m in got], [b"q1-0", b"q1-1", b"q1-2", b"q2"])
                self.assertEqual([m.qos for m in got], [1, 1, 1, 1])  # subscribed at QoS 1
                back.expect_none(0.3)
            with self.subTest(client="mosquitto_sub", version=v):
                topic, client_id = unique("offline-mosq"), unique("persist-mosq")
                extra = ("-i", client_id, "-c") + (("-x", "60") if v == "5" else ())
                first = self.mosquitto_sub(topic, version=v, extra=extra)
                first.stop()
                self.mosquitto_pub(topic, "while away", v, "-q", "1")
                again = self.mosquitto_sub(topic, version=v, extra=extra, subscribed=False)
                self.assertEqual(again.wait_messages(1), [f"{topic} while away"])

    def test_clean_start_discards_the_session(self):
        for version, v in VERSIONS:
            with self.subTest(version=v):
                topic, client_id = unique("clean"), unique("cleaned")
                sub = self.paho(version, client_id=client_id, clean=False, session_expiry=60)
                sub.subscribe(topic, qos=1)
                sub.disconnect()
                self.paho(version).publish(topic, b"dropped", qos=1)
                fresh = self.paho(version, client_id=client_id, clean=True)
                self.assertFalse(fresh.connack[0]["session present"])
                fresh.expect_none(0.3)
                self.paho(version).publish(topic, b"not subscribed anymore", qos=1)
                fresh.expect_none(0.3)

    def test_v5_session_without_expiry_ends_with_the_connection(self):
        topic, client_id = unique("noexp"), unique("noexp")
        sub = self.paho(V5, client_id=client_id, clean=False)  # no Session Expiry: 0
        sub.subscribe(topic, qos=1)
        self.until_broker_sees_leave(sub.disconnect)
        back = self.paho(V5, client_id=client_id, clean=False)
        self.assertFalse(back.connack[0]["session present"])

    def test_v5_disconnect_can_shorten_but_not_create_session_expiry(self):
        client_id = unique("disc-exp")
        raw = self.raw(5)
        raw.connect(client_id, clean=False, props={"session_expiry": 60})
        raw.send(disconnect_packet(5, reason=0, props={"session_expiry": 0}))
        self.assertEqual(raw.expect_closed(), [])
        again = self.raw(5)
        self.assertFalse(again.connect(client_id, clean=False, props={"session_expiry": 60}).session_present)
        # Connected with expiry 0: a non-zero expiry on DISCONNECT is a protocol error (3.14.2.2.2).
        zero = self.raw(5)
        zero.connect(unique("disc-zero"))
        zero.send(disconnect_packet(5, reason=0, props={"session_expiry": 30}))
        self.assertEqual([(p.type, p.reason) for p in zero.expect_closed()], [(DISCONNECT, 0x82)])

    def test_session_expires_after_its_interval(self):
        topic, client_id = unique("exp"), unique("exp")
        sub = self.paho(V5, client_id=client_id, clean=False, session_expiry=1)
        sub.subscribe(topic, qos=1)
        before = self.edge.metric("ganglion_mqtt_sessions")
        sub.disconnect()
        wait_for(lambda: self.edge.metric("ganglion_mqtt_sessions") < before, timeout=10,
                 what="the session to expire")
        self.paho(V5).publish(topic, b"to nobody", qos=1)
        back = self.paho(V5, client_id=client_id, clean=False, session_expiry=1)
        self.assertFalse(back.connack[0]["session present"])
        back.expect_none(0.3)

    def test_expired_messages_are_not_delivered_and_expiry_counts_down(self):
        topic, client_id = unique("msgexp"), unique("msgexp")
        sub = self.paho(V5, client_id=client_id, clean=False, session_expiry=60)
        sub.subscribe(topic, qos=1)
        sub.disconnect()
        pub = self.paho(V5)
        pub.publish(topic, b"short", qos=1, properties=v5_properties(MessageExpiryInterval=1))
        pub.publish(topic, b"long", qos=1, properties=v5_properties(MessageExpiryInterval=60))
        time.sleep(2.1)  # the subject of the test is time passing offline, not a synchronisation
        back = self.paho(V5, client_id=client_id, clean=False, session_expiry=60)
        m = back.expect()
        self.assertEqual(m.payload, b"long")
        self.assertLessEqual(m.properties.MessageExpiryInterval, 58)
        back.expect_none(0.3)

    def test_unacknowledged_qos1_is_resent_with_dup_after_reconnect(self):
        topic, client_id = unique("dup"), unique("dup")
        raw = self.raw(5)
        raw.connect(client_id, clean=False, props={"session_expiry": 60})
        self.assertEqual(raw.subscribe((topic, 1)), [1])
        self.paho(V5).publish(topic, b"unacked", qos=1)
        first = raw.expect(PUBLISH)
        self.assertFalse(first.dup)
        raw.abort()  # never PUBACKed
        again = self.raw(5)
        self.assertTrue(again.connect(client_id, clean=False, props={"session_expiry": 60}).session_present)
        resent = again.expect(PUBLISH)
        self.assertEqual((resent.payload, resent.dup, resent.packet_id),
                         (b"unacked", True, first.packet_id))
        again.send(ack_packet(PUBACK, resent.packet_id, 5))
        again.expect_silence(0.3)


class BrokerRestartTest(unittest.TestCase):
    """Sessions and retained messages kept on disk (mqtt.persistence, on by default) across a
    restart of the node, clean (SIGTERM) or a crash (SIGKILL)."""

    def setUp(self):
        self.edge = mqtt_edge("tcp")
        self.addCleanup(self.edge.close)
        self.edge.start()

    def client(self, version, **kw):
        c = PahoClient(version, client_id=kw.pop("client_id", None), clean=kw.pop("clean", True))
        self.addCleanup(c.close)
        c.connect(self.edge.mqtt("tcp"), **kw)
        return c

    def test_persistent_session_survives_a_broker_restart(self):
        for version, v in VERSIONS:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with self.subTest(version=v, signal=sig.name):
                    topic, client_id = unique("restart"), unique("survivor")
                    sub = self.client(version, client_id=client_id, clean=False, session_expiry=600)
                    sub.subscribe(topic, qos=1)
                    sub.disconnect()
                    # Acknowledged (QoS 1 and 2) before the restart: must not be lost.
                    pub = self.client(version)
                    pub.publish(topic, b"q1 before restart", qos=1)
                    pub.publish(topic, b"q2 before restart", qos=2)
                    self.edge.restart(sig)
                    back = self.client(version, client_id=client_id, clean=False, session_expiry=600)
                    self.assertTrue(back.connack[0]["session present"])
                    self.assertEqual([m.payload for m in back.expect_n(2)],
                                     [b"q1 before restart", b"q2 before restart"])
                    # The subscription came back too.
                    self.client(version).publish(topic, b"after restart", qos=1)
                    self.assertEqual(back.expect().payload, b"after restart")
                    back.expect_none(0.2)

    def test_clean_session_does_not_survive_a_restart(self):
        topic, client_id = unique("restart-clean"), unique("clean")
        sub = self.client(V5, client_id=client_id, clean=True)
        sub.subscribe(topic, qos=1)
        self.edge.restart()
        back = self.client(V5, client_id=client_id, clean=False, session_expiry=600)
        self.assertFalse(back.connack[0]["session present"])

    def test_retained_message_survives_a_broker_restart(self):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with self.subTest(signal=sig.name):
                topic, gone = unique("restart-ret"), unique("restart-ret-deleted")
                pub = self.client(V311)
                pub.publish(topic, b"kept", qos=1, retain=True)
                pub.publish(gone, b"deleted", qos=1, retain=True)
                pub.publish(gone, b"", qos=1, retain=True)
                self.edge.restart(sig)
                sub = self.client(V311)
                sub.subscribe(topic, qos=1)
                m = sub.expect(timeout=5)
                self.assertEqual((m.payload, m.retain), (b"kept", True))
                sub.subscribe(gone, qos=1)
                sub.expect_none(0.3)


class ConnectionLifecycleTest(BrokerTestCase):
    def test_silent_client_is_disconnected_after_one_and_a_half_keep_alives(self):
        for version in (4, 5):
            with self.subTest(version=version):
                raw = self.raw(version)
                raw.connect(keep_alive=1)
                start = time.monotonic()
                seen = raw.expect_closed(timeout=10)
                elapsed = time.monotonic() - start
                self.assertGreaterEqual(elapsed, 1.3)
                self.assertLess(elapsed, 5.0)
                if version == 5:
                    self.assertEqual([(p.type, p.reason) for p in seen], [(DISCONNECT, 0x8D)])
                else:
                    self.assertEqual(seen, [])

    def test_pings_keep_a_client_connected(self):
        raw = self.raw(4)
        raw.connect(keep_alive=1)
        for _ in range(6):  # 3 s, twice the 1.5 s limit
            raw.send(packet(PINGREQ, 0, b""))
            self.assertEqual(raw.expect(PINGRESP).type, PINGRESP)
            time.sleep(0.5)  # pacing the client's pings, not waiting for the broker
        raw.send(subscribe_packet([(unique("alive"), 1)]))
        self.assertEqual(raw.expect(SUBACK).reasons, [1])

    def test_v5_keep_alive_zero_gets_the_server_keep_alive(self):
        raw = self.raw(5)
        ack = raw.connect(keep_alive=0)
        self.assertEqual(ack.props.get("server_keep_alive"), 3600)

    def test_same_client_id_takes_over_the_connection(self):
        for version in (4, 5):
            with self.subTest(version=version):
                client_id = unique("twin")
                first = self.raw(version)
                first.connect(client_id)
                second = self.raw(version)
                second.connect(client_id)
                seen = first.expect_closed()
                if version == 5:
                    self.assertEqual([(p.type, p.reason) for p in seen], [(DISCONNECT, 0x8E)])
                else:
                    self.assertEqual(seen, [])
                topic = unique("after-takeover")
                self.assertEqual(second.subscribe((topic, 1)), [1])

    def test_paho_client_is_taken_over_by_a_second_paho_with_the_same_id(self):
        for version, v in VERSIONS:
            with self.subTest(version=v):
                client_id = unique("paho-twin")
                topic = unique("twin")
                first = self.paho(version, client_id=client_id)
                second = self.paho(version, client_id=client_id)
                # paho 1.6 reports a server DISCONNECT as a lost connection, without its reason
                # code; the raw test above checks the 0x8E.
                self.assertTrue(first.disconnected.wait(10), "first client not disconnected")
                second.subscribe(topic, qos=1)
                self.paho(version).publish(topic, b"to the second", qos=1)
                self.assertEqual(second.expect().payload, b"to the second")


if __name__ == "__main__":
    unittest.main()
