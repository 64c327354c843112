// Local SOCK_SEQPACKET sockets, and descriptors passed over them (sys.hpp).
#include "sys.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace snapfs::core::sys {

namespace {

// `path` as a sockaddr_un; false if it does not fit sun_path.
bool to_addr(std::string_view path, sockaddr_un& a, socklen_t& len) noexcept {
  a = {};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path) return false;
  path.copy(a.sun_path, path.size());
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

Result<UniqueFd> seqpacket_socket() noexcept {
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd == -1) return Error::from_errno("socket");
  return UniqueFd(fd);
}

// "/proc/self/fd/<dirfd>/<name>": bind and connect resolve it as a path,
// and the magic link stands for the directory itself.
std::string via_dir(int dirfd, std::string_view name) {
  std::string p = proc_fd_path(dirfd).c_str();
  p += '/';
  p += name;
  return p;
}

}  // namespace

Result<UniqueFd> seqpacket_listen(int dirfd, const char* name, mode_t mode, int backlog) noexcept {
  try {
    auto s = seqpacket_socket();
    if (!s) return s;
    sockaddr_un a;
    socklen_t len = 0;
    if (!to_addr(via_dir(dirfd, name), a, len)) return Error::of(ENAMETOOLONG, "bind", name);
    if (::bind(s->get(), reinterpret_cast<const sockaddr*>(&a), len) == -1)
      return Error::from_errno("bind", name);
    // bind(2) applies the umask only; the mode is set before anyone may
    // connect (listen). A socket that cannot be made so leaves no name.
    if (::fchmodat(dirfd, name, mode, 0) == -1 || ::listen(s->get(), backlog) == -1) {
      auto e = Error::from_errno("listen", name);
      ::unlinkat(dirfd, name, 0);
      return e;
    }
    return s;
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "bind", name);
  }
}

Result<UniqueFd> seqpacket_connect(const std::string& path) noexcept {
  try {
    auto s = seqpacket_socket();
    if (!s) return s;
    sockaddr_un a;
    socklen_t len = 0;
    UniqueFd dir;
    if (!to_addr(path, a, len)) {
      const auto slash = path.rfind('/');
      if (slash == std::string::npos) return Error::of(ENAMETOOLONG, "connect", path);
      auto d = openat(AT_FDCWD, slash == 0 ? "/" : path.substr(0, slash).c_str(),
                      O_PATH | O_DIRECTORY);
      if (!d) return std::move(d).error();
      dir = std::move(*d);
      if (!to_addr(via_dir(dir.get(), std::string_view(path).substr(slash + 1)), a, len))
        return Error::of(ENAMETOOLONG, "connect", path);
    }
    if (retry([&] { return ::connect(s->get(), reinterpret_cast<const sockaddr*>(&a), len); }) ==
        -1)
      return Error::from_errno("connect", path);
    return s;
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "connect", path);
  }
}

Result<UniqueFd> accept(int listen_fd) noexcept {
  const int fd = retry([&] { return ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC); });
  if (fd == -1) return Error::from_errno("accept");
  return UniqueFd(fd);
}

Result<void> send_message(int sock, std::string_view data, int fd) noexcept {
  iovec iov{const_cast<char*>(data.data()), data.size()};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd != -1) {
    std::memset(control, 0, sizeof control);
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  // MSG_NOSIGNAL: a peer gone is EPIPE, not a SIGPIPE.
  const ssize_t n = retry([&] { return ::sendmsg(sock, &m, MSG_NOSIGNAL); });
  if (n == -1) return Error::from_errno("sendmsg");
  if (static_cast<std::size_t>(n) != data.size()) return Error::of(EMSGSIZE, "sendmsg");
  return {};
}

Result<Message> recv_message(int sock, std::size_t max) noexcept {
  try {
    Message out;
    out.data.resize(max);
    iovec iov{out.data.data(), max};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    const ssize_t n = retry([&] { return ::recvmsg(sock, &m, MSG_CMSG_CLOEXEC); });
    if (n == -1) return Error::from_errno("recvmsg");
    // Every descriptor that came is ours to close, whatever else went wrong.
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        if (!out.fd.valid()) out.fd = UniqueFd(fd);
        else ::close(fd);
      }
    }
    if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return Error::of(EMSGSIZE, "recvmsg");
    out.data.resize(static_cast<std::size_t>(n));
    out.eof = n == 0 && !out.fd.valid();
    return out;
  } catch (const std::bad_alloc&) {
    return Error::of(ENOMEM, "recvmsg");
  }
}

Result<PeerCred> peer_credentials(int sock) noexcept {
  ucred c{};
  socklen_t len = sizeof c;
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &c, &len) == -1)
    return Error::from_errno("getsockopt SO_PEERCRED");
  return PeerCred{c.pid, c.uid, c.gid};
}

Result<std::pair<UniqueFd, UniqueFd>> seqpacket_pair() noexcept {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == -1)
    return Error::from_errno("socketpair");
  return std::pair<UniqueFd, UniqueFd>(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

}  // namespace snapfs::core::sys
