/*
 * domains - PKSM's merge domains, checked from the frames: processes of
 * several uids, memory cgroups and sessions hold the same content; for
 * each merge_domain mode in turn (written to /sys/kernel/mm/pksm/
 * merge_domain while they run), the program waits for merging to settle
 * and then reads every worker's frames through /proc/PID/pagemap and
 * /proc/kpageflags: no frame may be mapped by workers of two domains of
 * the mode, and the pages of each domain must still merge among
 * themselves.
 *
 * Groups: --groups G (2..8) group leaders, each moved into a cgroup of its
 * own (/sys/fs/cgroup/pksmtb-domains-N, cgroup2 mounted and the memory
 * controller enabled if need be), made a session leader (setsid()) and
 * given a uid/gid; it then forks --procs P workers, which inherit all
 * three.  Group 0 and the last group share uid 1000 (so uid mode lets them
 * merge while the other modes do not); every other group has a uid of its
 * own (1000 + N).  Every worker of every group fills --pages N pages with
 * the same content (page I: a word stream keyed by --seed and I) and
 * --zero Z zero pages, and holds them until told to verify and exit; it
 * runs a second, idle thread (an mm of two tasks, to be counted once).
 * Each group's domains:
 *
 *   PKSMTB-EVENT group g=G uid=U cgroup=ID session=S
 *
 * (cgroup: the inode number of its directory, as PKSM names the domain).
 *
 * For each mode of --modes (a comma list of all, uid, cgroup, session;
 * default all,uid,cgroup,session,all) the parent (root) writes the mode and
 * waits for merging to settle: until every worker's content pages map KSM
 * pages and its zero pages the zero page (settled=merged); or until
 * nothing has merged for a second while PKSM has refused, since the mode
 * was written, at least as many merges for their merge domain as the
 * workers hold content pages (/sys/kernel/mm/pksm/domain_refused:
 * settled=refused): a page whose processes have no domain, or of several
 * domains, is refused at every visit of pksmd's and never merges, while a
 * kernel that gives them their domains refuses only the few pages a fork
 * left shared across domains; or until --wait S seconds pass
 * (settled=timeout).  Then it reports
 *
 *   PKSMTB-EVENT domains mode=M groups=G procs=P pages=N domains=D
 *       ksm=K frames=F cross=X cross_uid=XU cross_cgroup=XC
 *       cross_session=XS same=S zero=Z zero_groups=ZG zero_merges=ZM
 *       waited_ms=T refused=R settled=merged|refused|timeout
 *
 * ksm: worker content pages mapping a KSM page (of G*P*N); frames: the
 * distinct KSM frames they map; cross_uid, cross_cgroup, cross_session:
 * KSM frames mapped by workers of two or more uids, cgroups or sessions
 * (what each isolating mode forbids); cross: the one of mode M (0 for
 * all, which has one domain); same: KSM frames shared by two groups of
 * one domain of mode M (uid mode: groups 0 and G-1); zero: zero pages
 * mapping the zero page; zero_groups: groups whose workers map it
 * (merging with the zero page is allowed across domains); zero_merges:
 * what /sys/kernel/mm/pksm/zero_merges grew by during the mode (a change
 * of mode leaves zero-page merges alone: nothing to merge again); refused:
 * what domain_refused grew by while the program waited.  The domains of
 * a mode are the uids, cgroups or sessions of the groups; all has one.
 *
 * and, for each line of /sys/kernel/debug/pksm/domains (each domain's KSM
 * pages and zero-page merges, as PKSM counts them),
 *
 *   PKSMTB-EVENT domain_stat mode=M domain=KIND:ID shared=S sharing=H zero=Z
 *
 * and what the processes say of their own zero-page merges
 * (/proc/PID/ksm_stat's ksm_zero_pages), summed over each group's leader
 * and workers, and for a process of zero pages only (--zero pages, the program's
 * uid and cgroup, a session of its own, so that its session's line has
 * zero pages and no KSM page):
 *
 *   PKSMTB-EVENT group_zero mode=M g=G zero=Z
 *   PKSMTB-EVENT zero_only mode=M pid=P zero=Z tries=N
 *
 * After the last mode, the parent writes --cow-pages W of the first
 * worker's content pages (KSM pages, if the mode merged them) through
 * process_vm_writev(), each with the word it holds, and reads cow_ksm in
 * every group's memory.stat before and after: the copies belong to the
 * cgroup of the process whose page was written, not of the writer:
 *
 *   PKSMTB-EVENT cow_stat group=G written=W before=B after=A still=S
 *       before_ms=T1 after_ms=T2
 *
 * (written: W for the first worker's group, 0 for the others; before and
 * after -1 if memory.stat has no cow_ksm; still 2 if the counts stood
 * still for 4 s before the writes; the time waited before and after.)
 * At the end every worker verifies its pages word by word:
 *   PKSMTB-EVENT verified result=ok | result=fail failures=F
 * Exit status: 0 verified, 1 a failure (or a setup step failed), 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "domains"
#include "util.h"

#define MAX_GROUPS 8
#define MAX_PROCS 8
#define MODE_FILE "/sys/kernel/mm/pksm/merge_domain"

static long opt_groups = 3, opt_procs = 2, opt_pages = 256, opt_zero = 32;
static long opt_wait = 60, opt_cow_pages = 16;
static uint64_t opt_seed = 11;
static char opt_modes[128] = "all,uid,cgroup,session,all";

struct worker {
	pid_t pid;
	uintptr_t base;
	int group;
};

static struct worker workers[MAX_GROUPS * MAX_PROCS];
static int nworkers;
static pid_t leaders[MAX_GROUPS], zero_only = -1;

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t word_of(long page, size_t w)
{
	return splitmix(opt_seed * 0x100000001b3ULL ^ ((uint64_t)page << 20) ^ w);
}

static size_t page_size(void)
{
	long ps = sysconf(_SC_PAGESIZE);

	return ps > 0 ? (size_t)ps : 4096;
}

static uid_t group_uid(int g)
{
	return g == opt_groups - 1 ? 1000 : (uid_t)(1000 + g);
}

/* A worker's second thread: idle until the worker exits. */
static void *idle_thread(void *arg)
{
	for (;;)
		pause();
	return arg;
}

