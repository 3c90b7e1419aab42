#include "uplink/redelivery_filter.h"

#include <algorithm>
#include <functional>

#include "uplink/batch_format.h"

namespace ganglion::uplink {

namespace {

std::uint64_t digest_of(std::string_view record) { return std::hash<std::string_view>{}(record); }

}  // namespace

Status RedeliveryFilter::scan(const log::LogStore& store, std::uint64_t tail_records) {
  for (const auto& cls : store.classes_by_priority()) {
    const log::SegmentLog* log = store.find(cls);
    if (!log) continue;
    const std::uint64_t end = log->end_offset();
    std::uint64_t from = end > tail_records ? end - tail_records : 0;
    from = std::max(from, log->start_offset());
    while (from < end) {
      auto batch = log->read(from, 1 << 20);
      if (!batch.ok()) return batch.status().with_context("uplink: reading the log tail of " + cls);
      if (batch->empty()) break;
      for (const auto& r : batch->records()) remember(cls, r.payload);
      from = batch->next_offset();
    }
  }
  return Status::Ok();
}

void RedeliveryFilter::remember(std::string_view cls, std::string_view record) {
  auto fields = decode_record(record);
  if (!fields.ok() || fields->stored_id == 0) return;
  std::lock_guard lock(mu_);
  by_id_[fields->stored_id].push_back({std::string(cls), digest_of(record)});
  ++size_;
}

bool RedeliveryFilter::take(std::string_view cls, std::uint64_t stored_id,
                            std::string_view record) {
  if (stored_id == 0) return false;
  std::lock_guard lock(mu_);
  auto it = by_id_.find(stored_id);
  if (it == by_id_.end()) return false;
  const std::uint64_t digest = digest_of(record);
  auto& seen = it->second;
  auto s = std::find_if(seen.begin(), seen.end(),
                        [&](const Seen& e) { return e.cls == cls && e.digest == digest; });
  if (s == seen.end()) return false;
  seen.erase(s);
  if (seen.empty()) by_id_.erase(it);
  --size_;
  return true;
}

std::size_t RedeliveryFilter::size() const {
  std::lock_guard lock(mu_);
  return size_;
}

}  // namespace ganglion::uplink
