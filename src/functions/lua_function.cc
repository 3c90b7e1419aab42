// The Lua sandbox.
//
// Two rules keep the host safe, and every function below follows them:
//
// 1. Lua reports errors with longjmp (liblua5.4 is C). A longjmp across a C++ frame that
//    owns an object with a destructor is undefined behaviour, so a lua_CFunction here never
//    raises (luaL_error, luaL_check*, or any API call that may allocate) while it owns such
//    an object: C++ work happens in an inner scope that parks its results and error text in
//    the Context (which outlives the call), and the error is raised after the scope closed.
//    C++ exceptions are caught inside those scopes.
// 2. Outside a protected call nothing may raise (it would reach the panic handler and abort
//    the process). So every Lua API call that can allocate runs inside lua_pcall (setup,
//    calls, the `handle` lookup); the C++ side only uses non-raising calls (lua_type,
//    lua_to* on values of the right type, raw gets, lua_next) to read results.
#include "functions/lua_function.h"

#include <spdlog/spdlog.h>
#include <lua.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "event/json.h"

namespace ganglion::functions {

struct LuaFunction::Context {
  std::string name;
  FunctionLimits limits;
  Clock* clock = nullptr;
  FunctionState* state = nullptr;

  // Allocator. Written only by the thread holding the call lock (or during create/destroy).
  std::atomic<std::size_t> mem_used{0};
  std::size_t mem_limit = 0;
  bool mem_refused = false;
  bool mem_precheck_failed = false;  // a guard refused a result larger than the cap

  // Current call.
  std::uint64_t used = 0;
  bool budget_exceeded = false;
  std::vector<Emitted> emitted;
  std::size_t emitted_bytes = 0;
  Value scratch;
  std::string err;

