// Asio adapter between sockets and the sans-I/O broker core. One StreamLink per connection,
// living on one io_context (so its handlers never run concurrently); send() may come from
// any thread and only appends encoded bytes under a small lock, then asks for one flush.
//
// Flushes are batched: while a loop thread handles what it read from one connection (a
// PUBLISH fanned out to many links), the links it sends to are collected, and at the end
// the ones on this loop are written at once and the others get one post per loop.
#include <utility>  // Boost 1.74's Asio needs this before its headers.

#include "broker/listener.h"

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket.hpp>

#include <openssl/x509.h>
#include <array>
#include <cstdio>
#include <mutex>

#include "broker/connection.h"
#include "mqtt/codec.h"
#include "net/http_server.h"

namespace ganglion::broker {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;

using TcpStream = tcp::socket;
using UnixStream = unix_socket::socket;
using TlsStream = ssl::stream<tcp::socket>;
using WsStream = websocket::stream<tcp::socket>;

template <class S>
constexpr bool kIsTls = std::is_same_v<S, TlsStream>;
template <class S>
constexpr bool kIsWs = std::is_same_v<S, WsStream>;

namespace {

// The io_context (as an execution context) an executor runs on.
asio::execution_context* loop_of(const asio::any_io_executor& executor) {
  return &asio::query(executor, asio::execution::context_as<asio::execution_context&>);
}

// A link as the flush batch sees it.
class Flushable {
 public:
  virtual ~Flushable() = default;
  // Writes what is pending. Runs on the link's loop.
  virtual void flush() = 0;
};

// The links to flush once the current read handler is done (see the file comment). One per
// thread; active only inside FlushBatch::Scope.
class FlushBatch {
 public:
  struct Due {
    asio::execution_context* loop;
    asio::any_io_executor executor;
    std::shared_ptr<Flushable> link;
  };

  // Collects flushes on this thread, then runs them. `loop` is the io_context this thread
  // runs. Scopes do not nest: an inner one (not expected) leaves the outer one in charge.
  class Scope {
   public:
    explicit Scope(asio::execution_context* loop) : batch_(mine()), owner_(!batch_.active_) {
      if (owner_) {
        batch_.active_ = true;
        batch_.loop_ = loop;
      }
    }
    ~Scope() {
      if (owner_) batch_.run();
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    FlushBatch& batch_;
    bool owner_;
  };

  // The batch of this thread when a scope is open, else null.
  static FlushBatch* active() {
    FlushBatch& b = mine();
    return b.active_ ? &b : nullptr;
  }
  void add(asio::any_io_executor executor, std::shared_ptr<Flushable> link) {
    auto* loop = loop_of(executor);
    due_.push_back({loop, std::move(executor), std::move(link)});
  }

 private:
  static FlushBatch& mine() {
    thread_local FlushBatch batch;
    return batch;
  }

  void run() {
    active_ = false;
    if (due_.empty()) return;
    std::vector<Due> due;
    due.swap(due_);
    // Links of other loops: one post per loop, in the order they were first sent to.
    for (std::size_t i = 0; i < due.size(); ++i) {
      if (!due[i].link || due[i].loop == loop_) continue;
      std::vector<std::shared_ptr<Flushable>> group;
      for (std::size_t j = i; j < due.size(); ++j) {
        if (due[j].link && due[j].loop == due[i].loop) group.push_back(std::move(due[j].link));
      }
      asio::post(due[i].executor, [group = std::move(group)] {
        for (const auto& l : group) l->flush();
      });
    }
    // Links of this loop: written now, without another trip through the loop.
    for (auto& d : due) {
      if (d.link) d.link->flush();
    }
    due.clear();
    if (due_.empty()) due_.swap(due);  // keep the capacity
  }

