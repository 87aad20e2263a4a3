/* An execve from a thread that is not its process's first: with exec gates
 * it is refused (EPERM), since its exec would take the group's pid. Prints
 * "thread: EPERM" (or the errno, or runs PROGRAM). Usage: thread_exec PROGRAM */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;
static const char *program;

static void *run(void *arg) {
    (void)arg;
    char *av[] = {(char *)program, NULL};
    execve(program, av, environ);
    printf("thread: %s\n", errno == EPERM ? "EPERM" : strerror(errno));
    fflush(stdout);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    program = argv[1];
    pthread_t t;
    pthread_create(&t, NULL, run, NULL);
    pthread_join(t, NULL);
    return 0;
}
