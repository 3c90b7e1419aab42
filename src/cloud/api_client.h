// A small synchronous HTTPS client for the controller's REST API (`ganglion ctl`, and the
// edge's enrolment later). One request per connection; the server certificate is verified
// against `ca_file` (or the system store when empty) and the URL's host name.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
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

// GET of a paged list (`{"items": [...], "continue": "<token>"}`, docs/api.md "GET
// /v1/nodes"): asks for `path` with `limit=page_size`, then follows each page's `continue`
// until a page has none, and returns one 200 response whose body is `{"items": [every
// item, in order]}`. `path` may carry a query already ("/v1/nodes?selector=site=a").
// A page answered with an HTTP error status is returned as that response (the items read so
// far are dropped). Errors: those of api_request; kInvalidArgument for page_size 0;
// kCorruption when a page is not such a list or repeats the previous `continue` (the list
// would never end).
Result<ApiResponse> api_list(const ApiClientOptions& options, std::string_view path,
                             std::size_t page_size);

// The same over any transport: `get` performs one GET of a target (path and query).
using ApiGet = std::function<Result<ApiResponse>(const std::string& target)>;
Result<ApiResponse> collect_pages(const ApiGet& get, std::string_view path, std::size_t page_size);

}  // namespace ganglion::cloud
