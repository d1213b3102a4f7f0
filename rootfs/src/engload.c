/*
 * engload - page contents for the engine benchmark (harness/bench_engine.py)
 * that dupalloc does not make, and a change at a known time.
 *
 * The parent forks N processes; each maps its own region of P pages and
 * fills it with one kind of content:
 *
 *   sparse   zero but for one 64-bit word (freshly initialised structures):
 *            page i holds i+1 at word i % 512, so every page of a process
 *            differs from the others; with --twins every process has the
 *            same pages (each has a twin to merge with), without, the
 *            process number is mixed into the word and nothing is equal.
 *   unique   a splitmix64 stream keyed by process and page: nothing equal.
 *
 * --change-at S: S seconds after the fill, process 0 rewrites one word of
 * its first --change pages (a page that changed while the daemon holds it
 * in its unstable tree) and the parent prints the time.  Every process
 * verifies its pages before it exits.
 *
 * --merge prctl opts the processes in for upstream KSM
 * (PR_SET_MEMORY_MERGE=1, before the regions are mapped).
 *
 * Protocol lines on stdout:
 *   PKSMTB-EVENT filled t_ms=T procs=N pages_total=..      (parent)
 *   PKSMTB-EVENT changed t_ms=T pages=C                     (parent)
 *   PKSMTB-EVENT verified result=ok | result=fail failures=F
 * t_ms is CLOCK_MONOTONIC in milliseconds, the sampler's clock.
 *
 * Usage: engload --kind sparse|unique [--procs N] [--pages P] [--twins]
 *                [--hold SEC] [--change-at SEC] [--change C] [--merge prctl]
 * Exit status: 0 all verified, 1 failure, 2 bad usage.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "engload"
#include "util.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

#define PAGE 4096UL
#define WORDS (PAGE / 8)
#define GOLDEN 0x9e3779b97f4a7c15ULL
#define MAX_PROCS 64

static int procs = 1, twins, merge_prctl, sparse = 1;
static long npages = 1024, nchange = 8;
static double hold_sec = 10.0, change_at = -1.0;

static uint64_t fmix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_sec(double s)
{
	struct timespec ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts))
		;
}

/* Expected word j of page i of process p (changed: after --change-at). */
static uint64_t word(int p, long i, size_t j, int changed)
{
	uint64_t v;

	if (sparse) {
		v = 0;
		if (j == (size_t)i % WORDS)
			v = (uint64_t)i + 1 + (twins ? 0 : ((uint64_t)p << 40));
	} else {
		v = fmix(fmix(((uint64_t)p << 40) ^ (uint64_t)i) + (j + 1) * GOLDEN);
	}
	if (changed && j == 7)
		v ^= 0x5a5a5a5a5a5a5a5aULL;
	return v;
}

