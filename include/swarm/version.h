/* SPDX-License-Identifier: MIT */
/*
 * libswarm version: the single source of truth. meson reads these three macros back at configure
 * time for the library version, the soname (major) and the pkg-config file, and fails if
 * project() disagrees.
 */
#ifndef SWARM_VERSION_H
#define SWARM_VERSION_H

#define SWARM_VERSION_MAJOR 0
#define SWARM_VERSION_MINOR 3
#define SWARM_VERSION_PATCH 1

/** Packed 0xMMmmpp form of the version this header describes; compare with swarm_version(). */
#define SWARM_VERSION_HEX                                                                          \
    ((SWARM_VERSION_MAJOR << 16) | (SWARM_VERSION_MINOR << 8) | SWARM_VERSION_PATCH)

#endif /* SWARM_VERSION_H */
