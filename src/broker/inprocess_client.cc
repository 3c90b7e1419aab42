#include "broker/inprocess_client.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>

#include "base/timer_scope.h"
#include "broker/broker.h"
#include "broker/connection.h"
#include "broker/link.h"
#include "mqtt/codec.h"
#include "mqtt/topic.h"

namespace ganglion::broker {

using mqtt::QoS;
using mqtt::ReasonCode;

namespace {

bool failed(ReasonCode r) { return static_cast<std::uint8_t>(r) >= 0x80; }

Status status_of(ReasonCode r, std::string_view what) {
  return failed(r) ? mqtt::error(r, what) : Status::Ok();
}

Status not_connected() { return Unavailable("in-process client is not connected"); }

}  // namespace

// All members below the mutexes are touched only on the executor.
struct InProcessClient::Impl : std::enable_shared_from_this<InProcessClient::Impl> {
  struct Sub {
    std::string filter;
    QoS qos = QoS::kAtMostOnce;
    SubscribeOptions options;
    MessageHandler handler;
    DeferredHandler deferred;
    std::uint32_t id = 0;
    bool confirmed = false;    // SUBACK received in the broker's current session
    SubscribeCompletion done;  // pending until the SUBACK
  };
  struct OutPublish {
    mqtt::Publish packet;
    PublishCompletion done;
    bool released = false;  // QoS 2: PUBREC received, PUBREL sent
  };
  struct PendingAck {
    enum Kind { kSubscribe, kUnsubscribe } kind;
    SubscribeCompletion done;
    std::string filter;
  };

  Impl(Broker& b, ClientOptions o, Executor e)
      : broker(b),
        options(std::move(o)),
        post(std::move(e)),
        timers(b.clock()),
        client_id(options.client_id) {}

  void run(std::function<void(Impl&)> fn) {
    post([self = shared_from_this(), fn = std::move(fn)] {
      if (self->open.load()) fn(*self);
    });
  }

  void do_connect(ConnectCompletion done);
  void do_disconnect();
  // `stored_id`: for a PUBLISH, the broker's journal id of the delivery (Link::send_publish).
  void on_packet(const std::shared_ptr<Pipe>& from, mqtt::Packet& packet, std::uint64_t stored_id);
  void on_pipe_closed(const std::shared_ptr<Pipe>& from);
  void send(mqtt::Packet packet) {
    if (conn) conn->on_packet(std::move(packet));
  }
  bool up() const { return conn && conn->connected(); }
  std::uint16_t next_packet_id();
  void send_subscribe(Sub& s);
  void start_publish(OutPublish out);
  void pump();
  void dispatch(const std::shared_ptr<Pipe>& from, mqtt::Publish& p, std::uint64_t stored_id);
  void send_delivery_ack(const std::shared_ptr<Pipe>& from, std::uint16_t id, QoS qos);
  void fail_pending(const Status& why);
  void arm_ping(std::uint16_t keep_alive_s);
  void close_now();

  Broker& broker;
  ClientOptions options;
  Executor post;
  TimerScope timers;
  std::atomic<bool> open{true};
  std::atomic<bool> connected{false};
  mutable std::mutex id_mu;
  std::string client_id;  // guarded by id_mu

  std::shared_ptr<Pipe> pipe;
  std::shared_ptr<Connection> conn;
  ConnectCompletion connect_done;
  std::function<void(ReasonCode)> lost;
  ReasonCode disconnect_reason = ReasonCode::kUnspecifiedError;
  bool closing_by_us = false;
  std::uint16_t last_id = 0;
  std::uint16_t inflight_limit = 0;  // the broker's Receive Maximum for our QoS 1/2
  std::unordered_map<std::uint16_t, OutPublish> inflight;
  std::deque<OutPublish> waiting;  // beyond the broker's Receive Maximum
  std::unordered_map<std::uint16_t, PendingAck> acks;
  std::map<std::string, Sub, std::less<>> subs;
  std::unordered_map<std::uint32_t, std::string> sub_by_id;
  std::uint32_t next_sub_id = 1;
  std::unordered_map<std::uint16_t, bool> inbound_qos2;  // id -> PUBREC sent
  TimerId ping_timer = 0;
};

// The Link the broker sees. send() and close() may run on any thread with a session lock
// held: they only queue and post one drain task to the executor.
class InProcessClient::Pipe final : public Link, public std::enable_shared_from_this<Pipe> {
 public:
  Pipe(std::weak_ptr<Impl> impl, Executor post) : impl_(std::move(impl)), post_(std::move(post)) {}

