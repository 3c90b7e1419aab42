#include "stream/catalog.h"

#include <algorithm>
#include <cmath>

#include "base/base64.h"
#include "event/json.h"
#include "stream/parser.h"
#include "stream/time_format.h"

namespace ganglion::stream {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string describe(const Value& v) {
  std::string t = v.to_display_string();
  if (t.size() > 32) t = t.substr(0, 32) + "...";
  return std::string(v.type_name()) + "(" + t + ")";
}

sql::FieldDef clone(const sql::FieldDef& f);

std::unique_ptr<sql::TypeSpec> clone(const sql::TypeSpec& t) {
  auto out = std::make_unique<sql::TypeSpec>();
  out->kind = t.kind;
  if (t.element) out->element = clone(*t.element);
  for (const auto& f : t.fields) out->fields.push_back(clone(f));
  return out;
}

sql::FieldDef clone(const sql::FieldDef& f) {
  sql::FieldDef out;
  out.name = f.name;
  if (f.type) out.type = clone(*f.type);
  return out;
}

Status mismatch(const sql::TypeSpec& type, const Value& v) {
  return InvalidArgument("expects " + std::string(sql::to_string(type.kind)) + ", got " +
                         describe(v));
}

Result<Value> conform_object(const Value& v, const std::vector<sql::FieldDef>& fields, bool strict,
                             std::string_view datetime_format) {
  ValueObject out;
  out.reserve(fields.size());
  const ValueObject& in = v.as_object();
  for (const auto& f : fields) {
    const Value* x = in.find(f.name);
    if (x == nullptr) continue;
    auto r = conform(*x, *f.type, strict, datetime_format);
    if (!r.ok()) return r.status().with_context("field '" + f.name + "'");
    out.append(f.name, std::move(r).value());
  }
  return Value(std::move(out));
}

}  // namespace

std::optional<std::int64_t> datetime_ms(const Value& v, std::string_view format) {
  if (v.is_int()) return v.as_int();
  // In range first: casting a double outside int64 ({"ts": 1.7e52}) is undefined.
  if (v.is_float() && std::isfinite(v.as_float()) && std::fabs(v.as_float()) < 9.2e18)
    return static_cast<std::int64_t>(v.as_float());
  if (v.is_string())
    return format.empty() ? parse_time_any(v.as_string()) : parse_time(v.as_string(), format);
  return std::nullopt;
}

Result<Value> conform(const Value& v, const sql::TypeSpec& type, bool strict,
                      std::string_view datetime_format) {
  using sql::TypeKind;
  if (v.is_null()) return v;
  switch (type.kind) {
    case TypeKind::kBigint:
      if (v.is_int()) return v;
      if (!strict && v.is_float() && std::isfinite(v.as_float()) &&
          v.as_float() == std::floor(v.as_float()) && std::fabs(v.as_float()) < 9.2e18) {
        return Value(static_cast<std::int64_t>(v.as_float()));
      }
      return mismatch(type, v);
    case TypeKind::kFloat:
      if (v.is_float()) return v;
      if (!strict && v.is_int()) return Value(static_cast<double>(v.as_int()));
      return mismatch(type, v);
    case TypeKind::kString:
      if (v.is_string()) return v;
      return mismatch(type, v);
    case TypeKind::kBoolean:
      if (v.is_bool()) return v;
      return mismatch(type, v);
    case TypeKind::kDatetime: {
      if (v.is_int()) return v;
      if (strict && v.is_float()) return mismatch(type, v);
      if (auto ms = datetime_ms(v, datetime_format)) return Value(*ms);
      if (v.is_string() && !datetime_format.empty())
        return InvalidArgument("expects DATETIME as '" + std::string(datetime_format) + "', got " +
                               describe(v));
      return mismatch(type, v);
    }
    case TypeKind::kBytea: {
      if (v.is_bytes()) return v;
      if (v.is_string()) {
        auto d = base64_decode(v.as_string());
        if (d) return Value(Bytes{std::move(*d)});
      }
      return mismatch(type, v);
    }
    case TypeKind::kArray: {
      if (!v.is_array()) return mismatch(type, v);
      ValueArray out;
      out.reserve(v.as_array().size());
      for (std::size_t i = 0; i < v.as_array().size(); ++i) {
        auto r = conform(v.as_array()[i], *type.element, strict, datetime_format);
        if (!r.ok()) return r.status().with_context("element " + std::to_string(i));
        out.push_back(std::move(r).value());
      }
      return Value(std::move(out));
    }
    case TypeKind::kStruct:
      if (!v.is_object()) return mismatch(type, v);
      return conform_object(v, type.fields, strict, datetime_format);
  }
  return mismatch(type, v);
}

