// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: the stable tree, the unstable table, the stable nodes' mapping records
 * and rmap_walk_ksm() (see internal.h for the overview and the locks).
 */

#include <linux/mm.h>
#include <linux/rmap.h>
#include <linux/ksm.h>
#include <linux/rbtree.h>
#include <linux/hash.h>
#include <linux/vmalloc.h>
#include <linux/llist.h>
#include <linux/swap.h>
#include <linux/workqueue.h>
#include <linux/slab.h>
#include <linux/sched.h>
#include <linux/leafops.h>
#include "internal.h"

#include <trace/events/pksm.h>

struct rb_root pksm_stable_tree = RB_ROOT;	/* (M) */
LLIST_HEAD(pksm_dead_nodes);	/* lockless: free hook -> pksmd */
LLIST_HEAD(pksm_held_nodes);	/* lockless: copy hook -> work */

struct kmem_cache *pksm_node_cache;
struct kmem_cache *pksm_mapping_cache;

/* ---- KSM pages' ->mapping ---------------------------------------------- */

struct pksm_stable_node *pksm_folio_node(struct folio *folio)
{
	/* Read once: pksm_hold() reads the node's ->kpfn through it. */
	return folio_test_ksm(folio) ?
	       (void *)((unsigned long)READ_ONCE(folio->mapping) &
			~FOLIO_MAPPING_FLAGS) : NULL;
}

void pksm_set_folio_node(struct folio *folio,
			 struct pksm_stable_node *node)
{
	WRITE_ONCE(folio->mapping,
		   (void *)((unsigned long)node | FOLIO_MAPPING_KSM));
}

/* ---- page content ------------------------------------------------------ */

u32 pksm_hash_folio(struct folio *folio)
{
	const u64 *words = kmap_local_folio(folio, 0);
	u32 h = pksm_hash_words(words, pksm_sample, PKSM_SAMPLE_WORDS,
				pksm_hash_seed);

	kunmap_local(words);
	return h;
}

u32 pksm_checksum_folio(struct folio *folio)
{
	const u64 *words = kmap_local_folio(folio, 0);
	u32 sum = pksm_checksum_words(words, pksm_hash_seed);

	kunmap_local(words);
	return sum;
}

/* Order two pages by content (pksm_words_cmp()), counted in page_compares. */
int pksm_folios_cmp(struct folio *a, struct folio *b)
{
	const u64 *wa = kmap_local_folio(a, 0);
	const u64 *wb = kmap_local_folio(b, 0);
	int c = pksm_words_cmp(wa, wb);

	kunmap_local(wb);
	kunmap_local(wa);
	pksm_sc.nr_compares++;
	return c;
}

/*
 * A compare of @folio with @other, a KSM page of equal sampled hash or an
 * unstable page filed under @folio's checksum and unchanged since, found
 * their content unequal: a hash (or checksum) false positive.
 */
static void pksm_count_false_positive(struct folio *folio,
				      struct folio *other)
{
	pksm_sc.nr_false_positives++;
	trace_pksm_hash_false_positive(folio_pfn(folio), folio_pfn(other));
}

/* ---- the unstable table ------------------------------------------------ */

/*
 * Unstable pages are filed in a hash table keyed by the checksum of the
 * whole page that the visit which filed them took (item->hash while
 * PKSM_UNSTABLE), chained by index through item->next and ->prev (no
 * allocation: a bucket is an index, an insert links the item).  Equal pages share a bucket
 * and a key, so a lookup reads a page only for a key that matches: one
 * page compare to find an equal page, however many pages share a sampled
 * hash.  Unstable pages are not write-protected: a page written since it
 * was filed keeps its old key, and pollutes only its own bucket until a
 * lookup meets it or re-verification finds it changed, and sends it to the
 * rescan list, whose visit files it again under its new key.  Pages
 * change back and forth (written, then restored): each visit files a page
 * under what it holds then, so equal pages meet in one bucket, and
 * re-verification finds two that did not merge there.
 *
 * A page's bucket is chosen by its checksum and its merge domain
 * (domain.c), so equal pages of two domains most likely sit in two
 * buckets; a lookup checks the domain of an equal page it finds, as two
 * domains can share a bucket.  With merge_domain all every page has one
 * domain, and the bucket is the checksum's alone.
 *
 * The table and the cursors below are under pksm_mutex; the table's size
 * is fixed at start-up.
 */
static u32 *pksm_unstable_table;	/* the first item's index, or PKSM_NIL */
static unsigned int pksm_unstable_bits;
static unsigned long pksm_reverify_at;	/* (M) the bucket re-verified next */
static unsigned long pksm_sweep_at;	/* (M) the bucket swept next */
/* (M) buckets the dead-item sweep went through without finding one */
static unsigned long pksm_sweep_clean;
/* (M) pksm_dead_unstable_given() when the sweep's clean lap began */
static unsigned long pksm_sweep_lap_given;

#define PKSM_UNSTABLE_MIN_BITS	8
#define PKSM_UNSTABLE_MAX_BITS	22

static u32 *pksm_unstable_bucket(u32 sum, u64 domain)
{
	u32 key = sum;

	if (READ_ONCE(pksm_merge_domain) != PKSM_DOMAIN_ALL)
		key ^= hash_64(domain, 32);
	return &pksm_unstable_table[hash_32(key, pksm_unstable_bits)];
}

