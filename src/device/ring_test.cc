// gd_ring: order, overflow (drop oldest, counted), the persistence hook, bounds.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "ganglion/device/ring.h"

namespace {

std::string pop_front(gd_ring* r, uint64_t* seq = nullptr) {
  const void* data;
  size_t len;
  EXPECT_EQ(gd_ring_peek(r, &data, &len, seq), GD_OK);
  std::string s(static_cast<const char*>(data), len);
  EXPECT_EQ(gd_ring_pop(r), GD_OK);
  return s;
}

TEST(DeviceRing, CapacityComesFromTheCallersMemory) {
  alignas(8) unsigned char mem[1000];
  gd_ring r;
  ASSERT_EQ(gd_ring_init(&r, mem, sizeof mem, 36), GD_OK);
  EXPECT_EQ(gd_ring_capacity(&r), 1000u / 48u);  // 12-byte header + 36
  EXPECT_EQ(gd_ring_init(&r, mem, 10, 36), GD_ERR_ARG);
  EXPECT_EQ(gd_ring_init(&r, nullptr, 100, 4), GD_ERR_ARG);
  EXPECT_EQ(gd_ring_init(&r, mem, 100, 0), GD_ERR_ARG);
}

TEST(DeviceRing, FlushesInTheOrderRecordsWerePushed) {
  unsigned char mem[512];
  gd_ring r;
  ASSERT_EQ(gd_ring_init(&r, mem, sizeof mem, 16), GD_OK);
  for (int i = 0; i < 5; ++i) {
    std::string s = "reading-" + std::to_string(i);
    ASSERT_EQ(gd_ring_push(&r, s.data(), s.size(), nullptr), GD_OK);
  }
  EXPECT_EQ(gd_ring_count(&r), 5u);
  for (int i = 0; i < 5; ++i) {
    uint64_t seq;
    EXPECT_EQ(pop_front(&r, &seq), "reading-" + std::to_string(i));
    EXPECT_EQ(seq, static_cast<uint64_t>(i));
  }
  EXPECT_TRUE(gd_ring_empty(&r));
  const void* d;
  size_t n;
  EXPECT_EQ(gd_ring_peek(&r, &d, &n, nullptr), GD_ERR_EMPTY);
  EXPECT_EQ(gd_ring_pop(&r), GD_ERR_EMPTY);
}

TEST(DeviceRing, OverflowDropsTheOldestAndCountsIt) {
  unsigned char mem[4 * 16];  // 4 slots of 12 + 4
  gd_ring r;
  ASSERT_EQ(gd_ring_init(&r, mem, sizeof mem, 4), GD_OK);
  ASSERT_EQ(gd_ring_capacity(&r), 4u);
  for (int i = 0; i < 11; ++i) {
    std::string s = std::to_string(i);
    ASSERT_EQ(gd_ring_push(&r, s.data(), s.size(), nullptr), GD_OK);
  }
  EXPECT_EQ(gd_ring_count(&r), 4u);
  EXPECT_EQ(gd_ring_dropped(&r), 7u);
  std::vector<std::string> got;
  while (!gd_ring_empty(&r)) got.push_back(pop_front(&r));
  EXPECT_EQ(got, (std::vector<std::string>{"7", "8", "9", "10"}));
}

TEST(DeviceRing, WrapsAroundManyTimesInterleavingPushAndPop) {
  unsigned char mem[3 * 16];
  gd_ring r;
  ASSERT_EQ(gd_ring_init(&r, mem, sizeof mem, 4), GD_OK);
  uint32_t next_in = 0, next_out = 0;
  for (int round = 0; round < 100; ++round) {
    for (int k = 0; k < 1 + round % 2; ++k, ++next_in)
      ASSERT_EQ(gd_ring_push(&r, &next_in, 4, nullptr), GD_OK);
    // Leave one behind every other round, so the head moves through every slot.
    while (gd_ring_count(&r) > static_cast<size_t>(round % 2)) {
      const void* d;
      size_t n;
      ASSERT_EQ(gd_ring_peek(&r, &d, &n, nullptr), GD_OK);
      uint32_t v;
      std::memcpy(&v, d, 4);
      ASSERT_EQ(v, next_out++);
      gd_ring_pop(&r);
    }
  }
  EXPECT_EQ(gd_ring_dropped(&r), 0u);
  EXPECT_EQ(next_out + gd_ring_count(&r), next_in);
}

TEST(DeviceRing, RejectsRecordsLargerThanTheSlot) {
  unsigned char mem[128];
  gd_ring r;
  ASSERT_EQ(gd_ring_init(&r, mem, sizeof mem, 8), GD_OK);
  EXPECT_EQ(gd_ring_push(&r, "123456789", 9, nullptr), GD_ERR_ARG);
  EXPECT_EQ(gd_ring_push(&r, "", 0, nullptr), GD_OK);  // empty records are fine
  EXPECT_EQ(gd_ring_count(&r), 1u);
}

struct Journal {
  std::vector<std::string> lines;
};
void persist(void* user, gd_ring_op op, uint64_t seq, const void* data, size_t len) {
  const char* name = op == GD_RING_PUSHED ? "push" : op == GD_RING_POPPED ? "pop" : "drop";
  static_cast<Journal*>(user)->lines.push_back(std::string(name) + " " + std::to_string(seq) + " " +
                                               std::string(static_cast<const char*>(data), len));
}

TEST(DeviceRing, PersistenceHookSeesEveryPushPopAndDrop) {
  unsigned char mem[2 * 16];
  gd_ring r;
  ASSERT_EQ(gd_ring_init(&r, mem, sizeof mem, 4), GD_OK);
  Journal j;
  gd_ring_set_persist(&r, persist, &j);
  gd_ring_push(&r, "a", 1, nullptr);
  gd_ring_push(&r, "b", 1, nullptr);
  gd_ring_push(&r, "c", 1, nullptr);
  gd_ring_pop(&r);
  EXPECT_EQ(j.lines,
            (std::vector<std::string>{"push 0 a", "push 1 b", "drop 0 a", "push 2 c", "pop 1 b"}));
}

}  // namespace
