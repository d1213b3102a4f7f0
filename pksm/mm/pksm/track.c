// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: birth and death of tracked pages, the pfn table and the work
 * lists (see internal.h for the overview and the locks).
 *
 * The pfn table, the new, rescan, probation and del lists, pksm_lock and
 * the counters under it (struct pksm_list_counts) are this file's alone:
 * pksmd, reclaim and sysfs reach them through the functions below (taking
 * an item off a list, requeueing it, moving it, reading the counts).  The
 * atomics cow_breaks, cow_backoffs, migrated_pages and excluded_pages are
 * written here only (excluded_pages also through pksm_count_excluded());
 * sysfs reads them as they are, with atomic_long_read(): a function for
 * each would add nothing to a lockless read.
 */

#include <linux/mm.h>
#include <linux/hash.h>
#include <linux/jump_label.h>
#include <linux/ksm.h>
#include <linux/pksm.h>
#include <linux/slab.h>
#include <linux/sched/coredump.h>
#include <linux/percpu.h>
#include <linux/pagemap.h>
#include <linux/memblock.h>
#include <linux/vmalloc.h>
#include "internal.h"

#include <trace/events/pksm.h>

DEFINE_STATIC_KEY_FALSE(pksm_hooks_key);

/*
 * pksm_lock: irq-safe spinlock, innermost.  The pfn table, the new,
 * rescan, probation and del lists (and the probation cuts in them),
 * item->where/->dead and pksm_lc (L).  Taken by the birth hook under the
 * page table lock and by the free hook in any context, so nothing that
 * sleeps or takes another lock runs under it; see internal.h.
 */
static DEFINE_SPINLOCK(pksm_lock);

/* (L) */
static struct pksm_list_counts pksm_lc;
atomic_long_t pksm_nr_cow_breaks = ATOMIC_LONG_INIT(0);
atomic_long_t pksm_nr_backoffs = ATOMIC_LONG_INIT(0);
atomic_long_t pksm_nr_migrated = ATOMIC_LONG_INIT(0);
/* Pages not tracked, or dropped, because their VMA or process opted out. */
atomic_long_t pksm_nr_excluded = ATOMIC_LONG_INIT(0);

/*
 * pfn -> item (L).  One pointer per page of memory, like page_ext.  The
 * gdb helpers (harness/gdb/pksm.py) know the table, the lists and pksm_lc
 * by name.
 */
static struct pksm_item **pksm_table;
static unsigned long pksm_table_len;

static LIST_HEAD(pksm_new_list);	/* (L) */
static LIST_HEAD(pksm_rescan_list);	/* (L) */
/* (L) pages seen at least once, waiting out probation, one list a level */
static struct list_head pksm_probation_lists[PKSM_LEVELS];
static LIST_HEAD(pksm_del_list);	/* (L) */

static struct kmem_cache *pksm_item_cache;

/* ---- hooks: birth, death, COW ----------------------------------------- */

struct pksm_item **pksm_slot(unsigned long pfn)
{
	return pfn < pksm_table_len ? &pksm_table[pfn] : NULL;
}

/* pksm_lock held: the page of @item was freed, or is to be forgotten. */
static void pksm_item_kill_locked(struct pksm_item *item)
{
	struct pksm_item **slot = pksm_slot(item->pfn);

	if (slot && *slot == item)
		*slot = NULL;
	item->dead = 1;
	pksm_lc.nr_tracked--;
	switch (item->where) {
	case PKSM_UNSTABLE:
		/* In the unstable table: pksmd's sweep releases it (dead 2: counted). */
		item->dead = 2;
		pksm_lc.nr_dead_unstable++;
		return;
	case PKSM_NEW:
		pksm_lc.nr_new--;
		break;
	case PKSM_RESCAN:
		pksm_lc.nr_rescan--;
		break;
	case PKSM_PROBATION:
		pksm_lc.nr_probation[item->backoff]--;
		break;
	default:
		/* in flight: pksmd releases it when the visit ends */
		return;
	}
	list_move_tail(&item->link, &pksm_del_list);
	item->where = PKSM_DEL;
	pksm_lc.nr_del++;
}

