/* SPDX-License-Identifier: MIT */
/*
 * libswarm driver for the peer harness in ../shared/peers: `chan_peer P C CAP N` runs the
 * harness workload once over swarm_chan (blocking send, single-element recv) and prints the one
 * RESULT line the harness parses. Add it to a side-by-side run with
 *   PEERS_OUT=/tmp/peers ../shared/peers/run_all.sh --bin libswarm=build/benchmarks/chan_peer
 */
#include <stdio.h>

#include "chan_workload.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s P C CAP N\n", argv[0]);
        return 2;
    }
    int P = atoi(argv[1]), C = atoi(argv[2]);
    unsigned cap = (unsigned)strtoul(argv[3], NULL, 10);
    uint64_t n = strtoull(argv[4], NULL, 10);
    if (P < 1 || C < 1 || cap < 1 || n < 1) {
        fprintf(stderr, "chan_peer: bad arguments\n");
        return 2;
    }
    wl_result r = wl_measure(&libswarm_ops, P, C, cap, n, 1);
    printf("RESULT peer=libswarm P=%d C=%d cap=%u n=%llu wall_s=%.6f cpu_s=%.6f "
           "msgs_per_s=%.0f cpu_ns_per_msg=%.2f sum=%llu expect=%llu count=%llu status=%s\n",
           P, C, cap, (unsigned long long)n, r.wall_s, r.cpu_s, (double)r.count / r.wall_s,
           r.cpu_s * 1e9 / (double)(r.count ? r.count : 1), (unsigned long long)r.sum,
           (unsigned long long)(n * (n + 1) / 2), (unsigned long long)r.count,
           r.ok ? "OK" : "FAIL");
    return r.ok ? 0 : 1;
}
