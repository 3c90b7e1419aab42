#include "event/json.h"

#include <gtest/gtest.h>

#include <cmath>

namespace ganglion {
namespace {

TEST(JsonTest, ParsesAllTypes) {
  auto v = parse_json(
      R"({"i":-3,"f":1.5,"s":"h\u00e9","b":true,"n":null,"a":[1,[2]],"o":{"x":1},"big":18446744073709551615})");
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  EXPECT_EQ(*v->find("i"), Value(-3));
  EXPECT_TRUE(v->find("i")->is_int());
  EXPECT_TRUE(v->find("f")->is_float());
  EXPECT_EQ(*v->find("s"), Value("h\xc3\xa9"));
  EXPECT_EQ(*v->find("b"), Value(true));
  EXPECT_TRUE(v->find("n")->is_null());
  EXPECT_EQ(v->find("a")->as_array().size(), 2u);
  EXPECT_EQ(*v->find("o")->find("x"), Value(1));
  EXPECT_TRUE(v->find("big")->is_float());
  EXPECT_EQ(v->as_object().at(0).first, "i");
}

TEST(JsonTest, RejectsMalformedInput) {
  for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "tru", "\"\\x\"", "{\"a\":1}x"}) {
    auto v = parse_json(bad);
    EXPECT_FALSE(v.ok()) << bad;
    if (!v.ok()) {
      EXPECT_EQ(v.status().message().rfind("invalid JSON: ", 0), 0u);
    }
  }
}

TEST(JsonTest, ProjectionKeepsOnlyRequestedKeys) {
  std::vector<std::string> keep{"t", "id"};
  auto v = parse_json_fields(R"({"id":1,"x":[1,2,3],"t":20.5,"y":{}})", keep);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(to_json(*v), R"({"id":1,"t":20.5})");
  EXPECT_EQ(to_json(*parse_json_fields("[1]", keep)), "[1]");
  // Duplicate keys: the first wins and does not hide later wanted keys.
  EXPECT_EQ(to_json(*parse_json_fields(R"({"t":1,"t":2,"id":3})", keep)), R"({"t":1,"id":3})");
}

TEST(JsonTest, ProjectionReadsLongNumbersLikeTheFullParser) {
  // Found by fuzz/event_json_fuzz: simdjson 3.0's On-Demand parser, behind
  // parse_json_fields() and parse_json_filtered(), read numbers with more than 19
  // significant digits wrongly (0.1000000000000000000001 as 0.000387...), so a filter on
  // such a field compared against the wrong value.
  std::vector<std::string> keep{"t", "u"};
  const std::string doc =
      R"({"t":0.1000000000000000000001,"u":-50.00000000000000000000001e2,"v":1})";
  auto whole = parse_json(doc);
  auto fields = parse_json_fields(doc, keep);
  ASSERT_TRUE(whole.ok());
  ASSERT_TRUE(fields.ok());
  EXPECT_EQ(fields->find("t")->as_float(), 0.1);
  EXPECT_EQ(fields->find("u")->as_float(), -5000.0);
  EXPECT_EQ(*fields->find("t"), *whole->find("t"));
  EXPECT_EQ(*fields->find("u"), *whole->find("u"));
}

TEST(JsonTest, WritesEscapedStrings) {
  EXPECT_EQ(to_json(Value(std::string("a\"b\\c\n\t\x01\x1f/\xc3\xa9", 12))),
            "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f/\xc3\xa9\"");
}

TEST(JsonTest, WritesNumbersInShortestRoundTripForm) {
  EXPECT_EQ(to_json(Value(0.1)), "0.1");
  EXPECT_EQ(to_json(Value(1e21)), "1e+21");
  EXPECT_EQ(to_json(Value(-7)), "-7");
  EXPECT_EQ(to_json(Value(std::nan(""))), "null");
  EXPECT_EQ(to_json(Value(INFINITY)), "null");
}

TEST(JsonTest, WritesFloatsFrom2To64WithAnExponentSoTheyReadBack) {
  // Found by fuzz/event_json_fuzz: 18446744073709551615 reads as a float (beyond int64), and
  // its shortest form "18446744073709551616" is an integer literal that parse_json() refuses.
  auto v = parse_json(R"({"big":18446744073709551615,"neg":-1e20})");
  ASSERT_TRUE(v.ok());
  const std::string printed = to_json(*v);
  EXPECT_EQ(printed, R"({"big":1.8446744073709552e+19,"neg":-1e+20})");
  auto again = parse_json(printed);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(*again, *v);
  EXPECT_EQ(to_json(Value(9223372036854775808.0)), "9223372036854775808");  // below 2^64
}

