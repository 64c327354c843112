// The one place that includes libfuse's low-level header, with the API
// version this daemon is written against (Debian 12 ships 3.14).
#pragma once

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 314
#endif
#include <fuse_lowlevel.h>
