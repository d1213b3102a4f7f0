// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: the <linux/ksm.h> interface: opting in and out, per-process
 * statistics, swap-in and unmerging (see internal.h for the overview).
 */

#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/ksm.h>
#include <linux/pksm.h>
#include <linux/rmap.h>
#include <linux/swap.h>
#include <linux/memcontrol.h>
#include <linux/oom.h>
#include <linux/pagewalk.h>
#include <linux/leafops.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/coredump.h>
#include <linux/slab.h>
#include <linux/highmem.h>
#include <linux/sort.h>
#include "internal.h"

#include <trace/events/pksm.h>

/* Pages mapped to the zero page by PKSM (shared with <linux/ksm.h>). */
atomic_long_t ksm_zero_pages = ATOMIC_LONG_INIT(0);

/* ---- the <linux/ksm.h> interface -------------------------------------- */

/*
 * PKSM merges every anonymous page, so the opt-in flags are bookkeeping
 * only: they are kept so /proc and prctl() report what was asked.
 */
int __ksm_enter(struct mm_struct *mm)
{
	mm_flags_set(MMF_VM_MERGEABLE, mm);
	return 0;
}

void __ksm_exit(struct mm_struct *mm)
{
	mm_flags_clear(MMF_VM_MERGE_ANY, mm);
	mm_flags_clear(MMF_VM_MERGEABLE, mm);
	pksm_places_forget(mm);
}

static int pksm_zero_pte(pte_t *pte, unsigned long addr, unsigned long next,
			 struct mm_walk *walk)
{
	pte_t entry = ptep_get(pte);
	long *count = walk->private;

	if (pte_present(entry) && is_ksm_zero_pte(entry))
		(*count)++;
	return 0;
}

/* A huge PMD maps no merged zero page: skip it, never split it. */
static int pksm_zero_pmd(pmd_t *pmd, unsigned long addr, unsigned long next,
			 struct mm_walk *walk)
{
	if (pmd_trans_huge(pmdp_get(pmd)))
		walk->action = ACTION_CONTINUE;
	return 0;
}

static const struct mm_walk_ops pksm_zero_count_ops = {
	.pmd_entry = pksm_zero_pmd,
	.pte_entry = pksm_zero_pte,
	.walk_lock = PGWALK_WRLOCK_VERIFY,
};

/**
 * pksm_fork_zero_pages() - the merged zero pages a child of @oldmm gets
 * @oldmm: the mm being forked, its mmap lock held for writing by fork and
 *	every PTE fork copies copied (ksm_fork())
 *
 * @oldmm's own count (exact: PKSM merges zero pages under the mmap lock)
 * less the merged zero pages of its VMAs that fork does not copy
 * (MADV_DONTFORK) or copies empty (MADV_WIPEONFORK): the child never maps
 * those, so its unmaps would never take them off the global
 * ksm_zero_pages that ksm_fork() adds the child's count to.  Only those
 * VMAs are walked, and none if @oldmm has no merged zero page.
 *
 * Return: the child's count of merged zero pages.
 */
long pksm_fork_zero_pages(struct mm_struct *oldmm)
{
	long count = atomic_long_read(&oldmm->ksm_zero_pages), left = 0;
	struct vm_area_struct *vma;

	VMA_ITERATOR(vmi, oldmm, 0);

	mmap_assert_write_locked(oldmm);
	if (count <= 0)
		return 0;
	for_each_vma(vmi, vma) {
		if (vma->anon_vma && (vma_test(vma, VMA_DONTCOPY_BIT) ||
				      vma_test(vma, VMA_WIPEONFORK_BIT)))
			walk_page_vma(vma, &pksm_zero_count_ops, &left);
	}
	return max(count - left, 0L);
}

/* Memory upstream KSM would also take: private, ordinary, not DAX. */
static bool pksm_flags_compatible(const struct file *file,
				  vma_flags_t vma_flags)
{
	if (vma_flags_test_any(&vma_flags, VMA_SHARED_BIT, VMA_MAYSHARE_BIT,
			       VMA_HUGETLB_BIT))
		return false;
	if (vma_flags_test_single_mask(&vma_flags, VMA_DROPPABLE))
		return false;
	if (vma_flags_test_any_mask(&vma_flags, VMA_SPECIAL_FLAGS))
		return false;
	return !file_is_dax(file);
}

