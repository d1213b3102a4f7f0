// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM in front of swap and zswap: pressure mode and dedup at store time
 * (see internal.h for the overview and the locks).
 *
 * Reclaim calls __pksm_reclaim_folio() for every anonymous folio it is
 * about to add to swap, and for every one already in the swap cache (read
 * back with its slot kept) that it is about to write to that slot again
 * (mm/vmscan.c shrink_folio_list(), patch 0003), with the folio locked and
 * isolated and its PTEs still in place.
 *
 *  1. Pressure: the first such call after a quiet spell enters pressure
 *     mode and wakes pksmd at once.  While reclaim keeps coming (a folio
 *     seen in the last PKSM_PRESSURE_HOLD_MS), pksmd's batch is
 *     PKSM_PRESSURE_FACTOR times pages_to_scan (at most
 *     PKSM_PRESSURE_MAX_BUDGET, never less than pages_to_scan) and a page
 *     on back-off level 0 needs no probation in it (under pressure a
 *     merge is worth more than the COW break it may cost), as long as
 *     pressure finds duplicates: the spell's first batch, then each batch
 *     after one that merged a page per PKSM_PRESSURE_YIELD of its budget.
 *
 *  2. Dedup before the store: the folio's sampled hash, then the zero page
 *     and the stable tree (a full compare of the write-protected page
 *     decides; a hash is never enough).  If an equal page is there, the
 *     folio's PTEs are pointed at it through the reverse map, as pksmd
 *     would, and reclaim frees the folio: no swap slot, no compression,
 *     no pool entry, no write, and no swap-in fault later (a folio in the
 *     swap cache gives its slot back with its last mapping, unless swap
 *     entries still name it: then reclaim writes it for them).  If an equal
 *     page waits in the unstable table, the folio's item goes to the head
 *     of the rescan list (no probation) and reclaim keeps the folio:
 *     pksmd, kicked, merges the pair at its next batch, and the KSM page
 *     is then swapped once for all its mappings.  A folio is kept at most
 *     once per pksmd visit (an item already on the rescan list is not
 *     deferred again), so reclaim always makes progress.
 *
 * The stable tree and unstable table are pksm_mutex's; reclaim must not sleep
 * on it (pksmd allocates with it held, and may be in reclaim itself), so
 * it is only tried (mutex_trylock()), and a folio met while pksmd holds it
 * is stored as before (counted in swap_busy).  The reclaimed folio stays
 * locked by reclaim throughout; the KSM page is only trylocked.
 *
 * Everything here is off with /sys/kernel/mm/pksm/swap_dedup = 0: the
 * hook returns at once, and pressure mode ends within
 * PKSM_PRESSURE_HOLD_MS.
 */

#include <linux/mm.h>
#include <linux/rmap.h>
#include <linux/ksm.h>
#include <linux/pksm.h>
#include <linux/highmem.h>
#include <linux/slab.h>
#include <linux/ktime.h>
#include <linux/kobject.h>
#include <linux/sysfs.h>
#include <linux/init.h>
#include "internal.h"

#include <trace/events/pksm.h>

/* pksmd's batch under pressure: this many times pages_to_scan ... */
#define PKSM_PRESSURE_FACTOR		4
/* ... but at most this many visits (unless pages_to_scan is larger). */
#define PKSM_PRESSURE_MAX_BUDGET	65536U
/* Pressure mode ends this long after reclaim last offered a folio. */
#define PKSM_PRESSURE_HOLD_MS		200
/*
 * A batch in pressure mode keeps the larger budget while the batch before
 * merged at least one page per this many pages of its budget.
 */
#define PKSM_PRESSURE_YIELD		32

/* /sys/kernel/mm/pksm/swap_dedup: written with WRITE_ONCE, read racily. */
bool pksm_swap_dedup = true;

/* Lockless counters, see enum pksm_swap_stat. */
atomic_long_t pksm_swap_stats[PKSM_SWAP_NR_STATS];

/* jiffies when reclaim last offered a folio (racy: a hint). */
static unsigned long pksm_pressure_seen = INITIAL_JIFFIES;
/* In pressure mode: set by the hook, cleared by pksmd (atomic bitops). */
static unsigned long pksm_pressure_flags;
#define PKSM_PRESSURE_ON	0	/* bit: pressure mode */
#define PKSM_PRESSURE_KICK	1	/* bit: pksmd to run a batch now */

