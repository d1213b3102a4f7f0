/*
 * fpregs - check that the kernel preserves each thread's vector registers
 * across context switches.
 *
 * The best usable level is detected at run time (cpuid + xgetbv):
 *   avx512  zmm0-31 and k1-k7   (CPUID.7.EBX[16], XCR0 bits 1,2,5,6,7)
 *   avx     ymm0-15             (CPUID.1.ECX[28], XCR0 bits 1,2)
 *   sse     xmm0-15             (always present on x86_64)
 * T threads, pinned to one CPU so they really switch among each other,
 * each run ONE inline-asm block that loads a thread-specific pattern into
 * all those registers, calls the raw sched_yield syscall N times, and
 * stores the registers back.  The stored values are then compared with the
 * pattern.  Only the asm functions are compiled for AVX/AVX-512 (target
 * attribute), so the program still runs on CPUs without them.
 *
 * Usage: fpregs [--threads T] [--iters N] [--level auto|sse|avx|avx512]
 * Output: fpregs: level=L threads=T iters=N result=ok
 *     or: fpregs: MISMATCH thread=I reg=R lane=Q expected=0x.. got=0x..
 *         (lane = 64-bit lane; k registers are 16 bit, lane 0)
 *         fpregs: level=L threads=T iters=N result=fail mismatches=M
 * Exit status: 0 ok, 1 mismatch or error, 2 bad usage.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "fpregs"
#include "util.h"

enum level { L_SSE, L_AVX, L_AVX512 };
static const char *const level_names[] = { "sse", "avx", "avx512" };
static const char *const reg_prefix[] = { "xmm", "ymm", "zmm" };
static const int nregs[] = { 16, 16, 32 };
static const int nlanes[] = { 2, 4, 8 }; /* 64-bit lanes per register */

/* Register image: every register gets a 64-byte slot (offset n*64). */
struct regs {
	uint64_t v[32][8];
	uint16_t k[8]; /* k1..k7 at offset 2048 + n*2; k[0] unused */
} __attribute__((aligned(64)));

struct thread {
	pthread_t tid;
	struct regs pat, out;
};

static enum level level;
static long iters = 20000;
static pthread_barrier_t start_barrier;

#define SYSCALL_LOOP                 \
	"1:\n\t"                     \
	"mov $24, %%eax\n\t"         \
	"syscall\n\t"                \
	"dec %[n]\n\t"               \
	"jnz 1b\n\t"

#define XMM_CLOBBERS "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", \
	"xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

#define R16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) \
	M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define R32(M) R16(M) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) \
	M(24) M(25) M(26) M(27) M(28) M(29) M(30) M(31)
#define K7(M) M(1) M(2) M(3) M(4) M(5) M(6) M(7)

#define LD_XMM(n) "movdqu " #n "*64(%[p]), %%xmm" #n "\n\t"
#define ST_XMM(n) "movdqu %%xmm" #n ", " #n "*64(%[s])\n\t"
#define LD_YMM(n) "vmovdqu " #n "*64(%[p]), %%ymm" #n "\n\t"
#define ST_YMM(n) "vmovdqu %%ymm" #n ", " #n "*64(%[s])\n\t"
#define LD_ZMM(n) "vmovdqu64 " #n "*64(%[p]), %%zmm" #n "\n\t"
#define ST_ZMM(n) "vmovdqu64 %%zmm" #n ", " #n "*64(%[s])\n\t"
#define LD_K(n) "kmovw 2048+" #n "*2(%[p]), %%k" #n "\n\t"
#define ST_K(n) "kmovw %%k" #n ", 2048+" #n "*2(%[s])\n\t"

static __attribute__((noinline)) void run_sse(const struct regs *p, struct regs *s, long n)
{
	__asm__ volatile(R16(LD_XMM) SYSCALL_LOOP R16(ST_XMM)
			 : [n] "+r"(n)
			 : [p] "r"(p), [s] "r"(s)
			 : "rax", "rcx", "r11", "memory", "cc", XMM_CLOBBERS);
}

static __attribute__((noinline, target("avx"))) void
run_avx(const struct regs *p, struct regs *s, long n)
{
	__asm__ volatile(R16(LD_YMM) SYSCALL_LOOP R16(ST_YMM) "vzeroupper\n\t"
			 : [n] "+r"(n)
			 : [p] "r"(p), [s] "r"(s)
			 : "rax", "rcx", "r11", "memory", "cc", XMM_CLOBBERS);
}

static __attribute__((noinline, target("avx512f"))) void
run_avx512(const struct regs *p, struct regs *s, long n)
{
	__asm__ volatile(R32(LD_ZMM) K7(LD_K) SYSCALL_LOOP R32(ST_ZMM) K7(ST_K) "vzeroupper\n\t"
			 : [n] "+r"(n)
			 : [p] "r"(p), [s] "r"(s)
			 : "rax", "rcx", "r11", "memory", "cc", XMM_CLOBBERS,
			   "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",
			   "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31",
			   "k1", "k2", "k3", "k4", "k5", "k6", "k7");
}

