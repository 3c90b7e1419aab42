// Simulated device generators for `ganglion sim devices`: what a sensor fleet on a site
// says, message by message, with anomalies injected and recorded as ground truth.
//
// Sans-I/O and deterministic: a SimDevice turns (its seed, a timestamp) into the next
// message; the same seed gives the same fleet, readings and anomalies. DeviceFleet
// (devices_fleet.h) schedules them and publishes over MQTT.
//
// Kinds, topics and payloads (every payload has "device", "seq" (per device, from 0) and
// "ts" (Unix ms)):
//   temperature  sites/<site>/temperature/<id>/telemetry  temperature_c: per-device base,
//                diurnal swing, slow bounded drift, noise. Anomalies: overheat (ramp up to
//                +25 C over 8-20 readings), stuck_sensor (the same value 10-20 times).
//   vibration    .../telemetry  rms_g, peak_g, kurtosis, dominant_hz. Anomaly: bearing_fault
//                (RMS x3-5, kurtosis 6-10, dominant at the outer-race frequency) 8-20 readings.
//   power        .../telemetry  power_kw, voltage_v, current_a, power_factor; load cycle.
//                Anomaly: spike (x2-3 for 2-5 readings).
//   door         sites/<site>/door/<id>/events  event open/close alternating. Anomalies:
//                forced_open (1 event), held_open (open with held_s 300-1800, 1 event).
//   badge        .../events  badge_id from the site's staff pool, reader, result. Anomaly:
//                unknown_badge (a badge outside the pool, denied, 2-4 attempts).
//   camera       .../events  detections [{class, confidence, bbox [x,y,w,h] 0..1}], zone, no
//                images. Anomaly: person_in_restricted_zone (2-5 frames).
// Telemetry kinds report periodically (period 1/rate, per-device phase); event kinds are a
// Poisson process with the same mean rate.
//
// Anomalies: each message that is not already part of an anomaly starts one with
// probability `anomaly_rate`; it spans the messages [seq_start, seq_end]. finished()
// receives it after its last message.
//
// Thread: a SimDevice belongs to one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace ganglion::sim {

enum class DeviceKind : std::uint8_t { kTemperature, kVibration, kPower, kDoor, kBadge, kCamera };
inline constexpr DeviceKind kAllDeviceKinds[] = {DeviceKind::kTemperature, DeviceKind::kVibration,
                                                 DeviceKind::kPower,       DeviceKind::kDoor,
                                                 DeviceKind::kBadge,       DeviceKind::kCamera};
std::string_view to_string(DeviceKind kind);
// "temperature,vibration,..." -> kinds. Errors: kInvalidArgument naming the bad entry.
Result<std::vector<DeviceKind>> parse_device_kinds(std::string_view text);
// True for kinds that publish on .../events (door, badge, camera).
bool is_event_kind(DeviceKind kind);
// "2/s", "120/min", "0.5/s", "3" (per second) -> messages per second. Errors: kInvalidArgument.
Result<double> parse_rate(std::string_view text);

struct DeviceMessage {
  std::string topic;
  std::string payload;  // JSON
  std::uint64_t seq = 0;
  bool event = false;          // .../events (else .../telemetry)
  bool anomalous = false;      // part of an injected anomaly (not in the payload)
  bool anomaly_start = false;  // the first message of one
};

// One injected anomaly: a line of the ground-truth JSONL.
struct InjectedAnomaly {
  std::string device;
  DeviceKind kind;
  std::string anomaly;  // "bearing_fault", ...
  std::string topic;
  std::int64_t start_ms = 0;  // ts of the first and last anomalous messages
  std::int64_t end_ms = 0;
  std::uint64_t seq_start = 0;
  std::uint64_t seq_end = 0;
  bool truncated = false;  // the run ended inside the anomaly
};
// {"device":...,"kind":...,"anomaly":...,"topic":...,"start":ms,"end":ms,"seq_start":n,"seq_end":n}
std::string to_json_line(const InjectedAnomaly& a);

class SimDevice {
 public:
  // `index` numbers devices across the fleet; ids are <kind>-<index+1, 4 digits>.
  SimDevice(std::string site, DeviceKind kind, std::size_t index, std::uint64_t seed,
            double anomaly_rate);

  const std::string& id() const { return id_; }
  DeviceKind kind() const { return kind_; }
  // Seconds until the next message at `rate` messages/s (periodic or exponential).
  double next_interval_s(double rate);
  // The next message, stamped `ts_ms`. An anomaly that ends with it goes to `finished`.
  DeviceMessage next(std::int64_t ts_ms, std::vector<InjectedAnomaly>& finished);
  // The anomaly in progress, if any, closed at the last message sent (truncated = true).
  std::optional<InjectedAnomaly> finish();

 private:
  struct Anomaly {
    std::string name;
    int remaining = 0;
    std::int64_t start_ms = 0;
    std::uint64_t seq_start = 0;
    double param = 0;  // per-anomaly shape (factor, value, badge, ...)
  };
  std::string payload(std::int64_t ts_ms, bool anomalous);
  void maybe_start_anomaly(std::int64_t ts_ms);
  double gauss(double mean, double sd) { return std::normal_distribution<double>(mean, sd)(rng_); }
  double uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng_);
  }
  int uniform_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  std::string site_;
  DeviceKind kind_;
  std::string id_;
  std::string topic_;
  double anomaly_rate_;
  std::mt19937_64 rng_;
  std::uint64_t seq_ = 0;
  std::int64_t last_ts_ = 0;
  std::optional<Anomaly> anomaly_;
  // Per-kind state.
  double base_ = 0, drift_ = 0, last_value_ = 0;
  bool door_open_ = false;
  int step_ = 0;
};

}  // namespace ganglion::sim