  // Log rate limit (token bucket).
  double log_tokens = 0;
  MonoTime log_refilled{};
  std::uint64_t log_suppressed = 0;
};

struct LuaFunction::Request {
  enum class Kind { kEvent, kArgs } kind = Kind::kEvent;
  std::string_view topic;
  std::string_view raw;
  std::int64_t timestamp_ms = 0;
  const EventHeaders* headers = nullptr;
  const Value* payload = nullptr;  // nullptr: event.payload is nil
  std::span<const Value> args;
};

namespace {

using Context = LuaFunction::Context;

// Instructions between two runs of the count hook.
constexpr int kHookStride = 1000;
// A pattern-matching step is far cheaper than a VM instruction; estimates of matcher work
// are divided by this before they are charged.
constexpr long double kMatchStepsPerInstruction = 16;

// Address used as the registry key of the metatable that marks tables made from arrays.
const char kArrayMarkerKey = 0;

Context* context_of(lua_State* L) { return *static_cast<Context**>(lua_getextraspace(L)); }

void* sandbox_alloc(void* ud, void* ptr, std::size_t osize, std::size_t nsize) {
  auto* c = static_cast<Context*>(ud);
  const std::size_t old = ptr ? osize : 0;
  const std::size_t used = c->mem_used.load(std::memory_order_relaxed);
  if (nsize == 0) {
    std::free(ptr);
    c->mem_used.store(used - old, std::memory_order_relaxed);
    return nullptr;
  }
  if (nsize > old && used - old + nsize > c->mem_limit) {
    c->mem_refused = true;
    return nullptr;
  }
  void* p = std::realloc(ptr, nsize);
  if (p == nullptr) {
    c->mem_refused = true;
    return nullptr;
  }
  c->mem_used.store(used - old + nsize, std::memory_order_relaxed);
  return p;
}

int on_panic(lua_State* L) {
  // Unreachable by design (rule 2 above); if it happens, fail loudly rather than corrupt.
  const char* msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
  spdlog::critical("functions: unprotected Lua error: {}", msg);
  std::abort();
}

[[noreturn]] void raise_budget(lua_State* L, Context* c) {
  c->budget_exceeded = true;
  // From now on the hook fires on every instruction of this coroutine, so a pcall in the
  // script cannot keep running after catching the error.
  lua_sethook(L, lua_gethook(L), LUA_MASKCOUNT, 1);
  luaL_error(L, "instruction budget of %I exceeded",
             static_cast<lua_Integer>(c->limits.instruction_budget));
  std::abort();  // luaL_error does not return
}

void count_hook(lua_State* L, lua_Debug*) {
  Context* c = context_of(L);
  c->used += static_cast<std::uint64_t>(lua_gethookcount(L));
  if (c->budget_exceeded || c->used > c->limits.instruction_budget) raise_budget(L, c);
}

// Charges work done inside one C call (which the hook cannot see) against the budget.
void charge(lua_State* L, long double cost) {
  Context* c = context_of(L);
  const long double remaining =
      static_cast<long double>(c->limits.instruction_budget) - static_cast<long double>(c->used);
  if (c->budget_exceeded || cost > remaining) raise_budget(L, c);
  c->used += static_cast<std::uint64_t>(cost);
}

// ---- Value -> Lua (raises on memory errors and depth; owns no C++ objects) ----

void push_value(lua_State* L, const Value& v, int depth) {
  if (depth > kMaxDepth) luaL_error(L, "value nested deeper than %d levels", kMaxDepth);
  luaL_checkstack(L, 4, "value nested too deeply");
  switch (v.type()) {
    case Value::Type::kNull:
      lua_pushlightuserdata(L, nullptr);
      return;
    case Value::Type::kBool:
      lua_pushboolean(L, v.as_bool());
      return;
    case Value::Type::kInt:
      lua_pushinteger(L, v.as_int());
      return;
    case Value::Type::kFloat:
      lua_pushnumber(L, v.as_float());
      return;
    case Value::Type::kString:
      lua_pushlstring(L, v.as_string().data(), v.as_string().size());
      return;
    case Value::Type::kBytes:
      lua_pushlstring(L, v.as_bytes().data.data(), v.as_bytes().data.size());
      return;
    case Value::Type::kArray: {
      const ValueArray& a = v.as_array();
      lua_createtable(L, static_cast<int>(std::min<std::size_t>(a.size(), 1 << 20)), 0);
      for (std::size_t i = 0; i < a.size(); ++i) {
        push_value(L, a[i], depth + 1);
        lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
      }
      lua_rawgetp(L, LUA_REGISTRYINDEX, &kArrayMarkerKey);
      lua_setmetatable(L, -2);
      return;
    }
    case Value::Type::kObject: {
      const ValueObject& o = v.as_object();
      lua_createtable(L, 0, static_cast<int>(std::min<std::size_t>(o.size(), 1 << 20)));
      for (std::size_t i = 0; i < o.size(); ++i) {
        const auto& entry = o.at(i);
        lua_pushlstring(L, entry.first.data(), entry.first.size());
        // Duplicate JSON keys: the first occurrence wins, as in Value::find.
        if (lua_rawget(L, -2) != LUA_TNIL) {
          lua_pop(L, 1);
          continue;
        }
        lua_pop(L, 1);
        lua_pushlstring(L, entry.first.data(), entry.first.size());
        push_value(L, entry.second, depth + 1);
        lua_rawset(L, -3);
      }
      return;
    }
  }
}

// ---- Lua -> Value (never raises; C++ allowed) ----

bool is_array_marked(lua_State* L, int idx) {
  if (!lua_getmetatable(L, idx)) return false;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kArrayMarkerKey);
  const bool marked = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return marked;
}

std::string number_key(lua_State* L, int idx) {
  if (lua_isinteger(L, idx)) return std::to_string(lua_tointeger(L, idx));
  std::string s;
  append_json(Value(lua_tonumber(L, idx)), s);
  return s;
}

bool to_value(lua_State* L, int idx, int depth, Value& out, std::string& err) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      out = Value();
      return true;
    case LUA_TBOOLEAN:
      out = Value(lua_toboolean(L, idx) != 0);
      return true;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        out = Value(static_cast<long long>(lua_tointeger(L, idx)));
      } else {
        out = Value(lua_tonumber(L, idx));
      }
      return true;
    case LUA_TSTRING: {
      std::size_t len = 0;
      const char* s = lua_tolstring(L, idx, &len);
      out = Value(std::string(s, len));
      return true;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == nullptr) {
        out = Value();
        return true;
      }
      err = "cannot convert a userdata to a value";
      return false;
    case LUA_TTABLE:
      break;
    default:
      err = std::string("cannot convert a ") + lua_typename(L, lua_type(L, idx)) + " to a value";
      return false;
  }
  if (depth >= kMaxDepth) {
    err = "table nested deeper than " + std::to_string(kMaxDepth) + " levels (or cyclic)";
    return false;
  }
  if (!lua_checkstack(L, 4)) {
    err = "table nested too deeply";
    return false;
  }
  // First pass: is it a sequence 1..n?
  std::size_t count = 0;
  lua_Integer max_key = 0;
  bool only_positive_ints = true;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    ++count;
    if (lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
      max_key = std::max(max_key, lua_tointeger(L, -2));
    } else {
      only_positive_ints = false;
    }
    lua_pop(L, 1);
  }
  if (count == 0) {
    if (is_array_marked(L, idx)) {
      out = Value(ValueArray{});
    } else {
      out = Value(ValueObject{});
    }
    return true;
  }
  if (only_positive_ints && static_cast<std::size_t>(max_key) == count) {
    ValueArray a;
    a.reserve(count);
    for (std::size_t i = 1; i <= count; ++i) {
      lua_rawgeti(L, idx, static_cast<lua_Integer>(i));
      Value item;
      const bool ok = to_value(L, -1, depth + 1, item, err);
      lua_pop(L, 1);
      if (!ok) return false;
      a.push_back(std::move(item));
    }
    out = Value(std::move(a));
    return true;
  }
  ValueObject o;
  o.reserve(count);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    std::string key;
    switch (lua_type(L, -2)) {
      case LUA_TSTRING: {
        std::size_t len = 0;
        const char* s = lua_tolstring(L, -2, &len);
        key.assign(s, len);
        break;
      }
      case LUA_TNUMBER:
        key = number_key(L, -2);
        break;
      default:
        err = std::string("cannot convert a table key of type ") +
              lua_typename(L, lua_type(L, -2)) + " to an object key";
        lua_pop(L, 2);
        return false;
    }
    Value item;
    if (!to_value(L, -1, depth + 1, item, err)) {
      lua_pop(L, 2);
      return false;
    }
    lua_pop(L, 1);
    o.append(std::move(key), std::move(item));
  }
  out = Value(std::move(o));
  return true;
}

