"""The edge broker routes messages between real clients: QoS, wildcards, $SYS, retained
messages and the MQTT 5 publish/subscribe features, over tcp on port 0."""
import unittest
import time

from support import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, V311, V5, VERSIONS, BrokerTestCase,
                     PacketTypes, SubscribeOptions, ack_packet, publish_packet, unique, v5_properties,
                     wait_for)

NAMES = {V311: "3.1.1", V5: "5"}


class PublishSubscribeTest(BrokerTestCase):
    def test_paho_qos_0_1_2_between_all_protocol_versions(self):
        for pub_v in (V311, V5):
            for sub_v in (V311, V5):
                with self.subTest(publisher=NAMES[pub_v], subscriber=NAMES[sub_v]):
                    topic = unique("qos") + "/x"
                    sub = self.paho(sub_v)
                    self.assertEqual(sub.subscribe(topic, qos=2), [2])
                    pub = self.paho(pub_v)
                    for qos in (0, 1, 2):
                        pub.publish(topic, f"m{qos}".encode(), qos=qos)
                        m = sub.expect()
                        self.assertEqual((m.topic, m.payload, m.qos, m.retain),
                                         (topic, f"m{qos}".encode(), qos, False))

    def test_delivery_qos_is_the_lower_of_published_and_granted(self):
        for version, _ in VERSIONS:
            with self.subTest(version=NAMES[version]):
                topic = unique("down")
                sub = self.paho(version)
                sub.subscribe(topic, qos=1)
                pub = self.paho(version)
                pub.publish(topic, b"two", qos=2)
                self.assertEqual(sub.expect().qos, 1)
                pub.publish(topic, b"zero", qos=0)
                self.assertEqual(sub.expect().qos, 0)

    def test_mosquitto_pub_to_mosquitto_sub_each_qos(self):
        for _, v in VERSIONS:
            with self.subTest(version=v):
                topic = unique("mosq")
                sub = self.mosquitto_sub(topic, version=v, qos=2, fmt="MSG %t %q %p")
                for qos in (0, 1, 2):
                    self.mosquitto_pub(topic, f"hello-{qos}", v, "-q", str(qos))
                self.assertEqual(sub.wait_messages(3),
                                 [f"{topic} 0 hello-0", f"{topic} 1 hello-1", f"{topic} 2 hello-2"])

    def test_mosquitto_and_paho_interoperate_both_directions(self):
        for version, v in VERSIONS:
            with self.subTest(version=v):
                topic = unique("interop")
                paho_sub = self.paho(version)
                paho_sub.subscribe(topic + "/from-mosquitto", qos=2)
                mosq_sub = self.mosquitto_sub(topic + "/from-paho", version=v, qos=2,
                                              fmt="MSG %t %q %p")
                self.mosquitto_pub(topic + "/from-mosquitto", "to paho", v, "-q", "2")
                m = paho_sub.expect()
                self.assertEqual((m.payload, m.qos), (b"to paho", 2))
                self.paho(version).publish(topic + "/from-paho", b"to-mosquitto", qos=1)
                self.assertEqual(mosq_sub.wait_messages(1), [f"{topic}/from-paho 1 to-mosquitto"])

    def test_plus_matches_one_level_and_hash_matches_parent_and_below(self):
        for version, v in VERSIONS:
            with self.subTest(version=v):
                root = unique("wild")
                plus = self.paho(version)
                plus.subscribe(f"{root}/+/temp", qos=1)
                hash_ = self.paho(version)
                hash_.subscribe(f"{root}/#", qos=1)
                mosq = self.mosquitto_sub(f"{root}/+/temp", version=v)
                pub = self.paho(version)
                for t in (f"{root}/a/temp", f"{root}/a/b/temp", root, f"{root}/a", f"{root}x/a/temp",
                          f"{root}//temp"):
                    pub.publish(t, t.encode(), qos=1)
                got_plus = [m.topic for m in plus.expect_n(2)]
                self.assertEqual(got_plus, [f"{root}/a/temp", f"{root}//temp"])
                got_hash = [m.topic for m in hash_.expect_n(5)]
                self.assertEqual(got_hash, [f"{root}/a/temp", f"{root}/a/b/temp", root, f"{root}/a",
                                            f"{root}//temp"])
                self.assertEqual(mosq.wait_messages(2), [f"{root}/a/temp {root}/a/temp",
                                                         f"{root}//temp {root}//temp"])
                plus.expect_none(0.3)
                hash_.expect_none(0.1)

    def test_resent_qos2_publish_is_routed_once(self):
        for version in (4, 5):
            with self.subTest(version=version):
                topic = unique("exactly-once")
                sub = self.paho(V5)
                sub.subscribe(topic, qos=2)
                raw = self.raw(version)
                raw.connect()
                raw.send(publish_packet(topic, b"once", qos=2, packet_id=5, version=version))
                self.assertEqual(raw.expect(PUBREC).packet_id, 5)
                raw.send(publish_packet(topic, b"once", qos=2, packet_id=5, dup=True, version=version))
                self.assertEqual(raw.expect(PUBREC).packet_id, 5)
                raw.send(ack_packet(PUBREL, 5, version))
                self.assertEqual(raw.expect(PUBCOMP).packet_id, 5)
                self.assertEqual(sub.expect().payload, b"once")
                sub.expect_none(0.3)
                # The id is free again: a new message with it is routed.
                raw.send(publish_packet(topic, b"again", qos=2, packet_id=5, version=version))
                raw.expect(PUBREC)
                raw.send(ack_packet(PUBREL, 5, version))
                raw.expect(PUBCOMP)
                self.assertEqual(sub.expect().payload, b"again")

    def test_outbound_qos2_flow_on_the_wire(self):
        topic = unique("q2-out")
        raw = self.raw(5)
        raw.connect()
        self.assertEqual(raw.subscribe((topic, 2)), [2])
        self.paho(V5).publish(topic, b"exactly once", qos=2)
        p = raw.expect(PUBLISH)
        self.assertEqual((p.qos, p.payload, p.dup), (2, b"exactly once", False))
        raw.send(ack_packet(PUBREC, p.packet_id, 5))
        self.assertEqual(raw.expect(PUBREL).packet_id, p.packet_id)
        raw.send(ack_packet(PUBCOMP, p.packet_id, 5))
        raw.expect_silence(0.3)

    def test_unsubscribe_stops_delivery(self):
        for version, _ in VERSIONS:
            with self.subTest(version=NAMES[version]):
                topic = unique("unsub")
                sub = self.paho(version)
                sub.subscribe(topic, qos=1)
                pub = self.paho(version)
                pub.publish(topic, b"1", qos=1)
                sub.expect()
                sub.unsubscribe(topic)
                pub.publish(topic, b"2", qos=1)
                sub.expect_none(0.3)


