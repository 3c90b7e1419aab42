// Asio adapter for ClientSession. Everything below runs on the client's io_context; each
// connection attempt has a generation number so that handlers of a previous socket, which
// may still complete after it was closed, do nothing.
//
// The socket (or TLS stream) and the bytes being written are held by shared_ptr, and every
// handler of an operation on them holds them too: closing a connection (lost()) drops the
// client's reference, but the stream lives until its last pending operation has completed.
// An ssl::stream destroyed with an operation pending is used after free when that operation
// completes (its composed operation goes on using the stream's SSL engine): the fleet
// simulator crashed that way when the controller closed 500+ connections at once.
#include <utility>  // Boost 1.74's Asio needs this before its headers.

#include "client/mqtt_client.h"

#include <spdlog/spdlog.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <charconv>
#include <mutex>
#include <optional>

namespace ganglion::client {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

std::string_view to_string(ConnectionState s) {
  switch (s) {
    case ConnectionState::kIdle:
      return "idle";
    case ConnectionState::kConnecting:
      return "connecting";
    case ConnectionState::kConnected:
      return "connected";
    case ConnectionState::kBackingOff:
      return "backing-off";
  }
  return "?";
}

Result<BrokerAddress> parse_broker_url(std::string_view url) {
  const std::string text(url);
  BrokerAddress a;
  auto sep = url.find("://");
  if (sep == std::string_view::npos) {
    return InvalidArgument("broker URL \"" + text +
                           "\": expected tcp://host:port or tls://host:port");
  }
  const std::string_view scheme = url.substr(0, sep);
  if (scheme == "tcp" || scheme == "mqtt") {
    a.tls = false;
    a.port = 1883;
  } else if (scheme == "tls" || scheme == "ssl" || scheme == "mqtts") {
    a.tls = true;
    a.port = 8883;
  } else {
    return InvalidArgument("broker URL \"" + text + "\": scheme must be tcp or tls");
  }
  std::string_view rest = url.substr(sep + 3);
  if (auto slash = rest.find('/'); slash != std::string_view::npos) rest = rest.substr(0, slash);
  std::string_view host = rest;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {  // [v6]:port
    auto close = rest.find(']');
    if (close == std::string_view::npos)
      return InvalidArgument("broker URL \"" + text + "\": unclosed [");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return InvalidArgument("broker URL \"" + text + "\": bad port");
      port = rest.substr(close + 2);
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return InvalidArgument("broker URL \"" + text + "\": missing host");
  a.host = std::string(host);
  if (!port.empty()) {
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535) {
      return InvalidArgument("broker URL \"" + text + "\": bad port");
    }
    a.port = static_cast<std::uint16_t>(value);
  }
  return a;
}

struct MqttClient::Impl : std::enable_shared_from_this<MqttClient::Impl> {
  Impl(asio::io_context& l, Clock& c, MqttClientOptions o)
      : loop(l),
        clock(c),
        options(std::move(o)),
        // The session lives inside this object and calls back only from its methods.
        session(options.session, clock,
                SessionHandlers{.on_connected = {},
                                .on_message =
                                    [this](const mqtt::Publish& m) {
                                      if (message_handler) message_handler(m);
                                    }}),
        backoff(options.backoff),
        tls_context(ssl::context::tls_client),
        resolver(l),
        session_timer(l),
        reconnect_timer(l),
        connect_timer(l) {}

  asio::io_context& loop;
  Clock& clock;
  MqttClientOptions options;
  BrokerAddress address;
  ClientSession session;
  Backoff backoff;
  ssl::context tls_context;
  tcp::resolver resolver;
  asio::steady_timer session_timer;
  asio::steady_timer reconnect_timer;
  asio::steady_timer connect_timer;
  std::shared_ptr<tcp::socket> tcp_socket;
  std::shared_ptr<ssl::stream<tcp::socket>> tls_stream;
  std::uint64_t generation = 0;
  bool open = false;  // the transport is up (after the TLS handshake)
  bool write_active = false;
  bool half_closed = false;  // stopping: our side is shut down, waiting for the server's close
  bool stopped = false;
  bool started = false;
  std::array<char, 16 * 1024> read_buffer{};
  MessageHandler message_handler;
  StateHandler state_handler;

  mutable std::mutex stats_mu;
  ClientStats stats;  // guarded by stats_mu; refreshed on the loop after every event
  std::atomic<ConnectionState> state{ConnectionState::kIdle};

