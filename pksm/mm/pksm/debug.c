// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: debugfs (/sys/kernel/debug/pksm/): delay points that widen race
 * windows, the failed allocations of each site, the census of the stable
 * tree, the migration of a KSM page on demand and, on debug builds
 * (CONFIG_DEBUG_VM), a switch that makes merges trust the sampled hash,
 * for tests and debugging only (see internal.h for the overview and the
 * locks).  The counts of
 * failed allocations are kept whether or not there is debugfs.
 */

#include <linux/mm.h>
#include <linux/rmap.h>
#include <linux/ksm.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/delay.h>
#include <linux/migrate.h>
#include <linux/swap.h>
#include "internal.h"

/* Failed allocations by site (lockless). */
static atomic_long_t pksm_alloc_failures[PKSM_NR_ALLOC_SITES];

/* An allocation at @site failed: counted for debugfs alloc_failures. */
void pksm_alloc_failed(enum pksm_alloc_site site)
{
	atomic_long_inc(&pksm_alloc_failures[site]);
}

#ifdef CONFIG_DEBUG_FS
/* ---- debugfs: delays that widen race windows (tests only) ------------- */

/*
 * /sys/kernel/debug/pksm/delay_points (a mask of enum pksm_delay_point)
 * and delay_ms: pksmd sleeps delay_ms at each chosen point, so that a test
 * can make a process exit, fork, opt out or unmap while pksmd is in the
 * middle of a merge, or opt out while a KSM page is being migrated (the
 * migrating task sleeps there, its folios locked).  Off (0) by default.
 * Reclaim, which reaches the same points through its store-time check
 * (swap.c) with a folio locked and pksm_mutex held, never sleeps there
 * (PF_MEMALLOC: direct reclaim and kswapd).
 */
static u32 pksm_delay_points;
static u32 pksm_delay_ms;

void pksm_debug_delay(enum pksm_delay_point point)
{
	unsigned int ms = READ_ONCE(pksm_delay_ms);

	if ((READ_ONCE(pksm_delay_points) & point) && ms &&
	    !(current->flags & PF_MEMALLOC))
		msleep(min(ms, 10000U));
}

#ifdef CONFIG_DEBUG_VM
/* ---- debugfs: trust the hash (a negative control for the tests) ------- */

/* /sys/kernel/debug/pksm/unsafe_trust_hash: off (false) by default. */
static bool pksm_trust_hash;

/**
 * pksm_recheck_equal() - the compare that decides a merge
 * @a: the page to merge, locked and write-protected
 * @b: the page it is to share: a KSM page, or an unstable partner locked
 *	and write-protected
 *
 * Once a merge has write-protected its pages, the whole pages are
 * compared again: a write between the tree's compare and the
 * write-protect must stop the merge.  With unsafe_trust_hash set, equal
 * sampled hashes (32 of the page's 512 words) are trusted instead, so a
 * write elsewhere in the page is lost when the pages merge: a deliberate
 * defect of debug builds, so that a test can show the suite catches it.
 *
 * Return: true if @a and @b may be merged.
 */
bool pksm_recheck_equal(struct folio *a, struct folio *b)
{
	if (unlikely(READ_ONCE(pksm_trust_hash)))
		return pksm_hash_folio(a) == pksm_hash_folio(b);
	return pksm_folios_equal(a, b);
}

/**
 * pksm_trust_hash_read() - read unsafe_trust_hash: "0" or "1", a newline
 * @file: the debugfs file
 * @buf: the reader's buffer
 * @count: its size
 * @ppos: the position in the file
 *
 * Return: the bytes read, or -EFAULT.
 */
static ssize_t pksm_trust_hash_read(struct file *file, char __user *buf,
				    size_t count, loff_t *ppos)
{
	char val[2] = { READ_ONCE(pksm_trust_hash) ? '1' : '0', '\n' };

	return simple_read_from_buffer(buf, count, ppos, val, sizeof(val));
}

/**
 * pksm_trust_hash_write() - set (1) or clear (0) unsafe_trust_hash
 * @file: the debugfs file
 * @buf: the writer's buffer: "0" or "1", a newline allowed
 * @count: its size
 * @ppos: the position in the file (unused)
 *
 * Turning it on is logged: merges no longer compare whole pages.
 *
 * Return: @count, -EINVAL for anything but 0 or 1 (the value unchanged),
 * or -EFAULT.
 */