class SysTopicsTest(BrokerTestCase):
    options = {"sys_interval": "10s"}

    def test_sys_is_not_matched_by_hash_but_readable_via_sys_hash(self):
        for version, v in VERSIONS:
            with self.subTest(version=v):
                everything = self.paho(version)
                everything.subscribe("#", qos=0)
                plus = self.paho(version)
                plus.subscribe("+/broker/version", qos=0)
                marker = unique("marker")
                self.paho(version).publish(marker, b"x", qos=1)
                # '#' gets the marker (and maybe other tests' traffic) but never a $ topic.
                got = []
                while marker not in got:
                    got.append(everything.expect().topic)
                self.assertFalse([t for t in got if t.startswith("$")], got)
                plus.expect_none(0.2)

                sys_sub = self.paho(version)
                sys_sub.subscribe("$SYS/#", qos=0)
                topics = {}
                while "$SYS/broker/version" not in topics:
                    m = sys_sub.expect()
                    topics[m.topic] = m
                self.assertTrue(topics["$SYS/broker/version"].retain)
                self.assertTrue(topics["$SYS/broker/version"].payload)

                mosq = self.mosquitto_sub("$SYS/broker/uptime", version=v, qos=0)
                self.assertRegex(mosq.wait_messages(1)[0], r"^\$SYS/broker/uptime \d+ seconds$")

    def test_clients_cannot_publish_into_sys(self):
        sub = self.paho(V5)
        sub.subscribe("$SYS/broker/forged", qos=1)
        raw = self.raw(5)
        raw.connect()
        raw.send(publish_packet("$SYS/broker/forged", b"x", qos=1, version=5))
        self.assertEqual(raw.expect(PUBACK).reason, 0x87)
        self.paho(V311).publish("$SYS/broker/forged", b"y", qos=1)
        sub.expect_none(0.3)


