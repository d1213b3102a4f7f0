/*
 * torture - many processes and threads reshaping their memory at random
 * under the merge daemon, each verifying all of it continuously.
 *
 * The parent starts --procs worker processes of --threads threads each.
 * Every worker maps --mib MiB of private anonymous memory inside a
 * reservation twice that size (PROT_NONE): each page lives in the lower or
 * the upper half (its slot), so mremap(MAYMOVE|FIXED) always has a place of
 * ours to move a range to.  Each thread owns a contiguous share of the pages
 * and runs, until --duration is over, random operations on random ranges of
 * its share (from a per-thread generator seeded by --seed: the sequence of
 * operations is reproducible, their interleaving is not):
 *
 *   write      map the holes of the range again, write new content
 *   dontneed   MADV_DONTNEED (the pages read zero)
 *   free       MADV_FREE (the pages read their content or zero until
 *              rewritten)
 *   munmap     munmap, then reserve the hole again (PROT_NONE)
 *   mremap     move the range to its other slot (MAYMOVE|FIXED); a range
 *              that spans VMAs is moved in halves
 *   mprotect   read-only / read-write toggle
 *   pin        vmsplice up to 16 pages into a pipe, or release the pipe:
 *              every page read back must be what it was when pinned (the
 *              pages are not written while pinned)
 *   optout     MADV_UNMERGEABLE or MADV_MERGEABLE on the range, or
 *              prctl(PR_SET_MEMORY_MERGE, 0/1) for the whole process
 *   fork       a child (depth up to 2) shares all pages copy-on-write,
 *              verifies the forking thread's pages, writes, frees, moves and
 *              unmaps some, verifies again and exits; the thread goes on
 *   run2       echo 2 > /sys/kernel/mm/ksm/run, a moment, then 1 (only if it
 *              read 1, one process at a time; --no-ksm-run: never)
 *   exit       (thread 0) the process stops, verifies, exits; the parent
 *              starts a fresh one in its place while time remains
 *   nap        sleep 1-20 ms, so the daemon gets to merge
 *
 * --no leaves operations out (to narrow down what a failure needs).
 * Content is drawn from a small set so that many pages are equal: zero
 * pages, 12 dense duplicate contents, 8 sparse ones (zero but for one word)
 * and unique pages.  Every process keeps a shadow of what each of its pages
 * must hold and verifies every page of a thread's share every
 * --verify-every operations, at fork, in the child, and at exit.
 *
 * Protocol lines on stdout:
 *   PKSMTB-EVENT torture-start t_ms=T procs=P threads=N pages=G seed=S
 *   torture: MISMATCH proc P pid X thread T page I addr 0x.. offset O
 *            expected 0x.. got 0x.. (id E, page looks like: ...)
 *   PKSMTB-EVENT torture-end t_ms=T
 *   PKSMTB-EVENT torture ops=N writes=.. forks=.. ... mismatches=M
 *   PKSMTB-EVENT verified result=ok | result=fail failures=F
 * t_ms is CLOCK_MONOTONIC, as the sampler's.  --settle sleeps before the
 * start line and --linger after the end line (a baseline and an aftermath
 * for the counters).
 *
 * Usage: torture [options]   (see --help)
 * Exit status: 0 all verified, 1 failure, 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "torture"
#include "util.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_FREE
#define MADV_FREE 8
#endif

#define PAGE 4096UL
#define WORDS (PAGE / 8)
#define GOLDEN 0x9e3779b97f4a7c15ULL
#define MAX_PROCS 32
#define MAX_THREADS 8
#define MAX_KIDS 2		/* outstanding forked children per thread */
#define MAX_DEPTH 2		/* fork generations below a worker */
#define PIN_PAGES 16		/* a pipe's default capacity */
#define MAX_LINES 10		/* MISMATCH lines per process */
#define MAX_NOTES 20		/* failed-call notes per process */
#define RUN2_STUCK_MS 60000	/* a run=2 write this long is reported */

/* Content ids: 0 zero, dense duplicates, sparse duplicates, unique. */
#define NDUP 12
#define SPARSE_BASE 64
#define NSPARSE 8
#define UNIQUE_BASE 1024

/* Page flags of the shadow. */
#define F_MAPPED 0x01		/* mapped read(-write); else a PROT_NONE hole */
#define F_SLOT 0x02		/* lives in the upper half of the reservation */
#define F_FREED 0x04		/* MADV_FREE'd: content or zero */
#define F_PINNED 0x08		/* in this thread's pipe: not written */
#define F_RO 0x10		/* mapped read-only */
#define F_STUCK 0x20		/* the other slot is not ours: never moved */
#define F_DEAD 0x40		/* its hole could not be reserved: never touched */