TEST(JsonTest, WritesBytesAsBase64AndKeepsKeyOrder) {
  ValueObject o{{"z", Bytes{"hi"}}, {"a", ValueArray{Value(), true}}};
  EXPECT_EQ(to_json(Value(o)), R"({"z":"aGk=","a":[null,true]})");
}

TEST(JsonTest, RoundTripsThroughWriterAndParser) {
  const char* doc = R"({"a":[1,2.5,"x",{"b":null}],"c":false,"d":"\u0000q"})";
  auto v = parse_json(doc);
  ASSERT_TRUE(v.ok());
  auto again = parse_json(to_json(*v));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*v, *again);
}

TEST(JsonTest, DeepNestingIsAnErrorNotACrash) {
  std::string deep(5000, '[');
  deep += std::string(5000, ']');
  EXPECT_FALSE(parse_json(deep).ok());
}

}  // namespace
}  // namespace ganglion

namespace ganglion {
namespace {

bool keep_hot(void* calls, const Value& partial) {
  ++*static_cast<int*>(calls);
  const Value* t = partial.find("t");
  return t != nullptr && t->is_number() && t->number() > 50;
}

TEST(JsonFilteredTest, ConvertsTheWholeDocumentOnlyWhenKept) {
  std::vector<std::string> fields = {"t"};
  int calls = 0;
  auto cold = parse_json_filtered(R"({"a":1,"t":20,"b":[1,2]})", fields, keep_hot, &calls);
  ASSERT_TRUE(cold.ok());
  EXPECT_FALSE(cold->kept);
  EXPECT_EQ(cold->partial, Value(ValueObject{{"t", 20}}));
  EXPECT_TRUE(cold->whole.is_null());
  auto hot = parse_json_filtered(R"({"a":1,"t":60,"b":[1,2]})", fields, keep_hot, &calls);
  ASSERT_TRUE(hot.ok());
  EXPECT_TRUE(hot->kept);
  EXPECT_EQ(hot->whole, *parse_json(R"({"a":1,"t":60,"b":[1,2]})"));
  EXPECT_EQ(calls, 2);
  auto arr = parse_json_filtered("[1]", fields, keep_hot, &calls);
  ASSERT_TRUE(arr.ok());
  EXPECT_TRUE(arr->partial.is_array());
  EXPECT_EQ(calls, 2);
  EXPECT_FALSE(parse_json_filtered("{", fields, keep_hot, &calls).ok());
}

bool keep_all(void*, const Value&) { return true; }

// Keys are matched on their raw bytes only when the document has no escapes at all: a key
// written with escapes, a key that is a prefix of a wanted one or longer than the rest of
// the document, and a duplicated key (the first counts) are all read as parse_json() would.
TEST(JsonFilteredTest, ProjectsKeysWrittenWithEscapesAndPrefixes) {
  const std::vector<std::string> fields = {"temperature", "t", "a\"b"};
  const std::vector<std::string> docs = {
      R"({"temp\u0065rature":61,"t":1})",
      R"({"tempera":1,"temperature":62,"temperatures":3})",
      R"({"t":4,"t":5,"a\"b":6})",
      R"({"x":"\\","temperature":63})",
      R"({"temperatur":64})",
      R"({"te":1,"t")",
  };
  for (const std::string& d : docs) {
    auto want = parse_json(d);
    auto got = parse_json_fields(d, fields);
    ASSERT_EQ(got.ok(), want.ok()) << d;
    if (!want.ok()) continue;
    for (const std::string& f : fields) {
      const Value* w = want->find(f);
      const Value* g = got->find(f);
      ASSERT_EQ(w == nullptr, g == nullptr) << d << " " << f;
      if (w != nullptr) {
        EXPECT_EQ(*w, *g) << d << " " << f;
      }
    }
  }
}

