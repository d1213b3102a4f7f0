// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: write-protect and replace through the reverse map, merging, and
 * the daemon pksmd (see internal.h for the overview and the locks).
 */

#include <linux/mm.h>
#include <linux/rmap.h>
#include <linux/ksm.h>
#include <linux/kthread.h>
#include <linux/freezer.h>
#include <linux/wait.h>
#include <linux/slab.h>
#include <linux/highmem.h>
#include <linux/mmu_notifier.h>
#include <linux/swap.h>
#include <linux/ktime.h>
#include <linux/sched/mm.h>
#include <linux/sched/coredump.h>
#include <asm/tlbflush.h>
#include "internal.h"

#define CREATE_TRACE_POINTS
#include <trace/events/pksm.h>

#define PKSM_PRUNE_NODES		64	/* stable nodes pruned per batch */

/*
 * Outermost PKSM lock: pksmd's batch, the trees, the unstable FIFO, stable
 * node fields other than ->mappings, knobs and pksm_sc.  Taken before any
 * folio lock, anon_vma lock, page table lock and pksm_lock; see internal.h.
 */
DEFINE_MUTEX(pksm_mutex);

/* (M) */
struct pksm_scan_counts pksm_sc;

DECLARE_WAIT_QUEUE_HEAD(pksm_daemon_wait);

/* ---- page helpers ------------------------------------------------------ */

static u32 pksm_hash_folio(struct folio *folio)
{
	const u64 *words = kmap_local_folio(folio, 0);
	u32 h = pksm_hash_words(words, pksm_sample, PKSM_SAMPLE_WORDS,
				pksm_hash_seed);

	kunmap_local(words);
	return h;
}

static bool pksm_folios_equal(struct folio *a, struct folio *b)
{
	const u64 *wa = kmap_local_folio(a, 0);
	const u64 *wb = kmap_local_folio(b, 0);
	bool eq = pksm_words_equal(wa, wb);

	kunmap_local(wb);
	kunmap_local(wa);
	return eq;
}

static bool pksm_folio_is_zero(struct folio *folio)
{
	const u64 *w = kmap_local_folio(folio, 0);
	bool zero = pksm_words_zero(w);

	kunmap_local(w);
	return zero;
}

/* ---- write-protect and replace through the reverse map ----------------- */

struct pksm_walk {
	struct folio *kfolio;	/* the KSM page, or NULL for the zero page */
	int err;
};

/*
 * rmap_one: make @folio's PTE in @vma read-only and clean, unless someone
 * holds a reference that is not a mapping (GUP pin, O_DIRECT): then stop.
 */
static bool pksm_wrprotect_one(struct folio *folio, struct vm_area_struct *vma,
			       unsigned long addr, void *arg)
{
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, addr, 0);
	struct pksm_walk *walk = arg;
	struct mm_struct *mm = vma->vm_mm;
	struct mmu_notifier_range range;
	bool ok = true;

	if (pksm_vma_excluded(vma)) {
		walk->err = -EPERM;	/* the page is not ours to merge */
		return false;
	}
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, addr,
				addr + PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	while (page_vma_mapped_walk(&pvmw)) {
		pte_t entry;
		bool exclusive;

		if (!pvmw.pte) {	/* PMD mapped: not on UML, refuse */
			ok = false;
			page_vma_mapped_walk_done(&pvmw);
			break;
		}
		/*
		 * Mark the mm before any of its PTEs can map a KSM page (this
		 * page may become one in place): ksm_fork() and ksm_exit()
		 * keep zero-page counts of marked mms only, and run=2 unmerges
		 * marked mms only.
		 */
		if (!test_bit(MMF_VM_MERGEABLE, &mm->flags))
			set_bit(MMF_VM_MERGEABLE, &mm->flags);
		entry = ptep_get(pvmw.pte);
		exclusive = PageAnonExclusive(&folio->page);
		if (!pte_write(entry) && !pte_dirty(entry) && !exclusive &&
		    !mm_tlb_flush_pending(mm))
			continue;
		flush_cache_page(vma, pvmw.address, folio_pfn(folio));
		/*
		 * Clear and flush first, so no GUP-fast can take a new
		 * reference through this PTE, then count references: every
		 * mapping, ours, and the swap cache's.
		 */
		entry = ptep_clear_flush(vma, pvmw.address, pvmw.pte);
		if (folio_ref_count(folio) != folio_mapcount(folio) + 1 +
		    folio_test_swapcache(folio) ||
		    (exclusive &&
		     folio_try_share_anon_rmap_pte(folio, &folio->page))) {
			set_pte_at(mm, pvmw.address, pvmw.pte, entry);
			ok = false;
			page_vma_mapped_walk_done(&pvmw);
			break;
		}
		if (pte_dirty(entry))
			folio_mark_dirty(folio);
		entry = pte_wrprotect(pte_mkclean(entry));
		set_pte_at(mm, pvmw.address, pvmw.pte, entry);
	}
	mmu_notifier_invalidate_range_end(&range);
	if (!ok)
		walk->err = -EBUSY;
	return ok;
}

