/*
 * sidechannel - the deduplication timing side channel across merge
 * domains: an attacker of one uid, memory cgroup and session classifies
 * which of N candidate pages a victim of another holds, by timing one
 * write to its own copy of each (a write to a merged page takes a
 * copy-on-write fault), for each merge_domain mode in turn.
 *
 * Each round (--rounds R per mode, the victim's secret drawn anew from
 * --seed, the mode and the round): the victim (uid 1001, cgroup
 * pksmtb-sc-0, a session of its own) holds each candidate with
 * probability 1/2, and --cal pairs of pages of its own; the attacker (uid
 * 1002, pksmtb-sc-1, another session) fills all N candidates, --cal pairs
 * of equal pages of its own (calibration: known to merge) and --cal unique
 * pages (known not to).  Once both processes' pairs map KSM pages (the
 * daemon has been through both: the parent, root, reads their frames) and
 * the attacker's merged candidates have held still for 1 s (whatever the
 * mode; under fake merging, once each of its candidates and unique pages
 * maps a KSM page), the attacker writes one word to each of its pages and times
 * the write.  If instead no pair has merged for a second while PKSM has
 * refused, since both processes filled their pages, at least as many
 * merges for their merge domain as the two hold pages
 * (/sys/kernel/mm/pksm/domain_refused), nothing of theirs will merge (a
 * process with no domain has every page refused at every visit) and the
 * writes are timed at once (settled=refused; else settled=pairs, or
 * settled=timeout after --wait S).  It guesses "held" for a candidate
 * whose time is nearer the calibration pairs' median than the unique
 * pages'.  The parent reads the
 * attacker's frames first: how many candidates really map a KSM page
 * shared with the victim (the signal the attacker times).
 *
 *   PKSMTB-EVENT sidechannel mode=M round=R pages=N held=H correct=C
 *       merged=K ksm=J cal_pairs=P cal_lone=U cal_merged_ns=A
 *       cal_unique_ns=B waited_ms=T settled=pairs|refused|timeout
 *
 * correct: candidates the attacker classified right (held and guessed
 * held, or not held and guessed not); merged: candidates of the attacker
 * mapping the very KSM page the victim's copy maps, just before the
 * writes; ksm: candidates of the attacker mapping any KSM page (more than
 * merged only under fake merging, /sys/kernel/mm/pksm/fake_merge, which
 * makes a candidate with no partner a KSM page of its own); cal_pairs:
 * the attacker's calibration pair pages mapping a KSM page then (of 2 * C:
 * merging inside its own domain), cal_lone: its unique calibration pages
 * mapping one (of C; 0 but under fake merging); the cal_*_ns: the medians.
 * A guess of "not held" everywhere scores about N/2.  Both processes check
 * every byte of their pages before they exit (status 3 if one changed).
 * fault_freed (--trace-frees 1; else -1): KSM pages the attacker's write
 * faults freed themselves, from the trace of the attacker's
 * kmem:mm_page_free and pksm:pksm_cow_break events while it writes (it
 * exits only after the parent has read them): the copy of the last
 * mapping of a KSM page frees it, unless fake merging leaves that free to
 * a work item (whose frees, in a kworker, are not counted).  The tracing
 * makes the writes slower: not for timing studies.
 *
 * Usage: sidechannel [--pages N] [--cal C] [--rounds R] [--seed S]
 *                    [--wait S] [--modes all,uid,cgroup,session]
 *                    [--trace-frees 0|1]
 * Exit status: 0 measured, 1 a failure, 2 bad usage.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#define PROG "sidechannel"
#include "util.h"

#define PAGE 4096UL
#define WORDS (PAGE / sizeof(uint64_t))
#define MODE_FILE "/sys/kernel/mm/pksm/merge_domain"
#define CG "pksmtb-sc"

static long opt_pages = 256, opt_cal = 32, opt_rounds = 1, opt_wait = 60, opt_trace_frees;
static uint64_t opt_seed = 5;
static char opt_modes[128] = "all,uid,cgroup,session";

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Page content @id (candidates 0..N-1, calibration and private ids above). */
static void fill(uint64_t *pg, uint64_t key, uint64_t id)
{
	for (size_t w = 0; w < WORDS; w++)
		pg[w] = mix(key ^ (id << 24) ^ w);
}

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static long median(long *v, long n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_long);
	return n ? v[n / 2] : 0;
}

/*
 * Once the parent has moved us into our cgroup (a byte on @go): a session
 * of our own, uid/gid @id; or exit.
 */
