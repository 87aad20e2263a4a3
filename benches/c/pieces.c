/*
 * pieces: the kernel cost of each building block of a sandbox launch, measured
 * one at a time without a tracer (strace inflates every syscall by ~15-50 us
 * here, which hides what is cheap and what is not).
 *
 *   pieces [-r REPS] [-s SECCOMP.strace] [DIR]
 *
 * -s: the output of `strace -v -e trace=seccomp cordon run ...`: the filters
 * cordon installs are parsed back from strace's decoding and their
 * installation is timed exactly as cordon makes it.
 *
 * DIR (default: the current directory) is used for the path-resolution and bind
 * mount pieces. Per-call pieces loop many times in this process; per-process
 * pieces (clone, mounts, restrict, seccomp, capabilities) run in a fresh child
 * REPS times (default 200) and report the median. Output: one line per piece,
 *   PIECE <name> <median_us>  # <what>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_IS_SET 1
#endif

struct ll_ruleset_attr { uint64_t handled_access_fs, handled_access_net, scoped; };
struct ll_path_beneath { uint64_t allowed_access; int32_t parent_fd; } __attribute__((packed));
struct m_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };

static int reps = 200;
static const char *dir = ".";

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmpd);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void report(const char *name, double us, const char *what) {
    printf("PIECE %-26s %9.2f  # %s\n", name, us, what);
    fflush(stdout);
}

/* ---- per-call pieces, looped in this process ---- */

static double per_call(void (*f)(void), int n) {
    double v[7];
    for (int k = 0; k < 7; k++) {
        double t0 = now_us();
        for (int i = 0; i < n; i++) f();
        v[k] = (now_us() - t0) / n;
    }
    return median(v, 7);
}

static char buf[4096];
static void f_readlink(void) { (void)!readlink("/usr", buf, sizeof buf); }
static void f_stat(void) { struct stat st; stat(dir, &st); }
static void f_realpath(void) { free(realpath(dir, NULL)); }
static void f_open_close(void) { close(open(dir, O_PATH | O_CLOEXEC)); }
static void f_prctl(void) { prctl(PR_CAPBSET_READ, 0, 0, 0, 0); }
static void f_readdir_etc(void) {
    DIR *d = opendir("/etc");
    while (readdir(d)) {}
    closedir(d);
}
static uint64_t ll_all;
static void f_ll_create(void) {
    struct ll_ruleset_attr a = { .handled_access_fs = ll_all };
    close(syscall(__NR_landlock_create_ruleset, &a, sizeof a, 0));
}
static int ll_rs;
static void f_ll_rule(void) { /* what cordon does per path: open, fstat, add, close */
    struct ll_path_beneath pb = { .allowed_access = ll_all, .parent_fd = open(dir, O_PATH | O_CLOEXEC) };
    struct stat st;
    fstat(pb.parent_fd, &st);
    syscall(__NR_landlock_add_rule, ll_rs, 1, &pb, 0);
    close(pb.parent_fd);
}

/* ---- per-process pieces: run `body` in a fresh child REPS times ---- */

static int pipe_res[2];

