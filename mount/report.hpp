// `snapfs status` and `snapfs conflicts`: the daemon answers a virtual xattr
// with JSON (fuse/include/snapfs/fuse/daemon.hpp); this turns it into lines
// for humans. A small JSON reader is enough for these flat documents and
// keeps the command free of another dependency.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace snapfs::cli {

struct Json {
  enum class Type { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool boolean = false;
  std::string text;  // a string's value, or a number's literal as sent
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;  // in document order

  [[nodiscard]] const Json* find(std::string_view key) const;
};

// Parses one JSON value (RFC 8259, \u escapes to UTF-8). Throws
// Failure(failure) naming the offset on malformed input.
Json parse_json(std::string_view text);

// "key: value" lines; nested objects as "outer.inner: value", arrays of
// scalars joined with ", "; "started" (seconds since the epoch) as a UTC
// date.
std::string render_status(const Json& status);
// The status in the Prometheus text exposition format (version 0.0.4):
// counters and gauges named snapfs_*, each with # HELP and # TYPE lines and
// a mountpoint label; the daemon's facts and options as two info metrics
// (value 1). Throws Failure(failure) if `status` is not an object.
std::string render_prometheus(const Json& status);
// A table with PATH, TIME, PID, SIZE, KEPT AT columns, or "no conflicts".
std::string render_conflicts(const Json& conflicts);
// A table with ID, PID, STARTED, COMMAND columns (the daemon's `list` of
// runs), or "no runs".
std::string render_runs(const Json& runs);

// One line of `snapfs events` for an event of the feed (daemon.hpp
// kEventsXattrPrefix): "TIME EVENT PATH[ -> TO][ size=N][ pid=N uid=N
// command=C]", the time in UTC as 2026-12-07T20:31:02.123456Z and paths
// under `mountpoint`, escaped as everything the command prints; or, with
// `json`, the event's JSON object on one line with its paths made absolute.
std::string render_event(const Json& event, const std::string& mountpoint, bool json);
// The line saying that `count` events were lost to the reader.
std::string render_dropped(std::uint64_t count, bool json);

}  // namespace snapfs::cli