/**
 * pksm_unstable_table_init() - allocate the unstable table
 *
 * A bucket for every four to eight pages of memory (a power of two), so
 * that a bucket holds a few unstable pages at most even with every page of
 * memory filed: half a byte to a byte a page frame.  Smaller if that much
 * cannot be had, down to PKSM_UNSTABLE_MIN_BITS.
 *
 * Return: the table's size in bytes, 0 if it could not be allocated.
 */
unsigned long __init pksm_unstable_table_init(void)
{
	unsigned long want = max(totalram_pages() / 4, 1UL);
	unsigned int bits = clamp_t(unsigned int, ilog2(want),
				    PKSM_UNSTABLE_MIN_BITS,
				    PKSM_UNSTABLE_MAX_BITS);

	for (; bits >= PKSM_UNSTABLE_MIN_BITS; bits--) {
		pksm_unstable_table = kvmalloc_array(1UL << bits,
						     sizeof(*pksm_unstable_table),
						     GFP_KERNEL | __GFP_NOWARN);
		if (pksm_unstable_table)
			break;
	}
	if (!pksm_unstable_table)
		return 0;
	/* Every bucket empty: PKSM_NIL is all ones. */
	memset(pksm_unstable_table, 0xff,
	       sizeof(*pksm_unstable_table) << bits);
	pksm_unstable_bits = bits;
	return pksm_unstable_table_bytes();
}

/* The unstable table's buckets (pksmd paces its sweeps by them). */
unsigned long pksm_unstable_buckets(void)
{
	return pksm_unstable_table ? 1UL << pksm_unstable_bits : 0;
}

/* Start-up failed after pksm_unstable_table_init(). */
void __init pksm_unstable_table_free(void)
{
	kvfree(pksm_unstable_table);
	pksm_unstable_table = NULL;
}

/* The unstable table's size in bytes (metadata_bytes). */
unsigned long pksm_unstable_table_bytes(void)
{
	if (!pksm_unstable_table)
		return 0;
	return sizeof(*pksm_unstable_table) << pksm_unstable_bits;
}

/* The item of chain index @idx, NULL at the end of the chain. */
static struct pksm_item *pksm_chain_item(u32 idx)
{
	return idx == PKSM_NIL ? NULL : pksm_item_at(idx);
}

/* The first item of @bucket, NULL if it is empty. */
static struct pksm_item *pksm_chain_first(u32 *bucket)
{
	return pksm_chain_item(*bucket);
}

/* The item after @item in its bucket, NULL at the end. */
static struct pksm_item *pksm_chain_next(struct pksm_item *item)
{
	return pksm_chain_item(item->next);
}

/* File @item first in @bucket. */
static void pksm_chain_add(struct pksm_item *item, u32 *bucket)
{
	u32 idx = pksm_item_idx(item);

	item->next = *bucket;
	item->prev = PKSM_IDX_BUCKET | (u32)(bucket - pksm_unstable_table);
	if (*bucket != PKSM_NIL)
		pksm_item_at(*bucket)->prev = idx;
	*bucket = idx;
}

/* Take @item (PKSM_UNSTABLE) out of the table. */
void pksm_unstable_remove(struct pksm_item *item)
{
	/* PKSM_NIL has the bucket bit: an item on no chain would corrupt. */
	if (WARN_ON_ONCE(item->prev == PKSM_NIL))
		return;
	if (item->prev & PKSM_IDX_BUCKET)
		pksm_unstable_table[item->prev & ~PKSM_IDX_BUCKET] = item->next;
	else
		pksm_item_at(item->prev)->next = item->next;
	if (item->next != PKSM_NIL)
		pksm_item_at(item->next)->prev = item->prev;
	item->next = PKSM_NIL;
	item->prev = PKSM_NIL;
	pksm_sc.nr_unstable--;
}

/*
 * A dead unstable page: out of the table, its item released (a reborn
 * one's new page to the new list).  pksm_mutex held.
 */
void pksm_unstable_drop(struct pksm_item *item)
{
	pksm_unstable_remove(item);
	pksm_item_finish(item, PKSM_OUT_RELEASE);
}

/*
 * An unstable page found changed since it was filed: out of the table, to
 * the rescan list, whose visit files it under what it holds now.  A
 * change clears @busy (as a probation visit's does).
 */
static void pksm_unstable_changed(struct pksm_item *item)
{
	item->busy = 0;
	pksm_unstable_remove(item);
	pksm_item_finish(item, PKSM_OUT_RESCAN);
}

/**
 * pksm_unstable_search() - an unstable page with @folio's content, in its
 *	merge domain
 * @folio: the page looked for, referenced
 * @sum: its checksum (pksm_checksum_folio())
 * @domain: its merge domain (domain.c)
 * @pfolio: the page found, referenced
 *
 * Only the pages filed under @sum are read.  Dead ones met are released;
 * one met changed since it was filed goes to the rescan list (counted in
 * changed_in_tree); one whose content differs although filed under @sum
 * and unchanged is a checksum collision (hash_false_positives).  A page
 * whose refcount is frozen for a moment (reclaim, migration) is passed
 * over; so is @folio itself, if it is filed already, and an equal page of
 * another domain (filed in the same bucket), or one locked by someone
 * else while merge_domain is not all (its domain is not known now).
 *
 * Return: the item of an equal page, that page referenced in *@pfolio;
 * NULL if there is none.
 */