class RetainedTest(BrokerTestCase):
    def test_retained_set_replace_and_delete_with_paho(self):
        for version, _ in VERSIONS:
            with self.subTest(version=NAMES[version]):
                topic = unique("ret")
                pub = self.paho(version)
                pub.publish(topic, b"one", qos=1, retain=True)
                pub.publish(topic, b"two", qos=1, retain=True)
                late = self.paho(version)
                late.subscribe(topic, qos=1)
                m = late.expect()
                self.assertEqual((m.payload, m.retain), (b"two", True))
                late.expect_none(0.2)
                pub.publish(topic, b"", qos=1, retain=True)  # deletes
                # The live subscriber still gets the empty message; it is not retained.
                self.assertEqual(late.expect().payload, b"")
                later = self.paho(version)
                later.subscribe(topic, qos=1)
                later.expect_none(0.3)

    def test_retained_with_mosquitto(self):
        for _, v in VERSIONS:
            with self.subTest(version=v):
                topic = unique("ret-mosq")
                self.mosquitto_pub(topic, "first", v, "-r", "-q", "1")
                self.mosquitto_pub(topic, "second", v, "-r", "-q", "1")
                sub = self.mosquitto_sub(topic, version=v, fmt="MSG %t %r %p", extra=("-C", "1"))
                self.assertEqual(sub.wait_messages(1), [f"{topic} 1 second"])
                self.assertEqual(sub.wait_exit(), 0)
                self.mosquitto_pub(topic, None, v, "-r")  # a null message deletes it
                check = self.paho(V5)
                check.subscribe(topic, qos=1)
                check.expect_none(0.3)

    def test_wildcard_subscription_gets_every_matching_retained_message(self):
        for version, _ in VERSIONS:
            with self.subTest(version=NAMES[version]):
                root = unique("ret-wild")
                pub = self.paho(version)
                for leaf in ("a", "b", "c/d"):
                    pub.publish(f"{root}/{leaf}", leaf.encode(), qos=1, retain=True)
                sub = self.paho(version)
                sub.subscribe(f"{root}/+", qos=1)
                self.assertEqual(sorted(m.payload for m in sub.expect_n(2)), [b"a", b"b"])
                sub.expect_none(0.2)

    def test_retained_message_expires(self):
        topic = unique("ret-exp")
        pub = self.paho(V5)
        pub.publish(topic, b"brief", qos=1, retain=True, properties=v5_properties(MessageExpiryInterval=1))
        early = self.paho(V5)
        early.subscribe(topic, qos=1)
        m = early.expect()
        self.assertEqual(m.payload, b"brief")
        self.assertLessEqual(m.properties.MessageExpiryInterval, 1)
        time.sleep(1.6)  # the subject is the expiry passing, not a synchronisation
        late = self.paho(V5)
        late.subscribe(topic, qos=1)
        late.expect_none(0.3)

    def test_live_delivery_clears_retain_flag_unless_retain_as_published(self):
        topic = unique("rap")
        v311 = self.paho(V311)
        v311.subscribe(topic, qos=1)
        plain = self.paho(V5)
        plain.subscribe(topic, options=SubscribeOptions(qos=1))
        rap = self.paho(V5)
        rap.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
        self.paho(V5).publish(topic, b"live", qos=1, retain=True)
        self.assertFalse(v311.expect().retain)
        self.assertFalse(plain.expect().retain)
        self.assertTrue(rap.expect().retain)
        # Sent because of the subscription: RETAIN set whatever retain-as-published says.
        late = self.paho(V5)
        late.subscribe(topic, options=SubscribeOptions(qos=1))
        self.assertTrue(late.expect().retain)

    def test_retain_handling_0_1_2(self):
        topic = unique("rh")
        self.paho(V5).publish(topic, b"kept", qos=1, retain=True)
        sub = self.paho(V5)
        send, if_new, never = (SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE,
                               SubscribeOptions.RETAIN_SEND_IF_NEW_SUB,
                               SubscribeOptions.RETAIN_DO_NOT_SEND)
        sub.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=send))
        self.assertEqual(sub.expect().payload, b"kept")
        sub.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=send))
        self.assertEqual(sub.expect().payload, b"kept", "0: sent again on every subscribe")
        sub.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=if_new))
        sub.expect_none(0.3)  # 1: the subscription already existed
        other = self.paho(V5)
        other.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=if_new))
        self.assertEqual(other.expect().payload, b"kept", "1: sent for a new subscription")
        third = self.paho(V5)
        third.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=never))
        third.expect_none(0.3)  # 2: never
        # 3.1.1: a repeated SUBSCRIBE re-sends retained messages (spec 3.8.4).
        old = self.paho(V311)
        old.subscribe(topic, qos=1)
        old.expect()
        old.subscribe(topic, qos=1)
        self.assertEqual(old.expect().payload, b"kept")