static ssize_t pksm_trust_hash_write(struct file *file,
				     const char __user *buf, size_t count,
				     loff_t *ppos)
{
	unsigned int val;
	int err;

	err = kstrtouint_from_user(buf, count, 10, &val);
	if (err == -EFAULT)
		return err;
	if (err || val > 1)
		return -EINVAL;
	if (val && !READ_ONCE(pksm_trust_hash))
		pr_warn("pksm: unsafe_trust_hash: merges trust the sampled hash\n");
	WRITE_ONCE(pksm_trust_hash, val);
	return count;
}

static const struct file_operations pksm_trust_hash_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = pksm_trust_hash_read,
	.write = pksm_trust_hash_write,
	.llseek = default_llseek,
};
#endif /* CONFIG_DEBUG_VM */

/* alloc_failures: "site count" a line, enum pksm_alloc_site order */
static int pksm_alloc_failures_show(struct seq_file *m, void *unused)
{
	static const char * const names[PKSM_NR_ALLOC_SITES] = {
		[PKSM_ALLOC_CHUNK] = "chunk",
		[PKSM_ALLOC_NODE] = "node",
		[PKSM_ALLOC_MAPPING] = "mapping",
		[PKSM_ALLOC_CLAIM] = "claim",
	};
	unsigned int i;

	for (i = 0; i < PKSM_NR_ALLOC_SITES; i++)
		seq_printf(m, "%s %ld\n", names[i],
			   atomic_long_read(&pksm_alloc_failures[i]));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(pksm_alloc_failures);

/* A census rmap_one: count the PTEs of @vma at @addr that map @folio. */
static bool pksm_census_one(struct folio *folio, struct vm_area_struct *vma,
			    unsigned long addr, void *arg)
{
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, addr, 0);
	unsigned long *ptes = arg;

	while (page_vma_mapped_walk(&pvmw))
		(*ptes)++;
	return true;
}

/**
 * struct pksm_census - what a walk of the stable tree finds, against what
 *	PKSM keeps (/sys/kernel/debug/pksm/census)
 * @shared: KSM pages mapped at least once, recounted from their map counts
 * @sharing: their further mappings, recounted
 * @walked: KSM pages whose reverse map was walked (the folio trylock
 *	succeeded)
 * @ptes: PTEs mapping those pages, as rmap_walk_ksm() reached them
 * @mapcount: the sum of those pages' map counts
 * @skipped: KSM pages not walked (locked by someone else, or no longer
 *	the node's)
 */
struct pksm_census {
	unsigned long shared;
	unsigned long sharing;
	unsigned long walked;
	unsigned long ptes;
	unsigned long mapcount;
	unsigned long skipped;
};

/*
 * census: the kept pages_shared and pages_sharing beside a recount, and
 * the PTEs rmap_walk_ksm() reaches beside the map counts.  On a quiet
 * system the kept counts equal the recount within period_seconds, and the
 * reverse map reaches every PTE exactly once (ptes == mapcount).  Walks
 * the whole stable tree under pksm_mutex: for tests and debugging only.
 */