struct pksm_item *pksm_unstable_search(struct folio *folio, u32 sum,
				       u64 domain, struct folio **pfolio)
{
	u32 *bucket = pksm_unstable_bucket(sum, domain);
	struct pksm_item *p, *next;

	for (p = pksm_chain_first(bucket); p; p = next) {
		struct folio *pf;
		u64 pdomain;

		next = pksm_chain_next(p);
		if (p->hash != sum)
			continue;
		pf = pksm_item_folio(p);
		if (!pf) {
			if (READ_ONCE(p->dead))
				pksm_unstable_drop(p);
			continue;	/* else frozen for a moment */
		}
		if (pf != folio && !pksm_folios_cmp(folio, pf)) {
			if (pksm_try_folio_domain(pf, &pdomain) &&
			    pdomain == domain) {
				*pfolio = pf;
				return p;
			}
			folio_put(pf);
			continue;
		}
		if (pf != folio) {
			if (pksm_checksum_folio(pf) != sum) {
				pksm_sc.nr_changed_in_tree++;
				pksm_unstable_changed(p);
			} else {
				pksm_count_false_positive(folio, pf);
			}
		}
		folio_put(pf);
	}
	return NULL;
}

/**
 * pksm_unstable_insert() - file @item in the unstable table
 * @item: PKSM_UNSTABLE (pksm_item_finish() said so), alive or dead
 * @sum: the checksum of the whole page that the visit took
 * @domain: the page's merge domain, as the visit found it
 *
 * No allocation: the table's chain is in the item.
 */
void pksm_unstable_insert(struct pksm_item *item, u32 sum, u64 domain)
{
	item->hash = sum;
	pksm_chain_add(item, pksm_unstable_bucket(sum, domain));
	pksm_sc.nr_unstable++;
}

/**
 * pksm_unstable_kick() - equal pages filed under @sum leave for the rescan
 *	list
 * @sum: the checksum of a page that just became a KSM page
 * @domain: the merge domain of that KSM page (its bucket)
 *
 * Called after an unstable pair became a KSM page: other unstable pages
 * filed under its checksum (a lookup passed over them while they were busy
 * for a moment) are most likely equal to it, and nothing would visit them
 * while they stay unchanged; their visits merge them into it (counted in
 * unstable_kicks).  No page is read.
 */
void pksm_unstable_kick(u32 sum, u64 domain)
{
	u32 *bucket = pksm_unstable_bucket(sum, domain);
	struct pksm_item *p, *next;

	for (p = pksm_chain_first(bucket); p; p = next) {
		next = pksm_chain_next(p);
		if (p->hash != sum || READ_ONCE(p->dead))
			continue;
		pksm_sc.nr_unstable_kicks++;
		pksm_unstable_remove(p);
		pksm_item_finish(p, PKSM_OUT_RESCAN);
	}
}

/*
 * Is another unstable page, filed under @item's checksum, equal to @folio
 * (@item's page, referenced and unchanged since it was filed), and may the
 * two merge?  Equal pages meet in one bucket without merging when a lookup
 * passed over one whose refcount was frozen for a moment (reclaim,
 * migration).  Two pages both mapped by more mms than a claim may hold are
 * never merged with each other (struct pksm_claim), and pages of another
 * content filed under the same checksum (a collision) are no twins: both
 * cost a page compare at each re-verification; so do equal pages of two
 * merge domains filed in one bucket, which are no twins either.
 * @bucket, the item's, is only read: the caller is walking it.
 */
static bool pksm_unstable_has_twin(u32 *bucket, struct pksm_item *item,
				   struct folio *folio)
{
	u64 domain = PKSM_DOMAIN_NONE, pdomain;
	struct pksm_item *p, *next;
	bool known = false;

	for (p = pksm_chain_first(bucket); p; p = next) {
		struct folio *pf;
		bool twin;

		next = pksm_chain_next(p);
		if (p == item || p->hash != item->hash || READ_ONCE(p->dead))
			continue;
		pf = pksm_item_folio(p);
		if (!pf)
			continue;
		twin = pf != folio && !pksm_folios_cmp(folio, pf) &&
		       (folio_mapcount(folio) <= PKSM_CLAIM_BATCH ||
			folio_mapcount(pf) <= PKSM_CLAIM_BATCH);
		/* Domains only for an equal page (walks: see domain.c). */
		if (twin && !known)
			known = pksm_try_folio_domain(folio, &domain) &&
				domain != PKSM_DOMAIN_NONE &&
				domain != PKSM_DOMAIN_MIXED;
		twin = twin && known &&
		       pksm_try_folio_domain(pf, &pdomain) && pdomain == domain;
		folio_put(pf);
		if (twin)
			return true;
	}
	return false;
}

/*
 * Re-verify the unstable pages of one bucket; returns how many it looked
 * at.  A page whose checksum changed since it was filed, or that is
 * unchanged but has a twin to merge with, leaves for the rescan list (its
 * visit files it again, or merges it).  Dead pages are released.
 */
static unsigned long pksm_reverify_bucket(u32 *bucket)
{
	struct pksm_item *item, *next;
	unsigned long seen = 0;

	for (item = pksm_chain_first(bucket); item; item = next) {
		struct folio *folio = pksm_item_folio(item);
		u32 sum;

		next = pksm_chain_next(item);
		seen++;
		if (!folio) {
			if (READ_ONCE(item->dead))
				pksm_unstable_drop(item);
			continue;	/* else frozen for a moment: next time */
		}
		sum = pksm_checksum_folio(folio);
		pksm_sc.pages_scanned++;
		pksm_sc.nr_reverified++;
		if (sum != item->hash) {
			folio_put(folio);
			pksm_sc.nr_reverify_changed++;
			trace_pksm_reverify_changed(pksm_item_pfn(item));
			pksm_unstable_changed(item);
			continue;
		}
		if (pksm_unstable_has_twin(bucket, item, folio)) {
			pksm_sc.nr_reverify_twins++;
			pksm_unstable_remove(item);
			pksm_item_finish(item, PKSM_OUT_RESCAN);
		}
		folio_put(folio);
	}
	return seen;
}

