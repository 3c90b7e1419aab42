// Beast, synchronous: a CLI makes one request and exits, so no event loop is needed.
#include "cloud/api_client.h"

#include <utility>  // Boost 1.74's Asio needs this before its headers.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include <cctype>

namespace ganglion::cloud {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

template <class Stream>
Result<ApiResponse> exchange(Stream& stream, const std::string& host, std::string_view method,
                             std::string_view target, std::string_view body,
                             const std::string& token) {
  http::request<http::string_body> req(
      http::string_to_verb(beast::string_view(method.data(), method.size())),
      beast::string_view(target.data(), target.size()), 11);
  req.set(http::field::host, host);
  req.set(http::field::user_agent, "ganglion-ctl");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
  }
  req.prepare_payload();
  beast::error_code ec;
  http::write(stream, req, ec);
  if (ec) return Unavailable("write: " + ec.message());
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  http::read(stream, buffer, parser, ec);
  if (ec) return Unavailable("read: " + ec.message());
  return ApiResponse{static_cast<int>(parser.get().result_int()), parser.get().body()};
}

// Query-component encoding of a `continue` token (node ids need none today; tokens are
// opaque to clients).
std::string encode_query_value(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

Result<ApiResponse> collect_pages(const ApiGet& get, std::string_view path, std::size_t page_size) {
  using json = nlohmann::json;
  if (page_size == 0) return InvalidArgument("page size: expected at least 1");
  const std::string first = std::string(path) +
                            (path.find('?') == std::string_view::npos ? "?" : "&") +
                            "limit=" + std::to_string(page_size);
  json items = json::array();
  std::string token;
  for (std::size_t page = 1;; ++page) {
    const std::string target =
        token.empty() ? first : first + "&continue=" + encode_query_value(token);
    GANGLION_ASSIGN_OR_RETURN(ApiResponse r, get(target));
    if (r.status < 200 || r.status >= 300) return r;
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("items") || !j["items"].is_array())
      return Corruption("GET " + target + ": page " + std::to_string(page) +
                        " is not a list ({\"items\": [...]})");
    for (auto& item : j["items"]) items.push_back(std::move(item));
    auto next = j.find("continue");
    if (next == j.end() || next->is_null()) break;
    if (!next->is_string() || next->get<std::string>().empty() || next->get<std::string>() == token)
      return Corruption("GET " + target + ": page " + std::to_string(page) +
                        " has a bad or repeated continue token");
    token = next->get<std::string>();
  }
  return ApiResponse{
      200, json{{"items", std::move(items)}}.dump(-1, ' ', false, json::error_handler_t::replace)};
}

Result<ApiResponse> api_list(const ApiClientOptions& options, std::string_view path,
                             std::size_t page_size) {
  return collect_pages(
      [&](const std::string& target) { return api_request(options, "GET", target); }, path,
      page_size);
}

Result<ApiResponse> api_request(const ApiClientOptions& o, std::string_view method,
                                std::string_view target, std::string_view body) {
  std::string_view url = o.url;
  bool tls = true;
  if (url.starts_with("https://")) {
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    url.remove_prefix(7);
    tls = false;
  } else {
    return InvalidArgument("url \"" + o.url + "\": expected https://host:port");
  }
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  const auto colon = url.rfind(':');
  std::string host(url.substr(0, colon));
  std::string port =
      colon == std::string_view::npos ? (tls ? "443" : "80") : std::string(url.substr(colon + 1));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) return InvalidArgument("url \"" + o.url + "\": no host");

  asio::io_context io;
  tcp::resolver resolver(io);
  beast::error_code ec;
  auto endpoints = resolver.resolve(host, port, ec);
  if (ec) return Unavailable("cannot resolve " + host + ": " + ec.message());
  beast::tcp_stream tcp_stream(io);
  tcp_stream.expires_after(o.timeout);
  tcp_stream.connect(endpoints, ec);
  if (ec) return Unavailable("cannot connect to " + host + ":" + port + ": " + ec.message());
  if (!tls) return exchange(tcp_stream, host, method, target, body, o.token);

  ssl::context ctx(ssl::context::tls_client);
  if (o.ca_file.empty()) {
    ctx.set_default_verify_paths(ec);
  } else {
    ctx.load_verify_file(o.ca_file, ec);
    if (ec) return InvalidArgument("ca " + o.ca_file + ": " + ec.message());
  }
  ctx.set_verify_mode(ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), ctx);
  SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
  // Verify the name (DNS or IP) the certificate was issued for.
  X509_VERIFY_PARAM* param = SSL_get0_param(stream.native_handle());
  if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1)
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
  beast::get_lowest_layer(stream).expires_after(o.timeout);
  stream.handshake(ssl::stream_base::client, ec);
  if (ec) return Unavailable("tls handshake with " + host + ":" + port + ": " + ec.message());
  return exchange(stream, host, method, target, body, o.token);
}

}  // namespace ganglion::cloud