  bool active_ = false;
  asio::execution_context* loop_ = nullptr;
  std::vector<Due> due_;
};

std::size_t varint_size(std::size_t v) {
  return v < 128 ? 1 : v < 16'384 ? 2 : v < 2'097'152 ? 3 : 4;
}

template <class Stream>
auto& lowest_socket(Stream& s) {
  if constexpr (kIsTls<Stream> || kIsWs<Stream>) {
    return beast::get_lowest_layer(s);
  } else {
    return s;
  }
}

std::string peer_name(tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "?";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

std::optional<std::string> certificate_cn(TlsStream& s) {
  X509* cert = SSL_get1_peer_certificate(s.native_handle());
  if (!cert) return std::nullopt;
  char cn[256] = {0};
  const int n =
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  X509_free(cert);
  if (n <= 0) return std::nullopt;
  return std::string(cn, static_cast<std::size_t>(n));
}

// What the listener keeps of each link it accepted, to close what is still open when it is
// destroyed (a Link and its Connection own each other until the link closes).
class AcceptedLink {
 public:
  virtual ~AcceptedLink() = default;
  // Closes now. Only with the link's loop stopped (no handler can run concurrently).
  virtual void close_stopped() = 0;
  virtual asio::io_context& loop() = 0;
  virtual void close_on_loop() = 0;
};

template <class Stream>
class StreamLink final : public Link,
                         public AcceptedLink,
                         public Flushable,
                         public std::enable_shared_from_this<StreamLink<Stream>> {
 public:
  StreamLink(Stream stream, Broker& broker, const ListenerOptions& options)
      : stream_(std::move(stream)),
        broker_(broker),
        connect_timer_(std::make_unique<asio::steady_timer>(lowest_socket(stream_).get_executor())),
        connect_timeout_(options.connect_timeout),
        decoder_(mqtt::DecoderOptions{mqtt::Role::kServer, std::nullopt,
                                      broker.options().max_packet_size}) {}

  void start(TransportInfo info) {
    info_ = std::move(info);
    connect_timer_->expires_after(connect_timeout_);
    connect_timer_->async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (ec) return;
      if (!self->connection_ || !self->connection_->connected()) {
        spdlog::debug("mqtt {}: no CONNECT within the connect timeout", self->info_.remote);
        self->shutdown_now();
      }
    });
    if constexpr (kIsTls<Stream>) {
      stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](
                                                            boost::system::error_code ec) {
        if (ec) {
          spdlog::info("mqtt {}: TLS handshake failed: {}", self->info_.remote, ec.message());
          return self->shutdown_now();
        }
        self->info_.certificate_cn = certificate_cn(self->stream_);
        self->begin();
      });
    } else if constexpr (kIsWs<Stream>) {
      stream_.binary(true);
      stream_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
        res.set(beast::http::field::sec_websocket_protocol, "mqtt");
        res.set(beast::http::field::server, "ganglion");
      }));
      stream_.async_accept([self = this->shared_from_this()](boost::system::error_code ec) {
        if (ec) {
          spdlog::info("mqtt {}: WebSocket handshake failed: {}", self->info_.remote, ec.message());
          return self->shutdown_now();
        }
        self->begin();
      });
    } else {
      begin();
    }
  }

  bool send(const mqtt::Packet& packet) override {
    return append_encoded(mqtt::type_of(packet), [&](mqtt::ProtocolVersion v, std::string& out) {
      return mqtt::encode(packet, v, out);
    });
  }

  bool send_publish(const mqtt::Publish& publish, std::uint64_t /*stored_id*/) override {
    // Header and payload straight into the pending buffer: no Packet is built.
    return append_encoded(mqtt::PacketType::kPublish,
                          [&](mqtt::ProtocolVersion v, std::string& out) {
                            Status s = mqtt::encode_publish_header(publish, v, out);
                            if (s.ok()) out.append(publish.payload.view());
                            return s;
                          });
  }

  bool send_plain_publish(const PublishView& p) override {
    {
      std::lock_guard lock(mu_);
      if (closing_) return false;
      if (const auto remaining = plain_publish_remaining(p, version_)) {
        if (max_packet_size_ != 0 && 1 + varint_size(*remaining) + *remaining > max_packet_size_) {
          return false;  // MQTT 5: discard what the client said it cannot take
        }
        append_plain_publish(p, version_, *remaining, pending_);
        schedule_flush_locked();
        return true;
      }
    }
    return Link::send_plain_publish(p);  // not encodable: the encoder reports why
  }

  void set_protocol(mqtt::ProtocolVersion version, std::uint32_t max_packet_size) override {
    std::lock_guard lock(mu_);
    version_ = version;
    max_packet_size_ = max_packet_size;
  }

  void close() override {
    std::lock_guard lock(mu_);
    if (closing_) return;
    closing_ = true;
    schedule_flush_locked();
  }

  std::size_t queued_bytes() const override {
    std::lock_guard lock(mu_);
    return pending_.size() + writing_.size();
  }

  void close_stopped() override {
    // Breaks the Link <-> Connection cycle; the broker's side is settled by its shutdown().
    connection_.reset();
    boost::system::error_code ec;
    lowest_socket(stream_).close(ec);
  }
  asio::io_context& loop() override {
    return static_cast<asio::io_context&>(
        asio::query(lowest_socket(stream_).get_executor(), asio::execution::context));
  }
  void close_on_loop() override {
    asio::post(lowest_socket(stream_).get_executor(),
               [self = this->shared_from_this()] { self->shutdown_now(); });
  }

 private:
  template <class Encode>
  bool append_encoded(mqtt::PacketType type, Encode&& encode) {
    std::lock_guard lock(mu_);
    if (closing_) return false;
    const std::size_t before = pending_.size();
    Status s = encode(version_, pending_);
    if (!s.ok()) {
      pending_.resize(before);
      spdlog::warn("mqtt {}: cannot encode {}: {}", info_.remote, mqtt::to_string(type),
                   s.message());
      return false;
    }
    if (max_packet_size_ != 0 && pending_.size() - before > max_packet_size_) {
      pending_.resize(before);  // MQTT 5: discard what the client said it cannot take
      return false;
    }
    schedule_flush_locked();
    return true;
  }

  void begin() {
    if (shut_) return;  // the connect timer closed us while the handshake completed
    connection_ = broker_.accept(this->shared_from_this(), info_);
    read();
  }

  void read() {
    if constexpr (kIsTls<Stream> || kIsWs<Stream>) {
      // TLS and WebSocket buffer inside their layers: read into the decoder, a little at a time.
      auto buf = decoder_.prepare(4096);
      stream_.async_read_some(
          asio::buffer(buf.data(), buf.size()),
          [self = this->shared_from_this()](boost::system::error_code ec, std::size_t n) {
            if (!ec) self->decoder_.commit(n);
            self->on_read(ec, n);
          });
    } else {
      // Plain sockets: wait for readability, then read into the loop thread's buffer. An idle
      // connection thus holds no read buffer at all.
      stream_.async_wait(asio::socket_base::wait_read,
                         [self = this->shared_from_this()](boost::system::error_code ec) {
                           if (ec) return self->on_read(ec, 0);
                           thread_local std::array<char, 64 * 1024> chunk;
                           const std::size_t n = self->stream_.read_some(asio::buffer(chunk), ec);
                           if (ec == asio::error::would_block || ec == asio::error::try_again) {
                             return self->read();
                           }
                           if (!ec) self->decoder_.feed(std::string_view(chunk.data(), n));
                           self->on_read(ec, n);
                         });
    }
  }

  void on_read(boost::system::error_code ec, std::size_t n) {
    // shut_: a read that completed (with data) before shutdown_now() closed the socket and
    // dropped connection_ (e.g. the connect timer fired on a busy loop) is discarded.
    if (ec || shut_) return shutdown_now();
    broker_.counters().bytes_received->inc(n);
    FlushBatch::Scope batch(loop_of(lowest_socket(stream_).get_executor()));
    for (;;) {
      auto next = decoder_.next();
      if (!next.ok()) {
        connection_->on_decode_error(next.status());
        return;  // the connection closes the link; reads stop here
      }
      if (!*next) break;
      connection_->on_packet(std::move(**next));
      if (closing_now()) return;  // refused, disconnected or taken over: stop reading
    }
    // Plain sockets read into the loop's buffer, so what the decoder holds is only ever a
    // partial packet: drop its buffer whenever nothing is left. TLS and WebSocket read into
    // the decoder and keep a small one.
    if constexpr (kIsTls<Stream> || kIsWs<Stream>) {
      decoder_.release_idle_buffer();
    } else {
      decoder_.release_idle_buffer(0);
    }
    // Destroying the timer cancels its wait; an idle connection keeps no timer.
    if (connect_timer_ && connection_->connected()) connect_timer_.reset();
    read();
  }

  bool closing_now() {
    std::lock_guard lock(mu_);
    return closing_;
  }

  // REQUIRES: mu_ held.
  void schedule_flush_locked() {
    if (flush_posted_) return;
    flush_posted_ = true;
    if (FlushBatch* batch = FlushBatch::active()) {
      batch->add(lowest_socket(stream_).get_executor(), this->shared_from_this());
      return;
    }
    asio::post(lowest_socket(stream_).get_executor(),
               [self = this->shared_from_this()] { self->flush(); });
  }

  void flush() override {
    bool close_after = false;
    {
      std::lock_guard lock(mu_);
      flush_posted_ = false;
      if (writing_active_) return;  // on_written() flushes again
      if (pending_.empty()) {
        close_after = closing_;
      } else {
        writing_.swap(pending_);
        pending_.clear();
        writing_active_ = true;
      }
    }
    if (close_after) return shutdown_now();
    if (!writing_active_) return;
    auto on_written = [self = this->shared_from_this()](boost::system::error_code ec,
                                                        std::size_t n) { self->on_written(ec, n); };
    if constexpr (kIsWs<Stream>) {
      stream_.async_write(asio::buffer(writing_), std::move(on_written));
    } else {
      asio::async_write(stream_, asio::buffer(writing_), std::move(on_written));
    }
  }

  void on_written(boost::system::error_code ec, std::size_t n) {
    broker_.counters().bytes_sent->inc(n);
    {
      std::lock_guard lock(mu_);
      writing_active_ = false;
      writing_.clear();
      // A burst grew the buffers: give the memory back once nothing waits.
      if (writing_.capacity() > kKeepWriteBuffer) std::string().swap(writing_);
      if (pending_.empty() && pending_.capacity() > kKeepWriteBuffer) {
        std::string().swap(pending_);
      }
      if (ec) closing_ = true;
    }
    if (ec) return shutdown_now();
    flush();
  }

  void shutdown_now() {
    if (shut_) return;
    shut_ = true;
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    if (connect_timer_) connect_timer_->cancel();
    // Settle the broker side first (will published, session detached or ended), then close:
    // a client that sees the close and reconnects at once finds the session state it implies
    // (no session present after a session expiry of 0).
    if (connection_) connection_->on_closed();
    connection_.reset();  // breaks the Link <-> Connection cycle
    boost::system::error_code ec;
    auto& sock = lowest_socket(stream_);
    sock.shutdown(asio::socket_base::shutdown_both, ec);
    sock.close(ec);
  }

  static constexpr std::size_t kKeepWriteBuffer = 64 * 1024;

  Stream stream_;
  Broker& broker_;
  TransportInfo info_;
  // Until CONNECT (the slowloris limit); destroyed after it.
  std::unique_ptr<asio::steady_timer> connect_timer_;
  std::chrono::milliseconds connect_timeout_;
  mqtt::Decoder decoder_;
  std::shared_ptr<Connection> connection_;
  bool shut_ = false;

  mutable std::mutex mu_;
  mqtt::ProtocolVersion version_ = mqtt::ProtocolVersion::kV311;
  std::uint32_t max_packet_size_ = 0;
  std::string pending_;
  std::string writing_;
  bool writing_active_ = false;
  bool flush_posted_ = false;
  bool closing_ = false;
};

}  // namespace

