/* SPDX-License-Identifier: GPL-2.0-only */
/**
 * DOC: Overview
 *
 * PKSM: page-driven samepage merging.
 *
 * Upstream KSM (mm/ksm.c) walks the address spaces that opted in and keeps
 * one rmap_item per scanned virtual address.  PKSM instead follows physical
 * pages: every anonymous page is registered when it is born
 * (folio_add_new_anon_rmap()) and forgotten when it is freed
 * (free_pages_prepare()), and the daemon pksmd works through lists of
 * pages.  No madvise() is needed; every anonymous page is a candidate.
 *
 * Life of a page:
 *
 *  1. Birth: the page frame's struct pksm_item (16 bytes, in a table
 *     indexed by frame, whose chunks of 63 frames are allocated by the
 *     first birth among them, GFP_NOWAIT: we are under the page table lock,
 *     and kept) is put on the new list.  If its chunk cannot be allocated
 *     the page is not tracked at its birth (the fault never fails because
 *     of PKSM): pksmd, at a later batch, adopts the pages born in its
 *     frames meanwhile, allocating the chunk then (pksm_chunks_retry()).
 *
 *  2. Probation: each pksmd visit takes a checksum of every word of the
 *     page.  The first visit comes from the new list, at full speed (a
 *     page found all zero is merged with the zero page at once, unless it
 *     was born on a back-off level: then it waits like any page); after it
 *     the page waits on the probation list of its back-off level L and is
 *     visited again every probation_millisecs << L (paced per list:
 *     pksm_paced_take()).  The page becomes a merge candidate once
 *     probation_scans consecutive visits found the same checksum (0: at
 *     first sight).  A visit that finds the page changed starts the count
 *     again and raises the level by one, so a page being written costs
 *     pksmd ever fewer visits and must stay unchanged ever longer: at the
 *     defaults 1.5 s at level 0, 192 s at the top level (probation at
 *     least two visits on any level above 0).  A page born from a COW
 *     break (of a KSM page, or a write to a merged zero page) within
 *     period_seconds of the last merge at its place (mm, page index)
 *     starts two levels above the last copy made at that place (a table
 *     of place hints in track.c): a page that keeps being written is
 *     merged and broken a few times, not at every write.
 *  3. Merge, cheapest first: the zero page; the stable tree (pages already
 *     merged, "KSM pages"); the unstable table (candidates waiting for a
 *     partner).  The stable tree is ordered by a hash of a fixed sample of
 *     32 words (the cheap first step), then by content (pksm_words_cmp()),
 *     so a lookup costs O(log n) page compares whatever the content: pages
 *     zero but for one word, or equal but for one word, share a hash but
 *     not a path.  The unstable table is a hash table keyed by the
 *     checksum of the whole page that the visit takes anyway: a lookup
 *     reads only pages filed under the same checksum, one compare to find
 *     an equal page.  A full compare decides, again after every mapping of
 *     the page has been write-protected, so content cannot change between
 *     the compare and the merge.  An equal hash or checksum with unequal
 *     content is never a merge (hash_false_positives, or changed_in_tree
 *     if the unstable page no longer has the checksum it was filed
 *     under).  Of equal KSM pages (the first full at max_page_sharing,
 *     then another started) the newest is found first.  A candidate
 *     without a partner enters the unstable table (under fake merging,
 *     fake_merge, it becomes a KSM page of its own instead);
 *     one whose merge failed for a transient reason (page locked) goes to
 *     the rescan list, which pksmd serves like the new list, without
 *     probation; a merge that failed for an extra reference (most often a
 *     page still in a per-cpu LRU batch) drains the batches, at most once
 *     a batch, and is tried once more at once (pksm_drain_lru());
 *     failing again (a pin), the page goes back to probation one back-off
 *     level higher, so a pinned page is retried ever more rarely.  An
 *     unstable partner that cannot merge (pinned: it backs off the same
 *     way; locked; excluded) leaves the table and the visitor takes its
 *     place, so one pinned page blocks no equal page.  When a pair becomes
 *     a KSM page, the other unstable pages filed under its checksum leave
 *     for the rescan list, whose visits merge them into it.
 *
 *  4. Merging replaces every PTE of the page, found through the reverse map
 *     (so pages shared after fork are merged as a whole), by the zero page
 *     or by the KSM page.  Only VMAs that map the page count: a forked
 *     child that opted out does not stop its parent.  A page with more
 *     mappings than the write-protect walk saw (a PTE the birth hook
 *     accounted for but the fault has not set yet) is not merged.  Each
 *     stable node records, per merged source page, the anon_vma (pinned
 *     with folio_get_anon_vma() before the walks, which may sleep) and
 *     linear page index it was mapped at; rmap_walk_ksm() walks those
 *     records as rmap_walk_anon() would have walked the source page, so
 *     reclaim, swap and rmap users reach every PTE.  The records survive
 *     mremap(), which keeps both.  A merge leaves the KSM page dirty and
 *     swap-backed; read back from swap it is clean in the swap cache, and
 *     MADV_FREE can make it lazily freeable (clean, not swap-backed):
 *     nothing is merged into such a page.
 *
 *  5. Unstable table upkeep: the table is kept across passes.  Each
 *     batch that begins in a new jiffy re-verifies the pages of a share
 *     of the buckets, in turn, so that the sweep goes round the table
 *     once per period_seconds whatever the number of unstable pages (at
 *     most pages_to_scan pages a batch), each page by the checksum it
 *     was filed under; a changed page leaves for the rescan list, whose
 *     visit files it under its new checksum.  An unchanged page with an
 *     equal page filed under the same checksum that it did not merge with
 *     (a lookup passed over one whose refcount was frozen for a moment)
 *     leaves for the rescan list too.  Unstable pages are not
 *     write-protected, so one changed since it was filed sits under its
 *     old checksum until then: it can only hide itself from a lookup, and
 *     a lookup that meets it sends it to the rescan list.
 *
 *  6. Death: the free hook marks the item dead and, if it sits on the new,
 *     rescan or a probation list, takes it off at once: the item is free
 *     (PKSM_NOWHERE).  Items in flight or in the unstable table are only
 *     marked dead; pksmd releases them when it lets them go, and a page
 *     born in the frame meanwhile waits for that (PKSM_REBORN) and then
 *     starts on the new list: one in the unstable table at pksmd's next
 *     batch (pksm_reborn_release()), not when the sweep of dead unstable
 *     items comes to its bucket.  A page freed in interrupt context, or with
 *     interrupts or bottom halves disabled (rare for an anonymous page),
 *     only has its item marked dead, as pksm_lock is taken only where no
 *     interrupt or softirq handler can wait on it; the item leaves its
 *     list when pksmd pops it or a page is born in the frame.  A freed KSM page queues its
 *     stable node for release.  pksmd never trusts an item without taking
 *     a reference on its page and then checking the item is not dead (the
 *     free hook runs before a page can be reused), nor a stable node
 *     without the keyhole check of the KSM page's ->mapping.
 *
 *  7. Reclaim (swap.c): before reclaim adds an anonymous page to swap
 *     (shrink_folio_list(), patch 0003) it offers the page to PKSM, which
 *     enters pressure mode (pksmd woken, a larger budget, no probation on
 *     level 0) and checks the page against the zero page and the stable
 *     tree: an equal page takes its mappings and reclaim frees it, so
 *     zswap never compresses or stores it.  An equal unstable page makes
 *     reclaim keep it for pksmd's next batch.  swap_dedup=0 turns this off.
 *
 * run=0 stops merging only: births and deaths are still tracked, and pksmd
 * still wakes every sleep_millisecs to release dead stable nodes and
 * unstable items.  The item table costs 16 bytes for every frame of the
 * memory that ever held a tracked page (chunks are kept), about 16.4 bytes
 * a frame of memory at most with the chunks' headers and directory (a
 * debug build's slab adds its own) (see /sys/kernel/mm/pksm/metadata_bytes).
 *
 * Files, one job each (this header: the overview, the structures, the
 * locks and every function one file offers another):
 *
 *   track.c    birth, death and COW hooks, the item table, the work lists
 *              and pksm_lock with the counters under it (its own: others
 *              use its functions), the place hints
 *   policy.c   the pure policy: hashes, compares, probation, budgets
 *              (KUnit: policy_test.c)
 *   tree.c     page content, the stable tree and the unstable table, mapping
 *              records, pages_shared/pages_sharing, rmap_walk_ksm()
 *   rmap.c     the mechanics of a merge through the reverse map:
 *              write-protect, claim, replace, and the zero and stable
 *              merges that pksmd and reclaim share
 *   merge.c    the merge decisions of a visit: probation, zero, stable,
 *              pair merges, what becomes of a page whose merge failed
 *   pksmd.c    the daemon: batches, probation visits, re-verification,
 *              the idle upkeep; pksm_mutex and the counters under it
 *   swap.c     pressure mode and the dedup check before swap (reclaim)
 *   domain.c   merge domains: whose pages may share a frame (merge_domain)
 *   control.c  the <linux/ksm.h> interface: opting in and out, /proc,
 *              swap-in, run=2
 *   sysfs.c    the knobs, /sys/kernel/mm/ksm/ and /sys/kernel/mm/pksm/
 *   debug.c    debugfs, the counts of failed allocations
 *   init.c     the boot parameters and start-up
 *
 * Locking, outermost first:
 *
 *   pksm_mutex    pksmd's batch and run=2; the stable tree, the unstable
 *                 table and its cursors, stable node fields other than
 *                 ->mappings and the lockless ->mapped, ->held and
 *                 ->dead_link (->kpfn is also read locklessly, by
 *                 pksm_hold(), pksm_release_held() and the keyhole
 *                 reference, and written by KSM page migration: constant
 *                 while the page is referenced and not migrating), knob
 *                 writes and the counters marked (M).
 *                 A fault never waits for it: reclaim, which a fault's
 *                 allocation may enter, only tries it (below).  The
 *                 debugfs domains file walks the tasks under it (RCU,
 *                 then each task's task_lock(), a spinlock under which
 *                 nothing of PKSM's is taken; domain.c).
 *   mmap_lock     of the processes: for reading by run=2 (under
 *                 pksm_mutex) and /proc's recount; taken for writing by
 *                 opting out (MADV_UNMERGEABLE, PR_SET_MEMORY_MERGE=0),
 *                 which calls into PKSM with it held and then takes
 *                 nothing of PKSM's but pksm_lock (never waits for
 *                 pksm_mutex: no inversion with run=2; its unsharing
 *                 faults may enter reclaim, which only tries it).  Its
 *                 unmerge walk also write-locks each VMA it walks (a
 *                 per-VMA lock, where the kernel has them: no fault under
 *                 the VMA lock maps a KSM page back behind the walk).
 *                 pksmd only ever trylocks it,
 *                 under an anon_vma lock: to replace PTEs (which also
 *                 holds off fork's copy of the mm), and to claim every mm
 *                 of a page that becomes a KSM page in place (an unstable
 *                 partner, or a lone page under fake merging), so
 *                 that no opt-out is under way between the exclusion check
 *                 and the conversion.
 *   folio lock    of a KSM page: its stable node's ->mappings list
 *                 (rmap_walk_ksm() runs with the folio locked); of a source
 *                 page: its PTEs cannot become writable while we merge it.
 *                 pksmd only trylocks folios.
 *   anon_vma lock, page table lock: as in the rest of mm.
 *   pksm_lock     spinlock, innermost: the new, rescan and probation
 *                 lists, item->where and the counters marked (L).  Taken
 *                 in task context with interrupts and bottom halves
 *                 enabled only (by the birth hook under the page table
 *                 lock, by the free hook for a page freed so, by pksmd,
 *                 reclaim, opting out and migration), so it needs no
 *                 irq-safe locking; nothing that sleeps or takes
 *                 another lock runs under it.  track.c's own: only its
 *                 functions take it.  item->dead changes by atomic
 *                 exchange where a free may race (the free hook marks an
 *                 item without it where it may not take it).
 *
 * Reclaim (swap.c, patch 0003) enters with the folio it is about to swap
 * locked and only tries pksm_mutex (mutex_trylock(): pksmd allocates with
 * it held and may be in reclaim itself); under it, it takes what pksmd
 * takes for a stable or zero merge (the KSM page's folio lock by trylock,
 * the anon_vma lock, mmap_lock by trylock, the page table lock) and
 * pksm_lock to move an item to the rescan list; a stale node its tree
 * walk meets is released there, freeing records whose anon_vma puts may
 * take an anon_vma root lock for writing; in a merge domain mode other
 * than all its lookup trylocks an unstable partner's folio lock and walks
 * the partner's rmap (the order is as pksmd's: a folio lock, then the
 * anon_vma lock, which nothing holds while it waits for a folio lock).
 * Reclaim only tries
 * pksm_mutex, so it never waits for pksmd (nor for run=2, whose faults
 * under pksm_mutex may wait on a folio lock that reclaim holds).
 *
 * The counters are grouped by lock: struct pksm_scan_counts (M),
 * struct pksm_list_counts (L), and atomics apart.  Fork is not held off
 * by anything but the mmap lock: ksm_fork() copies the zero-page count
 * under it (patch 0002).
 */

