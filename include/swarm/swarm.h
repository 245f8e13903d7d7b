/* SPDX-License-Identifier: MIT */
/* libswarm umbrella header: the version macros and every module's public header. */
#ifndef SWARM_SWARM_H
#define SWARM_SWARM_H

#include "swarm/version.h"
#include "swarm/common.h"
#include "swarm/chan.h"
#include "swarm/engine.h"
#include "swarm/policy.h"
#include "swarm/reconcile.h"
#include "swarm/pool.h"
#include "swarm/metrics.h"
#include "swarm/sim.h"

#endif /* SWARM_SWARM_H */
