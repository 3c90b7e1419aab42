#include "log/log_store.h"

#include <algorithm>

#include "log/format.h"

namespace ganglion::log {
namespace {

bool valid_class_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

}  // namespace

Result<std::unique_ptr<LogStore>> LogStore::open(Env& env, Clock& clock, std::string dir,
                                                 StoreOptions options) {
  std::unique_ptr<LogStore> store(new LogStore());
  store->budget_ = options.total_budget_bytes;
  for (auto& c : options.classes) {
    if (!valid_class_name(c.name)) {
      return InvalidArgument("log class name '" + c.name + "' must match [a-z0-9_-]{1,64}");
    }
    if (store->by_name_.count(c.name))
      return InvalidArgument("log class '" + c.name + "' listed twice");
    auto e = std::make_unique<Entry>();
    e->options = std::move(c);
    GANGLION_ASSIGN_OR_RETURN(
        e->log, SegmentLog::open(env, clock, join_path(dir, e->options.name), e->options.log));
    store->by_name_.emplace(e->options.name, e.get());
    store->entries_.push_back(std::move(e));
  }
  std::stable_sort(
      store->entries_.begin(), store->entries_.end(),
      [](const auto& a, const auto& b) { return a->options.priority > b->options.priority; });
  return store;
}

SegmentLog* LogStore::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second->log.get();
}

Result<LogStore::Entry*> LogStore::entry(std::string_view cls) const {
  auto it = by_name_.find(cls);
  if (it == by_name_.end()) return NotFound("no log class '" + std::string(cls) + "'");
  return it->second;
}

Status LogStore::make_room(const Entry& target, std::size_t bytes) {
  if (budget_ == UINT64_MAX) return Status::Ok();
  const std::uint64_t need = bytes + kRecordHeaderSize;
  std::lock_guard lock(budget_mu_);
  auto total = [&] {
    std::uint64_t t = 0;
    for (const auto& e : entries_) t += e->log->disk_bytes();
    return t;
  };
  // Lowest priority first: entries_ is sorted highest first.
  for (auto it = entries_.rbegin(); it != entries_.rend() && total() + need > budget_; ++it) {
    Entry& victim = **it;
    if (victim.options.priority >= target.options.priority) break;
    if (victim.options.log.quota_policy != QuotaPolicy::kDropOldest) continue;
    for (;;) {
      if (total() + need <= budget_) break;
      GANGLION_ASSIGN_OR_RETURN(bool dropped, victim.log->drop_oldest_segment());
      if (!dropped) break;
      dropped_segments_ += 1;
    }
  }
  while (total() + need > budget_) {
    if (target.options.log.quota_policy == QuotaPolicy::kDropOldest) {
      GANGLION_ASSIGN_OR_RETURN(bool dropped, target.log->drop_oldest_segment());
      if (dropped) continue;
    }
    refused_ += 1;
    return ResourceExhausted("log store is over its total budget of " + std::to_string(budget_) +
                             " bytes");
  }
  return Status::Ok();
}

Result<std::uint64_t> LogStore::append(std::string_view cls, std::string_view payload,
                                       std::int64_t timestamp_ms) {
  GANGLION_ASSIGN_OR_RETURN(Entry * e, entry(cls));
  GANGLION_RETURN_IF_ERROR(make_room(*e, payload.size()));
  return e->log->append(payload, timestamp_ms);
}

Result<std::uint64_t> LogStore::append_async(std::string_view cls, std::string_view payload,
                                             std::int64_t timestamp_ms,
                                             SegmentLog::DurableCallback on_durable) {
  GANGLION_ASSIGN_OR_RETURN(Entry * e, entry(cls));
  GANGLION_RETURN_IF_ERROR(make_room(*e, payload.size()));
  return e->log->append_async(payload, timestamp_ms, std::move(on_durable));
}

std::vector<std::string> LogStore::classes_by_priority() const {
  std::vector<std::string> names;
  for (const auto& e : entries_) names.push_back(e->options.name);
  return names;
}

std::uint64_t LogStore::disk_bytes() const {
  std::uint64_t t = 0;
  for (const auto& e : entries_) t += e->log->disk_bytes();
  return t;
}

std::uint64_t LogStore::refused_by_budget() const {
  std::lock_guard lock(budget_mu_);
  return refused_;
}

std::uint64_t LogStore::segments_dropped_for_budget() const {
  std::lock_guard lock(budget_mu_);
  return dropped_segments_;
}

Status LogStore::enforce_retention() {
  for (const auto& e : entries_) GANGLION_RETURN_IF_ERROR(e->log->enforce_retention());
  return Status::Ok();
}

Status LogStore::close() {
  Status first;
  for (const auto& e : entries_) {
    Status s = e->log->close();
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

}  // namespace ganglion::log
