/*
 * attack: the payload of tests/escape.rs. Run inside `cordon run`, it tries
 * one escape per argument and prints one line per attempt:
 *
 *     RESULT <class> <ok|ERRNO_NAME|other token>
 *
 * `ok` means the attack worked. Arguments are `class` or `class=arg`; each runs
 * in a child of its own (so a success cannot disturb the next attempt) with a
 * 20 s alarm. The process always exits 0 once every class has reported.
 *
 * Started as `attack marker` (argv[1] == "marker") it only exits 42: that is how
 * the exec classes see that a copy of this binary really ran.
 *
 * Compiled by the test at run time: cc -O1 -o attack attack.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_userfaultfd
#define SYS_userfaultfd 323
#endif
#ifndef SYS_memfd_create
#define SYS_memfd_create 319
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif
#define X32_SYSCALL_BIT 0x40000000UL
#define NETLINK_NETFILTER 12

extern char **environ;

/* The parent of the helper itself: cordon's init (namespaces) or the launcher. */
static pid_t sandbox_parent;

static const char *errname(int e) {
    switch (e) {
#define E(x) \
    case x:  \
        return #x;
        E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF)
        E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV)
        E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY)
        E(EFBIG) E(ENOSPC) E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(ERANGE) E(ENAMETOOLONG)
        E(ENOSYS) E(ENOTEMPTY) E(ELOOP) E(ENOTSOCK) E(EPROTOTYPE) E(EPROTONOSUPPORT)
        E(ESOCKTNOSUPPORT) E(EOPNOTSUPP) E(EAFNOSUPPORT) E(EADDRINUSE) E(EADDRNOTAVAIL)
        E(ENETDOWN) E(ENETUNREACH) E(ECONNRESET) E(ENOBUFS) E(EISCONN) E(ENOTCONN)
        E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTUNREACH) E(EALREADY) E(EINPROGRESS)
        E(EOVERFLOW) E(EBADFD) E(EDQUOT) E(ENOKEY) E(EKEYREVOKED) E(EKEYREJECTED)
#undef E
    }
    static char buf[32];
    snprintf(buf, sizeof buf, "ERRNO%d", e);
    return buf;
}

/* One unbuffered line: children share stdout, so never go through stdio buffers. */
static void result(const char *cls, const char *what) {
    dprintf(1, "RESULT %s %s\n", cls, what);
}

/* rc < 0: report errno, else ok. */
static void report(const char *cls, long rc) {
    result(cls, rc < 0 ? errname(errno) : "ok");
}

static void info(const char *cls, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void info(const char *cls, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    dprintf(1, "INFO %s %s\n", cls, buf);
}

/* "a:b" -> a, b (in place). */
static char *split(char *arg, char **second) {
    char *c = arg ? strchr(arg, ':') : NULL;
    if (!c) {
        *second = NULL;
        return arg;
    }
    *c = 0;
    *second = c + 1;
    return arg;
}

static pid_t pid_arg(const char *arg) { return arg ? (pid_t)atoi(arg) : 0; }

/* ---------------------------------------------------------------- files */

static void do_write(const char *cls, const char *path) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return report(cls, -1);
    long n = write(fd, "PWNED\n", 6);
    close(fd);
    report(cls, n == 6 ? 0 : -1);
}

static void do_create(const char *cls, const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
    report(cls, fd);
}

static void do_read(const char *cls, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return report(cls, -1);
    char buf[256];
    long n = read(fd, buf, sizeof buf);
    close(fd);
    report(cls, n);
}

static void do_list(const char *cls, const char *path) {
    DIR *d = opendir(path);
    if (!d)
        return report(cls, -1);
    errno = 0;
    while (readdir(d))
        ;
    int e = errno;
    closedir(d);
    errno = e;
    report(cls, e ? -1 : 0);
}

/* ---------------------------------------------------------------- exec */

static int copy_fd(int in, int out) {
    char buf[65536];
    long n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n)
            return -1;
    return n < 0 ? -1 : 0;
}

/*
 * Run `argv` (path, or the fd when path is NULL) in a child and report: ok when
 * the copy of this binary ran (exit 42), the execve errno otherwise.
 */
