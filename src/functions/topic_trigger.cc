#include "functions/topic_trigger.h"

#include <spdlog/spdlog.h>

namespace ganglion::functions {

struct TopicTrigger::Shared {
  FunctionRegistry& registry;
  broker::InProcessClient& client;
  Clock& clock;
  std::string function;
  TriggerSpec trigger;
  bool no_local;
  std::atomic<bool> stopped{false};
  std::atomic<std::uint64_t> calls{0}, failures{0}, published{0};
};

TopicTrigger::TopicTrigger(FunctionRegistry& registry, broker::InProcessClient& client,
                           Clock& clock, std::string function, TriggerSpec trigger, bool no_local)
    : shared_(
          new Shared{registry, client, clock, std::move(function), std::move(trigger), no_local}) {}

TopicTrigger::~TopicTrigger() { stop(); }

void TopicTrigger::start(broker::SubscribeCompletion done) {
  if (started_) return;
  started_ = true;
  shared_->stopped = false;
  std::weak_ptr<Shared> weak = shared_;
  broker::SubscribeOptions options;
  options.no_local = shared_->no_local;
  shared_->client.subscribe(
      shared_->trigger.filter, shared_->trigger.qos,
      [weak](const mqtt::Publish& message) {
        auto s = weak.lock();
        if (!s || s->stopped) return;
        EventHeaders headers;
        headers.source = "mqtt";
        if (message.properties.content_type)
          headers.content_type = *message.properties.content_type;
        Event event(message.topic, s->clock.wall_ms(), message.payload.shared(),
                    std::move(headers));
        ++s->calls;
        auto result = s->registry.invoke(s->function, event);
        if (!result.ok()) {
          ++s->failures;
          spdlog::warn("function trigger {} on {}: {}", s->function, message.topic,
                       result.status().message());
          return;
        }
        for (Emitted& e : result->emitted) {
          s->client.publish(std::move(e.topic), mqtt::SharedBytes(std::move(e.payload)),
                            static_cast<mqtt::QoS>(e.qos));
          ++s->published;
        }
      },
      std::move(done), options);
}

void TopicTrigger::stop() {
  if (!started_) return;
  started_ = false;
  shared_->stopped = true;
  shared_->client.unsubscribe(shared_->trigger.filter);
}

const std::string& TopicTrigger::function() const { return shared_->function; }
const TriggerSpec& TopicTrigger::trigger() const { return shared_->trigger; }
std::uint64_t TopicTrigger::calls() const { return shared_->calls; }
std::uint64_t TopicTrigger::failures() const { return shared_->failures; }
std::uint64_t TopicTrigger::published() const { return shared_->published; }

}  // namespace ganglion::functions
