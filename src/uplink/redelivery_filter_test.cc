#include "uplink/redelivery_filter.h"

#include <gtest/gtest.h>

#include "base/mem_env.h"
#include "uplink/batch_format.h"

namespace ganglion::uplink {
namespace {

std::unique_ptr<log::LogStore> open_store(Env& env, Clock& clock) {
  log::StoreOptions o;
  for (const char* name : {"alerts", "telemetry"}) {
    log::ClassOptions c;
    c.name = name;
    c.priority = name[0] == 'a' ? 9 : 1;
    c.log.segment_bytes = 4096;
    c.log.warn = [](std::string_view) {};
    o.classes.push_back(std::move(c));
  }
  return std::move(log::LogStore::open(env, clock, "/node/uplink", std::move(o))).value();
}

std::string rec(std::string_view topic, std::string_view payload, std::uint64_t id) {
  return *encode_record(topic, payload, id);
}

TEST(RedeliveryFilter, RecognisesEachLoggedRecordOnceByIdClassAndContent) {
  MemEnv env;
  ManualClock clock;
  {
    auto store = open_store(env, clock);
    ASSERT_TRUE(store->append("telemetry", rec("m/1", "{\"v\":1}", 7), 1).ok());
    ASSERT_TRUE(store->append("telemetry", rec("m/2", "{\"v\":2}", 8), 1).ok());
    ASSERT_TRUE(store->append("alerts", rec("m/1", "{\"v\":1}", 7), 1).ok());
    ASSERT_TRUE(store->append("telemetry", rec("rule/out", "{}", 0), 1).ok());  // no id
    ASSERT_TRUE(store->close().ok());
  }
  auto store = open_store(env, clock);  // as after a restart
  RedeliveryFilter f;
  ASSERT_TRUE(f.scan(*store, 1000).ok());
  EXPECT_EQ(f.size(), 3u);
  // Same id but another class, another payload, or no id: not a redelivery.
  EXPECT_FALSE(f.take("bulk", 8, rec("m/2", "{\"v\":2}", 8)));
  EXPECT_FALSE(f.take("telemetry", 8, rec("m/2", "{\"v\":3}", 8)));
  EXPECT_FALSE(f.take("telemetry", 8, rec("m/3", "{\"v\":2}", 8)));
  EXPECT_FALSE(f.take("telemetry", 0, rec("rule/out", "{}", 0)));
  // The redeliveries, each once (a message matching two routes was logged in two classes).
  EXPECT_TRUE(f.take("telemetry", 8, rec("m/2", "{\"v\":2}", 8)));
  EXPECT_FALSE(f.take("telemetry", 8, rec("m/2", "{\"v\":2}", 8)));
  EXPECT_TRUE(f.take("telemetry", 7, rec("m/1", "{\"v\":1}", 7)));
  EXPECT_TRUE(f.take("alerts", 7, rec("m/1", "{\"v\":1}", 7)));
  EXPECT_EQ(f.size(), 0u);
}

TEST(RedeliveryFilter, ReadsOnlyTheTailOfEachClass) {
  MemEnv env;
  ManualClock clock;
  auto store = open_store(env, clock);
  for (std::uint64_t id = 1; id <= 100; ++id) {
    ASSERT_TRUE(store->append("telemetry", rec("m", std::to_string(id), id), 1).ok());
  }
  RedeliveryFilter f;
  ASSERT_TRUE(f.scan(*store, 10).ok());
  EXPECT_EQ(f.size(), 10u);
  EXPECT_FALSE(f.take("telemetry", 90, rec("m", "90", 90)));
  EXPECT_TRUE(f.take("telemetry", 91, rec("m", "91", 91)));
  EXPECT_TRUE(f.take("telemetry", 100, rec("m", "100", 100)));
}

TEST(RedeliveryFilter, AnEmptyLogRemembersNothing) {
  MemEnv env;
  ManualClock clock;
  auto store = open_store(env, clock);
  RedeliveryFilter f;
  ASSERT_TRUE(f.scan(*store, 1000).ok());
  EXPECT_EQ(f.size(), 0u);
  EXPECT_FALSE(f.take("telemetry", 1, rec("m", "x", 1)));
}

}  // namespace
}  // namespace ganglion::uplink