/**
 * pksm_unstable_reverify() - re-verify the unstable pages of @buckets
 *	buckets
 * @buckets: buckets to sweep, from where the last call stopped (pksmd
 *	paces them so that the sweep goes round the table once per period)
 * @max_pages: stop after the bucket in which this many pages were seen
 *
 * Empty buckets cost a load each, whatever the number of unstable pages.
 */
void pksm_unstable_reverify(unsigned long buckets, unsigned long max_pages)
{
	unsigned long mask = (1UL << pksm_unstable_bits) - 1;
	unsigned long seen = 0;

	buckets = min(buckets, mask + 1);
	while (buckets-- && seen < max_pages && pksm_sc.nr_unstable) {
		seen += pksm_reverify_bucket(&pksm_unstable_table[pksm_reverify_at]);
		pksm_reverify_at = (pksm_reverify_at + 1) & mask;
		if (!(buckets & 63))
			cond_resched();	/* nothing held but pksm_mutex */
	}
}

/**
 * pksm_unstable_flush() - empty the unstable table
 *
 * Every live unstable page leaves for the rescan list, whose visits file
 * it again (merge_domain changed: its bucket and the pages it may merge
 * with did); dead ones are released.  No page is read.  pksm_mutex held.
 */
void pksm_unstable_flush(void)
{
	unsigned long i, n = pksm_unstable_buckets();

	for (i = 0; i < n && pksm_sc.nr_unstable; i++) {
		struct pksm_item *item, *next;

		item = pksm_chain_first(&pksm_unstable_table[i]);
		for (; item; item = next) {
			next = pksm_chain_next(item);
			if (READ_ONCE(item->dead)) {
				pksm_unstable_drop(item);
				continue;
			}
			pksm_unstable_remove(item);
			pksm_item_finish(item, PKSM_OUT_RESCAN);
		}
		if (!(i & 255))
			cond_resched();	/* nothing held but pksm_mutex */
	}
}

/**
 * pksm_release_dead_unstable() - release the items of dead unstable pages
 * @budget: buckets and unstable pages to look at, together
 *
 * The free hook can only mark an unstable page's item dead (and counts it
 * in the nr_dead_unstable hint); this sweep releases them (an item with a
 * new page in its frame since starts that page's life on the new list),
 * the buckets in turn from where the last sweep stopped, while the hint
 * says there are any.  A lap of the whole table that met none caps the
 * hint at the deaths counted since the lap began (a count the free hook
 * left too high goes; an item that died behind the cursor stays counted).
 * No page is read.
 */
void pksm_release_dead_unstable(unsigned long budget)
{
	unsigned long mask = (1UL << pksm_unstable_bits) - 1;

	budget = min(budget, 2 * (mask + 1));
	while (budget && pksm_nr_dead_unstable()) {
		struct pksm_item *item, *next;
		bool found = false;

		if (!pksm_sweep_clean)
			pksm_sweep_lap_given = pksm_dead_unstable_given();
		item = pksm_chain_first(&pksm_unstable_table[pksm_sweep_at]);
		for (; item; item = next) {
			next = pksm_chain_next(item);
			budget -= !!budget;
			if (READ_ONCE(item->dead)) {
				pksm_unstable_drop(item);
				found = true;
			}
		}
		budget -= !!budget;
		pksm_sweep_at = (pksm_sweep_at + 1) & mask;
		pksm_sweep_clean = found ? 0 : pksm_sweep_clean + 1;
		if (pksm_sweep_clean > mask) {
			/*
			 * A lap found nothing dead: only items that died
			 * since it began can be, behind the cursor.
			 */
			pksm_dead_unstable_cap(pksm_dead_unstable_given() -
					       pksm_sweep_lap_given);
			pksm_sweep_clean = 0;
		}
		if (!(budget & 255))
			cond_resched();	/* nothing held but pksm_mutex */
	}
	/* The hint ran out: the next sweep's lap starts afresh. */
	if (!pksm_nr_dead_unstable())
		pksm_sweep_clean = 0;
}

/* ---- the stable tree --------------------------------------------------- */

/*
 * Keyhole reference: the KSM page of @node, referenced, or NULL if the
 * node is stale (its page freed, or reused for something else).
 */
struct folio *pksm_node_folio(struct pksm_stable_node *node)
{
	/* LAB 4 BEGIN: trust the node only through its KSM page's ->mapping */
	void *expect = (void *)((unsigned long)node | FOLIO_MAPPING_KSM);
	unsigned long kpfn = READ_ONCE(node->kpfn);
	struct folio *folio = page_folio(pfn_to_page(kpfn));

	if (READ_ONCE(folio->mapping) != expect)
		return NULL;
	if (!folio_try_get(folio))
		return NULL;
	/*
	 * Checked again now that the page cannot be freed under us; and the
	 * node must still name this frame (migration moves ->kpfn first,
	 * then clears the old frame's ->mapping: see folio_migrate_ksm()).
	 */
	smp_rmb();
	if (READ_ONCE(folio->mapping) != expect ||
	    READ_ONCE(node->kpfn) != kpfn) {
		folio_put(folio);
		return NULL;
	}
	return folio;
	/* LAB 4 END */
}