static void become(uid_t id, int go)
{
	char x;

	if (read(go, &x, 1) != 1 || setsid() < 0 || setgid(id) || setuid(id))
		_exit(1);
}

static int open_pagemap(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	return open(path, O_RDONLY);
}

/*
 * Pages of [base, +n pages) of @pid mapping a KSM page, or -1; if @other
 * is not 0, *@shared (in the same pass over the pages) is how many of them
 * map the very frame that page i of [obase, +n pages) of @other maps (a
 * KSM page the two share).
 */
static long ksm_count(pid_t pid, uintptr_t base, long n, pid_t other, uintptr_t obase,
		      long *shared)
{
	int pm = open_pagemap(pid), om = other ? open_pagemap(other) : -1;
	int kf = open("/proc/kpageflags", O_RDONLY);
	long k = 0, sh = 0;

	if (pm < 0 || kf < 0 || (other && om < 0)) {
		k = -1;
		goto out;
	}
	for (long i = 0; i < n; i++) {
		uint64_t pfn, flags, opfn = 0, oflags;
		int got = page_frame(pm, kf, base / PAGE + (uintptr_t)i, &pfn, &flags), ogot = 0;

		if (got > 0 && other)
			ogot = page_frame(om, kf, obase / PAGE + (uintptr_t)i, &opfn, &oflags);
		if (got < 0 || ogot < 0) {
			k = -1;
			break;
		}
		if (got && (flags & (1ULL << KPF_KSM))) {
			k++;
			sh += ogot && opfn == pfn;
		}
	}
out:
	if (pm >= 0)
		close(pm);
	if (om >= 0)
		close(om);
	if (kf >= 0)
		close(kf);
	if (shared)
		*shared = sh;
	return k;
}

static long ksm_pages(pid_t pid, uintptr_t base, long n)
{
	return ksm_count(pid, base, n, 0, 0, NULL);
}

/* Whether the page at @p holds content @id of @key, its word 0 plus @plus. */
static int intact(const uint64_t *p, uint64_t key, uint64_t id, uint64_t plus)
{
	for (size_t w = 0; w < WORDS; w++)
		if (p[w] != mix(key ^ (id << 24) ^ w) + (w ? 0 : plus))
			return 0;
	return 1;
}

struct region {
	pid_t pid;
	uintptr_t base;
};

static int held(uint64_t key, long i)
{
	return mix(key ^ 0x5eedULL ^ (uint64_t)i) & 1;
}

