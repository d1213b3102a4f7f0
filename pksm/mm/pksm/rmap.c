// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: the reverse-map mechanics of a merge: write-protect a page's PTEs,
 * claim the mms of a page that becomes a KSM page in place, replace PTEs
 * by a KSM page or the zero page, and the two merges both pksmd
 * (merge.c) and reclaim's store-time check (swap.c) make: with the zero
 * page and into a KSM page of the stable tree (see internal.h for the
 * overview and the locks).
 */

#include <linux/mm.h>
#include <linux/rmap.h>
#include <linux/ksm.h>
#include <linux/slab.h>
#include <linux/highmem.h>
#include <linux/mmu_notifier.h>
#include <linux/swap.h>
#include <linux/sched/mm.h>
#include <linux/sched/coredump.h>
#include <asm/tlbflush.h>
#include "internal.h"

/* ---- page helpers ------------------------------------------------------ */

bool pksm_folio_is_zero(struct folio *folio)
{
	const u64 *w = kmap_local_folio(folio, 0);
	bool zero = pksm_words_zero(w);

	kunmap_local(w);
	return zero;
}

/* ---- write-protect and replace through the reverse map ----------------- */

/**
 * struct pksm_walk - state of an rmap walk over a page being merged
 * @kfolio: the KSM page the PTEs are pointed at, or NULL for the zero page
 * @err: the first reason the walk gave up (0: none)
 * @found: PTEs of the page the walk saw
 * @replaced: PTEs the replace walk pointed at @kfolio or the zero page
 * @domain: the write-protect walk: the merge domain of the mms whose PTEs
 *	it saw (pksm_domain_add())
 */
struct pksm_walk {
	struct folio *kfolio;
	int err;
	unsigned int found;
	unsigned int replaced;
	u64 domain;
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
		pksm_domain_add(&walk->domain, vma);
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

/**
 * struct pksm_adopt_walk - what pksm_folio_adoptable()'s walk found
 * @seen: PTEs found mapping the folio, each under its page table lock
 * @excluded: a VMA that maps the folio is excluded from merging
 */
struct pksm_adopt_walk {
	unsigned int seen;
	bool excluded;
};

/* rmap_one: count @folio's PTE in @vma; stop at an excluded VMA. */
static bool pksm_adoptable_one(struct folio *folio, struct vm_area_struct *vma,
			       unsigned long addr, void *arg)
{
	struct pksm_adopt_walk *walk = arg;

	if (!pksm_vma_maps(folio, vma, addr))
		return true;
	if (pksm_vma_excluded(vma)) {
		walk->excluded = true;
		return false;
	}
	walk->seen++;
	return true;
}

/**
 * pksm_folio_adoptable() - may pksmd track @folio after its birth?
 * @folio: anonymous, order 0, referenced, locked
 *
 * For a page born while no item could be had (track.c): what the birth
 * hook asks of the one VMA it sees, asked of every mapping, and whether
 * the birth is over.  Every path that makes a new anonymous page (a fault,
 * a COW copy, a swap-in, fork's copy of a pinned page) marks it anonymous
 * and mapped, and runs the birth hook, before it sets the PTE, all under
 * the page table lock: a PTE found mapping the page, under that lock (pksm_vma_maps()),
 * means its birth hook has run, so tracking it now cannot race the hook.
 * Exclusion is a hint: it can change once the anon_vma lock is dropped
 * (an opt-out between its forget walk and its VMA flag may see the page
 * adopted); a merge checks it again under the mmap lock, and drops it.
 *
 * Return: PKSM_ADOPT_YES if a PTE maps @folio and no excluded VMA does,
 * PKSM_ADOPT_LATER if @folio is mapped but no PTE of it was seen (a birth
 * under way, or a PTE being changed), else PKSM_ADOPT_NO.
 */
enum pksm_adopt pksm_folio_adoptable(struct folio *folio)
{
	struct pksm_adopt_walk walk = { .seen = 0, .excluded = false };
	struct anon_vma *anon_vma;
	struct rmap_walk_control rwc = {
		.rmap_one = pksm_adoptable_one,
		.done = pksm_folio_unmapped,
		.arg = &walk,
	};

