// mqtt_load: MQTT load generator for comparing brokers (bench/mqtt/compare.sh drives it).
//
// Publishers and subscribers on one topic (fan-in, fan-out, 1->1), QoS 0/1/2, fixed payload
// size, a total rate or as fast as the broker takes it, and an end-to-end latency measured
// from a timestamp inside each payload. Or --idle N: open N idle connections and hold them.
// Prints one JSON line (two in --idle mode: "connected", then "done").
//
// Payload layout (little endian, the rest filled with 'x'):
//   [0, 8)   send time, steady clock ns (the *intended* send time at a fixed rate, so a
//            publisher that falls behind shows up as latency: no coordinated omission)
//   [8, 12)  publisher index
//   [12, 16) kMagic
//   [16, 24) sequence number per publisher, from 0
//
// Efficiency (the generator must not be the bottleneck): io_context per thread, no locks on
// the data path; PUBLISH and ack headers are encoded once with the codec and patched in
// place; writes are batched (up to kBatchBytes per write, one write in flight per
// connection); incoming PUBLISH packets are framed and read in place without allocation,
// every other packet goes through mqtt::decode_packet.
#include <utility>  // Boost 1.74's Asio needs this before its headers.

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mqtt/codec.h"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
namespace mqtt = ganglion::mqtt;

constexpr std::uint32_t kMagic = 0x6d716c64;  // "mqld"
constexpr std::size_t kStampBytes = 24;
constexpr std::size_t kBatchBytes = 64 * 1024;
constexpr std::size_t kReadChunk = 64 * 1024;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  int publishers = 1;
  int subscribers = 1;
  std::string topic = "bench/{run}/t";
  int qos = 0;
  std::size_t payload = 64;
  double rate = 0;  // messages/s published, all publishers together; 0 = as fast as possible
  double duration = 5;
  double warmup = 1;
  double drain = 3;
  double settle = 0.3;
  int inflight = 64;
  int window = 0;
  int idle = 0;
  int version = 311;
  int threads = 1;
  int keep_alive = 60;
  int connect_concurrency = 200;
  double connect_timeout = 30;
  std::string client_prefix;
  std::string label;
};

// Latency histogram with HDR-style log buckets: values below 128 ns exact, above that 64
// linear sub-buckets per power of two (at most 1.6% error). 4096 counters, merged at the end.
class Histogram {
 public:
  void record(std::uint64_t v) {
    ++counts_[index(v)];
    ++total_;
    max_ = std::max(max_, v);
    sum_ += static_cast<double>(v);
  }
  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    max_ = std::max(max_, o.max_);
    sum_ += o.sum_;
  }
  std::uint64_t total() const { return total_; }
  std::uint64_t max() const { return max_; }
  double mean() const { return total_ ? sum_ / static_cast<double>(total_) : 0; }
  // Value at quantile q (0..1), the middle of its bucket.
  double quantile(double q) const {
    if (total_ == 0) return 0;
    const auto target = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= std::max<std::uint64_t>(target, 1)) return std::min<double>(middle(i), max_);
    }
    return static_cast<double>(max_);
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < 128) return v;
    const int shift = (63 - std::countl_zero(v)) - 6;  // keeps the top 7 bits
    return 128 + static_cast<std::size_t>(shift - 1) * 64 + ((v >> shift) - 64);
  }
  static double middle(std::size_t i) {
    if (i < 128) return static_cast<double>(i);
    const std::size_t shift = (i - 128) / 64 + 1;
    const std::uint64_t m = (i - 128) % 64 + 64;
    return static_cast<double>(m << shift) + static_cast<double>((std::uint64_t{1} << shift) / 2);
  }
  std::array<std::uint64_t, 4096> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
  double sum_ = 0;
};

// State shared by all threads. Written by main before it posts work, or atomics.
struct RunState {
  Options o;
  std::string topic;   // publishers' topic
  std::string filter;  // subscribers' filter
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  std::atomic<int> subscribed{0};
  std::atomic<int> connected{0};
  std::atomic<int> failed{0};
  std::atomic<bool> publishing{false};
  std::atomic<bool> stop{false};
  std::int64_t start_ns = 0;  // publishing starts
  std::int64_t window_begin_ns = 0;
  std::int64_t window_end_ns = 0;
  double rate_per_publisher = 0;
  // End-to-end flow control (--window): per worker, per publisher, first-time deliveries to
  // that worker's subscribers. One writer each (the worker); publishers on any thread read.
  std::vector<const std::atomic<std::uint64_t>*> delivered_by_worker;
  std::uint64_t delivered(int publisher) const {
    std::uint64_t n = 0;
    for (const auto* d : delivered_by_worker) n += d[publisher].load(std::memory_order_relaxed);
    return n;
  }
  std::mutex errors_mu;
  std::vector<std::string> errors;
  std::atomic<std::uint64_t> error_count{0};

  void error(std::string what) {
    error_count.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(errors_mu);
    if (errors.size() < 8) errors.push_back(std::move(what));
  }
};

