// A small synchronous HTTPS client for the controller's REST API (`ganglion ctl`, and the
// edge's enrolment later). One request per connection; the server certificate is verified
// against `ca_file` (or the system store when empty) and the URL's host name.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/status.h"

namespace ganglion::cloud {

struct ApiClientOptions {
  std::string url;      // "https://127.0.0.1:8443" (http:// also accepted, for tests)
  std::string token;    // bearer token; "" sends none
  std::string ca_file;  // PEM CA to trust
  std::chrono::milliseconds timeout{10'000};
};

struct ApiResponse {
  int status = 0;
  std::string body;
};

// Errors: kInvalidArgument for a bad URL, kUnavailable for connection/TLS failures,
// kTimeout. HTTP error statuses are returned as responses, not errors.
Result<ApiResponse> api_request(const ApiClientOptions& options, std::string_view method,
                                std::string_view target, std::string_view body = {});

}  // namespace ganglion::cloud
