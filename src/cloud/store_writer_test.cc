#include "cloud/store_writer.h"

#include <gtest/gtest.h>

#include "cloud/tokens.h"

namespace ganglion::cloud {
namespace {

// A store whose write_group() can be made to fail, and which records what it was given and
// whether any completion had run by then. Everything else is the real in-memory SQLite store.
class RecordingStore final : public Store {
 public:
  explicit RecordingStore(std::unique_ptr<Store> real) : real_(std::move(real)) {}

  GroupResult write_group(const WriteGroup& g, std::int64_t now_ms) override {
    ++groups;
    completions_before_commit.push_back(completions);
    last_batches = g.batches.size();
    last_enrolments = g.enrolments.size();
    last_state_rows = g.heartbeats.size() + g.reported.size() + g.health.size();
    if (fail_next) {
      fail_next = false;
      Status s = IoError("disk full");
      return {s, std::vector<Result<IngestOutcome>>(g.batches.size(), Result<IngestOutcome>(s)),
              std::vector<Status>(g.enrolments.size(), s)};
    }
    return real_->write_group(g, now_ms);
  }

  Status enroll(const std::string& h, std::int64_t now, const NodeRecord& n) override {
    return real_->enroll(h, now, n);
  }
  Result<NodeRecord> node(const std::string& id) override { return real_->node(id); }
  Result<std::vector<NodeRecord>> nodes() override { return real_->nodes(); }
  Result<NodePage> nodes_page(const std::string& after, std::size_t limit,
                              const LabelMap& selector) override {
    return real_->nodes_page(after, limit, selector);
  }
  Status set_labels(const std::string& id, const LabelMap& l) override {
    return real_->set_labels(id, l);
  }
  Status set_revoked(const std::string& id) override { return real_->set_revoked(id); }
  Status set_certificate(const std::string& id, const std::string& serial, std::int64_t exp,
                         const std::string& key) override {
    return real_->set_certificate(id, serial, exp, key);
  }
  Status record_heartbeat(const std::string& id, std::int64_t ts, const std::string& v,
                          const std::string& hb) override {
    return real_->record_heartbeat(id, ts, v, hb);
  }
  Status set_health(const HealthChange& c) override { return real_->set_health(c); }
  Result<std::vector<HealthChange>> health_history(const std::string& id,
                                                   std::size_t limit) override {
    return real_->health_history(id, limit);
  }
  Status set_desired(const std::string& id, const std::string& j, std::int64_t v) override {
    return real_->set_desired(id, j, v);
  }
  Status set_reported(const std::string& id, const std::string& j, std::int64_t v,
                      std::int64_t ts) override {
    return real_->set_reported(id, j, v, ts);
  }
  Status add_bootstrap_token(const BootstrapToken& t) override {
    return real_->add_bootstrap_token(t);
  }
  Result<BootstrapToken> bootstrap_token_by_hash(const std::string& h) override {
    return real_->bootstrap_token_by_hash(h);
  }
  Result<std::vector<BootstrapToken>> bootstrap_tokens() override {
    return real_->bootstrap_tokens();
  }
  Status delete_bootstrap_token(const std::string& id) override {
    return real_->delete_bootstrap_token(id);
  }
  Status add_api_token(const ApiToken& t) override { return real_->add_api_token(t); }
  Result<ApiToken> api_token_by_hash(const std::string& h) override {
    return real_->api_token_by_hash(h);
  }
  Result<std::vector<ApiToken>> api_tokens() override { return real_->api_tokens(); }
  Status audit(const AuditEntry& e) override { return real_->audit(e); }
  Result<std::vector<AuditEntry>> audit_log(std::int64_t since, std::size_t limit) override {
    return real_->audit_log(since, limit);
  }
  Result<IngestOutcome> ingest(const IngestBatch& b, std::int64_t now) override {
    return real_->ingest(b, now);
  }
  Status ingest_rejected(const std::string& n, const std::string& e, std::int64_t now) override {
    return real_->ingest_rejected(n, e, now);
  }
  Result<std::vector<IngestStats>> ingest_stats() override { return real_->ingest_stats(); }
  Result<IngestStats> node_ingest_stats(const std::string& n) override {
    return real_->node_ingest_stats(n);
  }
  Result<std::int64_t> record_count(const std::string& n) override {
    return real_->record_count(n);
  }
  Result<std::vector<QueryRow>> query(const SqlQuery& q) override { return real_->query(q); }
  Status rollup(std::int64_t before) override { return real_->rollup(before); }
  Result<std::int64_t> apply_retention(std::int64_t raw, std::int64_t rollup) override {
    return real_->apply_retention(raw, rollup);
  }
  std::int64_t schema_version() override { return real_->schema_version(); }