  Status setup_tls();
  void attempt();
  void on_tcp_connected(std::uint64_t gen);
  void on_open(std::uint64_t gen);
  void read(std::uint64_t gen);
  void flush();
  void after_event();
  void arm_session_timer();
  void lost(const Status& why);
  void close_transport();
  void set_state(ConnectionState s, const Status& why = Status::Ok());
  void refresh_stats();
  tcp::socket& lowest() { return tls_stream ? tls_stream->next_layer() : *tcp_socket; }
  bool has_socket() const { return tls_stream || tcp_socket; }
  // Keeps the current transport alive until a handler that holds it has run.
  std::shared_ptr<void> transport() const {
    return tls_stream ? std::shared_ptr<void>(tls_stream) : std::shared_ptr<void>(tcp_socket);
  }
};

Status MqttClient::Impl::setup_tls() {
  boost::system::error_code ec;
  tls_context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                              ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                              ssl::context::no_tlsv1_1,
                          ec);
  const auto& t = options.tls;
  if (!t.ca_file.empty()) {
    tls_context.load_verify_file(t.ca_file, ec);
    if (ec) return InvalidArgument("tls ca " + t.ca_file + ": " + ec.message());
  } else {
    tls_context.set_default_verify_paths(ec);
  }
  if (!t.certificate_file.empty()) {
    tls_context.use_certificate_chain_file(t.certificate_file, ec);
    if (ec) return InvalidArgument("tls certificate " + t.certificate_file + ": " + ec.message());
    if (t.key_file.empty()) return InvalidArgument("tls: a client certificate needs its key file");
    tls_context.use_private_key_file(t.key_file, ssl::context::pem, ec);
    if (ec) return InvalidArgument("tls key " + t.key_file + ": " + ec.message());
  }
  tls_context.set_verify_mode(t.verify ? ssl::verify_peer : ssl::verify_none);
  return Status::Ok();
}

void MqttClient::Impl::set_state(ConnectionState s, const Status& why) {
  if (state.exchange(s) == s) return;
  refresh_stats();
  if (state_handler) state_handler(s, why);
}

void MqttClient::Impl::refresh_stats() {
  const auto& c = session.counters();
  std::lock_guard lock(stats_mu);
  stats.state = state.load();
  stats.connects = c.connects;
  stats.publishes_sent = c.publishes_sent;
  stats.publishes_acked = c.publishes_acked;
  stats.messages_received = c.messages_received;
  stats.bytes_sent = c.bytes_out;
  stats.bytes_received = c.bytes_in;
  stats.inflight = session.inflight();
  stats.queued = session.queued();
}

void MqttClient::Impl::attempt() {
  if (stopped) return;
  const std::uint64_t gen = ++generation;
  set_state(ConnectionState::kConnecting);
  connect_timer.expires_after(options.connect_timeout);
  connect_timer.async_wait([self = shared_from_this(), gen](boost::system::error_code ec) {
    if (ec || gen != self->generation || self->open) return;
    self->lost(Timeout("connect timeout to " + self->options.url));
  });
  resolver.async_resolve(
      address.host, std::to_string(address.port),
      [self = shared_from_this(), gen](boost::system::error_code ec,
                                       tcp::resolver::results_type results) {
        if (gen != self->generation) return;
        if (ec)
          return self->lost(Unavailable("resolve " + self->address.host + ": " + ec.message()));
        self->tcp_socket = std::make_shared<tcp::socket>(self->loop);
        asio::async_connect(*self->tcp_socket, results,
                            [self, gen, keep = self->tcp_socket](boost::system::error_code ec2,
                                                                 const tcp::endpoint&) {
                              if (gen != self->generation) return;
                              if (ec2)
                                return self->lost(Unavailable("connect " + self->options.url +
                                                              ": " + ec2.message()));
                              self->on_tcp_connected(gen);
                            });
      });
}

void MqttClient::Impl::on_tcp_connected(std::uint64_t gen) {
  boost::system::error_code ec;
  tcp_socket->set_option(tcp::no_delay(true), ec);
  if (!address.tls) return on_open(gen);
  tls_stream = std::make_shared<ssl::stream<tcp::socket>>(std::move(*tcp_socket), tls_context);
  tcp_socket.reset();
  const std::string name = options.tls.server_name.empty() ? address.host : options.tls.server_name;
  // SNI, so a server hosting several names presents the right certificate.
  SSL_set_tlsext_host_name(tls_stream->native_handle(), name.c_str());
  if (options.tls.verify) tls_stream->set_verify_callback(ssl::host_name_verification(name));
  tls_stream->async_handshake(
      ssl::stream_base::client,
      [self = shared_from_this(), gen, keep = tls_stream](boost::system::error_code ec2) {
        if (gen != self->generation) return;
        if (ec2)
          return self->lost(
              Unavailable("TLS handshake with " + self->options.url + ": " + ec2.message()));
        self->on_open(gen);
      });
}

