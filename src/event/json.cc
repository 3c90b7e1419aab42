#include "event/json.h"

#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "base/base64.h"

namespace ganglion {
namespace {

simdjson::dom::parser& thread_parser() {
  // One parser per thread: simdjson parsers are not thread-safe, and reusing one keeps its
  // buffers allocated between documents.
  thread_local simdjson::dom::parser parser;
  return parser;
}

Value convert(simdjson::dom::element e) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::ARRAY: {
      simdjson::dom::array a = e.get_array().value_unsafe();
      ValueArray out;
      out.reserve(a.size());
      for (simdjson::dom::element c : a) out.push_back(convert(c));
      return Value(std::move(out));
    }
    case element_type::OBJECT: {
      simdjson::dom::object o = e.get_object().value_unsafe();
      ValueObject out;
      out.reserve(o.size());
      // append, not set: a hostile payload with many keys must stay linear. With duplicate
      // keys, lookups see the first occurrence.
      for (simdjson::dom::key_value_pair kv : o) out.append(std::string(kv.key), convert(kv.value));
      return Value(std::move(out));
    }
    case element_type::INT64:
      return Value(static_cast<std::int64_t>(e.get_int64().value_unsafe()));
    case element_type::UINT64:
      return Value(static_cast<double>(e.get_uint64().value_unsafe()));
    case element_type::DOUBLE:
      return Value(e.get_double().value_unsafe());
    case element_type::STRING:
      return Value(e.get_string().value_unsafe());
    case element_type::BOOL:
      return Value(e.get_bool().value_unsafe());
    case element_type::NULL_VALUE:
      return Value();
  }
  return Value();
}

// `padded`: json.data() is followed by SIMDJSON_PADDING readable bytes, so simdjson need
// not copy it.
Result<simdjson::dom::element> parse_dom(std::string_view json,
                                         simdjson::dom::parser& parser = thread_parser(),
                                         bool padded = false) {
  // An empty view may have a null data pointer, which simdjson would copy from.
  if (json.empty()) {
    return InvalidArgument("invalid JSON: " +
                           std::string(simdjson::error_message(simdjson::EMPTY)));
  }
  auto r = parser.parse(json.data(), json.size(), !padded);
  if (r.error()) {
    return InvalidArgument(std::string("invalid JSON: ") + simdjson::error_message(r.error()));
  }
  return r.value_unsafe();
}

}  // namespace

Result<Value> parse_json(std::string_view json) {
  GANGLION_ASSIGN_OR_RETURN(simdjson::dom::element root, parse_dom(json));
  return convert(root);
}

// On-demand conversion: only the values asked for are parsed beyond stage 1.
bool convert_od(simdjson::ondemand::value v, Value& out, int depth = 0) {
  using simdjson::ondemand::json_type;
  if (depth > 1024) return false;
  json_type t;
  if (v.type().get(t)) return false;
  switch (t) {
    case json_type::object: {
      simdjson::ondemand::object o;
      if (v.get_object().get(o)) return false;
      ValueObject obj;
      for (auto field : o) {
        std::string_view key;
        simdjson::ondemand::value fv;
        if (field.unescaped_key().get(key) || field.value().get(fv)) return false;
        Value x;
        if (!convert_od(fv, x, depth + 1)) return false;
        obj.append(std::string(key), std::move(x));
      }
      out = Value(std::move(obj));
      return true;
    }
    case json_type::array: {
      simdjson::ondemand::array a;
      if (v.get_array().get(a)) return false;
      ValueArray arr;
      for (auto e : a) {
        simdjson::ondemand::value ev;
        if (e.get(ev)) return false;
        Value x;
        if (!convert_od(ev, x, depth + 1)) return false;
        arr.push_back(std::move(x));
      }
      out = Value(std::move(arr));
      return true;
    }
    case json_type::number: {
      // The token first: get_number() consumes the value.
      std::string_view raw = v.raw_json_token();
      simdjson::ondemand::number n;
      if (v.get_number().get(n)) return false;
      if (n.is_int64()) {
        out = Value(n.get_int64());
      } else if (n.is_uint64()) {
        out = Value(static_cast<double>(n.get_uint64()));  // as the DOM path: above int64
      } else {
        // simdjson 3.0's On-Demand parser (the kernel this build selects) returns wrong
        // doubles for numbers with more than 19 significant digits (0.1000000000000000000001
        // read as 0.000387...; the DOM parser is right): read those tokens with from_chars.
        double d = n.get_double();
        if (raw.size() > 19) {  // (a shorter token cannot hold 20 digits)
          while (!raw.empty() && static_cast<unsigned char>(raw.back()) <= ' ')
            raw.remove_suffix(1);
          const std::string_view mantissa = raw.substr(0, raw.find_first_of("eE"));
          if (std::count_if(mantissa.begin(), mantissa.end(),
                            [](char c) { return c >= '0' && c <= '9'; }) > 19) {
            auto r = std::from_chars(raw.data(), raw.data() + raw.size(), d);
            if (r.ec != std::errc() || r.ptr != raw.data() + raw.size()) return false;
          }
        }
        out = Value(d);
      }
      return true;
    }
    case json_type::string: {
      std::string_view sv;
      if (v.get_string().get(sv)) return false;
      out = Value(sv);
      return true;
    }
    case json_type::boolean: {
      bool b;
      if (v.get_bool().get(b)) return false;
      out = Value(b);
      return true;
    }
    case json_type::null:
      out = Value();
      return true;
  }
  return false;
}