/* Operation counters, summed over every process (a MAP_SHARED page). */
enum op {
	OP_WRITE, OP_MAP, OP_DONTNEED, OP_FREE, OP_MUNMAP, OP_MREMAP, OP_MPROTECT,
	OP_PIN, OP_UNPIN, OP_UNMERGEABLE, OP_MERGEABLE, OP_PRCTL, OP_FORK, OP_RUN2,
	OP_EXIT, OP_NAP, NR_OPS
};
static const char *const op_names[NR_OPS] = {
	"writes", "maps", "dontneeds", "frees", "munmaps", "mremaps", "mprotects",
	"pins", "unpins", "unmergeable", "mergeable", "prctls", "forks", "run2s",
	"exits", "naps",
};

struct shared {
	uint64_t ops;
	uint64_t count[NR_OPS];
	uint64_t verifies, pages_verified, pages_written, errors, mismatches;
	uint64_t child_failures, spawned;
	int run_busy;		/* a run=2 toggle is under way */
	long long run2_since_ms;	/* when the pending write of 2 began, or 0 */
	int run2_pid, run2_tid;	/* who writes it */
	volatile int stop;	/* SIGTERM: wind down */
};

struct pin {
	int fd[2];
	int n;
	size_t page[PIN_PAGES];
	uint32_t id[PIN_PAGES];
};

struct thr {
	int idx;
	size_t lo, hi;		/* its pages */
	uint64_t rng;
	uint32_t next_unique;
	unsigned long ops;
	long bad;
	int depth;		/* 0 in a worker, 1.. in forked children */
	int active_pin;
	struct pin pin;
	pid_t kids[MAX_KIDS];
	int nkids;
	uint64_t *scratch;
	pthread_t tid;
};

static int procs = 4, threads = 2, verify_every = 32, ksm_run_toggle = 1;
static long mib = 4;
static double duration = 30, settle, linger;
static uint64_t seed = 1;

static struct shared *sh;
static size_t npages, region;	/* per worker; region = npages * PAGE */
static double deadline;

/* Per worker process (inherited by forked children). */
static int proc_idx, incarnation;
static unsigned char *base;	/* the reservation: 2 * region */
static uint32_t *content;	/* expected content id of every page */
static uint8_t *flags;
static uint64_t proc_key;
static int quit;		/* the exit operation ran */
static int optout;		/* prctl(PR_SET_MEMORY_MERGE, 0) in force */
static int lines_left = MAX_LINES, notes_left = MAX_NOTES;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t dup_page[NDUP][WORDS];

static uint64_t fmix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t mixin(uint64_t h, uint64_t v)
{
	return fmix(h ^ fmix(v + GOLDEN));
}

static uint64_t rnd(struct thr *t)
{
	t->rng += GOLDEN;
	return fmix(t->rng);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR && !sh->stop)
		;
}

static void count(enum op op)
{
	__atomic_fetch_add(&sh->count[op], 1, __ATOMIC_RELAXED);
}

static void add(uint64_t *ctr, uint64_t v)
{
	__atomic_fetch_add(ctr, v, __ATOMIC_RELAXED);
}

static unsigned char *addr_of(size_t i)
{
	return base + (flags[i] & F_SLOT ? region : 0) + i * PAGE;
}

/* A call failed for a reason the kernel may give (ENOMEM, EINTR...). */
static void note(struct thr *t, const char *what)
{
	int e = errno;

	add(&sh->errors, 1);
	pthread_mutex_lock(&print_lock);
	if (notes_left > 0) {
		notes_left--;
		printf("torture: note: proc %d pid %d thread %d: %s: %s\n", proc_idx,
		       (int)getpid(), t->idx, what, strerror(e));
	}
	pthread_mutex_unlock(&print_lock);
}

/* ---- content ----------------------------------------------------------- */

static void make_content(uint64_t *w, uint32_t id)
{
	if (id == 0) {
		memset(w, 0, PAGE);
	} else if (id <= NDUP) {
		memcpy(w, dup_page[id - 1], PAGE);
	} else if (id >= SPARSE_BASE && id < SPARSE_BASE + NSPARSE) {
		memset(w, 0, PAGE);
		w[(id * 37) % WORDS] = id;
	} else {
		uint64_t key = mixin(proc_key, id);

		for (size_t j = 0; j < WORDS; j++)
			w[j] = fmix(key + (j + 1) * GOLDEN);
	}
}

static uint32_t pick_content(struct thr *t)
{
	unsigned r = (unsigned)(rnd(t) % 100);

	if (r < 15)
		return 0;
	if (r < 60)
		return 1 + (uint32_t)(rnd(t) % NDUP);
	if (r < 75)
		return SPARSE_BASE + (uint32_t)(rnd(t) % NSPARSE);
	t->next_unique++;
	return UNIQUE_BASE + t->next_unique * (uint32_t)threads + (uint32_t)t->idx;
}

