// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM's pure logic: no locks, no mm state.  KUnit-tested by
 * policy_test.c; see policy.h.
 */

#include <linux/kernel.h>
#include <linux/minmax.h>
#include <linux/math.h>
#include <linux/math64.h>
#include <linux/random.h>
#include <linux/sort.h>
#include <linux/mm.h>
#include "policy.h"

/* Word indices hashed by the prefilter: chosen at boot, sorted, distinct. */
u16 pksm_sample[PKSM_SAMPLE_WORDS];
u64 pksm_hash_seed;
u32 pksm_zero_hash;
u32 pksm_zero_checksum;

/* Hash the sampled words of a page.  Any 64-bit mix would do. */
u32 pksm_hash_words(const u64 *words, const u16 *sample, unsigned int n,
		    u64 seed)
{
	/* LAB 3 BEGIN: mix seed and the n words words[sample[i]] into 32 bits */
	u64 h = seed;
	unsigned int i;

	for (i = 0; i < n; i++) {
		h ^= words[sample[i]];
		h *= 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	return (u32)(h >> 32) ^ (u32)h;
	/* LAB 3 END */
}

/* Word-wise equality of two pages (UML has no optimised memcmp). */
bool pksm_words_equal(const u64 *a, const u64 *b)
{
	unsigned int i;

	for (i = 0; i < PKSM_PAGE_WORDS; i += 4) {
		if ((a[i] ^ b[i]) | (a[i + 1] ^ b[i + 1]) |
		    (a[i + 2] ^ b[i + 2]) | (a[i + 3] ^ b[i + 3]))
			return false;
	}
	return true;
}

/*
 * Order two pages by content: the first word that differs decides, as an
 * unsigned number.  Returns <0, 0 or >0.  Any total order would do; this
 * one costs what pksm_words_equal() costs.
 */
int pksm_words_cmp(const u64 *a, const u64 *b)
{
	unsigned int i;

	for (i = 0; i < PKSM_PAGE_WORDS; i += 4) {
		if ((a[i] ^ b[i]) | (a[i + 1] ^ b[i + 1]) |
		    (a[i + 2] ^ b[i + 2]) | (a[i + 3] ^ b[i + 3]))
			break;
	}
	for (; i < PKSM_PAGE_WORDS; i++) {
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	}
	return 0;
}

/*
 * A checksum of every word of a page, for probation: a write anywhere in
 * the page changes it (with probability 1 - 2^-32), unlike the sampled
 * hash, which sees 32 of the 512 words.
 */
u32 pksm_checksum_words(const u64 *words, u64 seed)
{
	u64 h0 = seed, h1 = ~seed;
	unsigned int i;

	for (i = 0; i < PKSM_PAGE_WORDS; i += 2) {
		h0 = (h0 ^ words[i]) * 0x9e3779b97f4a7c15ULL;
		h1 = (h1 ^ words[i + 1]) * 0xc2b2ae3d27d4eb4fULL;
		h0 ^= h0 >> 31;
		h1 ^= h1 >> 29;
	}
	h0 ^= h1 * 0x165667b19e3779f9ULL;
	return (u32)(h0 >> 32) ^ (u32)h0;
}

bool pksm_words_zero(const u64 *a)
{
	unsigned int i;

	for (i = 0; i < PKSM_PAGE_WORDS; i += 4) {
		if (a[i] | a[i + 1] | a[i + 2] | a[i + 3])
			return false;
	}
	return true;
}

/*
 * Probation bookkeeping for one visit of a page on the new list or on
 * probation.  Returns
 * true when the page is a merge candidate.  *visits is PKSM_UNSEEN before
 * the first visit, then counts consecutive visits that found the checksum
 * of the previous one; a change restarts the count.  @need is
 * pksm_probation_need().
 */
bool pksm_probation_step(u8 *visits, u32 *old_sum, u32 sum, unsigned int need)
{
	/* LAB 3 BEGIN: count unchanged visits (restart on a change), remember sum */
	if (*visits == PKSM_UNSEEN || sum != *old_sum)
		*visits = 0;
	else if (*visits < PKSM_UNSEEN - 1)
		(*visits)++;
	*old_sum = sum;
	return *visits >= need;
	/* LAB 3 END */
}

/*
 * Unchanged visits a page needs before it may merge: @probation; a page on
 * a back-off level (@backoff > 0: it was seen written, broke COW soon after
 * a merge, or was pinned) needs at least two, so that even with
 * probation_scans 0 it is seen unchanged across its (longer) spacing before
 * it merges again.  At most PKSM_MAX_PROBATION.
 */
unsigned int pksm_probation_need(unsigned int probation, unsigned int backoff)
{
	unsigned int need = max(probation, backoff ? 2U : 0U);

	return min_t(unsigned int, need, PKSM_MAX_PROBATION);
}

/*
 * The back-off level of the copy a COW break makes at a place (an mm and
 * a page index) whose last copy got level @prev (0 if none is known), the
 * break coming @age_ms after the last merge at that place.  A page written
 * within a period (@period_ms) of its merge is written while merged: its
 * copy waits two levels longer than the last one there, so a place that
 * keeps breaking soon after its merges climbs to PKSM_MAX_BACKOFF; a
 * break later than that starts the place over at level 0.
 */
unsigned int pksm_cow_level(unsigned int prev, unsigned int age_ms,
			    unsigned int period_ms)
{
	if (age_ms > period_ms)
		return 0;
	return min_t(unsigned int, prev + 2, PKSM_MAX_BACKOFF);
}

/*
 * Of @unshared things (the unstable table's buckets, the stable nodes),
 * how many a batch that covers @sleep_ms of real time (pksmd passes the
 * time since its last batch) looks at, so that each is looked at about
 * once per period whatever their number: unshared * sleep / period,
 * rounded up, at most @pages_to_scan, none when there are none.  (Not all
 * of a small number every wake-up: that made the daemon cost more the
 * less there was to do.)
 */
unsigned long pksm_reverify_budget(unsigned long unshared,
				   unsigned int pages_to_scan,
				   unsigned int sleep_ms,
				   unsigned int period_s)
{
	u64 need;

	if (!unshared || !pages_to_scan)
		return 0;
	need = DIV_ROUND_UP_ULL((u64)unshared * max(sleep_ms, 1U),
				(u64)max(period_s, 1U) * 1000);
	return min_t(u64, need, pages_to_scan);
}

/*
 * Visits a paced list of @len pages gets in a batch covering @since_ms of
 * real time, so that each page is visited about once per @interval_ms.
 * *@credit carries the remainder (in page-milliseconds) from batch to
 * batch, so a short list is not visited every batch; it never exceeds one
 * interval's worth, so a list starved by other work catches up by one pass,
 * not more.  An empty list forgets its credit.
 */
unsigned long pksm_paced_take(u64 *credit, unsigned long len,
			      unsigned int since_ms, u64 interval_ms)
{
	u64 cap, take;

	if (!len) {
		*credit = 0;
		return 0;
	}
	interval_ms = max_t(u64, interval_ms, 1);
	cap = (u64)len * interval_ms;
	*credit = min(*credit + (u64)len * since_ms, cap);
	take = div64_u64(*credit, interval_ms);
	*credit -= take * interval_ms;
	return (unsigned long)take;
}

/*
 * Split a batch of @todo visits: half from the new list, half from the
 * rescan list; when one is short the other fills in.
 */
void pksm_split_batch(unsigned int todo, unsigned long avail_new,
		      unsigned long avail_rescan,
		      unsigned long *take_new, unsigned long *take_rescan)
{
	unsigned long n = min_t(unsigned long, todo - todo / 2, avail_new);
	unsigned long r = min_t(unsigned long, todo / 2, avail_rescan);
	unsigned long spare = todo - n - r;

	r += min(spare, avail_rescan - r);
	spare = todo - n - r;
	n += min(spare, avail_new - n);
	*take_new = n;
	*take_rescan = r;
}

static int pksm_cmp_u16(const void *a, const void *b)
{
	return *(const u16 *)a - *(const u16 *)b;
}

/* Pick PKSM_SAMPLE_WORDS distinct word indices of a page at random. */
void __init pksm_choose_sample(void)
{
	const u64 *zero = page_address(ZERO_PAGE(0));
	unsigned int i, j;

	for (i = 0; i < PKSM_SAMPLE_WORDS; i++) {
		u16 w;

		do {
			w = get_random_u32_below(PKSM_PAGE_WORDS);
			for (j = 0; j < i && pksm_sample[j] != w; j++)
				;
		} while (j < i);
		pksm_sample[i] = w;
	}
	sort(pksm_sample, PKSM_SAMPLE_WORDS, sizeof(u16), pksm_cmp_u16, NULL);
	pksm_hash_seed = get_random_u64();
	pksm_zero_hash = pksm_hash_words(zero, pksm_sample,
					 PKSM_SAMPLE_WORDS, pksm_hash_seed);
	pksm_zero_checksum = pksm_checksum_words(zero, pksm_hash_seed);
}
