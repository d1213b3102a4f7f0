/*
 * dupalloc - allocate anonymous memory with a known mix of page kinds for
 * memory-deduplication (KSM) tests, hold it, and verify it at the end.
 *
 * The parent forks N children; each child mmaps its own M MiB private
 * anonymous region and fills it page by page.  Every page index gets one
 * kind, chosen deterministically from (seed, index) so the layout is the
 * same in all processes:
 *
 *   dup     identical content in every process (64-bit words from a
 *           splitmix64 stream keyed by seed and index, or index % K with
 *           --dup-set K)
 *   zero    a zeroed page, really faulted in (one zero word is written)
 *   near    the dup content of that index with exactly one byte changed;
 *           the offset depends on the index, the XOR value also on the
 *           process, so near pages match neither the dup page nor each
 *           other across processes
 *   unique  content keyed by seed, process, index and generation
 *
 * --fill-bytes B keeps only the low B bytes of every stream word (the rest
 * zero): content a compressor (zswap) can shrink, as real memory is.
 *
 * Before the hold, --sweeps N has each process read its region N times,
 * one word of every page in order, giving every 64th unique page it passes
 * new unique content (a new generation): memory in steady use, whose cold
 * pages reclaim keeps pushing out to swap and the sweeps keep reading back.
 * While holding, --rewrite gives pages new unique content (a new
 * generation) at the given rate.  Verification recomputes every page and
 * compares it word by word.  SIGUSR1 (to a child, or to the parent, which
 * forwards it) requests an extra verification.
 *
 * Protocol lines on stdout:
 *   PKSMTB-EVENT region proc=P pid=X base=0x... pages=N        (each child)
 *   PKSMTB-EVENT filled t_ms=T procs=N pages_total=.. dup=.. zero=..
 *                near=.. unique=.. achievable=A                 (parent)
 *   dupalloc: MISMATCH proc P pid X page I offset O expected 0x.. got 0x..
 *   PKSMTB-EVENT merged proc=P pid=X pages=N ksm=K zero=Z stat_merging=M stat_zero=S
 *                (each process, before its final verification: region pages
 *                mapping a KSM page or the zero page, from /proc/self/pagemap
 *                and /proc/kpageflags, and the whole process's
 *                ksm_merging_pages and ksm_zero_pages from /proc/self/ksm_stat;
 *                -1 for what cannot be read)
 *   PKSMTB-EVENT awaited proc=P pid=X pages=N waited_ms=T ksm=K zero=Z
 *                want_ksm=K want_zero=Z reached=0|1
 *                (--await-merged: the region's merged pages when the wait ended)
 *   PKSMTB-EVENT swept proc=P pid=X sweeps=N rewritten=R ms=T
 *                (--sweeps: pages given new content, milliseconds taken)
 *   PKSMTB-EVENT excluded proc=P pid=X pages=N ksm_before=K zero_before=Z
 *                ksm_after=K zero_after=Z
 *                (--exclude-after: the region's merged pages just before the
 *                MADV_UNMERGEABLE and right after it returned)
 *   PKSMTB-EVENT verified result=ok | result=fail failures=F    (parent)
 * In a MISMATCH line, O is the byte offset in the page of the first
 * differing byte; expected/got are the aligned 64-bit words holding it.
 * "achievable" is the number of pages deduplication can save: all zero
 * pages plus procs*dup minus the number of distinct dup contents.
 *
 * Usage: dupalloc [options]   (see --help)
 * Exit status: 0 all verified, 1 failure, 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "dupalloc"
#include "util.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

enum kind { K_UNIQUE, K_DUP, K_ZERO, K_NEAR };
/*
 * How the region asks for merging: nothing; opt in (MADV_MERGEABLE, or
 * the whole process with PR_SET_MEMORY_MERGE=1, upstream KSM's way); or
 * opt out (MADV_UNMERGEABLE on the region, or PR_SET_MEMORY_MERGE=0 for
 * the process, before the region is mapped: PKSM's way).
 */
