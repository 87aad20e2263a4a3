/* stamp: print CLOCK_MONOTONIC in microseconds and exit. Run as the payload
 * under `harness -t`, it splits a launch into "spawn to the payload's main()"
 * and "the payload's main() to the launcher's exit" (teardown). The clock is
 * not namespaced (no time namespace is involved), so launcher and payload agree. */
#include <stdio.h>
#include <time.h>

int main(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    printf("%.1f\n", t.tv_sec * 1e6 + t.tv_nsec / 1e3);
    return 0;
}
