/*
 * shapes - the memory shapes real programs make, each checked against the
 * merge daemon: does what should merge merge, does nothing get lost?
 *
 * Each shape starts its own processes, fills memory with known content,
 * waits for merging (pagemap + kpageflags: pages mapping a KSM page),
 * changes the shape, waits again, verifies every page and prints
 *
 *   PKSMTB-EVENT shape name=S <figures> result=pass|fail
 *   PKSMTB-EVENT verified result=ok | result=fail failures=1
 *
 * Shapes:
 *   mremap       two processes with the same pages, merged; one moves its
 *                region with mremap(MAYMOVE|FIXED), as realloc() does: the
 *                moved pages must be merged again (or stay merged).
 *   fork-optout  a parent touches its region, forks a child that opts out
 *                with PR_SET_MEMORY_MERGE=0, then fills the region with
 *                pairs of equal pages only it maps: they must merge.
 *   pinned       process A fills pages and pins each one in a pipe
 *                (vmsplice); later B and C fill the same content: B and C
 *                must merge with each other although A's equal pages sit
 *                pinned in the daemon's trees.
 *   structured   two processes fill pages that are zero but for one word,
 *                all different within a process, equal across the two
 *                (freshly initialised structures): every page must merge
 *                with its twin.
 *   madvfree     A and B merge; B exits; A MADV_FREEs its region (the KSM
 *                pages, mapped by A alone, become lazily freeable); C fills
 *                the same content (it must not be merged into pages that
 *                reclaim may drop); A unmaps; C pages out its region
 *                (MADV_PAGEOUT) and must still read its own content.
 *   swapcache    A and B merge; B exits; A pages its region out
 *                (MADV_PAGEOUT: the KSM pages go to swap and, with no memory
 *                pressure, stay in the swap cache) and reads it back (the
 *                same KSM pages, now in the swap cache, mapped again); then
 *                24 short-lived processes in turn fill the same content,
 *                merge into those pages and exit: their records must be
 *                pruned (/sys/kernel/mm/pksm/mappings back to A's own
 *                within 4 x period_seconds), not kept while the pages stay
 *                in the swap cache, each pinning a dead anon_vma; and the
 *                KSM pages must stay clean in the swap cache (their swap
 *                copy is current: a merge must not make reclaim write them
 *                again).
 *   optout-race  A's pages wait in the unstable tree; B fills the same; with
 *                pksmd slowed down between checking a partner and making it
 *                a KSM page (debugfs pksm/delay_points bit 0), A opts out
 *                with MADV_UNMERGEABLE mid-merge: none of A's pages may be a
 *                KSM page afterwards.
 *   exit-race    A and B merge; C fills the same content and exits while
 *                pksmd, slowed down between write-protecting C's pages and
 *                recording their anon_vma (bit 1), merges them (the debug
 *                build's KASAN judges what pksmd then touches).
 *   zero-exit-race  three times: C faults in zero-filled pages and exits
 *                as soon as two of them map the zero page, while pksmd,
 *                slowed down between write-protecting a zero page and
 *                pointing its PTEs at the zero page (bit 2), merges the
 *                next: pksmd must have pinned C's anon_vma (KASAN judges
 *                on the debug build); not all of C's pages may be merged
 *                at its exit, or the window was not reached.
 *   unmap-race   ten rounds: A's pages wait in the unstable tree; B fills
 *                the same and A unmaps its pages while pksmd, slowed down
 *                before write-protecting each page it merges (bit 3),
 *                pairs them with B's: a partner unmapped in that window
 *                must not become a KSM page still marked exclusive to its
 *                old mapping (a write to B's page would then reuse the KSM
 *                page in place); every page of B mapping a KSM page must
 *                change frame when written, and the window must be met
 *                (merge_races rises).
 *   pair-write   six rounds, each with content never seen before: A's
 *                pages wait in the unstable tree; B fills the same, and
 *                pksmd pairs them one by one, sleeping before each of the
 *                two write-protects of a pair merge (bit 3).  When one of
 *                B's pages is merged, B writes a stamp into the next one,
 *                which pksmd has already found equal to A's: 5 ms later
 *                (both pages writable) or 45 ms later (A's read-only).  The
 *                compare after the write-protect must see the stamp and not
 *                merge (merge_failures rises: the window was met); no stamp
 *                may be lost, and the unstamped pages must merge.
 *   forkwide     P fills its pages and forks 60 children that keep them
 *                (each page mapped by 61 processes); once P's pages wait in
 *                the unstable tree, D fills the same content: P's family
 *                and D must merge (at least 90 % of the pages of each),
 *                while pksmd never holds more than a few mmap locks at once
 *                (lockdep on the debug build: no "MAX_LOCK_DEPTH too low").
 *   forktree     a parent fills its pages and forks a child that rewrites
 *                them with the same bytes (COW copies in the child's own
 *                anon_vma): parent and child pages merge pairwise, and the
 *                KSM pages' reverse map must reach each PTE once
 *                (debugfs pksm/census: ptes == mapcount); then the parent
 *                forks a grandchild, and the kept pages_shared/pages_sharing
 *                must match a recount within 3 x period_seconds.
 *   migrate      A, B and C hold the same pages, merged; each KSM page is
 *                moved to another frame (debugfs pksm/migrate, as
 *                compaction would move it): every mapping must follow it
 *                to one new frame that is still a KSM page, the reverse
 *                map must reach each PTE once (census), D's equal pages
 *                must merge into the moved pages (the stable node
 *                followed), and B's writes must copy them; all verify.
 *   optout-enomem  a process whose two regions hold equal pages (merged
 *                with each other) opts out with PR_SET_MEMORY_MERGE=0 while
 *                fail_page_alloc (debug build, task-filtered) makes its
 *                unsharing faults run out of memory part-way: the prctl
 *                fails with ENOMEM, the process stays opted in, and both
 *                regions merge again (at least 98 % of their pages).
 *   uaccess      for --hold seconds, the kernel writes (read() from a
 *                file) into freshly mapped pages while pksmd, at full
 *                speed, merges every zero page it sees: each page must
 *                hold the file's bytes and a never-written page must read
 *                zero (UML's copy_to_user() once wrote into the zero page
 *                that pksmd had put under a PTE it had just checked).
 *   pinnedzero   a process fills unique pages, waits until the daemon files
 *                them in its unstable tree, pins each one in a pipe
 *                (vmsplice) and zeroes it: the pages leave the tree as
 *                changed and are zero pages that cannot be merged while
 *                pinned; for --hold seconds the daemon's LRU drains and
 *                failed merges are counted (a pinned zero page retried at
 *                every batch drained the LRU at every batch).
 *   restore      region A is filed in the daemon's unstable tree; A is
 *                rewritten, B is filled with A's old content and filed,
 *                then A is restored: A and B are equal but filed apart
 *                (B's search met A's new content), and unchanged from then
 *                on.  At least 90 % of them must merge within --timeout.
 *                Twice: A rewritten whole, then A changed in one word a
 *                page (mostly outside the daemon's sampled words).
 *   hotword      two processes with equal pages each keep rewriting one
 *                word of every page (a reference count, an object header):
 *                the pages never stay equal, so they should not be merged
 *                (the test judges the COW breaks from the daemon's counters).
 *   hotzero      a process's zero pages are written as soon as they are
 *                merged with the zero page and zeroed again, for --hold
 *                seconds (a buffer cleared after each use): the daemon's
 *                zero merges are counted (the test judges how often each
 *                page was merged: without a back-off, at every probation).
 *   hotshare     H, C and P hold the same pages, merged; for --hold seconds
 *                (at least 14) H breaks each of its pages as soon as it is
 *                merged again; 12 s in, C writes each of its pages once and
 *                puts it back: C's copies must merge again within
 *                --timeout (H's churn must not back off C's copies).
 *   refault      A and B hold the same pages, A also zero pages; once they
 *                are merged, A drops its region (MADV_DONTNEED) and fills it
 *                again and B opts out (MADV_UNMERGEABLE): pages born where
 *                pages were just merged, none of them a write to a merged
 *                page, so (almost) none may be backed off (cow_backoffs).
 *   cpu-write    two vCPUs: the merge daemon kept on CPU 0, writers W0
 *                and W1 and an idle partner P hold the same pages and
 *                merge.  For --hold seconds each writer stamps a word of a
 *                random page with a value never used before or puts it
 *                back (the page merges again), checking first that the
 *                word reads what it last wrote.  First half: W0 alone on
 *                CPU 1 while every merge sleeps 5 ms before it
 *                write-protects the page (bit 3: a stamp written there,
 *                after pksmd compared the page, must be seen by the compare
 *                after the write-protect, or the merge loses it) and 5 ms
 *                with its page read-only and checked (bits 0 and 1): writes
 *                on CPU 1 fault on pages pksmd is merging on CPU 0, and
 *                merges lose their page to them (merge_races, which must
 *                rise: the half lasts until it has, up to four halves;
 *                cross_ms).
 *                Second half: W1 writes too, on CPU 0, no delay: W0 and W1
 *                break COW on the same KSM pages from both CPUs at once.  No write may
 *                be lost, stable merges must have happened, and the
 *                partner's KSM pages must be reached once each (census).
 *   cpu-remap    two vCPUs: two processes, one on each CPU, merge their
 *                equal pages; for --hold seconds each moves its pages back
 *                and forth (mremap: every PTE cleared at one address and set
 *                at the other), makes them read-only and writable again
 *                (mprotect) and breaks COW on one page in eight moves, while
 *                pksmd on CPU 0 prunes the records (period_seconds 1).  The
 *                pages must merge again and the KSM pages' reverse map must
 *                reach each PTE once (debugfs pksm/census: ptes ==
 *                mapcount): a live record pruned by mistake shows there.
 *   mmaplock     P and Q hold the same pages; a task sharing P's memory
 *                (clone(CLONE_VM)) keeps changing a page's protection
 *                (mprotect: P's mmap lock held for writing, over and
 *                over) while pksmd merges them: P's pages must merge
 *                within --timeout (pksmd only trylocks an mmap lock: a
 *                contended one may delay a merge, never stop it), and all
 *                verify; failed merges and LRU drains are reported.
 *   forkzero     a process's zero pages, in a MADV_DONTFORK region and a
 *                MADV_WIPEONFORK one, are merged with the zero page; it
 *                forks 8 children that exit at once and unmaps its
 *                regions: the global ksm_zero_pages must come back to
 *                where it was, and a child's /proc/self/ksm_stat must not
 *                count zero pages it never got (each child was given the
 *                parent's count, and its exit left it in the global one).
 *   reborn       (pksm.opted_in_only=1, probation_scans 0) A fills unique
 *                pages, waits until they are filed in the unstable tree
 *                and exits; B, on the same CPU, fills pages in equal
 *                pairs (many of them in A's frames, whose items are still
 *                in the tree), then opts in: every page of B must be
 *                merged two full scans later, as upstream's selftests
 *                expect (before, a page born in such a frame waited for
 *                the sweep of dead unstable items to reach its bucket).
 *   nosleep      with pages_to_scan 10 and sleep_millisecs 0 (the knobs of
 *                upstream's ksm_tests) pages in equal pairs opt in: all
 *                must merge; the time it took is printed (after_s; a
 *                daemon that sleeps between batches takes a jiffy per 10
 *                pages, as no sleep at all is what 0 asks for).  Then a
 *                page pinned in a pipe and unmapped before pksmd could
 *                read it waits on the new list for 200 ms: the batches
 *                pksmd ran meanwhile are printed (stuck_batches; it must
 *                not spin on a page it cannot read).
 *
 * Usage: shapes --shape S [--pages N] [--timeout SEC] [--hold SEC]
 * Exit status: 0 pass, 1 fail, 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <inttypes.h>
#include <signal.h>
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

#define PROG "shapes"
#include "util.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif
#ifndef PR_GET_MEMORY_MERGE
#define PR_GET_MEMORY_MERGE 68
#endif

#define PAGE 4096UL
#define WORDS (PAGE / 8)
#define GOLDEN 0x9e3779b97f4a7c15ULL
#define MAX_PROCS 4

static long npages = 2048;
static double timeout_sec = 30.0;
static double hold_sec = 6.0;
static const char *shape;

/*
 * State shared by the processes of a shape: a MAP_SHARED mapping (shmem,
 * which the daemon never merges).  Each process sets its phase; the driver
 * reads them.
 */
struct shared {
	volatile int phase[MAX_PROCS];
	volatile int go[MAX_PROCS];
	volatile long merged[MAX_PROCS];	/* [3]: a spare figure */
	volatile int bad[MAX_PROCS];
	volatile long fig[8];			/* a shape's own figures */
};

static struct shared *sh;

static uint64_t fmix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void *map_anon(size_t pages)
{
	void *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("shapes: mmap");
		exit(1);
	}
	return p;
}

/* Random-looking content keyed by @key (full pages). */
static void fill_stream(uint64_t *w, uint64_t key)
{
	for (size_t j = 0; j < WORDS; j++)
		w[j] = fmix(key + (j + 1) * GOLDEN);
}

/* Zero but for one word: page @i's word (i * 37) % 512 holds i + 1. */
static void fill_sparse(uint64_t *w, uint64_t i)
{
	memset(w, 0, PAGE);
	w[(i * 37) % WORDS] = i + 1;
}

typedef void (*filler)(uint64_t *w, uint64_t key);

static void fill(unsigned char *base, long n, filler f, uint64_t salt)
{
	for (long i = 0; i < n; i++)
		f((uint64_t *)(base + i * PAGE), salt + (uint64_t)i);
}

/* Pages of [base, base + n pages) that differ from what @f made. */
static long verify(const unsigned char *base, long n, filler f, uint64_t salt)
{
	uint64_t want[WORDS];
	long bad = 0;

	for (long i = 0; i < n; i++) {
		f(want, salt + (uint64_t)i);
		if (memcmp(base + i * PAGE, want, PAGE)) {
			if (bad < 5)
				printf("shapes: MISMATCH pid %d page %ld\n", (int)getpid(), i);
			bad++;
		}
	}
	return bad;
}

/* Pages of the range mapping a KSM page (pagemap + kpageflags), or -1. */
static long count_ksm(const unsigned char *base, long n)
{
	long ksm;

	return count_merged(base, (size_t)n, &ksm, NULL) ? -1 : ksm;
}

/* Wait until at least @want pages of the range map KSM pages; the count. */
static long wait_merged(const unsigned char *base, long n, long want, double limit)
{
	double end = now() + limit;
	long k;

	for (;;) {
		k = count_ksm(base, n);
		if (k < 0 || k >= want || now() >= end)
			return k;
		nap(100);
	}
}

/*
 * The pfn @addr maps, and in *@ksm whether it is a KSM page; 0 if it maps
 * nothing, -1 if pagemap or kpageflags cannot be read.
 */
static long page_pfn(const void *addr, int *ksm)
{
	uint64_t ent, flags = 0;
	int pm = open("/proc/self/pagemap", O_RDONLY);
	int kf = open("/proc/kpageflags", O_RDONLY);
	long pfn = -1;

	*ksm = 0;
	if (pm < 0 || kf < 0)
		goto out;
	if (pread(pm, &ent, sizeof(ent), (off_t)((uintptr_t)addr / PAGE * 8)) != sizeof(ent))
		goto out;
	pfn = (ent & PM_PRESENT) ? (long)(ent & PM_PFN_MASK) : 0;
	if (pfn > 0 && pread(kf, &flags, sizeof(flags), (off_t)pfn * 8) != sizeof(flags))
		pfn = -1;
	*ksm = !!(flags & (1ULL << KPF_KSM));
out:
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	return pfn;
}

static void wait_phase(int proc, int phase)
{
	double end = now() + timeout_sec * 3;

	while (sh->phase[proc] < phase) {
		if (now() > end) {
			fprintf(stderr, "shapes: process %d never reached phase %d\n", proc, phase);
			exit(1);
		}
		nap(10);
	}
}

static void wait_go(int proc, int go)
{
	while (sh->go[proc] < go)
		nap(10);
}

