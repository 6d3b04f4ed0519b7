// A guest program whose syscalls the hypervisor must see exactly, for the syscalls scenario.
// Usage: vmi-sysprobe TAG PORT EXEC_PATH [DENIED_PATH]
//   openat   /tmp/vmi-marker-TAG (created, then closed)
//   getppid  37 times
//   connect  127.0.0.1:PORT (nobody listens: ECONNREFUSED is expected)
//   execve   EXEC_PATH in a child, which must run
//   execve   DENIED_PATH in a child, which the hypervisor should refuse with an error
// Prints what it did and what the guest kernel answered, one "SYSPROBE key=value" line each.
//        vmi-sysprobe --bench N: time N getppid calls, print "SYSBENCH ns_per_call=X".
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GETPPID_CALLS 37

/* Run @path in a child; returns the child's exit status, or 1000 + errno if execve failed. */
static int run_child(const char *path)
{
	int pipefd[2], status = 0, err = 0;
	pid_t pid;

	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (pid == 0) {
		char *const argv[] = { (char *)path, "--exit", NULL };

		close(pipefd[0]);
		syscall(SYS_execve, path, argv, NULL);
		err = errno;
		if (write(pipefd[1], &err, sizeof(err)) < 0)
			_exit(126);
		_exit(127);
	}
	printf("SYSPROBE child=%d path=%s\n", (int)pid, path);
	fflush(stdout);
	close(pipefd[1]);
	if (read(pipefd[0], &err, sizeof(err)) != sizeof(err))
		err = 0;
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	return err ? 1000 + err : WEXITSTATUS(status);
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int bench(long n)
{
	long long t0 = now_ns();
	long i;

	for (i = 0; i < n; i++)
		syscall(SYS_getppid);
	printf("SYSBENCH ns_per_call=%lld\n", (now_ns() - t0) / (n ? n : 1));
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	char marker[128];
	int fd, i, ret;

	if (argc == 3 && !strcmp(argv[1], "--bench"))
		return bench(atol(argv[2]));
	if (argc < 4) {
		fprintf(stderr, "usage: vmi-sysprobe TAG PORT EXEC_PATH [DENIED_PATH]\n");
		return 2;
	}
	printf("SYSPROBE pid=%d run=%s\n", (int)getpid(), argv[1]);
	fflush(stdout);

	snprintf(marker, sizeof(marker), "/tmp/vmi-marker-%s", argv[1]);
	fd = (int)syscall(SYS_openat, AT_FDCWD, marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	printf("SYSPROBE openat=%s fd=%d\n", marker, fd);
	fflush(stdout);
	close(fd);

	for (i = 0; i < GETPPID_CALLS; i++)
		syscall(SYS_getppid);
	printf("SYSPROBE getppid=%d\n", GETPPID_CALLS);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	addr.sin_port = htons((unsigned short)atoi(argv[2]));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ret = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
	printf("SYSPROBE connect=127.0.0.1:%s ret=%d errno=%d\n", argv[2], ret,
	       ret ? errno : 0);
	close(fd);

	printf("SYSPROBE exec=%s status=%d\n", argv[3], run_child(argv[3]));
	if (argc > 4)
		printf("SYSPROBE denied-exec=%s status=%d\n", argv[4], run_child(argv[4]));
	printf("SYSPROBE done\n");
	fflush(stdout);
	return 0;
}
