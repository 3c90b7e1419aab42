// A small HTTPS/1.1 client for the controller's enrolment API (Boost.Beast + asio::ssl, kept
// inside cloud_agent_https.cc). One request per connection; JSON bodies; no redirects, no
// proxies, no compression.
//
// Trust: with `ca_pem` set, the server must present a certificate chaining to it and valid
// for the URL's host (DNS name or IP address in subjectAltName), TLS 1.2 or later. With
// `ca_pem` empty nothing is verified ("trust on first use"): the caller must check what it
// got (see peer_chain_pem) and should pin it. Client certificate (mutual TLS) optional.
//
// Thread: the request runs on `loop`; `done` runs there exactly once, unless the loop stops
// first (then it never runs and is destroyed with the loop's pending handlers). Errors:
// kInvalidArgument (URL, PEM), kUnavailable (resolve, connect, TLS, I/O, a response that does
// not parse), kTimeout (the whole exchange took longer than `timeout`). An HTTP error status
// is not an error here: it is in HttpsResponse::status.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace boost::asio {
class io_context;
}

namespace ganglion::edge {

struct HttpsUrl {
  std::string host;
  std::uint16_t port = 443;
  std::string path;  // "" or "/prefix" without a trailing slash
};
// "https://host[:port][/prefix]"; IPv6 literals in brackets. Errors: kInvalidArgument.
Result<HttpsUrl> parse_https_url(std::string_view url);

struct HttpsRequest {
  std::string method = "POST";
  std::string url;              // https://host:port/path
  std::string body;             // sent as application/json when not empty
  std::string bearer;           // Authorization: Bearer <bearer> when not empty
  std::string ca_pem;           // CAs to verify the server against; empty: no verification
  std::string certificate_pem;  // client certificate for mutual TLS (optional)
  std::string key_pem;
  std::chrono::milliseconds timeout{15'000};
  std::size_t max_body_bytes = 1 << 20;
};

struct HttpsResponse {
  int status = 0;
  std::string body;
  std::string peer_chain_pem;  // the certificates the server presented, leaf first
};

using HttpsCompletion = std::function<void(Result<HttpsResponse>)>;

void https_request(boost::asio::io_context& loop, HttpsRequest request, HttpsCompletion done);

// Blocking convenience for tools: runs the request on a private io_context.
Result<HttpsResponse> https_request_sync(HttpsRequest request);

}  // namespace ganglion::edge