/*
 * Pages mapped in @vma are left alone: MADV_UNMERGEABLE excluded the VMA,
 * or its process opted out with prctl(PR_SET_MEMORY_MERGE, 0).  Both are
 * set with the mmap lock held for writing, so they are stable while it is
 * held in any mode; the birth hook and the opt-in walk read them racily,
 * and merging checks them again under the mmap lock (pksm_replace_one()).
 */
bool pksm_vma_excluded(struct vm_area_struct *vma)
{
	if (vma->vm_flags & VM_UNMERGEABLE)
		return true;
	/*
	 * pksm.opted_in_only=1: only what opted in, as upstream merges.
	 * PR_SET_MEMORY_MERGE=1 sets VM_MERGEABLE on the compatible VMAs, =0
	 * clears it on every VMA, and a later MADV_MERGEABLE sets it on its
	 * range again whatever the process said before.
	 */
	if (pksm_opted_in_only)
		return !(vma->vm_flags & VM_MERGEABLE);
	return mm_flags_test(MMF_PKSM_OPTOUT, vma->vm_mm);
}

/*
 * Start tracking @folio with a new item on the new list.  Atomic context
 * (the page table lock is held).  @known: the page may be tracked already
 * (the opt-in walk), and is then left as it is; a newborn page never is.
 */
static void pksm_track_backoff(struct folio *folio, bool known, u8 backoff)
{
	unsigned long pfn = folio_pfn(folio);
	struct pksm_item **slot = pksm_slot(pfn);
	struct pksm_item *item = NULL;
	unsigned long flags;

	if (known && (!slot || READ_ONCE(*slot)))
		return;
	if (slot && !folio_test_large(folio)) {
		/* Never from the reserves of an OOM victim. */
		item = kmem_cache_alloc(pksm_item_cache, GFP_NOWAIT |
					__GFP_NOWARN | __GFP_NOMEMALLOC);
		if (!item)
			pksm_alloc_failed(PKSM_ALLOC_ITEM);
	}
	spin_lock_irqsave(&pksm_lock, flags);
	if (!item) {
		pksm_lc.nr_untracked++;
		goto out;
	}
	if (*slot) {
		/* A freed page drops its item: here only if tracked already. */
		if (known) {
			spin_unlock_irqrestore(&pksm_lock, flags);
			kmem_cache_free(pksm_item_cache, item);
			return;
		}
		WARN_ON_ONCE(1);	/* a missed free */
		pksm_item_kill_locked(*slot);
	}
	item->pfn = pfn;
	item->hash = 0;
	item->visits = PKSM_UNSEEN;
	item->dead = 0;
	item->backoff = backoff;
	item->busy = 0;
	item->where = PKSM_NEW;
	list_add_tail(&item->link, &pksm_new_list);
	*slot = item;
	if (backoff)
		atomic_long_inc(&pksm_nr_backoffs);
	pksm_lc.nr_new++;
	pksm_lc.nr_tracked++;
	pksm_lc.nr_items++;
out:
	spin_unlock_irqrestore(&pksm_lock, flags);
	if (item)
		trace_pksm_page_registered(pfn);
}

void pksm_track(struct folio *folio, bool known)
{
	pksm_track_backoff(folio, known, 0);
}

/*
 * The places (mm, linear page index) merged or broken lately, so that a
 * COW copy's back-off follows the place that keeps being written, not the
 * KSM page it broke from (one hot writer would raise every sharer's
 * level), and a merged zero page that is written again backs off too (it
 * has no node).  Read by the COW hook only.  A table of hints, allocated
 * at start-up with a slot per PKSM_PLACE_PAGES pages of memory or more (at
 * least 1,024), in sets of PKSM_PLACE_WAYS hashed by place; a new place takes the set's free slot,
 * else the one with the lowest level (the oldest merge among those), so
 * that a place that keeps breaking is not pushed out by the many that
 * merge and stay merged.  Written without a lock by merges (pksmd and the
 * reclaim hook, under the PTE lock) and by faults on any CPU: a slot
 * another place took over, or whose fields two writers mixed, costs one
 * copy a wrong back-off level, never correctness.
 */