enum merge { M_NONE, M_MADVISE, M_PRCTL, M_UNMERGEABLE, M_OPTOUT };

#define MAX_PROCS 64
#define MAX_MISMATCH_LINES 10
#define MAX_FORK_SHARE 16
#define HOLD_STEP_NS 10000000L /* 10 ms */

/* Hash tags, so the different content streams never coincide. */
#define TAG_KIND 0x4b494e44ULL
#define TAG_DUP 0x445550ULL
#define TAG_UNIQ 0x554e4951ULL
#define TAG_NEAR 0x4e454152ULL
#define TAG_REWRITE 0x52455752ULL

static int procs = 1;
static long mib = 8;
static int pct_dup = 50, pct_zero = 0, pct_near = 0;
static long dup_set = 0;
static uint64_t fill_mask = ~0ULL; /* --fill-bytes: random low bytes a word */
static uint64_t seed = 1;
static double hold_sec = 5.0, rewrite_rate = 0.0, verify_every = 0.0;
static int merge_mode = M_NONE;
static int fork_share; /* children sharing each region after fill */
static const char *hold_until; /* --hold-until: the hold ends when it exists */
static double exclude_after; /* >0: MADV_UNMERGEABLE the region then */
static double await_merged; /* >0: the hold starts once merged, or after this */
static long sweeps; /* --sweeps: read passes over the region before the hold */
#define SWEEP_REWRITE_EVERY 64 /* of the unique pages a sweep passes */

static size_t page_size, words_per_page, npages;
static unsigned char *kinds; /* kind of every page index, shared layout */

static pid_t parent_pid;
static pid_t child_pids[MAX_PROCS];
static volatile sig_atomic_t nchildren;
static volatile sig_atomic_t verify_requested;

#define GOLDEN 0x9e3779b97f4a7c15ULL

/* splitmix64 finalizer */
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

static enum kind kind_of_index(size_t i)
{
	unsigned r = (unsigned)(mixin(mixin(seed, TAG_KIND), i) % 100);

	if (r < (unsigned)pct_dup)
		return K_DUP;
	if (r < (unsigned)(pct_dup + pct_zero))
		return K_ZERO;
	if (r < (unsigned)(pct_dup + pct_zero + pct_near))
		return K_NEAR;
	return K_UNIQUE;
}

static uint64_t dup_key(size_t i)
{
	return mixin(mixin(seed, TAG_DUP), dup_set ? i % (size_t)dup_set : i);
}

/* Write a splitmix64 stream keyed by key into one page, word by word. */
static void stream_fill(uint64_t *dst, uint64_t key)
{
	for (size_t j = 0; j < words_per_page; j++)
		dst[j] = fmix(key + (j + 1) * GOLDEN) & fill_mask;
}

/*
 * Produce the content of page i of process proc at generation gen in dst.
 * fresh: dst is a never-touched page of the region, so a zero page only
 * needs one zero word written to fault in a real zeroed page.
 */
static void make_page(uint64_t *dst, int proc, size_t i, uint32_t gen, int fresh)
{
	enum kind k = gen ? K_UNIQUE : (enum kind)kinds[i];

	switch (k) {
	case K_ZERO:
		if (fresh) {
			*(volatile uint64_t *)dst = 0;
		} else {
			for (size_t j = 0; j < words_per_page; j++)
				dst[j] = 0;
		}
		break;
	case K_DUP:
		stream_fill(dst, dup_key(i));
		break;
	case K_NEAR: {
		uint64_t h = mixin(mixin(seed, TAG_NEAR), i);
		size_t off = h % page_size;
		unsigned char x = (unsigned char)(1 + ((h >> 32) + (uint64_t)proc) % 255);

		stream_fill(dst, dup_key(i));
		((unsigned char *)dst)[off] ^= x;
		break;
	}
	case K_UNIQUE:
		stream_fill(dst, mixin(mixin(mixin(mixin(seed, TAG_UNIQ), (uint64_t)proc), i), gen));
		break;
	}
}

