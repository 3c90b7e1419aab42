// HttpSender: the seam between the webhook ("rest") sink and the network.
//
// The sink hands over a request and a completion; the sender does the I/O elsewhere and never
// blocks the caller. make_http_sender() is the real one (Boost.Beast on its own thread and
// io_context, one connection per request, http:// only); tests use a fake.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace ganglion::rules {

struct HttpCall {
  std::string method = "POST";  // upper case
  std::string url;              // http://host[:port]/path?query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  Duration timeout = std::chrono::seconds(5);  // the whole exchange
};

struct HttpReply {
  int status = 0;
  std::string body;
};

struct HttpUrl {
  std::string host;
  std::string port = "80";
  std::string target = "/";
};
// Splits an http:// URL. Errors: kInvalidArgument ("only http:// URLs are supported", ...).
Result<HttpUrl> parse_http_url(std::string_view url);

class HttpSender {
 public:
  virtual ~HttpSender() = default;
  // Sends `call`; `done` runs once, on the sender's thread, with the reply (any status) or
  // the error (kUnavailable: connect/IO failure, kTimeout, kInvalidArgument: bad URL).
  virtual void send(HttpCall call, std::function<void(Result<HttpReply>)> done) = 0;
};

// Beast client with its own thread. The destructor cancels outstanding requests (their
// completions run with kCancelled or not at all) and joins the thread.
std::unique_ptr<HttpSender> make_http_sender();

// One blocking request (for the CLI).
Result<HttpReply> http_request(const HttpCall& call);

}  // namespace ganglion::rules