#define PKSM_PLACE_WAYS		4
#define PKSM_PLACE_PAGES	16
#define PKSM_PLACE_MIN_BITS	8	/* 256 sets */

/**
 * struct pksm_place - what last happened at one place
 * @mm: the mm (compared, never followed; NULL: a free slot)
 * @pgoff: the linear page index
 * @merged_at: jiffies (low 32 bits) of the last merge at the place
 * @level: the back-off level of the last COW copy made at the place
 * @merged: merged since the last copy (@merged_at is current)
 */
struct pksm_place {
	struct mm_struct *mm;
	pgoff_t pgoff;
	u32 merged_at;
	u8 level;
	u8 merged;
};

static struct pksm_place *pksm_places;	/* NULL: no table, no hints */
static unsigned int pksm_place_bits;	/* log2 of the number of sets */
/* The place table's size (pksm_places_init()), set once at start-up. */
static unsigned long pksm_places_bytes;

/**
 * pksm_places_init() - allocate the place table (start-up)
 *
 * Return: its size in bytes, 0 if there is none (then copies are backed
 * off by their KSM page's last merge only).
 */
static unsigned long __init pksm_places_init(void)
{
	unsigned long sets = totalram_pages() /
			     (PKSM_PLACE_PAGES * PKSM_PLACE_WAYS);

	pksm_place_bits = max_t(unsigned int, PKSM_PLACE_MIN_BITS,
				order_base_2(max(sets, 1UL)));
	pksm_places = vzalloc(array_size(PKSM_PLACE_WAYS << pksm_place_bits,
					 sizeof(*pksm_places)));
	if (!pksm_places)
		return 0;
	return (PKSM_PLACE_WAYS << pksm_place_bits) * sizeof(*pksm_places);
}

/* Start-up failed after pksm_places_init(): no table. */
static void __init pksm_places_free(void)
{
	vfree(pksm_places);
	pksm_places = NULL;
}

static bool pksm_place_is(struct pksm_place *p, struct mm_struct *mm,
			  pgoff_t pgoff)
{
	return READ_ONCE(p->mm) == mm && READ_ONCE(p->pgoff) == pgoff;
}

/* The first slot of the set of (@mm, @pgoff); the table exists. */
static struct pksm_place *pksm_place_set(struct mm_struct *mm, pgoff_t pgoff)
{
	return &pksm_places[hash_long((unsigned long)mm + pgoff * 0x9e37U,
				      pksm_place_bits) * PKSM_PLACE_WAYS];
}

/* The slot of (@mm, @pgoff), or NULL if the place is not in the table. */
static struct pksm_place *pksm_place_find(struct mm_struct *mm, pgoff_t pgoff)
{
	struct pksm_place *set;
	unsigned int i;

	if (!pksm_places)
		return NULL;
	set = pksm_place_set(mm, pgoff);
	for (i = 0; i < PKSM_PLACE_WAYS; i++)
		if (pksm_place_is(&set[i], mm, pgoff))
			return &set[i];
	return NULL;
}

/* A slot for (@mm, @pgoff), not in the table: taken over, level 0. */
static struct pksm_place *pksm_place_take(struct mm_struct *mm, pgoff_t pgoff)
{
	struct pksm_place *set, *victim = NULL;
	u32 now = (u32)jiffies;
	unsigned int i;

	if (!pksm_places)
		return NULL;
	set = pksm_place_set(mm, pgoff);
	for (i = 0; i < PKSM_PLACE_WAYS; i++) {
		struct pksm_place *p = &set[i];

		if (!READ_ONCE(p->mm)) {
			victim = p;
			break;
		}
		if (!victim || READ_ONCE(p->level) < READ_ONCE(victim->level) ||
		    (READ_ONCE(p->level) == READ_ONCE(victim->level) &&
		     now - READ_ONCE(p->merged_at) >
		     now - READ_ONCE(victim->merged_at)))
			victim = p;
	}
	WRITE_ONCE(victim->mm, NULL);
	WRITE_ONCE(victim->level, 0);
	WRITE_ONCE(victim->merged, 0);
	WRITE_ONCE(victim->pgoff, pgoff);
	WRITE_ONCE(victim->mm, mm);
	return victim;
}

