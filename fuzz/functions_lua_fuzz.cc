// Random Lua source plus a random event: define the function and call it every way. The
// sandbox must never crash, hang (the budget is small) or grow past its memory cap.
//
// Input: <source> '\0' <topic> '\0' <payload>. Missing parts are empty. A few prefixes of
// hostile snippets are mixed in by the first byte so the fuzzer starts near the guards.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "event/event.h"
#include "functions/lua_function.h"

namespace {

constexpr std::string_view kPrefixes[] = {
    "",
    "function handle(e) ",
    "function handle(e) emit('o', e.payload) ",
    "function handle(e) return string.find(string.rep('a', 5000), ",
    "function handle(e) state.set('k', e.payload) return state.get('k') ",
    "function handle(...) local t = {...} return t ",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static ganglion::ManualClock clock;
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string_view prefix = kPrefixes[data[0] % std::size(kPrefixes)];
  auto cut = [&in] {
    const std::size_t at = in.find('\0');
    std::string_view part = in.substr(0, at);
    in = at == std::string_view::npos ? std::string_view() : in.substr(at + 1);
    return part;
  };
  std::string source(prefix);
  source += cut();
  if (!prefix.empty()) source += " end";
  const std::string topic(cut());
  const std::string payload(in);

  ganglion::functions::FunctionLimits limits;
  limits.instruction_budget = 20'000;
  limits.memory_bytes = 1u << 20;
  limits.log_lines_per_second = 0;
  auto fn = ganglion::functions::LuaFunction::create("fuzz", source, limits, clock);
  if (!fn.ok()) return 0;
  auto& f = **fn;
  (void)f.invoke(ganglion::Event::from_string(topic, 1, payload));
  (void)f.invoke(topic, ganglion::Value(payload), 2);
  const ganglion::Value args[] = {ganglion::Value(topic), ganglion::Value(), ganglion::Value(3.5)};
  (void)f.call(args);
  if (f.memory_in_use() > limits.memory_bytes) __builtin_trap();
  return 0;
}
