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
#include <linux/sched/cputime.h>
#include <asm/tlbflush.h>
#include "internal.h"

#define CREATE_TRACE_POINTS
#include <trace/events/pksm.h>

#define PKSM_PRUNE_NODES		64	/* most stable nodes pruned a batch */

/*
 * Outermost PKSM lock: pksmd's batch, the trees, the unstable FIFO, stable
 * node fields other than ->mappings, knobs and pksm_sc.  Taken before any
 * folio lock, anon_vma lock, page table lock and pksm_lock; see internal.h.
 */
DEFINE_MUTEX(pksm_mutex);

/* (M) */
struct pksm_scan_counts pksm_sc;

DECLARE_WAIT_QUEUE_HEAD(pksm_daemon_wait);

/* (M) pksm_last_batch when pksmd last drained the per-cpu LRU batches */
static unsigned long pksm_last_drain;
/* (M) jiffies at the start of the last batch (the budgets' clock) */
static unsigned long pksm_last_batch;
/* (M) each probation list's visit credit, page-ms (pksm_paced_take()) */
static u64 pksm_probation_credit[PKSM_LEVELS];

/* ---- page helpers ------------------------------------------------------ */

bool pksm_folio_is_zero(struct folio *folio)
{
	const u64 *w = kmap_local_folio(folio, 0);
	bool zero = pksm_words_zero(w);

	kunmap_local(w);
	return zero;
}

static bool pksm_folios_equal(struct folio *a, struct folio *b)
{
	return !pksm_folios_cmp(a, b);
}

/* ---- write-protect and replace through the reverse map ----------------- */

/**
 * struct pksm_walk - state of an rmap walk over a page being merged
 * @kfolio: the KSM page the PTEs are pointed at, or NULL for the zero page
 * @err: the first reason the walk gave up (0: none)
 * @found: PTEs of the page the walk saw
 * @replaced: PTEs the replace walk pointed at @kfolio or the zero page
 */
struct pksm_walk {
	struct folio *kfolio;
	int err;
	unsigned int found;
	unsigned int replaced;
};

/*
 * rmap_one: make @folio's PTE in @vma read-only and clean, unless someone
 * holds a reference that is not a mapping (GUP pin, O_DIRECT): then stop.
 * A VMA that does not map @folio (the anon_vma tree holds every VMA that
 * might, after fork) is no reason to refuse, excluded or not.
 */
static bool pksm_wrprotect_one(struct folio *folio, struct vm_area_struct *vma,
			       unsigned long addr, void *arg)
{
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, addr, 0);
	struct pksm_walk *walk = arg;
	struct mm_struct *mm = vma->vm_mm;
	struct mmu_notifier_range range;
	bool ok = true;

	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, addr,
				addr + PAGE_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	while (page_vma_mapped_walk(&pvmw)) {
		pte_t entry;
		bool exclusive;

		if (!pvmw.pte) {	/* PMD mapped: not on UML, refuse */
			walk->err = -EBUSY;
			ok = false;
			page_vma_mapped_walk_done(&pvmw);
			break;
		}
		if (pksm_vma_excluded(vma)) {
			walk->err = -EPERM;	/* not ours to merge */
			ok = false;
			page_vma_mapped_walk_done(&pvmw);
			break;
		}
		walk->found++;
		/*
		 * Mark the mm before any of its PTEs can map a KSM page (this
		 * page may become one in place): ksm_fork() and ksm_exit()
		 * keep zero-page counts of marked mms only, and run=2 unmerges
		 * marked mms only.
		 */
		if (!mm_flags_test(MMF_VM_MERGEABLE, mm))
			mm_flags_set(MMF_VM_MERGEABLE, mm);
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
			walk->err = -EBUSY;
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
	return ok;
}

/* Does @vma map @folio at @addr?  A hint: nothing is locked afterwards. */
static bool pksm_vma_maps(struct folio *folio, struct vm_area_struct *vma,
			  unsigned long addr)
{
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, addr, 0);

	if (!page_vma_mapped_walk(&pvmw))
		return false;
	page_vma_mapped_walk_done(&pvmw);
	return true;
}

/* rmap_one: point @folio's read-only PTE in @vma at the merge target. */
static bool pksm_replace_one(struct folio *folio, struct vm_area_struct *vma,
			     unsigned long addr, void *arg)
{
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, addr, 0);
	struct pksm_walk *walk = arg;
	struct mm_struct *mm = vma->vm_mm;
	struct mmu_notifier_range range;

	/* Only VMAs that map @folio matter (see pksm_wrprotect_one()). */
	if (!pksm_vma_maps(folio, vma, addr))
		return true;
	/*
	 * The mmap lock keeps exclusion (set under it for writing) stable,
	 * and holds off fork's copy of this mm.  Only a trylock: we are
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
			/*
			 * A PTE pksm_wrprotect() did not see (set since, by a
			 * fault that found it none): leave it, and the merge
			 * is partial (-EBUSY), which is still correct.
			 */
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
			unsigned long zpfn = zero_pfn(pvmw.address);

			/* A dirty special zero PTE marks a merged zero page. */
			newpte = pfn_pte(zpfn, vma->vm_page_prot);
			newpte = pte_mkdirty(pte_mkspecial(newpte));
			ksm_map_zero_page(mm);
			dec_mm_counter(mm, MM_ANONPAGES);
		}
		pksm_place_merged(mm, linear_anon_page_index(vma,
							     pvmw.address));
		/* Marked by pksm_wrprotect_one() already. */
		flush_cache_page(vma, pvmw.address, folio_pfn(folio));
		ptep_clear_flush(vma, pvmw.address, pvmw.pte);
		set_pte_at(mm, pvmw.address, pvmw.pte, newpte);
		folio_remove_rmap_pte(folio, &folio->page, vma);
		folio_put(folio);	/* the reference of the replaced PTE */
		walk->replaced++;
	}
	mmu_notifier_invalidate_range_end(&range);
	mmap_read_unlock(mm);
	return true;
}

static int pksm_folio_unmapped(struct folio *folio)
{
	return !folio_mapped(folio);
}

/*
 * Write-protect every PTE of @folio (locked, referenced) and clear its
 * exclusive mark.  -EBUSY if a PTE could not be (a pin), or if the folio
 * has more mappings than the walk saw: a PTE the birth hook has accounted
 * for but not yet set is invisible to the walk, and would be set writable
 * after us.  -EPERM if a mapping is excluded from merging.  -ESRCH if the
 * folio is not mapped, or the walk found no PTE: unmapped meanwhile.
 */
