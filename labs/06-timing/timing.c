// SPDX-License-Identifier: GPL-2.0
/*
 * timing - lab 6's grader program: the deduplication timing side channel,
 * from user space.
 *
 * A victim process holds some of N candidate pages (which ones is its
 * secret).  The attacker (this process) fills all N candidates itself,
 * waits for the merge daemon, then writes one word to each of its pages
 * and times the write: a page that was merged with the victim's copy is a
 * KSM page, and writing it takes a copy-on-write fault; an unmerged page
 * is written in place.  The truth is read from /proc/self/pagemap and
 * /proc/kpageflags before the writes (this program runs as root).
 *
 * The student's classifier (classify.c) turns the times into guesses,
 * helped by calibration pages the attacker knows to be merged (pairs of
 * its own) or not (unique).  It runs after the measurement, the victim
 * gone, as an unprivileged user (uid and gid 65534, no groups, a session
 * of its own, limited CPU and wall time): the times on its standard
 * input, its guesses on its standard output, both pipes of this program;
 * its standard error is relayed to the console, each line prefixed.  It
 * cannot read the truth (this process's memory, /proc/kpageflags), the
 * secret file (root's, removed once read) nor print the graded line.
 *
 * The grader draws the victim's seed and a token at grading time and
 * writes them to the secret file ("SEED TOKEN").  This program scores
 * nothing itself: it prints the seed, the token, the classifier's fate,
 * its guesses and the truth, one bit a page, and the grader counts
 * (hexadecimal, digit k holding pages 4k..4k+3, page 4k in its lowest
 * bit; guess=none if the classifier gave no usable guesses):
 *
 *   PKSMTB-EVENT lab6 pages=N seed=S token=T classifier=ok guess=HEX
 *                truth=HEX median_merged_ns=.. median_unmerged_ns=..
 *                cal_merged_ns=.. cal_unique_ns=..
 *
 * Usage: timing --secret FILE --classifier PROG [--pages N] [--wait SEC]
 * Exit status: 0 measured (whatever the classifier did), 1 failure,
 * 2 bad usage.
 */
#define _GNU_SOURCE
#define PROG "timing"
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include "util.h"

#define CAL 32			/* calibration pages of each kind */
#define PAGE 4096UL
#define WORDS (PAGE / sizeof(uint64_t))
#define TOKEN_LEN 32		/* hexadecimal digits of the grader's token */
#define CLASSIFY_ID 65534	/* the classifier's uid and gid */
#define CLASSIFY_CPU_S 10	/* its CPU time */
#define CLASSIFY_WALL_S 30	/* its wall time, from its start */
#define CLASSIFY_LINES 40	/* lines of its standard error relayed */
#define LINE_MAX_LEN 160	/* characters relayed of each */

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
 * Read "SEED TOKEN" from @path, the grader's secret file, then remove it:
 * nothing started later finds it.  0 on success.
 */
static int read_secret(const char *path, uint64_t *seed, char *token)
{
	FILE *f = fopen(path, "r");
	unsigned long long s;
	int ok;

	if (!f)
		return -1;
	ok = fscanf(f, "%llu %32[0-9a-f]", &s, token) == 2 &&
	     strlen(token) == TOKEN_LEN && s < (1ULL << 40);
	fclose(f);
	if (unlink(path))
		return -1;
	*seed = s;
	return ok ? 0 : -1;
}

/*
 * In the classifier's child, before it execs: a session of its own (no
 * controlling terminal), CPU and process limits, then uid and gid
 * CLASSIFY_ID with no groups, for good (root cannot be got back).
 */
static void drop_privileges(void)
{
	struct rlimit cpu = { CLASSIFY_CPU_S, CLASSIFY_CPU_S };
	struct rlimit nproc = { 16, 16 };

	if (setsid() < 0 || setrlimit(RLIMIT_CPU, &cpu) ||
	    setrlimit(RLIMIT_NPROC, &nproc) || setgroups(0, NULL) ||
	    setgid(CLASSIFY_ID) || setuid(CLASSIFY_ID) || setuid(0) == 0 ||
	    getuid() != CLASSIFY_ID || geteuid() != CLASSIFY_ID ||
	    getgid() != CLASSIFY_ID || getegid() != CLASSIFY_ID)
		_exit(126);
}

