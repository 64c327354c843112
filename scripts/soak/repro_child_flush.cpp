// Reproducer for the finding "a child's close publishes a half-written file"
// (docs/reliability.md, finding 1). Run by scripts/soak/repro_child_flush.sh.
//   repro_child_flush M B VARIANT   (0: plain write, 1: ftruncate first, 2: O_TRUNC)
// Opens M/f, writes the first half of a new content, runs a child
// (system("true"): fork, and exec closes the inherited O_CLOEXEC copy, which
// sends a FLUSH from another process), shows B/f, writes the second half, closes.
#include <fcntl.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <fstream>
#include <sstream>
int main(int argc, char** argv) {
  std::string m = argv[1], b = argv[2]; int variant = atoi(argv[3]);
  int fd = open((m + "/f").c_str(), O_RDWR | O_CLOEXEC | (variant == 2 ? O_TRUNC : 0));
  if (variant == 1) ftruncate(fd, 0);
  write(fd, "FIRST-HALF;", 11);
  system("true");   // a child: fork + exec closes its inherited copy
  std::ifstream in(b + "/f"); std::stringstream ss; ss << in.rdbuf();
  printf("variant %d: B/f while the writer is mid-write: '%s'\n", variant, ss.str().c_str());
  write(fd, "SECOND-HALF", 11);
  int r = close(fd);
  std::ifstream in2(b + "/f"); std::stringstream s2; s2 << in2.rdbuf();
  printf("variant %d: close=%d, B/f after close: '%s'\n", variant, r, s2.str().c_str());
}
