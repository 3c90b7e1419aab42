#include "cloud/store.h"

#include <gtest/gtest.h>

#include "cloud/query.h"
#include "cloud/tokens.h"

namespace ganglion::cloud {
namespace {

struct StoreTest : ::testing::Test {
  void SetUp() override {
    auto s = open_sqlite_store(":memory:");
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    store = std::move(*s);
  }
  NodeRecord enroll(const std::string& id, LabelMap labels = {}) {
    auto t = make_bootstrap_token(labels, 60'000, 1, 0, "test");
    EXPECT_TRUE(store->add_bootstrap_token(t.record).ok());
    NodeRecord n;
    n.id = id;
    n.labels = labels;
    n.key_sha256 = "k-" + id;
    n.cert_serial = "s-" + id;
    EXPECT_TRUE(store->enroll(t.record.hash, 10, n).ok());
    return n;
  }
  IngestBatch batch(const std::string& node, std::uint64_t seq, std::uint64_t end,
                    std::vector<std::uint64_t> offsets) {
    IngestBatch b{node, "telemetry", seq, end, {}};
    for (auto o : offsets)
      b.records.push_back(
          {o, 60'000 + static_cast<std::int64_t>(o), "t", "{\"temp\":" + std::to_string(o) + "}"});
    return b;
  }
  std::unique_ptr<Store> store;
};

TEST_F(StoreTest, MigratesToTheLatestSchema) { EXPECT_EQ(store->schema_version(), 1); }

TEST_F(StoreTest, EnrolConsumesTheTokenOnceInOneTransaction) {
  auto t = make_bootstrap_token({{"site", "eu-1"}}, 60'000, 1, 0, "test");
  ASSERT_TRUE(store->add_bootstrap_token(t.record).ok());
  NodeRecord n{.id = "n1", .labels = {{"site", "eu-1"}}, .key_sha256 = "k"};
  ASSERT_TRUE(store->enroll(t.record.hash, 10, n).ok());
  EXPECT_EQ(store->enroll(t.record.hash, 10, NodeRecord{.id = "n2"}).code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(store->node("n2").status().code(), StatusCode::kNotFound);  // rolled back
  auto expired = make_bootstrap_token({}, 5, 3, 0, "test");
  ASSERT_TRUE(store->add_bootstrap_token(expired.record).ok());
  EXPECT_EQ(store->enroll(expired.record.hash, 5, NodeRecord{.id = "n3"}).code(),
            StatusCode::kPermissionDenied);
  auto got = store->node("n1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->labels.at("site"), "eu-1");
  EXPECT_EQ(store->bootstrap_token_by_hash(t.record.hash)->uses, 1);
}

TEST_F(StoreTest, BatchIsStoredOnceAndResentRecordsAreSkipped) {
  enroll("n1");
  auto first = store->ingest(batch("n1", 0, 5, {0, 1, 2, 3, 4}), 1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->stored, 5u);
  auto again = store->ingest(batch("n1", 0, 5, {0, 1, 2, 3, 4}), 2);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  // After a node crash the tail is resent in a differently cut batch.
  auto recut = store->ingest(batch("n1", 3, 8, {3, 4, 5, 6, 7}), 3);
  ASSERT_TRUE(recut.ok());
  EXPECT_EQ(recut->stored, 3u);
  EXPECT_EQ(recut->skipped, 2u);
  EXPECT_EQ(*store->record_count("n1"), 8);
  auto stats = store->ingest_stats();
  ASSERT_EQ(stats->size(), 1u);
  EXPECT_EQ((*stats)[0].batches, 2);
  EXPECT_EQ((*stats)[0].duplicates, 1);
  auto one = store->node_ingest_stats("n1");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->batches, 2);
  EXPECT_EQ(one->records, 8);
  EXPECT_EQ(one->duplicates, 1);
  auto none = store->node_ingest_stats("n2");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->node, "n2");
  EXPECT_EQ(none->batches, 0);
}

TEST_F(StoreTest, QueriesGroupByLabelAndRollupsAgree) {
  enroll("n1", {{"site", "eu-1"}});
  enroll("n2", {{"site", "us-1"}});
  ASSERT_TRUE(store->ingest(batch("n1", 0, 3, {0, 1, 2}), 1).ok());
  ASSERT_TRUE(store->ingest(batch("n2", 0, 2, {10, 20}), 1).ok());
  auto p = parse_query_params(
      {{"metric", "temp"}, {"agg", "avg"}, {"group_by", "site"}, {"from", "0"}, {"to", "200000"}},
      0);
  ASSERT_TRUE(p.ok());
  auto rows = store->query(*build_query(*p));
  ASSERT_TRUE(rows.ok()) << rows.status().to_string();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].group, "eu-1");
  EXPECT_DOUBLE_EQ((*rows)[0].value, 1.0);
  EXPECT_EQ((*rows)[1].group, "us-1");
  EXPECT_DOUBLE_EQ((*rows)[1].value, 15.0);

  ASSERT_TRUE(store->rollup(180'000).ok());
  ASSERT_TRUE(store->rollup(180'000).ok());  // idempotent: the watermark moved
  p->rollup = true;
  auto rolled = store->query(*build_query(*p));
  ASSERT_TRUE(rolled.ok()) << rolled.status().to_string();
  ASSERT_EQ(rolled->size(), 2u);
  EXPECT_DOUBLE_EQ((*rolled)[1].value, 15.0);
  EXPECT_EQ((*rolled)[1].samples, 2);

  auto deleted = store->apply_retention(60'005, 0);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 3);  // n1 at ts 60000..60002; n2 at 60010 and 60020 stay
  EXPECT_EQ(store->query(*build_query(*p))->size(), 2u);  // rollups outlive raw data
}

TEST_F(StoreTest, NodesArePagedInIdOrderWithASelector) {
  for (const char* id : {"c", "a", "e", "b", "d"})
    enroll(id, {{"site", std::string(id) < "c" ? "eu-1" : "us-1"}});
  auto p1 = store->nodes_page("", 2, {});
  ASSERT_TRUE(p1.ok()) << p1.status().to_string();
  ASSERT_EQ(p1->items.size(), 2u);
  EXPECT_EQ(p1->items[0].id, "a");
  EXPECT_EQ(p1->items[1].id, "b");
  EXPECT_TRUE(p1->more);
  auto p2 = store->nodes_page("b", 3, {});
  ASSERT_EQ(p2->items.size(), 3u);
  EXPECT_EQ(p2->items[2].id, "e");
  EXPECT_FALSE(p2->more);  // exactly the rest
  auto us = store->nodes_page("", 2, {{"site", "us-1"}});
  ASSERT_EQ(us->items.size(), 2u);
  EXPECT_EQ(us->items[0].id, "c");
  EXPECT_TRUE(us->more);
  auto rest = store->nodes_page(us->items.back().id, 2, {{"site", "us-1"}});
  ASSERT_EQ(rest->items.size(), 1u);
  EXPECT_EQ(rest->items[0].id, "e");
  EXPECT_FALSE(rest->more);
  EXPECT_EQ(store->nodes_page("", 100, {})->items.size(), 5u);
}

TEST_F(StoreTest, WriteGroupStoresNodeStateAndBatchesInOneTransaction) {
  enroll("n1");
  WriteGroup g;
  g.heartbeats.push_back({"n1", 100, "1.2", "{\"cpu\":0.1}"});
  g.heartbeats.push_back({"gone", 100, "1.2", "{}"});  // unknown nodes are ignored
  g.reported.push_back({"n1", "{\"r\":1}", 4, 101});
  g.health.push_back({"n1", 102, "offline", "healthy", ""});
  g.batches.push_back(batch("n1", 0, 2, {0, 1}));
  g.batches.push_back(batch("n1", 0, 2, {0, 1}));
  GroupResult r = store->write_group(g, 103);
  ASSERT_TRUE(r.status.ok()) << r.status.to_string();
  ASSERT_EQ(r.batches.size(), 2u);
  EXPECT_EQ(r.batches[0]->stored, 2u);
  EXPECT_TRUE(r.batches[1]->duplicate);
  auto n = store->node("n1");
  EXPECT_EQ(n->last_heartbeat_ms, 100);
  EXPECT_EQ(n->version, "1.2");
  EXPECT_EQ(n->reported_version, 4);
  EXPECT_EQ(n->health, "healthy");
  EXPECT_EQ(store->health_history("n1", 5)->size(), 1u);
  EXPECT_EQ(*store->record_count("n1"), 2);
}

TEST_F(StoreTest, RevocationHealthTwinsAndAudit) {
  enroll("n1");
  ASSERT_TRUE(store->set_health({"n1", 5, "offline", "healthy", ""}).ok());
  ASSERT_TRUE(store->set_health({"n1", 6, "healthy", "degraded", "heartbeat late"}).ok());
  auto h = store->health_history("n1", 10);
  ASSERT_EQ(h->size(), 2u);
  EXPECT_EQ((*h)[1].reason, "heartbeat late");
  EXPECT_EQ(store->node("n1")->health, "degraded");
  ASSERT_TRUE(store->set_desired("n1", "{\"a\":1}", 1).ok());
  EXPECT_EQ(store->node("n1")->desired_version, 1);
  ASSERT_TRUE(store->set_revoked("n1").ok());
  EXPECT_TRUE(store->node("n1")->revoked);
  EXPECT_EQ(store->set_revoked("nope").code(), StatusCode::kNotFound);
  ASSERT_TRUE(store->audit({0, 1, "api:admin", "node.revoke", "n1", "ok", ""}).ok());
  auto log = store->audit_log(0, 10);
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0].action, "node.revoke");
}

}  // namespace
}  // namespace ganglion::cloud
