// JSON reading and human rendering for status/conflicts (see report.hpp).
#include "report.hpp"

#include "exit_codes.hpp"

#include <snapfs/fuse/printable.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <optional>

namespace snapfs::cli {
namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Json document() {
    Json v = value(0);
    skip_ws();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  // Deep nesting from a broken daemon must not overflow our stack.
  static constexpr int kMaxDepth = 64;

  [[noreturn]] void fail(const char* what) const {
    throw Failure(exit_code::failure, std::string("the daemon sent malformed JSON: ") + what +
                                          " at offset " + std::to_string(i_));
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool eat(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail((std::string("expected '") + c + "'").c_str());
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  Json value(int depth) {
    if (depth > kMaxDepth) fail("nesting too deep");
    skip_ws();
    if (i_ >= s_.size()) fail("unexpected end");
    Json v;
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      v.type = Json::Type::object;
      if (eat('}')) return v;
      do {
        skip_ws();
        std::string key = string();
        expect(':');
        v.members.emplace_back(std::move(key), value(depth + 1));
      } while (eat(','));
      expect('}');
    } else if (c == '[') {
      ++i_;
      v.type = Json::Type::array;
      if (eat(']')) return v;
      do {
        v.items.push_back(value(depth + 1));
      } while (eat(','));
      expect(']');
    } else if (c == '"') {
      v.type = Json::Type::string;
      v.text = string();
    } else if (literal("true")) {
      v.type = Json::Type::boolean;
      v.boolean = true;
    } else if (literal("false")) {
      v.type = Json::Type::boolean;
    } else if (literal("null")) {
      v.type = Json::Type::null;
    } else if (c == '-' || std::isdigit(static_cast<unsigned char>(c)) != 0) {
      const std::size_t start = i_;
      ++i_;
      while (i_ < s_.size() &&
             (std::isdigit(static_cast<unsigned char>(s_[i_])) != 0 || s_[i_] == '.' ||
              s_[i_] == 'e' || s_[i_] == 'E' || s_[i_] == '+' || s_[i_] == '-')) {
        ++i_;
      }
      v.type = Json::Type::number;
      v.text = std::string(s_.substr(start, i_ - start));
    } else {
      fail("unexpected character");
    }
    return v;
  }

  unsigned hex4() {
    if (i_ + 4 > s_.size()) fail("short \\u escape");
    unsigned cp = 0;
    const auto [p, ec] = std::from_chars(s_.data() + i_, s_.data() + i_ + 4, cp, 16);
    if (ec != std::errc() || p != s_.data() + i_ + 4) fail("bad \\u escape");
    i_ += 4;
    return cp;
  }

  static void utf8(std::string& out, unsigned cp) {
    auto byte = [&](unsigned b) { out.push_back(static_cast<char>(b)); };
    if (cp < 0x80) {
      byte(cp);
    } else if (cp < 0x800) {
      byte(0xC0 | (cp >> 6));
      byte(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      byte(0xE0 | (cp >> 12));
      byte(0x80 | ((cp >> 6) & 0x3F));
      byte(0x80 | (cp & 0x3F));
    } else {
      byte(0xF0 | (cp >> 18));
      byte(0x80 | ((cp >> 12) & 0x3F));
      byte(0x80 | ((cp >> 6) & 0x3F));
      byte(0x80 | (cp & 0x3F));
    }
  }

  std::string string() {
    if (i_ >= s_.size() || s_[i_] != '"') fail("expected a string");
    ++i_;
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated escape");
      switch (const char e = s_[i_++]) {
        case '"':
        case '\\':
        case '/': out.push_back(e); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          unsigned cp = hex4();
          // A lone low surrogate U+DC80-U+DCFF is how the daemon's JSON
          // carries one byte of a name that is not UTF-8 (printable.hpp
          // json_string): back to that byte, which printable() shows as \xNN.
          if (cp >= 0xDC80 && cp <= 0xDCFF) {
            out.push_back(static_cast<char>(cp & 0xFF));
            break;
          }
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(i_, 2) == "\\u") {
            i_ += 2;
            const unsigned lo = hex4();
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

// Names from the daemon are whatever bytes a user chose: shown escaped
// (C0, DEL, C1, bidi controls, invalid UTF-8), so a path cannot drive the
// terminal of whoever runs `snapfs conflicts` or `snapfs status`, nor break
// the table. The one escaper of the project: fuse/include/snapfs/fuse/printable.hpp.
using fuse::printable;

std::string scalar(const Json& v) {
  switch (v.type) {
    case Json::Type::null: return "-";
    case Json::Type::boolean: return v.boolean ? "yes" : "no";
    case Json::Type::number: return v.text;
    case Json::Type::string: return printable(v.text);
    case Json::Type::array: {
      std::string out;
      for (const auto& item : v.items) out += (out.empty() ? "" : ", ") + scalar(item);
      return out.empty() ? "(none)" : out;
    }
    case Json::Type::object: {
      std::string out;
      for (const auto& [k, item] : v.members) {
        out += (out.empty() ? "" : ", ") + printable(k) + "=" + scalar(item);
      }
      return "{" + out + "}";
    }
  }
  return {};
}

void flatten(const Json& v, const std::string& prefix, std::string& out) {
  if (v.type == Json::Type::object && !prefix.empty() && v.members.empty()) {
    out += prefix + ": (none)\n";
    return;
  }
  if (v.type != Json::Type::object) {
    out += (prefix.empty() ? "value" : prefix) + ": " + scalar(v) + "\n";
    return;
  }
  for (const auto& [k, item] : v.members) {
    flatten(item, prefix.empty() ? printable(k) : prefix + "." + printable(k), out);
  }
}

// Seconds since the epoch (a number, with a fraction or not) in UTC, then
// "Z": "2026-12-07T20:31:02.123456Z" if `iso` (the fraction as sent), else
// "2026-12-07 20:31:02Z"; other values as sent.
std::string utc_time(const Json* v, bool iso) {
  if (v == nullptr) return "-";
  if (v->type != Json::Type::number) return scalar(*v);
  long long secs = 0;
  const char* end = v->text.data() + v->text.size();
  const auto [p, ec] = std::from_chars(v->text.data(), end, secs);
  if (ec != std::errc() || (p != end && *p != '.')) return v->text;
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  char buf[32];
  if (::gmtime_r(&t, &tm) == nullptr ||
      (iso ? std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm)
           : std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm)) == 0)
    return v->text;
  std::string out = buf;
  if (iso) out.append(p, end);  // ".123456"
  return out + "Z";
}

// For tables and status.
std::string when(const Json* v) { return utc_time(v, false); }

// Columns two spaces apart, each as wide as its widest cell, the head first.
std::string table(const std::vector<std::string>& head,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(head.size());
  for (std::size_t c = 0; c < head.size(); ++c) {
    width[c] = head[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t c = 0; c < cells.size(); ++c) {
      out += cells[c];
      if (c + 1 < cells.size()) out += std::string(width[c] - cells[c].size() + 2, ' ');
    }
    out += "\n";
  };
  line(head);
  for (const auto& r : rows) line(r);
  return out;
}

// One word, for lines a shell reads.
std::string iso_time(const Json* v) { return utc_time(v, true); }

// A scalar as JSON text again (strings escaped as the daemon does).
std::string json_scalar(const Json& v) {
  switch (v.type) {
    case Json::Type::null: return "null";
    case Json::Type::boolean: return v.boolean ? "true" : "false";
    case Json::Type::number: return v.text;
    case Json::Type::string: return fuse::json_string(v.text);
    default: return "null";  // the feed sends no nested values
  }
}

}  // namespace

const Json* Json::find(std::string_view key) const {
  for (const auto& [k, v] : members) {
    if (k == key) return &v;
  }
  return nullptr;
}

Json parse_json(std::string_view text) {
  return Parser(text).document();
}

std::string render_status(const Json& status) {
  std::string out;
  if (status.type != Json::Type::object) {
    flatten(status, "", out);
    return out;
  }
  for (const auto& [k, v] : status.members) {
    // The start time as a date; everything else as sent.
    if (k == "started" && v.type == Json::Type::number)
      out += "started: " + when(&v) + "\n";
    else
      flatten(v, printable(k), out);
  }
  return out;
}

namespace {

// A label value of the text exposition format: what the text output shows
// (printable() escapes controls, a newline too, and bytes that are not
// UTF-8), with backslash and quote escaped as the format requires.
std::string label_value(const std::string& raw) {
  std::string out;
  for (const char c : printable(raw)) {
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out;
}

// A JSON scalar as a label value: strings as they are, numbers as sent,
// booleans as true/false, arrays of scalars joined with ':' (globs).
std::string label_text(const Json& v) {
  switch (v.type) {
    case Json::Type::string:
    case Json::Type::number: return v.text;
    case Json::Type::boolean: return v.boolean ? "true" : "false";
    case Json::Type::array: {
      std::string out;
      for (const auto& item : v.items) out += (out.empty() ? "" : ":") + label_text(item);
      return out;
    }
    case Json::Type::null:
    case Json::Type::object: break;
  }
  return {};
}

// A sample value: a JSON number as sent, a boolean as 1 or 0; nothing for
// anything else or a negative number (the daemon's "could not tell").
std::optional<std::string> sample_value(const Json* v) {
  if (v == nullptr) return std::nullopt;
  if (v->type == Json::Type::boolean) return std::string(v->boolean ? "1" : "0");
  if (v->type != Json::Type::number || v->text.empty() || v->text[0] == '-') return std::nullopt;
  return v->text;
}

struct Family {
  const char* name;
  const char* type;  // counter or gauge
  const char* help;
  // (status key, extra label) pairs; the label is `name="value"` or empty.
  std::vector<std::pair<const char*, const char*>> samples;
};

// Status keys and the metrics they become. Keys a daemon does not send
// (an older one) are left out; new keys appear in text and JSON only until
// they are named here.
const std::vector<Family>& families() {
  static const std::vector<Family> f{
      {"snapfs_commits_total", "counter",
       "Files published by a commit (a close) since the daemon started.", {{"commits", ""}}},
      {"snapfs_published_bytes_total", "counter", "Bytes of the files published by commits.",
       {{"bytes_published", ""}}},
      {"snapfs_conflicts_total", "counter",
       "Commits that lost a conflict (on-conflict=fail) since the daemon started.",
       {{"conflicts_since_start", ""}}},
      {"snapfs_rebases_total", "counter",
       "Appending commits rebased onto a version published meanwhile.", {{"rebases", ""}}},
      {"snapfs_opens_total", "counter",
       "Opens with a snapshot, by data path: kernel passthrough or the daemon (direct_io).",
       {{"passthrough_opens", "data_path=\"kernel\""}, {"daemon_opens", "data_path=\"daemon\""}}},
      {"snapfs_own_joins_total", "counter",
       "Opens that joined their own process's unpublished version of the file.",
       {{"own_joins", ""}}},
      {"snapfs_own_routes_total", "counter",
       "Lookups answered with the caller's own unpublished version.", {{"own_routes", ""}}},
      {"snapfs_own_misses_total", "counter",
       "Opens by a process with its own version that were served a snapshot of the published "
       "file.",
       {{"own_misses", ""}}},
      {"snapfs_warm_hits_total", "counter", "Read-only opens served by a warm shared snapshot.",
       {{"warm_hits", ""}}},
      {"snapfs_lookups_total", "counter", "LOOKUP requests (the kernel's name cache missed).",
       {{"lookups", ""}}},
      {"snapfs_getattrs_total", "counter",
       "GETATTR requests (the kernel's attribute cache missed).", {{"getattrs", ""}}},
      {"snapfs_readdirs_total", "counter",
       "READDIR requests (the kernel's directory cache missed).", {{"readdirs", ""}}},
      {"snapfs_inode_invalidations_total", "counter",
       "Inode invalidations sent to the kernel.", {{"inval_inodes", ""}}},
      {"snapfs_dentry_epochs_total", "counter",
       "Name-cache epoch increments sent to the kernel.", {{"dentry_epochs", ""}}},
      {"snapfs_open_snapshots", "gauge", "Private snapshots open now.", {{"open_snapshots", ""}}},
      {"snapfs_warm_snapshots", "gauge", "Warm shared snapshots kept now.",
       {{"warm_snapshots", ""}}},
      {"snapfs_lingering_snapshots", "gauge",
       "Closed writers' snapshots still shared-mapped, published when unmapped.",
       {{"lingering", ""}}},
      {"snapfs_conflicts_kept", "gauge",
       "Conflict records kept in B/.snapfs/conflicts that the asking user may see.",
       {{"conflicts", ""}}},
      {"snapfs_descriptors_held", "gauge", "File descriptors the daemon holds.",
       {{"descriptors", ""}}},
      {"snapfs_descriptors_limit", "gauge", "The daemon's limit of open file descriptors.",
       {{"descriptor_limit", ""}}},
      {"snapfs_reflink", "gauge", "1 if the backing filesystem can reflink (O(1) snapshots).",
       {{"reflink", ""}}},
      {"snapfs_start_time_seconds", "gauge",
       "When the daemon started, in seconds since the epoch.", {{"started", ""}}},
      {"snapfs_uptime_seconds", "gauge", "Seconds since the daemon started.",
       {{"uptime_seconds", ""}}},
  };
  return f;
}

void family_head(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n";
  out += std::string("# TYPE ") + name + " " + type + "\n";
}

}  // namespace

std::string render_prometheus(const Json& status) {
  if (status.type != Json::Type::object) {
    throw Failure(exit_code::failure, "the daemon sent a status that is not a JSON object");
  }
  const Json* mp = status.find("mountpoint");
  const std::string mount_label =
      "mountpoint=\"" + label_value(mp != nullptr ? label_text(*mp) : std::string()) + "\"";
  auto labels = [&](const std::string& extra) {
    return "{" + mount_label + (extra.empty() ? "" : "," + extra) + "}";
  };
  std::string out;

  // What serves the mount, as an info metric (value 1, facts as labels).
  {
    std::string info;
    for (const char* key : {"backing", "version", "pid", "kernel", "fuse_protocol", "libfuse",
                            "data_path", "kernel_passthrough"}) {
      const Json* v = status.find(key);
      if (v == nullptr) continue;
      std::string text = label_text(*v);
      // "kernel passthrough" / "daemon (direct_io)": the label value
      // snapfs_opens_total uses.
      if (std::string_view(key) == "data_path")
        text = text.rfind("kernel", 0) == 0 ? "kernel" : "daemon";
      info += (info.empty() ? "" : ",") + std::string(key) + "=\"" + label_value(text) + "\"";
    }
    family_head(out, "snapfs_info",  "gauge",
                "The daemon serving the mount: version, process id, kernel, FUSE protocol, "
                "libfuse and data path.");
    out += "snapfs_info" + labels(info) + " 1\n";
  }
  if (const Json* o = status.find("options"); o != nullptr && o->type == Json::Type::object) {
    std::string opts;
    for (const auto& [k, v] : o->members) {
      if (v.type == Json::Type::object || v.type == Json::Type::null) continue;
      std::string name;  // a label name: [a-zA-Z_][a-zA-Z0-9_]*
      for (const char c : k) name += std::isalnum(static_cast<unsigned char>(c)) != 0 ? c : '_';
      if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0])) != 0) continue;
      opts += (opts.empty() ? "" : ",") + name + "=\"" + label_value(label_text(v)) + "\"";
    }
    family_head(out, "snapfs_options_info", "gauge",
                "The mount options in force, defaults resolved.");
    out += "snapfs_options_info" + labels(opts) + " 1\n";
  }