  bool send(const mqtt::Packet& packet) override { return push(packet, 0); }
  bool send_publish(const mqtt::Publish& publish, std::uint64_t stored_id) override {
    return push(mqtt::Packet(publish), stored_id);
  }
  void set_protocol(mqtt::ProtocolVersion, std::uint32_t) override {}
  void close() override {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    schedule_locked();
  }
  std::size_t queued_bytes() const override {
    std::lock_guard lock(mu_);
    return inbox_.size() * 64;  // a rough size: packets are values here, not bytes
  }
  // Marks the pipe closed without posting (the client side ended it).
  void shut() {
    std::lock_guard lock(mu_);
    closed_ = true;
    close_handled_ = true;
    inbox_.clear();
  }

 private:
  bool push(mqtt::Packet packet, std::uint64_t stored_id) {
    std::lock_guard lock(mu_);
    if (closed_) return false;
    inbox_.push_back({std::move(packet), stored_id});
    schedule_locked();
    return true;
  }

  void schedule_locked() {
    if (drain_posted_) return;
    drain_posted_ = true;
    post_([self = shared_from_this()] { self->drain(); });
  }

  void drain() {
    std::deque<Item> batch;
    bool close_now = false;
    {
      std::lock_guard lock(mu_);
      drain_posted_ = false;
      batch.swap(inbox_);
      if (closed_ && !close_handled_) {
        close_handled_ = true;
        close_now = true;
      }
    }
    auto impl = impl_.lock();
    if (!impl || !impl->open.load()) return;
    auto self = shared_from_this();
    for (auto& item : batch) impl->on_packet(self, item.packet, item.stored_id);
    if (close_now) impl->on_pipe_closed(self);
  }

