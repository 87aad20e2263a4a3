/*
 * harness: run several commands interleaved and report medians.
 *
 *   harness [-n RUNS] [-w WARMUP] [-o RAW.tsv] [-i] [-F] [-e] [-q]
 *           -- NAME ARGV... ::: NAME ARGV... ::: ...
 *
 * Every round runs each command once (A B C D), in an order rotated by one
 * each round (A B C D, B C D A, C D A B, ...) so that neither drift nor the
 * position after a particular other command favours anyone. Each run is timed
 * with CLOCK_MONOTONIC around posix_spawn + wait4 (wall time) and wait4's
 * rusage gives the CPU time of the child and its reaped descendants.
 *
 *   -i   the command prints a number on stdout (e.g. ns per call measured inside
 *        the process): record its median as "inner" too.
 *   -t   the command's payload is benches/c/stamp (prints CLOCK_MONOTONIC in us):
 *        "inner" becomes the time from spawn to the payload's main(), and
 *        "after" the time from the payload's main() to the end of the wait.
 *   -F   fixed order (A B C D A B C D ...) instead of rotating.
 *   -e   keep the children's stderr (default: /dev/null).
 *
 * stdout of the children goes to /dev/null (or to a pipe with -i); stdin is
 * /dev/null. A run that exits non-zero is counted as a failure; warm-up
 * failures abort (run the command by hand to see why).
 *
 * Output: a table, and one machine-readable line per command:
 *   SUMMARY name runs fails median_us p10_us p90_us mean_us min_us cpu_median_us inner_median after_median
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct cmd {
    const char *name;
    char **argv;
    double *wall, *cpu, *inner, *after;
    int fails;
};

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int keep_stderr, want_inner, want_stamp;

/* Run once; returns 0 on success. */
static int run1(struct cmd *c, double *wall, double *cpu, double *inner, double *after) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int pfd[2] = {-1, -1};
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (want_inner) {
        if (pipe2(pfd, O_CLOEXEC) < 0) { perror("pipe2"); exit(2); }
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    } else {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    }
    if (!keep_stderr)
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    double t0 = now_us();
    int rc = posix_spawn(&pid, c->argv[0], &fa, NULL, c->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "harness: spawning %s: %s\n", c->argv[0], strerror(rc));
        exit(2);
    }
    char buf[256];
    size_t got = 0;
    if (want_inner) {
        close(pfd[1]);
        ssize_t r;
        while ((r = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0) got += r;
        close(pfd[0]);
    }
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR) {}
    double t1 = now_us();
    *wall = t1 - t0;
    *cpu = ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
    *inner = 0;
    *after = 0;
    if (want_inner) {
        buf[got] = 0;
        *inner = strtod(buf, NULL);
        if (want_stamp) {
            *after = t1 - *inner;
            *inner = *inner - t0;
        }
    }
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile of a sorted array (linear interpolation). */
static double q(const double *s, int n, double p) {
    if (n == 0) return 0;
    double pos = p * (n - 1);
    int i = (int)pos;
    double f = pos - i;
    return i + 1 < n ? s[i] * (1 - f) + s[i + 1] * f : s[i];
}

static double median_of(const double *v, int n) {
    double *s = malloc(sizeof(double) * (n ? n : 1));
    memcpy(s, v, sizeof(double) * n);
    qsort(s, n, sizeof(double), cmpd);
    double m = q(s, n, 0.5);
    free(s);
    return m;
}

