#include "sim/devices_generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace ganglion::sim {

namespace {
constexpr double kPi = 3.14159265358979323846;
constexpr std::int64_t kDayMs = 86'400'000;
constexpr int kStaff = 60;  // badge pool per site

std::uint64_t mix(std::uint64_t x) {  // splitmix64: independent per-device streams
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
}  // namespace

std::string_view to_string(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kTemperature:
      return "temperature";
    case DeviceKind::kVibration:
      return "vibration";
    case DeviceKind::kPower:
      return "power";
    case DeviceKind::kDoor:
      return "door";
    case DeviceKind::kBadge:
      return "badge";
    case DeviceKind::kCamera:
      return "camera";
  }
  return "unknown";
}

bool is_event_kind(DeviceKind kind) {
  return kind == DeviceKind::kDoor || kind == DeviceKind::kBadge || kind == DeviceKind::kCamera;
}

Result<std::vector<DeviceKind>> parse_device_kinds(std::string_view text) {
  std::vector<DeviceKind> out;
  while (!text.empty()) {
    auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (item.empty()) continue;
    bool found = false;
    for (DeviceKind k : kAllDeviceKinds) {
      if (to_string(k) == item) {
        if (std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
        found = true;
      }
    }
    if (!found) {
      return InvalidArgument(
          fmt::format("unknown device kind '{}' (temperature, vibration, power, "
                      "door, badge, camera)",
                      item));
    }
  }
  if (out.empty()) return InvalidArgument("no device kinds");
  return out;
}

Result<double> parse_rate(std::string_view text) {
  std::string_view number = text, unit = "s";
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    number = text.substr(0, slash);
    unit = text.substr(slash + 1);
  }
  double v = 0;
  std::string n(number);
  char* end = nullptr;
  v = std::strtod(n.c_str(), &end);
  if (n.empty() || end != n.c_str() + n.size() || !(v > 0) || !std::isfinite(v)) {
    return InvalidArgument(fmt::format("bad rate '{}' (e.g. 2/s, 120/min)", text));
  }
  if (unit == "s") return v;
  if (unit == "min" || unit == "m") return v / 60.0;
  if (unit == "h") return v / 3600.0;
  return InvalidArgument(fmt::format("bad rate unit in '{}' (s, min, h)", text));
}

std::string to_json_line(const InjectedAnomaly& a) {
  return fmt::format(
      R"({{"device":"{}","kind":"{}","anomaly":"{}","topic":"{}","start":{},"end":{},)"
      R"("seq_start":{},"seq_end":{},"truncated":{}}})",
      a.device, to_string(a.kind), a.anomaly, a.topic, a.start_ms, a.end_ms, a.seq_start, a.seq_end,
      a.truncated ? "true" : "false");
}

SimDevice::SimDevice(std::string site, DeviceKind kind, std::size_t index, std::uint64_t seed,
                     double anomaly_rate)
    : site_(std::move(site)),
      kind_(kind),
      id_(fmt::format("{}-{:04}", to_string(kind), index + 1)),
      anomaly_rate_(anomaly_rate),
      rng_(mix(seed ^ mix(index + 1))) {
  topic_ = fmt::format("sites/{}/{}/{}/{}", site_, to_string(kind), id_,
                       is_event_kind(kind) ? "events" : "telemetry");
  switch (kind) {
    case DeviceKind::kTemperature:
      base_ = uniform(18, 26);
      break;
    case DeviceKind::kVibration:
      base_ = uniform(0.25, 0.6);
      break;
    case DeviceKind::kPower:
      base_ = uniform(5, 50);
      break;
    default:
      break;
  }
}

double SimDevice::next_interval_s(double rate) {
  if (is_event_kind(kind_)) return std::exponential_distribution<double>(rate)(rng_);
  return 1.0 / rate;
}

void SimDevice::maybe_start_anomaly(std::int64_t ts_ms) {
  if (anomaly_ || !(uniform(0, 1) < anomaly_rate_)) return;
  Anomaly a;
  a.start_ms = ts_ms;
  a.seq_start = seq_;
  switch (kind_) {
    case DeviceKind::kTemperature:
      if (uniform(0, 1) < 0.7) {
        a.name = "overheat", a.remaining = uniform_int(8, 20);
      } else {
        a.name = "stuck_sensor", a.remaining = uniform_int(10, 20), a.param = last_value_;
      }
      break;
    case DeviceKind::kVibration:
      a.name = "bearing_fault", a.remaining = uniform_int(8, 20), a.param = uniform(3, 5);
      break;
    case DeviceKind::kPower:
      a.name = "spike", a.remaining = uniform_int(2, 5), a.param = uniform(2, 3);
      break;
    case DeviceKind::kDoor:
      a.name = uniform(0, 1) < 0.5 ? "forced_open" : "held_open", a.remaining = 1;
      break;
    case DeviceKind::kBadge:
      a.name = "unknown_badge", a.remaining = uniform_int(2, 4),
      a.param = uniform_int(900000, 999999);
      break;
    case DeviceKind::kCamera:
      a.name = "person_in_restricted_zone", a.remaining = uniform_int(2, 5);
      break;
  }
  anomaly_ = std::move(a);
}