static pid_t spawn(int proc, int (*fn)(int proc))
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("shapes: fork");
		exit(1);
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		fflush(stdout);
		_exit(fn(proc));
	}
	return pid;
}

static int reap(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "shapes: process %d failed (status 0x%x)\n", (int)pid, st);
		return 1;
	}
	return 0;
}

/* A counter of /sys/kernel/mm/pksm, or -1 if there is none (upstream KSM). */
static long pksm_counter(const char *name)
{
	char path[128];
	long v = -1;
	FILE *f;

	/* "dir/name" reads /sys/kernel/mm/dir/name, a bare name PKSM's own */
	snprintf(path, sizeof(path), "/sys/kernel/mm/%s%s",
		 strchr(name, '/') ? "" : "pksm/", name);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static const char *const counters[] = {
	"cow_breaks", "cow_backoffs", "hash_false_positives", "merge_failures",
	"merge_races", "reverified", "ksm/pages_scanned",
};
#define NR_COUNTERS (sizeof(counters) / sizeof(counters[0]))
static long counters_before[NR_COUNTERS];

static void counters_start(void)
{
	for (size_t i = 0; i < NR_COUNTERS; i++)
		counters_before[i] = pksm_counter(counters[i]);
}

/* The event line ends with each counter's change during the shape. */
static int report(const char *figures, int pass)
{
	char changes[64 * NR_COUNTERS];
	size_t len = 0;

	for (size_t i = 0; i < NR_COUNTERS; i++) {
		long now_v = pksm_counter(counters[i]);

		const char *key = strchr(counters[i], '/');

		len += (size_t)snprintf(changes + len, sizeof(changes) - len, " %s=%ld",
					key ? key + 1 : counters[i], now_v < 0 || counters_before[i] < 0 ?
					-1 : now_v - counters_before[i]);
	}
	pksmtb_event("shape", "name=%s %s%s result=%s", shape, figures, changes,
		     pass ? "pass" : "fail");
	if (pass)
		pksmtb_event("verified", "result=ok");
	else
		pksmtb_event("verified", "result=fail failures=1");
	return pass ? 0 : 1;
}

/* ---- mremap ---------------------------------------------------------- */

static int mremap_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);

	fill(base, npages, fill_stream, 1000);
	sh->phase[proc] = 1;
	sh->merged[proc] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
	sh->phase[proc] = 2;
	wait_go(proc, 1);
	if (proc == 1) {
		/* Reserve a far destination, then move the region onto it. */
		unsigned char *dst = map_anon((size_t)npages + 16) + 8 * PAGE;
		unsigned char *moved = mremap(base, npages * PAGE, npages * PAGE,
					      MREMAP_MAYMOVE | MREMAP_FIXED, dst);

		if (moved == MAP_FAILED) {
			perror("shapes: mremap");
			return 1;
		}
		base = moved;
		sh->merged[proc] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
	}
	sh->phase[proc] = 3;
	wait_go(proc, 2);
	sh->bad[proc] = (int)verify(base, npages, fill_stream, 1000);
	return 0;
}

static int shape_mremap(void)
{
	pid_t a = spawn(0, mremap_proc), b = spawn(1, mremap_proc);
	long before0, before1;
	char fig[160];
	int fail;

	wait_phase(0, 2);
	wait_phase(1, 2);
	before0 = sh->merged[0];
	before1 = sh->merged[1];
	sh->go[0] = sh->go[1] = 1;
	wait_phase(1, 3);
	sh->go[0] = sh->go[1] = 2;
	fail = reap(a) | reap(b);
	snprintf(fig, sizeof(fig), "pages=%ld merged_before=%ld,%ld merged_moved=%ld bad=%d,%d",
		 npages, before0, before1, sh->merged[1], sh->bad[0], sh->bad[1]);
	return report(fig, !fail && before1 >= npages * 9 / 10 &&
		      sh->merged[1] >= npages * 9 / 10 && !sh->bad[0] && !sh->bad[1]);
}

/* ---- fork-optout ----------------------------------------------------- */

/* Pairs: page i and page i + n/2 are equal. */
static void fill_pairs(uint64_t *w, uint64_t i)
{
	fill_stream(w, 5000 + (i - 1) % (uint64_t)(npages / 2));
}

static int shape_fork_optout(void)
{
	unsigned char *base = map_anon((size_t)npages);
	pid_t child;
	long merged, bad;
	char fig[160];
	int fail;

	base[0] = 1;		/* an anon_vma the child's VMA will share */
	child = fork();
	if (child < 0) {
		perror("shapes: fork");
		return 1;
	}
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0)) {
			perror("shapes: prctl(PR_SET_MEMORY_MERGE, 0)");
			_exit(1);
		}
		sh->phase[1] = 1;
		wait_go(1, 1);
		_exit(base[0] == 1 ? 0 : 1);
	}
	wait_phase(1, 1);
	fill(base, npages, fill_pairs, 1);
	merged = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
	bad = verify(base, npages, fill_pairs, 1);
	sh->go[1] = 1;
	fail = reap(child);
	snprintf(fig, sizeof(fig), "pages=%ld merged=%ld bad=%ld", npages, merged, bad);
	return report(fig, !fail && merged >= npages * 9 / 10 && !bad);
}

/* ---- pinned ---------------------------------------------------------- */

/*
 * Pin every page of [base, base + n pages): a reference a pipe holds until
 * read (vmsplice), pipes left open until the process exits.  0, or 1.
 */
static int pin_pages(unsigned char *base, long n)
{
	int p[2] = { -1, -1 };

	for (long i = 0; i < n; i++) {
		struct iovec iov = { base + i * PAGE, PAGE };

		if (i % 256 == 0 &&
		    (pipe(p) || fcntl(p[1], F_SETPIPE_SZ, 256 * PAGE) < 0)) {
			perror("shapes: pipe");
			return 1;
		}
		if (vmsplice(p[1], &iov, 1, 0) != (ssize_t)PAGE) {
			perror("shapes: vmsplice");
			return 1;
		}
	}
	return 0;
}

static int pinned_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);
	long bad;

	fill(base, npages, fill_stream, 9000);
	if (proc == 0) {
		if (pin_pages(base, npages))
			return 1;
		sh->phase[proc] = 1;
		wait_go(proc, 1);
		sh->merged[proc] = count_ksm(base, npages);
	} else {
		sh->phase[proc] = 1;
		sh->merged[proc] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
		sh->phase[proc] = 2;
		wait_go(proc, 1);
	}
	bad = verify(base, npages, fill_stream, 9000);
	sh->bad[proc] = (int)bad;
	return 0;
}

static int shape_pinned(void)
{
	pid_t a, b, c;
	char fig[160];
	int fail;

	a = spawn(0, pinned_proc);
	wait_phase(0, 1);
	/* Let the daemon file A's pinned pages in its trees first. */
	nap((long)(hold_sec * 1000));
	b = spawn(1, pinned_proc);
	c = spawn(2, pinned_proc);
	wait_phase(1, 2);
	wait_phase(2, 2);
	sh->go[0] = sh->go[1] = sh->go[2] = 1;
	fail = reap(a) | reap(b) | reap(c);
	snprintf(fig, sizeof(fig), "pages=%ld merged=%ld,%ld,%ld bad=%d,%d,%d", npages,
		 sh->merged[0], sh->merged[1], sh->merged[2], sh->bad[0], sh->bad[1],
		 sh->bad[2]);
	return report(fig, !fail && sh->merged[1] >= npages * 9 / 10 &&
		      sh->merged[2] >= npages * 9 / 10 && !sh->bad[0] && !sh->bad[1] &&
		      !sh->bad[2]);
}

/* ---- structured ------------------------------------------------------ */

static int sparse_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);

	fill(base, npages, fill_sparse, 1);
	sh->phase[proc] = 1;
	sh->merged[proc] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
	sh->phase[proc] = 2;
	wait_go(proc, 1);
	sh->bad[proc] = (int)verify(base, npages, fill_sparse, 1);
	return 0;
}

static int shape_structured(void)
{
	pid_t a = spawn(0, sparse_proc), b = spawn(1, sparse_proc);
	char fig[160];
	int fail;

	wait_phase(0, 2);
	wait_phase(1, 2);
	sh->go[0] = sh->go[1] = 1;
	fail = reap(a) | reap(b);
	snprintf(fig, sizeof(fig), "pages=%ld merged=%ld,%ld bad=%d,%d", npages,
		 sh->merged[0], sh->merged[1], sh->bad[0], sh->bad[1]);
	return report(fig, !fail && sh->merged[0] >= npages * 9 / 10 &&
		      sh->merged[1] >= npages * 9 / 10 && !sh->bad[0] && !sh->bad[1]);
}

/* ---- madvfree -------------------------------------------------------- */

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

static int madvfree_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);

	fill(base, npages, fill_stream, 3000);
	sh->phase[proc] = 1;
	if (proc < 2) {
		sh->merged[proc] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
		sh->phase[proc] = 2;
		wait_go(proc, 1);
		if (proc == 1)
			return 0;	/* B: exit, A's pages stay alone on the KSM pages */
		if (madvise(base, npages * PAGE, MADV_FREE)) {
			perror("shapes: madvise(MADV_FREE)");
			return 1;
		}
		sh->phase[proc] = 3;
		wait_go(proc, 2);
		return 0;	/* A: exit, C alone on whatever it merged into */
	}
	/* C: give the daemon time to merge, then page out once A is gone. */
	sh->merged[proc] = wait_merged(base, npages, npages * 9 / 10, hold_sec);
	sh->phase[proc] = 2;
	wait_go(proc, 1);
	if (madvise(base, npages * PAGE, MADV_PAGEOUT))
		perror("shapes: madvise(MADV_PAGEOUT)");
	sh->bad[proc] = (int)verify(base, npages, fill_stream, 3000);
	return 0;
}

static int shape_madvfree(void)
{
	pid_t a = spawn(0, madvfree_proc), b = spawn(1, madvfree_proc), c;
	char fig[160];
	int fail;

	wait_phase(0, 2);
	wait_phase(1, 2);
	sh->go[1] = 1;
	fail = reap(b);
	sh->go[0] = 1;
	wait_phase(0, 3);
	c = spawn(2, madvfree_proc);
	wait_phase(2, 2);
	sh->go[0] = 2;
	fail |= reap(a);
	sh->go[2] = 1;
	fail |= reap(c);
	snprintf(fig, sizeof(fig), "pages=%ld merged=%ld,%ld,%ld bad=%d", npages,
		 sh->merged[0], sh->merged[1], sh->merged[2], sh->bad[2]);
	return report(fig, !fail && sh->merged[0] >= npages * 9 / 10 && !sh->bad[2]);
}

/* ---- swapcache -------------------------------------------------------- */

#define SWAPCACHE_VISITORS 24
#define KPF_DIRTY_BIT 4
#define KPF_SWAPCACHE_BIT 13

/*
 * Of the range's pages mapping a KSM page in the swap cache, how many are
 * dirty (*dirty) and how many there are (the return value); -1 on error.
 */
static long ksm_swapcache_dirty(const unsigned char *base, long n, long *dirty)
{
	int kf = open("/proc/kpageflags", O_RDONLY);
	long cached = 0;

	*dirty = 0;
	if (kf < 0)
		return -1;
	for (long i = 0; i < n; i++) {
		uint64_t flags;
		long pfn;
		int ksm;

		pfn = page_pfn(base + i * PAGE, &ksm);
		if (pfn < 0 || (pfn > 0 && pread(kf, &flags, sizeof(flags), (off_t)pfn * 8) !=
				sizeof(flags))) {
			close(kf);
			return -1;
		}
		if (!ksm || !(flags & (1ULL << KPF_SWAPCACHE_BIT)))
			continue;
		cached++;
		*dirty += !!(flags & (1ULL << KPF_DIRTY_BIT));
	}
	close(kf);
	return cached;
}

static int swapcache_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);

	fill(base, npages, fill_stream, 19000);
	sh->phase[proc] = 1;
	sh->merged[proc] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
	if (proc == 2) {
		/* a visitor: merged (or not, counted), gone */
		sh->bad[2] += (int)verify(base, npages, fill_stream, 19000);
		return 0;
	}
	sh->phase[proc] = 2;
	wait_go(proc, 1);
	if (proc == 1)
		return 0;	/* B: exit, A alone maps the KSM pages */
	if (madvise(base, npages * PAGE, MADV_PAGEOUT)) {
		perror("shapes: madvise(MADV_PAGEOUT)");
		return 1;
	}
	/* read back: swap-in maps the KSM pages from the swap cache */
	sh->bad[0] = (int)verify(base, npages, fill_stream, 19000);
	sh->merged[3] = count_ksm(base, npages);
	sh->phase[proc] = 3;
	wait_go(proc, 2);
	/* The visitors merged into them: still clean, their swap copy current. */
	sh->fig[0] = ksm_swapcache_dirty(base, npages, (long *)&sh->fig[1]);
	sh->bad[0] += (int)verify(base, npages, fill_stream, 19000);
	return 0;
}

/* SwapCached of /proc/meminfo in kB, or -1. */
static long swap_cached_kb(void)
{
	char line[128];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SwapCached: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

static int shape_swapcache(void)
{
	long before = pksm_counter("mappings"), peak = 0, after = -1, cached;
	long period = pksm_counter("period_seconds"), visitors_merged = 0;
	pid_t a = spawn(0, swapcache_proc), b = spawn(1, swapcache_proc);
	char fig[320];
	double end;
	int fail;

	wait_phase(0, 2);
	wait_phase(1, 2);
	sh->go[1] = 1;
	fail = reap(b);
	sh->go[0] = 1;
	wait_phase(0, 3);
	cached = swap_cached_kb();
	for (int i = 0; i < SWAPCACHE_VISITORS; i++) {
		fail |= reap(spawn(2, swapcache_proc));
		visitors_merged += sh->merged[2] >= npages * 9 / 10;
		peak = pksm_counter("mappings") > peak ? pksm_counter("mappings") : peak;
	}
	/* the visitors are gone: their records must go within a few periods */
	end = now() + 4.0 * (double)(period > 0 ? period : 1);
	do {
		nap(250);
		after = pksm_counter("mappings");
	} while (after > before + npages + npages / 8 && now() < end);
	sh->go[0] = 2;
	fail |= reap(a);
	snprintf(fig, sizeof(fig),
		 "pages=%ld merged=%ld,%ld ksm_after_swapin=%ld swap_cached_kb=%ld "
		 "visitors_merged=%ld records_before=%ld records_peak=%ld records_after=%ld "
		 "ksm_cached_at_end=%ld ksm_cached_dirty=%ld bad=%d,%d", npages, sh->merged[0],
		 sh->merged[1], sh->merged[3], cached, visitors_merged, before, peak, after,
		 sh->fig[0], sh->fig[1], sh->bad[0], sh->bad[2]);
	return report(fig, !fail && sh->merged[0] >= npages * 9 / 10 &&
		      sh->merged[3] >= npages * 9 / 10 &&
		      visitors_merged == SWAPCACHE_VISITORS &&
		      cached >= npages * (long)(PAGE / 1024) * 9 / 10 &&
		      after <= before + npages + npages / 8 && sh->fig[0] >= npages / 2 &&
		      sh->fig[1] <= npages / 8 && !sh->bad[0] && !sh->bad[2]);
}

/* ---- races widened by pksmd's debug delays ---------------------------- */

/* Write @val to the file @dir/@name; 0 on success. */
static int write_knob(const char *dir, const char *name, const char *val)
{
	char path[128];
	FILE *f;
	int bad;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "shapes: %s: %s\n", path, strerror(errno));
		return -1;
	}
	bad = fputs(val, f) < 0;
	bad |= fclose(f) != 0;
	if (bad)
		fprintf(stderr, "shapes: writing %s failed\n", path);
	return bad ? -1 : 0;
}

/* Write a number to /sys/kernel/debug/pksm/NAME; 0 on success. */
static int debug_knob(const char *name, unsigned int v)
{
	char val[16];

	snprintf(val, sizeof(val), "%u\n", v);
	return write_knob("/sys/kernel/debug/pksm", name, val);
}

