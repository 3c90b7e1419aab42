#include "cloud/ingest.h"

#include <gtest/gtest.h>
#include <zstd.h>

namespace ganglion::cloud {
namespace {

void put(std::string& s, std::uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}

struct Rec {
  std::uint64_t offset;
  std::int64_t ts;
  std::string topic, payload;
};

// A batch in the uplink format version 1 (src/uplink/README.md), built independently.
std::string gub1(const std::string& node, const std::string& cls, std::uint64_t seq,
                 std::uint64_t end, const std::vector<Rec>& recs, bool zstd) {
  std::string body;
  for (const auto& r : recs) {
    put(body, r.offset, 8);
    put(body, static_cast<std::uint64_t>(r.ts), 8);
    put(body, r.topic.size(), 2);
    body += r.topic;
    put(body, r.payload.size(), 4);
    body += r.payload;
  }
  std::string out = "GUB1";
  put(out, 1, 1);
  put(out, zstd ? 1 : 0, 1);
  put(out, 0, 2);
  put(out, seq, 8);
  put(out, end, 8);
  put(out, recs.size(), 4);
  put(out, body.size(), 4);
  for (const auto* s : {&node, &cls}) {
    put(out, s->size(), 1);
    out += *s;
  }
  put(out, 0, 1);  // region
  if (!zstd) return out + body;
  std::string z(ZSTD_compressBound(body.size()), '\0');
  z.resize(ZSTD_compress(z.data(), z.size(), body.data(), body.size(), 3));
  return out + z;
}

TEST(Ingest, DecodesCompressedAndRawBatches) {
  for (bool zstd : {true, false}) {
    auto b = decode_uplink_batch(
        gub1("n1", "telemetry", 7, 10,
             {{7, 100, "a/b", "{\"temp\":1}"}, {9, 101, "a/c", "raw text"}}, zstd),
        "n1", "telemetry", 1 << 20);
    ASSERT_TRUE(b.ok()) << b.status().to_string();
    EXPECT_EQ(b->seq, 7u);
    EXPECT_EQ(b->end, 10u);
    ASSERT_EQ(b->records.size(), 2u);
    EXPECT_EQ(*b->records[1].offset, 9u);
    EXPECT_EQ(b->records[0].payload, "{\"temp\":1}");
    EXPECT_EQ(b->records[1].payload, "{\"_raw\":\"raw text\"}");
  }
}

TEST(Ingest, RefusesHostileBatches) {
  const std::string good = gub1("n1", "t", 0, 1, {{0, 1, "x", "{}"}}, false);
  EXPECT_TRUE(decode_uplink_batch(good, "n1", "t", 1 << 20).ok());
  std::vector<std::string> bad = {
      "",
      "GUB1",
      good.substr(0, good.size() - 1),
      good + "x",
      gub1("n2", "t", 0, 1, {{0, 1, "x", "{}"}}, false),                     // another node's batch
      gub1("n1", "t", 5, 1, {{0, 1, "x", "{}"}}, false),                     // end before sequence
      gub1("n1", "t", 0, 9, {{3, 1, "x", "{}"}, {2, 1, "x", "{}"}}, false),  // out of order
  };
  std::string huge_count = good;
  huge_count[24] = '\x7f';
  bad.push_back(huge_count);
  std::string bomb = gub1("n1", "t", 0, 1, {{0, 1, "x", std::string(4096, 'a')}}, true);
  for (const auto& b : bad) EXPECT_FALSE(decode_uplink_batch(b, "n1", "t", 1 << 20).ok());
  EXPECT_FALSE(decode_uplink_batch(bomb, "n1", "t", 1024).ok());  // decompressed size bounded
}

TEST(Ingest, JsonFallback) {
  auto b = decode_uplink_batch(
      R"({"node":"n1","class":"alerts","seq":3,"records":[{"ts":5,"topic":"a","payload":{"v":1}}]})",
      "n1", "alerts", 1 << 20);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ(b->seq, 3u);
  EXPECT_FALSE(b->records[0].offset.has_value());
  EXPECT_EQ(b->records[0].payload, "{\"v\":1}");
  EXPECT_FALSE(decode_uplink_batch(R"({"node":"n1","class":"alerts","seq":-1,"records":[]})", "n1",
                                   "alerts", 1 << 20)
                   .ok());
  EXPECT_FALSE(
      decode_uplink_batch(R"({"node":"n1","class":"alerts","seq":1,"records":[{"topic":"a"}]})",
                          "n1", "alerts", 1 << 20)
          .ok());
}

TEST(Ingest, RefusesDeeplyNestedJsonInsteadOfOverflowingTheStack) {
  // 100,000 levels in a record payload (200 KB, well under the MQTT packet limit): dumping
  // the parsed payload recursed once per level and crashed the controller.
  const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  const std::string batch =
      R"({"node":"n1","class":"alerts","seq":1,"records":[{"ts":1,"payload":)" + deep + "}]}";
  auto b = decode_uplink_batch(batch, "n1", "alerts", 1 << 20);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("nested deeper"), std::string::npos);
  // Up to the limit (the batch object, "records" and the record take 3 levels) is fine.
  const std::string ok_depth =
      std::string(kMaxJsonNesting - 3, '[') + std::string(kMaxJsonNesting - 3, ']');
  EXPECT_TRUE(
      decode_uplink_batch(R"({"node":"n1","class":"alerts","seq":1,"records":[{"ts":1,"payload":)" +
                              ok_depth + "}]}",
                          "n1", "alerts", 1 << 20)
          .ok());
}

TEST(Ingest, SplitsNodeTopics) {
  std::string node, rest;
  EXPECT_TRUE(split_node_topic("ganglion/v1/n1/up/telemetry", node, rest));
  EXPECT_EQ(node, "n1");
  EXPECT_EQ(rest, "up/telemetry");
  EXPECT_FALSE(split_node_topic("other/v1/n1/x", node, rest));
  EXPECT_FALSE(split_node_topic("ganglion/v1/n1", node, rest));
}

}  // namespace
}  // namespace ganglion::cloud