/* Memory upstream KSM never merges: PKSM neither (pksm_vma_excluded()). */
bool pksm_vma_compatible(struct vm_area_struct *vma)
{
	return pksm_flags_compatible(vma->vm_file, vma->flags);
}

/*
 * A new VMA of a process that asked for PR_SET_MEMORY_MERGE=1 is marked
 * VM_MERGEABLE, as upstream marks it (bookkeeping: PKSM merges it anyway).
 */
vma_flags_t ksm_vma_flags(struct mm_struct *mm, const struct file *file,
			  vma_flags_t vma_flags)
{
	if (mm_flags_test(MMF_VM_MERGE_ANY, mm) &&
	    pksm_flags_compatible(file, vma_flags))
		vma_flags_set(&vma_flags, VMA_MERGEABLE_BIT);
	return vma_flags;
}

/* ---- opting in and out, per VMA and per process ----------------------- */

static int pksm_unmerge_range(struct vm_area_struct *vma, unsigned long start,
			      unsigned long end);

/* The anonymous order-0 page a present PTE maps, or NULL. */
static struct folio *pksm_pte_folio(struct mm_walk *walk, unsigned long addr,
				    pte_t *pte)
{
	pte_t ptent = ptep_get(pte);
	struct page *page;
	struct folio *folio;

	if (!pte_present(ptent))
		return NULL;
	page = vm_normal_page(walk->vma, addr, ptent);
	if (!page)
		return NULL;	/* the zero page, or no struct page */
	folio = page_folio(page);
	if (!folio_test_anon(folio) || folio_test_large(folio))
		return NULL;
	return folio;
}

/* Page walks below: the mmap lock is held, the page table lock too. */
static int pksm_track_pte(pte_t *pte, unsigned long addr, unsigned long next,
			  struct mm_walk *walk)
{
	struct folio *folio = pksm_pte_folio(walk, addr, pte);

	if (folio && !folio_test_ksm(folio))
		pksm_track(folio, true);
	return 0;
}

static int pksm_forget_pte(pte_t *pte, unsigned long addr,
			   unsigned long next, struct mm_walk *walk)
{
	struct folio *folio = pksm_pte_folio(walk, addr, pte);

	if (folio && !folio_test_ksm(folio))
		pksm_forget(folio);
	return 0;
}

static const struct mm_walk_ops pksm_track_ops = {
	.pte_entry = pksm_track_pte,
	.walk_lock = PGWALK_RDLOCK,
};

static const struct mm_walk_ops pksm_forget_ops = {
	.pte_entry = pksm_forget_pte,
	.walk_lock = PGWALK_RDLOCK,
};

/*
 * Exclude [@start, @end) of @vma: unmerge it, and forget its pages so
 * pksmd spends nothing more on them.  The mmap lock is held for writing;
 * the caller then sets VM_UNMERGEABLE (or has set MMF_PKSM_OPTOUT, or
 * clears VM_MERGEABLE under pksm.opted_in_only=1).  Pages born in between
 * are refused at merge time (pksm_wrprotect_one()).
 */
static int pksm_exclude_range(struct vm_area_struct *vma, unsigned long start,
			      unsigned long end)
{
	int err;

	if (!vma->anon_vma)
		return 0;	/* never had an anonymous page */
	err = pksm_unmerge_range(vma, start, end);
	if (!err)
		walk_page_range(vma->vm_mm, start, end, &pksm_forget_ops, NULL);
	return err;
}

/* Track the pages of [@start, @end) of @vma again (mmap lock held). */
static void pksm_include_range(struct vm_area_struct *vma, unsigned long start,
			       unsigned long end)
{
	if (vma->anon_vma && static_branch_likely(&pksm_hooks_key))
		walk_page_range(vma->vm_mm, start, end, &pksm_track_ops, NULL);
}

/*
 * An opt-out of @mm failed part-way (no memory, a fatal signal) and the
 * process stays in: track again what the opt-out forgot, and the copies
 * its unsharing faults made while @mm was marked out (the birth hook
 * refused them), in every VMA that may merge.  The mmap lock is held for
 * writing.
 */