/* rmap_one: point @folio's read-only PTE in @vma at the merge target. */
static bool pksm_replace_one(struct folio *folio, struct vm_area_struct *vma,
			     unsigned long addr, void *arg)
{
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, addr, 0);
	struct pksm_walk *walk = arg;
	struct mm_struct *mm = vma->vm_mm;
	struct mmu_notifier_range range;

	/*
	 * Hold off fork (which holds the mmap lock for writing while it
	 * copies the mm and its zero-page count): a zero page merged in
	 * between would reach the child uncounted.  Only a trylock: we are
	 * under the anon_vma lock, which nests inside the mmap lock.
	 */
	if (!mmap_read_trylock(mm)) {
		walk->err = -EBUSY;
		return true;
	}
	/*
	 * Exclusion is set under the mmap lock held for writing, after the
	 * range was unmerged: checked again here, where it cannot change.
	 */
	if (pksm_vma_excluded(vma)) {
		walk->err = -EPERM;
		mmap_read_unlock(mm);
		return true;
	}
	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, addr,
				addr + PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	while (page_vma_mapped_walk(&pvmw)) {
		pte_t newpte;

		if (!pvmw.pte || pte_write(ptep_get(pvmw.pte))) {
			/* Cannot happen with the folio locked: be safe. */
			walk->err = -EBUSY;
			continue;
		}
		if (walk->kfolio) {
			struct page *kpage = &walk->kfolio->page;

			folio_get(walk->kfolio);
			folio_add_anon_rmap_pte(walk->kfolio, kpage, vma,
						pvmw.address, RMAP_NONE);
			newpte = mk_pte(kpage, vma->vm_page_prot);
		} else {
			unsigned long zpfn = my_zero_pfn(pvmw.address);

			/* A dirty special zero PTE marks a merged zero page. */
			newpte = pfn_pte(zpfn, vma->vm_page_prot);
			newpte = pte_mkdirty(pte_mkspecial(newpte));
			ksm_map_zero_page(mm);
			dec_mm_counter(mm, MM_ANONPAGES);
		}
		/* Marked by pksm_wrprotect_one() already. */
		flush_cache_page(vma, pvmw.address, folio_pfn(folio));
		ptep_clear_flush(vma, pvmw.address, pvmw.pte);
		set_pte_at(mm, pvmw.address, pvmw.pte, newpte);
		folio_remove_rmap_pte(folio, &folio->page, vma);
		folio_put(folio);	/* the reference of the replaced PTE */
	}
	mmu_notifier_invalidate_range_end(&range);
	mmap_read_unlock(mm);
	return true;
}

static int pksm_folio_unmapped(struct folio *folio)
{
	return !folio_mapped(folio);
}

/* Write-protect every PTE of @folio (locked, referenced). */
static int pksm_wrprotect(struct folio *folio)
{
	struct pksm_walk walk = { .err = 0 };
	struct rmap_walk_control rwc = {
		.rmap_one = pksm_wrprotect_one,
		.arg = &walk,
	};

	if (folio_test_large(folio) || !folio_mapped(folio))
		return -EBUSY;
	rmap_walk(folio, &rwc);
	return walk.err;
}

