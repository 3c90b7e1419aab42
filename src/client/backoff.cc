#include "client/backoff.h"

#include <algorithm>

namespace ganglion::client {

Backoff::Backoff(BackoffOptions options, std::uint64_t seed) : options_(options), rng_(seed) {
  if (options_.initial.count() <= 0) options_.initial = std::chrono::milliseconds(1);
  if (options_.max < options_.initial) options_.max = options_.initial;
}

std::chrono::milliseconds Backoff::cap() const {
  // initial * 2^attempt without overflow: stop doubling once past max.
  std::int64_t c = options_.initial.count();
  for (std::uint32_t i = 0; i < attempt_ && c < options_.max.count(); ++i) c *= 2;
  return std::chrono::milliseconds(std::min<std::int64_t>(c, options_.max.count()));
}

std::chrono::milliseconds Backoff::next() {
  const std::int64_t c = cap().count();
  ++attempt_;
  std::uniform_int_distribution<std::int64_t> pick(0, c);
  return std::chrono::milliseconds(pick(rng_));
}

}  // namespace ganglion::client