Result<ListenerOptions> parse_listener_url(std::string_view url) {
  ListenerOptions o;
  auto sep = url.find("://");
  if (sep == std::string_view::npos) {
    return InvalidArgument("listener \"" + std::string(url) +
                           "\": expected <transport>://<address>");
  }
  o.transport = std::string(url.substr(0, sep));
  o.address = std::string(url.substr(sep + 3));
  if (o.transport != "tcp" && o.transport != "tls" && o.transport != "ws" &&
      o.transport != "unix") {
    return InvalidArgument("listener \"" + std::string(url) +
                           "\": transport must be tcp, tls, ws or unix");
  }
  if (o.transport != "unix") {
    auto hp = net::split_host_port(o.address);
    if (!hp.ok()) return hp.status().with_context("listener \"" + std::string(url) + "\"");
  } else if (o.address.empty()) {
    return InvalidArgument("listener \"" + std::string(url) + "\": missing socket path");
  }
  return o;
}

struct MqttListener::Impl : std::enable_shared_from_this<MqttListener::Impl> {
  Impl(Broker& b, net::IoPool& p, ListenerOptions o)
      : broker(b),
        pool(p),
        options(std::move(o)),
        tcp_acceptor(p.loop(0)),
        unix_acceptor(p.loop(0)),
        tls(ssl::context::tls_server) {}

