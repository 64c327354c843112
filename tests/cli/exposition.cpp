// A strict reader of the Prometheus text exposition format (see exposition.hpp).
#include "exposition.hpp"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <set>
#include <sstream>

namespace snapfs::clitest {
namespace {

bool metric_name(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0])) != 0) return false;
  for (const char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '_' && c != ':') return false;
  }
  return true;
}

bool label_name(std::string_view s) {
  return metric_name(s) && s.find(':') == std::string_view::npos;
}

// A sample value: a float as Go's strconv.ParseFloat reads it, or NaN, +Inf, -Inf.
std::optional<double> number(const std::string& s) {
  if (s == "NaN" || s == "+Inf" || s == "-Inf") return 0.0;
  if (s.empty()) return std::nullopt;
  for (const char c : s) {
    if (std::isdigit(static_cast<unsigned char>(c)) == 0 && c != '.' && c != 'e' && c != 'E' &&
        c != '+' && c != '-')
      return std::nullopt;
  }
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

// Parses `line` as a sample into `s`; an error message, or "" on success.
std::string parse_sample(std::string_view line, Sample& s) {
  std::size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  s.name = std::string(line.substr(0, i));
  if (!metric_name(s.name)) return "bad metric name '" + s.name + "'";
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const std::size_t eq = line.find('=', i);
      if (eq == std::string_view::npos) return "label without '='";
      const std::string name(line.substr(i, eq - i));
      if (!label_name(name)) return "bad label name '" + name + "'";
      if (s.labels.count(name) != 0) return "label '" + name + "' twice";
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') return "label value not quoted";
      ++i;
      std::string value;
      for (;;) {
        if (i >= line.size()) return "unterminated label value";
        const char c = line[i++];
        if (c == '"') break;
        if (c != '\\') {
          value += c;
          continue;
        }
        if (i >= line.size()) return "unterminated escape";
        const char e = line[i++];
        if (e == '\\' || e == '"')
          value += e;
        else if (e == 'n')
          value += '\n';
        else
          return std::string("bad escape \\") + e + " in a label value";
      }
      s.labels[name] = value;
      if (i < line.size() && line[i] == ',') {
        ++i;
      } else if (i >= line.size() || line[i] != '}') {
        return "expected ',' or '}' after a label";
      }
    }
    if (i >= line.size()) return "unterminated label set";
    ++i;  // '}'
  }
  if (i >= line.size() || line[i] != ' ') return "no blank before the value";
  ++i;
  const std::string rest(line.substr(i));
  const std::size_t blank = rest.find(' ');
  const auto v = number(rest.substr(0, blank));
  if (!v) return "bad value '" + rest.substr(0, blank) + "'";
  if (blank != std::string::npos) {
    const std::string ts = rest.substr(blank + 1);
    if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string::npos)
      return "bad timestamp '" + ts + "'";
  }
  s.value = *v;
  return {};
}

std::string series_key(const Sample& s) {
  std::string k = s.name + "{";
  for (const auto& [n, v] : s.labels) k += n + "=" + v + "\x1f";
  return k + "}";
}

}  // namespace

std::optional<double> Exposition::value(const std::string& name,
                                        const std::map<std::string, std::string>& labels) const {
  std::optional<double> found;
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (!match) continue;
    if (found) return std::nullopt;  // ambiguous
    found = s.value;
  }
  return found;
}

::testing::AssertionResult valid_exposition(std::string_view text, Exposition* out) {
  Exposition e;
  if (text.empty() || text.back() != '\n')
    return ::testing::AssertionFailure() << "does not end with a newline:\n" << text;
  std::set<std::string> finished, series;
  std::string current;  // the family whose samples come now
  std::size_t n = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t nl = text.find('\n', start);
    const std::string_view line = text.substr(start, nl - start);
    start = nl + 1;
    ++n;
    auto fail = [&](const std::string& why) {
      return ::testing::AssertionFailure() << "line " << n << ": " << why << ": '" << line
                                           << "'\nin:\n"
                                           << text;
    };
    if (line.empty()) return fail("empty line");
    if (line[0] == '#') {
      std::istringstream in{std::string(line)};
      std::string hash, kind, name, rest;
      in >> hash >> kind >> name;
      std::getline(in, rest);
      if (hash != "#" || (kind != "HELP" && kind != "TYPE")) continue;  // a plain comment
      if (!metric_name(name)) return fail("bad metric name in " + kind);
      if (kind == "TYPE") {
        const std::string type = rest.empty() ? "" : rest.substr(1);
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
            type != "untyped")
          return fail("unknown type '" + type + "'");
        if (e.types.count(name) != 0) return fail("second TYPE of " + name);
        if (finished.count(name) != 0 || current == name)
          return fail("TYPE of " + name + " after its samples");
        e.types[name] = type;
      } else {
        if (e.help.count(name) != 0) return fail("second HELP of " + name);
        e.help[name] = rest.empty() ? "" : rest.substr(1);
      }
      continue;
    }
    Sample s;
    if (const std::string why = parse_sample(line, s); !why.empty()) return fail(why);
    if (e.types.count(s.name) == 0)
      return fail("sample of " + s.name + " without a TYPE before it");
    if (s.name != current) {
      if (finished.count(s.name) != 0) return fail("samples of " + s.name + " are not together");
      if (!current.empty()) finished.insert(current);
      current = s.name;
    }
    if (!series.insert(series_key(s)).second) return fail("the same series twice");
    e.samples.push_back(std::move(s));
  }
  if (out != nullptr) *out = std::move(e);
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult snapfs_exposition(std::string_view text, const std::string& mountpoint,
                                             Exposition* out) {
  Exposition e;
  if (auto r = valid_exposition(text, &e); !r) return r;
  for (const auto& [name, type] : e.types) {
    auto fail = [&](const std::string& why) {
      return ::testing::AssertionFailure() << name << ": " << why << "\nin:\n" << text;
    };
    if (name.rfind("snapfs_", 0) != 0) return fail("not named snapfs_*");
    if (e.help.count(name) == 0 || e.help.at(name).empty()) return fail("no HELP");
    const bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
    if (type == "counter" && !total) return fail("a counter without _total");
    if (type == "gauge" && total) return fail("a gauge named _total");
    if (type != "counter" && type != "gauge") return fail("type " + type);
  }
  for (const auto& s : e.samples) {
    auto it = s.labels.find("mountpoint");
    if (it == s.labels.end() || it->second != mountpoint)
      return ::testing::AssertionFailure()
             << s.name << " without mountpoint=\"" << mountpoint << "\"\nin:\n"
             << text;
  }
  if (e.samples.empty()) return ::testing::AssertionFailure() << "no samples";
  if (out != nullptr) *out = std::move(e);
  return ::testing::AssertionSuccess();
}

std::optional<Outcome> promtool_check(const std::string& text) {
  std::string tool;
  if (const char* env = std::getenv("SNAPFS_PROMTOOL"); env != nullptr && *env != '\0') {
    tool = env;
  } else if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::istringstream dirs{std::string(path)};
    for (std::string dir; std::getline(dirs, dir, ':');) {
      const std::string candidate = (dir.empty() ? "." : dir) + "/promtool";
      if (::access(candidate.c_str(), X_OK) == 0) {
        tool = candidate;
        break;
      }
    }
  }
  if (tool.empty()) return std::nullopt;
  Scratch s;
  const fs::path file = s / "metrics.prom";
  write_file(file, text);
  return run({"/bin/sh", "-c", "exec \"$0\" check metrics < \"$1\"", tool, file.string()});
}

}  // namespace snapfs::clitest
