// SPDX-License-Identifier: GPL-2.0-only
/*
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
 */

#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/coredump.h>
#include <linux/rmap.h>
#include <linux/ksm.h>
#include <linux/pksm.h>
#include <linux/kthread.h>
#include <linux/freezer.h>
#include <linux/wait.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/rbtree.h>
#include <linux/llist.h>
#include <linux/highmem.h>
#include <linux/mmu_notifier.h>
#include <linux/swap.h>
#include <linux/random.h>
#include <linux/sysfs.h>
#include <linux/kobject.h>
#include <linux/pagemap.h>
#include <linux/memcontrol.h>
#include <linux/memblock.h>
#include <linux/jump_label.h>
#include <linux/ktime.h>
#include <linux/sort.h>
#include <linux/moduleparam.h>
#include <linux/pagewalk.h>
#include <linux/sched/signal.h>
#include <asm/tlbflush.h>
#include "../internal.h"

#define CREATE_TRACE_POINTS
#include <trace/events/pksm.h>

/* ---- tunables ---------------------------------------------------------- */

#define PKSM_RUN_STOP		0
#define PKSM_RUN_MERGE		1
#define PKSM_RUN_UNMERGE	2

/* Knobs: written under pksm_mutex, read by pksmd under it or with READ_ONCE. */
static unsigned int pksm_run = PKSM_RUN_MERGE;
static unsigned int pksm_pages_to_scan = 4000;
static unsigned int pksm_sleep_ms = 10;
static unsigned int pksm_probation_scans = 3;
static unsigned int pksm_period_seconds = 10;
static bool pksm_use_zero_pages = true;
static unsigned int pksm_max_page_sharing = 256;
/* Upstream knobs PKSM accepts but has no use for (see the README). */
static unsigned int pksm_prune_ms = 2000;
static bool pksm_smart_scan = true;
static bool pksm_advisor_scan_time;
static unsigned int pksm_advisor_max_cpu = 70;
static unsigned long pksm_advisor_min_pages = 500;
static unsigned long pksm_advisor_max_pages = 30000;
static unsigned int pksm_advisor_target_scan_time = 200;

#define PKSM_MAX_PAGES_TO_SCAN		BIT(24)
#define PKSM_MAX_PROBATION		(PKSM_UNSEEN - 1)
#define PKSM_MAX_PERIOD_SECONDS		3600
#define PKSM_PRUNE_NODES		64	/* stable nodes pruned per batch */

/*
 * pksm.enabled=0 on the command line: no hooks and no daemon at all, the
 * baseline for PKSM's overhead.  Read once by pksm_init().
 */
static bool pksm_boot_enabled = true;
module_param_named(enabled, pksm_boot_enabled, bool, 0444);

DEFINE_STATIC_KEY_FALSE(pksm_hooks_key);

/* ---- data -------------------------------------------------------------- */

enum pksm_where {
	PKSM_NOWHERE,		/* being created or released */
	PKSM_NEW,		/* on the new list */
	PKSM_RESCAN,		/* on the rescan list */
	PKSM_DEL,		/* on the del list: dead, waiting for release */
	PKSM_UNSTABLE,		/* in the unstable tree and FIFO */
};

/*
 * One per tracked page: 32 bytes on 64-bit.  ->link is on the list named
 * by ->where (the unstable FIFO for PKSM_UNSTABLE), or on none while
 * ->inflight (pksmd is visiting the item off-list).
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

/* An unstable tree node: 32 bytes, only for pages in the unstable tree. */
struct pksm_unode {
	struct rb_node rb;	/* keyed by (item->hash, item) */
	struct pksm_item *item;
};

/*
 * One per KSM page.  The KSM page's ->mapping points here (with
 * PAGE_MAPPING_KSM); the node does not pin the page (keyhole reference).
 */
struct pksm_stable_node {
	struct rb_node rb;		/* stable tree, keyed by (hash, node) */
	struct hlist_head mappings;	/* struct pksm_mapping, under the KSM folio lock */
	unsigned long kpfn;		/* the KSM page */
	struct llist_node dead_link;	/* queued by the free hook */
	u32 hash;
	u32 nr_mappings;
};

/*
 * Where a merged source page was mapped: every PTE that mapped it is found
 * from its anon_vma and linear page index, as rmap_walk_anon() finds them.
 * Holds a reference on the anon_vma.
 */
struct pksm_mapping {
	struct hlist_node link;
	struct anon_vma *anon_vma;
	pgoff_t pgoff;
};

static DEFINE_SPINLOCK(pksm_lock);
static DEFINE_MUTEX(pksm_mutex);

/* pfn -> item (L).  One pointer per page of memory, like page_ext. */
static struct pksm_item **pksm_table;
static unsigned long pksm_table_len;

static LIST_HEAD(pksm_new_list);	/* (L) */
static LIST_HEAD(pksm_rescan_list);	/* (L) */
static LIST_HEAD(pksm_del_list);	/* (L) */
static LIST_HEAD(pksm_unstable_fifo);	/* (M) re-verify order */
static struct rb_root pksm_unstable_tree = RB_ROOT;	/* (M) */
static struct rb_root pksm_stable_tree = RB_ROOT;	/* (M) */
static LLIST_HEAD(pksm_dead_nodes);	/* lockless: free hook -> pksmd */

static struct kmem_cache *pksm_item_cache;
static struct kmem_cache *pksm_unode_cache;
static struct kmem_cache *pksm_node_cache;
static struct kmem_cache *pksm_mapping_cache;

/* (L) */
static unsigned long nr_new, nr_rescan, nr_del, nr_tracked, nr_untracked;
static unsigned long nr_items;		/* allocated, dead ones included */
/* (M) */
static unsigned long nr_unstable, nr_stable_nodes, nr_mappings, nr_dups;
static unsigned long nr_zero_merges, nr_stable_merges, nr_unstable_merges;
static unsigned long nr_false_positives, nr_merge_failures, nr_deferred;
static unsigned long nr_reverified, nr_reverify_changed;
static unsigned long pksm_pages_scanned, pksm_full_scans;
static long pksm_round_left;
static u64 pksm_busy_ns;
static atomic_long_t nr_cow_breaks = ATOMIC_LONG_INIT(0);
/* Pages not tracked, or dropped, because their VMA or process opted out. */
static atomic_long_t nr_excluded = ATOMIC_LONG_INIT(0);

/* Pages mapped to the zero page by PKSM (shared with <linux/ksm.h>). */
atomic_long_t ksm_zero_pages = ATOMIC_LONG_INIT(0);

static struct task_struct *pksmd_task;
static DECLARE_WAIT_QUEUE_HEAD(pksmd_wait);

/* ---- pure logic (KUnit-tested, see pksm_test.c) ------------------------ */

#define PKSM_SAMPLE_WORDS	32
#define PKSM_UNSEEN		U8_MAX	/* item->visits before the first visit */
#define PKSM_PAGE_WORDS		(PAGE_SIZE / sizeof(u64))

/* Word indices hashed by the prefilter: chosen at boot, sorted, distinct. */
static u16 pksm_sample[PKSM_SAMPLE_WORDS];
static u64 pksm_hash_seed;
static u32 pksm_zero_hash;