  Broker& broker;
  net::IoPool& pool;
  ListenerOptions options;
  tcp::acceptor tcp_acceptor;
  unix_socket::acceptor unix_acceptor;
  ssl::context tls;
  std::uint16_t port = 0;
  bool stopped = false;
  // Every link accepted and maybe still open; only touched on the accept loop (loop 0) or
  // once it has stopped. Expired entries are pruned as the list grows.
  std::vector<std::weak_ptr<AcceptedLink>> accepted;
  std::size_t prune_at = 64;

  template <class L>
  void adopt(const std::shared_ptr<L>& link, TransportInfo info) {
    if (accepted.size() >= prune_at) {
      std::erase_if(accepted, [](const auto& w) { return w.expired(); });
      prune_at = std::max<std::size_t>(64, 2 * accepted.size());
    }
    accepted.push_back(link);
    link->start(std::move(info));
  }

  // Closes every link still open: on its loop when that loop runs, at once when it stopped
  // (after IoPool::stop(), where a posted close would never run and the Link <-> Connection
  // pair would outlive the process's shutdown).
  void close_accepted() {
    for (auto& w : accepted) {
      auto link = w.lock();
      if (!link) continue;
      if (link->loop().stopped()) {
        link->close_stopped();
      } else {
        link->close_on_loop();
      }
    }
    accepted.clear();
  }

