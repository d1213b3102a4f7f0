// SPDX-License-Identifier: GPL-2.0
/*
 * timing - lab 6: the deduplication timing side channel, from user space.
 *
 * A victim process holds some of N candidate pages (which ones is its
 * secret).  The attacker (this process) fills all N candidates itself,
 * waits for the merge daemon, then writes one word to each of its pages
 * and times the write: a page that was merged with the victim's copy is a
 * KSM page, and writing it takes a copy-on-write fault; an unmerged page
 * is written in place.  classify() turns the times into guesses, helped
 * by calibration pages the attacker knows to be merged (pairs of its own)
 * or not (unique).  The truth is read from /proc/self/pagemap and
 * /proc/kpageflags before the writes (root, as in the testbed's guest).
 *
 * The program scores nothing itself: it prints the seed, its guesses and
 * the truth, one bit a page, and the grader counts (hexadecimal, digit k
 * holding pages 4k..4k+3, page 4k in its lowest bit):
 *
 *   PKSMTB-EVENT lab6 pages=N seed=S guess=HEX truth=HEX
 *                median_merged_ns=.. median_unmerged_ns=..
 *                cal_merged_ns=.. cal_unique_ns=..
 *
 * The grader draws the seed (the victim's secret) at grading time.  Only
 * classify() is yours: the grader refuses a program changed elsewhere.
 *
 * Usage: timing [--pages N] [--wait SEC] [--seed S]
 * Exit status: 0 measured, 1 failure, 2 bad usage.
 */
#define _GNU_SOURCE
#define PROG "timing"
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include "util.h"