/* What a page that is not what it should be looks like, for the report. */
static void describe(const uint64_t *p, char *buf, size_t len)
{
	uint64_t w[WORDS];
	size_t nz = 0;

	for (size_t j = 0; j < WORDS; j++)
		nz += p[j] != 0;
	if (!nz) {
		snprintf(buf, len, "all zero");
		return;
	}
	for (uint32_t id = 1; id <= NDUP; id++)
		if (!memcmp(p, dup_page[id - 1], PAGE)) {
			snprintf(buf, len, "dense duplicate id %u", id);
			return;
		}
	for (uint32_t id = SPARSE_BASE; id < SPARSE_BASE + NSPARSE; id++) {
		make_content(w, id);
		if (!memcmp(p, w, PAGE)) {
			snprintf(buf, len, "sparse duplicate id %u", id);
			return;
		}
	}
	snprintf(buf, len, "%zu nonzero words, no known content", nz);
}

static void mismatch(struct thr *t, const char *where, size_t i, const uint64_t *got,
		     const uint64_t *want, uint32_t id)
{
	size_t j;
	char what[80];

	add(&sh->mismatches, 1);
	t->bad++;
	for (j = 0; j < WORDS && got[j] == want[j]; j++)
		;
	if (j == WORDS)
		j = 0;
	describe(got, what, sizeof(what));
	pthread_mutex_lock(&print_lock);
	if (lines_left > 0) {
		lines_left--;
		printf("torture: MISMATCH proc %d inc %d pid %d thread %d depth %d %s page %zu "
		       "addr %p flags 0x%02x offset %zu expected 0x%016" PRIx64 " got 0x%016"
		       PRIx64 " (id %u%s; page looks like: %s)\n", proc_idx, incarnation,
		       (int)getpid(), t->idx, t->depth, where, i, (void *)addr_of(i), flags[i],
		       j * 8, want[j], got[j], id, flags[i] & F_FREED ? " or zero" : "", what);
		fflush(stdout);
	}
	pthread_mutex_unlock(&print_lock);
}

/* Verify every mapped page of the thread's share. */
static void verify_all(struct thr *t, const char *where)
{
	uint64_t n = 0;

	for (size_t i = t->lo; i < t->hi; i++) {
		const uint64_t *p;

		if (!(flags[i] & F_MAPPED))
			continue;
		p = (const uint64_t *)addr_of(i);
		make_content(t->scratch, content[i]);
		n++;
		if (!memcmp(p, t->scratch, PAGE))
			continue;
		if (flags[i] & F_FREED) {
			size_t j;

			for (j = 0; j < WORDS && !p[j]; j++)
				;
			if (j == WORDS)
				continue;
		}
		mismatch(t, where, i, p, t->scratch, content[i]);
	}
	add(&sh->verifies, 1);
	add(&sh->pages_verified, n);
}

/* ---- ranges ------------------------------------------------------------- */

/*
 * The next run of pages in [*pos, hi) whose flags have all of @set and none
 * of @clear, all in one slot (contiguous addresses); 0 when there is none.
 */
static int next_run(size_t *pos, size_t hi, uint8_t set, uint8_t clear, size_t *a, size_t *b)
{
	size_t i = *pos;

	while (i < hi && ((flags[i] & set) != set || (flags[i] & clear)))
		i++;
	if (i >= hi)
		return 0;
	*a = i;
	while (i < hi && (flags[i] & set) == set && !(flags[i] & clear) &&
	       (flags[i] & F_SLOT) == (flags[*a] & F_SLOT))
		i++;
	*b = *pos = i;
	return 1;
}

/* A random range of the thread's pages: mostly short, sometimes long. */
static void pick_range(struct thr *t, size_t *lo, size_t *hi)
{
	size_t n = t->hi - t->lo;
	size_t len = 1 + (size_t)(rnd(t) % (rnd(t) % 4 ? 16 : 128));

	*lo = t->lo + (size_t)(rnd(t) % n);
	*hi = *lo + len < t->hi ? *lo + len : t->hi;
}

/* Reserve [a, b) of one slot again after it was vacated; else mark it. */
static void reserve_hole(struct thr *t, unsigned char *addr, size_t a, size_t b, uint8_t mark)
{
	void *p = mmap(addr, (b - a) * PAGE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == addr)
		return;
	note(t, "mmap(PROT_NONE, MAP_FIXED_NOREPLACE) of a vacated range");
	if (p != MAP_FAILED)
		munmap(p, (b - a) * PAGE);	/* an old kernel put it elsewhere */
	for (size_t i = a; i < b; i++)
		flags[i] |= mark;
}

/* ---- operations --------------------------------------------------------- */