  std::weak_ptr<Impl> impl_;
  Executor post_;
  mutable std::mutex mu_;
  struct Item {
    mqtt::Packet packet;
    std::uint64_t stored_id = 0;
  };
  std::deque<Item> inbox_;
  bool drain_posted_ = false;
  bool closed_ = false;
  bool close_handled_ = false;
};

struct DeliveryAck::State {
  // Shared by every handler a message went to; the ack is sent when the last one released.
  struct Group {
    std::function<void()> send_ack;  // posts the PUBACK/PUBREC to the client's executor
    std::atomic<int> remaining{1};
    void release() {
      if (remaining.fetch_sub(1) == 1) send_ack();
    }
  };
  std::shared_ptr<Group> group;
  std::uint64_t stored_id = 0;
  std::atomic<bool> done{false};
};

std::uint64_t DeliveryAck::stored_id() const { return state_ ? state_->stored_id : 0; }

void DeliveryAck::operator()() const {
  if (!state_ || state_->done.exchange(true)) return;
  state_->group->release();
}

// ---------------------------------------------------------------------------------------------

void InProcessClient::Impl::do_connect(ConnectCompletion done) {
  if (conn) {
    if (done) done(FailedPrecondition("in-process client already connected"), false);
    return;
  }
  connect_done = std::move(done);
  closing_by_us = false;
  disconnect_reason = ReasonCode::kUnspecifiedError;
  inflight_limit = broker.options().receive_maximum;
  pipe = std::make_shared<Pipe>(weak_from_this(), post);
  std::string name;
  {
    std::lock_guard lock(id_mu);
    name = client_id;
  }
  conn = broker.accept(pipe,
                       TransportInfo{"inproc", name.empty() ? "inproc" : name, std::nullopt, true});
  mqtt::Connect c;
  c.version = mqtt::ProtocolVersion::kV5;
  c.client_id = name;
  c.clean_start = options.clean_start;
  c.keep_alive = 0;
  c.username = options.username;
  c.password = options.password;
  c.will = options.will;
  if (options.session_expiry) c.properties.session_expiry_interval = options.session_expiry;
  c.properties.receive_maximum = options.receive_maximum;
  conn->on_packet(std::move(c));
}

void InProcessClient::Impl::do_disconnect() {
  if (!conn) return;
  closing_by_us = true;
  send(mqtt::Disconnect{});  // the connection closes the pipe; on_pipe_closed() follows
}

void InProcessClient::Impl::close_now() {
  if (ping_timer) timers.cancel(ping_timer);
  ping_timer = 0;
  if (!conn) return;
  pipe->shut();
  auto c = std::move(conn);
  pipe.reset();
  connected = false;
  c->on_closed();
}

std::uint16_t InProcessClient::Impl::next_packet_id() {
  for (;;) {
    last_id = static_cast<std::uint16_t>(last_id == 65535 ? 1 : last_id + 1);
    if (!inflight.count(last_id) && !acks.count(last_id)) return last_id;
  }
}

void InProcessClient::Impl::send_subscribe(Sub& s) {
  mqtt::Subscribe packet;
  packet.packet_id = next_packet_id();
  packet.properties.subscription_identifiers.push_back(s.id);
  mqtt::Subscription sub;
  sub.filter = s.filter;
  sub.max_qos = s.qos;
  sub.no_local = s.options.no_local;
  sub.retain_as_published = s.options.retain_as_published;
  sub.retain_handling = s.options.retain_handling;
  packet.subscriptions.push_back(std::move(sub));
  acks[packet.packet_id] = PendingAck{PendingAck::kSubscribe, std::move(s.done), s.filter};
  s.done = nullptr;
  send(std::move(packet));
}

void InProcessClient::Impl::start_publish(OutPublish out) {
  if (out.packet.qos == QoS::kAtMostOnce) {
    send(std::move(out.packet));
    if (out.done) out.done(Status::Ok(), ReasonCode::kSuccess);
    return;
  }
  if (inflight.size() >= inflight_limit || !waiting.empty()) {
    waiting.push_back(std::move(out));
    return;
  }
  out.packet.packet_id = next_packet_id();
  mqtt::Publish copy = out.packet;
  inflight.emplace(out.packet.packet_id, std::move(out));
  send(std::move(copy));
}

void InProcessClient::Impl::pump() {
  while (!waiting.empty() && inflight.size() < inflight_limit && up()) {
    OutPublish out = std::move(waiting.front());
    waiting.pop_front();
    start_publish(std::move(out));
  }
}

void InProcessClient::Impl::fail_pending(const Status& why) {
  auto in = std::move(inflight);
  auto wait = std::move(waiting);
  auto pending = std::move(acks);
  inflight.clear();
  waiting.clear();
  acks.clear();
  for (auto& [_, o] : in) {
    if (o.done) o.done(why, ReasonCode::kUnspecifiedError);
  }
  for (auto& o : wait) {
    if (o.done) o.done(why, ReasonCode::kUnspecifiedError);
  }
  for (auto& [_, a] : pending) {
    if (a.done) a.done(why, ReasonCode::kUnspecifiedError);
  }
}

void InProcessClient::Impl::arm_ping(std::uint16_t keep_alive_s) {
  if (keep_alive_s == 0) return;
  // Half the interval keeps us well inside the broker's 1.5x limit.
  const auto every = std::chrono::milliseconds(keep_alive_s * 500LL);
  std::weak_ptr<Impl> weak = weak_from_this();
  ping_timer = timers.schedule_after(every, [weak, keep_alive_s] {
    auto self = weak.lock();
    if (!self) return;
    self->run([keep_alive_s](Impl& i) {
      if (!i.up()) return;
      i.send(mqtt::Pingreq{});
      i.arm_ping(keep_alive_s);
    });
  });
}

void InProcessClient::Impl::on_packet(const std::shared_ptr<Pipe>& from, mqtt::Packet& packet,
                                      std::uint64_t stored_id) {
  if (from != pipe) return;  // a previous connection's leftovers
  std::visit(
      [&](auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, mqtt::Connack>) {
          if (failed(p.reason)) {
            auto done = std::move(connect_done);
            connect_done = nullptr;
            if (done) done(status_of(p.reason, "in-process CONNECT refused"), false);
            return;
          }
          connected = true;
          if (p.properties.assigned_client_identifier) {
            std::lock_guard lock(id_mu);
            client_id = *p.properties.assigned_client_identifier;
          }
          for (auto& [_, s] : subs) {
            if (!p.session_present) s.confirmed = false;
            if (!s.confirmed) send_subscribe(s);
          }
          if (p.properties.server_keep_alive) arm_ping(*p.properties.server_keep_alive);
          auto done = std::move(connect_done);
          connect_done = nullptr;
          if (done) done(Status::Ok(), p.session_present);
          pump();
        } else if constexpr (std::is_same_v<T, mqtt::Publish>) {
          dispatch(from, p, stored_id);
        } else if constexpr (std::is_same_v<T, mqtt::Puback> || std::is_same_v<T, mqtt::Pubcomp>) {
          auto it = inflight.find(p.packet_id);
          if (it == inflight.end()) return;
          auto done = std::move(it->second.done);
          inflight.erase(it);
          if (done) done(status_of(p.reason, "publish refused by the broker"), p.reason);
          pump();
        } else if constexpr (std::is_same_v<T, mqtt::Pubrec>) {
          auto it = inflight.find(p.packet_id);
          if (it == inflight.end()) {
            send(mqtt::Pubrel{p.packet_id, ReasonCode::kPacketIdentifierNotFound, {}});
            return;
          }
          if (failed(p.reason)) {
            auto done = std::move(it->second.done);
            inflight.erase(it);
            if (done) done(status_of(p.reason, "publish refused by the broker"), p.reason);
            pump();
            return;
          }
          it->second.released = true;
          send(mqtt::Pubrel{p.packet_id, ReasonCode::kSuccess, {}});
        } else if constexpr (std::is_same_v<T, mqtt::Pubrel>) {
          inbound_qos2.erase(p.packet_id);
          send(mqtt::Pubcomp{p.packet_id, ReasonCode::kSuccess, {}});
        } else if constexpr (std::is_same_v<T, mqtt::Suback> || std::is_same_v<T, mqtt::Unsuback>) {
          auto it = acks.find(p.packet_id);
          if (it == acks.end()) return;
          PendingAck a = std::move(it->second);
          acks.erase(it);
          const ReasonCode r = p.reasons.empty() ? ReasonCode::kSuccess : p.reasons.front();
          if constexpr (std::is_same_v<T, mqtt::Suback>) {
            auto s = subs.find(a.filter);
            if (s != subs.end() && !failed(r)) s->second.confirmed = true;
          }
          if (a.done) a.done(status_of(r, "subscription refused by the broker"), r);
        } else if constexpr (std::is_same_v<T, mqtt::Disconnect>) {
          disconnect_reason = p.reason;
        }
      },
      packet);
}