/* Compare every page with its expected content; return bad page count. */
static size_t verify(int proc, unsigned char *base, const uint32_t *gen,
		     uint64_t *scratch, int *lines_left)
{
	size_t bad = 0;

	for (size_t i = 0; i < npages; i++) {
		const uint64_t *p = (const uint64_t *)(base + i * page_size);
		size_t j;

		make_page(scratch, proc, i, gen[i], 0);
		for (j = 0; j < words_per_page; j++)
			if (p[j] != scratch[j])
				break;
		if (j == words_per_page)
			continue;
		bad++;
		if (*lines_left > 0) {
			uint64_t got = p[j], exp = scratch[j];
			size_t off = j * 8 + (size_t)__builtin_ctzll(got ^ exp) / 8;

			(*lines_left)--;
			printf("dupalloc: MISMATCH proc %d pid %d page %zu offset %zu "
			       "expected 0x%016" PRIx64 " got 0x%016" PRIx64 "\n",
			       proc, (int)getpid(), i, off, exp, got);
			fflush(stdout);
		}
	}
	if (bad) {
		printf("dupalloc: proc %d pid %d verify failed: %zu bad pages\n",
		       proc, (int)getpid(), bad);
		fflush(stdout);
	}
	return bad;
}

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_step(double max_sec)
{
	struct timespec ts = { 0, HOLD_STEP_NS };

	if (max_sec < HOLD_STEP_NS / 1e9)
		ts.tv_nsec = (long)(max_sec * 1e9);
	if (ts.tv_nsec > 0)
		clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL); /* EINTR is fine */
}

static int hold_and_verify(int proc, unsigned char *base, uint32_t *gen, uint64_t *scratch);

static int run_child(int proc, int fill_fd)
{
	size_t len = npages * page_size;

	if ((merge_mode == M_PRCTL || merge_mode == M_OPTOUT) &&
	    prctl(PR_SET_MEMORY_MERGE, merge_mode == M_PRCTL, 0, 0, 0) != 0) {
		fprintf(stderr, "dupalloc: proc %d: prctl(PR_SET_MEMORY_MERGE, %d): %s\n",
			proc, merge_mode == M_PRCTL, strerror(errno));
		return 1;
	}
	unsigned char *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		fprintf(stderr, "dupalloc: proc %d: mmap %zu bytes: %s\n",
			proc, len, strerror(errno));
		return 1;
	}
	pksmtb_event("region", "proc=%d pid=%d base=%p pages=%zu",
		     proc, (int)getpid(), (void *)base, npages);
	if ((merge_mode == M_MADVISE || merge_mode == M_UNMERGEABLE) &&
	    madvise(base, len, merge_mode == M_MADVISE ? MADV_MERGEABLE : MADV_UNMERGEABLE)) {
		fprintf(stderr, "dupalloc: proc %d: madvise(%s): %s\n", proc,
			merge_mode == M_MADVISE ? "MADV_MERGEABLE" : "MADV_UNMERGEABLE",
			strerror(errno));
		return 1;
	}

	uint32_t *gen = calloc(npages, sizeof(*gen));
	uint64_t *scratch = aligned_alloc(page_size, page_size);
	if (!gen || !scratch) {
		fprintf(stderr, "dupalloc: proc %d: out of memory\n", proc);
		return 1;
	}

	for (size_t i = 0; i < npages; i++)
		make_page((uint64_t *)(base + i * page_size), proc, i, 0, 1);
	/* Children forked now share every page copy-on-write. */
	pid_t kids[MAX_FORK_SHARE];
	int nkids = 0;
	for (; nkids < fork_share; nkids++) {
		pid_t pid = fork();

		if (pid < 0) {
			fprintf(stderr, "dupalloc: proc %d: fork: %s\n", proc, strerror(errno));
			return 1;
		}
		if (pid == 0) {
			close(fill_fd);
			rewrite_rate = 0; /* keep the shared pages shared */
			sweeps = 0;
			_exit(hold_and_verify(proc, base, gen, scratch));
		}
		kids[nkids] = pid;
	}
	if (write(fill_fd, "F", 1) != 1) {
		fprintf(stderr, "dupalloc: proc %d: write fill pipe: %s\n",
			proc, strerror(errno));
		return 1;
	}
	close(fill_fd);

	int rc = hold_and_verify(proc, base, gen, scratch);
	for (int k = 0; k < nkids; k++) {
		int st;

		if (waitpid(kids[k], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			printf("dupalloc: proc %d fork-share child %d failed\n", proc, (int)kids[k]);
			rc = 1;
		}
	}
	return rc;
}

