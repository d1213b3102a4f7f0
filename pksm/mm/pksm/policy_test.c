// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of PKSM's pure logic: the sampled hash and its sample set,
 * word-wise compares, content order and checksum, probation and its
 * back-off, the re-verify budget and the batch split.
 * Built as its own object (CONFIG_PKSM_KUNIT_TEST) against policy.h; run at
 * boot, their KTAP output is checked by the testbed.
 */

#include <kunit/test.h>
#include <linux/mm.h>
#include "policy.h"

static u64 *pksm_test_page(struct kunit *test, u64 seed)
{
	u64 *w = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);
	unsigned int i;

	KUNIT_ASSERT_NOT_NULL(test, w);
	for (i = 0; i < PKSM_PAGE_WORDS; i++)
		w[i] = seed * 0x100000001b3ULL + i * 0x9e3779b97f4a7c15ULL;
	return w;
}

static bool pksm_test_sampled(unsigned int word)
{
	unsigned int i;

	for (i = 0; i < PKSM_SAMPLE_WORDS; i++)
		if (pksm_sample[i] == word)
			return true;
	return false;
}

static void pksm_test_sample_set(struct kunit *test)
{
	unsigned int i;

	for (i = 0; i < PKSM_SAMPLE_WORDS; i++) {
		KUNIT_EXPECT_LT(test, pksm_sample[i], PKSM_PAGE_WORDS);
		if (i)	/* sorted and distinct */
			KUNIT_EXPECT_LT(test, pksm_sample[i - 1], pksm_sample[i]);
	}
}

static void pksm_test_hash(struct kunit *test)
{
	u64 *a = pksm_test_page(test, 1), *b = pksm_test_page(test, 1);
	u32 ha = pksm_hash_words(a, pksm_sample, PKSM_SAMPLE_WORDS,
				 pksm_hash_seed);
	unsigned int unsampled = 0;

	/* equal content, equal hash */
	KUNIT_EXPECT_EQ(test, ha, pksm_hash_words(b, pksm_sample,
						  PKSM_SAMPLE_WORDS,
						  pksm_hash_seed));
	/* a change in a sampled word changes the hash */
	b[pksm_sample[PKSM_SAMPLE_WORDS / 2]] ^= 1;
	KUNIT_EXPECT_NE(test, ha, pksm_hash_words(b, pksm_sample,
						  PKSM_SAMPLE_WORDS,
						  pksm_hash_seed));
	KUNIT_EXPECT_FALSE(test, pksm_words_equal(a, b));
	b[pksm_sample[PKSM_SAMPLE_WORDS / 2]] ^= 1;
	KUNIT_EXPECT_TRUE(test, pksm_words_equal(a, b));

	/*
	 * A change outside the sample keeps the hash: only the full compare
	 * tells these pages apart (a hash false positive by design).
	 */
	while (pksm_test_sampled(unsampled))
		unsampled++;
	b[unsampled] ^= 0x80;
	KUNIT_EXPECT_EQ(test, ha, pksm_hash_words(b, pksm_sample,
						  PKSM_SAMPLE_WORDS,
						  pksm_hash_seed));
	KUNIT_EXPECT_FALSE(test, pksm_words_equal(a, b));
}

/*
 * Every word position of a page, each of the four unrolled lanes included:
 * a changed byte in any word makes pages unequal, orders them by that word,
 * makes a zero page non-zero and changes the full checksum.
 */
static void pksm_test_words(struct kunit *test)
{
	u64 *z = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);
	u64 *a = pksm_test_page(test, 7), *b = pksm_test_page(test, 7);
	u32 sum = pksm_checksum_words(a, pksm_hash_seed);
	unsigned int w;

	KUNIT_ASSERT_NOT_NULL(test, z);
	KUNIT_EXPECT_TRUE(test, pksm_words_zero(z));
	KUNIT_EXPECT_EQ(test, pksm_zero_hash,
			pksm_hash_words(z, pksm_sample, PKSM_SAMPLE_WORDS,
					pksm_hash_seed));
	KUNIT_EXPECT_EQ(test, pksm_zero_checksum,
			pksm_checksum_words(z, pksm_hash_seed));
	KUNIT_EXPECT_TRUE(test, pksm_words_equal(a, b));
	KUNIT_EXPECT_EQ(test, pksm_words_cmp(a, b), 0);
	KUNIT_EXPECT_EQ(test, sum, pksm_checksum_words(b, pksm_hash_seed));
	for (w = 0; w < PKSM_PAGE_WORDS; w++) {
		u64 old = b[w];

		b[w] = old + (1ULL << (8 * (w % 8)));	/* one byte, varying */
		KUNIT_EXPECT_FALSE(test, pksm_words_equal(a, b));
		KUNIT_EXPECT_NE(test, sum, pksm_checksum_words(b, pksm_hash_seed));
		KUNIT_EXPECT_EQ(test, pksm_words_cmp(a, b), old < b[w] ? -1 : 1);
		KUNIT_EXPECT_EQ(test, pksm_words_cmp(b, a), old < b[w] ? 1 : -1);
		b[w] = old;

		z[w] = 1ULL << (8 * (w % 8));
		KUNIT_EXPECT_FALSE(test, pksm_words_zero(z));
		z[w] = 0;
	}
	KUNIT_EXPECT_TRUE(test, pksm_words_equal(a, b));
	KUNIT_EXPECT_TRUE(test, pksm_words_zero(z));
}

