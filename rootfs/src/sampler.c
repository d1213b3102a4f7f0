/*
 * sampler - write memory-deduplication counters as CSV at a fixed interval.
 *
 * Columns:
 *   t_ms              CLOCK_MONOTONIC in milliseconds
 *   ksm_<name>        every regular file in /sys/kernel/mm/ksm/ that holds an
 *                     integer at start-up, sorted by name
 *   pksm_<name>       the same for /sys/kernel/mm/pksm/ (if it exists)
 *   mem_free_kb       MemFree from /proc/meminfo
 *   anon_pages_kb     AnonPages from /proc/meminfo
 *   daemon_cpu_ticks  utime+stime of the kernel thread "pksmd" (preferred)
 *                     or "ksmd"; -1 if there is none
 * A value that cannot be read in a sample is left empty.
 *
 * The sysfs files stay open and are re-read with pread.  Each line is
 * flushed and fsync'ed (the output may be a live-read hostfs file).  Runs
 * until SIGTERM/SIGINT (exit 0) or until --count samples were written.
 *
 * Usage: sampler [--interval MS] [--out FILE] [--count N]
 * Exit status: 0 ok, 1 runtime error, 2 bad usage.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROG "sampler"
#include "util.h"

#define PF_KTHREAD 0x00200000u

struct counter {
	char name[128]; /* column name, e.g. ksm_pages_shared */
	int fd;
};

static struct counter *counters;
static size_t ncounters;
static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

/* Read an integer from an open file; return 0 on success. */
static int read_int(int fd, long long *val)
{
	char buf[64], *end;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return -1;
	buf[n] = 0;
	errno = 0;
	*val = strtoll(buf, &end, 10);
	if (end == buf || errno)
		return -1;
	while (isspace((unsigned char)*end))
		end++;
	return *end ? -1 : 0;
}

static int cmp_counter(const void *a, const void *b)
{
	return strcmp(((const struct counter *)a)->name, ((const struct counter *)b)->name);
}

/* Add every integer-valued regular file of dir as a column prefix_<name>. */
static void scan_dir(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t first = ncounters;

	if (!d)
		return;
	while ((de = readdir(d))) {
		struct stat st;
		long long v;
		int fd;

		if (fstatat(dirfd(d), de->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode))
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (read_int(fd, &v) != 0 ||
		    strlen(prefix) + strlen(de->d_name) + 1 >= sizeof(counters->name)) {
			close(fd);
			continue;
		}
		struct counter *n = realloc(counters, (ncounters + 1) * sizeof(*n));
		if (!n) {
			fprintf(stderr, "sampler: out of memory\n");
			exit(1);
		}
		counters = n;
		snprintf(counters[ncounters].name, sizeof(counters->name), "%s%s",
			 prefix, de->d_name);
		counters[ncounters].fd = fd;
		ncounters++;
	}
	closedir(d);
	qsort(counters + first, ncounters - first, sizeof(*counters), cmp_counter);
}

/* Parse flags, utime and stime from a /proc/PID/stat line. */
static int parse_stat(const char *buf, unsigned *flags, unsigned long long *ticks)
{
	const char *p = strrchr(buf, ')');
	unsigned long long ut, stt;

	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %u %*u %*u %*u %*u %llu %llu",
			 flags, &ut, &stt) != 3)
		return -1;
	*ticks = ut + stt;
	return 0;
}

/* Find the ksmd/pksmd kernel thread; return an open fd on its stat file. */
static int find_daemon(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int found = -1, found_is_pksmd = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char path[300], buf[512];
		unsigned flags;
		unsigned long long ticks;
		int fd, is_pksmd;
		ssize_t n;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		if (!strcmp(buf, "pksmd\n"))
			is_pksmd = 1;
		else if (!strcmp(buf, "ksmd\n"))
			is_pksmd = 0;
		else
			continue;
		if (found >= 0 && (found_is_pksmd || !is_pksmd))
			continue;

		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		if (n > 0)
			buf[n] = 0;
		if (n <= 0 || parse_stat(buf, &flags, &ticks) != 0 || !(flags & PF_KTHREAD)) {
			close(fd);
			continue;
		}
		if (found >= 0)
			close(found);
		found = fd;
		found_is_pksmd = is_pksmd;
	}
	closedir(d);
	return found;
}

/* CPU ticks of the daemon, re-finding it if it went away; -1 if none. */
static long long daemon_ticks(int *fd)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		char buf[512];
		unsigned flags;
		unsigned long long ticks;
		ssize_t n;

		if (*fd < 0)
			*fd = find_daemon();
		if (*fd < 0)
			return -1;
		n = pread(*fd, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			buf[n] = 0;
			if (parse_stat(buf, &flags, &ticks) == 0)
				return (long long)ticks;
		}
		close(*fd);
		*fd = -1;
	}
	return -1;
}

/* Find "Key:   123 kB" in meminfo text. */
static long long meminfo_field(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = text; p && *p;) {
		if (!strncmp(p, key, klen) && p[klen] == ':')
			return strtoll(p + klen + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: sampler [options]\n"
		"Write KSM/PKSM counters, memory and daemon CPU as CSV at a fixed interval.\n"
		"  --interval MS   sample interval, 10..60000 ms (default 200)\n"
		"  --out FILE      output file (default stdout); flushed+fsynced per line\n"
		"  --count N       stop after N samples (default 0 = until SIGTERM/SIGINT)\n"
		"  --help          show this help\n");
}