/* A "name value" line of /proc/self/ksm_stat, or -1. */
static long ksm_stat(const char *name)
{
	FILE *f = fopen("/proc/self/ksm_stat", "r");
	char key[64];
	long v, ret = -1;

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", key, &v) == 2) {
		if (!strcmp(key, name)) {
			ret = v;
			break;
		}
	}
	fclose(f);
	return ret;
}

/*
 * --await-merged: wait (at most await_merged seconds) until every dup page
 * of the region maps a KSM page and every zero page the zero page, so that
 * what the hold then does (exclude-after, the final report) does not
 * depend on how fast the merger was.  Meaningful with --procs >= 2 (a dup
 * page needs a partner).  Reports how long it waited.
 */
static void await_merge(int proc, unsigned char *base)
{
	long want_ksm = 0, want_zero = 0, ksm = -1, zero = -1;
	double start = now_sec(), t = start;
	int reached = 0;

	for (size_t i = 0; i < npages; i++) {
		want_ksm += kinds[i] == K_DUP;
		want_zero += kinds[i] == K_ZERO;
	}
	for (;;) {
		if (count_merged(base, npages, &ksm, &zero) == 0 &&
		    ksm >= want_ksm && zero >= want_zero) {
			reached = 1;
			break;
		}
		t = now_sec();
		if (t - start >= await_merged)
			break;
		sleep_step(0.05);
	}
	pksmtb_event("awaited", "proc=%d pid=%d pages=%zu waited_ms=%ld ksm=%ld zero=%ld "
		     "want_ksm=%ld want_zero=%ld reached=%d", proc, (int)getpid(), npages,
		     (long)((now_sec() - start) * 1000), ksm, zero, want_ksm, want_zero,
		     reached);
}

/*
 * --sweeps: read one word of every page, in order, sweeps times; every
 * SWEEP_REWRITE_EVERY-th unique page passed gets a new generation.
 */
static void sweep_region(int proc, unsigned char *base, uint32_t *gen)
{
	double start = now_sec();
	uint64_t rewritten = 0, unique_seen = 0;

	for (long s = 0; s < sweeps; s++) {
		for (size_t i = 0; i < npages; i++) {
			uint64_t *page = (uint64_t *)(base + i * page_size);

			(void)*(volatile uint64_t *)page;
			if (gen[i] == 0 && kinds[i] != K_UNIQUE)
				continue;
			if (++unique_seen % SWEEP_REWRITE_EVERY)
				continue;
			if (++gen[i] == 0)
				gen[i] = 1;
			make_page(page, proc, i, gen[i], 0);
			rewritten++;
		}
	}
	pksmtb_event("swept", "proc=%d pid=%d sweeps=%ld rewritten=%" PRIu64 " ms=%.0f",
		     proc, (int)getpid(), sweeps, rewritten, (now_sec() - start) * 1000.0);
}