  Status setup_tls() {
    boost::system::error_code ec;
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                    ec);
    tls.use_certificate_chain_file(options.tls.certificate_file, ec);
    if (ec)
      return InvalidArgument("tls certificate " + options.tls.certificate_file + ": " +
                             ec.message());
    tls.use_private_key_file(options.tls.key_file, ssl::context::pem, ec);
    if (ec) return InvalidArgument("tls key " + options.tls.key_file + ": " + ec.message());
    if (!options.tls.ca_file.empty()) {
      tls.load_verify_file(options.tls.ca_file, ec);
      if (ec) return InvalidArgument("tls ca " + options.tls.ca_file + ": " + ec.message());
      int mode = ssl::verify_peer;
      if (options.tls.require_client_certificate) mode |= ssl::verify_fail_if_no_peer_cert;
      tls.set_verify_mode(mode);
    } else if (options.tls.require_client_certificate) {
      return InvalidArgument("tls: require_client_certificate needs a ca_file");
    }
    return Status::Ok();
  }

  void accept_tcp() {
    tcp_acceptor.async_accept(
        pool.next(), [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
          if (self->stopped || ec == asio::error::operation_aborted) return;
          if (!ec) {
            socket.set_option(tcp::no_delay(true), ec);
            TransportInfo info{self->options.transport, peer_name(socket), std::nullopt, false};
            const auto& t = self->options.transport;
            if (t == "tls") {
              self->adopt(std::make_shared<StreamLink<TlsStream>>(
                              TlsStream(std::move(socket), self->tls), self->broker, self->options),
                          std::move(info));
            } else if (t == "ws") {
              self->adopt(std::make_shared<StreamLink<WsStream>>(WsStream(std::move(socket)),
                                                                 self->broker, self->options),
                          std::move(info));
            } else {
              self->adopt(std::make_shared<StreamLink<TcpStream>>(std::move(socket), self->broker,
                                                                  self->options),
                          std::move(info));
            }
          } else {
            spdlog::warn("mqtt {}: accept failed: {}", self->options.address, ec.message());
          }
          self->accept_tcp();
        });
  }

  void accept_unix() {
    unix_acceptor.async_accept(
        pool.next(),
        [self = shared_from_this()](boost::system::error_code ec, unix_socket::socket socket) {
          if (self->stopped || ec == asio::error::operation_aborted) return;
          if (!ec) {
            self->adopt(std::make_shared<StreamLink<UnixStream>>(std::move(socket), self->broker,
                                                                 self->options),
                        TransportInfo{"unix", self->options.address, std::nullopt, false});
          }
          self->accept_unix();
        });
  }
};