/**
 * pksm_place_merged() - a PTE of @mm at page index @pgoff now maps a
 *	merged page (a KSM page or the zero page)
 * @mm: the mm
 * @pgoff: the linear page index of the PTE's address
 *
 * Called for every PTE pksmd or the reclaim hook replaces, under the PTE
 * lock.
 */
void pksm_place_merged(struct mm_struct *mm, pgoff_t pgoff)
{
	struct pksm_place *p = pksm_place_find(mm, pgoff);

	if (!p)
		p = pksm_place_take(mm, pgoff);
	if (!p)
		return;
	WRITE_ONCE(p->merged_at, (u32)jiffies);
	WRITE_ONCE(p->merged, 1);
}

/**
 * pksm_places_forget() - @mm is going away: drop its places
 * @mm: the mm, at its exit (ksm_exit())
 *
 * A new mm allocated at the same address must not find the places of
 * this one merged (its first pages would be taken for COW copies and
 * backed off).  A slot written for @mm by a merge still under way is left
 * behind: a hint, it costs at most one copy a wrong back-off level.
 */
void pksm_places_forget(struct mm_struct *mm)
{
	unsigned long i;

	if (!pksm_places)
		return;
	for (i = 0; i < (PKSM_PLACE_WAYS << pksm_place_bits); i++)
		if (READ_ONCE(pksm_places[i].mm) == mm)
			WRITE_ONCE(pksm_places[i].mm, NULL);
}

/*
 * A merged page at @pgoff of @mm (place @p, found by the caller, or NULL)
 * is being copied (a COW break); the KSM page's last merge was at
 * @node_merged_at if @node_known (the place's own merge time comes first:
 * the page may have been made a KSM page in place, whose PTEs pksmd never
 * replaced).  Returns the copy's back-off level and remembers it for the
 * place; a break at level 0 of a place not in the table takes no slot.
 */
static u8 pksm_place_cow(struct pksm_place *p, struct mm_struct *mm,
			 pgoff_t pgoff, bool node_known, u32 node_merged_at)
{
	unsigned int prev = 0;
	u32 merged_at;
	u8 level;

	if (p && READ_ONCE(p->merged))
		merged_at = READ_ONCE(p->merged_at);
	else if (node_known)
		merged_at = node_merged_at;
	else
		return 0;
	if (p)
		prev = READ_ONCE(p->level);
	level = pksm_cow_level(prev, jiffies_to_msecs((u32)jiffies - merged_at),
			       READ_ONCE(pksm_period_seconds) * MSEC_PER_SEC);
	if (!p && level)
		p = pksm_place_take(mm, pgoff);
	if (p) {
		WRITE_ONCE(p->level, level);
		WRITE_ONCE(p->merged, 0);
	}
	return level;
}

/**
 * struct pksm_cow_note - the last COW break of a merged page (a KSM page
 *	or the zero page) on this CPU, waiting for its copy to be born
 * @task: the faulting task (compared, never followed; NULL: no note)
 * @mm: the faulting mm
 * @pgoff: the linear page index of the faulting address
 * @at: jiffies when the note was written
 * @backoff: the back-off level the copy gets (0 too: a break overwrites
 *	any older note)
 *
 * Written by the COW hook, read and cleared by the next birth on this CPU
 * by the same task, which in wp_page_copy() is the copy's (unless the task
 * moved to another CPU while allocating: on SMP a copy may miss its
 * back-off, which costs only a merge that will break again).  A note left
 * behind (the copy was never born: the fault backed out, or was made on
 * another CPU) is matched by nothing else: another task's birth, another
 * place, or a birth more than a jiffy later only clears it.
 */
struct pksm_cow_note {
	struct task_struct *task;
	struct mm_struct *mm;
	pgoff_t pgoff;
	unsigned long at;
	u8 backoff;
};

static DEFINE_PER_CPU(struct pksm_cow_note, pksm_cow_note);