// ---- The API inside Lua ----

bool valid_emit_topic(std::string_view t) {
  if (t.empty() || t.size() > 65535) return false;
  return t.find_first_of(std::string_view("+#\0", 3)) == std::string_view::npos;
}

int l_emit(lua_State* L) {
  Context* c = context_of(L);
  std::size_t topic_len = 0;
  const char* topic = luaL_checklstring(L, 1, &topic_len);
  luaL_checkany(L, 2);
  const lua_Integer qos = luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, qos >= 0 && qos <= 2, 3, "qos must be 0, 1 or 2");
  luaL_argcheck(L, valid_emit_topic(std::string_view(topic, topic_len)), 1,
                "not a valid topic name (empty, or has '+', '#' or NUL)");
  if (c->emitted.size() >= c->limits.max_emits) {
    return luaL_error(L, "emit: more than %I messages in one call",
                      static_cast<lua_Integer>(c->limits.max_emits));
  }
  bool failed = false;
  {
    try {
      Emitted e;
      e.topic.assign(topic, topic_len);
      e.qos = static_cast<std::uint8_t>(qos);
      if (lua_type(L, 2) == LUA_TSTRING) {
        std::size_t len = 0;
        const char* s = lua_tolstring(L, 2, &len);
        e.payload.assign(s, len);
      } else {
        Value v;
        if (to_value(L, 2, 0, v, c->err)) {
          e.payload = to_json(v);
        } else {
          c->err = "emit: " + c->err;
          failed = true;
        }
      }
      if (!failed) {
        if (c->emitted_bytes + e.payload.size() > c->limits.max_emit_bytes) {
          c->err = "emit: more than " + std::to_string(c->limits.max_emit_bytes) +
                   " payload bytes in one call";
          failed = true;
        } else {
          c->emitted_bytes += e.payload.size();
          c->emitted.push_back(std::move(e));
        }
      }
    } catch (const std::exception& ex) {
      c->err = std::string("emit: ") + ex.what();
      failed = true;
    }
  }
  if (failed) return luaL_error(L, "%s", c->err.c_str());
  return 0;
}

int l_state_get(lua_State* L) {
  Context* c = context_of(L);
  std::size_t len = 0;
  const char* key = luaL_checklstring(L, 1, &len);
  {
    try {
      c->scratch = c->state->get(std::string(key, len));
    } catch (const std::exception&) {
      c->scratch = Value();
    }
  }
  if (c->scratch.is_null()) {
    lua_pushnil(L);
  } else {
    push_value(L, c->scratch, 0);
  }
  c->scratch = Value();
  return 1;
}

int l_state_set(lua_State* L) {
  Context* c = context_of(L);
  std::size_t len = 0;
  const char* key = luaL_checklstring(L, 1, &len);
  bool failed = false;
  {
    try {
      std::string k(key, len);
      Value v;
      if (lua_isnoneornil(L, 2)) {
        c->state->erase(k);
      } else if (!to_value(L, 2, 0, v, c->err)) {
        c->err = "state.set: " + c->err;
        failed = true;
      } else if (v.is_null()) {
        c->state->erase(k);
      } else {
        Status s =
            c->state->set(k, std::move(v), c->limits.state_max_keys, c->limits.state_max_bytes);
        if (!s.ok()) {
          c->err = "state.set: " + s.message();
          failed = true;
        }
      }
    } catch (const std::exception& ex) {
      c->err = std::string("state.set: ") + ex.what();
      failed = true;
    }
  }
  if (failed) return luaL_error(L, "%s", c->err.c_str());
  return 0;
}

