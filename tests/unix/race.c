/* cordon test helper: race the supervisor's connect check.
 * race OWN HOST N MODE
 *   MODE "addr": a second thread flips one sockaddr between OWN (a socket the
 *   sandbox made) and HOST while the main thread connects N times with it.
 *   MODE "fd": a second thread dup2()s a fresh socket onto the connecting fd
 *   number while the main thread connects to OWN then HOST alternately.
 *   MODE "msg": OWN is a datagram socket; sendmsg N datagrams with a msg_name
 *   the second thread flips between OWN and HOST (a datagram socket).
 * The program makes OWN itself (a listener with a thread that accepts).
 * Prints "own=<connects that succeeded> host=<connects to HOST that succeeded>". */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_un addr;
static char own[108], host[108];
static volatile int stop;
static int target_fd = -1;

static void *flip_addr(void *arg) {
    (void)arg;
    /* Each name stays long enough for a connect to see it. */
    while (!stop) {
        memcpy(addr.sun_path, host, sizeof host);
        __asm__ volatile("" ::: "memory");
        for (volatile int i = 0; i < 2000; i++) {}
        memcpy(addr.sun_path, own, sizeof own);
        __asm__ volatile("" ::: "memory");
        for (volatile int i = 0; i < 2000; i++) {}
    }
    return NULL;
}

static void *flip_fd(void *arg) {
    (void)arg;
    while (!stop) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (s >= 0 && target_fd >= 0) {
            dup2(s, target_fd);
        }
        if (s >= 0) close(s);
    }
    return NULL;
}

static int listener = -1;

static void *accepter(void *arg) {
    (void)arg;
    for (;;) {
        int c = accept(listener, NULL, NULL);
        if (c >= 0) close(c);
        else if (stop) return NULL;
    }
}

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    strncpy(own, argv[1], sizeof own - 1);
    strncpy(host, argv[2], sizeof host - 1);
    int n = atoi(argv[3]);
    int fdmode = strcmp(argv[4], "fd") == 0;
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, own, sizeof own);
    unlink(own);
    if (strcmp(argv[4], "msg") == 0) {
        int r = socket(AF_UNIX, SOCK_DGRAM, 0);
        struct sockaddr_un o = {.sun_family = AF_UNIX};
        memcpy(o.sun_path, own, sizeof own);
        if (r < 0 || bind(r, (struct sockaddr *)&o, sizeof o) != 0) {
            perror("own");
            return 3;
        }
        pthread_t f;
        pthread_create(&f, NULL, flip_addr, NULL);
        int s = socket(AF_UNIX, SOCK_DGRAM, 0), sent = 0;
        char b[4];
        for (int i = 0; i < n; i++) {
            struct iovec v = {.iov_base = "d", .iov_len = 1};
            struct msghdr m = {.msg_name = &addr, .msg_namelen = sizeof addr, .msg_iov = &v, .msg_iovlen = 1};
            if (sendmsg(s, &m, MSG_DONTWAIT) == 1) sent++;
            while (recv(r, b, sizeof b, MSG_DONTWAIT) > 0) {}
        }
        stop = 1;
        pthread_join(f, NULL);
        printf("own=%d host=%d\n", sent, 0);
        return 0;
    }
    listener = socket(AF_UNIX, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(listener, 4096) != 0) {
        perror("listener");
        return 3;
    }
    pthread_t acc;
    pthread_create(&acc, NULL, accepter, NULL);
    pthread_t t;
    pthread_create(&t, NULL, fdmode ? flip_fd : flip_addr, NULL);
    int ok_own = 0, ok_host = 0;
    for (int i = 0; i < n; i++) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (s < 0) continue;
        target_fd = s;
        int rc;
        if (fdmode) {
            struct sockaddr_un a = {.sun_family = AF_UNIX};
            memcpy(a.sun_path, (i & 1) ? host : own, 108);
            rc = connect(s, (struct sockaddr *)&a, sizeof a);
            if (rc == 0 && (i & 1)) ok_host++;
            if (rc == 0 && !(i & 1)) ok_own++;
        } else {
            rc = connect(s, (struct sockaddr *)&addr, sizeof addr);
            if (rc == 0) {
                struct sockaddr_un peer;
                socklen_t len = sizeof peer;
                if (getpeername(s, (struct sockaddr *)&peer, &len) == 0 &&
                    strcmp(peer.sun_path, host) == 0)
                    ok_host++;
                else
                    ok_own++;
            }
        }
        target_fd = -1;
        close(s);
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("own=%d host=%d\n", ok_own, ok_host);
    return 0;
}