/* Tries of a stable tree walk that met a stale node before it gives up. */
#define PKSM_STALE_RETRIES	4

/*
 * Walk the stable tree, ordered by (merge domain, sampled hash, content),
 * for @folio of domain @domain with sampled hash @hash.  KSM pages never
 * change, nor do their nodes' domains, so the order holds; O(log n) page
 * compares whatever the content, and none with a page of another domain.  Among KSM pages of equal
 * content (one filled up to max_page_sharing, then another started) the
 * newest sits leftmost, and the walk ends there.
 *
 * Returns the leftmost equal node, its page referenced in *kfolio; or
 * NULL with *linkp and *parentp the place for a new node; or ERR_PTR(-EAGAIN)
 * when stale nodes (KSM pages being freed) kept blocking the way.
 */
static struct pksm_stable_node *
pksm_stable_walk(struct folio *folio, u32 hash, u64 domain,
		 struct folio **kfolio, struct rb_node ***linkp,
		 struct rb_node **parentp)
{
	struct pksm_stable_node *found;
	struct rb_node **link, *parent;
	unsigned int tries = 0;

again:
	found = NULL;
	*kfolio = NULL;
	link = &pksm_stable_tree.rb_node;
	parent = NULL;
	while (*link) {
		struct pksm_stable_node *s =
			rb_entry(*link, struct pksm_stable_node, rb);
		struct folio *kf;
		int c;

		parent = *link;
		if (domain != s->domain) {
			link = domain < s->domain ? &parent->rb_left :
						    &parent->rb_right;
			continue;
		}
		if (hash != s->hash) {
			link = hash < s->hash ? &parent->rb_left :
						&parent->rb_right;
			continue;
		}
		kf = pksm_node_folio(s);
		if (!kf) {
			/*
			 * Its KSM page is being freed: the free hook queued
			 * the node (or is about to).  Release what is queued
			 * and walk again.
			 */
			if (*kfolio)
				folio_put(*kfolio);
			if (++tries > PKSM_STALE_RETRIES)
				return ERR_PTR(-EAGAIN);
			pksm_release_dead_nodes();
			goto again;
		}
		c = pksm_folios_cmp(folio, kf);
		if (c) {
			pksm_count_false_positive(folio, kf);
			folio_put(kf);
		} else {
			/* Equal: remember it, and look for a newer one. */
			if (*kfolio)
				folio_put(*kfolio);
			*kfolio = kf;
			found = s;
			c = -1;
		}
		link = c < 0 ? &parent->rb_left : &parent->rb_right;
	}
	*linkp = link;
	*parentp = parent;
	return found;
}

/*
 * The newest KSM page of merge domain @domain with @folio's content,
 * referenced in *kfolio, with its node; NULL if there is none;
 * ERR_PTR(-EAGAIN) if the tree was busy.
 */
struct pksm_stable_node *pksm_stable_search(struct folio *folio, u32 hash,
					    u64 domain,
					    struct folio **kfolio)
{
	struct rb_node **link, *parent;

	return pksm_stable_walk(folio, hash, domain, kfolio, &link, &parent);
}

/*
 * Where a new node of merge domain @domain for the KSM page-to-be @kfolio
 * (locked, write-protected) with sampled hash @hash goes: left of every
 * equal KSM page of its domain, so that it is the first one found.
 * -EAGAIN if stale nodes kept blocking the way.
 */
int pksm_stable_place(struct folio *kfolio, u32 hash, u64 domain,
		      struct pksm_stable_place *place)
{
	struct pksm_stable_node *s;
	struct folio *kf;

	s = pksm_stable_walk(kfolio, hash, domain, &kf, &place->link,
			     &place->parent);
	if (IS_ERR(s))
		return PTR_ERR(s);
	if (kf)
		folio_put(kf);
	return 0;
}

/* File @node where pksm_stable_place() found, the tree unchanged since. */
void pksm_stable_link(struct pksm_stable_node *node,
		      struct pksm_stable_place *place)
{
	rb_link_node(&node->rb, place->parent, place->link);
	rb_insert_color(&node->rb, &pksm_stable_tree);
	pksm_sc.nr_stable_nodes++;
}

static void pksm_mapping_free(struct pksm_mapping *map)
{
	put_anon_vma(map->anon_vma);
	kmem_cache_free(pksm_mapping_cache, map);
	pksm_sc.nr_mappings--;
}

/*
 * The pruning sweep's cursor: the next stable node to visit, or NULL for
 * the leftmost.  A node released moves the cursor past itself first.
 */
static struct rb_node *pksm_prune_next;

/* References handed over by pksm_hold() and not dropped yet. */
atomic_long_t pksm_nr_held = ATOMIC_LONG_INIT(0);

static void pksm_held_work_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(pksm_held_work, pksm_held_work_fn);
/*
 * Unbound, with a rescuer, since its puts free memory that reclaim cannot;
 * queued on another CPU than the one handing over (pksm_held_cpu()).
 */
static struct workqueue_struct *pksm_held_wq;

/*
 * A CPU other than this one for the drain, so that its time is not spent
 * on the CPU of the process whose fault handed the page over (on UML,
 * with no shared-cache topology, an unbound worker otherwise runs where
 * it was queued).
 */
static int pksm_held_cpu(void)
{
	unsigned int cpu = cpumask_any_but(cpu_online_mask,
					   raw_smp_processor_id());

	return cpu < nr_cpu_ids ? cpu : WORK_CPU_UNBOUND;
}

