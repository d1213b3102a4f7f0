// SPDX-License-Identifier: GPL-2.0
/*
 * kpages - lab 4's truth: the KSM pages of the whole machine, counted
 * from the frames themselves (/proc/kpageflags, /proc/kpagecount), not
 * through the stable tree.  The grader compares the census recount, which
 * reaches each KSM page through pksm_node_folio(), with this count.
 *
 *   kpages NAME
 *	PKSMTB-EVENT NAME shared=S sharing=T
 *
 * shared: frames flagged KSM that are mapped; sharing: their further
 * mappings (map count less one, summed), as pages_shared and
 * pages_sharing count them.
 *
 *   kpages --save FILE
 *	the pfns of the frames flagged KSM now, one a line, into FILE
 *
 *   kpages --migrate BEFORE NAME
 *	PKSMTB-EVENT NAME live=L migrated=M failed=F reused=R
 *
 * moves every KSM page there is now (the live ones) to another frame
 * through PKSM's debugfs migrate, as compaction would, and counts the
 * moved pages that landed on a frame that was a KSM page in BEFORE (a
 * --save file) and is not one of the live ones: a frame whose KSM page
 * was freed since.  While pksmd sleeps, the stable node of that freed
 * page is still in the tree (stale), naming a frame that now holds a KSM
 * page of another node: only the ->mapping check tells them apart.
 * After each move a fresh page of this program's own takes the frame the
 * move freed, so that the next move is given a frame freed before, not
 * the one just left.
 *
 * Exit status: 0 done, 1 the files cannot be read or written (root,
 * CONFIG_PROC_PAGE_MONITOR, debugfs), 2 bad usage.
 */
#define _GNU_SOURCE
#define PROG "kpages"
#include <sys/mman.h>
#include "util.h"

#define CHUNK 4096
#define MIGRATE "/sys/kernel/debug/pksm/migrate"

static int kf = -1, kc = -1;

/* Frames flagged KSM and mapped: their pfns (*pfns, malloc'd) and counts. */
static long ksm_frames(long **pfns, long *sharing)
{
	static uint64_t flags[CHUNK], count[CHUNK];
	long n = 0, cap = 0;

	*pfns = NULL;
	*sharing = 0;
	for (off_t at = 0;; at += (off_t)sizeof(flags)) {
		ssize_t nf = pread(kf, flags, sizeof(flags), at);
		ssize_t nc = pread(kc, count, sizeof(count), at);

		if (nf < 0 || nc < 0) {
			perror(PROG ": read /proc/kpageflags, /proc/kpagecount");
			exit(1);
		}
		if (nf > nc)
			nf = nc;
		for (ssize_t i = 0; i < nf / (ssize_t)sizeof(uint64_t); i++) {
			if (!(flags[i] & (1ULL << KPF_KSM)) || !count[i])
				continue;
			if (n == cap) {
				cap = cap ? 2 * cap : 1024;
				*pfns = realloc(*pfns, (size_t)cap * sizeof(**pfns));
				if (!*pfns)
					exit(1);
			}
			(*pfns)[n++] = (long)(at / (off_t)sizeof(uint64_t)) + (long)i;
			*sharing += (long)count[i] - 1;
		}
		if (nf < (ssize_t)sizeof(flags))
			break;
	}
	return n;
}

static int in_sorted(const long *v, long n, long x)
{
	long lo = 0, hi = n;

	while (lo < hi) {
		long mid = lo + (hi - lo) / 2;

		if (v[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && v[lo] == x;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

static int save(const char *path)
{
	long *pfns, sharing, n = ksm_frames(&pfns, &sharing);
	FILE *f = fopen(path, "w");

	if (!f) {
		perror(path);
		return 1;
	}
	for (long i = 0; i < n; i++)
		fprintf(f, "%ld\n", pfns[i]);
	return fclose(f) ? 1 : 0;
}

static int migrate(const char *before_path, const char *name)
{
	long *before = NULL, nb = 0, cap = 0, *live, *after, sharing, nl, na;
	long moved = 0, failed = 0, reused = 0, pfn;
	FILE *f = fopen(before_path, "r");
	unsigned char *sink;
	int fd;

	if (!f) {
		perror(before_path);
		return 1;
	}
	while (fscanf(f, "%ld", &pfn) == 1) {
		if (nb == cap) {
			cap = cap ? 2 * cap : 1024;
			before = realloc(before, (size_t)cap * sizeof(*before));
			if (!before)
				return 1;
		}
		before[nb++] = pfn;
	}
	fclose(f);
	qsort(before, (size_t)nb, sizeof(*before), cmp_long);
	nl = ksm_frames(&live, &sharing);
	sink = mmap(NULL, (size_t)(nl + 1) * 4096, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fd = open(MIGRATE, O_WRONLY);
	if (sink == MAP_FAILED || fd < 0) {
		perror(PROG ": " MIGRATE);
		return 1;
	}
	for (long i = 0; i < nl; i++) {
		char buf[32];
		int len = snprintf(buf, sizeof(buf), "%ld", live[i]);

		if (pwrite(fd, buf, (size_t)len, 0) == len) {
			/* a page of our own, unique: it takes the frame just freed */
			*(long *)(sink + moved * 4096) = ~live[i];
			moved++;
		} else {
			failed++;
		}
	}
	close(fd);
	na = ksm_frames(&after, &sharing);
	for (long i = 0; i < na; i++)
		reused += in_sorted(before, nb, after[i]) && !in_sorted(live, nl, after[i]);
	pksmtb_event(name, "live=%ld migrated=%ld failed=%ld reused=%ld",
		     nl, moved, failed, reused);
	return 0;
}

int main(int argc, char **argv)
{
	long *pfns, sharing, shared;

	kf = open("/proc/kpageflags", O_RDONLY);
	kc = open("/proc/kpagecount", O_RDONLY);
	if (kf < 0 || kc < 0) {
		perror(PROG ": /proc/kpageflags, /proc/kpagecount");
		return 1;
	}
	if (argc == 3 && !strcmp(argv[1], "--save"))
		return save(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "--migrate"))
		return migrate(argv[2], argv[3]);
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: %s\n",
			PROG " EVENT-NAME | --save FILE | --migrate BEFORE EVENT-NAME");
		return 2;
	}
	shared = ksm_frames(&pfns, &sharing);
	pksmtb_event(argv[1], "shared=%ld sharing=%ld", shared, sharing);
	return 0;
}