void __pksm_folio_born(struct folio *folio, struct vm_area_struct *vma)
{
	struct pksm_cow_note *note;
	u8 backoff = 0;

	/*
	 * Atomic context (the page table lock): no migration from here.  Only
	 * a COW break's own copy is backed off: a page born where one was
	 * merged but not by a write to it (a refault after MADV_DONTNEED or
	 * munmap, a swap-in, an unsharing fault) is not.
	 */
	note = this_cpu_ptr(&pksm_cow_note);
	if (unlikely(note->task == current)) {
		if (note->mm == vma->vm_mm && note->pgoff == folio->index &&
		    time_before_eq(jiffies, note->at + 1))
			backoff = note->backoff;
		note->task = NULL;
	}
	if (unlikely(pksm_vma_excluded(vma))) {
		atomic_long_inc(&pksm_nr_excluded);
		return;
	}
	pksm_track_backoff(folio, false, backoff);
}

/*
 * A page pksmd visited is excluded from merging and its item is dropped
 * (merge.c, pksm_excluded()): counted in excluded_pages.
 */
void pksm_count_excluded(void)
{
	atomic_long_inc(&pksm_nr_excluded);
}

/* Stop tracking @folio (a merge would be refused): as if it were freed. */
void pksm_forget(struct folio *folio)
{
	struct pksm_item **slot = pksm_slot(folio_pfn(folio));
	unsigned long flags;

	if (!slot || !READ_ONCE(*slot))
		return;
	spin_lock_irqsave(&pksm_lock, flags);
	if (*slot) {
		pksm_item_kill_locked(*slot);
		atomic_long_inc(&pksm_nr_excluded);
	}
	spin_unlock_irqrestore(&pksm_lock, flags);
}

void __pksm_page_freed(struct page *page)
{
	struct folio *folio = page_folio(page);
	struct pksm_item **slot;
	unsigned long flags;

	if (folio_test_ksm(folio)) {
		struct pksm_stable_node *node = folio_raw_mapping(folio);

		if (node) {
			/* Its mappings are gone: out of the counts at once. */
			pksm_node_account(node, 0);
			llist_add(&node->dead_link, &pksm_dead_nodes);
		}
		return;
	}
	slot = pksm_slot(page_to_pfn(page));
	if (!slot || !READ_ONCE(*slot))
		return;		/* not ours: the cheap common exit */
	spin_lock_irqsave(&pksm_lock, flags);
	if (*slot)
		pksm_item_kill_locked(*slot);
	spin_unlock_irqrestore(&pksm_lock, flags);
}

/*
 * A write fault copies the KSM page @folio (referenced), or the merged
 * zero page if @folio is NULL, at @address of @vma.  If the place was
 * merged within period_seconds, the copy will wait longer before it may
 * merge again: two back-off levels above the last copy made at the place
 * (pksm_place_cow(), struct pksm_cow_note).  Unsharing faults (run=2,
 * opting out) are no COW breaks: not counted, no back-off, and the place
 * is merged no more.  cow_breaks counts copies of KSM pages only.
 */
void __pksm_cow_break(struct folio *folio, struct vm_area_struct *vma,
		      unsigned long address, bool unshare)
{
	struct pksm_stable_node *node = folio ? pksm_folio_node(folio) : NULL;
	pgoff_t pgoff = linear_anon_page_index(vma, address);
	struct pksm_place *p = pksm_place_find(vma->vm_mm, pgoff);
	struct pksm_cow_note *note;
	u8 level;

	/* The node lives while its (referenced) KSM page does. */
	if (node)
		pksm_node_account_dec(node);
	if (unshare) {
		if (p)
			WRITE_ONCE(p->merged, 0);
		return;
	}
	if (folio) {
		atomic_long_inc(&pksm_nr_cow_breaks);
		trace_pksm_cow_break(folio_pfn(folio));
	}
	level = pksm_place_cow(p, vma->vm_mm, pgoff, node,
			       node ? READ_ONCE(node->merged_at) : 0);
	note = get_cpu_ptr(&pksm_cow_note);
	note->task = current;
	note->mm = vma->vm_mm;
	note->pgoff = pgoff;
	note->at = jiffies;
	note->backoff = level;
	put_cpu_ptr(&pksm_cow_note);
}