// One thread's On-Demand parser and the padded copy of the document it iterates.
struct OnDemand {
  simdjson::ondemand::parser parser;
  std::string padded;  // the document, then SIMDJSON_PADDING zeroes: stage 1 reads past the end
  std::uint64_t generation = 0;  // bumped each time another document is loaded
};
OnDemand& on_demand() {
  thread_local OnDemand od;
  return od;
}

// The projection with simdjson On-Demand: stops after the last wanted key, so the rest of
// the document is only indexed (stage 1), never parsed. Returns false when the document is
// not an object or On-Demand reports an error; the caller then takes the DOM path, which
// validates the whole document and reports the error.
bool project_on_demand(std::string_view json, std::span<const std::string> fields,
                       ValueObject& out) {
  OnDemand& od = on_demand();
  if (json.size() > 0xFFFFFFF) return false;
  ++od.generation;
  // Kept between documents (refilling it is one memcpy and the zeroed padding); given back
  // after a document larger than 1 MiB once a smaller one comes.
  constexpr std::size_t kKeep = std::size_t{1} << 20;
  if (od.padded.size() > kKeep && json.size() + simdjson::SIMDJSON_PADDING <= kKeep)
    std::string().swap(od.padded);
  if (od.padded.size() < json.size() + simdjson::SIMDJSON_PADDING)
    od.padded.resize(json.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(od.padded.data(), json.data(), json.size());
  std::memset(od.padded.data() + json.size(), 0, simdjson::SIMDJSON_PADDING);
  simdjson::ondemand::document doc;
  if (od.parser.iterate(od.padded.data(), json.size(), json.size() + simdjson::SIMDJSON_PADDING)
          .get(doc))
    return false;
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj)) return false;
  // Without a backslash anywhere in the document no key has escapes, and a key is its raw
  // bytes up to the closing quote: compared in place, with no unescaping copy per key.
  const bool escapes = std::memchr(json.data(), '\\', json.size()) != nullptr;
  const char* const doc_end = od.padded.data() + json.size();
  for (auto field : obj) {
    if (field.error()) return false;
    const std::string* wanted = nullptr;
    if (!escapes) {
      const char* raw = field.value_unsafe().key().raw();
      for (const std::string& f : fields) {
        // The closing quote right after f's bytes (and within the document).
        if (static_cast<std::size_t>(doc_end - raw) > f.size() && raw[f.size()] == '"' &&
            (f.empty() || (raw[0] == f[0] && std::memcmp(raw, f.data(), f.size()) == 0))) {
          wanted = &f;
          break;
        }
      }
    } else {
      std::string_view key;
      if (field.unescaped_key().get(key)) return false;
      for (const std::string& f : fields) {
        if (f == key) {
          wanted = &f;
          break;
        }
      }
    }
    if (wanted == nullptr || out.find(*wanted) != nullptr) continue;
    simdjson::ondemand::value v;
    if (field.value().get(v)) return false;
    Value x;
    if (!convert_od(v, x)) return false;
    out.append(*wanted, std::move(x));
    if (out.size() == fields.size()) break;  // all found
  }
  return true;
}