DeviceMessage SimDevice::next(std::int64_t ts_ms, std::vector<InjectedAnomaly>& finished) {
  const bool had = anomaly_.has_value();
  maybe_start_anomaly(ts_ms);
  DeviceMessage m;
  m.topic = topic_;
  m.seq = seq_;
  m.event = is_event_kind(kind_);
  m.anomalous = anomaly_.has_value();
  m.anomaly_start = m.anomalous && !had;
  m.payload = payload(ts_ms, m.anomalous);
  last_ts_ = ts_ms;
  if (anomaly_ && --anomaly_->remaining <= 0) {
    finished.push_back({id_, kind_, anomaly_->name, topic_, anomaly_->start_ms, ts_ms,
                        anomaly_->seq_start, seq_, false});
    anomaly_.reset();
  }
  ++seq_;
  ++step_;
  return m;
}

std::optional<InjectedAnomaly> SimDevice::finish() {
  if (!anomaly_ || seq_ == anomaly_->seq_start) return std::nullopt;
  InjectedAnomaly a{
      id_,      kind_, anomaly_->name, topic_, anomaly_->start_ms, last_ts_, anomaly_->seq_start,
      seq_ - 1, true};
  anomaly_.reset();
  return a;
}

std::string SimDevice::payload(std::int64_t ts_ms, bool anomalous) {
  const std::string head = fmt::format(R"({{"device":"{}","seq":{},"ts":{})", id_, seq_, ts_ms);
  const std::string_view name = anomalous ? std::string_view(anomaly_->name) : std::string_view();
  // Position inside the anomaly (0 = first message), for shapes that evolve.
  const int k = anomalous ? static_cast<int>(seq_ - anomaly_->seq_start) : 0;
  switch (kind_) {
    case DeviceKind::kTemperature: {
      const double day = static_cast<double>(ts_ms % kDayMs) / kDayMs;
      drift_ = std::clamp(drift_ + gauss(0, 0.02), -2.0, 2.0);
      double t = base_ + 3.0 * std::sin(2 * kPi * (day - 0.375)) + drift_ + gauss(0, 0.1);
      if (name == "overheat") t += std::min(25.0, 2.5 * (k + 1));
      if (name == "stuck_sensor") t = anomaly_->param;
      last_value_ = t;
      return fmt::format(R"({},"temperature_c":{:.2f}}})", head, t);
    }
    case DeviceKind::kVibration: {
      double rms = std::max(0.01, base_ * (1 + gauss(0, 0.05)));
      double kurtosis = gauss(3.0, 0.2), hz = 29.6 + gauss(0, 0.1);
      if (name == "bearing_fault") {
        rms *= anomaly_->param;
        kurtosis = uniform(6, 10);
        hz = 107.4 + gauss(0, 0.5);  // ball-pass frequency, outer race
      }
      double peak = rms * (anomalous ? uniform(3.0, 4.5) : uniform(1.35, 1.6));
      return fmt::format(
          R"({},"rms_g":{:.3f},"peak_g":{:.3f},"kurtosis":{:.2f},"dominant_hz":{:.1f}}})", head,
          rms, peak, kurtosis, hz);
    }
    case DeviceKind::kPower: {
      double cycle = 1 + 0.1 * std::sin(2 * kPi * static_cast<double>(ts_ms % 600'000) / 600'000.0);
      double kw = std::max(0.1, base_ * cycle + gauss(0, base_ * 0.02));
      if (name == "spike") kw *= anomaly_->param;
      double volts = gauss(400, 2), pf = std::clamp(gauss(0.92, 0.01), 0.5, 1.0);
      double amps = kw * 1000 / (std::sqrt(3.0) * volts * pf);
      return fmt::format(
          R"({},"power_kw":{:.2f},"voltage_v":{:.1f},"current_a":{:.1f},"power_factor":{:.3f}}})",
          head, kw, volts, amps, pf);
    }
    case DeviceKind::kDoor: {
      if (name == "forced_open") {
        door_open_ = true;
        return fmt::format(R"({},"event":"forced_open","door":"{}"}})", head, id_);
      }
      if (name == "held_open") {
        door_open_ = true;
        return fmt::format(R"({},"event":"held_open","door":"{}","held_s":{}}})", head, id_,
                           uniform_int(300, 1800));
      }
      door_open_ = !door_open_;
      return fmt::format(R"({},"event":"{}","door":"{}"}})", head, door_open_ ? "open" : "close",
                         id_);
    }
    case DeviceKind::kBadge: {
      int badge = anomalous ? static_cast<int>(anomaly_->param)
                            : 100000 + uniform_int(0, kStaff - 1) * 7919 % 900000;
      const char* result = anomalous ? "denied" : (uniform(0, 1) < 0.02 ? "denied" : "granted");
      return fmt::format(R"({},"badge_id":"B-{:06}","reader":"{}","result":"{}"}})", head, badge,
                         id_, result);
    }
    case DeviceKind::kCamera: {
      static constexpr const char* kClasses[] = {"person", "forklift", "pallet", "vehicle"};
      std::string detections;
      int n = anomalous ? 1 : uniform_int(0, 3);
      for (int i = 0; i < n; ++i) {
        const char* cls = anomalous ? "person" : kClasses[uniform_int(0, 3)];
        double conf = anomalous ? uniform(0.85, 0.99) : uniform(0.4, 0.97);
        double w = uniform(0.05, 0.3), h = uniform(0.1, 0.5);
        double x = uniform(0, 1 - w), y = uniform(0, 1 - h);
        detections += fmt::format(
            R"({}{{"class":"{}","confidence":{:.2f},"bbox":[{:.3f},{:.3f},{:.3f},{:.3f}]}})",
            i ? "," : "", cls, conf, x, y, w, h);
      }
      return fmt::format(R"({},"zone":"{}","detections":[{}]}})", head,
                         anomalous ? "restricted" : "floor", detections);
    }
  }
  return head + "}";
}

}  // namespace ganglion::sim