static void pksm_swap_count(enum pksm_swap_stat stat)
{
	atomic_long_inc(&pksm_swap_stats[stat]);
}

/*
 * Folios the reclaim hook stored unchecked: pksm_mutex was held (by
 * pksmd's batch, a knob write or another reclaimer).
 */
unsigned long pksm_swap_turned_away(void)
{
	return atomic_long_read(&pksm_swap_stats[PKSM_SWAP_BUSY]);
}

/* Wake pksmd for a batch now (it takes the kick, pksm_swap_take_kick()). */
static void pksm_swap_kick(void)
{
	if (!test_and_set_bit(PKSM_PRESSURE_KICK, &pksm_pressure_flags))
		wake_up_interruptible(&pksm_daemon_wait);
}

/* Reclaim offered a folio: enter (or stay in) pressure mode. */
static void pksm_pressure_note(void)
{
	unsigned long now = jiffies;

	if (time_after(now, READ_ONCE(pksm_pressure_seen)))
		WRITE_ONCE(pksm_pressure_seen, now);
	if (test_bit(PKSM_PRESSURE_ON, &pksm_pressure_flags) ||
	    test_and_set_bit(PKSM_PRESSURE_ON, &pksm_pressure_flags))
		return;
	pksm_swap_count(PKSM_SWAP_PRESSURE_ENTRIES);
	pksm_swap_kick();
}

/**
 * pksm_swap_pressure() - is PKSM in pressure mode?
 *
 * Return: true while reclaim has offered a folio in the last
 * PKSM_PRESSURE_HOLD_MS (and swap_dedup is on).
 */
static bool pksm_swap_pressure(void)
{
	return test_bit(PKSM_PRESSURE_ON, &pksm_pressure_flags);
}

/**
 * pksm_swap_take_kick() - take a pending request for a batch now
 *
 * pksmd's wait condition: the hook sets the request when pressure starts
 * and when it put a page at the head of the rescan list.
 *
 * Return: true if there was one (it is cleared).
 */
bool pksm_swap_take_kick(void)
{
	return test_and_clear_bit(PKSM_PRESSURE_KICK, &pksm_pressure_flags);
}

/* (M) merges of every kind counted at pksmd's last batch, its budget */
static unsigned long pksm_pressure_merges;
static unsigned int pksm_pressure_todo;
/* (M) pksmd's last batch ran in pressure mode */
static bool pksm_pressure_was_on;
/* (M) this batch of pksmd's has the pressure budget (and no probation) */
static bool pksm_pressure_boosted;

/**
 * pksm_swap_boosted() - does pksmd's current batch work for pressure?
 *
 * pksm_mutex held (pksmd's batch).  A page on back-off level 0 visited in
 * such a batch needs no probation.
 *
 * Return: true if pksm_swap_scan_budget() gave this batch the larger
 * budget.
 */
bool pksm_swap_boosted(void)
{
	return pksm_pressure_boosted;
}

/**
 * pksm_swap_scan_budget() - the visits of pksmd's next batch
 * @todo: pages_to_scan
 *
 * Called by pksmd at the start of each batch (pksm_mutex held).  Leaves
 * pressure mode when reclaim has been quiet for PKSM_PRESSURE_HOLD_MS or
 * swap_dedup is off.  The larger budget is for pressure that finds
 * duplicates: the first batch of a pressure spell gets it, later ones only
 * while the batch before saw a merge (by pksmd or at store time) for every
 * PKSM_PRESSURE_YIELD pages of its budget; a spell of unique pages costs
 * pksmd no more than pages_to_scan a batch, with probation as usual
 * (pressure_lean_batches).
 *
 * Return: @todo, or PKSM_PRESSURE_FACTOR times @todo, at most
 * PKSM_PRESSURE_MAX_BUDGET but never less than @todo.
 */