void write_log(Context* c, int level, const char* msg, std::size_t len) {
  try {
    const MonoTime now = c->clock->now();
    const double rate = c->limits.log_lines_per_second;
    const double burst = std::max(1.0, rate * 5);
    const double elapsed = std::chrono::duration<double>(now - c->log_refilled).count();
    c->log_tokens = std::min(burst, c->log_tokens + elapsed * rate);
    c->log_refilled = now;
    if (c->log_tokens < 1) {
      ++c->log_suppressed;
      return;
    }
    c->log_tokens -= 1;
    if (c->log_suppressed > 0) {
      spdlog::warn("function {}: {} log lines suppressed (rate limit)", c->name, c->log_suppressed);
      c->log_suppressed = 0;
    }
    const std::string_view text(msg, std::min(len, c->limits.max_log_line));
    const auto lvl = level == 0   ? spdlog::level::info
                     : level == 1 ? spdlog::level::warn
                                  : spdlog::level::err;
    spdlog::log(lvl, "function {}: {}", c->name, text);
  } catch (...) {
    // Logging must never fail a call.
  }
}

int l_log(lua_State* L) {
  const int level = static_cast<int>(lua_tointeger(L, lua_upvalueindex(1)));
  std::size_t len = 0;
  const char* msg = luaL_tolstring(L, 1, &len);
  write_log(context_of(L), level, msg, len);
  return 0;
}

int l_print(lua_State* L) {
  const int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; ++i) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, nullptr);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  std::size_t len = 0;
  const char* msg = lua_tolstring(L, -1, &len);
  write_log(context_of(L), 0, msg, len);
  return 0;
}

// Calls the original function (upvalue 1) with all arguments, returning all its results.
int call_original(lua_State* L) {
  const int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

// load(): text chunks only (no bytecode, whose verifier Lua does not have), and the parse
// is charged to the budget.
int l_load(lua_State* L) {
  if (lua_type(L, 1) == LUA_TSTRING) charge(L, static_cast<long double>(lua_rawlen(L, 1)) / 4);
  const bool has_env = !lua_isnone(L, 4);
  lua_settop(L, has_env ? 4 : 3);
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  return call_original(L);
}

int l_collectgarbage(lua_State* L) {
  static const char* const kAllowed[] = {"collect", "count", "step", "isrunning", nullptr};
  if (!lua_isnoneornil(L, 1)) {
    const char* opt = luaL_checkstring(L, 1);
    bool ok = false;
    for (const char* const* a = kAllowed; *a != nullptr; ++a) ok = ok || std::strcmp(opt, *a) == 0;
    if (!ok) return luaL_error(L, "collectgarbage('%s') is not allowed in a function", opt);
  }
  return call_original(L);
}

// Finalizers (__gc) would run Lua code at arbitrary points, including outside any call's
// budget, so tables may not get a metatable with __gc. (Lua marks an object for
// finalization only when its metatable has __gc at setmetatable time.)
int l_setmetatable(lua_State* L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    const bool has_gc = lua_rawget(L, 2) != LUA_TNIL;
    lua_pop(L, 1);
    if (has_gc) return luaL_error(L, "metatables with __gc are not allowed in a function");
  }
  return call_original(L);
}

// string.rep: refuses results larger than the memory cap before allocating, and the empty
// case that would otherwise loop `n` times inside C (string.rep("", 2^62)).
int l_string_rep(lua_State* L) {
  std::size_t l = 0, lsep = 0;
  luaL_checklstring(L, 1, &l);
  const lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &lsep);
  if (n <= 0 || l + lsep == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  const long double total = static_cast<long double>(n) * static_cast<long double>(l) +
                            static_cast<long double>(n - 1) * static_cast<long double>(lsep);
  if (total > static_cast<long double>(context_of(L)->limits.memory_bytes)) {
    context_of(L)->mem_precheck_failed = true;
    return luaL_error(L, "string.rep: a result of %f bytes exceeds the memory limit",
                      static_cast<lua_Number>(total));
  }
  charge(L, total / 64 + static_cast<long double>(n) / 8);
  return call_original(L);
}

