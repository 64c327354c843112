// JSON reading and human rendering for status/conflicts (see report.hpp).
#include "report.hpp"

#include "exit_codes.hpp"

#include <snapfs/fuse/printable.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>

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
          // carries one byte of a name that is not UTF-8 (fuse/conflicts.cpp
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

// Seconds (or fractional seconds) since the epoch → UTC; other values as sent.
std::string when(const Json* v) {
  if (v == nullptr) return "-";
  if (v->type != Json::Type::number) return scalar(*v);
  long long secs = 0;
  const auto [p, ec] = std::from_chars(v->text.data(), v->text.data() + v->text.size(), secs);
  if (ec != std::errc() || (p != v->text.data() + v->text.size() && *p != '.')) return v->text;
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  char buf[32];
  if (::gmtime_r(&t, &tm) == nullptr ||
      std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm) == 0) {
    return v->text;
  }
  return buf;
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
  flatten(status, "", out);
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
  std::vector<std::size_t> width(head.size());
  for (std::size_t c = 0; c < head.size(); ++c) {
    width[c] = head[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      l += cells[c];
      if (c + 1 < cells.size()) l += std::string(width[c] - cells[c].size() + 2, ' ');
    }
    out += l + "\n";
  };
  line(head);
  for (const auto& r : rows) line(r);
  out += std::to_string(rows.size()) + (rows.size() == 1 ? " conflict\n" : " conflicts\n");
  return out;
}

}  // namespace snapfs::cli
