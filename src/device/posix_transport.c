/* gd_posix_transport and gd_posix_clock: the SDK's only contact with the operating system.
 * TCP with non-blocking connect and poll()-based timeouts; TLS through OpenSSL when built
 * with GANGLION_DEVICE_TLS (GD_WITH_OPENSSL). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "ganglion/device/mqtt.h"

#ifdef GD_WITH_OPENSSL
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

static uint64_t posix_now_ms(void* ctx) {
  (void)ctx;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void posix_sleep_ms(void* ctx, uint32_t ms) {
  (void)ctx;
  struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

gd_clock gd_posix_clock(void) {
  gd_clock c = {posix_now_ms, posix_sleep_ms, NULL};
  return c;
}

int gd_tls_available(void) {
#ifdef GD_WITH_OPENSSL
  return 1;
#else
  return 0;
#endif
}

void gd_posix_transport_init(gd_posix_transport* t) {
  memset(t, 0, sizeof *t);
  t->fd = -1;
  t->tls_verify = true;
}

/* Waits for `events` on fd; 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, uint32_t timeout_ms) {
  struct pollfd p = {fd, events, 0};
  for (;;) {
    int r = poll(&p, 1, (int)timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    return r > 0 ? 1 : 0;
  }
}

static void tp_close(void* ctx) {
  gd_posix_transport* t = (gd_posix_transport*)ctx;
#ifdef GD_WITH_OPENSSL
  if (t->ssl) {
    SSL_free((SSL*)t->ssl);
    t->ssl = NULL;
  }
  if (t->ssl_ctx) {
    SSL_CTX_free((SSL_CTX*)t->ssl_ctx);
    t->ssl_ctx = NULL;
  }
#endif
  if (t->fd >= 0) {
    close(t->fd);
    t->fd = -1;
  }
}

#ifdef GD_WITH_OPENSSL
/* TLS handshake on the connected (non-blocking) socket. */
static int tls_handshake(gd_posix_transport* t, const char* host) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return -1;
  t->ssl_ctx = ctx;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (t->tls_verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (t->ca_file ? SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != 1
                   : SSL_CTX_set_default_verify_paths(ctx) != 1)
      return -1;
  }
  SSL* ssl = SSL_new(ctx);
  if (!ssl) return -1;
  t->ssl = ssl;
  const char* name = t->server_name ? t->server_name : host;
  SSL_set_tlsext_host_name(ssl, name);
  if (t->tls_verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    /* An IP address or a DNS name. */
    if (X509_VERIFY_PARAM_set1_ip_asc(param, name) != 1)
      X509_VERIFY_PARAM_set1_host(param, name, 0);
  }
  SSL_set_fd(ssl, t->fd);
  uint32_t budget = t->connect_timeout_ms ? t->connect_timeout_ms : 5000;
  for (;;) {
    int r = SSL_connect(ssl);
    if (r == 1) return 0;
    int e = SSL_get_error(ssl, r);
    short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (!ev || wait_fd(t->fd, ev, budget) != 1) return -1;
  }
}
#endif

static int tp_connect(void* ctx, const char* host, uint16_t port) {
  gd_posix_transport* t = (gd_posix_transport*)ctx;
  tp_close(t);
  char service[8];
  snprintf(service, sizeof service, "%u", (unsigned)port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* res = NULL;
  if (getaddrinfo(host, service, &hints, &res) != 0 || !res) return -1;
  uint32_t timeout = t->connect_timeout_ms ? t->connect_timeout_ms : 5000;
  int fd = -1;
  for (struct addrinfo* a = res; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int r = connect(fd, a->ai_addr, a->ai_addrlen);
    if (r != 0 && errno == EINPROGRESS && wait_fd(fd, POLLOUT, timeout) == 1) {
      int err = 0;
      socklen_t n = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &n);
      r = err == 0 ? 0 : -1;
    }
    if (r != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  t->fd = fd;
  if (t->use_tls) {
#ifdef GD_WITH_OPENSSL
    if (tls_handshake(t, host) != 0) {
      tp_close(t);
      return -1;
    }
#else
    tp_close(t);
    return -1; /* TLS asked for, but the library was built without OpenSSL */
#endif
  }
  return 0;
}

static int tp_send(void* ctx, const uint8_t* data, size_t len) {
  gd_posix_transport* t = (gd_posix_transport*)ctx;
  if (t->fd < 0) return -1;
  uint32_t timeout = t->send_timeout_ms ? t->send_timeout_ms : 5000;
  size_t done = 0;
  while (done < len) {
    ssize_t n;
#ifdef GD_WITH_OPENSSL
    if (t->ssl) {
      int r = SSL_write((SSL*)t->ssl, data + done, (int)(len - done));
      if (r > 0) {
        done += (size_t)r;
        continue;
      }
      int e = SSL_get_error((SSL*)t->ssl, r);
      short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
      if (!ev || wait_fd(t->fd, ev, timeout) != 1) return -1;
      continue;
    }
#endif
    n = send(t->fd, data + done, len - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (wait_fd(t->fd, POLLOUT, timeout) != 1) return -1;
    } else {
      return -1;
    }
  }
  return (int)len;
}

static int tp_recv(void* ctx, uint8_t* buf, size_t cap, uint32_t timeout_ms) {
  gd_posix_transport* t = (gd_posix_transport*)ctx;
  if (t->fd < 0) return -1;
  if (cap == 0) return 0;
#ifdef GD_WITH_OPENSSL
  if (t->ssl) {
    if (!SSL_pending((SSL*)t->ssl)) {
      int w = wait_fd(t->fd, POLLIN, timeout_ms);
      if (w <= 0) return w;
    }
    int r = SSL_read((SSL*)t->ssl, buf, (int)(cap > 65536 ? 65536 : cap));
    if (r > 0) return r;
    int e = SSL_get_error((SSL*)t->ssl, r);
    return (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? 0 : -1;
  }
#endif
  int w = wait_fd(t->fd, POLLIN, timeout_ms);
  if (w <= 0) return w;
  ssize_t n = recv(t->fd, buf, cap > 65536 ? 65536 : cap, 0);
  if (n > 0) return (int)n;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
  return -1; /* closed by the peer, or failed */
}

gd_transport gd_posix_transport_get(gd_posix_transport* t) {
  gd_transport tr = {tp_connect, tp_send, tp_recv, tp_close, t};
  return tr;
}