#ifndef _MM_PKSM_INTERNAL_H
#define _MM_PKSM_INTERNAL_H

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/llist.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/rbtree.h>
#include <linux/rmap.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include "../internal.h"
#include "policy.h"

struct seq_file;

/*
 * This header is mm/pksm/internal.h, PKSM's own; the core mm's
 * mm/internal.h is included above as "../internal.h".
 */

/* sysfs "run" values (pksm_run) */
#define PKSM_RUN_STOP		0
#define PKSM_RUN_MERGE		1
#define PKSM_RUN_UNMERGE	2

/**
 * enum pksm_where - which list or table holds a &struct pksm_item
 * @PKSM_NOWHERE: none: the frame's page is not tracked (the item is free)
 * @PKSM_NEW: on the new list
 * @PKSM_RESCAN: on the rescan list
 * @PKSM_UNSTABLE: in the unstable table
 * @PKSM_INFLIGHT: off every list, in pksmd's hands for a visit
 * @PKSM_PROBATION: on the probation list of its back-off level
 */
enum pksm_where {
	PKSM_NOWHERE,		/* not tracked: a free item */
	PKSM_NEW,		/* on the new list */
	PKSM_RESCAN,		/* on the rescan list */
	PKSM_UNSTABLE,		/* in the unstable table */
	PKSM_INFLIGHT,		/* being visited by pksmd */
	PKSM_PROBATION,		/* on the probation list of item->backoff */
};

