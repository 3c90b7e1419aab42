// Beast adapter for HttpServer: one session object per connection (plain or TLS), callbacks on
// the loop that owns the socket. Keep-alive, a body limit and an idle timeout bound every
// connection.
#include <utility>  // Boost 1.74's Asio needs this before its headers.

#include <openssl/bn.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <atomic>
#include <deque>
#include <optional>

#include "net/http_server.h"

namespace ganglion::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
namespace ssl = asio::ssl;

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(IoPool& p, std::shared_ptr<const HttpRouter> r, HttpServerOptions o)
      : pool(p),
        router(std::move(r)),
        options(std::move(o)),
        acceptor(pool.loop(0)),
        tls(ssl::context::tls_server) {}

  IoPool& pool;
  std::shared_ptr<const HttpRouter> router;
  HttpServerOptions options;
  tcp::acceptor acceptor;
  ssl::context tls;
  std::uint16_t port = 0;

  Status setup_tls();
  void accept();
};

namespace {

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

beast::tcp_stream& lowest(beast::tcp_stream& s) { return s; }
beast::tcp_stream& lowest(TlsStream& s) { return s.next_layer(); }

// Subject CN and serial of the verified client certificate, if any.
void peer_certificate(beast::tcp_stream&, HttpRequest&) {}
void peer_certificate(TlsStream& s, HttpRequest& req) {
  X509* cert = SSL_get1_peer_certificate(s.native_handle());
  if (!cert) return;
  if (SSL_get_verify_result(s.native_handle()) == X509_V_OK) {
    char cn[256] = {0};
    const int n =
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    if (n > 0) req.peer_certificate_cn.assign(cn, static_cast<std::size_t>(n));
    if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr)) {
      if (char* hex = BN_bn2hex(bn)) {
        req.peer_certificate_serial = hex;
        for (auto& c : req.peer_certificate_serial) {
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        OPENSSL_free(hex);
      }
      BN_free(bn);
    }
  }
  X509_free(cert);
}

constexpr std::size_t kMaxStreamQueue = 1 << 20;

template <class Stream>
class HttpSession : public ResponseStream,
                    public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  HttpSession(Stream stream, std::shared_ptr<const HttpRouter> router,
              const HttpServerOptions& options)
      : stream_(std::move(stream)), router_(std::move(router)), options_(options) {}

  void start() {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      lowest(stream_).expires_after(std::chrono::seconds(10));
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->close_socket();
                                self->read();
                              });
    } else {
      read();
    }
  }

  // ResponseStream
  bool write(std::string data) override {
    if (closed_) return false;
    if (queued_bytes_.fetch_add(data.size()) + data.size() > kMaxStreamQueue) {
      queued_bytes_.fetch_sub(data.size());
      close();
      return false;
    }
    asio::post(lowest(stream_).get_executor(),
               [self = this->shared_from_this(), d = std::move(data)]() mutable {
                 self->out_.push_back(std::move(d));
                 self->flush();
               });
    return true;
  }
  void close() override {
    if (closed_.exchange(true)) return;
    asio::post(lowest(stream_).get_executor(),
               [self = this->shared_from_this()] { self->close_socket(); });
  }
  bool closed() const override { return closed_; }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(16 * 1024);
    lowest(stream_).expires_after(options_.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted) {
      return close_socket();
    }
    if (ec == http::error::body_limit) {
      return send(HttpResponse::error(413, "request body too large"), false, 11);
    }
    if (ec) {
      return send(HttpResponse::error(400, "bad request: " + ec.message()), false, 11);
    }
    auto& msg = parser_->get();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    parse_target(req.target, req);
    for (const auto& field : msg) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers[name] = std::string(field.value());
    }
    req.body = std::move(msg.body());
    beast::error_code rec;
    auto ep = lowest(stream_).socket().remote_endpoint(rec);
    if (!rec) req.remote = ep.address().to_string() + ":" + std::to_string(ep.port());
    peer_certificate(stream_, req);
    HttpResponse res;
    try {
      res = router_->dispatch(req);
    } catch (const std::exception& e) {
      spdlog::error("http: handler for {} {} failed: {}", req.method, req.path, e.what());
      res = HttpResponse::error(500, "internal error");
    }
    if (res.stream && req.method != "HEAD") return start_stream(std::move(res));
    if (req.method == "HEAD") res.body.clear();
    send(std::move(res), msg.keep_alive(), msg.version());
  }

  void send(HttpResponse res, bool keep_alive, unsigned version) {
    auto out = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(res.status), version);
    out->set(http::field::server, "ganglion");
    out->set(http::field::content_type, res.content_type);
    for (auto& [k, v] : res.headers) out->set(k, v);
    out->body() = std::move(res.body);
    out->keep_alive(keep_alive);
    out->prepare_payload();
    http::async_write(
        stream_, *out,
        [self = this->shared_from_this(), out, keep_alive](beast::error_code ec, std::size_t) {
          if (ec || !keep_alive) return self->close_socket();
          self->read();
        });
  }

  // Streaming: the head by hand (no Content-Length: the body ends when the connection does),
  // then whatever the application writes. A 1-byte read watches for the peer going away.
  void start_stream(HttpResponse res) {
    lowest(stream_).expires_never();
    std::string head = "HTTP/1.1 " + std::to_string(res.status) + " " +
                       std::string(http::obsolete_reason(static_cast<http::status>(res.status))) +
                       "\r\nServer: ganglion\r\nContent-Type: " + res.content_type +
                       "\r\nCache-Control: no-cache\r\nConnection: close\r\n";
    for (auto& [k, v] : res.headers) head += k + ": " + v + "\r\n";
    head += "\r\n";
    queued_bytes_ += head.size();
    out_.push_back(std::move(head));
    flush();
    watch_peer();
    auto self = this->shared_from_this();
    res.stream(std::static_pointer_cast<ResponseStream>(self));
  }

  void watch_peer() {
    stream_.async_read_some(asio::buffer(peek_, sizeof peek_),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec) {
                                self->closed_ = true;
                                return self->close_socket();
                              }
                              self->watch_peer();  // a client has nothing to say here: ignore
                            });
  }

  void flush() {
    if (writing_ || out_.empty()) return;
    if (closed_) {
      out_.clear();
      return;
    }
    writing_ = true;
    auto chunk = std::make_shared<std::string>(std::move(out_.front()));
    out_.pop_front();
    asio::async_write(stream_, asio::buffer(*chunk),
                      [self = this->shared_from_this(), chunk](beast::error_code ec, std::size_t) {
                        self->writing_ = false;
                        self->queued_bytes_.fetch_sub(chunk->size());
                        if (ec) {
                          self->closed_ = true;
                          return self->close_socket();
                        }
                        self->flush();
                      });
  }

  void close_socket() {
    beast::error_code ec;
    lowest(stream_).socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest(stream_).socket().close(ec);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<const HttpRouter> router_;
  const HttpServerOptions options_;
  // Streaming state, touched on the connection's loop only (except the atomics).
  std::deque<std::string> out_;
  bool writing_ = false;
  char peek_[1];
  std::atomic<bool> closed_{false};
  std::atomic<std::size_t> queued_bytes_{0};
};

}  // namespace