// The object a projection fills: one per thread, emptied and refilled in place when no one
// holds the previous row any more (most events are filtered or folded into an aggregate and
// dropped at once), so a projected event allocates nothing; a new one when the previous row
// is still held (a window keeps it, a sink queued it).
std::shared_ptr<ValueObject>& partial_row(std::size_t fields) {
  thread_local std::shared_ptr<ValueObject> row;
  if (row && row.use_count() == 1) {
    // use_count() is a relaxed load: the fence orders the last holder's release (another
    // thread's, perhaps) before this thread writes into the object.
    std::atomic_thread_fence(std::memory_order_acquire);
    row->clear();
  } else {
    row = std::make_shared<ValueObject>();
    row->reserve(fields);
  }
  return row;
}

Result<Value> parse_json_fields(std::string_view json, std::span<const std::string> fields) {
  {
    std::shared_ptr<ValueObject>& row = partial_row(fields.size());
    if (project_on_demand(json, fields, *row))
      return Value(std::shared_ptr<const ValueObject>(row));
  }
  GANGLION_ASSIGN_OR_RETURN(simdjson::dom::element root, parse_dom(json));
  if (root.type() != simdjson::dom::element_type::OBJECT) return convert(root);
  ValueObject out;
  out.reserve(fields.size());
  // Bind the object first: ranging over value_unsafe() of a temporary result dangles.
  simdjson::dom::object obj = root.get_object().value_unsafe();
  for (simdjson::dom::key_value_pair kv : obj) {
    if (std::find(fields.begin(), fields.end(), kv.key) != fields.end() &&
        out.find(kv.key) == nullptr) {
      out.append(std::string(kv.key), convert(kv.value));
      if (out.size() == fields.size()) break;  // all found
    }
  }
  return Value(std::move(out));
}

Result<FilteredJson> parse_json_filtered(std::string_view json, std::span<const std::string> fields,
                                         bool (*keep)(void* ctx, const Value& partial), void* ctx,
                                         bool convert_whole) {
  // A parser of its own: keep() may parse JSON (SQL parse_json()) with thread_parser(),
  // which would overwrite the document `root` points into.
  thread_local simdjson::dom::parser filter_parser;
  FilteredJson out;
  {
    // Fast path: On-Demand for the few fields keep() reads; DOM only for kept documents.
    std::shared_ptr<ValueObject>& scratch = partial_row(fields.size());
    if (project_on_demand(json, fields, *scratch)) {
      OnDemand& od = on_demand();
      const std::uint64_t generation = od.generation;
      out.partial = Value(std::shared_ptr<const ValueObject>(scratch));
      out.kept = keep(ctx, out.partial);
      if (out.kept) {
        // Unless keep() projected another document, the padded copy still holds this one:
        // DOM parsing it needs no second copy. (Validating with On-Demand from the same
        // stage-1 index instead was slower: its kernel here is the portable one, the DOM
        // parser's is chosen at run time.)
        const bool reuse = generation == od.generation;
        GANGLION_ASSIGN_OR_RETURN(
            simdjson::dom::element root,
            parse_dom(reuse ? std::string_view(od.padded.data(), json.size()) : json, filter_parser,
                      reuse));
        if (convert_whole) out.whole = convert(root);
      }
      return out;
    }
  }
  GANGLION_ASSIGN_OR_RETURN(simdjson::dom::element root, parse_dom(json, filter_parser));
  if (root.type() != simdjson::dom::element_type::OBJECT) {
    out.partial = convert(root);
    return out;
  }
  simdjson::dom::object obj = root.get_object().value_unsafe();
  ValueObject partial;
  partial.reserve(fields.size());
  for (simdjson::dom::key_value_pair kv : obj) {
    if (std::find(fields.begin(), fields.end(), kv.key) != fields.end() &&
        partial.find(kv.key) == nullptr) {
      partial.append(std::string(kv.key), convert(kv.value));
      if (partial.size() == fields.size()) break;
    }
  }
  out.partial = Value(std::move(partial));
  out.kept = keep(ctx, out.partial);
  if (out.kept && convert_whole) out.whole = convert(root);
  return out;
}