Result<std::shared_ptr<const StreamDef>> make_stream_def(const sql::CreateStreamStatement& stmt) {
  auto def = std::make_shared<StreamDef>();
  def->name = stmt.name;
  def->is_table = stmt.is_table;
  for (const auto& f : stmt.fields) def->fields.push_back(clone(f));
  if (const std::string* ts = stmt.option("TIMESTAMP")) def->timestamp_field = *ts;
  if (const std::string* f = stmt.option("TIMESTAMP_FORMAT")) def->timestamp_format = *f;
  if (const std::string* key = stmt.option("KEY")) def->key = *key;
  if (const std::string* fmt = stmt.option("FORMAT")) def->format = lower(*fmt);
  if (const std::string* strict = stmt.option("STRICT_VALIDATION"))
    def->strict_validation = lower(*strict) == "true";
  if (def->format != "json" && def->format != "binary") {
    return InvalidArgument("stream '" + stmt.name + "': FORMAT '" + def->format +
                           "' is not supported (json or binary)");
  }
  if (def->format == "binary" &&
      (def->fields.size() > 1 ||
       (def->fields.size() == 1 && def->fields[0].type->kind != sql::TypeKind::kBytea))) {
    return InvalidArgument("stream '" + stmt.name +
                           "': a binary stream is schemaless or has one BYTEA column");
  }
  if (def->format == "binary" && !def->timestamp_field.empty()) {
    return InvalidArgument("stream '" + stmt.name + "': a binary stream has no TIMESTAMP field");
  }
  if (!def->timestamp_field.empty() && !def->fields.empty() &&
      std::none_of(def->fields.begin(), def->fields.end(),
                   [&](const sql::FieldDef& f) { return f.name == def->timestamp_field; })) {
    return InvalidArgument("stream '" + stmt.name + "': TIMESTAMP field '" + def->timestamp_field +
                           "' is not in the schema");
  }
  return std::shared_ptr<const StreamDef>(std::move(def));
}

Status Catalog::add(const sql::CreateStreamStatement& stmt) {
  if (defs_.count(stmt.name) != 0) {
    return AlreadyExists(std::string(stmt.is_table ? "table" : "stream") + " '" + stmt.name +
                         "' already exists");
  }
  GANGLION_ASSIGN_OR_RETURN(auto def, make_stream_def(stmt));
  defs_.emplace(stmt.name, std::move(def));
  return Status::Ok();
}

Status Catalog::add_sql(std::string_view create_sql) {
  GANGLION_ASSIGN_OR_RETURN(sql::Statement st, sql::parse_statement(create_sql));
  auto* create = std::get_if<sql::CreateStreamStatement>(&st);
  if (create == nullptr) return InvalidArgument("expected CREATE STREAM or CREATE TABLE");
  return add(*create);
}

bool Catalog::drop(std::string_view name) { return defs_.erase(std::string(name)) != 0; }

std::shared_ptr<const StreamDef> Catalog::find(std::string_view name) const {
  auto it = defs_.find(std::string(name));
  return it == defs_.end() ? nullptr : it->second;
}

Result<Value> decode_row(const StreamDef& def, std::string_view payload,
                         std::span<const std::string> fields) {
  Result<Value> parsed = fields.empty() ? parse_json(payload) : parse_json_fields(payload, fields);
  if (!parsed.ok()) return parsed.status();
  return conform_row(def, *parsed);
}

Value binary_row(const StreamDef& def, std::string_view payload) {
  return Value(ValueObject{
      {def.fields.empty() ? "self" : def.fields[0].name, Value(Bytes{std::string(payload)})}});
}

Result<Value> conform_row(const StreamDef& def, const Value& parsed) {
  if (!parsed.is_object()) return InvalidArgument("payload is not a JSON object");
  if (def.schemaless()) return parsed;
  return conform_object(parsed, def.fields, def.strict_validation, def.timestamp_format);
}

}  // namespace ganglion::stream
