/* SPDX-License-Identifier: GPL-2.0 */
/*
 * PKSM hooks called by the core mm (see mm/pksm.c for the algorithm).
 *
 * Each hook is a static branch that is off until PKSM has initialised, and
 * stays off when the kernel is booted with pksm.enabled=0, so the hooks cost one
 * patched-out jump when PKSM is not in use.
 */
#ifndef _LINUX_PKSM_H
#define _LINUX_PKSM_H

#include <linux/jump_label.h>
#include <linux/mm_types.h>

#ifdef CONFIG_PKSM

DECLARE_STATIC_KEY_FALSE(pksm_hooks_key);

void __pksm_folio_born(struct folio *folio);
void __pksm_page_freed(struct page *page);
void __pksm_cow_break(struct folio *folio);

/*
 * A new anonymous folio got its first mapping (folio_add_new_anon_rmap()).
 * Called with the page table lock held, before the PTE is set: atomic
 * context, must not fail the fault.
 */
static inline void pksm_folio_born(struct folio *folio)
{
	if (static_branch_unlikely(&pksm_hooks_key))
		__pksm_folio_born(folio);
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

/* A write fault is about to copy the merged page @folio (COW break). */
static inline void pksm_cow_break(struct folio *folio)
{
	if (static_branch_unlikely(&pksm_hooks_key))
		__pksm_cow_break(folio);
}

#else /* !CONFIG_PKSM */

static inline void pksm_folio_born(struct folio *folio)
{
}

static inline void pksm_page_freed(struct page *page)
{
}

static inline void pksm_cow_break(struct folio *folio)
{
}

#endif /* CONFIG_PKSM */

#endif /* _LINUX_PKSM_H */
