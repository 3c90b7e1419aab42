#include <algorithm>
#include <cctype>
#include <charconv>

#include "base/json_string.h"
#include "net/http_server.h"

namespace ganglion::net {
namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    auto j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.emplace_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

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

}  // namespace

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

const std::string& HttpRequest::header(const std::string& name) const {
  static const std::string kEmpty;
  auto it = headers.find(name);
  return it == headers.end() ? kEmpty : it->second;
}

HttpResponse HttpResponse::text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::error(int status, std::string_view message) {
  std::string body = "{\"error\":";
  append_json_string(message, body);
  body += '}';
  return json(status, std::move(body));
}

void HttpRouter::add(std::string method, std::string pattern, HttpHandler handler) {
  routes_.push_back({std::move(method), split_path(pattern), std::move(handler)});
}

HttpResponse HttpRouter::dispatch(HttpRequest& req) const {
  const auto segments = split_path(req.path);
  bool path_matched = false;
  for (const auto& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    std::map<std::string, std::string> params;
    bool match = true;
    for (std::size_t i = 0; i < segments.size() && match; ++i) {
      const auto& want = route.segments[i];
      if (want.size() > 2 && want.front() == '{' && want.back() == '}') {
        params[want.substr(1, want.size() - 2)] = segments[i];
      } else {
        match = want == segments[i];
      }
    }
    if (!match) continue;
    path_matched = true;
    if (route.method != req.method && !(route.method == "GET" && req.method == "HEAD")) continue;
    req.params = std::move(params);
    return route.handler(req);
  }
  if (path_matched) return HttpResponse::error(405, "method not allowed");
  return HttpResponse::error(404, "no such resource: " + req.path);
}

Result<std::pair<std::string, std::uint16_t>> split_host_port(std::string_view text) {
  std::string host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return InvalidArgument("expected [ipv6]:port, found \"" + std::string(text) + "\"");
    }
    host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return InvalidArgument("expected host:port, found \"" + std::string(text) + "\"");
    }
    host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || p != port.data() + port.size() || port.empty() || value > 65535) {
    return InvalidArgument("bad port in \"" + std::string(text) + "\"");
  }
  return std::make_pair(host, static_cast<std::uint16_t>(value));
}

}  // namespace ganglion::net
