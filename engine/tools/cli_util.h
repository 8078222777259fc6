// Small helpers shared by the `lowbit` subcommands: flag values, files,
// units, JSON strings, timing. Errors are printed to stderr as
// "lowbit COMMAND: message".
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "lowbit/engine/status.h"

namespace lowbit::cli {

// Exit codes of every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// Parses an integer flag value in [min, max]; prints an error and returns
// false otherwise.
inline bool ParseIntFlag(const char* command, const char* flag, const char* text, int min, int max,
                         int* value) {
  char* end = nullptr;
  errno = 0;
  const long parsed = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || parsed < min || parsed > max) {
    std::fprintf(stderr, "lowbit %s: %s needs an integer in [%d, %d], got '%s'\n", command, flag,
                 min, max, text);
    return false;
  }
  *value = static_cast<int>(parsed);
  return true;
}

// Parses a float flag value in [min, max].
inline bool ParseFloatFlag(const char* command, const char* flag, const char* text, float min,
                           float max, float* value) {
  char* end = nullptr;
  errno = 0;
  const float parsed = std::strtof(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !(parsed >= min && parsed <= max)) {
    std::fprintf(stderr, "lowbit %s: %s needs a number in [%g, %g], got '%s'\n", command, flag, min,
                 max, text);
    return false;
  }
  *value = parsed;
  return true;
}

// Parses `--input-shape NAME=D0xD1x...` (also D0,D1,...) into `shapes`
// (CompileOptions::input_shapes); prints an error and returns false otherwise.
inline bool ParseInputShapeFlag(const char* command, const char* text,
                                std::map<std::string, std::vector<int64_t>>* shapes) {
  const char* eq = std::strrchr(text, '=');
  std::vector<int64_t> dims;
  bool ok = eq != nullptr && eq != text && eq[1] != '\0';
  for (const char* p = ok ? eq + 1 : text; ok && *p != '\0';) {
    char* end = nullptr;
    errno = 0;
    const long long d = std::strtoll(p, &end, 10);
    ok = errno == 0 && end != p && d >= 1 && (*end == '\0' || *end == 'x' || *end == ',');
    dims.push_back(d);
    p = *end == '\0' ? end : end + 1;
    if (*end != '\0' && *p == '\0') ok = false;
  }
  if (!ok) {
    std::fprintf(stderr,
                 "lowbit %s: --input-shape needs NAME=D0xD1x... with sizes >= 1 "
                 "(e.g. images=1x3x320x320), got '%s'\n",
                 command, text);
    return false;
  }
  (*shapes)[std::string(text, eq - text)] = std::move(dims);
  return true;
}

// For a flag at argv[*i] that takes a value: returns the value and advances
// *i, or prints an error and returns nullptr when it is missing.
inline const char* FlagValue(const char* command, int argc, char** argv, int* i) {
  if (*i + 1 >= argc) {
    std::fprintf(stderr, "lowbit %s: %s needs a value\n", command, argv[*i]);
    return nullptr;
  }
  return argv[++*i];
}

inline StatusOr<std::vector<uint8_t>> ReadFileBytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return NotFound("cannot read " + path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                             std::istreambuf_iterator<char>());
  if (file.bad()) return Internal("error reading " + path);
  return bytes;
}

// "2.09 G", "941.2 M", "12.3 K", "512".
inline std::string WithUnit(int64_t value) {
  char text[32];
  if (value >= 1'000'000'000) {
    std::snprintf(text, sizeof text, "%.2f G", value / 1e9);
  } else if (value >= 1'000'000) {
    std::snprintf(text, sizeof text, "%.2f M", value / 1e6);
  } else if (value >= 1'000) {
    std::snprintf(text, sizeof text, "%.2f K", value / 1e3);
  } else {
    std::snprintf(text, sizeof text, "%lld", static_cast<long long>(value));
  }
  return text;
}

// "2,090,123,456"
inline std::string WithSeparators(int64_t value) {
  const std::string digits = std::to_string(value);
  std::string grouped;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') grouped += ',';
    grouped += digits[i];
  }
  return grouped;
}

// Bytes in binary units: "3.62 MiB", "12.0 KiB", "512 B".
inline std::string WithByteUnit(int64_t bytes) {
  char text[32];
  if (bytes >= 1024 * 1024) {
    std::snprintf(text, sizeof text, "%.2f MiB", bytes / (1024.0 * 1024.0));
  } else if (bytes >= 1024) {
    std::snprintf(text, sizeof text, "%.1f KiB", bytes / 1024.0);
  } else {
    std::snprintf(text, sizeof text, "%lld B", static_cast<long long>(bytes));
  }
  return text;
}

// A JSON string literal: quotes and backslashes escaped, control characters
// as \u00XX.
inline std::string JsonString(const std::string& text) {
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned char>(c));
      quoted += escaped;
    } else {
      quoted += c;
    }
  }
  return quoted + "\"";
}

inline double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace lowbit::cli
