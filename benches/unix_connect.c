#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <sys/uio.h>
static int l;
static void *acc(void *a) { (void)a; for (;;) { int c = accept(l, 0, 0); if (c >= 0) close(c); } }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    int n = atoi(argv[2]);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, argv[1]); unlink(argv[1]);
    l = socket(AF_UNIX, SOCK_STREAM, 0); bind(l, (void *)&a, sizeof a); listen(l, 4096);
    pthread_t t; pthread_create(&t, 0, acc, 0);
    double t0 = now();
    for (int i = 0; i < n; i++) { int s = socket(AF_UNIX, SOCK_STREAM, 0); if (connect(s, (void *)&a, sizeof a)) { perror("connect"); return 1; } close(s); }
    double t1 = now();
    struct sockaddr_un d = {.sun_family = AF_UNIX}; snprintf(d.sun_path, 100, "%s.d", argv[1]); unlink(d.sun_path);
    int r = socket(AF_UNIX, SOCK_DGRAM, 0); bind(r, (void *)&d, sizeof d);
    int s = socket(AF_UNIX, SOCK_DGRAM, 0); char b[8];
    double t2 = now();
    for (int i = 0; i < n; i++) { if (sendto(s, "x", 1, 0, (void *)&d, sizeof d) != 1) { perror("sendto"); return 1; } recv(r, b, 8, 0); }
    double t3 = now();
    connect(s, (void *)&d, sizeof d);
    double t4 = now();
    for (int i = 0; i < n; i++) { struct iovec v = {"x", 1}; struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1}; if (sendmsg(s, &m, 0) != 1) { perror("sendmsg"); return 1; } recv(r, b, 8, 0); }
    double t5 = now();
    for (int i = 0; i < n; i++) { if (send(s, "x", 1, 0) != 1) { perror("send"); return 1; } recv(r, b, 8, 0); }
    double t6 = now();
    printf("connect %.1f us  sendto %.1f us  sendmsg %.1f us  send %.1f us\n", (t1 - t0) / n * 1e6, (t3 - t2) / n * 1e6, (t5 - t4) / n * 1e6, (t6 - t5) / n * 1e6);
    return 0;
}
