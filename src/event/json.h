// JSON <-> Value.
//
// Parsing uses simdjson (DOM API) with one parser per thread, reused across calls so the
// data path does not reallocate parser buffers. Serialisation is a hand-written writer.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "base/json_string.h"
#include "base/status.h"
#include "event/value.h"

namespace ganglion {

// Parses a JSON document. Integers that fit int64 become kInt; larger ones and all numbers
// with a fraction or exponent become kFloat. Errors: kInvalidArgument with simdjson's reason
// ("invalid JSON: ..."). Nesting deeper than simdjson's limit (1024) is an error. Duplicate
// keys are kept in order; lookups see the first occurrence.
Result<Value> parse_json(std::string_view json);

// Like parse_json(), but when the document is an object keeps only the top-level keys in
// `fields` (in document order); other documents are returned whole. A filter that reads two
// fields of a 30-field payload skips building the other 28: it uses simdjson On-Demand and
// stops after the last wanted key, so the rest of the payload is only indexed, not
// validated (a syntax error after the wanted keys goes unnoticed).
Result<Value> parse_json_fields(std::string_view json, std::span<const std::string> fields);

// Parses `json` once and converts only the top-level keys `fields` of an object into a
// partial row; when `keep(ctx, partial)` returns true, converts the whole document as well
// (from the same parse). A filter reading 1 field of a 12-field payload thus converts the
// other 11 only for the events it keeps. A document that is not an object is returned whole
// without calling `keep`. Errors: as parse_json() for kept documents; a rejected document
// is validated only as far as parse_json_fields() reads it. With `convert_whole` false a
// kept document is validated (as parse_json() would) but not converted: `whole` stays NULL
// and the caller keeps the bytes instead.
struct FilteredJson {
  Value partial;      // the `fields` found (an object), or the whole non-object document
  Value whole;        // the whole document when keep() returned true, else NULL
  bool kept = false;  // keep() returned true
};
Result<FilteredJson> parse_json_filtered(std::string_view json, std::span<const std::string> fields,
                                         bool (*keep)(void* ctx, const Value& partial), void* ctx,
                                         bool convert_whole = true);

// True when `json`, a document parse_json() accepts, is already what append_json() writes
// for its value, byte for byte: compact (no whitespace between tokens), no escapes other
// than \" and \\, integers within int64 other than -0, floats in shortest round-trip form.
// Conservative: false means "maybe not" (a caller then converts and re-encodes).
bool is_canonical_json(std::string_view json);

// Serialises `v` as compact JSON. Strings are escaped per RFC 8259 (control characters as
// \u00XX); invalid UTF-8 is passed through byte for byte. Non-finite floats become null,
// bytes become base64 strings, floats print in shortest round-trip form.
std::string to_json(const Value& v);
void append_json(const Value& v, std::string& out);

}  // namespace ganglion