#define CAL 32			/* calibration pages of each kind */
#define PAGE 4096UL
#define WORDS (PAGE / sizeof(uint64_t))

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Page content number key: every word from key, distinct across keys. */
static void fill(uint64_t *page, uint64_t key)
{
	for (size_t j = 0; j < WORDS; j++)
		page[j] = mix(key * 0x9e3779b97f4a7c15ULL + j + 1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The time one write to the first word of the page takes. */
static uint64_t time_write(uint64_t *page)
{
	uint64_t t0 = now_ns();

	*(volatile uint64_t *)page ^= 1;
	return now_ns() - t0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The median of n values (n > 0), without changing them. */
static uint64_t median(const uint64_t *v, int n)
{
	uint64_t *s = malloc((size_t)n * sizeof(*s));
	uint64_t m;

	if (!s)
		exit(1);
	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_u64);
	m = s[n / 2];
	free(s);
	return m;
}

/*
 * Guess, for each of the n write times ns[i], whether the page was merged
 * (guess[i] = 1) or not (0).  cal_merged and cal_unique are ncal write
 * times of pages known to be merged and known not to be.
 */
static void classify(const uint64_t *ns, int n, const uint64_t *cal_merged,
		     const uint64_t *cal_unique, int ncal, int *guess)
{
	/* LAB 6 BEGIN: a threshold between the two calibration sets, then classify */
	uint64_t m = median(cal_merged, ncal), u = median(cal_unique, ncal);
	/* the geometric mean: the two costs differ by a factor, not a sum */
	double threshold = sqrt((double)m * (double)(u ? u : 1));

	for (int i = 0; i < n; i++)
		guess[i] = (double)ns[i] > threshold;
	/* LAB 6 END */
}

/* N bits (0 or 1) in hexadecimal: digit k holds bits 4k..4k+3, 4k lowest. */
static char *bits_hex(const int *bits, int n)
{
	char *s = calloc((size_t)(n + 3) / 4 + 1, 1);

	if (!s)
		exit(1);
	for (int k = 0; k < (n + 3) / 4; k++) {
		int v = 0;

		for (int j = 0; j < 4 && 4 * k + j < n; j++)
			v |= (bits[4 * k + j] != 0) << j;
		s[k] = "0123456789abcdef"[v];
	}
	return s;
}

static int is_ksm(const void *page)
{
	long ksm;

	if (count_merged(page, 1, &ksm, NULL))
		return -1;
	return ksm == 1;
}

int main(int argc, char **argv)
{
	int n = 256, wait_s = 4;
	uint64_t seed = 1;
	uint64_t cal_m[CAL], cal_u[CAL], med[2][1];
	uint64_t *mine, *theirs, *cal, *ns;
	int *guess, *truth;
	pid_t victim;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pages") && i + 1 < argc)
			n = (int)parse_long("pages", argv[++i], 16, 65536);
		else if (!strcmp(argv[i], "--wait") && i + 1 < argc)
			wait_s = (int)parse_long("wait", argv[++i], 0, 3600);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = (uint64_t)parse_long("seed", argv[++i], 0, 1L << 40);
		else {
			fprintf(stderr, "usage: " PROG " [--pages N] [--wait SEC] [--seed S]\n");
			return 2;
		}
	}
	mine = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	theirs = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cal = mmap(NULL, 3 * CAL * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ns = calloc((size_t)n, sizeof(*ns));
	guess = calloc((size_t)n, sizeof(*guess));
	truth = calloc((size_t)n, sizeof(*truth));
	if (mine == MAP_FAILED || theirs == MAP_FAILED || cal == MAP_FAILED ||
	    !ns || !guess || !truth) {
		fprintf(stderr, PROG ": out of memory\n");
		return 1;
	}
	/* The victim: candidate i if bit 0 of its secret says so, else its own. */
	victim = fork();
	if (victim < 0) {
		perror(PROG ": fork");
		return 1;
	}
	if (!victim) {
		for (int i = 0; i < n; i++)
			fill(theirs + i * WORDS, mix(seed ^ (uint64_t)i) & 1 ?
			     (uint64_t)i : (1ULL << 40) + (uint64_t)i);
		for (;;)
			pause();
	}
	for (int i = 0; i < n; i++)
		fill(mine + i * WORDS, (uint64_t)i);
	for (int j = 0; j < CAL; j++) {
		fill(cal + (2 * j) * WORDS, (2ULL << 40) + (uint64_t)j);	/* a pair */
		fill(cal + (2 * j + 1) * WORDS, (2ULL << 40) + (uint64_t)j);
		fill(cal + (2 * CAL + j) * WORDS, (3ULL << 40) + (uint64_t)j);	/* unique */
	}
	sleep((unsigned int)wait_s);

	for (int i = 0; i < n; i++) {
		truth[i] = is_ksm(mine + i * WORDS);
		if (truth[i] < 0) {
			fprintf(stderr, PROG ": cannot read pagemap/kpageflags (root?)\n");
			kill(victim, SIGKILL);
			return 1;
		}
	}
	/*
	 * Calibration writes interleaved with the candidates', so that a
	 * burst of load on the host slows both alike.
	 */
	for (int i = 0, j = 0; i < n; i++) {
		if (j < CAL && i >= j * n / CAL) {
			cal_m[j] = time_write(cal + (2 * j) * WORDS);
			cal_u[j] = time_write(cal + (2 * CAL + j) * WORDS);
			j++;
		}
		ns[i] = time_write(mine + i * WORDS);
	}
	kill(victim, SIGKILL);
	waitpid(victim, NULL, 0);

	classify(ns, n, cal_m, cal_u, CAL, guess);
	for (int k = 0; k < 2; k++) {
		uint64_t *sel = calloc((size_t)n, sizeof(*sel));
		int c = 0;

		if (!sel)
			return 1;
		for (int i = 0; i < n; i++)
			if (truth[i] == k)
				sel[c++] = ns[i];
		med[k][0] = c ? median(sel, c) : 0;
		free(sel);
	}
	pksmtb_event("lab6", "pages=%d seed=%llu guess=%s truth=%s "
		     "median_merged_ns=%llu median_unmerged_ns=%llu cal_merged_ns=%llu "
		     "cal_unique_ns=%llu", n, (unsigned long long)seed, bits_hex(guess, n),
		     bits_hex(truth, n), (unsigned long long)med[1][0], (unsigned long long)med[0][0],
		     (unsigned long long)median(cal_m, CAL),
		     (unsigned long long)median(cal_u, CAL));
	return 0;
}