/* The worker: fill, report the region to the parent, hold, verify. */
static void __attribute__((noreturn)) worker(int group, int wfd, int rfd)
{
	struct worker rec;
	size_t ps = page_size(), words = ps / 8;
	long n = opt_pages + opt_zero, failures = 0;
	uint64_t *p = mmap(NULL, (size_t)n * ps, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t base;
	pthread_t idle;
	char c;

	if (p == MAP_FAILED || pthread_create(&idle, NULL, idle_thread, NULL))
		_exit(1);
	for (long i = 0; i < n; i++) {
		uint64_t *pg = p + (size_t)i * words;

		for (size_t w = 0; w < words; w++)
			pg[w] = i < opt_pages ? word_of(i, w) : 0;
	}
	base = (uintptr_t)p;
	rec.pid = getpid();
	rec.base = base;
	rec.group = group;
	/* One write of a few bytes: atomic on a pipe, whoever else writes. */
	if (write(wfd, &rec, sizeof(rec)) != sizeof(rec))
		_exit(1);
	/* Hold until the parent says verify (a byte) or goes away (EOF). */
	if (read(rfd, &c, 1) != 1)
		_exit(1);
	for (long i = 0; i < n; i++) {
		uint64_t *pg = p + (size_t)i * words;

		for (size_t w = 0; w < words; w++)
			if (pg[w] != (i < opt_pages ? word_of(i, w) : 0)) {
				failures++;
				break;
			}
	}
	_exit(failures ? 1 : 0);
}

static int mode_index(const char *m)
{
	static const char *const names[] = { "all", "uid", "cgroup", "session" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(m, names[i]))
			return i;
	return -1;
}

/* The domain of group @g under mode @mode (0 all, 1 uid, 2 cgroup, 3 session). */
static long group_domain(int g, int mode)
{
	switch (mode) {
	case 1:
		return group_uid(g);
	case 2:
	case 3:
		return g;	/* a cgroup and a session of its own */
	default:
		return 0;
	}
}

struct frame {
	uint64_t pfn;
	int group;
};

static int cmp_frame(const void *a, const void *b)
{
	const struct frame *x = a, *y = b;

	if (x->pfn != y->pfn)
		return x->pfn < y->pfn ? -1 : 1;
	return x->group - y->group;
}

/*
 * Read every worker's content and zero pages: *ksm content pages mapping a
 * KSM page, their frames in @fr (*nfr), *zero pages mapping the zero page
 * and *zgroups the groups whose workers map it (a bit each).
 */
static int read_frames(struct frame *fr, long *nfr, long *ksm, long *zero,
		       unsigned int *zgroups)
{
	size_t ps = page_size();
	int kf = open("/proc/kpageflags", O_RDONLY);

	*nfr = *ksm = *zero = 0;
	*zgroups = 0;
	if (kf < 0)
		return -1;
	for (int i = 0; i < nworkers; i++) {
		char path[64];
		int pm;

		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)workers[i].pid);
		pm = open(path, O_RDONLY);
		if (pm < 0) {
			close(kf);
			return -1;
		}
		for (long pg = 0; pg < opt_pages + opt_zero; pg++) {
			uint64_t flags, pfn;
			int got = page_frame(pm, kf, workers[i].base / ps + (uintptr_t)pg,
					     &pfn, &flags);

			if (got < 0)
				goto fail;
			if (!got)
				continue;
			if (pg >= opt_pages) {
				if (flags & (1ULL << KPF_ZERO_PAGE)) {
					(*zero)++;
					*zgroups |= 1u << workers[i].group;
				}
				continue;
			}
			if (!(flags & (1ULL << KPF_KSM)))
				continue;
			(*ksm)++;
			fr[*nfr].pfn = pfn;
			fr[*nfr].group = workers[i].group;
			(*nfr)++;
		}
		close(pm);
		continue;
fail:
		close(pm);
		close(kf);
		return -1;
	}
	close(kf);
	qsort(fr, (size_t)*nfr, sizeof(*fr), cmp_frame);
	return 0;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Do the groups of @groups (a bit each) span two domains of @mode? */
