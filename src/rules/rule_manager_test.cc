// RuleManager against the real Broker core: manual executors stand for every thread (the
// sources, each rule, the function triggers; nothing runs until the test drains them), a
// ManualClock for time and windows, MemEnv for persistence, a fake HTTP sender. No sockets,
// no sleeps.
#include "rules/rule_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <map>

#include "base/mem_env.h"
#include "broker/broker.h"
#include "broker/inprocess_client.h"
#include "event/json.h"

namespace ganglion::rules {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Every executor the manager asks for, by name; each one can be run alone.
class ManualExecutors {
 public:
  struct Queue {
    std::mutex mu;
    std::deque<std::function<void()>> tasks;
    bool stopped = false;
  };

  ExecutorFactory factory() {
    return [this](const std::string& name) {
      auto q = std::make_shared<Queue>();
      queues_[name] = q;
      all_.push_back(q);
      return std::make_unique<Exec>(q);
    };
  }
  // Runs tasks of every live executor until all are idle; returns how many ran.
  std::size_t drain_all() { return drain_except(""); }
  // The same, leaving `name`'s executor alone (a rule stuck in a sink).
  std::size_t drain_except(const std::string& name) {
    std::size_t n = 0;
    for (bool again = true; again;) {
      again = false;
      for (auto& q : all_) {
        if (!name.empty() && queues_[name] == q) continue;
        while (run_one(*q)) {
          ++n;
          again = true;
        }
      }
    }
    return n;
  }
  std::size_t pending(const std::string& name) {
    auto q = queues_[name];
    std::lock_guard lock(q->mu);
    return q->tasks.size();
  }
  broker::Executor plain(const std::string& name) {
    auto q = std::make_shared<Queue>();
    queues_[name] = q;
    all_.push_back(q);
    return [q](std::function<void()> fn) {
      std::lock_guard lock(q->mu);
      q->tasks.push_back(std::move(fn));
    };
  }

 private:
  class Exec final : public SerialExecutor {
   public:
    explicit Exec(std::shared_ptr<Queue> q) : q_(std::move(q)) {}
    ~Exec() override { stop(); }
    void post(std::function<void()> task) override {
      std::lock_guard lock(q_->mu);
      if (!q_->stopped) q_->tasks.push_back(std::move(task));
    }
    void stop() override {
      std::deque<std::function<void()>> dropped;
      std::lock_guard lock(q_->mu);
      q_->stopped = true;
      dropped.swap(q_->tasks);
    }

   private:
    std::shared_ptr<Queue> q_;
  };

  static bool run_one(Queue& q) {
    std::function<void()> fn;
    {
      std::lock_guard lock(q.mu);
      if (q.tasks.empty()) return false;
      fn = std::move(q.tasks.front());
      q.tasks.pop_front();
    }
    fn();
    return true;
  }

  std::map<std::string, std::shared_ptr<Queue>> queues_;
  std::vector<std::shared_ptr<Queue>> all_;
};

class FakeHttp final : public HttpSender {
 public:
  void send(HttpCall call, std::function<void(Result<HttpReply>)> done) override {
    calls.push_back(call);
    pending.push_back(std::move(done));
  }
  // Answers the oldest pending request.
  void reply(Result<HttpReply> r) {
    auto done = std::move(pending.front());
    pending.pop_front();
    done(std::move(r));
  }
  std::vector<HttpCall> calls;
  std::deque<std::function<void(Result<HttpReply>)>> pending;
};

struct Received {
  std::string topic;
  std::string payload;
  bool retain = false;
  int qos = 0;
};

class RuleManagerTest : public ::testing::Test {
 protected:
  RuleManagerTest() {
    broker::BrokerOptions o;
    o.sys_interval = std::chrono::milliseconds(0);
    broker_ = std::make_unique<broker::Broker>(o, clock_, metrics_);
    http_ = std::make_shared<FakeHttp>();
    device_ = std::make_unique<broker::InProcessClient>(
        *broker_, broker::ClientOptions{.client_id = "device"}, executors_.plain("device"));
    device_->connect();
    app_ = std::make_unique<broker::InProcessClient>(
        *broker_, broker::ClientOptions{.client_id = "app"}, executors_.plain("app"));
    app_->connect();
    executors_.drain_all();
  }
  ~RuleManagerTest() override {
    manager_.reset();
    device_.reset();
    app_.reset();
  }