/* Hash the sampled words of a page.  Any 64-bit mix would do. */
static u32 pksm_hash_words(const u64 *words, const u16 *sample, unsigned int n,
			   u64 seed)
{
	u64 h = seed;
	unsigned int i;

	for (i = 0; i < n; i++) {
		h ^= words[sample[i]];
		h *= 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	return (u32)(h >> 32) ^ (u32)h;
}

/* Word-wise equality of two pages (UML has no optimised memcmp). */
static bool pksm_words_equal(const u64 *a, const u64 *b)
{
	unsigned int i;

	for (i = 0; i < PKSM_PAGE_WORDS; i += 4) {
		if ((a[i] ^ b[i]) | (a[i + 1] ^ b[i + 1]) |
		    (a[i + 2] ^ b[i + 2]) | (a[i + 3] ^ b[i + 3]))
			return false;
	}
	return true;
}

static bool pksm_words_zero(const u64 *a)
{
	unsigned int i;

	for (i = 0; i < PKSM_PAGE_WORDS; i += 4) {
		if (a[i] | a[i + 1] | a[i + 2] | a[i + 3])
			return false;
	}
	return true;
}

/*
 * Probation bookkeeping for one visit of a page on the new list.  Returns
 * true when the page is a merge candidate.  *visits is PKSM_UNSEEN before
 * the first visit, then counts consecutive visits that found the hash of
 * the previous one; a change restarts the count.
 */
static bool pksm_probation_step(u8 *visits, u32 *old_hash, u32 hash,
				unsigned int probation)
{
	if (*visits == PKSM_UNSEEN || hash != *old_hash)
		*visits = 0;
	else if (*visits < PKSM_UNSEEN - 1)
		(*visits)++;
	*old_hash = hash;
	return *visits >= probation;
}

/*
 * Unstable pages to re-verify per wake-up, so that each is re-hashed about
 * once per period: all of them while they are fewer than one batch, else
 * unshared * sleep / period, at least one, at most one batch.
 */
static unsigned long pksm_reverify_budget(unsigned long unshared,
					  unsigned int pages_to_scan,
					  unsigned int sleep_ms,
					  unsigned int period_s)
{
	unsigned long need;

	if (unshared < pages_to_scan)
		return unshared;
	need = DIV_ROUND_UP_ULL((u64)unshared * max(sleep_ms, 1U),
				(u64)period_s * 1000);
	return clamp_t(unsigned long, need, 1, pages_to_scan);
}

/*
 * Split a batch of @todo visits: half from the new list, half from the
 * rescan list; when one is short the other fills in.
 */
static void pksm_split_batch(unsigned int todo, unsigned long avail_new,
			     unsigned long avail_rescan,
			     unsigned long *take_new, unsigned long *take_rescan)
{
	unsigned long n = min_t(unsigned long, todo - todo / 2, avail_new);
	unsigned long r = min_t(unsigned long, todo / 2, avail_rescan);
	unsigned long spare = todo - n - r;

	r += min(spare, avail_rescan - r);
	spare = todo - n - r;
	n += min(spare, avail_new - n);
	*take_new = n;
	*take_rescan = r;
}

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

static struct pksm_stable_node *pksm_folio_node(struct folio *folio)
{
	return folio_test_ksm(folio) ? folio_raw_mapping(folio) : NULL;
}

static void pksm_set_folio_node(struct folio *folio,
				struct pksm_stable_node *node)
{
	WRITE_ONCE(folio->mapping,
		   (void *)((unsigned long)node | PAGE_MAPPING_KSM));
}

/* ---- hooks: birth, death, COW ----------------------------------------- */

static struct pksm_item **pksm_slot(unsigned long pfn)
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
	nr_tracked--;
	if (item->inflight)
		return;		/* pksmd releases it when done */
	switch (item->where) {
	case PKSM_NEW:
		nr_new--;
		break;
	case PKSM_RESCAN:
		nr_rescan--;
		break;
	default:
		return;		/* unstable: pksmd releases it on sight */
	}
	list_move_tail(&item->link, &pksm_del_list);
	item->where = PKSM_DEL;
	nr_del++;
}

/*
 * Pages mapped in @vma are left alone: MADV_UNMERGEABLE excluded the VMA,
 * or its process opted out with prctl(PR_SET_MEMORY_MERGE, 0).  Both are
 * set with the mmap lock held for writing, so they are stable while it is
 * held in any mode; the birth hook and the opt-in walk read them racily,
 * and merging checks them again under the mmap lock (pksm_replace_one()).
 */
static bool pksm_vma_excluded(struct vm_area_struct *vma)
{
	return (vma->vm_flags & VM_UNMERGEABLE) ||
	       test_bit(MMF_PKSM_OPTOUT, &vma->vm_mm->flags);
}

/*
 * Start tracking @folio with a new item on the new list.  Atomic context
 * (the page table lock is held).  @known: the page may be tracked already
 * (the opt-in walk), and is then left as it is; a newborn page never is.
 */
