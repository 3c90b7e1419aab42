#include "log/log_store.h"

#include <gtest/gtest.h>

#include "base/mem_env.h"

namespace ganglion::log {
namespace {

ClassOptions klass(std::string name, int priority, QuotaPolicy policy) {
  ClassOptions c;
  c.name = std::move(name);
  c.priority = priority;
  c.log.quota_policy = policy;
  c.log.segment_bytes = 1000;
  c.log.warn = [](std::string_view) {};
  return c;
}

TEST(LogStore, OpensClassesAndListsThemByPriority) {
  MemEnv mem;
  ManualClock clock;
  StoreOptions o;
  o.classes = {klass("telemetry", 1, QuotaPolicy::kDropOldest),
               klass("alerts", 9, QuotaPolicy::kRefuseNewest)};
  auto store = std::move(LogStore::open(mem, clock, "/node/log", o)).value();
  EXPECT_EQ(store->classes_by_priority(), (std::vector<std::string>{"alerts", "telemetry"}));
  ASSERT_TRUE(store->append("alerts", "fire", 1).ok());
  EXPECT_EQ(store->append("nope", "x", 1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->find("alerts")->read(0, 100)->records()[0].payload, "fire");
  EXPECT_TRUE(mem.exists("/node/log/alerts"));
}

TEST(LogStore, RejectsBadClassNames) {
  MemEnv mem;
  ManualClock clock;
  StoreOptions o;
  o.classes = {klass("../etc", 1, QuotaPolicy::kDropOldest)};
  EXPECT_EQ(LogStore::open(mem, clock, "/d", o).status().code(), StatusCode::kInvalidArgument);
  o.classes = {klass("a", 1, QuotaPolicy::kDropOldest), klass("a", 2, QuotaPolicy::kDropOldest)};
  EXPECT_EQ(LogStore::open(mem, clock, "/d", o).status().code(), StatusCode::kInvalidArgument);
}

TEST(LogStore, TotalBudgetDropsLowerPriorityClassesFirst) {
  MemEnv mem;
  ManualClock clock;
  StoreOptions o;
  o.total_budget_bytes = 10000;
  o.classes = {klass("bulk", 1, QuotaPolicy::kDropOldest),
               klass("alerts", 9, QuotaPolicy::kRefuseNewest)};
  auto store = std::move(LogStore::open(mem, clock, "/node/log", o)).value();
  const std::string payload(100, 'p');
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(store->append("bulk", payload, 1).ok());
  // Alerts take room from bulk, never the reverse.
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(store->append("alerts", payload, 1).ok()) << i;
  EXPECT_LE(store->disk_bytes(), 10000u + 200u);
  EXPECT_GT(store->segments_dropped_for_budget(), 0u);
  EXPECT_GT(store->find("bulk")->metrics().dropped_by_quota, 0u);
  EXPECT_EQ(store->find("alerts")->read(0, 1 << 20)->size(), 40u);
  // Once bulk has nothing left to give, alerts (kRefuseNewest) are refused.
  Status last;
  for (int i = 0; i < 200 && last.ok(); ++i) last = store->append("alerts", payload, 1).status();
  EXPECT_EQ(last.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(store->refused_by_budget(), 1u);
  EXPECT_TRUE(store->close().ok());
}

}  // namespace
}  // namespace ganglion::log