unsigned int pksm_swap_scan_budget(unsigned int todo)
{
	unsigned long hold = msecs_to_jiffies(PKSM_PRESSURE_HOLD_MS);
	unsigned long merges = pksm_sc.nr_zero_merges +
			       pksm_sc.nr_stable_merges +
			       pksm_sc.nr_unstable_merges;
	bool fruitful = (merges - pksm_pressure_merges) * PKSM_PRESSURE_YIELD >=
			pksm_pressure_todo;
	unsigned int boosted;
	bool fresh;

	pksm_pressure_merges = merges;
	pksm_pressure_todo = todo;
	pksm_pressure_boosted = false;
	if (!pksm_swap_pressure())
		goto normal;
	if (!READ_ONCE(pksm_swap_dedup) ||
	    time_after(jiffies, READ_ONCE(pksm_pressure_seen) + hold)) {
		clear_bit(PKSM_PRESSURE_ON, &pksm_pressure_flags);
		goto normal;
	}
	fresh = !pksm_pressure_was_on;
	pksm_pressure_was_on = true;
	if (!fresh && !fruitful) {
		pksm_swap_count(PKSM_SWAP_PRESSURE_LEAN);
		return todo;
	}
	pksm_swap_count(PKSM_SWAP_PRESSURE_BATCHES);
	pksm_pressure_boosted = true;
	boosted = max(todo, min_t(unsigned int, todo * PKSM_PRESSURE_FACTOR,
				  PKSM_PRESSURE_MAX_BUDGET));
	pksm_pressure_todo = boosted;
	return boosted;
normal:
	pksm_pressure_was_on = false;
	return todo;
}

/**
 * pksm_swap_idle() - pksmd does not merge (run=0 or 2): no pressure mode
 *
 * Called by pksmd's idle upkeep (pksm_mutex held); the hook does not note
 * pressure then either.
 */
void pksm_swap_idle(void)
{
	clear_bit(PKSM_PRESSURE_ON, &pksm_pressure_flags);
	pksm_pressure_was_on = false;
	pksm_pressure_boosted = false;
}

/*
 * Does @folio have an item?  Pages of excluded VMAs and opted-out
 * processes (and, with pksm.opted_in_only=1, of memory that did not opt
 * in) never get one: they are not worth a tree walk.  A racy hint; the
 * merge checks exclusion again under the mmap lock.
 */
static bool pksm_swap_tracked(struct folio *folio)
{
	return pksm_pfn_tracked(folio_pfn(folio));
}

/*
 * The check itself: zero page, stable tree, unstable table.  @folio is
 * locked by reclaim, isolated, order 0, mapped, not a KSM page; pksm_mutex
 * held.
 */
static enum pksm_reclaim pksm_swap_check(struct folio *folio)
{
	/* LAB 7 BEGIN: zero page, stable tree: merge; unstable table: keep; else store */
	struct pksm_stable_node *node;
	struct folio *kfolio, *pfolio;
	struct pksm_item *partner;
	u32 hash = pksm_hash_folio(folio);
	unsigned int replaced;
	u64 domain;

	/*
	 * A merge counts only if it succeeded, replaced a PTE and left no
	 * mapping: a folio whose PTEs a COW fault, munmap or exit took under
	 * us is no merge (but, unmapped, has nothing to store), and one
	 * partly merged is stored with the mappings it kept.
	 */
	if (READ_ONCE(pksm_use_zero_pages) && hash == pksm_zero_hash &&
	    pksm_folio_is_zero(folio)) {
		if (pksm_merge_zero_locked(folio, &replaced) || !replaced ||
		    folio_mapped(folio))
			goto failed;
		trace_pksm_merge(folio_pfn(folio), zero_pfn(0),
				 PKSM_MERGE_ZERO);
		pksm_sc.nr_zero_merges++;
		pksm_swap_count(PKSM_SWAP_ZERO_MERGES);
		return PKSM_RECLAIM_MERGED;
	}

	/* Nothing to find: no walk for the domain. */
	if (!pksm_sc.nr_stable_nodes && !pksm_sc.nr_unstable) {
		pksm_swap_count(PKSM_SWAP_MISSES);
		return PKSM_RECLAIM_STORE;
	}
	/* Only pages of its merge domain (domain.c); @folio is locked. */
	domain = pksm_folio_domain(folio);
	if (domain == PKSM_DOMAIN_NONE || domain == PKSM_DOMAIN_MIXED) {
		pksm_swap_count(PKSM_SWAP_MISSES);
		return PKSM_RECLAIM_STORE;
	}
	node = pksm_stable_search(folio, hash, domain, &kfolio);
	if (IS_ERR(node))
		goto failed;
	if (node) {
		/* Full (max_page_sharing) or lazily freeable: not this one. */
		if (!pksm_stable_has_room(kfolio, folio)) {
			folio_put(kfolio);
		} else {
			/*
			 * The merge pksmd makes (rmap.c), with @folio
			 * locked by reclaim and the record allocated without
			 * sleeping.
			 */
			replaced = 0;
			if (pksm_merge_stable(folio, kfolio, node, true,
					      &replaced) ||
			    !replaced || folio_mapped(folio)) {
				folio_put(kfolio);
				goto failed;
			}
			trace_pksm_merge(folio_pfn(folio), folio_pfn(kfolio),
					 PKSM_MERGE_STABLE);
			folio_put(kfolio);
			pksm_sc.nr_stable_merges++;
			pksm_swap_count(PKSM_SWAP_STABLE_MERGES);
			return PKSM_RECLAIM_MERGED;
		}
	}