MqttListener::MqttListener(Broker& broker, net::IoPool& pool, ListenerOptions options)
    : impl_(std::make_shared<Impl>(broker, pool, std::move(options))) {}

MqttListener::~MqttListener() {
  stop();
  auto& accept_loop = static_cast<asio::io_context&>(
      asio::query(impl_->tcp_acceptor.get_executor(), asio::execution::context));
  if (accept_loop.stopped()) {
    impl_->close_accepted();
  } else {
    asio::post(accept_loop, [impl = impl_] { impl->close_accepted(); });
  }
}

Status MqttListener::start() {
  auto& o = impl_->options;
  boost::system::error_code ec;
  if (o.transport == "unix") {
    std::remove(o.address.c_str());  // a stale socket file from a previous run
    unix_socket::endpoint ep(o.address);
    impl_->unix_acceptor.open(ep.protocol(), ec);
    if (!ec) impl_->unix_acceptor.bind(ep, ec);
    if (!ec) impl_->unix_acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return Unavailable("mqtt: cannot listen on unix socket " + o.address + ": " + ec.message());
    asio::post(impl_->unix_acceptor.get_executor(), [impl = impl_] { impl->accept_unix(); });
    return Status::Ok();
  }
  if (o.transport == "tls") GANGLION_RETURN_IF_ERROR(impl_->setup_tls());
  auto hp = net::split_host_port(o.address);
  if (!hp.ok()) return hp.status().with_context("mqtt listener");
  auto address = asio::ip::make_address(hp->first, ec);
  if (ec) return InvalidArgument("mqtt listener: bad IP address \"" + hp->first + "\"");
  tcp::endpoint ep(address, hp->second);
  auto& acc = impl_->tcp_acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("mqtt: cannot listen on " + o.address + ": " + ec.message());
  impl_->port = acc.local_endpoint().port();
  asio::post(acc.get_executor(), [impl = impl_] { impl->accept_tcp(); });
  return Status::Ok();
}

void MqttListener::stop() {
  asio::post(impl_->tcp_acceptor.get_executor(), [impl = impl_] {
    impl->stopped = true;
    boost::system::error_code ec;
    impl->tcp_acceptor.close(ec);
    impl->unix_acceptor.close(ec);
  });
}

std::uint16_t MqttListener::port() const { return impl_->port; }

std::string MqttListener::url() const {
  const auto& o = impl_->options;
  if (o.transport == "unix") return "unix://" + o.address;
  const auto host = o.address.substr(0, o.address.rfind(':'));
  return o.transport + "://" + host + ":" + std::to_string(impl_->port);
}

}  // namespace ganglion::broker