// Wire bytes encoded once with the codec; per-message fields are patched in place.
struct Templates {
  std::string publish_header;  // everything before the payload
  std::size_t packet_id_offset = 0;
  std::string payload;  // 'x' * payload size
  std::string puback, pubrec, pubrel, pubcomp, pingreq;

  static std::string encode_or_die(const mqtt::Packet& p, mqtt::ProtocolVersion v) {
    std::string out;
    if (auto s = mqtt::encode(p, v, out); !s.ok()) {
      std::fprintf(stderr, "mqtt_load: encode failed: %s\n", s.message().c_str());
      std::exit(2);
    }
    return out;
  }

  void build(const RunState& r) {
    payload.assign(r.o.payload, 'x');
    mqtt::Publish p;
    p.qos = static_cast<mqtt::QoS>(r.o.qos);
    p.topic = r.topic;
    p.packet_id = r.o.qos ? 0x0102 : 0;
    p.payload = mqtt::SharedBytes(payload);
    if (auto s = mqtt::encode_publish_header(p, r.version, publish_header); !s.ok()) {
      std::fprintf(stderr, "mqtt_load: encode failed: %s\n", s.message().c_str());
      std::exit(2);
    }
    if (r.o.qos) {
      // The packet id follows the topic; MQTT 5 then has a property length (0 here).
      packet_id_offset =
          publish_header.size() - 2 - (r.version == mqtt::ProtocolVersion::kV5 ? 1 : 0);
      if (static_cast<std::uint8_t>(publish_header[packet_id_offset]) != 0x01 ||
          static_cast<std::uint8_t>(publish_header[packet_id_offset + 1]) != 0x02) {
        std::fprintf(stderr, "mqtt_load: unexpected PUBLISH header layout\n");
        std::exit(2);
      }
    }
    auto ack = [&](const mqtt::Packet& packet) {
      std::string b = encode_or_die(packet, r.version);
      if (b.size() != 4) {
        std::fprintf(stderr, "mqtt_load: unexpected ack size %zu\n", b.size());
        std::exit(2);
      }
      return b;
    };
    puback = ack(mqtt::Puback{0x0102, mqtt::ReasonCode::kSuccess, {}});
    pubrec = ack(mqtt::Pubrec{0x0102, mqtt::ReasonCode::kSuccess, {}});
    pubrel = ack(mqtt::Pubrel{0x0102, mqtt::ReasonCode::kSuccess, {}});
    pubcomp = ack(mqtt::Pubcomp{0x0102, mqtt::ReasonCode::kSuccess, {}});
    pingreq = encode_or_die(mqtt::Pingreq{}, r.version);
  }
};

void append_ack(std::string& out, const std::string& tmpl, std::uint16_t id) {
  const std::size_t at = out.size();
  out.append(tmpl);
  out[at + 2] = static_cast<char>(id >> 8);
  out[at + 3] = static_cast<char>(id & 0xff);
}

struct WorkerStats {
  Histogram latency;
  std::uint64_t sent_total = 0;
  std::uint64_t sent_window = 0;
  std::uint64_t received_total = 0;
  std::uint64_t received_window = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t foreign = 0;  // payloads without our stamp
};

class Worker;

enum class Kind { kPublisher, kSubscriber, kIdle };

// One MQTT client connection. Lives on one Worker's io_context; never touched elsewhere
// after start().
class Client {
 public:
  Client(Worker& w, Kind kind, int index);
  void start();
  void close();
  // Publishers: append what is due (rate, window), then flush.
  void pump();
  void ping();
  Kind kind() const { return kind_; }
  bool idle_for_drain() const { return inflight_ == 0; }

 private:
  void on_connected();
  void read();
  void on_read(std::size_t n);
  bool handle_frame(std::uint8_t type_flags, const char* body, std::size_t len);
  void on_publish(std::uint8_t flags, const char* body, std::size_t len);
  void on_control(const mqtt::Packet& packet);
  void on_ack(std::uint16_t id);
  void flush();
  void fail(const std::string& what);
  void append_publish(std::int64_t stamp);

  Worker& w_;
  RunState& r_;
  Kind kind_;
  int index_;
  tcp::socket sock_;
  std::vector<char> rbuf_;
  std::size_t rlen_ = 0;
  std::string out_;
  std::string writing_;
  bool write_active_ = false;
  bool closed_ = false;
  bool closing_ = false;
  // Publisher.
  std::uint64_t seq_ = 0;
  int inflight_ = 0;
  std::uint16_t next_id_ = 0;
  std::vector<bool> in_use_;
  // Subscriber: per publisher, the highest sequence seen + 1.
  std::vector<std::uint64_t> next_seq_;
};

class Worker {
 public:
  Worker(RunState& r, const Templates& t)
      : r_(r),
        t_(t),
        ticker_(io_),
        delivered_(new std::atomic<std::uint64_t>[std::max(1, r.o.publishers)]) {
    for (int i = 0; i < std::max(1, r.o.publishers); ++i) delivered_[i].store(0);
    r.delivered_by_worker.push_back(delivered_.get());
  }