void InProcessClient::Impl::dispatch(const std::shared_ptr<Pipe>& from, mqtt::Publish& p,
                                     std::uint64_t stored_id) {
  if (p.qos == QoS::kExactlyOnce) {
    auto it = inbound_qos2.find(p.packet_id);
    if (it != inbound_qos2.end()) {
      // Delivered already (a resend after resume): only repeat the PUBREC if it was sent.
      if (it->second) send(mqtt::Pubrec{p.packet_id, ReasonCode::kSuccess, {}});
      return;
    }
    inbound_qos2[p.packet_id] = false;
  }
  // The handlers, by the subscription identifiers the broker attached.
  std::vector<Sub*> targets;
  for (std::uint32_t id : p.properties.subscription_identifiers) {
    auto s = sub_by_id.find(id);
    if (s == sub_by_id.end()) continue;
    auto it = subs.find(s->second);
    if (it != subs.end()) targets.push_back(&it->second);
  }
  // Subscription identifiers are not for the handlers: they are ours.
  p.properties.subscription_identifiers.clear();
  std::shared_ptr<DeliveryAck::State::Group> group;
  if (p.qos != QoS::kAtMostOnce) {
    group = std::make_shared<DeliveryAck::State::Group>();
    group->send_ack = [weak = weak_from_this(), from, id = p.packet_id, qos = p.qos] {
      if (auto self = weak.lock()) {
        self->run([from, id, qos](Impl& i) { i.send_delivery_ack(from, id, qos); });
      }
    };
    for (Sub* s : targets) {
      if (s->deferred) group->remaining.fetch_add(1);
    }
  }
  for (Sub* s : targets) {
    if (s->handler) {
      s->handler(p);
    } else if (s->deferred) {
      DeliveryAck ack;
      if (group) {
        auto st = std::make_shared<DeliveryAck::State>();
        st->group = group;
        st->stored_id = stored_id;
        ack = DeliveryAck(std::move(st));
      }
      // Copies: a deferred handler may keep the message past this call.
      s->deferred(p, ack);
    }
  }
  if (group) group->release();  // the handlers that returned
}

