// Checks of `snapfs status --format=prometheus` output: a reader of the
// Prometheus text exposition format (version 0.0.4) strict enough to fail
// on what a scraper would reject, and promtool's own check where promtool
// is installed.
#pragma once

#include "cli_support.hpp"

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace snapfs::clitest {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped values
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // metric family -> counter, gauge, ...
  std::map<std::string, std::string> help;
  std::vector<Sample> samples;  // in the order given
  // The value of the series `name` whose labels include `labels`, if
  // exactly one matches.
  std::optional<double> value(const std::string& name,
                              const std::map<std::string, std::string>& labels = {}) const;
};

// Reads `text`: every line is `# HELP name text`, `# TYPE name type` or a
// sample `name{label="value",...} value`; a family's TYPE comes before its
// samples, which are contiguous; no series twice; label values use only the
// escapes \\ \" \n; the text ends with a newline. On success `out` (if
// given) holds what was read.
::testing::AssertionResult valid_exposition(std::string_view text, Exposition* out = nullptr);

// snapfs's conventions on top: every family has HELP and TYPE, names start
// with snapfs_, counters end in _total and gauges do not, and every sample
// has the label mountpoint="`mountpoint`".
::testing::AssertionResult snapfs_exposition(std::string_view text, const std::string& mountpoint,
                                             Exposition* out = nullptr);

// `promtool check metrics` on `text`; nullopt if there is no promtool
// ($SNAPFS_PROMTOOL, else promtool on PATH; Debian package prometheus).
std::optional<Outcome> promtool_check(const std::string& text);

}  // namespace snapfs::clitest