/*
 * Items are linked by index, not by pointer (struct pksm_item): an index
 * below PKSM_IDX_HEADS is a page frame number, one from PKSM_IDX_HEADS up
 * one of track.c's list heads, PKSM_NIL none.  In the unstable table's
 * chains the ->prev of a bucket's first item is PKSM_IDX_BUCKET | the
 * bucket.  Page frames from PKSM_IDX_HEADS up (8 TiB of memory) are not
 * tracked.
 */
#define PKSM_IDX_HEADS		0x7ff00000U
#define PKSM_IDX_BUCKET		0x80000000U
#define PKSM_NIL		U32_MAX

/* item->dead: alive, the page freed, or freed and a new page born */
#define PKSM_LIVE		0
#define PKSM_DEAD		1
#define PKSM_REBORN		0x80	/* | the new page's back-off level */

/**
 * struct pksm_item - one per page frame that holds or held a tracked
 *	page: 16 bytes, in track.c's pfn-indexed chunks (the item's frame is
 *	its place in them: pksm_item_pfn())
 * @next: the next item on the list named by @where (new, rescan or a
 *	probation list: circular, through a head), or while PKSM_UNSTABLE in
 *	the unstable table's bucket of @hash (PKSM_NIL ends the chain); an
 *	index (PKSM_IDX_HEADS)
 * @prev: the item before, likewise (a bucket's first item:
 *	PKSM_IDX_BUCKET | the bucket)
 * @hash: a checksum of the whole page taken by a visit: during probation
 *	the last visit's, which the next compares; while PKSM_UNSTABLE the
 *	one the visit that filed it took, its key in the unstable table
 * @visits: PKSM_UNSEEN, or visits with an unchanged checksum
 * @where: enum pksm_where, under pksm_lock
 * @dead: PKSM_LIVE; PKSM_DEAD: the page was freed (or is forgotten);
 *	PKSM_REBORN | level: freed while pksmd held the item (in flight or
 *	in the unstable table), and a new page born in the frame since, with
 *	that back-off level: pksmd gives it a new life on the new list when
 *	it lets the item go.  Changed by atomic exchange wherever a free may
 *	race: the free hook marks an item without pksm_lock where it may not
 *	take it (in interrupt context, or with interrupts or bottom halves
 *	disabled); a birth, which no free of the same page can race, stores
 *	PKSM_LIVE or PKSM_REBORN under pksm_lock.
 * @backoff: the back-off level, 0..PKSM_MAX_BACKOFF: probation visits
 *	come every probation_millisecs << @backoff.  Set at birth (a COW copy
 *	of a KSM page broken soon after it was merged starts high), raised by
 *	a visit that finds the page changed and by a pinned page's failed
 *	merge
 * @busy: a merge of the page failed for a reason that draining the LRU
 *	batches does not cure (pksm_busy(): pinned after a drain, or refused
 *	as mapped too widely); cleared when a probation visit or
 *	re-verification finds the page changed.  A merge that fails on a busy
 *	page drains nothing (pksm_drain_for())
 *
 * @visits, @hash and @backoff are pksmd's (written while PKSM_INFLIGHT or
 * under pksm_mutex while PKSM_UNSTABLE, and at birth under pksm_lock while
 * the item is on no list of pksmd's), as is @busy, which shares @backoff's
 * byte; @next and @prev are under pksm_lock on the lists and under
 * pksm_mutex in the unstable table; @where is under pksm_lock.  @backoff
 * and @busy never change while the item is PKSM_PROBATION: unlinking it
 * (the free hook, a birth, pksm_rescan_first()) reads @backoff to know
 * which level's count to decrement.
 */