static void *worker(void *arg)
{
	struct thread *t = arg;

	pthread_barrier_wait(&start_barrier);
	switch (level) {
	case L_SSE: run_sse(&t->pat, &t->out, iters); break;
	case L_AVX: run_avx(&t->pat, &t->out, iters); break;
	case L_AVX512: run_avx512(&t->pat, &t->out, iters); break;
	}
	return NULL;
}

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static enum level detect_level(void)
{
	unsigned a, b, c, d;
	uint32_t xcr0_lo, xcr0_hi;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
		return L_SSE;
	__asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
	if ((xcr0_lo & 0x6) != 0x6 || !(c & bit_AVX))
		return L_SSE;
	if ((xcr0_lo & 0xe6) == 0xe6 && __get_cpuid_count(7, 0, &a, &b, &c, &d) &&
	    (b & bit_AVX512F))
		return L_AVX512;
	return L_AVX;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: fpregs [options]\n"
		"Check that vector registers survive context switches (sched_yield loop).\n"
		"  --threads T   threads, 1..16 (default 2)\n"
		"  --iters N     sched_yield calls per thread, 1..1000000000 (default 20000)\n"
		"  --level L     auto (default) | sse | avx | avx512; must be supported\n"
		"  --help        show this help\n");
}

/* Options into nthreads, iters and *want (-1: auto); exits on bad usage. */
static void parse_args(int argc, char **argv, int *nthreads, int *want)
{
	static const struct option longopts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "iters", required_argument, NULL, 'n' },
		{ "level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 't': *nthreads = (int)parse_long("threads", optarg, 1, 16); break;
		case 'n': iters = parse_long("iters", optarg, 1, 1000000000L); break;
		case 'l':
			if (!strcmp(optarg, "auto"))
				*want = -1;
			else if (!strcmp(optarg, "sse"))
				*want = L_SSE;
			else if (!strcmp(optarg, "avx"))
				*want = L_AVX;
			else if (!strcmp(optarg, "avx512"))
				*want = L_AVX512;
			else
				bad_value("level", optarg, "auto, sse, avx or avx512");
			break;
		case 'h': usage(stdout); exit(0);
		default:
			fprintf(stderr, "Try 'fpregs --help'.\n");
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "fpregs: unexpected argument '%s'\nTry 'fpregs --help'.\n",
			argv[optind]);
		exit(2);
	}
}

/* The level to test: the best the CPU has, or the one asked for if it has it. */
static void choose_level(int want)
{
	level = detect_level();
	if (want > (int)level) {
		fprintf(stderr, "fpregs: level %s not supported here (best is %s)\n",
			level_names[want], level_names[level]);
		exit(2);
	}
	if (want >= 0)
		level = (enum level)want;
}

/* Pin to the current CPU so the threads preempt each other. */
static void pin_to_this_cpu(void)
{
	cpu_set_t set;
	int cpu = sched_getcpu();

	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		sched_setaffinity(0, sizeof(set), &set); /* best effort */
	}
}

/* Each thread's own register patterns; its output starts as their inverse. */
static struct thread *make_patterns(int nthreads)
{
	struct thread *th = aligned_alloc(64, sizeof(*th) * (size_t)nthreads);

	if (!th) {
		fprintf(stderr, "fpregs: out of memory\n");
		exit(1);
	}
	for (int t = 0; t < nthreads; t++) {
		for (int r = 0; r < 32; r++)
			for (int l = 0; l < 8; l++) {
				th[t].pat.v[r][l] = mix(((uint64_t)(t + 1) << 16) | (uint64_t)(r * 8 + l));
				th[t].out.v[r][l] = ~th[t].pat.v[r][l];
			}
		for (int k = 0; k < 8; k++) {
			th[t].pat.k[k] = (uint16_t)mix(((uint64_t)(t + 1) << 16) | (0x1000u + (unsigned)k));
			th[t].out.k[k] = (uint16_t)~th[t].pat.k[k];
		}
	}
	return th;
}

static void run_threads(struct thread *th, int nthreads)
{
	pthread_barrier_init(&start_barrier, NULL, (unsigned)nthreads);
	for (int t = 0; t < nthreads; t++) {
		int err = pthread_create(&th[t].tid, NULL, worker, &th[t]);

		if (err) {
			fprintf(stderr, "fpregs: pthread_create: %s\n", strerror(err));
			exit(1);
		}
	}
	for (int t = 0; t < nthreads; t++)
		pthread_join(th[t].tid, NULL);
}

/* Registers that came back changed (the first 20 printed). */
static long count_mismatches(const struct thread *th, int nthreads)
{
	long mismatches = 0;

	for (int t = 0; t < nthreads; t++) {
		for (int r = 0; r < nregs[level]; r++)
			for (int l = 0; l < nlanes[level]; l++) {
				uint64_t e = th[t].pat.v[r][l], g = th[t].out.v[r][l];

				if (e != g && mismatches++ < 20)
					printf("fpregs: MISMATCH thread=%d reg=%s%d lane=%d "
					       "expected=0x%016" PRIx64 " got=0x%016" PRIx64 "\n",
					       t, reg_prefix[level], r, l, e, g);
			}
		for (int k = 1; level == L_AVX512 && k < 8; k++) {
			uint16_t e = th[t].pat.k[k], g = th[t].out.k[k];

			if (e != g && mismatches++ < 20)
				printf("fpregs: MISMATCH thread=%d reg=k%d lane=0 "
				       "expected=0x%04x got=0x%04x\n", t, k, e, g);
		}
	}
	return mismatches;
}

int main(int argc, char **argv)
{
	int nthreads = 2, want = -1;
	struct thread *th;
	long mismatches;

	parse_args(argc, argv, &nthreads, &want);
	choose_level(want);
	pin_to_this_cpu();
	th = make_patterns(nthreads);
	run_threads(th, nthreads);
	mismatches = count_mismatches(th, nthreads);
	printf("fpregs: level=%s threads=%d iters=%ld result=", level_names[level], nthreads, iters);
	if (mismatches)
		printf("fail mismatches=%ld\n", mismatches);
	else
		printf("ok\n");
	return mismatches ? 1 : 0;
}