static int set_delay(unsigned int points, unsigned int ms)
{
	return debug_knob("delay_ms", ms) || debug_knob("delay_points", points);
}

static int race_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);

	fill(base, npages, fill_stream, 11000);
	sh->phase[proc] = 1;
	if (!strcmp(shape, "optout-race") && proc == 0) {
		long before;

		wait_go(proc, 1);
		/* pksmd is merging (slowly): opt out in the middle of it. */
		before = wait_merged(base, npages, 2, timeout_sec);
		if (madvise(base, npages * PAGE, MADV_UNMERGEABLE)) {
			perror("shapes: madvise(MADV_UNMERGEABLE)");
			return 1;
		}
		/* Right after the opt-out, and once pksmd is done. */
		sh->merged[0] = count_ksm(base, npages);
		nap(200);
		sh->merged[0] += count_ksm(base, npages);
		sh->merged[3] = before;
		sh->phase[proc] = 2;
		wait_go(proc, 2);
		sh->merged[0] += count_ksm(base, npages);
	} else if (!strcmp(shape, "exit-race") && proc == 2) {
		nap(300);	/* pksmd is inside a merge of C's pages now */
		return 0;
	} else {
		/* optout-race: B's pages can merge only with A's, not waited for */
		if (strcmp(shape, "optout-race"))
			sh->merged[proc] = wait_merged(base, npages, npages * 9 / 10,
						       timeout_sec);
		sh->phase[proc] = 2;
		wait_go(proc, 2);
	}
	sh->bad[proc] = (int)verify(base, npages, fill_stream, 11000);
	return 0;
}

static int shape_optout_race(void)
{
	pid_t a, b;
	char fig[160];
	int fail;

	if (set_delay(1, 100))
		return report("pages=0 setup=fail", 0);
	a = spawn(0, race_proc);
	wait_phase(0, 1);
	nap(1000);		/* A's pages settle in the unstable tree */
	b = spawn(1, race_proc);
	wait_phase(1, 1);
	sh->go[0] = 1;		/* A opts out once two of its pages merged */
	wait_phase(0, 2);
	/* Let pksmd go through the rest of B's pages at full speed. */
	set_delay(0, 0);
	wait_phase(1, 2);
	sh->go[0] = sh->go[1] = 2;
	fail = reap(a) | reap(b);
	snprintf(fig, sizeof(fig), "pages=%ld merged_before=%ld a_merged_after=%ld bad=%d,%d",
		 npages, sh->merged[3], sh->merged[0], sh->bad[0], sh->bad[1]);
	return report(fig, !fail && !sh->merged[0] && !sh->bad[0] && !sh->bad[1]);
}

static int shape_exit_race(void)
{
	pid_t a = spawn(0, race_proc), b = spawn(1, race_proc), c;
	char fig[160];
	int fail;

	wait_phase(0, 2);
	wait_phase(1, 2);
	if (set_delay(2, 100))
		return report("pages=0 setup=fail", 0);
	c = spawn(2, race_proc);
	fail = reap(c);
	nap(1000);		/* pksmd finishes the merges of the dead C */
	set_delay(0, 0);
	sh->go[0] = sh->go[1] = 2;
	fail |= reap(a) | reap(b);
	snprintf(fig, sizeof(fig), "pages=%ld merged=%ld,%ld bad=%d,%d", npages,
		 sh->merged[0], sh->merged[1], sh->bad[0], sh->bad[1]);
	return report(fig, !fail && sh->merged[0] >= npages * 9 / 10 && !sh->bad[0] &&
		      !sh->bad[1]);
}

/*
 * C of zero-exit-race: fault in zero pages, wait until pksmd merged two of
 * them (its own pagemap: reading a pksm counter would wait for pksmd's
 * batch to end), then exit while pksmd is in the middle of the next.
 */
static int zero_exit_proc(int proc)
{
	volatile unsigned char *base = map_anon((size_t)npages);
	double end;
	long ksm, zero = 0;

	for (long i = 0; i < npages; i++)
		base[i * PAGE] = 0;	/* a write fault: a page of its own */
	end = now() + timeout_sec;
	while (zero < 2 && now() < end) {
		if (count_merged((const void *)base, (size_t)npages, &ksm, &zero))
			return 1;
		nap(20);
	}
	sh->merged[proc] = zero;
	return 0;
}

static int shape_zero_exit_race(void)
{
	long least = -1;
	char fig[160];
	int fail = 0;

	if (pksm_counter("zero_merges") < 0 || set_delay(4, 200))
		return report("pages=0 setup=fail", 0);
	/* Three processes in turn, each exiting in the middle of a merge. */
	for (int round = 0; round < 3; round++) {
		sh->merged[2] = 0;
		fail |= reap(spawn(2, zero_exit_proc));
		if (least < 0 || sh->merged[2] < least)
			least = sh->merged[2];
	}
	nap(1000);		/* pksmd finishes the merge it was in */
	set_delay(0, 0);
	snprintf(fig, sizeof(fig), "pages=%ld rounds=3 least_zero_merged_at_exit=%ld",
		 npages, least);
	return report(fig, !fail && least >= 2 && least < npages);
}

/* ---- unmap-race ------------------------------------------------------- */

#define UNMAP_RACE_ROUNDS 10

/* A of unmap-race: this round's pages, unmapped at the driver's word. */
static int unmap_race_a(int proc)
{
	unsigned char *base = map_anon((size_t)npages);

	fill(base, npages, fill_stream, (uint64_t)sh->fig[0]);
	sh->phase[proc] = 1;
	wait_go(proc, 1);
	munmap(base, (size_t)npages * PAGE);
	sh->phase[proc] = 2;
	return 0;
}

/*
 * B of unmap-race: the same pages; once A's are gone, every page of B that
 * maps a KSM page is written (with the byte it holds): the write must copy
 * it, never reuse the KSM page in place.
 */
static int unmap_race_b(int proc)
{
	volatile unsigned char *base = map_anon((size_t)npages);
	long merged = 0, reused = 0;

	double end;
	long k = 0;

	fill((unsigned char *)base, npages, fill_stream, (uint64_t)sh->fig[0]);
	/* Once pksmd pairs B's pages with A's (slowly), A unmaps its own. */
	end = now() + timeout_sec;
	while (!k && now() < end) {
		k = count_ksm((const unsigned char *)base, npages);
		if (k < 0)
			return 1;
		nap(2);
	}
	sh->go[0] = 1;
	sh->phase[proc] = 1;
	wait_go(proc, 1);
	for (long i = 0; i < npages; i++) {
		volatile unsigned char *p = base + i * PAGE;
		long before, after;
		int ksm, dummy;

		before = page_pfn((const void *)p, &ksm);
		if (before < 0)
			return 1;
		if (!ksm)
			continue;
		merged++;
		*p = *p;	/* a write fault: COW of the KSM page */
		after = page_pfn((const void *)p, &dummy);
		if (after < 0)
			return 1;
		if (after == before) {
			if (reused < 5)
				printf("shapes: KSM pfn %#lx reused by a write, page %ld\n",
				       before, i);
			reused++;
		}
	}
	sh->merged[proc] = merged;
	sh->fig[1] = reused;
	sh->bad[proc] = (int)verify((const unsigned char *)base, npages, fill_stream,
				    (uint64_t)sh->fig[0]);
	return 0;
}

static int shape_unmap_race(void)
{
	long merged = 0, reused = 0, races = pksm_counter("merge_races");
	char fig[200];
	int fail = 0, bad = 0;

	if (races < 0 || set_delay(8, 20))
		return report("pages=0 setup=fail", 0);
	for (int r = 0; r < UNMAP_RACE_ROUNDS && !fail; r++) {
		pid_t a, b;

		memset((void *)sh, 0, sizeof(*sh));
		sh->fig[0] = 13000 + r * 1000;
		a = spawn(0, unmap_race_a);
		wait_phase(0, 1);
		nap(600);	/* A's pages are filed in the unstable tree */
		b = spawn(1, unmap_race_b);
		fail |= reap(a);
		wait_phase(1, 1);
		nap(800);	/* pksmd is done with B's pages */
		sh->go[1] = 1;
		fail |= reap(b);
		merged += sh->merged[1];
		reused += sh->fig[1];
		bad += sh->bad[1];
	}
	set_delay(0, 0);
	races = pksm_counter("merge_races") - races;
	snprintf(fig, sizeof(fig), "pages=%ld rounds=%d merged=%ld reused=%ld races=%ld bad=%d",
		 npages, UNMAP_RACE_ROUNDS, merged, reused, races, bad);
	return report(fig, !fail && merged > 0 && !reused && races > 0 && !bad);
}

/* ---- pair-write ------------------------------------------------------- */

#define PAIR_WRITE_ROUNDS 6
#define PAIR_WRITE_DELAY_MS 30
#define PAIR_WRITE_KEY 0x7a000000L

/* The stamp B writes into page @i of round key @key, and where. */
static uint64_t pair_stamp(uint64_t key, long i)
{
	return 0x5a5a000000000000ULL | (key << 16) | (uint64_t)i;
}

static size_t pair_word(uint64_t key, long i)
{
	return 1 + (size_t)((uint64_t)i * 37 + key * 11) % (WORDS - 1);
}

/* A of pair-write: this round's pages, filed in the unstable tree. */
static int pair_write_a(int proc)
{
	unsigned char *base = map_anon((size_t)npages);

	fill(base, npages, fill_stream, (uint64_t)sh->fig[0]);
	sh->phase[proc] = 1;
	wait_go(proc, 1);
	sh->bad[proc] = (int)verify(base, npages, fill_stream, (uint64_t)sh->fig[0]);
	return 0;
}

/*
 * B of pair-write: the same pages, filled after A's were filed, so that
 * pksmd pairs them with A's one by one, in the order B filled them, each
 * pair merge sleeping before each of its two write-protects (bit 3).  As
 * soon as even page i maps a KSM page, pksmd has looked up page i + 1
 * (still equal to A's) and sleeps in its merge: B stamps a word of it 5 ms
 * later (both pages still writable) or 45 ms later (A's page read-only,
 * B's not yet).  pksmd must see the stamp when it compares the two pages
 * again after write-protecting them, and not merge them; a merge that
 * does not compare again points B's PTE at A's page and loses the stamp.
 * merged[proc]: even pages mapping a KSM page at the end; fig[1]: stamps
 * written; fig[2]: stamps lost (or pages otherwise wrong); fig[3]: even
 * pages pksmd never merged (no window for the next).
 */
static int pair_write_b(int proc)
{
	unsigned char *base = map_anon((size_t)npages);
	uint64_t key = (uint64_t)sh->fig[0];
	long stamped = 0, lost = 0, merged = 0, missed = 0;
	uint64_t want[WORDS];

	fill(base, npages, fill_stream, key);
	for (long i = 0; i + 1 < npages; i += 2) {
		volatile uint64_t *w = (volatile uint64_t *)(base + (i + 1) * PAGE);
		double end = now() + 5.0;
		int ksm = 0;

		while (!ksm && now() < end) {
			if (page_pfn(base + i * PAGE, &ksm) < 0)
				return 1;
			if (!ksm)
				nap(1);
		}
		if (!ksm) {
			missed++;
			continue;
		}
		nap(i % 4 ? PAIR_WRITE_DELAY_MS + 15 : 5);
		w[pair_word(key, i + 1)] = pair_stamp(key, i + 1);
		stamped++;
	}
	nap(4 * PAIR_WRITE_DELAY_MS + 200);	/* pksmd is done with B's pages */
	for (long i = 0; i < npages; i++) {
		const uint64_t *got = (const uint64_t *)(base + i * PAGE);
		size_t k = pair_word(key, i);
		int ksm;

		fill_stream(want, key + (uint64_t)i);
		if (i & 1)
			want[k] = pair_stamp(key, i);
		if (memcmp(got, want, PAGE)) {
			if (lost < 5)
				printf("shapes: LOST WRITE pid %d page %ld: word %zu 0x%" PRIx64
				       " reads 0x%" PRIx64 "\n", (int)getpid(), i, k, want[k],
				       got[k]);
			lost++;
		}
		if (!(i & 1)) {
			if (page_pfn(got, &ksm) < 0)
				return 1;
			merged += ksm;
		}
	}
	sh->merged[proc] = merged;
	sh->fig[1] = stamped;
	sh->fig[2] = lost;
	sh->fig[3] = missed;
	return 0;
}

static int shape_pair_write(void)
{
	static const char *const names[] = { "unstable_merges", "merge_failures",
					      "merge_races" };
	long before[3], delta[3], merged = 0, stamped = 0, lost = 0, missed = 0;
	char fig[320];
	int fail = 0, bad = 0;

	for (int c = 0; c < 3; c++)
		before[c] = pksm_counter(names[c]);
	if (before[0] < 0 || set_delay(8, PAIR_WRITE_DELAY_MS))
		return report("pages=0 setup=fail", 0);
	for (int r = 0; r < PAIR_WRITE_ROUNDS && !fail; r++) {
		pid_t a, b;

		memset((void *)sh, 0, sizeof(*sh));
		/*
		 * Content no other shape uses, new each round: no KSM page to
		 * merge into, every merge a pair.
		 */
		sh->fig[0] = PAIR_WRITE_KEY + r * 1000;
		a = spawn(0, pair_write_a);
		wait_phase(0, 1);
		nap(600);	/* A's pages are filed in the unstable tree */
		b = spawn(1, pair_write_b);
		fail |= reap(b);
		sh->go[0] = 1;
		fail |= reap(a);
		merged += sh->merged[1];
		stamped += sh->fig[1];
		lost += sh->fig[2];
		missed += sh->fig[3];
		bad += sh->bad[0];
	}
	set_delay(0, 0);
	for (int c = 0; c < 3; c++)
		delta[c] = pksm_counter(names[c]) - before[c];
	snprintf(fig, sizeof(fig), "pages=%ld rounds=%d delay_ms=%d merged=%ld stamped=%ld "
		 "lost=%ld missed=%ld pairs=%ld refused=%ld raced=%ld a_bad=%d",
		 npages, PAIR_WRITE_ROUNDS, PAIR_WRITE_DELAY_MS, merged, stamped, lost, missed,
		 delta[0], delta[1], delta[2], bad);
	/*
	 * Pass: no stamp lost, the even pages merged, and pksmd refused some
	 * pairs (merge_failures: a compare after the write-protect found the
	 * stamp), so stamps did land inside the window.
	 */
	return report(fig, !fail && !lost && !bad && stamped > 0 &&
		      merged >= PAIR_WRITE_ROUNDS * (npages / 2) * 9 / 10 && delta[1] > 0);
}

/* ---- forkwide -------------------------------------------------------- */

#define FORKWIDE_CHILDREN 60

/* P of forkwide: its pages, shared by fork with 60 children. */
static int forkwide_parent(int proc)
{
	unsigned char *base = map_anon((size_t)npages);
	pid_t kids[FORKWIDE_CHILDREN];
	int fail = 0, n = 0;

	fill(base, npages, fill_stream, 12000);
	for (; n < FORKWIDE_CHILDREN; n++) {
		kids[n] = fork();
		if (kids[n] < 0) {
			perror("shapes: fork");
			fail = 1;
			break;
		}
		if (!kids[n]) {
			/* Keep the pages mapped until the driver is done. */
			wait_go(proc, 2);
			_exit(verify(base, npages, fill_stream, 12000) ? 1 : 0);
		}
	}
	sh->phase[proc] = 1;
	wait_go(proc, 1);
	sh->merged[proc] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
	sh->phase[proc] = 2;
	wait_go(proc, 2);
	sh->bad[proc] = (int)verify(base, npages, fill_stream, 12000);
	while (n > 0)
		fail |= reap(kids[--n]);
	return fail;
}

/* D of forkwide: the same content, in one process. */
static int forkwide_dup(int proc)
{
	unsigned char *base = map_anon((size_t)npages);

	fill(base, npages, fill_stream, 12000);
	sh->merged[proc] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
	sh->phase[proc] = 2;
	wait_go(proc, 2);
	sh->bad[proc] = (int)verify(base, npages, fill_stream, 12000);
	return 0;
}