static int spans_domains(unsigned int groups, int mode)
{
	for (int a = 0; a < opt_groups; a++)
		for (int b = a + 1; b < opt_groups; b++)
			if ((groups & (1u << a)) && (groups & (1u << b)) &&
			    group_domain(a, mode) != group_domain(b, mode))
				return 1;
	return 0;
}

/* /sys/kernel/mm/pksm/NAME, or -1. */
static long pksm_counter(const char *name)
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

static long zero_merges(void)
{
	return pksm_counter("zero_merges");
}

/* The value of @key in the "key value" lines of @path, or -1. */
static long file_key(const char *path, const char *key)
{
	char k[64];
	long v = -1, x;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %ld", k, &x) == 2)
		if (!strcmp(k, key))
			v = x;
	fclose(f);
	return v;
}

/* ksm_zero_pages in /proc/@pid/ksm_stat, or -1. */
static long ksm_zero_pages(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", (int)pid);
	return file_key(path, "ksm_zero_pages");
}

/*
 * What each group's processes (@own[g]) and the zero-only one (@own[groups])
 * say of their own zero-page merges; -1 where one could not be read.
 */
static void own_zero_pages(long *own)
{
	for (int g = 0; g < opt_groups; g++) {
		long sum = ksm_zero_pages(leaders[g]), z;

		for (int i = 0; i < nworkers && sum >= 0; i++)
			if (workers[i].group == g) {
				z = ksm_zero_pages(workers[i].pid);
				sum = z < 0 ? -1 : sum + z;
			}
		own[g] = sum;
	}
	own[opt_groups] = ksm_zero_pages(zero_only);
}

/* A process of --zero zero pages only, in a session of its own, until killed. */
static pid_t start_zero_only(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		size_t ps = page_size();
		char *p;

		/* gone with the program, however it ends */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || setsid() < 0)
			_exit(1);
		p = mmap(NULL, (size_t)opt_zero * ps, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			_exit(1);
		for (long i = 0; i < opt_zero; i++)
			p[(size_t)i * ps] = 0;	/* a page of its own, all zero */
		for (;;)
			pause();
	}
	return pid;
}

/*
 * Each line of PKSM's per-domain figures as an event, and what the
 * processes say of their zero pages: read before and after the file, and
 * all again (up to five times) if pksmd merged one meanwhile.
 */