	/* A checksum of the whole page only if anything is filed. */
	partner = NULL;
	if (pksm_sc.nr_unstable)
		partner = pksm_unstable_search(folio,
					       pksm_checksum_folio(folio),
					       domain, &pfolio);
	if (partner) {
		/*
		 * Two pages both mapped by more mms than a claim may hold are
		 * not merged with each other (struct pksm_claim in internal.h):
		 * keeping this one for pksmd would keep it out of swap for as
		 * long as its twin waits in the table.
		 */
		bool mergeable = folio_mapcount(folio) <= PKSM_CLAIM_BATCH ||
				 folio_mapcount(pfolio) <= PKSM_CLAIM_BATCH;

		folio_put(pfolio);
		if (mergeable && pksm_rescan_first(folio)) {
			pksm_swap_count(PKSM_SWAP_DEFERRED);
			pksm_swap_kick();
			return PKSM_RECLAIM_KEEP;
		}
	}
	pksm_swap_count(PKSM_SWAP_MISSES);
	return PKSM_RECLAIM_STORE;

failed:
	pksm_swap_count(PKSM_SWAP_FAILURES);
	/* Unmapped under us (COW, munmap, exit): nothing left to store. */
	return folio_mapped(folio) ? PKSM_RECLAIM_STORE : PKSM_RECLAIM_MERGED;
	/* LAB 7 END */
}

/**
 * __pksm_reclaim_folio() - reclaim is about to add @folio to swap
 * @folio: anonymous, swap-backed, locked, isolated, in the swap cache or not
 *
 * Called by shrink_folio_list() before folio_alloc_swap() (or, for a folio in
 * the swap cache, before it is unmapped and written again), in any reclaim
 * context (direct reclaim with PF_MEMALLOC, kswapd); may not sleep on
 * pksm_mutex (see the file's comment).
 *
 * Return: PKSM_RECLAIM_MERGED if @folio's mappings now point at an equal
 * page (@folio is unmapped: reclaim frees it), PKSM_RECLAIM_KEEP if pksmd
 * was asked to merge it at its next batch, else PKSM_RECLAIM_STORE.
 */
enum pksm_reclaim __pksm_reclaim_folio(struct folio *folio)
{
	enum pksm_reclaim ret = PKSM_RECLAIM_STORE;
	u64 start;

	/* Pressure mode is pksmd's, and pksmd works only with run=1. */
	if (!READ_ONCE(pksm_swap_dedup) ||
	    READ_ONCE(pksm_run) != PKSM_RUN_MERGE)
		return PKSM_RECLAIM_STORE;
	/*
	 * An unmapped folio (in the swap cache: written back already, or
	 * pageout kept it) has no mapping to merge: not offered.
	 */
	if (!folio_mapped(folio))
		return PKSM_RECLAIM_STORE;
	start = ktime_get_ns();
	pksm_pressure_note();
	pksm_swap_count(PKSM_SWAP_OFFERED);
	if (folio_test_swapcache(folio))
		pksm_swap_count(PKSM_SWAP_CACHED);
	if (folio_test_large(folio) || folio_test_ksm(folio) ||
	    !pksm_swap_tracked(folio))
		goto out;
	if (!mutex_trylock(&pksm_mutex)) {
		/* pksmd's batch (or a knob write): store it as before. */
		pksm_swap_count(PKSM_SWAP_BUSY);
		goto out;
	}
	/* run=0 or 2 written meanwhile (under pksm_mutex): merge nothing. */
	if (pksm_run == PKSM_RUN_MERGE) {
		ret = pksm_swap_check(folio);
		pksm_swap_count(PKSM_SWAP_CHECKED);
	}
	mutex_unlock(&pksm_mutex);
out:
	atomic_long_add(ktime_get_ns() - start,
			&pksm_swap_stats[PKSM_SWAP_NS]);
	return ret;
}

/* ---- /sys/kernel/mm/pksm/: swap_dedup and the counters ---------------- */