static int shape_forkwide(void)
{
	long filed0 = pksm_counter("unstable_pages");
	pid_t p, d;
	char fig[160];
	int fail;

	if (filed0 < 0)
		return report("pages=0 setup=fail", 0);
	p = spawn(0, forkwide_parent);
	wait_phase(0, 1);
	/* P's pages wait in the unstable tree, mapped by 61 processes. */
	for (int i = 0; i < 200 && pksm_counter("unstable_pages") - filed0 < npages; i++)
		nap(50);
	sh->merged[3] = pksm_counter("unstable_pages") - filed0;
	d = spawn(1, forkwide_dup);
	sh->go[0] = 1;
	wait_phase(0, 2);
	wait_phase(1, 2);
	sh->go[0] = sh->go[1] = 2;
	fail = reap(p) | reap(d);
	snprintf(fig, sizeof(fig), "pages=%ld mms=%d filed=%ld merged=%ld,%ld bad=%d,%d",
		 npages, FORKWIDE_CHILDREN + 1, sh->merged[3], sh->merged[0], sh->merged[1],
		 sh->bad[0], sh->bad[1]);
	return report(fig, !fail && sh->merged[0] >= npages * 9 / 10 &&
		      sh->merged[1] >= npages * 9 / 10 && !sh->bad[0] && !sh->bad[1]);
}

/* ---- forktree -------------------------------------------------------- */

/**
 * struct census - /sys/kernel/debug/pksm/census, as read
 * @kept_shared: pages_shared as PKSM keeps it
 * @kept_sharing: pages_sharing as PKSM keeps it
 * @shared: pages_shared recounted from the KSM pages' map counts
 * @sharing: pages_sharing recounted
 * @ptes: PTEs the KSM pages' reverse map reached
 * @mapcount: the map counts of the pages walked
 */
struct census {
	long kept_shared, kept_sharing, shared, sharing, ptes, mapcount;
};

/* Read the census; 0 on success. */
static int read_census(struct census *c)
{
	FILE *f = fopen("/sys/kernel/debug/pksm/census", "r");
	char key[32];
	long v;
	int n = 0;

	if (!f) {
		fprintf(stderr, "shapes: census: %s\n", strerror(errno));
		return -1;
	}
	while (fscanf(f, "%31s %ld", key, &v) == 2) {
		long *dst = !strcmp(key, "kept_shared") ? &c->kept_shared :
			    !strcmp(key, "kept_sharing") ? &c->kept_sharing :
			    !strcmp(key, "shared") ? &c->shared :
			    !strcmp(key, "sharing") ? &c->sharing :
			    !strcmp(key, "ptes") ? &c->ptes :
			    !strcmp(key, "mapcount") ? &c->mapcount : NULL;

		if (dst) {
			*dst = v;
			n++;
		}
	}
	fclose(f);
	return n == 6 ? 0 : -1;
}

static int forktree_grandchild(unsigned char *base)
{
	wait_go(0, 2);
	return verify(base, npages, fill_stream, 7000) ? 1 : 0;
}

static int forktree_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);
	pid_t child, grandchild;
	int fail;

	(void)proc;
	fill(base, npages, fill_stream, 7000);
	child = fork();
	if (child < 0) {
		perror("shapes: fork");
		return 1;
	}
	if (child == 0) {
		/* The same bytes again: every page a COW copy of its own. */
		fill(base, npages, fill_stream, 7000);
		sh->merged[1] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
		sh->phase[1] = 2;
		wait_go(0, 2);
		sh->bad[1] = (int)verify(base, npages, fill_stream, 7000);
		_exit(0);
	}
	sh->merged[0] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
	sh->phase[0] = 2;
	wait_go(0, 1);
	grandchild = fork();
	if (grandchild < 0) {
		perror("shapes: fork");
		return 1;
	}
	if (grandchild == 0)
		_exit(forktree_grandchild(base));
	sh->phase[0] = 3;
	wait_go(0, 2);
	sh->bad[0] = (int)verify(base, npages, fill_stream, 7000);
	fail = reap(child) | reap(grandchild);
	return fail;
}

static int shape_forktree(void)
{
	pid_t a = spawn(0, forktree_proc);
	struct census merged = { 0 }, forked = { 0 };
	long period = pksm_counter("period_seconds");
	double start, converge = -1;
	char fig[320];
	int fail, ok;

	wait_phase(0, 2);
	wait_phase(1, 2);
	ok = !read_census(&merged);
	sh->go[0] = 1;		/* the parent forks the grandchild */
	wait_phase(0, 3);
	start = now();
	while (ok && now() - start < 3.0 * (double)(period > 0 ? period : 10)) {
		ok = !read_census(&forked);
		if (ok && forked.kept_shared == forked.shared &&
		    forked.kept_sharing == forked.sharing) {
			converge = now() - start;
			break;
		}
		nap(250);
	}
	sh->go[0] = 2;
	fail = reap(a);
	snprintf(fig, sizeof(fig),
		 "pages=%ld merged=%ld,%ld ptes=%ld mapcount=%ld forked_ptes=%ld "
		 "forked_mapcount=%ld kept=%ld,%ld recount=%ld,%ld converge_s=%.1f bad=%d,%d",
		 npages, sh->merged[0], sh->merged[1], merged.ptes, merged.mapcount,
		 forked.ptes, forked.mapcount, forked.kept_shared, forked.kept_sharing,
		 forked.shared, forked.sharing, converge, sh->bad[0], sh->bad[1]);
	return report(fig, !fail && ok && sh->merged[0] >= npages * 9 / 10 &&
		      sh->merged[1] >= npages * 9 / 10 && merged.ptes == merged.mapcount &&
		      forked.ptes == forked.mapcount && converge >= 0 &&
		      !sh->bad[0] && !sh->bad[1]);
}

/* ---- migrate ---------------------------------------------------------- */

#define MIGRATE_KEY 18000
#define MIGRATE_PROCS 4		/* A, B, C merged; D comes after the moves */
#define MAX_PAGES_MIGRATE 256

/* Per process and page: the frame before the moves, after, KSM or not. */
struct migrate_frames {
	long before[MIGRATE_PROCS][MAX_PAGES_MIGRATE];
	long after[MIGRATE_PROCS][MAX_PAGES_MIGRATE];
	int ksm[MIGRATE_PROCS][MAX_PAGES_MIGRATE];
};

static struct migrate_frames *mf;

/* Record the frames of @proc's pages in @pfns (and whether each is KSM). */
static int record_frames(const unsigned char *base, long *pfns, int *ksm)
{
	for (long i = 0; i < npages; i++) {
		int k;

		pfns[i] = page_pfn(base + i * PAGE, &k);
		if (pfns[i] < 0)
			return -1;
		if (ksm)
			ksm[i] = k;
	}
	return 0;
}

static int migrate_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);

	fill(base, npages, fill_stream, MIGRATE_KEY);
	sh->merged[proc] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
	if (record_frames(base, mf->before[proc], NULL))
		return 1;
	sh->phase[proc] = 1;
	wait_go(proc, 1);
	if (record_frames(base, mf->after[proc], mf->ksm[proc]))
		return 1;
	sh->phase[proc] = 2;
	wait_go(proc, 2);
	/* B breaks every merge (COW of a moved KSM page), then all verify. */
	if (proc == 1)
		for (long i = 0; i < npages; i++)
			((volatile unsigned char *)base)[i * PAGE] = base[i * PAGE];
	sh->bad[proc] = (int)verify(base, npages, fill_stream, MIGRATE_KEY);
	return 0;
}

/* Ask PKSM to move the KSM page at @pfn: 0, or the errno. */
static int migrate_pfn(long pfn)
{
	char val[32];
	int fd = open("/sys/kernel/debug/pksm/migrate", O_WRONLY);
	int err = 0;

	if (fd < 0)
		return errno;
	snprintf(val, sizeof(val), "%ld\n", pfn);
	if (write(fd, val, strlen(val)) < 0)
		err = errno;
	close(fd);
	return err;
}

static int shape_migrate(void)
{
	long moved = 0, busy = 0, followed = 0, into = 0;
	struct census c = { 0 };
	pid_t pid[MIGRATE_PROCS];
	char fig[240];
	int fail = 0, p, ok;

	if (npages > MAX_PAGES_MIGRATE)
		return report("pages=0 setup=too-many-pages", 0);
	mf = mmap(NULL, sizeof(*mf), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mf == MAP_FAILED)
		return report("pages=0 setup=fail", 0);
	for (p = 0; p < 3; p++)
		pid[p] = spawn(p, migrate_proc);
	for (p = 0; p < 3; p++)
		wait_phase(p, 1);
	/* Move each KSM page A maps, once. */
	for (long i = 0; i < npages; i++) {
		int err;

		if (mf->before[0][i] <= 0 || mf->before[0][i] != mf->before[1][i] ||
		    mf->before[0][i] != mf->before[2][i])
			continue;	/* not one KSM page of A, B and C yet */
		err = migrate_pfn(mf->before[0][i]);
		if (!err)
			moved++;
		else if (err == EBUSY)
			busy++;
		else
			fprintf(stderr, "shapes: migrate pfn %#lx: %s\n", mf->before[0][i],
				strerror(err));
	}
	for (p = 0; p < 3; p++)
		sh->go[p] = 1;
	for (p = 0; p < 3; p++)
		wait_phase(p, 2);
	/* Every mapping of a moved page followed it to one new KSM frame. */
	for (long i = 0; i < npages; i++) {
		long was = mf->before[0][i], now_pfn = mf->after[0][i];
		int same = 1;

		if (was <= 0 || was != mf->before[1][i] || now_pfn == was)
			continue;
		for (p = 0; p < 3; p++)
			same &= mf->before[p][i] == was && mf->after[p][i] == now_pfn &&
				mf->ksm[p][i];
		followed += same;
	}
	ok = !read_census(&c);
	/* D's equal pages merge into the moved KSM pages (the node followed). */
	sh->go[3] = 1;
	pid[3] = spawn(3, migrate_proc);
	wait_phase(3, 2);
	for (long i = 0; i < npages; i++)
		into += mf->after[3][i] > 0 && mf->after[3][i] == mf->after[0][i] &&
			mf->after[0][i] != mf->before[0][i];
	for (p = 0; p < MIGRATE_PROCS; p++)
		sh->go[p] = 2;
	for (p = 0; p < MIGRATE_PROCS; p++)
		fail |= reap(pid[p]);
	snprintf(fig, sizeof(fig), "pages=%ld merged=%ld,%ld,%ld moved=%ld busy=%ld followed=%ld "
		 "d_merged=%ld d_into_moved=%ld ptes=%ld mapcount=%ld bad=%d,%d,%d,%d",
		 npages, sh->merged[0], sh->merged[1], sh->merged[2], moved, busy, followed,
		 sh->merged[3], into, c.ptes, c.mapcount, sh->bad[0], sh->bad[1], sh->bad[2],
		 sh->bad[3]);
	munmap(mf, sizeof(*mf));
	return report(fig, !fail && ok && moved >= npages / 2 && followed == moved &&
		      into >= moved * 9 / 10 && c.ptes == c.mapcount && !sh->bad[0] &&
		      !sh->bad[1] && !sh->bad[2] && !sh->bad[3]);
}

/* ---- optout-migrating ------------------------------------------------ */

#define OPTMIG_KEY 19000
#define OPTMIG_ROUNDS 4		/* opt-outs that must meet a migration entry */
#define OPTMIG_TRIES 16		/* pages tried for them, one each */
#define OPTMIG_DELAY_MS 600	/* the migrating task sleeps this long */
#define OPTMIG_LEAD_MS 200	/* the opt-out starts this far into it */
#define PKSM_DELAY_MIGRATE_BIT 16	/* enum pksm_delay_point, bit 4 */
#define PM_SWAP_BIT (1ULL << 62)	/* pagemap: a swap or migration entry */

/* B: the same pages as the driver's, held until told to check them. */
static int optmig_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);

	fill(base, npages, fill_stream, OPTMIG_KEY);
	sh->phase[proc] = 1;
	wait_go(proc, 1);
	sh->bad[proc] = (int)verify(base, npages, fill_stream, OPTMIG_KEY);
	return 0;
}

/* A child that moves the KSM page at @pfn (it sleeps in the move): exit
 * 0 moved, 2 busy (isolation or an extra reference failed it), 1 else. */
static pid_t optmig_mover(long pfn)
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("shapes: fork");
		exit(1);
	}
	if (pid == 0) {
		int err = migrate_pfn(pfn);

		_exit(!err ? 0 : err == EBUSY ? 2 : 1);
	}
	return pid;
}

/* Does this process's PTE at @addr hold a swap or migration entry? */
static int pte_is_swap_entry(const void *addr)
{
	int pm = open("/proc/self/pagemap", O_RDONLY);
	uint64_t ent = 0;
	int swp = 0;

	if (pm < 0)
		return 0;
	if (pread(pm, &ent, sizeof(ent), (off_t)((uintptr_t)addr / PAGE * 8)) == sizeof(ent))
		swp = !(ent & PM_PRESENT) && (ent & PM_SWAP_BIT);
	close(pm);
	return swp;
}

/*
 * The driver and B hold the same pages, merged.  Each try a child moves
 * one of the driver's KSM pages while the migration sleeps with every PTE
 * of the page a migration entry (debug delay bit 4); OPTMIG_LEAD_MS into
 * it the driver opts that page out (MADV_UNMERGEABLE).  A try is a hit
 * when the driver's pagemap showed the migration entry just before the
 * opt-out and the page moved; tries go on until OPTMIG_ROUNDS hits (a
 * loaded host may start the move late, or the move may find the page
 * busy).  After every try the page must be the driver's own: an opt-out
 * that took the migration entry for "nothing mapped" left the moved KSM
 * page mapped in the excluded range, still shared with B.
 */
static int shape_optout_migrating(void)
{
	long moved = 0, busy = 0, hits = 0, kept_ksm = 0, waited_ms = 0, merged;
	unsigned char *base;
	char fig[240];
	int fail = 0, bad, tries = 0;
	pid_t b;

	if (npages < OPTMIG_TRIES)
		return report("pages=0 setup=too-few-pages", 0);
	base = map_anon((size_t)npages);
	fill(base, npages, fill_stream, OPTMIG_KEY);
	b = spawn(1, optmig_proc);
	wait_phase(1, 1);
	merged = wait_merged(base, npages, npages, timeout_sec);
	while (merged == npages && hits < OPTMIG_ROUNDS && tries < OPTMIG_TRIES && !fail) {
		unsigned char *page = base + (long)tries++ * PAGE;
		int ksm, st, entry;
		long pfn = page_pfn(page, &ksm);
		double t0;
		pid_t mover;

		if (pfn <= 0 || !ksm || set_delay(PKSM_DELAY_MIGRATE_BIT, OPTMIG_DELAY_MS)) {
			fail = 1;
			break;
		}
		mover = optmig_mover(pfn);
		nap(OPTMIG_LEAD_MS);
		entry = pte_is_swap_entry(page);
		t0 = now();
		if (madvise(page, PAGE, MADV_UNMERGEABLE)) {
			perror("shapes: madvise(MADV_UNMERGEABLE)");
			fail = 1;
		}
		waited_ms += (long)((now() - t0) * 1000);
		if (waitpid(mover, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) == 1)
			fail = 1;
		else if (WEXITSTATUS(st) == 2)
			busy++;
		else
			moved++;
		hits += entry && WIFEXITED(st) && !WEXITSTATUS(st);
		set_delay(0, 0);
		page_pfn(page, &ksm);
		kept_ksm += ksm;
	}
	set_delay(0, 0);
	bad = (int)verify(base, npages, fill_stream, OPTMIG_KEY);
	sh->go[1] = 1;
	fail |= reap(b);
	snprintf(fig, sizeof(fig), "pages=%ld merged=%ld tries=%d hits=%ld moved=%ld busy=%ld "
		 "kept_ksm=%ld optout_ms=%ld bad=%d,%d", npages, merged, tries, hits, moved, busy,
		 kept_ksm, waited_ms, bad, sh->bad[1]);
	munmap(base, (size_t)npages * PAGE);
	return report(fig, !fail && merged == npages && hits == OPTMIG_ROUNDS && kept_ksm == 0 &&
		      !bad && !sh->bad[1]);
}