/* The child writes its own measurement (us) to the pipe, or the parent times it. */
static double in_child(int clone_flags, int write_maps, double (*body)(void)) {
    double *v = calloc(reps, sizeof *v);
    for (int r = 0; r < reps; r++) {
        int go[2];
        if (pipe(go) || pipe(pipe_res)) { perror("pipe"); exit(1); }
        uid_t uid = geteuid();
        gid_t gid = getegid();
        pid_t pid = syscall(SYS_clone, clone_flags | SIGCHLD, 0, 0, 0, 0);
        if (pid < 0) { perror("clone"); exit(1); }
        if (pid == 0) {
            char c;
            close(go[1]);
            if (read(go[0], &c, 1) != 1) _exit(1);
            double us = body ? body() : 0;
            (void)!write(pipe_res[1], &us, sizeof us);
            _exit(0);
        }
        close(go[0]);
        if (write_maps) {
            char p[64], m[64];
            int fd;
            snprintf(p, sizeof p, "/proc/%d/setgroups", pid);
            if ((fd = open(p, O_WRONLY)) >= 0) { (void)!write(fd, "deny", 4); close(fd); }
            snprintf(p, sizeof p, "/proc/%d/uid_map", pid);
            snprintf(m, sizeof m, "%u %u 1", uid, uid);
            if ((fd = open(p, O_WRONLY)) >= 0) { (void)!write(fd, m, strlen(m)); close(fd); }
            snprintf(p, sizeof p, "/proc/%d/gid_map", pid);
            snprintf(m, sizeof m, "%u %u 1", gid, gid);
            if ((fd = open(p, O_WRONLY)) >= 0) { (void)!write(fd, m, strlen(m)); close(fd); }
        }
        (void)!write(go[1], "1", 1);
        close(go[1]);
        close(pipe_res[1]);
        double us = -1;
        (void)!read(pipe_res[0], &us, sizeof us);
        close(pipe_res[0]);
        int st;
        waitpid(pid, &st, 0);
        v[r] = us;
    }
    double m = median(v, reps);
    free(v);
    return m;
}

/* Parent-side timing of a whole clone + (maps) + exit + wait. */
static double clone_cost(int flags, int maps) {
    double *v = calloc(reps, sizeof *v);
    for (int r = 0; r < reps; r++) {
        double t0 = now_us();
        uid_t uid = geteuid();
        pid_t pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
        if (pid < 0) { perror("clone"); exit(1); }
        if (pid == 0) _exit(0);
        if (maps) {
            char p[64], m[64];
            int fd;
            snprintf(p, sizeof p, "/proc/%d/uid_map", pid);
            snprintf(m, sizeof m, "%u %u 1", uid, uid);
            if ((fd = open(p, O_WRONLY)) >= 0) { (void)!write(fd, m, strlen(m)); close(fd); }
        }
        int st;
        waitpid(pid, &st, 0);
        v[r] = now_us() - t0;
    }
    double m = median(v, reps);
    free(v);
    return m;
}

