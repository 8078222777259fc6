// Reading lowbitd's Prometheus series back in tests.
#pragma once

#include <map>
#include <string>

#include <prometheus/metric_family.h>

#include "metrics.h"

namespace lowbit::server::testing {

// The value of the series of `family` whose labels include all of `labels`
// (a histogram's sample count); -1 if there is none.
inline double MetricValue(ServerMetrics& metrics, const std::string& family,
                          const std::map<std::string, std::string>& labels) {
  for (const prometheus::MetricFamily& collected : metrics.registry()->Collect()) {
    if (collected.name != family) continue;
    for (const prometheus::ClientMetric& metric : collected.metric) {
      size_t matched = 0;
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        auto it = labels.find(label.name);
        if (it != labels.end() && it->second == label.value) ++matched;
      }
      if (matched != labels.size()) continue;
      switch (collected.type) {
        case prometheus::MetricType::Counter:
          return metric.counter.value;
        case prometheus::MetricType::Gauge:
          return metric.gauge.value;
        case prometheus::MetricType::Histogram:
          return static_cast<double>(metric.histogram.sample_count);
        default:
          return -1;
      }
    }
  }
  return -1;
}

}  // namespace lowbit::server::testing
