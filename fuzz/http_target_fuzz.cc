// libFuzzer target for the HTTP layer's own parsing (src/net): a request target (path and
// query string, as sent by any client) through parse_target() and a router shaped like the
// controller's and the rule manager's, and the text through split_host_port(). Beast's
// request-line and header parser is third-party and not fuzzed here.
//
// Input: the first line is the method, the rest the target; the whole input is also given to
// split_host_port(). Checks: no crash; a query key is never empty unless the pair was "=v";
// a route's parameters are filled exactly for matched routes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/http_server.h"

namespace {

using ganglion::net::HttpRequest;
using ganglion::net::HttpResponse;
using ganglion::net::HttpRouter;

[[noreturn]] void die(const char* what, std::string_view detail) {
  std::fprintf(stderr, "%s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

const HttpRouter& router() {
  static const HttpRouter r = [] {
    HttpRouter r;
    auto echo = [](const char* name) {
      return [name](const HttpRequest& req) {
        // at() throws when the router did not fill the parameter: a bug in dispatch().
        return HttpResponse::text(200, req.params.at(name));
      };
    };
    r.add("GET", "/healthz", [](const HttpRequest&) { return HttpResponse::text(200, "ok"); });
    r.add("GET", "/v1/nodes/{id}", echo("id"));
    r.add("PATCH", "/v1/nodes/{id}", echo("id"));
    r.add("GET", "/v1/nodes/{id}/twin", echo("id"));
    r.add("PATCH", "/v1/nodes/{id}/twin", echo("id"));
    r.add("DELETE", "/v1/tokens/{id}", echo("id"));
    r.add("GET", "/v1/query", [](const HttpRequest& req) {
      std::string body;
      for (const auto& [k, v] : req.query) body += k + "=" + v + "\n";
      return HttpResponse::text(200, body);
    });
    r.add("GET", "/rules/{id}/status", echo("id"));
    r.add("POST", "/rules/{id}/{action}", echo("action"));
    r.add("PUT", "/streams/{name}", echo("name"));
    r.add("GET", "/{a}/{b}/{c}/{d}", echo("d"));
    return r;
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)ganglion::net::split_host_port(input);

  HttpRequest req;
  const auto nl = input.find('\n');
  req.method =
      std::string(nl == std::string_view::npos ? std::string_view("GET") : input.substr(0, nl));
  const std::string_view target = nl == std::string_view::npos ? input : input.substr(nl + 1);
  req.target = std::string(target);
  ganglion::net::parse_target(target, req);
  if (req.path.size() > target.size()) die("decoded path longer than the target", target);
  for (const auto& [k, v] : req.query) {
    if (k.size() + v.size() > target.size()) die("decoded query longer than the target", target);
  }
  HttpResponse res;
  try {
    res = router().dispatch(req);
  } catch (const std::exception& e) {
    die("dispatch threw", e.what());
  }
  if (res.status != 200 && res.status != 404 && res.status != 405) die("unexpected status", target);
  if (res.status != 200 && !req.params.empty()) die("params filled for an unmatched route", target);
  return 0;
}
