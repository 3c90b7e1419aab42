#include "event/event.h"

#include <gtest/gtest.h>

#include <thread>

namespace ganglion {
namespace {

TEST(EventTest, CopiesSharePayloadBytes) {
  Event e = Event::from_string("sensors/1", 1000, R"({"t":21})", {.source = "dev1", .sequence = 7});
  Event copy = e.with_topic("other");
  EXPECT_EQ(e.payload().data(), copy.payload().data());
  EXPECT_EQ(copy.topic(), "other");
  EXPECT_EQ(copy.timestamp_ms(), 1000);
  EXPECT_EQ(copy.headers().source, "dev1");
  EXPECT_EQ(copy.headers().sequence, 7u);
}

TEST(EventTest, ParsesFieldsLazilyOnceAndSharesWithCopies) {
  Event e = Event::from_string("t", 1, R"({"t":21})");
  Event copy = e;
  const Result<Value>& a = e.fields();
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a->find("t"), Value(21));
  EXPECT_EQ(&copy.fields(), &a);
}

TEST(EventTest, InvalidJsonIsReportedNotThrown) {
  Event e = Event::from_string("t", 1, "not json");
  EXPECT_FALSE(e.fields().ok());
  EXPECT_FALSE(e.fields().ok());
}

TEST(EventTest, ConcurrentFirstAccessParsesOnce) {
  Event e = Event::from_string("t", 1, R"({"a":[1,2,3]})");
  std::vector<std::thread> ts;
  std::vector<const Result<Value>*> seen(4);
  for (int i = 0; i < 4; ++i) ts.emplace_back([&, i] { seen[i] = &e.fields(); });
  for (auto& t : ts) t.join();
  for (auto* p : seen) EXPECT_EQ(p, seen[0]);
}

TEST(EventTest, EmptyEventHasEmptyPayload) {
  Event e;
  EXPECT_TRUE(e.payload().empty());
  EXPECT_FALSE(e.fields().ok());
}

}  // namespace
}  // namespace ganglion

namespace ganglion {
namespace {

TEST(EventTest, SharedFieldsAreSeenByLaterReadersOnlyBeforeTheFirstParse) {
  Event e = Event::from_string("t", 1, R"({"a":1})");
  EXPECT_FALSE(e.fields_parsed());
  e.share_fields(Value(ValueObject{{"a", 1}}));
  EXPECT_TRUE(e.fields_parsed());
  EXPECT_EQ(*e.fields()->find("a"), Value(1));
  e.share_fields(Value(ValueObject{{"a", 2}}));  // ignored: already parsed
  EXPECT_EQ(*e.fields()->find("a"), Value(1));
}

}  // namespace
}  // namespace ganglion
