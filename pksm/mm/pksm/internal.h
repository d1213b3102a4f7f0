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
 *  1. Birth: a struct pksm_item is allocated (GFP_NOWAIT: we are under the
 *     page table lock) and put on the new list.  If the allocation fails the
 *     page is simply not tracked; the fault never fails because of PKSM.
 *
 *  2. Probation: each pksmd visit hashes a fixed sample of the page's words.
 *     The page becomes a merge candidate once probation_scans consecutive
 *     visits found the same sampled hash (0: at first sight).  Until then it
 *     goes back to the tail of the new list.  A page found all zero at any
 *     visit is merged with the zero page at once.
 *
 *  3. Merge, cheapest first: the zero page; the stable tree (pages already
 *     merged, "KSM pages"); the unstable tree (candidates waiting for a
 *     partner).  The trees are keyed by the sampled hash; a full word-wise
 *     compare decides, twice: once to find a partner, and again after every
 *     mapping of the page has been write-protected, so content cannot change
 *     between the compare and the merge.  A compare that contradicts an
 *     equal hash counts as a hash false positive and never as a merge.
 *     A candidate without a partner enters the unstable tree; one whose merge
 *     failed for a transient reason (page locked, extra reference) goes to
 *     the rescan list, which pksmd serves like the new list, without
 *     probation.
 *
 *  4. Merging replaces every PTE of the page, found through the reverse map
 *     (so pages shared after fork are merged as a whole), by the zero page
 *     or by the KSM page.  Each stable node records, per merged source page,
 *     the anon_vma and linear page index it was mapped at; rmap_walk_ksm()
 *     walks those records exactly as rmap_walk_anon() would have walked the
 *     source page, so reclaim, swap and rmap users reach every PTE.
 *
 *  5. Unstable tree upkeep: the tree is kept across passes.  Each wake-up
 *     re-hashes a budget of unstable pages in FIFO order (about every
 *     unstable page once per period_seconds); a page whose hash changed
 *     leaves for the rescan list.  Because the tree is ordered by the hash
 *     stored at insertion, which never changes while the item is in the
 *     tree, the tree cannot mis-order; a page whose content changed since
 *     is just a failed full compare until re-verification removes it.
 *
 *  6. Death: the free hook detaches the item from the pfn table and, if the
 *     item sits on the new or rescan list, moves it to the del list; items
 *     in flight or in the unstable tree are only marked dead.  pksmd
 *     releases them.  A freed KSM page queues its stable node for release.
 *     pksmd never trusts an item without taking a reference on its page and
 *     then checking the item is not dead (the free hook runs before a page
 *     can be reused), nor a stable node without the keyhole check of the
 *     KSM page's ->mapping.
 *
 * run=0 stops merging only: births and deaths are still tracked, and pksmd
 * still wakes every sleep_millisecs to release dead items, so the memory
 * PKSM uses stays one item per live anonymous page (see
 * /sys/kernel/mm/pksm/metadata_bytes).
 *
 * Locking, outermost first:
 *
 *   pksm_mutex    pksmd's batch; the stable and unstable trees, the unstable
 *                 FIFO, stable node fields other than ->mappings, knobs and
 *                 the counters marked (M).
 *   folio lock    of a KSM page: its stable node's ->mappings list
 *                 (rmap_walk_ksm() runs with the folio locked); of a source
 *                 page: its PTEs cannot become writable while we merge it.
 *   anon_vma lock, page table lock: as in the rest of mm.
 *   pksm_lock     irq-safe spinlock, innermost: the pfn table, the new,
 *                 rescan and del lists, item->where/->inflight/->dead and the
 *                 counters marked (L).  Taken by the birth hook under the
 *                 page table lock and by the free hook in any context, so
 *                 nothing that sleeps or takes another lock runs under it.
 *
 * The counters are grouped by lock: struct pksm_scan_counts (M),
 * struct pksm_list_counts (L), and two atomics apart.
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

/*
 * This header is mm/pksm/internal.h, PKSM's own; the core mm's
 * mm/internal.h is included above as "../internal.h".
 */

/* sysfs "run" values (pksm_run) */
#define PKSM_RUN_STOP		0
#define PKSM_RUN_MERGE		1
#define PKSM_RUN_UNMERGE	2

/**
 * enum pksm_where - which list or tree holds a &struct pksm_item
 * @PKSM_NOWHERE: being created or released
 * @PKSM_NEW: on the new list
 * @PKSM_RESCAN: on the rescan list
 * @PKSM_DEL: on the del list: dead, waiting for release
 * @PKSM_UNSTABLE: in the unstable tree and FIFO
 */
