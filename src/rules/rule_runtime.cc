#include "rules/rule_runtime.h"

#include <spdlog/spdlog.h>

namespace ganglion::rules {
namespace {
// The runtime whose push() is running on this thread (emissions are then collected).
thread_local RuleRuntime* tl_pushing = nullptr;
}  // namespace

RuleRuntime::RuleRuntime(std::string id, Clock& clock, std::size_t capacity, Histogram* latency)
    : id_(std::move(id)), clock_(clock), capacity_(capacity), latency_(latency) {}

RuleRuntime::~RuleRuntime() { teardown(); }

std::string RuleRuntime::connect_error() const {
  std::lock_guard lock(error_mu_);
  return connect_error_;
}

void RuleRuntime::start() {
  for (std::size_t i = 0; i < query->sources().size(); ++i) {
    source_in_.push_back(std::make_unique<std::atomic<std::uint64_t>>(0));
  }
  client->connect([this](Status s, bool) {
    if (!s.ok()) {
      spdlog::error("rule {}: the broker refused its client: {}", id_, s.message());
      std::lock_guard lock(error_mu_);
      connect_error_ = s.message();
    }
    // Even when refused: the query still runs (sinks that publish count errors).
    connected_ = true;
    while (!waiting_.empty()) {
      auto [source, event] = std::move(waiting_.front());
      waiting_.pop_front();
      process(source, event, clock_.now());
    }
  });
}

void RuleRuntime::offer(std::size_t source, const Event& event) {
  offered_.fetch_add(1, std::memory_order_relaxed);
  if (queued_.fetch_add(1, std::memory_order_relaxed) >= capacity_) {
    queued_.fetch_sub(1, std::memory_order_relaxed);
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (source < source_in_.size()) source_in_[source]->fetch_add(1, std::memory_order_relaxed);
  queued_bytes_.fetch_add(event.payload().size(), std::memory_order_relaxed);
  executor->post([this, source, event, enqueued = clock_.now()] {
    if (!connected_) {
      waiting_.emplace_back(source, event);
      return;
    }
    process(source, event, enqueued);
  });
}

void RuleRuntime::process(std::size_t source, const Event& event, MonoTime enqueued) {
  tl_pushing = this;
  in_push_ = true;
  Status s = query->push(query->sources()[source], event);
  in_push_ = false;
  tl_pushing = nullptr;
  (void)s;  // kNotFound only (a source the query does not read): cannot happen by routing
  queued_.fetch_sub(1, std::memory_order_relaxed);
  queued_bytes_.fetch_sub(event.payload().size(), std::memory_order_relaxed);
  if (!collected_.empty()) {
    std::vector<stream::Emission> out;
    out.swap(collected_);
    for (const auto& e : out) deliver(e);
  }
  const MonoTime now = clock_.now();
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - enqueued).count();
  last_latency_us_.store(us, std::memory_order_relaxed);
  if (latency_ != nullptr) latency_->observe(static_cast<double>(us) / 1e6);
  last_ms_.store(clock_.wall_ms(), std::memory_order_relaxed);
}

void RuleRuntime::on_emission(const stream::Emission& e) {
  if (tl_pushing == this && in_push_) {
    // Inside push(): the Query's lock is held. Deliver after push() returns.
    collected_.push_back(e);
    return;
  }
  // A window closed by a timer (the Clock's thread): hand it to the rule's executor.
  executor->post([this, e] { deliver(e); });
}

void RuleRuntime::deliver(const stream::Emission& e) {
  for (auto& sink : sinks) sink->deliver(e);
}

void RuleRuntime::teardown() {
  if (torn_down_) return;
  torn_down_ = true;
  if (executor) executor->stop();
  query.reset();  // cancels its timers; a timer's emission posts to the stopped executor
  client.reset();
  sinks.clear();
}

}  // namespace ganglion::rules