// table.move / insert / remove loop inside C over a range the script controls (and #t may
// come from a __len metamethod), so the range is charged to the budget first.
int l_table_move(lua_State* L) {
  const lua_Integer f = luaL_checkinteger(L, 2);
  const lua_Integer e = luaL_checkinteger(L, 3);
  if (e >= f) charge(L, static_cast<long double>(e) - static_cast<long double>(f) + 1);
  return call_original(L);
}

int l_table_insert(lua_State* L) {
  if (lua_gettop(L) == 3) {
    const lua_Integer size = luaL_len(L, 1);
    const lua_Integer pos = luaL_checkinteger(L, 2);
    if (size >= pos) charge(L, static_cast<long double>(size) - static_cast<long double>(pos) + 1);
  }
  return call_original(L);
}

int l_table_remove(lua_State* L) {
  if (!lua_isnoneornil(L, 2)) {
    const lua_Integer size = luaL_len(L, 1);
    const lua_Integer pos = luaL_checkinteger(L, 2);
    if (size >= pos) charge(L, static_cast<long double>(size) - static_cast<long double>(pos) + 1);
  }
  return call_original(L);
}

// Worst-case work of Lua's backtracking matcher on a subject of n bytes: each start
// position (one when anchored) times n for every repetition item (*, +, -, %b) that is
// followed by more pattern (a trailing one never backtracks into the rest). Plain
// substrings cost n * m byte comparisons.
long double pattern_cost(std::size_t n, std::string_view p, bool plain, bool allow_anchor) {
  const long double ln = static_cast<long double>(n) + 1;
  const long double lm = static_cast<long double>(p.size()) + 1;
  if (plain || p.find_first_of("^$*+?.([%-") == std::string_view::npos) return ln * lm / 8;
  std::size_t i = 0;
  const bool anchored = allow_anchor && !p.empty() && p[0] == '^';
  if (anchored) i = 1;
  int nonfinal = 0;
  int pending = 0;  // repetitions seen since the last "real" item
  auto item_after = [&] {
    nonfinal += pending;
    pending = 0;
  };
  while (i < p.size()) {
    const char ch = p[i];
    if (ch == '(' || ch == ')') {
      ++i;
      continue;
    }
    if (ch == '$' && i + 1 == p.size()) break;
    item_after();
    bool repeat_item = false;
    if (ch == '%' && i + 1 < p.size()) {
      const char e = p[i + 1];
      if (e == 'b') {
        i += 4;
        ++pending;
        continue;
      }
      if (e == 'f') {
        i += 2;
        if (i < p.size() && p[i] == '[') {
          ++i;
          if (i < p.size() && p[i] == '^') ++i;
          if (i < p.size() && p[i] == ']') ++i;
          while (i < p.size() && p[i] != ']') i += (p[i] == '%') ? 2 : 1;
          ++i;
        }
        continue;
      }
      i += 2;
    } else if (ch == '[') {
      ++i;
      if (i < p.size() && p[i] == '^') ++i;
      if (i < p.size() && p[i] == ']') ++i;
      while (i < p.size() && p[i] != ']') i += (p[i] == '%') ? 2 : 1;
      ++i;
    } else {
      ++i;
    }
    if (i < p.size() && (p[i] == '*' || p[i] == '+' || p[i] == '-')) {
      repeat_item = true;
      ++i;
    } else if (i < p.size() && p[i] == '?') {
      ++i;
    }
    if (repeat_item) ++pending;
  }
  const long double starts = anchored ? 1 : ln;
  return starts * std::pow(ln, static_cast<long double>(nonfinal)) + starts * lm / 8;
}

// string.find / match / gmatch / gsub. Upvalue 2: 0 find, 1 match, 2 gmatch, 3 gsub.
int l_pattern(lua_State* L) {
  const int kind = static_cast<int>(lua_tointeger(L, lua_upvalueindex(2)));
  std::size_t n = 0, m = 0;
  luaL_checklstring(L, 1, &n);
  const char* p = luaL_checklstring(L, 2, &m);
  const bool plain = kind == 0 && lua_toboolean(L, 4);
  long double cost = pattern_cost(n, std::string_view(p, m), plain, kind != 2);
  if (kind == 3) cost += static_cast<long double>(n) / 8;  // gsub copies the subject
  charge(L, cost / kMatchStepsPerInstruction);
  return call_original(L);
}

void wrap_field(lua_State* L, const char* field, lua_CFunction fn, int extra = -1) {
  lua_getfield(L, -1, field);
  int ups = 1;
  if (extra >= 0) {
    lua_pushinteger(L, extra);
    ups = 2;
  }
  lua_pushcclosure(L, fn, ups);
  lua_setfield(L, -2, field);
}

