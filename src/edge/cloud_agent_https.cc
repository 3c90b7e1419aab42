#include "edge/cloud_agent_https.h"

#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <memory>

namespace ganglion::edge {
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

Result<HttpsUrl> parse_https_url(std::string_view url) {
  constexpr std::string_view kScheme = "https://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return InvalidArgument("URL must start with https://: '" + std::string(url) + "'");
  }
  std::string_view rest = url.substr(kScheme.size());
  HttpsUrl out;
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    out.path = std::string(rest.substr(slash));
    while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  }
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos)
      return InvalidArgument("bad IPv6 literal in '" + std::string(url) + "'");
    out.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':')
        return InvalidArgument("bad authority in '" + std::string(url) + "'");
      port_text = authority.substr(close + 2);
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (out.host.empty()) return InvalidArgument("no host in '" + std::string(url) + "'");
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      return InvalidArgument("bad port in '" + std::string(url) + "'");
    }
    out.port = static_cast<std::uint16_t>(port);
  }
  return out;
}

namespace {

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::string peer_chain(SSL* ssl) {
  std::string out;
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  if (chain == nullptr) return out;
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (PEM_write_bio_X509(bio, sk_X509_value(chain, i)) == 1) {
      char* data = nullptr;
      const long n = BIO_get_mem_data(bio, &data);
      if (n > 0) out.append(data, static_cast<std::size_t>(n));
    }
    BIO_free(bio);
  }
  return out;
}

Status setup_context(ssl::context& ctx, const HttpsRequest& r) {
  boost::system::error_code ec;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                  ec);
  if (!r.ca_pem.empty()) {
    ctx.add_certificate_authority(asio::buffer(r.ca_pem), ec);
    if (ec) return InvalidArgument("controller CA does not load: " + ec.message());
    ctx.set_verify_mode(ssl::verify_peer);
  } else {
    ctx.set_verify_mode(ssl::verify_none);
  }
  if (!r.certificate_pem.empty()) {
    ctx.use_certificate_chain(asio::buffer(r.certificate_pem), ec);
    if (ec) return InvalidArgument("client certificate does not load: " + ec.message());
    ctx.use_private_key(asio::buffer(r.key_pem), ssl::context::pem, ec);
    if (ec) return InvalidArgument("client key does not load: " + ec.message());
  }
  return Status::Ok();
}

// Everything one exchange needs, alive until the coroutine ends.
struct Exchange {
  explicit Exchange(asio::io_context& loop) : ctx(ssl::context::tls_client), resolver(loop) {}
  ssl::context ctx;
  tcp::resolver resolver;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream;
};

asio::awaitable<void> run_exchange(asio::io_context& loop, HttpsRequest r, HttpsUrl url,
                                   std::shared_ptr<Exchange> x, HttpsCompletion done) {
  const auto deadline = std::chrono::steady_clock::now() + r.timeout;
  const char* stage = "resolve";
  Result<HttpsResponse> result = Unavailable("not sent");
  try {
    auto results =
        co_await x->resolver.async_resolve(url.host, std::to_string(url.port), asio::use_awaitable);
    x->stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(loop, x->ctx);
    auto& lowest = beast::get_lowest_layer(*x->stream);
    stage = "connect";
    lowest.expires_at(deadline);
    co_await lowest.async_connect(results, asio::use_awaitable);
    if (!is_ip_literal(url.host))
      SSL_set_tlsext_host_name(x->stream->native_handle(), url.host.c_str());
    if (!r.ca_pem.empty()) x->stream->set_verify_callback(ssl::host_name_verification(url.host));
    stage = "TLS handshake";
    lowest.expires_at(deadline);
    co_await x->stream->async_handshake(ssl::stream_base::client, asio::use_awaitable);
    HttpsResponse response;
    response.peer_chain_pem = peer_chain(x->stream->native_handle());

    http::request<http::string_body> req;
    req.method(http::string_to_verb(r.method));
    req.target(url.path.empty() ? "/" : url.path);
    req.version(11);
    req.set(http::field::host, url.host + ":" + std::to_string(url.port));
    req.set(http::field::user_agent, "ganglion-edge");
    req.set(http::field::accept, "application/json");
    req.set(http::field::connection, "close");
    if (!r.bearer.empty()) req.set(http::field::authorization, "Bearer " + r.bearer);
    if (!r.body.empty()) req.set(http::field::content_type, "application/json");
    req.body() = r.body;
    req.prepare_payload();
    stage = "write";
    lowest.expires_at(deadline);
    co_await http::async_write(*x->stream, req, asio::use_awaitable);

    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(r.max_body_bytes);
    stage = "read";
    lowest.expires_at(deadline);
    co_await http::async_read(*x->stream, buffer, parser, asio::use_awaitable);
    response.status = static_cast<int>(parser.get().result_int());
    response.body = std::move(parser.get().body());
    result = std::move(response);
  } catch (const boost::system::system_error& e) {
    const std::string where = std::string(stage) + " " + r.url + ": ";
    if (e.code() == beast::error::timeout) {
      result = Timeout(where + "no answer within " + std::to_string(r.timeout.count()) + " ms");
    } else {
      result = Unavailable(where + e.code().message());
    }
  } catch (const std::exception& e) {
    result = Unavailable(std::string(stage) + " " + r.url + ": " + e.what());
  }
  if (x->stream) {
    boost::system::error_code ignored;
    beast::get_lowest_layer(*x->stream).socket().close(ignored);
  }
  done(std::move(result));
}

}  // namespace

void https_request(asio::io_context& loop, HttpsRequest request, HttpsCompletion done) {
  auto url = parse_https_url(request.url);
  if (!url.ok()) {
    asio::post(loop, [done = std::move(done), s = url.status()] { done(s); });
    return;
  }
  auto x = std::make_shared<Exchange>(loop);
  if (Status s = setup_context(x->ctx, request); !s.ok()) {
    asio::post(loop, [done = std::move(done), s] { done(s); });
    return;
  }
  asio::co_spawn(loop, run_exchange(loop, std::move(request), std::move(*url), x, std::move(done)),
                 asio::detached);
}

Result<HttpsResponse> https_request_sync(HttpsRequest request) {
  asio::io_context loop;
  Result<HttpsResponse> out = Unavailable("no answer");
  https_request(loop, std::move(request), [&out](Result<HttpsResponse> r) { out = std::move(r); });
  loop.run();
  return out;
}

}  // namespace ganglion::edge