/* Hold: sleep in small steps, rewrite and verify as requested; final verify. */
static int hold_and_verify(int proc, unsigned char *base, uint32_t *gen, uint64_t *scratch)
{
	int lines_left = MAX_MISMATCH_LINES;
	size_t bad = 0;

	if (await_merged > 0)
		await_merge(proc, base);
	if (sweeps > 0)
		sweep_region(proc, base, gen);

	/* Hold: sleep in small steps, rewrite and verify as requested. */
	double start = now_sec(), next_verify = start + verify_every;
	uint64_t rewrites = 0;
	int excluded = 0;
	for (;;) {
		double t = now_sec();

		if (exclude_after > 0 && !excluded && t - start >= exclude_after) {
			long ksm, zero, ksm_after, zero_after;

			if (count_merged(base, npages, &ksm, &zero))
				ksm = zero = -1;
			excluded = 1;
			if (madvise(base, npages * page_size, MADV_UNMERGEABLE)) {
				fprintf(stderr, "dupalloc: proc %d: madvise(MADV_UNMERGEABLE): %s\n",
					proc, strerror(errno));
				bad++;
			}
			/* right after the call returned: unmerged at once */
			if (count_merged(base, npages, &ksm_after, &zero_after))
				ksm_after = zero_after = -1;
			pksmtb_event("excluded", "proc=%d pid=%d pages=%zu ksm_before=%ld "
				     "zero_before=%ld ksm_after=%ld zero_after=%ld", proc,
				     (int)getpid(), npages, ksm, zero, ksm_after, zero_after);
			/* unmerging must leave every page as it was */
			bad += verify(proc, base, gen, scratch, &lines_left);
		}
		if (verify_requested) {
			verify_requested = 0;
			bad += verify(proc, base, gen, scratch, &lines_left);
		}
		if (t - start >= hold_sec ||
		    (hold_until && access(hold_until, F_OK) == 0))
			break;
		if (verify_every > 0 && t >= next_verify) {
			bad += verify(proc, base, gen, scratch, &lines_left);
			next_verify += verify_every;
			if (next_verify < t)
				next_verify = t + verify_every;
		}
		if (rewrite_rate > 0) {
			uint64_t due = (uint64_t)(rewrite_rate * (t - start));

			for (; rewrites < due; rewrites++) {
				size_t i = mixin(mixin(mixin(seed, TAG_REWRITE), (uint64_t)proc),
						 rewrites) % npages;
				if (++gen[i] == 0)
					gen[i] = 1;
				make_page((uint64_t *)(base + i * page_size), proc, i, gen[i], 0);
			}
		}
		sleep_step(hold_sec - (t - start));
	}

	long ksm, zero;

	if (count_merged(base, npages, &ksm, &zero))
		ksm = zero = -1;
	pksmtb_event("merged", "proc=%d pid=%d pages=%zu ksm=%ld zero=%ld "
		     "stat_merging=%ld stat_zero=%ld", proc, (int)getpid(), npages, ksm, zero,
		     ksm_stat("ksm_merging_pages"), ksm_stat("ksm_zero_pages"));
	bad += verify(proc, base, gen, scratch, &lines_left);
	return bad ? 1 : 0;
}

