// SerialExecutor: where a rule runs. Each rule gets its own (and so do the stream sources and
// the function triggers), so a rule that is slow or stuck delays only itself.
//
// Contract: post() never runs the task inline; tasks run one at a time, in post order.
// stop() returns once no task is running and none will run again (queued tasks are dropped,
// later posts are dropped too); it must not be called from one of the executor's own tasks.
// post() and stop() are thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "broker/inprocess_client.h"

namespace ganglion::rules {

class SerialExecutor {
 public:
  virtual ~SerialExecutor() = default;
  virtual void post(std::function<void()> task) = 0;
  virtual void stop() = 0;
  // An InProcessClient executor posting here. Valid while this object lives.
  broker::Executor as_client_executor() {
    return [this](std::function<void()> fn) { post(std::move(fn)); };
  }
};

// Makes one executor; `name` names the thread (rule id, "sources", "functions").
using ExecutorFactory = std::function<std::unique_ptr<SerialExecutor>(const std::string& name)>;

// A dedicated thread with a task queue. The destructor stops and joins it.
std::unique_ptr<SerialExecutor> make_worker_thread(const std::string& name);

}  // namespace ganglion::rules
