// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: the merge decisions of pksmd's visits: a page's probation, then
 * the zero page, the stable tree and the unstable table, the pair merge
 * that makes a KSM page in place (and, under fake merging, the lone merge
 * that makes a page with no partner one), and what becomes of a page
 * whose merge failed (see internal.h for the overview and the locks).  The rmap
 * mechanics are in rmap.c, the daemon's batches in pksmd.c.
 */

#include <linux/mm.h>
#include <linux/rmap.h>
#include <linux/slab.h>
#include <linux/swap.h>
#include "internal.h"

#define CREATE_TRACE_POINTS
#include <trace/events/pksm.h>

/* ---- merges: the zero page and pairs of unstable pages ------------------ */

/*
 * Merge @folio (referenced) with the zero page, adding the PTEs replaced
 * to *@replaced.  -ESRCH if it was not mapped.  0 with none replaced: it
 * lost its PTEs under us (a write fault, munmap or exit): no merge.
 */
static int pksm_merge_zero(struct folio *folio, unsigned int *replaced)
{
	unsigned int n;
	int err;

	if (!folio_trylock(folio))
		return -EAGAIN;
	err = pksm_merge_zero_locked(folio, &n);
	folio_unlock(folio);
	*replaced += n;
	return err;
}

/**
 * enum pksm_pair_blame - which page of a failed unstable merge failed it
 * @PKSM_BLAME_VISITOR: the page being visited (or neither in particular)
 * @PKSM_BLAME_PARTNER: the unstable page it was to merge with
 */
enum pksm_pair_blame {
	PKSM_BLAME_VISITOR,
	PKSM_BLAME_PARTNER,
};

/*
 * Whether @folio (locked, referenced) may become a KSM page in place: 0
 * with its anon_vma pinned in *@anon_vma for the mapping record, which
 * the walks that follow may sleep before making.  -EBUSY for a lazily
 * freeable page (MADV_FREE), never made a KSM page, or one in the swap
 * cache whose slot other swap entries still name: a sharer of a KSM page
 * that was swapped out and read back by another would find it there at
 * its own swap-in, and map it without a record (ksm_might_need_to_copy()
 * lets a KSM page through), out of reach of the reverse map; the slot is
 * freed if it can be.  -E2BIG if more mms map it than a claim may hold
 * (struct pksm_claim).  -ESRCH if it is mapped no more.
 */
static int pksm_may_become_ksm(struct folio *folio, struct anon_vma **anon_vma)
{
	if (!folio_test_swapbacked(folio))
		return -EBUSY;
	if (folio_test_swapcache(folio) && !folio_free_swap(folio))
		return -EBUSY;
	if (folio_mapcount(folio) > PKSM_CLAIM_BATCH)
		return -E2BIG;
	*anon_vma = folio_get_anon_vma(folio);
	return *anon_vma ? 0 : -ESRCH;
}

/*
 * Make @kfolio (locked, referenced, write-protected by pksm_wrprotect()
 * and found of merge domain @domain there) a KSM page in place: the new
 * node *@node, filed by the hash of what the page now holds (a visit's
 * hash was taken before the write-protect), gets the page's mapping record
 * *@map pinning *@anon_vma, all three taken over (set to NULL) on success,
 * when the node is in the stable tree.  @claim is allocated; the page's
 * mms are claimed for the conversion and let go.  -EAGAIN if stale nodes
 * kept blocking the tree (pksm_stable_place(); the only -EAGAIN), -EBUSY
 * or -EPERM if its mms could not be claimed (pksm_claim(): an mm busy, a
 * mapping not seen, too many mms; a mapping excluded), -ESRCH if the page
 * lost its PTEs since it was write-protected (nothing to share), -EBUSY
 * if it is still marked exclusive (never expected).  pages_shared is the
 * caller's to account, once it knows how many map the page.
 */
static int pksm_make_ksm(struct folio *kfolio, u64 domain,
			 struct pksm_stable_node **node,
			 struct pksm_mapping **map, struct anon_vma **anon_vma,
			 struct pksm_claim *claim)
{
	struct pksm_stable_place place;
	int err;

