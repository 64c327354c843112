// Peer: a second process that holds descriptors for a test.
//
// A process's own opens of a file it writes share one version
// (docs/semantics.md, "A process's own opens"), so a test that needs two
// independent writers or readers of one file needs two processes. A Peer
// is a child that opens, reads, writes and closes files when asked, so the
// test can interleave its steps with its own, in a known order, without
// threads. Forked at construction from the calling thread (as Child:
// nothing else should be running); it keeps none of the test's
// descriptors, but closing its copies is a close of each (FLUSH): make it
// before opening files. Ended by the destructor.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

namespace snapfs::test {

class Peer {
public:
  Peer();
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
  ~Peer();

  // As the syscalls, in the peer: a descriptor of the peer's (>= 0), or
  // -errno. The data of one call is at most 1 MiB.
  int open(const std::filesystem::path& path, int flags, mode_t mode = 0644);
  bool pwrite(int fd, std::string_view data, off_t off);
  bool write(int fd, std::string_view data);
  std::string pread_all(int fd);  // the whole file from offset 0
  off_t size(int fd);             // fstat's st_size, or -errno
  int close(int fd);              // 0 or -errno
  pid_t pid() const noexcept { return pid_; }

private:
  long call(int op, int fd, long long off, int flags, std::string_view data, std::string* out);

  pid_t pid_ = -1;
  int sock_ = -1;  // a stream socket to the peer (requests and replies)
};

}  // namespace snapfs::test
