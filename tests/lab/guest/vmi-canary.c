// A do-nothing guest process with a distinctive name, for lab scenarios.
// Usage: vmi-canary [CHILD_PATH]  — with CHILD_PATH, also fork and exec it as a child.
// Prints "CANARY-CHILD <pid>" for the child it started, then sleeps until killed.
//        vmi-canary --exit        — exits at once with status 42 (an exec target).
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--exit"))
		return 42;
	if (argc > 1) {
		pid_t pid = fork();

		if (pid == 0) {
			char *const child_argv[] = { argv[1], NULL };

			execv(argv[1], child_argv);
			_exit(127);
		}
		printf("CANARY-CHILD %d\n", (int)pid);
		fflush(stdout);
	}
	for (;;)
		pause();
}