	(*node)->hash = pksm_hash_folio(kfolio);
	(*node)->domain = domain;
	err = pksm_stable_place(kfolio, (*node)->hash, domain, &place);
	if (err)
		return err;
	pksm_debug_delay(PKSM_DELAY_CONVERT);
	err = pksm_claim(kfolio, claim);
	if (err)
		return err;
	/*
	 * Unmapped since it was write-protected: nothing to share it with.
	 * Only a hint: munmap and exit zap with the mmap lock held for
	 * reading, so the page may still lose its PTEs from here on; it is
	 * then a KSM page mapped by what merges into it next (the visitor of
	 * a pair), or by nothing, freed with its last reference.
	 */
	if (!folio_mapped(kfolio)) {
		pksm_unclaim(claim);
		return -ESRCH;
	}
	/*
	 * Its exclusive mapping was write-protected and the mark cleared (a
	 * walk that found no PTE is -ESRCH): a KSM page marked exclusive
	 * would be reused in place by a write fault, under every sharer.
	 */
	if (WARN_ON_ONCE(PageAnonExclusive(&kfolio->page))) {
		pksm_unclaim(claim);
		return -EBUSY;
	}
	INIT_HLIST_HEAD(&(*node)->mappings);
	WRITE_ONCE((*node)->kpfn, folio_pfn(kfolio));
	(*node)->merged_at = (u32)jiffies;
	pksm_node_add_mapping(*node, kfolio, *map, *anon_vma);
	*map = NULL;
	*anon_vma = NULL;
	/*
	 * ->kpfn before ->mapping: a fault racing with the conversion may
	 * find the page a KSM page and read its node locklessly
	 * (pksm_hold()).
	 */
	smp_wmb();
	pksm_set_folio_node(kfolio, *node);
	pksm_unclaim(claim);
	pksm_keep_for_swap(kfolio);
	folio_mark_accessed(kfolio);
	pksm_stable_link(*node, &place);
	*node = NULL;
	return 0;
}

/* pksm_merge_pair(): @pfolio is a KSM page, @folio not (wholly) merged */
#define PKSM_PAIR_PARTIAL	1	/* a mapping of @folio was left */
#define PKSM_PAIR_RACED		2	/* no PTE of @folio was replaced */

/*
 * Merge two equal unstable pages: @pfolio (item @partner) becomes a KSM
 * page in place and @folio's (item @item) mappings move to it.  Both
 * referenced.  Returns 0 when both are merged, PKSM_PAIR_PARTIAL when
 * @pfolio became a KSM page but a mapping of @folio could not be replaced
 * yet, PKSM_PAIR_RACED when no PTE of @folio was replaced (a write fault,
 * munmap or exit took them first), or a negative error when nothing
 * changed, *blame saying which page was at fault (-EPERM: excluded from
 * merging, -EBUSY/-EAGAIN: pinned, locked or being changed, -ENOENT:
 * written since the compare, -ESRCH: unmapped meanwhile, -EXDEV: not of
 * merge domain @domain once write-protected (the visitor's, which the
 * lookup found the partner in), -E2BIG: the
 * partner is mapped by more mms than a claim may hold, see struct
 * pksm_claim).
 */
