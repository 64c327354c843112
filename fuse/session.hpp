// Serving one FUSE connection (session.cpp): M's, and each run's (run.hpp).
#pragma once

#include "daemon_state.hpp"

#include <memory>

namespace snapfs::fuse {

// The request handlers, one set for every connection.
const fuse_lowlevel_ops& lowlevel_ops() noexcept;
// A connection of daemon `d`, its table rooted at B (its own descriptor of
// B's root). nullptr (logged) if there is no descriptor for it.
std::unique_ptr<Conn> make_conn(Daemon& d);
// Once `se` has its descriptor and before its first request: kernel
// passthrough (the custom I/O layer) and the parked writers.
void start_serving(Conn& c, fuse_session* se);
// The multithreaded loop of `se`, until its connection ends or
// fuse_session_exit().
int loop(Conn& c, fuse_session* se);
// After the loop, before the session is destroyed: publishes the parked
// writers and frees every handle still open.
void end_serving(Conn& c) noexcept;

}  // namespace snapfs::fuse