int main(int argc, char **argv) {
    int runs = 300, warm = 20, fixed = 0, quiet = 0;
    const char *raw = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "+n:w:o:itFeq")) != -1) {
        switch (opt) {
        case 'n': runs = atoi(optarg); break;
        case 'w': warm = atoi(optarg); break;
        case 'o': raw = optarg; break;
        case 'i': want_inner = 1; break;
        case 't': want_inner = want_stamp = 1; break;
        case 'F': fixed = 1; break;
        case 'e': keep_stderr = 1; break;
        case 'q': quiet = 1; break;
        default:
            fprintf(stderr, "usage: harness [-n RUNS] [-w WARMUP] [-o RAW] [-i] [-F] [-e] [-q] -- NAME ARGV... ::: NAME ARGV...\n");
            return 2;
        }
    }
    struct cmd cmds[32];
    int k = 0;
    for (int i = optind; i < argc && k < 32;) {
        if (i + 1 >= argc) { fprintf(stderr, "harness: command without argv\n"); return 2; }
        cmds[k].name = argv[i];
        cmds[k].argv = &argv[i + 1];
        int j = i + 1;
        while (j < argc && strcmp(argv[j], ":::") != 0) j++;
        if (j < argc) argv[j] = NULL; /* terminates this argv */
        cmds[k].wall = calloc(runs, sizeof(double));
        cmds[k].cpu = calloc(runs, sizeof(double));
        cmds[k].inner = calloc(runs, sizeof(double));
        cmds[k].after = calloc(runs, sizeof(double));
        cmds[k].fails = 0;
        k++;
        i = j + 1;
    }
    if (k == 0) { fprintf(stderr, "harness: no commands\n"); return 2; }

    double w, c, in, af;
    for (int r = 0; r < warm; r++)
        for (int i = 0; i < k; i++)
            if (run1(&cmds[i], &w, &c, &in, &af)) {
                fprintf(stderr, "harness: warm-up run of %s failed; run it by hand:\n ", cmds[i].name);
                for (char **a = cmds[i].argv; *a; a++) fprintf(stderr, " %s", *a);
                fprintf(stderr, "\n");
                return 1;
            }
    FILE *rf = raw ? fopen(raw, "w") : NULL;
    if (rf) fprintf(rf, "round\tname\twall_us\tcpu_us\tinner\tfailed\tafter_us\n");
    double t_start = now_us();
    for (int r = 0; r < runs; r++) {
        for (int s = 0; s < k; s++) {
            int i = fixed ? s : (s + r) % k;
            int f = run1(&cmds[i], &w, &c, &in, &af);
            cmds[i].fails += f;
            cmds[i].wall[r] = w;
            cmds[i].cpu[r] = c;
            cmds[i].inner[r] = in;
            cmds[i].after[r] = af;
            if (rf) fprintf(rf, "%d\t%s\t%.1f\t%.1f\t%.6g\t%d\t%.1f\n", r, cmds[i].name, w, c, in, f, af);
        }
        if (!quiet && isatty(2) && (r % 10 == 9 || r == runs - 1))
            fprintf(stderr, "\r  round %d/%d", r + 1, runs);
    }
    if (!quiet && isatty(2)) fprintf(stderr, "\n");
    if (rf) fclose(rf);

    if (!quiet) {
        printf("  %d rounds x %d commands, %d warm-up rounds, %s order, %.1f s\n", runs, k, warm,
               fixed ? "fixed" : "rotating", (now_us() - t_start) / 1e6);
        printf("  %-28s %10s %10s %10s %10s %10s%s%s\n", "command", "median ms", "p10", "p90", "mean", "cpu ms",
               want_stamp ? " to main" : want_inner ? "    inner" : "", want_stamp ? "    after" : "");
    }
    char summary[32][512];
    for (int i = 0; i < k; i++) {
        struct cmd *m = &cmds[i];
        double *s = malloc(sizeof(double) * runs);
        memcpy(s, m->wall, sizeof(double) * runs);
        qsort(s, runs, sizeof(double), cmpd);
        double sum = 0;
        for (int r = 0; r < runs; r++) sum += s[r];
        double med = q(s, runs, .5), p10 = q(s, runs, .1), p90 = q(s, runs, .9), mean = sum / runs, mn = s[0];
        double cpu = median_of(m->cpu, runs), inner = median_of(m->inner, runs), after = median_of(m->after, runs);
        if (!quiet) {
            printf("  %-28s %10.3f %10.3f %10.3f %10.3f %10.3f", m->name, med / 1e3, p10 / 1e3, p90 / 1e3,
                   mean / 1e3, cpu / 1e3);
            if (want_inner) printf(" %8.4g", inner);
            if (want_stamp) printf(" %8.4g", after);
            if (m->fails) printf("  (%d FAILED)", m->fails);
            printf("\n");
        }
        snprintf(summary[i], sizeof summary[i], "SUMMARY %s %d %d %.1f %.1f %.1f %.1f %.1f %.1f %.6g %.1f\n",
                 m->name, runs, m->fails, med, p10, p90, mean, mn, cpu, inner, after);
        free(s);
    }
    for (int i = 0; i < k; i++) fputs(summary[i], stdout);
    return 0;
}
