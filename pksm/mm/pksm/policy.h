/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * PKSM's pure logic (policy.c): the sampled hash and its sample set,
 * word-wise compares, probation, the re-verify budget and the batch split.
 * No locks and no mm state; KUnit-tested by policy_test.c.
 */
#ifndef _MM_PKSM_POLICY_H
#define _MM_PKSM_POLICY_H

#include <linux/types.h>
#include <linux/init.h>
#include <linux/mm.h>

#define PKSM_SAMPLE_WORDS	32
#define PKSM_UNSEEN		U8_MAX	/* item->visits before the first visit */
#define PKSM_PAGE_WORDS		(PAGE_SIZE / sizeof(u64))
#define PKSM_MAX_PROBATION		(PKSM_UNSEEN - 1)
/*
 * Probation is paced: a page on back-off level L is visited every
 * probation_millisecs << L.  A visit that finds the page changed, a COW
 * break soon after a merge and a pinned page raise the level.
 */
#define PKSM_LEVELS		8
#define PKSM_MAX_BACKOFF	(PKSM_LEVELS - 1)
#define PKSM_MAX_PROBATION_MS	60000

/* Word indices hashed by the prefilter: chosen at boot, sorted, distinct. */
extern u16 pksm_sample[PKSM_SAMPLE_WORDS];
extern u64 pksm_hash_seed;
extern u32 pksm_zero_hash;
extern u32 pksm_zero_checksum;

u32 pksm_hash_words(const u64 *words, const u16 *sample, unsigned int n,
		    u64 seed);
bool pksm_words_equal(const u64 *a, const u64 *b);
int pksm_words_cmp(const u64 *a, const u64 *b);
u32 pksm_checksum_words(const u64 *words, u64 seed);
bool pksm_words_zero(const u64 *a);
bool pksm_probation_step(u8 *visits, u32 *old_sum, u32 sum, unsigned int need);
unsigned int pksm_probation_need(unsigned int probation, unsigned int backoff);
unsigned int pksm_cow_level(unsigned int prev, unsigned int age_ms,
			    unsigned int period_ms);
unsigned long pksm_reverify_budget(unsigned long unshared,
				   unsigned int pages_to_scan,
				   unsigned int sleep_ms,
				   unsigned int period_s);
unsigned long pksm_paced_take(u64 *credit, unsigned long len,
			      unsigned int since_ms, u64 interval_ms);
void pksm_split_batch(unsigned int todo, unsigned long avail_new,
		      unsigned long avail_rescan,
		      unsigned long *take_new, unsigned long *take_rescan);
void __init pksm_choose_sample(void);

#endif /* _MM_PKSM_POLICY_H */
