# A real build through the view: CMake configures and builds snapfs's core
# library (copied from this project's sources) and a small program linked
# against it, runs the program, then rebuilds after a change and after
# `touch` (make's mtime comparisons through the view).
#
#   sh build.sh DIR SRC
#
# SRC is the project's source tree. CMake writes DIR's absolute path into
# many of the files it makes; the test compares them with that path replaced
# (Release: no debug information, so no paths inside the objects).
. "$(dirname "$0")/lib.sh"
SRC=$1
run 'mkdir -p proj && cp -r "$SRC/core/include" "$SRC/core/src" "$SRC/core/sys" proj/ && find proj -type f | sort'
run "cat > proj/CMakeLists.txt <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(core_subset CXX)
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
add_library(core STATIC src/unique_fd.cpp src/clone.cpp src/mapping.cpp
            src/publish.cpp src/snapshot.cpp sys/sys.cpp)
target_include_directories(core PUBLIC include PRIVATE .)
add_executable(hello hello.cpp)
target_link_libraries(hello PRIVATE core)
CMAKE
cat > proj/hello.cpp <<'CPP'
#include <snapfs/core/unique_fd.hpp>
#include <fcntl.h>
#include <cstdio>
int main() {
  snapfs::core::UniqueFd fd(::open(\"CMakeCache.txt\", O_RDONLY | O_CLOEXEC));
  std::printf(\"hello from the view: %s\\n\", fd ? \"cache found\" : \"no cache\");
  return fd ? 0 : 1;
}
CPP"
# The logs are kept in the tree, without what differs from run to run
# (timings; the order in which two parallel jobs finish).
run 'cmake -S proj -B build -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Release > raw.log 2>&1; rc=$?
     sed -E "s/ \([0-9.]+s\)$//" raw.log > cmake.log && rm raw.log && cat cmake.log | grep -v "^--"; exit $rc'
run 'cmake --build build -j2 > raw.log 2>&1; rc=$?; sed -E "s/^\[ *[0-9]+%\] //" raw.log | sort > build1.log && rm raw.log; exit $rc'
run 'cd build && ./hello'
run 'cmake --build build | grep -v "^\[.*Built target" || true'            # nothing to rebuild
run 'echo "// touched" >> proj/src/unique_fd.cpp && cmake --build build 2>&1 | grep -c "Building CXX"'
run 'touch proj/hello.cpp && cmake --build build 2>&1 | grep "Building CXX"'
run 'cd build && ./hello && ar t libcore.a | sort'
finish