static void pksm_include_mm(struct mm_struct *mm)
{
	struct vm_area_struct *vma;

	VMA_ITERATOR(vmi, mm, 0);

	/*
	 * A process being killed (perhaps by the OOM killer, whose reaper
	 * wants this mmap lock) gains nothing from being tracked again.
	 */
	if (fatal_signal_pending(current))
		return;
	for_each_vma(vmi, vma)
		if (!pksm_vma_excluded(vma))
			pksm_include_range(vma, vma->vm_start, vma->vm_end);
}

/*
 * prctl(PR_SET_MEMORY_MERGE, 1), the mmap lock held for writing: the
 * process is merged again (the default), pages it kept while opted out
 * included.  MMF_VM_MERGE_ANY records what was asked, as upstream; with
 * pksm.opted_in_only=1 it is what brings the process in.
 */
int ksm_enable_merge_any(struct mm_struct *mm)
{
	struct vm_area_struct *vma;
	bool was_out;

	VMA_ITERATOR(vmi, mm, 0);

	if (mm_flags_test(MMF_VM_MERGE_ANY, mm) &&
	    !mm_flags_test(MMF_PKSM_OPTOUT, mm))
		return 0;
	mm_flags_set(MMF_VM_MERGE_ANY, mm);
	was_out = mm_flags_test_and_clear(MMF_PKSM_OPTOUT, mm) ||
		  pksm_opted_in_only;
	for_each_vma(vmi, vma) {
		/* As upstream: VM_MERGEABLE on every compatible VMA. */
		if ((vma->vm_flags & VM_UNMERGEABLE) ||
		    !pksm_vma_compatible(vma))
			continue;
		vm_flags_set(vma, VM_MERGEABLE);
		if (was_out)
			pksm_include_range(vma, vma->vm_start, vma->vm_end);
	}
	return 0;
}

/*
 * prctl(PR_SET_MEMORY_MERGE, 0), the mmap lock held for writing: the
 * process opts out as a whole.  Every page of it is unmerged and
 * forgotten, and nothing of it is merged until it opts in again; its
 * children and exec()ed images inherit the opt-out (MMF_INIT_MASK).  On
 * an error (a fatal signal, no memory) the process stays opted in, every
 * page of it tracked again (pksm_include_mm()).
 */
int ksm_disable_merge_any(struct mm_struct *mm)
{
	struct vm_area_struct *vma;
	int err = 0;

	VMA_ITERATOR(vmi, mm, 0);

	if (pksm_opted_in_only) {
		/*
		 * As upstream: only a process that opted in as a whole
		 * leaves (else nothing happens), and its VMAs lose
		 * VM_MERGEABLE.  MMF_PKSM_OPTOUT only makes
		 * PR_GET_MEMORY_MERGE answer 0: as upstream, a later
		 * MADV_MERGEABLE brings its range back in (in this mode
		 * pksm_vma_excluded() reads VM_MERGEABLE alone).
		 */
		if (!mm_flags_test(MMF_VM_MERGE_ANY, mm))
			return 0;
		mm_flags_set(MMF_PKSM_OPTOUT, mm);
		for_each_vma(vmi, vma) {
			err = pksm_exclude_range(vma, vma->vm_start,
						 vma->vm_end);
			if (err) {
				mm_flags_clear(MMF_PKSM_OPTOUT, mm);
				pksm_include_mm(mm);
				return err;
			}
		}
		vma_iter_set(&vmi, 0);
		for_each_vma(vmi, vma)
			vm_flags_clear(vma, VM_MERGEABLE);
		mm_flags_clear(MMF_VM_MERGE_ANY, mm);
		return 0;
	}
	if (mm_flags_test(MMF_PKSM_OPTOUT, mm))
		return 0;
	/* First, so that no page of @mm is tracked or merged meanwhile. */
	mm_flags_set(MMF_PKSM_OPTOUT, mm);
	for_each_vma(vmi, vma) {
		err = pksm_exclude_range(vma, vma->vm_start, vma->vm_end);
		if (err)
			break;
	}
	if (err) {
		mm_flags_clear(MMF_PKSM_OPTOUT, mm);
		pksm_include_mm(mm);
		return err;
	}
	mm_flags_clear(MMF_VM_MERGE_ANY, mm);
	return 0;
}