#ifdef CONFIG_SYSFS
static ssize_t swap_dedup_show(struct kobject *kobj,
			       struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(pksm_swap_dedup));
}

static ssize_t swap_dedup_store(struct kobject *kobj,
				struct kobj_attribute *attr,
				const char *buf, size_t count)
{
	unsigned int v;

	/* Strict: "0" or "1", an optional newline; nothing else. */
	if (kstrtouint(buf, 10, &v) || v > 1)
		return -EINVAL;
	WRITE_ONCE(pksm_swap_dedup, v);
	return count;
}

static struct kobj_attribute swap_dedup_attr = __ATTR_RW(swap_dedup);

static ssize_t swap_pressure_show(struct kobject *kobj,
				  struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", pksm_swap_pressure());
}

static struct kobj_attribute swap_pressure_attr = __ATTR_RO(swap_pressure);

/**
 * struct pksm_swap_attr - a read-only file showing one swap counter
 * @attr: the sysfs attribute
 * @stat: which counter
 */
struct pksm_swap_attr {
	struct kobj_attribute attr;
	enum pksm_swap_stat stat;
};

static ssize_t pksm_swap_stat_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	struct pksm_swap_attr *a = container_of(attr, struct pksm_swap_attr,
						attr);

	return sysfs_emit(buf, "%ld\n",
			  atomic_long_read(&pksm_swap_stats[a->stat]));
}

#define PKSM_SWAP_STAT_ATTR(_name, _stat)				\
static struct pksm_swap_attr _name##_attr = {				\
	.attr = __ATTR(_name, 0444, pksm_swap_stat_show, NULL),		\
	.stat = (_stat),						\
}

PKSM_SWAP_STAT_ATTR(swap_offered, PKSM_SWAP_OFFERED);
PKSM_SWAP_STAT_ATTR(swap_cached, PKSM_SWAP_CACHED);
PKSM_SWAP_STAT_ATTR(swap_checked, PKSM_SWAP_CHECKED);
PKSM_SWAP_STAT_ATTR(swap_zero_merges, PKSM_SWAP_ZERO_MERGES);
PKSM_SWAP_STAT_ATTR(swap_stable_merges, PKSM_SWAP_STABLE_MERGES);
PKSM_SWAP_STAT_ATTR(swap_deferred, PKSM_SWAP_DEFERRED);
PKSM_SWAP_STAT_ATTR(swap_misses, PKSM_SWAP_MISSES);
PKSM_SWAP_STAT_ATTR(swap_failures, PKSM_SWAP_FAILURES);
PKSM_SWAP_STAT_ATTR(swap_busy, PKSM_SWAP_BUSY);
PKSM_SWAP_STAT_ATTR(swap_ns, PKSM_SWAP_NS);
PKSM_SWAP_STAT_ATTR(pressure_entries, PKSM_SWAP_PRESSURE_ENTRIES);
PKSM_SWAP_STAT_ATTR(pressure_batches, PKSM_SWAP_PRESSURE_BATCHES);
PKSM_SWAP_STAT_ATTR(pressure_lean_batches, PKSM_SWAP_PRESSURE_LEAN);

static struct attribute *pksm_swap_attrs[] = {
	&swap_dedup_attr.attr,
	&swap_pressure_attr.attr,
	&swap_offered_attr.attr.attr,
	&swap_cached_attr.attr.attr,
	&swap_checked_attr.attr.attr,
	&swap_zero_merges_attr.attr.attr,
	&swap_stable_merges_attr.attr.attr,
	&swap_deferred_attr.attr.attr,
	&swap_misses_attr.attr.attr,
	&swap_failures_attr.attr.attr,
	&swap_busy_attr.attr.attr,
	&swap_ns_attr.attr.attr,
	&pressure_entries_attr.attr.attr,
	&pressure_batches_attr.attr.attr,
	&pressure_lean_batches_attr.attr.attr,
	NULL,
};

/* Merged into the "pksm" group sysfs.c registers (subsys_initcall). */
static const struct attribute_group pksm_swap_attr_group = {
	.attrs = pksm_swap_attrs,
	.name = "pksm",
};

static int __init pksm_swap_init(void)
{
	int err = sysfs_merge_group(mm_kobj, &pksm_swap_attr_group);

	if (err)
		pr_err("pksm: registering the swap files failed (%d)\n", err);
	return err;
}
late_initcall(pksm_swap_init);
#endif /* CONFIG_SYSFS */