  for (const Family& f : families()) {
    std::string lines;
    for (const auto& [key, extra] : f.samples) {
      if (auto v = sample_value(status.find(key)))
        lines += f.name + labels(extra) + " " + *v + "\n";
    }
    if (lines.empty()) continue;
    family_head(out, f.name, f.type, f.help);
    out += lines;
  }

  if (const Json* e = status.find("errors"); e != nullptr && e->type == Json::Type::object) {
    family_head(out, "snapfs_errors_total", "counter",
                "Replies to the kernel that carried an errno, by errno (ENOENT of a lookup "
                "included).");
    for (const auto& [k, v] : e->members) {
      if (auto n = sample_value(&v))
        out += "snapfs_errors_total" + labels("errno=\"" + label_value(k) + "\"") + " " + *n + "\n";
    }
  }
  return out;
}

std::string render_conflicts(const Json& conflicts) {
  if (conflicts.type != Json::Type::array) {
    throw Failure(exit_code::failure, "the daemon sent conflicts that are not a JSON array");
  }
  if (conflicts.items.empty()) return "no conflicts\n";
  const std::vector<std::string> head{"PATH", "TIME", "PID", "SIZE", "KEPT AT"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& rec : conflicts.items) {
    auto field = [&](const char* key) {
      const Json* v = rec.find(key);
      return v == nullptr ? std::string("-") : scalar(*v);
    };
    rows.push_back(
        {field("path"), when(rec.find("time")), field("pid"), field("size"), field("kept_at")});
  }
  return table(head, rows) + std::to_string(rows.size()) +
         (rows.size() == 1 ? " conflict\n" : " conflicts\n");
}