enum pksm_where {
	PKSM_NOWHERE,		/* being created or released */
	PKSM_NEW,		/* on the new list */
	PKSM_RESCAN,		/* on the rescan list */
	PKSM_DEL,		/* on the del list: dead, waiting for release */
	PKSM_UNSTABLE,		/* in the unstable tree and FIFO */
};

/**
 * struct pksm_item - one per tracked page: 32 bytes on 64-bit
 * @pfn: the page
 * @link: on the list named by @where (the unstable FIFO for
 *	PKSM_UNSTABLE), or on none while @inflight (pksmd is visiting the
 *	item off-list)
 * @hash: sampled hash at the last visit
 * @visits: PKSM_UNSEEN, or visits with an unchanged hash
 * @where: enum pksm_where, under pksm_lock
 * @inflight: off-list in pksmd's hands, under pksm_lock
 * @dead: the page was freed; set under pksm_lock
 */
struct pksm_item {
	unsigned long pfn;
	struct list_head link;
	u32 hash;		/* sampled hash at the last visit */
	u8 visits;		/* PKSM_UNSEEN, or visits with an unchanged hash */
	u8 where;		/* enum pksm_where, under pksm_lock */
	u8 inflight;		/* off-list in pksmd's hands, under pksm_lock */
	u8 dead;		/* the page was freed; set under pksm_lock */
};

/**
 * struct pksm_unode - an unstable tree node: 32 bytes, only for pages in
 *	the unstable tree
 * @rb: in pksm_unstable_tree, keyed by (item->hash, item)
 * @item: the item of the page
 */
struct pksm_unode {
	struct rb_node rb;	/* keyed by (item->hash, item) */
	struct pksm_item *item;
};

/**
 * struct pksm_stable_node - one per KSM page
 * @rb: in pksm_stable_tree, keyed by (@hash, node)
 * @mappings: the &struct pksm_mapping records, under the KSM folio lock
 * @kpfn: the KSM page
 * @dead_link: on pksm_dead_nodes, queued by the free hook
 * @hash: sampled hash of the KSM page's content
 * @nr_mappings: records on @mappings
 *
 * The KSM page's ->mapping points here (with PAGE_MAPPING_KSM); the node
 * does not pin the page (keyhole reference, see pksm_node_folio()).
 */