static void pksm_track(struct folio *folio, bool known)
{
	unsigned long pfn = folio_pfn(folio);
	struct pksm_item **slot = pksm_slot(pfn);
	struct pksm_item *item = NULL;
	unsigned long flags;

	if (known && (!slot || READ_ONCE(*slot)))
		return;
	if (slot && !folio_test_large(folio))
		item = kmem_cache_alloc(pksm_item_cache,
					GFP_NOWAIT | __GFP_NOWARN);
	spin_lock_irqsave(&pksm_lock, flags);
	if (!item) {
		nr_untracked++;
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
	item->inflight = 0;
	item->dead = 0;
	item->where = PKSM_NEW;
	list_add_tail(&item->link, &pksm_new_list);
	*slot = item;
	nr_new++;
	nr_tracked++;
	nr_items++;
out:
	spin_unlock_irqrestore(&pksm_lock, flags);
	if (item)
		trace_pksm_page_registered(pfn);
}

void __pksm_folio_born(struct folio *folio, struct vm_area_struct *vma)
{
	if (unlikely(pksm_vma_excluded(vma))) {
		atomic_long_inc(&nr_excluded);
		return;
	}
	pksm_track(folio, false);
}

/* Stop tracking @folio (a merge would be refused): as if it were freed. */
static void pksm_forget(struct folio *folio)
{
	struct pksm_item **slot = pksm_slot(folio_pfn(folio));
	unsigned long flags;

	if (!slot || !READ_ONCE(*slot))
		return;
	spin_lock_irqsave(&pksm_lock, flags);
	if (*slot) {
		pksm_item_kill_locked(*slot);
		atomic_long_inc(&nr_excluded);
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

		if (node)
			llist_add(&node->dead_link, &pksm_dead_nodes);
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

void __pksm_cow_break(struct folio *folio)
{
	atomic_long_inc(&nr_cow_breaks);
	trace_pksm_cow_break(folio_pfn(folio));
}

/* ---- items in pksmd's hands ------------------------------------------- */

static void pksm_item_free(struct pksm_item *item)
{
	unsigned long flags;

	trace_pksm_item_released(item->pfn);
	spin_lock_irqsave(&pksm_lock, flags);
	nr_items--;
	spin_unlock_irqrestore(&pksm_lock, flags);
	kmem_cache_free(pksm_item_cache, item);
}

/* Take the first item of @list off it for a visit (NULL if empty). */
static struct pksm_item *pksm_pop(struct list_head *list, unsigned long *count)
{
	struct pksm_item *item = NULL;
	unsigned long flags;

	spin_lock_irqsave(&pksm_lock, flags);
	if (!list_empty(list)) {
		item = list_first_entry(list, struct pksm_item, link);
		list_del_init(&item->link);
		item->inflight = 1;
		(*count)--;
	}
	spin_unlock_irqrestore(&pksm_lock, flags);
	return item;
}

enum pksm_outcome {
	PKSM_OUT_NEW,		/* back to the tail of the new list */
	PKSM_OUT_RESCAN,	/* to the rescan list */
	PKSM_OUT_UNSTABLE,	/* into the unstable tree */
	PKSM_OUT_RELEASE,	/* merged or gone: release the item */
};

/*
 * End a visit: requeue the item, or release it.  Returns true if the item
 * is alive and now PKSM_UNSTABLE (the caller inserts it in the tree).
 */
static bool pksm_item_finish(struct pksm_item *item, enum pksm_outcome out)
{
	unsigned long flags;
	bool release = false;

	spin_lock_irqsave(&pksm_lock, flags);
	item->inflight = 0;
	if (!item->dead && out == PKSM_OUT_RELEASE) {
		struct pksm_item **slot = pksm_slot(item->pfn);

		if (slot && *slot == item)
			*slot = NULL;
		item->dead = 1;
		nr_tracked--;
	}
	if (item->dead) {
		item->where = PKSM_NOWHERE;
		release = true;
	} else if (out == PKSM_OUT_NEW) {
		item->where = PKSM_NEW;
		list_add_tail(&item->link, &pksm_new_list);
		nr_new++;
	} else if (out == PKSM_OUT_RESCAN) {
		item->where = PKSM_RESCAN;
		list_add_tail(&item->link, &pksm_rescan_list);
		nr_rescan++;
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
static struct folio *pksm_item_folio(struct pksm_item *item)
{
	struct folio *folio;

	if (READ_ONCE(item->dead))
		return NULL;
	folio = page_folio(pfn_to_page(item->pfn));
	if (!folio_try_get(folio))
		return NULL;
	if (READ_ONCE(item->dead) || folio_test_large(folio) ||
	    !folio_test_anon(folio) || folio_test_ksm(folio)) {
		folio_put(folio);
		return NULL;
	}
	return folio;
}

/* ---- the unstable tree ------------------------------------------------- */

static int pksm_ucmp(u32 hash, struct pksm_item *item, struct pksm_unode *u)
{
	if (hash != u->item->hash)
		return hash < u->item->hash ? -1 : 1;
	if (item == u->item)
		return 0;
	return item < u->item ? -1 : 1;
}

static int pksm_unstable_insert(struct pksm_item *item)
{
	struct rb_node **p = &pksm_unstable_tree.rb_node, *parent = NULL;
	struct pksm_unode *u = kmem_cache_alloc(pksm_unode_cache, GFP_KERNEL);

	if (!u)
		return -ENOMEM;
	u->item = item;
	while (*p) {
		int c = pksm_ucmp(item->hash, item,
				  rb_entry(*p, struct pksm_unode, rb));

		parent = *p;
		p = c < 0 ? &(*p)->rb_left : &(*p)->rb_right;
	}
	rb_link_node(&u->rb, parent, p);
	rb_insert_color(&u->rb, &pksm_unstable_tree);
	list_add_tail(&item->link, &pksm_unstable_fifo);
	nr_unstable++;
	return 0;
}

/* Remove @item (PKSM_UNSTABLE) from the tree and the FIFO. */
static void pksm_unstable_remove(struct pksm_item *item)
{
	struct rb_node *n = pksm_unstable_tree.rb_node;

	while (n) {
		struct pksm_unode *u = rb_entry(n, struct pksm_unode, rb);
		int c = pksm_ucmp(item->hash, item, u);

		if (!c) {
			rb_erase(&u->rb, &pksm_unstable_tree);
			kmem_cache_free(pksm_unode_cache, u);
			break;
		}
		n = c < 0 ? n->rb_left : n->rb_right;
	}
	WARN_ON_ONCE(!n);
	list_del_init(&item->link);
	nr_unstable--;
}

/* The leftmost unstable node with @hash, or NULL. */
static struct rb_node *pksm_unstable_first(u32 hash)
{
	struct rb_node *n = pksm_unstable_tree.rb_node, *found = NULL;

	while (n) {
		struct pksm_unode *u = rb_entry(n, struct pksm_unode, rb);

		if (hash <= u->item->hash) {
			if (hash == u->item->hash)
				found = n;
			n = n->rb_left;
		} else {
			n = n->rb_right;
		}
	}
	return found;
}

/* ---- the stable tree --------------------------------------------------- */

/*
 * Keyhole reference: the KSM page of @node, referenced, or NULL if the
 * node is stale (its page freed, or reused for something else).
 */
static struct folio *pksm_node_folio(struct pksm_stable_node *node)
{
	void *expect = (void *)((unsigned long)node | PAGE_MAPPING_KSM);
	struct folio *folio = page_folio(pfn_to_page(node->kpfn));

	if (READ_ONCE(folio->mapping) != expect)
		return NULL;
	if (!folio_try_get(folio))
		return NULL;
	/* Checked again now that the page cannot be freed under us. */
	if (READ_ONCE(folio->mapping) != expect) {
		folio_put(folio);
		return NULL;
	}
	return folio;
}

static void pksm_stable_insert(struct pksm_stable_node *node)
{
	struct rb_node **p = &pksm_stable_tree.rb_node, *parent = NULL;

	while (*p) {
		struct pksm_stable_node *s =
			rb_entry(*p, struct pksm_stable_node, rb);
		bool left = node->hash != s->hash ? node->hash < s->hash :
						    node < s;

		parent = *p;
		p = left ? &(*p)->rb_left : &(*p)->rb_right;
	}
	rb_link_node(&node->rb, parent, p);
	rb_insert_color(&node->rb, &pksm_stable_tree);
	nr_stable_nodes++;
}

static struct rb_node *pksm_stable_first(u32 hash)
{
	struct rb_node *n = pksm_stable_tree.rb_node, *found = NULL;

	while (n) {
		struct pksm_stable_node *s =
			rb_entry(n, struct pksm_stable_node, rb);

		if (hash <= s->hash) {
			if (hash == s->hash)
				found = n;
			n = n->rb_left;
		} else {
			n = n->rb_right;
		}
	}
	return found;
}

static void pksm_mapping_free(struct pksm_mapping *map)
{
	put_anon_vma(map->anon_vma);
	kmem_cache_free(pksm_mapping_cache, map);
	nr_mappings--;
}

/* Release the stable nodes whose KSM pages were freed. */
static void pksm_release_dead_nodes(void)
{
	struct llist_node *list = llist_del_all(&pksm_dead_nodes);
	struct pksm_stable_node *node, *next;

	llist_for_each_entry_safe(node, next, list, dead_link) {
		struct pksm_mapping *map;
		struct hlist_node *tmp;

		rb_erase(&node->rb, &pksm_stable_tree);
		nr_stable_nodes--;
		/* The KSM page is gone: nobody can walk ->mappings now. */
		hlist_for_each_entry_safe(map, tmp, &node->mappings, link)
			pksm_mapping_free(map);
		kmem_cache_free(pksm_node_cache, node);
	}
}

/*
 * Record that @folio's mappings (its anon_vma and index) now map the KSM
 * page of @node.  @map is preallocated; it is consumed or freed.  The KSM
 * folio is locked.
 */
static void pksm_node_add_mapping(struct pksm_stable_node *node,
				  struct folio *folio, struct pksm_mapping *map)
{
	struct anon_vma *anon_vma = folio_anon_vma(folio);
	struct pksm_mapping *m;

	hlist_for_each_entry(m, &node->mappings, link) {
		if (m->anon_vma == anon_vma && m->pgoff == folio->index) {
			kmem_cache_free(pksm_mapping_cache, map);
			return;
		}
	}
	get_anon_vma(anon_vma);
	map->anon_vma = anon_vma;
	map->pgoff = folio->index;
	hlist_add_head(&map->link, &node->mappings);
	node->nr_mappings++;
	nr_mappings++;
}

/*
 * Is @kfolio (locked) still mapped by a PTE that @map leads to?  A record
 * stops leading anywhere when COW, munmap or exit took its PTEs away.
 */
static bool pksm_mapping_live(struct folio *kfolio, struct pksm_mapping *map)
{
	struct anon_vma_chain *avc;
	bool live = false;

	anon_vma_lock_read(map->anon_vma);
	anon_vma_interval_tree_foreach(avc, &map->anon_vma->rb_root,
				       map->pgoff, map->pgoff) {
		struct vm_area_struct *vma = avc->vma;
		unsigned long addr = vma_address(vma, map->pgoff, 1);
		DEFINE_FOLIO_VMA_WALK(pvmw, kfolio, vma, addr, 0);

		if (addr == -EFAULT)
			continue;
		if (page_vma_mapped_walk(&pvmw)) {
			page_vma_mapped_walk_done(&pvmw);
			live = true;
			break;
		}
	}
	anon_vma_unlock_read(map->anon_vma);
	return live;
}

/* Drop the records of @node that no PTE needs any more. */
static void pksm_prune_node(struct pksm_stable_node *node)
{
	struct folio *kfolio = pksm_node_folio(node);
	struct pksm_mapping *map;
	struct hlist_node *tmp;

	if (!kfolio)
		return;
	/*
	 * A swapped-out PTE is no present mapping but still needs its
	 * record for swap-in: leave pages in the swap cache alone.
	 */
	if (!folio_test_swapcache(kfolio) && folio_trylock(kfolio)) {
		hlist_for_each_entry_safe(map, tmp, &node->mappings, link) {
			if (pksm_mapping_live(kfolio, map))
				continue;
			hlist_del(&map->link);
			node->nr_mappings--;
			pksm_mapping_free(map);
		}
		folio_unlock(kfolio);
	}
	folio_put(kfolio);
}

/* Stable tree cursor of the pruning sweep: the last node visited. */
static u32 pksm_prune_hash;
static unsigned long pksm_prune_key;

/* The first stable node after the cursor, or NULL. */
static struct rb_node *pksm_stable_after(u32 hash, unsigned long key)
{
	struct rb_node *n = pksm_stable_tree.rb_node, *found = NULL;

	while (n) {
		struct pksm_stable_node *s =
			rb_entry(n, struct pksm_stable_node, rb);

		if (s->hash > hash ||
		    (s->hash == hash && (unsigned long)s > key)) {
			found = n;
			n = n->rb_left;
		} else {
			n = n->rb_right;
		}
	}
	return found;
}

/*
 * Visit up to @budget stable nodes round-robin and drop stale records, so
 * each node's records are exact again soon after COW, munmap or exit.
 */
static void pksm_prune(unsigned long budget)
{
	struct rb_node *n = pksm_stable_after(pksm_prune_hash, pksm_prune_key);

	budget = min(budget, nr_stable_nodes);
	while (budget--) {
		struct pksm_stable_node *node;

		if (!n)
			n = rb_first(&pksm_stable_tree);
		node = rb_entry(n, struct pksm_stable_node, rb);
		pksm_prune_hash = node->hash;
		pksm_prune_key = (unsigned long)node;
		pksm_prune_node(node);
		n = rb_next(n);
		cond_resched();
	}
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
			nr_false_positives++;
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
			nr_false_positives++;
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
	atomic_long_inc(&nr_excluded);
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
			nr_stable_merges++;
			return PKSM_OUT_RELEASE;
		}
		if (err == -EPERM)
			return pksm_excluded();
		nr_merge_failures++;
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
		nr_merge_failures++;
		return PKSM_OUT_RESCAN;
	}
	/* The partner is a KSM page now: it leaves the unstable tree. */
	pksm_unstable_remove(partner);
	pksm_item_finish(partner, PKSM_OUT_RELEASE);
	if (full)
		nr_dups++;
	if (err) {		/* @folio keeps a mapping: try again later */
		nr_merge_failures++;
		return PKSM_OUT_RESCAN;
	}
	nr_unstable_merges++;
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
		nr_deferred++;
		goto out;
	}
	hash = pksm_hash_folio(folio);
	pksm_pages_scanned++;

	if (READ_ONCE(pksm_use_zero_pages) && hash == pksm_zero_hash &&
	    pksm_folio_is_zero(folio)) {
		int err = pksm_merge_zero(folio);

		if (!err) {
			trace_pksm_merge(folio_pfn(folio), my_zero_pfn(0),
					 PKSM_MERGE_ZERO);
			nr_zero_merges++;
			out = PKSM_OUT_RELEASE;
		} else if (err == -EPERM) {
			out = pksm_excluded();
		} else {
			nr_merge_failures++;
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
		pksm_pages_scanned++;
		nr_reverified++;
		if (hash == item->hash) {
			list_move_tail(&item->link, &pksm_unstable_fifo);
			continue;
		}
		nr_reverify_changed++;
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
	nr_del = 0;
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
	avail_new = nr_new;
	avail_rescan = nr_rescan;
	spin_unlock_irqrestore(&pksm_lock, flags);
	pksm_split_batch(todo, avail_new, avail_rescan, &take_new,
			 &take_rescan);
	pksm_round_left -= take_new + take_rescan;

	while (take_new-- && (item = pksm_pop(&pksm_new_list, &nr_new))) {
		pksm_visit(item, true);
		cond_resched();
	}
	while (take_rescan-- &&
	       (item = pksm_pop(&pksm_rescan_list, &nr_rescan))) {
		pksm_visit(item, false);
		cond_resched();
	}
	pksm_reverify(pksm_reverify_budget(nr_unstable, todo,
					   READ_ONCE(pksm_sleep_ms),
					   READ_ONCE(pksm_period_seconds)));
	pksm_prune(PKSM_PRUNE_NODES);

	/*
	 * A full scan: every item that was waiting on the new and rescan
	 * lists when the round began has been visited.  With nothing waiting
	 * every batch completes a round, so full_scans rises while idle.
	 */
	if (pksm_round_left <= 0) {
		pksm_full_scans++;
		spin_lock_irqsave(&pksm_lock, flags);
		pksm_round_left = nr_new + nr_rescan;
		avail_rescan = nr_rescan;
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
		pksm_busy_ns += ktime_get_ns() - start;
		mutex_unlock(&pksm_mutex);

		sleep_ms = READ_ONCE(pksm_sleep_ms);
		wait_event_freezable_timeout(pksmd_wait,
					     kthread_should_stop() ||
					     sleep_ms != READ_ONCE(pksm_sleep_ms),
					     max(msecs_to_jiffies(sleep_ms), 1UL));
	}
	return 0;
}

/* ---- the <linux/ksm.h> interface -------------------------------------- */

/*
 * PKSM merges every anonymous page, so the opt-in flags are bookkeeping
 * only: they are kept so /proc and prctl() report what was asked.
 */
int __ksm_enter(struct mm_struct *mm)
{
	set_bit(MMF_VM_MERGEABLE, &mm->flags);
	return 0;
}

void __ksm_exit(struct mm_struct *mm)
{
	clear_bit(MMF_VM_MERGE_ANY, &mm->flags);
	clear_bit(MMF_VM_MERGEABLE, &mm->flags);
}

static bool pksm_vma_compatible(struct vm_area_struct *vma)
{
	return !(vma->vm_flags & (VM_SHARED | VM_MAYSHARE | VM_PFNMAP |
				  VM_IO | VM_DONTEXPAND | VM_HUGETLB |
				  VM_MIXEDMAP | VM_DROPPABLE)) &&
	       !vma_is_dax(vma);
}

void ksm_add_vma(struct vm_area_struct *vma)
{
	if (test_bit(MMF_VM_MERGE_ANY, &vma->vm_mm->flags) &&
	    pksm_vma_compatible(vma))
		vm_flags_set(vma, VM_MERGEABLE);
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
 * the caller then sets VM_UNMERGEABLE or MMF_PKSM_OPTOUT.  Pages born in
 * between are refused at merge time (pksm_wrprotect_one()).
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
 * prctl(PR_SET_MEMORY_MERGE, 1), the mmap lock held for writing: the
 * process is merged again (the default), pages it kept while opted out
 * included.  MMF_VM_MERGE_ANY records what was asked, as upstream.
 */
int ksm_enable_merge_any(struct mm_struct *mm)
{
	struct vm_area_struct *vma;

	VMA_ITERATOR(vmi, mm, 0);

	set_bit(MMF_VM_MERGE_ANY, &mm->flags);
	if (!test_and_clear_bit(MMF_PKSM_OPTOUT, &mm->flags))
		return 0;
	for_each_vma(vmi, vma) {
		if (!(vma->vm_flags & VM_UNMERGEABLE))
			pksm_include_range(vma, vma->vm_start, vma->vm_end);
	}
	return 0;
}

/*
 * prctl(PR_SET_MEMORY_MERGE, 0), the mmap lock held for writing: the
 * process opts out as a whole.  Every page of it is unmerged and
 * forgotten, and nothing of it is merged until it opts in again; its
 * children and exec()ed images inherit the opt-out (MMF_INIT_MASK).  On
 * an error (a fatal signal, no memory) the process stays opted in.
 */
int ksm_disable_merge_any(struct mm_struct *mm)
{
	struct vm_area_struct *vma;
	int err = 0;

	VMA_ITERATOR(vmi, mm, 0);

	if (test_bit(MMF_PKSM_OPTOUT, &mm->flags))
		return 0;
	/* First, so that no page of @mm is tracked or merged meanwhile. */
	set_bit(MMF_PKSM_OPTOUT, &mm->flags);
	for_each_vma(vmi, vma) {
		err = pksm_exclude_range(vma, vma->vm_start, vma->vm_end);
		if (err)
			break;
	}
	if (err) {
		clear_bit(MMF_PKSM_OPTOUT, &mm->flags);
		return err;
	}
	clear_bit(MMF_VM_MERGE_ANY, &mm->flags);
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
 * MADV_UNMERGEABLE (and records VM_MERGEABLE, as upstream does), while
 * MADV_UNMERGEABLE unmerges the range and keeps PKSM away from it.
 */
int ksm_madvise(struct vm_area_struct *vma, unsigned long start,
		unsigned long end, int advice, unsigned long *vm_flags)
{
	int err;

	switch (advice) {
	case MADV_MERGEABLE:
		if (!pksm_vma_compatible(vma))
			return 0;
		__ksm_enter(vma->vm_mm);
		*vm_flags |= VM_MERGEABLE;
		if (*vm_flags & VM_UNMERGEABLE) {
			*vm_flags &= ~VM_UNMERGEABLE;
			if (!test_bit(MMF_PKSM_OPTOUT, &vma->vm_mm->flags))
				pksm_include_range(vma, start, end);
		}
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
	struct pksm_item **slot;

	if (!folio)
		return 0;
	if (folio_test_ksm(folio)) {
		count->merged++;
		return 0;
	}
	slot = pksm_slot(folio_pfn(folio));
	if (slot && READ_ONCE(*slot))
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
 * Swap-in of @folio at @addr: a KSM page still known to PKSM can be mapped
 * as it is; an anonymous page from another anon_vma (or another index) must
 * be copied, as for upstream KSM.
 *
 * The anon_vma of a swap-cache folio is not pinned by the folio.  After a
 * KSM page is swapped out, every process that mapped it holds the same swap
 * entry; the first to fault it back in gives the new folio its own root
 * anon_vma, and may exit while the folio stays in the swap cache for the
 * others.  So the folio's anon_vma is never dereferenced here: it is only
 * compared with the two anon_vmas that @vma keeps alive, its own and its
 * root.  Any other one means a copy, which is always correct.
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
		/* Unmerging (run=2): a swapped-out KSM page comes back copied. */
		if (pksm_folio_node(folio) &&
		    READ_ONCE(pksm_run) != PKSM_RUN_UNMERGE)
			return folio;
	} else if (!anon_vma) {
		return folio;
	} else if (folio->index == linear_page_index(vma, addr) &&
		   vma->anon_vma &&
		   (anon_vma == vma->anon_vma ||
		    anon_vma == vma->anon_vma->root)) {
		return folio;
	}
	if (PageHWPoison(&folio->page))
		return ERR_PTR(-EHWPOISON);
	if (!folio_test_uptodate(folio))
		return folio;	/* do_swap_page() reports the error */

	copy = vma_alloc_folio(GFP_HIGHUSER_MOVABLE, 0, vma, addr, false);
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

/*
 * Walk every PTE that maps the KSM page @folio (locked): for each recorded
 * source page, the VMAs of its anon_vma that cover its index, as
 * rmap_walk_anon() does.  A record whose PTEs are gone (COW, munmap, exit)
 * finds nothing and costs only the walk.
 */
void rmap_walk_ksm(struct folio *folio, struct rmap_walk_control *rwc)
{
	struct pksm_stable_node *node;
	struct pksm_mapping *map;

	/* The folio lock keeps node->mappings stable while we walk it. */
	if (WARN_ON_ONCE(!folio_test_ksm(folio) || !folio_test_locked(folio)))
		return;

	node = pksm_folio_node(folio);
	if (!node)
		return;
	hlist_for_each_entry(map, &node->mappings, link) {
		struct anon_vma *anon_vma = map->anon_vma;
		struct anon_vma_chain *avc;

		cond_resched();
		if (!anon_vma_trylock_read(anon_vma)) {
			if (rwc->try_lock) {
				rwc->contended = true;
				return;
			}
			anon_vma_lock_read(anon_vma);
		}
		anon_vma_interval_tree_foreach(avc, &anon_vma->rb_root,
					       map->pgoff, map->pgoff) {
			struct vm_area_struct *vma = avc->vma;
			unsigned long addr = vma_address(vma, map->pgoff, 1);

			cond_resched();
			if (addr == -EFAULT)
				continue;
			if (rwc->invalid_vma && rwc->invalid_vma(vma, rwc->arg))
				continue;
			if (!rwc->rmap_one(folio, vma, addr, rwc->arg) ||
			    (rwc->done && rwc->done(folio))) {
				anon_vma_unlock_read(anon_vma);
				return;
			}
		}
		anon_vma_unlock_read(anon_vma);
	}
}

/* ---- unmerging ---------------------------------------------------------- */

/*
 * Give the page at @addr of @vma back its own copy if it maps a KSM page or
 * the zero page by merging: an unsharing fault, as a write would, but
 * without writing.  The mmap lock is held.  Loops because the fault may
 * back out (a PTE changed under it).
 */
static int pksm_break(struct vm_area_struct *vma, unsigned long addr)
{
	vm_fault_t ret;

	for (;;) {
		struct folio_walk fw;
		struct folio *folio;
		unsigned long kpfn = 0;
		int kind = PKSM_MERGE_STABLE;

		cond_resched();
		folio = folio_walk_start(&fw, vma, addr, FW_ZEROPAGE);
		if (folio) {
			if (!folio_test_large(folio) &&
			    (folio_test_ksm(folio) || is_ksm_zero_pte(fw.pte)))
				kpfn = folio_pfn(folio);
			if (kpfn && !folio_test_ksm(folio))
				kind = PKSM_MERGE_ZERO;
			folio_walk_end(&fw, vma);
		}
		if (!kpfn)
			return 0;
		ret = handle_mm_fault(vma, addr,
				      FAULT_FLAG_UNSHARE | FAULT_FLAG_REMOTE, NULL);
		if (ret & VM_FAULT_OOM)
			return -ENOMEM;
		if (ret & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV))
			return 0;	/* the mapping went away: nothing to keep */
		if (!(ret & VM_FAULT_RETRY))
			trace_pksm_unmerge(kpfn, addr, kind);
	}
}

/* Unmerge [@start, @end) of @vma; the mmap lock is held, in any mode. */
static int pksm_unmerge_range(struct vm_area_struct *vma, unsigned long start,
			      unsigned long end)
{
	unsigned long addr;
	int err = 0;

	if (!vma->anon_vma)
		return 0;	/* never had an anonymous page */
	for (addr = start; addr < end && !err; addr += PAGE_SIZE) {
		if (fatal_signal_pending(current))
			err = -EINTR;
		else
			err = pksm_break(vma, addr);
	}
	return err;
}

/* Unmerge every page of @mm. */
static int pksm_unmerge_mm(struct mm_struct *mm)
{
	struct vm_area_struct *vma;
	int err = 0;

	VMA_ITERATOR(vmi, mm, 0);

	mmap_read_lock(mm);
	for_each_vma(vmi, vma) {
		err = pksm_unmerge_range(vma, vma->vm_start, vma->vm_end);
		if (err)
			break;
	}
	mmap_read_unlock(mm);
	return err;
}

/*
 * run=2: give every process its own copy of every merged page.  PKSM marks
 * each mm it merges in MMF_VM_MERGEABLE, so only those are walked.  Called
 * with pksm_mutex held and pksm_run == PKSM_RUN_UNMERGE, so pksmd merges
 * nothing meanwhile; faults never take pksm_mutex.
 */
static int pksm_unmerge_all(void)
{
	struct mm_struct **mms;
	struct task_struct *p;
	unsigned int n = 0, cap = 0, i;
	int err = 0;

	rcu_read_lock();
	for_each_process(p)
		cap++;
	rcu_read_unlock();
	mms = kvcalloc(cap, sizeof(*mms), GFP_KERNEL);
	if (!mms)
		return -ENOMEM;

	/* Take a reference on each marked mm once (threads share theirs). */
	rcu_read_lock();
	for_each_process(p) {
		struct mm_struct *mm;

		if (n == cap)
			break;	/* born since we counted: forks of counted mms */
		task_lock(p);
		mm = p->mm;
		if (mm && !(p->flags & PF_KTHREAD) &&
		    test_bit(MMF_VM_MERGEABLE, &mm->flags)) {
			for (i = 0; i < n && mms[i] != mm; i++)
				;
			if (i == n && mmget_not_zero(mm))
				mms[n++] = mm;
		}
		task_unlock(p);
	}
	rcu_read_unlock();

	for (i = 0; i < n; i++) {
		if (!err)
			err = pksm_unmerge_mm(mms[i]);
		mmput(mms[i]);
	}
	kvfree(mms);
	return err;
}

/* ---- sysfs ------------------------------------------------------------- */

/*
 * pages_shared and pages_sharing are counted from the KSM pages themselves
 * when read: exact at that moment through COW, munmap and exit.
 */
static void pksm_count_sharing(unsigned long *shared, unsigned long *sharing)
{
	struct rb_node *n;

	*shared = 0;
	*sharing = 0;
	mutex_lock(&pksm_mutex);
	for (n = rb_first(&pksm_stable_tree); n; n = rb_next(n)) {
		struct pksm_stable_node *node =
			rb_entry(n, struct pksm_stable_node, rb);
		struct folio *kfolio = pksm_node_folio(node);
		int mapped;

		if (!kfolio)
			continue;
		mapped = folio_mapcount(kfolio);
		folio_put(kfolio);
		if (mapped <= 0)
			continue;
		(*shared)++;
		*sharing += mapped - 1;
	}
	mutex_unlock(&pksm_mutex);
}

static unsigned long pksm_locked_read(unsigned long *counter);

static unsigned long pksm_metadata_bytes(void)
{
	unsigned long bytes;

	mutex_lock(&pksm_mutex);
	bytes = nr_unstable * sizeof(struct pksm_unode) +
		nr_stable_nodes * sizeof(struct pksm_stable_node) +
		nr_mappings * sizeof(struct pksm_mapping);
	mutex_unlock(&pksm_mutex);
	return bytes + pksm_locked_read(&nr_items) * sizeof(struct pksm_item) +
	       pksm_table_len * sizeof(*pksm_table);
}

static unsigned long pksm_locked_read(unsigned long *counter)
{
	unsigned long flags, v;

	spin_lock_irqsave(&pksm_lock, flags);
	v = *counter;
	spin_unlock_irqrestore(&pksm_lock, flags);
	return v;
}

static unsigned long pksm_mutex_read(unsigned long *counter)
{
	unsigned long v;

	mutex_lock(&pksm_mutex);
	v = *counter;
	mutex_unlock(&pksm_mutex);
	return v;
}

#define PKSM_ATTR_RO(_name) \
	static struct kobj_attribute _name##_attr = __ATTR_RO(_name)
#define PKSM_ATTR(_name) \
	static struct kobj_attribute _name##_attr = __ATTR_RW(_name)

/* A read-only file showing a counter protected by pksm_lock or pksm_mutex. */
#define PKSM_COUNTER(_name, _var, _reader)				\
static ssize_t _name##_show(struct kobject *kobj,			\
			    struct kobj_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%lu\n", _reader(&(_var)));		\
}									\
PKSM_ATTR_RO(_name)

/*
 * Parse an unsigned value in [min, max]; anything else is -EINVAL and
 * changes nothing.
 */
static int pksm_parse_uint(const char *buf, unsigned int min, unsigned int max,
			   unsigned int *out)
{
	unsigned int v;

	if (kstrtouint(buf, 10, &v) || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/*
 * A strict boolean: "0"/"1", "n"/"y", "off"/"on" (any case), with an
 * optional trailing newline.  kstrtobool() would take "1x" or "0x10".
 */
static int pksm_parse_bool(const char *buf, bool *out)
{
	static const char * const yes[] = { "1", "y", "Y", "on", "ON", "On" };
	static const char * const no[] = { "0", "n", "N", "off", "OFF", "Off" };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(yes); i++) {
		if (sysfs_streq(buf, yes[i])) {
			*out = true;
			return 0;
		}
		if (sysfs_streq(buf, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* A read-write unsigned knob, set under pksm_mutex, pksmd woken. */
#define PKSM_UINT_KNOB(_name, _var, _min, _max)			\
static unsigned int *const _name##_knob = &(_var);			\
static ssize_t _name##_show(struct kobject *kobj,			\
			    struct kobj_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%u\n", READ_ONCE(*_name##_knob));	\
}									\
static ssize_t _name##_store(struct kobject *kobj,			\
			     struct kobj_attribute *attr,		\
			     const char *buf, size_t count)		\
{									\
	unsigned int v;							\
									\
	if (pksm_parse_uint(buf, _min, _max, &v))			\
		return -EINVAL;						\
	mutex_lock(&pksm_mutex);					\
	WRITE_ONCE(*_name##_knob, v);					\
	mutex_unlock(&pksm_mutex);					\
	wake_up_interruptible(&pksmd_wait);				\
	return count;							\
}									\
PKSM_ATTR(_name)

/* A read-write boolean knob ("0"/"1", "y"/"n", ...). */
#define PKSM_BOOL_KNOB(_name, _var)					\
static bool *const _name##_knob = &(_var);				\
static ssize_t _name##_show(struct kobject *kobj,			\
			    struct kobj_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%u\n", READ_ONCE(*_name##_knob));	\
}									\
static ssize_t _name##_store(struct kobject *kobj,			\
			     struct kobj_attribute *attr,		\
			     const char *buf, size_t count)		\
{									\
	bool v;								\
									\
	if (pksm_parse_bool(buf, &v))					\
		return -EINVAL;						\
	WRITE_ONCE(*_name##_knob, v);					\
	return count;							\
}									\
PKSM_ATTR(_name)

/* /sys/kernel/mm/ksm/: upstream's files */

static ssize_t run_show(struct kobject *kobj, struct kobj_attribute *attr,
			char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(pksm_run));
}

static ssize_t run_store(struct kobject *kobj, struct kobj_attribute *attr,
			 const char *buf, size_t count)
{
	ssize_t ret = count;
	unsigned int v;
	int err;

	if (pksm_parse_uint(buf, PKSM_RUN_STOP, PKSM_RUN_UNMERGE, &v))
		return -EINVAL;
	mutex_lock(&pksm_mutex);
	WRITE_ONCE(pksm_run, v);
	if (v == PKSM_RUN_UNMERGE) {
		err = pksm_unmerge_all();
		if (err) {
			/* As upstream: stop, and say why the unmerge stopped. */
			WRITE_ONCE(pksm_run, PKSM_RUN_STOP);
			ret = err;
		}
	}
	mutex_unlock(&pksm_mutex);
	wake_up_interruptible(&pksmd_wait);
	return ret;
}
PKSM_ATTR(run);

PKSM_UINT_KNOB(pages_to_scan, pksm_pages_to_scan, 0, PKSM_MAX_PAGES_TO_SCAN);
PKSM_UINT_KNOB(sleep_millisecs, pksm_sleep_ms, 0, 600000);
PKSM_UINT_KNOB(max_page_sharing, pksm_max_page_sharing, 2, INT_MAX);
PKSM_UINT_KNOB(stable_node_chains_prune_millisecs, pksm_prune_ms, 0,
	       UINT_MAX);
PKSM_BOOL_KNOB(use_zero_pages, pksm_use_zero_pages);
PKSM_BOOL_KNOB(smart_scan, pksm_smart_scan);
PKSM_UINT_KNOB(advisor_max_cpu, pksm_advisor_max_cpu, 1, 100);
PKSM_UINT_KNOB(advisor_target_scan_time, pksm_advisor_target_scan_time, 1,
	       UINT_MAX);

/* A read-write unsigned long knob, at least 1 (upstream's advisor limits). */
#define PKSM_ULONG_KNOB(_name, _var)					\
static unsigned long *const _name##_knob = &(_var);			\
static ssize_t _name##_show(struct kobject *kobj,			\
			    struct kobj_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%lu\n", READ_ONCE(*_name##_knob));	\
}									\
static ssize_t _name##_store(struct kobject *kobj,			\
			     struct kobj_attribute *attr,		\
			     const char *buf, size_t count)		\
{									\
	unsigned long v;						\
									\
	if (kstrtoul(buf, 10, &v) || !v)				\
		return -EINVAL;						\
	WRITE_ONCE(*_name##_knob, v);					\
	return count;							\
}									\
PKSM_ATTR(_name)

PKSM_ULONG_KNOB(advisor_min_pages_to_scan, pksm_advisor_min_pages);
PKSM_ULONG_KNOB(advisor_max_pages_to_scan, pksm_advisor_max_pages);

static ssize_t advisor_mode_show(struct kobject *kobj,
				 struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, READ_ONCE(pksm_advisor_scan_time) ?
			  "none [scan-time]\n" : "[none] scan-time\n");
}

static ssize_t advisor_mode_store(struct kobject *kobj,
				  struct kobj_attribute *attr,
				  const char *buf, size_t count)
{
	if (sysfs_streq(buf, "none"))
		WRITE_ONCE(pksm_advisor_scan_time, false);
	else if (sysfs_streq(buf, "scan-time"))
		WRITE_ONCE(pksm_advisor_scan_time, true);
	else
		return -EINVAL;
	return count;
}
PKSM_ATTR(advisor_mode);

static ssize_t pages_shared_show(struct kobject *kobj,
				 struct kobj_attribute *attr, char *buf)
{
	unsigned long shared, sharing;

	pksm_count_sharing(&shared, &sharing);
	return sysfs_emit(buf, "%lu\n", shared);
}
PKSM_ATTR_RO(pages_shared);

static ssize_t pages_sharing_show(struct kobject *kobj,
				  struct kobj_attribute *attr, char *buf)
{
	unsigned long shared, sharing;

	pksm_count_sharing(&shared, &sharing);
	return sysfs_emit(buf, "%lu\n", sharing);
}
PKSM_ATTR_RO(pages_sharing);

static ssize_t pages_volatile_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	unsigned long flags, v;

	spin_lock_irqsave(&pksm_lock, flags);
	v = nr_new + nr_rescan;
	spin_unlock_irqrestore(&pksm_lock, flags);
	return sysfs_emit(buf, "%lu\n", v);
}
PKSM_ATTR_RO(pages_volatile);

static ssize_t general_profit_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	unsigned long shared, sharing;
	long profit;

	pksm_count_sharing(&shared, &sharing);
	profit = (sharing + atomic_long_read(&ksm_zero_pages)) * PAGE_SIZE -
		 pksm_metadata_bytes();
	return sysfs_emit(buf, "%ld\n", profit);
}
PKSM_ATTR_RO(general_profit);

static ssize_t ksm_zero_pages_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&ksm_zero_pages));
}
PKSM_ATTR_RO(ksm_zero_pages);

static unsigned long pksm_no_chains;

PKSM_COUNTER(pages_unshared, nr_unstable, pksm_mutex_read);
PKSM_COUNTER(pages_scanned, pksm_pages_scanned, pksm_mutex_read);
PKSM_COUNTER(full_scans, pksm_full_scans, pksm_mutex_read);
PKSM_COUNTER(pages_skipped, nr_deferred, pksm_mutex_read);
PKSM_COUNTER(stable_node_chains, pksm_no_chains, pksm_mutex_read);
PKSM_COUNTER(stable_node_dups, nr_dups, pksm_mutex_read);

static struct attribute *ksm_attrs[] = {
	&run_attr.attr,
	&pages_to_scan_attr.attr,
	&sleep_millisecs_attr.attr,
	&pages_shared_attr.attr,
	&pages_sharing_attr.attr,
	&pages_unshared_attr.attr,
	&pages_volatile_attr.attr,
	&pages_scanned_attr.attr,
	&pages_skipped_attr.attr,
	&full_scans_attr.attr,
	&use_zero_pages_attr.attr,
	&ksm_zero_pages_attr.attr,
	&general_profit_attr.attr,
	&max_page_sharing_attr.attr,
	&stable_node_chains_attr.attr,
	&stable_node_dups_attr.attr,
	&stable_node_chains_prune_millisecs_attr.attr,
	&smart_scan_attr.attr,
	&advisor_mode_attr.attr,
	&advisor_max_cpu_attr.attr,
	&advisor_min_pages_to_scan_attr.attr,
	&advisor_max_pages_to_scan_attr.attr,
	&advisor_target_scan_time_attr.attr,
	NULL,
};

static const struct attribute_group ksm_attr_group = {
	.attrs = ksm_attrs,
	.name = "ksm",
};

/* /sys/kernel/mm/pksm/: what only PKSM has */

PKSM_UINT_KNOB(probation_scans, pksm_probation_scans, 0, PKSM_MAX_PROBATION);
PKSM_UINT_KNOB(period_seconds, pksm_period_seconds, 1,
	       PKSM_MAX_PERIOD_SECONDS);
PKSM_COUNTER(new_list, nr_new, pksm_locked_read);
PKSM_COUNTER(rescan_list, nr_rescan, pksm_locked_read);
PKSM_COUNTER(del_list, nr_del, pksm_locked_read);
PKSM_COUNTER(tracked_pages, nr_tracked, pksm_locked_read);
PKSM_COUNTER(untracked_pages, nr_untracked, pksm_locked_read);
PKSM_COUNTER(items, nr_items, pksm_locked_read);
PKSM_COUNTER(unstable_pages, nr_unstable, pksm_mutex_read);
PKSM_COUNTER(stable_nodes, nr_stable_nodes, pksm_mutex_read);
PKSM_COUNTER(mappings, nr_mappings, pksm_mutex_read);
PKSM_COUNTER(zero_merges, nr_zero_merges, pksm_mutex_read);
PKSM_COUNTER(stable_merges, nr_stable_merges, pksm_mutex_read);
PKSM_COUNTER(unstable_merges, nr_unstable_merges, pksm_mutex_read);
PKSM_COUNTER(hash_false_positives, nr_false_positives, pksm_mutex_read);
PKSM_COUNTER(merge_failures, nr_merge_failures, pksm_mutex_read);
PKSM_COUNTER(reverified, nr_reverified, pksm_mutex_read);
PKSM_COUNTER(reverify_changed, nr_reverify_changed, pksm_mutex_read);

static ssize_t cow_breaks_show(struct kobject *kobj,
			       struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&nr_cow_breaks));
}
PKSM_ATTR_RO(cow_breaks);

static ssize_t excluded_pages_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&nr_excluded));
}
PKSM_ATTR_RO(excluded_pages);