/* Kill every process of uid CLASSIFY_ID (what the classifier left). */
static void kill_classifier_uid(void)
{
	pid_t p = fork();

	if (!p) {
		if (setuid(CLASSIFY_ID) == 0)
			kill(-1, SIGKILL);
		_exit(0);
	}
	if (p > 0)
		waitpid(p, NULL, 0);
}

/* Relay the classifier's standard error: printable, prefixed, bounded. */
struct relay {
	char line[LINE_MAX_LEN + 1];
	size_t len;
	int lines;
};

static void relay_flush(struct relay *r)
{
	if (r->lines++ < CLASSIFY_LINES) {
		r->line[r->len] = '\0';
		fprintf(stderr, PROG ": classify said: %s\n", r->line);
	}
	r->len = 0;
}

static void relay_bytes(struct relay *r, const char *buf, ssize_t n)
{
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			relay_flush(r);
			continue;
		}
		if (r->len < LINE_MAX_LEN)
			r->line[r->len++] = buf[i] >= 0x20 && buf[i] < 0x7f ? buf[i] : '?';
	}
}

/*
 * Run the classifier @prog as CLASSIFY_ID with @in (@inlen bytes) on its
 * standard input; its standard output, at most @cap - 1 bytes, into @out
 * (NUL-terminated).  Whatever it or its children still run after it
 * exits, or after CLASSIFY_WALL_S, is killed.  Returns its wait status,
 * or -1 if it could not be started.
 */
static int run_classifier(const char *prog, const char *in, size_t inlen,
			  char *out, size_t cap)
{
	char *const cargv[] = { "classify", NULL };
	char *const cenv[] = { "PATH=/bin:/usr/bin", NULL };
	uint64_t deadline = now_ns() + CLASSIFY_WALL_S * 1000000000ULL;
	int pin[2], pout[2], perr[2], status = -1, exited = 0;
	struct relay err = { .len = 0 };
	size_t sent = 0, got = 0;
	pid_t pid;

	if (pipe(pin) || pipe(pout) || pipe(perr))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		if (dup2(pin[0], 0) < 0 || dup2(pout[1], 1) < 0 ||
		    dup2(perr[1], 2) < 0)
			_exit(126);
		close_range(3, ~0U, 0);
		drop_privileges();
		execve(prog, cargv, cenv);
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	signal(SIGPIPE, SIG_IGN);
	fcntl(pin[1], F_SETFL, O_NONBLOCK);
	while (pout[0] >= 0 || perr[0] >= 0) {
		struct pollfd p[3];
		int np = 0, wait_ms;
		uint64_t now = now_ns();

		if (now >= deadline)
			break;
		/*
		 * Once it has exited, what it left holding its pipes is
		 * killed, and the pipes are read to their end.
		 */
		if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
			exited = 1;
			kill(-pid, SIGKILL);
			kill_classifier_uid();
		}
		wait_ms = exited ? (int)((deadline - now) / 1000000) + 1 : 100;
		if (pin[1] >= 0)
			p[np++] = (struct pollfd){ .fd = pin[1], .events = POLLOUT };
		if (pout[0] >= 0)
			p[np++] = (struct pollfd){ .fd = pout[0], .events = POLLIN };
		if (perr[0] >= 0)
			p[np++] = (struct pollfd){ .fd = perr[0], .events = POLLIN };
		if (poll(p, (nfds_t)np, wait_ms) < 0)
			break;
		for (int k = 0; k < np; k++) {
			char buf[4096];
			ssize_t r;

			if (!p[k].revents)
				continue;
			if (p[k].fd == pin[1]) {
				r = write(pin[1], in + sent, inlen - sent);
				if (r > 0)
					sent += (size_t)r;
				if (r < 0 || sent == inlen) {
					close(pin[1]);
					pin[1] = -1;
				}
				continue;
			}
			r = read(p[k].fd, buf, sizeof(buf));
			if (r <= 0) {
				close(p[k].fd);
				if (p[k].fd == pout[0])
					pout[0] = -1;
				else
					perr[0] = -1;
			} else if (p[k].fd == pout[0]) {
				size_t keep = cap - 1 - got;

				keep = (size_t)r < keep ? (size_t)r : keep;
				memcpy(out + got, buf, keep);
				got += keep;
			} else {
				relay_bytes(&err, buf, r);
			}
		}
	}
	if (!exited) {
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	kill_classifier_uid();
	for (int *fd = (int[]){ pin[1], pout[0], perr[0] }, k = 0; k < 3; k++)
		if (fd[k] >= 0)
			close(fd[k]);
	if (err.len)
		relay_flush(&err);
	out[got] = '\0';
	return status;
}