/* ---- bigvma ------------------------------------------------------------ */

#define BIGVMA_LIMIT_S 10	/* minutes before the walk followed the VMA */
#define BIGVMA_KEY (OPTMIG_KEY + 77)

/*
 * A child reserves as much address space as the guest gives it (16 TiB,
 * halved until the mmap succeeds: a guest with 4-level page tables and
 * overcommit allowed gives 16 TiB; vm.overcommit_memory=2 would refuse
 * even 64 GiB and fail the shape), and fills one page of it equal to a
 * page of the driver's; both merge.  Unmerging costs what is mapped, not
 * the size of a VMA: the driver's run=2 and the child's
 * PR_SET_MEMORY_MERGE=0, each in a process of its own, must succeed
 * within BIGVMA_LIMIT_S (a walk of every page-sized address of 16 TiB took
 * minutes; the bound is a thousand times what the page-table walk takes,
 * not a speed target) and leave the child's page its own.  A process
 * that is not done is killed (the unmerge loop stops on a fatal signal).
 * Figures: fig[0] GiB reserved, merged[0] and [1] the page merged before
 * run=2 and again after, fig[2] and fig[3] the page still KSM after run=2
 * and after the opt-out, fig[1] the prctl's errno.
 */
static int bigvma_proc(int proc)
{
	size_t size = (size_t)16 << 40;
	unsigned char *area = MAP_FAILED, *page;
	int ksm;

	while (size >= ((size_t)64 << 30)) {
		area = mmap(NULL, size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (area != MAP_FAILED)
			break;
		size /= 2;
	}
	if (area == MAP_FAILED) {
		perror("shapes: mmap of a big reservation");
		return 1;
	}
	sh->fig[0] = (long)(size >> 30);
	page = area + size / 2;
	fill(page, 1, fill_stream, BIGVMA_KEY);
	sh->merged[proc] = wait_merged(page, 1, 1, timeout_sec);
	sh->phase[proc] = 1;
	wait_go(proc, 1);		/* run=2 is done */
	page_pfn(page, &ksm);
	sh->fig[2] = ksm;
	sh->phase[proc] = 2;
	wait_go(proc, 2);		/* run=1 again */
	sh->merged[1] = wait_merged(page, 1, 1, timeout_sec);
	sh->phase[proc] = 3;
	wait_go(proc, 3);
	/* opt the whole process out: every VMA unmerged, the big one too */
	sh->fig[1] = prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0) ? errno : 0;
	page_pfn(page, &ksm);
	sh->fig[3] = ksm;
	sh->phase[proc] = 4;
	wait_go(proc, 4);
	sh->bad[proc] = (int)verify(page, 1, fill_stream, BIGVMA_KEY);
	return 0;
}

/*
 * Wait up to BIGVMA_LIMIT_S for process @proc's phase @phase, or with
 * @phase < 0 for @pid's exit (its status in *@st); kill @pid if it is not
 * there.  The seconds it took, or -1.
 */
static double bigvma_wait(pid_t pid, int proc, int phase, int *st)
{
	double t0 = now(), end = t0 + BIGVMA_LIMIT_S;

	for (;;) {
		if (phase >= 0 ? sh->phase[proc] >= phase :
		    waitpid(pid, st, WNOHANG) == pid)
			return now() - t0;
		if (now() >= end) {
			kill(pid, SIGKILL);
			if (phase < 0)
				waitpid(pid, st, 0);
			return -1;
		}
		nap(10);
	}
}

/* A process that writes @val to /sys/kernel/mm/ksm/run and exits. */
static pid_t run_writer(const char *val)
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("shapes: fork");
		exit(1);
	}
	if (pid == 0)
		_exit(write_knob("/sys/kernel/mm/ksm", "run", val) ? 1 : 0);
	return pid;
}

static int shape_bigvma(void)
{
	unsigned char *mine = map_anon(1);
	double optout_s = -1, run2_s;
	int fail = 0, st = 0, run2_ok;
	char fig[240];
	pid_t c, w;

	fill(mine, 1, fill_stream, BIGVMA_KEY);
	c = spawn(0, bigvma_proc);
	wait_phase(0, 1);
	/* run=2 with the big VMA mapped and one merged page in it */
	w = run_writer("2\n");
	run2_s = bigvma_wait(w, 0, -1, &st);
	run2_ok = run2_s >= 0 && WIFEXITED(st) && !WEXITSTATUS(st);
	sh->go[0] = 1;
	wait_phase(0, 2);
	/* merging again (run=2 left it stopped) */
	fail |= write_knob("/sys/kernel/mm/ksm", "run", "1\n");
	sh->go[0] = 2;
	wait_phase(0, 3);
	/* the child opts out, its big VMA with it */
	sh->go[0] = 3;
	optout_s = bigvma_wait(c, 0, 4, &st);
	if (optout_s >= 0) {
		sh->go[0] = 4;
		fail |= reap(c);
	} else {
		waitpid(c, &st, 0);	/* killed: failed below */
	}
	snprintf(fig, sizeof(fig), "reserved_gib=%ld merged=%ld,%ld run2_s=%.3f run2_ok=%d "
		 "ksm_after_run2=%ld optout_s=%.3f optout_err=%ld ksm_after_optout=%ld bad=%d",
		 sh->fig[0], sh->merged[0], sh->merged[1], run2_s, run2_ok, sh->fig[2], optout_s,
		 sh->fig[1], sh->fig[3], sh->bad[0]);
	munmap(mine, PAGE);
	return report(fig, !fail && sh->merged[0] == 1 && sh->merged[1] == 1 && run2_ok &&
		      !sh->fig[2] && optout_s >= 0 && !sh->fig[1] && !sh->fig[3] && !sh->bad[0]);
}

/* ---- optout-enomem --------------------------------------------------- */

/* Write @val to /sys/kernel/debug/fail_page_alloc/@name; 0 on success. */
static int fpa_knob(const char *name, const char *val)
{
	return write_knob("/sys/kernel/debug/fail_page_alloc", name, val);
}

/* /proc/@pid/make-it-fail := @on; 0 on success. */
static int make_it_fail(pid_t pid, int on)
{
	char path[64];
	FILE *f;
	int bad;

	snprintf(path, sizeof(path), "/proc/%d/make-it-fail", (int)pid);
	f = fopen(path, "w");
	if (!f)
		return -1;
	bad = fprintf(f, "%d\n", on) < 0;
	bad |= fclose(f) != 0;
	return bad ? -1 : 0;
}

/*
 * Both regions: page i of each holds the same content.  Figures: merged[0]
 * and [1] the regions merged before, bad[2] the prctl's errno, merged[2]
 * PR_GET_MEMORY_MERGE after it, merged[3] and bad[1] the regions merged
 * again, bad[0] pages that lost their content.
 */
static int enomem_proc(int proc)
{
	/* Two regions with a PROT_NONE page between: separate VMAs. */
	unsigned char *area = map_anon((size_t)(2 * npages + 1));
	unsigned char *r1 = area, *r2 = area + (npages + 1) * PAGE;
	long bad;

	(void)proc;
	if (mprotect(area + npages * PAGE, PAGE, PROT_NONE)) {
		perror("shapes: mprotect");
		return 1;
	}
	fill(r1, npages, fill_stream, 13000);
	fill(r2, npages, fill_stream, 13000);
	sh->merged[0] = wait_merged(r1, npages, npages * 9 / 10, timeout_sec);
	sh->merged[1] = wait_merged(r2, npages, npages * 9 / 10, timeout_sec);
	sh->phase[0] = 1;
	wait_go(0, 1);		/* the driver arms fail_page_alloc for us */
	errno = 0;
	sh->bad[2] = prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0) ? errno : 0;
	sh->phase[0] = 2;
	wait_go(0, 2);		/* disarmed */
	sh->merged[2] = prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0);
	/* Unmerged part-way: everything must merge again. */
	sh->merged[3] = wait_merged(r1, npages, npages, timeout_sec);
	sh->phase[0] = 3;
	bad = verify(r1, npages, fill_stream, 13000) + verify(r2, npages, fill_stream, 13000);
	sh->bad[0] = (int)bad;
	sh->bad[1] = (int)wait_merged(r2, npages, npages, timeout_sec);
	return 0;
}

static int shape_optout_enomem(void)
{
	pid_t a = spawn(0, enomem_proc);
	char space[32], fig[256];
	int armed, fail;

	wait_phase(0, 1);
	/*
	 * Fail one page allocation of A's once about one region and a half
	 * has been allocated (fail_page_alloc counts space in pages): the
	 * first region's unsharing succeeds, the second's runs out part-way;
	 * what follows (tracking the pages again) allocates normally.
	 */
	snprintf(space, sizeof(space), "%ld\n", npages * 3 / 2);
	armed = !fpa_knob("task-filter", "Y\n") && !fpa_knob("ignore-gfp-wait", "N\n") &&
		!fpa_knob("ignore-gfp-highmem", "N\n") && !fpa_knob("min-order", "0\n") &&
		!fpa_knob("verbose", "0\n") &&
		!fpa_knob("interval", "1\n") && !fpa_knob("times", "1\n") &&
		!fpa_knob("space", space) && !fpa_knob("probability", "100\n") &&
		!make_it_fail(a, 1);
	sh->go[0] = 1;
	wait_phase(0, 2);
	make_it_fail(a, 0);
	fpa_knob("probability", "0\n");
	fpa_knob("space", "0\n");
	sh->go[0] = 2;
	fail = reap(a);
	snprintf(fig, sizeof(fig),
		 "pages=%ld armed=%d merged_before=%ld,%ld errno=%d still_in=%ld "
		 "merged_after=%ld,%d bad=%d",
		 npages, armed, sh->merged[0], sh->merged[1], sh->bad[2], sh->merged[2],
		 sh->merged[3], sh->bad[1], sh->bad[0]);
	return report(fig, !fail && armed && sh->merged[0] >= npages * 9 / 10 &&
		      sh->merged[1] >= npages * 9 / 10 && sh->bad[2] == ENOMEM &&
		      sh->merged[2] == 1 && sh->merged[3] >= npages * 98 / 100 &&
		      sh->bad[1] >= npages * 98 / 100 && !sh->bad[0]);
}

/* ---- uaccess --------------------------------------------------------- */

static int uaccess_proc(int proc)
{
	char path[64];
	unsigned char *src = map_anon(16), *zero = map_anon(1);
	long rounds = 0, bad = 0, badzero = 0;
	double end = now() + hold_sec;
	int fd;

	snprintf(path, sizeof(path), "/tmp/shapes-uaccess.%d", (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		perror("shapes: uaccess file");
		return 1;
	}
	fill(src, 16, fill_stream, 17000 + (uint64_t)proc * 100);
	if (write(fd, src, 16 * PAGE) != (ssize_t)(16 * PAGE)) {
		perror("shapes: uaccess write");
		return 1;
	}
	while (now() < end && !bad && !badzero) {
		unsigned char *dst = map_anon(16);

		/* Each page is faulted in by the kernel's copy to user. */
		for (long i = 0; i < 16; i++)
			if (pread(fd, dst + i * PAGE, PAGE, i * (long)PAGE) != (ssize_t)PAGE) {
				perror("shapes: uaccess read");
				return 1;
			}
		bad += verify(dst, 16, fill_stream, 17000 + (uint64_t)proc * 100);
		/* A page never written maps the zero page: it must read zero. */
		for (size_t j = 0; j < PAGE; j++)
			badzero += zero[j] != 0;
		munmap(dst, 16 * PAGE);
		rounds++;
	}
	close(fd);
	unlink(path);
	sh->merged[proc] = rounds;
	sh->bad[proc] = (int)(bad + badzero);
	return 0;
}

static int shape_uaccess(void)
{
	pid_t a = spawn(0, uaccess_proc), b = spawn(1, uaccess_proc);
	char fig[160];
	int fail = reap(a) | reap(b);

	snprintf(fig, sizeof(fig), "rounds=%ld,%ld bad=%d,%d", sh->merged[0], sh->merged[1],
		 sh->bad[0], sh->bad[1]);
	return report(fig, !fail && sh->merged[0] > 0 && sh->merged[1] > 0 &&
		      !sh->bad[0] && !sh->bad[1]);
}

/* ---- hotword --------------------------------------------------------- */

#define HOT_WORD(i) (((size_t)(i) * 13 + 7) % WORDS)

static int hotword_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);
	double end;
	uint64_t round = 0;
	long bad = 0;

	fill(base, npages, fill_stream, 7000);
	sh->phase[proc] = 1;
	end = now() + hold_sec;
	/*
	 * One word of every page counts up, a round of all pages every 20 ms;
	 * the word differs from page to page, so most lie outside any fixed
	 * sample of words a daemon may hash.
	 */
	while (now() < end) {
		round++;
		for (long i = 0; i < npages; i++)
			((uint64_t *)(base + i * PAGE))[HOT_WORD(i)] = round;
		nap(20);
	}
	for (long i = 0; i < npages; i++) {
		uint64_t want[WORDS];

		fill_stream(want, 7000 + (uint64_t)i);
		want[HOT_WORD(i)] = round;
		bad += !!memcmp(base + i * PAGE, want, PAGE);
	}
	sh->bad[proc] = (int)bad;
	return 0;
}

static int shape_hotword(void)
{
	pid_t a = spawn(0, hotword_proc), b = spawn(1, hotword_proc);
	char fig[160];
	int fail = reap(a) | reap(b);

	snprintf(fig, sizeof(fig), "pages=%ld bad=%d,%d", npages, sh->bad[0], sh->bad[1]);
	return report(fig, !fail && !sh->bad[0] && !sh->bad[1]);
}

/* ---- pinnedzero ------------------------------------------------------ */

/* Wait until counter @name has risen by @want from @from; the rise. */
static long wait_counter(const char *name, long from, long want, double limit)
{
	double end = now() + limit;
	long v;

	for (;;) {
		v = pksm_counter(name) - from;
		if (v >= want || now() >= end)
			return v;
		nap(100);
	}
}

static int shape_pinnedzero(void)
{
	unsigned char *base = map_anon((size_t)npages);
	long filed, left, drains, failures, bad = 0;
	long unstable0 = pksm_counter("unstable_pages");
	long changed0 = pksm_counter("reverify_changed");
	double held;
	char fig[200];

	fill(base, npages, fill_stream, 11000);
	/* Every page filed in the unstable tree (unique content: no partner) */
	filed = wait_counter("unstable_pages", unstable0, npages * 9 / 10, timeout_sec);
	if (pin_pages(base, npages))
		return 1;
	memset(base, 0, (size_t)npages * PAGE);
	/* Re-verification finds them changed: out of the tree, zero, pinned. */
	left = wait_counter("reverify_changed", changed0, npages * 9 / 10, timeout_sec);
	nap(1000);	/* their first visits as zero pages */
	drains = pksm_counter("lru_drains");
	failures = pksm_counter("merge_failures");
	held = now();
	nap((long)(hold_sec * 1000));
	drains = pksm_counter("lru_drains") - drains;
	failures = pksm_counter("merge_failures") - failures;
	held = now() - held;	/* a loaded host wakes the nap late */
	for (long i = 0; i < npages * (long)WORDS; i++)
		bad += ((uint64_t *)base)[i] != 0;
	snprintf(fig, sizeof(fig), "pages=%ld filed=%ld left=%ld hold=%.0f held_s=%.2f "
		 "drains=%ld failures=%ld bad=%ld", npages, filed, left, hold_sec, held, drains,
		 failures, bad);
	return report(fig, filed >= npages * 9 / 10 && left >= npages * 9 / 10 && !bad);
}

/* ---- restore --------------------------------------------------------- */