static void run_and_report(const char *cls, const char *path, int fd, char *const argv[]) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return report(cls, -1);
    pid_t c = fork();
    if (c < 0)
        return report(cls, -1);
    if (c == 0) {
        close(p[0]);
        if (path)
            execve(path, argv, environ);
        else
            syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
        int e = errno;
        (void)!write(p[1], &e, sizeof e);
        _exit(111);
    }
    close(p[1]);
    int e = 0;
    long n = read(p[0], &e, sizeof e);
    close(p[0]);
    int st;
    waitpid(c, &st, 0);
    if (n == sizeof e) {
        errno = e;
        return report(cls, -1);
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 42)
        return result(cls, "ok");
    char buf[64];
    snprintf(buf, sizeof buf, "STATUS%d", st);
    result(cls, buf);
}

static void do_exec(const char *cls, const char *path) {
    char *argv[] = {(char *)path, "marker", NULL};
    run_and_report(cls, path, -1, argv);
}

/* Copy this binary to `path` (0755), then exec it. */
static void do_copyexec(const char *cls, const char *path) {
    int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    unlink(path);
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (in < 0 || out < 0 || copy_fd(in, out) < 0) {
        /* Not the refusal under test: the copy could not even be written. */
        char buf[64];
        snprintf(buf, sizeof buf, "WRITE_%s", errname(errno));
        return result(cls, buf);
    }
    close(in);
    close(out);
    do_exec(cls, path);
}

/*
 * The dynamic loader maps `path` itself: no execve of `path` happens. ok when the
 * copy ran; MAPFAIL when the loader could not map it executable; otherwise the
 * errno named in the loader's message.
 */
static void do_ldso(const char *cls, const char *path) {
    const char *ldso = "/lib64/ld-linux-x86-64.so.2";
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return report(cls, -1);
    pid_t c = fork();
    if (c == 0) {
        dup2(p[1], 2);
        char *argv[] = {(char *)ldso, (char *)path, "marker", NULL};
        execve(ldso, argv, environ);
        dprintf(2, "execve ld.so: %s\n", strerror(errno));
        _exit(111);
    }
    close(p[1]);
    char msg[4096];
    long len = 0, n;
    while (len < (long)sizeof msg - 1 && (n = read(p[0], msg + len, sizeof msg - 1 - len)) > 0)
        len += n;
    msg[len] = 0;
    close(p[0]);
    int st;
    waitpid(c, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 42)
        return result(cls, "ok");
    for (char *nl; (nl = strchr(msg, '\n'));)
        *nl = ' ';
    info(cls, "ld.so said: %s", msg);
    /* glibc does not name the errno of a failed segment mmap; mmap-exec does. */
    if (strstr(msg, "failed to map segment"))
        return result(cls, "MAPFAIL");
    for (int e = 1; e < 134; e++) {
        if (strstr(msg, strerror(e))) {
            errno = e;
            return report(cls, -1);
        }
    }
    char buf[64];
    snprintf(buf, sizeof buf, "STATUS%d", st);
    result(cls, buf);
}

static void do_mmapx(const char *cls, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        info(cls, "open %s failed", path);
        return report(cls, -1);
    }
    void *m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    close(fd);
    report(cls, m == MAP_FAILED ? -1 : 0);
}

static void do_memfd(const char *cls) {
    int fd = (int)syscall(SYS_memfd_create, "payload", 0);
    if (fd < 0)
        return report(cls, -1);
    int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (in < 0 || copy_fd(in, fd) < 0)
        return report(cls, -1);
    close(in);
    char *argv[] = {"payload", "marker", NULL};
    run_and_report(cls, NULL, fd, argv);
    close(fd);
}

/* ---------------------------------------------------------------- namespaces, mounts */

static void do_clone_newuser(const char *cls) {
    long pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid((pid_t)pid, NULL, 0);
    report(cls, pid);
}

static void do_clone3_newuser(const char *cls) {
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = CLONE_NEWUSER;
    a.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &a, sizeof a);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid((pid_t)pid, NULL, 0);
    report(cls, pid);
}

/* ---------------------------------------------------------------- other processes */

static void do_ptrace(const char *cls, pid_t pid) {
    long rc = ptrace(PTRACE_SEIZE, pid, 0, 0);
    int e = errno;
    if (rc == 0)
        ptrace(PTRACE_DETACH, pid, 0, 0);
    errno = e;
    report(cls, rc);
}