/*
 * Replace every PTE of @folio (locked, referenced, write-protected) by
 * @kfolio (locked) or the zero page.  Returns 0 if no mapping of @folio is
 * left.  A partial replacement is still correct: the remaining PTEs map a
 * page with the same content, and it will be tried again.
 */
static int pksm_replace(struct folio *folio, struct folio *kfolio)
{
	struct pksm_walk walk = { .kfolio = kfolio, .err = 0 };
	struct rmap_walk_control rwc = {
		.rmap_one = pksm_replace_one,
		.done = pksm_folio_unmapped,
		.arg = &walk,
	};

	rmap_walk(folio, &rwc);
	if (folio_mapped(folio))
		return -EBUSY;
	folio_free_swap(folio);
	return walk.err;
}

/* ---- merging ------------------------------------------------------------ */

/* Merge @folio (referenced) with the zero page. */
static int pksm_merge_zero(struct folio *folio)
{
	int err;

	if (!folio_trylock(folio))
		return -EAGAIN;
	err = pksm_wrprotect(folio);
	if (!err && !pksm_folio_is_zero(folio))
		err = -ENOENT;		/* written since we looked */
	if (!err)
		err = pksm_replace(folio, NULL);
	folio_unlock(folio);
	return err;
}

/*
 * Find a KSM page with @folio's content.  Returns it referenced, with its
 * node, or NULL; *full is set if equal pages exist but all are at
 * max_page_sharing.
 */
static struct folio *pksm_stable_find(struct folio *folio, u32 hash,
				      struct pksm_stable_node **nodep,
				      bool *full)
{
	struct rb_node *n;

	for (n = pksm_stable_first(hash); n; n = rb_next(n)) {
		struct pksm_stable_node *node =
			rb_entry(n, struct pksm_stable_node, rb);
		struct folio *kfolio;

		if (node->hash != hash)
			break;
		kfolio = pksm_node_folio(node);
		if (!kfolio)
			continue;	/* stale: its release is queued */
		if (!pksm_folios_equal(folio, kfolio)) {
			pksm_sc.nr_false_positives++;
			trace_pksm_hash_false_positive(folio_pfn(folio),
						       folio_pfn(kfolio));
			folio_put(kfolio);
			continue;
		}
		if (folio_mapcount(kfolio) + folio_mapcount(folio) >
		    READ_ONCE(pksm_max_page_sharing)) {
			*full = true;
			folio_put(kfolio);
			continue;
		}
		*nodep = node;
		return kfolio;
	}
	return NULL;
}

/* Merge @folio (referenced) into the KSM page @kfolio (referenced). */
static int pksm_merge_stable(struct folio *folio, struct folio *kfolio,
			     struct pksm_stable_node *node)
{
	struct pksm_mapping *map;
	int err = -EAGAIN;

	map = kmem_cache_alloc(pksm_mapping_cache, GFP_KERNEL);
	if (!map)
		return -ENOMEM;
	if (!folio_trylock(folio))
		goto out_free;
	if (!folio_trylock(kfolio))
		goto out_unlock;
	err = pksm_wrprotect(folio);
	if (!err && !pksm_folios_equal(folio, kfolio))
		err = -ENOENT;		/* written since we compared */
	if (!err) {
		pksm_node_add_mapping(node, folio, map);
		map = NULL;
		err = pksm_replace(folio, kfolio);
	}
	folio_unlock(kfolio);
out_unlock:
	folio_unlock(folio);
out_free:
	if (map)
		kmem_cache_free(pksm_mapping_cache, map);
	return err;
}

/*
 * Find an unstable page with @folio's content.  Returns its item, with the
 * page referenced in *pfolio, or NULL.
 */
static struct pksm_item *pksm_unstable_find(struct pksm_item *item,
					    struct folio *folio, u32 hash,
					    struct folio **pfolio)
{
	struct rb_node *n;

