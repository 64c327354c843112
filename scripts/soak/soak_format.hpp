// Self-checking file versions for the reliability soak (scripts/soak/) and
// tests/mount/test_reliability.cpp.
//
// A version is a fixed 80-byte header line followed by `n` body bytes:
//   "SOAK1 f=FFFF v=VVVVVVVVVVVVVVVVVVVV w=WW n=NNNNNNNNNN s=SSSSSSSSSSSSSSSS\n"
// f: file number, v: version number, w: writer, n: body length, s: FNV-1a 64
// of the body. The body is a pseudo-random function of (f, v, w). A file is
// "whole" iff its header parses, its length is exactly 80 + n and the body's
// checksum matches: a mix of two versions, a short file, a zero-filled tail or
// an empty file is never whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace soak {

inline constexpr std::size_t kHeader = 80;

inline std::uint64_t fnv1a(const char* p, std::size_t n) {
  std::uint64_t h = 1469598103934665603ULL;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 1099511628211ULL;
  }
  return h;
}

inline std::string make_version(unsigned f, unsigned long long v, unsigned w, std::size_t n) {
  std::string body(n, '\0');
  std::uint64_t x = (static_cast<std::uint64_t>(f) << 48) ^ (v * 0x9E3779B97F4A7C15ULL) ^ (w + 1);
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    body[i] = static_cast<char>('a' + (x % 26));
  }
  char head[kHeader + 1];
  std::snprintf(head, sizeof head, "SOAK1 f=%04u v=%020llu w=%02u n=%010zu s=%016llx",
                f % 10000, v, w % 100, n,
                static_cast<unsigned long long>(fnv1a(body.data(), body.size())));
  std::string out(head);
  out.resize(kHeader - 1, ' ');
  out += '\n';
  return out + body;
}

struct Parsed {
  bool whole = false;
  unsigned f = 0, w = 0;
  unsigned long long v = 0;
  std::size_t n = 0;
  std::string why;  // when not whole
};

inline Parsed parse(const std::string& data) {
  Parsed p;
  if (data.empty()) {
    p.why = "empty";
    return p;
  }
  if (data.size() < kHeader || data[kHeader - 1] != '\n') {
    p.why = "short or bad header (size " + std::to_string(data.size()) + ")";
    return p;
  }
  unsigned long long s = 0;
  if (std::sscanf(data.c_str(), "SOAK1 f=%u v=%llu w=%u n=%zu s=%llx", &p.f, &p.v, &p.w, &p.n,
                  &s) != 5) {
    p.why = "header does not parse";
    return p;
  }
  if (data.size() != kHeader + p.n) {
    p.why = "length " + std::to_string(data.size()) + " != " + std::to_string(kHeader + p.n);
    return p;
  }
  if (fnv1a(data.data() + kHeader, p.n) != s) {
    p.why = "body checksum mismatch";
    return p;
  }
  p.whole = true;
  return p;
}

}  // namespace soak