/* Parent forwards SIGUSR1 to the children; a child just sets a flag. */
static void on_usr1(int sig)
{
	(void)sig;
	if (getpid() == parent_pid) {
		for (int i = 0; i < nchildren; i++)
			if (child_pids[i] > 0)
				kill(child_pids[i], SIGUSR1);
	} else {
		verify_requested = 1;
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: dupalloc [options]\n"
		"Allocate anonymous memory with a mix of duplicate/zero/near/unique pages\n"
		"in N processes, hold it, and verify it.\n"
		"  --procs N          processes, 1..64 (default 1)\n"
		"  --mib M            MiB per process, 1..4096 (default 8)\n"
		"  --dup PCT          duplicate pages, 0..100 (default 50)\n"
		"  --zero PCT         zero pages, 0..100 (default 0)\n"
		"  --near PCT         near-duplicate pages, 0..100 (default 0)\n"
		"                     (unique pages get the rest; sum must be <= 100)\n"
		"  --dup-set K        0: each dup page index has its own content (default);\n"
		"                     K>0: only K distinct dup contents (index mod K)\n"
		"  --fill-bytes B     random low bytes in each 64-bit word, the rest zero,\n"
		"                     1..8 (default 8: incompressible; fewer compress, e.g. for zswap)\n"
		"  --seed S           layout/content seed (default 1)\n"
		"  --hold SEC         seconds to hold memory after filling (default 5)\n"
		"  --hold-until FILE  end the hold early once FILE exists\n"
		"  --sweeps N         before the hold, read one word of every page N times,\n"
		"                     rewriting every 64th unique page passed (0..1000000, default 0)\n"
		"  --rewrite RATE     pages/second each process rewrites while holding (default 0)\n"
		"  --merge MODE       none | madvise (MADV_MERGEABLE) | prctl (PR_SET_MEMORY_MERGE=1)\n"
		"                     | unmergeable (MADV_UNMERGEABLE) | optout (PR_SET_MEMORY_MERGE=0)\n"
		"  --verify-every SEC also verify periodically while holding (default 0: end only)\n"
		"  --await-merged S   before the hold, wait until every dup page maps a KSM page\n"
		"                     and every zero page the zero page, at most S seconds\n"
		"                     (event 'awaited'; needs --procs >= 2; default 0: no wait)\n"
		"  --exclude-after S  S seconds into the hold, MADV_UNMERGEABLE the region\n"
		"                     (unmerge it and keep it unmerged; default 0: never)\n"
		"  --fork-share N     after filling, each process forks N children that share\n"
		"                     its pages copy-on-write, hold and verify them (0..16, default 0)\n"
		"  --help             show this help\n"
		"SIGUSR1 triggers an extra verification.  Exit: 0 ok, 1 failure, 2 usage.\n");
}

