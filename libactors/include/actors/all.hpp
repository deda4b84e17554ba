#pragma once

/// Everything of libactors: Python's `multiprocessing` model in C++, as actors.

#include "actors/error.hpp"
#include "actors/lock.hpp"
#include "actors/pipe.hpp"
#include "actors/pool.hpp"
#include "actors/process.hpp"
#include "actors/progress.hpp"
#include "actors/queue.hpp"
#include "actors/runtime.hpp"
#include "actors/sync.hpp"
#include "actors/thread_pool.hpp"