static void do_vmread(const char *cls, pid_t pid) {
    char buf[16];
    static char there[16];
    struct iovec l = {buf, sizeof buf}, r = {there, sizeof there};
    report(cls, process_vm_readv(pid, &l, 1, &r, 1, 0));
}

static void do_pidfd_getfd(const char *cls, pid_t pid) {
    long pfd = syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        info(cls, "pidfd_open(%d): %s", pid, errname(errno));
    report(cls, syscall(SYS_pidfd_getfd, pfd, 0, 0));
}

static void do_pidfd_kill(const char *cls, pid_t pid) {
    long pfd = syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        return report(cls, -1);
    report(cls, syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0));
}

/* ---------------------------------------------------------------- terminal */

/*
 * Make stdin this process's controlling terminal (a new session, TIOCSCTTY), so
 * the kernel's own TIOCSTI rule (only on one's controlling terminal) would let
 * the injection through: then only cordon's filter can refuse it.
 */
static int tty0(const char *cls) {
    struct termios t;
    if (tcgetattr(0, &t) < 0) {
        info(cls, "stdin is not a terminal: %s", errname(errno));
        result(cls, "NOTTY");
        return 0;
    }
    if (setsid() < 0)
        info(cls, "setsid: %s", errname(errno));
    if (ioctl(0, TIOCSCTTY, 0) < 0)
        info(cls, "TIOCSCTTY: %s (not the controlling terminal)", errname(errno));
    return 1;
}

/* ---------------------------------------------------------------- kernel surface */

static void do_bpf(const char *cls) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_type = BPF_MAP_TYPE_ARRAY;
    a.key_size = 4;
    a.value_size = 4;
    a.max_entries = 1;
    report(cls, syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a));
}

static void do_perf(const char *cls) {
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = PERF_TYPE_SOFTWARE;
    a.config = PERF_COUNT_SW_TASK_CLOCK;
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    report(cls, syscall(SYS_perf_event_open, &a, 0, -1, -1, 0));
}

static void do_personality(const char *cls) {
    int old = personality(0xffffffff);
    long rc = personality(READ_IMPLIES_EXEC);
    int e = errno;
    int now = personality(0xffffffff);
    if (rc >= 0 && !(now & READ_IMPLIES_EXEC)) {
        info(cls, "personality returned %ld but the flag is not set", rc);
        rc = 0;
    }
    (void)old;
    errno = e;
    report(cls, rc == -1 ? -1 : 0);
}

static void do_open_by_handle(const char *cls) {
    struct {
        unsigned int handle_bytes;
        int handle_type;
        unsigned char f_handle[64];
    } h;
    memset(&h, 0, sizeof h);
    h.handle_bytes = 8;
    h.handle_type = 1; /* FILEID_INO32_GEN */
    report(cls, syscall(SYS_open_by_handle_at, AT_FDCWD, &h, O_RDONLY));
}

static void do_io_uring(const char *cls) {
    char params[120];
    memset(params, 0, sizeof params);
    report(cls, syscall(SYS_io_uring_setup, 4, params));
}

/* ---------------------------------------------------------------- network */

static void do_socket(const char *cls, int fam, int type, int proto) {
    int fd = socket(fam, type | SOCK_CLOEXEC, proto);
    if (fd >= 0)
        close(fd);
    report(cls, fd);
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t n = strlen(name);
    if (n > sizeof a->sun_path - 1)
        n = sizeof a->sun_path - 1;
    memcpy(a->sun_path + 1, name, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static void do_abstract(const char *cls, const char *name) {
    struct sockaddr_un a;
    socklen_t len = abstract_addr(&a, name);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return report(cls, -1);
    report(cls, connect(fd, (struct sockaddr *)&a, len));
    close(fd);
}

static void do_abstract_dgram(const char *cls, const char *name) {
    struct sockaddr_un a;
    socklen_t len = abstract_addr(&a, name);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return report(cls, -1);
    report(cls, sendto(fd, "x", 1, 0, (struct sockaddr *)&a, len));
    close(fd);
}

static void do_unix(const char *cls, const char *path) {
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return report(cls, -1);
    report(cls, connect(fd, (struct sockaddr *)&a, sizeof a));
    close(fd);
}

/* ---------------------------------------------------------------- descriptors, environment */

/* Every open descriptor but the one reading /proc/self/fd: "0,1,2" or the list with targets. */
static void do_fds(const char *cls) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return report(cls, -1);
    int self = dirfd(d);
    int fds[256], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd != self)
            fds[n++] = fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (fds[j] < fds[i]) {
                int t = fds[i];
                fds[i] = fds[j];
                fds[j] = t;
            }
    char out[2048] = "";
    for (int i = 0; i < n; i++) {
        char path[64], target[256] = "";
        snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
        long k = readlink(path, target, sizeof target - 1);
        if (k > 0)
            target[k] = 0;
        info(cls, "fd %d -> %s", fds[i], target);
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%d", i ? "," : "", fds[i]);
    }
    result(cls, out);
}

