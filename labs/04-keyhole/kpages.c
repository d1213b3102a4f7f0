// SPDX-License-Identifier: GPL-2.0
/*
 * kpages - lab 4's truth: the KSM pages of the whole machine, counted
 * from the frames themselves (/proc/kpageflags, /proc/kpagecount), not
 * through the stable tree.  The grader compares the census recount, which
 * reaches each KSM page through pksm_node_folio(), with this count.
 *
 *   PKSMTB-EVENT <name> shared=S sharing=T
 *
 * shared: frames flagged KSM that are mapped; sharing: their further
 * mappings (map count less one, summed), as pages_shared and
 * pages_sharing count them.
 *
 * Usage: kpages NAME (the event's name).  Exit status: 0 counted, 1 the
 * files cannot be read (root, CONFIG_PROC_PAGE_MONITOR), 2 bad usage.
 */
#define _GNU_SOURCE
#define PROG "kpages"
#include "util.h"

#define CHUNK 4096

int main(int argc, char **argv)
{
	static uint64_t flags[CHUNK], count[CHUNK];
	long shared = 0, sharing = 0;
	int kf, kc;

	if (argc != 2) {
		fprintf(stderr, "usage: " PROG " EVENT-NAME\n");
		return 2;
	}
	kf = open("/proc/kpageflags", O_RDONLY);
	kc = open("/proc/kpagecount", O_RDONLY);
	if (kf < 0 || kc < 0) {
		perror(PROG ": /proc/kpageflags, /proc/kpagecount");
		return 1;
	}
	for (off_t at = 0;; at += (off_t)sizeof(flags)) {
		ssize_t nf = pread(kf, flags, sizeof(flags), at);
		ssize_t nc = pread(kc, count, sizeof(count), at);

		if (nf < 0 || nc < 0) {
			perror(PROG ": read");
			return 1;
		}
		if (nf > nc)
			nf = nc;
		for (ssize_t i = 0; i < nf / (ssize_t)sizeof(uint64_t); i++) {
			if (!(flags[i] & (1ULL << KPF_KSM)) || !count[i])
				continue;
			shared++;
			sharing += (long)count[i] - 1;
		}
		if (nf < (ssize_t)sizeof(flags))
			break;
	}
	pksmtb_event(argv[1], "shared=%ld sharing=%ld", shared, sharing);
	return 0;
}