/* The work queue of pksm_hold() (start-up); false if it could not be made. */
bool __init pksm_held_init(void)
{
	pksm_held_wq = alloc_workqueue("pksm_held", WQ_UNBOUND | WQ_MEM_RECLAIM,
				       1);
	return pksm_held_wq;
}

void __init pksm_held_free(void)
{
	destroy_workqueue(pksm_held_wq);
	pksm_held_wq = NULL;
}

/**
 * pksm_hold() - take over a fault's reference on a KSM page it copied
 *	away, with the page's swap cache (fake merging)
 * @folio: the KSM page, referenced by the fault, which copied it and
 *	removed its mapping (or found its PTE changed and copied nothing)
 * @node: its stable node
 *
 * Fake merging makes a page with no partner a KSM page of its own, so that
 * a write to it copies as a write to a merged page does.  The copy would
 * still differ by one thing: the copy of the last mapping frees the KSM
 * page (and its swap cache) in the fault, the copy of a sharer's does
 * not, and the free is long enough to time.  So the fault hands its
 * reference over, and a work item, on another CPU, drops the references
 * about a jiffy later, at once when PKSM_HELD_WAKE of them are waiting
 * (pksm_release_held()), whatever pksmd and pksm_mutex are doing:
 * no write fault, nor unsharing fault a process can cause, frees a KSM
 * page it copied under fake merging.  (munmap, MADV_DONTNEED and exit
 * still free a KSM page they unmap last, as any page; the drain's own
 * time remains, on another CPU.)  Until then reclaim cannot free the
 * page nor migration move it, and it stays charged to its memory cgroup,
 * whose reclaim does not wait for the drain.
 *
 * ->held counts the references handed over for the node; the fault that
 * raises it from 0 queues the node on pksm_held_nodes.  The global count
 * is raised first, so it is never below the references held.
 *
 * Return: true if the reference was taken over; false (the caller puts
 * it) without the work queue, or if the node does not name @folio (never
 * expected once the node is published: pksm_make_ksm() orders ->kpfn
 * before ->mapping, and a fault's reference keeps the page from
 * migrating).
 */
bool pksm_hold(struct folio *folio, struct pksm_stable_node *node)
{
	long held;

	if (!pksm_held_wq ||
	    WARN_ON_ONCE(READ_ONCE(node->kpfn) != folio_pfn(folio)))
		return false;
	held = atomic_long_inc_return(&pksm_nr_held);
	if (atomic_inc_return(&node->held) == 1)
		llist_add(&node->dead_link, &pksm_held_nodes);
	/* Queued after the node: a drain that runs from now on finds it. */
	if (held == PKSM_HELD_WAKE)
		mod_delayed_work_on(pksm_held_cpu(), pksm_held_wq,
				    &pksm_held_work, 0);
	else
		queue_delayed_work_on(pksm_held_cpu(), pksm_held_wq,
				      &pksm_held_work, 1);
	return true;
}

/*
 * Drop the references pksm_hold() took over, and free the swap cache of
 * pages no longer mapped, as the faults would have (the work item; safe
 * beside another call).  A node was queued when its count rose from 0 and
 * is taken off with the whole list; its count is then exchanged for 0 and
 * that many references put, a fault's that came in between included.  A
 * fault that raises the count from 0 after the exchange queues the node
 * anew, its reference keeping the page: a put here may free the KSM page,
 * whose free hook then queues the node on pksm_dead_nodes through the same
 * link, after this walk has read it.  A held page is not migrated (its
 * extra references), so ->kpfn is the page held.
 */
void pksm_release_held(void)
{
	struct llist_node *list = llist_del_all(&pksm_held_nodes);
	struct pksm_stable_node *node, *next;

	llist_for_each_entry_safe(node, next, list, dead_link) {
		struct folio *folio = pfn_folio(READ_ONCE(node->kpfn));
		int refs = atomic_xchg(&node->held, 0);

		free_swap_cache(folio);
		atomic_long_sub(refs, &pksm_nr_held);
		folio_put_refs(folio, refs);
		cond_resched();
	}
}

static void pksm_held_work_fn(struct work_struct *work)
{
	pksm_release_held();
}

/* Release the stable nodes whose KSM pages were freed. */
void pksm_release_dead_nodes(void)
{
	struct llist_node *list = llist_del_all(&pksm_dead_nodes);
	struct pksm_stable_node *node, *next;

	llist_for_each_entry_safe(node, next, list, dead_link) {
		struct pksm_mapping *map;
		struct hlist_node *tmp;

		if (pksm_prune_next == &node->rb)
			pksm_prune_next = rb_next(&node->rb);
		rb_erase(&node->rb, &pksm_stable_tree);
		pksm_sc.nr_stable_nodes--;
		pksm_node_account(node, 0);
		/* The KSM page is gone: nobody can walk ->mappings now. */
		hlist_for_each_entry_safe(map, tmp, &node->mappings, link)
			pksm_mapping_free(map);
		kmem_cache_free(pksm_node_cache, node);
		cond_resched();
	}
}

/*
 * Record that @folio's mappings (its anon_vma and index) now map the KSM
 * page of @node.  @map is preallocated and @anon_vma is @folio's, pinned
 * by the caller (folio_get_anon_vma()) before any walk that could sleep:
 * both are consumed, kept by the record or released.  The KSM folio is
 * locked.
 */
void pksm_node_add_mapping(struct pksm_stable_node *node,
			   struct folio *folio, struct pksm_mapping *map,
			   struct anon_vma *anon_vma)
{
	struct pksm_mapping *m;