static void op_write(struct thr *t, size_t lo, size_t hi)
{
	size_t pos = lo, a, b;

	/* Map the holes of the range again (pages a fresh mapping: zero). */
	while (next_run(&pos, hi, 0, F_MAPPED | F_DEAD, &a, &b)) {
		unsigned char *at = addr_of(a);
		void *p = mmap(at, (b - a) * PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

		if (p != at) {
			note(t, "mmap(MAP_FIXED) of a hole");
			continue;
		}
		for (size_t i = a; i < b; i++) {
			flags[i] = (uint8_t)((flags[i] & (F_SLOT | F_STUCK | F_PINNED)) | F_MAPPED);
			content[i] = 0;
		}
		count(OP_MAP);
	}
	for (size_t i = lo; i < hi; i++) {
		uint32_t id;

		if ((flags[i] & (F_MAPPED | F_RO | F_PINNED)) != F_MAPPED)
			continue;
		id = pick_content(t);
		make_content((uint64_t *)addr_of(i), id);
		content[i] = id;
		flags[i] &= (uint8_t)~F_FREED;
		add(&sh->pages_written, 1);
	}
	count(OP_WRITE);
}

static void op_madvise(struct thr *t, size_t lo, size_t hi, int advice, uint8_t skip)
{
	size_t pos = lo, a, b;

	while (next_run(&pos, hi, F_MAPPED, skip, &a, &b)) {
		if (madvise(addr_of(a), (b - a) * PAGE, advice)) {
			note(t, advice == MADV_DONTNEED ? "madvise(MADV_DONTNEED)" :
				advice == MADV_FREE ? "madvise(MADV_FREE)" :
				advice == MADV_MERGEABLE ? "madvise(MADV_MERGEABLE)" :
				"madvise(MADV_UNMERGEABLE)");
			continue;
		}
		for (size_t i = a; i < b; i++) {
			if (advice == MADV_DONTNEED) {
				content[i] = 0;
				flags[i] &= (uint8_t)~F_FREED;
			} else if (advice == MADV_FREE && content[i]) {
				flags[i] |= F_FREED;
			}
		}
	}
}

static void op_munmap(struct thr *t, size_t lo, size_t hi)
{
	size_t pos = lo, a, b;

	while (next_run(&pos, hi, F_MAPPED, 0, &a, &b)) {
		unsigned char *at = addr_of(a);

		if (munmap(at, (b - a) * PAGE)) {
			note(t, "munmap");
			continue;
		}
		for (size_t i = a; i < b; i++) {
			flags[i] &= (uint8_t)~(F_MAPPED | F_FREED | F_RO);
			content[i] = 0;
		}
		reserve_hole(t, at, a, b, F_DEAD);
	}
	count(OP_MUNMAP);
}

/* Move [a, b) (one slot) to the other slot; halves if it spans VMAs. */
static void move_run(struct thr *t, size_t a, size_t b)
{
	unsigned char *from = addr_of(a);
	unsigned char *to = from + (flags[a] & F_SLOT ? -(ptrdiff_t)region : (ptrdiff_t)region);
	void *p = mremap(from, (b - a) * PAGE, (b - a) * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to);

	if (p == MAP_FAILED) {
		if (errno == EFAULT && b - a > 1) {
			size_t m = a + (b - a) / 2;

			move_run(t, a, m);
			move_run(t, m, b);
		} else {
			note(t, "mremap(MAYMOVE|FIXED)");
		}
		return;
	}
	for (size_t i = a; i < b; i++)
		flags[i] ^= F_SLOT;
	count(OP_MREMAP);
	reserve_hole(t, from, a, b, F_STUCK);
}

static void op_mremap(struct thr *t, size_t lo, size_t hi)
{
	size_t pos = lo, a, b;

	while (next_run(&pos, hi, F_MAPPED, F_STUCK, &a, &b))
		move_run(t, a, b);
}

static void op_mprotect(struct thr *t, size_t lo, size_t hi)
{
	size_t pos = lo, a, b;
	int ro = -1;

	while (next_run(&pos, hi, F_MAPPED, 0, &a, &b)) {
		if (ro < 0)
			ro = !(flags[a] & F_RO);
		if (mprotect(addr_of(a), (b - a) * PAGE, ro ? PROT_READ : PROT_READ | PROT_WRITE)) {
			note(t, "mprotect");
			continue;
		}
		for (size_t i = a; i < b; i++)
			flags[i] = (uint8_t)(ro ? flags[i] | F_RO : flags[i] & ~F_RO);
	}
	count(OP_MPROTECT);
}

/* Read the pipe back: each page must be what it was when pinned. */
static void unpin(struct thr *t)
{
	struct pin *pn = &t->pin;

	for (int k = 0; k < pn->n; k++) {
		size_t got = 0;
		unsigned char *buf = (unsigned char *)t->scratch + PAGE;

		while (got < PAGE) {
			ssize_t r = read(pn->fd[0], buf + got, PAGE - got);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				note(t, "read of a vmsplice pipe");
				break;
			}
			got += (size_t)r;
		}
		make_content(t->scratch, pn->id[k]);
		if (got == PAGE && memcmp(buf, t->scratch, PAGE))
			mismatch(t, "pipe", pn->page[k], (uint64_t *)buf, t->scratch, pn->id[k]);
		flags[pn->page[k]] &= (uint8_t)~F_PINNED;
	}
	close(pn->fd[0]);
	close(pn->fd[1]);
	pn->n = 0;
	t->active_pin = 0;
	count(OP_UNPIN);
}