  RuleManager& open_manager() {
    RuleManagerParts parts;
    parts.env = &env_;
    parts.clock = &clock_;
    parts.broker = broker_.get();
    parts.metrics = &metrics_;
    parts.executors = executors_.factory();
    parts.http = http_;
    parts.uplink = [this](std::string_view cls, const Event& e) {
      uplinked.emplace_back(std::string(cls), std::string(e.payload()));
      return Status::Ok();
    };
    RuleManagerOptions options;
    options.dir = "/data/rules";
    options.metrics_interval = Duration::zero();
    options.subscribe_wait = Duration::zero();
    manager_ = std::make_unique<RuleManager>(std::move(parts), std::move(options));
    EXPECT_TRUE(manager_->open().ok());
    executors_.drain_all();
    return *manager_;
  }

  void subscribe(const std::string& filter) {
    app_->subscribe(filter, mqtt::QoS::kAtLeastOnce, [this](const mqtt::Publish& m) {
      received.push_back(
          {m.topic, std::string(m.payload.view()), m.retain, static_cast<int>(m.qos)});
    });
    executors_.drain_all();
  }

  void publish(const std::string& topic, const std::string& payload) {
    device_->publish(topic, mqtt::SharedBytes(payload), mqtt::QoS::kAtLeastOnce);
  }

  static RuleSpec rule(std::string_view json) {
    auto r = parse_rule_spec(json);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return *r;
  }

  void create_demo_stream() {
    ASSERT_TRUE(manager_
                    ->create_stream("CREATE STREAM demo (temperature FLOAT, deviceId STRING) "
                                    "WITH (DATASOURCE=\"devices/+/telemetry\", FORMAT=\"json\")",
                                    false)
                    .ok());
  }

  Value status(const std::string& id) {
    auto s = manager_->rule_status(id);
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    return s.ok() ? *parse_json(*s) : Value();
  }
  static std::int64_t num(const Value& v, std::string_view key) {
    const Value* x = v.find(key);
    return x == nullptr ? -1 : x->as_int();
  }

  ManualClock clock_;
  MemEnv env_;
  MetricsRegistry metrics_;
  ManualExecutors executors_;
  std::unique_ptr<broker::Broker> broker_;
  std::shared_ptr<FakeHttp> http_;
  std::unique_ptr<broker::InProcessClient> device_;
  std::unique_ptr<broker::InProcessClient> app_;
  std::unique_ptr<RuleManager> manager_;
  std::vector<Received> received;
  std::vector<std::pair<std::string, std::string>> uplinked;
};

TEST_F(RuleManagerTest, FilterRulePublishesMatchingRowsToATemplatedTopic) {
  open_manager();
  create_demo_stream();
  ASSERT_TRUE(
      manager_
          ->create_rule(rule(R"({"id": "rule1", "sql": "SELECT * FROM demo WHERE temperature > 50",
                       "actions": [{"mqtt": {"server": "tcp://127.0.0.1:1883", "topic": "alerts/{{.deviceId}}",
                                             "qos": 1, "retained": false, "sendSingle": true}}]})"))
          .ok());
  executors_.drain_all();
  subscribe("alerts/#");
  publish("devices/d1/telemetry", R"({"temperature": 20, "deviceId": "d1"})");
  publish("devices/d2/telemetry", R"({"temperature": 61.5, "deviceId": "d2"})");
  executors_.drain_all();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].topic, "alerts/d2");
  EXPECT_EQ(received[0].payload, R"({"temperature":61.5,"deviceId":"d2"})");
  EXPECT_EQ(received[0].qos, 1);

  Value st = status("rule1");
  EXPECT_EQ(st.find("status")->as_string(), "running");
  EXPECT_EQ(num(st, "source_demo_0_records_in_total"), 2);
  EXPECT_EQ(num(st, "op_2_filter_0_records_out_total"), 1);
  EXPECT_EQ(num(st, "sink_mqtt_0_0_records_out_total"), 1);
  EXPECT_THAT(metrics_.render(), HasSubstr("ganglion_rule_records_in_total{rule=\"rule1\"} 2"));
  EXPECT_THAT(metrics_.render(), HasSubstr("ganglion_rule_records_out_total{rule=\"rule1\"} 1"));
}

