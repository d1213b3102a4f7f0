// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of PKSM's pure logic: the sampled hash and its sample set,
 * word-wise compares, probation, the re-verify budget and the batch split.
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

static void pksm_test_words(struct kunit *test)
{
	u64 *z = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);
	u64 *a = pksm_test_page(test, 7), *b = pksm_test_page(test, 7);
	u8 *bytes;
	unsigned int off;

	KUNIT_ASSERT_NOT_NULL(test, z);
	KUNIT_EXPECT_TRUE(test, pksm_words_zero(z));
	KUNIT_EXPECT_EQ(test, pksm_zero_hash,
			pksm_hash_words(z, pksm_sample, PKSM_SAMPLE_WORDS,
					pksm_hash_seed));
	/* one byte anywhere, first and last included, makes pages differ */
	bytes = (u8 *)b;
	for (off = 0; off < PAGE_SIZE; off += 511) {
		bytes[off] ^= 1;
		KUNIT_EXPECT_FALSE(test, pksm_words_equal(a, b));
		bytes[off] ^= 1;
	}
	bytes[PAGE_SIZE - 1] ^= 1;
	KUNIT_EXPECT_FALSE(test, pksm_words_equal(a, b));
	((u8 *)z)[PAGE_SIZE - 1] = 1;
	KUNIT_EXPECT_FALSE(test, pksm_words_zero(z));
}

static void pksm_test_probation(struct kunit *test)
{
	u8 visits = PKSM_UNSEEN;
	u32 hash = 0;

	/* probation 0: a candidate at first sight */
	KUNIT_EXPECT_TRUE(test, pksm_probation_step(&visits, &hash, 5, 0));

	/* probation 3: first sight plus three unchanged visits */
	visits = PKSM_UNSEEN;
	KUNIT_EXPECT_FALSE(test, pksm_probation_step(&visits, &hash, 5, 3));
	KUNIT_EXPECT_FALSE(test, pksm_probation_step(&visits, &hash, 5, 3));
	KUNIT_EXPECT_FALSE(test, pksm_probation_step(&visits, &hash, 5, 3));
	KUNIT_EXPECT_TRUE(test, pksm_probation_step(&visits, &hash, 5, 3));

	/* a change restarts the count */
	KUNIT_EXPECT_FALSE(test, pksm_probation_step(&visits, &hash, 6, 3));
	KUNIT_EXPECT_EQ(test, visits, 0);
	KUNIT_EXPECT_EQ(test, hash, 6U);

	/* the count saturates at the largest probation, which stays reachable */
	visits = PKSM_MAX_PROBATION - 1;
	KUNIT_EXPECT_TRUE(test, pksm_probation_step(&visits, &hash, 6,
						    PKSM_MAX_PROBATION));
	KUNIT_EXPECT_TRUE(test, pksm_probation_step(&visits, &hash, 6,
						    PKSM_MAX_PROBATION));
	KUNIT_EXPECT_EQ(test, visits, PKSM_MAX_PROBATION);
}

static void pksm_test_budget(struct kunit *test)
{
	/* fewer unstable pages than a batch: all of them */
	KUNIT_EXPECT_EQ(test, pksm_reverify_budget(0, 100, 20, 10), 0UL);
	KUNIT_EXPECT_EQ(test, pksm_reverify_budget(99, 100, 20, 10), 99UL);
	/* else unshared * sleep / (period * 1000) */
	KUNIT_EXPECT_EQ(test, pksm_reverify_budget(100000, 4000, 20, 10),
			200UL);
	KUNIT_EXPECT_EQ(test, pksm_reverify_budget(1000000, 4000, 10, 10),
			1000UL);
	/* at least one page, at most one batch */
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
	KUNIT_CASE(pksm_test_probation),
	KUNIT_CASE(pksm_test_budget),
	KUNIT_CASE(pksm_test_split),
	{}
};

static struct kunit_suite pksm_test_suite = {
	.name = "pksm",
	.test_cases = pksm_test_cases,
};

kunit_test_suite(pksm_test_suite);