static int pksm_merge_pair(struct pksm_item *item, struct folio *folio,
			   struct pksm_item *partner, struct folio *pfolio,
			   u64 domain, enum pksm_pair_blame *blame)
{
	struct anon_vma *anon_vma = NULL, *panon_vma = NULL;
	u64 pdomain = PKSM_DOMAIN_NONE, vdomain = PKSM_DOMAIN_NONE;
	struct pksm_stable_node *node;
	struct pksm_mapping *pmap, *map;
	struct pksm_claim claim = { };
	unsigned int replaced;
	int err = -ENOMEM;

	*blame = PKSM_BLAME_VISITOR;
	node = kmem_cache_zalloc(pksm_node_cache, GFP_KERNEL);
	pmap = kmem_cache_alloc(pksm_mapping_cache, GFP_KERNEL);
	map = kmem_cache_alloc(pksm_mapping_cache, GFP_KERNEL);
	pksm_claim_alloc(&claim);
	if (!node || !pmap || !map || !claim.mms) {
		if (!node)
			pksm_alloc_failed(PKSM_ALLOC_NODE);
		if (!pmap || !map)
			pksm_alloc_failed(PKSM_ALLOC_MAPPING);
		if (!claim.mms)
			pksm_alloc_failed(PKSM_ALLOC_CLAIM);
		goto out_free;
	}
	err = -EAGAIN;
	*blame = PKSM_BLAME_PARTNER;
	if (!folio_trylock(pfolio))
		goto out_free;
	/*
	 * The partner must be able to become the KSM page.  Mapped by more
	 * mms than a claim may hold (-E2BIG), it makes way for a visitor
	 * mapped by fewer, which becomes the KSM page when the partner comes
	 * round; a visitor mapped by as many is refused itself.  Its
	 * anon_vma is pinned before the walks, which may sleep
	 * (pksm_merge_stable()).
	 */
	err = pksm_may_become_ksm(pfolio, &panon_vma);
	if (err == -E2BIG && folio_mapcount(folio) > PKSM_CLAIM_BATCH)
		*blame = PKSM_BLAME_VISITOR;
	if (err)
		goto out_unlock_p;
	*blame = PKSM_BLAME_VISITOR;
	err = -EAGAIN;
	if (!folio_trylock(folio))
		goto out_unlock_p;
	err = -ESRCH;
	anon_vma = folio_get_anon_vma(folio);
	if (!anon_vma)
		goto out_unlock;
	*blame = PKSM_BLAME_PARTNER;
	err = pksm_wrprotect(pfolio, &pdomain);
	if (!err) {
		*blame = PKSM_BLAME_VISITOR;
		err = pksm_wrprotect(folio, &vdomain);
	}
	/*
	 * Both of the lookup's domain @domain, as met now: else the one that
	 * is not (mapped across domains, or its domain changed) is blamed,
	 * the visitor first (the lookup took @domain from it).
	 */
	if (!err && (vdomain != domain || pdomain != domain)) {
		*blame = vdomain != domain ? PKSM_BLAME_VISITOR :
					     PKSM_BLAME_PARTNER;
		pksm_sc.nr_domain_refused++;
		err = -EXDEV;
	}
	if (!err && !pksm_recheck_equal(folio, pfolio))
		err = -ENOENT;		/* one of them was written */
	if (err)
		goto out_unlock;

	/*
	 * Both are read-only and equal: @pfolio becomes the KSM page.  A
	 * tree blocked by stale nodes (-EAGAIN) is the visitor's to retry,
	 * anything else the partner's.
	 */
	err = pksm_make_ksm(pfolio, domain, &node, &pmap, &panon_vma, &claim);
	if (err) {
		*blame = err == -EAGAIN ? PKSM_BLAME_VISITOR :
					  PKSM_BLAME_PARTNER;
		goto out_unlock;
	}

	*blame = PKSM_BLAME_VISITOR;
	pksm_node_add_mapping(pksm_folio_node(pfolio), folio, map, anon_vma);
	map = NULL;
	anon_vma = NULL;
	err = pksm_replace(folio, pfolio, &replaced);
	if (err)
		err = PKSM_PAIR_PARTIAL;
	else if (!replaced)
		err = PKSM_PAIR_RACED;
	pksm_node_account(pksm_folio_node(pfolio), folio_mapcount(pfolio));
out_unlock:
	folio_unlock(folio);
out_unlock_p:
	folio_unlock(pfolio);
out_free:
	pksm_claim_free(&claim);
	if (anon_vma)
		put_anon_vma(anon_vma);
	if (panon_vma)
		put_anon_vma(panon_vma);
	if (map)
		kmem_cache_free(pksm_mapping_cache, map);
	if (pmap)
		kmem_cache_free(pksm_mapping_cache, pmap);
	if (node)
		kmem_cache_free(pksm_node_cache, node);
	return err;
}

