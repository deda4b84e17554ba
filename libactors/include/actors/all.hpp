#pragma once

/// @file
/// Everything of libactors: Python's `multiprocessing` model in C++, as actors.

/// @namespace actors
/// Python's `multiprocessing` model in C++17: processes, pools, queues,
/// pipes, locks and progress bars, each a handle to an actor; and the
/// program's own actors in OS processes of their own, under supervisors
/// (actor_process.hpp, supervisor.hpp). Every program
/// that uses it calls `actors::init` first in `main`; every failure is an
/// `actors::error` carrying an `actors::errc`.

#include "actors/actor_process.hpp"
#include "actors/ask.hpp"
#include "actors/error.hpp"
#include "actors/listener.hpp"
#include "actors/lock.hpp"
#include "actors/mailbox.hpp"
#include "actors/manager.hpp"
#include "actors/pipe.hpp"
#include "actors/pool.hpp"
#include "actors/process.hpp"
#include "actors/progress.hpp"
#include "actors/queue.hpp"
#include "actors/runtime.hpp"
#include "actors/shared_memory.hpp"
#include "actors/supervisor.hpp"
#include "actors/sync.hpp"
#include "actors/thread_pool.hpp"