struct pksm_stable_node {
	struct rb_node rb;		/* stable tree, keyed by (hash, node) */
	struct hlist_head mappings;	/* struct pksm_mapping, under the KSM folio lock */
	unsigned long kpfn;		/* the KSM page */
	struct llist_node dead_link;	/* queued by the free hook */
	u32 hash;
	u32 nr_mappings;
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
 * @PKSM_OUT_NEW: back to the tail of the new list
 * @PKSM_OUT_RESCAN: to the rescan list
 * @PKSM_OUT_UNSTABLE: into the unstable tree
 * @PKSM_OUT_RELEASE: merged or gone: release the item
 */
enum pksm_outcome {
	PKSM_OUT_NEW,		/* back to the tail of the new list */
	PKSM_OUT_RESCAN,	/* to the rescan list */
	PKSM_OUT_UNSTABLE,	/* into the unstable tree */
	PKSM_OUT_RELEASE,	/* merged or gone: release the item */
};

/*
 * pksm_mutex (merge.c): outermost.  pksmd's batch; the stable
 * and unstable trees, the unstable FIFO, stable node fields other than
 * ->mappings, knobs and struct pksm_scan_counts.  Taken before the folio
 * lock, the anon_vma lock and the page table lock; never by a fault.
 */
extern struct mutex pksm_mutex;

/*
 * pksm_lock (track.c): irq-safe spinlock, innermost.  The pfn table, the
 * new, rescan and del lists, item->where/->inflight/->dead and struct
 * pksm_list_counts.  Taken by the birth hook under the page table lock and
 * by the free hook in any context, so nothing that sleeps or takes another
 * lock runs under it.
 */
extern spinlock_t pksm_lock;

/**
 * struct pksm_list_counts - counters under pksm_lock (L)
 * @nr_new: items on the new list
 * @nr_rescan: items on the rescan list
 * @nr_del: items on the del list
 * @nr_tracked: pages with a live item
 * @nr_untracked: births that got no item (no memory, no table slot, or a
 *	large folio)
 * @nr_items: items allocated, dead ones included
 */
struct pksm_list_counts {
	unsigned long nr_new;
	unsigned long nr_rescan;
	unsigned long nr_del;
	unsigned long nr_tracked;
	unsigned long nr_untracked;
	unsigned long nr_items;
};

/**
 * struct pksm_scan_counts - counters under pksm_mutex (M)
 * @nr_unstable: pages in the unstable tree
 * @nr_stable_nodes: stable nodes
 * @nr_mappings: mapping records of all stable nodes
 * @nr_dups: unstable merges made while equal KSM pages were full
 *	(max_page_sharing)
 * @nr_zero_merges: pages merged with the zero page
 * @nr_stable_merges: pages merged into a KSM page
 * @nr_unstable_merges: pairs of unstable pages merged
 * @nr_false_positives: equal sampled hashes with unequal content
 * @nr_merge_failures: merges that failed for a transient reason
 * @nr_deferred: visits of a page not mapped (yet, or any more)
 * @nr_reverified: unstable pages re-hashed
 * @nr_reverify_changed: re-hashed unstable pages whose hash changed
 * @pages_scanned: pages hashed, visits and re-verification
 * @full_scans: rounds over the new and rescan lists completed
 * @round_left: visits left in the current round
 * @busy_ns: pksmd's busy time (ktime_get_ns())
 */
struct pksm_scan_counts {
	unsigned long nr_unstable;
	unsigned long nr_stable_nodes;
	unsigned long nr_mappings;
	unsigned long nr_dups;
	unsigned long nr_zero_merges;
	unsigned long nr_stable_merges;
	unsigned long nr_unstable_merges;
	unsigned long nr_false_positives;
	unsigned long nr_merge_failures;
	unsigned long nr_deferred;
	unsigned long nr_reverified;
	unsigned long nr_reverify_changed;
	unsigned long pages_scanned;
	unsigned long full_scans;
	long round_left;
	u64 busy_ns;
};

/* (L) track.c */
extern struct pksm_list_counts pksm_lc;
/* (M) merge.c */
extern struct pksm_scan_counts pksm_sc;
/* Atomics, no lock (track.c): COW breaks of merged pages. */
extern atomic_long_t pksm_nr_cow_breaks;
/* Pages not tracked, or dropped, because their VMA or process opted out. */
extern atomic_long_t pksm_nr_excluded;

/* track.c: pfn -> item (L).  One pointer per page of memory, like page_ext. */
extern struct pksm_item **pksm_table;
extern unsigned long pksm_table_len;
extern struct list_head pksm_new_list;		/* (L) */
extern struct list_head pksm_rescan_list;	/* (L) */
extern struct list_head pksm_del_list;		/* (L) */
extern struct kmem_cache *pksm_item_cache;

/* tree.c */
extern struct list_head pksm_unstable_fifo;	/* (M) re-verify order */
extern struct rb_root pksm_unstable_tree;	/* (M) */
extern struct rb_root pksm_stable_tree;		/* (M) */
extern struct llist_head pksm_dead_nodes;	/* lockless: free hook -> pksmd */
extern struct kmem_cache *pksm_unode_cache;
extern struct kmem_cache *pksm_node_cache;
extern struct kmem_cache *pksm_mapping_cache;

/* merge.c: pksmd sleeps here between batches; knob writes wake it. */
extern struct wait_queue_head pksm_daemon_wait;

/*
 * Knobs (sysfs.c): written under pksm_mutex, read by pksmd under it or
 * with READ_ONCE.
 */
extern unsigned int pksm_run;
extern unsigned int pksm_pages_to_scan;
extern unsigned int pksm_sleep_ms;
extern unsigned int pksm_probation_scans;
extern unsigned int pksm_period_seconds;
extern bool pksm_use_zero_pages;
extern unsigned int pksm_max_page_sharing;

/* track.c: birth, death and the work lists */
struct pksm_item **pksm_slot(unsigned long pfn);
bool pksm_vma_excluded(struct vm_area_struct *vma);
void pksm_track(struct folio *folio, bool known);
void pksm_forget(struct folio *folio);
void pksm_item_free(struct pksm_item *item);
struct pksm_item *pksm_pop(struct list_head *list, unsigned long *count);
bool pksm_item_finish(struct pksm_item *item, enum pksm_outcome out);
struct folio *pksm_item_folio(struct pksm_item *item);

/* tree.c: the stable and unstable trees, mapping records */
struct pksm_stable_node *pksm_folio_node(struct folio *folio);
void pksm_set_folio_node(struct folio *folio, struct pksm_stable_node *node);
int pksm_unstable_insert(struct pksm_item *item);
void pksm_unstable_remove(struct pksm_item *item);
struct rb_node *pksm_unstable_first(u32 hash);
struct folio *pksm_node_folio(struct pksm_stable_node *node);
void pksm_stable_insert(struct pksm_stable_node *node);
struct rb_node *pksm_stable_first(u32 hash);
void pksm_release_dead_nodes(void);
void pksm_node_add_mapping(struct pksm_stable_node *node,
			   struct folio *folio, struct pksm_mapping *map);
void pksm_prune(unsigned long budget);

/* merge.c: pksmd */
struct task_struct *pksm_start_pksmd(void);

/* control.c: run=2 */
int pksm_unmerge_all(void);

#endif /* _MM_PKSM_INTERNAL_H */