  asio::io_context& io() { return io_; }
  RunState& run() { return r_; }
  const Templates& templates() const { return t_; }
  WorkerStats& stats() { return stats_; }
  void count_delivery(std::uint32_t publisher, std::uint64_t n) {
    auto& d = delivered_[publisher];
    d.store(d.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // With --window, deliveries free room: let this thread's publishers go on at once.
  void pump_publishers() {
    for (Client* c : publishers_) c->pump();
  }
  const tcp::endpoint& endpoint() const { return endpoint_; }
  void set_endpoint(tcp::endpoint ep) { endpoint_ = ep; }

  Client& add(Kind kind, int index) {
    clients_.push_back(std::make_unique<Client>(*this, kind, index));
    if (kind == Kind::kPublisher) publishers_.push_back(clients_.back().get());
    return *clients_.back();
  }

  // Connects clients [0, n) of `kind` with at most connect_concurrency handshakes at a time.
  void connect_all(Kind kind) {
    asio::post(io_, [this, kind] {
      pending_.clear();
      for (auto& c : clients_) {
        if (c->kind() == kind) pending_.push_back(c.get());
      }
      next_pending_ = 0;
      in_handshake_ = 0;
      connect_more();
    });
  }
  void handshake_done() {
    --in_handshake_;
    connect_more();
  }

  void start_publishing() {
    asio::post(io_, [this] {
      for (Client* c : publishers_) c->pump();
      if (r_.o.rate > 0 || r_.o.window > 0) tick();
    });
  }

  // Keep-alive for long holds (idle mode, long runs).
  void start_pinging() {
    if (r_.o.keep_alive <= 0) return;
    ping_timer_ = std::make_unique<asio::steady_timer>(io_);
    ping_loop();
  }

  void close_all() {
    asio::post(io_, [this] {
      ticker_.cancel();
      if (ping_timer_) ping_timer_->cancel();
      for (auto& c : clients_) c->close();
    });
  }

  // Read from main while the loop runs: relaxed, good enough for "are we drained".
  std::uint64_t received_total_relaxed() const {
    return received_snapshot_.load(std::memory_order_relaxed);
  }
  bool publishers_drained() const { return drained_.load(std::memory_order_relaxed); }
  void publish_progress() {
    received_snapshot_.store(stats_.received_total, std::memory_order_relaxed);
    bool d = true;
    for (Client* c : publishers_) d = d && c->idle_for_drain();
    drained_.store(d, std::memory_order_relaxed);
  }

 private:
  void connect_more() {
    while (in_handshake_ < r_.o.connect_concurrency && next_pending_ < pending_.size()) {
      ++in_handshake_;
      pending_[next_pending_++]->start();
    }
  }
  void tick() {
    ticker_.expires_after(std::chrono::milliseconds(1));
    ticker_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      for (Client* c : publishers_) c->pump();
      publish_progress();
      if (!r_.stop.load(std::memory_order_relaxed) || !publishers_drained()) tick();
    });
  }
  void ping_loop() {
    ping_timer_->expires_after(std::chrono::seconds(std::max(1, r_.o.keep_alive / 2)));
    ping_timer_->async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      for (auto& c : clients_) c->ping();
      ping_loop();
    });
  }

  RunState& r_;
  const Templates& t_;
  asio::io_context io_;
  asio::steady_timer ticker_;
  std::unique_ptr<asio::steady_timer> ping_timer_;
  tcp::endpoint endpoint_;
  WorkerStats stats_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<Client*> publishers_;
  std::vector<Client*> pending_;
  std::size_t next_pending_ = 0;
  int in_handshake_ = 0;
  std::atomic<std::uint64_t> received_snapshot_{0};
  std::atomic<bool> drained_{true};
  std::unique_ptr<std::atomic<std::uint64_t>[]> delivered_;
};

Client::Client(Worker& w, Kind kind, int index)
    : w_(w), r_(w.run()), kind_(kind), index_(index), sock_(w.io()), rbuf_(kReadChunk) {
  if (kind_ == Kind::kPublisher && r_.o.qos > 0) in_use_.assign(65536, false);
  if (kind_ == Kind::kSubscriber) next_seq_.assign(static_cast<std::size_t>(r_.o.publishers), 0);
}

void Client::fail(const std::string& what) {
  if (closing_ || closed_) return;
  r_.error(what);
  if (!closed_) {
    closed_ = true;
    boost::system::error_code ec;
    sock_.close(ec);
  }
}