static void op_pin(struct thr *t, size_t lo, size_t hi)
{
	struct pin *pn = &t->pin;

	if (t->active_pin) {
		unpin(t);
		return;
	}
	if (pipe(pn->fd)) {
		note(t, "pipe");
		return;
	}
	pn->n = 0;
	t->active_pin = 1;
	for (size_t i = lo; i < hi && pn->n < PIN_PAGES; i++) {
		struct iovec iov = { addr_of(i), PAGE };

		if ((flags[i] & (F_MAPPED | F_FREED | F_PINNED)) != F_MAPPED)
			continue;
		if (vmsplice(pn->fd[1], &iov, 1, 0) != (ssize_t)PAGE) {
			note(t, "vmsplice");
			break;
		}
		pn->page[pn->n] = i;
		pn->id[pn->n++] = content[i];
		flags[i] |= F_PINNED;
	}
	count(OP_PIN);
}

static void op_prctl(struct thr *t)
{
	int want = __atomic_load_n(&optout, __ATOMIC_RELAXED);	/* 1: opted out -> in */

	if (prctl(PR_SET_MEMORY_MERGE, want, 0, 0, 0)) {
		note(t, want ? "prctl(PR_SET_MEMORY_MERGE, 1)" : "prctl(PR_SET_MEMORY_MERGE, 0)");
		return;
	}
	__atomic_store_n(&optout, !want, __ATOMIC_RELAXED);
	count(OP_PRCTL);
}

/* echo 2 > run, a moment, echo 1 > run: only from 1, one process at a time. */
static int write_run(const char *v)
{
	int fd = open("/sys/kernel/mm/ksm/run", O_WRONLY);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, v, strlen(v)) == (ssize_t)strlen(v);
	close(fd);
	return ok ? 0 : -1;
}

static int read_run(void)
{
	char buf[16] = "";
	int fd = open("/sys/kernel/mm/ksm/run", O_RDONLY);
	ssize_t r;

	if (fd < 0)
		return -1;
	r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return r > 0 ? atoi(buf) : -1;
}