/*
 * Fake merging: make @folio (referenced; it passed its probation, and the
 * lookups of its merge domain @domain found no page to merge it with: no
 * equal page, or only KSM pages that are full or lazily freeable) a KSM
 * page of its own, so that a write to it takes the same copy-on-write
 * fault as a write to a page merged with another process's
 * (pksm_fake_merge).  Returns 0, or a negative error with the page still
 * an ordinary anonymous page, perhaps write-protected and no longer
 * marked exclusive (a write fault then reuses it if nothing else holds
 * it, else copies it), and its swap slot perhaps freed: -EAGAIN locked,
 * or stale nodes kept blocking the tree; -EBUSY pinned, lazily freeable,
 * in the swap cache with a slot still named, an mm busy or a mapping not
 * seen by the claim; -E2BIG mapped by more mms than a claim may hold;
 * -EPERM excluded from merging; -ESRCH unmapped meanwhile; -EXDEV not of
 * @domain once write-protected; -ENOMEM.
 */
static int pksm_merge_lone(struct folio *folio, u64 domain)
{
	u64 vdomain = PKSM_DOMAIN_NONE;
	struct anon_vma *anon_vma = NULL;
	struct pksm_stable_node *node;
	struct pksm_claim claim = { };
	struct pksm_mapping *map;
	int err = -ENOMEM;

	node = kmem_cache_zalloc(pksm_node_cache, GFP_KERNEL);
	map = kmem_cache_alloc(pksm_mapping_cache, GFP_KERNEL);
	pksm_claim_alloc(&claim);
	if (!node || !map || !claim.mms) {
		if (!node)
			pksm_alloc_failed(PKSM_ALLOC_NODE);
		if (!map)
			pksm_alloc_failed(PKSM_ALLOC_MAPPING);
		if (!claim.mms)
			pksm_alloc_failed(PKSM_ALLOC_CLAIM);
		goto out_free;
	}
	err = -EAGAIN;
	if (!folio_trylock(folio))
		goto out_free;
	err = pksm_may_become_ksm(folio, &anon_vma);
	if (!err)
		err = pksm_wrprotect(folio, &vdomain);
	if (!err && vdomain != domain) {
		pksm_sc.nr_domain_refused++;
		err = -EXDEV;
	}
	if (!err)
		err = pksm_make_ksm(folio, domain, &node, &map, &anon_vma,
				    &claim);
	if (!err)
		pksm_node_account(pksm_folio_node(folio),
				  folio_mapcount(folio));
	folio_unlock(folio);
out_free:
	pksm_claim_free(&claim);
	if (anon_vma)
		put_anon_vma(anon_vma);
	if (map)
		kmem_cache_free(pksm_mapping_cache, map);
	if (node)
		kmem_cache_free(pksm_node_cache, node);
	return err;
}

/* ---- what becomes of a page whose merge failed -------------------------- */

/*
 * The page of @item is excluded from merging: drop the item, counted in
 * excluded_pages unless an opt-out forgot it (and counted it) already.
 */
static enum pksm_outcome pksm_excluded(struct pksm_item *item)
{
	if (pksm_opted_in_only) {
		/*
		 * Only what opted in is merged, and a mapping that has not
		 * opted in is no reason to forget the page: it may be about
		 * to (MADV_MERGEABLE applies its flags after ksm_madvise()
		 * tracked the range), or be a fork-shared page's other
		 * process.  Back to probation, one level higher.  (An
		 * opt-out forgets its pages itself.)
		 */
		item->backoff = min_t(unsigned int, item->backoff + 1,
				      PKSM_MAX_BACKOFF);
		item->visits = PKSM_UNSEEN;
		return PKSM_OUT_PROBATION;
	}
	if (!READ_ONCE(item->dead))
		pksm_count_excluded();
	return PKSM_OUT_RELEASE;
}