// Opens the safe libraries and installs the API. Runs under lua_pcall.
int l_setup(lua_State* L) {
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
  luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 1);
  lua_settop(L, 0);

  lua_newtable(L);
  lua_pushliteral(L, "array");
  lua_setfield(L, -2, "__name");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kArrayMarkerKey);

  lua_pushglobaltable(L);
  for (const char* name : {"dofile", "loadfile", "warn"}) {
    lua_pushnil(L);
    lua_setfield(L, -2, name);
  }
  wrap_field(L, "load", l_load);
  wrap_field(L, "collectgarbage", l_collectgarbage);
  wrap_field(L, "setmetatable", l_setmetatable);
  lua_pushcfunction(L, l_print);
  lua_setfield(L, -2, "print");
  lua_pushlightuserdata(L, nullptr);
  lua_setfield(L, -2, "null");
  lua_pushcfunction(L, l_emit);
  lua_setfield(L, -2, "emit");

  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, l_state_get);
  lua_setfield(L, -2, "get");
  lua_pushcfunction(L, l_state_set);
  lua_setfield(L, -2, "set");
  lua_setfield(L, -2, "state");

  lua_createtable(L, 0, 3);
  const char* const levels[] = {"info", "warn", "error"};
  for (int i = 0; i < 3; ++i) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, l_log, 1);
    lua_setfield(L, -2, levels[i]);
  }
  lua_setfield(L, -2, "log");

  lua_getfield(L, -1, LUA_STRLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  wrap_field(L, "rep", l_string_rep);
  wrap_field(L, "find", l_pattern, 0);
  wrap_field(L, "match", l_pattern, 1);
  wrap_field(L, "gmatch", l_pattern, 2);
  wrap_field(L, "gsub", l_pattern, 3);
  lua_pop(L, 1);

  lua_getfield(L, -1, LUA_TABLIBNAME);
  wrap_field(L, "move", l_table_move);
  wrap_field(L, "insert", l_table_insert);
  wrap_field(L, "remove", l_table_remove);
  lua_pop(L, 2);
  return 0;
}

// Runs the chunk compiled at the top of the stack below the light userdata argument.
int l_run_chunk(lua_State* L) {
  lua_call(L, 0, 0);
  lua_pushglobaltable(L);
  lua_pushliteral(L, "handle");
  if (lua_rawget(L, -2) != LUA_TFUNCTION) {
    return luaL_error(L, "the source must define a global function 'handle'");
  }
  return 0;
}

int push_event(lua_State* L, const void* req_ptr);

// Calls handle() for a Request (light userdata, argument 1). Runs under lua_pcall.
int l_call(lua_State* L) {
  const void* req = lua_touserdata(L, 1);
  lua_settop(L, 0);
  lua_pushglobaltable(L);
  lua_pushliteral(L, "handle");
  if (lua_rawget(L, -2) != LUA_TFUNCTION) {
    return luaL_error(L, "global 'handle' is not a function");
  }
  const int nargs = push_event(L, req);
  lua_call(L, nargs, 1);
  return 1;
}

}  // namespace

namespace {
int push_event(lua_State* L, const void* req_ptr) {
  const auto& req = *static_cast<const LuaFunction::Request*>(req_ptr);
  if (req.kind == LuaFunction::Request::Kind::kArgs) {
    luaL_checkstack(L, static_cast<int>(std::min<std::size_t>(req.args.size(), 250)) + 2,
                    "too many arguments");
    if (req.args.size() > 250) luaL_error(L, "too many arguments");
    // A NULL argument is nil (so `if x == nil` works); nested nulls are `null`.
    for (const Value& v : req.args) {
      if (v.is_null()) {
        lua_pushnil(L);
      } else {
        push_value(L, v, 0);
      }
    }
    return static_cast<int>(req.args.size());
  }
  lua_createtable(L, 0, 5);
  lua_pushlstring(L, req.topic.data(), req.topic.size());
  lua_setfield(L, -2, "topic");
  lua_pushlstring(L, req.raw.data(), req.raw.size());
  lua_setfield(L, -2, "raw");
  lua_pushinteger(L, req.timestamp_ms);
  lua_setfield(L, -2, "timestamp");
  if (req.payload != nullptr) {
    push_value(L, *req.payload, 0);
    lua_setfield(L, -2, "payload");
  }
  lua_createtable(L, 0, 5);
  if (req.headers != nullptr) {
    const EventHeaders& h = *req.headers;
    lua_pushlstring(L, h.source.data(), h.source.size());
    lua_setfield(L, -2, "source");
    lua_pushinteger(L, static_cast<lua_Integer>(h.sequence));
    lua_setfield(L, -2, "sequence");
    lua_pushlstring(L, h.content_type.data(), h.content_type.size());
    lua_setfield(L, -2, "content_type");
    lua_pushlstring(L, h.trace_id.data(), h.trace_id.size());
    lua_setfield(L, -2, "trace_id");
    lua_pushlstring(L, h.data_class.data(), h.data_class.size());
    lua_setfield(L, -2, "data_class");
  }
  lua_setfield(L, -2, "headers");
  return 1;
}
}  // namespace

