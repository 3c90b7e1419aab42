#include "event/value.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace ganglion {
namespace {

TEST(ValueTest, DefaultIsNullAndTypesAreReported) {
  EXPECT_TRUE(Value().is_null());
  EXPECT_EQ(Value(true).type(), Value::Type::kBool);
  EXPECT_EQ(Value(3).type(), Value::Type::kInt);
  EXPECT_EQ(Value(3.5).type(), Value::Type::kFloat);
  EXPECT_EQ(Value("x").type(), Value::Type::kString);
  EXPECT_EQ(Value(Bytes{"ab"}).type(), Value::Type::kBytes);
  EXPECT_EQ(Value(ValueArray{1, 2}).type(), Value::Type::kArray);
  EXPECT_EQ(Value(ValueObject{{"a", 1}}).type(), Value::Type::kObject);
  EXPECT_EQ(Value(3).type_name(), "bigint");
}

TEST(ValueTest, EqualityPromotesNumbers) {
  EXPECT_EQ(Value(1), Value(1.0));
  EXPECT_FALSE(Value(1) == Value("1"));
  EXPECT_EQ(Value(), Value());
  EXPECT_EQ(Value(ValueArray{1, "a"}), Value(ValueArray{1.0, "a"}));
}

TEST(ValueTest, ObjectKeepsInsertionOrderAndEqualityIgnoresOrder) {
  ValueObject o{{"b", 1}, {"a", 2}};
  o.set("c", 3);
  o.set("b", 4);
  ASSERT_EQ(o.size(), 3u);
  EXPECT_EQ(o.at(0).first, "b");
  EXPECT_EQ(o.at(0).second, Value(4));
  EXPECT_EQ(o.at(2).first, "c");
  EXPECT_EQ(Value(o), Value(ValueObject{{"a", 2}, {"c", 3}, {"b", 4}}));
}

TEST(ValueTest, ObjectWithDuplicatedKeyEqualsItsCopy) {
  // Found by fuzz/event_json_fuzz: parse_json keeps duplicated keys, and equality looked each
  // key up in the other object, which sees only the first "a": the object was unequal to an
  // identical copy.
  ValueObject o;
  o.append("a", 1);
  o.append("a", 2);
  ValueObject copy = o;
  EXPECT_EQ(Value(o), Value(copy));
  ValueObject swapped;
  swapped.append("a", 2);
  swapped.append("a", 1);
  EXPECT_NE(Value(o), Value(swapped));  // lookups see a different first "a"
}

TEST(ValueTest, HintedLookupFindsMovedKeys) {
  ValueObject o{{"a", 1}, {"b", 2}, {"c", 3}};
  std::size_t hint = 99;
  ASSERT_NE(o.find("c", hint), nullptr);
  EXPECT_EQ(hint, 2u);
  EXPECT_EQ(*o.find("c", hint), Value(3));
  EXPECT_EQ(o.find("zz", hint), nullptr);
  EXPECT_EQ(hint, 2u);
}

TEST(ValueTest, CompareOrdersNumbersStringsAndBools) {
  EXPECT_EQ(compare(Value(1), Value(2)), std::partial_ordering::less);
  EXPECT_EQ(compare(Value(2.5), Value(2)), std::partial_ordering::greater);
  EXPECT_EQ(compare(Value("abc"), Value("abd")), std::partial_ordering::less);
  EXPECT_EQ(compare(Value(false), Value(true)), std::partial_ordering::less);
  EXPECT_EQ(compare(Value(), Value(1)), std::partial_ordering::unordered);
  EXPECT_EQ(compare(Value("1"), Value(1)), std::partial_ordering::unordered);
  EXPECT_FALSE(comparable(Value("1"), Value(1)));
  EXPECT_EQ(compare(Value(std::nan("")), Value(1.0)), std::partial_ordering::unordered);
}

TEST(ValueTest, ArithmeticPromotesAndKeepsIntegers) {
  Value out;
  ASSERT_TRUE(arith(ArithOp::kAdd, Value(2), Value(3), out).ok());
  EXPECT_TRUE(out.is_int());
  EXPECT_EQ(out, Value(5));
  ASSERT_TRUE(arith(ArithOp::kAdd, Value(2), Value(0.5), out).ok());
  EXPECT_TRUE(out.is_float());
  EXPECT_EQ(out, Value(2.5));
  ASSERT_TRUE(arith(ArithOp::kDiv, Value(7), Value(2), out).ok());
  EXPECT_EQ(out, Value(3));
  ASSERT_TRUE(arith(ArithOp::kMod, Value(7), Value(-4), out).ok());
  EXPECT_EQ(out, Value(3));
  ASSERT_TRUE(arith(ArithOp::kBitXor, Value(6), Value(3), out).ok());
  EXPECT_EQ(out, Value(5));
}

TEST(ValueTest, ArithmeticWithNullIsNull) {
  Value out = 1;
  ASSERT_TRUE(arith(ArithOp::kMul, Value(), Value(3), out).ok());
  EXPECT_TRUE(out.is_null());
}

TEST(ValueTest, ArithmeticErrors) {
  Value out;
  Status s = arith(ArithOp::kAdd, Value("a"), Value(1), out);
  EXPECT_EQ(s.message(), "invalid operation string(a) + bigint(1)");
  EXPECT_EQ(arith(ArithOp::kDiv, Value(1), Value(0), out).message(), "divided by zero");
  EXPECT_EQ(arith(ArithOp::kMod, Value(1), Value(0), out).message(), "divided by zero");
  EXPECT_FALSE(arith(ArithOp::kBitAnd, Value(1.5), Value(1), out).ok());
}

TEST(ValueTest, ArithmeticOverflowWrapsWithoutUndefinedBehaviour) {
  Value out;
  const auto max = std::numeric_limits<std::int64_t>::max();
  const auto min = std::numeric_limits<std::int64_t>::min();
  ASSERT_TRUE(arith(ArithOp::kAdd, Value(max), Value(1), out).ok());
  EXPECT_EQ(out.as_int(), min);
  ASSERT_TRUE(arith(ArithOp::kDiv, Value(min), Value(-1), out).ok());
  EXPECT_EQ(out.as_int(), min);
  ASSERT_TRUE(arith(ArithOp::kMod, Value(min), Value(-1), out).ok());
  EXPECT_EQ(out.as_int(), 0);
}

TEST(ValueTest, Conversions) {
  EXPECT_EQ(*to_bigint(Value("42")), Value(42));
  EXPECT_EQ(*to_bigint(Value(" 4.9 ")), Value(4));
  EXPECT_EQ(*to_bigint(Value(-4.9)), Value(-4));
  EXPECT_EQ(*to_bigint(Value(true)), Value(1));
  EXPECT_FALSE(to_bigint(Value("x")).ok());
  EXPECT_FALSE(to_bigint(Value(1e300)).ok());
  EXPECT_EQ(*to_float(Value("2.5")), Value(2.5));
  EXPECT_EQ(*to_boolean(Value("true")), Value(true));
  EXPECT_EQ(*to_boolean(Value(0)), Value(false));
  EXPECT_FALSE(to_boolean(Value("yes")).ok());
  EXPECT_EQ(to_string_value(Value(2.5)), Value("2.5"));
  EXPECT_EQ(to_string_value(Value(ValueArray{1, "a"})), Value("[1,\"a\"]"));
  EXPECT_TRUE(to_bigint(Value()).value().is_null());
  EXPECT_EQ(*to_bytea(Value("aGk=")), Value(Bytes{"hi"}));
}

}  // namespace
}  // namespace ganglion