/*
 * The visit's own page could not be write-protected (-EBUSY): an extra
 * reference (a pin by vmsplice, O_DIRECT or RDMA; for a fresh page, a
 * per-cpu LRU batch), or a mapping the walk could not see.  Trying again
 * every round would cost a tree walk and an rmap walk each time, for ever
 * if the page stays pinned: back to probation instead, one back-off
 * level higher, so that its next tries come ever more rarely (at the
 * defaults after 1, 2, 4 ... 64 s).  The LRU batches were drained first
 * unless this page was busy so before (item->busy, set here, also for a
 * page refused as mapped too widely): then a drain would not have helped.
 */
static enum pksm_outcome pksm_busy(struct pksm_item *item)
{
	item->backoff = min_t(unsigned int, item->backoff + 1,
			      PKSM_MAX_BACKOFF);
	item->busy = 1;
	pksm_sc.nr_merge_failures++;
	return PKSM_OUT_PROBATION;
}

/*
 * A merge failed for an extra reference on the page of @item (the page
 * the failure was blamed on): drain the LRU batches and say to try once
 * more, unless that page is busy (item->busy: it failed so before, and has
 * not changed since), since a page that stays pinned would drain the LRU
 * at each of its retries.
 */
static bool pksm_drain_for(struct pksm_item *item)
{
	if (item->busy)
		return false;
	pksm_drain_lru();
	return true;
}

/*
 * @item's page lost its PTEs while pksmd merged it (-ESRCH): unmapped by
 * munmap or exit (the item dies with the page), by reclaim (in the swap
 * cache until it is freed or mapped again), or copied away by a write
 * fault.  To probation, not the rescan list: a page that stays unmapped
 * is not looked at every batch, nor keeps the LRU drains going.  Its
 * probation is already passed (the caller keeps its checksum, as for a
 * busy page): if it is mapped again unchanged, it merges at its next
 * visit.
 */
static enum pksm_outcome pksm_unmapped(struct pksm_item *item)
{
	pksm_sc.nr_merge_races++;
	return PKSM_OUT_PROBATION;
}

/*
 * A page found unmapped (@sum its checksum) waits on probation, where a
 * page left unmapped (in the swap cache, pinned by a pipe) is looked at
 * rarely, rather than on the rescan list, looked at every batch and
 * keeping the LRU drains going.  Its probation is passed: mapped again
 * unchanged, it merges at its next visit.  A first visit (@out
 * PKSM_OUT_NEW) stays one.
 */
static enum pksm_outcome pksm_deferred(struct pksm_item *item, u32 sum,
				       enum pksm_outcome out)
{
	if (out == PKSM_OUT_NEW)
		return out;
	item->hash = sum;
	item->visits = PKSM_MAX_PROBATION;
	return PKSM_OUT_PROBATION;
}

/*
 * The outcome for @item of a merge that failed with @err (< 0), its page
 * the one the failure was blamed on, once the LRU batches were drained
 * and the merge tried again if that could help (pksm_drain_for()):
 * excluded (pksm_excluded()); pinned after the drain, or both pages of a
 * pair mapped by more mms than a claim may hold (-E2BIG), back to
 * probation one level higher (pksm_busy()), and so a page found of another
 * merge domain than its lookup's (-EXDEV: mapped across domains, or one
 * changed domain); unmapped meanwhile (pksm_unmapped()); anything else
 * (locked, written since the compare, no memory) a merge failure, tried
 * again from the rescan list.  *@busy is set when the page passed
 * probation unchanged and keeps its place there: the caller then makes its
 * checksum the one probation watches.
 */
static enum pksm_outcome pksm_merge_failed(struct pksm_item *item, int err,
					   bool *busy)
{
	if (err == -EPERM)
		return pksm_excluded(item);
	if (err == -EBUSY || err == -E2BIG || err == -EXDEV) {
		*busy = true;
		return pksm_busy(item);
	}
	if (err == -ESRCH) {
		*busy = true;	/* unchanged: keep its place */
		return pksm_unmapped(item);
	}
	pksm_sc.nr_merge_failures++;
	return PKSM_OUT_RESCAN;
}

/* ---- visits --------------------------------------------------------------- */