void MqttClient::Impl::on_open(std::uint64_t gen) {
  open = true;
  connect_timer.cancel();
  session.on_transport_open();
  read(gen);
  after_event();
}

void MqttClient::Impl::read(std::uint64_t gen) {
  auto handler = [self = shared_from_this(), gen, keep = transport()](boost::system::error_code ec,
                                                                      std::size_t n) {
    if (gen != self->generation) return;
    if (ec)
      return self->lost(
          Unavailable("connection to " + self->options.url + " lost: " + ec.message()));
    self->session.on_bytes(std::string_view(self->read_buffer.data(), n));
    self->after_event();
    if (gen == self->generation && self->open) self->read(gen);
  };
  if (tls_stream) {
    tls_stream->async_read_some(asio::buffer(read_buffer), std::move(handler));
  } else {
    tcp_socket->async_read_some(asio::buffer(read_buffer), std::move(handler));
  }
}

// After anything that may have changed the session: state, output, timers, close requests.
void MqttClient::Impl::after_event() {
  if (open && session.state() == ClientSession::State::kConnected &&
      state.load() != ConnectionState::kConnected) {
    backoff.reset();
    set_state(ConnectionState::kConnected);
  }
  flush();
  arm_session_timer();
  refresh_stats();
}

void MqttClient::Impl::flush() {
  if (!open || write_active) return;
  std::string out = session.take_output();
  if (out.empty()) {
    if (session.close_requested()) {
      if (stopped) {  // see stop(): wait for the server's close
        if (!half_closed) {
          half_closed = true;
          boost::system::error_code ec;
          lowest().shutdown(tcp::socket::shutdown_send, ec);
        }
        return;
      }
      const Status why = session.close_reason();
      lost(why.ok() ? Cancelled("closed by the client") : why);
    }
    return;
  }
  write_active = true;
  auto bytes = std::make_shared<const std::string>(std::move(out));
  const std::uint64_t gen = generation;
  auto handler = [self = shared_from_this(), gen, keep = transport(), bytes](
                     boost::system::error_code ec, std::size_t) {
    if (gen != self->generation) return;
    self->write_active = false;
    if (ec) return self->lost(Unavailable("write to " + self->options.url + ": " + ec.message()));
    self->flush();
    self->refresh_stats();
  };
  if (tls_stream) {
    asio::async_write(*tls_stream, asio::buffer(*bytes), std::move(handler));
  } else {
    asio::async_write(*tcp_socket, asio::buffer(*bytes), std::move(handler));
  }
}

void MqttClient::Impl::arm_session_timer() {
  auto deadline = session.next_deadline();
  if (!deadline) {
    session_timer.cancel();
    return;
  }
  const auto wait = std::max(Duration::zero(), *deadline - clock.now());
  session_timer.expires_after(std::chrono::duration_cast<std::chrono::milliseconds>(wait) +
                              std::chrono::milliseconds(1));
  const std::uint64_t gen = generation;
  session_timer.async_wait([self = shared_from_this(), gen](boost::system::error_code ec) {
    if (ec || gen != self->generation) return;
    self->session.on_timer();
    self->after_event();
  });
}

void MqttClient::Impl::close_transport() {
  boost::system::error_code ec;
  if (has_socket()) {
    auto& s = lowest();
    s.shutdown(tcp::socket::shutdown_both, ec);
    s.close(ec);
  }
  tls_stream.reset();
  tcp_socket.reset();
  open = false;
  write_active = false;
  half_closed = false;
}

void MqttClient::Impl::lost(const Status& why) {
  ++generation;  // every pending handler of this connection is now stale
  resolver.cancel();
  connect_timer.cancel();
  session_timer.cancel();
  close_transport();
  session.on_transport_closed();
  {
    std::lock_guard lock(stats_mu);
    stats.last_error = why.ok() ? std::string() : why.to_string();
  }
  if (stopped) {
    set_state(ConnectionState::kIdle, Cancelled("client stopped"));
    session.cancel_all(Cancelled("mqtt client stopped"));
    refresh_stats();
    return;
  }
  const auto delay = backoff.next();
  {
    std::lock_guard lock(stats_mu);
    ++stats.reconnects;
  }
  spdlog::info("mqtt client {}: {}; reconnecting in {} ms", options.url, why.to_string(),
               delay.count());
  set_state(ConnectionState::kBackingOff, why);
  reconnect_timer.expires_after(delay);
  reconnect_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->stopped) return;
    self->attempt();
  });
}

