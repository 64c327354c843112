#include "peer.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace snapfs::test {

namespace {

enum Op : std::int32_t { kOpen, kPwrite, kWrite, kPread, kSize, kClose };

// One request, then `len` bytes of data; one reply, then `len` bytes.
struct Request {
  std::int32_t op;
  std::int32_t fd;
  std::int64_t off;
  std::int32_t flags;
  std::uint32_t len;
};
struct Reply {
  std::int64_t rc;
  std::uint32_t len;
};

constexpr std::size_t kMax = 1 << 20;

bool read_exact(int fd, void* buf, std::size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// MSG_NOSIGNAL: a peer that is gone is an error of the call ("peer:
// gone"), not a SIGPIPE that kills the test binary.
bool write_exact(int fd, const void* buf, std::size_t n) {
  const auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// The peer's loop. No allocation after the fork (another thread of the
// test may have held the allocator's lock): static buffers and syscalls.
[[noreturn]] void serve(int sock) {
  static char data[kMax + 1];
  static char back[kMax];
  for (;;) {
    Request q{};
    if (!read_exact(sock, &q, sizeof q) || q.len > kMax || !read_exact(sock, data, q.len))
      _exit(0);
    Reply a{};
    switch (q.op) {
      case kOpen:
        data[q.len] = '\0';
        a.rc = ::open(data, q.flags, static_cast<mode_t>(q.off));
        break;
      case kPwrite:
        a.rc = ::pwrite(q.fd, data, q.len, q.off);
        break;
      case kWrite:
        a.rc = ::write(q.fd, data, q.len);
        break;
      case kPread: {
        std::size_t got = 0;
        for (;;) {
          const ssize_t r = ::pread(q.fd, back + got, kMax - got, static_cast<off_t>(got));
          if (r <= 0) {
            a.rc = r < 0 ? -1 : 0;
            break;
          }
          got += static_cast<std::size_t>(r);
          if (got == kMax) break;
        }
        a.len = static_cast<std::uint32_t>(got);
        break;
      }
      case kSize: {
        struct stat st {};
        a.rc = ::fstat(q.fd, &st) == 0 ? st.st_size : -1;
        break;
      }
      case kClose:
        a.rc = ::close(q.fd);
        break;
      default:
        _exit(3);
    }
    if (a.rc < 0) a.rc = -errno;
    if (!write_exact(sock, &a, sizeof a) || !write_exact(sock, back, a.len)) _exit(0);
  }
}

}  // namespace

Peer::Peer() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw std::runtime_error("peer: socketpair");
  pid_ = ::fork();
  if (pid_ == 0) {
    // Only its socket: a copy of one of the test's descriptions would keep
    // it alive (its RELEASE waits for the peer).
    const unsigned s = static_cast<unsigned>(sv[1]);
    if (s > 3) ::close_range(3, s - 1, 0);
    ::close_range(s + 1, ~0U, 0);
    serve(sv[1]);
  }
  ::close(sv[1]);
  if (pid_ < 0) {
    ::close(sv[0]);
    throw std::runtime_error("peer: fork");
  }
  sock_ = sv[0];
}

Peer::~Peer() {
  // EOF ends the loop; the peer's descriptors close with it (an exit:
  // FLUSH of each, as any process's).
  ::close(sock_);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

long Peer::call(int op, int fd, long long off, int flags, std::string_view data,
                std::string* out) {
  if (data.size() > kMax) throw std::runtime_error("peer: request too large");
  const Request q{op, fd, off, flags, static_cast<std::uint32_t>(data.size())};
  Reply a{};
  if (!write_exact(sock_, &q, sizeof q) || !write_exact(sock_, data.data(), data.size()) ||
      !read_exact(sock_, &a, sizeof a))
    throw std::runtime_error("peer: gone");
  std::string got(a.len, '\0');
  if (!read_exact(sock_, got.data(), got.size())) throw std::runtime_error("peer: gone");
  if (out) *out = std::move(got);
  return static_cast<long>(a.rc);
}

int Peer::open(const std::filesystem::path& path, int flags, mode_t mode) {
  return static_cast<int>(call(kOpen, -1, mode, flags, path.string(), nullptr));
}

bool Peer::pwrite(int fd, std::string_view data, off_t off) {
  return call(kPwrite, fd, off, 0, data, nullptr) == static_cast<long>(data.size());
}

bool Peer::write(int fd, std::string_view data) {
  return call(kWrite, fd, 0, 0, data, nullptr) == static_cast<long>(data.size());
}

std::string Peer::pread_all(int fd) {
  std::string out;
  if (call(kPread, fd, 0, 0, {}, &out) < 0) throw std::runtime_error("peer: pread failed");
  return out;
}

off_t Peer::size(int fd) { return static_cast<off_t>(call(kSize, fd, 0, 0, {}, nullptr)); }

int Peer::close(int fd) { return static_cast<int>(call(kClose, fd, 0, 0, {}, nullptr)); }

}  // namespace snapfs::test