Status HttpServer::Impl::setup_tls() {
  const auto& t = *options.tls;
  beast::error_code ec;
  tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                  ec);
  tls.use_certificate_chain_file(t.certificate_file, ec);
  if (ec) return InvalidArgument("https certificate " + t.certificate_file + ": " + ec.message());
  tls.use_private_key_file(t.key_file, ssl::context::pem, ec);
  if (ec) return InvalidArgument("https key " + t.key_file + ": " + ec.message());
  if (!t.ca_file.empty()) {
    tls.load_verify_file(t.ca_file, ec);
    if (ec) return InvalidArgument("https ca " + t.ca_file + ": " + ec.message());
    tls.set_verify_mode(ssl::verify_peer);  // optional: no verify_fail_if_no_peer_cert
    // A session id context is required once client certificates are requested.
    static const unsigned char kContext[] = "ganglion-https";
    SSL_CTX_set_session_id_context(tls.native_handle(), kContext, sizeof kContext - 1);
  }
  return Status::Ok();
}

void HttpServer::Impl::accept() {
  acceptor.async_accept(pool.next(), [self = shared_from_this()](beast::error_code ec,
                                                                 tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      if (self->options.tls) {
        std::make_shared<HttpSession<TlsStream>>(
            TlsStream(beast::tcp_stream(std::move(socket)), self->tls), self->router, self->options)
            ->start();
      } else {
        std::make_shared<HttpSession<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)),
                                                         self->router, self->options)
            ->start();
      }
    } else {
      spdlog::warn("http: accept failed: {}", ec.message());
    }
    self->accept();
  });
}

HttpServer::HttpServer(IoPool& pool, std::shared_ptr<const HttpRouter> router,
                       HttpServerOptions options)
    : impl_(std::make_shared<Impl>(pool, std::move(router), std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  if (impl_->options.tls) GANGLION_RETURN_IF_ERROR(impl_->setup_tls());
  auto hp = split_host_port(impl_->options.listen);
  if (!hp.ok()) return hp.status().with_context("http listen address");
  beast::error_code ec;
  auto address = asio::ip::make_address(hp->first, ec);
  if (ec) return InvalidArgument("http listen address: bad IP \"" + hp->first + "\"");
  tcp::endpoint ep(address, hp->second);
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Unavailable("http: cannot listen on " + impl_->options.listen + ": " + ec.message());
  }
  impl_->port = acc.local_endpoint().port();
  asio::post(acc.get_executor(), [impl = impl_] { impl->accept(); });
  return Status::Ok();
}

std::uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::stop() {
  asio::post(impl_->acceptor.get_executor(), [impl = impl_] {
    beast::error_code ec;
    impl->acceptor.close(ec);
  });
}

}  // namespace ganglion::net