static void do_getenv(const char *cls, const char *name) {
    const char *v = getenv(name);
    if (v)
        info(cls, "%s is set", name);
    result(cls, v ? "ok" : "ENOENT");
}

static void do_envscan(const char *cls, const char *needle) {
    for (char **e = environ; *e; e++) {
        if (strstr(*e, needle)) {
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
            info(cls, "the secret is in %s", name);
            return result(cls, "ok");
        }
    }
    result(cls, "ENOENT");
}

/* ---------------------------------------------------------------- limits, daemons */

/*
 * Every child forks forever; the first failing fork of this process is reported.
 * The children stay (sleeping or retrying) for the launcher to clean up.
 */
static void do_forkbomb(const char *cls) {
    long made = 0;
    for (;;) {
        pid_t c = fork();
        if (c < 0) {
            int e = errno;
            info(cls, "forked %ld children before the refusal", made);
            errno = e;
            return report(cls, -1);
        }
        if (c == 0) {
            for (;;) {
                if (fork() < 0)
                    usleep(10000);
            }
        }
        if (++made > 100000)
            return result(cls, "ok");
    }
}

/* Allocate and touch 1 MiB at a time, up to 4 GiB. */
static void do_membomb(const char *cls) {
    long mib = 0;
    for (; mib < 4096; mib++) {
        char *p = malloc(1 << 20);
        if (!p) {
            int e = errno;
            info(cls, "allocated %ld MiB before the refusal", mib);
            errno = e;
            return report(cls, -1);
        }
        memset(p, 1, 1 << 20);
    }
    info(cls, "allocated %ld MiB", mib);
    result(cls, "ok");
}

/*
 * setsid + double fork: the grandchild ignores SIGTERM and SIGHUP, writes its
 * pid to `path` and lives forever.
 */
static void do_daemon(const char *cls, const char *path) {
    pid_t c = fork();
    if (c == 0) {
        setsid();
        if (fork() == 0) {
            signal(SIGTERM, SIG_IGN);
            signal(SIGHUP, SIG_IGN);
            signal(SIGINT, SIG_IGN);
            alarm(0);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            dprintf(fd, "%d\n", getpid());
            close(fd);
            for (;;)
                pause();
        }
        _exit(0);
    }
    waitpid(c, NULL, 0);
    for (int i = 0; i < 500 && access(path, F_OK) < 0; i++)
        usleep(10000);
    report(cls, access(path, F_OK));
}

static void do_ns(const char *cls, const char *host) {
    char buf[64] = "";
    long n = readlink("/proc/self/ns/pid", buf, sizeof buf - 1);
    if (n > 0)
        buf[n] = 0;
    info(cls, "pid namespace %s, pid %d", buf, getpid());
    result(cls, host && strcmp(buf, host) == 0 ? "host" : "private");
}

/* ---------------------------------------------------------------- dispatch */

