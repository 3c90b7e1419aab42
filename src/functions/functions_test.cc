// Lua functions: behaviour, sandbox containment, registry swaps, and a topic trigger against
// the real broker core (ManualClock, manual executor). No sleeps.
#include <gtest/gtest.h>
#include "base/manual_executor.h"

#include <atomic>
#include <deque>
#include <thread>

#include "base/mem_env.h"
#include "broker/broker.h"
#include "broker/connection.h"
#include "event/json.h"
#include "functions/function_registry.h"
#include "functions/function_spec.h"
#include "functions/lua_function.h"
#include "functions/topic_trigger.h"

namespace ganglion::functions {
namespace {

ManualClock& test_clock() {
  static ManualClock clock;
  return clock;
}

std::shared_ptr<LuaFunction> make(std::string_view source, FunctionLimits limits = {}) {
  auto r = LuaFunction::create("f", source, limits, test_clock());
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : nullptr;
}

Result<Value> scalar(LuaFunction& fn, std::vector<Value> args) {
  auto r = fn.call(args);
  if (!r.ok()) return r.status();
  return r->result;
}

TEST(LuaFunction, TransformsAnEventAndEmits) {
  auto fn = make(R"(
    function handle(event)
      local c = event.payload.temp_f
      emit("plant/" .. event.payload.line .. "/celsius",
           {celsius = (c - 32) * 5 / 9, from = event.topic, source = event.headers.source}, 1)
      emit("raw/copy", event.raw)
    end)");
  EventHeaders h;
  h.source = "dev-7";
  auto ev = Event::from_string("sensors/7/temp", 1000, R"({"temp_f": 212, "line": 3})", h);
  FailureKind kind = FailureKind::kRuntime;
  auto r = fn->invoke(ev, &kind);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(kind, FailureKind::kNone);
  ASSERT_EQ(r->emitted.size(), 2u);
  EXPECT_EQ(r->emitted[0].topic, "plant/3/celsius");
  EXPECT_EQ(r->emitted[0].qos, 1);
  auto payload = parse_json(r->emitted[0].payload);
  ASSERT_TRUE(payload.ok());
  EXPECT_EQ(*payload->find("celsius"), Value(100.0));
  EXPECT_EQ(*payload->find("from"), Value("sensors/7/temp"));
  EXPECT_EQ(*payload->find("source"), Value("dev-7"));
  EXPECT_EQ(r->emitted[1], (Emitted{"raw/copy", R"({"temp_f": 212, "line": 3})", 0}));
}

TEST(LuaFunction, NonJsonPayloadIsOnlyRaw) {
  auto fn = make(R"(function handle(e) emit("out", tostring(e.payload) .. "|" .. e.raw) end)");
  auto r = fn->invoke(Event::from_string("t", 1, "not json {"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->emitted.at(0).payload, "nil|not json {");
}

TEST(LuaFunction, ActsAsSqlScalarFunction) {
  auto fn = make("function handle(a, b) if a == nil then return nil end return a * b + 0.5 end");
  auto r = scalar(*fn, {Value(4), Value(2.5)});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, Value(10.5));
  auto n = scalar(*fn, {Value(), Value(1)});
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(n->is_null());
}

TEST(LuaFunction, RuleSinkPayloadIsTheRow) {
  auto fn = make(R"(function handle(e) emit("alerts", {n = #e.payload.items, raw = e.raw}) end)");
  ValueObject row{{"items", Value(ValueArray{Value(1), Value(2)})}};
  auto r = fn->invoke("rule/out", Value(row), 5);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto out = parse_json(r->emitted.at(0).payload);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out->find("n"), Value(2));
  EXPECT_EQ(*out->find("raw"), Value(R"({"items":[1,2]})"));
}

TEST(LuaFunction, ConversionsRoundTrip) {
  auto fn = make("function handle(v) return v end");
  auto doc = parse_json(
      R"({"i": 42, "f": 1.5, "s": "héllo", "b": true, "n": null, "a": [1, null, "x", []],
          "o": {"deep": {"er": [{"k": -7}]}}, "e": {}, "big": 9007199254740993})");
  ASSERT_TRUE(doc.ok());
  auto r = scalar(*fn, {*doc});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  // Key order is Lua's, so compare field by field.
  ASSERT_TRUE(r->is_object());
  EXPECT_EQ(r->as_object().size(), doc->as_object().size());
  for (const auto& [k, v] : doc->as_object()) {
    const Value* got = r->find(k);
    ASSERT_NE(got, nullptr) << k;
    EXPECT_EQ(*got, v) << k;
  }
  EXPECT_TRUE(r->find("i")->is_int());
  EXPECT_TRUE(r->find("e")->is_object());
  EXPECT_TRUE(r->find("a")->as_array()[3].is_array());  // empty array stays an array
  EXPECT_EQ(r->find("big")->as_int(), 9007199254740993LL);
}