/* Upstream's ksm_disable() (s390 guests): as PR_SET_MEMORY_MERGE=0. */
int ksm_disable(struct mm_struct *mm)
{
	mmap_assert_write_locked(mm);
	return ksm_disable_merge_any(mm);
}

/*
 * MADV_MERGEABLE and MADV_UNMERGEABLE on [@start, @end) of @vma, the mmap
 * lock held for writing; madvise() applies *@vm_flags when we return.
 * PKSM merges everything, so MADV_MERGEABLE only undoes an earlier
 * MADV_UNMERGEABLE (and records VM_MERGEABLE, as upstream does), or with
 * pksm.opted_in_only=1 brings the range in, while MADV_UNMERGEABLE
 * unmerges the range and keeps PKSM away from it.
 */
int ksm_madvise(struct vm_area_struct *vma, unsigned long start,
		unsigned long end, int advice, vm_flags_t *vm_flags)
{
	bool was_out;
	int err;

	switch (advice) {
	case MADV_MERGEABLE:
		if (!pksm_vma_compatible(vma))
			return 0;
		__ksm_enter(vma->vm_mm);
		/* vma->vm_flags are still the old ones */
		was_out = pksm_vma_excluded(vma);
		*vm_flags |= VM_MERGEABLE;
		*vm_flags &= ~VM_UNMERGEABLE;
		if (was_out && (pksm_opted_in_only ||
				!mm_flags_test(MMF_PKSM_OPTOUT, vma->vm_mm)))
			pksm_include_range(vma, start, end);
		return 0;
	case MADV_UNMERGEABLE:
		err = pksm_exclude_range(vma, start, end);
		if (err)
			return err;
		*vm_flags &= ~VM_MERGEABLE;
		*vm_flags |= VM_UNMERGEABLE;
		return 0;
	}
	return 0;
}
EXPORT_SYMBOL_GPL(ksm_madvise);

/* ---- per-process statistics -------------------------------------------- */

struct pksm_mm_count {
	unsigned long merged;	/* PTEs mapping a KSM page */
	unsigned long tracked;	/* PTEs mapping a page PKSM tracks */
};

static int pksm_count_pte(pte_t *pte, unsigned long addr, unsigned long next,
			  struct mm_walk *walk)
{
	struct folio *folio = pksm_pte_folio(walk, addr, pte);
	struct pksm_mm_count *count = walk->private;

	if (!folio)
		return 0;
	if (folio_test_ksm(folio)) {
		count->merged++;
		return 0;
	}
	if (pksm_pfn_tracked(folio_pfn(folio)))
		count->tracked++;
	return 0;
}

static const struct mm_walk_ops pksm_count_ops = {
	.pte_entry = pksm_count_pte,
	.walk_lock = PGWALK_RDLOCK,
};

/*
 * Recount @mm's merged pages (mm->ksm_merging_pages: its present PTEs that
 * map a KSM page, as upstream counts its merged rmap_items) and the pages
 * PKSM tracks for it (mm->ksm_rmap_items: its PTEs mapping a page with an
 * item), for /proc/<pid>/ksm_stat and ksm_merging_pages.  Zero pages are
 * counted as they are merged and unmapped (mm->ksm_zero_pages).  The walk
 * costs what reading /proc/<pid>/smaps costs; nothing is kept per mm.
 */
void pksm_mm_stat(struct mm_struct *mm)
{
	struct pksm_mm_count count = { };
	struct vm_area_struct *vma;

	VMA_ITERATOR(vmi, mm, 0);

	if (mmap_read_lock_killable(mm))
		return;		/* the reader dies: show what was there */
	for_each_vma(vmi, vma) {
		if (vma->anon_vma)
			walk_page_vma(vma, &pksm_count_ops, &count);
	}
	mmap_read_unlock(mm);
	WRITE_ONCE(mm->ksm_merging_pages, count.merged);
	WRITE_ONCE(mm->ksm_rmap_items, count.tracked);
}

/*
 * /proc/<pid>/ksm_stat's ksm_mergeable: may PKSM merge this process's
 * memory?  Every process that did not opt out; with pksm.opted_in_only=1,
 * as upstream, one with a VM_MERGEABLE VMA.  The mmap lock is held.
 */