TEST_F(RuleManagerTest, ArraysPayloadWithoutSendSingleAndRetainsWhenAsked) {
  open_manager();
  create_demo_stream();
  ASSERT_TRUE(manager_
                  ->create_rule(
                      rule(R"({"id": "r", "sql": "SELECT deviceId, temperature * 2 AS t FROM demo",
                       "actions": [{"mqtt": {"topic": "out/r", "retained": true}}]})"))
                  .ok());
  executors_.drain_all();
  publish("devices/d1/telemetry", R"({"temperature": 2, "deviceId": "d1"})");
  executors_.drain_all();
  subscribe("out/#");  // after the fact: the retained copy arrives
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].payload, R"([{"deviceId":"d1","t":4}])");
  EXPECT_TRUE(received[0].retain);
}

TEST_F(RuleManagerTest, InvalidSqlCreatesNothingAndPointsAtTheSpot) {
  open_manager();
  create_demo_stream();
  Status s = manager_->create_rule(
      rule(R"({"id": "bad", "sql": "SELECT * FROM demo WHERE", "actions": [{"log": {}}]})"));
  ASSERT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "line 1, column 25: expected expression after 'WHERE', found end of input\n"
            "SELECT * FROM demo WHERE\n"
            "                        ^");
  EXPECT_TRUE(manager_->list_rules().empty());
  EXPECT_FALSE(env_.exists("/data/rules/rules.json"));

  // Planner errors get the caret too.
  s = manager_->create_rule(
      rule(R"({"id": "bad", "sql": "SELECT nosuch FROM demo", "actions": [{"log": {}}]})"));
  ASSERT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), StartsWith("line 1, column 8: unknown field 'nosuch'"));
  EXPECT_THAT(s.message(), HasSubstr("\nSELECT nosuch FROM demo\n       ^"));
  // Unknown stream, bad action.
  EXPECT_FALSE(manager_
                   ->create_rule(rule(
                       R"({"id": "x", "sql": "SELECT * FROM nope", "actions": [{"log": {}}]})"))
                   .ok());
  s = manager_->create_rule(
      rule(R"({"id": "x", "sql": "SELECT * FROM demo", "actions": [{"mqtt": {"qos": 1}}]})"));
  EXPECT_EQ(s.message(), "actions[0].mqtt.topic: required");
  EXPECT_TRUE(manager_->list_rules().empty());
  EXPECT_FALSE(env_.exists("/data/rules/rules.json"));
}

TEST_F(RuleManagerTest, InvalidStreamSqlIsPositionedAndCreatesNothing) {
  open_manager();
  Status s = manager_->create_stream(
      "CREATE STREAM demo (temperature FLOT) WITH (DATASOURCE=\"x\")", false);
  ASSERT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), StartsWith("line 1, column 33"));
  EXPECT_THAT(s.message(), HasSubstr("^"));
  EXPECT_TRUE(manager_->list_streams(false).empty());
  EXPECT_EQ(manager_->create_stream("CREATE TABLE t () WITH (DATASOURCE=\"x\")", false).code(),
            StatusCode::kInvalidArgument);
}

TEST_F(RuleManagerTest, StopStartRestartAndDelete) {
  open_manager();
  create_demo_stream();
  ASSERT_TRUE(manager_
                  ->create_rule(rule(R"({"id": "r1", "sql": "SELECT deviceId FROM demo",
                       "actions": [{"mqtt": {"topic": "out/r1", "sendSingle": true}}]})"))
                  .ok());
  executors_.drain_all();
  subscribe("out/#");
  ASSERT_TRUE(manager_->stop_rule("r1").ok());
  EXPECT_EQ(manager_->list_rules()[0].status, "Stopped: canceled manually.");
  publish("devices/d1/telemetry", R"({"deviceId": "d1"})");
  executors_.drain_all();
  EXPECT_TRUE(received.empty());

  ASSERT_TRUE(manager_->start_rule("r1").ok());
  executors_.drain_all();
  EXPECT_EQ(manager_->list_rules()[0].status, "Running");
  publish("devices/d1/telemetry", R"({"deviceId": "d1"})");
  executors_.drain_all();
  ASSERT_EQ(received.size(), 1u);

  ASSERT_TRUE(manager_->restart_rule("r1").ok());
  executors_.drain_all();
  publish("devices/d1/telemetry", R"({"deviceId": "d1"})");
  executors_.drain_all();
  EXPECT_EQ(received.size(), 2u);

  ASSERT_TRUE(manager_->delete_rule("r1").ok());
  EXPECT_TRUE(manager_->list_rules().empty());
  EXPECT_EQ(manager_->delete_rule("r1").code(), StatusCode::kNotFound);
  publish("devices/d1/telemetry", R"({"deviceId": "d1"})");
  executors_.drain_all();
  EXPECT_EQ(received.size(), 2u);
  EXPECT_EQ(*env_.read_file("/data/rules/rules.json"), "[]\n");
}