/* The victim: its held candidates and its own calibration pairs. */
static void __attribute__((noreturn)) victim(uint64_t key, int up, int down)
{
	long n = opt_pages + 2 * opt_cal;
	uint64_t *p = mmap(NULL, (size_t)n * PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct region r;
	char c;

	if (p == MAP_FAILED)
		_exit(1);
	for (long i = 0; i < opt_pages; i++)
		fill(p + i * WORDS, key, held(key, i) ? (uint64_t)i : (uint64_t)(1L << 30) + i);
	for (long i = 0; i < opt_cal; i++) {
		fill(p + (opt_pages + 2 * i) * WORDS, key, (1UL << 31) + i);
		fill(p + (opt_pages + 2 * i + 1) * WORDS, key, (1UL << 31) + i);
	}
	r.pid = getpid();
	r.base = (uintptr_t)p;
	if (write(up, &r, sizeof(r)) != sizeof(r) || read(down, &c, 1) != 1)
		_exit(1);
	/* Every byte as written, merged or not. */
	for (long i = 0; i < opt_pages; i++)
		if (!intact(p + i * WORDS, key,
			    held(key, i) ? (uint64_t)i : (uint64_t)(1L << 30) + i, 0))
			_exit(3);
	for (long i = 0; i < 2 * opt_cal; i++)
		if (!intact(p + (opt_pages + i) * WORDS, key, (1UL << 31) + i / 2, 0))
			_exit(3);
	_exit(0);
}

/*
 * The attacker: all candidates, cal pairs, cal unique pages; on the
 * parent's word, time one write to each and send back one guess byte a
 * candidate and the two calibration medians.
 */
static void __attribute__((noreturn)) attacker(uint64_t key, int up, int down)
{
	long n = opt_pages + 3 * opt_cal, *t, *cm, *cu, thr, mm, mu;
	uint64_t *p = mmap(NULL, (size_t)n * PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *guess;
	struct region r;
	char c;

	t = calloc((size_t)n, sizeof(*t));
	cm = calloc((size_t)opt_cal, sizeof(*cm));
	cu = calloc((size_t)opt_cal, sizeof(*cu));
	guess = calloc((size_t)opt_pages, 1);
	if (p == MAP_FAILED || !t || !cm || !cu || !guess)
		_exit(1);
	for (long i = 0; i < opt_pages; i++)
		fill(p + i * WORDS, key, (uint64_t)i);
	for (long i = 0; i < opt_cal; i++) {
		fill(p + (opt_pages + 2 * i) * WORDS, key, (1UL << 32) + i);
		fill(p + (opt_pages + 2 * i + 1) * WORDS, key, (1UL << 32) + i);
		fill(p + (opt_pages + 2 * opt_cal + i) * WORDS, key ^ 0xa77ac4e5ULL,
		     (1UL << 33) + i);
	}
	r.pid = getpid();
	r.base = (uintptr_t)p;
	if (write(up, &r, sizeof(r)) != sizeof(r) || read(down, &c, 1) != 1)
		_exit(1);
	for (long i = 0; i < n; i++) {
		volatile uint64_t *w = p + i * WORDS;
		long t0 = now_ns();

		*w = *w + 1;
		t[i] = now_ns() - t0;
	}
	/* Every byte as written, but the one word each write added to. */
	for (long i = 0; i < opt_pages; i++)
		if (!intact(p + i * WORDS, key, (uint64_t)i, 1))
			_exit(3);
	for (long i = 0; i < opt_cal; i++)
		if (!intact(p + (opt_pages + 2 * i) * WORDS, key, (1UL << 32) + i, 1) ||
		    !intact(p + (opt_pages + 2 * i + 1) * WORDS, key, (1UL << 32) + i, 1) ||
		    !intact(p + (opt_pages + 2 * opt_cal + i) * WORDS, key ^ 0xa77ac4e5ULL,
			    (1UL << 33) + i, 1))
			_exit(3);
	for (long i = 0; i < opt_cal; i++) {
		cm[i] = t[opt_pages + 2 * i];
		cu[i] = t[opt_pages + 2 * opt_cal + i];
	}
	mm = median(cm, opt_cal);
	mu = median(cu, opt_cal);
	thr = (mm + mu) / 2;
	for (long i = 0; i < opt_pages; i++)
		guess[i] = mm > mu ? t[i] > thr : t[i] < thr;
	if (write(up, guess, (size_t)opt_pages) != opt_pages ||
	    write(up, &mm, sizeof(mm)) != sizeof(mm) || write(up, &mu, sizeof(mu)) != sizeof(mu))
		_exit(1);
	/* Alive until the parent has read the trace: no exit's frees in it. */
	if (read(down, &c, 1) != 1)
		_exit(1);
	_exit(0);
}

static int read_full(int fd, void *buf, size_t n)
{
	char *b = buf;

	while (n) {
		ssize_t k = read(fd, b, n);

		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Start a process of role @role (0 victim, 1 attacker): its region. */
static int start(int role, uint64_t key, struct region *r, int *down_w, pid_t *pid)
{
	int up[2], down[2], go[2];

	if (pipe(up) || pipe(down) || pipe(go))
		return -1;
	*pid = fork();
	if (*pid < 0)
		return -1;
	if (!*pid) {
		close(up[0]);
		close(down[1]);
		close(go[1]);
		become((uid_t)(1001 + role), go[0]);
		if (role)
			attacker(key, up[1], down[0]);
		victim(key, up[1], down[0]);
	}
	close(up[1]);
	close(down[0]);
	close(go[0]);
	if (cgroup_enter(CG, role, *pid) || write(go[1], "g", 1) != 1)
		return -1;
	close(go[1]);
	if (read_full(up[0], r, sizeof(*r)))
		return -1;
	*down_w = down[1];
	return up[0];
}

static long now_ms(void)
{
	return now_ns() / 1000000;
}

/* /sys/kernel/mm/pksm/@name as a number, or -1. */
static long pksm_value(const char *name)
{
	char path[96];
	FILE *f;
	long v = -1;

	snprintf(path, sizeof(path), "/sys/kernel/mm/pksm/%s", name);
	f = fopen(path, "r");

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

#define TRACEFS "/sys/kernel/tracing"
static const char *const traced[] = { "kmem/mm_page_free", "pksm/pksm_cow_break" };

/* Record the two events for process @pid only (-1: tracefs unusable). */
static int trace_start(pid_t pid)
{
	char path[128], filter[32];
	int fd = open(TRACEFS "/trace", O_WRONLY | O_TRUNC);

	if (fd < 0)
		return -1;
	close(fd);
	snprintf(filter, sizeof(filter), "common_pid == %d", (int)pid);
	for (size_t i = 0; i < sizeof(traced) / sizeof(traced[0]); i++) {
		snprintf(path, sizeof(path), TRACEFS "/events/%s/filter", traced[i]);
		if (write_file(path, filter))
			return -1;
		snprintf(path, sizeof(path), TRACEFS "/events/%s/enable", traced[i]);
		if (write_file(path, "1"))
			return -1;
	}
	return write_file(TRACEFS "/tracing_on", "1");
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Stop the events and count the KSM pages the traced process freed
 * itself: pages its write faults copied (pksm_cow_break) that were freed
 * in its own context (mm_page_free), which can only be in those faults
 * since it has not exited.  -1 if the trace cannot be read.
 */
static long trace_fault_frees(void)
{
	char path[128], line[512];
	uint64_t *cow = NULL, *freed = NULL, pfn;
	size_t ncow = 0, nfreed = 0, cap = 0, fcap = 0;
	long k = 0;
	FILE *f;

	for (size_t i = 0; i < sizeof(traced) / sizeof(traced[0]); i++) {
		snprintf(path, sizeof(path), TRACEFS "/events/%s/enable", traced[i]);
		if (write_file(path, "0"))
			k = -1;
	}
	f = fopen(TRACEFS "/trace", "r");
	if (!f)
		return -1;
	while (k >= 0 && fgets(line, sizeof(line), f)) {
		const char *at = strstr(line, " pfn=0x");
		int is_cow = !!strstr(line, "pksm_cow_break:");

		if (!at || (!is_cow && !strstr(line, "mm_page_free:")))
			continue;
		pfn = strtoull(at + 7, NULL, 16);
		if (is_cow ? ncow == cap : nfreed == fcap) {
			size_t *c = is_cow ? &cap : &fcap;
			uint64_t **v = is_cow ? &cow : &freed;
			uint64_t *n = realloc(*v, (*c ? 2 * *c : 1024) * sizeof(*n));

			if (!n) {
				k = -1;
				break;
			}
			*c = *c ? 2 * *c : 1024;
			*v = n;
		}
		if (is_cow)
			cow[ncow++] = pfn;
		else
			freed[nfreed++] = pfn;
	}
	fclose(f);
	if (k >= 0 && ncow) {
		qsort(cow, ncow, sizeof(*cow), cmp_u64);
		for (size_t i = 0; i < nfreed; i++)
			k += !!bsearch(&freed[i], cow, ncow, sizeof(*cow), cmp_u64);
	}
	free(cow);
	free(freed);
	return k;
}

static int round_of(const char *mode, long round)
{
	uint64_t key = mix(opt_seed ^ ((uint64_t)round << 8) ^ (uint64_t)strlen(mode) ^
			   ((uint64_t)(unsigned char)mode[0] << 16));
	struct region vr, ar;
	int vdown, adown, vup, aup, status, ok = 1;
	long t0 = now_ms(), merged, ksm, pairs, lone, h = 0, correct = 0, mm = 0, mu = 0;
	long fault_freed = -1;
	long dr0, last_pairs = -1, still_since, filled = 2 * opt_pages + 5 * opt_cal;
	int fake = pksm_value("fake_merge") == 1;
	const char *settled = "timeout";
	unsigned char *guess = calloc((size_t)opt_pages, 1);
	pid_t vpid, apid;

	if (!guess)
		return -1;
	vup = start(0, key, &vr, &vdown, &vpid);
	aup = start(1, key, &ar, &adown, &apid);
	if (vup < 0 || aup < 0)
		return -1;
	/* Both processes' own pairs merged: the daemon has been through both. */
	dr0 = pksm_value("domain_refused");
	still_since = now_ms();
	for (;;) {
		long v = ksm_pages(vpid, vr.base + (uintptr_t)opt_pages * PAGE, 2 * opt_cal);
		long a = ksm_pages(apid, ar.base + (uintptr_t)opt_pages * PAGE, 2 * opt_cal);
		long dr = pksm_value("domain_refused");

		if (v < 0 || a < 0)
			return -1;
		if (v == 2 * opt_cal && a == 2 * opt_cal) {
			settled = "pairs";
			break;
		}
		if (v + a != last_pairs) {
			last_pairs = v + a;
			still_since = now_ms();
		}
		/* Nothing of theirs will merge: see the comment at the top. */
		if (dr0 >= 0 && dr >= 0 && dr - dr0 >= filled && now_ms() - still_since >= 1000) {
			settled = "refused";
			break;
		}
		if (now_ms() - t0 > opt_wait * 1000)
			break;
		usleep(100 * 1000);
	}
	/*
	 * Then until the attacker's merged candidates hold still for 1 s;
	 * under fake merging, once every candidate and unique calibration
	 * page of the attacker is a KSM page (each one is to be, merged or
	 * alone).
	 */
	for (long last = -1, still = 0;
	     still < 4 && strcmp(settled, "refused") && now_ms() - t0 <= opt_wait * 1000;) {
		usleep(250 * 1000);
		merged = ksm_pages(apid, ar.base, opt_pages);
		lone = ksm_pages(apid, ar.base + (uintptr_t)(opt_pages + 2 * opt_cal) * PAGE,
				 opt_cal);
		if (merged < 0 || lone < 0)
			return -1;
		still = merged == last ? still + 1 : 0;
		if (fake && (merged < opt_pages || lone < opt_cal))
			still = 0;
		last = merged;
	}
	ksm = ksm_count(apid, ar.base, opt_pages, vpid, vr.base, &merged);
	pairs = ksm_pages(apid, ar.base + (uintptr_t)opt_pages * PAGE, 2 * opt_cal);
	lone = ksm_pages(apid, ar.base + (uintptr_t)(opt_pages + 2 * opt_cal) * PAGE, opt_cal);
	if (ksm < 0 || merged < 0 || pairs < 0 || lone < 0)
		return -1;
	if (opt_trace_frees && trace_start(apid)) {
		fprintf(stderr, PROG ": cannot trace through " TRACEFS "\n");
		return -1;
	}
	if (write(adown, "w", 1) != 1 || read_full(aup, guess, (size_t)opt_pages) ||
	    read_full(aup, &mm, sizeof(mm)) || read_full(aup, &mu, sizeof(mu)))
		ok = 0;
	if (opt_trace_frees && (fault_freed = trace_fault_frees()) < 0)
		ok = 0;
	if (write(adown, "q", 1) != 1)
		ok = 0;
	if (write(vdown, "x", 1) != 1)
		ok = 0;
	for (long i = 0; i < opt_pages; i++) {
		h += held(key, i);
		correct += guess[i] == held(key, i);
	}
	while (waitpid(vpid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		ok = 0;
	while (waitpid(apid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		ok = 0;
	close(vup);
	close(aup);
	close(vdown);
	close(adown);
	free(guess);
	if (!ok)
		return -1;
	pksmtb_event("sidechannel", "mode=%s round=%ld pages=%ld held=%ld correct=%ld merged=%ld "
		     "ksm=%ld cal_pairs=%ld cal_lone=%ld cal_merged_ns=%ld cal_unique_ns=%ld "
		     "waited_ms=%ld settled=%s fault_freed=%ld",
		     mode, round, opt_pages, h, correct, merged, ksm, pairs, lone, mm, mu,
		     now_ms() - t0, settled, fault_freed);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pages", required_argument, NULL, 'n' },
		{ "cal", required_argument, NULL, 'c' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 's' },
		{ "wait", required_argument, NULL, 'w' },
		{ "modes", required_argument, NULL, 'm' },
		{ "trace-frees", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	char *save, *m;
	int c, failed = 0;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': opt_pages = parse_long("pages", optarg, 8, 65536); break;
		case 'c': opt_cal = parse_long("cal", optarg, 4, 1024); break;
		case 'r': opt_rounds = parse_long("rounds", optarg, 1, 100); break;
		case 's': opt_seed = (uint64_t)parse_long("seed", optarg, 0, 1L << 40); break;
		case 'w': opt_wait = parse_long("wait", optarg, 1, 600); break;
		case 't': opt_trace_frees = parse_long("trace-frees", optarg, 0, 1); break;
		case 'm':
			if (strlen(optarg) >= sizeof(opt_modes))
				bad_value("modes", optarg, "a shorter list");
			strcpy(opt_modes, optarg);
			break;
		default:
			fprintf(stderr, "usage: " PROG " [--pages N] [--cal C] [--rounds R] "
				"[--seed S] [--wait S] [--modes all,uid,cgroup,session] "
				"[--trace-frees 0|1]\n");
			return 2;
		}
	}
	if (optind != argc)
		bad_value("(operand)", argv[optind], "no operands");
	if (cgroups_setup(CG, 2))
		return 1;
	for (m = strtok_r(opt_modes, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
		if (write_file(MODE_FILE, m)) {
			fprintf(stderr, PROG ": writing %s to " MODE_FILE ": %s\n", m,
				strerror(errno));
			return 1;
		}
		for (long r = 0; r < opt_rounds; r++)
			if (round_of(m, r))
				failed = 1;
	}
	if (write_file(MODE_FILE, "all"))
		failed = 1;
	return failed;
}