void Client::start() {
  sock_.async_connect(w_.endpoint(), [this](boost::system::error_code ec) {
    if (ec) {
      r_.failed.fetch_add(1);
      fail("connect: " + ec.message());
      w_.handshake_done();
      return;
    }
    boost::system::error_code ignored;
    sock_.set_option(tcp::no_delay(true), ignored);
    mqtt::Connect c;
    c.clean_start = true;
    c.keep_alive = static_cast<std::uint16_t>(r_.o.keep_alive);
    const char* k = kind_ == Kind::kPublisher ? "p" : kind_ == Kind::kSubscriber ? "s" : "i";
    c.client_id = r_.o.client_prefix + "-" + k + std::to_string(index_);
    if (r_.version == mqtt::ProtocolVersion::kV5) c.properties.receive_maximum = 65535;
    out_ += Templates::encode_or_die(c, r_.version);
    flush();
    read();
  });
}

void Client::read() {
  if (rbuf_.size() - rlen_ < kReadChunk / 4)
    rbuf_.resize(std::max(rbuf_.size() * 2, rlen_ + kReadChunk));
  sock_.async_read_some(asio::buffer(rbuf_.data() + rlen_, rbuf_.size() - rlen_),
                        [this](boost::system::error_code ec, std::size_t n) {
                          if (ec) {
                            if (closing_) {
                              closed_ = true;
                              boost::system::error_code ignored;
                              sock_.close(ignored);
                              return;
                            }
                            return fail("read: " + ec.message());
                          }
                          on_read(n);
                        });
}

void Client::on_read(std::size_t n) {
  rlen_ += n;
  std::size_t pos = 0;
  while (true) {
    // Fixed header: type/flags, then a variable byte integer of at most 4 bytes.
    if (rlen_ - pos < 2) break;
    std::uint32_t len = 0;
    std::size_t i = pos + 1;
    int shift = 0;
    bool complete = false;
    for (; i < rlen_ && i < pos + 5; ++i) {
      const auto b = static_cast<std::uint8_t>(rbuf_[i]);
      len |= static_cast<std::uint32_t>(b & 0x7f) << shift;
      shift += 7;
      if (!(b & 0x80)) {
        complete = true;
        ++i;
        break;
      }
    }
    if (!complete) {
      if (i >= pos + 5) return fail("malformed remaining length");
      break;
    }
    if (rlen_ - i < len) {
      if (rbuf_.size() < (i - pos) + len + kReadChunk) {
        // A large packet: make room so the next read can complete it.
        std::memmove(rbuf_.data(), rbuf_.data() + pos, rlen_ - pos);
        rlen_ -= pos;
        pos = 0;
        rbuf_.resize((i - pos) + len + kReadChunk);
      }
      break;
    }
    if (!handle_frame(static_cast<std::uint8_t>(rbuf_[pos]), rbuf_.data() + pos, (i - pos) + len))
      return;
    pos = i + len;
  }
  if (pos > 0) {
    std::memmove(rbuf_.data(), rbuf_.data() + pos, rlen_ - pos);
    rlen_ -= pos;
  }
  flush();
  if (!closed_) read();
  if (kind_ == Kind::kSubscriber && r_.o.window > 0) w_.pump_publishers();
}

// `frame` is the whole packet, fixed header included.
bool Client::handle_frame(std::uint8_t type_flags, const char* frame, std::size_t len) {
  if ((type_flags >> 4) == 3) {
    // PUBLISH, read in place: the hot path of every subscriber.
    std::size_t h = 1;
    while (static_cast<std::uint8_t>(frame[h]) & 0x80) ++h;
    ++h;
    on_publish(type_flags & 0x0f, frame + h, len - h);
    return !closed_;
  }
  auto packet = mqtt::decode_packet(std::string_view(frame, len), r_.version, mqtt::Role::kClient);
  if (!packet.ok()) {
    fail("decode: " + packet.status().message());
    return false;
  }
  on_control(*packet);
  return !closed_;
}