/* restore's contents: keys far apart, no page of one equals one of another */
#define RESTORE_KEY(n) ((uint64_t)(n) << 32)

/* The word of page @i that restore's one-word round flips (and back). */
static size_t restore_word(long i)
{
	return (size_t)(i * 37 + 5) % WORDS;
}

/*
 * One round of restore: A filled with X and filed; A changed (@word: one
 * word of each page flipped, else rewritten whole), B filled with X and
 * filed; A restored.  Merged pages of A and B within --timeout (until
 * 99 %), the time that took, and the filing figures.
 */
static long restore_round(int word, uint64_t x, long *filed_a, long *filed_b,
			  double *secs, long *bad)
{
	unsigned char *a = map_anon((size_t)npages), *b = map_anon((size_t)npages);
	long unstable0 = pksm_counter("unstable_pages"), merged;
	double start;

	fill(a, npages, fill_stream, x);
	*filed_a = wait_counter("unstable_pages", unstable0, npages * 9 / 10, timeout_sec);
	if (word) {	/* changed ... */
		for (long i = 0; i < npages; i++)
			((uint64_t *)(a + i * PAGE))[restore_word(i)] ^= 1;
	} else {
		fill(a, npages, fill_stream, x + RESTORE_KEY(1));
	}
	fill(b, npages, fill_stream, x);
	*filed_b = wait_counter("unstable_pages", unstable0 + *filed_a, npages * 9 / 10,
				timeout_sec);
	if (word) {	/* ... and restored */
		for (long i = 0; i < npages; i++)
			((uint64_t *)(a + i * PAGE))[restore_word(i)] ^= 1;
	} else {
		fill(a, npages, fill_stream, x);
	}
	start = now();
	/* Both regions, until 99 % merged or --timeout; 90 % passes. */
	for (;;) {
		long ka = count_ksm(a, npages), kb = count_ksm(b, npages);

		merged = ka < 0 || kb < 0 ? -1 : ka + kb;
		if (merged < 0 || merged >= 2 * npages * 99 / 100 ||
		    now() - start >= timeout_sec)
			break;
		nap(100);
	}
	*secs = now() - start;
	*bad = verify(a, npages, fill_stream, x) + verify(b, npages, fill_stream, x);
	munmap(a, (size_t)npages * PAGE);
	munmap(b, (size_t)npages * PAGE);
	return merged;
}

static int shape_restore(void)
{
	long fa[2], fb[2], merged[2], bad[2];
	double secs[2];
	char fig[240];
	int pass = 1;

	for (int word = 0; word < 2; word++) {
		merged[word] = restore_round(word, RESTORE_KEY(2 + 2 * word), &fa[word],
					     &fb[word], &secs[word], &bad[word]);
		pass &= fa[word] >= npages * 9 / 10 && fb[word] >= npages * 9 / 10 &&
			merged[word] >= 2 * npages * 9 / 10 && !bad[word];
	}
	snprintf(fig, sizeof(fig), "pages=%ld filed=%ld,%ld merged=%ld after_s=%.1f "
		 "word_filed=%ld,%ld word_merged=%ld word_after_s=%.1f bad=%ld",
		 npages, fa[0], fb[0], merged[0], secs[0], fa[1], fb[1], merged[1], secs[1],
		 bad[0] + bad[1]);
	return report(fig, pass);
}

/* ---- hotzero, hotshare: the back-off follows the place written -------- */

/* Is page @i of @base mapped to a KSM page (@want_zero: the zero page)? */
static int page_merged(const unsigned char *base, long i, int want_zero)
{
	long ksm, zero;

	if (count_merged(base + i * PAGE, 1, &ksm, &zero))
		return -1;
	return want_zero ? zero > 0 : ksm > 0;
}

/*
 * One sweep over the npages pages at @base: each page merged (with the
 * zero page if @zero, else into a KSM page) has word @word written and
 * put back at once, the write checked into *@bad.  The pages broken, or -1
 * if pagemap cannot be read.
 */
static long break_merged(unsigned char *base, int zero, size_t word, long *bad)
{
	long breaks = 0;

	for (long i = 0; i < npages; i++) {
		volatile uint64_t *w = (volatile uint64_t *)(base + i * PAGE);
		int k = page_merged(base, i, zero);
		uint64_t old;

		if (k < 0)
			return -1;
		if (!k)
			continue;
		old = w[word];
		w[word] = old ^ 1;	/* the write breaks the merge */
		*bad += w[word] != (old ^ 1);
		w[word] = old;		/* and the page is as it was */
		breaks++;
	}
	return breaks;
}

/*
 * hotzero: zero pages written as soon as they are merged with the zero
 * page, then zeroed again (a buffer cleared after each use).  merged[0]:
 * breaks made; bad[0]: pages that read wrong.
 */
static int hotzero_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);
	long breaks = 0, bad = 0;
	double end;

	for (long i = 0; i < npages; i++)
		base[i * PAGE] = 0;	/* a page of its own, all zero */
	sh->phase[proc] = 1;
	end = now() + hold_sec;
	while (now() < end) {
		long n = break_merged(base, 1, 9, &bad);

		if (n < 0)
			return 1;
		breaks += n;
		nap(50);
	}
	for (long i = 0; i < npages; i++)
		for (size_t j = 0; j < WORDS; j++)
			bad += ((uint64_t *)(base + i * PAGE))[j] != 0;
	sh->merged[proc] = breaks;
	sh->bad[proc] = (int)bad;
	return 0;
}

static int shape_hotzero(void)
{
	long zero0 = pksm_counter("zero_merges"), merges;
	char fig[200];
	int fail;

	if (zero0 < 0)
		return report("pages=0 setup=fail", 0);
	fail = reap(spawn(0, hotzero_proc));
	merges = pksm_counter("zero_merges") - zero0;
	snprintf(fig, sizeof(fig), "pages=%ld hold=%.0f breaks=%ld zero_merges=%ld bad=%d",
		 npages, hold_sec, sh->merged[0], merges, sh->bad[0]);
	/* every page merged at least once; the test judges how often */
	return report(fig, !fail && !sh->bad[0] && merges >= npages);
}

/* ---- refault ---------------------------------------------------------- */

#define REFAULT_KEY 16000

/* A zero-filled page of its own at each of @n pages from @base. */
static void touch_zero(unsigned char *base, long n)
{
	for (long i = 0; i < n; i++)
		base[i * PAGE] = 0;
}

/*
 * refault: A (proc 0) and B (proc 1) hold the same pages in the first half
 * of their regions, A zero pages in the second.  Once they are merged, A
 * drops its region (MADV_DONTNEED) and fills it again, and B opts its
 * region out (MADV_UNMERGEABLE): new pages where pages were just merged,
 * but not one write to a merged page.  fig[2 * proc], fig[2 * proc + 1]:
 * pages mapping KSM pages and the zero page once merged; bad[]: pages that
 * read wrong at the end.
 */
static int refault_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);
	long half = npages / 2, ksm = 0, zero = 0, bad;
	double end = now() + timeout_sec;

	fill(base, half, fill_stream, REFAULT_KEY);
	if (!proc)
		touch_zero(base + half * PAGE, npages - half);
	while (now() < end) {
		if (count_merged(base, (size_t)npages, &ksm, &zero))
			return 1;
		if (ksm >= half * 9 / 10 && (proc || zero >= (npages - half) * 9 / 10))
			break;
		nap(50);
	}
	sh->fig[2 * proc] = ksm;
	sh->fig[2 * proc + 1] = zero;
	sh->phase[proc] = 1;
	wait_go(proc, 1);
	if (!proc) {
		if (madvise(base, (size_t)npages * PAGE, MADV_DONTNEED)) {
			perror("shapes: madvise(MADV_DONTNEED)");
			return 1;
		}
		fill(base, half, fill_stream, REFAULT_KEY);
		touch_zero(base + half * PAGE, npages - half);
	} else if (madvise(base, (size_t)half * PAGE, MADV_UNMERGEABLE)) {
		perror("shapes: madvise(MADV_UNMERGEABLE)");
		return 1;
	}
	sh->phase[proc] = 2;
	wait_go(proc, 2);
	bad = verify(base, half, fill_stream, REFAULT_KEY);
	for (long i = half; i < npages && !proc; i++)
		for (size_t j = 0; j < WORDS; j++)
			bad += ((uint64_t *)(base + i * PAGE))[j] != 0;
	sh->bad[proc] = (int)bad;
	return 0;
}

static int shape_refault(void)
{
	pid_t a = spawn(0, refault_proc), b = spawn(1, refault_proc);
	long backoffs, breaks;
	char fig[200];
	int fail;

	wait_phase(0, 1);
	wait_phase(1, 1);
	backoffs = pksm_counter("cow_backoffs");
	breaks = pksm_counter("cow_breaks");
	sh->go[0] = sh->go[1] = 1;
	wait_phase(0, 2);
	wait_phase(1, 2);
	backoffs = pksm_counter("cow_backoffs") - backoffs;
	breaks = pksm_counter("cow_breaks") - breaks;
	sh->go[0] = sh->go[1] = 2;
	fail = reap(a) | reap(b);
	snprintf(fig, sizeof(fig), "pages=%ld ksm=%ld,%ld zero=%ld refault_backoffs=%ld "
		 "refault_breaks=%ld bad=%d,%d", npages, sh->fig[0], sh->fig[2], sh->fig[1],
		 backoffs, breaks, sh->bad[0], sh->bad[1]);
	/* the shape's own stacks and heaps may break a merge or two */
	return report(fig, !fail && sh->fig[0] >= npages / 2 * 9 / 10 &&
		      sh->fig[2] >= npages / 2 * 9 / 10 &&
		      sh->fig[1] >= (npages - npages / 2) * 9 / 10 &&
		      backoffs >= 0 && backoffs < npages / 16 && !sh->bad[0] && !sh->bad[1]);
}

#define HOTSHARE_KEY 15000

/*
 * hotshare: H (proc 0) breaks each of its pages as soon as it is merged
 * again, for --hold seconds; C (proc 1), with the same pages, writes each
 * of its own once, 12 s into H's churn, and puts it back: its copies must
 * merge again within --timeout, with the KSM pages P (proc 2, idle) keeps.  fig[0], fig[1]: H's and C's pages merged
 * at first; fig[2]: H's breaks; fig[3]: C's pages merged again; fig[4]: ms
 * C's took; bad[]: pages that read wrong.
 */
static int hotshare_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);
	long breaks = 0;
	double t0, end;

	fill(base, npages, fill_stream, HOTSHARE_KEY);
	sh->fig[proc] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
	sh->phase[proc] = 1;
	wait_go(proc, 1);
	end = now() + hold_sec;
	if (proc == 0) {
		while (now() < end) {
			long bad = 0, n = break_merged(base, 0, 5, &bad);

			if (n < 0 || bad)
				return 1;
			breaks += n;
			nap(50);
		}
		sh->fig[2] = breaks;
	} else if (proc == 2) {
		wait_go(proc, 2);
	} else {
		nap(12000);
		for (long i = 0; i < npages; i++) {
			volatile uint64_t *w = (volatile uint64_t *)(base + i * PAGE);

			w[5] ^= 1;	/* one write, and the page put back */
			w[5] ^= 1;
		}
		t0 = now();
		sh->fig[3] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
		sh->fig[4] = (long)((now() - t0) * 1000);
		while (now() < end)
			nap(100);
	}
	sh->bad[proc] = (int)verify(base, npages, fill_stream, HOTSHARE_KEY);
	return 0;
}

static int shape_hotshare(void)
{
	pid_t h, c, p;
	char fig[240];
	int fail;

	if (hold_sec < 14)
		return report("pages=0 setup=fail (--hold must be at least 14)", 0);
	h = spawn(0, hotshare_proc);
	c = spawn(1, hotshare_proc);
	p = spawn(2, hotshare_proc);
	wait_phase(0, 1);
	wait_phase(1, 1);
	wait_phase(2, 1);
	sh->go[0] = sh->go[1] = sh->go[2] = 1;
	fail = reap(h) | reap(c);
	sh->go[2] = 2;
	fail |= reap(p);
	snprintf(fig, sizeof(fig), "pages=%ld merged=%ld,%ld h_breaks=%ld c_merged_again=%ld "
		 "c_ms=%ld bad=%d,%d,%d", npages, sh->fig[0], sh->fig[1], sh->fig[2], sh->fig[3],
		 sh->fig[4], sh->bad[0], sh->bad[1], sh->bad[2]);
	return report(fig, !fail && sh->fig[0] >= npages * 9 / 10 &&
		      sh->fig[1] >= npages * 9 / 10 && sh->fig[3] >= npages * 9 / 10 &&
		      !sh->bad[0] && !sh->bad[1] && !sh->bad[2]);
}

/* ---- cpu-write, cpu-remap: two vCPUs -------------------------------- */

#define CPU_KEY 13000

/* Online CPUs of the guest. */
static long online_cpus(void)
{
	return sysconf(_SC_NPROCESSORS_ONLN);
}

/* Keep task @pid (0: the caller) on CPU @cpu; 0 on success. */
static int pin_cpu(pid_t pid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(pid, sizeof(set), &set)) {
		fprintf(stderr, "shapes: sched_setaffinity(%d, cpu %d): %s\n", (int)pid, cpu,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* The merge daemon's pid (pksmd, or ksmd on upstream KSM), or -1. */
static pid_t daemon_pid(void)
{
	char path[64], comm[32];
	pid_t found = -1;
	FILE *f;

	for (pid_t pid = 2; pid < 1000 && found < 0; pid++) {
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) &&
		    (!strcmp(comm, "pksmd\n") || !strcmp(comm, "ksmd\n")))
			found = pid;
		fclose(f);
	}
	return found;
}

/**
 * struct cpu_setup - what a two-vCPU shape changed, to put back
 * @daemon: the merge daemon's pid
 * @mask: its CPU affinity before
 * @knob: a PKSM knob the shape set (NULL: none)
 * @old: that knob's value before
 */
struct cpu_setup {
	pid_t daemon;
	cpu_set_t mask;
	const char *knob;
	long old;
};

static struct cpu_setup *cpu_setup_now;
static pid_t cpu_setup_pid;

static void cpu_restore(struct cpu_setup *cs)
{
	char val[32];

	if (cs->knob) {
		snprintf(val, sizeof(val), "%ld", cs->old);
		write_knob("/sys/kernel/mm/pksm", cs->knob, val);
		cs->knob = NULL;
	}
	if (cs->daemon > 0)
		sched_setaffinity(cs->daemon, sizeof(cs->mask), &cs->mask);
	cs->daemon = -1;
	cpu_setup_now = NULL;	/* @cs may be a stack frame about to go */
}

/* The shape's driver gave up (exit()): put back what it changed. */
static void cpu_restore_at_exit(void)
{
	if (cpu_setup_now && getpid() == cpu_setup_pid) {
		set_delay(0, 0);
		cpu_restore(cpu_setup_now);
	}
}

/*
 * Pin the merge daemon to CPU 0 and set PKSM's @knob to @val for the
 * shape; 0 on success, else the reason is printed.  Put back by
 * cpu_restore(), or at exit.
 */
static int cpu_setup(struct cpu_setup *cs, const char *knob, const char *val)
{
	pid_t daemon;

	cs->knob = NULL;
	cs->daemon = -1;
	cpu_setup_now = cs;
	cpu_setup_pid = getpid();
	atexit(cpu_restore_at_exit);
	if (online_cpus() < 2) {
		fprintf(stderr, "shapes: %s needs two vCPUs (%ld online)\n", shape,
			online_cpus());
		return -1;
	}
	daemon = daemon_pid();
	if (daemon < 0) {
		fprintf(stderr, "shapes: no merge daemon (pksmd, ksmd) found\n");
		return -1;
	}
	if (sched_getaffinity(daemon, sizeof(cs->mask), &cs->mask)) {
		perror("shapes: sched_getaffinity");
		return -1;
	}
	cs->daemon = daemon;
	if (pin_cpu(daemon, 0))
		return -1;
	cs->old = pksm_counter(knob);
	if (cs->old < 0 || write_knob("/sys/kernel/mm/pksm", knob, val))
		return -1;
	cs->knob = knob;
	return 0;
}

