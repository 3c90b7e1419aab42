#include "demo/scoring.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <unordered_map>

namespace ganglion::demo {

Result<std::vector<TruthAnomaly>> read_ground_truth(std::string_view jsonl) {
  std::vector<TruthAnomaly> out;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < jsonl.size()) {
    std::size_t end = jsonl.find('\n', pos);
    if (end == std::string_view::npos) end = jsonl.size();
    const std::string_view line = jsonl.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("device") || !j["device"].is_string() ||
        !j.contains("anomaly") || !j["anomaly"].is_string() || !j.contains("seq_start") ||
        !j["seq_start"].is_number_unsigned() || !j.contains("seq_end") ||
        !j["seq_end"].is_number_unsigned()) {
      return InvalidArgument("ground truth line " + std::to_string(line_no) +
                             ": not a ground-truth record");
    }
    out.push_back({j["device"].get<std::string>(), j["anomaly"].get<std::string>(),
                   j["seq_start"].get<std::uint64_t>(), j["seq_end"].get<std::uint64_t>()});
  }
  return out;
}

DetectionScore score_detections(const std::vector<TruthAnomaly>& truth,
                                const std::vector<RaisedAlert>& alerts, std::uint64_t slack) {
  DetectionScore s;
  std::unordered_map<std::string, std::vector<std::size_t>> by_device;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    by_device[truth[i].device].push_back(i);
    s.per_anomaly[truth[i].anomaly].injected += 1;
  }
  std::vector<bool> detected(truth.size(), false);
  for (const auto& a : alerts) {
    s.alerts += 1;
    bool matched = false;
    if (auto it = by_device.find(a.device); it != by_device.end()) {
      for (std::size_t i : it->second) {
        const auto& t = truth[i];
        if (a.seq >= t.seq_start && a.seq <= t.seq_end + slack) {
          matched = true;
          detected[i] = true;
        }
      }
    }
    s.true_alerts += matched;
  }
  s.anomalies = truth.size();
  for (std::size_t i = 0; i < truth.size(); ++i) {
    if (!detected[i]) continue;
    s.detected += 1;
    s.per_anomaly[truth[i].anomaly].detected += 1;
  }
  return s;
}

double percentile(std::vector<double>& samples, double q) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const double rank = std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(samples.size()));
  const std::size_t index = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
  return samples[std::min(index, samples.size() - 1)];
}

}  // namespace ganglion::demo
