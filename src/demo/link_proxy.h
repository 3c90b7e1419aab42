// LinkProxy: a site's link to the cloud as a TCP relay that the demo can cut and restore.
//
// It listens on 127.0.0.1 (port chosen by the kernel) and relays every connection to the
// target, byte for byte (TLS passes through untouched: the node still verifies the
// controller and the controller the node). cut() closes every relayed connection at once
// and refuses new ones (accepted, then closed) until restore(): to the node it is a link
// that went down, exactly what a site sees when its WAN drops.
//
// Thread: runs on the given io_context; public methods are thread-safe (they post).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"

namespace boost::asio {
class io_context;
}

namespace ganglion::demo {

struct LinkProxyStats {
  bool cut = false;
  std::uint64_t connections = 0;  // accepted and relayed
  std::uint64_t refused = 0;      // accepted while cut, closed at once
  std::uint64_t bytes_up = 0;     // client -> target
  std::uint64_t bytes_down = 0;   // target -> client
};

class LinkProxy {
 public:
  // `target` is host:port (IPv4 or [IPv6]).
  LinkProxy(boost::asio::io_context& loop, std::string target);
  ~LinkProxy();
  LinkProxy(const LinkProxy&) = delete;
  LinkProxy& operator=(const LinkProxy&) = delete;

  // Binds 127.0.0.1:0 and starts accepting. Errors: kInvalidArgument (target), kUnavailable.
  Status start();
  std::uint16_t port() const;
  void cut();
  void restore();
  // Closes the listener and every connection. Idempotent.
  void stop();
  LinkProxyStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace ganglion::demo
