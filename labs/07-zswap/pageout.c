// SPDX-License-Identifier: GPL-2.0
/*
 * pageout - lab 7's measuring program: what PKSM's reclaim hook
 * (pksm/mm/pksm/swap.c) does with each kind of page reclaim is about to
 * swap, with /sys/kernel/mm/pksm/swap_dedup on and off.
 *
 * Reclaim is asked for, not waited for: madvise(MADV_PAGEOUT) hands a
 * range's pages to shrink_folio_list(), the function memory pressure
 * runs, so every page of the range goes down the path pressure would send
 * it, and the counters read around each call count that range alone.
 *
 *  1. A library: a child fills 2 x LIB pages, each of LIB contents twice,
 *     and waits until pksmd (probation_scans = 0) has merged them: LIB
 *     KSM pages in the stable tree.  Meanwhile pksmd also visits the
 *     "seen" pages' partners (unique contents, filled first): they wait in
 *     its unstable table.  Then pages_to_scan = 0: pksmd, still running
 *     (run = 1, which the hook needs), visits no page from here on, so
 *     every merge below is the hook's.
 *  2. Round "on" (swap_dedup = 1): a region of zero pages (written, so
 *     really faulted in), pages equal to a library page, twins (pairs of
 *     equal pages found nowhere else), unique pages and "seen" pages
 *     (each equal to a partner in the unstable table) is filled; each
 *     kind is paged out in turn.  Then the "cycled" pages (unique content)
 *     are paged out (kind "first"), read back (swapped in), given the
 *     content of library pages, and paged out again (kind "cycled").
 *  3. Round "off" (swap_dedup = 0): a new region of zero, library, twin
 *     and unique pages (new twins and unique contents), each kind paged
 *     out in turn.
 *  4. The partners are written (their owner changes them), then every
 *     page of both regions is read and checked.
 *
 * One event a page-out, the counters' increase across it, and where its
 * pages are once it is done, read from the frames:
 *
 *   PKSMTB-EVENT lab7 round=on|off kind=K pages=N offered=.. checked=..
 *                zero=.. stable=.. deferred=.. misses=.. failures=..
 *                busy=.. stored=.. zerofilled=.. written=.. slots=..
 *                compress=.. pool=.. rescan=.. mapzero=.. mapksm=..
 *                resident=.. swapped=.. foreign=..
 *
 * offered ... busy: /sys/kernel/mm/pksm/swap_offered, swap_checked,
 * swap_zero_merges, swap_stable_merges, swap_deferred, swap_misses,
 * swap_failures, swap_busy; stored, zerofilled, written: /proc/vmstat's
 * zswpout (pages zswap compressed and stored), swpout_zero (zero-filled
 * pages swap only marked in its zero map), pswpout (pages written to the
 * device); slots: swap slots taken (SwapTotal - SwapFree, in pages);
 * compress: the pages zswap tried to compress (zswpout and its rejects:
 * /sys/kernel/debug/zswap/reject_compress_poor, reject_compress_fail,
 * reject_alloc_fail); pool: bytes zswap's pool grew by (pool_total_size);
 * rescan: items pksmd's rescan list grew by (/sys/kernel/mm/pksm/
 * rescan_list: pages put first in its line).  The frames, from
 * /proc/self/pagemap and /proc/kpageflags: mapzero, mapksm: pages mapping
 * the zero page, a KSM page; resident: present on any other frame;
 * swapped: swap entries; foreign: of the resident, pages on a frame one
 * of the partners maps (seen pages only).  The counters are PKSM's and
 * the kernel's; the frames are what the page-out did, whoever counted it.
 * Besides: lab7lib (the library merged); lab7verify, one a kind a round
 * (bad: pages whose content is not what was written last); lab7done
 * (verified=ok|fail).
 *
 * Usage: pageout --zero N --library N --twin N --unique N --seen N
 *                --cycled N [--seed S] [--contents LIB]
 * Exit status: 0 measured and verified, 1 failure, 2 bad usage.
 */