/*
 * A candidate: stable tree (by its sampled hash @hash), then unstable
 * table (by its checksum @sum), in its merge domain @domain.  @folio is
 * referenced.  PKSM_OUT_UNSTABLE asks the caller to file the page in the
 * unstable table.
 */
static enum pksm_outcome pksm_try_trees(struct pksm_item *item,
					struct folio *folio, u32 hash,
					u32 sum, u64 domain, bool *busy)
{
	enum pksm_pair_blame blame;
	struct pksm_stable_node *node;
	struct pksm_item *partner;
	struct folio *kfolio, *pfolio;
	bool full = false;
	u32 ksum = 0;
	int err;

	node = pksm_stable_search(folio, hash, domain, &kfolio);
	if (IS_ERR(node)) {
		pksm_sc.nr_merge_failures++;
		return PKSM_OUT_RESCAN;
	}
	if (node) {
		/*
		 * The newest KSM page with this content.  Full or lazily
		 * freeable: merge elsewhere (the unstable merge below starts
		 * another KSM page).
		 */
		if (!pksm_stable_has_room(kfolio, folio)) {
			full = true;
			folio_put(kfolio);
		} else {
			unsigned int replaced = 0;

			err = pksm_merge_stable(folio, kfolio, node, false,
						&replaced);
			if (err == -EBUSY && pksm_drain_for(item))
				err = pksm_merge_stable(folio, kfolio, node,
							false, &replaced);
			if (!err && !replaced)
				err = -ESRCH;	/* its PTEs went: raced */
			if (!err)
				trace_pksm_merge(folio_pfn(folio),
						 folio_pfn(kfolio),
						 PKSM_MERGE_STABLE);
			folio_put(kfolio);
			if (!err) {
				pksm_sc.nr_stable_merges++;
				return PKSM_OUT_RELEASE;
			}
			return pksm_merge_failed(item, err, busy);
		}
	}

	partner = pksm_unstable_search(folio, sum, domain, &pfolio);
	if (!partner)
		return PKSM_OUT_UNSTABLE;
	err = pksm_merge_pair(item, folio, partner, pfolio, domain, &blame);
	if (err == -EBUSY &&
	    pksm_drain_for(blame == PKSM_BLAME_PARTNER ? partner : item))
		err = pksm_merge_pair(item, folio, partner, pfolio, domain,
				      &blame);
	if (!err)
		trace_pksm_merge(folio_pfn(folio), folio_pfn(pfolio),
				 PKSM_MERGE_UNSTABLE);
	/* A KSM page now (err >= 0): what its copies are filed under. */
	if (err >= 0)
		ksum = pksm_checksum_folio(pfolio);
	folio_put(pfolio);
	if (err < 0 && blame == PKSM_BLAME_PARTNER) {
		enum pksm_outcome pout = PKSM_OUT_RESCAN;
		bool pbusy = false;

		/*
		 * The partner cannot merge now: excluded (for good); pinned
		 * after a drain of the LRU batches, or busy so before (back
		 * to probation one level higher, as a pinned visitor goes,
		 * watched by the checksum it was filed with, its key in the
		 * table); locked or changing (it tries again from the rescan
		 * list).  Out of the table with it, so that it blocks no
		 * equal page; this page takes its place.
		 * Mapped by too many mms (-E2BIG), unlike a visitor, it is
		 * back as the visitor next batch, no back-off.
		 */
		if (err != -E2BIG)
			pout = pksm_merge_failed(partner, err, &pbusy);
		if (pbusy)
			partner->visits = PKSM_MAX_PROBATION;
		pksm_unstable_remove(partner);
		pksm_item_finish(partner, pout);
		return PKSM_OUT_UNSTABLE;
	}
	/* -E2BIG: both mapped by too many mms, tried less often. */
	if (err < 0)
		return pksm_merge_failed(item, err, busy);
	/*
	 * The partner is a KSM page now: it leaves the unstable table, and
	 * other pages filed with its content are sent to merge into it.
	 */
	pksm_unstable_remove(partner);
	pksm_item_finish(partner, PKSM_OUT_RELEASE);
	pksm_unstable_kick(ksum, domain);
	if (full)
		pksm_sc.nr_dups++;
	if (err == PKSM_PAIR_RACED) {	/* @folio lost its PTEs meanwhile */
		*busy = true;	/* unchanged: keep its place */
		return pksm_unmapped(item);
	}
	if (err) {		/* @folio keeps a mapping: try again later */
		pksm_sc.nr_merge_failures++;
		return PKSM_OUT_RESCAN;
	}
	pksm_sc.nr_unstable_merges++;
	return PKSM_OUT_RELEASE;
}

