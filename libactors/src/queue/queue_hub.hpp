#pragma once

// The queue hub as a whole: its wire protocol (hub_protocol.hpp), the
// server each process that owns queues runs (hub_server.hpp) and the
// per-thread client of another process's hub (hub_client.hpp).

#include "queue/hub_client.hpp"
#include "queue/hub_protocol.hpp"
#include "queue/hub_server.hpp"