bool ksm_process_mergeable(struct mm_struct *mm)
{
	struct vm_area_struct *vma;

	mmap_assert_locked(mm);
	if (!pksm_opted_in_only)
		return !mm_flags_test(MMF_PKSM_OPTOUT, mm);
	VMA_ITERATOR(vmi, mm, 0);
	for_each_vma(vmi, vma)
		if (vma->vm_flags & VM_MERGEABLE)
			return true;
	return false;
}

/*
 * Upstream's formula with PKSM's figures (refreshed by pksm_mm_stat()):
 * merged and zero pages saved, less an item for each page still tracked.
 */
long ksm_process_profit(struct mm_struct *mm)
{
	return (long)(READ_ONCE(mm->ksm_merging_pages) +
		      mm_ksm_zero_pages(mm)) * PAGE_SIZE -
	       (long)READ_ONCE(mm->ksm_rmap_items) * sizeof(struct pksm_item);
}

/*
 * Is @anon_vma one of the anon_vmas @vma is linked to (its own, its
 * parents' up to the root)?  Pointers are only compared: the VMA keeps
 * each of them alive, and its chain is stable under the mmap lock or the
 * VMA lock the fault holds.
 */
static bool pksm_vma_has_anon_vma(struct vm_area_struct *vma,
				  struct anon_vma *anon_vma)
{
	struct anon_vma_chain *avc;

	list_for_each_entry(avc, &vma->anon_vma_chain, same_vma) {
		if (avc->anon_vma == anon_vma)
			return true;
	}
	return false;
}

/*
 * Swap-in of @folio at @addr: a KSM page still known to PKSM can be mapped
 * as it is, unless the VMA is now excluded from merging; an anonymous page
 * from another process family (an anon_vma @vma is not linked to) or
 * another index must be copied, as for upstream KSM.  A page born in any
 * generation of the VMA's fork tree (its own anon_vma, a parent's, the
 * root's) is mapped as it is.
 *
 * The anon_vma of a swap-cache folio is not pinned by the folio.  After a
 * KSM page is swapped out, every process that mapped it holds the same swap
 * entry; the first to fault it back in gives the new folio its own root
 * anon_vma, and may exit while the folio stays in the swap cache for the
 * others.  So the folio's anon_vma is never dereferenced here: it is only
 * compared with the anon_vmas that @vma keeps alive (its chain).  Any
 * other one means a copy, which is always correct.
 */
struct folio *ksm_might_need_to_copy(struct folio *folio,
				     struct vm_area_struct *vma,
				     unsigned long addr)
{
	struct anon_vma *anon_vma = folio_anon_vma(folio);
	struct folio *copy;

	if (folio_test_large(folio))
		return folio;
	if (folio_test_ksm(folio)) {
		struct pksm_stable_node *node = pksm_folio_node(folio);

		/*
		 * Unmerging (run=2), memory excluded from merging since the
		 * page went out, or a process of another merge domain than
		 * the KSM page's (domain.c; the node's domain never changes
		 * and the folio is locked): a swapped-out KSM page comes back
		 * copied.
		 */
		if (node && READ_ONCE(pksm_run) != PKSM_RUN_UNMERGE &&
		    !pksm_vma_excluded(vma) &&
		    node->domain == pksm_mm_domain(vma->vm_mm))
			return folio;
	} else if (!anon_vma) {
		return folio;
	} else if (folio->index == linear_anon_page_index(vma, addr) &&
		   pksm_vma_has_anon_vma(vma, anon_vma)) {
		return folio;
	}
	if (PageHWPoison(&folio->page))
		return ERR_PTR(-EHWPOISON);
	if (!folio_test_uptodate(folio))
		return folio;	/* do_swap_page() reports the error */

	copy = vma_alloc_folio(GFP_HIGHUSER_MOVABLE, 0, vma, addr);
	if (copy && mem_cgroup_charge(copy, vma->vm_mm, GFP_KERNEL)) {
		folio_put(copy);
		copy = NULL;
	}
	if (!copy)
		return NULL;
	if (copy_mc_user_highpage(&copy->page, &folio->page, addr, vma)) {
		folio_put(copy);
		return ERR_PTR(-EHWPOISON);
	}
	folio_set_dirty(copy);
	__folio_mark_uptodate(copy);
	__folio_set_locked(copy);
#ifdef CONFIG_SWAP
	count_vm_event(KSM_SWPIN_COPY);
#endif
	return copy;
}

