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
  std::size_t devices = 0, connected = 0, connections = 0;
  for (const auto& s : v.sites) {
    devices += s.devices;
    connected += s.connected;
    connections += s.connections;
  }
  std::string out =
      fmt::format("ganglion demo  t={:.0f}s/{:.0f}s  {} devices ({}/{} connections up)  {}\n\n",
                  v.elapsed_s, v.duration_s, devices, connected, connections, v.phase);
  constexpr std::string_view kRow =
      "{:<11} {:<2} {:>6} {:>6} {:>9} {:>6} {:>9} {:>9} {:>5} {:>7} {:>7} {:>4} {:>7}\n";
  out += fmt::format(kRow, "site", "", "msgs/s", "react", "p50/p99ms", "alerts", "send-all",
                     "uplinked", "ratio", "on-site", "backlog", "link", "cloud");
  SiteView total;
  for (const auto& s : v.sites) {
    out += fmt::format(kRow, s.name, s.region, fmt::format("{:.0f}", s.msgs_per_s), s.reactions,
                       fmt::format("{:.1f}/{:.1f}", s.latency_p50_ms, s.latency_p99_ms), s.alerts,
                       human_bytes(s.raw_bytes), human_bytes(s.uplinked_bytes),
                       ratio(s.raw_bytes, s.uplinked_bytes), s.kept_on_site, s.backlog,
                       link_state(s), s.cloud_records);
    total.msgs_per_s += s.msgs_per_s;
    total.reactions += s.reactions;
    total.alerts += s.alerts;
    total.raw_bytes += s.raw_bytes;
    total.uplinked_bytes += s.uplinked_bytes;
    total.kept_on_site += s.kept_on_site;
    total.backlog += s.backlog;
    total.cloud_records += s.cloud_records;
  }
  out += fmt::format(kRow, "all", "", fmt::format("{:.0f}", total.msgs_per_s), total.reactions, "",
                     total.alerts, human_bytes(total.raw_bytes), human_bytes(total.uplinked_bytes),
                     ratio(total.raw_bytes, total.uplinked_bytes), total.kept_on_site,
                     total.backlog, "", total.cloud_records);
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
