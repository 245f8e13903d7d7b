/* SPDX-License-Identifier: MIT */
/*
 * The replay main every fuzz harness shares when it is built without libFuzzer: replays the
 * files (or directories' files) given as arguments through LLVMFuzzerTestOneInput(), then a
 * deterministic xorshift sweep of @p sweeps inputs of @p min_len .. @p max_len bytes, and says
 * how many inputs ran. A harness ends with:
 *
 *   #ifndef SWARM_FUZZ_LIBFUZZER
 *   int main(int argc, char **argv) { return fuzz_replay_main(argc, argv, "name", ...); }
 *   #endif
 */
#ifndef SWARM_FUZZ_REPLAY_MAIN_H
#define SWARM_FUZZ_REPLAY_MAIN_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef SWARM_FUZZ_LIBFUZZER /* libFuzzer brings its own main */
static int fuzz_replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    return 0;
}

static int fuzz_replay_main(int argc, char **argv, const char *name, uint64_t seed, int sweeps,
                            size_t min_len, size_t max_len)
{
    int runs = 0;
    for (int i = 1; i < argc; i++) {
        DIR *dir = opendir(argv[i]);
        if (dir) {
            struct dirent *e;
            while ((e = readdir(dir)) != NULL) {
                if (e->d_name[0] == '.')
                    continue;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
                if (fuzz_replay_file(path) == 0)
                    runs++;
            }
            closedir(dir);
        } else if (fuzz_replay_file(argv[i]) == 0) {
            runs++;
        } else {
            fprintf(stderr, "cannot read %s\n", argv[i]);
            return 1;
        }
    }
    static uint8_t buf[4096];
    if (max_len > sizeof buf)
        max_len = sizeof buf;
    uint64_t x = seed;
    for (int it = 0; it < sweeps; it++) {
        size_t n = min_len + (size_t)(x % (max_len - min_len));
        for (size_t k = 0; k < n; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[k] = (uint8_t)x;
        }
        LLVMFuzzerTestOneInput(buf, n);
        runs++;
    }
    printf("%s: %d inputs replayed, no findings\n", name, runs);
    return 0;
}
#endif

#endif /* SWARM_FUZZ_REPLAY_MAIN_H */