struct pksm_item {
	u32 next;
	u32 prev;
	u32 hash;
	u8 visits;
	u8 where;
	u8 dead;
	u8 backoff : 4;
	u8 busy : 1;
};

static_assert(sizeof(struct pksm_item) == 16, "an item is 16 bytes");
static_assert(PKSM_MAX_BACKOFF < 16, "item->backoff has 4 bits");

/**
 * struct pksm_stable_node - one per KSM page
 * @rb: in pksm_stable_tree, ordered by (@domain, @hash, page content), the
 *	newest of equal KSM pages leftmost
 * @mappings: the &struct pksm_mapping records, under the KSM folio lock
 * @kpfn: the KSM page
 * @dead_link: on pksm_dead_nodes, queued by the free hook; before that,
 *	while @held is not 0, on pksm_held_nodes (never on both: a held KSM
 *	page cannot be freed)
 * @hash: sampled hash of the KSM page's content (taken after it was
 *	write-protected)
 * @domain: the merge domain of every page merged into it
 *	(pksm_mm_domain()); the tree's first key
 * @nr_mappings: records on @mappings
 * @merged_at: jiffies (low 32 bits) of the last merge into the page; read
 *	locklessly by the COW hook (a break within period_seconds of the
 *	place's last merge backs the copy off: pksm_place_cow() in track.c)
 * @mapped: the KSM page's map count as last accounted in pages_shared
 *	and pages_sharing (pksm_node_account()): set by merges, pksmd's
 *	pruning sweep and run=2, lowered by COW and unsharing faults,
 *	zeroed by the free hook
 * @held: references on the KSM page that faults which copied it handed
 *	over (fake merging: pksm_hold()); the fault that raised it from 0
 *	put the node on pksm_held_nodes, from which pksm_release_held()
 *	takes it before it exchanges the count for 0 and puts them;
 *	lockless, like @dead_link then
 *
 * The KSM page's ->mapping points here (with FOLIO_MAPPING_KSM); the node
 * does not pin the page (keyhole reference, see pksm_node_folio()).
 */
struct pksm_stable_node {
	struct rb_node rb;
	struct hlist_head mappings;
	unsigned long kpfn;
	struct llist_node dead_link;
	u64 domain;
	u32 hash;
	u32 nr_mappings;
	u32 merged_at;
	atomic_t mapped;
	atomic_t held;
};

/**
 * struct pksm_stable_place - where a new stable node goes in the tree,
 *	found by pksm_stable_place() and used by pksm_stable_link() with no
 *	change to the tree in between (pksm_mutex held throughout)
 * @link: the empty child pointer to fill
 * @parent: its parent node
 */
struct pksm_stable_place {
	struct rb_node **link;
	struct rb_node *parent;
};

/**
 * struct pksm_mapping - where a merged source page was mapped
 * @link: on its stable node's ->mappings
 * @anon_vma: the source page's anon_vma; the record holds a reference
 * @pgoff: the source page's linear page index
 *
 * Every PTE that mapped the source page is found from its anon_vma and
 * linear page index, as rmap_walk_anon() finds them.
 */
struct pksm_mapping {
	struct hlist_node link;
	struct anon_vma *anon_vma;
	pgoff_t pgoff;
};

/**
 * enum pksm_outcome - what becomes of an item at the end of a visit
 * @PKSM_OUT_NEW: back to the new list: a first visit that could not read
 *	the page
 * @PKSM_OUT_RESCAN: to the rescan list
 * @PKSM_OUT_PROBATION: to the probation list of the item's back-off level
 * @PKSM_OUT_UNSTABLE: into the unstable table
 * @PKSM_OUT_RELEASE: merged or gone: release the item
 */
enum pksm_outcome {
	PKSM_OUT_NEW,		/* back to the new list, still unseen */
	PKSM_OUT_RESCAN,	/* to the rescan list */
	PKSM_OUT_PROBATION,	/* to pksm_probation_lists[item->backoff] */
	PKSM_OUT_UNSTABLE,	/* into the unstable table */
	PKSM_OUT_RELEASE,	/* merged or gone: release the item */
};

/*
 * pksm_mutex (pksmd.c): outermost.  pksmd's batch and run=2; the stable
 * tree, the unstable table, stable node fields other than
 * ->mappings, the integer knobs' writes and struct pksm_scan_counts.
 * Taken before mmap_lock (for reading by run=2; pksmd only trylocks it),
 * the folio lock, the anon_vma lock and the page table lock; never by a
 * fault (reclaim only tries it).
 */
extern struct mutex pksm_mutex;

/*
 * pksm_lock is track.c's own (static there: its description is beside
 * it): innermost, task context only, taken only by track.c's functions.
 */

