#pragma once

// UMBRELLA-INTRO

#include "queue/hub_client.hpp"
#include "queue/hub_protocol.hpp"
#include "queue/hub_server.hpp"