static int child(int p, int ready_fd, int go_fd)
{
	size_t len = (size_t)npages * PAGE;
	uint64_t *base;
	long bad = 0;
	int did_change = 0;
	char c = 1;

	if (merge_prctl && prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0)) {
		perror("engload: prctl(PR_SET_MEMORY_MERGE, 1)");
		return 1;
	}
	base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		perror("engload: mmap");
		return 1;
	}
	for (long i = 0; i < npages; i++) {
		uint64_t *pg = base + (size_t)i * WORDS;

		for (size_t j = 0; j < WORDS; j++) {
			uint64_t v = word(p, i, j, 0);

			if (v || j == 0)
				pg[j] = v;	/* a zero page still gets faulted in */
		}
	}
	if (write(ready_fd, &c, 1) != 1)
		return 1;
	/* The parent says when to change (go byte 1) and when to finish (0). */
	for (;;) {
		if (read(go_fd, &c, 1) != 1)
			return 1;
		if (c == 0)
			break;
		did_change = p == 0;
		if (p == 0)
			for (long i = 0; i < nchange && i < npages; i++)
				base[(size_t)i * WORDS + 7] ^= 0x5a5a5a5a5a5a5a5aULL;
		if (write(ready_fd, &c, 1) != 1)
			return 1;
	}
	for (long i = 0; i < npages; i++) {
		int changed = did_change && i < nchange;

		for (size_t j = 0; j < WORDS; j++)
			if (base[(size_t)i * WORDS + j] != word(p, i, j, changed)) {
				if (bad < 5)
					fprintf(stderr, "engload: MISMATCH proc %d page %ld word %zu\n",
						p, i, j);
				bad++;
				break;
			}
	}
	return bad ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: engload --kind sparse|unique [--procs N] [--pages P] [--twins]\n"
		"               [--hold SEC] [--change-at SEC] [--change C] [--merge prctl]\n"
		"  --kind K        sparse (zero but for one word) or unique (default sparse)\n"
		"  --procs N       processes, 1..64 (default 1)\n"
		"  --pages P       pages per process (default 1024)\n"
		"  --twins         sparse: the same pages in every process\n"
		"  --hold SEC      seconds to hold after filling (default 10)\n"
		"  --change-at SEC rewrite one word of --change pages of process 0 then\n"
		"  --change C      pages to change (default 8)\n"
		"  --merge prctl   PR_SET_MEMORY_MERGE=1 (upstream KSM's opt-in)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kind", required_argument, 0, 'k' }, { "procs", required_argument, 0, 'n' },
		{ "pages", required_argument, 0, 'p' }, { "twins", no_argument, 0, 't' },
		{ "hold", required_argument, 0, 'h' }, { "change-at", required_argument, 0, 'a' },
		{ "change", required_argument, 0, 'c' }, { "merge", required_argument, 0, 'm' },
		{ "help", no_argument, 0, 'H' }, { 0, 0, 0, 0 } };
	int ready[2], go[MAX_PROCS][2], c, failures = 0;
	pid_t pids[MAX_PROCS];
	char b;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			if (!strcmp(optarg, "sparse"))
				sparse = 1;
			else if (!strcmp(optarg, "unique"))
				sparse = 0;
			else
				goto bad;
			break;
		case 'n': procs = (int)parse_long("procs", optarg, 1, MAX_PROCS); break;
		case 'p': npages = parse_long("pages", optarg, 1, 1L << 24); break;
		case 't': twins = 1; break;
		case 'h': hold_sec = parse_double("hold", optarg, 0, 86400); break;
		case 'a': change_at = parse_double("change-at", optarg, 0, 86400); break;
		case 'c': nchange = parse_long("change", optarg, 0, 1L << 24); break;
		case 'm':
			if (!strcmp(optarg, "prctl"))
				merge_prctl = 1;
			else if (strcmp(optarg, "none"))
				goto bad;
			break;
		case 'H': usage(stdout); return 0;
		default: goto bad;
		}
	}
	if (optind != argc || procs < 1 || procs > MAX_PROCS || npages < 1 || hold_sec < 0)
		goto bad;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pipe(ready))
		return 1;
	for (int p = 0; p < procs; p++) {
		if (pipe(go[p]))
			return 1;
		pids[p] = fork();
		if (pids[p] < 0)
			return 1;
		if (pids[p] == 0) {
			prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0);
			_exit(child(p, ready[1], go[p][0]));
		}
	}
	for (int p = 0; p < procs; p++)
		if (read(ready[0], &b, 1) != 1)
			return 1;
	pksmtb_event("filled", "t_ms=%lld procs=%d pages_total=%ld", now_ms(), procs,
		     procs * npages);
	if (change_at >= 0 && change_at < hold_sec) {
		sleep_sec(change_at);
		b = 1;
		if (write(go[0][1], &b, 1) != 1 || read(ready[0], &b, 1) != 1)
			return 1;
		pksmtb_event("changed", "t_ms=%lld pages=%ld", now_ms(),
			     nchange < npages ? nchange : npages);
		sleep_sec(hold_sec - change_at);
	} else {
		change_at = -1;
		sleep_sec(hold_sec);
	}
	b = 0;
	for (int p = 0; p < procs; p++)
		if (write(go[p][1], &b, 1) != 1)
			failures++;
	for (int p = 0; p < procs; p++) {
		int st;

		if (waitpid(pids[p], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			failures++;
	}
	if (failures)
		pksmtb_event("verified", "result=fail failures=%d", failures);
	else
		pksmtb_event("verified", "result=ok");
	return failures ? 1 : 0;
bad:
	usage(stderr);
	return 2;
}