#define _GNU_SOURCE
#define PROG "pageout"
#include <getopt.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "util.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
/* /proc/self/pagemap: a swap entry */
#define PM_SWAP (1ULL << 62)

#define PKSM "/sys/kernel/mm/pksm/"
#define KSM "/sys/kernel/mm/ksm/"
#define ZSWAP "/sys/kernel/debug/zswap/"
#define MAX_KIND 4096		/* pages of one kind, at most */
#define LIB_WAIT_S 60		/* the library must merge within this */

enum kind { ZERO, LIBRARY, TWIN, UNIQUE, SEEN, CYCLED, NKINDS };
static const char *const kind_name[NKINDS] = {
	"zero", "library", "twin", "unique", "seen", "cycled"
};
static long count[NKINDS];
static long lib = 64;
static uint64_t seed = 1;
static size_t page;
static char *partners;		/* the seen pages' partners */
static int pagemap_fd = -1, kpageflags_fd = -1;

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * Content number KEY: each word's two low bytes from a stream (the rest
 * zero: content zswap's compressor can shrink, as real memory is), one
 * word never zero.
 */
static void fill(uint64_t *p, uint64_t key)
{
	for (size_t w = 0; w < page / 8; w++)
		p[w] = mix(key * 0x9e3779b97f4a7c15ULL + w) & 0xffff;
	p[0] |= 1;
}

static uint64_t lib_key(long i)
{
	return 0x4c4942000000ULL + (uint64_t)(i % lib);
}

/* The content of page I of a region of kind K in round R (0 on, 1 off). */
static uint64_t key_of(enum kind k, long i, int r)
{
	uint64_t s = mix(seed ^ ((uint64_t)r << 40) ^ ((uint64_t)k << 32));

	switch (k) {
	case LIBRARY:
		return lib_key(i);
	case TWIN:
		return s ^ (uint64_t)(i / 2);
	case SEEN:		/* as its partner's, in either round */
		return mix(seed ^ ((uint64_t)k << 32)) ^ (uint64_t)i;
	default:
		return s ^ (uint64_t)i;
	}
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v;

	if (!f || fscanf(f, "%ld", &v) != 1) {
		fprintf(stderr, PROG ": cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	return v;
}

static void put(const char *path, long v)
{
	FILE *f = fopen(path, "w");

	if (!f || fprintf(f, "%ld\n", v) < 0 || fclose(f)) {
		fprintf(stderr, PROG ": cannot write %ld to %s\n", v, path);
		exit(1);
	}
}

/* The value of line NAME in FILE ("NAME VALUE" or "NAME: VALUE kB"). */
static long field(const char *file, const char *name)
{
	FILE *f = fopen(file, "r");
	char line[256];
	size_t n = strlen(name);
	long v = -1;

	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, n) && (line[n] == ' ' || line[n] == ':')) {
			v = strtol(line + n + 1 + (line[n] == ':'), NULL, 10);
			break;
		}
	}
	if (f)
		fclose(f);
	if (v < 0) {
		fprintf(stderr, PROG ": no %s in %s\n", name, file);
		exit(1);
	}
	return v;
}

static const char *const counter[] = {
	"offered", "checked", "zero", "stable", "deferred", "misses", "failures",
	"busy", "stored", "zerofilled", "written", "slots", "compress", "pool",
	"rescan",
};
#define NCOUNTERS (sizeof(counter) / sizeof(counter[0]))

/* Where a range's pages are, from the frames. */
enum { MAPZERO, MAPKSM, RESIDENT, SWAPPED, FOREIGN, NPLACES };
static const char *const place[NPLACES] = {
	"mapzero", "mapksm", "resident", "swapped", "foreign",
};

