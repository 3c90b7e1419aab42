// RedeliveryFilter: recognises the broker's redeliveries after a crash, so that a message is
// logged for the uplink once even when the node died between logging it and the broker
// journaling its acknowledgement.
//
// The uplink receives its routes through a persistent in-process session. It acknowledges a
// delivery once the record is durable in its log; the broker then journals "done". A kill in
// between leaves the delivery in the broker's journal, and the restarted broker delivers it
// again. Such records would get new log offsets, which the receiver's (node, class, offset)
// deduplication cannot recognise. Each delivery carries the id under which the broker
// journaled it (broker::DeliveryAck::stored_id: stable across restarts, never reused), and
// the uplink writes it into the record (batch_format.h, record version 2). At start-up the
// filter reads the tail of every class and remembers the ids it holds; a delivery whose
// encoded record (id, topic and payload after the data policy) equals a remembered one is
// acknowledged without being logged again.
//
// Only the tail is read: a delivery the broker can still redeliver was, at most, acknowledged
// just before the crash, so it is among the last records logged (the in-flight window plus
// what arrived while the broker's journal commit ran). The whole record is compared, not
// only the id, so even a broker journal that was deleted (ids start again) cannot make the
// filter drop a new message.
//
// Thread safety: take() may be called from any thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "log/log_store.h"

namespace ganglion::uplink {

class RedeliveryFilter {
 public:
  // Remembers the records with a stored id among the last `tail_records` offsets of every
  // class of `store`. Errors: the log's read errors.
  Status scan(const log::LogStore& store, std::uint64_t tail_records);
  // Remembers one logged record of class `cls` (scan() calls it for every record it reads).
  void remember(std::string_view cls, std::string_view record);
  // True when `record`, encoded with `stored_id`, was remembered for `cls` and not taken yet:
  // the caller acknowledges the delivery without logging it. Each remembered record is taken
  // once.
  bool take(std::string_view cls, std::uint64_t stored_id, std::string_view record);
  // Records remembered and not taken.
  std::size_t size() const;

 private:
  struct Seen {
    std::string cls;
    std::uint64_t digest = 0;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::uint64_t, std::vector<Seen>> by_id_;  // stored id -> records
  std::size_t size_ = 0;
};

}  // namespace ganglion::uplink