void Client::on_publish(std::uint8_t flags, const char* body, std::size_t len) {
  const int qos = (flags >> 1) & 3;
  if (len < 2) return fail("short PUBLISH");
  const std::size_t topic_len =
      (static_cast<std::uint8_t>(body[0]) << 8) | static_cast<std::uint8_t>(body[1]);
  std::size_t p = 2 + topic_len;
  std::uint16_t id = 0;
  if (qos > 0) {
    if (p + 2 > len) return fail("short PUBLISH");
    id = static_cast<std::uint16_t>((static_cast<std::uint8_t>(body[p]) << 8) |
                                    static_cast<std::uint8_t>(body[p + 1]));
    p += 2;
  }
  if (r_.version == mqtt::ProtocolVersion::kV5) {
    std::uint32_t plen = 0;
    int shift = 0;
    while (p < len) {
      const auto b = static_cast<std::uint8_t>(body[p++]);
      plen |= static_cast<std::uint32_t>(b & 0x7f) << shift;
      shift += 7;
      if (!(b & 0x80)) break;
    }
    p += plen;
  }
  if (p > len) return fail("short PUBLISH");
  const Templates& t = w_.templates();
  if (qos == 1) append_ack(out_, t.puback, id);
  if (qos == 2) append_ack(out_, t.pubrec, id);

  WorkerStats& st = w_.stats();
  const char* payload = body + p;
  const std::size_t payload_len = len - p;
  std::uint32_t magic = 0;
  if (payload_len >= kStampBytes) std::memcpy(&magic, payload + 12, 4);
  if (magic != kMagic) {
    ++st.foreign;
    return;
  }
  std::int64_t stamp;
  std::uint32_t publisher;
  std::uint64_t seq;
  std::memcpy(&stamp, payload, 8);
  std::memcpy(&publisher, payload + 8, 4);
  std::memcpy(&seq, payload + 16, 8);
  if (publisher >= next_seq_.size()) {
    ++st.foreign;
    return;
  }
  ++st.received_total;
  const std::int64_t now = now_ns();
  if (now >= r_.window_begin_ns && now < r_.window_end_ns) {
    ++st.received_window;
    st.latency.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - stamp)));
  }
  std::uint64_t& next = next_seq_[publisher];
  if (seq != next && std::getenv("MQTT_LOAD_DEBUG")) {
    std::fprintf(stderr, "sub %d: publisher %u seq %" PRIu64 " expected %" PRIu64 "\n", index_,
                 publisher, seq, next);
  }
  if (seq < next) {
    ++st.duplicated;  // MQTT keeps order per publisher: an older sequence is a resend
  } else {
    // Skipped sequences (lost messages) count as delivered for the window.
    w_.count_delivery(publisher, seq + 1 - next);
    next = seq + 1;
  }
}

void Client::on_control(const mqtt::Packet& packet) {
  const Templates& t = w_.templates();
  if (auto* a = std::get_if<mqtt::Connack>(&packet)) {
    if (static_cast<std::uint8_t>(a->reason) >= 0x80 ||
        (r_.version != mqtt::ProtocolVersion::kV5 && a->reason != mqtt::ReasonCode::kSuccess)) {
      r_.failed.fetch_add(1);
      fail("CONNACK refused: " + std::string(mqtt::to_string(a->reason)));
      w_.handshake_done();
      return;
    }
    if (kind_ == Kind::kSubscriber) {
      mqtt::Subscribe s;
      s.packet_id = 1;
      s.subscriptions.push_back(mqtt::Subscription{r_.filter, static_cast<mqtt::QoS>(r_.o.qos)});
      out_ += Templates::encode_or_die(s, r_.version);
    } else {
      r_.connected.fetch_add(1);
      w_.handshake_done();
    }
    return;
  }
  if (auto* s = std::get_if<mqtt::Suback>(&packet)) {
    for (auto reason : s->reasons) {
      if (static_cast<std::uint8_t>(reason) >= 0x80) {
        r_.failed.fetch_add(1);
        fail("SUBACK refused");
        w_.handshake_done();
        return;
      }
    }
    r_.subscribed.fetch_add(1);
    r_.connected.fetch_add(1);
    w_.handshake_done();
    return;
  }
  if (auto* a = std::get_if<mqtt::Puback>(&packet)) return on_ack(a->packet_id);
  if (auto* a = std::get_if<mqtt::Pubrec>(&packet)) {
    append_ack(out_, t.pubrel, a->packet_id);  // stays in flight until PUBCOMP
    return;
  }
  if (auto* a = std::get_if<mqtt::Pubcomp>(&packet)) return on_ack(a->packet_id);
  if (auto* a = std::get_if<mqtt::Pubrel>(&packet)) {
    append_ack(out_, t.pubcomp, a->packet_id);
    return;
  }
  if (std::holds_alternative<mqtt::Pingresp>(packet) ||
      std::holds_alternative<mqtt::Unsuback>(packet))
    return;
  if (auto* d = std::get_if<mqtt::Disconnect>(&packet)) {
    return fail("DISCONNECT from broker: " + std::string(mqtt::to_string(d->reason)));
  }
  fail("unexpected " + std::string(mqtt::to_string(mqtt::type_of(packet))));
}

void Client::on_ack(std::uint16_t id) {
  if (kind_ != Kind::kPublisher || in_use_.empty() || !in_use_[id]) {
    r_.error("ack for unknown packet id " + std::to_string(id));
    return;
  }
  in_use_[id] = false;
  --inflight_;
  pump();
}

void Client::append_publish(std::int64_t stamp) {
  const Templates& t = w_.templates();
  const std::size_t at = out_.size();
  out_.append(t.publish_header);
  if (r_.o.qos > 0) {
    do {
      next_id_ = static_cast<std::uint16_t>(next_id_ == 65535 ? 1 : next_id_ + 1);
    } while (in_use_[next_id_]);
    in_use_[next_id_] = true;
    ++inflight_;
    out_[at + t.packet_id_offset] = static_cast<char>(next_id_ >> 8);
    out_[at + t.packet_id_offset + 1] = static_cast<char>(next_id_ & 0xff);
  }
  const std::size_t p = out_.size();
  out_.append(t.payload);
  const auto publisher = static_cast<std::uint32_t>(index_);
  std::memcpy(&out_[p], &stamp, 8);
  std::memcpy(&out_[p + 8], &publisher, 4);
  std::memcpy(&out_[p + 12], &kMagic, 4);
  std::memcpy(&out_[p + 16], &seq_, 8);
  ++seq_;
  WorkerStats& st = w_.stats();
  ++st.sent_total;
  if (stamp >= r_.window_begin_ns && stamp < r_.window_end_ns) ++st.sent_window;
}

