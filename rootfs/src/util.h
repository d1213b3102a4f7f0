/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the testbed's guest programs share: strict parsing of numeric
 * options, the pagemap/kpageflags reader, and the printer of the console
 * protocol's event lines (harness/pksmtb/console.py reads them):
 *
 *   PKSMTB-EVENT <name> k=v k=v ...
 *
 * A program defines PROG (its name, for messages) before including this.
 * Everything is static inline: a program uses what it needs.
 */
#ifndef PKSMTB_UTIL_H
#define PKSMTB_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef PROG
#error "define PROG (the program's name) before including util.h"
#endif

/* ---- options ------------------------------------------------------------ */

/* "PROG: invalid value 'VAL' for --OPT: expected WHAT", exit status 2. */
static inline void __attribute__((noreturn))
bad_value(const char *opt, const char *val, const char *what)
{
	fprintf(stderr, PROG ": invalid value '%s' for --%s: expected %s\n", val, opt, what);
	fprintf(stderr, "Try '" PROG " --help'.\n");
	exit(2);
}

/* A decimal integer lo..hi, or bad_value(). */
static inline long parse_long(const char *opt, const char *s, long lo, long hi)
{
	char *end, what[80];
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end || errno || v < lo || v > hi) {
		snprintf(what, sizeof(what), "an integer %ld..%ld", lo, hi);
		bad_value(opt, s, what);
	}
	return v;
}

/* A finite number lo..hi, or bad_value(). */
static inline double parse_double(const char *opt, const char *s, double lo, double hi)
{
	char *end, what[80];
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || !isfinite(v) || v < lo || v > hi) {
		snprintf(what, sizeof(what), "a number %.10g..%.10g", lo, hi);
		bad_value(opt, s, what);
	}
	return v;
}

/* ---- pagemap and kpageflags (both need root) ------------------------------ */

/* /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h) */
#define KPF_KSM 21
#define KPF_ZERO_PAGE 24
/* /proc/self/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PM_PRESENT (1ULL << 63)
#define PM_PFN_MASK ((1ULL << 55) - 1)

/*
 * The frame of page @index (an address / the page size) of the process
 * whose pagemap @pm is open, and that frame's /proc/kpageflags (@kf) in
 * *@flags: 1, 0 if the page is not present, -1 if a read failed.
 */
static inline int page_frame(int pm, int kf, uintptr_t index, uint64_t *pfn,
			     uint64_t *flags)
{
	uint64_t ent;

	if (pread(pm, &ent, sizeof(ent), (off_t)(index * 8)) != sizeof(ent))
		return -1;
	*pfn = ent & PM_PFN_MASK;
	if (!(ent & PM_PRESENT) || !*pfn)
		return 0;
	if (pread(kf, flags, sizeof(*flags), (off_t)(*pfn * 8)) != sizeof(*flags))
		return -1;
	return 1;
}

/*
 * Count the pages of [base, base + npages pages) that map a KSM page
 * (*ksm) or the zero page (*zero, if not NULL): the pfn of each present
 * page from /proc/self/pagemap, its flags from /proc/kpageflags.
 * Returns 0, or -1 if they cannot be read.
 */
static inline int count_merged(const void *base, size_t npages, long *ksm, long *zero)
{
	long ps = sysconf(_SC_PAGESIZE);
	size_t page_size = ps > 0 ? (size_t)ps : 4096;
	uintptr_t first = (uintptr_t)base / page_size;
	/* this thread's: a process's own is gone once its first thread exits */
	int pm = open("/proc/thread-self/pagemap", O_RDONLY);
	int kf = open("/proc/kpageflags", O_RDONLY);
	long k = 0, z = 0;
	int ret = -1;

	if (pm < 0 || kf < 0)
		goto out;
	for (size_t i = 0; i < npages; i++) {
		uint64_t pfn, flags;
		int got = page_frame(pm, kf, first + i, &pfn, &flags);

		if (got < 0)
			goto out;
		if (!got)
			continue;
		k += !!(flags & (1ULL << KPF_KSM));
		z += !!(flags & (1ULL << KPF_ZERO_PAGE));
	}
	ret = 0;
out:
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	*ksm = ret ? 0 : k;
	if (zero)
		*zero = ret ? 0 : z;
	return ret;
}

/* ---- sysfs files and cgroups (root) -------------------------------------- */

/* Write @text to the file @path (a sysfs or cgroup file): 0 or -1 (errno). */
static inline int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

#define CGROOT "/sys/fs/cgroup"

/*
 * cgroup2 at CGROOT (mounted if need be) with the memory controller
 * enabled for its children, and @n cgroups CGROOT/@prefix-0 .. -(n-1).
 * 0, or -1 with a message.
 */
static inline int cgroups_setup(const char *prefix, int n)
{
	char path[128];
	struct stat st;

	mkdir(CGROOT, 0755);
	if (stat(CGROOT "/cgroup.procs", &st) &&
	    mount("cgroup2", CGROOT, "cgroup2", 0, NULL)) {
		fprintf(stderr, PROG ": mounting cgroup2: %s\n", strerror(errno));
		return -1;
	}
	if (write_file(CGROOT "/cgroup.subtree_control", "+memory")) {
		fprintf(stderr, PROG ": enabling the memory controller: %s\n", strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), CGROOT "/%s-%d", prefix, i);
		if (mkdir(path, 0755) && errno != EEXIST) {
			fprintf(stderr, PROG ": mkdir %s: %s\n", path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Move process @pid into CGROOT/@prefix-@i: 0, or -1 with a message. */
static inline int cgroup_enter(const char *prefix, int i, pid_t pid)
{
	char path[128], text[32];

	snprintf(path, sizeof(path), CGROOT "/%s-%d/cgroup.procs", prefix, i);
	snprintf(text, sizeof(text), "%d", (int)pid);
	if (write_file(path, text)) {
		fprintf(stderr, PROG ": moving %d into %s: %s\n", (int)pid, path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- the console protocol ----------------------------------------------- */

/*
 * One "PKSMTB-EVENT NAME FIELDS" line on stdout, flushed at once (the
 * harness follows the console live).  FIELDS is a printf format of
 * "k=v" pairs separated by spaces; NULL or "" for none.
 */
static inline void __attribute__((format(printf, 2, 3)))
pksmtb_event(const char *name, const char *fields, ...)
{
	va_list ap;

	printf("PKSMTB-EVENT %s", name);
	if (fields && *fields) {
		putchar(' ');
		va_start(ap, fields);
		vprintf(fields, ap);
		va_end(ap);
	}
	putchar('\n');
	fflush(stdout);
}

#endif /* PKSMTB_UTIL_H */