static void op_run2(struct thr *t)
{
	int zero = 0;

	if (!ksm_run_toggle ||
	    !__atomic_compare_exchange_n(&sh->run_busy, &zero, 1, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return;
	if (read_run() == 1) {
		sh->run2_pid = getpid();
		sh->run2_tid = (int)gettid();
		__atomic_store_n(&sh->run2_since_ms, now_ms(), __ATOMIC_RELEASE);
		if (write_run("2\n"))
			note(t, "echo 2 > /sys/kernel/mm/ksm/run");
		__atomic_store_n(&sh->run2_since_ms, 0, __ATOMIC_RELEASE);
		nap_ms(1 + (long)(rnd(t) % 50));
		if (write_run("1\n"))
			note(t, "echo 1 > /sys/kernel/mm/ksm/run");
		count(OP_RUN2);
	}
	__atomic_store_n(&sh->run_busy, 0, __ATOMIC_RELEASE);
}

static void reap_kids(struct thr *t, int all)
{
	for (int k = 0; k < t->nkids;) {
		int st;
		pid_t r = waitpid(t->kids[k], &st, all ? 0 : WNOHANG);

		if (r == 0 || (r < 0 && errno == EINTR)) {
			k++;
			continue;
		}
		if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
			pthread_mutex_lock(&print_lock);
			printf("torture: proc %d pid %d thread %d: forked child %d failed (%s %d)\n",
			       proc_idx, (int)getpid(), t->idx, (int)t->kids[k],
			       r < 0 ? "waitpid" : WIFSIGNALED(st) ? "signal" : "status",
			       r < 0 ? errno : WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			pthread_mutex_unlock(&print_lock);
			add(&sh->child_failures, 1);
			t->bad++;
		}
		t->kids[k] = t->kids[--t->nkids];
	}
}

static void run_ops(struct thr *t, long nops);

static void op_fork(struct thr *t)
{
	pid_t pid;
	uint64_t child_rng = mixin(t->rng, 0x464f524bULL);

	if (t->depth >= MAX_DEPTH)
		return;
	if (t->nkids >= MAX_KIDS)
		reap_kids(t, 1);
	rnd(t);
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		note(t, "fork");
		return;
	}
	if (pid == 0) {
		/* Only this thread's pages are consistent here: the others' owners
		 * may have been half-way through an operation. */
		pthread_mutex_init(&print_lock, NULL);	/* may have been held */
		t->depth++;
		t->rng = child_rng;
		t->nkids = 0;
		t->active_pin = 0;	/* the pipe is the parent's to read */
		lines_left = MAX_LINES;
		verify_all(t, "child-start");
		run_ops(t, 10 + (long)(rnd(t) % 60));
		verify_all(t, "child-end");
		reap_kids(t, 1);
		fflush(stdout);
		_exit(t->bad ? 1 : 0);
	}
	t->kids[t->nkids++] = pid;
	count(OP_FORK);
}

/* Operation weights in thousandths, in order; the rest is writes. */
static const struct {
	const char *name;
	int weight;
} choices[] = {
	{ "write", 330 }, { "dontneed", 60 }, { "free", 60 }, { "munmap", 50 },
	{ "mremap", 70 }, { "mprotect", 60 }, { "pin", 50 }, { "unmergeable", 40 },
	{ "mergeable", 40 }, { "prctl", 8 }, { "fork", 22 }, { "run2", 3 }, { "exit", 2 },
	{ "nap", 105 },
};
#define NR_CHOICES (sizeof(choices) / sizeof(choices[0]))
static unsigned disabled;	/* --no: bit per choice */

/*
 * One random operation.  A forked child does not pin (its parent reads the
 * pipes), toggle run or exit; a disabled operation is a write instead.
 */
static void one_op(struct thr *t)
{
	size_t lo, hi, c = 0;
	int r = (int)(rnd(t) % 1000);

	pick_range(t, &lo, &hi);
	while (c < NR_CHOICES && r >= choices[c].weight)
		r -= choices[c++].weight;
	if (c == NR_CHOICES || (disabled & (1u << c)))
		c = 0;
	switch (c) {
	case 0: op_write(t, lo, hi); break;
	case 1: op_madvise(t, lo, hi, MADV_DONTNEED, 0); count(OP_DONTNEED); break;
	case 2: op_madvise(t, lo, hi, MADV_FREE, F_PINNED); count(OP_FREE); break;
	case 3: op_munmap(t, lo, hi); break;
	case 4: op_mremap(t, lo, hi); break;
	case 5: op_mprotect(t, lo, hi); break;
	case 6:
		if (!t->depth)
			op_pin(t, lo, hi);
		break;
	case 7: op_madvise(t, lo, hi, MADV_UNMERGEABLE, 0); count(OP_UNMERGEABLE); break;
	case 8: op_madvise(t, lo, hi, MADV_MERGEABLE, 0); count(OP_MERGEABLE); break;
	case 9: op_prctl(t); break;
	case 10: op_fork(t); break;
	case 11:
		if (!t->depth)
			op_run2(t);
		break;
	case 12:
		if (!t->depth && t->idx == 0) {
			__atomic_store_n(&quit, 1, __ATOMIC_RELAXED);
			count(OP_EXIT);
		}
		break;
	default:
		nap_ms(1 + (long)(rnd(t) % 20));
		count(OP_NAP);
		break;
	}
	t->ops++;
	add(&sh->ops, 1);
	if (t->ops % (unsigned long)verify_every == 0)
		verify_all(t, "periodic");
}

/* nops > 0: that many operations (a forked child); else until told to stop. */
static void run_ops(struct thr *t, long nops)
{
	for (long n = 0; nops <= 0 || n < nops; n++) {
		if (nops <= 0 && (__atomic_load_n(&quit, __ATOMIC_RELAXED) || sh->stop ||
				  now() >= deadline))
			break;
		if (nops > 0 && sh->stop)
			break;
		one_op(t);
		if (t->nkids)
			reap_kids(t, 0);
	}
}

static void *thread_main(void *arg)
{
	struct thr *t = arg;

	run_ops(t, 0);
	if (t->active_pin)
		unpin(t);
	reap_kids(t, 1);
	verify_all(t, "final");
	return NULL;
}

/* ---- a worker process --------------------------------------------------- */

static int worker(void)
{
	struct thr thr[MAX_THREADS];
	long bad = 0;
	void *res;

	proc_key = mixin(mixin(seed, (uint64_t)proc_idx), (uint64_t)incarnation);
	res = mmap(NULL, 2 * region, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	if (res == MAP_FAILED) {
		perror("torture: mmap reservation");
		return 1;
	}
	base = res;
	if (mmap(base, region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) != base) {
		perror("torture: mmap region");
		return 1;
	}
	content = calloc(npages, sizeof(*content));
	flags = calloc(npages, 1);
	if (!content || !flags) {
		fprintf(stderr, "torture: out of memory\n");
		return 1;
	}
	memset(flags, F_MAPPED, npages);
	memset(thr, 0, sizeof(thr));
	for (int k = 0; k < threads; k++) {
		struct thr *t = &thr[k];

		t->idx = k;
		t->lo = npages * (size_t)k / (size_t)threads;
		t->hi = npages * (size_t)(k + 1) / (size_t)threads;
		t->rng = mixin(proc_key, (uint64_t)k + 1);
		t->scratch = aligned_alloc(PAGE, 2 * PAGE);
		if (!t->scratch) {
			fprintf(stderr, "torture: out of memory\n");
			return 1;
		}
		/* Fill the share: a first mix of contents, all pages faulted in. */
		for (size_t i = t->lo; i < t->hi; i++) {
			content[i] = pick_content(t);
			make_content((uint64_t *)(base + i * PAGE), content[i]);
		}
	}
	for (int k = 1; k < threads; k++) {
		int e = pthread_create(&thr[k].tid, NULL, thread_main, &thr[k]);

		if (e) {
			fprintf(stderr, "torture: pthread_create: %s\n", strerror(e));
			return 1;
		}
	}
	thread_main(&thr[0]);
	for (int k = 1; k < threads; k++)
		pthread_join(thr[k].tid, NULL);
	for (int k = 0; k < threads; k++)
		bad += thr[k].bad;
	if (bad) {
		printf("torture: proc %d inc %d pid %d: %ld failures\n", proc_idx, incarnation,
		       (int)getpid(), bad);
	}
	fflush(stdout);
	return bad ? 1 : 0;
}

/* ---- the parent --------------------------------------------------------- */

static pid_t slot_pid[MAX_PROCS];

static void on_term(int sig)
{
	(void)sig;
	sh->stop = 1;
}

static void on_alarm(int sig)
{
	(void)sig;		/* only interrupts waitpid() */
}

/*
 * A write of 2 to ksm/run that does not return (an unmerge that cannot
 * finish) leaves nothing on the console but the harness's time-out: say
 * so, once, with the writer's kernel stack.
 */
static void check_run2(void)
{
	static long long reported;
	long long since = __atomic_load_n(&sh->run2_since_ms, __ATOMIC_ACQUIRE);
	char path[64], line[256];
	FILE *f;

	if (!since || since == reported || now_ms() - since < RUN2_STUCK_MS)
		return;
	reported = since;
	printf("torture: STUCK echo 2 > /sys/kernel/mm/ksm/run has not returned for %lld s "
	       "(pid %d tid %d); its kernel stack:\n", (now_ms() - since) / 1000, sh->run2_pid,
	       sh->run2_tid);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stack", sh->run2_pid, sh->run2_tid);
	f = fopen(path, "r");
	if (!f) {
		printf("torture:   (%s: %s)\n", path, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f))
		printf("torture:   %s", line);
	fclose(f);
	fflush(stdout);
}

static pid_t spawn(int p, int inc)
{
	pid_t parent = getpid(), pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("torture: fork");
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (getppid() != parent)
			_exit(1);
		proc_idx = p;
		incarnation = inc;
		_exit(worker());
	}
	add(&sh->spawned, 1);
	return pid;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: torture [options]\n"
		"Processes and threads reshaping their memory at random (fork, exit, munmap,\n"
		"mremap, mprotect, MADV_DONTNEED/FREE, vmsplice pins, opt-out/in, ksm run=2)\n"
		"while verifying all of it against a shadow copy.\n"
		"  --procs N          worker processes, 1..%d (default 4)\n"
		"  --threads N        threads per worker, 1..%d (default 2)\n"
		"  --mib M            MiB per worker, 1..1024 (default 4)\n"
		"  --duration SEC     how long to run, 1..86400 (default 30)\n"
		"  --seed S           seed of every random choice (default 1)\n"
		"  --verify-every N   operations between full verifications of a thread's\n"
		"                     pages, 1..100000 (default 32)\n"
		"  --settle SEC       sleep before starting, 0..600 (default 0)\n"
		"  --linger SEC       sleep after everything exited, 0..600 (default 0)\n"
		"  --no-ksm-run       never write /sys/kernel/mm/ksm/run\n"
		"  --no OP[,OP...]    leave operations out (a write instead): dontneed, free,\n"
		"                     munmap, mremap, mprotect, pin, unmergeable, mergeable,\n"
		"                     prctl, fork, run2, exit, nap\n"
		"  --help             show this help\n"
		"Exit: 0 every page verified, 1 failure, 2 usage.\n", MAX_PROCS, MAX_THREADS);
}

