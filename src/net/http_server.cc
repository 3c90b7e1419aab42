// Beast adapter for HttpServer: one session object per connection, callbacks on the loop
// that owns the socket. Keep-alive, a body limit and an idle timeout bound every connection.
#include <utility>  // Boost 1.74's Asio needs this before its headers.

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <optional>

#include "net/http_server.h"

namespace ganglion::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

void parse_target(std::string_view target, HttpRequest& req) {
  auto q = target.find('?');
  req.path = url_decode(target.substr(0, q));
  if (q == std::string_view::npos) return;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    auto eq = pair.find('=');
    if (!pair.empty()) {
      req.query[url_decode(pair.substr(0, eq))] =
          eq == std::string_view::npos ? "" : url_decode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(IoPool& p, std::shared_ptr<const HttpRouter> r, HttpServerOptions o)
      : pool(p), router(std::move(r)), options(std::move(o)), acceptor(pool.loop(0)) {}

  IoPool& pool;
  std::shared_ptr<const HttpRouter> router;
  HttpServerOptions options;
  tcp::acceptor acceptor;
  std::uint16_t port = 0;

  void accept();
};

namespace {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, std::shared_ptr<const HttpRouter> router,
              const HttpServerOptions& options)
      : stream_(std::move(socket)), router_(std::move(router)), options_(options) {}

  void start() { read(); }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(16 * 1024);
    stream_.expires_after(options_.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted) {
      return close();
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
    auto ep = stream_.socket().remote_endpoint(rec);
    if (!rec) req.remote = ep.address().to_string() + ":" + std::to_string(ep.port());
    HttpResponse res;
    try {
      res = router_->dispatch(req);
    } catch (const std::exception& e) {
      spdlog::error("http: handler for {} {} failed: {}", req.method, req.path, e.what());
      res = HttpResponse::error(500, "internal error");
    }
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
    http::async_write(stream_, *out,
                      [self = shared_from_this(), out, keep_alive](beast::error_code ec,
                                                                   std::size_t) {
                        if (ec || !keep_alive) return self->close();
                        self->read();
                      });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<const HttpRouter> router_;
  const HttpServerOptions options_;
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(pool.next(), [self = shared_from_this()](beast::error_code ec,
                                                                 tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      std::make_shared<HttpSession>(std::move(socket), self->router, self->options)->start();
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
