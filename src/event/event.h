// Event: one message on Ganglion's bus.
//
// An event is a topic, a timestamp, a few headers and an opaque payload. The payload bytes
// are shared (std::shared_ptr<const std::string>), so fanning one event out to many
// subscribers, rules or sinks copies a pointer, never the bytes. JSON payloads are parsed
// lazily, at most once per payload, on first access to fields(); copies of an Event share
// the parsed result.
// Thread: a const Event may be used from many threads at once (fields() is synchronised).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "base/status.h"
#include "event/value.h"

namespace ganglion {

struct EventHeaders {
  std::string source;          // who produced it: client id, rule id, module name
  std::uint64_t sequence = 0;  // per-source sequence number (dedupe on ingest)
  std::string content_type;    // e.g. "application/json"; empty means unknown (try JSON)
  std::string trace_id;        // W3C trace id, hex, or empty
  std::string data_class;      // uplink class (data sovereignty), e.g. "telemetry", "alert"
  std::uint8_t qos = 0;        // MQTT QoS it was published with (read by SQL meta(qos))
};

class Event {
 public:
  Event() = default;
  Event(std::string topic, std::int64_t timestamp_ms, std::shared_ptr<const std::string> payload,
        EventHeaders headers = {});
  // Convenience for tests and small producers: copies `payload` once.
  static Event from_string(std::string topic, std::int64_t timestamp_ms, std::string payload,
                           EventHeaders headers = {});

  const std::string& topic() const { return topic_; }
  std::int64_t timestamp_ms() const { return timestamp_ms_; }
  const EventHeaders& headers() const { return headers_; }
  EventHeaders& mutable_headers() { return headers_; }
  std::string_view payload() const {
    return payload_ ? std::string_view(*payload_) : std::string_view();
  }
  const std::shared_ptr<const std::string>& shared_payload() const { return payload_; }

  // The payload parsed as JSON, parsed on first call and cached (errors are cached too).
  // The returned reference lives as long as this event or any copy of it.
  const Result<Value>& fields() const;

  // True when fields() has already been parsed (by this event or a copy).
  bool fields_parsed() const { return parsed_->done.load(std::memory_order_acquire); }
  // Installs `fields` as the parsed payload when it has not been parsed yet (a consumer
  // that decoded the payload itself shares the result with later readers). Precondition:
  // `fields` is what parse_json(payload()) returns.
  void share_fields(Value fields) const;

  // A copy with another topic (same payload bytes, same parsed fields).
  Event with_topic(std::string topic) const;

 private:
  // Parsed once: `done` is the fast path (an acquire load); `mu` serialises the first parse.
  // (std::call_once costs a futex syscall per call with glibc: too slow per event.)
  struct Parsed {
    std::atomic<bool> done{false};
    std::mutex mu;
    Result<Value> value = Value();
  };

  std::string topic_;
  std::int64_t timestamp_ms_ = 0;
  EventHeaders headers_;
  std::shared_ptr<const std::string> payload_;
  std::shared_ptr<Parsed> parsed_ = std::make_shared<Parsed>();
};

}  // namespace ganglion