/*
 * A candidate with no equal page in its merge domain @domain, under fake
 * merging: a KSM page of its own (pksm_merge_lone()), or the outcome of
 * the failure, as for any merge's.
 */
static enum pksm_outcome pksm_try_lone(struct pksm_item *item,
				       struct folio *folio, u64 domain,
				       bool *busy)
{
	int err = pksm_merge_lone(folio, domain);

	if (err == -EBUSY && pksm_drain_for(item))
		err = pksm_merge_lone(folio, domain);
	if (err)
		return pksm_merge_failed(item, err, busy);
	trace_pksm_merge(folio_pfn(folio), folio_pfn(folio), PKSM_MERGE_LONE);
	pksm_sc.nr_fake_merges++;
	return PKSM_OUT_RELEASE;
}

/*
 * A candidate (see pksm_try_trees()); under fake merging, one that would
 * be filed in the unstable table becomes a KSM page of its own instead,
 * so no candidate waits there writable.
 */
static enum pksm_outcome pksm_try_merge(struct pksm_item *item,
					struct folio *folio, u32 hash,
					u32 sum, u64 domain, bool *busy)
{
	enum pksm_outcome out;

	out = pksm_try_trees(item, folio, hash, sum, domain, busy);
	if (out == PKSM_OUT_UNSTABLE && READ_ONCE(pksm_fake_merge))
		out = pksm_try_lone(item, folio, domain, busy);
	return out;
}

/*
 * Merge the all-zero page of @item with the zero page: the visit's
 * outcome, @out if nothing decides otherwise; @sum is its checksum.
 */
static enum pksm_outcome pksm_visit_zero(struct pksm_item *item,
					 struct folio *folio, u32 sum,
					 enum pksm_outcome out)
{
	unsigned int replaced = 0;
	int err = pksm_merge_zero(folio, &replaced);
	bool busy = false;

	if (err == -EBUSY && pksm_drain_for(item))
		err = pksm_merge_zero(folio, &replaced);
	if (!err && !replaced) {
		/* Its PTEs went while it was read-only and checked. */
		pksm_sc.nr_merge_races++;
		err = -ESRCH;
	}
	if (!err) {
		trace_pksm_merge(folio_pfn(folio), zero_pfn(0),
				 PKSM_MERGE_ZERO);
		pksm_sc.nr_zero_merges++;
		return PKSM_OUT_RELEASE;
	}
	if (err == -ESRCH) {
		/*
		 * Unmapped under us: deferred, as an unmapped page is
		 * (counted in pages_skipped; in merge_races too if it was
		 * found read-only and checked and then lost its PTEs).
		 */
		pksm_sc.nr_deferred++;
		return pksm_deferred(item, sum, out);
	}
	/*
	 * Excluded, or a failure; or pinned: back off as a stable or
	 * unstable merge does, from the rescan list too (not the next batch
	 * again).
	 */
	out = pksm_merge_failed(item, err, &busy);
	if (busy) {
		item->hash = sum;
		item->visits = PKSM_MAX_PROBATION;
	}
	return out;
}

/*
 * One visit of an item taken off the new or a probation list (@from_new:
 * probation applies) or off the rescan list.  Returns false for no
 * progress: a first visit that found its page unmapped or held frozen
 * puts the item back on the new list unread.
 */