/* What fill_stream() put in word @k of page @i (key CPU_KEY + i). */
static uint64_t cpu_word(long i, size_t k)
{
	return fmix(CPU_KEY + (uint64_t)i + (k + 1) * GOLDEN);
}

/* Loop iterations that take about @us microseconds on this CPU. */
static long spin_calibrate(long us)
{
	volatile long sink = 0;
	long n = 1000000;
	double t = now();

	for (long i = 0; i < n; i++)
		sink += i;
	t = now() - t;
	return t > 0 ? (long)((double)n * (double)us / (t * 1e6)) + 1 : 1000;
}

/*
 * A writer of cpu-write: until told to stop (go 3), pick a page at random
 * and either stamp one of its words with a value never used before or put
 * the word back, checking first that the last thing written there is what
 * it reads.  A put-back page is equal to the partner's and merges again;
 * the next stamp breaks it out.  W0 (proc 0) runs on CPU 1 and spins
 * between writes, entering the kernel only when a write faults: a stale
 * writable mapping of a page pksmd write-protected (a missed TLB flush)
 * would take its writes for as long as it lasts.  W1 (proc 1) waits for
 * go 2, then writes on CPU 0 beside pksmd, sleeping between writes.
 * merged[proc]: writes made; bad[proc]: writes found lost.
 */
static int cpu_writer(int proc)
{
	unsigned char *base = map_anon((size_t)npages);
	uint64_t *stamp = calloc((size_t)npages, sizeof(*stamp));
	uint64_t rnd = fmix((uint64_t)proc + 77), seq = 0;
	uint64_t want[WORDS];
	long ops = 0, lost = 0, spins;

	if (!stamp || pin_cpu(0, proc == 0 ? 1 : 0))
		return 1;
	spins = spin_calibrate(250);
	fill(base, npages, fill_stream, CPU_KEY);
	sh->phase[proc] = 1;
	wait_go(proc, proc == 0 ? 1 : 2);
	while (sh->go[proc] < 3) {
		long i = (long)((rnd = fmix(rnd)) % (uint64_t)npages);
		volatile uint64_t *w = (volatile uint64_t *)(base + i * PAGE);
		size_t k = 1 + (size_t)(i * 7) % (WORDS - 1);
		uint64_t expect = stamp[i] ? stamp[i] : cpu_word(i, k);

		if (w[k] != expect) {
			if (lost < 5)
				printf("shapes: LOST WRITE pid %d page %ld: 0x%" PRIx64
				       " reads 0x%" PRIx64 "\n", (int)getpid(), i, expect, w[k]);
			lost++;
		}
		stamp[i] = stamp[i] ? 0 : ((uint64_t)(proc + 1) << 48) | ++seq;
		w[k] = stamp[i] ? stamp[i] : cpu_word(i, k);
		if (proc == 0) {
			for (volatile long n = 0; n < spins; n++)
				;
			ops++;
		} else if (!(++ops & 3)) {
			nap(1);
		}
	}
	/* Every page as last written. */
	for (long i = 0; i < npages; i++) {
		size_t k = 1 + (size_t)(i * 7) % (WORDS - 1);

		fill_stream(want, CPU_KEY + (uint64_t)i);
		if (stamp[i])
			want[k] = stamp[i];
		if (memcmp(base + i * PAGE, want, PAGE)) {
			if (lost < 5)
				printf("shapes: MISMATCH pid %d page %ld\n", (int)getpid(), i);
			lost++;
		}
	}
	sh->merged[proc] = ops;
	sh->bad[proc] = (int)lost;
	free(stamp);
	return 0;
}

/* The partner of cpu-write: the same pages, never written; its merged count. */
static int cpu_partner(int proc)
{
	unsigned char *base = map_anon((size_t)npages);

	fill(base, npages, fill_stream, CPU_KEY);
	sh->merged[proc] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
	sh->phase[proc] = 1;
	wait_go(proc, 3);
	sh->bad[proc] = (int)verify(base, npages, fill_stream, CPU_KEY);
	return 0;
}

/*
 * Two phases of --hold / 2 each.  Cross: pksmd alone on CPU 0, sleeping
 * 5 ms in every merge with the page read-only and checked, W0 alone on
 * CPU 1: every merge that loses its page (merge_races) lost it to a fault
 * on the other CPU.  Both: W1 starts writing on CPU 0, pksmd runs at full
 * speed, and the writers break COW on the same KSM pages from both CPUs.
 */
static int shape_cpu_write(void)
{
	static const char *const names[] = { "merge_races", "stable_merges",
					      "unstable_merges", "cow_breaks" };
	long before[4], delta[4], cross, cross_ms;
	struct census c = { 0 };
	struct cpu_setup cs;
	pid_t w0, w1, p;
	char fig[420];
	int fail, ok;

	if (cpu_setup(&cs, "probation_millisecs", "10")) {
		cpu_restore(&cs);
		return report("pages=0 setup=fail", 0);
	}
	for (int c = 0; c < 4; c++)
		before[c] = pksm_counter(names[c]);
	/* Both writers' pages and the partner's merge into one KSM page each. */
	w0 = spawn(0, cpu_writer);
	w1 = spawn(1, cpu_writer);
	p = spawn(2, cpu_partner);
	wait_phase(0, 1);
	wait_phase(1, 1);
	wait_phase(2, 1);
	/*
	 * Slow every merge down before its write-protect (bit 3: a write
	 * there changes a page pksmd already compared, which it must see when
	 * it compares again) and where the page is read-only and checked.
	 */
	fail = set_delay(1 | 2 | 8, 5);
	sh->go[0] = sh->go[1] = 1;
	/*
	 * Half the hold, longer (up to four halves) until a write has met a
	 * merge on the other CPU: whether one does within a given time is the
	 * scheduler's luck (a busy host slows the writer), not the engine's.
	 */
	for (cross_ms = 0;; cross_ms += 100) {
		nap(100);
		cross = pksm_counter("merge_races") - before[0];
		if (cross_ms + 100 >= (long)(hold_sec * 2000) ||
		    (cross > 0 && cross_ms + 100 >= (long)(hold_sec * 500)))
			break;
	}
	cross_ms += 100;
	fail |= set_delay(0, 0);
	sh->go[0] = sh->go[1] = 2;
	nap((long)(hold_sec * 500));
	sh->go[0] = sh->go[1] = 3;
	fail |= reap(w0) | reap(w1);
	/* The writers gone, the partner's KSM pages reached once each. */
	ok = !read_census(&c);
	sh->go[2] = 3;
	fail |= reap(p);
	cpu_restore(&cs);
	for (int k = 0; k < 4; k++)
		delta[k] = pksm_counter(names[k]) - before[k];
	snprintf(fig, sizeof(fig), "pages=%ld cpus=%ld partner_merged=%ld writes=%ld,%ld "
		 "lost=%d,%d cross_races=%ld cross_ms=%ld races=%ld stable=%ld unstable=%ld "
		 "cow=%ld ptes=%ld mapcount=%ld partner_bad=%d",
		 npages, online_cpus(), sh->merged[2], sh->merged[0], sh->merged[1],
		 sh->bad[0], sh->bad[1], cross, cross_ms, delta[0], delta[1], delta[2],
		 delta[3], c.ptes, c.mapcount, sh->bad[2]);
	return report(fig, !fail && ok && sh->merged[2] >= npages * 9 / 10 && !sh->bad[0] &&
		      !sh->bad[1] && !sh->bad[2] && cross > 0 && delta[1] > 0 &&
		      delta[3] > 0 && c.ptes == c.mapcount);
}

/*
 * A process of cpu-remap (proc 0 on CPU 1, proc 1 on CPU 0): once its pages
 * are merged with the other's, until told to stop, move them back and forth
 * between two places (mremap: each PTE cleared at one address and set at
 * the other), make them read-only and writable again (mprotect: each PTE
 * cleared and set anew) and now and then write a page and put it back (a
 * COW break, leaving a record to prune).  merged[proc]: moves made, then
 * pages merged at the end; bad[proc]: pages that lost their content.
 */
static int cpu_remap_proc(int proc)
{
	size_t len = (size_t)npages * PAGE;
	unsigned char *area, *cur, *other;
	long moves = 0;

	if (pin_cpu(0, proc == 0 ? 1 : 0))
		return 1;
	/* Two places, side by side: the pages start in the first. */
	area = mmap(NULL, 2 * len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED ||
	    mmap(area, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) == MAP_FAILED) {
		perror("shapes: mmap");
		return 1;
	}
	cur = area;
	other = area + len;
	fill(cur, npages, fill_stream, CPU_KEY + 1);
	sh->merged[proc] = wait_merged(cur, npages, npages * 9 / 10, timeout_sec);
	sh->phase[proc] = 1;
	wait_go(proc, 1);
	while (sh->go[proc] < 2) {
		unsigned char *to = other;
		volatile uint64_t *w;

		if (mremap(cur, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to) == MAP_FAILED ||
		    mprotect(to, len, PROT_READ) || mprotect(to, len, PROT_READ | PROT_WRITE)) {
			perror("shapes: mremap/mprotect");
			return 1;
		}
		other = cur;
		cur = to;
		w = (volatile uint64_t *)(cur + (moves % npages) * PAGE);
		if (!(moves % 8)) {
			uint64_t v = w[3];

			w[3] = v + 1;	/* a COW break of a merged page */
			w[3] = v;
		}
		moves++;
	}
	sh->phase[proc] = 2;
	sh->merged[proc] = moves;
	/* Merged again (or still) once the churn stops. */
	sh->merged[proc + 2] = wait_merged(cur, npages, npages * 9 / 10, timeout_sec);
	sh->phase[proc] = 3;
	wait_go(proc, 3);
	sh->bad[proc] = (int)verify(cur, npages, fill_stream, CPU_KEY + 1);
	return 0;
}

static int shape_cpu_remap(void)
{
	long period, records = pksm_counter("mappings");
	struct census c = { 0 };
	struct cpu_setup cs;
	pid_t a, b;
	char fig[320];
	int fail, ok;

	/* Every stable node pruned once a second. */
	if (cpu_setup(&cs, "period_seconds", "1")) {
		cpu_restore(&cs);
		return report("pages=0 setup=fail", 0);
	}
	period = pksm_counter("period_seconds");
	a = spawn(0, cpu_remap_proc);
	b = spawn(1, cpu_remap_proc);
	wait_phase(0, 1);
	wait_phase(1, 1);
	ok = sh->merged[0] >= npages * 9 / 10 && sh->merged[1] >= npages * 9 / 10;
	sh->go[0] = sh->go[1] = 1;
	nap((long)(hold_sec * 1000));
	sh->go[0] = sh->go[1] = 2;
	wait_phase(0, 3);
	wait_phase(1, 3);
	/* Every PTE mapping a KSM page reached once by its records. */
	ok &= !read_census(&c);
	sh->go[0] = sh->go[1] = 3;
	fail = reap(a) | reap(b);
	cpu_restore(&cs);
	snprintf(fig, sizeof(fig), "pages=%ld cpus=%ld moves=%ld,%ld merged_after=%ld,%ld "
		 "ptes=%ld mapcount=%ld mappings_before=%ld period_s=%ld bad=%d,%d",
		 npages, online_cpus(), sh->merged[0], sh->merged[1], sh->merged[2],
		 sh->merged[3], c.ptes, c.mapcount, records, period, sh->bad[0], sh->bad[1]);
	return report(fig, !fail && ok && sh->merged[0] > 100 && sh->merged[1] > 100 &&
		      sh->merged[2] >= npages * 9 / 10 && sh->merged[3] >= npages * 9 / 10 &&
		      c.ptes == c.mapcount && !sh->bad[0] && !sh->bad[1]);
}

/* ---- mmaplock: a contended mmap lock is no pin ------------------------ */

#define MMAPLOCK_KEY 17000

/* The CLONE_VM task: mprotect() a page of P's until sh->go[2]. */
static int mmaplock_hammer(void *arg)
{
	unsigned char *page = arg;
	long n = 0;

	while (!sh->go[2]) {
		mprotect(page, PAGE, n & 1 ? PROT_READ | PROT_WRITE : PROT_READ);
		n++;
	}
	sh->fig[2] = n;
	return 0;
}

/* P (proc 0) with the hammer, Q (proc 1) idle: their pages, merged. */
static int mmaplock_proc(int proc)
{
	unsigned char *base = map_anon((size_t)npages);
	static char stack[64 * 1024] __attribute__((aligned(16)));
	double t0;
	pid_t hammer = -1;

	fill(base, npages, fill_stream, MMAPLOCK_KEY);
	if (proc == 0) {
		unsigned char *page = map_anon(1);

		hammer = clone(mmaplock_hammer, stack + sizeof(stack),
			       CLONE_VM | SIGCHLD, page);
		if (hammer < 0) {
			perror("shapes: clone");
			return 1;
		}
	}
	t0 = now();
	sh->merged[proc] = wait_merged(base, npages, npages * 9 / 10, timeout_sec);
	if (proc == 0) {
		sh->fig[0] = (long)((now() - t0) * 1000);
		sh->go[2] = 1;
		if (reap(hammer))
			return 1;
	}
	sh->phase[proc] = 1;
	wait_go(proc, 1);
	sh->bad[proc] = (int)verify(base, npages, fill_stream, MMAPLOCK_KEY);
	return 0;
}

static int shape_mmaplock(void)
{
	long failures = pksm_counter("merge_failures");
	long drains = pksm_counter("lru_drains");
	pid_t p, q;
	char fig[200];
	int fail;

	sh->go[2] = 0;
	p = spawn(0, mmaplock_proc);
	q = spawn(1, mmaplock_proc);
	wait_phase(0, 1);
	wait_phase(1, 1);
	failures = pksm_counter("merge_failures") - failures;
	drains = pksm_counter("lru_drains") - drains;
	sh->go[0] = sh->go[1] = 1;
	fail = reap(p) | reap(q);
	snprintf(fig, sizeof(fig), "pages=%ld merged=%ld,%ld merge_ms=%ld mprotects=%ld "
		 "failures=%ld drains=%ld bad=%d,%d", npages, sh->merged[0], sh->merged[1],
		 sh->fig[0], sh->fig[2], failures, drains, sh->bad[0], sh->bad[1]);
	return report(fig, !fail && sh->merged[0] >= npages * 9 / 10 &&
		      sh->merged[1] >= npages * 9 / 10 && sh->fig[2] > 0 &&
		      !sh->bad[0] && !sh->bad[1]);
}

/* ---- forkzero: a child's count of merged zero pages ------------------ */

/* ksm_zero_pages of /proc/self/ksm_stat, or -1 */
static long own_ksm_zero_pages(void)
{
	FILE *f = fopen("/proc/self/ksm_stat", "r");
	char line[128];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "ksm_zero_pages %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

static int shape_forkzero(void)
{
	long n1 = npages, n2 = npages / 2, start, merged, after, child = -1;
	unsigned char *a = map_anon((size_t)n1), *b = map_anon((size_t)n2);
	int fail = 0;
	char fig[200];

	start = pksm_counter("ksm/ksm_zero_pages");
	if (madvise(a, (size_t)n1 * PAGE, MADV_DONTFORK) ||
	    madvise(b, (size_t)n2 * PAGE, MADV_WIPEONFORK)) {
		perror("shapes: madvise");
		return 1;
	}
	for (long i = 0; i < n1; i++)
		a[i * PAGE] = 0;	/* a page of its own, all zero */
	for (long i = 0; i < n2; i++)
		b[i * PAGE] = 0;
	merged = wait_counter("ksm/ksm_zero_pages", start, (n1 + n2) * 9 / 10,
			      timeout_sec);
	sh->fig[0] = -1;
	for (int i = 0; i < 8; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("shapes: fork");
			return 1;
		}
		if (pid == 0) {
			if (i == 0)
				sh->fig[0] = own_ksm_zero_pages();
			_exit(0);
		}
		fail |= reap(pid);
	}
	child = sh->fig[0];
	munmap(a, (size_t)n1 * PAGE);
	munmap(b, (size_t)n2 * PAGE);
	after = pksm_counter("ksm/ksm_zero_pages") - start;
	snprintf(fig, sizeof(fig), "pages=%ld,%ld merged=%ld child_zero=%ld after=%ld",
		 n1, n2, merged, child, after);
	/* other processes of the guest may merge or free a zero page or two */
	return report(fig, !fail && merged >= (n1 + n2) * 9 / 10 && child >= 0 &&
		      child <= 16 && after <= 16 && after >= -16);
}

