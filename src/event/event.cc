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
  std::call_once(parsed_->once, [this] { parsed_->value = parse_json(payload()); });
  return parsed_->value;
}

Event Event::with_topic(std::string topic) const {
  Event e = *this;
  e.topic_ = std::move(topic);
  return e;
}

}  // namespace ganglion
