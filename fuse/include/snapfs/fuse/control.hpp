// The control socket of a daemon (docs/design-run.md): how `snapfs run`
// asks the daemon serving M for a run. One SOCK_SEQPACKET datagram per
// message, at most kControlMessageMax bytes: fields joined by NUL.
//
//   begin <cwd> <argv0> [argv1 ...]   -> ok <run id>
//   attach  (one /dev/fuse descriptor in SCM_RIGHTS, mounted at M)  -> ok
//   end <status>                      -> ok
//   list                              -> ok <JSON array of runs>
//   any failure                       -> error <errno> <message>
//
// Only root and the daemon's own user may talk to it (SO_PEERCRED).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace snapfs::fuse::control {

inline constexpr std::size_t kMessageMax = 65536;

inline std::string join(const std::vector<std::string>& fields) {
  std::string out;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) out += '\0';
    out += fields[i];
  }
  return out;
}

inline std::vector<std::string> split(std::string_view msg) {
  std::vector<std::string> out;
  if (msg.empty()) return out;
  std::size_t at = 0;
  for (;;) {
    const auto nul = msg.find('\0', at);
    out.emplace_back(msg.substr(at, nul == std::string_view::npos ? msg.npos : nul - at));
    if (nul == std::string_view::npos) break;
    at = nul + 1;
  }
  return out;
}

}  // namespace snapfs::fuse::control