bool pksm_visit(struct pksm_item *item, bool from_new)
{
	enum pksm_outcome out = from_new ? PKSM_OUT_PROBATION : PKSM_OUT_RESCAN;
	struct folio *folio = pksm_item_folio(item);
	u64 domain = PKSM_DOMAIN_NONE;
	u32 hash, sum;
	bool busy = false, zero;

	/* A first visit that cannot read the page stays a first visit. */
	if (from_new && item->visits == PKSM_UNSEEN)
		out = PKSM_OUT_NEW;
	if (!folio) {
		/* Dead, or a refcount frozen for a moment (reclaim, migration). */
		if (READ_ONCE(item->dead))
			out = PKSM_OUT_RELEASE;
		pksm_item_finish(item, out);
		return out != PKSM_OUT_NEW;
	}
	if (!folio_mapped(folio)) {
		/* Born but not mapped yet, or being unmapped. */
		pksm_sc.nr_deferred++;
		if (out == PKSM_OUT_RESCAN)
			out = pksm_deferred(item, pksm_checksum_folio(folio),
					    out);
		goto out;
	}
	if (out == PKSM_OUT_NEW)
		out = PKSM_OUT_PROBATION;
	/*
	 * The checksum of the whole page first, then the sampled hash: a
	 * write in between leaves a checksum that re-verification will find
	 * changed, never a page filed under a hash it no longer has.
	 */
	sum = pksm_checksum_folio(folio);
	hash = pksm_hash_folio(folio);
	pksm_sc.pages_scanned++;

	zero = READ_ONCE(pksm_use_zero_pages) && hash == pksm_zero_hash &&
	       pksm_folio_is_zero(folio);
	/*
	 * A zero page merges at once, at any visit, unless it is on a
	 * back-off level (its place keeps being written right after its
	 * merges: pksm_place_cow()); then it waits out its probation first.
	 */
	if (zero && !(from_new && item->backoff)) {
		out = pksm_visit_zero(item, folio, sum, out);
		goto out;
	}
	if (from_new) {
		bool seen = item->visits != PKSM_UNSEEN;
		unsigned int need;

		need = pksm_probation_need(READ_ONCE(pksm_probation_scans),
					   item->backoff);
		/* Pressure finding duplicates: level 0 merges at first sight. */
		if (!item->backoff && pksm_swap_boosted())
			need = 0;
		/*
		 * Probation watches the whole page (its checksum is kept in
		 * item->hash meanwhile): a page written anywhere since the
		 * last visit starts again, one back-off level higher, so
		 * visited half as often.
		 */
		if (need) {
			if (!pksm_probation_step(&item->visits, &item->hash,
						 sum, need)) {
				if (!item->visits)
					item->busy = 0;	/* changed */
				if (seen && !item->visits &&
				    item->backoff < PKSM_MAX_BACKOFF) {
					item->backoff++;
					pksm_sc.nr_level_raises++;
				}
				goto out;
			}
			trace_pksm_probation_passed(pksm_item_pfn(item),
						    item->visits);
		}
	}
	if (zero) {
		out = pksm_visit_zero(item, folio, sum, out);
		goto out;
	}
	/* Its merge domain: what its lookups may find (domain.c). */
	if (!pksm_try_folio_domain(folio, &domain)) {
		pksm_sc.nr_merge_failures++;	/* locked: soon again */
		out = PKSM_OUT_RESCAN;
	} else if (domain == PKSM_DOMAIN_NONE) {
		pksm_sc.nr_deferred++;		/* unmapped meanwhile */
		out = pksm_deferred(item, sum, out);
	} else if (domain == PKSM_DOMAIN_MIXED) {
		/* Mapped across domains: until a COW or an exit parts them. */
		pksm_sc.nr_domain_refused++;
		out = pksm_busy(item);
		busy = true;
	} else {
		out = pksm_try_merge(item, folio, hash, sum, domain, &busy);
	}
	if (busy) {
		/*
		 * Busy (pksm_busy()): the page passed, so it tries again at
		 * its next visit if it is still unchanged then.
		 */
		item->hash = sum;
		item->visits = PKSM_MAX_PROBATION;
	}
out:
	if (pksm_item_finish(item, out))
		pksm_unstable_insert(item, sum, domain);
	folio_put(folio);
	return out != PKSM_OUT_NEW;
}
