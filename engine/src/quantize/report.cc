// QuantizeReport as text (for people) and JSON (for scripts).
#include <cstdio>
#include <sstream>

#include "lowbit/engine/quantize.h"

namespace lowbit::engine {
namespace {

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (const unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string JsonNumber(double v) {
  if (!(v == v) || v > 1e308 || v < -1e308) return "null";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.9g", v);
  return buffer;
}

std::string Bits(const QuantizedLayerReport& layer) {
  std::string bits = "W" + std::to_string(layer.weight_bits);
  if (layer.residual_bits) bits += "+" + std::to_string(layer.residual_bits);
  return bits + "A" + std::to_string(layer.activation_bits);
}

}  // namespace

std::string QuantizeReport::ToText() const {
  std::ostringstream out;
  char line[512];
  out << "lowbit quantize: " << source_model << " -> " << output_model << "\n";
  out << "machine: " << machine << "\n";
  out << "calibration: " << calibration_frames.size() << " frames";
  if (!calibration_frames.empty())
    out << " (" << calibration_frames.front() << " ... " << calibration_frames.back() << ")";
  out << "\n\n";
  std::snprintf(line, sizeof line, "%-28s %-8s %12s %12s %9s  %-24s %s\n", "layer", "bits",
                "weight B", "w rel.err", "sensitiv.", "input clip [lo, hi]", "observed [lo, hi]");
  out << line;
  for (const auto& layer : layers) {
    char clip[64], observed[64], sensitivity[16] = "-";
    std::snprintf(clip, sizeof clip, "[%.4g, %.4g]", layer.input_lo, layer.input_hi);
    std::snprintf(observed, sizeof observed, "[%.4g, %.4g]", layer.observed_lo, layer.observed_hi);
    if (layer.sensitivity >= 0)
      std::snprintf(sensitivity, sizeof sensitivity, "%.3g", layer.sensitivity);
    std::snprintf(line, sizeof line, "%-28s %-8s %12lld %12.3g %9s  %-24s %s\n", layer.name.c_str(),
                  Bits(layer).c_str(), static_cast<long long>(layer.weight_bytes),
                  layer.weight_relative_error, sensitivity, clip, observed);
    out << line;
  }
  out << "\n";
  std::snprintf(
      line, sizeof line,
      "weights: %lld bytes as lowbit stores them (W8A8: %lld, %.1f%%; FP32: %lld, %.2fx smaller)\n",
      static_cast<long long>(weight_bytes), static_cast<long long>(w8_weight_bytes),
      w8_weight_bytes ? 100.0 * weight_bytes / w8_weight_bytes : 0.0,
      static_cast<long long>(fp32_weight_bytes),
      weight_bytes ? static_cast<double>(fp32_weight_bytes) / weight_bytes : 0.0);
  out << line;
  std::snprintf(line, sizeof line,
                "outputs vs FP32 on the calibration frames: relative squared error %.4g\n",
                output_error);
  out << line;
  if (latency_ms >= 0) {
    std::snprintf(line, sizeof line, "latency here: %.2f ms (FP32 %.2f ms), median of 20 runs\n",
                  latency_ms, fp32_latency_ms);
    out << line;
  }
  for (const auto& note : notes) out << "note: " << note << "\n";
  return out.str();
}

std::string QuantizeReport::ToJson() const {
  std::ostringstream out;
  out << "{\n  \"source_model\": " << JsonString(source_model)
      << ",\n  \"output_model\": " << JsonString(output_model)
      << ",\n  \"machine\": " << JsonString(machine) << ",\n  \"calibration_frames\": [";
  for (size_t i = 0; i < calibration_frames.size(); ++i)
    out << (i ? ", " : "") << JsonString(calibration_frames[i]);
  out << "],\n  \"calibration_frame_indices\": [";
  for (size_t i = 0; i < calibration_frame_indices.size(); ++i)
    out << (i ? ", " : "") << calibration_frame_indices[i];
  out << "],\n  \"weight_bytes\": " << weight_bytes
      << ",\n  \"w8_weight_bytes\": " << w8_weight_bytes
      << ",\n  \"fp32_weight_bytes\": " << fp32_weight_bytes
      << ",\n  \"output_error\": " << JsonNumber(output_error)
      << ",\n  \"latency_ms\": " << JsonNumber(latency_ms)
      << ",\n  \"fp32_latency_ms\": " << JsonNumber(fp32_latency_ms) << ",\n  \"notes\": [";
  for (size_t i = 0; i < notes.size(); ++i) out << (i ? ", " : "") << JsonString(notes[i]);
  out << "],\n  \"layers\": [";
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    out << (i ? "," : "") << "\n    {\"name\": " << JsonString(l.name)
        << ", \"weight_bits\": " << l.weight_bits << ", \"residual_bits\": " << l.residual_bits
        << ", \"activation_bits\": " << l.activation_bits
        << ", \"weight_bytes\": " << l.weight_bytes
        << ", \"weight_relative_error\": " << JsonNumber(l.weight_relative_error)
        << ", \"input_scale\": " << JsonNumber(l.input_scale)
        << ", \"input_zero_point\": " << l.input_zero_point << ", \"input_clip\": ["
        << JsonNumber(l.input_lo) << ", " << JsonNumber(l.input_hi) << "]"
        << ", \"input_observed\": [" << JsonNumber(l.observed_lo) << ", "
        << JsonNumber(l.observed_hi) << "]"
        << ", \"sensitivity\": " << (l.sensitivity >= 0 ? JsonNumber(l.sensitivity) : "null")
        << ", \"candidate_sensitivity\": {";
    for (size_t k = 0; k < l.candidate_sensitivity.size(); ++k)
      out << (k ? ", " : "") << JsonString(l.candidate_sensitivity[k].first) << ": "
          << JsonNumber(l.candidate_sensitivity[k].second);
    out << "}}";
  }
  out << "\n  ]\n}\n";
  return out.str();
}

}  // namespace lowbit::engine