static ssize_t metadata_bytes_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%lu\n", pksm_metadata_bytes());
}
PKSM_ATTR_RO(metadata_bytes);

static ssize_t busy_ns_show(struct kobject *kobj, struct kobj_attribute *attr,
			    char *buf)
{
	u64 v;

	mutex_lock(&pksm_mutex);
	v = pksm_busy_ns;
	mutex_unlock(&pksm_mutex);
	return sysfs_emit(buf, "%llu\n", v);
}
PKSM_ATTR_RO(busy_ns);

static ssize_t enabled_show(struct kobject *kobj, struct kobj_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%d\n", static_key_enabled(&pksm_hooks_key));
}
PKSM_ATTR_RO(enabled);

static struct attribute *pksm_attrs[] = {
	&enabled_attr.attr,
	&probation_scans_attr.attr,
	&period_seconds_attr.attr,
	&new_list_attr.attr,
	&rescan_list_attr.attr,
	&del_list_attr.attr,
	&tracked_pages_attr.attr,
	&untracked_pages_attr.attr,
	&items_attr.attr,
	&unstable_pages_attr.attr,
	&stable_nodes_attr.attr,
	&mappings_attr.attr,
	&zero_merges_attr.attr,
	&stable_merges_attr.attr,
	&unstable_merges_attr.attr,
	&hash_false_positives_attr.attr,
	&merge_failures_attr.attr,
	&reverified_attr.attr,
	&reverify_changed_attr.attr,
	&cow_breaks_attr.attr,
	&excluded_pages_attr.attr,
	&metadata_bytes_attr.attr,
	&busy_ns_attr.attr,
	NULL,
};