/**
 * struct pksm_list_counts - counters under pksm_lock (L)
 * @nr_new: items on the new list
 * @nr_rescan: items on the rescan list
 * @nr_probation: items on each back-off level's probation list
 * @nr_tracked: pages with a live item (this and the last two are atomics
 *	of track.c's, copied in by pksm_list_counts_read(): 0 in pksm_lc)
 * @nr_untracked: births that got no item (no memory for its chunk, a
 *	frame beyond the table, or a large folio)
 * @nr_items: items in use (not PKSM_NOWHERE), dead ones included
 * @nr_dead_unstable: a hint of items of freed pages still in the unstable
 *	table (an atomic of track.c's, copied in likewise)
 * @nr_chunks: chunks of items allocated (each PKSM_CHUNK_BYTES)
 * @nr_adopted: pages born without an item (their chunk could not be
 *	allocated) that pksmd tracked once it allocated it (an atomic of
 *	track.c's, copied in likewise)
 */
struct pksm_list_counts {
	unsigned long nr_new;
	unsigned long nr_rescan;
	unsigned long nr_probation[PKSM_LEVELS];
	unsigned long nr_tracked;
	unsigned long nr_untracked;
	unsigned long nr_items;
	unsigned long nr_dead_unstable;
	unsigned long nr_chunks;
	unsigned long nr_adopted;
};

/**
 * struct pksm_scan_counts - counters under pksm_mutex (M)
 * @nr_unstable: pages in the unstable table
 * @nr_stable_nodes: stable nodes
 * @nr_mappings: mapping records of all stable nodes
 * @nr_dups: unstable merges made while equal KSM pages were full
 *	(max_page_sharing)
 * @nr_zero_merges: pages merged with the zero page
 * @nr_stable_merges: pages merged into a KSM page
 * @nr_unstable_merges: pairs of unstable pages merged
 * @nr_fake_merges: pages made a KSM page of their own (pksm_fake_merge)
 * @nr_false_positives: equal sampled hashes (stable tree) or checksums
 *	(unstable table) with unequal content, the page met unchanged
 * @nr_changed_in_tree: compares that met an unstable page changed since it
 *	was filed (its checksum no longer the one that files it)
 * @nr_compares: full page compares made by lookups
 * @nr_merge_failures: merges that failed for a transient reason
 * @nr_merge_races: merges that lost their page's PTEs (a write fault,
 *	munmap or exit meanwhile, maybe on another CPU): none left to replace
 *	once it was write-protected and checked, or none left to write-protect
 *	(either page of a pair, or a stable merge's page)
 * @nr_deferred: visits of a page not mapped (yet, or any more)
 * @nr_reverified: unstable pages re-verified (checksum taken again)
 * @nr_reverify_changed: re-verified unstable pages whose checksum changed
 * @nr_reverify_twins: unchanged re-verified unstable pages equal to
 *	another unstable page filed under the same checksum, sent to merge
 * @nr_unstable_kicks: unstable pages sent to merge into a KSM page just
 *	made from a page filed under the same checksum (pksm_unstable_kick())
 * @nr_level_raises: probation visits that found the page changed and
 *	raised its back-off level
 * @nr_lru_drains: drains of the per-cpu LRU batches (pksm_drain_lru())
 * @nr_domain_refused: merges refused for the merge domain: a page mapped
 *	by processes of several domains, or one whose domain was found
 *	changed once it was write-protected (domain.c)
 * @pages_scanned: pages hashed, visits and re-verification
 * @full_scans: rounds over the new and rescan lists completed (pages on
 *	probation are visited as they come due, outside rounds)
 * @round_left: visits left in the current round
 * @busy_ns: pksmd's busy time, wall clock (ktime_get_ns() around each
 *	batch: counts time its vCPU's host thread did not run, and time
 *	pksmd was preempted)
 * @cpu_ns: pksmd's CPU time in its batches (current_task_cpu_ns(): under
 *	UML the host CPU time of the vCPU threads while pksmd was current)
 *
 * Written with pksm_mutex held; sysfs reads them without it (statistics:
 * a monitor does not wait for a batch or a whole run=2).
 */
struct pksm_scan_counts {
	unsigned long nr_unstable;
	unsigned long nr_stable_nodes;
	unsigned long nr_mappings;
	unsigned long nr_dups;
	unsigned long nr_zero_merges;
	unsigned long nr_stable_merges;
	unsigned long nr_unstable_merges;
	unsigned long nr_fake_merges;
	unsigned long nr_false_positives;
	unsigned long nr_changed_in_tree;
	unsigned long nr_compares;
	unsigned long nr_merge_failures;
	unsigned long nr_merge_races;
	unsigned long nr_deferred;
	unsigned long nr_reverified;
	unsigned long nr_reverify_changed;
	unsigned long nr_reverify_twins;
	unsigned long nr_unstable_kicks;
	unsigned long nr_level_raises;
	unsigned long nr_lru_drains;
	unsigned long nr_domain_refused;
	unsigned long pages_scanned;
	unsigned long full_scans;
	long round_left;
	u64 busy_ns;
	u64 cpu_ns;
};

/* (M) pksmd.c; (L) counters are track.c's own (pksm_list_counts_read()) */
extern struct pksm_scan_counts pksm_sc;
/*
 * The atomics below have no lock: written by track.c only (excluded pages
 * also through pksm_count_excluded()), read by sysfs as they are.
 */
/* COW breaks of merged pages (writes only). */
extern atomic_long_t pksm_nr_cow_breaks;
/* Pages born with a COW back-off. */
extern atomic_long_t pksm_nr_backoffs;
/* KSM pages and tracked pages moved by migration (compaction). */
extern atomic_long_t pksm_nr_migrated;
/* Pages not tracked, or dropped, because their VMA or process opted out. */
extern atomic_long_t pksm_nr_excluded;
/*
 * pages_shared and pages_sharing (tree.c): the sum over stable nodes of
 * what their ->mapped says (a node mapped m > 0 times: one shared, m - 1
 * sharing).  Kept, not recounted when read, and eventually exact: set at
 * each merge and by run=2, lowered at once by COW and unsharing faults,
 * zeroed when a KSM page is freed; a fork, munmap, exit or swap-out, and
 * a COW fault that did not copy after all, are seen when pksmd's pruning
 * sweep next visits the node (about once per period_seconds, whatever
 * run says, while 64 nodes a batch keep up: PKSM_PRUNE_NODES), as
 * upstream KSM sees them at its next scan.
 */