	/* Pinned for the walk, as in pksm_merge_zero_locked(). */
	anon_vma = folio_get_anon_vma(folio);
	if (!anon_vma)
		return PKSM_ADOPT_NO;
	rmap_walk(folio, &rwc);
	put_anon_vma(anon_vma);
	if (walk.excluded)
		return PKSM_ADOPT_NO;
	if (walk.seen)
		return PKSM_ADOPT_YES;
	return folio_mapped(folio) ? PKSM_ADOPT_LATER : PKSM_ADOPT_NO;
}

/*
 * Write-protect every PTE of @folio (locked, referenced) and clear its
 * exclusive mark.  -EBUSY if a PTE could not be (a pin), or if the folio
 * has more mappings than the walk saw: a PTE the birth hook has accounted
 * for but not yet set is invisible to the walk, and would be set writable
 * after us.  -EPERM if a mapping is excluded from merging.  -ESRCH if the
 * folio is not mapped, or the walk found no PTE: unmapped meanwhile.  On
 * success, *@domain (if not NULL) is the merge domain of every mm that
 * maps the page (PKSM_DOMAIN_MIXED if they differ), met as the PTEs were.
 * A fork from here on maps the page in a child of the same domain (a
 * child inherits its parent's uid, cgroup and session); a process that
 * changes its domain later is what domain.c says is not enforced.
 */
int pksm_wrprotect(struct folio *folio, u64 *domain)
{
	struct pksm_walk walk = { .err = 0, .domain = PKSM_DOMAIN_NONE };
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
	if (domain)
		*domain = walk.domain;
	return walk.err;
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

/* ---- claiming the mms of a page that becomes a KSM page in place ------- */

/* Arrays of PKSM_CLAIM_BATCH mm pointers (struct pksm_claim): pksm_init(). */
struct kmem_cache *pksm_claim_cache;

/*
 * Room in @claim for PKSM_CLAIM_BATCH mms, from a cache of PKSM's own (so
 * that failslab can target it); @claim->mms is NULL if there is none.
 */
void pksm_claim_alloc(struct pksm_claim *claim)
{
	claim->mms = kmem_cache_alloc(pksm_claim_cache, GFP_KERNEL);
}

/* Give back the room pksm_claim_alloc() took, if it took any. */
void pksm_claim_free(struct pksm_claim *claim)
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

/* Let go of the mmap locks pksm_claim() took. */
void pksm_unclaim(struct pksm_claim *claim)
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
int pksm_claim(struct folio *folio, struct pksm_claim *claim)
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
	err = pksm_wrprotect(folio, NULL);	/* any domain: see domain.c */
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
 * -EPERM if a mapping is excluded from merging; -EXDEV if @folio is not
 * of @node's merge domain (mapped across domains, or its domain changed
 * since the lookup); -ENOENT if @folio was written since the compare;
 * -EAGAIN if a folio was locked by someone else; -ENOMEM if there was no
 * memory for the record.
 */
int pksm_merge_stable(struct folio *folio, struct folio *kfolio,
		      struct pksm_stable_node *node, bool reclaim,
		      unsigned int *replaced)
{
	struct anon_vma *anon_vma = NULL;
	struct pksm_mapping *map;
	unsigned int n = 0;
	int err = -EAGAIN;
	u64 domain;

	/* Reclaim runs with PF_MEMALLOC: never from the reserves it needs. */
	map = kmem_cache_alloc(pksm_mapping_cache, reclaim ?
			       GFP_NOWAIT | __GFP_NOWARN | __GFP_NOMEMALLOC :
			       GFP_KERNEL);
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
	err = pksm_wrprotect(folio, &domain);
	if (!err && domain != node->domain) {
		/* Mapped across domains, or its domain changed: not here. */
		pksm_sc.nr_domain_refused++;
		err = -EXDEV;
	}
	if (!err && !pksm_recheck_equal(folio, kfolio))
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
