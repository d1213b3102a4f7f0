// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: birth and death of tracked pages, the item table and the work
 * lists (see internal.h for the overview and the locks).
 *
 * The item table, the new, rescan and probation lists, pksm_lock and the
 * counters under it (struct pksm_list_counts) are this file's alone:
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
 * pksm_lock: spinlock, innermost.  The new, rescan and probation lists
 * (and the probation cuts in them), item->where and pksm_lc (L).  Taken
 * in task context with interrupts and bottom halves enabled only: by the
 * birth hook under the page table lock, by the free hook for a page freed
 * so (pksm_item_freed()), by pksmd, reclaim, opting out and migration; so
 * no interrupt or softirq handler ever waits for it, it needs no irq-safe
 * locking, and nothing that sleeps or takes another lock runs under it.
 */
static DEFINE_SPINLOCK(pksm_lock);

/* (L) */
static struct pksm_list_counts pksm_lc;
/* Pages with a live item; the free hook decrements it without pksm_lock. */
static atomic_long_t pksm_nr_tracked = ATOMIC_LONG_INIT(0);
/* A hint: dead (or reborn) items in the unstable table, for pksmd's sweep. */
static atomic_long_t pksm_dead_unstable_hint = ATOMIC_LONG_INIT(0);
/* Every count the hint was given, ever (pksm_dead_unstable_cap()). */
static atomic_long_t pksm_dead_unstable_kills = ATOMIC_LONG_INIT(0);
atomic_long_t pksm_nr_cow_breaks = ATOMIC_LONG_INIT(0);
atomic_long_t pksm_nr_backoffs = ATOMIC_LONG_INIT(0);
atomic_long_t pksm_nr_migrated = ATOMIC_LONG_INIT(0);
/* Pages born without an item that pksmd tracked later (pksm_chunks_retry()). */
static atomic_long_t pksm_nr_adopted = ATOMIC_LONG_INIT(0);
/* Pages not tracked, or dropped, because their VMA or process opted out. */
atomic_long_t pksm_nr_excluded = ATOMIC_LONG_INIT(0);

/*
 * The item table: an item for every page frame, in chunks of
 * PKSM_CHUNK_ITEMS consecutive frames, each chunk allocated by the first
 * birth in its frames (GFP_NOWAIT: without one the page is not tracked
 * until pksmd allocates it, pksm_chunks_retry())
 * and kept for good, so that an item's address never changes and a
 * lockless reader (the free hook) needs no reference: the table costs 16
 * bytes (16.25 with the chunk's header; more on a debug build, whose slab
 * adds its own) for every frame of the memory that ever held a tracked
 * page, and a pointer for every PKSM_CHUNK_ITEMS frames (0.13 bytes a
 * frame).  A chunk is published with cmpxchg() and read
 * with READ_ONCE(); its items start zeroed (PKSM_NOWHERE: not tracked).
 */
#define PKSM_CHUNK_BYTES	1024
#define PKSM_CHUNK_ITEMS	(PKSM_CHUNK_BYTES / sizeof(struct pksm_item) - 1)

/**
 * struct pksm_chunk - the items of PKSM_CHUNK_ITEMS consecutive frames
 * @first: the frame of @items[0]
 * @reserved: unused (the chunk is PKSM_CHUNK_BYTES long)
 * @items: an item a frame
 *
 * Chunks are PKSM_CHUNK_BYTES long and aligned to it, so an item finds its
 * chunk, and so its frame, from its own address (pksm_item_pfn()).
 */
struct pksm_chunk {
	unsigned long first;
	unsigned long reserved;
	struct pksm_item items[PKSM_CHUNK_ITEMS];
};

static_assert(sizeof(struct pksm_chunk) == PKSM_CHUNK_BYTES,
	      "a chunk is one header and PKSM_CHUNK_ITEMS items");

/*
 * The chunks by frame / PKSM_CHUNK_ITEMS (set once, read locklessly).
 * The gdb helpers (harness/gdb/pksm.py) know the table, the list heads
 * and pksm_lc by name.
 */
static struct pksm_chunk **pksm_chunks;
static unsigned long pksm_table_len;	/* frames covered */
static atomic_long_t pksm_nr_chunks = ATOMIC_LONG_INIT(0);
static struct kmem_cache *pksm_chunk_cache;

/*
 * A birth whose chunk could not be allocated sets the chunk's bit (atomic
 * bitops), then PKSM_CHUNKS_WANTED in pksm_chunks_flags; pksmd clears the
 * flag, then looks at each wanted chunk's frames, allocating the chunk at
 * the first page to track there (pksm_chunks_retry()).
 */
static unsigned long *pksm_chunks_wanted;
static unsigned long pksm_chunks_flags;
#define PKSM_CHUNKS_WANTED	0

/*
 * A page born in a frame whose item still sits in the unstable table (the
 * old page was freed while filed there; the item is pksmd's, PKSM_REBORN
 * now) sets its chunk's bit here, then PKSM_REBORN_WANTED in
 * pksm_chunks_flags: pksmd lets those items go at its next batch
 * (pksm_reborn_release()), so that the new page reaches the new list at
 * once, not when the sweep of dead unstable items (tree.c) comes to its
 * bucket, a lap of the table later (seconds; a minute on a large machine).
 */
static unsigned long *pksm_reborn_wanted;
#define PKSM_REBORN_WANTED	1

/*
 * The heads of the lists (L), items of their own outside the table:
 * index PKSM_IDX_HEADS + PKSM_HEAD_*.  A probation cut is an item too,
 * linked into its level's list during a batch (pksm_probation_cut()).
 */
enum {
	PKSM_HEAD_NEW,
	PKSM_HEAD_RESCAN,
	/* pages seen at least once, waiting out probation, a list a level */
	PKSM_HEAD_PROBATION,
	PKSM_HEAD_CUT = PKSM_HEAD_PROBATION + PKSM_LEVELS,
	PKSM_NR_HEADS = PKSM_HEAD_CUT + PKSM_LEVELS,
};