TEST(LuaFunction, LuaValuesConvertToValues) {
  auto fn = make(R"(function handle(which)
      if which == 1 then return {1, 2, 3} end
      if which == 2 then return {[1] = "a", [3] = "c"} end
      if which == 3 then return null end
      if which == 4 then local t = {} t.self = t return t end
      if which == 5 then return function() end end
      if which == 6 then return {[true] = 1} end
      return {x = {y = 2.25}}
    end)");
  EXPECT_EQ(*scalar(*fn, {Value(1)}), Value(ValueArray{Value(1), Value(2), Value(3)}));
  auto sparse = scalar(*fn, {Value(2)});
  ASSERT_TRUE(sparse.ok());
  EXPECT_EQ(*sparse->find("3"), Value("c"));
  EXPECT_TRUE(scalar(*fn, {Value(3)})->is_null());
  auto cyclic = scalar(*fn, {Value(4)});
  ASSERT_FALSE(cyclic.ok());
  EXPECT_NE(cyclic.status().message().find("nested deeper"), std::string::npos);
  auto fun = scalar(*fn, {Value(5)});
  ASSERT_FALSE(fun.ok());
  EXPECT_NE(fun.status().message().find("cannot convert a function"), std::string::npos);
  EXPECT_FALSE(scalar(*fn, {Value(6)}).ok());
  EXPECT_EQ(*scalar(*fn, {Value(7)})->find("x")->find("y"), Value(2.25));
}

TEST(LuaFunction, ReportsCompileErrorsWithLineNumbers) {
  auto r = LuaFunction::create("bad", "local x = 1\n\nfunction handle(e)\n  x = = 2\nend\n", {},
                               test_clock());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("bad:4:"), std::string::npos) << r.status().message();
}

TEST(LuaFunction, RequiresAHandleFunction) {
  auto r = LuaFunction::create("nohandle", "x = 1", {}, test_clock());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("handle"), std::string::npos);
  auto top = LuaFunction::create("top", "\nerror('boom at load')\nfunction handle() end", {},
                                 test_clock());
  ASSERT_FALSE(top.ok());
  EXPECT_NE(top.status().message().find("top:2: boom at load"), std::string::npos)
      << top.status().message();
}

TEST(LuaFunction, RuntimeErrorNamesTheLine) {
  auto fn = make("function handle(e)\n  local t = nil\n  return t.x\nend");
  FailureKind kind{};
  auto r = fn->call({}, &kind);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(kind, FailureKind::kRuntime);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("f:3:"), std::string::npos) << r.status().message();
}

// ---- containment ----

void expect_budget_stop(LuaFunction& fn, std::vector<Value> args = {}) {
  FailureKind kind{};
  auto r = fn.call(args, &kind);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().to_string();
  EXPECT_EQ(kind, FailureKind::kBudget) << r.status().to_string();
  EXPECT_NE(r.status().message().find("instruction budget of"), std::string::npos);
}

// A function that still answers correctly after something hostile ran in it.
void expect_still_works(LuaFunction& fn) {
  auto r = fn.call(std::vector<Value>{Value("ping")});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->result, Value("pong"));
}

constexpr std::string_view kPing = "if mode == 'ping' then return 'pong' end\n";

std::string hostile(std::string_view body) {
  return "function handle(mode)\n" + std::string(kPing) + std::string(body) + "\nend";
}

TEST(Sandbox, InfiniteLoopIsStoppedByTheBudget) {
  FunctionLimits limits;
  limits.instruction_budget = 100'000;
  auto fn = make(hostile("while true do end"), limits);
  expect_budget_stop(*fn);
  expect_still_works(*fn);
  expect_budget_stop(*fn);
}

