#include "demo/view.h"

#include <fmt/format.h>

namespace ganglion::demo {

std::string human_bytes(std::uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes < 1000) return fmt::format("{} B", bytes);
  if (bytes < 1000'000) return fmt::format("{:.1f} kB", b / 1e3);
  if (bytes < 1000'000'000) return fmt::format("{:.1f} MB", b / 1e6);
  return fmt::format("{:.2f} GB", b / 1e9);
}

namespace {

std::string ratio(std::uint64_t raw, std::uint64_t sent) {
  if (sent == 0) return "-";
  return fmt::format("{:.0f}x", static_cast<double>(raw) / static_cast<double>(sent));
}

std::string link_state(const SiteView& s) {
  if (s.cut) return "CUT";
  return s.link_up ? "up" : "down";
}

}  // namespace

std::string render_table(const DemoView& v) {
  std::string out =
      fmt::format("ganglion demo  t={:.0f}s/{:.0f}s  {}\n\n", v.elapsed_s, v.duration_s, v.phase);
  out += fmt::format("{:<12} {:<6} {:>9} {:>8} {:>9} {:>10} {:>7} {:>24} {:>9} {:>8} {:>5} {:>9}\n",
                     "site", "region", "devices", "msgs/s", "reactions", "p50/p99ms", "alerts",
                     "send-all -> uplinked", "on site", "backlog", "link", "in cloud");
  SiteView total;
  for (const auto& s : v.sites) {
    out += fmt::format(
        "{:<12} {:<6} {:>9} {:>8.0f} {:>9} {:>10} {:>7} {:>24} {:>9} {:>8} {:>5} {:>9}\n", s.name,
        s.region, fmt::format("{}/{}", s.connected, s.connections), s.msgs_per_s, s.reactions,
        fmt::format("{:.1f}/{:.1f}", s.latency_p50_ms, s.latency_p99_ms), s.alerts,
        fmt::format("{} -> {} ({})", human_bytes(s.raw_bytes), human_bytes(s.uplinked_bytes),
                    ratio(s.raw_bytes, s.uplinked_bytes)),
        s.kept_on_site, s.backlog, link_state(s), s.cloud_records);
    total.msgs_per_s += s.msgs_per_s;
    total.reactions += s.reactions;
    total.alerts += s.alerts;
    total.raw_bytes += s.raw_bytes;
    total.uplinked_bytes += s.uplinked_bytes;
    total.kept_on_site += s.kept_on_site;
    total.backlog += s.backlog;
    total.cloud_records += s.cloud_records;
  }
  out += fmt::format(
      "{:<12} {:<6} {:>9} {:>8.0f} {:>9} {:>10} {:>7} {:>24} {:>9} {:>8} {:>5} {:>9}\n", "all", "",
      "", total.msgs_per_s, total.reactions, "", total.alerts,
      fmt::format("{} -> {} ({})", human_bytes(total.raw_bytes), human_bytes(total.uplinked_bytes),
                  ratio(total.raw_bytes, total.uplinked_bytes)),
      total.kept_on_site, total.backlog, "", total.cloud_records);
  return out;
}

std::string render_lines(const DemoView& v) {
  std::string out;
  for (const auto& s : v.sites) {
    out += fmt::format(
        "t={:.0f}s {} msgs/s {:.0f} | reactions {} (p50 {:.1f} ms, p99 {:.1f} ms) | alerts {} | "
        "send-all {} uplinked {} ({}) | kept on site {} | backlog {} link {} | in cloud {}\n",
        v.elapsed_s, s.name, s.msgs_per_s, s.reactions, s.latency_p50_ms, s.latency_p99_ms,
        s.alerts, human_bytes(s.raw_bytes), human_bytes(s.uplinked_bytes),
        ratio(s.raw_bytes, s.uplinked_bytes), s.kept_on_site, s.backlog, link_state(s),
        s.cloud_records);
  }
  return out;
}

}  // namespace ganglion::demo
