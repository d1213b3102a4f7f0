/*
 * faultbench - cost of an anonymous page fault, for the fault-path overhead
 * benchmark (PKSM's birth and free hooks on versus pksm=off).
 *
 * Usage: faultbench [--mib M] [--rounds R]
 *   Each round maps M MiB of private anonymous memory, writes one byte to
 *   every page (one fault each), and unmaps it again (one free each).  The
 *   time of the write loop divided by the number of pages is the cost of a
 *   fault; the median and minimum over the rounds are reported as
 *     PKSMTB-EVENT faults pages=N rounds=R ns_median=X ns_min=Y
 * Exit status: 0 ok, 1 runtime error, 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PROG "faultbench"
#include "util.h"

#define MAX_ROUNDS 1000

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: faultbench [--mib M] [--rounds R]\n"
		"Time anonymous page faults: R rounds of mapping M MiB, writing one byte\n"
		"per page and unmapping.\n"
		"  --mib M      MiB per round, 1..4096 (default 32)\n"
		"  --rounds R   rounds, 1..1000 (default 7)\n"
		"  --help       show this help\n");
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long mib = 32, rounds = 7;
	double per_fault[MAX_ROUNDS];
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm': mib = parse_long("mib", optarg, 1, 4096); break;
		case 'r': rounds = parse_long("rounds", optarg, 1, MAX_ROUNDS); break;
		case 'h': usage(stdout); return 0;
		default: fprintf(stderr, "Try 'faultbench --help'.\n"); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "faultbench: unexpected argument '%s'\nTry 'faultbench --help'.\n",
			argv[optind]);
		return 2;
	}

	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = (size_t)mib << 20, pages = len / page;

	for (long r = 0; r < rounds; r++) {
		volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			fprintf(stderr, "faultbench: mmap %zu bytes: %s\n", len, strerror(errno));
			return 1;
		}
		double t0 = now_ns();

		for (size_t i = 0; i < pages; i++)
			p[i * page] = 1;
		per_fault[r] = (now_ns() - t0) / (double)pages;
		if (munmap((void *)p, len) != 0) {
			fprintf(stderr, "faultbench: munmap: %s\n", strerror(errno));
			return 1;
		}
	}
	qsort(per_fault, (size_t)rounds, sizeof(double), cmp_double);
	pksmtb_event("faults", "pages=%zu rounds=%ld ns_median=%.0f ns_min=%.0f",
		     pages, rounds, per_fault[rounds / 2], per_fault[0]);
	return 0;
}