static void parse_args(int argc, char **argv)
{
	enum { O_PROCS = 256, O_MIB, O_DUP, O_ZERO, O_NEAR, O_DUPSET, O_SEED,
	       O_HOLD, O_REWRITE, O_MERGE, O_VERIFY, O_FORK_SHARE, O_EXCLUDE, O_FILL,
	       O_UNTIL, O_AWAIT, O_SWEEPS, O_HELP };
	static const struct option longopts[] = {
		{ "procs", required_argument, NULL, O_PROCS },
		{ "mib", required_argument, NULL, O_MIB },
		{ "dup", required_argument, NULL, O_DUP },
		{ "zero", required_argument, NULL, O_ZERO },
		{ "near", required_argument, NULL, O_NEAR },
		{ "dup-set", required_argument, NULL, O_DUPSET },
		{ "fill-bytes", required_argument, NULL, O_FILL },
		{ "seed", required_argument, NULL, O_SEED },
		{ "hold", required_argument, NULL, O_HOLD },
		{ "hold-until", required_argument, NULL, O_UNTIL },
		{ "rewrite", required_argument, NULL, O_REWRITE },
		{ "merge", required_argument, NULL, O_MERGE },
		{ "verify-every", required_argument, NULL, O_VERIFY },
		{ "fork-share", required_argument, NULL, O_FORK_SHARE },
		{ "exclude-after", required_argument, NULL, O_EXCLUDE },
		{ "await-merged", required_argument, NULL, O_AWAIT },
		{ "sweeps", required_argument, NULL, O_SWEEPS },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_PROCS: procs = (int)parse_long("procs", optarg, 1, MAX_PROCS); break;
		case O_MIB: mib = parse_long("mib", optarg, 1, 4096); break;
		case O_DUP: pct_dup = (int)parse_long("dup", optarg, 0, 100); break;
		case O_ZERO: pct_zero = (int)parse_long("zero", optarg, 0, 100); break;
		case O_NEAR: pct_near = (int)parse_long("near", optarg, 0, 100); break;
		case O_DUPSET: dup_set = parse_long("dup-set", optarg, 0, 1L << 30); break;
		case O_FILL: {
			long b = parse_long("fill-bytes", optarg, 1, 8);

			fill_mask = b == 8 ? ~0ULL : (1ULL << (8 * b)) - 1;
			break;
		}
		case O_SEED: {
			char *end;

			errno = 0;
			seed = strtoull(optarg, &end, 0);
			if (end == optarg || *end || errno || optarg[strspn(optarg, " \t")] == '-')
				bad_value("seed", optarg, "an unsigned 64-bit integer");
			break;
		}
		case O_HOLD: hold_sec = parse_double("hold", optarg, 0, 31536000.0); break;
		case O_UNTIL: hold_until = optarg; break;
		case O_SWEEPS: sweeps = parse_long("sweeps", optarg, 0, 1000000); break;
		case O_REWRITE: rewrite_rate = parse_double("rewrite", optarg, 0, 1e8); break;
		case O_VERIFY: verify_every = parse_double("verify-every", optarg, 0, 31536000.0); break;
		case O_EXCLUDE:
			exclude_after = parse_double("exclude-after", optarg, 0, 31536000.0);
			break;
		case O_AWAIT:
			await_merged = parse_double("await-merged", optarg, 0, 3600.0);
			break;
		case O_FORK_SHARE:
			fork_share = (int)parse_long("fork-share", optarg, 0, MAX_FORK_SHARE);
			break;
		case O_MERGE:
			if (!strcmp(optarg, "none"))
				merge_mode = M_NONE;
			else if (!strcmp(optarg, "madvise"))
				merge_mode = M_MADVISE;
			else if (!strcmp(optarg, "prctl"))
				merge_mode = M_PRCTL;
			else if (!strcmp(optarg, "unmergeable"))
				merge_mode = M_UNMERGEABLE;
			else if (!strcmp(optarg, "optout"))
				merge_mode = M_OPTOUT;
			else
				bad_value("merge", optarg,
					  "none, madvise, prctl, unmergeable or optout");
			break;
		case O_HELP: usage(stdout); exit(0);
		default:
			fprintf(stderr, "Try 'dupalloc --help'.\n");
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dupalloc: unexpected argument '%s'\nTry 'dupalloc --help'.\n",
			argv[optind]);
		exit(2);
	}
	if (pct_dup + pct_zero + pct_near > 100) {
		fprintf(stderr, "dupalloc: --dup %d + --zero %d + --near %d = %d exceeds 100\n",
			pct_dup, pct_zero, pct_near, pct_dup + pct_zero + pct_near);
		exit(2);
	}
}

/* The page layout every process fills, and what merging can save. */
struct layout {
	size_t count[4];	/* pages of each kind, per process */
	size_t achievable;	/* zero pages, and duplicates beyond each content's first copy */
};

static int plan_layout(struct layout *lay)
{
	size_t distinct_dup = 0;
	unsigned char *seen = NULL;
	long ps = sysconf(_SC_PAGESIZE);

	page_size = ps > 0 ? (size_t)ps : 4096;
	words_per_page = page_size / sizeof(uint64_t);
	npages = (size_t)mib * 1024 * 1024 / page_size;
	memset(lay, 0, sizeof(*lay));
	kinds = malloc(npages);
	if (dup_set)
		seen = calloc((size_t)dup_set < npages ? (size_t)dup_set : npages, 1);
	if (!kinds || (dup_set && !seen)) {
		fprintf(stderr, "dupalloc: out of memory\n");
		return -1;
	}
	for (size_t i = 0; i < npages; i++) {
		kinds[i] = (unsigned char)kind_of_index(i);
		lay->count[kinds[i]]++;
		if (kinds[i] == K_DUP) {
			size_t cls = dup_set ? i % (size_t)dup_set : i;

			if (!seen) {
				distinct_dup++;
			} else if (!seen[cls]) {
				seen[cls] = 1;
				distinct_dup++;
			}
		}
	}
	free(seen);
	lay->achievable = lay->count[K_ZERO] * procs + lay->count[K_DUP] * procs - distinct_dup;
	return 0;
}