static void snap(long *v)
{
	static const char *const sys[] = {
		"swap_offered", "swap_checked", "swap_zero_merges", "swap_stable_merges",
		"swap_deferred", "swap_misses", "swap_failures", "swap_busy",
	};
	char path[128];
	size_t i;

	for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
		snprintf(path, sizeof(path), PKSM "%s", sys[i]);
		v[i] = read_long(path);
	}
	v[i++] = field("/proc/vmstat", "zswpout");
	v[i++] = field("/proc/vmstat", "swpout_zero");
	v[i++] = field("/proc/vmstat", "pswpout");
	v[i++] = (field("/proc/meminfo", "SwapTotal") - field("/proc/meminfo", "SwapFree")) /
		 (long)(page / 1024);
	v[i++] = v[8] + read_long(ZSWAP "reject_compress_poor") +
		 read_long(ZSWAP "reject_compress_fail") + read_long(ZSWAP "reject_alloc_fail");
	v[i++] = read_long(ZSWAP "pool_total_size");
	v[i++] = read_long(PKSM "rescan_list");
}

/* The frame of the page at P: 1 present (*pfn, *flags), 0 not (*ent), or exit. */
static int frame_of(const char *p, uint64_t *pfn, uint64_t *flags, uint64_t *ent)
{
	uintptr_t index = (uintptr_t)p / page;
	int got = page_frame(pagemap_fd, kpageflags_fd, index, pfn, flags);

	if (got < 0 || pread(pagemap_fd, ent, sizeof(*ent), (off_t)(index * 8)) != sizeof(*ent)) {
		perror(PROG ": reading /proc/self/pagemap or /proc/kpageflags");
		exit(1);
	}
	return got;
}

/*
 * Where the N pages at BASE are (enum of place[]); FOREIGN: those resident
 * on a frame one of the partners maps, if OTHERS (the partners) is given.
 */
static void places(const char *base, long n, const char *others, long nothers, long *at)
{
	uint64_t pfn, flags, ent, *opfn = calloc((size_t)nothers + 1, sizeof(*opfn));

	if (!opfn) {
		perror(PROG ": calloc");
		exit(1);
	}
	for (long j = 0; others && j < nothers; j++) {
		if (!frame_of(others + j * page, &opfn[j], &flags, &ent))
			opfn[j] = 0;
	}
	memset(at, 0, NPLACES * sizeof(*at));
	for (long i = 0; i < n; i++) {
		if (!frame_of(base + i * page, &pfn, &flags, &ent)) {
			at[SWAPPED] += !!(ent & PM_SWAP);
			continue;
		}
		if (flags & (1ULL << KPF_ZERO_PAGE)) {
			at[MAPZERO]++;
			continue;
		}
		if (flags & (1ULL << KPF_KSM)) {
			at[MAPKSM]++;
			continue;
		}
		at[RESIDENT]++;
		for (long j = 0; others && j < nothers; j++) {
			if (opfn[j] == pfn) {
				at[FOREIGN]++;
				break;
			}
		}
	}
	free(opfn);
}

/*
 * Page out N pages at BASE; one lab7 event with the counters' increase
 * and where the pages are then (OTHERS: the partners, for foreign).
 */
static void pageout(const char *round, const char *kind, char *base, long n,
		    const char *others, long nothers)
{
	long a[NCOUNTERS], b[NCOUNTERS], at_[NPLACES];
	char line[768];
	int at;

	snap(a);
	if (madvise(base, (size_t)n * page, MADV_PAGEOUT)) {
		perror(PROG ": madvise(MADV_PAGEOUT)");
		exit(1);
	}
	snap(b);
	places(base, n, others, nothers, at_);
	at = snprintf(line, sizeof(line), "round=%s kind=%s pages=%ld", round, kind, n);
	for (size_t i = 0; i < NCOUNTERS && at < (int)sizeof(line); i++)
		at += snprintf(line + at, sizeof(line) - (size_t)at, " %s=%ld", counter[i],
			       b[i] - a[i]);
	for (int i = 0; i < NPLACES && at < (int)sizeof(line); i++)
		at += snprintf(line + at, sizeof(line) - (size_t)at, " %s=%ld", place[i],
			       at_[i]);
	pksmtb_event("lab7", "%s", line);
}

