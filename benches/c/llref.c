/*
 * llref PROGRAM [ARGS...]: the minimal Landlock + seccomp sandbox, as a
 * reference for what the kernel mechanisms cost on their own:
 *   - a Landlock ruleset handling every file-system right of this kernel's ABI,
 *     with one rule granting all of them beneath "/";
 *   - no_new_privs;
 *   - a one-rule seccomp filter (ptrace -> EPERM, everything else allowed);
 * then execv(PROGRAM). No namespaces, no fork: the workload replaces us.
 *
 * llref -n PROGRAM [ARGS...]: the same, first in new user, mount, PID and IPC
 * namespaces (the set cordon uses with the network on), with the caller's uid
 * and gid mapped; the payload is PID 1 of the new PID namespace and we wait
 * for it. No mount changes: this is the kernel cost of
 * being in the namespaces, not of any mount layout.
 *
 * Self-contained (no kernel headers needed beyond the syscall numbers).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif
#ifndef SECCOMP_SET_MODE_FILTER
#define SECCOMP_SET_MODE_FILTER 1
#endif
#define RET_ALLOW 0x7fff0000U
#define RET_ERRNO 0x00050000U

struct ll_ruleset_attr { uint64_t handled_access_fs, handled_access_net, scoped; };
struct ll_path_beneath { uint64_t allowed_access; int32_t parent_fd; } __attribute__((packed));
struct sdata { int nr; uint32_t arch; uint64_t ip; uint64_t args[6]; };

static int die(const char *what) {
    fprintf(stderr, "llref: %s: %s\n", what, strerror(errno));
    return 125;
}

static int put(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok ? 0 : -1;
}

/* New user/mount/PID/IPC namespaces; returns in the child (PID 1), never in the parent. */
static int enter_namespaces(void) {
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC)) return die("unshare");
    char map[64];
    put("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "%u %u 1", uid, uid);
    if (put("/proc/self/uid_map", map)) return die("uid_map");
    snprintf(map, sizeof map, "%u %u 1", gid, gid);
    if (put("/proc/self/gid_map", map)) return die("gid_map");
    pid_t pid = fork();
    if (pid < 0) return die("fork");
    if (pid == 0) return 0;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-n") == 0) {
        int rc = enter_namespaces();
        if (rc) return rc;
        argv++, argc--;
    }
    if (argc < 2) { fprintf(stderr, "usage: llref [-n] PROGRAM [ARGS...]\n"); return 125; }
    long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, 1 /* VERSION */);
    if (abi < 1) return die("landlock ABI");
    /* FS rights by ABI: 13 (v1), +REFER (v2), +TRUNCATE (v3), +IOCTL_DEV (v5). */
    int bits = abi >= 5 ? 16 : abi >= 3 ? 15 : abi >= 2 ? 14 : 13;
    uint64_t all = (1ULL << bits) - 1;
    struct ll_ruleset_attr attr = { .handled_access_fs = all };
    int rs = syscall(__NR_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (rs < 0) return die("landlock_create_ruleset");
    struct ll_path_beneath pb = { .allowed_access = all, .parent_fd = open("/", O_PATH | O_CLOEXEC) };
    if (pb.parent_fd < 0) return die("open /");
    if (syscall(__NR_landlock_add_rule, rs, 1 /* PATH_BENEATH */, &pb, 0)) return die("landlock_add_rule");
    close(pb.parent_fd);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) return die("no_new_privs");
    if (syscall(__NR_landlock_restrict_self, rs, 0)) return die("landlock_restrict_self");
    close(rs);
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct sdata, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ptrace, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) return die("seccomp");
    execv(argv[1], &argv[1]);
    return die(argv[1]) + (errno == ENOENT ? 2 : 1);
}