void InProcessClient::Impl::send_delivery_ack(const std::shared_ptr<Pipe>& from, std::uint16_t id,
                                              QoS qos) {
  // Acks belong to the connection the message came on; after a reconnect the broker sends
  // it again (DUP) and it is acknowledged then.
  if (from != pipe || !up()) return;
  if (qos == QoS::kAtLeastOnce) {
    send(mqtt::Puback{id, ReasonCode::kSuccess, {}});
  } else {
    inbound_qos2[id] = true;
    send(mqtt::Pubrec{id, ReasonCode::kSuccess, {}});
  }
}

void InProcessClient::Impl::on_pipe_closed(const std::shared_ptr<Pipe>& from) {
  if (from != pipe) return;
  if (ping_timer) timers.cancel(ping_timer);
  ping_timer = 0;
  auto c = std::move(conn);
  pipe.reset();
  const bool was_connected = connected.exchange(false);
  if (c) c->on_closed();
  if (auto done = std::move(connect_done)) {
    connect_done = nullptr;
    done(Unavailable("in-process connection closed before CONNACK"), false);
  }
  fail_pending(Unavailable("in-process connection closed"));
  if (was_connected && !closing_by_us && lost) lost(disconnect_reason);
}

// ---------------------------------------------------------------------------------------------

InProcessClient::InProcessClient(Broker& broker, ClientOptions options, Executor post)
    : impl_(std::make_shared<Impl>(broker, std::move(options), std::move(post))) {}

InProcessClient::~InProcessClient() {
  // Synchronously (see the header's lifetime rule): a task posted now might never run, and
  // the Connection must not outlive the broker it points to.
  impl_->open = false;
  impl_->close_now();
  impl_->timers.close();
}

void InProcessClient::connect(ConnectCompletion done) {
  impl_->run([done = std::move(done)](Impl& i) mutable { i.do_connect(std::move(done)); });
}

void InProcessClient::disconnect() {
  impl_->run([](Impl& i) { i.do_disconnect(); });
}

