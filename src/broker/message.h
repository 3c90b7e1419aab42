// Message: one application message as routed inside the broker. Immutable once built and
// shared by every delivery, queue and the retained store (no payload copies on fan-out).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "mqtt/packet.h"

namespace ganglion::broker {

using SessionId = std::uint64_t;

struct Message {
  std::string topic;
  mqtt::SharedBytes payload;
  std::uint8_t qos = 0;  // as published
  bool retain = false;   // as published
  // MQTT 5 properties forwarded to subscribers (payload format, content type, response
  // topic, correlation data, user properties); null when there are none.
  std::shared_ptr<const mqtt::Properties> properties;
  // Absolute expiry on the broker's monotonic clock in ms; 0 = never (Message Expiry).
  std::int64_t expiry_ms = 0;
  // The publishing session (for no-local); 0 for the broker itself ($SYS, wills of gone
  // sessions).
  SessionId publisher = 0;

  std::size_t bytes() const { return topic.size() + payload.size() + 64; }
};

using MessagePtr = std::shared_ptr<const Message>;

}  // namespace ganglion::broker