static void handle_sigusr1(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: interrupt sleeps and waits */
	sigaction(SIGUSR1, &sa, NULL);
}

/*
 * Fork the processes; each fills its region and writes a byte to the
 * returned pipe, then holds and verifies.  -1 if they could not be started.
 */
static int start_children(void)
{
	int pfd[2];

	parent_pid = getpid();
	if (pipe(pfd) != 0) {
		perror("dupalloc: pipe");
		return -1;
	}
	fflush(stdout);
	for (int p = 0; p < procs; p++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("dupalloc: fork");
			for (int q = 0; q < p; q++)
				kill(child_pids[q], SIGKILL);
			while (wait(NULL) > 0 || errno == EINTR)
				;
			return -1;
		}
		if (pid == 0) {
			close(pfd[0]);
			prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
			if (getppid() != parent_pid)
				_exit(1);
			int rc = run_child(p, pfd[1]);
			fflush(stdout);
			_exit(rc);
		}
		child_pids[p] = pid;
		nchildren = p + 1;
	}
	close(pfd[1]);
	return pfd[0];
}

/* How many processes wrote their "filled" byte before the pipe closed. */
static int wait_filled(int fill_fd)
{
	int filled = 0;

	while (filled < procs) {
		char buf[MAX_PROCS];
		ssize_t r = read(fill_fd, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		filled += (int)r;
	}
	close(fill_fd);
	return filled;
}

static void report_filled(const struct layout *lay, int filled)
{
	struct timespec ts;

	if (filled != procs) {
		fprintf(stderr, "dupalloc: only %d of %d processes filled their memory\n",
			filled, procs);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	pksmtb_event("filled", "t_ms=%lld procs=%d pages_total=%zu dup=%zu zero=%zu near=%zu "
		     "unique=%zu achievable=%zu",
		     (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, procs,
		     npages * procs, lay->count[K_DUP] * procs, lay->count[K_ZERO] * procs,
		     lay->count[K_NEAR] * procs, lay->count[K_UNIQUE] * procs, lay->achievable);
}

/* Wait for every process; the number that failed, or -1 if waiting failed. */
static int reap_children(void)
{
	int failures = 0;

	for (int left = procs; left > 0;) {
		int st, p;
		pid_t pid = waitpid(-1, &st, 0);

		if (pid < 0) {
			if (errno == EINTR)
				continue;
			perror("dupalloc: waitpid");
			return -1;
		}
		for (p = 0; p < procs && child_pids[p] != pid; p++)
			;
		if (p == procs)
			continue;
		child_pids[p] = -1;
		left--;
		if (WIFSIGNALED(st)) {
			fprintf(stderr, "dupalloc: proc %d pid %d killed by signal %d (%s)\n",
				p, (int)pid, WTERMSIG(st), strsignal(WTERMSIG(st)));
			failures++;
		} else if (WEXITSTATUS(st) != 0) {
			fprintf(stderr, "dupalloc: proc %d pid %d exited with status %d\n",
				p, (int)pid, WEXITSTATUS(st));
			failures++;
		}
	}
	return failures;
}

int main(int argc, char **argv)
{
	struct layout lay;
	int fill_fd, filled, failures;

	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (plan_layout(&lay))
		return 1;
	handle_sigusr1();
	fill_fd = start_children();
	if (fill_fd < 0)
		return 1;
	filled = wait_filled(fill_fd);
	report_filled(&lay, filled);
	failures = reap_children();
	if (failures < 0)
		return 1;
	if (failures == 0 && filled == procs)
		pksmtb_event("verified", "result=ok");
	else
		pksmtb_event("verified", "result=fail failures=%d", failures ? failures : 1);
	return failures || filled != procs ? 1 : 0;
}
