// The snapfs core engine: snapshot-isolated mmap with atomic commits.
// See docs/core.md for the API and docs/commit-protocol.md for the commit.
#pragma once

#include <snapfs/core/mapping.hpp>
#include <snapfs/core/publish.hpp>
#include <snapfs/core/result.hpp>
#include <snapfs/core/snapshot.hpp>
#include <snapfs/core/tmpfile.hpp>
#include <snapfs/core/unique_fd.hpp>