static void domain_stats(const char *mode)
{
	long own[MAX_GROUPS + 1] = { 0 }, own2[MAX_GROUPS + 1] = { 0 };
	static char text[65536];
	unsigned long shared, sharing;
	unsigned long long id;
	int tries = 0, n, off;
	char kind[16];
	size_t len;
	long zero;
	FILE *f;

	do {
		own_zero_pages(own);
		f = fopen("/sys/kernel/debug/pksm/domains", "r");
		if (!f) {
			pksmtb_event("domain_stat", "mode=%s error=%d", mode, errno);
			return;
		}
		len = fread(text, 1, sizeof(text) - 1, f);
		text[len] = 0;
		fclose(f);
		own_zero_pages(own2);
	} while (memcmp(own, own2, sizeof(own)) && ++tries < 5);
	for (off = 0; sscanf(text + off, "%15s %llu pages_shared %lu pages_sharing %lu "
			     "zero_pages %ld%n", kind, &id, &shared, &sharing, &zero, &n) == 5;
	     off += n)
		pksmtb_event("domain_stat", "mode=%s domain=%s:%llu shared=%lu sharing=%lu zero=%ld",
			     mode, kind, id, shared, sharing, zero);
	for (int g = 0; g < opt_groups; g++)
		pksmtb_event("group_zero", "mode=%s g=%d zero=%ld", mode, g, own2[g]);
	pksmtb_event("zero_only", "mode=%s pid=%d zero=%ld tries=%d", mode, (int)zero_only,
		     own2[opt_groups], tries + 1);
}

/* cow_ksm in group @g's cgroup's memory.stat, or -1. */
static long group_cow_ksm(int g)
{
	char path[128];

	snprintf(path, sizeof(path), CGROOT "/pksmtb-domains-%d/memory.stat", g);
	return file_key(path, "cow_ksm");
}

/*
 * Write the first opt_cow_pages content pages of the first worker, each
 * with the word it holds (a copy-on-write fault in the worker's mm if the
 * page is a KSM page, nothing changed), and report every group's cow_ksm
 * around it.  0, or -1 if a write failed.
 */
static int cow_stats(void)
{
	long before[MAX_GROUPS], n = opt_cow_pages < opt_pages ? opt_cow_pages : opt_pages;
	size_t ps = page_size();
	int wg = workers[0].group, err = 0, still = 0;
	long t0 = now_ms(), t1;

	/*
	 * memory.stat is refreshed every 2 s or so (deferrable work: when a
	 * CPU ticks) or after enough updates: before the writes, wait until
	 * it has stood still for 4 s (the last mode's unmerge counted); after
	 * them, until the writer's group has risen by what was written (at
	 * most 20 s), then 3 s more for anything that would follow.
	 */
	for (int tries = 0; tries < 10 && still < 2; tries++) {
		int same = 1;

		for (int g = 0; g < opt_groups; g++) {
			long v = group_cow_ksm(g);

			same &= tries > 0 && v == before[g];
			before[g] = v;
		}
		still = same ? still + 1 : 0;
		sleep(still < 2 ? 2 : 0);
	}
	for (long i = 0; i < n; i++) {
		uint64_t word = word_of(i, 0);
		struct iovec local = { .iov_base = &word, .iov_len = sizeof(word) };
		struct iovec remote = {
			.iov_base = (void *)(workers[0].base + (uintptr_t)i * ps),
			.iov_len = sizeof(word),
		};

		if (process_vm_writev(workers[0].pid, &local, 1, &remote, 1, 0) != sizeof(word)) {
			fprintf(stderr, PROG ": writing worker %d: %s\n", (int)workers[0].pid,
				strerror(errno));
			err = -1;
			break;
		}
	}
	t1 = now_ms();
	for (int tries = 0; tries < 40 && before[wg] >= 0 &&
			    group_cow_ksm(wg) - before[wg] < n; tries++)
		usleep(500 * 1000);
	sleep(3);
	/* still: 2 if the counts stood still before the writes (else 0, 1) */
	for (int g = 0; g < opt_groups; g++)
		pksmtb_event("cow_stat", "group=%d written=%ld before=%ld after=%ld still=%d "
			     "before_ms=%ld after_ms=%ld", g, g == wg ? n : 0L, before[g],
			     group_cow_ksm(g), still, t1 - t0, now_ms() - t1);
	return err;
}