TEST(Sandbox, PcallCannotSwallowTheBudget) {
  auto fn = make(hostile(R"lua(
      while true do
        pcall(function() while true do end end)
        coroutine.resume(coroutine.create(function() while true do end end))
      end)lua"));
  expect_budget_stop(*fn);
  expect_still_works(*fn);
}

TEST(Sandbox, InfiniteLoopAtLoadTimeFailsTheDefinition) {
  FunctionLimits limits;
  limits.instruction_budget = 10'000;
  auto r = LuaFunction::create("loop", "while true do end", limits, test_clock());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
}

TEST(Sandbox, MemoryBombsAreStoppedByTheCap) {
  FunctionLimits limits;
  limits.memory_bytes = 1u << 20;
  auto fn = make(hostile(R"lua(
      if mode == 'rep' then return #string.rep("x", 1e9) end
      if mode == 'rep2' then return #string.rep("xy", 400000) end
      if mode == 'concat' then local s = "x" while true do s = s .. s end end
      if mode == 'table' then local t = {} for i = 1, 1e9 do t[i] = i end end
      if mode == 'strings' then local t = {} for i = 1, 1e9 do t[#t+1] = tostring(i) .. "pad" end end
      )lua"),
                 limits);
  for (const char* mode : {"rep", "rep2", "concat", "table", "strings"}) {
    SCOPED_TRACE(mode);
    FailureKind kind{};
    auto r = fn->call(std::vector<Value>{Value(mode)}, &kind);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().to_string();
    EXPECT_EQ(kind, FailureKind::kMemory) << r.status().to_string();
    expect_still_works(*fn);
  }
  EXPECT_LE(fn->memory_in_use(), limits.memory_bytes);
}

TEST(Sandbox, HugeRepCountsFailFastWithoutLooping) {
  auto fn = make(hostile(R"lua(
      if mode == 'empty' then return string.rep("", 2^62) end
      if mode == 'sep' then return string.rep("", 2^62, "") end
      return string.rep("ab", 2^40))lua"));
  EXPECT_EQ(*scalar(*fn, {Value("empty")}), Value(""));
  EXPECT_EQ(*scalar(*fn, {Value("sep")}), Value(""));
  auto r = scalar(*fn, {Value("big")});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("memory limit of"), std::string::npos)
      << r.status().message();
  expect_still_works(*fn);
}

TEST(Sandbox, LongCLoopsAreChargedToTheBudget) {
  FunctionLimits limits;
  limits.instruction_budget = 200'000;
  auto fn = make(hostile(R"lua(
      if mode == 'move' then table.move({}, 1, 2^50, 1, {}) end
      if mode == 'insert' then
        local t = setmetatable({}, {__len = function() return 2^50 end})
        table.insert(t, 1, "x")
      end
      if mode == 'pattern' then
        local s = string.rep("a", 200000)
        return string.find(s, ".-.-.-.-b")
      end
      if mode == 'plain' then
        return string.find(string.rep("a", 500000), string.rep("a", 250000) .. "b", 1, true)
      end)lua"),
                 limits);
  for (const char* mode : {"move", "insert", "pattern", "plain"}) {
    SCOPED_TRACE(mode);
    expect_budget_stop(*fn, {Value(mode)});
    expect_still_works(*fn);
  }
}

TEST(Sandbox, OrdinaryPatternsAndTableOpsStillWork) {
  auto fn = make(R"(function handle(s)
      local k, v = s:match("^(%w+)=(.*)$")
      local words = {}
      for w in s:gmatch("%a+") do table.insert(words, w) end
      table.insert(words, 1, "first")
      table.remove(words, 1)
      local cleaned = s:gsub("%s+", " ")
      return {k = k, v = v, n = #words, cleaned = cleaned, at = s:find("=", 1, true)}
    end)");
  auto r = scalar(*fn, {Value("key=some   value here")});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r->find("k"), Value("key"));
  EXPECT_EQ(*r->find("v"), Value("some   value here"));
  EXPECT_EQ(*r->find("n"), Value(4));
  EXPECT_EQ(*r->find("cleaned"), Value("key=some value here"));
  EXPECT_EQ(*r->find("at"), Value(4));
}

TEST(Sandbox, NoFileSystemProcessOrDebugAccess) {
  auto fn = make(hostile(R"lua(
      if mode == 'os' then return os.execute("touch /tmp/pwned") end
      if mode == 'io' then return io.open("/etc/passwd") end
      if mode == 'require' then return require("os") end
      if mode == 'debug' then return debug.getregistry() end
      if mode == 'dofile' then return dofile("/etc/passwd") end
      if mode == 'loadfile' then return loadfile("/etc/passwd") end
      if mode == 'package' then return package.loadlib("libc.so.6", "system") end
      if mode == 'dump' then return string.dump(handle) end
      if mode == 'gcstop' then return collectgarbage("stop") end
      if mode == 'gcmeta' then return setmetatable({}, {__gc = function() while true do end end}) end
      )lua"));
  for (const char* mode : {"os", "io", "require", "debug", "dofile", "loadfile", "package", "dump",
                           "gcstop", "gcmeta"}) {
    SCOPED_TRACE(mode);
    FailureKind kind{};
    auto r = fn->call(std::vector<Value>{Value(mode)}, &kind);
    ASSERT_FALSE(r.ok()) << "escaped with " << (r.ok() ? to_json(r->result) : "");
    EXPECT_EQ(kind, FailureKind::kRuntime);
    expect_still_works(*fn);
  }
}

TEST(Sandbox, LoadAcceptsTextButNeverBytecode) {
  auto fn = make(hostile(R"lua(
      if mode == 'text' then return load("return 1 + 41")() end
      if mode == 'env' then return load("return x", "c", "t", {x = 7})() end
      if mode == 'globals' then return load("return math.floor(2.5)")() end
      local f, err = load("\27Lua\84\0\25\147\13\10\26\10", "b", "b")
      if f then return "loaded bytecode" end
      return err)lua"));
  EXPECT_EQ(*scalar(*fn, {Value("text")}), Value(42));
  EXPECT_EQ(*scalar(*fn, {Value("env")}), Value(7));
  EXPECT_EQ(*scalar(*fn, {Value("globals")}), Value(2));
  auto r = scalar(*fn, {Value("bytecode")});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_NE(r->as_string().find("attempt to load a binary chunk"), std::string::npos) << *r;
}

TEST(Sandbox, GlobalTricksStayInsideTheFunction) {
  auto fn = make(R"(
      calls = 0
      function handle(mode)
        calls = calls + 1
        if mode == 'meta' then
          setmetatable(_G, {__index = function() while true do end end,
                            __newindex = function() error("no") end})
          return undefined_global
        end
        if mode == 'strmeta' then
          getmetatable("").__index = function() return function() return "hijacked" end end
          return ("x"):upper()
        end
        return calls
      end)");
  expect_budget_stop(*fn, {Value("meta")});
  auto r = scalar(*fn, {Value("count")});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, Value(2));  // globals persist across calls, within this function only
  auto other = make("function handle() return calls end");
  EXPECT_TRUE(scalar(*other, {})->is_null());
}

TEST(Sandbox, EmitIsBounded) {
  FunctionLimits limits;
  limits.max_emits = 3;
  auto fn = make(hostile(R"lua(
      if mode == 'many' then for i = 1, 10 do emit("t", "x") end end
      if mode == 'wild' then emit("a/#", "x") end
      if mode == 'qos' then emit("a", "x", 3) end
      if mode == 'fn' then emit("a", {f = print}) end)lua"),
                 limits);
  for (const char* mode : {"many", "wild", "qos", "fn"}) {
    SCOPED_TRACE(mode);
    EXPECT_FALSE(scalar(*fn, {Value(mode)}).ok());
    expect_still_works(*fn);
  }
}

TEST(State, KeepsValuesAcrossCallsWithinBounds) {
  FunctionLimits limits;
  limits.state_max_keys = 2;
  limits.state_max_bytes = 64;
  auto fn = make(R"(function handle(mode, k, v)
      if mode == 'set' then state.set(k, v) return true end
      return state.get(k)
    end)",
                 limits);
  ASSERT_TRUE(scalar(*fn, {Value("set"), Value("count"), Value(1)}).ok());
  ASSERT_TRUE(
      scalar(*fn, {Value("set"), Value("obj"), Value(ValueObject{{"a", Value(ValueArray{})}})})
          .ok());
  EXPECT_EQ(*scalar(*fn, {Value("get"), Value("count")}), Value(1));
  EXPECT_EQ(*scalar(*fn, {Value("get"), Value("obj")}),
            Value(ValueObject{{"a", Value(ValueArray{})}}));
  auto third = scalar(*fn, {Value("set"), Value("third"), Value(3)});
  ASSERT_FALSE(third.ok());
  EXPECT_NE(third.status().message().find("state is full"), std::string::npos);
  auto big = scalar(*fn, {Value("set"), Value("count"), Value(std::string(100, 'x'))});
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("bytes"), std::string::npos);
  ASSERT_TRUE(scalar(*fn, {Value("set"), Value("count"), Value()}).ok());  // delete
  EXPECT_TRUE(scalar(*fn, {Value("get"), Value("count")})->is_null());
  EXPECT_EQ(fn->state()->size(), 1u);
}

// ---- registry ----

class RegistryTest : public ::testing::Test {
 protected:
  FunctionSpec spec(std::string name, std::string source) {
    FunctionSpec s;
    s.name = std::move(name);
    s.source = std::move(source);
    return s;
  }
  ManualClock clock;
  MetricsRegistry metrics;
  FunctionRegistry registry{clock, metrics};
};

TEST_F(RegistryTest, DefinesListsDescribesAndRemoves) {
  ASSERT_TRUE(registry.define(spec("b", "function handle() return 2 end")).ok());
  ASSERT_TRUE(registry.define(spec("a", "function handle() return 1 end")).ok());
  auto all = registry.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "a");
  EXPECT_EQ(*registry.call_scalar("b", {}), Value(2));
  auto d = registry.describe("b");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->version, 1u);
  EXPECT_EQ(d->invocations, 1u);
  EXPECT_GT(d->memory_bytes, 0u);
  ASSERT_TRUE(registry.remove("b").ok());
  EXPECT_EQ(registry.remove("b").code(), StatusCode::kNotFound);
  EXPECT_EQ(registry.call_scalar("b", {}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(registry.define(spec("bad name!", "function handle() end")).code(),
            StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, CountsFailuresByKindInMetrics) {
  FunctionSpec s = spec("loop", hostile(R"lua(
      if mode == 'loop' then while true do end end
      if mode == 'mem' then local t = {} while true do t[#t+1] = {} end end
      error("plain"))lua"));
  s.limits.instruction_budget = 50'000;
  s.limits.memory_bytes = 512u << 10;
  ASSERT_TRUE(registry.define(s).ok());
  EXPECT_FALSE(registry.call_scalar("loop", std::vector<Value>{Value("loop")}).ok());
  EXPECT_FALSE(registry.call_scalar("loop", std::vector<Value>{Value("mem")}).ok());
  EXPECT_FALSE(registry.call_scalar("loop", std::vector<Value>{Value("x")}).ok());
  EXPECT_TRUE(registry.call_scalar("loop", std::vector<Value>{Value("ping")}).ok());
  auto d = registry.describe("loop");
  EXPECT_EQ(d->invocations, 4u);
  EXPECT_EQ(d->errors, 3u);
  EXPECT_EQ(d->budget_exceeded, 1u);
  EXPECT_EQ(d->memory_exceeded, 1u);
  const std::string text = metrics.render();
  EXPECT_NE(text.find(R"(ganglion_function_budget_exceeded_total{function="loop"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ganglion_function_duration_seconds_bucket"), std::string::npos);
}

TEST_F(RegistryTest, FailedRedefinitionKeepsTheOldVersion) {
  ASSERT_TRUE(registry.define(spec("f", "function handle() return 'v1' end")).ok());
  EXPECT_FALSE(registry.define(spec("f", "function handle( return end")).ok());
  EXPECT_EQ(*registry.call_scalar("f", {}), Value("v1"));
  EXPECT_EQ(registry.describe("f")->version, 1u);
}

TEST_F(RegistryTest, ReplacementKeepsStateAndLeavesOtherFunctionsAlone) {
  ASSERT_TRUE(registry
                  .define(spec("counter", R"(function handle()
      local n = (state.get("n") or 0) + 1 state.set("n", n) return n end)"))
                  .ok());
  ASSERT_TRUE(
      registry.define(spec("other", "x = 0 function handle() x = x + 1 return x end")).ok());
  EXPECT_EQ(*registry.call_scalar("counter", {}), Value(1));
  EXPECT_EQ(*registry.call_scalar("other", {}), Value(1));
  auto other_before = registry.find("other");
  ASSERT_TRUE(registry
                  .define(spec("counter", R"(function handle()
      local n = (state.get("n") or 0) + 10 state.set("n", n) return n end)"))
                  .ok());
  EXPECT_EQ(*registry.call_scalar("counter", {}), Value(11));
  EXPECT_EQ(registry.find("other"), other_before);
  EXPECT_EQ(*registry.call_scalar("other", {}), Value(2));
  EXPECT_EQ(registry.describe("counter")->version, 2u);
}

TEST_F(RegistryTest, AtomicReplacementWhileAnotherThreadCalls) {
  ASSERT_TRUE(registry.define(spec("f", "function handle() return 1 end")).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, calls{0};
  std::thread caller([&] {
    while (!stop.load()) {
      auto r = registry.call_scalar("f", {});
      if (!r.ok() || !r->is_int() || r->as_int() < 1 || r->as_int() > 50) ++bad;
      ++calls;
    }
  });
  for (int v = 2; v <= 50; ++v) {
    ASSERT_TRUE(
        registry.define(spec("f", "function handle() return " + std::to_string(v) + " end")).ok());
  }
  // Let the caller observe the last version before stopping it.
  while (calls.load() < 100) std::this_thread::yield();
  stop = true;
  caller.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(*registry.call_scalar("f", {}), Value(50));
  EXPECT_EQ(registry.describe("f")->version, 50u);
}

TEST_F(RegistryTest, InFlightCallFinishesOnItsVersion) {
  ASSERT_TRUE(registry.define(spec("f", "function handle() return 'old' end")).ok());
  auto held = registry.find("f");
  ASSERT_TRUE(registry.define(spec("f", "function handle() return 'new' end")).ok());
  EXPECT_EQ(held->call({})->result, Value("old"));
  EXPECT_EQ(*registry.call_scalar("f", {}), Value("new"));
}

// ---- specs ----

TEST(FunctionSpec, ParsesJsonWithTriggerAndLimits) {
  auto s = parse_function_spec(R"({"name": "scale", "source": "function handle() end",
      "trigger": {"filter": "plant/+/temp", "qos": 1},
      "limits": {"instruction_budget": 5000, "memory_bytes": 1048576}})");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->name, "scale");
  ASSERT_TRUE(s->trigger.has_value());
  EXPECT_EQ(s->trigger->filter, "plant/+/temp");
  EXPECT_EQ(s->trigger->qos, mqtt::QoS::kAtLeastOnce);
  EXPECT_EQ(s->limits.instruction_budget, 5000u);
  EXPECT_EQ(s->limits.memory_bytes, 1048576u);
  EXPECT_EQ(s->limits.max_emits, FunctionLimits{}.max_emits);
}

TEST(FunctionSpec, ParsesAManifestAndReadsTheFileThroughEnv) {
  auto s = parse_function_spec(R"({"apiVersion": "ganglion/v1", "kind": "Function",
      "metadata": {"name": "f1"}, "spec": {"file": "fn/f1.lua", "trigger": "a/#"}})");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->name, "f1");
  EXPECT_EQ(s->trigger->filter, "a/#");
  MemEnv env;
  auto w = env.open_writable("fn/f1.lua", OpenMode::kTruncate);
  if (!w.ok()) GTEST_SKIP() << w.status().to_string();
  const std::string src = "function handle() return 1 end";
  ASSERT_TRUE((*w)->append(std::as_bytes(std::span(src.data(), src.size()))).ok());
  ASSERT_TRUE((*w)->close().ok());
  ASSERT_TRUE(resolve_source(*s, env).ok());
  EXPECT_EQ(s->source, src);
  FunctionSpec missing = *s;
  missing.source.clear();
  missing.file = "nope.lua";
  EXPECT_FALSE(resolve_source(missing, env).ok());
}

TEST(FunctionSpec, RejectsBadSpecsWithTheKey) {
  struct Case {
    const char* json;
    const char* error;
  } cases[] = {
      {R"({"source": "x"})", "name"},
      {R"({"name": "a b", "source": "x"})", "name"},
      {R"({"name": "a"})", "exactly one of source and file"},
      {R"({"name": "a", "source": "x", "file": "y"})", "exactly one of source and file"},
      {R"({"name": "a", "source": "x", "trigger": "a/#/b"})", "trigger.filter"},
      {R"({"name": "a", "source": "x", "limits": {"memory_bytes": 10}})", "limits.memory_bytes"},
      {R"({"name": "a", "source": "x", "limits": {"instruction_budget": "lots"}})",
       "limits.instruction_budget"},
      {R"({"name": "a", "source": "x", "limits": {"cpu": 1}})", "limits.cpu: unknown key"},
      {R"({"name": "a", "source": "x", "extra": 1})", "extra: unknown key"},
      {R"([1])", "must be an object"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.json);
    auto s = parse_function_spec(std::string_view(c.json));
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find(c.error), std::string::npos) << s.status().message();
  }
}

// ---- topic trigger with the real broker ----

TEST(TopicTrigger, RunsTheFunctionForMatchingMessagesAndPublishesItsOutput) {
  ManualClock clock;
  MetricsRegistry metrics;
  broker::BrokerOptions options;
  options.sys_interval = std::chrono::milliseconds(0);
  broker::Broker broker(options, clock, metrics);
  ManualExecutor loop;
  FunctionRegistry registry(clock, metrics);

  FunctionSpec spec;
  spec.name = "to-celsius";
  spec.source = R"(function handle(e)
      if e.payload.f == nil then error("no f") end
      emit("celsius/" .. e.topic:match("^plant/(%w+)/temp$"), {c = (e.payload.f - 32) / 1.8}, 1)
      -- Output matching our own filter must not loop back into us (No Local).
      emit("plant/echo/temp", {f = 0})
    end)";
  ASSERT_TRUE(registry.define(spec).ok());

  broker::ClientOptions fopts;
  fopts.client_id = "functions";
  broker::InProcessClient functions_client(broker, fopts, loop.executor());
  broker::ClientOptions appopts;
  appopts.client_id = "app";
  broker::InProcessClient app(broker, appopts, loop.executor());
  functions_client.connect();
  app.connect();
  loop.drain();

  std::vector<std::pair<std::string, std::string>> got;
  app.subscribe("celsius/#", mqtt::QoS::kAtLeastOnce, [&](const mqtt::Publish& p) {
    got.emplace_back(p.topic, std::string(p.payload.view()));
  });
  TopicTrigger trigger(registry, functions_client, clock, "to-celsius",
                       TriggerSpec{"plant/+/temp", mqtt::QoS::kAtLeastOnce});
  std::optional<mqtt::ReasonCode> granted;
  trigger.start([&](Status s, mqtt::ReasonCode rc) {
    EXPECT_TRUE(s.ok());
    granted = rc;
  });
  loop.drain();
  ASSERT_TRUE(granted.has_value());

  app.publish("plant/l1/temp", mqtt::SharedBytes(std::string(R"({"f": 212})")),
              mqtt::QoS::kAtLeastOnce);
  app.publish("plant/l2/temp", mqtt::SharedBytes(std::string("{}")), mqtt::QoS::kAtMostOnce);
  loop.drain();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first, "celsius/l1");
  EXPECT_EQ(*parse_json(got[0].second)->find("c"), Value(100));
  EXPECT_EQ(trigger.calls(), 2u);  // l1 and l2; not the echo
  EXPECT_EQ(trigger.failures(), 1u);
  EXPECT_EQ(trigger.published(), 2u);

  // Replacing the function takes effect for the next message, with no change to the trigger.
  spec.source = R"(function handle(e) emit("celsius/v2", e.raw) end)";
  ASSERT_TRUE(registry.define(spec).ok());
  app.publish("plant/l3/temp", mqtt::SharedBytes(std::string("7")), mqtt::QoS::kAtMostOnce);
  loop.drain();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1], (std::pair<std::string, std::string>{"celsius/v2", "7"}));

  trigger.stop();
  loop.drain();
  app.publish("plant/l4/temp", mqtt::SharedBytes(std::string("8")), mqtt::QoS::kAtMostOnce);
  loop.drain();
  EXPECT_EQ(got.size(), 2u);
  EXPECT_EQ(trigger.calls(), 3u);
}

}  // namespace
}  // namespace ganglion::functions