// ---------------------------------------------------------------------------------------------

MqttClient::MqttClient(asio::io_context& loop, Clock& clock, MqttClientOptions options)
    : impl_(std::make_shared<Impl>(loop, clock, std::move(options))) {}

MqttClient::~MqttClient() {
  impl_->message_handler = nullptr;
  impl_->state_handler = nullptr;
  stop();
}

void MqttClient::on_message(MessageHandler handler) { impl_->message_handler = std::move(handler); }
void MqttClient::on_state(StateHandler handler) { impl_->state_handler = std::move(handler); }

Status MqttClient::start() {
  if (impl_->started) return FailedPrecondition("mqtt client already started");
  GANGLION_ASSIGN_OR_RETURN(impl_->address, parse_broker_url(impl_->options.url));
  if (impl_->address.tls) GANGLION_RETURN_IF_ERROR(impl_->setup_tls());
  impl_->started = true;
  asio::post(impl_->loop, [impl = impl_] { impl->attempt(); });
  return Status::Ok();
}

void MqttClient::stop() {
  asio::post(impl_->loop, [impl = impl_] {
    if (impl->stopped) return;
    impl->stopped = true;
    impl->reconnect_timer.cancel();
    if (impl->open && impl->session.state() == ClientSession::State::kConnected) {
      // A clean end: what the session still holds goes out after any write in progress, the
      // DISCONNECT last; then flush() half-closes and the server's close (EOF) ends it.
      // Closing at once instead would reset the connection while acknowledgements are unread,
      // and a reset makes the server drop bytes it has received but not yet read. A server
      // that does not close gets two seconds.
      impl->session.disconnect();
      // Completions run now, as documented; the bytes already written out still go.
      impl->session.cancel_all(Cancelled("mqtt client stopped"));
      impl->refresh_stats();
      impl->connect_timer.expires_after(std::chrono::seconds(2));
      impl->connect_timer.async_wait([impl, gen = impl->generation](boost::system::error_code ec) {
        if (ec || gen != impl->generation) return;
        impl->lost(Cancelled("client stopped"));
      });
      impl->flush();
      return;
    }
    impl->lost(Cancelled("client stopped"));
  });
}

void MqttClient::publish(mqtt::Publish message, PublishCompletion done) {
  asio::post(impl_->loop, [impl = impl_, m = std::move(message), done = std::move(done)]() mutable {
    if (impl->stopped) {
      if (done) done(Cancelled("mqtt client stopped"), mqtt::ReasonCode::kUnspecifiedError);
      return;
    }
    impl->session.publish(std::move(m), std::move(done));
    impl->after_event();
  });
}

void MqttClient::publish(std::string topic, std::string payload, mqtt::QoS qos, bool retain,
                         PublishCompletion done) {
  mqtt::Publish m;
  m.topic = std::move(topic);
  m.payload = mqtt::SharedBytes(std::move(payload));
  m.qos = qos;
  m.retain = retain;
  publish(std::move(m), std::move(done));
}

void MqttClient::subscribe(std::vector<mqtt::Subscription> subscriptions, AckCompletion done,
                           mqtt::Properties properties) {
  asio::post(impl_->loop, [impl = impl_, s = std::move(subscriptions), done = std::move(done),
                           p = std::move(properties)]() mutable {
    impl->session.subscribe(std::move(s), std::move(done), std::move(p));
    impl->after_event();
  });
}

void MqttClient::unsubscribe(std::vector<std::string> filters, AckCompletion done) {
  asio::post(impl_->loop, [impl = impl_, f = std::move(filters), done = std::move(done)]() mutable {
    impl->session.unsubscribe(std::move(f), std::move(done));
    impl->after_event();
  });
}

ConnectionState MqttClient::state() const { return impl_->state.load(); }

ClientStats MqttClient::stats() const {
  std::lock_guard lock(impl_->stats_mu);
  ClientStats s = impl_->stats;
  s.state = impl_->state.load();
  return s;
}

}  // namespace ganglion::client