static const struct attribute_group pksm_attr_group = {
	.attrs = pksm_attrs,
	.name = "pksm",
};

/* ---- start-up ---------------------------------------------------------- */

static int pksm_cmp_u16(const void *a, const void *b)
{
	return *(const u16 *)a - *(const u16 *)b;
}

/* Pick PKSM_SAMPLE_WORDS distinct word indices of a page at random. */
static void __init pksm_choose_sample(void)
{
	const u64 *zero = page_address(ZERO_PAGE(0));
	unsigned int i, j;

	for (i = 0; i < PKSM_SAMPLE_WORDS; i++) {
		u16 w;

		do {
			w = get_random_u32_below(PKSM_PAGE_WORDS);
			for (j = 0; j < i && pksm_sample[j] != w; j++)
				;
		} while (j < i);
		pksm_sample[i] = w;
	}
	sort(pksm_sample, PKSM_SAMPLE_WORDS, sizeof(u16), pksm_cmp_u16, NULL);
	pksm_hash_seed = get_random_u64();
	pksm_zero_hash = pksm_hash_words(zero, pksm_sample,
					 PKSM_SAMPLE_WORDS, pksm_hash_seed);
}

static int __init pksm_init(void)
{
	int err = -ENOMEM;

	pksm_item_cache = KMEM_CACHE(pksm_item, 0);
	pksm_unode_cache = KMEM_CACHE(pksm_unode, 0);
	pksm_node_cache = KMEM_CACHE(pksm_stable_node, 0);
	pksm_mapping_cache = KMEM_CACHE(pksm_mapping, 0);
	if (!pksm_item_cache || !pksm_unode_cache || !pksm_node_cache ||
	    !pksm_mapping_cache)
		goto out_caches;

	pksm_choose_sample();
	if (pksm_boot_enabled) {
		pksm_table = vzalloc(array_size(max_pfn, sizeof(*pksm_table)));
		if (!pksm_table)
			goto out_caches;
		pksm_table_len = max_pfn;
		pksmd_task = kthread_run(pksmd, NULL, "pksmd");
		if (IS_ERR(pksmd_task)) {
			err = PTR_ERR(pksmd_task);
			pr_err("pksm: creating pksmd failed\n");
			goto out_table;
		}
		static_branch_enable(&pksm_hooks_key);
	} else {
		pksm_run = PKSM_RUN_STOP;
	}

#ifdef CONFIG_SYSFS
	err = sysfs_create_group(mm_kobj, &ksm_attr_group);
	if (!err)
		err = sysfs_create_group(mm_kobj, &pksm_attr_group);
	if (err)
		pr_err("pksm: registering sysfs failed\n");
#endif
	pr_info("pksm: %s, %u sampled words, table of %lu pages\n",
		pksm_boot_enabled ? "tracking anonymous pages" :
				    "off (pksm.enabled=0)",
		PKSM_SAMPLE_WORDS, pksm_table_len);
	return 0;

out_table:
	vfree(pksm_table);
	pksm_table = NULL;
	pksm_table_len = 0;
out_caches:
	kmem_cache_destroy(pksm_mapping_cache);
	kmem_cache_destroy(pksm_node_cache);
	kmem_cache_destroy(pksm_unode_cache);
	kmem_cache_destroy(pksm_item_cache);
	return err;
}
subsys_initcall(pksm_init);

#ifdef CONFIG_PKSM_KUNIT_TEST
#include "pksm_test.c"
#endif