void Client::pump() {
  if (kind_ != Kind::kPublisher || closed_ || closing_) return;
  if (!r_.publishing.load(std::memory_order_relaxed)) return;
  const bool stopped = r_.stop.load(std::memory_order_relaxed);
  if (!stopped) {
    const std::int64_t now = now_ns();
    const double rate = r_.rate_per_publisher;
    // --window: messages sent but not yet received by every subscriber.
    std::uint64_t budget = ~std::uint64_t{0};
    if (r_.o.window > 0 && r_.o.subscribers > 0) {
      const std::uint64_t subs = static_cast<std::uint64_t>(r_.o.subscribers);
      const std::uint64_t room =
          static_cast<std::uint64_t>(r_.o.window) * subs + r_.delivered(index_);
      budget = room > seq_ * subs ? (room - seq_ * subs) / subs : 0;
    }
    while (out_.size() < kBatchBytes && budget > 0) {
      --budget;
      if (r_.o.qos > 0 && inflight_ >= r_.o.inflight) break;
      std::int64_t stamp;
      if (rate > 0) {
        // The intended send time of message seq_: late sends count as latency.
        stamp = r_.start_ns + static_cast<std::int64_t>(static_cast<double>(seq_) * 1e9 / rate);
        if (stamp > now) break;
      } else {
        stamp = now;
      }
      if (stamp >= r_.window_end_ns) break;
      append_publish(stamp);
    }
  }
  flush();
}

void Client::ping() {
  if (closed_ || closing_) return;
  out_ += w_.templates().pingreq;
  flush();
}

void Client::flush() {
  if (write_active_ || out_.empty() || closed_) return;
  writing_.swap(out_);
  out_.clear();
  write_active_ = true;
  asio::async_write(sock_, asio::buffer(writing_),
                    [this](boost::system::error_code ec, std::size_t) {
                      write_active_ = false;
                      writing_.clear();
                      if (ec) {
                        if (closing_) return;
                        return fail("write: " + ec.message());
                      }
                      if (closing_) {
                        if (!out_.empty()) return flush();
                        // DISCONNECT is out: the broker closes first, so TIME_WAIT stays on its
                        // side and repeated runs do not use up local ports.
                        boost::system::error_code ignored;
                        sock_.shutdown(tcp::socket::shutdown_send, ignored);
                        return;
                      }
                      if (kind_ == Kind::kPublisher) {
                        pump();
                      } else {
                        flush();
                      }
                    });
}

void Client::close() {
  if (closed_ || closing_) return;
  closing_ = true;
  out_ += Templates::encode_or_die(mqtt::Disconnect{}, r_.version);
  flush();
}

}  // namespace

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::atomic<bool> g_interrupted{false};

