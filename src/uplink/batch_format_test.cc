#include "uplink/batch_format.h"

#include <gtest/gtest.h>

namespace ganglion::uplink {
namespace {

TEST(UplinkRecord, RoundTripsTopicAndPayload) {
  auto rec = encode_record("factory/a/telemetry/t1", "{\"v\":1}");
  ASSERT_TRUE(rec.ok());
  auto f = decode_record(*rec);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->topic, "factory/a/telemetry/t1");
  EXPECT_EQ(f->payload, "{\"v\":1}");
}

TEST(UplinkRecord, CarriesTheBrokersStoredIdWhenItHasOne) {
  auto plain = encode_record("t/1", "x");
  auto with_id = encode_record("t/1", "x", 0x0102030405060708ULL);
  ASSERT_TRUE(plain.ok() && with_id.ok());
  EXPECT_EQ(with_id->size(), plain->size() + 8);
  EXPECT_EQ(decode_record(*plain)->stored_id, 0u);
  auto f = decode_record(*with_id);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->stored_id, 0x0102030405060708ULL);
  EXPECT_EQ(f->topic, "t/1");
  EXPECT_EQ(f->payload, "x");
  // A version-2 record cut inside its id is corrupt, not a short topic.
  EXPECT_EQ(decode_record(with_id->substr(0, 5)).status().code(), StatusCode::kCorruption);
}

TEST(UplinkRecord, RejectsUnknownVersionAndTruncation) {
  EXPECT_EQ(decode_record(std::string("\x03\x00\x01t", 4)).status().code(),
            StatusCode::kCorruption);
  EXPECT_EQ(decode_record(std::string("\x01\x00\x09t", 4)).status().code(),
            StatusCode::kCorruption);
  EXPECT_EQ(decode_record("").status().code(), StatusCode::kCorruption);
}

class BatchRoundTrip : public ::testing::TestWithParam<Compression> {};

TEST_P(BatchRoundTrip, DecodesWhatWasBuilt) {
  BatchBuilder b(GetParam());
  for (int i = 0; i < 100; ++i) {
    auto rec = encode_record("site/m" + std::to_string(i % 7),
                             "{\"temp\":" + std::to_string(20 + i) + "}");
    b.add(1000 + static_cast<std::uint64_t>(i) * 2, 1'700'000'000'000 + i, *rec);
  }
  EXPECT_EQ(b.count(), 100u);
  auto bytes = b.finish("node-1", "telemetry", "eu-west", 1000, 1199);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->substr(0, 4), "GUB1");
  auto d = decode_batch(*bytes);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->header.node, "node-1");
  EXPECT_EQ(d->header.cls, "telemetry");
  EXPECT_EQ(d->header.region, "eu-west");
  EXPECT_EQ(d->header.sequence, 1000u);
  EXPECT_EQ(d->header.end, 1199u);
  EXPECT_EQ(d->header.count, 100u);
  EXPECT_EQ(d->header.compression, GetParam());
  ASSERT_EQ(d->records.size(), 100u);
  EXPECT_EQ(d->records[3].offset, 1006u);
  EXPECT_EQ(d->records[3].timestamp_ms, 1'700'000'000'003);
  EXPECT_EQ(d->records[3].topic, "site/m3");
  EXPECT_EQ(d->records[3].payload, "{\"temp\":23}");
  // The builder is reusable.
  auto rec = encode_record("t", "x");
  b.add(5, 6, *rec);
  auto again = decode_batch(*b.finish("n", "c", "", 5, 6));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->records.size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Compressions, BatchRoundTrip,
                         ::testing::Values(Compression::kNone, Compression::kZstd));

TEST(Batch, ZstdShrinksRepetitiveTelemetry) {
  BatchBuilder b(Compression::kZstd);
  for (int i = 0; i < 1000; ++i) {
    auto rec = encode_record("factory/line-1/telemetry/press-4",
                             "{\"ts\":" + std::to_string(1'700'000'000'000 + i * 100) +
                                 ",\"temperature\":" + std::to_string(60 + i % 5) +
                                 ".25,\"pressure\":1.013,\"status\":\"ok\"}");
    b.add(static_cast<std::uint64_t>(i), i, *rec);
  }
  const std::size_t raw = b.raw_bytes();
  auto bytes = b.finish("n", "telemetry", "", 0, 1000);
  ASSERT_TRUE(bytes.ok());
  EXPECT_LT(bytes->size() * 5, raw);
}

TEST(Batch, SkipsUndecodableRecords) {
  BatchBuilder b;
  b.add(1, 1, "garbage");
  EXPECT_EQ(b.count(), 0u);
  EXPECT_EQ(b.skipped(), 1u);
}

TEST(Batch, RejectsCorruptInput) {
  BatchBuilder b;
  b.add(1, 1, *encode_record("t", "payload"));
  std::string bytes = *b.finish("n", "c", "", 1, 2);
  EXPECT_EQ(decode_batch("nope").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(decode_batch(bytes.substr(0, 20)).status().code(), StatusCode::kCorruption);
  std::string flipped = bytes;
  flipped[flipped.size() - 3] ^= 0x5a;
  EXPECT_FALSE(decode_batch(flipped).ok());
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_batch(bytes.substr(0, n)).ok()) << n;
  }
}

}  // namespace
}  // namespace ganglion::uplink