/* The first differing word decides the order, not the later ones. */
static void pksm_test_order(struct kunit *test)
{
	u64 *a = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);
	u64 *b = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, a);
	KUNIT_ASSERT_NOT_NULL(test, b);
	a[5] = 1;
	b[5] = 2;
	a[6] = ~0ULL;		/* later words do not matter */
	KUNIT_EXPECT_LT(test, pksm_words_cmp(a, b), 0);
	KUNIT_EXPECT_GT(test, pksm_words_cmp(b, a), 0);
	b[5] = 1;
	KUNIT_EXPECT_GT(test, pksm_words_cmp(a, b), 0);
	/* unsigned: the top bit set is larger */
	a[6] = 0;
	b[PKSM_PAGE_WORDS - 1] = 1ULL << 63;
	KUNIT_EXPECT_LT(test, pksm_words_cmp(a, b), 0);
}

static void pksm_test_probation(struct kunit *test)
{
	u8 visits = PKSM_UNSEEN;
	u32 sum = 0;

	/* probation 0: a candidate at first sight */
	KUNIT_EXPECT_TRUE(test, pksm_probation_step(&visits, &sum, 5, 0));

	/* probation 3: first sight plus three unchanged visits */
	visits = PKSM_UNSEEN;
	KUNIT_EXPECT_FALSE(test, pksm_probation_step(&visits, &sum, 5, 3));
	KUNIT_EXPECT_FALSE(test, pksm_probation_step(&visits, &sum, 5, 3));
	KUNIT_EXPECT_FALSE(test, pksm_probation_step(&visits, &sum, 5, 3));
	KUNIT_EXPECT_TRUE(test, pksm_probation_step(&visits, &sum, 5, 3));

	/* a change restarts the count */
	KUNIT_EXPECT_FALSE(test, pksm_probation_step(&visits, &sum, 6, 3));
	KUNIT_EXPECT_EQ(test, visits, 0);
	KUNIT_EXPECT_EQ(test, sum, 6U);

	/* the count saturates at the largest probation, which stays reachable */
	visits = PKSM_MAX_PROBATION - 1;
	KUNIT_EXPECT_TRUE(test, pksm_probation_step(&visits, &sum, 6,
						    PKSM_MAX_PROBATION));
	KUNIT_EXPECT_TRUE(test, pksm_probation_step(&visits, &sum, 6,
						    PKSM_MAX_PROBATION));
	KUNIT_EXPECT_EQ(test, visits, PKSM_MAX_PROBATION);
}

/*
 * Back-off: a page on a back-off level needs two unchanged visits even
 * with probation 0; a COW copy's level climbs while its place keeps
 * breaking soon after merges; and the visits of a paced list are spread
 * so that each page is visited once per interval, whatever the list's
 * length and however the batches fall.
 */
static void pksm_test_backoff(struct kunit *test)
{
	unsigned long total = 0;
	u64 credit = 0;
	unsigned int b, i;

	KUNIT_EXPECT_EQ(test, pksm_probation_need(3, 0), 3U);
	KUNIT_EXPECT_EQ(test, pksm_probation_need(0, 0), 0U);
	KUNIT_EXPECT_EQ(test, pksm_probation_need(0, 1), 2U);
	KUNIT_EXPECT_EQ(test, pksm_probation_need(3, 1), 3U);
	KUNIT_EXPECT_EQ(test, pksm_probation_need(1, PKSM_MAX_BACKOFF), 2U);
	for (b = 0; b <= PKSM_MAX_BACKOFF + 2; b++)
		KUNIT_EXPECT_LE(test, pksm_probation_need(PKSM_MAX_PROBATION + 9,
							  b),
				(unsigned int)PKSM_MAX_PROBATION);

	/* COW copies: two levels up per break soon after a merge, capped */
	KUNIT_EXPECT_EQ(test, pksm_cow_level(0, 5, 10000), 2U);
	KUNIT_EXPECT_EQ(test, pksm_cow_level(2, 10000, 10000), 4U);
	KUNIT_EXPECT_EQ(test, pksm_cow_level(6, 0, 10000), (unsigned int)PKSM_MAX_BACKOFF);
	KUNIT_EXPECT_EQ(test, pksm_cow_level(PKSM_MAX_BACKOFF, 1, 10000),
			(unsigned int)PKSM_MAX_BACKOFF);
	/* and a place that stayed merged longer than a period starts over */
	KUNIT_EXPECT_EQ(test, pksm_cow_level(PKSM_MAX_BACKOFF, 10001, 10000), 0U);
	KUNIT_EXPECT_EQ(test, pksm_cow_level(0, 60000, 10000), 0U);

	/* 100 pages, one visit each per 1000 ms, batches 10 ms apart */
	for (i = 0; i < 100; i++)
		total += pksm_paced_take(&credit, 100, 10, 1000);
	KUNIT_EXPECT_EQ(test, total, 100UL);
	/* 3 pages, 250 ms: no visit every batch, 12 in a second */
	credit = 0;
	total = 0;
	KUNIT_EXPECT_EQ(test, pksm_paced_take(&credit, 3, 10, 250), 0UL);
	for (i = 1; i < 100; i++)
		total += pksm_paced_take(&credit, 3, 10, 250);
	KUNIT_EXPECT_EQ(test, total, 12UL);
	/* a starved list catches up by one pass at most */
	credit = 0;
	KUNIT_EXPECT_EQ(test, pksm_paced_take(&credit, 50, 60000, 1000), 50UL);
	KUNIT_EXPECT_EQ(test, credit, 0ULL);
	/* an empty list forgets its credit; a zero interval counts as 1 ms */
	credit = 999;
	KUNIT_EXPECT_EQ(test, pksm_paced_take(&credit, 0, 10, 1000), 0UL);
	KUNIT_EXPECT_EQ(test, credit, 0ULL);
	KUNIT_EXPECT_EQ(test, pksm_paced_take(&credit, 7, 3, 0), 7UL);
}