/* ---- items in pksmd's hands ------------------------------------------- */

static void pksm_item_free(struct pksm_item *item)
{
	unsigned long flags;

	trace_pksm_item_released(item->pfn);
	spin_lock_irqsave(&pksm_lock, flags);
	pksm_lc.nr_items--;
	if (item->dead == 2)
		pksm_lc.nr_dead_unstable--;
	spin_unlock_irqrestore(&pksm_lock, flags);
	kmem_cache_free(pksm_item_cache, item);
}

/* Free the items of freed pages that the free hook put on the del list. */
void pksm_release_dead_items(void)
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
/* (M) each probation list's visit credit, page-ms (pksm_paced_take()) */
static u64 pksm_probation_credit[PKSM_LEVELS];

/*
 * Take the first item off a list for a visit: the new list (@where
 * PKSM_NEW), the rescan list (PKSM_RESCAN) or the probation list of
 * back-off level @level (PKSM_PROBATION; @level is ignored otherwise).
 * NULL if the list is empty or, on a probation list, if the first entry
 * is the level's cut (pksm_probation_cut()).
 */
struct pksm_item *pksm_pop(enum pksm_where where, unsigned int level)
{
	struct pksm_item *item = NULL;
	struct list_head *list, *stop = NULL;
	unsigned long *count, flags;

	if (where == PKSM_NEW) {
		list = &pksm_new_list;
		count = &pksm_lc.nr_new;
	} else if (where == PKSM_RESCAN) {
		list = &pksm_rescan_list;
		count = &pksm_lc.nr_rescan;
	} else if (where == PKSM_PROBATION && level < PKSM_LEVELS) {
		list = &pksm_probation_lists[level];
		stop = &pksm_probation_cuts[level];
		count = &pksm_lc.nr_probation[level];
	} else {
		WARN_ON_ONCE(1);	/* no list of pksmd's to pop from */
		return NULL;
	}
	spin_lock_irqsave(&pksm_lock, flags);
	if (!list_empty(list) && list->next != stop) {
		item = list_first_entry(list, struct pksm_item, link);
		list_del_init(&item->link);
		item->where = PKSM_INFLIGHT;
		(*count)--;
	}
	spin_unlock_irqrestore(&pksm_lock, flags);
	return item;
}

/*
 * This batch's probation visits, list by list: each level's list paced
 * (pksm_paced_take()) so that its pages are visited every
 * probation_millisecs << level, at most @budget visits in all (the credit
 * of those left out is kept).  Puts a cut at the tail of each list with
 * visits due, stores the visits due in @take and returns their sum.
 * pksmd's batch (pksm_mutex held), which takes the cuts out again with
 * pksm_probation_uncut().
 */