TEST_F(RuleManagerTest, DefinitionsSurviveARestartThroughTheEnv) {
  open_manager();
  create_demo_stream();
  ASSERT_TRUE(manager_
                  ->create_stream("CREATE TABLE devices (id STRING, site STRING) WITH "
                                  "(DATASOURCE=\"meta\", KEY=\"id\")",
                                  true)
                  .ok());
  functions::FunctionSpec fn;
  fn.name = "twice";
  fn.source = "function handle(x) return x * 2 end";
  ASSERT_TRUE(manager_->define_function(fn).ok());
  ASSERT_TRUE(
      manager_
          ->create_rule(rule(R"({"id": "on", "sql": "SELECT twice(temperature) AS t FROM demo",
                       "actions": [{"mqtt": {"topic": "out/on", "sendSingle": true}}], "options": {"bufferLength": 8}})"))
          .ok());
  ASSERT_TRUE(manager_
                  ->create_rule(rule(R"({"id": "off", "sql": "SELECT * FROM demo",
                       "actions": [{"log": {}}], "triggered": false})"))
                  .ok());
  executors_.drain_all();
  manager_.reset();

  open_manager();
  EXPECT_EQ(manager_->list_streams(false), std::vector<std::string>{"demo"});
  EXPECT_EQ(manager_->list_streams(true), std::vector<std::string>{"devices"});
  ASSERT_NE(manager_->functions().find("twice"), nullptr);
  auto rules = manager_->list_rules();
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].id, "off");
  EXPECT_EQ(rules[0].status, "Stopped: canceled manually.");
  EXPECT_EQ(rules[1].status, "Running");
  EXPECT_EQ(manager_->rule("on")->options.buffer_length, 8u);
  subscribe("out/#");
  publish("devices/d1/telemetry", R"({"temperature": 21})");
  executors_.drain_all();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].payload, R"({"t":42})");
}

TEST_F(RuleManagerTest, AStuckRuleDropsItsOwnInputAndDelaysNoOtherRule) {
  open_manager();
  create_demo_stream();
  ASSERT_TRUE(manager_
                  ->create_rule(rule(R"({"id": "stuck", "sql": "SELECT * FROM demo",
                       "actions": [{"log": {}}], "options": {"bufferLength": 4}})"))
                  .ok());
  ASSERT_TRUE(manager_
                  ->create_rule(rule(R"({"id": "fast", "sql": "SELECT * FROM demo",
                       "actions": [{"mqtt": {"topic": "out/fast", "sendSingle": true}}]})"))
                  .ok());
  executors_.drain_except("stuck");
  subscribe("out/#");
  // The stuck rule's executor never runs (as if its sink blocked its thread).
  for (int i = 0; i < 10; ++i)
    publish("devices/d/telemetry", "{\"temperature\": " + std::to_string(i) + "}");
  executors_.drain_except("stuck");
  EXPECT_EQ(received.size(), 10u);
  // 4 events wait in its queue (bufferLength 4); the other 6 were dropped and counted.
  EXPECT_EQ(manager_->queued("stuck"), 4u);
  Value st = status("stuck");
  EXPECT_EQ(num(st, "dropped_queue_full_total"), 6);
  EXPECT_EQ(num(st, "records_in_total"), 10);
  EXPECT_THAT(metrics_.render(),
              HasSubstr("ganglion_rule_dropped_total{rule=\"stuck\",reason=\"queue_full\"} 6"));
  // Stopping it does not wait for it.
  ASSERT_TRUE(manager_->stop_rule("stuck").ok());
}