std::string render_runs(const Json& runs) {
  if (runs.type != Json::Type::array)
    throw Failure(exit_code::failure, "the daemon sent runs that are not a JSON array");
  if (runs.items.empty()) return "no runs\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& run : runs.items) {
    std::string command;
    if (const Json* c = run.find("command"); c != nullptr && c->type == Json::Type::array) {
      for (const auto& arg : c->items) command += (command.empty() ? "" : " ") + scalar(arg);
    }
    auto field = [&](const char* key) {
      const Json* v = run.find(key);
      return v == nullptr ? std::string("-") : scalar(*v);
    };
    rows.push_back({field("id"), field("pid"), when(run.find("start")),
                    command.empty() ? "-" : command});
  }
  return table({"ID", "PID", "STARTED", "COMMAND"}, rows);
}

std::string render_event(const Json& event, const std::string& mountpoint, bool json) {
  const auto absolute = [&](const std::string& rel) { return mountpoint + "/" + rel; };
  if (json) {
    std::string out;
    for (const auto& [k, v] : event.members) {
      out += out.empty() ? "{" : ",";
      out += fuse::json_string(k) + ":";
      out += (k == "path" || k == "to") && v.type == Json::Type::string
                 ? fuse::json_string(absolute(v.text))
                 : json_scalar(v);
    }
    return (out.empty() ? "{" : out) + "}\n";
  }
  const auto text = [&](const char* key) {
    const Json* v = event.find(key);
    return v == nullptr ? std::string() : scalar(*v);
  };
  std::string out = iso_time(event.find("time")) + " " + text("event") + " ";
  const Json* path = event.find("path");
  out += printable(absolute(path != nullptr ? path->text : std::string()));
  if (const Json* to = event.find("to"); to != nullptr)
    out += " -> " + printable(absolute(to->text));
  for (const char* key : {"size", "pid", "uid", "command"}) {
    if (event.find(key) != nullptr) out += std::string(" ") + key + "=" + text(key);
  }
  return out + "\n";
}

std::string render_dropped(std::uint64_t count, bool json) {
  if (json) return "{\"event\":\"dropped\",\"count\":" + std::to_string(count) + "}\n";
  return "- dropped " + std::to_string(count) + " events (no longer kept, or too large to show)\n";
}

}  // namespace snapfs::cli