static void attack(const char *cls, char *arg) {
    char *b;
    if (!strcmp(cls, "ns"))
        return do_ns(cls, arg);
    /* files */
    /* File classes match by prefix: write-symlink, read-ssh, rename-in, ... */
    if (!strncmp(cls, "write", 5))
        return do_write(cls, arg);
    if (!strncmp(cls, "create", 6))
        return do_create(cls, arg);
    if (!strcmp(cls, "truncate"))
        return report(cls, truncate(arg, 0));
    if (!strncmp(cls, "link", 4)) {
        char *a = split(arg, &b);
        return report(cls, link(a, b));
    }
    if (!strncmp(cls, "rename", 6)) {
        char *a = split(arg, &b);
        return report(cls, rename(a, b));
    }
    if (!strncmp(cls, "read", 4))
        return do_read(cls, arg);
    if (!strncmp(cls, "list", 4))
        return do_list(cls, arg);
    if (!strcmp(cls, "chmod"))
        return report(cls, chmod(arg, 0640));
    if (!strcmp(cls, "utime")) {
        struct timespec ts[2] = {{0, 0}, {0, 0}};
        return report(cls, utimensat(AT_FDCWD, arg, ts, 0));
    }
    /* exec */
    if (!strncmp(cls, "exec-", 5))
        return do_exec(cls, arg);
    if (!strncmp(cls, "copyexec", 8))
        return do_copyexec(cls, arg);
    if (!strcmp(cls, "ldso"))
        return do_ldso(cls, arg);
    if (!strcmp(cls, "mmap-exec"))
        return do_mmapx(cls, arg);
    if (!strcmp(cls, "memfd-exec"))
        return do_memfd(cls);
    /* namespaces and mounts */
    if (!strcmp(cls, "unshare-newuser"))
        return report(cls, unshare(CLONE_NEWUSER));
    if (!strcmp(cls, "unshare-newns"))
        return report(cls, unshare(CLONE_NEWNS));
    if (!strcmp(cls, "clone-newuser"))
        return do_clone_newuser(cls);
    if (!strcmp(cls, "clone3-newuser"))
        return do_clone3_newuser(cls);
    if (!strcmp(cls, "mount"))
        return report(cls, mount("tmpfs", arg ? arg : ".", "tmpfs", 0, NULL));
    if (!strcmp(cls, "fsopen"))
        return report(cls, syscall(SYS_fsopen, "tmpfs", 0));
    if (!strcmp(cls, "open_tree"))
        return report(cls, syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* OPEN_TREE_CLONE */));
    if (!strcmp(cls, "chroot"))
        return report(cls, chroot(arg ? arg : "."));
    /* other processes */
    if (!strcmp(cls, "ptrace"))
        return do_ptrace(cls, pid_arg(arg));
    if (!strcmp(cls, "process_vm_readv"))
        return do_vmread(cls, pid_arg(arg));
    if (!strcmp(cls, "pidfd_getfd"))
        return do_pidfd_getfd(cls, pid_arg(arg));
    if (!strcmp(cls, "pidfd-kill"))
        return do_pidfd_kill(cls, pid_arg(arg));
    if (!strcmp(cls, "kill"))
        return report(cls, kill(pid_arg(arg), SIGKILL));
    if (!strcmp(cls, "kill-parent"))
        return report(cls, kill(sandbox_parent, SIGKILL));
    if (!strcmp(cls, "environ") || !strcmp(cls, "environ-parent")) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/environ", arg ? pid_arg(arg) : sandbox_parent);
        return do_read(cls, p);
    }
    if (!strcmp(cls, "mem")) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/mem", pid_arg(arg));
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            close(fd);
        return report(cls, fd);
    }
    /* terminal */
    if (!strcmp(cls, "tiocsti")) {
        if (tty0(cls))
            report(cls, ioctl(0, TIOCSTI, "x"));
        return;
    }
    if (!strcmp(cls, "tiocsti-high")) {
        char c = 'x';
        if (tty0(cls))
            report(cls, syscall(SYS_ioctl, 0, 0xffffffff00005412UL, &c));
        return;
    }
    if (!strcmp(cls, "tioclinux")) {
        char sub[2] = {6 /* TIOCL_GETSHIFTSTATE */, 0};
        if (tty0(cls))
            report(cls, ioctl(0, TIOCLINUX, sub));
        return;
    }
    if (!strcmp(cls, "tiocgwinsz")) {
        struct winsize w;
        if (tty0(cls))
            report(cls, ioctl(0, TIOCGWINSZ, &w));
        return;
    }
    /* kernel attack surface */
    if (!strcmp(cls, "keyctl"))
        return report(cls, syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
    if (!strcmp(cls, "add_key"))
        return report(cls, syscall(SYS_add_key, "user", "cordon", "x", 1, -2));
    if (!strcmp(cls, "request_key"))
        return report(cls, syscall(SYS_request_key, "user", "cordon", NULL, 0));
    if (!strcmp(cls, "bpf"))
        return do_bpf(cls);
    if (!strcmp(cls, "perf_event_open"))
        return do_perf(cls);
    if (!strcmp(cls, "userfaultfd"))
        return report(cls, syscall(SYS_userfaultfd, O_CLOEXEC));
    if (!strcmp(cls, "personality"))
        return do_personality(cls);
    if (!strcmp(cls, "open_by_handle_at"))
        return do_open_by_handle(cls);
    if (!strcmp(cls, "x32"))
        return report(cls, syscall(SYS_getpid | X32_SYSCALL_BIT));
    if (!strcmp(cls, "io_uring_setup"))
        return do_io_uring(cls);
    /* network */
    if (!strcmp(cls, "tcp4"))
        return do_socket(cls, AF_INET, SOCK_STREAM, 0);
    if (!strcmp(cls, "udp4"))
        return do_socket(cls, AF_INET, SOCK_DGRAM, 0);
    if (!strcmp(cls, "tcp6"))
        return do_socket(cls, AF_INET6, SOCK_STREAM, 0);
    if (!strcmp(cls, "udp6"))
        return do_socket(cls, AF_INET6, SOCK_DGRAM, 0);
    if (!strcmp(cls, "raw4"))
        return do_socket(cls, AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (!strcmp(cls, "raw6"))
        return do_socket(cls, AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
    if (!strcmp(cls, "packet"))
        return do_socket(cls, AF_PACKET, SOCK_RAW, 0);
    if (!strcmp(cls, "netlink-netfilter"))
        return do_socket(cls, AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
    if (!strcmp(cls, "netlink-route"))
        return do_socket(cls, AF_NETLINK, SOCK_RAW, 0);
    if (!strcmp(cls, "socketpair-inet")) {
        int sv[2];
        return report(cls, socketpair(AF_INET, SOCK_STREAM, 0, sv));
    }
    if (!strcmp(cls, "unix-stream"))
        return do_socket(cls, AF_UNIX, SOCK_STREAM, 0);
    if (!strcmp(cls, "abstract"))
        return do_abstract(cls, arg);
    if (!strcmp(cls, "abstract-dgram"))
        return do_abstract_dgram(cls, arg);
    if (!strcmp(cls, "unix-path"))
        return do_unix(cls, arg);
    /* descriptors, environment */
    if (!strcmp(cls, "fds"))
        return do_fds(cls);
    if (!strncmp(cls, "getenv", 6))
        return do_getenv(cls, arg);
    if (!strcmp(cls, "envscan"))
        return do_envscan(cls, arg);
    /* limits */
    if (!strcmp(cls, "forkbomb"))
        return do_forkbomb(cls);
    if (!strcmp(cls, "membomb"))
        return do_membomb(cls);
    if (!strcmp(cls, "daemon"))
        return do_daemon(cls, arg);
    if (!strcmp(cls, "tag"))
        return result(cls, "ok");
    if (!strcmp(cls, "sleep")) {
        sleep(arg ? atoi(arg) : 3600);
        return result(cls, "ok");
    }
    result(cls, "UNKNOWN_CLASS");
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "marker"))
        return 42;
    sandbox_parent = getppid();
    for (int i = 1; i < argc; i++) {
        char cls[256];
        snprintf(cls, sizeof cls, "%s", argv[i]);
        char *arg = strchr(cls, '=');
        if (arg)
            *arg++ = 0;
        /* The daemon and the bombs run in this process's tree on purpose. */
        pid_t c = fork();
        if (c < 0) {
            report(cls, -1);
            continue;
        }
        if (c == 0) {
            if (strcmp(cls, "sleep"))
                alarm(20);
            attack(cls, arg);
            _exit(0);
        }
        int st;
        while (waitpid(c, &st, 0) < 0 && errno == EINTR)
            ;
        if (WIFSIGNALED(st)) {
            char buf[32];
            snprintf(buf, sizeof buf, "SIGNAL%d", WTERMSIG(st));
            result(cls, buf);
        }
    }
    return 0;
}