int pksm_wrprotect(struct folio *folio)
{
	struct pksm_walk walk = { .err = 0 };
	struct rmap_walk_control rwc = {
		.rmap_one = pksm_wrprotect_one,
		.arg = &walk,
	};

	if (folio_test_large(folio))
		return -EBUSY;
	if (!folio_mapped(folio))
		return -ESRCH;
	pksm_debug_delay(PKSM_DELAY_WRPROTECT);
	rmap_walk(folio, &rwc);
	if (!walk.err && folio_mapcount(folio) > walk.found)
		walk.err = -EBUSY;
	/*
	 * Unmapped under us (munmap, exit), before the walk reached its PTE:
	 * the walk cleared nothing, and an exclusive page would still be
	 * marked so.  Such a page must not become a KSM page, nor be merged.
	 */
	if (!walk.err && !walk.found)
		walk.err = -ESRCH;
	return walk.err;
}

/**
 * struct pksm_claim - the mms of a page about to become a KSM page in
 *	place, each held with its mmap lock for reading
 * @mms: the mms, distinct, room for PKSM_CLAIM_BATCH
 * @nr: how many are held
 * @seen: the page's PTEs the claim walk saw
 * @err: why the claim failed (0: it did not)
 *
 * Opting out (MADV_UNMERGEABLE, PR_SET_MEMORY_MERGE=0) unmerges and marks
 * memory with the mmap lock held for writing, so while every mm mapping
 * the page is held for reading, no opt-out of it is under way or can
 * start: exclusion checked now stays true until the page is a KSM page,
 * which a later opt-out will then unmerge.
 *
 * A claim holds at most PKSM_CLAIM_BATCH mmap locks (lockdep counts them
 * with pksm_mutex and an anon_vma rwsem, against its MAX_LOCK_DEPTH of
 * 48): a page mapped by more mms is not made a KSM page in place.
 * pksm_merge_pair() refuses it as a partner (-E2BIG), the visitor takes
 * its place in the unstable tree, and when the refused page comes round
 * it is the visitor: the other page is made the KSM page and the many
 * PTEs move to it one mm at a time (pksm_replace_one()).  Two pages both
 * mapped by more mms than that are not merged with each other.
 */
struct pksm_claim {
	struct mm_struct **mms;
	unsigned int nr;
	unsigned int seen;
	int err;
};

struct kmem_cache *pksm_claim_cache;

/*
 * Room in @claim for PKSM_CLAIM_BATCH mms, from a cache of PKSM's own (so
 * that failslab can target it); @claim->mms is NULL if there is none.
 */
static void pksm_claim_alloc(struct pksm_claim *claim)
{
	claim->mms = kmem_cache_alloc(pksm_claim_cache, GFP_KERNEL);
}

static void pksm_claim_free(struct pksm_claim *claim)
{
	if (claim->mms)
		kmem_cache_free(pksm_claim_cache, claim->mms);
}

static bool pksm_claim_one(struct folio *folio, struct vm_area_struct *vma,
			   unsigned long addr, void *arg)
{
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, addr, PVMW_SYNC);
	struct pksm_claim *claim = arg;
	struct mm_struct *mm = vma->vm_mm;
	unsigned int i;

	/* PVMW_SYNC: a PTE being changed under its lock is waited for. */
	if (!page_vma_mapped_walk(&pvmw))
		return true;
	page_vma_mapped_walk_done(&pvmw);
	claim->seen++;
	for (i = 0; i < claim->nr && claim->mms[i] != mm; i++)
		;
	if (i == claim->nr) {
		if (claim->nr == PKSM_CLAIM_BATCH || !mmap_read_trylock(mm)) {
			claim->err = -EBUSY;
			return false;
		}
		claim->mms[claim->nr++] = mm;
	}
	if (pksm_vma_excluded(vma)) {
		claim->err = -EPERM;
		return false;
	}
	return true;
}

static void pksm_unclaim(struct pksm_claim *claim)
{
	while (claim->nr)
		mmap_read_unlock(claim->mms[--claim->nr]);
}

/*
 * Hold the mmap lock of every mm mapping @folio (locked, write-protected)
 * and check none of its mappings is excluded.  0, or -EBUSY (an mm busy,
 * a mapping not seen, more than PKSM_CLAIM_BATCH mms) / -EPERM with
 * nothing held.  Undo with pksm_unclaim().
 */
static int pksm_claim(struct folio *folio, struct pksm_claim *claim)
{
	struct rmap_walk_control rwc = {
		.rmap_one = pksm_claim_one,
		.arg = claim,
	};

	claim->nr = 0;
	claim->seen = 0;
	claim->err = 0;
	rmap_walk(folio, &rwc);
	if (!claim->err && claim->seen < folio_mapcount(folio))
		claim->err = -EBUSY;
	if (claim->err)
		pksm_unclaim(claim);
	return claim->err;
}

/*
 * Replace every PTE of @folio (locked, referenced, write-protected) by
 * @kfolio (locked) or the zero page.  Returns 0 if no mapping of @folio is
 * left, and in *@replaced (if not NULL) how many PTEs this call replaced
 * (none if a COW fault, munmap or exit took them first).  A partial
 * replacement is still correct: the remaining PTEs map a page with the
 * same content, and it will be tried again.
 */
int pksm_replace(struct folio *folio, struct folio *kfolio,
		 unsigned int *replaced)
{
	struct pksm_walk walk = { .kfolio = kfolio, .err = 0 };
	struct rmap_walk_control rwc = {
		.rmap_one = pksm_replace_one,
		.done = pksm_folio_unmapped,
		.arg = &walk,
	};

	rmap_walk(folio, &rwc);
	if (replaced)
		*replaced = walk.replaced;
	if (folio_mapped(folio))
		return -EBUSY;
	/*
	 * Nothing maps @folio: whatever the walk could not do (a busy mmap
	 * lock, an excluded mapping) went away with the mapping.
	 */
	folio_free_swap(folio);
	return 0;
}

/* ---- merging ------------------------------------------------------------ */

/**
 * pksm_keep_for_swap() - make sure reclaim writes the KSM page @kfolio
 *	(locked) to swap rather than dropping it
 * @kfolio: the KSM page
 *
 * A clean anonymous page is dropped by reclaim only if it is in the swap
 * cache, whose copy is then current: a KSM page never changes, and the
 * dirt of its own PTEs (a partner made a KSM page in place) was moved to
 * the folio when they were write-protected, so such a page stays clean
 * (dirtying it at every merge had it written to swap, or compressed by
 * zswap, again and again).  Any other KSM page is marked dirty.
 */
void pksm_keep_for_swap(struct folio *kfolio)
{
	if (!folio_test_swapcache(kfolio))
		folio_mark_dirty(kfolio);
}

/*
 * Point every PTE of @folio (locked, referenced) at the zero page, if it
 * is still all zero once write-protected.  0 or an error (-ESRCH: @folio
 * is mapped no more); the PTEs replaced in *@replaced if not NULL.  pksmd's visits and reclaim's
 * store-time check (swap.c) both merge zero pages through here.
 */
