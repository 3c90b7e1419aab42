#include "demo/link_proxy.h"

#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <list>

namespace ganglion::demo {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// One relayed connection: two sockets and a buffer per direction.
struct Pipe : std::enable_shared_from_this<Pipe> {
  Pipe(tcp::socket c, asio::io_context& loop) : client(std::move(c)), upstream(loop) {}
  tcp::socket client;
  tcp::socket upstream;
  std::array<char, 16384> up_buf{};
  std::array<char, 16384> down_buf{};
  bool closed = false;

  void close() {
    if (closed) return;
    closed = true;
    boost::system::error_code ignored;
    client.close(ignored);
    upstream.close(ignored);
  }
};

}  // namespace

struct LinkProxy::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& l, std::string t) : loop(l), target(std::move(t)), acceptor(l) {}

  asio::io_context& loop;
  std::string target;
  tcp::endpoint target_endpoint;
  tcp::acceptor acceptor;
  std::uint16_t bound_port = 0;
  bool is_cut = false;  // on the loop
  bool stopped = false;
  std::list<std::weak_ptr<Pipe>> pipes;
  std::atomic<bool> cut_flag{false};
  std::atomic<std::uint64_t> connections{0}, refused{0}, bytes_up{0}, bytes_down{0};

  void accept() {
    acceptor.async_accept(
        [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
          if (self->stopped) return;
          if (!ec) self->admit(std::move(socket));
          if (ec != asio::error::operation_aborted) self->accept();
        });
  }

  void admit(tcp::socket socket) {
    if (is_cut) {
      refused++;
      boost::system::error_code ignored;
      socket.close(ignored);
      return;
    }
    connections++;
    auto pipe = std::make_shared<Pipe>(std::move(socket), loop);
    pipes.remove_if([](const std::weak_ptr<Pipe>& p) { return p.expired(); });
    pipes.push_back(pipe);
    pipe->upstream.async_connect(
        target_endpoint, [self = shared_from_this(), pipe](boost::system::error_code ec) {
          if (ec || pipe->closed) return pipe->close();
          self->relay(pipe, pipe->client, pipe->upstream, pipe->up_buf, self->bytes_up);
          self->relay(pipe, pipe->upstream, pipe->client, pipe->down_buf, self->bytes_down);
        });
  }

  void relay(const std::shared_ptr<Pipe>& pipe, tcp::socket& from, tcp::socket& to,
             std::array<char, 16384>& buf, std::atomic<std::uint64_t>& counter) {
    from.async_read_some(
        asio::buffer(buf), [self = shared_from_this(), pipe, &from, &to, &buf, &counter](
                               boost::system::error_code ec, std::size_t n) {
          if (ec || pipe->closed) return pipe->close();
          counter += n;
          asio::async_write(
              to, asio::buffer(buf.data(), n),
              [self, pipe, &from, &to, &buf, &counter](boost::system::error_code ec2, std::size_t) {
                if (ec2 || pipe->closed) return pipe->close();
                self->relay(pipe, from, to, buf, counter);
              });
        });
  }

  void close_all() {
    for (auto& w : pipes) {
      if (auto p = w.lock()) p->close();
    }
    pipes.clear();
  }
};

LinkProxy::LinkProxy(asio::io_context& loop, std::string target)
    : impl_(std::make_shared<Impl>(loop, std::move(target))) {}

LinkProxy::~LinkProxy() { stop(); }

Status LinkProxy::start() {
  Impl& m = *impl_;
  const auto colon = m.target.rfind(':');
  if (colon == std::string::npos) return InvalidArgument("link proxy: target needs host:port");
  std::string host = m.target.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) return InvalidArgument("link proxy: target host must be an IP address: " + host);
  int port = 0;
  try {
    port = std::stoi(m.target.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (port <= 0 || port > 65535) return InvalidArgument("link proxy: bad port in " + m.target);
  m.target_endpoint = tcp::endpoint(address, static_cast<std::uint16_t>(port));
  const tcp::endpoint listen(asio::ip::make_address("127.0.0.1"), 0);
  m.acceptor.open(listen.protocol(), ec);
  if (!ec) m.acceptor.bind(listen, ec);
  if (!ec) m.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("link proxy: cannot listen: " + ec.message());
  m.bound_port = m.acceptor.local_endpoint().port();
  asio::post(m.loop, [self = impl_] { self->accept(); });
  return Status::Ok();
}

std::uint16_t LinkProxy::port() const { return impl_->bound_port; }

void LinkProxy::cut() {
  impl_->cut_flag = true;
  asio::post(impl_->loop, [self = impl_] {
    self->is_cut = true;
    self->close_all();
  });
}

void LinkProxy::restore() {
  impl_->cut_flag = false;
  asio::post(impl_->loop, [self = impl_] { self->is_cut = false; });
}

void LinkProxy::stop() {
  if (!impl_) return;
  asio::post(impl_->loop, [self = impl_] {
    if (self->stopped) return;
    self->stopped = true;
    boost::system::error_code ignored;
    self->acceptor.close(ignored);
    self->close_all();
  });
}

LinkProxyStats LinkProxy::stats() const {
  const Impl& m = *impl_;
  return {m.cut_flag.load(), m.connections.load(), m.refused.load(), m.bytes_up.load(),
          m.bytes_down.load()};
}

}  // namespace ganglion::demo