static int pksm_census_show(struct seq_file *m, void *unused)
{
	struct pksm_census c = { };
	struct rb_node *n;

	mutex_lock(&pksm_mutex);
	for (n = rb_first(&pksm_stable_tree); n; n = rb_next(n)) {
		struct pksm_stable_node *node =
			rb_entry(n, struct pksm_stable_node, rb);
		struct folio *kfolio = pksm_node_folio(node);
		unsigned long ptes = 0;
		struct rmap_walk_control rwc = {
			.rmap_one = pksm_census_one,
			.arg = &ptes,
		};
		int mapped;

		if (!kfolio)
			continue;
		mapped = folio_mapcount(kfolio);
		if (mapped > 0) {
			c.shared++;
			c.sharing += mapped - 1;
		}
		/* Only a real KSM page of this node (lab 4 breaks the check). */
		if (pksm_folio_node(kfolio) != node) {
			c.skipped++;
		} else if (folio_trylock(kfolio)) {
			rmap_walk(kfolio, &rwc);
			c.walked++;
			c.ptes += ptes;
			c.mapcount += max(folio_mapcount(kfolio), 0);
			folio_unlock(kfolio);
		} else {
			c.skipped++;
		}
		folio_put(kfolio);
		cond_resched();
	}
	mutex_unlock(&pksm_mutex);
	seq_printf(m, "kept_shared %ld\nkept_sharing %ld\n",
		   atomic_long_read(&pksm_nr_shared),
		   atomic_long_read(&pksm_nr_sharing));
	seq_printf(m, "shared %lu\nsharing %lu\n", c.shared, c.sharing);
	seq_printf(m, "walked %lu\nptes %lu\nmapcount %lu\nskipped %lu\n",
		   c.walked, c.ptes, c.mapcount, c.skipped);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(pksm_census);

/* domains: each merge domain's KSM pages and zero-page merges (domain.c) */
static int pksm_domains_file_show(struct seq_file *m, void *unused)
{
	return pksm_domains_show(m);
}
DEFINE_SHOW_ATTRIBUTE(pksm_domains_file);

/*
 * migrate (write-only): the pfn of a KSM page, which is moved to another
 * frame as compaction would move it, so that a test can show its stable
 * node and records follow (compaction alone rarely picks one).  -EINVAL:
 * not a pfn of a KSM page of PKSM's; -EBUSY: it could not be isolated or
 * moved now (pinned, locked, in a per-CPU batch after a drain).
 */
static ssize_t pksm_migrate_write(struct file *file, const char __user *buf,
				  size_t count, loff_t *ppos)
{
	struct migration_target_control mtc = {
		.nid = NUMA_NO_NODE,
		.gfp_mask = GFP_HIGHUSER_MOVABLE,
		.reason = MR_SYSCALL,
	};
	struct folio *folio;
	unsigned long pfn;
	LIST_HEAD(list);
	bool isolated;
	int err;

	err = kstrtoul_from_user(buf, count, 0, &pfn);
	if (err)
		return err;
	if (!pfn_valid(pfn))
		return -EINVAL;
	folio = page_folio(pfn_to_page(pfn));
	if (!folio_try_get(folio))
		return -EINVAL;
	/* Still the same folio, and a KSM page of one of our nodes? */
	if (page_folio(pfn_to_page(pfn)) != folio || !folio_test_ksm(folio) ||
	    !pksm_folio_node(folio)) {
		folio_put(folio);
		return -EINVAL;
	}
	isolated = isolate_folio_to_list(folio, &list);
	if (!isolated) {
		lru_add_drain_all();
		isolated = isolate_folio_to_list(folio, &list);
	}
	folio_put(folio);	/* isolation holds its own reference */
	if (!isolated)
		return -EBUSY;
	err = migrate_pages(&list, alloc_migration_target, NULL,
			    (unsigned long)&mtc, MIGRATE_SYNC, MR_SYSCALL, NULL);
	if (err) {
		putback_movable_pages(&list);
		return err > 0 ? -EBUSY : err;
	}
	return count;
}

static const struct file_operations pksm_migrate_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = pksm_migrate_write,
	.llseek = noop_llseek,
};

/* The files of /sys/kernel/debug/pksm/ (pksm_init()). */
void __init pksm_debugfs_init(void)
{
	struct dentry *dir = debugfs_create_dir("pksm", NULL);

	debugfs_create_u32("delay_points", 0600, dir, &pksm_delay_points);
	debugfs_create_u32("delay_ms", 0600, dir, &pksm_delay_ms);
	debugfs_create_file("alloc_failures", 0400, dir, NULL,
			    &pksm_alloc_failures_fops);
	debugfs_create_file("census", 0400, dir, NULL, &pksm_census_fops);
	debugfs_create_file("domains", 0400, dir, NULL,
			    &pksm_domains_file_fops);
	debugfs_create_file("migrate", 0200, dir, NULL, &pksm_migrate_fops);
#ifdef CONFIG_DEBUG_VM
	debugfs_create_file("unsafe_trust_hash", 0600, dir, NULL,
			    &pksm_trust_hash_fops);
#endif
}
#endif /* CONFIG_DEBUG_FS */