TEST_F(RuleManagerTest, SlowWebhookDoesNotHoldTheRuleAndRetriesAreCounted) {
  open_manager();
  create_demo_stream();
  ASSERT_TRUE(manager_
                  ->create_rule(rule(R"({"id": "hook", "sql": "SELECT deviceId FROM demo",
                       "actions": [{"rest": {"url": "http://127.0.0.1:9/hook", "method": "post", "sendSingle": true,
                                             "timeout": 5000, "retryCount": 1, "retryInterval": 100}},
                                   {"mqtt": {"topic": "out/hook", "sendSingle": true}}]})"))
                  .ok());
  executors_.drain_all();
  subscribe("out/#");
  publish("devices/a/telemetry", R"({"deviceId": "a"})");
  publish("devices/b/telemetry", R"({"deviceId": "b"})");
  executors_.drain_all();
  // Nobody answered the webhook yet: the rule went on.
  EXPECT_EQ(received.size(), 2u);
  ASSERT_EQ(http_->calls.size(), 2u);
  EXPECT_EQ(http_->calls[0].method, "POST");
  EXPECT_EQ(http_->calls[0].url, "http://127.0.0.1:9/hook");
  EXPECT_EQ(http_->calls[0].body, R"({"deviceId":"a"})");
  http_->reply(HttpReply{200, ""});
  http_->reply(Unavailable("http: connect: refused"));
  clock_.advance(std::chrono::milliseconds(100));  // the retry
  ASSERT_EQ(http_->calls.size(), 3u);
  http_->reply(HttpReply{500, "no"});
  Value st = status("hook");
  EXPECT_EQ(num(st, "sink_rest_0_0_records_in_total"), 2);
  EXPECT_EQ(num(st, "sink_rest_0_0_records_out_total"), 1);
  EXPECT_EQ(num(st, "sink_rest_0_0_retries_total"), 1);
  EXPECT_EQ(num(st, "sink_rest_0_0_exceptions_total"), 1);
  EXPECT_THAT(st.find("sink_rest_0_0_last_exception")->as_string(), HasSubstr("answered 500"));
}

TEST_F(RuleManagerTest, PayloadsNotMatchingTheSchemaAreCountedAndSkipped) {
  open_manager();
  create_demo_stream();
  ASSERT_TRUE(manager_
                  ->create_rule(rule(R"({"id": "r", "sql": "SELECT temperature FROM demo",
                       "actions": [{"mqtt": {"topic": "out/r", "sendSingle": true}}]})"))
                  .ok());
  executors_.drain_all();
  subscribe("out/#");
  publish("devices/a/telemetry", R"({"temperature": "hot"})");
  publish("devices/a/telemetry", "not json");
  publish("devices/a/telemetry", R"({"temperature": 3})");
  executors_.drain_all();
  ASSERT_EQ(received.size(), 1u);
  Value st = status("r");
  EXPECT_EQ(num(st, "dropped_decode_total"), 2);
  EXPECT_EQ(num(st, "source_demo_0_exceptions_total"), 2);
  EXPECT_THAT(metrics_.render(),
              HasSubstr("ganglion_rule_dropped_total{rule=\"r\",reason=\"decode\"} 2"));
}

TEST_F(RuleManagerTest, TumblingWindowAverageByDeviceClosesOnTheClock) {
  open_manager();
  create_demo_stream();
  ASSERT_TRUE(
      manager_
          ->create_rule(rule(
              R"j({"id": "avg", "sql": "SELECT deviceId, avg(temperature) AS t FROM demo GROUP BY deviceId, TUMBLINGWINDOW(ss, 1)",
                       "actions": [{"mqtt": {"topic": "avg/{{.deviceId}}", "sendSingle": true}}]})j"))
          .ok());
  executors_.drain_all();
  subscribe("avg/#");
  publish("devices/a/telemetry", R"({"deviceId": "a", "temperature": 10})");
  publish("devices/a/telemetry", R"({"deviceId": "a", "temperature": 20})");
  publish("devices/b/telemetry", R"({"deviceId": "b", "temperature": 5})");
  executors_.drain_all();
  EXPECT_TRUE(received.empty());
  clock_.advance(std::chrono::seconds(1));  // the window's timer posts the emission
  executors_.drain_all();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[0].topic, "avg/a");
  EXPECT_EQ(received[0].payload, R"({"deviceId":"a","t":15})");
  EXPECT_EQ(received[1].topic, "avg/b");
}