// ---- FunctionState ----

Status FunctionState::set(const std::string& key, Value value, std::size_t max_keys,
                          std::size_t max_bytes) {
  const std::size_t size = key.size() + to_json(value).size();
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].first != key) continue;
    if (bytes_ - sizes_[i] + size > max_bytes) {
      return ResourceExhausted("state would exceed " + std::to_string(max_bytes) + " bytes");
    }
    bytes_ = bytes_ - sizes_[i] + size;
    sizes_[i] = size;
    entries_[i].second = std::move(value);
    return Status::Ok();
  }
  if (entries_.size() >= max_keys) {
    return ResourceExhausted("state is full (" + std::to_string(max_keys) + " keys)");
  }
  if (bytes_ + size > max_bytes) {
    return ResourceExhausted("state would exceed " + std::to_string(max_bytes) + " bytes");
  }
  entries_.emplace_back(key, std::move(value));
  sizes_.push_back(size);
  bytes_ += size;
  return Status::Ok();
}

void FunctionState::erase(const std::string& key) {
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].first != key) continue;
    bytes_ -= sizes_[i];
    entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
    sizes_.erase(sizes_.begin() + static_cast<std::ptrdiff_t>(i));
    return;
  }
}

Value FunctionState::get(const std::string& key) const {
  std::lock_guard lock(mu_);
  for (const auto& [k, v] : entries_) {
    if (k == key) return v;
  }
  return Value();
}

std::size_t FunctionState::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::size_t FunctionState::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

// ---- LuaFunction ----

LuaFunction::LuaFunction(std::string name, FunctionLimits limits, Clock& clock,
                         std::shared_ptr<FunctionState> state)
    : name_(std::move(name)), limits_(limits), state_(std::move(state)), ctx_(new Context) {
  if (!state_) state_ = std::make_shared<FunctionState>();
  ctx_->name = name_;
  ctx_->limits = limits_;
  ctx_->clock = &clock;
  ctx_->state = state_.get();
  ctx_->mem_limit = limits_.memory_bytes;
  ctx_->log_tokens = std::max(1.0, limits_.log_lines_per_second * 5);
  ctx_->log_refilled = clock.now();
}

LuaFunction::~LuaFunction() {
  if (L_ != nullptr) lua_close(L_);
}

Result<std::shared_ptr<LuaFunction>> LuaFunction::create(std::string name, std::string_view source,
                                                         FunctionLimits limits, Clock& clock,
                                                         std::shared_ptr<FunctionState> state) {
  std::shared_ptr<LuaFunction> fn(
      new LuaFunction(std::move(name), limits, clock, std::move(state)));
  GANGLION_RETURN_IF_ERROR(fn->init(source));
  return fn;
}

std::size_t LuaFunction::memory_in_use() const {
  return ctx_->mem_used.load(std::memory_order_relaxed);
}

namespace {

// The error object at the top of the stack as text, without raising.
std::string error_text(lua_State* L) {
  switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
      std::size_t len = 0;
      const char* s = lua_tolstring(L, -1, &len);
      return std::string(s, std::min<std::size_t>(len, 4096));
    }
    case LUA_TNUMBER:
      return to_json(Value(lua_tonumber(L, -1)));
    case LUA_TNIL:
      return "nil";
    default:
      return std::string("(error object is a ") + lua_typename(L, lua_type(L, -1)) + ")";
  }
}

void begin_call(lua_State* L, Context* c) {
  c->used = 0;
  c->budget_exceeded = false;
  c->mem_refused = false;
  c->mem_precheck_failed = false;
  c->emitted.clear();
  c->emitted_bytes = 0;
  c->err.clear();
  const int stride = static_cast<int>(std::min<std::uint64_t>(
      kHookStride, std::max<std::uint64_t>(1, c->limits.instruction_budget)));
  lua_sethook(L, count_hook, LUA_MASKCOUNT, stride);
}