/*
 * The classifier's output @out as n guesses: n characters '0' or '1',
 * then only white space.  0 if it is so.
 */
static int parse_guesses(const char *out, int n, int *guess)
{
	for (int i = 0; i < n; i++) {
		if (out[i] != '0' && out[i] != '1')
			return -1;
		guess[i] = out[i] == '1';
	}
	for (const char *c = out + n; *c; c++)
		if (*c != ' ' && *c != '\n' && *c != '\t' && *c != '\r')
			return -1;
	return 0;
}

/*
 * Classify with @prog: the input (the times), the run, the guesses.
 * Returns what the event says of it: "ok", or why there are no guesses.
 */
static const char *classify_with(const char *prog, const uint64_t *ns, int n,
				 const uint64_t *cal_m, const uint64_t *cal_u,
				 int *guess)
{
	static char why[32];
	size_t cap = 32 + (size_t)(n + 2 * CAL) * 21, len = 0, outcap = (size_t)n + 64;
	char *in = malloc(cap), *out = malloc(outcap);
	int status;

	if (!in || !out)
		exit(1);
	len += (size_t)snprintf(in + len, cap - len, "%d %d\n", n, CAL);
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(in + len, cap - len, "%llu\n",
					(unsigned long long)ns[i]);
	for (int j = 0; j < CAL; j++)
		len += (size_t)snprintf(in + len, cap - len, "%llu\n",
					(unsigned long long)cal_m[j]);
	for (int j = 0; j < CAL; j++)
		len += (size_t)snprintf(in + len, cap - len, "%llu\n",
					(unsigned long long)cal_u[j]);
	status = run_classifier(prog, in, len, out, outcap);
	if (status == -1)
		snprintf(why, sizeof(why), "not-started");
	else if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "signal-%d", WTERMSIG(status));
	else if (WEXITSTATUS(status))
		snprintf(why, sizeof(why), "exit-%d", WEXITSTATUS(status));
	else if (parse_guesses(out, n, guess))
		snprintf(why, sizeof(why), "bad-output");
	else
		snprintf(why, sizeof(why), "ok");
	free(in);
	free(out);
	return why;
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
	int n = 256, wait_s = 4, bad = 0;
	const char *secret = NULL, *prog = NULL, *fate;
	char token[TOKEN_LEN + 1] = "";
	uint64_t seed = 0;
	uint64_t cal_m[CAL], cal_u[CAL], med[2][1];
	uint64_t *mine, *theirs, *cal, *ns;
	int *guess, *truth;
	pid_t victim;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pages") && i + 1 < argc)
			n = (int)parse_long("pages", argv[++i], 16, 65536);
		else if (!strcmp(argv[i], "--wait") && i + 1 < argc)
			wait_s = (int)parse_long("wait", argv[++i], 0, 3600);
		else if (!strcmp(argv[i], "--secret") && i + 1 < argc)
			secret = argv[++i];
		else if (!strcmp(argv[i], "--classifier") && i + 1 < argc)
			prog = argv[++i];
		else
			bad = 1;
	}
	if (bad || !secret || !prog) {
		fprintf(stderr, "usage: %s\n",
			PROG " --secret FILE --classifier PROG [--pages N] [--wait SEC]");
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, PROG ": must run as root (it reads /proc/kpageflags)\n");
		return 1;
	}
	if (read_secret(secret, &seed, token)) {
		fprintf(stderr, PROG ": %s: no \"SEED TOKEN\", or it cannot be removed\n",
			secret);
		return 1;
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

	/* The victim is gone: only now does the student's code run. */
	fate = classify_with(prog, ns, n, cal_m, cal_u, guess);
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
	pksmtb_event("lab6", "pages=%d seed=%llu token=%s classifier=%s guess=%s truth=%s "
		     "median_merged_ns=%llu median_unmerged_ns=%llu cal_merged_ns=%llu "
		     "cal_unique_ns=%llu", n, (unsigned long long)seed, token, fate,
		     strcmp(fate, "ok") ? "none" : bits_hex(guess, n),
		     bits_hex(truth, n), (unsigned long long)med[1][0], (unsigned long long)med[0][0],
		     (unsigned long long)median(cal_m, CAL),
		     (unsigned long long)median(cal_u, CAL));
	return 0;
}
