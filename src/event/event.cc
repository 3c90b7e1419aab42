#include "event/event.h"

#include "event/json.h"

namespace ganglion {

Event::Event(std::string topic, std::int64_t timestamp_ms,
             std::shared_ptr<const std::string> payload, EventHeaders headers)
    : topic_(std::move(topic)),
      timestamp_ms_(timestamp_ms),
      headers_(std::move(headers)),
      payload_(std::move(payload)) {}

Event Event::from_string(std::string topic, std::int64_t timestamp_ms, std::string payload,
                         EventHeaders headers) {
  return Event(std::move(topic), timestamp_ms,
               std::make_shared<const std::string>(std::move(payload)), std::move(headers));
}

const Result<Value>& Event::fields() const {
  if (!parsed_->done.load(std::memory_order_acquire)) {
    std::lock_guard lock(parsed_->mu);
    if (!parsed_->done.load(std::memory_order_relaxed)) {
      parsed_->value = parse_json(payload());
      parsed_->done.store(true, std::memory_order_release);
    }
  }
  return parsed_->value;
}

void Event::share_fields(Value fields) const {
  if (parsed_->done.load(std::memory_order_acquire)) return;
  std::lock_guard lock(parsed_->mu);
  if (parsed_->done.load(std::memory_order_relaxed)) return;
  parsed_->value = std::move(fields);
  parsed_->done.store(true, std::memory_order_release);
}

Event Event::with_topic(std::string topic) const {
  Event e = *this;
  e.topic_ = std::move(topic);
  return e;
}

}  // namespace ganglion