extern atomic_long_t pksm_nr_shared;
extern atomic_long_t pksm_nr_sharing;

/* tree.c */
extern struct rb_root pksm_stable_tree;		/* (M) */
extern struct llist_head pksm_dead_nodes;	/* lockless: free hook -> pksmd */
extern struct llist_head pksm_held_nodes;	/* lockless: copy hook -> work */
/* References on KSM pages handed over by faults (pksm_hold()). */
extern atomic_long_t pksm_nr_held;
#define PKSM_HELD_WAKE		1024	/* held references dropped at once */
extern struct kmem_cache *pksm_node_cache;
extern struct kmem_cache *pksm_mapping_cache;
/* Arrays of PKSM_CLAIM_BATCH mm pointers: a claim's mms (rmap.c). */
extern struct kmem_cache *pksm_claim_cache;
#define PKSM_CLAIM_BATCH	16

/* pksmd.c: pksmd sleeps here between batches; knob writes wake it. */
extern struct wait_queue_head pksm_daemon_wait;

/*
 * Knobs (sysfs.c): the integer ones pksmd uses and pksm_fake_merge are
 * written under pksm_mutex, the other boolean ones and upstream's advisor
 * knobs (kept for their files) with WRITE_ONCE() alone; pksmd reads them
 * under it or with READ_ONCE().  pksm_opted_in_only (init.c) is a boot
 * parameter, constant once booted.
 */
extern unsigned int pksm_run;
extern unsigned int pksm_pages_to_scan;
extern unsigned int pksm_sleep_ms;
extern unsigned int pksm_probation_scans;
extern unsigned int pksm_probation_ms;
extern bool pksm_opted_in_only;		/* boot parameter, then constant */
extern unsigned int pksm_period_seconds;
extern bool pksm_use_zero_pages;
extern bool pksm_fake_merge;
extern unsigned int pksm_max_page_sharing;

/* track.c: birth, death and the work lists */
struct pksm_item *pksm_item_of(unsigned long pfn);
struct pksm_item *pksm_item_at(u32 idx);
u32 pksm_item_idx(const struct pksm_item *item);
unsigned long pksm_item_pfn(const struct pksm_item *item);
bool pksm_pfn_tracked(unsigned long pfn);
bool pksm_vma_excluded(struct vm_area_struct *vma);
bool pksm_vma_compatible(struct vm_area_struct *vma);
void pksm_track(struct folio *folio, bool known);
void pksm_place_merged(struct mm_struct *mm, pgoff_t pgoff);
void pksm_places_forget(struct mm_struct *mm);
void pksm_forget(struct folio *folio);
void pksm_count_excluded(void);
void pksm_chunks_retry(void);
unsigned long pksm_reborn_release(void);
struct pksm_item *pksm_pop(enum pksm_where where, unsigned int level);
unsigned long pksm_probation_cut(unsigned long *take, unsigned long budget,
				 unsigned int since);
void pksm_probation_uncut(unsigned int level);
bool pksm_item_finish(struct pksm_item *item, enum pksm_outcome out);
struct folio *pksm_item_folio(struct pksm_item *item);
bool pksm_rescan_first(struct folio *folio);
void pksm_nr_waiting(unsigned long *nr_new, unsigned long *nr_rescan);
void pksm_list_counts_read(struct pksm_list_counts *lc);
unsigned long pksm_nr_dead_unstable(void);
unsigned long pksm_dead_unstable_given(void);
void pksm_dead_unstable_cap(unsigned long since);
unsigned long pksm_track_bytes(void);
bool pksm_track_init(void);
void pksm_track_cache_destroy(void);
unsigned long pksm_track_table_init(void);
void pksm_track_table_free(void);

/* tree.c: page content, the stable tree, the unstable table, records */
u32 pksm_hash_folio(struct folio *folio);
u32 pksm_checksum_folio(struct folio *folio);
int pksm_folios_cmp(struct folio *a, struct folio *b);

static inline bool pksm_folios_equal(struct folio *a, struct folio *b)
{
	return !pksm_folios_cmp(a, b);
}

struct pksm_stable_node *pksm_folio_node(struct folio *folio);
void pksm_set_folio_node(struct folio *folio, struct pksm_stable_node *node);
unsigned long pksm_unstable_table_init(void);
void pksm_unstable_table_free(void);
unsigned long pksm_unstable_table_bytes(void);
struct pksm_item *pksm_unstable_search(struct folio *folio, u32 sum,
				       u64 domain, struct folio **pfolio);
void pksm_unstable_insert(struct pksm_item *item, u32 sum, u64 domain);
void pksm_unstable_drop(struct pksm_item *item);
void pksm_unstable_kick(u32 sum, u64 domain);
void pksm_unstable_flush(void);
void pksm_unstable_remove(struct pksm_item *item);
void pksm_unstable_reverify(unsigned long buckets, unsigned long max_pages);
unsigned long pksm_unstable_buckets(void);
void pksm_release_dead_unstable(unsigned long budget);
struct folio *pksm_node_folio(struct pksm_stable_node *node);
struct pksm_stable_node *pksm_stable_search(struct folio *folio, u32 hash,
					    u64 domain,
					    struct folio **kfolio);
int pksm_stable_place(struct folio *kfolio, u32 hash, u64 domain,
		      struct pksm_stable_place *place);
void pksm_stable_link(struct pksm_stable_node *node,
		      struct pksm_stable_place *place);
void pksm_release_dead_nodes(void);
bool pksm_held_init(void);
void pksm_held_free(void);
bool pksm_hold(struct folio *folio, struct pksm_stable_node *node);
void pksm_release_held(void);
void pksm_node_add_mapping(struct pksm_stable_node *node,
			   struct folio *folio, struct pksm_mapping *map,
			   struct anon_vma *anon_vma);