static char *map(long n)
{
	char *p = mmap(NULL, (size_t)n * page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror(PROG ": mmap");
		exit(1);
	}
	madvise(p, (size_t)n * page, MADV_NOHUGEPAGE);
	return p;
}

/* The library: 2 x LIB pages, merged by pksmd; then it waits to be killed. */
static pid_t library(void)
{
	int fd[2];
	long got = -1;
	pid_t pid;

	if (pipe(fd)) {
		perror(PROG ": pipe");
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		perror(PROG ": fork");
		exit(1);
	}
	if (!pid) {
		char *p = map(2 * lib);
		long ksm = 0;

		close(fd[0]);
		for (long i = 0; i < 2 * lib; i++)
			fill((uint64_t *)(p + i * page), lib_key(i));
		for (int t = 0; t < LIB_WAIT_S * 10 && ksm < 2 * lib; t++) {
			usleep(100000);
			if (count_merged(p, (size_t)(2 * lib), &ksm, NULL))
				ksm = -1;
		}
		if (write(fd[1], &ksm, sizeof(ksm)) != sizeof(ksm))
			_exit(1);
		for (;;)
			pause();
	}
	close(fd[1]);
	if (read(fd[0], &got, sizeof(got)) != sizeof(got))
		got = -1;
	close(fd[0]);
	pksmtb_event("lab7lib", "contents=%ld pages=%ld merged=%ld", lib, 2 * lib, got);
	if (got != 2 * lib) {
		fprintf(stderr, PROG ": the library did not merge (%ld of %ld pages)\n",
			got, 2 * lib);
		kill(pid, SIGKILL);
		exit(1);
	}
	return pid;
}

struct region {
	char *base[NKINDS];
	int round;
};

static void fill_region(struct region *r, int round, int kinds)
{
	r->round = round;
	for (int k = 0; k < NKINDS; k++) {
		if (k >= kinds) {
			r->base[k] = NULL;
			continue;
		}
		r->base[k] = map(count[k]);
		for (long i = 0; i < count[k]; i++) {
			uint64_t *p = (uint64_t *)(r->base[k] + i * page);

			if (k == ZERO)
				p[0] = 0;	/* a write: a page of its own, zero */
			else
				fill(p, key_of(k, i, round));
		}
	}
}

/*
 * Pages of R whose content is not what was written last: 0 if none; one
 * lab7verify event a kind.
 */