namespace {

// Writes finite `d` in shortest round-trip form; returns the end. From 2^64 on, the shortest
// form can be an integer literal ("18446744073709551616") that simdjson, and so
// parse_json(), refuses as too large: those get an exponent ("1.8446744073709552e+19"),
// which reads back as the same double.
char* format_float(double d, char* buf, std::size_t size) {
  return std::fabs(d) >= 18446744073709551616.0
             ? std::to_chars(buf, buf + size, d, std::chars_format::scientific).ptr
             : std::to_chars(buf, buf + size, d).ptr;
}

// A number token as append_json() would write the value parse_json() reads from it.
bool canonical_number(std::string_view tok) {
  bool is_float = tok.find_first_of(".eE") != std::string_view::npos;
  if (!is_float) {
    // int64 for sure up to 18 digits; "-0" reads as int 0 and is written "0".
    std::size_t digits = tok.size() - (tok.front() == '-' ? 1 : 0);
    return digits <= 18 && tok != "-0";
  }
  double d = 0;
  auto r = std::from_chars(tok.data(), tok.data() + tok.size(), d);
  if (r.ec != std::errc() || r.ptr != tok.data() + tok.size() || !std::isfinite(d)) return false;
  char buf[32];
  char* end = format_float(d, buf, sizeof buf);
  return std::string_view(buf, static_cast<std::size_t>(end - buf)) == tok;
}

}  // namespace

bool is_canonical_json(std::string_view json) {
  std::size_t i = 0;
  const std::size_t n = json.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(json[i]);
    if (c == '"') {
      for (++i; i < n && json[i] != '"'; ++i) {
        const unsigned char s = static_cast<unsigned char>(json[i]);
        if (s < 0x20) return false;
        if (s == '\\') {
          if (i + 1 >= n || (json[i + 1] != '"' && json[i + 1] != '\\')) return false;
          ++i;
        }
      }
      if (i >= n) return false;
      ++i;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      std::size_t start = i;
      while (i < n && (json[i] == '-' || json[i] == '+' || json[i] == '.' || json[i] == 'e' ||
                       json[i] == 'E' || (json[i] >= '0' && json[i] <= '9'))) {
        ++i;
      }
      if (!canonical_number(json.substr(start, i - start))) return false;
    } else if (c <= 0x20) {
      return false;  // whitespace between tokens
    } else {
      ++i;  // structural characters and the letters of true, false, null
    }
  }
  return true;
}

void append_json(const Value& v, std::string& out) {
  switch (v.type()) {
    case Value::Type::kNull:
      out += "null";
      return;
    case Value::Type::kBool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Value::Type::kInt: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, v.as_int());
      out.append(buf, r.ptr);
      return;
    }
    case Value::Type::kFloat: {
      double d = v.as_float();
      if (!std::isfinite(d)) {
        out += "null";
        return;
      }
      char buf[32];
      out.append(buf, format_float(d, buf, sizeof buf));
      return;
    }
    case Value::Type::kString:
      append_json_string(v.as_string(), out);
      return;
    case Value::Type::kBytes:
      append_json_string(base64_encode(v.as_bytes().data), out);
      return;
    case Value::Type::kArray: {
      out += '[';
      bool first = true;
      for (const Value& e : v.as_array()) {
        if (!first) out += ',';
        first = false;
        append_json(e, out);
      }
      out += ']';
      return;
    }
    case Value::Type::kObject: {
      out += '{';
      bool first = true;
      for (const auto& [k, e] : v.as_object()) {
        if (!first) out += ',';
        first = false;
        append_json_string(k, out);
        out += ':';
        append_json(e, out);
      }
      out += '}';
      return;
    }
  }
}

std::string to_json(const Value& v) {
  std::string out;
  append_json(v, out);
  return out;
}

}  // namespace ganglion