  int groups = 0;
  int completions = 0;  // bumped by the tests' completions
  std::vector<int> completions_before_commit;
  std::size_t last_batches = 0, last_enrolments = 0, last_state_rows = 0;
  bool fail_next = false;

 private:
  std::unique_ptr<Store> real_;
};

struct StoreWriterTest : ::testing::Test {
  void SetUp() override {
    auto s = open_sqlite_store(":memory:");
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    store = std::make_unique<RecordingStore>(std::move(*s));
    writer = std::make_unique<StoreWriter>(*store, clock);
    for (const char* id : {"n1", "n2"}) {
      auto t = make_bootstrap_token({}, 60'000, 1, 0, "test");
      ASSERT_TRUE(store->add_bootstrap_token(t.record).ok());
      NodeRecord n;
      n.id = id;
      n.key_sha256 = std::string("k-") + id;
      ASSERT_TRUE(store->enroll(t.record.hash, 10, n).ok());
    }
  }
  static IngestBatch batch(const std::string& node, std::uint64_t seq, std::uint64_t end,
                           std::vector<std::uint64_t> offsets) {
    IngestBatch b{node, "telemetry", seq, end, {}};
    for (auto o : offsets)
      b.records.push_back({o, 60'000 + static_cast<std::int64_t>(o), "t", "{\"v\":1}"});
    return b;
  }
  // Submits `b`; its outcome lands in outcomes[i] (i = submission order).
  void submit(IngestBatch b) {
    const std::size_t i = outcomes.size();
    outcomes.emplace_back(std::nullopt);
    writer->submit(std::move(b), [this, i](Result<IngestOutcome> r) {
      ++store->completions;
      outcomes[i] = std::move(r);
    });
  }

  ManualClock clock;
  std::unique_ptr<RecordingStore> store;
  std::unique_ptr<StoreWriter> writer;
  std::vector<std::optional<Result<IngestOutcome>>> outcomes;
};

TEST_F(StoreWriterTest, BatchesQueuedTogetherAreOneCommitAndCompleteOnlyAfterIt) {
  submit(batch("n1", 0, 3, {0, 1, 2}));
  submit(batch("n2", 0, 2, {0, 1}));
  submit(batch("n1", 3, 5, {3, 4}));
  submit(batch("n1", 0, 3, {0, 1, 2}));  // the first one again, in the same group
  for (const auto& o : outcomes) EXPECT_FALSE(o.has_value());  // nothing before the commit
  EXPECT_EQ(store->groups, 0);

  ASSERT_TRUE(writer->commit().ok());
  EXPECT_EQ(store->groups, 1);
  EXPECT_EQ(store->last_batches, 4u);
  EXPECT_EQ(store->completions_before_commit, std::vector<int>{0});  // none ran before it
  ASSERT_EQ(store->completions, 4);
  for (const auto& o : outcomes) ASSERT_TRUE(o.has_value() && o->ok());
  EXPECT_EQ((*outcomes[0])->stored, 3u);
  EXPECT_EQ((*outcomes[2])->stored, 2u);
  EXPECT_TRUE((*outcomes[3])->duplicate);  // dedupe sees earlier batches of its own group
  EXPECT_EQ(*store->record_count("n1"), 5);
  EXPECT_EQ(*store->record_count("n2"), 2);
  EXPECT_EQ(writer->stats().commits, 1u);
  EXPECT_EQ(writer->stats().batches, 4u);

  ASSERT_TRUE(writer->commit().ok());  // nothing left: no transaction
  EXPECT_EQ(store->groups, 1);
}

Enrolment enrolment(const std::string& token_hash, const std::string& id, std::int64_t now) {
  NodeRecord n;
  n.id = id;
  n.enrolled_at_ms = now;
  n.key_sha256 = "k-" + id;
  n.cert_serial = "s-" + id;
  return {token_hash, n, AuditEntry{0, now, "bootstrap-token:t", "node.enroll", id, "ok", ""}};
}

TEST_F(StoreWriterTest, EnrolmentsQueuedTogetherShareOneCommitWithTheirAuditEntries) {
  auto t = make_bootstrap_token({{"site", "eu-1"}}, 60'000, 2, 0, "test");
  ASSERT_TRUE(store->add_bootstrap_token(t.record).ok());
  std::vector<std::optional<Status>> done(3);
  for (int i = 0; i < 3; ++i) {
    writer->enroll(enrolment(t.record.hash, "e" + std::to_string(i), 100),
                   [&, i](Status s) { done[i] = std::move(s); });
  }
  submit(batch("n1", 0, 1, {0}));
  for (const auto& d : done) EXPECT_FALSE(d.has_value());  // nothing before the commit

  ASSERT_TRUE(writer->commit().ok());
  EXPECT_EQ(store->groups, 1);  // three enrolments and a batch: one transaction
  EXPECT_EQ(store->last_enrolments, 3u);
  ASSERT_TRUE(done[0] && done[1] && done[2]);
  EXPECT_TRUE(done[0]->ok());
  EXPECT_TRUE(done[1]->ok());
  // The token allows two: the third is refused alone and leaves nothing behind.
  EXPECT_EQ(done[2]->code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(outcomes[0].has_value() && outcomes[0]->ok());
  EXPECT_TRUE(store->node("e0").ok());
  EXPECT_TRUE(store->node("e1").ok());
  EXPECT_EQ(store->node("e2").status().code(), StatusCode::kNotFound);
  auto log = store->audit_log(0, 100);
  ASSERT_TRUE(log.ok());
  std::vector<std::string> audited;
  for (const auto& e : *log)
    if (e.action == "node.enroll") audited.push_back(e.target);
  EXPECT_EQ(audited, (std::vector<std::string>{"e0", "e1"}));
  EXPECT_EQ(store->bootstrap_token_by_hash(t.record.hash)->uses, 2);
  EXPECT_EQ(writer->stats().enrolments, 3u);
}

TEST_F(StoreWriterTest, AFailedCommitFailsItsEnrolmentsAndStoresNone) {
  auto t = make_bootstrap_token({}, 60'000, 5, 0, "test");
  ASSERT_TRUE(store->add_bootstrap_token(t.record).ok());
  std::optional<Status> done;
  writer->enroll(enrolment(t.record.hash, "e0", 100), [&](Status s) { done = std::move(s); });
  store->fail_next = true;
  EXPECT_FALSE(writer->commit().ok());
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->code(), StatusCode::kIoError);
  EXPECT_EQ(store->node("e0").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->bootstrap_token_by_hash(t.record.hash)->uses, 0);
}

TEST_F(StoreWriterTest, EnrolmentAfterStopIsRefusedAtOnce) {
  writer->stop();
  std::optional<Status> done;
  writer->enroll(enrolment("h", "e0", 100), [&](Status s) { done = std::move(s); });
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->code(), StatusCode::kUnavailable);
}

TEST_F(StoreWriterTest, ResentTailInTheSameGroupIsStoredOnce) {
  submit(batch("n1", 0, 5, {0, 1, 2, 3, 4}));
  submit(batch("n1", 3, 8, {3, 4, 5, 6, 7}));  // recut after a node crash
  ASSERT_TRUE(writer->commit().ok());
  EXPECT_EQ((*outcomes[1])->stored, 3u);
  EXPECT_EQ((*outcomes[1])->skipped, 2u);
  EXPECT_EQ(*store->record_count("n1"), 8);
}

TEST_F(StoreWriterTest, AFailedCommitAcknowledgesNoneAndStoresNothing) {
  submit(batch("n1", 0, 2, {0, 1}));
  submit(batch("n2", 0, 1, {0}));
  writer->heartbeat({"n1", 1000, "1.0", "{\"cpu\":0.5}"});
  writer->health({"n1", 1000, "offline", "healthy", ""});
  store->fail_next = true;
  EXPECT_FALSE(writer->commit(/*with_state=*/true).ok());
  ASSERT_EQ(store->completions, 2);
  for (const auto& o : outcomes) {
    ASSERT_TRUE(o.has_value());
    EXPECT_FALSE(o->ok());  // the controller acknowledges only ok outcomes
  }
  EXPECT_EQ(*store->record_count("n1"), 0);
  EXPECT_EQ(writer->stats().failed_commits, 1u);
  // The node state is kept and goes with the next commit.
  EXPECT_FALSE(writer->idle());
  EXPECT_EQ(writer->unwritten_health("n1").size(), 1u);
  ASSERT_TRUE(writer->commit(true).ok());
  EXPECT_TRUE(writer->idle());
  EXPECT_EQ(store->last_state_rows, 2u);
  EXPECT_EQ(store->node("n1")->last_heartbeat_ms, 1000);
  EXPECT_EQ(store->node("n1")->health, "healthy");
  EXPECT_EQ(store->health_history("n1", 10)->size(), 1u);
}

TEST_F(StoreWriterTest, HeartbeatsAreWrittenBehindOncePerFlush) {
  for (int i = 1; i <= 100; ++i) {
    writer->heartbeat({"n1", i, "1.0", "{\"i\":" + std::to_string(i) + "}"});
    writer->heartbeat({"n2", i, "2.0", "{}"});
  }
  ASSERT_TRUE(writer->commit().ok());  // no flush asked for: nothing written
  EXPECT_EQ(store->groups, 0);
  EXPECT_EQ(store->node("n1")->last_heartbeat_ms, 0);
  // Readers see the latest at once through the overlay.
  NodeRecord n = *store->node("n1");
  writer->overlay(n);
  EXPECT_EQ(n.last_heartbeat_ms, 100);
  EXPECT_EQ(n.last_heartbeat, "{\"i\":100}");
  EXPECT_EQ(n.version, "1.0");

  writer->flush_state();
  ASSERT_TRUE(writer->commit().ok());
  EXPECT_EQ(store->groups, 1);
  EXPECT_EQ(store->last_state_rows, 2u);  // one row per node, not per heartbeat
  EXPECT_EQ(store->node("n1")->last_heartbeat, "{\"i\":100}");
  EXPECT_EQ(store->node("n2")->version, "2.0");
  EXPECT_TRUE(writer->idle());
  writer->flush_state();
  ASSERT_TRUE(writer->commit().ok());  // nothing dirty: no transaction
  EXPECT_EQ(store->groups, 1);
}

TEST_F(StoreWriterTest, ReportedVersionsContinueFromTheStore) {
  ASSERT_TRUE(store->set_reported("n1", "{\"a\":0}", 7, 5).ok());
  int store_reads = 0;
  auto stored = [&] {
    ++store_reads;
    return store->node("n1")->reported_version;
  };
  EXPECT_EQ(writer->reported("n1", "{\"a\":1}", 10, stored), 8);
  EXPECT_EQ(writer->reported("n1", "{\"a\":2}", 11, stored), 9);
  EXPECT_EQ(store_reads, 1);
  NodeRecord n = *store->node("n1");
  writer->overlay(n);
  EXPECT_EQ(n.reported_version, 9);
  EXPECT_EQ(n.reported, "{\"a\":2}");
  ASSERT_TRUE(writer->commit(true).ok());
  EXPECT_EQ(store->node("n1")->reported_version, 9);
  EXPECT_EQ(store->node("n1")->reported_at_ms, 11);
}

TEST_F(StoreWriterTest, HealthChangesGoWithTheNextCommitWithoutAFlush) {
  writer->health({"n1", 5, "offline", "healthy", ""});
  writer->health({"n1", 6, "healthy", "degraded", "heartbeat late"});
  EXPECT_EQ(writer->unwritten_health("n1").size(), 2u);
  NodeRecord n = *store->node("n1");
  writer->overlay(n);
  EXPECT_EQ(n.health, "degraded");
  EXPECT_EQ(n.health_reason, "heartbeat late");
  ASSERT_TRUE(writer->commit().ok());
  EXPECT_EQ(store->groups, 1);
  EXPECT_TRUE(writer->unwritten_health("n1").empty());
  auto h = store->health_history("n1", 10);
  ASSERT_EQ(h->size(), 2u);
  EXPECT_EQ((*h)[1].to, "degraded");
  EXPECT_EQ(store->node("n1")->health, "degraded");
}

TEST_F(StoreWriterTest, GroupsAreBounded) {
  writer = std::make_unique<StoreWriter>(*store, clock, StoreWriter::Options{2, {}});
  for (std::uint64_t i = 0; i < 5; ++i) submit(batch("n1", i, i + 1, {i}));
  ASSERT_TRUE(writer->commit().ok());
  EXPECT_EQ(store->last_batches, 2u);
  EXPECT_EQ(store->completions, 2);
  ASSERT_TRUE(writer->commit().ok());
  ASSERT_TRUE(writer->commit().ok());
  EXPECT_EQ(store->groups, 3);
  EXPECT_EQ(store->completions, 5);
}

TEST_F(StoreWriterTest, StopWritesEverythingLeft) {
  writer->start();
  writer->heartbeat({"n2", 42, "1.0", "{}"});
  writer->stop();  // joins the thread, then commits what it did not
  EXPECT_TRUE(writer->idle());
  EXPECT_EQ(store->node("n2")->last_heartbeat_ms, 42);
  writer->stop();  // idempotent
}

TEST_F(StoreWriterTest, CommittingThreadCompletesSubmittedBatches) {
  writer->start();
  submit(batch("n1", 0, 1, {0}));
  writer->stop();  // whether the thread or stop() committed it, it is done now
  ASSERT_TRUE(outcomes[0].has_value());
  EXPECT_TRUE(outcomes[0]->ok());
  EXPECT_EQ(*store->record_count("n1"), 1);
}

}  // namespace
}  // namespace ganglion::cloud
