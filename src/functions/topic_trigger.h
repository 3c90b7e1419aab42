// TopicTrigger: runs a function for every message on a topic filter, and publishes what it
// emits. Glue between the broker's InProcessClient and the FunctionRegistry.
//
// Each message becomes an Event (topic, the clock's wall time, payload bytes shared, MQTT 5
// content type) and is handed to registry.invoke(function, event), which looks the function
// up by name every time: replacing the function needs nothing here. Every emit() is
// published through the same client with the emit's QoS, in emit order. A failed call is
// logged (rate-limited through spdlog's level only) and counted by the registry; the
// message is acknowledged either way (a failing function must not wedge the session).
//
// The subscription uses MQTT 5 No Local by default, so what the client publishes (function
// output) never triggers functions subscribed through the same client: a function that
// emits to a topic matching its own filter cannot loop. Use another client to chain.
//
// Thread: the handler runs on the client's executor and blocks it for the call (bounded by
// the function's instruction budget). Create, start, stop and destroy the trigger on that
// executor's thread, or while it runs no tasks; the client and registry must outlive it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "base/clock.h"
#include "broker/inprocess_client.h"
#include "functions/function_registry.h"
#include "functions/function_spec.h"

namespace ganglion::functions {

class TopicTrigger {
 public:
  TopicTrigger(FunctionRegistry& registry, broker::InProcessClient& client, Clock& clock,
               std::string function, TriggerSpec trigger, bool no_local = true);
  ~TopicTrigger();  // stop()
  TopicTrigger(const TopicTrigger&) = delete;
  TopicTrigger& operator=(const TopicTrigger&) = delete;

  // Subscribes; `done` gets the SUBACK outcome.
  void start(broker::SubscribeCompletion done = {});
  // Unsubscribes; messages already queued on the executor are dropped.
  void stop();

  const std::string& function() const;
  const TriggerSpec& trigger() const;
  std::uint64_t calls() const;      // messages handed to the function
  std::uint64_t failures() const;   // calls that failed
  std::uint64_t published() const;  // emitted messages published

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
  bool started_ = false;
};

}  // namespace ganglion::functions