/* One mode: write it, wait for merging, judge the frames. */
static int run_mode(const char *name, struct frame *fr)
{
	long zm0 = zero_merges(), zm1;
	int mode = mode_index(name), ndom = 0;
	long doms[MAX_GROUPS], nfr, ksm, zero, frames, same, t0 = now_ms();
	long cross[4] = { 0 };
	long want = (long)nworkers * opt_pages;
	long dr0, refused = -1, last_ksm = -1, last_zero = -1, still_since = t0;
	const char *settled = "timeout";
	unsigned int zgroups;

	if (write_file(MODE_FILE, name)) {
		fprintf(stderr, PROG ": writing %s to " MODE_FILE ": %s\n", name, strerror(errno));
		return -1;
	}
	dr0 = pksm_counter("domain_refused");
	for (int g = 0; g < opt_groups; g++) {
		long d = group_domain(g, mode);
		int k;

		for (k = 0; k < ndom && doms[k] != d; k++)
			;
		if (k == ndom)
			doms[ndom++] = d;
	}
	for (;;) {
		long dr = pksm_counter("domain_refused");

		if (read_frames(fr, &nfr, &ksm, &zero, &zgroups))
			return -1;
		refused = dr0 < 0 || dr < 0 ? -1 : dr - dr0;
		if (ksm == want && zero == (long)nworkers * opt_zero) {
			settled = "merged";
			break;
		}
		if (ksm != last_ksm || zero != last_zero) {
			last_ksm = ksm;
			last_zero = zero;
			still_since = now_ms();
		}
		/* Nothing will merge: see the comment at the top. */
		if (refused >= want && now_ms() - still_since >= 1000) {
			settled = "refused";
			break;
		}
		if (now_ms() - t0 > opt_wait * 1000)
			break;
		usleep(200 * 1000);
	}
	/* Settle: what pksmd does next must not change the verdict. */
	usleep(500 * 1000);
	if (read_frames(fr, &nfr, &ksm, &zero, &zgroups))
		return -1;
	zm1 = zero_merges();
	domain_stats(name);
	frames = same = 0;
	for (long i = 0; i < nfr;) {
		long j = i;
		unsigned int groups = 0;
		int shared_groups = 0;

		while (j < nfr && fr[j].pfn == fr[i].pfn)
			groups |= 1u << fr[j++].group;
		for (int v = 1; v < 4; v++)
			cross[v] += spans_domains(groups, v);
		for (int a = 0; a < opt_groups; a++)
			for (int b = a + 1; b < opt_groups; b++)
				if ((groups & (1u << a)) && (groups & (1u << b)) &&
				    group_domain(a, mode) == group_domain(b, mode))
					shared_groups = 1;
		frames++;
		same += shared_groups;
		i = j;
	}
	pksmtb_event("domains", "mode=%s groups=%ld procs=%ld pages=%ld domains=%d ksm=%ld "
		     "frames=%ld cross=%ld cross_uid=%ld cross_cgroup=%ld cross_session=%ld "
		     "same=%ld zero=%ld zero_groups=%d zero_merges=%ld waited_ms=%ld refused=%ld "
		     "settled=%s", name,
		     opt_groups, opt_procs, opt_pages, ndom, ksm, frames, cross[mode], cross[1],
		     cross[2], cross[3], same, zero, __builtin_popcount(zgroups),
		     zm0 < 0 || zm1 < 0 ? -1 : zm1 - zm0, now_ms() - t0, refused, settled);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [--groups G] [--procs P] [--pages N] [--zero Z] [--seed S]\n"
		   "               [--wait S] [--modes all,uid,cgroup,session,...] [--cow-pages W]\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "groups", required_argument, NULL, 'g' },
		{ "procs", required_argument, NULL, 'p' },
		{ "pages", required_argument, NULL, 'n' },
		{ "zero", required_argument, NULL, 'z' },
		{ "seed", required_argument, NULL, 's' },
		{ "wait", required_argument, NULL, 'w' },
		{ "modes", required_argument, NULL, 'm' },
		{ "cow-pages", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int up[2], down[2], c, failed = 0, status;
	struct frame *fr;
	char *save, *m;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'g': opt_groups = parse_long("groups", optarg, 2, MAX_GROUPS); break;
		case 'p': opt_procs = parse_long("procs", optarg, 1, MAX_PROCS); break;
		case 'n': opt_pages = parse_long("pages", optarg, 1, 65536); break;
		case 'z': opt_zero = parse_long("zero", optarg, 0, 65536); break;
		case 's': opt_seed = (uint64_t)parse_long("seed", optarg, 0, 1L << 40); break;
		case 'w': opt_wait = parse_long("wait", optarg, 1, 600); break;
		case 'c': opt_cow_pages = parse_long("cow-pages", optarg, 0, 65536); break;
		case 'm':
			if (strlen(optarg) >= sizeof(opt_modes))
				bad_value("modes", optarg, "a shorter list");
			strcpy(opt_modes, optarg);
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	{
		char tmp[sizeof(opt_modes)];

		strcpy(tmp, opt_modes);
		for (m = strtok_r(tmp, ",", &save); m; m = strtok_r(NULL, ",", &save))
			if (mode_index(m) < 0)
				bad_value("modes", opt_modes, "a list of all, uid, cgroup, session");
	}
	if (cgroups_setup("pksmtb-domains", (int)opt_groups))
		return 1;
	if (pipe(up) || pipe(down))
		return 1;
	zero_only = start_zero_only();
	if (zero_only < 0)
		return 1;
	for (int g = 0; g < opt_groups; g++) {
		int go[2];
		pid_t leader;

		if (pipe(go))
			return 1;
		leader = fork();
		if (leader < 0)
			return 1;
		if (!leader) {
			char x;

			close(go[1]);
			/* Wait to be moved into the group's cgroup, then the rest. */
			if (read(go[0], &x, 1) != 1 || setsid() < 0 ||
			    setgid(group_uid(g)) || setuid(group_uid(g)))
				_exit(1);
			for (int p = 0; p < opt_procs; p++) {
				pid_t w = fork();

				if (w < 0)
					_exit(1);
				if (!w)
					worker(g, up[1], down[0]);
			}
			while (wait(&status) > 0)
				if (!WIFEXITED(status) || WEXITSTATUS(status))
					failed++;
			_exit(failed ? 1 : 0);
		}
		close(go[0]);
		leaders[g] = leader;
		if (cgroup_enter("pksmtb-domains", g, leader))
			return 1;
		{
			char path[128];
			struct stat st;

			snprintf(path, sizeof(path), CGROOT "/pksmtb-domains-%d", g);
			if (stat(path, &st))
				return 1;
			/* the leader calls setsid(): its pid is the session's id */
			pksmtb_event("group", "g=%d uid=%d cgroup=%llu session=%d", g,
				     (int)group_uid(g), (unsigned long long)st.st_ino, (int)leader);
		}
		if (write(go[1], "g", 1) != 1)
			return 1;
		close(go[1]);
	}
	close(down[0]);
	close(up[1]);
	/* Every worker says where its region is once it is filled. */
	while (nworkers < opt_groups * opt_procs) {
		struct worker rec;

		if (read(up[0], &rec, sizeof(rec)) != sizeof(rec)) {
			fprintf(stderr, PROG ": a worker died before filling its pages\n");
			return 1;
		}
		workers[nworkers++] = rec;
	}
	fr = calloc((size_t)nworkers * (size_t)opt_pages, sizeof(*fr));
	if (!fr)
		return 1;
	for (m = strtok_r(opt_modes, ",", &save); m; m = strtok_r(NULL, ",", &save))
		if (run_mode(m, fr))
			failed = 1;
	if (cow_stats())
		failed = 1;
	/* Back to one domain, then verify: a byte to each worker, then EOF. */
	if (write_file(MODE_FILE, "all"))
		failed = 1;
	for (int i = 0; i < nworkers; i++)
		if (write(down[1], "v", 1) != 1)
			failed = 1;
	close(down[1]);
	kill(zero_only, SIGKILL);
	if (waitpid(zero_only, &status, 0) != zero_only)
		failed = 1;
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			failed = 1;
	if (failed)
		pksmtb_event("verified", "result=fail failures=%d", failed);
	else
		pksmtb_event("verified", "result=ok");
	return failed ? 1 : 0;
}