	for (n = pksm_unstable_first(hash); n; n = rb_next(n)) {
		struct pksm_unode *u = rb_entry(n, struct pksm_unode, rb);
		struct pksm_item *p = u->item;
		struct folio *pf;

		if (p->hash != hash)
			break;
		if (p == item)
			continue;
		pf = pksm_item_folio(p);
		if (!pf)
			continue;	/* dead: re-verification releases it */
		if (!pksm_folios_equal(folio, pf)) {
			pksm_sc.nr_false_positives++;
			trace_pksm_hash_false_positive(folio_pfn(folio),
						       folio_pfn(pf));
			folio_put(pf);
			continue;
		}
		*pfolio = pf;
		return p;
	}
	return NULL;
}

/*
 * Merge two equal unstable pages: @pfolio becomes a KSM page in place and
 * @folio's mappings move to it.  Both referenced.  Returns 0 when both are
 * merged, 1 when @pfolio became a KSM page but a mapping of @folio could
 * not be replaced yet, or a negative error when nothing changed (-EXDEV:
 * @pfolio is excluded from merging, -EPERM: @folio is).
 */
static int pksm_merge_pair(struct folio *folio, struct folio *pfolio, u32 hash)
{
	struct pksm_stable_node *node;
	struct pksm_mapping *pmap, *map;
	int err = -ENOMEM;

	node = kmem_cache_zalloc(pksm_node_cache, GFP_KERNEL);
	pmap = kmem_cache_alloc(pksm_mapping_cache, GFP_KERNEL);
	map = kmem_cache_alloc(pksm_mapping_cache, GFP_KERNEL);
	if (!node || !pmap || !map)
		goto out_free;
	err = -EAGAIN;
	if (!folio_trylock(pfolio))
		goto out_free;
	if (!folio_trylock(folio))
		goto out_unlock_p;
	err = pksm_wrprotect(pfolio);
	if (err == -EPERM)
		err = -EXDEV;		/* the partner is excluded */
	if (!err)
		err = pksm_wrprotect(folio);
	if (!err && !pksm_folios_equal(folio, pfolio))
		err = -ENOENT;		/* one of them was written */
	if (err)
		goto out_unlock;

	/* Both are read-only and equal: @pfolio becomes the KSM page. */
	INIT_HLIST_HEAD(&node->mappings);
	node->kpfn = folio_pfn(pfolio);
	node->hash = hash;
	pksm_node_add_mapping(node, pfolio, pmap);
	pmap = NULL;
	pksm_set_folio_node(pfolio, node);
	/* Reclaim must write a KSM page to swap, never drop it as clean. */
	if (!folio_test_dirty(pfolio))
		folio_set_dirty(pfolio);
	folio_mark_accessed(pfolio);
	pksm_stable_insert(node);
	node = NULL;

	pksm_node_add_mapping(folio_raw_mapping(pfolio), folio, map);
	map = NULL;
	err = pksm_replace(folio, pfolio) ? 1 : 0;
out_unlock:
	folio_unlock(folio);
out_unlock_p:
	folio_unlock(pfolio);
out_free:
	if (map)
		kmem_cache_free(pksm_mapping_cache, map);
	if (pmap)
		kmem_cache_free(pksm_mapping_cache, pmap);
	if (node)
		kmem_cache_free(pksm_node_cache, node);
	return err;
}

/* The page of a visit is excluded from merging: drop its item. */
static enum pksm_outcome pksm_excluded(void)
{
	atomic_long_inc(&pksm_nr_excluded);
	return PKSM_OUT_RELEASE;
}

/* A candidate: stable tree, then unstable tree.  @folio is referenced. */
static enum pksm_outcome pksm_try_merge(struct pksm_item *item,
					struct folio *folio, u32 hash)
{
	struct pksm_stable_node *node;
	struct pksm_item *partner;
	struct folio *kfolio, *pfolio;
	bool full = false;
	int err;

	kfolio = pksm_stable_find(folio, hash, &node, &full);
	if (kfolio) {
		err = pksm_merge_stable(folio, kfolio, node);
		if (!err)
			trace_pksm_merge(folio_pfn(folio), folio_pfn(kfolio),
					 PKSM_MERGE_STABLE);
		folio_put(kfolio);
		if (!err) {
			pksm_sc.nr_stable_merges++;
			return PKSM_OUT_RELEASE;
		}
		if (err == -EPERM)
			return pksm_excluded();
		pksm_sc.nr_merge_failures++;
		return PKSM_OUT_RESCAN;
	}

