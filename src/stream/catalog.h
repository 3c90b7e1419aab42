// Catalog: the streams and tables a rule may read (CREATE STREAM / CREATE TABLE), and the
// decoding of an event's JSON payload into a row of one of them.
//
// A stream with fields is checked against its schema on decode: a payload whose value does
// not fit a declared type is rejected with a reason (the query counts and skips it); fields
// not in the schema are dropped. A schemaless stream (`CREATE STREAM s () WITH (...)`) keeps
// the payload as it is. Options read here (keys upper-case, values as written):
//   TIMESTAMP   field holding the event time (int milliseconds since the epoch); the
//               stream then runs on event time with watermarks
//   KEY         tables: the primary key; the table keeps the latest row per key
//   FORMAT      "json" (default); anything else is rejected at plan time
//   STRICT_VALIDATION  "true": no conversions (an int is not accepted for a FLOAT field)
// Thread: a Catalog is not synchronised; StreamDefs it hands out are immutable and shared.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "event/event.h"
#include "event/value.h"
#include "stream/ast.h"

namespace ganglion::stream {

struct StreamDef {
  std::string name;
  bool is_table = false;
  std::vector<sql::FieldDef> fields;  // empty: schemaless
  std::string timestamp_field;        // empty: processing time
  // TIMESTAMP_FORMAT: how string values of the TIMESTAMP field and of DATETIME columns are
  // read (stream/time_format.h); empty: RFC 3339 and its usual variants.
  std::string timestamp_format;
  std::string key;              // tables only; empty: keep all rows (bounded)
  std::string format = "json";  // lower-case: "json" or "binary"
  bool strict_validation = false;

  bool schemaless() const { return fields.empty(); }
  const std::vector<sql::FieldDef>* schema() const { return fields.empty() ? nullptr : &fields; }
};

// Builds a StreamDef from a parsed CREATE statement. Errors: kInvalidArgument for an
// unsupported FORMAT or a TIMESTAMP field missing from the schema.
Result<std::shared_ptr<const StreamDef>> make_stream_def(const sql::CreateStreamStatement& stmt);

class Catalog {
 public:
  // Registers a stream or table. kAlreadyExists when the name is taken.
  Status add(const sql::CreateStreamStatement& stmt);
  // Parses and registers `CREATE STREAM|TABLE ...`.
  Status add_sql(std::string_view create_sql);
  // Returns false when there was no such stream or table.
  bool drop(std::string_view name);
  // nullptr when unknown. Names are case-sensitive, as in eKuiper.
  std::shared_ptr<const StreamDef> find(std::string_view name) const;

 private:
  std::unordered_map<std::string, std::shared_ptr<const StreamDef>> defs_;
};

// Decodes `payload` (JSON) into a row of `def`: an object, schema-checked when the stream
// has one. When `fields` is not empty only those top-level keys are kept (a projection the
// planner computed); the row may then lack others. Errors: kInvalidArgument with the reason
// ("invalid JSON: ...", "payload is not a JSON object", "field 'temp': expects FLOAT, got
// string(hot)").
Result<Value> decode_row(const StreamDef& def, std::string_view payload,
                         std::span<const std::string> fields = {});

// The row of `def` for an already parsed payload: checks that it is an object, then
// conforms it to the schema (schemaless: returned as is, sharing the object).
Result<Value> conform_row(const StreamDef& def, const Value& parsed);

// Checks `v` against `type`, converting where eKuiper's non-strict validation does (an int
// into a FLOAT field becomes a float, an integral float into a BIGINT field an int, a base64
// string into a BYTEA field bytes). NULL fits every type.
// FORMAT="binary" (eKuiper's binary stream): the payload bytes, untouched, as the one BYTEA
// column of the schema, or as `self` in a schemaless stream.
Value binary_row(const StreamDef& def, std::string_view payload);

// A string in a DATETIME column is read with `datetime_format` (empty: parse_time_any()).
Result<Value> conform(const Value& v, const sql::TypeSpec& type, bool strict,
                      std::string_view datetime_format = {});

// A TIMESTAMP or DATETIME value as milliseconds: integers as they are, floats within int64
// truncated, strings read with `format` (empty: parse_time_any()); nullopt otherwise.
std::optional<std::int64_t> datetime_ms(const Value& v, std::string_view format);

}  // namespace ganglion::stream