class Mqtt5FeaturesTest(BrokerTestCase):
    def test_shared_subscription_balances_between_members(self):
        for version, v in VERSIONS:
            with self.subTest(version=v):
                topic = unique("work")
                group = f"$share/{unique('g')}/{topic}"
                members = [self.paho(version), self.paho(version)]
                for m in members:
                    m.subscribe(group, qos=1)
                mosq = self.mosquitto_sub(group, version=v)
                plain = self.paho(version)
                plain.subscribe(topic, qos=1)
                pub = self.paho(version)
                for i in range(30):
                    pub.publish(topic, str(i).encode(), qos=1)
                self.assertEqual(len(plain.expect_n(30)), 30)  # non-shared sees every one
                # Each message goes to exactly one member; every member gets a share.
                wait_for(lambda: sum(len(m.received) for m in members) + len(mosq.messages()) >= 30,
                         what="30 shared deliveries")
                got = sorted([int(m.payload) for c in members for m in c.received] +
                             [int(line.split()[1]) for line in mosq.messages()])
                self.assertEqual(got, list(range(30)))
                counts = [len(members[0].received), len(members[1].received), len(mosq.messages())]
                self.assertTrue(all(n >= 5 for n in counts), counts)

    def test_no_local_suppresses_own_messages(self):
        topic = unique("nolocal")
        me = self.paho(V5)
        me.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=True))
        me.publish(topic, b"mine", qos=1)
        self.paho(V5).publish(topic, b"theirs", qos=1)
        self.assertEqual(me.expect().payload, b"theirs")
        me.expect_none(0.2)
        # Without no-local a client gets its own messages.
        other = self.paho(V5)
        other.subscribe(topic, qos=1)
        other.publish(topic, b"echo", qos=1)
        self.assertEqual(other.expect().payload, b"echo")

    def test_subscription_identifiers_are_returned_per_matching_subscription(self):
        root = unique("subid")
        sub = self.paho(V5)
        sub.subscribe(f"{root}/+", qos=1,
                      properties=v5_properties(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
        sub.subscribe(f"{root}/#", qos=1,
                      properties=v5_properties(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=300))
        self.paho(V5).publish(f"{root}/a", b"x", qos=1)
        m = sub.expect()
        self.assertEqual(sorted(m.properties.SubscriptionIdentifier), [7, 300])
        sub.expect_none(0.2)  # one delivery for overlapping subscriptions
        self.paho(V5).publish(f"{root}/a/b", b"y", qos=1)
        self.assertEqual(sub.expect().properties.SubscriptionIdentifier, [300])

    def test_publish_properties_are_forwarded(self):
        topic = unique("props")
        sub = self.paho(V5)
        sub.subscribe(topic, qos=1)
        mosq = self.mosquitto_sub(topic, version="5", fmt="MSG %t %C %R %P %p")
        props = v5_properties(ContentType="application/json", ResponseTopic=topic + "/reply",
                              CorrelationData=b"\x01\x02corr", PayloadFormatIndicator=1,
                              UserProperty=[("site", "plant-7"), ("line", "3")])
        self.paho(V5).publish(topic, b'{"t":1}', qos=1, properties=props)
        m = sub.expect()
        p = m.properties
        self.assertEqual(p.ContentType, "application/json")
        self.assertEqual(p.ResponseTopic, topic + "/reply")
        self.assertEqual(p.CorrelationData, b"\x01\x02corr")
        self.assertEqual(p.PayloadFormatIndicator, 1)
        self.assertEqual(p.UserProperty, [("site", "plant-7"), ("line", "3")])
        line = mosq.wait_messages(1)[0]
        self.assertIn("application/json", line)
        self.assertIn(topic + "/reply", line)
        self.assertIn("site:plant-7", line)
        # mosquitto_pub sets them too.
        self.mosquitto_pub(topic, "from-mosquitto", "5", "-q", "1", "-D", "publish", "user-property", "k", "v",
                           "-D", "publish", "content-type", "text/plain",
                           "-D", "publish", "correlation-data", "abc",
                           "-D", "publish", "response-topic", "r/t")
        p = sub.expect().properties
        self.assertEqual((p.ContentType, p.ResponseTopic, p.CorrelationData, p.UserProperty),
                         ("text/plain", "r/t", b"abc", [("k", "v")]))
        # A 3.1.1 subscriber gets the payload without properties.
        old = self.paho(V311)
        old.subscribe(topic, qos=1)
        self.paho(V5).publish(topic, b"plain", qos=1, properties=props)
        self.assertEqual(old.expect().payload, b"plain")

    def test_topic_alias_from_client_is_resolved(self):
        topic = unique("alias")
        sub = self.paho(V5)
        sub.subscribe(topic, qos=1)
        raw = self.raw(5)
        ack = raw.connect()
        self.assertGreaterEqual(ack.props.get("topic_alias_maximum", 0), 1)
        raw.send(publish_packet(topic, b"set", qos=1, packet_id=1, version=5,
                                        props={"topic_alias": 1}))
        self.assertEqual(raw.expect(PUBACK).reason, 0)
        raw.send(publish_packet("", b"use", qos=1, packet_id=2, version=5,
                                        props={"topic_alias": 1}))
        self.assertEqual(raw.expect(PUBACK).reason, 0)
        self.assertEqual([(m.topic, m.payload) for m in sub.expect_n(2)],
                         [(topic, b"set"), (topic, b"use")])
        # An alias never set is a protocol error: DISCONNECT 0x82.
        raw.send(publish_packet("", b"bad", qos=1, packet_id=3, version=5,
                                        props={"topic_alias": 2}))
        self.assertEqual([p.reason for p in raw.expect_closed()], [0x82])

    def test_puback_says_no_matching_subscribers(self):
        raw = self.raw(5)
        raw.connect()
        raw.send(publish_packet(unique("nobody"), b"x", qos=1, version=5))
        self.assertEqual(raw.expect(PUBACK).reason, 0x10)

    def test_broker_uses_topic_aliases_towards_a_client_that_allows_them(self):
        topic = unique("alias-out")
        raw = self.raw(5)
        raw.connect(props={"topic_alias_maximum": 4})
        raw.subscribe((topic, 1))
        pub = self.paho(V5)
        pub.publish(topic, b"1", qos=1)
        pub.publish(topic, b"2", qos=1)
        first, second = raw.expect(PUBLISH), raw.expect(PUBLISH)
        self.assertEqual((first.topic, first.props.get("topic_alias")), (topic, 1))
        self.assertEqual((second.topic, second.props.get("topic_alias"), second.payload), ("", 1, b"2"))
        # Without Topic Alias Maximum the client never gets one.
        plain = self.raw(5)
        plain.connect()
        plain.subscribe((topic, 0))
        pub.publish(topic, b"3", qos=1)
        m = plain.expect(PUBLISH)
        self.assertEqual((m.topic, m.props.get("topic_alias")), (topic, None))

    def test_topic_alias_above_maximum_is_refused(self):
        raw = self.raw(5)
        ack = raw.connect()
        too_big = ack.props["topic_alias_maximum"] + 1
        raw.send(publish_packet(unique("alias"), b"x", qos=1, version=5,
                                        props={"topic_alias": too_big}))
        self.assertEqual([p.reason for p in raw.expect_closed()], [0x94])  # Topic Alias invalid

    def test_receive_maximum_of_the_client_is_honoured(self):
        topic = unique("recvmax")
        raw = self.raw(5)
        raw.connect(props={"receive_maximum": 2})
        self.assertEqual(raw.subscribe((topic, 1)), [1])
        pub = self.paho(V5)
        for i in range(5):
            pub.publish(topic, str(i).encode(), qos=1)
        first = [raw.expect(PUBLISH), raw.expect(PUBLISH)]
        self.assertEqual([p.payload for p in first], [b"0", b"1"])
        raw.expect_silence(0.5)  # two unacknowledged: the third waits
        raw.send(ack_packet(PUBACK, first[0].packet_id, 5))
        third = raw.expect(PUBLISH)
        self.assertEqual(third.payload, b"2")
        raw.expect_silence(0.3)
        raw.send(ack_packet(PUBACK, first[1].packet_id, 5))
        raw.send(ack_packet(PUBACK, third.packet_id, 5))
        self.assertEqual([raw.expect(PUBLISH).payload for _ in range(2)], [b"3", b"4"])


if __name__ == "__main__":
    unittest.main()