	hlist_for_each_entry(m, &node->mappings, link) {
		if (m->anon_vma == anon_vma && m->pgoff == folio->index) {
			put_anon_vma(anon_vma);
			kmem_cache_free(pksm_mapping_cache, map);
			return;
		}
	}
	map->anon_vma = anon_vma;
	map->pgoff = folio->index;
	hlist_add_head(&map->link, &node->mappings);
	node->nr_mappings++;
	pksm_sc.nr_mappings++;
}

/*
 * Does the PTE of @vma at @addr map @kfolio (locked), or hold its swap
 * entry if @kfolio is in the swap cache (a mapping swapped out, which
 * swap-in maps to the KSM page again)?  Read under the PTE lock: a PTE
 * another CPU clears and sets again under that lock (a write-protect,
 * mprotect) is never seen empty.
 */
static bool pksm_pte_maps(struct folio *kfolio, struct vm_area_struct *vma,
			  unsigned long addr)
{
	struct mm_struct *mm = vma->vm_mm;
	bool ours = false;
	spinlock_t *ptl;	/* the PTE lock, pte_offset_map_lock() */
	pte_t *ptep, pte;
	pmd_t *pmd;

	pmd = mm_find_pmd(mm, addr);
	if (!pmd)
		return false;
	ptep = pte_offset_map_lock(mm, pmd, addr, &ptl);
	if (!ptep)
		return false;
	pte = ptep_get(ptep);
	if (pte_present(pte)) {
		ours = pte_pfn(pte) == folio_pfn(kfolio);
	} else if (folio_test_swapcache(kfolio)) {
		softleaf_t entry = softleaf_from_pte(pte);

		ours = softleaf_is_swap(entry) && entry.val == kfolio->swap.val;
	}
	pte_unmap_unlock(ptep, ptl);
	return ours;
}

/*
 * Is @kfolio (locked) still mapped by a PTE that @map leads to, present or
 * swapped out?  A record stops leading anywhere when COW, munmap or exit
 * took its PTEs away.  When in doubt it is live: the anon_vma contended
 * (swap-in and swapoff wait for @kfolio's lock meanwhile: no sleeping on
 * it), or a stack exec is moving (relocate_vma_down() widens the VMA, so
 * the index already points at the new address, before it moves the PTEs
 * without rmap locks).
 */
static bool pksm_mapping_live(struct folio *kfolio, struct pksm_mapping *map)
{
	struct anon_vma_chain *avc;
	bool live = false;

	lockdep_assert_held(&pksm_mutex);
	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(kfolio), kfolio);
	if (!anon_vma_trylock_read(map->anon_vma))
		return true;
	anon_rmap_tree_foreach(avc, map->anon_vma, map->pgoff, map->pgoff) {
		struct vm_area_struct *vma = avc->vma;
		unsigned long addr;

		if (vma_is_temporary_stack(vma)) {
			live = true;
			break;
		}
		addr = vma_anon_address(vma, map->pgoff, 1);
		if (addr == -EFAULT)
			continue;
		if (pksm_pte_maps(kfolio, vma, addr)) {
			live = true;
			break;
		}
	}
	anon_vma_unlock_read(map->anon_vma);
	return live;
}

/* ---- pages_shared and pages_sharing ------------------------------------ */

atomic_long_t pksm_nr_shared = ATOMIC_LONG_INIT(0);
atomic_long_t pksm_nr_sharing = ATOMIC_LONG_INIT(0);

/* Move the global counts from a node mapped @old times to @new times. */
static void pksm_account_change(int old, int new)
{
	old = max(old, 0);
	new = max(new, 0);
	if (old == new)
		return;
	atomic_long_add((new > 0) - (old > 0), &pksm_nr_shared);
	atomic_long_add(max(new - 1, 0) - max(old - 1, 0), &pksm_nr_sharing);
}

/**
 * pksm_node_account() - account @node's KSM page as mapped @mapcount times
 * @node: a stable node (pksm_mutex held, or its KSM page referenced, or
 *	by the free hook as its KSM page is freed: nothing frees the node
 *	before that hook queues it)
 * @mapcount: the KSM page's folio_mapcount() now, or 0 once it is freed
 *
 * The exchange makes concurrent accountings of one node (pksmd and a
 * fault's pksm_node_account_dec()) each move the counts by exactly what
 * they changed, so the counts always equal the sum over the nodes.
 */
void pksm_node_account(struct pksm_stable_node *node, int mapcount)
{
	pksm_account_change(atomic_xchg(&node->mapped, mapcount), mapcount);
}

/**
 * pksm_node_account_dec() - a mapping of @node's KSM page is going away
 * @node: a stable node whose KSM page the caller holds referenced
 *
 * Called by the COW hook before the fault copies the page, which is
 * usually the mapping's end.  Not always: the copy may fail (no memory,
 * the PTE changed meanwhile), and a mapping a fork made may not have been
 * accounted yet; then the count is one low until the pruning sweep sets
 * it right.  Never below zero.
 */
void pksm_node_account_dec(struct pksm_stable_node *node)
{
	int left = atomic_dec_if_positive(&node->mapped);

	if (left >= 0)
		pksm_account_change(left + 1, left);
}