int main(int argc, char** argv) {
  RunState r;
  Options& o = r.o;
  CLI::App app{
      "MQTT load generator: publishers/subscribers on one topic, or idle connections; prints "
      "JSON."};
  app.add_option("--host", o.host, "Broker address (IP)");
  app.add_option("--port", o.port, "Broker TCP port");
  app.add_option("--publishers", o.publishers, "Publishing connections")
      ->check(CLI::Range(0, 100000));
  app.add_option("--subscribers", o.subscribers, "Subscribing connections")
      ->check(CLI::Range(0, 100000));
  app.add_option("--topic", o.topic,
                 "Topic of every publisher; {run} becomes the client prefix. Subscribers "
                 "subscribe to it exactly: N publishers + 1 subscriber is fan-in, 1 + M fan-out");
  app.add_option("--qos", o.qos, "QoS of publishes and subscriptions")->check(CLI::Range(0, 2));
  app.add_option("--payload", o.payload,
                 "Payload bytes (at least 24: timestamp, publisher, sequence)")
      ->check(CLI::Range(std::size_t{24}, std::size_t{1} << 24));
  app.add_option("--rate", o.rate,
                 "Messages/s published, all publishers together (0 = as fast as possible)");
  app.add_option("--duration", o.duration, "Measured seconds (idle mode: how long to hold)");
  app.add_option("--warmup", o.warmup, "Seconds of publishing before measuring");
  app.add_option("--drain", o.drain,
                 "Max seconds to wait for in-flight messages after publishing stops");
  app.add_option("--settle", o.settle, "Draining ends when nothing arrives for this many seconds");
  app.add_option("--inflight", o.inflight, "Unacknowledged QoS 1/2 messages per publisher")
      ->check(CLI::Range(1, 65000));
  app.add_option("--window", o.window,
                 "End-to-end flow control: messages per publisher sent but not yet received by "
                 "every subscriber (0 = off: open loop, the broker may queue or drop)")
      ->check(CLI::Range(0, 10000000));
  app.add_option("--idle", o.idle, "Open this many idle connections, report, hold for --duration")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--version", o.version, "MQTT protocol version")->check(CLI::IsMember({311, 5}));
  app.add_option("--threads", o.threads, "Event loop threads (io_context each)")
      ->check(CLI::Range(1, 64));
  app.add_option("--keep-alive", o.keep_alive, "CONNECT keep-alive seconds (PINGREQ every half)");
  app.add_option("--connect-concurrency", o.connect_concurrency,
                 "Connection handshakes in flight per thread");
  app.add_option("--connect-timeout", o.connect_timeout, "Seconds to wait for every connection");
  app.add_option("--client-prefix", o.client_prefix, "Client id prefix (default: random)");
  app.add_option("--label", o.label, "Copied into the JSON output");
  CLI11_PARSE(app, argc, argv);

  if (o.client_prefix.empty()) {
    std::mt19937_64 rng{std::random_device{}()};
    char buf[24];
    std::snprintf(buf, sizeof buf, "mqld%08" PRIx64, rng() & 0xffffffffu);
    o.client_prefix = buf;
  }
  r.version = o.version == 5 ? mqtt::ProtocolVersion::kV5 : mqtt::ProtocolVersion::kV311;
  r.topic = o.topic;
  for (std::size_t at; (at = r.topic.find("{run}")) != std::string::npos;)
    r.topic.replace(at, 5, o.client_prefix);
  r.filter = r.topic;
  r.rate_per_publisher = o.publishers > 0 ? o.rate / o.publishers : 0;
  if (o.idle > 0) {
    o.publishers = 0;
    o.subscribers = 0;
  }
  if (o.idle == 0 && o.publishers == 0) {
    std::fprintf(stderr, "mqtt_load: need --publishers or --idle\n");
    return 2;
  }
  if (o.qos > 0) o.inflight = std::min(o.inflight, 65000);

  Templates t;
  t.build(r);

  boost::system::error_code ec;
  const auto address = asio::ip::make_address(o.host, ec);
  if (ec) {
    std::fprintf(stderr, "mqtt_load: bad --host %s (an IP address)\n", o.host.c_str());
    return 2;
  }
  const tcp::endpoint endpoint(address, o.port);

  std::signal(SIGINT, [](int) { g_interrupted = true; });
  std::signal(SIGTERM, [](int) { g_interrupted = true; });
  std::signal(SIGPIPE, SIG_IGN);

  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < o.threads; ++i) {
    workers.push_back(std::make_unique<Worker>(r, t));
    workers.back()->set_endpoint(endpoint);
  }
  // Publishers and subscribers alternate over the threads (1->1: one on each).
  int next = 0;
  for (int i = 0; i < o.subscribers; ++i) workers[next++ % o.threads]->add(Kind::kSubscriber, i);
  for (int i = 0; i < o.publishers; ++i) workers[next++ % o.threads]->add(Kind::kPublisher, i);
  for (int i = 0; i < o.idle; ++i) workers[next++ % o.threads]->add(Kind::kIdle, i);

  std::vector<std::thread> threads;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& w : workers) {
    guards.push_back(asio::make_work_guard(w->io()));
    threads.emplace_back([&w] { w->io().run(); });
  }

  auto wait_for = [&](auto done, double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!done() && std::chrono::steady_clock::now() < until && !g_interrupted) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return done();
  };
  auto finish = [&] {
    for (auto& w : workers) w->close_all();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    guards.clear();
    for (auto& w : workers) w->io().stop();
    for (auto& th : threads) th.join();
  };
  auto errors_json = [&] {
    std::lock_guard lock(r.errors_mu);
    std::string s = "[";
    for (std::size_t i = 0; i < r.errors.size(); ++i)
      s += (i ? ",\"" : "\"") + json_escape(r.errors[i]) + "\"";
    return s + "]";
  };

  const std::int64_t t0 = now_ns();
  if (o.idle > 0) {
    for (auto& w : workers) w->connect_all(Kind::kIdle);
    wait_for([&] { return r.connected + r.failed >= o.idle; }, o.connect_timeout);
    const double elapsed = static_cast<double>(now_ns() - t0) / 1e9;
    std::printf(
        "{\"phase\":\"connected\",\"label\":\"%s\",\"idle\":%d,\"connected\":%d,\"failed\":%d,"
        "\"connect_s\":%.3f}\n",
        json_escape(o.label).c_str(), o.idle, r.connected.load(), r.failed.load(), elapsed);
    std::fflush(stdout);
    for (auto& w : workers) asio::post(w->io(), [&w] { w->start_pinging(); });
    wait_for([] { return false; }, o.duration);
    finish();
    std::printf(
        "{\"phase\":\"done\",\"label\":\"%s\",\"idle\":%d,\"connected\":%d,\"failed\":%d,"
        "\"errors\":%" PRIu64 ",\"error_messages\":%s}\n",
        json_escape(o.label).c_str(), o.idle, r.connected.load(), r.failed.load(),
        r.error_count.load(), errors_json().c_str());
    return r.connected == o.idle ? 0 : 1;
  }

  // Subscribers first, so that nothing published is missed; then publishers.
  for (auto& w : workers) w->connect_all(Kind::kSubscriber);
  wait_for([&] { return r.connected + r.failed >= o.subscribers; }, o.connect_timeout);
  for (auto& w : workers) w->connect_all(Kind::kPublisher);
  const bool all_connected =
      wait_for([&] { return r.connected + r.failed >= o.subscribers + o.publishers; },
               o.connect_timeout) &&
      r.failed == 0;
  if (!all_connected) {
    r.error("not every client connected: " + std::to_string(r.connected.load()) + " of " +
            std::to_string(o.subscribers + o.publishers));
  }
  const double connect_s = static_cast<double>(now_ns() - t0) / 1e9;
  for (auto& w : workers) asio::post(w->io(), [&w] { w->start_pinging(); });

  r.start_ns = now_ns() + 5'000'000;
  r.window_begin_ns = r.start_ns + static_cast<std::int64_t>(o.warmup * 1e9);
  r.window_end_ns = r.window_begin_ns + static_cast<std::int64_t>(o.duration * 1e9);
  std::this_thread::sleep_for(std::chrono::nanoseconds(r.start_ns - now_ns()));
  if (all_connected) {
    r.publishing = true;
    for (auto& w : workers) w->start_publishing();
    wait_for([&] { return now_ns() >= r.window_end_ns; }, o.warmup + o.duration + 1);
  }
  r.stop = true;
  // Drain: wait for acks and deliveries until nothing moves for --settle (or --drain passes).
  {
    const std::int64_t drain_until = now_ns() + static_cast<std::int64_t>(o.drain * 1e9);
    std::uint64_t last = ~std::uint64_t{0};
    std::int64_t last_change = now_ns();
    while (now_ns() < drain_until && !g_interrupted) {
      for (auto& w : workers) asio::post(w->io(), [&w] { w->publish_progress(); });
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      std::uint64_t got = 0;
      bool drained = true;
      for (auto& w : workers) {
        got += w->received_total_relaxed();
        drained = drained && w->publishers_drained();
      }
      if (got != last) {
        last = got;
        last_change = now_ns();
      } else if (drained && now_ns() - last_change > static_cast<std::int64_t>(o.settle * 1e9)) {
        break;
      }
    }
  }
  finish();

  WorkerStats total;
  for (auto& w : workers) {
    const WorkerStats& s = w->stats();
    total.latency.merge(s.latency);
    total.sent_total += s.sent_total;
    total.sent_window += s.sent_window;
    total.received_total += s.received_total;
    total.received_window += s.received_window;
    total.duplicated += s.duplicated;
    total.foreign += s.foreign;
  }
  const std::uint64_t expected = total.sent_total * static_cast<std::uint64_t>(o.subscribers);
  const std::uint64_t unique = total.received_total - total.duplicated;
  const std::uint64_t lost = expected > unique ? expected - unique : 0;
  auto us = [](double ns) { return ns / 1000.0; };
  std::printf(
      "{\"label\":\"%s\",\"version\":%d,\"publishers\":%d,\"subscribers\":%d,\"qos\":%d,"
      "\"payload\":%zu,"
      "\"rate\":%.0f,\"inflight\":%d,\"window\":%d,\"threads\":%d,\"duration_s\":%.3f,\"connect_"
      "s\":%.3f,"
      "\"sent\":%" PRIu64 ",\"sent_per_s\":%.0f,\"received\":%" PRIu64
      ",\"received_per_s\":%.0f,"
      "\"sent_total\":%" PRIu64 ",\"received_total\":%" PRIu64 ",\"expected\":%" PRIu64
      ",\"lost\":%" PRIu64 ",\"duplicated\":%" PRIu64 ",\"foreign\":%" PRIu64
      ",\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f,"
      "\"count\":%" PRIu64 "},\"errors\":%" PRIu64 ",\"error_messages\":%s}\n",
      json_escape(o.label).c_str(), o.version, o.publishers, o.subscribers, o.qos, o.payload,
      o.rate, o.inflight, o.window, o.threads, o.duration, connect_s, total.sent_window,
      static_cast<double>(total.sent_window) / o.duration, total.received_window,
      static_cast<double>(total.received_window) / o.duration, total.sent_total,
      total.received_total, expected, lost, total.duplicated, total.foreign,
      us(total.latency.quantile(0.5)), us(total.latency.quantile(0.99)),
      us(total.latency.quantile(0.999)), us(static_cast<double>(total.latency.max())),
      us(total.latency.mean()), total.latency.total(), r.error_count.load(), errors_json().c_str());
  std::fflush(stdout);
  return r.error_count.load() == 0 ? 0 : 1;
}