	partner = pksm_unstable_find(item, folio, hash, &pfolio);
	if (!partner)
		return PKSM_OUT_UNSTABLE;
	err = pksm_merge_pair(folio, pfolio, hash);
	if (!err)
		trace_pksm_merge(folio_pfn(folio), folio_pfn(pfolio),
				 PKSM_MERGE_UNSTABLE);
	folio_put(pfolio);
	if (err == -EPERM)
		return pksm_excluded();
	if (err == -EXDEV) {
		/* The partner may never merge: out of the tree with it. */
		pksm_unstable_remove(partner);
		pksm_item_finish(partner, pksm_excluded());
		return PKSM_OUT_RESCAN;
	}
	if (err < 0) {
		pksm_sc.nr_merge_failures++;
		return PKSM_OUT_RESCAN;
	}
	/* The partner is a KSM page now: it leaves the unstable tree. */
	pksm_unstable_remove(partner);
	pksm_item_finish(partner, PKSM_OUT_RELEASE);
	if (full)
		pksm_sc.nr_dups++;
	if (err) {		/* @folio keeps a mapping: try again later */
		pksm_sc.nr_merge_failures++;
		return PKSM_OUT_RESCAN;
	}
	pksm_sc.nr_unstable_merges++;
	return PKSM_OUT_RELEASE;
}

/* One visit of an item taken off the new (@from_new) or rescan list. */
static void pksm_visit(struct pksm_item *item, bool from_new)
{
	enum pksm_outcome out = from_new ? PKSM_OUT_NEW : PKSM_OUT_RESCAN;
	struct folio *folio = pksm_item_folio(item);
	u32 hash;

	if (!folio) {
		pksm_item_finish(item, PKSM_OUT_RELEASE);
		return;
	}
	if (!folio_mapped(folio)) {
		/* Born but its PTE not set yet, or being unmapped. */
		pksm_sc.nr_deferred++;
		goto out;
	}
	hash = pksm_hash_folio(folio);
	pksm_sc.pages_scanned++;

	if (READ_ONCE(pksm_use_zero_pages) && hash == pksm_zero_hash &&
	    pksm_folio_is_zero(folio)) {
		int err = pksm_merge_zero(folio);

		if (!err) {
			trace_pksm_merge(folio_pfn(folio), my_zero_pfn(0),
					 PKSM_MERGE_ZERO);
			pksm_sc.nr_zero_merges++;
			out = PKSM_OUT_RELEASE;
		} else if (err == -EPERM) {
			out = pksm_excluded();
		} else {
			pksm_sc.nr_merge_failures++;
			out = PKSM_OUT_RESCAN;
		}
		goto out;
	}
	if (from_new) {
		if (!pksm_probation_step(&item->visits, &item->hash, hash,
					 READ_ONCE(pksm_probation_scans)))
			goto out;
		trace_pksm_probation_passed(item->pfn, item->visits);
	}
	item->hash = hash;
	out = pksm_try_merge(item, folio, hash);
out:
	folio_put(folio);
	if (pksm_item_finish(item, out) && pksm_unstable_insert(item)) {
		/* No memory for a tree node: try again later. */
		pksm_item_finish(item, PKSM_OUT_RESCAN);
	}
}

/* Re-hash unstable pages in FIFO order; changed ones go to rescan. */
static void pksm_reverify(unsigned long budget)
{
	while (budget-- && !list_empty(&pksm_unstable_fifo)) {
		struct pksm_item *item = list_first_entry(&pksm_unstable_fifo,
							  struct pksm_item,
							  link);
		struct folio *folio = pksm_item_folio(item);
		u32 hash;

		if (!folio) {
			pksm_unstable_remove(item);
			pksm_item_finish(item, PKSM_OUT_RELEASE);
			continue;
		}
		hash = pksm_hash_folio(folio);
		folio_put(folio);
		pksm_sc.pages_scanned++;
		pksm_sc.nr_reverified++;
		if (hash == item->hash) {
			list_move_tail(&item->link, &pksm_unstable_fifo);
			continue;
		}
		pksm_sc.nr_reverify_changed++;
		trace_pksm_reverify_changed(item->pfn);
		pksm_unstable_remove(item);
		item->hash = hash;
		item->visits = 0;
		pksm_item_finish(item, PKSM_OUT_RESCAN);
	}
}

