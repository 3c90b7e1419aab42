// What `ganglion demo` shows while it runs: a compact table refreshed in place on a
// terminal, plain lines otherwise (logs, CI). Pure rendering from measured figures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ganglion::demo {

struct SiteView {
  std::string name;
  std::string region;
  std::size_t devices = 0;
  std::size_t connected = 0;  // device connections up / all
  std::size_t connections = 0;
  double msgs_per_s = 0;        // device messages received by the edge node
  std::uint64_t reactions = 0;  // actuator commands seen
  double latency_p50_ms = 0;    // device event -> rule -> actuator command
  double latency_p99_ms = 0;
  std::uint64_t alerts = 0;
  std::uint64_t raw_bytes = 0;         // what a send-everything design would upload
  std::uint64_t uplinked_bytes = 0;    // batch bytes actually sent (compressed)
  std::uint64_t kept_on_site = 0;      // messages the data policy kept local
  std::uint64_t fields_protected = 0;  // fields hashed, redacted or dropped before uplink
  std::uint64_t backlog = 0;           // uplink records not yet acknowledged by the cloud
  bool link_up = false;                // the uplink's connection to the controller
  bool cut = false;                    // the demo has cut this site's link
  std::uint64_t cloud_records = 0;     // records the controller has stored from this node
};

struct DemoView {
  double elapsed_s = 0;
  double duration_s = 0;
  std::string phase;  // one line: what is happening now
  std::vector<SiteView> sites;
};

// "1.2 MB", "860 B" (decimal units).
std::string human_bytes(std::uint64_t bytes);
// The table for a terminal (no escape sequences; the caller redraws).
std::string render_table(const DemoView& view);
// One line per site for logs: "t=12s factory-eu msgs/s 240 reactions 3 (p50 0.8 ms ...) ...".
std::string render_lines(const DemoView& view);

}  // namespace ganglion::demo