/* ---- unmerging ---------------------------------------------------------- */

/**
 * struct pksm_unmerge_find - what the unmerge walk found (pksm_unmerge_pmd())
 * @zero: look for zero-page merges too
 * @addr: the first address at or after the walk's start that maps a KSM
 *	page, is a migration entry of one, or (if @zero) maps the zero page
 *	by merging
 * @pfn: its frame, for the trace
 * @kind: PKSM_MERGE_STABLE or PKSM_MERGE_ZERO
 * @exclusive: a KSM page mapped as exclusive to this mapping (it should
 *	never be: an unsharing fault would leave it alone)
 * @migrating: a migration entry of a KSM page: the fault only waits for
 *	the migration to end, and the next walk finds the moved page
 */
struct pksm_unmerge_find {
	bool zero;
	unsigned long addr;
	unsigned long pfn;
	int kind;
	bool exclusive;
	bool migrating;
};

/*
 * One page table of the unmerge walk, under its lock: the first PTE in
 * [@addr, @end) to unshare, if any (1 stops the walk there).  A migration
 * entry of a KSM page counts: the page is still merged, the unsharing
 * fault there waits for the migration to end, and the walk that follows
 * finds the moved page.  A walk over a large populated range yields and
 * stops on a fatal signal between page tables.
 */
static int pksm_unmerge_pmd(pmd_t *pmd, unsigned long addr, unsigned long end,
			    struct mm_walk *walk)
{
	struct pksm_unmerge_find *find = walk->private;
	pte_t *start_pte, *pte;
	spinlock_t *ptl;	/* the page table's lock, held over the scan */
	int found = 0;

	if (fatal_signal_pending(current))
		return -EINTR;
	cond_resched();
	start_pte = pte_offset_map_lock(walk->mm, pmd, addr, &ptl);
	if (!start_pte)
		return 0;	/* no page table here (any more) */
	for (pte = start_pte; addr < end && !found; pte++, addr += PAGE_SIZE) {
		pte_t ptent = ptep_get(pte);
		struct folio *folio = NULL;
		struct page *page = NULL;

		if (pte_present(ptent)) {
			if (find->zero && is_ksm_zero_pte(ptent)) {
				find->kind = PKSM_MERGE_ZERO;
				find->pfn = pte_pfn(ptent);
				found = 1;
				break;
			}
			page = vm_normal_page(walk->vma, addr, ptent);
			folio = page ? page_folio(page) : NULL;
		} else if (!pte_none(ptent)) {
			softleaf_t entry = softleaf_from_pte(ptent);

			if (softleaf_is_migration(entry))
				folio = softleaf_to_folio(entry);
		}
		if (folio && !folio_test_large(folio) && folio_test_ksm(folio)) {
			find->kind = PKSM_MERGE_STABLE;
			find->pfn = folio_pfn(folio);
			find->exclusive = page && PageAnonExclusive(page);
			find->migrating = !page;
			found = 1;
			break;
		}
	}
	if (found)
		find->addr = addr;
	pte_unmap_unlock(start_pte, ptl);
	return found;
}

/* Walked with the mmap lock held for reading (run=2, merge_domain). */
static const struct mm_walk_ops pksm_unmerge_ops = {
	.pmd_entry = pksm_unmerge_pmd,
	.walk_lock = PGWALK_RDLOCK,
};

/*
 * Walked with the mmap lock held for writing (the opt-outs): the VMA is
 * write-locked too, so that no fault under a per-VMA lock maps a KSM page
 * back in behind the walk before the caller marks the range excluded.
 */
static const struct mm_walk_ops pksm_unmerge_locked_ops = {
	.pmd_entry = pksm_unmerge_pmd,
	.walk_lock = PGWALK_WRLOCK,
};