Status call_error(lua_State* L, Context* c, int status, FailureKind* failure) {
  FailureKind kind = FailureKind::kRuntime;
  Status s;
  std::string text = error_text(L);
  if (c->budget_exceeded) {
    kind = FailureKind::kBudget;
    s = ResourceExhausted("function '" + c->name + "': instruction budget of " +
                          std::to_string(c->limits.instruction_budget) + " exceeded");
  } else if (status == LUA_ERRMEM || c->mem_precheck_failed ||
             (c->mem_refused && text.find("not enough memory") != std::string::npos)) {
    kind = FailureKind::kMemory;
    s = ResourceExhausted("function '" + c->name + "': memory limit of " +
                          std::to_string(c->limits.memory_bytes) + " bytes exceeded");
  } else {
    s = InvalidArgument("function '" + c->name + "': " + text);
  }
  if (failure != nullptr) *failure = kind;
  return s;
}

}  // namespace

Status LuaFunction::init(std::string_view source) {
  L_ = lua_newstate(sandbox_alloc, ctx_.get());
  if (L_ == nullptr)
    return ResourceExhausted("function '" + name_ + "': cannot create a Lua state");
  *static_cast<Context**>(lua_getextraspace(L_)) = ctx_.get();
  lua_atpanic(L_, on_panic);

  lua_pushcfunction(L_, l_setup);
  if (lua_pcall(L_, 0, 0, 0) != LUA_OK) {
    std::string text = error_text(L_);
    lua_settop(L_, 0);
    return ResourceExhausted("function '" + name_ + "': cannot set up the sandbox (" + text +
                             "); is the memory limit too small?");
  }
  begin_call(L_, ctx_.get());
  std::string chunkname = "=" + name_;
  int status = luaL_loadbufferx(L_, source.data(), source.size(), chunkname.c_str(), "t");
  if (status != LUA_OK) {
    Status s;
    if (status == LUA_ERRMEM) {
      s = ResourceExhausted("function '" + name_ + "': memory limit of " +
                            std::to_string(limits_.memory_bytes) +
                            " bytes exceeded while compiling");
    } else {
      s = InvalidArgument("function '" + name_ + "': " + error_text(L_));
    }
    lua_settop(L_, 0);
    return s;
  }
  lua_pushcfunction(L_, l_run_chunk);
  lua_insert(L_, -2);
  status = lua_pcall(L_, 1, 0, 0);
  Status result = Status::Ok();
  if (status != LUA_OK) result = call_error(L_, ctx_.get(), status, nullptr);
  lua_settop(L_, 0);
  lua_sethook(L_, nullptr, 0, 0);
  ctx_->emitted.clear();
  return result;
}

Result<Invocation> LuaFunction::run(const Request& request, FailureKind* failure) {
  if (failure != nullptr) *failure = FailureKind::kNone;
  std::lock_guard lock(mu_);
  Context* c = ctx_.get();
  lua_settop(L_, 0);
  begin_call(L_, c);
  lua_pushcfunction(L_, l_call);
  lua_pushlightuserdata(L_, const_cast<Request*>(&request));
  const int status = lua_pcall(L_, 1, 1, 0);
  Result<Invocation> out = Invocation{};
  if (status != LUA_OK) {
    out = call_error(L_, c, status, failure);
  } else {
    Invocation inv;
    if (request.kind == Request::Kind::kArgs) {
      std::string err;
      if (!to_value(L_, -1, 0, inv.result, err)) {
        if (failure != nullptr) *failure = FailureKind::kRuntime;
        out = InvalidArgument("function '" + name_ + "': result: " + err);
      }
    }
    if (out.ok()) {
      inv.emitted = std::move(c->emitted);
      out = std::move(inv);
    }
  }
  lua_settop(L_, 0);
  lua_sethook(L_, nullptr, 0, 0);
  c->emitted.clear();
  c->scratch = Value();
  return out;
}

Result<Invocation> LuaFunction::invoke(const Event& event, FailureKind* failure) {
  Request r;
  r.kind = Request::Kind::kEvent;
  r.topic = event.topic();
  r.raw = event.payload();
  r.timestamp_ms = event.timestamp_ms();
  r.headers = &event.headers();
  const Result<Value>& fields = event.fields();
  if (fields.ok()) r.payload = &fields.value();
  return run(r, failure);
}

Result<Invocation> LuaFunction::invoke(std::string_view topic, const Value& payload,
                                       std::int64_t timestamp_ms, FailureKind* failure) {
  const std::string raw = to_json(payload);
  Request r;
  r.kind = Request::Kind::kEvent;
  r.topic = topic;
  r.raw = raw;
  r.timestamp_ms = timestamp_ms;
  r.payload = &payload;
  return run(r, failure);
}

Result<Invocation> LuaFunction::call(std::span<const Value> args, FailureKind* failure) {
  Request r;
  r.kind = Request::Kind::kArgs;
  r.args = args;
  return run(r, failure);
}

}  // namespace ganglion::functions
