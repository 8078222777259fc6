// Shared helpers of the vision tests. Tests run with the repository root as
// the working directory (lowbit_add_test), so data paths are repo-relative.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace lowbit::engine::testing {

// Reads data/images/NAME. A missing file fails the test (never skips) with
// the command that provides it.
inline std::vector<uint8_t> ReadTestImage(const std::string& name) {
  const std::string path = "data/images/" + name;
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    ADD_FAILURE() << "missing test image " << path << " (cwd "
                  << std::filesystem::current_path().string()
                  << "); run deploy/fetch-images.sh to fetch the project's test images";
    return {};
  }
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(file)),
                              std::istreambuf_iterator<char>());
}

}  // namespace lowbit::engine::testing