/* ---- leader-exit ----------------------------------------------------- */

/*
 * A process whose first thread exited (pthread_exit()) while a second one
 * goes on with its merged memory: run=2 must unmerge it too, although the
 * task the process list names, that first thread, has no mm any more.
 * The second thread waits for its pages to merge, the driver writes
 * run=2, and then none of them may map a KSM page, every byte intact.
 */
static unsigned char *leader_base;

/* 16 contents, page i's that of i % 16. */
static void fill_mod16(uint64_t *w, uint64_t i)
{
	fill_stream(w, 18000 + i % 16);
}

static void *leader_worker(void *arg)
{
	(void)arg;
	sh->merged[0] = wait_merged(leader_base, npages, npages * 9 / 10, timeout_sec);
	sh->phase[0] = 1;
	wait_go(0, 1);
	sh->merged[1] = count_ksm(leader_base, npages);
	sh->bad[0] = (int)verify(leader_base, npages, fill_mod16, 0);
	sh->phase[0] = 2;
	exit(0);
}

static int leader_proc(int proc)
{
	pthread_t t;

	(void)proc;
	leader_base = map_anon((size_t)npages);
	fill(leader_base, npages, fill_mod16, 0);
	if (pthread_create(&t, NULL, leader_worker, NULL)) {
		fprintf(stderr, "shapes: pthread_create failed\n");
		return 1;
	}
	pthread_exit(NULL);
}

static int shape_leader_exit(void)
{
	pid_t a = spawn(0, leader_proc);
	char fig[192];
	int run2, fail;

	wait_phase(0, 1);
	run2 = write_file("/sys/kernel/mm/ksm/run", "2\n") ? errno : 0;
	sh->go[0] = 1;
	wait_phase(0, 2);
	fail = reap(a);
	write_file("/sys/kernel/mm/ksm/run", "1\n");
	snprintf(fig, sizeof(fig), "pages=%ld merged_before=%ld merged_after=%ld run2_errno=%d bad=%d",
		 npages, sh->merged[0], sh->merged[1], run2, sh->bad[0]);
	return report(fig, !fail && !run2 && sh->merged[0] >= npages * 9 / 10 &&
		      sh->merged[1] == 0 && !sh->bad[0]);
}

/* ---- reborn: pages born where filed pages were freed ------------------ */

/* The frames of the n pages at @base into @pfns (0: not present); 0 or -1. */
static int range_pfns(const unsigned char *base, long n, uint64_t *pfns)
{
	int pm = open("/proc/thread-self/pagemap", O_RDONLY);
	int kf = open("/proc/kpageflags", O_RDONLY);
	int ret = pm < 0 || kf < 0 ? -1 : 0;

	for (long i = 0; !ret && i < n; i++) {
		uint64_t flags;

		if (page_frame(pm, kf, (uintptr_t)base / PAGE + (uintptr_t)i, &pfns[i],
			       &flags) < 0)
			ret = -1;
	}
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	return ret;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The ksm knobs shapes reborn and nosleep set, and what they were. */
static const char *const ksm_knobs[] = { "run", "pages_to_scan", "sleep_millisecs" };
static long ksm_knobs_old[3] = { -1, -1, -1 };

static void knobs_restore(void);

/*
 * What the knobs are before the shape; 0, or -1 (said, and what was read
 * put back) if one cannot be read.
 */
static int knobs_save(void)
{
	char path[64];

	for (int k = 0; k < 3; k++) {
		snprintf(path, sizeof(path), "ksm/%s", ksm_knobs[k]);
		ksm_knobs_old[k] = pksm_counter(path);
		if (ksm_knobs_old[k] < 0) {
			fprintf(stderr, "shapes: %s: cannot read the ksm knobs\n", shape);
			knobs_restore();
			return -1;
		}
	}
	return 0;
}

static int knob_set(int k, long v)
{
	char val[32];

	snprintf(val, sizeof(val), "%ld", v);
	return write_knob("/sys/kernel/mm/ksm", ksm_knobs[k], val);
}

static void knobs_restore(void)
{
	char val[32];

	for (int k = 2; k >= 0; k--) {
		if (ksm_knobs_old[k] < 0)
			continue;
		snprintf(val, sizeof(val), "%ld", ksm_knobs_old[k]);
		write_knob("/sys/kernel/mm/ksm", ksm_knobs[k], val);
		ksm_knobs_old[k] = -1;
	}
}

/* Keys of reborn's contents: A's unique pages and B's pairs never meet. */
#define REBORN_A(i) (0x72620000ULL << 32 | (uint64_t)(i))
#define REBORN_B(i) (0x72630000ULL << 32 | (uint64_t)(i) / 2)

/*
 * reborn (pksm.opted_in_only=1, probation_scans 0): A opts in, fills
 * unique pages, waits until the daemon filed them in its unstable tree;
 * the daemon is put to sleep (sleep_millisecs 60 s) and A exits: its
 * items stay in the tree, dead.  B, on the same CPU, fills as many pages
 * in pairs of equal content (out of merging: not tracked), so that many of
 * its pages take A's frames, and opts in (PR_SET_MEMORY_MERGE); the daemon
 * is woken (sleep_millisecs 10, pages_to_scan 100: the sweep of dead
 * unstable items needs many batches to go round the table, a full scan
 * one): every page of B must be merged two full scans later, as upstream's
 * selftests expect (ksm_tests -Z).  Before, a page born in such a frame
 * waited for the sweep to come to its bucket.
 */
static int shape_reborn_run(long *filed, long *reborn, long *merged, double *secs,
			    long *bad)
{
	long n = npages, scans;
	uint64_t *apfn = mmap(NULL, (size_t)n * sizeof(*apfn), PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t *bpfn = calloc((size_t)n, sizeof(*bpfn));
	unsigned char *b;
	double start;
	int status;
	pid_t a;

	if (apfn == MAP_FAILED || !bpfn) {
		perror("shapes: reborn");
		return -1;
	}
	if (pksm_counter("opted_in_only") != 1) {
		fprintf(stderr, "shapes: reborn needs pksm.opted_in_only=1\n");
		return -1;
	}
	if (pin_cpu(0, 0) || knob_set(0, 1) || knob_set(1, 100) || knob_set(2, 10))
		return -1;
	sh->fig[0] = -1;
	a = fork();
	if (a < 0) {
		perror("shapes: fork");
		return -1;
	}
	if (!a) {
		long unstable0 = pksm_counter("unstable_pages");
		unsigned char *p;

		if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
			_exit(1);
		p = map_anon((size_t)n);
		for (long i = 0; i < n; i++)
			fill_stream((uint64_t *)(p + i * PAGE), REBORN_A(i));
		sh->fig[0] = wait_counter("unstable_pages", unstable0, n * 9 / 10, timeout_sec);
		/* The daemon asleep (the write wakes it: its next sleep is long). */
		if (knob_set(2, 60000))
			_exit(1);
		nap(100);
		_exit(range_pfns(p, n, apfn) ? 1 : 0);
	}
	if (waitpid(a, &status, 0) != a || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "shapes: reborn: A failed\n");
		return -1;
	}
	*filed = sh->fig[0];
	b = map_anon((size_t)n);
	for (long i = 0; i < n; i++)
		fill_stream((uint64_t *)(b + i * PAGE), REBORN_B(i));
	if (range_pfns(b, n, bpfn))
		return -1;
	qsort(apfn, (size_t)n, sizeof(*apfn), cmp_u64);
	for (long i = 0; i < n; i++)
		*reborn += bpfn[i] && bsearch(&bpfn[i], apfn, (size_t)n, sizeof(*apfn), cmp_u64);
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)) {
		perror("shapes: prctl");
		return -1;
	}
	scans = pksm_counter("ksm/full_scans");
	if (scans < 0 || knob_set(2, 10))
		return -1;
	start = now();
	while (pksm_counter("ksm/full_scans") - scans < 2 && now() - start < timeout_sec)
		nap(10);
	*secs = now() - start;
	*merged = count_ksm(b, n);
	for (long i = 0; i < n; i++) {
		uint64_t want[WORDS];

		fill_stream(want, REBORN_B(i));
		*bad += memcmp(b + i * PAGE, want, PAGE) != 0;
	}
	return 0;
}

static int shape_reborn(void)
{
	long filed = -1, reborn = 0, merged = -1, bad = 0;
	double secs = 0;
	char fig[200];
	int err;

	if (knobs_save())
		return 1;
	err = shape_reborn_run(&filed, &reborn, &merged, &secs, &bad);
	knobs_restore();
	if (err)
		return 1;
	snprintf(fig, sizeof(fig), "pages=%ld filed=%ld reborn=%ld merged=%ld after_s=%.2f bad=%ld",
		 npages, filed, reborn, merged, secs, bad);
	/* The window: at least a quarter of B's pages in A's filed frames. */
	return report(fig, filed >= npages * 9 / 10 && reborn >= npages / 4 &&
		      merged == npages && !bad);
}

/* ---- nosleep: sleep_millisecs 0 --------------------------------------- */

/*
 * With pages_to_scan 10 and sleep_millisecs 0 (upstream's selftests' knobs),
 * pages in equal pairs opt in: the time until all are merged.  A daemon
 * that slept a jiffy between batches would take a jiffy per 10 pages.
 * Then a page pksmd cannot read: born, pinned in a pipe and unmapped
 * before its first visit, it stays on the new list; the batches pksmd
 * runs in @stuck_ms ms of that (full scans: each batch ends a round of
 * that one page) go in *@stuck_batches.  A daemon that did not sleep
 * while such a page waits would spin through them.
 */
static int shape_nosleep_run(unsigned char *p, long *merged, double *secs,
			     long stuck_ms, long *stuck_batches)
{
	long sharing, s = 0, scans;
	unsigned char *q;
	double start;
	int pfd[2];
	struct iovec iov;

	if (knob_set(0, 1) || knob_set(1, 10) || knob_set(2, 0))
		return -1;
	fill(p, npages, fill_pairs, 1);
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)) {
		perror("shapes: prctl");
		return -1;
	}
	/* A counter, not the frames, while waiting: a cheap read. */
	sharing = pksm_counter("ksm/pages_sharing");
	start = now();
	while (sharing >= 0 && (s = pksm_counter("ksm/pages_sharing")) >= 0 &&
	       s - sharing < npages / 2 && now() - start < timeout_sec)
		nap(5);
	/* Other processes' merges count too: the frames decide. */
	while ((*merged = count_ksm(p, npages)) >= 0 && *merged < npages &&
	       now() - start < timeout_sec)
		nap(5);
	*secs = now() - start;

	q = map_anon(1);
	fill_stream((uint64_t *)q, 77);
	iov.iov_base = q;
	iov.iov_len = PAGE;
	if (pipe(pfd) || vmsplice(pfd[1], &iov, 1, 0) != (ssize_t)PAGE) {
		perror("shapes: nosleep: pipe");
		return -1;
	}
	munmap(q, PAGE);
	scans = pksm_counter("ksm/full_scans");
	nap(stuck_ms);
	*stuck_batches = scans < 0 ? -1 : pksm_counter("ksm/full_scans") - scans;
	close(pfd[0]);
	close(pfd[1]);
	return 0;
}

static int shape_nosleep(void)
{
	unsigned char *p = map_anon((size_t)npages);
	long merged = -1, bad, stuck = -1;
	double secs = 0;
	char fig[200];
	int err;

	if (knobs_save())
		return 1;
	err = shape_nosleep_run(p, &merged, &secs, 200, &stuck);
	knobs_restore();
	if (err)
		return 1;
	bad = verify(p, npages, fill_pairs, 1);
	snprintf(fig, sizeof(fig),
		 "pages=%ld merged=%ld after_s=%.3f stuck_ms=200 stuck_batches=%ld bad=%ld",
		 npages, merged, secs, stuck, bad);
	return report(fig, merged == npages && stuck >= 0 && !bad);
}

/* ---- main ------------------------------------------------------------ */

static const struct {
	const char *name;
	int (*run)(void);
} shapes[] = {
	{ "mremap", shape_mremap },
	{ "fork-optout", shape_fork_optout },
	{ "pinned", shape_pinned },
	{ "structured", shape_structured },
	{ "madvfree", shape_madvfree },
	{ "swapcache", shape_swapcache },
	{ "optout-race", shape_optout_race },
	{ "exit-race", shape_exit_race },
	{ "zero-exit-race", shape_zero_exit_race },
	{ "unmap-race", shape_unmap_race },
	{ "pair-write", shape_pair_write },
	{ "forkwide", shape_forkwide },
	{ "forktree", shape_forktree },
	{ "migrate", shape_migrate },
	{ "optout-migrating", shape_optout_migrating },
	{ "bigvma", shape_bigvma },
	{ "optout-enomem", shape_optout_enomem },
	{ "uaccess", shape_uaccess },
	{ "hotword", shape_hotword },
	{ "pinnedzero", shape_pinnedzero },
	{ "restore", shape_restore },
	{ "cpu-write", shape_cpu_write },
	{ "cpu-remap", shape_cpu_remap },
	{ "hotzero", shape_hotzero },
	{ "hotshare", shape_hotshare },
	{ "refault", shape_refault },
	{ "forkzero", shape_forkzero },
	{ "mmaplock", shape_mmaplock },
	{ "leader-exit", shape_leader_exit },
	{ "reborn", shape_reborn },
	{ "nosleep", shape_nosleep },
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: shapes --shape S [--pages N] [--timeout SEC] [--hold SEC]\n"
		"  --shape S      mremap | fork-optout | pinned | structured | madvfree |\n"
		"                 swapcache |\n"
		"                 optout-race | exit-race | zero-exit-race | unmap-race |\n"
		"                 pair-write |\n"
		"                 forkwide |\n"
		"                 forktree | migrate | optout-migrating | bigvma |\n"
		"                 optout-enomem | uaccess | hotword |\n"
		"                 pinnedzero |\n"
		"                 restore | cpu-write | cpu-remap | hotzero | hotshare |\n"
		"                 refault | forkzero | mmaplock | leader-exit |\n"
		"                 reborn | nosleep\n"
		"  --pages N      pages per process, 16..262144 (default 2048)\n"
		"  --timeout SEC  how long to wait for merging (restore: for each\n"
		"                 region), 1..3600 (default 30)\n"
		"  --hold SEC     pinned: head start of the pinned pages; madvfree: time C\n"
		"                 gets to merge; hotword, uaccess: how long to keep going;\n"
		"                 pinnedzero: how long drains are counted; cpu-write,\n"
		"                 cpu-remap, hotzero, hotshare: how long the churn goes on,\n"
		"                 0..3600 (default 6)\n"
		"Exit: 0 pass, 1 fail, 2 usage.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "shape", required_argument, NULL, 's' },
		{ "pages", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "hold", required_argument, NULL, 'h' },
		{ "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's': shape = optarg; break;
		case 'p': npages = parse_long("pages", optarg, 16, 262144); break;
		case 't': timeout_sec = parse_double("timeout", optarg, 1, 3600); break;
		case 'h': hold_sec = parse_double("hold", optarg, 0, 3600); break;
		case 'H': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !shape) {
		fprintf(stderr, "shapes: %s\n", shape ? "unexpected argument" : "--shape is required");
		usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("shapes: mmap shared");
		return 1;
	}
	memset(sh, 0, sizeof(*sh));
	counters_start();
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		if (!strcmp(shape, shapes[i].name))
			return shapes[i].run();
	fprintf(stderr, "shapes: unknown shape '%s'\n", shape);
	usage(stderr);
	return 2;
}
