/* SPDX-License-Identifier: GPL-2.0 */
/*
 * PKSM hooks called by the core mm (see mm/pksm/internal.h for the algorithm).
 *
 * Each hook is a static branch that is off until PKSM has initialised, and
 * stays off when the kernel is booted with pksm.enabled=0, so the hooks cost one
 * patched-out jump when PKSM is not in use.
 */
#ifndef _LINUX_PKSM_H
#define _LINUX_PKSM_H

#include <linux/jump_label.h>
#include <linux/mm_types.h>

/**
 * enum pksm_reclaim - what reclaim does with an anonymous folio PKSM
 *	looked at just before it would be added to swap
 * @PKSM_RECLAIM_STORE: go on: add it to swap, store it (zswap) or write it
 * @PKSM_RECLAIM_MERGED: its mappings now point at an equal page (the zero
 *	page or a KSM page): it is unmapped, free it, store nothing
 * @PKSM_RECLAIM_KEEP: an equal page is waiting in the unstable table and
 *	pksmd was asked to merge the two at its next batch: keep it for now
 */
enum pksm_reclaim {
	PKSM_RECLAIM_STORE,
	PKSM_RECLAIM_MERGED,
	PKSM_RECLAIM_KEEP,
};

#ifdef CONFIG_PKSM

DECLARE_STATIC_KEY_FALSE(pksm_hooks_key);

void __pksm_folio_born(struct folio *folio, struct vm_area_struct *vma);
void __pksm_page_freed(struct page *page);
void __pksm_cow_break(struct folio *folio, struct vm_area_struct *vma,
		      unsigned long address, bool unshare);
bool __pksm_take_copied(struct folio *folio, bool unshare);
/*
 * /proc/<pid>/ksm_stat and ksm_merging_pages: PKSM keeps no per-mm counts,
 * so this recounts mm->ksm_merging_pages and mm->ksm_rmap_items from @mm's
 * page tables just before they are shown.  Process context, may sleep.
 */
void pksm_mm_stat(struct mm_struct *mm);
enum pksm_reclaim __pksm_reclaim_folio(struct folio *folio);

/*
 * A new anonymous folio got its first mapping (folio_add_new_anon_rmap())
 * in @vma.  Called with the page table lock held, before the PTE is set:
 * atomic context, must not fail the fault.
 */
static inline void pksm_folio_born(struct folio *folio,
				   struct vm_area_struct *vma)
{
	if (static_branch_unlikely(&pksm_hooks_key))
		__pksm_folio_born(folio, vma);
}

/*
 * An order-0 anonymous page (KSM pages included) is being freed; its
 * ->mapping is still intact.  Any context, interrupts included.
 */
static inline void pksm_page_freed(struct page *page)
{
	if (static_branch_unlikely(&pksm_hooks_key))
		__pksm_page_freed(page);
}

/*
 * A fault is about to copy the merged page @folio (referenced), or the
 * merged zero page if @folio is NULL, at @address of @vma: a COW break, or
 * an unsharing fault (@unshare: run=2, opt-out, a read-only pin).
 */
static inline void pksm_cow_break(struct folio *folio,
				  struct vm_area_struct *vma,
				  unsigned long address, bool unshare)
{
	if (static_branch_unlikely(&pksm_hooks_key))
		__pksm_cow_break(folio, vma, address, unshare);
}

/*
 * A fault has copied @folio (referenced, maybe a KSM page) away from the
 * PTE it handled, whose mapping it removed, or found the PTE changed and
 * copied nothing (@unshare: an unsharing fault), and would now free the
 * page's swap cache (if it copied) and put its reference.  True
 * if PKSM took both over (it drops them later, from a work item); the
 * caller then must do neither.  Process context, no locks held but the
 * mmap or VMA lock.
 */
static inline bool pksm_take_copied(struct folio *folio, bool unshare)
{
	if (static_branch_unlikely(&pksm_hooks_key))
		return __pksm_take_copied(folio, unshare);
	return false;
}

/*
 * Reclaim is about to add @folio (order 0 or large, anonymous,
 * swap-backed, locked, isolated, maybe mapped) to swap, or, if it is in
 * the swap cache already, to unmap it and write it to its slot again:
 * shrink_folio_list(), which may sleep; PF_MEMALLOC may be set.
 */
static inline enum pksm_reclaim pksm_reclaim_folio(struct folio *folio)
{
	if (static_branch_unlikely(&pksm_hooks_key))
		return __pksm_reclaim_folio(folio);
	return PKSM_RECLAIM_STORE;
}

#else /* !CONFIG_PKSM */

static inline enum pksm_reclaim pksm_reclaim_folio(struct folio *folio)
{
	return PKSM_RECLAIM_STORE;
}

static inline void pksm_folio_born(struct folio *folio,
				   struct vm_area_struct *vma)
{
}

static inline void pksm_page_freed(struct page *page)
{
}

static inline void pksm_cow_break(struct folio *folio,
				  struct vm_area_struct *vma,
				  unsigned long address, bool unshare)
{
}

static inline bool pksm_take_copied(struct folio *folio, bool unshare)
{
	return false;
}

/* Upstream KSM keeps mm->ksm_merging_pages and ksm_rmap_items itself. */
static inline void pksm_mm_stat(struct mm_struct *mm)
{
}

#endif /* CONFIG_PKSM */

#endif /* _LINUX_PKSM_H */
