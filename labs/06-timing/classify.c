// SPDX-License-Identifier: GPL-2.0
/*
 * classify - lab 6: tell merged pages from unmerged ones by their write times.
 *
 * The grader's program (timing.c) measures; this program only classifies.
 * It is started after the measurement, as an unprivileged user (uid and
 * gid 65534, no groups, no controlling terminal), with nothing but the
 * times: on its standard input
 *
 *   N NCAL
 *   N write times of the candidate pages (ns)
 *   NCAL write times of pages known to be merged (ns)
 *   NCAL write times of pages known not to be (ns)
 *
 * and it writes its N guesses to its standard output, one character a
 * page, '1' merged and '0' not, then a newline.  What it writes to its
 * standard error is shown in the console, each line prefixed.  The
 * grader's program prints the graded line; this one cannot (its output is
 * a pipe to the grader's program), cannot read the truth nor the victim's
 * secret, and has 10 s of CPU.
 *
 * Only classify() is yours: the grader refuses a program changed elsewhere.
 *
 * Exit status: 0 classified, 1 out of memory, 2 bad input.
 */
#define _GNU_SOURCE
#define PROG "classify"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The median of n values (n > 0), without changing them: yours to use. */
static __attribute__((unused)) uint64_t median(const uint64_t *v, int n)
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

/* Read n times into v; 0 on success. */
static int read_times(uint64_t *v, int n)
{
	for (int i = 0; i < n; i++)
		if (scanf("%" SCNu64, &v[i]) != 1)
			return -1;
	return 0;
}

int main(void)
{
	uint64_t *ns, *cal_m, *cal_u;
	int n, ncal, *guess;

	if (scanf("%d %d", &n, &ncal) != 2 || n < 1 || n > 65536 ||
	    ncal < 1 || ncal > 4096) {
		fprintf(stderr, PROG ": bad input: no 'N NCAL' header\n");
		return 2;
	}
	ns = calloc((size_t)n, sizeof(*ns));
	cal_m = calloc((size_t)ncal, sizeof(*cal_m));
	cal_u = calloc((size_t)ncal, sizeof(*cal_u));
	guess = calloc((size_t)n, sizeof(*guess));
	if (!ns || !cal_m || !cal_u || !guess) {
		fprintf(stderr, PROG ": out of memory\n");
		return 1;
	}
	if (read_times(ns, n) || read_times(cal_m, ncal) || read_times(cal_u, ncal)) {
		fprintf(stderr, PROG ": bad input: fewer times than announced\n");
		return 2;
	}
	classify(ns, n, cal_m, cal_u, ncal, guess);
	for (int i = 0; i < n; i++)
		putchar(guess[i] ? '1' : '0');
	putchar('\n');
	return fflush(stdout) ? 1 : 0;
}