/* Account every stable node anew (pksm_mutex held): after run=2. */
void pksm_account_all(void)
{
	struct rb_node *n;

	lockdep_assert_held(&pksm_mutex);
	for (n = rb_first(&pksm_stable_tree); n; n = rb_next(n)) {
		struct pksm_stable_node *node =
			rb_entry(n, struct pksm_stable_node, rb);
		struct folio *kfolio = pksm_node_folio(node);

		/* A freed page's node was accounted 0 by the free hook. */
		if (!kfolio)
			continue;
		/* Locked: not half way through migration or reclaim. */
		if (folio_trylock(kfolio)) {
			pksm_node_account(node, folio_mapcount(kfolio));
			folio_unlock(kfolio);
		}
		folio_put(kfolio);
		cond_resched();
	}
}

/*
 * Drop the records of @node that no PTE needs any more, and account its
 * KSM page's mappings anew (a fork, munmap, exit or swap-out since).
 */
static void pksm_prune_node(struct pksm_stable_node *node)
{
	struct folio *kfolio = pksm_node_folio(node);
	struct pksm_mapping *map;
	struct hlist_node *tmp;

	if (!kfolio)
		return;		/* freed: the free hook accounted it 0 */
	/*
	 * Locked, the page is not half way through migration or reclaim,
	 * whose unmapping would make its map count look lower than it is.
	 */
	if (!folio_trylock(kfolio))
		goto out;
	pksm_node_account(node, folio_mapcount(kfolio));
	/*
	 * A page in the swap cache too: its swapped-out PTEs count as live
	 * (pksm_mapping_live()), the records of processes gone do not.
	 */
	hlist_for_each_entry_safe(map, tmp, &node->mappings, link) {
		cond_resched();
		if (pksm_mapping_live(kfolio, map))
			continue;
		hlist_del(&map->link);
		node->nr_mappings--;
		pksm_mapping_free(map);
	}
	folio_unlock(kfolio);
out:
	folio_put(kfolio);
}

/*
 * Visit up to @budget stable nodes round-robin and drop stale records, so
 * each node's records are exact again soon after COW, munmap or exit.
 */
void pksm_prune(unsigned long budget)
{
	budget = min(budget, pksm_sc.nr_stable_nodes);
	while (budget--) {
		struct rb_node *n = pksm_prune_next;

		if (!n)
			n = rb_first(&pksm_stable_tree);
		if (!n)
			break;
		pksm_prune_next = rb_next(n);
		pksm_prune_node(rb_entry(n, struct pksm_stable_node, rb));
		cond_resched();
	}
}

/* ---- the reverse map of KSM pages -------------------------------------- */

/*
 * The records before @map on @node's list that can lead to the same PTEs:
 * those of the same fork tree (root anon_vma) and index.  A child's VMA
 * hangs in its parent's anon_vma as well as in its own, so the record of
 * a parent page and the record of the child's COW copy, merged into the
 * same KSM page at the same index, both lead to the child's PTE.  Usually
 * there is none, and the walk checks no VMA.
 */
static bool pksm_may_overlap(struct pksm_stable_node *node,
			     struct pksm_mapping *map)
{
	struct pksm_mapping *prev;

	hlist_for_each_entry(prev, &node->mappings, link) {
		if (prev == map)
			return false;
		if (prev->pgoff == map->pgoff &&
		    prev->anon_vma->root == map->anon_vma->root)
			return true;
	}
	return false;
}

/*
 * Did a record before @map (of the same root and index) already lead to
 * @vma?  It did if @vma is chained to that record's anon_vma.  The root's
 * lock is held, under which every change to the anon_vma_chain of a VMA
 * in the root's trees is made (anon_vma_clone(), anon_vma_fork(),
 * __anon_vma_prepare(), and unlink_anon_vmas() until the VMA has left
 * every tree; its unlocked second pass only frees what no tree holds).
 * A VMA chained to the earlier anon_vma after that record was walked
 * (fork, mremap) got its PTE from one the walk had already visited.
 */
static bool pksm_reached_before(struct pksm_stable_node *node,
				struct pksm_mapping *map,
				struct vm_area_struct *vma)
{
	struct pksm_mapping *prev;
	struct anon_vma_chain *avc;

	hlist_for_each_entry(prev, &node->mappings, link) {
		if (prev == map)
			break;
		if (prev->pgoff != map->pgoff ||
		    prev->anon_vma->root != map->anon_vma->root)
			continue;
		list_for_each_entry(avc, &vma->anon_vma_chain, same_vma)
			if (avc->anon_vma == prev->anon_vma)
				return true;
	}
	return false;
}

/*
 * Walk every PTE that maps the KSM page @folio (locked): for each recorded
 * source page, the VMAs of its anon_vma that cover its index, as
 * rmap_walk_anon() does, each VMA once (pksm_reached_before()): a PTE
 * visited twice would end folio_referenced() early, its count of mappings
 * spent.  A record whose PTEs are gone (COW, munmap, exit) finds nothing
 * and costs only the walk.
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
		bool overlap = pksm_may_overlap(node, map);
		struct anon_vma_chain *avc;

		cond_resched();
		if (!anon_vma_trylock_read(anon_vma)) {
			if (rwc->try_lock) {
				rwc->contended = true;
				return;
			}
			anon_vma_lock_read(anon_vma);
		}
		anon_rmap_tree_foreach(avc, anon_vma, map->pgoff,
				       map->pgoff) {
			struct vm_area_struct *vma = avc->vma;
			unsigned long addr = vma_anon_address(vma, map->pgoff, 1);

			cond_resched();
			if (addr == -EFAULT)
				continue;
			if (rwc->invalid_vma && rwc->invalid_vma(vma, rwc->arg))
				continue;
			if (overlap && pksm_reached_before(node, map, vma))
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
