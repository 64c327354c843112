// The command line of snapfs and of its mount(8) helper.
#pragma once

#include "commands.hpp"

namespace snapfs::cli {

// How the program was called.
enum class Personality {
  command,       // snapfs SUBCOMMAND ... (also snapfs B M -o ..., as mount.fuse3 runs it)
  mount_helper,  // mount.snapfs / mount.fuse.snapfs, run by mount(8)
};

// mount.snapfs and mount.fuse.snapfs are helpers; anything else is the command.
Personality personality_of(const char* argv0);

// Parses and runs. Returns the exit code; throws Failure for errors that
// main() prints as one line (usage errors included).
int run(int argc, char** argv, Personality who, const LogControl& log);

}  // namespace snapfs::cli