static void pksm_test_budget(struct kunit *test)
{
	/* nothing to re-verify, or no batch at all */
	KUNIT_EXPECT_EQ(test, pksm_reverify_budget(0, 100, 20, 10), 0UL);
	KUNIT_EXPECT_EQ(test, pksm_reverify_budget(50, 0, 20, 10), 0UL);
	/*
	 * unshared * sleep / (period * 1000), rounded up, whatever the size:
	 * a small tree is not re-read every wake-up
	 */
	KUNIT_EXPECT_EQ(test, pksm_reverify_budget(99, 100, 20, 10), 1UL);
	KUNIT_EXPECT_EQ(test, pksm_reverify_budget(3000, 4000, 10, 10), 3UL);
	KUNIT_EXPECT_EQ(test, pksm_reverify_budget(100000, 4000, 20, 10),
			200UL);
	KUNIT_EXPECT_EQ(test, pksm_reverify_budget(1000000, 4000, 10, 10),
			1000UL);
	/* at least one page while there are any, at most one batch */
	KUNIT_EXPECT_EQ(test, pksm_reverify_budget(100, 100, 1, 3600), 1UL);
	KUNIT_EXPECT_EQ(test, pksm_reverify_budget(10000000, 4000, 1000, 1),
			4000UL);
	/* sleep_millisecs = 0 counts as 1 ms */
	KUNIT_EXPECT_EQ(test, pksm_reverify_budget(20000, 100, 0, 10), 2UL);
}

static void pksm_test_split(struct kunit *test)
{
	unsigned long n, r;

	pksm_split_batch(100, 1000, 1000, &n, &r);
	KUNIT_EXPECT_EQ(test, n, 50UL);
	KUNIT_EXPECT_EQ(test, r, 50UL);
	pksm_split_batch(101, 1000, 1000, &n, &r);
	KUNIT_EXPECT_EQ(test, n + r, 101UL);
	/* one list short: the other fills in */
	pksm_split_batch(100, 10, 1000, &n, &r);
	KUNIT_EXPECT_EQ(test, n, 10UL);
	KUNIT_EXPECT_EQ(test, r, 90UL);
	pksm_split_batch(100, 1000, 0, &n, &r);
	KUNIT_EXPECT_EQ(test, n, 100UL);
	KUNIT_EXPECT_EQ(test, r, 0UL);
	/* both short */
	pksm_split_batch(100, 3, 4, &n, &r);
	KUNIT_EXPECT_EQ(test, n, 3UL);
	KUNIT_EXPECT_EQ(test, r, 4UL);
	pksm_split_batch(0, 3, 4, &n, &r);
	KUNIT_EXPECT_EQ(test, n + r, 0UL);
}

static struct kunit_case pksm_test_cases[] = {
	KUNIT_CASE(pksm_test_sample_set),
	KUNIT_CASE(pksm_test_hash),
	KUNIT_CASE(pksm_test_words),
	KUNIT_CASE(pksm_test_order),
	KUNIT_CASE(pksm_test_probation),
	KUNIT_CASE(pksm_test_backoff),
	KUNIT_CASE(pksm_test_budget),
	KUNIT_CASE(pksm_test_split),
	{}
};

static struct kunit_suite pksm_test_suite = {
	.name = "pksm",
	.test_cases = pksm_test_cases,
};

kunit_test_suite(pksm_test_suite);