static struct pksm_item pksm_heads[PKSM_NR_HEADS];

/* ---- items and their lists -------------------------------------------- */

/* The item of frame @pfn, NULL if its chunk was never allocated. */
struct pksm_item *pksm_item_of(unsigned long pfn)
{
	struct pksm_chunk *chunk;

	if (pfn >= pksm_table_len)
		return NULL;
	chunk = READ_ONCE(pksm_chunks[pfn / PKSM_CHUNK_ITEMS]);
	return chunk ? &chunk->items[pfn % PKSM_CHUNK_ITEMS] : NULL;
}

/*
 * Ask pksmd to look at the frames of @pfn's chunk (pksm_chunks_retry()).
 * Nothing beyond the table (none at all: PKSM off).
 */
static void pksm_chunk_want(unsigned long pfn)
{
	if (pfn >= pksm_table_len)
		return;
	set_bit(pfn / PKSM_CHUNK_ITEMS, pksm_chunks_wanted);
	/* The chunk's bit before the flag pksmd clears first. */
	smp_mb__before_atomic();
	set_bit(PKSM_CHUNKS_WANTED, &pksm_chunks_flags);
}

/*
 * (L) The item of frame @pfn, in the unstable table, was made PKSM_REBORN:
 * ask pksmd to let it go (pksm_reborn_release()).
 */
static void pksm_reborn_want(unsigned long pfn)
{
	unsigned long n = pfn / PKSM_CHUNK_ITEMS;

	/* PKSM_REBORN before the chunk's bit (pksm_reborn_release()) */
	smp_mb();
	if (!test_bit(n, pksm_reborn_wanted))
		set_bit(n, pksm_reborn_wanted);
	/* the chunk's bit before the flag pksmd clears first */
	smp_mb__before_atomic();
	set_bit(PKSM_REBORN_WANTED, &pksm_chunks_flags);
}

/*
 * Publish @chunk, new, in @slot, the chunk of frame @pfn; if another was
 * first, free @chunk.  Return: the chunk in @slot.
 */
static struct pksm_chunk *pksm_chunk_publish(struct pksm_chunk **slot,
					     struct pksm_chunk *chunk,
					     unsigned long pfn)
{
	chunk->first = pfn - pfn % PKSM_CHUNK_ITEMS;
	if (cmpxchg(slot, NULL, chunk)) {
		/* Another birth in these frames was first. */
		kmem_cache_free(pksm_chunk_cache, chunk);
		return READ_ONCE(*slot);
	}
	atomic_long_inc(&pksm_nr_chunks);
	return chunk;
}

/* The item of frame @pfn, its chunk allocated if need be; NULL if none. */
static struct pksm_item *pksm_item_get(unsigned long pfn)
{
	struct pksm_chunk **slot, *chunk;

	if (pfn >= pksm_table_len)
		return NULL;
	slot = &pksm_chunks[pfn / PKSM_CHUNK_ITEMS];
	chunk = READ_ONCE(*slot);
	if (!chunk) {
		/* Never from the reserves of an OOM victim. */
		chunk = kmem_cache_zalloc(pksm_chunk_cache, GFP_NOWAIT |
					  __GFP_NOWARN | __GFP_NOMEMALLOC);
		if (!chunk) {
			pksm_alloc_failed(PKSM_ALLOC_CHUNK);
			/* pksmd tries again, and adopts this page. */
			pksm_chunk_want(pfn);
			return NULL;
		}
		chunk = pksm_chunk_publish(slot, chunk, pfn);
	}
	return &chunk->items[pfn % PKSM_CHUNK_ITEMS];
}

/* The frame of @item, an item of the table. */
unsigned long pksm_item_pfn(const struct pksm_item *item)
{
	const struct pksm_chunk *chunk = (const void *)
		ALIGN_DOWN((unsigned long)item, PKSM_CHUNK_BYTES);

	return chunk->first + (item - chunk->items);
}

/* The index of @item: its frame, or a list head's PKSM_IDX_HEADS + n. */
u32 pksm_item_idx(const struct pksm_item *item)
{
	if (item >= pksm_heads && item < pksm_heads + PKSM_NR_HEADS)
		return PKSM_IDX_HEADS + (item - pksm_heads);
	return pksm_item_pfn(item);
}

/* The item of index @idx, a linked one (its chunk exists). */
struct pksm_item *pksm_item_at(u32 idx)
{
	if (idx >= PKSM_IDX_HEADS)
		return &pksm_heads[idx - PKSM_IDX_HEADS];
	return &pksm_chunks[idx / PKSM_CHUNK_ITEMS]->items[idx % PKSM_CHUNK_ITEMS];
}

/* (L) An empty list. */
static void pksm_list_init(struct pksm_item *head)
{
	head->next = pksm_item_idx(head);
	head->prev = head->next;
}

/* (L) */
static bool pksm_list_empty(const struct pksm_item *head)
{
	return head->next == pksm_item_idx(head);
}

/* (L) Link @item between @prev and @next. */
static void pksm_list_insert(struct pksm_item *item, struct pksm_item *prev,
			     struct pksm_item *next)
{
	u32 idx = pksm_item_idx(item);

	item->prev = pksm_item_idx(prev);
	item->next = pksm_item_idx(next);
	prev->next = idx;
	next->prev = idx;
}

/* (L) */
static void pksm_list_add_tail(struct pksm_item *item, struct pksm_item *head)
{
	pksm_list_insert(item, pksm_item_at(head->prev), head);
}

/* (L) */
static void pksm_list_add_head(struct pksm_item *item, struct pksm_item *head)
{
	pksm_list_insert(item, head, pksm_item_at(head->next));
}