/* A number of seconds lo..hi, or bad_value(). */
static double parse_sec(const char *opt, const char *s, double lo, double hi)
{
	return parse_double(opt, s, lo, hi);
}

static void parse_no(const char *arg)
{
	char buf[256], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t c;

		for (c = 1; c < NR_CHOICES && strcmp(tok, choices[c].name); c++)
			;
		if (c == NR_CHOICES)
			bad_value("no", tok, "dontneed, free, munmap, mremap, mprotect, pin, "
				  "unmergeable, mergeable, prctl, fork, run2, exit or nap");
		disabled |= 1u << c;
	}
}

static void parse_args(int argc, char **argv)
{
	enum { O_PROCS = 256, O_THREADS, O_MIB, O_DURATION, O_SEED, O_VERIFY, O_SETTLE,
	       O_LINGER, O_NORUN, O_NO, O_HELP };
	static const struct option longopts[] = {
		{ "procs", required_argument, NULL, O_PROCS },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "mib", required_argument, NULL, O_MIB },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "seed", required_argument, NULL, O_SEED },
		{ "verify-every", required_argument, NULL, O_VERIFY },
		{ "settle", required_argument, NULL, O_SETTLE },
		{ "linger", required_argument, NULL, O_LINGER },
		{ "no-ksm-run", no_argument, NULL, O_NORUN },
		{ "no", required_argument, NULL, O_NO },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_PROCS: procs = (int)parse_long("procs", optarg, 1, MAX_PROCS); break;
		case O_THREADS:
			threads = (int)parse_long("threads", optarg, 1, MAX_THREADS);
			break;
		case O_MIB: mib = parse_long("mib", optarg, 1, 1024); break;
		case O_DURATION: duration = parse_sec("duration", optarg, 1, 86400); break;
		case O_SEED: {
			char *end;

			errno = 0;
			seed = strtoull(optarg, &end, 0);
			if (end == optarg || *end || errno || optarg[strspn(optarg, " \t")] == '-')
				bad_value("seed", optarg, "an unsigned 64-bit integer");
			break;
		}
		case O_VERIFY:
			verify_every = (int)parse_long("verify-every", optarg, 1, 100000);
			break;
		case O_SETTLE: settle = parse_sec("settle", optarg, 0, 600); break;
		case O_LINGER: linger = parse_sec("linger", optarg, 0, 600); break;
		case O_NORUN: ksm_run_toggle = 0; break;
		case O_NO: parse_no(optarg); break;
		case O_HELP: usage(stdout); exit(0);
		default:
			fprintf(stderr, "Try 'torture --help'.\n");
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "torture: unexpected argument '%s'\nTry 'torture --help'.\n",
			argv[optind]);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int failures = 0, alive = 0, inc[MAX_PROCS] = { 0 }, run_before;

	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (sysconf(_SC_PAGESIZE) != (long)PAGE) {
		fprintf(stderr, "torture: needs %lu-byte pages\n", PAGE);
		return 1;
	}
	npages = (size_t)mib * (1024 * 1024 / PAGE);
	region = npages * PAGE;
	for (uint32_t id = 1; id <= NDUP; id++)
		for (size_t j = 0; j < WORDS; j++)
			dup_page[id - 1][j] = fmix(mixin(seed, id) + (j + 1) * GOLDEN);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("torture: mmap shared");
		return 1;
	}
	memset(sh, 0, sizeof(*sh));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);

	if (settle > 0)
		nap_ms((long)(settle * 1000));
	run_before = read_run();
	pksmtb_event("torture-start", "t_ms=%lld procs=%d threads=%d mib=%ld pages=%zu "
		     "seed=%" PRIu64 " duration=%g ksm_run=%d", now_ms(), procs, threads, mib,
		     npages * (size_t)procs, seed, duration, run_before);
	deadline = now() + duration;
	for (int p = 0; p < procs; p++) {
		slot_pid[p] = spawn(p, 0);
		if (slot_pid[p] < 0) {
			failures++;
			break;
		}
		alive++;
	}
	while (alive > 0) {
		int st, p;
		pid_t pid;

		alarm(5);	/* look at a pending run=2 write now and then */
		pid = waitpid(-1, &st, 0);
		alarm(0);
		check_run2();
		if (pid < 0) {
			if (errno == EINTR) {
				if (sh->stop)	/* pass SIGTERM on: wind down, verify */
					for (p = 0; p < procs; p++)
						if (slot_pid[p] > 0)
							kill(slot_pid[p], SIGTERM);
				continue;
			}
			perror("torture: waitpid");
			break;
		}
		for (p = 0; p < procs && slot_pid[p] != pid; p++)
			;
		if (p == procs)
			continue;
		slot_pid[p] = -1;
		alive--;
		if (WIFSIGNALED(st)) {
			printf("torture: proc %d inc %d pid %d killed by signal %d (%s)\n", p, inc[p],
			       (int)pid, WTERMSIG(st), strsignal(WTERMSIG(st)));
			failures++;
		} else if (WEXITSTATUS(st)) {
			printf("torture: proc %d inc %d pid %d exited with status %d\n", p, inc[p],
			       (int)pid, WEXITSTATUS(st));
			failures++;
		}
		/* An exit operation: a fresh process takes the slot. */
		if (!sh->stop && now() < deadline - 0.5) {
			slot_pid[p] = spawn(p, ++inc[p]);
			if (slot_pid[p] > 0)
				alive++;
			else
				failures++;
		}
	}
	/* A worker that died mid-toggle must not leave merging stopped. */
	if (ksm_run_toggle && run_before == 1 && read_run() != 1) {
		printf("torture: ksm run left at %d, setting 1 again\n", read_run());
		write_run("1\n");
	}
	pksmtb_event("torture-end", "t_ms=%lld", now_ms());
	char per_op[48 * NR_OPS];
	size_t len = 0;

	for (int k = 0; k < NR_OPS; k++)
		len += (size_t)snprintf(per_op + len, sizeof(per_op) - len, " %s=%" PRIu64,
					op_names[k], sh->count[k]);
	pksmtb_event("torture", "ops=%" PRIu64 "%s processes=%" PRIu64 " verifies=%" PRIu64
		     " pages_verified=%" PRIu64 " pages_written=%" PRIu64 " errors=%" PRIu64
		     " child_failures=%" PRIu64 " mismatches=%" PRIu64, sh->ops, per_op,
		     sh->spawned, sh->verifies, sh->pages_verified, sh->pages_written,
		     sh->errors, sh->child_failures, sh->mismatches);
	if (failures)
		pksmtb_event("verified", "result=fail failures=%d", failures);
	else
		pksmtb_event("verified", "result=ok");
	if (linger > 0)
		nap_ms((long)(linger * 1000));
	return failures ? 1 : 0;
}