static double b_mount_private(void) {
    double t0 = now_us();
    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    return now_us() - t0;
}
static double b_setattr_root(void) {
    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    struct m_attr a = { .attr_set = 1 /* RDONLY */ };
    double t0 = now_us();
    syscall(__NR_mount_setattr, AT_FDCWD, "/", 0x8000 /* AT_RECURSIVE */, &a, sizeof a);
    return now_us() - t0;
}
static double b_bind(void) { /* one writable root: bind + mount_setattr, averaged over 8 */
    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    struct m_attr a = { .attr_clr = 1 };
    double t0 = now_us();
    for (int i = 0; i < 8; i++) {
        mount(dir, dir, NULL, MS_BIND | MS_REC, NULL);
        syscall(__NR_mount_setattr, AT_FDCWD, dir, 0, &a, sizeof a);
    }
    return (now_us() - t0) / 8;
}
static double b_proc(void) {
    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    double t0 = now_us();
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    return now_us() - t0;
}
static double b_mask_stage(void) { /* tmpfs stage + mkdir + create + umount */
    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    double t0 = now_us();
    mount("tmpfs", "/proc", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0700");
    mkdir("/proc/d", 0);
    close(open("/proc/f", O_CREAT | O_WRONLY | O_CLOEXEC, 0));
    umount2("/proc", MNT_DETACH);
    return now_us() - t0;
}

static int n_rules;
static double b_restrict(void) {
    struct ll_ruleset_attr a = { .handled_access_fs = ll_all };
    int rs = syscall(__NR_landlock_create_ruleset, &a, sizeof a, 0);
    for (int i = 0; i < n_rules; i++) {
        struct ll_path_beneath pb = { .allowed_access = ll_all, .parent_fd = open("/", O_PATH | O_CLOEXEC) };
        syscall(__NR_landlock_add_rule, rs, 1, &pb, 0);
        close(pb.parent_fd);
    }
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    double t0 = now_us();
    syscall(__NR_landlock_restrict_self, rs, 0);
    return now_us() - t0;
}

/* A filter of n instructions: load nr, (n-2) non-matching jumps, allow. */
static struct sock_filter *filter_of(int n) {
    struct sock_filter *f = calloc(n, sizeof *f);
    f[0] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0);
    for (int i = 1; i < n - 1; i++) f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 100000 + i, 0, 0);
    f[n - 1] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0x7fff0000U);
    return f;
}
static int seccomp_lens[8], n_filters;
static double b_seccomp(void) {
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    struct sock_fprog p[8];
    for (int i = 0; i < n_filters; i++) p[i] = (struct sock_fprog){ seccomp_lens[i], filter_of(seccomp_lens[i]) };
    double t0 = now_us();
    for (int i = 0; i < n_filters; i++) syscall(SYS_seccomp, 1, 0, &p[i]);
    return now_us() - t0;
}
static double b_caps(void) { /* the caps crate's drop_all_except, as syscalls */
    double t0 = now_us();
    for (int c = 0; c <= 40; c++) prctl(PR_CAPBSET_READ, c, 0, 0, 0);  /* read bounding */
    for (int c = 0; c <= 40; c++) prctl(PR_CAPBSET_DROP, c, 0, 0, 0);  /* drop each */
    prctl(PR_CAP_AMBIENT, 4 /* CLEAR_ALL */, 0, 0, 0);
    for (int c = 0; c <= 40; c++) prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0); /* verify */
    for (int c = 0; c <= 40; c++) prctl(PR_CAPBSET_READ, c, 0, 0, 0);
    return now_us() - t0;
}

/* ---- cordon's own filters, parsed back from `strace -v` ---- */

static const struct { const char *name; uint32_t v; } syms[] = {
    {"BPF_LD", 0x00}, {"BPF_LDX", 0x01}, {"BPF_ST", 0x02}, {"BPF_STX", 0x03}, {"BPF_ALU", 0x04},
    {"BPF_JMP", 0x05}, {"BPF_RET", 0x06}, {"BPF_MISC", 0x07}, {"BPF_W", 0x00}, {"BPF_H", 0x08},
    {"BPF_B", 0x10}, {"BPF_IMM", 0x00}, {"BPF_ABS", 0x20}, {"BPF_IND", 0x40}, {"BPF_MEM", 0x60},
    {"BPF_LEN", 0x80}, {"BPF_MSH", 0xa0}, {"BPF_ADD", 0x00}, {"BPF_SUB", 0x10}, {"BPF_MUL", 0x20},
    {"BPF_DIV", 0x30}, {"BPF_OR", 0x40}, {"BPF_AND", 0x50}, {"BPF_LSH", 0x60}, {"BPF_RSH", 0x70},
    {"BPF_NEG", 0x80}, {"BPF_MOD", 0x90}, {"BPF_XOR", 0xa0}, {"BPF_JA", 0x00}, {"BPF_JEQ", 0x10},
    {"BPF_JGT", 0x20}, {"BPF_JGE", 0x30}, {"BPF_JSET", 0x40}, {"BPF_K", 0x00}, {"BPF_X", 0x08},
    {"BPF_A", 0x10}, {"BPF_TAX", 0x00}, {"BPF_TXA", 0x80},
    {"SECCOMP_RET_KILL_PROCESS", 0x80000000U}, {"SECCOMP_RET_KILL_THREAD", 0}, {"SECCOMP_RET_KILL", 0},
    {"SECCOMP_RET_TRAP", 0x00030000U}, {"SECCOMP_RET_ERRNO", 0x00050000U},
    {"SECCOMP_RET_USER_NOTIF", 0x7fc00000U}, {"SECCOMP_RET_TRACE", 0x7ff00000U},
    {"SECCOMP_RET_LOG", 0x7ffc0000U}, {"SECCOMP_RET_ALLOW", 0x7fff0000U},
};