/* (L) Unlink @item from its list. */
static void pksm_list_del(struct pksm_item *item)
{
	pksm_item_at(item->prev)->next = item->next;
	pksm_item_at(item->next)->prev = item->prev;
	item->next = PKSM_NIL;
	item->prev = PKSM_NIL;
}

/*
 * (L) Take @item off the new, rescan or probation list it is on, with its
 * count.  False if it is on none of them (in flight, in the unstable
 * table, or not tracked).
 */
static bool pksm_list_leave(struct pksm_item *item)
{
	switch (item->where) {
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
		return false;
	}
	pksm_list_del(item);
	return true;
}

/* Is the page of @item alive (a new one too, if the item was reborn)? */
static bool pksm_item_live(u8 dead)
{
	return dead == PKSM_LIVE || (dead & PKSM_REBORN);
}

/*
 * The page of @item was freed, or is to be forgotten: mark the item dead,
 * whatever pksmd is doing with it (the only writes of ->dead that may
 * race are this one and pksmd's, all atomic exchanges).  False if it was
 * dead already.
 */
static bool pksm_item_kill(struct pksm_item *item)
{
	u8 old = READ_ONCE(item->dead);

	do {
		if (!pksm_item_live(old))
			return false;
	} while (!try_cmpxchg(&item->dead, &old, PKSM_DEAD));
	atomic_long_dec(&pksm_nr_tracked);
	/* A reborn item in the table is in the hint since its first death. */
	if (old == PKSM_LIVE && READ_ONCE(item->where) == PKSM_UNSTABLE) {
		atomic_long_inc(&pksm_dead_unstable_kills);
		atomic_long_inc(&pksm_dead_unstable_hint);
	}
	return true;
}

/*
 * (L) A dead item on a list is released at once: off the list, not
 * tracked.  Items in flight or in the unstable table are pksmd's, which
 * releases them when it lets them go (pksm_item_finish()).
 */
static void pksm_item_drop_locked(struct pksm_item *item)
{
	if (pksm_list_leave(item)) {
		item->where = PKSM_NOWHERE;
		pksm_lc.nr_items--;
	}
}

/*
 * Pages mapped in @vma are left alone: MADV_UNMERGEABLE excluded the VMA,
 * or its process opted out with prctl(PR_SET_MEMORY_MERGE, 0), or the VMA
 * is of a kind upstream KSM never merges either (pksm_vma_compatible():
 * MAP_DROPPABLE memory, which must never reach swap, PFN or I/O maps'
 * copies, DAX).  All are
 * set with the mmap lock held for writing, so they are stable while it is
 * held in any mode; the birth hook and the opt-in walk read them racily,
 * and merging checks them again under the mmap lock (pksm_replace_one()).
 */