int pksm_merge_zero_locked(struct folio *folio, unsigned int *replaced)
{
	struct anon_vma *anon_vma;
	int err;

	if (replaced)
		*replaced = 0;
	/*
	 * Pin the anon_vma for both walks: nothing else keeps it.  If every
	 * process mapping @folio exits meanwhile, the walks would lock a
	 * freed anon_vma (rmap_walk() expects callers without the mmap lock
	 * to hold a reference).  NULL: @folio is mapped no more.
	 */
	anon_vma = folio_get_anon_vma(folio);
	if (!anon_vma)
		return -ESRCH;
	err = pksm_wrprotect(folio);
	if (!err && !pksm_folio_is_zero(folio))
		err = -ENOENT;		/* written since we looked */
	if (!err) {
		pksm_debug_delay(PKSM_DELAY_ZERO);
		err = pksm_replace(folio, NULL, replaced);
	}
	put_anon_vma(anon_vma);
	return err;
}

/*
 * Merge @folio (referenced) with the zero page, adding the PTEs replaced
 * to *@replaced.  -ESRCH if it was not mapped.  0 with none replaced: it
 * lost its PTEs under us (a write fault, munmap or exit): no merge.
 */
static int pksm_merge_zero(struct folio *folio, unsigned int *replaced)
{
	unsigned int n;
	int err;

	if (!folio_trylock(folio))
		return -EAGAIN;
	err = pksm_merge_zero_locked(folio, &n);
	folio_unlock(folio);
	*replaced += n;
	return err;
}

/**
 * pksm_merge_stable() - merge a page into a KSM page of the stable tree
 * @folio: the page to merge, referenced; locked by the caller if @reclaim,
 *	else trylocked here
 * @kfolio: the KSM page, referenced (trylocked here)
 * @node: the stable node of @kfolio
 * @reclaim: the caller is reclaim's store-time check (swap.c), not
 *	pksmd: @folio is locked by reclaim already, the mapping record is
 *	allocated without sleeping or a warning (GFP_NOWAIT | __GFP_NOWARN,
 *	reclaim may not wait for memory), and the debugfs delay point
 *	PKSM_DELAY_STABLE, which races pksmd's merges, is not taken
 * @replaced: the PTEs of @folio this call replaced are added here
 *
 * @folio's PTEs are write-protected, @folio is compared with @kfolio
 * again (equal content decides, never a hash), a mapping record is added
 * to @node and every PTE is pointed at @kfolio.  pksm_mutex held.  pksmd's
 * stable merges (merge.c) and reclaim's (swap.c) both come here.
 *
 * Return: 0 if no mapping of @folio is left, with none replaced if @folio
 * lost its PTEs once it was read-only and checked (a write fault, munmap
 * or exit meanwhile); -ESRCH if it lost them before; -EBUSY if a mapping
 * is left (a partial merge is still correct: the PTEs left map a page
 * with the same content), the KSM page may not take another mapping
 * (lazily freeable) or @folio could not be write-protected (pinned);
 * -EPERM if a mapping is excluded from merging; -ENOENT if @folio was
 * written since the compare; -EAGAIN if a folio was locked by someone
 * else; -ENOMEM if there was no memory for the record.
 */
int pksm_merge_stable(struct folio *folio, struct folio *kfolio,
		      struct pksm_stable_node *node, bool reclaim,
		      unsigned int *replaced)
{
	struct anon_vma *anon_vma = NULL;
	struct pksm_mapping *map;
	unsigned int n = 0;
	int err = -EAGAIN;

	map = kmem_cache_alloc(pksm_mapping_cache,
			       reclaim ? GFP_NOWAIT | __GFP_NOWARN : GFP_KERNEL);
	if (!map) {
		pksm_alloc_failed(PKSM_ALLOC_MAPPING);
		return -ENOMEM;
	}
	if (!reclaim && !folio_trylock(folio))
		goto out_free;
	if (!folio_trylock(kfolio))
		goto out_unlock;
	/*
	 * A KSM page MADV_FREE made lazily freeable (clean, not swap-backed)
	 * may be dropped by reclaim: never give it another mapping.
	 */
	err = -EBUSY;
	if (!folio_test_swapbacked(kfolio))
		goto out_unlock_k;
	/* A KSM page is never exclusive (see pksm_merge_pair()). */
	if (WARN_ON_ONCE(PageAnonExclusive(&kfolio->page)))
		goto out_unlock_k;
	/*
	 * Pin @folio's anon_vma before the walks, which may sleep: if every
	 * process mapping @folio exits meanwhile, its anon_vma would be
	 * freed under the record we are about to make.  NULL: unmapped.
	 */
	err = -ESRCH;
	anon_vma = folio_get_anon_vma(folio);
	if (!anon_vma)
		goto out_unlock_k;
	err = pksm_wrprotect(folio);
	if (!err && !pksm_folios_equal(folio, kfolio))
		err = -ENOENT;		/* written since we compared */
	if (!err) {
		/*
		 * Read-only and equal.  A write fault from here on (on another
		 * CPU, or while pksmd sleeps) cannot reuse the page, which we
		 * hold locked and referenced: it copies it, and leaves
		 * pksm_replace() that PTE no more.
		 */
		if (!reclaim)
			pksm_debug_delay(PKSM_DELAY_STABLE);
		pksm_node_add_mapping(node, folio, map, anon_vma);
		map = NULL;
		anon_vma = NULL;
		pksm_keep_for_swap(kfolio);
		WRITE_ONCE(node->merged_at, (u32)jiffies);
		err = pksm_replace(folio, kfolio, &n);
		*replaced += n;
		/* pages_shared/pages_sharing: the KSM page's mappings now. */
		pksm_node_account(node, folio_mapcount(kfolio));
	}
out_unlock_k:
	folio_unlock(kfolio);
out_unlock:
	if (!reclaim)
		folio_unlock(folio);
out_free:
	if (anon_vma)
		put_anon_vma(anon_vma);
	if (map)
		kmem_cache_free(pksm_mapping_cache, map);
	return err;
}

/**
 * enum pksm_pair_blame - which page of a failed unstable merge failed it
 * @PKSM_BLAME_VISITOR: the page being visited (or neither in particular)
 * @PKSM_BLAME_PARTNER: the unstable page it was to merge with
 */
enum pksm_pair_blame {
	PKSM_BLAME_VISITOR,
	PKSM_BLAME_PARTNER,
};

/* pksm_merge_pair(): @pfolio is a KSM page, @folio not (wholly) merged */
#define PKSM_PAIR_PARTIAL	1	/* a mapping of @folio was left */
#define PKSM_PAIR_RACED		2	/* no PTE of @folio was replaced */

