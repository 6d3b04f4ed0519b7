// Guest behaviours for the policy scenario: each mode does one thing an attacker or a
// package manager does, as the process it is run as (copy it to the name the test needs).
// Every mode first prints the guest's own view of the process, one line:
//   VMI-PROC mode=MODE pid=P ppid=PP comm=C uid=U euid=E exe=X
// Usage: vmi-attack shadow [PATH]  open PATH (default /etc/shadow) read-only and read it
//        vmi-attack setuid          setresuid(1000, 1000, 1000), wait 1 s (so a process
//                                   listing sees uid 1000), then setuid(0), which must fail
//        vmi-attack dropper         a program run from /tmp: report, linger 1 s, exit
//        vmi-attack dpkg            install like dpkg: read its database and /etc files, write
//                                   each file as FILE.dpkg-new, fsync, chmod, rename to FILE
// Results are "VMI-ATTACK key=value" lines (errno numbers as the guest kernel gave them).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* One line, one write(): several guest processes share the console. */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(1, buf, (size_t)n) < 0)
		_exit(3);
}

static void read_small(const char *path, char *out, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, out, size - 1);

	if (fd >= 0)
		close(fd);
	if (n < 0)
		n = 0;
	out[n] = 0;
	out[strcspn(out, "\n")] = 0;
}

static void report(const char *mode)
{
	char comm[32], exe[256];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	exe[n < 0 ? 0 : n] = 0;
	read_small("/proc/self/comm", comm, sizeof(comm));
	say("VMI-PROC mode=%s pid=%d ppid=%d comm=%s uid=%d euid=%d exe=%s", mode, (int)getpid(),
	    (int)getppid(), comm, (int)getuid(), (int)geteuid(), exe);
}

static void linger_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int shadow(const char *path)
{
	char buf[4096];
	long total = 0;
	ssize_t n;
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		say("VMI-ATTACK shadow path=%s fd=-1 errno=%d", path, errno);
		return 1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	close(fd);
	say("VMI-ATTACK shadow path=%s fd=%d bytes=%ld", path, fd, total);
	return 0;
}

static int setuid_root(void)
{
	long ret;

	if (setresuid(1000, 1000, 1000)) {
		say("VMI-ATTACK setresuid=1000 ret=-1 errno=%d", errno);
		return 1;
	}
	report("setuid-dropped");
	linger_ms(1000);
	ret = syscall(SYS_setuid, 0);
	say("VMI-ATTACK setuid=0 ret=%ld errno=%d uid=%d euid=%d", ret, ret ? errno : 0,
	    (int)getuid(), (int)geteuid());
	return ret == 0; /* success would be a guest kernel bug */
}

/* Write @path the way dpkg does: a .dpkg-new file beside it, synced, then renamed. */
static int install_file(const char *path, const char *content, mode_t mode)
{
	char tmp[256];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.dpkg-new", path);
	fd = (int)syscall(SYS_openat, AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, content, strlen(content)) < 0 || fsync(fd) || fchmod(fd, mode)) {
		say("VMI-ATTACK dpkg file=%s errno=%d", tmp, errno);
		return 1;
	}
	close(fd);
	if (rename(tmp, path)) {
		say("VMI-ATTACK dpkg rename=%s errno=%d", path, errno);
		return 1;
	}
	say("VMI-ATTACK dpkg installed=%s", path);
	return 0;
}

static int dpkg(void)
{
	static const char *const reads[] = { "/var/lib/dpkg/status", "/etc/passwd", "/etc/group",
					     "/etc/os-release" };
	char line[128];
	int rc = 0;
	size_t i;

	for (i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
		read_small(reads[i], line, sizeof(line));
	mkdir("/usr/lib/vmi-pkg", 0755);
	rc |= install_file("/usr/lib/vmi-pkg/libvmi-pkg.so.1", "\177ELF not really\n", 0644);
	rc |= install_file("/usr/lib/vmi-pkg/vmi-pkg.conf", "enabled=1\n", 0644);
	rc |= install_file("/usr/bin/vmi-pkg-tool", "#!/bin/sh\necho vmi-pkg-tool\n", 0755);
	rc |= install_file("/var/lib/dpkg/info/vmi-pkg.list",
			   "/usr/lib/vmi-pkg/libvmi-pkg.so.1\n/usr/bin/vmi-pkg-tool\n", 0644);
	say("VMI-ATTACK dpkg done rc=%d", rc);
	return rc;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	if (!strcmp(mode, "shadow")) {
		report(mode);
		return shadow(argc > 2 ? argv[2] : "/etc/shadow");
	}
	if (!strcmp(mode, "setuid")) {
		report(mode);
		return setuid_root();
	}
	if (!strcmp(mode, "dropper")) {
		report(mode);
		linger_ms(1000);
		return 0;
	}
	if (!strcmp(mode, "dpkg")) {
		report(mode);
		return dpkg();
	}
	fprintf(stderr, "usage: vmi-attack shadow [PATH] | setuid | dropper | dpkg\n");
	return 2;
}