// A kept document whose row stays bytes (convert_whole false) is validated from On-Demand's
// stage-1 index instead of a DOM parse: it must accept exactly what parse_json() accepts,
// also for faults after the projected field, which the projection itself never reads.
TEST(JsonFilteredTest, KeptBytesAreValidatedAsTheDomParserWould) {
  const std::vector<std::string> fields = {"t"};
  const std::vector<std::string> docs = {
      R"({"t":1,"a":"x","b":[1,2.5,-3e7,true,false,null],"c":{"d":{"e":[]}}})",
      R"({"t":1} )",
      R"({"t":1} x)",
      R"({"t":1}{"t":2})",
      R"({"t":1}])",
      R"({"t":1,"a":tru})",
      R"({"t":1,"a":truex})",
      R"({"t":1,"a":nul})",
      R"({"t":1,"a":01})",
      R"({"t":1,"a":1.})",
      R"({"t":1,"a":-})",
      R"({"t":1,"a":1e})",
      R"({"t":1,"a":1e400})",
      R"({"t":1,"a":123456789012345678901234567890})",
      R"({"t":1,"a":0.1000000000000000000001})",
      R"({"t":1,"a":18446744073709551616})",
      R"({"t":1,"a":"\x"})",
      R"({"t":1,"a":"\ud800"})",
      R"({"t":1,"a":"\u00e9\n"})",
      "{\"t\":1,\"a\":\"tab\there\"}",
      "{\"t\":1,\"a\":\"\xff\"}",
      R"({"t":1,"a":[1,,2]})",
      R"({"t":1,"a":[1 2]})",
      R"({"t":1,"a":{"b" 1}})",
      R"({"t":1,"a":{"b":1,}})",
      R"({"t":1,"a":{1:2}})",
      R"({"t":1,"a":[1,2})",
      R"({"t":1,"a":{"b":1]})",
      R"({"t":1,,"a":2})",
      R"({"t":1 "a":2})",
      R"({"t":1,"a":2,})",
      R"({"t":1,"a\u0062":2})",
      R"({"t":1,"a\q":2})",
      R"({"a":[[[[[[[[[[]]]]]]]]]],"t":1})",
      R"({"a":tru,"t":1})",
      R"({"t":1,"a":"x")",
      std::string("{\"t\":1,\"a\":\"x\0y\"}", 17),
      std::string(1100, '[') + std::string(1100, ']'),
      "{\"t\":1,\"a\":" + std::string(1100, '[') + std::string(1100, ']') + "}",
      "{\"t\":1,\"a\":" + std::string(1000, '[') + std::string(1000, ']') + "}",
  };
  for (const std::string& d : docs) {
    const bool valid = parse_json(d).ok();
    auto kept = parse_json_filtered(d, fields, keep_all, nullptr, /*convert_whole=*/false);
    EXPECT_EQ(kept.ok(), valid) << d.substr(0, 80);
    if (kept.ok()) {
      EXPECT_TRUE(kept->whole.is_null());
    }
    auto converted = parse_json_filtered(d, fields, keep_all, nullptr);
    EXPECT_EQ(converted.ok(), valid) << d.substr(0, 80);
  }
}

TEST(JsonCanonicalTest, TrueOnlyWhenReencodingGivesTheSameBytes) {
  const std::vector<std::string> docs = {
      R"({"a":1,"b":"x","c":[true,false,null],"d":{"e":-12}})",
      R"({"t":61.5,"f":2.5e-08,"g":1e+100,"s":"q\"\\"})",
      R"({"a": 1})",
      R"({"a":1.50})",
      R"({"a":1e2})",
      R"({"a":1.0})",
      R"({"a":-0})",
      R"({"a":-0.0})",
      R"({"a":18446744073709551615})",
      R"({"a":123456789012345678})",
      R"({"a":1234567890123456789})",
      R"({"s":"\u00e9"})",
      R"({"s":"\/"})",
      R"({"s":"é"})",
      R"({"a":1,"a":2})",
      "[1,2]",
      " {}",
  };
  for (const std::string& d : docs) {
    auto v = parse_json(d);
    ASSERT_TRUE(v.ok()) << d;
    if (is_canonical_json(d)) {
      EXPECT_EQ(to_json(*v), d);
    }
    // What append_json() writes is canonical, except 19+ digit integers and -0 (a negative
    // zero float): the check is conservative there.
    const std::string out = to_json(*v);
    if (out.find("1234567890123456789") == std::string::npos &&
        out.find("-0}") == std::string::npos) {
      EXPECT_TRUE(is_canonical_json(out)) << out;
    }
  }
  EXPECT_TRUE(is_canonical_json(R"({"a":1,"b":"x","c":[true,false,null],"d":{"e":-12}})"));
  EXPECT_TRUE(is_canonical_json(R"({"s":"q\"\\","t":61.5,"u":"é"})"));
  EXPECT_FALSE(is_canonical_json(R"({"a": 1})"));
  EXPECT_FALSE(is_canonical_json(R"({"a":1.50})"));
  EXPECT_FALSE(is_canonical_json(R"({"a":-0})"));
  EXPECT_FALSE(is_canonical_json(R"({"s":"\u00e9"})"));
}

}  // namespace
}  // namespace ganglion
