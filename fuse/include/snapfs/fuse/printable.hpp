// Names shown to people: the one escaper for everything the daemon logs and
// the snapfs command prints (mount/report.cpp, mount/main.cpp, the log
// formatter below). A file name is whatever bytes a user chose; printed raw,
// an ESC or a CSI (C1 U+009B, or the raw byte 0x9B that some terminals take
// as CSI) drives the terminal of whoever reads the output or the log, and a
// newline forges a log line. Header-only, so that fuse/ and mount/ share it
// without either owning a .cpp for it; core/ knows nothing of it.
//
//   C0 controls, DEL           \x00 .. \x1f, \x7f
//   backslash                  \\   (so an escape is never ambiguous)
//   C1 controls U+0080-U+009F  \u0080 .. \u009f
//   bidi controls, U+2028/9    \u202e ... (they reorder or break lines)
//   invalid UTF-8              \xNN per byte: stray continuation bytes (raw
//                              0x80-0x9F included), truncated sequences,
//                              overlong forms, surrogates, > U+10FFFF,
//                              0xC0, 0xC1, 0xF5-0xFF
//   everything else            as is (valid, printable UTF-8)
#pragma once

#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace snapfs::fuse {

namespace printable_detail {

inline constexpr char kHex[] = "0123456789abcdef";

inline void hex_byte(std::string& out, unsigned char b) {
  out += "\\x";
  out += kHex[b >> 4];
  out += kHex[b & 0xF];
}

inline void u_escape(std::string& out, std::uint32_t cp) {
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(cp >> shift) & 0xF];
}

// The length (2-4) and code point of the well-formed UTF-8 sequence at
// s[i] (RFC 3629: shortest form, no surrogates, at most U+10FFFF), or 0.
inline std::size_t decode(std::string_view s, std::size_t i, std::uint32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t n = 0;
  std::uint32_t min = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2, min = 0x80, cp = b0 & 0x1Fu;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3, min = 0x800, cp = b0 & 0x0Fu;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4, min = 0x10000, cp = b0 & 0x07u;
  } else {
    return 0;  // ASCII is handled by the caller; 0x80-0xC1 and 0xF5-0xFF never start one
  }
  if (s.size() - i < n) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

// Valid code points that are not shown as themselves: C1 controls, the
// bidirectional overrides and isolates, and the Unicode line and paragraph
// separators.
inline bool hidden(std::uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F || cp == 0x061C ||
         cp == 0x2028 || cp == 0x2029;
}

// Walks `s`: each ASCII byte goes to `ascii(out, byte)`, each byte that is
// not part of valid UTF-8 to `invalid(out, byte)`; a hidden code point
// becomes \uXXXX and any other UTF-8 sequence is copied. May throw
// std::bad_alloc.
template <typename Ascii, typename Invalid>
std::string escape_walk(std::string_view s, Ascii ascii, Invalid invalid) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      ascii(out, b);
      ++i;
      continue;
    }
    std::uint32_t cp = 0;
    const std::size_t n = decode(s, i, cp);
    if (n == 0) {
      invalid(out, b);  // one invalid byte; resynchronise at the next
      ++i;
    } else if (hidden(cp)) {
      u_escape(out, cp);
      i += n;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace printable_detail

// `s` with everything listed above escaped. May throw std::bad_alloc.
inline std::string printable(std::string_view s) {
  namespace d = printable_detail;
  return d::escape_walk(
      s,
      [](std::string& out, unsigned char b) {
        if (b < 0x20 || b == 0x7F) {
          d::hex_byte(out, b);
        } else if (b == '\\') {
          out += "\\\\";
        } else {
          out += static_cast<char>(b);
        }
      },
      [](std::string& out, unsigned char b) { d::hex_byte(out, b); });
}

// The JSON counterpart, for text that is (or goes inside) a JSON document:
// C0 controls but tab, newline and carriage return, DEL, C1 and the hidden
// code points above become \u00XX / \uXXXX (valid JSON, lossless), and each
// byte that is not UTF-8 becomes a lone low surrogate \udcNN (Python's
// "surrogateescape"; the snapfs command turns it back into the byte,
// mount/report.cpp). Quotes and backslashes are left alone: callers that
// build a string literal escape those first (json_string below). The result is printable. May throw std::bad_alloc.
inline std::string json_printable(std::string_view s) {
  namespace d = printable_detail;
  return d::escape_walk(
      s,
      [](std::string& out, unsigned char b) {
        if ((b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7F)
          d::u_escape(out, b);
        else
          out += static_cast<char>(b);
      },
      [](std::string& out, unsigned char b) { d::u_escape(out, 0xDC00u | b); });
}

// `s` as a JSON string literal: quotes and backslashes escaped, tab,
// newline and carriage return as \u escapes, and the rest as
// json_printable() does, so the JSON never carries a raw control to a
// terminal and a byte that is not UTF-8 comes back as itself. May throw
// std::bad_alloc.
inline std::string json_string(std::string_view s) {
  std::string quoted;
  quoted.reserve(s.size() + 2);
  for (const char c : s) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  std::string out = "\"";
  for (const char c : json_printable(quoted)) {
    if (c == '\t')
      out += "\\u0009";
    else if (c == '\n')
      out += "\\u000a";
    else if (c == '\r')
      out += "\\u000d";
    else
      out += c;
  }
  out += '"';
  return out;
}

// An spdlog formatter that escapes each message (printable()) before the
// pattern lays it out: one place for every name the daemon and the command
// log, whichever sink (stderr, syslog) writes it. Install it on a sink with
// sink->set_formatter(std::make_unique<EscapingFormatter>(pattern)).
class EscapingFormatter final : public spdlog::formatter {
 public:
  explicit EscapingFormatter(std::string pattern)
      : pattern_(std::move(pattern)), inner_(std::make_unique<spdlog::pattern_formatter>(pattern_)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string text = printable(std::string_view(msg.payload.data(), msg.payload.size()));
    spdlog::details::log_msg copy = msg;
    copy.payload = spdlog::string_view_t(text.data(), text.size());
    inner_->format(copy, dest);
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<EscapingFormatter>(pattern_);
  }

 private:
  std::string pattern_;
  std::unique_ptr<spdlog::formatter> inner_;
};

}  // namespace snapfs::fuse