/*
 * Unmerge [@start, @end) of @vma: give each address that maps a KSM page
 * or (if @zero) the zero page by merging its own copy, by an unsharing
 * fault, as a write would, but without writing.  The mmap lock is held,
 * in any mode.  A page-table walk finds the next such address, so the
 * cost follows what is mapped, not the size of the range; the walk
 * starts again at the address it found, so a fault that backed out (a
 * PTE changed under it) is tried again.  @ops: pksm_unmerge_ops, or
 * pksm_unmerge_locked_ops if the mmap lock is held for writing.  A VMA
 * PKSM never merges in (shared, special, hugetlb, DAX: flags a live VMA
 * keeps) is not walked.
 */
static int pksm_unmerge_pages(struct vm_area_struct *vma, unsigned long start,
			      unsigned long end, bool zero,
			      const struct mm_walk_ops *ops)
{
	unsigned long addr = start, last = 0;
	unsigned int tries = 0;

	if (!vma->anon_vma || !pksm_vma_compatible(vma))
		return 0;	/* never had a page PKSM could merge */
	while (addr < end) {
		struct pksm_unmerge_find find = { .zero = zero };
		vm_fault_t ret;
		int found;

		cond_resched();
		if (fatal_signal_pending(current))
			return -EINTR;
		found = walk_page_range_vma(vma, addr, end, ops, &find);
		if (found <= 0)
			return found;	/* nothing merged left (or an error) */
		addr = find.addr;
		tries = addr == last ? tries + 1 : 0;
		last = addr;
		/*
		 * An unsharing fault leaves an exclusive page alone, so a KSM
		 * page marked exclusive would be found here for ever: it
		 * should never be (a KSM page is never reused by a write
		 * fault).  Say so once and give up rather than hang with
		 * pksm_mutex held (run=2) or the mmap lock (opt-out).
		 */
		if (find.exclusive || tries > 64) {
			pr_warn_once("pksm: cannot unshare pfn %#lx at %#lx (%s)\n",
				     find.pfn, addr, find.exclusive ?
				     "exclusive" : "no progress");
			return -EBUSY;
		}
		ret = handle_mm_fault(vma, addr,
				      FAULT_FLAG_UNSHARE | FAULT_FLAG_REMOTE, NULL);
		if (ret & VM_FAULT_OOM)
			return -ENOMEM;
		if (ret & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV)) {
			addr += PAGE_SIZE;	/* gone: nothing to keep */
			continue;
		}
		if (!(ret & VM_FAULT_RETRY) && !find.migrating)
			trace_pksm_unmerge(find.pfn, addr, find.kind);
	}
	return 0;
}

/*
 * Unmerge [@start, @end) of @vma, zero pages too (opting out: the mmap
 * lock is held for writing).
 */
static int pksm_unmerge_range(struct vm_area_struct *vma, unsigned long start,
			      unsigned long end)
{
	return pksm_unmerge_pages(vma, start, end, true,
				  &pksm_unmerge_locked_ops);
}

/* Unmerge every page of @mm (zero-page merges too if @zero). */
static int pksm_unmerge_mm(struct mm_struct *mm, bool zero)
{
	struct vm_area_struct *vma;
	int err = 0;

	VMA_ITERATOR(vmi, mm, 0);

	if (mmap_read_lock_killable(mm))
		return -EINTR;
	for_each_vma(vmi, vma) {
		err = pksm_unmerge_pages(vma, vma->vm_start, vma->vm_end,
					 zero, &pksm_unmerge_ops);
		if (err)
			break;
	}
	mmap_read_unlock(mm);
	return err;
}

static int pksm_cmp_ptr(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a;
	unsigned long y = *(const unsigned long *)b;

	return x < y ? -1 : x > y;
}

/* Room a pass leaves for processes forked between its count and its walk. */
#define PKSM_UNMERGE_SLACK	64
/* Passes pksm_unmerge_until() makes at most while forks outrun them. */
#define PKSM_UNMERGE_PASSES	4

/*
 * One pass of pksm_unmerge_until(): every marked mm, each once.  *@full is
 * set if the processes outnumbered the room counted for them (forks
 * meanwhile): some mm may have been left out, and another pass is due.
 */