TEST_F(RuleManagerTest, LuaFunctionAsSinkAndTriggeredByATopic) {
  open_manager();
  create_demo_stream();
  functions::FunctionSpec fn;
  fn.name = "to_f";
  fn.source =
      R"(function handle(e) emit("fahrenheit/" .. e.payload.deviceId, {f = e.payload.temperature * 9 / 5 + 32}) end)";
  ASSERT_TRUE(manager_->define_function(fn).ok());
  ASSERT_TRUE(
      manager_
          ->create_rule(rule(
              R"({"id": "f", "sql": "SELECT * FROM demo", "actions": [{"function": {"name": "to_f"}}]})"))
          .ok());
  executors_.drain_all();
  subscribe("fahrenheit/#");
  publish("devices/a/telemetry", R"({"deviceId": "a", "temperature": 100})");
  executors_.drain_all();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].topic, "fahrenheit/a");
  EXPECT_EQ(received[0].payload, R"({"f":212})");
  // A function in use by a rule cannot be removed.
  EXPECT_EQ(manager_->remove_function("to_f").code(), StatusCode::kFailedPrecondition);

  functions::FunctionSpec trig;
  trig.name = "echo";
  trig.source = R"(function handle(e) emit("echoed/" .. e.topic, e.raw) end)";
  trig.trigger = functions::TriggerSpec{"raw/#", mqtt::QoS::kAtMostOnce};
  ASSERT_TRUE(manager_->define_function(trig).ok());
  executors_.drain_all();
  subscribe("echoed/#");
  publish("raw/x", "hello");
  executors_.drain_all();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[1].topic, "echoed/raw/x");
  EXPECT_EQ(received[1].payload, "hello");
}

TEST_F(RuleManagerTest, UplinkSinkSubmitsToTheClass) {
  open_manager();
  create_demo_stream();
  ASSERT_TRUE(manager_
                  ->create_rule(rule(
                      R"({"id": "up", "sql": "SELECT deviceId FROM demo WHERE temperature > 50",
                       "actions": [{"uplink": {"class": "alert", "sendSingle": true}}]})"))
                  .ok());
  executors_.drain_all();
  publish("devices/a/telemetry", R"({"deviceId": "a", "temperature": 90})");
  executors_.drain_all();
  ASSERT_EQ(uplinked.size(), 1u);
  EXPECT_EQ(uplinked[0].first, "alert");
  EXPECT_EQ(uplinked[0].second, R"({"deviceId":"a"})");
}

TEST_F(RuleManagerTest, StreamInUseCannotBeDroppedAndUpdateRestartsItsRules) {
  open_manager();
  create_demo_stream();
  ASSERT_TRUE(
      manager_
          ->create_rule(rule(
              R"({"id": "r", "sql": "SELECT * FROM demo", "actions": [{"mqtt": {"topic": "out/r", "sendSingle": true}}]})"))
          .ok());
  executors_.drain_all();
  EXPECT_EQ(manager_->drop_stream("demo", false).code(), StatusCode::kFailedPrecondition);
  // Move the stream to another topic: the rule follows.
  ASSERT_TRUE(manager_
                  ->update_stream("demo",
                                  "CREATE STREAM demo (temperature FLOAT, deviceId STRING) WITH "
                                  "(DATASOURCE=\"plant/#\")",
                                  false)
                  .ok());
  executors_.drain_all();
  subscribe("out/#");
  publish("devices/a/telemetry", R"({"deviceId": "a"})");
  publish("plant/a", R"({"deviceId": "b"})");
  executors_.drain_all();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].payload, R"({"deviceId":"b"})");
  ASSERT_TRUE(manager_->delete_rule("r").ok());
  EXPECT_TRUE(manager_->drop_stream("demo", false).ok());
}

}  // namespace
}  // namespace ganglion::rules