bool pksm_vma_excluded(struct vm_area_struct *vma)
{
	if (vma->vm_flags & VM_UNMERGEABLE)
		return true;
	/* Droppable, special (PFN, I/O, mixed) or DAX: as upstream, never. */
	if (!pksm_vma_compatible(vma))
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
 * (L) A fresh life for @item: on the new list at back-off level @backoff.
 * The caller made ->dead PKSM_LIVE.
 */
static void pksm_item_start(struct pksm_item *item, u8 backoff)
{
	item->hash = 0;
	item->visits = PKSM_UNSEEN;
	item->backoff = backoff;
	item->busy = 0;
	WRITE_ONCE(item->where, PKSM_NEW);
	pksm_list_add_tail(item, &pksm_heads[PKSM_HEAD_NEW]);
	pksm_lc.nr_new++;
}

/*
 * Start tracking @folio on the new list.  Atomic context (the page table
 * lock held), or a migration (both folios locked), or pksmd adopting a
 * page whose birth is over (pksm_chunk_adopt()).  @known: the page may
 * be tracked already (the opt-in walk, an adoption), and is then left as
 * it is; a newborn page never is.  True if the page is tracked now and
 * was not before.
 */
static bool pksm_track_backoff(struct folio *folio, bool known, u8 backoff)
{
	unsigned long pfn = folio_pfn(folio);
	struct pksm_item *item = NULL;
	bool registered = false;

	if (known) {
		item = pksm_item_of(pfn);
		if (item && READ_ONCE(item->where) != PKSM_NOWHERE &&
		    pksm_item_live(READ_ONCE(item->dead)))
			return false;
	}
	if (!folio_test_large(folio))
		item = pksm_item_get(pfn);
	spin_lock(&pksm_lock);
	if (!item) {
		pksm_lc.nr_untracked++;
		goto out;
	}
	if (item->where != PKSM_NOWHERE && pksm_item_live(item->dead)) {
		/* Tracked: only the opt-in walk may find it so. */
		if (known)
			goto out;
		WARN_ON_ONCE(1);	/* a missed free */
		pksm_item_kill(item);
	}
	switch (item->where) {
	case PKSM_NOWHERE:
		pksm_lc.nr_items++;
		break;
	case PKSM_INFLIGHT:
	case PKSM_UNSTABLE:
		/*
		 * The old page's item is still pksmd's: the new page waits
		 * for it (pksm_item_finish(); in the unstable table the item
		 * is in the dead ones' hint since the old page's free).  No
		 * free of this page can race with its birth, and pksmd writes
		 * ->dead under pksm_lock only.
		 */
		WRITE_ONCE(item->dead, PKSM_REBORN | backoff);
		if (item->where == PKSM_UNSTABLE)
			pksm_reborn_want(pfn);
		atomic_long_inc(&pksm_nr_tracked);
		registered = true;
		goto out;
	default:
		/* Dead on a list (freed in interrupt context): off it. */
		pksm_list_leave(item);
		break;
	}
	/* No free of this page can race with its birth: a plain store. */
	WRITE_ONCE(item->dead, PKSM_LIVE);
	pksm_item_start(item, backoff);
	atomic_long_inc(&pksm_nr_tracked);
	registered = true;
out:
	spin_unlock(&pksm_lock);
	if (registered)
		trace_pksm_page_registered(pfn);
	return registered;
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
 * copy a wrong back-off level, never correctness.  An exit clears its
 * mm's slots (pksm_places_forget()): a scan of the whole table, which
 * costs each exit time in proportion to memory (a 256 MiB guest's 4,096
 * slots), but keeps an exited mm's slots, many on high levels, from
 * crowding out live places (without it a test's hot places lost their
 * history to the slots of processes gone before).
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
 * backed off), and the slots must not stay taken.  A slot written for @mm
 * by a merge still under way is left behind: a hint, it costs at most one
 * copy a wrong back-off level.
 */
void pksm_places_forget(struct mm_struct *mm)
{
	unsigned long i, n;

	if (!pksm_places)
		return;
	n = PKSM_PLACE_WAYS << pksm_place_bits;
	for (i = 0; i < n; i++) {
		if (READ_ONCE(pksm_places[i].mm) == mm)
			WRITE_ONCE(pksm_places[i].mm, NULL);
		if (!(i & 4095))
			cond_resched();
	}
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
	if (pksm_track_backoff(folio, false, backoff) && backoff)
		atomic_long_inc(&pksm_nr_backoffs);
}

/*
 * Chunk @n of the table, allocated now if it was not (pksmd: may sleep,
 * without retrying hard: never the OOM killer's cause); NULL if there is
 * no memory for it.
 */
static struct pksm_chunk *pksm_chunk_get(unsigned long n)
{
	struct pksm_chunk *chunk = READ_ONCE(pksm_chunks[n]);

	if (chunk)
		return chunk;
	chunk = kmem_cache_zalloc(pksm_chunk_cache, GFP_KERNEL |
				  __GFP_NORETRY | __GFP_NOWARN);
	if (!chunk) {
		pksm_alloc_failed(PKSM_ALLOC_CHUNK);
		return NULL;
	}
	return pksm_chunk_publish(&pksm_chunks[n], chunk,
				  n * PKSM_CHUNK_ITEMS);
}

/*
 * Track the pages in the frames of chunk @n that have no live item (born
 * while the chunk could not be allocated, or migrated there untracked):
 * each anonymous, order-0, mapped page that is not a KSM page, whose birth
 * is over and that no excluded mapping maps (what the birth hook would
 * have tracked; pksm_folio_adoptable()), at back-off level 0.  pksmd; the
 * chunk is allocated at the first such page only (pksm_chunk_get()).  A
 * reference keeps each page from being freed while it is looked at (its
 * free then finds the item), and its lock from being migrated.  *@again
 * is set if a page was locked by someone else or mapped with no PTE seen
 * yet, *@nomem if the chunk could not be had: the chunk is to be looked at
 * again.  An unmapped page is not looked at again.  Return: pages
 * tracked.
 */
static unsigned int pksm_chunk_adopt(unsigned long n, bool *again,
				     bool *nomem)
{
	unsigned long pfn, first = n * PKSM_CHUNK_ITEMS;
	unsigned long end = min(first + PKSM_CHUNK_ITEMS, pksm_table_len);
	unsigned int adopted = 0;

	for (pfn = first; pfn < end && !*again && !*nomem; pfn++) {
		struct page *page = pfn_to_online_page(pfn);
		struct pksm_item *item = pksm_item_of(pfn);
		struct folio *folio;
		enum pksm_adopt how;

		if (!page || (item && READ_ONCE(item->where) != PKSM_NOWHERE &&
			      pksm_item_live(READ_ONCE(item->dead))))
			continue;
		folio = page_folio(page);
		if (!folio_test_anon(folio) || !folio_try_get(folio))
			continue;
		if (page_folio(page) != folio || !folio_test_anon(folio) ||
		    folio_test_ksm(folio) || folio_test_large(folio) ||
		    !folio_mapped(folio))
			goto next;
		if (!folio_trylock(folio)) {
			*again = true;
			goto next;
		}
		how = pksm_folio_adoptable(folio);
		if (how == PKSM_ADOPT_LATER)
			*again = true;
		else if (how == PKSM_ADOPT_YES && !pksm_chunk_get(n))
			*nomem = true;
		else if (how == PKSM_ADOPT_YES &&
			 pksm_track_backoff(folio, true, 0))
			adopted++;
		folio_unlock(folio);
next:
		folio_put(folio);
	}
	return adopted;
}

/* Chunks pksm_chunks_retry() looks at in a batch at most. */
#define PKSM_ADOPT_CHUNKS	64

/* (M) where pksm_chunks_retry() goes on at its next batch */
static unsigned long pksm_adopt_cursor;
/* (M) the chunks of this batch to be looked at again at a later one */
static unsigned long pksm_adopt_again[PKSM_ADOPT_CHUNKS];

/**
 * pksm_chunks_retry() - look at the frames of the chunks births wanted:
 *	allocate the chunk, and track the pages born without an item
 *
 * A birth's chunk is allocated without sleeping (GFP_NOWAIT, page table
 * lock held); when that fails the page is not tracked (untracked_pages)
 * and would stay so for good.  pksmd, at the start of a batch (pksm_mutex
 * held, may sleep), looks at each chunk a birth wanted, or a frame an
 * untracked page migrated to, and adopts the pages in its frames
 * (adopted_pages: pksm_chunk_adopt()).  At most PKSM_ADOPT_CHUNKS chunks
 * a batch, round the table from where the last batch stopped, none after
 * one found no memory for its chunk; a chunk whose look must be made again
 * is wanted again once the batch's looks are over, for a later batch.
 */
void pksm_chunks_retry(void)
{
	unsigned long n, nr = DIV_ROUND_UP(pksm_table_len, PKSM_CHUNK_ITEMS);
	unsigned long adopted = 0;
	unsigned int budget, nagain = 0;

	if (!test_and_clear_bit(PKSM_CHUNKS_WANTED, &pksm_chunks_flags))
		return;
	n = pksm_adopt_cursor < nr ? pksm_adopt_cursor : 0;
	for (budget = 0; budget < PKSM_ADOPT_CHUNKS; budget++) {
		bool again = false, nomem = false;

		n = find_next_bit(pksm_chunks_wanted, nr, n);
		if (n >= nr) {
			n = find_first_bit(pksm_chunks_wanted, nr);
			if (n >= nr)
				break;
		}
		/* A birth failing from here on sets it again. */
		clear_bit(n, pksm_chunks_wanted);
		adopted += pksm_chunk_adopt(n, &again, &nomem);
		if (again || nomem)
			pksm_adopt_again[nagain++] = n;
		n++;
		if (nomem)
			break;
		cond_resched();
	}
	pksm_adopt_cursor = n;
	while (nagain)
		pksm_chunk_want(pksm_adopt_again[--nagain] * PKSM_CHUNK_ITEMS);
	/* Wanted chunks the budget left. */
	if (!bitmap_empty(pksm_chunks_wanted, nr))
		set_bit(PKSM_CHUNKS_WANTED, &pksm_chunks_flags);
	atomic_long_add(adopted, &pksm_nr_adopted);
}

/* Chunks pksm_reborn_release() looks at in a batch at most. */
#define PKSM_REBORN_CHUNKS	64

/* (M) where pksm_reborn_release() goes on at its next batch */
static unsigned long pksm_reborn_cursor;

/**
 * pksm_reborn_release() - let go of the unstable items whose frames have
 *	a new page
 *
 * pksmd, at the start of a batch (pksm_mutex held: nothing else takes an
 * item out of the unstable table): each item of a chunk a birth wanted
 * (pksm_reborn_want()) that is in the unstable table and dead leaves it;
 * one reborn starts its new page's life on the new list
 * (pksm_item_finish()).  At most PKSM_REBORN_CHUNKS chunks a batch, round
 * the table from where the last batch stopped; the flag is set again while
 * wanted chunks are left.  No page is read.  A chunk's bit is cleared,
 * with a full barrier, before its items are read: a birth that made one
 * reborn after that sets the bit again.  A want missed costs only time:
 * the sweep of dead unstable items releases every dead item in the end.
 *
 * Return: the new pages put on the new list, for the round to wait for
 * (they were born before the round's count was taken).
 */
unsigned long pksm_reborn_release(void)
{
	unsigned long n, nr = DIV_ROUND_UP(pksm_table_len, PKSM_CHUNK_ITEMS);
	unsigned long renewed = 0;
	unsigned int budget;

	if (!test_and_clear_bit(PKSM_REBORN_WANTED, &pksm_chunks_flags))
		return 0;
	n = pksm_reborn_cursor < nr ? pksm_reborn_cursor : 0;
	for (budget = 0; budget < PKSM_REBORN_CHUNKS; budget++) {
		unsigned long pfn, end;

		n = find_next_bit(pksm_reborn_wanted, nr, n);
		if (n >= nr) {
			n = find_first_bit(pksm_reborn_wanted, nr);
			if (n >= nr)
				break;
		}
		if (!test_and_clear_bit(n, pksm_reborn_wanted))
			continue;
		pfn = n * PKSM_CHUNK_ITEMS;
		end = min(pfn + PKSM_CHUNK_ITEMS, pksm_table_len);
		for (; pfn < end; pfn++) {
			struct pksm_item *item = pksm_item_of(pfn);

			if (!item || READ_ONCE(item->where) != PKSM_UNSTABLE ||
			    !READ_ONCE(item->dead))
				continue;
			pksm_unstable_drop(item);
			renewed += READ_ONCE(item->where) == PKSM_NEW;
		}
		n++;
		cond_resched();
	}
	pksm_reborn_cursor = n;
	/* Wanted chunks the budget left. */
	if (!bitmap_empty(pksm_reborn_wanted, nr))
		set_bit(PKSM_REBORN_WANTED, &pksm_chunks_flags);
	return renewed;
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
	struct pksm_item *item = pksm_item_of(folio_pfn(folio));

	if (!item || READ_ONCE(item->where) == PKSM_NOWHERE)
		return;
	spin_lock(&pksm_lock);
	if (item->where != PKSM_NOWHERE && pksm_item_kill(item)) {
		pksm_item_drop_locked(item);
		atomic_long_inc(&pksm_nr_excluded);
	}
	spin_unlock(&pksm_lock);
}

/*
 * The page of @item (tracked, or maybe) was freed: mark the item dead and,
 * where pksm_lock may be taken, release it at once if it is on a list.
 * pksm_lock is taken with interrupts and bottom halves enabled only: a
 * page may be freed in interrupt context, or in task context under a lock
 * that an interrupt or a softirq takes (a socket's, with bottom halves
 * disabled), and a CPU holding pksm_lock may be interrupted by that
 * handler; there the item is only marked, and leaves its list when pksmd
 * pops it or a page is born in the frame.
 */
static void pksm_item_freed(struct pksm_item *item)
{
	if (in_interrupt() || irqs_disabled()) {
		pksm_item_kill(item);
		return;
	}
	spin_lock(&pksm_lock);
	if (pksm_item_kill(item))
		pksm_item_drop_locked(item);
	spin_unlock(&pksm_lock);
}

void __pksm_page_freed(struct page *page)
{
	struct folio *folio = page_folio(page);
	struct pksm_item *item;

	if (folio_test_ksm(folio)) {
		struct pksm_stable_node *node = folio_raw_mapping(folio);

		if (node) {
			/* Its mappings are gone: out of the counts at once. */
			pksm_node_account(node, 0);
			llist_add(&node->dead_link, &pksm_dead_nodes);
		}
		/*
		 * A KSM page has no item, but the item of an unstable page
		 * made a KSM page in place lives until pksmd releases it.
		 */
	}
	item = pksm_item_of(page_to_pfn(page));
	/*
	 * Not ours: the cheap common exit.  The birth that tracked the page
	 * happened before its free; pksmd makes a live page's item
	 * PKSM_NOWHERE only under pksm_lock after taking its life itself
	 * (an exchange of ->dead, which a free's own exchange then finds
	 * done), whether it holds a reference on the page or not (an
	 * excluded partner is released after its reference went), so a
	 * free that reads PKSM_NOWHERE has nothing to do, and one that does
	 * not meets the item under pksm_lock or marks it.
	 */
	if (!item || READ_ONCE(item->where) == PKSM_NOWHERE)
		return;
	pksm_item_freed(item);
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

/*
 * A fault copied @folio away from its PTE and is done with its reference:
 * under fake merging, a KSM page's reference is handed over (pksm_hold()),
 * so that no fault frees a KSM page it mapped last, whether a write or an
 * unsharing fault a process can time (a read-only pin of its own page by
 * process_vm_readv() or O_DIRECT, MADV_UNMERGEABLE).  The unsharing faults
 * of PKSM's own unmerge (run=2, a change of merge_domain: pksm_unmerger)
 * put their references in the fault, no hand-over: no unprivileged
 * process causes or times them, and it saves a drain for every KSM page.
 * A page that became a KSM page while the fault copied it (pksmd converts
 * a page in place under trylocks that do not exclude the fault) is found
 * with its node complete: pksm_make_ksm() orders ->kpfn before ->mapping.
 */
bool __pksm_take_copied(struct folio *folio, bool unshare)
{
	struct pksm_stable_node *node;

	if (!READ_ONCE(pksm_fake_merge) || !folio_test_ksm(folio))
		return false;
	if (unshare && READ_ONCE(pksm_unmerger) == current)
		return false;
	node = pksm_folio_node(folio);
	return node && pksm_hold(folio, node);
}

/* ---- items in pksmd's hands ------------------------------------------- */

/*
 * (M; linked into the lists under L) One cut a probation list
 * (pksm_heads[PKSM_HEAD_CUT + level]): during a batch, the items that were
 * on the list when the batch began lie before it.  Items requeued during
 * the batch go behind it, so none is visited twice in a batch (a batch may
 * sleep, and the free hook may shorten a list meanwhile).
 */
/* (M) each probation list's visit credit, page-ms (pksm_paced_take()) */
static u64 pksm_probation_credit[PKSM_LEVELS];

/*
 * Take the first item off a list for a visit: the new list (@where
 * PKSM_NEW), the rescan list (PKSM_RESCAN) or the probation list of
 * back-off level @level (PKSM_PROBATION; @level is ignored otherwise).
 * NULL if the list is empty or, on a probation list, if the first entry
 * is the level's cut (pksm_probation_cut()).  The item may be dead (its
 * page freed in interrupt context): the visit finds out.
 */
struct pksm_item *pksm_pop(enum pksm_where where, unsigned int level)
{
	struct pksm_item *head, *item = NULL;
	unsigned long *count;
	u32 stop = PKSM_NIL;

	if (where == PKSM_NEW) {
		head = &pksm_heads[PKSM_HEAD_NEW];
		count = &pksm_lc.nr_new;
	} else if (where == PKSM_RESCAN) {
		head = &pksm_heads[PKSM_HEAD_RESCAN];
		count = &pksm_lc.nr_rescan;
	} else if (where == PKSM_PROBATION && level < PKSM_LEVELS) {
		head = &pksm_heads[PKSM_HEAD_PROBATION + level];
		stop = pksm_item_idx(&pksm_heads[PKSM_HEAD_CUT + level]);
		count = &pksm_lc.nr_probation[level];
	} else {
		WARN_ON_ONCE(1);	/* no list of pksmd's to pop from */
		return NULL;
	}
	spin_lock(&pksm_lock);
	if (!pksm_list_empty(head) && head->next != stop) {
		item = pksm_item_at(head->next);
		pksm_list_del(item);
		WRITE_ONCE(item->where, PKSM_INFLIGHT);
		(*count)--;
	}
	spin_unlock(&pksm_lock);
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
	unsigned long taken = 0;
	unsigned int level;

	spin_lock(&pksm_lock);
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
			pksm_list_add_tail(&pksm_heads[PKSM_HEAD_CUT + level],
					   &pksm_heads[PKSM_HEAD_PROBATION + level]);
	}
	spin_unlock(&pksm_lock);
	return taken;
}

/* Take the cut pksm_probation_cut() put in level @level's list out. */
void pksm_probation_uncut(unsigned int level)
{
	spin_lock(&pksm_lock);
	pksm_list_del(&pksm_heads[PKSM_HEAD_CUT + level]);
	spin_unlock(&pksm_lock);
}

/*
 * End a visit, or take an item out of the unstable table for good:
 * requeue the item, or release it.  An item whose page was freed is
 * released (not tracked any more); one whose frame has a new page since
 * (PKSM_REBORN) starts that page's life on the new list, whatever @out
 * says.  Returns true if the item is alive and now PKSM_UNSTABLE (the
 * caller files it in the unstable table).
 */
bool pksm_item_finish(struct pksm_item *item, enum pksm_outcome out)
{
	bool unstable = false, released = false;
	u8 dead = PKSM_LIVE;

	spin_lock(&pksm_lock);
	/* Release the visited page's life only, never a reborn one. */
	if (out == PKSM_OUT_RELEASE &&
	    try_cmpxchg(&item->dead, &dead, PKSM_DEAD)) {
		atomic_long_dec(&pksm_nr_tracked);
		released = true;
	}
	dead = READ_ONCE(item->dead);
	/*
	 * Out of the unstable table: a dead item (the free hook counted it)
	 * leaves the dead ones' hint; one released here never entered it.
	 */
	if (item->where == PKSM_UNSTABLE && dead != PKSM_LIVE && !released)
		atomic_long_dec_if_positive(&pksm_dead_unstable_hint);
	while (dead & PKSM_REBORN) {
		/* The new page's life, unless the free hook ends it first. */
		if (try_cmpxchg(&item->dead, &dead, PKSM_LIVE)) {
			pksm_item_start(item, dead & ~PKSM_REBORN);
			goto out;
		}
	}
	if (dead) {
		WRITE_ONCE(item->where, PKSM_NOWHERE);
		pksm_lc.nr_items--;
	} else if (out == PKSM_OUT_NEW) {
		WRITE_ONCE(item->where, PKSM_NEW);
		pksm_list_add_tail(item, &pksm_heads[PKSM_HEAD_NEW]);
		pksm_lc.nr_new++;
	} else if (out == PKSM_OUT_RESCAN) {
		WRITE_ONCE(item->where, PKSM_RESCAN);
		pksm_list_add_tail(item, &pksm_heads[PKSM_HEAD_RESCAN]);
		pksm_lc.nr_rescan++;
	} else if (out == PKSM_OUT_PROBATION) {
		WRITE_ONCE(item->where, PKSM_PROBATION);
		pksm_list_add_tail(item, &pksm_heads[PKSM_HEAD_PROBATION +
						     item->backoff]);
		pksm_lc.nr_probation[item->backoff]++;
	} else {
		WRITE_ONCE(item->where, PKSM_UNSTABLE);
		unstable = true;
	}
out:
	spin_unlock(&pksm_lock);
	if (dead == PKSM_DEAD)
		trace_pksm_item_released(pksm_item_pfn(item));
	return unstable;
}

/*
 * Reference the page of @item, if it is still the page the item was born
 * with.  The free hook marks the item dead before the page can be reused,
 * and a successful folio_try_get() is fully ordered, so an item still alive
 * after taking the reference names the page we hold.  An item reborn (a
 * new page in the frame while pksmd held the item) names no page pksmd
 * visited: NULL.
 */
struct folio *pksm_item_folio(struct pksm_item *item)
{
	unsigned long pfn = pksm_item_pfn(item);
	struct folio *folio;

	if (READ_ONCE(item->dead))
		return NULL;
	folio = page_folio(pfn_to_page(pfn));
	if (!folio_try_get(folio))
		return NULL;
	if (READ_ONCE(item->dead) || folio_test_large(folio) ||
	    !folio_test_anon(folio) || folio_test_ksm(folio)) {
		/*
		 * A KSM page has no item: one alive in its frame was its
		 * unstable page's, made a KSM page in place (then opted out
		 * and in again while pksmd merged it): dead now.
		 */
		if (folio_test_ksm(folio) &&
		    READ_ONCE(item->dead) == PKSM_LIVE)
			pksm_item_kill(item);
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
	struct pksm_item *item = pksm_item_of(folio_pfn(folio));
	bool moved = false;

	if (!item)
		return false;
	spin_lock(&pksm_lock);
	if (item->dead || item->where == PKSM_RESCAN ||
	    !pksm_list_leave(item))
		goto out;
	pksm_list_add_head(item, &pksm_heads[PKSM_HEAD_RESCAN]);
	WRITE_ONCE(item->where, PKSM_RESCAN);
	pksm_lc.nr_rescan++;
	moved = true;
out:
	spin_unlock(&pksm_lock);
	return moved;
}

/*
 * Is @pfn's page tracked (an item, alive)?  A racy hint, for reclaim's
 * check and /proc's count.
 */
bool pksm_pfn_tracked(unsigned long pfn)
{
	struct pksm_item *item = pksm_item_of(pfn);

	return item && READ_ONCE(item->where) != PKSM_NOWHERE &&
	       pksm_item_live(READ_ONCE(item->dead));
}

/* ---- the counts, for pksmd and sysfs ------------------------------------ */

/* The items waiting on the new and rescan lists, read together. */
void pksm_nr_waiting(unsigned long *nr_new, unsigned long *nr_rescan)
{
	spin_lock(&pksm_lock);
	*nr_new = pksm_lc.nr_new;
	*nr_rescan = pksm_lc.nr_rescan;
	spin_unlock(&pksm_lock);
}

/* A copy of every (L) counter, taken at one moment, and the atomics (sysfs). */
void pksm_list_counts_read(struct pksm_list_counts *lc)
{
	spin_lock(&pksm_lock);
	*lc = pksm_lc;
	spin_unlock(&pksm_lock);
	lc->nr_tracked = max(atomic_long_read(&pksm_nr_tracked), 0L);
	lc->nr_dead_unstable = pksm_nr_dead_unstable();
	lc->nr_chunks = atomic_long_read(&pksm_nr_chunks);
	lc->nr_adopted = atomic_long_read(&pksm_nr_adopted);
}

/*
 * Items of freed pages still in the unstable table: a lockless hint for
 * pksmd's sweep (pksm_release_dead_unstable()), which stops at 0.
 */
unsigned long pksm_nr_dead_unstable(void)
{
	return max(atomic_long_read(&pksm_dead_unstable_hint), 0L);
}

/* Counts the dead-unstable hint was ever given (a lap's yardstick). */
unsigned long pksm_dead_unstable_given(void)
{
	return atomic_long_read(&pksm_dead_unstable_kills);
}

/*
 * pksmd's sweep went round the whole unstable table and found no dead
 * item: any dead item in it died since the lap began, so the hint is at
 * most the @since counts given since then (a page freed in interrupt
 * context while pksmd took its item out of the table, or a count taken by
 * a release that raced a kill, can leave it too high).
 */
void pksm_dead_unstable_cap(unsigned long since)
{
	long v = atomic_long_read(&pksm_dead_unstable_hint);

	do {
		if (v <= (long)since)
			return;
	} while (!atomic_long_try_cmpxchg(&pksm_dead_unstable_hint, &v,
					  (long)since));
}

/*
 * The memory of this file's structures: the chunks of items, the chunk
 * directory and its two bitmaps (chunks wanted for adoption, for reborn
 * items), and the place table (metadata_bytes).
 */
unsigned long pksm_track_bytes(void)
{
	unsigned long nr = DIV_ROUND_UP(pksm_table_len, PKSM_CHUNK_ITEMS);

	return atomic_long_read(&pksm_nr_chunks) * PKSM_CHUNK_BYTES +
	       nr * sizeof(*pksm_chunks) +
	       2 * BITS_TO_LONGS(nr) * sizeof(long) +
	       pksm_places_bytes;
}

/* ---- start-up (pksm_init()) --------------------------------------------- */

/*
 * The list heads, and the chunk cache (SLAB_NO_MERGE, see pksm_init();
 * chunks aligned to their size: pksm_item_pfn()).  False if there is no
 * cache; pksm_track_cache_destroy() undoes it either way.
 */
bool __init pksm_track_init(void)
{
	unsigned int i;

	for (i = 0; i < PKSM_NR_HEADS; i++)
		pksm_list_init(&pksm_heads[i]);
	pksm_chunk_cache = kmem_cache_create("pksm_chunk", PKSM_CHUNK_BYTES,
					     PKSM_CHUNK_BYTES, SLAB_NO_MERGE,
					     NULL);
	return !!pksm_chunk_cache;
}

/* Start-up failed: no chunk cache (none made, or no use for it). */
void __init pksm_track_cache_destroy(void)
{
	kmem_cache_destroy(pksm_chunk_cache);
}

/*
 * The chunk directory, a pointer for every PKSM_CHUNK_ITEMS frames up to
 * max_pfn (frames from PKSM_IDX_HEADS up are not tracked), and the place
 * table (pksm.enabled=1).  Returns the frames covered, 0 if there is no
 * memory for the directory.
 */
unsigned long __init pksm_track_table_init(void)
{
	unsigned long len = min_t(unsigned long, max_pfn, PKSM_IDX_HEADS);

	unsigned long nr = DIV_ROUND_UP(len, PKSM_CHUNK_ITEMS);

	pksm_chunks = vzalloc(array_size(nr, sizeof(*pksm_chunks)));
	pksm_chunks_wanted = bitmap_zalloc(nr, GFP_KERNEL);
	pksm_reborn_wanted = bitmap_zalloc(nr, GFP_KERNEL);
	if (!pksm_chunks || !pksm_chunks_wanted || !pksm_reborn_wanted) {
		vfree(pksm_chunks);
		pksm_chunks = NULL;
		bitmap_free(pksm_chunks_wanted);
		pksm_chunks_wanted = NULL;
		bitmap_free(pksm_reborn_wanted);
		pksm_reborn_wanted = NULL;
		return 0;
	}
	pksm_table_len = len;
	pksm_places_bytes = pksm_places_init();
	return pksm_table_len;
}

/* Start-up failed after pksm_track_table_init(): no tables (no chunk yet). */
void __init pksm_track_table_free(void)
{
	pksm_places_free();
	pksm_places_bytes = 0;
	vfree(pksm_chunks);
	pksm_chunks = NULL;
	bitmap_free(pksm_chunks_wanted);
	pksm_chunks_wanted = NULL;
	bitmap_free(pksm_reborn_wanted);
	pksm_reborn_wanted = NULL;
	pksm_table_len = 0;
}

#ifdef CONFIG_MIGRATION
/*
 * Migration copied @folio to @newfolio (both locked; @newfolio has the same
 * ->mapping): a KSM page's stable node now names the new frame, and the
 * old frame no longer names the node, so that its free is not the KSM
 * page's death.  A tracked page starts again in the new frame, as if born
 * there at its back-off level (its probation visits begin anew; the old
 * frame's item dies, and its free finds it dead).  The new frame never
 * passes the birth hook.  pksmd checks both again after taking a
 * reference (pksm_node_folio(), pksm_item_folio()); a reference it holds
 * makes migration fail instead.
 */
void folio_migrate_ksm(struct folio *newfolio, struct folio *folio)
{
	struct pksm_stable_node *node = pksm_folio_node(folio);
	struct pksm_item *item;
	u8 backoff, dead;

	if (node) {
		pksm_debug_delay(PKSM_DELAY_MIGRATE);
		WRITE_ONCE(node->kpfn, folio_pfn(newfolio));
		/* The new kpfn is seen before the old frame goes stale. */
		smp_wmb();
		WRITE_ONCE(folio->mapping, (void *)FOLIO_MAPPING_KSM);
		atomic_long_inc(&pksm_nr_migrated);
		return;
	}
	/*
	 * Only an anonymous page can be tracked; another's frame may hold a
	 * stale item of a page freed there, and its migration may come with
	 * interrupts disabled (aio's ring pages, under a lock aio's completion
	 * interrupt takes), where pksm_lock must not be taken.
	 */
	if (!folio_test_anon(folio))
		return;
	item = pksm_item_of(folio_pfn(folio));
	if (!item || READ_ONCE(item->where) == PKSM_NOWHERE) {
		/* Untracked (born without an item?): pksmd may adopt it. */
		if (!folio_test_large(newfolio))
			pksm_chunk_want(folio_pfn(newfolio));
		return;
	}
	spin_lock(&pksm_lock);
	dead = READ_ONCE(item->dead);
	if (dead & PKSM_REBORN)
		backoff = dead & ~PKSM_REBORN;	/* the new page's */
	else	/* pksmd may be changing it: a hint */
		backoff = data_race((u8)item->backoff);
	if (!pksm_item_kill(item)) {
		spin_unlock(&pksm_lock);
		return;
	}
	pksm_item_drop_locked(item);
	spin_unlock(&pksm_lock);
	if (pksm_track_backoff(newfolio, false, backoff))
		atomic_long_inc(&pksm_nr_migrated);
}
#endif /* CONFIG_MIGRATION */