void pksm_prune(unsigned long budget);
void pksm_node_account(struct pksm_stable_node *node, int mapcount);
void pksm_node_account_dec(struct pksm_stable_node *node);
void pksm_account_all(void);

/**
 * enum pksm_delay_point - where a debug delay may widen a race window
 *	(debugfs pksm/delay_points, a bit mask; pksm/delay_ms long)
 * @PKSM_DELAY_CONVERT: a page to become a KSM page in place (an unstable
 *	partner write-protected and equal, or a lone page under fake
 *	merging) is not yet claimed and made one
 * @PKSM_DELAY_STABLE: a page is write-protected and found equal to the
 *	KSM page for a stable merge, its record not yet made
 * @PKSM_DELAY_ZERO: a page is write-protected and found all zero, its
 *	PTEs not yet pointed at the zero page
 * @PKSM_DELAY_WRPROTECT: a page about to be merged is locked, referenced
 *	and was mapped, its anon_vma pinned, its PTEs not yet write-protected
 * @PKSM_DELAY_MIGRATE: a KSM page is being migrated: every PTE that
 *	mapped it is a migration entry, its stable node not yet moved to the
 *	new frame (folio_migrate_ksm())
 */
enum pksm_delay_point {
	PKSM_DELAY_CONVERT = BIT(0),
	PKSM_DELAY_STABLE = BIT(1),
	PKSM_DELAY_ZERO = BIT(2),
	PKSM_DELAY_WRPROTECT = BIT(3),
	PKSM_DELAY_MIGRATE = BIT(4),
};

#ifdef CONFIG_DEBUG_FS
void pksm_debug_delay(enum pksm_delay_point point);
void pksm_debugfs_init(void);
#else
static inline void pksm_debug_delay(enum pksm_delay_point point)
{
}

static inline void pksm_debugfs_init(void)
{
}
#endif

/*
 * The compare that decides a merge once its pages are write-protected
 * (pksm_merge_stable(), pksm_merge_pair()): the full compare.  Debug
 * builds can be told to trust the sampled hash there instead (debug.c,
 * debugfs pksm/unsafe_trust_hash), a deliberate defect for the tests.
 */
#if defined(CONFIG_DEBUG_FS) && defined(CONFIG_DEBUG_VM)
bool pksm_recheck_equal(struct folio *a, struct folio *b);
#else
static inline bool pksm_recheck_equal(struct folio *a, struct folio *b)
{
	return pksm_folios_equal(a, b);
}
#endif

/**
 * enum pksm_alloc_site - PKSM's allocations that may fail, each with its
 *	error path (debugfs pksm/alloc_failures counts the failures of each,
 *	so a fault-injection test knows every path was taken)
 * @PKSM_ALLOC_CHUNK: a chunk of items at the first birth in its frames:
 *	the page is not tracked
 * @PKSM_ALLOC_NODE: a stable node for a pair or a lone page (fake
 *	merging): not merged
 * @PKSM_ALLOC_MAPPING: a mapping record (stable merge, pair or lone page):
 *	not merged
 * @PKSM_ALLOC_CLAIM: the array of claimed mms of a page to become a KSM
 *	page in place: not merged
 * @PKSM_NR_ALLOC_SITES: the number of sites
 */
enum pksm_alloc_site {
	PKSM_ALLOC_CHUNK,
	PKSM_ALLOC_NODE,
	PKSM_ALLOC_MAPPING,
	PKSM_ALLOC_CLAIM,
	PKSM_NR_ALLOC_SITES,
};

/* debug.c: count a failed allocation (debugfs pksm/alloc_failures) */
void pksm_alloc_failed(enum pksm_alloc_site site);

/* merge.c: a visit */
bool pksm_visit(struct pksm_item *item, bool from_new);

/* pksmd.c: pksmd */
void pksm_drain_lru(void);
struct task_struct *pksm_start_pksmd(void);

/* control.c: run=2 */
int pksm_unmerge_until(bool zero, unsigned int keep);
/* (M) the task in pksm_unmerge_until(), read locklessly by faults */
extern struct task_struct *pksm_unmerger;

/* ---- domain.c: merge domains ------------------------------------------ */

/**
 * enum pksm_domain_mode - what a merge domain is (merge_domain)
 * @PKSM_DOMAIN_ALL: one domain: any page may merge with any other
 * @PKSM_DOMAIN_UID: the effective uid of the process that owns an mm
 * @PKSM_DOMAIN_CGROUP: the memory cgroup of the process that owns an mm
 * @PKSM_DOMAIN_SESSION: the session of the process that owns an mm: a
 *	process tree from its session leader (setsid() starts a new one)
 * @PKSM_DOMAIN_MODES: the number of modes
 */
enum pksm_domain_mode {
	PKSM_DOMAIN_ALL,
	PKSM_DOMAIN_UID,
	PKSM_DOMAIN_CGROUP,
	PKSM_DOMAIN_SESSION,
	PKSM_DOMAIN_MODES,
};

/*
 * A domain is a u64: the mode in the top four bits, the uid, cgroup id or
 * session id below, so that domains of two modes never compare equal (a
 * stable node made under one mode is never merged into under another).
 * Two values that are no domain, their top four bits clear of every
 * mode's: PKSM_DOMAIN_NONE, a page nothing maps; PKSM_DOMAIN_MIXED, a
 * page mapped by processes of several domains (after fork, a child that
 * changed its uid, cgroup or session and has not written the page yet),
 * or an mm with no domain now (pksm_mm_domain()).  No page merges with a
 * page of either.
 */
#define PKSM_DOMAIN_SHIFT	60
#define PKSM_DOMAIN_NONE	(~0ULL)
#define PKSM_DOMAIN_MIXED	(~0ULL - 1)

