// Scoring the demo against the simulator's ground truth: anomaly detection precision and
// recall, and reaction-latency percentiles. Pure functions, no I/O but the JSONL reader.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace ganglion::demo {

// An injected anomaly as the simulator's ground truth records it (sim/devices_generator.h).
struct TruthAnomaly {
  std::string device;
  std::string anomaly;  // "overheat", "bearing_fault", ...
  std::uint64_t seq_start = 0;
  std::uint64_t seq_end = 0;
};

// Reads the ground-truth JSONL the simulator writes. Errors: kInvalidArgument naming the
// line that is not a ground-truth record; kNotFound when the file is missing.
Result<std::vector<TruthAnomaly>> read_ground_truth(std::string_view jsonl);

// An alert raised on the site: which device, and the sequence number of the device
// message that triggered it.
struct RaisedAlert {
  std::string device;
  std::uint64_t seq = 0;
  std::string kind;  // what the detector called it
};

struct DetectionScore {
  std::uint64_t alerts = 0;
  std::uint64_t true_alerts = 0;  // inside an injected anomaly (or `slack` messages after it)
  std::uint64_t anomalies = 0;
  std::uint64_t detected = 0;  // anomalies with at least one alert inside
  struct PerAnomaly {
    std::uint64_t injected = 0;
    std::uint64_t detected = 0;
  };
  std::map<std::string, PerAnomaly> per_anomaly;
  // 1.0 when there is nothing to be wrong about (no alerts / no anomalies).
  double precision() const {
    return alerts ? static_cast<double>(true_alerts) / static_cast<double>(alerts) : 1.0;
  }
  double recall() const {
    return anomalies ? static_cast<double>(detected) / static_cast<double>(anomalies) : 1.0;
  }
};

// An alert is true when its device has an anomaly with seq in [seq_start, seq_end + slack]
// (detectors that need a few readings to be sure fire just after the fact); an anomaly is
// detected when at least one alert matches it.
DetectionScore score_detections(const std::vector<TruthAnomaly>& truth,
                                const std::vector<RaisedAlert>& alerts, std::uint64_t slack);

// The q-quantile (0..1) of `samples` by nearest rank; 0 when empty. Sorts the vector.
double percentile(std::vector<double>& samples, double q);

}  // namespace ganglion::demo