/*
 * Merge two equal unstable pages: @pfolio (item @partner) becomes a KSM
 * page in place and @folio's (item @item) mappings move to it.  Both
 * referenced.  Returns 0 when both are merged, PKSM_PAIR_PARTIAL when
 * @pfolio became a KSM page but a mapping of @folio could not be replaced
 * yet, PKSM_PAIR_RACED when no PTE of @folio was replaced (a write fault,
 * munmap or exit took them first), or a negative error when nothing
 * changed, *blame saying which page was at fault (-EPERM: excluded from
 * merging, -EBUSY/-EAGAIN: pinned, locked or being changed, -ENOENT:
 * written since the compare, -ESRCH: unmapped meanwhile, -E2BIG: the
 * partner is mapped by more mms than a claim may hold, see struct
 * pksm_claim).
 */
static int pksm_merge_pair(struct pksm_item *item, struct folio *folio,
			   struct pksm_item *partner, struct folio *pfolio,
			   enum pksm_pair_blame *blame)
{
	struct anon_vma *anon_vma = NULL, *panon_vma = NULL;
	struct pksm_stable_node *node;
	struct pksm_mapping *pmap, *map;
	struct pksm_stable_place place;
	struct pksm_claim claim = { };
	unsigned int replaced;
	int err = -ENOMEM;

	*blame = PKSM_BLAME_VISITOR;
	node = kmem_cache_zalloc(pksm_node_cache, GFP_KERNEL);
	pmap = kmem_cache_alloc(pksm_mapping_cache, GFP_KERNEL);
	map = kmem_cache_alloc(pksm_mapping_cache, GFP_KERNEL);
	pksm_claim_alloc(&claim);
	if (!node || !pmap || !map || !claim.mms) {
		if (!node)
			pksm_alloc_failed(PKSM_ALLOC_NODE);
		if (!pmap || !map)
			pksm_alloc_failed(PKSM_ALLOC_MAPPING);
		if (!claim.mms)
			pksm_alloc_failed(PKSM_ALLOC_CLAIM);
		goto out_free;
	}
	err = -EAGAIN;
	*blame = PKSM_BLAME_PARTNER;
	if (!folio_trylock(pfolio))
		goto out_free;
	/* Never make a lazily freeable page (MADV_FREE) a KSM page. */
	err = -EBUSY;
	if (!folio_test_swapbacked(pfolio))
		goto out_unlock_p;
	/*
	 * Nor one in the swap cache whose slot other swap entries still name:
	 * a sharer of a KSM page that was swapped out and read back by
	 * another would find it there at its own swap-in, and map it without
	 * a record (ksm_might_need_to_copy() lets a KSM page through), out of
	 * reach of the reverse map.  Free the slot, or leave the page.
	 */
	if (folio_test_swapcache(pfolio) && !folio_free_swap(pfolio))
		goto out_unlock_p;
	/*
	 * Nor one mapped by more mms than a claim may hold (struct
	 * pksm_claim): -E2BIG.  The partner makes way for a visitor mapped
	 * by fewer, which becomes the KSM page when the partner comes round;
	 * a visitor mapped by as many is refused itself.
	 */
	err = -E2BIG;
	if (folio_mapcount(pfolio) > PKSM_CLAIM_BATCH) {
		if (folio_mapcount(folio) > PKSM_CLAIM_BATCH)
			*blame = PKSM_BLAME_VISITOR;
		goto out_unlock_p;
	}
	/* Pinned before the walks, which may sleep (pksm_merge_stable()). */
	err = -ESRCH;
	panon_vma = folio_get_anon_vma(pfolio);
	if (!panon_vma)
		goto out_unlock_p;
	*blame = PKSM_BLAME_VISITOR;
	err = -EAGAIN;
	if (!folio_trylock(folio))
		goto out_unlock_p;
	err = -ESRCH;
	anon_vma = folio_get_anon_vma(folio);
	if (!anon_vma)
		goto out_unlock;
	*blame = PKSM_BLAME_PARTNER;
	err = pksm_wrprotect(pfolio);
	if (!err) {
		*blame = PKSM_BLAME_VISITOR;
		err = pksm_wrprotect(folio);
	}
	if (!err && !pksm_folios_equal(folio, pfolio))
		err = -ENOENT;		/* one of them was written */
	if (err)
		goto out_unlock;

	/*
	 * Both are read-only and equal.  File the new node by the hash of
	 * what the page now holds (the visit's hash was taken before the
	 * write-protect), then claim the partner's mms for the conversion.
	 */
	node->hash = pksm_hash_folio(pfolio);
	err = pksm_stable_place(pfolio, node->hash, &place);
	if (err)
		goto out_unlock;
	pksm_debug_delay(PKSM_DELAY_CONVERT);
	*blame = PKSM_BLAME_PARTNER;
	err = pksm_claim(pfolio, &claim);
	if (err)
		goto out_unlock;
	/*
	 * Unmapped since it was write-protected: nothing to share it with.
	 * Only a hint: munmap and exit zap with the mmap lock held for
	 * reading, so the page may still lose its PTEs from here on; it is
	 * then the visitor's KSM page alone (not exclusive: the walk that
	 * found its PTE cleared that).
	 */
	if (!folio_mapped(pfolio)) {
		pksm_unclaim(&claim);
		err = -ESRCH;
		goto out_unlock;
	}
	/*
	 * Its exclusive mapping was write-protected and the mark cleared (a
	 * walk that found no PTE is -ESRCH): a KSM page marked exclusive
	 * would be reused in place by a write fault, under every sharer.
	 */
	if (WARN_ON_ONCE(PageAnonExclusive(&pfolio->page))) {
		pksm_unclaim(&claim);
		err = -EBUSY;
		goto out_unlock;
	}

	/* @pfolio becomes the KSM page. */
	INIT_HLIST_HEAD(&node->mappings);
	node->kpfn = folio_pfn(pfolio);
	node->merged_at = (u32)jiffies;
	pksm_node_add_mapping(node, pfolio, pmap, panon_vma);
	pmap = NULL;
	panon_vma = NULL;
	pksm_set_folio_node(pfolio, node);
	pksm_unclaim(&claim);
	pksm_keep_for_swap(pfolio);
	folio_mark_accessed(pfolio);
	pksm_stable_link(node, &place);
	node = NULL;