void InProcessClient::on_connection_lost(std::function<void(ReasonCode)> fn) {
  impl_->run([fn = std::move(fn)](Impl& i) mutable { i.lost = std::move(fn); });
}

void InProcessClient::subscribe(std::string filter, QoS qos, MessageHandler handler,
                                SubscribeCompletion done, SubscribeOptions options) {
  impl_->run([filter = std::move(filter), qos, handler = std::move(handler), done = std::move(done),
              options](Impl& i) mutable {
    if (Status s = mqtt::validate_topic_filter(filter); !s.ok()) {
      if (done) done(s, ReasonCode::kTopicFilterInvalid);
      return;
    }
    auto& sub = i.subs[filter];
    if (sub.id == 0) {
      sub.id = i.next_sub_id++;
      i.sub_by_id[sub.id] = filter;
    }
    sub.filter = filter;
    sub.qos = qos;
    sub.options = options;
    sub.handler = std::move(handler);
    sub.deferred = nullptr;
    sub.done = std::move(done);
    sub.confirmed = false;
    if (i.up()) i.send_subscribe(sub);
  });
}

void InProcessClient::subscribe_deferred(std::string filter, QoS qos, DeferredHandler handler,
                                         SubscribeCompletion done, SubscribeOptions options) {
  impl_->run([filter = std::move(filter), qos, handler = std::move(handler), done = std::move(done),
              options](Impl& i) mutable {
    if (Status s = mqtt::validate_topic_filter(filter); !s.ok()) {
      if (done) done(s, ReasonCode::kTopicFilterInvalid);
      return;
    }
    auto& sub = i.subs[filter];
    if (sub.id == 0) {
      sub.id = i.next_sub_id++;
      i.sub_by_id[sub.id] = filter;
    }
    sub.filter = filter;
    sub.qos = qos;
    sub.options = options;
    sub.handler = nullptr;
    sub.deferred = std::move(handler);
    sub.done = std::move(done);
    sub.confirmed = false;
    if (i.up()) i.send_subscribe(sub);
  });
}

void InProcessClient::unsubscribe(std::string filter, SubscribeCompletion done) {
  impl_->run([filter = std::move(filter), done = std::move(done)](Impl& i) mutable {
    auto it = i.subs.find(filter);
    if (it != i.subs.end()) {
      i.sub_by_id.erase(it->second.id);
      i.subs.erase(it);
    }
    if (!i.up()) {
      if (done) done(not_connected(), ReasonCode::kUnspecifiedError);
      return;
    }
    mqtt::Unsubscribe u;
    u.packet_id = i.next_packet_id();
    u.filters.push_back(filter);
    i.acks[u.packet_id] = Impl::PendingAck{Impl::PendingAck::kUnsubscribe, std::move(done), filter};
    i.send(std::move(u));
  });
}

void InProcessClient::publish(std::string topic, mqtt::SharedBytes payload, QoS qos, bool retain,
                              mqtt::Properties properties, PublishCompletion done) {
  impl_->run([topic = std::move(topic), payload = std::move(payload), qos, retain,
              properties = std::move(properties), done = std::move(done)](Impl& i) mutable {
    if (Status s = mqtt::validate_topic_name(topic); !s.ok()) {
      if (done) done(s, ReasonCode::kTopicNameInvalid);
      return;
    }
    if (!i.up()) {
      if (done) done(not_connected(), ReasonCode::kUnspecifiedError);
      return;
    }
    Impl::OutPublish out;
    out.packet.topic = std::move(topic);
    out.packet.payload = std::move(payload);
    out.packet.qos = qos;
    out.packet.retain = retain;
    out.packet.properties = std::move(properties);
    out.done = std::move(done);
    i.start_publish(std::move(out));
  });
}

bool InProcessClient::connected() const { return impl_->connected.load(); }

std::string InProcessClient::client_id() const {
  std::lock_guard lock(impl_->id_mu);
  return impl_->client_id;
}

}  // namespace ganglion::broker