/*
 * pksm_merge_domain: enum pksm_domain_mode; written under pksm_mutex
 * (pksm_set_merge_domain()), read by pksmd and reclaim under it, so that
 * a merge sees one mode throughout; read with READ_ONCE() alone by
 * swap-in (ksm_might_need_to_copy(), which compares a KSM page's domain
 * with the faulting mm's: a mode changing meanwhile makes them differ,
 * and the page is copied) and sysfs.
 */
extern unsigned int pksm_merge_domain;
extern const char *const pksm_domain_names[PKSM_DOMAIN_MODES];
u64 pksm_mm_domain(struct mm_struct *mm);
void pksm_domain_add(u64 *domain, struct vm_area_struct *vma);
u64 pksm_folio_domain(struct folio *folio);
unsigned long pksm_other_mode_mapped(unsigned int mode);
bool pksm_try_folio_domain(struct folio *folio, u64 *domain);
int pksm_set_merge_domain(unsigned int mode);
int pksm_domains_show(struct seq_file *m);

/* sysfs.c: /sys/kernel/mm/ksm/ and /sys/kernel/mm/pksm/ */
void pksm_sysfs_init(void);

/* ---- swap.c: pressure mode and dedup before the store (swap/zswap) ---- */

/**
 * enum pksm_swap_stat - the counters of swap.c (lockless atomics, shown in
 *	/sys/kernel/mm/pksm/ under the names in brackets)
 * @PKSM_SWAP_OFFERED: folios reclaim was about to add to swap, or to write
 *	again from the swap cache (swap_offered)
 * @PKSM_SWAP_CACHED: of those, folios already in the swap cache
 *	(swap_cached)
 * @PKSM_SWAP_CHECKED: of those, checked against PKSM's structures
 *	(swap_checked)
 * @PKSM_SWAP_ZERO_MERGES: merged with the zero page instead of being
 *	stored (swap_zero_merges)
 * @PKSM_SWAP_STABLE_MERGES: merged into a KSM page instead of being stored
 *	(swap_stable_merges)
 * @PKSM_SWAP_DEFERRED: kept resident for pksmd, an equal page waiting in
 *	the unstable table (swap_deferred)
 * @PKSM_SWAP_MISSES: checked, no equal page known: stored (swap_misses)
 * @PKSM_SWAP_FAILURES: an equal page known but the merge failed (locked,
 *	pinned, excluded, written meanwhile): stored (swap_failures)
 * @PKSM_SWAP_BUSY: not checked, pksm_mutex was held: stored (swap_busy)
 * @PKSM_SWAP_NS: nanoseconds spent in the hook (swap_ns)
 * @PKSM_SWAP_PRESSURE_ENTRIES: times pressure mode began (pressure_entries)
 * @PKSM_SWAP_PRESSURE_BATCHES: pksmd batches run with the pressure budget
 *	(pressure_batches)
 * @PKSM_SWAP_PRESSURE_LEAN: pksmd batches in pressure mode run with
 *	pages_to_scan, too few merges since the batch before
 *	(pressure_lean_batches)
 * @PKSM_SWAP_NR_STATS: the number of counters
 */
enum pksm_swap_stat {
	PKSM_SWAP_OFFERED,
	PKSM_SWAP_CACHED,
	PKSM_SWAP_CHECKED,
	PKSM_SWAP_ZERO_MERGES,
	PKSM_SWAP_STABLE_MERGES,
	PKSM_SWAP_DEFERRED,
	PKSM_SWAP_MISSES,
	PKSM_SWAP_FAILURES,
	PKSM_SWAP_BUSY,
	PKSM_SWAP_NS,
	PKSM_SWAP_PRESSURE_ENTRIES,
	PKSM_SWAP_PRESSURE_BATCHES,
	PKSM_SWAP_PRESSURE_LEAN,
	PKSM_SWAP_NR_STATS,
};

extern atomic_long_t pksm_swap_stats[PKSM_SWAP_NR_STATS];
extern bool pksm_swap_dedup;	/* /sys/kernel/mm/pksm/swap_dedup */
bool pksm_swap_boosted(void);
bool pksm_swap_take_kick(void);
unsigned long pksm_swap_turned_away(void);
unsigned int pksm_swap_scan_budget(unsigned int todo);
void pksm_swap_idle(void);

/* ---- rmap.c: the mechanics of a merge, for merge.c and swap.c ---------- */

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
 * its place in the unstable table, and when the refused page comes round
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

bool pksm_folio_is_zero(struct folio *folio);
/**
 * enum pksm_adopt - may pksmd track a page after its birth?
 *	(pksm_folio_adoptable())
 * @PKSM_ADOPT_NO: no (unmapped, or an excluded VMA maps it)
 * @PKSM_ADOPT_YES: yes: a PTE maps it, its birth is over
 * @PKSM_ADOPT_LATER: mapped, but no PTE of it seen: look again later
 */
enum pksm_adopt {
	PKSM_ADOPT_NO,
	PKSM_ADOPT_YES,
	PKSM_ADOPT_LATER,
};

enum pksm_adopt pksm_folio_adoptable(struct folio *folio);
int pksm_wrprotect(struct folio *folio, u64 *domain);
int pksm_replace(struct folio *folio, struct folio *kfolio,
		 unsigned int *replaced);
void pksm_claim_alloc(struct pksm_claim *claim);
void pksm_claim_free(struct pksm_claim *claim);
int pksm_claim(struct folio *folio, struct pksm_claim *claim);
void pksm_unclaim(struct pksm_claim *claim);
void pksm_keep_for_swap(struct folio *kfolio);
int pksm_merge_zero_locked(struct folio *folio, unsigned int *replaced);
bool pksm_stable_has_room(struct folio *kfolio, struct folio *folio);
int pksm_merge_stable(struct folio *folio, struct folio *kfolio,
		      struct pksm_stable_node *node, bool reclaim,
		      unsigned int *replaced);

#endif /* _MM_PKSM_INTERNAL_H */
