// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: the stable and unstable trees, the stable nodes' mapping records
 * and rmap_walk_ksm() (see internal.h for the overview and the locks).
 */

#include <linux/mm.h>
#include <linux/rmap.h>
#include <linux/ksm.h>
#include <linux/rbtree.h>
#include <linux/llist.h>
#include <linux/slab.h>
#include <linux/sched.h>
#include "internal.h"

LIST_HEAD(pksm_unstable_fifo);	/* (M) re-verify order */
struct rb_root pksm_unstable_tree = RB_ROOT;	/* (M) */
struct rb_root pksm_stable_tree = RB_ROOT;	/* (M) */
LLIST_HEAD(pksm_dead_nodes);	/* lockless: free hook -> pksmd */

struct kmem_cache *pksm_unode_cache;
struct kmem_cache *pksm_node_cache;
struct kmem_cache *pksm_mapping_cache;

/* ---- KSM pages' ->mapping ---------------------------------------------- */

struct pksm_stable_node *pksm_folio_node(struct folio *folio)
{
	return folio_test_ksm(folio) ? folio_raw_mapping(folio) : NULL;
}

void pksm_set_folio_node(struct folio *folio,
			 struct pksm_stable_node *node)
{
	WRITE_ONCE(folio->mapping,
		   (void *)((unsigned long)node | PAGE_MAPPING_KSM));
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

int pksm_unstable_insert(struct pksm_item *item)
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
	pksm_sc.nr_unstable++;
	return 0;
}

/* Remove @item (PKSM_UNSTABLE) from the tree and the FIFO. */
void pksm_unstable_remove(struct pksm_item *item)
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
	pksm_sc.nr_unstable--;
}

/* The leftmost unstable node with @hash, or NULL. */
struct rb_node *pksm_unstable_first(u32 hash)
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
struct folio *pksm_node_folio(struct pksm_stable_node *node)
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

void pksm_stable_insert(struct pksm_stable_node *node)
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
	pksm_sc.nr_stable_nodes++;
}

struct rb_node *pksm_stable_first(u32 hash)
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
	pksm_sc.nr_mappings--;
}

/* Release the stable nodes whose KSM pages were freed. */
void pksm_release_dead_nodes(void)
{
	struct llist_node *list = llist_del_all(&pksm_dead_nodes);
	struct pksm_stable_node *node, *next;

	llist_for_each_entry_safe(node, next, list, dead_link) {
		struct pksm_mapping *map;
		struct hlist_node *tmp;

		rb_erase(&node->rb, &pksm_stable_tree);
		pksm_sc.nr_stable_nodes--;
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
void pksm_node_add_mapping(struct pksm_stable_node *node,
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
	pksm_sc.nr_mappings++;
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
void pksm_prune(unsigned long budget)
{
	struct rb_node *n = pksm_stable_after(pksm_prune_hash, pksm_prune_key);

	budget = min(budget, pksm_sc.nr_stable_nodes);
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

/* ---- the reverse map of KSM pages -------------------------------------- */

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