unsigned long pksm_probation_cut(unsigned long *take, unsigned long budget,
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

/* Take the cut pksm_probation_cut() put in level @level's list out. */
void pksm_probation_uncut(unsigned int level)
{
	unsigned long flags;

	spin_lock_irqsave(&pksm_lock, flags);
	list_del(&pksm_probation_cuts[level]);
	spin_unlock_irqrestore(&pksm_lock, flags);
}

/*
 * End a visit: requeue the item, or release it.  Returns true if the item
 * is alive and now PKSM_UNSTABLE (the caller files it in the unstable table).
 */
bool pksm_item_finish(struct pksm_item *item, enum pksm_outcome out)
{
	unsigned long flags;
	bool release = false;

	spin_lock_irqsave(&pksm_lock, flags);
	if (!item->dead && out == PKSM_OUT_RELEASE) {
		struct pksm_item **slot = pksm_slot(item->pfn);

		if (slot && *slot == item)
			*slot = NULL;
		item->dead = 1;
		pksm_lc.nr_tracked--;
	}
	if (item->dead) {
		item->where = PKSM_NOWHERE;
		release = true;
	} else if (out == PKSM_OUT_NEW) {
		item->where = PKSM_NEW;
		list_add_tail(&item->link, &pksm_new_list);
		pksm_lc.nr_new++;
	} else if (out == PKSM_OUT_RESCAN) {
		item->where = PKSM_RESCAN;
		list_add_tail(&item->link, &pksm_rescan_list);
		pksm_lc.nr_rescan++;
	} else if (out == PKSM_OUT_PROBATION) {
		item->where = PKSM_PROBATION;
		list_add_tail(&item->link,
			      &pksm_probation_lists[item->backoff]);
		pksm_lc.nr_probation[item->backoff]++;
	} else {
		item->where = PKSM_UNSTABLE;
	}
	spin_unlock_irqrestore(&pksm_lock, flags);
	if (release)
		pksm_item_free(item);
	return !release && out == PKSM_OUT_UNSTABLE;
}

/*
 * Reference the page of @item, if it is still the page the item was born
 * with.  The free hook marks the item dead before the page can be reused,
 * and a successful folio_try_get() is fully ordered, so an item still alive
 * after taking the reference names the page we hold.
 */
struct folio *pksm_item_folio(struct pksm_item *item)
{
	unsigned long pfn = READ_ONCE(item->pfn);
	struct folio *folio;

	if (READ_ONCE(item->dead))
		return NULL;
	folio = page_folio(pfn_to_page(pfn));
	if (!folio_try_get(folio))
		return NULL;
	/* Migration moves an item to the new frame before freeing the old. */
	if (READ_ONCE(item->dead) || READ_ONCE(item->pfn) != pfn ||
	    folio_test_large(folio) || !folio_test_anon(folio) ||
	    folio_test_ksm(folio)) {
		folio_put(folio);
		return NULL;
	}
	return folio;
}

/*
 * An equal page of @folio waits in the unstable table (reclaim's check,
 * swap.c): move @folio's item from the new or a probation list to the
 * head of the rescan list, where pksmd visits it first, without
 * probation.  pksm_mutex held, so no batch is under way (no probation cut
 * in the lists, no item in flight).  False if the page is not tracked, or
 * its item is not on one of those lists (on the rescan list already:
 * deferred once and not yet visited).
 */
bool pksm_rescan_first(struct folio *folio)
{
	struct pksm_item **slot, *item;
	unsigned long flags;
	bool moved = false;

	spin_lock_irqsave(&pksm_lock, flags);
	slot = pksm_slot(folio_pfn(folio));
	item = slot ? *slot : NULL;
	if (!item || item->dead)
		goto out;
	switch (item->where) {
	case PKSM_NEW:
		pksm_lc.nr_new--;
		break;
	case PKSM_PROBATION:
		pksm_lc.nr_probation[item->backoff]--;
		break;
	default:
		goto out;
	}
	list_move(&item->link, &pksm_rescan_list);
	item->where = PKSM_RESCAN;
	pksm_lc.nr_rescan++;
	moved = true;
out:
	spin_unlock_irqrestore(&pksm_lock, flags);
	return moved;
}

/* ---- the counts, for pksmd and sysfs ------------------------------------ */

/* The items waiting on the new and rescan lists, read together. */
void pksm_nr_waiting(unsigned long *nr_new, unsigned long *nr_rescan)
{
	unsigned long flags;

	spin_lock_irqsave(&pksm_lock, flags);
	*nr_new = pksm_lc.nr_new;
	*nr_rescan = pksm_lc.nr_rescan;
	spin_unlock_irqrestore(&pksm_lock, flags);
}

/* A copy of every (L) counter, taken at one moment (sysfs). */
void pksm_list_counts_read(struct pksm_list_counts *lc)
{
	unsigned long flags;

	spin_lock_irqsave(&pksm_lock, flags);
	*lc = pksm_lc;
	spin_unlock_irqrestore(&pksm_lock, flags);
}

/*
 * Items of freed pages still in the unstable table: a lockless hint for
 * pksmd's sweep (pksm_release_dead_unstable()), which stops at 0.
 */
unsigned long pksm_nr_dead_unstable(void)
{
	return READ_ONCE(pksm_lc.nr_dead_unstable);
}

/*
 * The memory of this file's structures: the items (dead ones included),
 * the pfn table and the place table (metadata_bytes).
 */
unsigned long pksm_track_bytes(void)
{
	unsigned long flags, items;

	spin_lock_irqsave(&pksm_lock, flags);
	items = pksm_lc.nr_items;
	spin_unlock_irqrestore(&pksm_lock, flags);
	return items * sizeof(struct pksm_item) +
	       pksm_table_len * sizeof(*pksm_table) + pksm_places_bytes;
}

/* ---- start-up (pksm_init()) --------------------------------------------- */

/*
 * The probation lists, and the item cache (SLAB_NO_MERGE, see
 * pksm_init()).  False if there is no cache; pksm_track_cache_destroy()
 * undoes it either way.
 */
bool __init pksm_track_init(void)
{
	unsigned int level;

	for (level = 0; level < PKSM_LEVELS; level++)
		INIT_LIST_HEAD(&pksm_probation_lists[level]);
	pksm_item_cache = KMEM_CACHE(pksm_item, SLAB_NO_MERGE);
	return !!pksm_item_cache;
}

/* Start-up failed: no item cache (none made, or no use for it). */
void __init pksm_track_cache_destroy(void)
{
	kmem_cache_destroy(pksm_item_cache);
}

/*
 * The pfn table, a slot per page up to max_pfn, and the place table
 * (pksm.enabled=1).  Returns the pfn table's length, 0 if there is no
 * memory for it.
 */
unsigned long __init pksm_track_table_init(void)
{
	pksm_table = vzalloc(array_size(max_pfn, sizeof(*pksm_table)));
	if (!pksm_table)
		return 0;
	pksm_table_len = max_pfn;
	pksm_places_bytes = pksm_places_init();
	return pksm_table_len;
}

/* Start-up failed after pksm_track_table_init(): no tables. */
void __init pksm_track_table_free(void)
{
	pksm_places_free();
	pksm_places_bytes = 0;
	vfree(pksm_table);
	pksm_table = NULL;
	pksm_table_len = 0;
}

#ifdef CONFIG_MIGRATION
/*
 * Migration copied @folio to @newfolio (both locked; @newfolio has the same
 * ->mapping): a KSM page's stable node now names the new frame, and the
 * old frame no longer names the node, so that its free is not the KSM
 * page's death; a tracked page's item moves to the new frame's slot.  The
 * new frame never passes the birth hook.  pksmd checks both again after
 * taking a reference (pksm_node_folio(), pksm_item_folio()); a reference
 * it holds makes migration fail instead.
 */
void folio_migrate_ksm(struct folio *newfolio, struct folio *folio)
{
	struct pksm_stable_node *node = pksm_folio_node(folio);
	struct pksm_item **slot, **newslot;
	unsigned long flags;

	if (node) {
		WRITE_ONCE(node->kpfn, folio_pfn(newfolio));
		/* The new kpfn is seen before the old frame goes stale. */
		smp_wmb();
		WRITE_ONCE(folio->mapping, (void *)FOLIO_MAPPING_KSM);
		atomic_long_inc(&pksm_nr_migrated);
		return;
	}
	slot = pksm_slot(folio_pfn(folio));
	newslot = pksm_slot(folio_pfn(newfolio));
	if (!slot || !READ_ONCE(*slot))
		return;
	spin_lock_irqsave(&pksm_lock, flags);
	if (*slot) {
		struct pksm_item *item = *slot;

		*slot = NULL;
		if (!newslot || folio_test_large(newfolio)) {
			/* Nowhere to go: as if the page were freed. */
			*slot = item;
			pksm_item_kill_locked(item);
		} else {
			if (WARN_ON_ONCE(*newslot))
				pksm_item_kill_locked(*newslot);
			WRITE_ONCE(item->pfn, folio_pfn(newfolio));
			*newslot = item;
			atomic_long_inc(&pksm_nr_migrated);
		}
	}
	spin_unlock_irqrestore(&pksm_lock, flags);
}
#endif /* CONFIG_MIGRATION */
