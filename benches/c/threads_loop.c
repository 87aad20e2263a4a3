/* threads_loop [N]: N x (pthread_create + pthread_join) of an empty thread, one
 * after another (default 2,000); prints wall ns per thread, then CPU ns per thread.
 * glibc creates threads with clone3 and falls back to clone on ENOSYS, so this
 * shows what a sandbox's answer to clone3 costs per thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void *nothing(void *arg) { return arg; }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000;
    struct timespec a, b, ca, cb;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
    for (long i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, nothing, NULL)) { perror("pthread_create"); return 1; }
        pthread_join(t, NULL);
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.1f %.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n,
           ((cb.tv_sec - ca.tv_sec) * 1e9 + (cb.tv_nsec - ca.tv_nsec)) / n);
    return 0;
}
