// A small HTTP/1.1 server (Boost.Beast behind this header) with a router.
//
// Handlers run on one of the IoPool's loops and must not block; they get the parsed request
// (path parameters from "{name}" segments, decoded query) and return a response. A handler
// that throws yields a 500 with the message logged, never a crash. Requests above
// max_body_bytes get 413, idle connections are closed after idle_timeout.
//
// HTTPS: set HttpServerOptions::tls (PEM files; TLS 1.2+). With a ca_file, clients *may*
// present a certificate signed by it (optional client authentication); its subject CN and
// serial then appear in the request. A certificate that does not verify fails the handshake.
//
// Streaming (server-sent events): a handler may return a response with `stream` set. The
// server then sends the status line and headers without Content-Length and with
// "Connection: close", and calls `stream` with a ResponseStream to which the application
// writes body bytes, from any thread, until either side closes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "net/io_pool.h"

namespace ganglion::net {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path and query
  std::string path;    // decoded path without the query
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> params;   // from "{name}" segments of the route
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string remote;  // "ip:port" of the peer
  // HTTPS with a verified client certificate: its subject CN and serial (lower-case hex).
  std::string peer_certificate_cn;
  std::string peer_certificate_serial;

  // The header's value, or "" when absent. `name` is lower case.
  const std::string& header(const std::string& name) const;
};

// The open body of a streaming response. Thread-safe; writes are sent in call order.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  // Queues `data` for the peer. Returns false (and drops it) once the stream is closed, or
  // when more than 1 MiB is already queued (a peer that does not read is closed).
  virtual bool write(std::string data) = 0;
  // Ends the response (closes the connection). Idempotent.
  virtual void close() = 0;
  // True once the peer went away, a write failed, or close() was called.
  virtual bool closed() const = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, `body` is ignored and the response streams (see the top of this file). Called
  // once on the connection's loop after the headers were queued; keep the stream to write.
  std::function<void(std::shared_ptr<ResponseStream>)> stream;

  static HttpResponse text(int status, std::string body);
  static HttpResponse json(int status, std::string body);
  // {"error": message} with the given status.
  static HttpResponse error(int status, std::string_view message);
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpRouter {
 public:
  // `pattern` is a path whose segments are literal or "{name}", e.g. "/rules/{id}/status".
  void add(std::string method, std::string pattern, HttpHandler handler);
  // Finds the route, fills req.params and calls it; 404 or 405 when nothing matches.
  HttpResponse dispatch(HttpRequest& req) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    HttpHandler handler;
  };
  std::vector<Route> routes_;
};

struct HttpTlsOptions {
  std::string certificate_file;  // PEM chain of the server
  std::string key_file;          // PEM private key
  std::string ca_file;           // optional: CAs whose client certificates are accepted
};

struct HttpServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free one
  std::size_t max_body_bytes = 1 << 20;
  std::chrono::seconds idle_timeout{60};
  std::optional<HttpTlsOptions> tls;  // HTTPS when set
};

class HttpServer {
 public:
  HttpServer(IoPool& pool, std::shared_ptr<const HttpRouter> router, HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting. Errors (bad address, port in use, unreadable TLS files) are
  // returned.
  Status start();
  // The bound port (useful after listening on port 0).
  std::uint16_t port() const;
  // Stops accepting; open connections end at their next read.
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Fills req.path (percent-decoded, without the query) and req.query (each "k=v" pair of
// the query, percent-decoded with '+' as a space; a key without '=' maps to ""; a repeated
// key keeps its last value) from a request target as sent ("/v1/query?metric=temp").
void parse_target(std::string_view target, HttpRequest& req);

// Splits "host:port" (also "[::1]:8080"). Errors name the text.
Result<std::pair<std::string, std::uint16_t>> split_host_port(std::string_view text);

}  // namespace ganglion::net