/* "A|B|0x12" -> value; *p advanced past the expression. */
static uint32_t expr(const char **p) {
    uint32_t v = 0;
    for (;;) {
        while (**p == ' ') (*p)++;
        const char *s = *p;
        while (**p && **p != '|' && **p != ',' && **p != ')') (*p)++;
        int n = *p - s;
        while (n && s[n - 1] == ' ') n--;
        if (n > 1 && s[0] == '0' && s[1] == 'x') v |= strtoul(s, NULL, 16);
        else if (n && s[0] >= '0' && s[0] <= '9') v |= strtoul(s, NULL, 10);
        else {
            int found = 0;
            for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
                if ((int)strlen(syms[i].name) == n && !strncmp(syms[i].name, s, n)) { v |= syms[i].v; found = 1; }
            if (!found) { fprintf(stderr, "pieces: unknown BPF symbol %.*s\n", n, s); exit(2); }
        }
        if (**p != '|') return v;
        (*p)++;
    }
}

static struct sock_fprog replay[8];
static int n_replay;

static void load_strace(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); exit(2); }
    static char line[1 << 20];
    while (fgets(line, sizeof line, f) && n_replay < 8) {
        const char *p = strstr(line, "filter=[");
        if (!p) continue;
        p += 8;
        struct sock_filter *ins = calloc(4096, sizeof *ins);
        int n = 0;
        while ((p = strstr(p, "BPF_")) && n < 4096) {
            int jump = !strncmp(p, "BPF_JUMP(", 9);
            if (strncmp(p, "BPF_STMT(", 9) && !jump) { p++; continue; }
            p += 9;
            ins[n].code = expr(&p);
            p++; /* , */
            ins[n].k = expr(&p);
            if (jump) {
                p++;
                ins[n].jt = expr(&p);
                p++;
                ins[n].jf = expr(&p);
            }
            n++;
        }
        replay[n_replay++] = (struct sock_fprog){ n, ins };
    }
    fclose(f);
}

static double b_replay(void) {
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    double t0 = now_us();
    for (int i = 0; i < n_replay; i++)
        if (syscall(SYS_seccomp, 1, 0, &replay[i])) return -1;
    return now_us() - t0;
}

/* What a restructured filter would cost: one program, arch check, then a
 * binary search over 64 syscall numbers (each leaf an ERRNO), i.e. ~6 compares
 * per syscall instead of a linear chain. */
