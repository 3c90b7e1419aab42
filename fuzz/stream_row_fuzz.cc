// libFuzzer target for decode_row() (src/stream/catalog.h): every device payload on a
// stream's topic becomes a row through it. The schema has a column of every type; each
// payload is decoded strict and not, whole and with a projection. Checks, beyond "no
// crash": a decoded row is an object whose typed columns hold their type (or NULL).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "event/value.h"
#include "stream/catalog.h"
#include "stream/parser.h"

namespace {

using ganglion::Value;
using ganglion::stream::StreamDef;

[[noreturn]] void die(const char* what, std::string_view detail) {
  std::fprintf(stderr, "%s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

std::shared_ptr<const StreamDef> make_def(bool strict) {
  const std::string sql =
      std::string(
          "CREATE STREAM s (id BIGINT, t FLOAT, name STRING, ok BOOLEAN, ts DATETIME, "
          "raw BYTEA, tags ARRAY(STRING), n ARRAY(BIGINT), "
          "loc STRUCT(lat FLOAT, lon FLOAT, at DATETIME)) WITH (DATASOURCE=\"s\", "
          "STRICT_VALIDATION=\"") +
      (strict ? "true" : "false") + "\")";
  auto st = ganglion::sql::parse_statement(sql);
  if (!st.ok()) die("schema does not parse", st.status().message());
  auto def = ganglion::stream::make_stream_def(std::get<ganglion::sql::CreateStreamStatement>(*st));
  if (!def.ok()) die("schema is refused", def.status().message());
  return *def;
}

void check_row(const Value& row, std::string_view payload) {
  if (!row.is_object()) die("a row is not an object", payload);
  auto typed = [&](const char* key, bool (Value::*is)() const) {
    const Value* v = row.find(key);
    if (v != nullptr && !v->is_null() && !((*v).*is)()) die("a column has another type", payload);
  };
  typed("id", &Value::is_int);
  typed("t", &Value::is_float);
  typed("name", &Value::is_string);
  typed("ok", &Value::is_bool);
  typed("ts", &Value::is_int);
  typed("raw", &Value::is_bytes);
  typed("tags", &Value::is_array);
  typed("loc", &Value::is_object);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 16384) return 0;
  static const auto lax = make_def(false);
  static const auto strict = make_def(true);
  static const std::array<std::string, 3> kFields = {"ts", "id", "loc"};
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  for (const auto& def : {lax, strict}) {
    auto whole = ganglion::stream::decode_row(*def, payload);
    if (whole.ok()) check_row(*whole, payload);
    auto projected = ganglion::stream::decode_row(*def, payload, kFields);
    if (projected.ok()) check_row(*projected, payload);
  }
  return 0;
}