	*blame = PKSM_BLAME_VISITOR;
	pksm_node_add_mapping(pksm_folio_node(pfolio), folio, map, anon_vma);
	map = NULL;
	anon_vma = NULL;
	err = pksm_replace(folio, pfolio, &replaced);
	if (err)
		err = PKSM_PAIR_PARTIAL;
	else if (!replaced)
		err = PKSM_PAIR_RACED;
	pksm_node_account(pksm_folio_node(pfolio), folio_mapcount(pfolio));
out_unlock:
	folio_unlock(folio);
out_unlock_p:
	folio_unlock(pfolio);
out_free:
	pksm_claim_free(&claim);
	if (anon_vma)
		put_anon_vma(anon_vma);
	if (panon_vma)
		put_anon_vma(panon_vma);
	if (map)
		kmem_cache_free(pksm_mapping_cache, map);
	if (pmap)
		kmem_cache_free(pksm_mapping_cache, pmap);
	if (node)
		kmem_cache_free(pksm_node_cache, node);
	return err;
}

/*
 * The page of @item is excluded from merging: drop the item, counted in
 * excluded_pages unless an opt-out forgot it (and counted it) already.
 */
static enum pksm_outcome pksm_excluded(struct pksm_item *item)
{
	if (pksm_opted_in_only) {
		/*
		 * Only what opted in is merged, and a mapping that has not
		 * opted in is no reason to forget the page: it may be about
		 * to (MADV_MERGEABLE applies its flags after ksm_madvise()
		 * tracked the range), or be a fork-shared page's other
		 * process.  Back to probation, one level higher.  (An
		 * opt-out forgets its pages itself.)
		 */
		item->backoff = min_t(unsigned int, item->backoff + 1,
				      PKSM_MAX_BACKOFF);
		item->visits = PKSM_UNSEEN;
		return PKSM_OUT_PROBATION;
	}
	if (!READ_ONCE(item->dead))
		atomic_long_inc(&pksm_nr_excluded);
	return PKSM_OUT_RELEASE;
}

/*
 * The visit's own page could not be write-protected (-EBUSY): an extra
 * reference (a pin by vmsplice, O_DIRECT or RDMA; for a fresh page, a
 * per-cpu LRU batch), or a mapping the walk could not see.  Trying again
 * every round would cost a tree walk and an rmap walk each time, for ever
 * if the page stays pinned: back to probation instead, one back-off
 * level higher, so that its next tries come ever more rarely (at the
 * defaults after 1, 2, 4 ... 64 s).  The LRU batches were drained first
 * unless this page was busy so before (item->busy, set here, also for a
 * page refused as mapped too widely): then a drain would not have helped.
 */
static enum pksm_outcome pksm_busy(struct pksm_item *item)
{
	item->backoff = min_t(unsigned int, item->backoff + 1,
			      PKSM_MAX_BACKOFF);
	item->busy = 1;
	pksm_sc.nr_merge_failures++;
	return PKSM_OUT_PROBATION;
}

/*
 * Per-cpu LRU batches hold a reference on recently added pages, which a
 * merge's reference check reads as a pin: drain them, at most once a batch
 * (a jiffy), so that a merge that failed for an extra reference can be
 * tried once more at once.
 */
static void pksm_drain_lru(void)
{
	if (pksm_last_drain == pksm_last_batch)
		return;		/* drained in this batch already */
	pksm_last_drain = pksm_last_batch;
	lru_add_drain_all();
	pksm_sc.nr_lru_drains++;
}

/*
 * A merge failed for an extra reference on the page of @item (the page
 * the failure was blamed on): drain the LRU batches and say to try once
 * more, unless that page is busy (item->busy: it failed so before, and has
 * not changed since), since a page that stays pinned would drain the LRU
 * at each of its retries.
 */
static bool pksm_drain_for(struct pksm_item *item)
{
	if (item->busy)
		return false;
	pksm_drain_lru();
	return true;
}

/*
 * May @folio merge into the KSM page @kfolio?  Not if that would share it
 * more than max_page_sharing times (another is started by the unstable
 * merge), nor if MADV_FREE made it lazily freeable.
 */
bool pksm_stable_has_room(struct folio *kfolio, struct folio *folio)
{
	return folio_mapcount(kfolio) + folio_mapcount(folio) <=
	       READ_ONCE(pksm_max_page_sharing) &&
	       folio_test_swapbacked(kfolio);
}

/*
 * @item's page lost its PTEs while pksmd merged it (-ESRCH): unmapped by
 * munmap or exit (the item dies with the page), by reclaim (in the swap
 * cache until it is freed or mapped again), or copied away by a write
 * fault.  To probation, not the rescan list: a page that stays unmapped
 * is not looked at every batch, nor keeps the LRU drains going.  Its
 * probation is already passed (the caller keeps its checksum, as for a
 * busy page): if it is mapped again unchanged, it merges at its next
 * visit.
 */
static enum pksm_outcome pksm_unmapped(struct pksm_item *item)
{
	pksm_sc.nr_merge_races++;
	return PKSM_OUT_PROBATION;
}

/*
 * A page found unmapped (@sum its checksum) waits on probation, where a
 * page left unmapped (in the swap cache, pinned by a pipe) is looked at
 * rarely, rather than on the rescan list, looked at every batch and
 * keeping the LRU drains going.  Its probation is passed: mapped again
 * unchanged, it merges at its next visit.  A first visit (@out
 * PKSM_OUT_NEW) stays one.
 */
static enum pksm_outcome pksm_deferred(struct pksm_item *item, u32 sum,
				       enum pksm_outcome out)
{
	if (out == PKSM_OUT_NEW)
		return out;
	item->hash = sum;
	item->visits = PKSM_MAX_PROBATION;
	return PKSM_OUT_PROBATION;
}

/*
 * A candidate: stable tree, then unstable tree.  @folio is referenced.
 * PKSM_OUT_UNSTABLE asks the caller to file the page in the unstable tree,
 * at @place if the search left it set.
 */
