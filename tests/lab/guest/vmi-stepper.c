// A guest debugger's view under syscall traps: single-step (TF) a child through its syscalls
// with ptrace. Prints "STEPPER ok steps=N" when the child ran to its normal exit under
// single-stepping, "STEPPER FAIL ..." otherwise.
#include <signal.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_STEPS 2000000L

int main(void)
{
	long steps = 0;
	int status, i;
	pid_t pid = fork();

	if (pid == 0) {
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		raise(SIGSTOP);
		for (i = 0; i < 5; i++)
			syscall(SYS_getppid);
		syscall(SYS_exit_group, 7);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
		printf("STEPPER FAIL child did not stop\n");
		return 1;
	}
	while (steps < MAX_STEPS) {
		if (ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL) != 0 ||
		    waitpid(pid, &status, 0) != pid)
			break;
		if (!WIFSTOPPED(status))
			break;
		if (WSTOPSIG(status) != SIGTRAP) {
			printf("STEPPER FAIL signal %d after %ld steps\n", WSTOPSIG(status), steps);
			return 1;
		}
		steps++;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 7) {
		printf("STEPPER ok steps=%ld\n", steps);
		return 0;
	}
	printf("STEPPER FAIL status 0x%x after %ld steps\n", status, steps);
	return 1;
}