static void emit(FILE *out, const char *line)
{
	static int fsync_warned;

	if (fputs(line, out) == EOF || fflush(out) == EOF) {
		perror("sampler: write");
		exit(1);
	}
	if (fsync(fileno(out)) != 0 && errno != EINVAL && errno != EROFS &&
	    errno != ENOTSUP && !fsync_warned) {
		perror("sampler: fsync");
		fsync_warned = 1;
	}
}

struct options {
	long interval_ms;	/* between samples */
	long count;		/* samples to take; 0: until SIGTERM/SIGINT */
	const char *out_path;	/* NULL: stdout */
};

static void parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "out", required_argument, NULL, 'o' },
		{ "count", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'i': o->interval_ms = parse_long("interval", optarg, 10, 60000); break;
		case 'o': o->out_path = optarg; break;
		case 'c': o->count = parse_long("count", optarg, 0, 1000000000L); break;
		case 'h': usage(stdout); exit(0);
		default:
			fprintf(stderr, "Try 'sampler --help'.\n");
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sampler: unexpected argument '%s'\nTry 'sampler --help'.\n",
			argv[optind]);
		exit(2);
	}
}

static void stop_on_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: wake the sleep */
	sigaction(SIGINT, &sa, NULL);
}

/* The CSV header: t_ms, every counter, the memory and daemon columns. */
static void header_line(char *line, size_t cap)
{
	size_t len = (size_t)snprintf(line, cap, "t_ms");

	for (size_t i = 0; i < ncounters; i++)
		len += (size_t)snprintf(line + len, cap - len, ",%s", counters[i].name);
	snprintf(line + len, cap - len, ",mem_free_kb,anon_pages_kb,daemon_cpu_ticks\n");
}

/* Sleep until the next sample is due (never to catch up); 0 if stopped. */
static int wait_next(struct timespec *next, long interval_ms)
{
	struct timespec now;

	next->tv_nsec += (interval_ms % 1000) * 1000000L;
	next->tv_sec += interval_ms / 1000 + next->tv_nsec / 1000000000L;
	next->tv_nsec %= 1000000000L;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec > next->tv_sec ||
	    (now.tv_sec == next->tv_sec && now.tv_nsec > next->tv_nsec))
		*next = now; /* fell behind: don't try to catch up */
	while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL) == EINTR)
		;
	return !stop;
}

static size_t add_field(char *line, size_t len, size_t cap, long long v, int ok)
{
	return len + (size_t)(ok ? snprintf(line + len, cap - len, ",%lld", v) :
				   snprintf(line + len, cap - len, ","));
}

/* One CSV line: the time, every counter, MemFree, AnonPages, daemon ticks. */
static void sample_line(char *line, size_t cap, int meminfo_fd, int *daemon_fd)
{
	static char meminfo[65536];
	struct timespec ts;
	size_t len;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	len = (size_t)snprintf(line, cap, "%lld",
			       (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	for (size_t i = 0; i < ncounters; i++) {
		long long v = 0;
		int ok = read_int(counters[i].fd, &v) == 0;

		len = add_field(line, len, cap, v, ok);
	}
	ssize_t m = meminfo_fd >= 0 ? pread(meminfo_fd, meminfo, sizeof(meminfo) - 1, 0) : -1;
	meminfo[m > 0 ? m : 0] = 0;
	long long free_kb = meminfo_field(meminfo, "MemFree");
	long long anon_kb = meminfo_field(meminfo, "AnonPages");

	len = add_field(line, len, cap, free_kb, free_kb >= 0);
	len = add_field(line, len, cap, anon_kb, anon_kb >= 0);
	snprintf(line + len, cap - len, ",%lld\n", daemon_ticks(daemon_fd));
}

int main(int argc, char **argv)
{
	struct options o = { .interval_ms = 200 };
	struct timespec next;
	FILE *out = stdout;

	parse_args(argc, argv, &o);
	if (o.out_path && !(out = fopen(o.out_path, "w"))) {
		fprintf(stderr, "sampler: %s: %s\n", o.out_path, strerror(errno));
		return 1;
	}
	stop_on_signals();
	scan_dir("/sys/kernel/mm/ksm", "ksm_");
	scan_dir("/sys/kernel/mm/pksm", "pksm_");
	int meminfo_fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
	int daemon_fd = find_daemon();
	size_t cap = 64 + ncounters * 160;
	char *line = malloc(cap);

	if (!line) {
		fprintf(stderr, "sampler: out of memory\n");
		return 1;
	}
	header_line(line, cap);
	emit(out, line);
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (long n = 0; !stop && (o.count == 0 || n < o.count); n++) {
		if (n > 0 && !wait_next(&next, o.interval_ms))
			break;
		sample_line(line, cap, meminfo_fd, &daemon_fd);
		emit(out, line);
	}
	if (out != stdout && fclose(out) != 0) {
		perror("sampler: close");
		return 1;
	}
	return 0;
}