static enum pksm_outcome pksm_try_merge(struct pksm_item *item,
					struct folio *folio, u32 hash,
					struct pksm_unstable_place *place,
					bool *busy)
{
	enum pksm_pair_blame blame;
	struct pksm_stable_node *node;
	struct pksm_item *partner;
	struct folio *kfolio, *pfolio;
	bool full = false;
	int err;

	node = pksm_stable_search(folio, hash, &kfolio);
	if (IS_ERR(node)) {
		pksm_sc.nr_merge_failures++;
		return PKSM_OUT_RESCAN;
	}
	if (node) {
		/*
		 * The newest KSM page with this content.  Full or lazily
		 * freeable: merge elsewhere (the unstable merge below starts
		 * another KSM page).
		 */
		if (!pksm_stable_has_room(kfolio, folio)) {
			full = true;
			folio_put(kfolio);
		} else {
			unsigned int replaced = 0;

			err = pksm_merge_stable(folio, kfolio, node, false,
						&replaced);
			if (err == -EBUSY && pksm_drain_for(item))
				err = pksm_merge_stable(folio, kfolio, node,
							false, &replaced);
			if (!err && !replaced)
				err = -ESRCH;	/* its PTEs went: raced */
			if (!err)
				trace_pksm_merge(folio_pfn(folio),
						 folio_pfn(kfolio),
						 PKSM_MERGE_STABLE);
			folio_put(kfolio);
			if (!err) {
				pksm_sc.nr_stable_merges++;
				return PKSM_OUT_RELEASE;
			}
			if (err == -EPERM)
				return pksm_excluded(item);
			if (err == -EBUSY) {
				*busy = true;
				return pksm_busy(item);
			}
			if (err == -ESRCH) {
				*busy = true;	/* unchanged: keep its place */
				return pksm_unmapped(item);
			}
			pksm_sc.nr_merge_failures++;
			return PKSM_OUT_RESCAN;
		}
	}

	partner = pksm_unstable_search(folio, hash, NULL, &pfolio, place);
	if (!partner)
		return PKSM_OUT_UNSTABLE;
	place->link = NULL;	/* the tree may change from here on */
	err = pksm_merge_pair(item, folio, partner, pfolio, &blame);
	if (err == -EBUSY &&
	    pksm_drain_for(blame == PKSM_BLAME_PARTNER ? partner : item))
		err = pksm_merge_pair(item, folio, partner, pfolio, &blame);
	if (!err)
		trace_pksm_merge(folio_pfn(folio), folio_pfn(pfolio),
				 PKSM_MERGE_UNSTABLE);
	folio_put(pfolio);
	if (err < 0 && blame == PKSM_BLAME_PARTNER) {
		enum pksm_outcome pout = PKSM_OUT_RESCAN;

		/*
		 * The partner cannot merge now: excluded (for good); pinned
		 * after a drain of the LRU batches, or busy so before (back
		 * to probation one level higher, as a pinned visitor goes,
		 * watched by the checksum it was filed with); locked or
		 * changing (it tries again from the rescan list).  Out of the tree with it, so
		 * that it blocks no equal page; this page takes its place.
		 */
		if (err == -EPERM) {
			pout = pksm_excluded(partner);
		} else if (err == -E2BIG) {
			/* Back as the visitor next batch, no back-off. */
			pout = PKSM_OUT_RESCAN;
		} else if (err == -EBUSY) {
			partner->hash = partner->unode->sum;
			partner->visits = PKSM_MAX_PROBATION;
			pout = pksm_busy(partner);
		} else if (err == -ESRCH) {
			partner->hash = partner->unode->sum;
			partner->visits = PKSM_MAX_PROBATION;
			pout = pksm_unmapped(partner);
		} else {
			pksm_sc.nr_merge_failures++;
		}
		pksm_unstable_remove(partner);
		pksm_item_finish(partner, pout);
		return PKSM_OUT_UNSTABLE;
	}
	if (err == -EPERM)
		return pksm_excluded(item);
	if (err == -EBUSY) {
		*busy = true;
		return pksm_busy(item);
	}
	if (err == -E2BIG) {	/* both mapped by too many mms: tried less often */
		*busy = true;
		return pksm_busy(item);
	}
	if (err == -ESRCH) {
		*busy = true;	/* unchanged: keep its place */
		return pksm_unmapped(item);
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
	if (err == PKSM_PAIR_RACED) {	/* @folio lost its PTEs meanwhile */
		*busy = true;	/* unchanged: keep its place */
		return pksm_unmapped(item);
	}
	if (err) {		/* @folio keeps a mapping: try again later */
		pksm_sc.nr_merge_failures++;
		return PKSM_OUT_RESCAN;
	}
	pksm_sc.nr_unstable_merges++;
	return PKSM_OUT_RELEASE;
}

/*
 * Merge the all-zero page of @item with the zero page: the visit's
 * outcome, @out if nothing decides otherwise; @sum is its checksum.
 */
static enum pksm_outcome pksm_visit_zero(struct pksm_item *item,
					 struct folio *folio, u32 sum,
					 enum pksm_outcome out)
{
	unsigned int replaced = 0;
	int err = pksm_merge_zero(folio, &replaced);

	if (err == -EBUSY && pksm_drain_for(item))
		err = pksm_merge_zero(folio, &replaced);
	if (!err && !replaced) {
		/* Its PTEs went while it was read-only and checked. */
		pksm_sc.nr_merge_races++;
		err = -ESRCH;
	}
	if (!err) {
		trace_pksm_merge(folio_pfn(folio), zero_pfn(0),
				 PKSM_MERGE_ZERO);
		pksm_sc.nr_zero_merges++;
		out = PKSM_OUT_RELEASE;
	} else if (err == -EPERM) {
		out = pksm_excluded(item);
	} else if (err == -ESRCH) {
		/* Unmapped under us: deferred, as an unmapped page is. */
		pksm_sc.nr_deferred++;
		out = pksm_deferred(item, sum, out);
	} else if (err == -EBUSY) {
		/*
		 * Pinned: back off as a stable or unstable merge does,
		 * from the rescan list too (not the next batch again).
		 */
		out = pksm_busy(item);
		item->hash = sum;
		item->visits = PKSM_MAX_PROBATION;
	} else {
		pksm_sc.nr_merge_failures++;
		out = PKSM_OUT_RESCAN;
	}
	return out;
}

/*
 * One visit of an item taken off the new or a probation list (@from_new:
 * probation applies) or off the rescan list.
 */
static void pksm_visit(struct pksm_item *item, bool from_new)
{
	enum pksm_outcome out = from_new ? PKSM_OUT_PROBATION : PKSM_OUT_RESCAN;
	struct pksm_unstable_place place = { };
	struct folio *folio = pksm_item_folio(item);
	u32 hash, sum;
	bool busy = false, zero;

	/* A first visit that cannot read the page stays a first visit. */
	if (from_new && item->visits == PKSM_UNSEEN)
		out = PKSM_OUT_NEW;
	if (!folio) {
		/* Dead, or a refcount frozen for a moment (reclaim, migration). */
		pksm_item_finish(item, READ_ONCE(item->dead) ? PKSM_OUT_RELEASE :
							      out);
		return;
	}
	if (!folio_mapped(folio)) {
		/* Born but not mapped yet, or being unmapped. */
		pksm_sc.nr_deferred++;
		if (out == PKSM_OUT_RESCAN)
			out = pksm_deferred(item, pksm_checksum_folio(folio),
					    out);
		goto out;
	}
	if (out == PKSM_OUT_NEW)
		out = PKSM_OUT_PROBATION;
	/*
	 * The checksum of the whole page first, then the sampled hash: a
	 * write in between leaves a checksum that re-verification will find
	 * changed, never a page filed under a hash it no longer has.
	 */
	sum = pksm_checksum_folio(folio);
	hash = pksm_hash_folio(folio);
	pksm_sc.pages_scanned++;

	zero = READ_ONCE(pksm_use_zero_pages) && hash == pksm_zero_hash &&
	       pksm_folio_is_zero(folio);
	/*
	 * A zero page merges at once, at any visit, unless it is on a
	 * back-off level (its place keeps being written right after its
	 * merges: pksm_place_cow()); then it waits out its probation first.
	 */
	if (zero && !(from_new && item->backoff)) {
		out = pksm_visit_zero(item, folio, sum, out);
		goto out;
	}
	if (from_new) {
		bool seen = item->visits != PKSM_UNSEEN;
		unsigned int need;

		need = pksm_probation_need(READ_ONCE(pksm_probation_scans),
					   item->backoff);
		/* Pressure finding duplicates: level 0 merges at first sight. */
		if (!item->backoff && pksm_swap_boosted())
			need = 0;
		/*
		 * Probation watches the whole page (its checksum is kept in
		 * item->hash meanwhile): a page written anywhere since the
		 * last visit starts again, one back-off level higher, so
		 * visited half as often.
		 */
		if (need) {
			if (!pksm_probation_step(&item->visits, &item->hash,
						 sum, need)) {
				if (!item->visits)
					item->busy = 0;	/* changed */
				if (seen && !item->visits &&
				    item->backoff < PKSM_MAX_BACKOFF) {
					item->backoff++;
					pksm_sc.nr_level_raises++;
				}
				goto out;
			}
			trace_pksm_probation_passed(item->pfn, item->visits);
		}
	}
	if (zero) {
		out = pksm_visit_zero(item, folio, sum, out);
		goto out;
	}
	item->hash = hash;
	out = pksm_try_merge(item, folio, hash, &place, &busy);
	if (busy) {
		/*
		 * Busy (pksm_busy()): the page passed, so it tries again at
		 * its next visit if it is still unchanged then.
		 */
		item->hash = sum;
		item->visits = PKSM_MAX_PROBATION;
	}
out:
	if (pksm_item_finish(item, out)) {
		int err = pksm_unstable_insert(item, folio, sum, &place);

		if (err) {
			/* No memory for a node, or a busy page: later. */
			pksm_item_finish(item, PKSM_OUT_RESCAN);
		}
	}
	folio_put(folio);
}

/*
 * Is there a page to merge @folio (referenced, unchanged since its @item
 * was filed in the unstable tree, unode->recheck set) with?  Nothing
 * visits an unchanged unstable page, yet it can have an equal page it was
 * never merged with: one filed while the other was written and before it
 * was restored, or filed beside its equal after a merge failed (both are
 * marked for a recheck then), and a KSM page made since from a third
 * equal page.  A stable search or pksm_unstable_twin() finds it.  Only
 * marked pages are searched: a search at every re-verification would
 * cost O(log n) page compares a page a period at rest on content that
 * shares a sampled hash.  A search that finds no twin and meets no
 * changed page clears the mark.  Two
 * pages both mapped by more mms than a claim may hold are no twins (they
 * are never merged with each other: struct pksm_claim).
 */
static bool pksm_unstable_has_twin(struct pksm_item *item,
				   struct folio *folio)
{
	struct pksm_stable_node *node;
	struct folio *other;
	bool twin, met_changed;

	node = pksm_stable_search(folio, item->hash, &other);
	if (IS_ERR(node))
		return false;	/* busy for a moment: the mark stays */
	if (node) {
		bool room = pksm_stable_has_room(other, folio);

		folio_put(other);
		if (room)
			return true;
	}
	if (!pksm_unstable_twin(item, folio, &other, &met_changed)) {
		if (!met_changed)
			item->unode->recheck = false;
		return false;
	}
	twin = folio_mapcount(folio) <= PKSM_CLAIM_BATCH ||
	       folio_mapcount(other) <= PKSM_CLAIM_BATCH;
	folio_put(other);
	if (!twin)
		item->unode->recheck = false;	/* never merged with it */
	return twin;
}

/*
 * Re-verify unstable pages in FIFO order: a page whose checksum changed
 * since it was filed, or that has a twin to merge with, leaves the tree
 * for the rescan list (and its visit files it again, or merges it).
 */
static void pksm_reverify(unsigned long budget)
{
	while (budget-- && !list_empty(&pksm_unstable_fifo)) {
		struct pksm_unode *u = list_first_entry(&pksm_unstable_fifo,
							struct pksm_unode,
							fifo);
		struct pksm_item *item = u->item;
		struct folio *folio;
		u32 sum;

		cond_resched();		/* nothing held but pksm_mutex */
		folio = pksm_item_folio(item);
		if (!folio) {
			if (READ_ONCE(item->dead)) {
				pksm_unstable_remove(item);
				pksm_item_finish(item, PKSM_OUT_RELEASE);
			} else {
				/* A refcount frozen for a moment: next time. */
				list_move_tail(&u->fifo, &pksm_unstable_fifo);
			}
			continue;
		}
		sum = pksm_checksum_folio(folio);
		pksm_sc.pages_scanned++;
		pksm_sc.nr_reverified++;
		if (sum == u->sum) {
			bool twin = u->recheck &&
				    pksm_unstable_has_twin(item, folio);

			folio_put(folio);
			if (!twin) {
				list_move_tail(&u->fifo, &pksm_unstable_fifo);
				continue;
			}
			pksm_sc.nr_reverify_twins++;
		} else {
			folio_put(folio);
			pksm_sc.nr_reverify_changed++;
			item->busy = 0;
			trace_pksm_reverify_changed(item->pfn);
		}
		pksm_unstable_remove(item);
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
	list_for_each_entry_safe(item, tmp, &dead, link) {
		pksm_item_free(item);
		cond_resched();
	}
}

/*
 * (M; linked into the lists under L) One cut a probation list: during a
 * batch, the items that were on the list when the batch began lie before
 * it.  Items requeued during the batch go behind it, so none is visited
 * twice in a batch (a batch may sleep, and the free hook may shorten a
 * list meanwhile).  The gdb helpers know these by name.
 */
static struct list_head pksm_probation_cuts[PKSM_LEVELS];

/*
 * This batch's probation visits, list by list: each level's list paced
 * (pksm_paced_take()) so that its pages are visited every
 * probation_millisecs << level, at most @budget visits in all (the credit
 * of those left out is kept).  Puts a cut at the tail of each list with
 * visits due, stores the visits due in @take and returns their sum.
 */
static unsigned long pksm_probation_cut(unsigned long *take,
					unsigned long budget,
					unsigned int since)
{
	u64 base = max(READ_ONCE(pksm_probation_ms), 1U);
	unsigned long flags, taken = 0;
	unsigned int level;

	spin_lock_irqsave(&pksm_lock, flags);
	for (level = 0; level < PKSM_LEVELS; level++) {
		u64 *credit = &pksm_probation_credit[level];
		u64 interval = base << level;
		unsigned long t;

		t = pksm_paced_take(credit, pksm_lc.nr_probation[level], since,
				    interval);
		if (t > budget - taken) {
			*credit += (t - (budget - taken)) * interval;
			t = budget - taken;
		}
		take[level] = t;
		taken += t;
		if (t)
			list_add_tail(&pksm_probation_cuts[level],
				      &pksm_probation_lists[level]);
	}
	spin_unlock_irqrestore(&pksm_lock, flags);
	return taken;
}

/* Visit what pksm_probation_cut() found due, and take the cuts out. */
static void pksm_probation_visit(unsigned long *take)
{
	struct pksm_item *item;
	unsigned long flags;
	unsigned int level;

	for (level = 0; level < PKSM_LEVELS; level++) {
		struct list_head *cut = &pksm_probation_cuts[level];

		if (!take[level])
			continue;
		while (take[level]-- &&
		       (item = pksm_pop(&pksm_probation_lists[level], cut,
					&pksm_lc.nr_probation[level]))) {
			pksm_visit(item, true);
			cond_resched();
		}
		spin_lock_irqsave(&pksm_lock, flags);
		list_del(cut);
		spin_unlock_irqrestore(&pksm_lock, flags);
	}
}

/*
 * The time since the last batch in ms, and a new batch begins.  The
 * budgets cover it, not sleep_millisecs: wake-ups come later than asked
 * (jiffies, the batch's own time), and each page is to be re-verified
 * once per period of real time.  At most one period's worth.
 */
static unsigned int pksm_batch_interval(unsigned int period)
{
	unsigned int since = jiffies_to_msecs(jiffies - pksm_last_batch);

	pksm_last_batch = jiffies;
	return clamp(since, 1U, period * 1000U);
}

/*
 * While pksmd does not merge (run=0 or 2), the pruning sweep still goes
 * on: it keeps pages_shared and pages_sharing true through forks, munmap,
 * exit and swap-out, and drops records nothing needs.
 */
static void pksm_idle_upkeep(void)
{
	unsigned int period = max(READ_ONCE(pksm_period_seconds), 1U);

	pksm_swap_idle();
	pksm_prune(pksm_reverify_budget(pksm_sc.nr_stable_nodes,
					PKSM_PRUNE_NODES,
					pksm_batch_interval(period), period));
}

/*
 * One batch: up to pages_to_scan visits (probation visits as they come
 * due, but at least half the batch left to the new and rescan lists while
 * they have pages), plus the re-verify and prune budgets.
 */
static void pksm_do_scan(void)
{
	unsigned int period = max(READ_ONCE(pksm_period_seconds), 1U);
	/* Under memory pressure a larger budget (swap.c). */
	unsigned int todo =
		pksm_swap_scan_budget(READ_ONCE(pksm_pages_to_scan));
	unsigned int since;
	unsigned long take_new, take_rescan, avail_new, avail_rescan;
	unsigned long take_probation[PKSM_LEVELS], probation;
	unsigned long flags;
	struct pksm_item *item;

	since = pksm_batch_interval(period);

	spin_lock_irqsave(&pksm_lock, flags);
	avail_new = pksm_lc.nr_new;
	avail_rescan = pksm_lc.nr_rescan;
	spin_unlock_irqrestore(&pksm_lock, flags);
	probation = pksm_probation_cut(take_probation,
				       todo - min_t(unsigned long, todo / 2,
						    avail_new + avail_rescan),
				       since);
	pksm_split_batch(todo - probation, avail_new, avail_rescan, &take_new,
			 &take_rescan);
	pksm_sc.round_left -= take_new + take_rescan;

	while (take_new-- &&
	       (item = pksm_pop(&pksm_new_list, NULL, &pksm_lc.nr_new))) {
		pksm_visit(item, true);
		cond_resched();
	}
	while (take_rescan-- &&
	       (item = pksm_pop(&pksm_rescan_list, NULL,
				&pksm_lc.nr_rescan))) {
		pksm_visit(item, false);
		cond_resched();
	}
	pksm_probation_visit(take_probation);
	pksm_reverify(pksm_reverify_budget(pksm_sc.nr_unstable, todo, since,
					   period));
	/* Each stable node's records checked about once per period too. */
	pksm_prune(pksm_reverify_budget(pksm_sc.nr_stable_nodes,
					PKSM_PRUNE_NODES, since, period));

	/*
	 * A full scan: every item that was waiting on the new and rescan
	 * lists when the round began has been visited (or freed: with
	 * nothing waiting when the batch began the round is over too).  With
	 * nothing waiting every batch completes a round, so full_scans rises
	 * while idle.
	 */
	if (pksm_sc.round_left <= 0 || !(avail_new + avail_rescan)) {
		pksm_sc.full_scans++;
		spin_lock_irqsave(&pksm_lock, flags);
		pksm_sc.round_left = pksm_lc.nr_new + pksm_lc.nr_rescan;
		avail_rescan = pksm_lc.nr_rescan;
		spin_unlock_irqrestore(&pksm_lock, flags);
		/* Pages wait on the rescan list: drain ten times a second. */
		if (avail_rescan &&
		    time_after(jiffies, pksm_last_drain + HZ / 10))
			pksm_drain_lru();
	}
}

static int pksmd(void *unused)
{
	set_freezable();
	set_user_nice(current, 5);
	while (!kthread_should_stop()) {
		unsigned int sleep_ms;
		u64 start, cpu;

		mutex_lock(&pksm_mutex);
		start = ktime_get_ns();
		cpu = current_task_cpu_ns();
		pksm_release_dead_nodes();
		pksm_release_dead_items();
		pksm_release_dead_unstable(4UL * READ_ONCE(pksm_pages_to_scan) +
					   64);
		if (pksm_run == PKSM_RUN_MERGE)
			pksm_do_scan();
		else
			pksm_idle_upkeep();
		pksm_sc.busy_ns += ktime_get_ns() - start;
		/* Read locklessly by sysfs (a 64-bit load). */
		WRITE_ONCE(pksm_sc.cpu_ns,
			   pksm_sc.cpu_ns + current_task_cpu_ns() - cpu);
		mutex_unlock(&pksm_mutex);

		sleep_ms = READ_ONCE(pksm_sleep_ms);
		wait_event_freezable_timeout(pksm_daemon_wait,
					     kthread_should_stop() ||
					     sleep_ms != READ_ONCE(pksm_sleep_ms) ||
					     pksm_swap_take_kick(),
					     max(msecs_to_jiffies(sleep_ms), 1UL));
	}
	return 0;
}

/* Start pksmd (pksm_init()). */
struct task_struct *pksm_start_pksmd(void)
{
	return kthread_run(pksmd, NULL, "pksmd");
}