static int pksm_unmerge_pass(bool zero, bool *full)
{
	struct mm_struct **mms;
	struct task_struct *p, *t;
	unsigned int n = 0, cap = PKSM_UNMERGE_SLACK, i;
	int err = 0;

	*full = false;
	rcu_read_lock();
	for_each_process(p)
		cap++;
	rcu_read_unlock();
	mms = kvcalloc(cap, sizeof(*mms), GFP_KERNEL);
	if (!mms)
		return -ENOMEM;

	/* Take a reference on each marked mm (processes may share one). */
	rcu_read_lock();
	for_each_process(p) {
		struct mm_struct *mm;

		if (n == cap) {
			*full = true;	/* forks since we counted */
			break;
		}
		if (p->flags & PF_KTHREAD)
			continue;
		/* A thread with the mm: the leader may have exited alone. */
		t = find_lock_task_mm(p);
		if (!t)
			continue;
		mm = t->mm;
		if (mm_flags_test(MMF_VM_MERGEABLE, mm) && mmget_not_zero(mm))
			mms[n++] = mm;
		task_unlock(t);
	}
	rcu_read_unlock();

	/* Each mm once: sorted, an mm equal to the one before is skipped. */
	sort(mms, n, sizeof(*mms), pksm_cmp_ptr, NULL);
	for (i = 0; i < n; i++) {
		if (!err && (!i || mms[i] != mms[i - 1]))
			err = pksm_unmerge_mm(mms[i], zero);
		mmput(mms[i]);
	}
	kvfree(mms);
	return err;
}

/* The passes of pksm_unmerge_until(). */
static int pksm_unmerge_passes(bool zero, unsigned int keep)
{
	unsigned long left = ULONG_MAX, mapped;
	unsigned int pass;
	bool full;
	int err;

	for (pass = 0; pass < PKSM_UNMERGE_PASSES; pass++) {
		err = pksm_unmerge_pass(zero, &full);
		pksm_account_all();
		if (err)
			return err;
		mapped = pksm_other_mode_mapped(keep);
		if (!full && (!mapped || mapped >= left))
			return 0;
		left = mapped;
	}
	return full ? -EAGAIN : 0;
}

/*
 * (M) The task running pksm_unmerge_until(), whose unsharing faults put
 * their references on the KSM pages they copy in the fault, with no
 * hand-over under fake merging (__pksm_take_copied()); read locklessly by
 * faults, which compare it with current.
 */
struct task_struct *pksm_unmerger;

/**
 * pksm_unmerge_until() - give every process its own copy of every merged
 *	page, but KSM pages of merge domain mode @keep
 * @zero: pages merged with the zero page too (run=2), or KSM pages only
 *	(a change of merge_domain: zero-page merges are made in every mode)
 * @keep: a merge domain mode whose KSM pages may stay mapped (a change of
 *	merge_domain to it), or PKSM_DOMAIN_MODES: none (run=2)
 *
 * PKSM marks each mm it merges in MMF_VM_MERGEABLE, so only those are
 * walked.  Called with pksm_mutex held, so pksmd merges nothing meanwhile
 * (run=2 also sets pksm_run to PKSM_RUN_UNMERGE first, for swap-in: see
 * ksm_might_need_to_copy()); faults never take pksm_mutex.  A pass is
 * followed by another, at most PKSM_UNMERGE_PASSES in all, while it met
 * more processes than it counted, or left KSM pages mapped (every node
 * counted again, pksm_account_all()) and fewer than the pass before: a
 * process forked after the pass collected the mms, from one it had not
 * unmerged yet, inherits its merges.  Mappings a pass did not reduce (a
 * count a busy KSM page left stale) end the passes; some may stay mapped
 * when this returns (the caller checks, if it must:
 * pksm_set_merge_domain()).  A process forked meanwhile keeps its
 * zero-page merges (counted globally only).
 *
 * Return: 0, -EINTR (a fatal signal), -ENOMEM, -EBUSY (a page that cannot
 * be unshared, see pksm_unmerge_pages()), or -EAGAIN if forks outran the
 * count of processes in the last pass made.
 */
int pksm_unmerge_until(bool zero, unsigned int keep)
{
	int err;

	lockdep_assert_held(&pksm_mutex);
	WRITE_ONCE(pksm_unmerger, current);
	err = pksm_unmerge_passes(zero, keep);
	WRITE_ONCE(pksm_unmerger, NULL);
	return err;
}