static long check_region(const struct region *r)
{
	uint64_t *want = malloc(page);
	long bad = 0;

	if (!want) {
		perror(PROG ": malloc");
		exit(1);
	}
	for (int k = 0; k < NKINDS; k++) {
		long kbad = 0;

		if (!r->base[k])
			continue;
		for (long i = 0; i < count[k]; i++) {
			if (k == ZERO)
				memset(want, 0, page);
			else
				fill(want, k == CYCLED ? lib_key(i) : key_of(k, i, r->round));
			kbad += !!memcmp(r->base[k] + i * page, want, page);
		}
		pksmtb_event("lab7verify", "round=%s kind=%s pages=%ld bad=%ld",
			     r->round ? "off" : "on", kind_name[k], count[k], kbad);
		bad += kbad;
	}
	free(want);
	return bad;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"zero", required_argument, NULL, 'z'},
		{"library", required_argument, NULL, 'l'},
		{"twin", required_argument, NULL, 't'},
		{"unique", required_argument, NULL, 'u'},
		{"seen", required_argument, NULL, 'e'},
		{"cycled", required_argument, NULL, 'c'},
		{"seed", required_argument, NULL, 's'},
		{"contents", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct region on, off;
	uint64_t *want;
	long bad;
	int c, k;
	pid_t lib_pid;

	page = (size_t)sysconf(_SC_PAGESIZE);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'z': case 'l': case 't': case 'u': case 'e': case 'c':
			k = c == 'z' ? ZERO : c == 'l' ? LIBRARY : c == 't' ? TWIN :
			    c == 'u' ? UNIQUE : c == 'e' ? SEEN : CYCLED;
			count[k] = parse_long(kind_name[k], optarg, 1, MAX_KIND);
			break;
		case 's':
			seed = (uint64_t)parse_long("seed", optarg, 0, 1L << 40);
			break;
		case 'n':
			lib = parse_long("contents", optarg, 1, MAX_KIND);
			break;
		case 'h':
			printf("usage: " PROG " --zero N --library N --twin N --unique N "
			       "--seen N --cycled N [--seed S] [--contents LIB]\n");
			return 0;
		default:
			fprintf(stderr, "Try '" PROG " --help'.\n");
			return 2;
		}
	}
	for (k = 0; k < NKINDS; k++) {
		if (!count[k]) {
			fprintf(stderr, PROG ": --%s N is needed\n", kind_name[k]);
			return 2;
		}
	}
	if (count[TWIN] % 2) {
		fprintf(stderr, PROG ": --twin must be even (pairs)\n");
		return 2;
	}

	pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
	kpageflags_fd = open("/proc/kpageflags", O_RDONLY);
	if (pagemap_fd < 0 || kpageflags_fd < 0) {
		perror(PROG ": opening /proc/self/pagemap and /proc/kpageflags");
		return 1;
	}
	put(KSM "run", 1);
	put(PKSM "swap_dedup", 1);
	/*
	 * The seen pages' partners, for pksmd to file in its unstable table:
	 * this process's alone (not shared with the library's child by its
	 * fork), so that its writes change them in place.
	 */
	partners = map(count[SEEN]);
	if (madvise(partners, (size_t)count[SEEN] * page, MADV_DONTFORK)) {
		perror(PROG ": madvise(MADV_DONTFORK)");
		return 1;
	}
	for (long i = 0; i < count[SEEN]; i++)
		fill((uint64_t *)(partners + i * page), key_of(SEEN, i, 0));
	lib_pid = library();
	sleep(1);
	/* pksmd stays running (the hook needs run = 1) but visits nothing */
	put(KSM "pages_to_scan", 0);
	usleep(200000);

	fill_region(&on, 0, NKINDS);
	for (k = 0; k < CYCLED; k++)
		pageout("on", kind_name[k], on.base[k], count[k],
			k == SEEN ? partners : NULL, count[SEEN]);
	/* the cycled pages: out once, back in, then equal to library pages */
	pageout("on", "first", on.base[CYCLED], count[CYCLED], NULL, 0);
	want = malloc(page);
	if (!want) {
		perror(PROG ": malloc");
		return 1;
	}
	bad = 0;
	for (long i = 0; i < count[CYCLED]; i++) {
		uint64_t *p = (uint64_t *)(on.base[CYCLED] + i * page);

		/* read first (the page is swapped in), then rewritten */
		fill(want, key_of(CYCLED, i, 0));
		bad += !!memcmp(p, want, page);
		fill(p, lib_key(i));
	}
	free(want);
	pageout("on", "cycled", on.base[CYCLED], count[CYCLED], NULL, 0);

	put(PKSM "swap_dedup", 0);
	fill_region(&off, 1, SEEN);
	for (k = 0; k < SEEN; k++)
		pageout("off", kind_name[k], off.base[k], count[k], NULL, 0);
	put(PKSM "swap_dedup", 1);

	/* the partners' owner writes them: a page that took their frame would change too */
	for (long i = 0; i < count[SEEN]; i++)
		fill((uint64_t *)(partners + i * page), ~key_of(SEEN, i, 0));
	pksmtb_event("lab7verify", "round=on kind=first pages=%ld bad=%ld", count[CYCLED], bad);
	bad += check_region(&on) + check_region(&off);
	pksmtb_event("lab7done", "verified=%s bad=%ld", bad ? "fail" : "ok", bad);
	kill(lib_pid, SIGKILL);
	waitpid(lib_pid, NULL, 0);
	return bad ? 1 : 0;
}
