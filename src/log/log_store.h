// LogStore: the durable logs of one edge node, one SegmentLog per data class
// (<dir>/<class>/...), each with its own priority, fsync policy, TTL, quota and full-quota
// policy, under one total disk budget.
//
// When an append would take the store over its total budget, room is made by dropping the
// oldest segments of lower-priority classes whose policy is kDropOldest (lowest priority
// first); failing that, the appending class applies its own policy (drop its own oldest
// segments, or refuse with kResourceExhausted). The budget is soft by the bytes of appends
// racing each other, at most one record per producer thread.
//
// Thread safety: all methods are thread-safe. The SegmentLog pointers live as long as the
// store.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "log/segment_log.h"

namespace ganglion::log {

struct ClassOptions {
  std::string name;  // [a-z0-9_-]+, also the directory name
  int priority = 0;  // higher drains first and is dropped last
  LogOptions log;
};

struct StoreOptions {
  std::uint64_t total_budget_bytes = UINT64_MAX;
  std::vector<ClassOptions> classes;
};

class LogStore {
 public:
  // Opens (and recovers) every class. Errors: kInvalidArgument for a bad or duplicate class
  // name, or the first class that failed to open.
  static Result<std::unique_ptr<LogStore>> open(Env& env, Clock& clock, std::string dir,
                                                StoreOptions options);

  // The class's log, or nullptr for an unknown class.
  SegmentLog* find(std::string_view name) const;

  // Append to a class after making room in the total budget (see above). Errors: kNotFound
  // for an unknown class, kResourceExhausted when no room can be made, else as SegmentLog.
  Result<std::uint64_t> append(std::string_view cls, std::string_view payload,
                               std::int64_t timestamp_ms);
  Result<std::uint64_t> append_async(std::string_view cls, std::string_view payload,
                                     std::int64_t timestamp_ms,
                                     SegmentLog::DurableCallback on_durable = {});

  // Class names, highest priority first (the order in which the uplink drains them).
  std::vector<std::string> classes_by_priority() const;
  std::uint64_t disk_bytes() const;
  // Appends refused because the total budget was full.
  std::uint64_t refused_by_budget() const;
  // Segments dropped from lower-priority classes to make room for others.
  std::uint64_t segments_dropped_for_budget() const;
  // enforce_retention() on every class.
  Status enforce_retention();
  // close() on every class; the first error is returned.
  Status close();

 private:
  struct Entry {
    ClassOptions options;
    std::unique_ptr<SegmentLog> log;
  };
  LogStore() = default;
  Result<Entry*> entry(std::string_view cls) const;
  Status make_room(const Entry& target, std::size_t bytes);

  std::uint64_t budget_ = UINT64_MAX;
  std::vector<std::unique_ptr<Entry>> entries_;  // highest priority first
  std::map<std::string, Entry*, std::less<>> by_name_;
  mutable std::mutex budget_mu_;
  std::uint64_t refused_ = 0;           // GUARDED_BY(budget_mu_)
  std::uint64_t dropped_segments_ = 0;  // GUARDED_BY(budget_mu_)
};

}  // namespace ganglion::log