static struct sock_filter bst[512];
static int bst_n;
static void bst_build(int lo, int hi) { /* numbers 1001, 1003, ... 1127: above every real syscall, so the benchmark itself keeps working; the depth (cost) is the same */
    if (lo == hi) {
        bst[bst_n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1000 + 2 * lo + 1, 0, 1);
        bst[bst_n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0x00050000U | EPERM);
        bst[bst_n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0x7fff0000U);
        return;
    }
    int mid = (lo + hi + 1) / 2, at = bst_n++;
    bst_build(lo, mid - 1);
    bst[at] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 1000 + 2 * mid, bst_n - at - 1, 0);
    bst_build(mid, hi);
}
static double b_bst(void) {
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    struct sock_fprog p = { bst_n, bst };
    double t0 = now_us();
    if (syscall(SYS_seccomp, 1, 0, &p)) return -1;
    return now_us() - t0;
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "r:s:")) != -1) {
        if (opt == 'r') reps = atoi(optarg);
        if (opt == 's') load_strace(optarg);
    }
    if (optind < argc) dir = argv[optind];
    long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, 1);
    int bits = abi >= 5 ? 16 : abi >= 3 ? 15 : abi >= 2 ? 14 : 13;
    ll_all = (1ULL << bits) - 1;

    report("readlink", per_call(f_readlink, 20000), "one readlink(2) on a non-symlink (EINVAL); realpath does one per component");
    report("stat", per_call(f_stat, 20000), "one stat(2) of DIR");
    report("realpath(DIR)", per_call(f_realpath, 5000), "glibc realpath of DIR (what std::fs::canonicalize calls)");
    report("open+close", per_call(f_open_close, 20000), "open(O_PATH) + close of DIR");
    report("readdir /etc", per_call(f_readdir_etc, 2000), "opendir + readdir to the end + closedir of /etc");
    report("prctl", per_call(f_prctl, 20000), "one prctl(PR_CAPBSET_READ)");
    if (abi > 0) {
        report("landlock create", per_call(f_ll_create, 5000), "landlock_create_ruleset + close");
        struct ll_ruleset_attr a = { .handled_access_fs = ll_all };
        ll_rs = syscall(__NR_landlock_create_ruleset, &a, sizeof a, 0);
        report("landlock rule", per_call(f_ll_rule, 5000), "per path rule: open(O_PATH) + fstat + landlock_add_rule + close");
        close(ll_rs);
    }

    report("fork", clone_cost(0, 0), "fork + _exit + waitpid of a small process (parent-side)");
    report("clone userns+mnt+pid+ipc", clone_cost(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC, 1),
           "the same with the namespaces cordon uses (network on), uid_map written");
    report("clone ... +net", clone_cost(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET, 1),
           "plus a network namespace (cordon with network off; bwrap --unshare-all)");

    int ns = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC;
    report("mount rprivate /", in_child(ns, 1, b_mount_private), "mount(MS_REC|MS_PRIVATE) on / in the new namespace");
    report("mount_setattr / ro", in_child(ns, 1, b_setattr_root), "mount_setattr(AT_RECURSIVE, RDONLY) on /");
    report("bind + setattr", in_child(ns, 1, b_bind), "one bind mount of DIR + mount_setattr (per writable/read-only path)");
    report("mask stage", in_child(ns, 1, b_mask_stage), "tmpfs on /proc + mkdir + create + umount (once, when there are masks)");
    report("mount proc", in_child(ns, 1, b_proc), "a fresh /proc");

    if (abi > 0) {
        n_rules = 1;
        report("landlock restrict (1)", in_child(0, 0, b_restrict), "landlock_restrict_self, 1 rule");
        n_rules = 24;
        report("landlock restrict (24)", in_child(0, 0, b_restrict), "landlock_restrict_self, 24 rules (cordon, namespaces on)");
        n_rules = 185;
        report("landlock restrict (185)", in_child(0, 0, b_restrict), "landlock_restrict_self, 185 rules (cordon, namespaces off)");
    }
    seccomp_lens[0] = 4, n_filters = 1;
    report("seccomp 1 filter (4)", in_child(0, 0, b_seccomp), "install one 4-instruction filter (the reference)");
    if (n_replay) {
        char what[160];
        int len = snprintf(what, sizeof what, "install cordon's own %d filters (", n_replay);
        for (int i = 0; i < n_replay; i++) len += snprintf(what + len, sizeof what - len, "%s%d", i ? ", " : "", replay[i].len);
        snprintf(what + len, sizeof what - len, " instructions, replayed)");
        report("seccomp cordon's filters", in_child(0, 0, b_replay), what);
    }
    bst[bst_n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 4);
    bst[bst_n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xc000003e, 1, 0);
    bst[bst_n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0x80000000U);
    bst[bst_n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0);
    bst_build(0, 63);
    char what[120];
    snprintf(what, sizeof what, "one filter, arch check + binary search over 64 numbers (%d instructions)", bst_n);
    report("seccomp 1 filter, tree", in_child(0, 0, b_bst), what);
    report("capabilities", in_child(0, 0, b_caps), "~165 prctl: read, drop, verify each capability one by one (the drop before commit d927a27; cordon now makes ~46 prctl)");
    return 0;
}
