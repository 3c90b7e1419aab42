#include "rules/http_client.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <pthread.h>

#include <thread>

namespace ganglion::rules {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// One request: resolve, connect, write, read, each bounded by the call's timeout overall.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(asio::io_context& io, HttpCall call, std::function<void(Result<HttpReply>)> done)
      : resolver_(io), stream_(io), call_(std::move(call)), done_(std::move(done)) {}

  void start() {
    auto url = parse_http_url(call_.url);
    if (!url.ok()) return finish(url.status());
    req_.method_string(call_.method);
    req_.target(url->target);
    req_.version(11);
    req_.set(http::field::host, url->host + (url->port == "80" ? "" : ":" + url->port));
    req_.set(http::field::user_agent, "ganglion-rules");
    bool has_type = false;
    for (const auto& [k, v] : call_.headers) {
      req_.set(k, v);
      if (beast::iequals(k, "content-type")) has_type = true;
    }
    if (!has_type && !call_.body.empty()) req_.set(http::field::content_type, "application/json");
    req_.body() = call_.body;
    req_.prepare_payload();
    deadline_ = std::chrono::steady_clock::now() + call_.timeout;
    stream_.expires_at(deadline_);
    resolver_.async_resolve(
        url->host, url->port,
        [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type r) {
          self->on_resolve(ec, std::move(r));
        });
  }

 private:
  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (ec) return fail(ec, "resolve");
    if (std::chrono::steady_clock::now() >= deadline_)
      return finish(Timeout("http: timed out resolving"));
    stream_.async_connect(
        results, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
          if (ec) return self->fail(ec, "connect");
          http::async_write(self->stream_, self->req_, [self](beast::error_code ec, std::size_t) {
            if (ec) return self->fail(ec, "write");
            http::async_read(self->stream_, self->buffer_, self->res_,
                             [self](beast::error_code ec, std::size_t) {
                               if (ec) return self->fail(ec, "read");
                               beast::error_code ignored;
                               self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
                               self->finish(HttpReply{static_cast<int>(self->res_.result_int()),
                                                      std::move(self->res_.body())});
                             });
          });
        });
  }

  void fail(beast::error_code ec, const char* what) {
    if (ec == beast::error::timeout)
      return finish(Timeout(std::string("http: timed out (") + what + ")"));
    if (ec == asio::error::operation_aborted) return finish(Cancelled("http: cancelled"));
    finish(Unavailable(std::string("http: ") + what + ": " + ec.message()));
  }

  void finish(Result<HttpReply> r) {
    if (auto d = std::move(done_)) d(std::move(r));
  }

  tcp::resolver resolver_;
  beast::tcp_stream stream_;
  HttpCall call_;
  std::function<void(Result<HttpReply>)> done_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  beast::flat_buffer buffer_;
  std::chrono::steady_clock::time_point deadline_;
};

class BeastSender final : public HttpSender {
 public:
  BeastSender() : guard_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {
    pthread_setname_np(thread_.native_handle(), "rules-http");
  }
  ~BeastSender() override {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  void send(HttpCall call, std::function<void(Result<HttpReply>)> done) override {
    asio::post(io_, [this, call = std::move(call), done = std::move(done)]() mutable {
      std::make_shared<Exchange>(io_, std::move(call), std::move(done))->start();
    });
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
};

}  // namespace

Result<HttpUrl> parse_http_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return InvalidArgument("url '" + std::string(url) + "': only http:// URLs are supported");
  }
  std::string_view rest = url.substr(kScheme.size());
  const auto slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  HttpUrl out;
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (!out.target.empty() && out.target[0] == '?') out.target = "/" + out.target;
  if (authority.empty()) return InvalidArgument("url '" + std::string(url) + "': no host");
  if (authority.front() == '[') {  // [v6]:port
    const auto close = authority.find(']');
    if (close == std::string_view::npos)
      return InvalidArgument("url '" + std::string(url) + "': bad IPv6 address");
    out.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      out.port = std::string(authority.substr(close + 2));
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    out.host = std::string(authority.substr(0, colon));
    out.port = std::string(authority.substr(colon + 1));
  } else {
    out.host = std::string(authority);
  }
  if (out.port.empty() || out.port.find_first_not_of("0123456789") != std::string::npos ||
      out.port.size() > 5) {
    return InvalidArgument("url '" + std::string(url) + "': bad port");
  }
  return out;
}

std::unique_ptr<HttpSender> make_http_sender() { return std::make_unique<BeastSender>(); }

Result<HttpReply> http_request(const HttpCall& call) {
  asio::io_context io;
  Result<HttpReply> out = Unavailable("http: no reply");
  std::make_shared<Exchange>(io, call, [&out](Result<HttpReply> r) {
    out = std::move(r);
  })->start();
  io.run();
  return out;
}

}  // namespace ganglion::rules