/* Free the items of freed pages that the free hook put on the del list. */
static void pksm_release_dead_items(void)
{
	struct pksm_item *item, *tmp;
	unsigned long flags;
	LIST_HEAD(dead);

	spin_lock_irqsave(&pksm_lock, flags);
	list_splice_init(&pksm_del_list, &dead);
	pksm_lc.nr_del = 0;
	spin_unlock_irqrestore(&pksm_lock, flags);
	list_for_each_entry_safe(item, tmp, &dead, link)
		pksm_item_free(item);
}

/* One batch: up to pages_to_scan visits plus the re-verify budget. */
static void pksm_do_scan(void)
{
	unsigned int todo = READ_ONCE(pksm_pages_to_scan);
	unsigned long take_new, take_rescan, avail_new, avail_rescan;
	unsigned long flags;
	struct pksm_item *item;

	spin_lock_irqsave(&pksm_lock, flags);
	avail_new = pksm_lc.nr_new;
	avail_rescan = pksm_lc.nr_rescan;
	spin_unlock_irqrestore(&pksm_lock, flags);
	pksm_split_batch(todo, avail_new, avail_rescan, &take_new,
			 &take_rescan);
	pksm_sc.round_left -= take_new + take_rescan;

	while (take_new-- && (item = pksm_pop(&pksm_new_list, &pksm_lc.nr_new))) {
		pksm_visit(item, true);
		cond_resched();
	}
	while (take_rescan-- &&
	       (item = pksm_pop(&pksm_rescan_list, &pksm_lc.nr_rescan))) {
		pksm_visit(item, false);
		cond_resched();
	}
	pksm_reverify(pksm_reverify_budget(pksm_sc.nr_unstable, todo,
					   READ_ONCE(pksm_sleep_ms),
					   READ_ONCE(pksm_period_seconds)));
	pksm_prune(PKSM_PRUNE_NODES);

	/*
	 * A full scan: every item that was waiting on the new and rescan
	 * lists when the round began has been visited.  With nothing waiting
	 * every batch completes a round, so full_scans rises while idle.
	 */
	if (pksm_sc.round_left <= 0) {
		pksm_sc.full_scans++;
		spin_lock_irqsave(&pksm_lock, flags);
		pksm_sc.round_left = pksm_lc.nr_new + pksm_lc.nr_rescan;
		avail_rescan = pksm_lc.nr_rescan;
		spin_unlock_irqrestore(&pksm_lock, flags);
		/*
		 * Per-cpu LRU batches hold a reference on recently added
		 * pages, which a merge's reference check reads as a pin:
		 * drain them once a round while pages wait for another try.
		 */
		if (avail_rescan)
			lru_add_drain_all();
	}
}

static int pksmd(void *unused)
{
	set_freezable();
	set_user_nice(current, 5);
	while (!kthread_should_stop()) {
		unsigned int sleep_ms;
		u64 start;

		mutex_lock(&pksm_mutex);
		start = ktime_get_ns();
		pksm_release_dead_nodes();
		pksm_release_dead_items();
		if (pksm_run == PKSM_RUN_MERGE)
			pksm_do_scan();
		pksm_sc.busy_ns += ktime_get_ns() - start;
		mutex_unlock(&pksm_mutex);

		sleep_ms = READ_ONCE(pksm_sleep_ms);
		wait_event_freezable_timeout(pksm_daemon_wait,
					     kthread_should_stop() ||
					     sleep_ms != READ_ONCE(pksm_sleep_ms),
					     max(msecs_to_jiffies(sleep_ms), 1UL));
	}
	return 0;
}

/* Start pksmd (pksm_init()). */
struct task_struct *pksm_start_pksmd(void)
{
	return kthread_run(pksmd, NULL, "pksmd");
}
