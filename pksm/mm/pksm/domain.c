// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: merge domains
 *
 * Merging lets a process learn, by the time one write takes, whether
 * another process holds a page equal to its own (a write to a merged page
 * takes a copy-on-write fault).  merge_domain says whose pages may share a
 * frame at all: every process's (all, the default), or only those of
 * processes with the same effective uid, memory cgroup or session.  A
 * domain is a property of an mm, read through the process that owns it
 * (mm->owner, kept by the memory controller); the domain of a page is the
 * domain of every mm that maps it, or PKSM_DOMAIN_MIXED (no domain: it
 * merges with nothing) if they differ.  The cgroup is the memory cgroup:
 * cgroups without the memory controller share their parent's domain.
 *
 * Where the domain is enforced:
 *  - lookups: the stable tree is ordered by domain first and the unstable
 *    table files a page by its checksum and domain, so a lookup finds only
 *    pages of the visitor's domain (a page the unstable table returns is
 *    checked again, as a checksum collision could bring one of another);
 *  - merges: the write-protect walk, which meets every mapping of the page
 *    with the page locked, gives the page's domain again, and a merge
 *    whose pages' domains differ (one changed since the lookup) or that
 *    maps a page of several domains is refused (domain_refused);
 *  - swap-in: a KSM page read back from swap by a process of another
 *    domain is copied (ksm_might_need_to_copy()).
 * A change of merge_domain unmerges every page merged into a KSM page, as
 * run=2 does, and files every unstable page again: the pages merge anew
 * in the domains of the new mode (a KSM page made under the old one would
 * be merged into by no page: its node's domain is of another mode).  Merges
 * with the zero page are made whatever the mode: the zero page's content
 * is public, and whether one's own page was merged with it says nothing
 * of another process's pages.
 *
 * A process being forked has no domain (PKSM_DOMAIN_MIXED) until the fork
 * has linked it into its cgroup, in every mode but all: the child shares
 * its parent's pages from the copy of its page tables on, and until then
 * the memory controller reports the root cgroup and its session is not
 * set (its uid is, but a failed fork frees its credentials at once).  Its
 * parent's pages are refused meanwhile, as pages mapped across domains.
 *
 * Not enforced: a process that changes its domain (setuid(), a move to
 * another cgroup, setsid(), or a child born in another cgroup with
 * clone3(CLONE_INTO_CGROUP)) keeps the KSM pages it maps until it writes
 * them; it gains no new ones of its old domain, but its unstable pages
 * stay filed under the old one until they change.  The uid is the
 * effective uid of the thread that owns the mm: threads that switch
 * their credentials one by one change the domain of all the process's
 * pages.  Session ids are pids, reused once a session is gone.
 */

#include <linux/cred.h>
#include <linux/ksm.h>
#include <linux/memcontrol.h>
#include <linux/pid.h>
#include <linux/rcupdate.h>
#include <linux/rmap.h>
#include <linux/sched/signal.h>
#include <linux/sched/stat.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/uidgid.h>
#include "internal.h"

static_assert(PKSM_DOMAIN_MODES < 0xe,
	      "a mode's tag must stay clear of PKSM_DOMAIN_NONE and _MIXED");

unsigned int pksm_merge_domain = PKSM_DOMAIN_ALL;

const char *const pksm_domain_names[PKSM_DOMAIN_MODES] = {
	[PKSM_DOMAIN_ALL] = "all",
	[PKSM_DOMAIN_UID] = "uid",
	[PKSM_DOMAIN_CGROUP] = "cgroup",
	[PKSM_DOMAIN_SESSION] = "session",
};

/*
 * (M) A change of merge_domain whose unmerge did not finish (a signal, no
 * memory): the next write of merge_domain unmerges again, whatever it
 * writes.
 */
static bool pksm_domain_unmerge_due;

static u64 pksm_domain_make(unsigned int mode, u64 id)
{
	return ((u64)mode << PKSM_DOMAIN_SHIFT) |
	       (id & (BIT_ULL(PKSM_DOMAIN_SHIFT) - 1));
}

#ifdef CONFIG_MEMCG
/*
 * The id of @owner's domain under @mode (not all), under RCU; false if it
 * has none now: its fork has not given it its cgroup (cgroup_post_fork()
 * links it into its css_set; until then the memory controller reports the
 * root cgroup) or its session (not set until the fork's end), or the fork
 * failed (the task was never linked; its signal struct and credentials
 * are freed without waiting for RCU).  The css_set link is read without
 * css_set_lock, after the task's css_set pointer was set: on UML's x86
 * (TSO) a task seen linked is seen with its css_set; a fork that links it
 * meanwhile is seen on a later look.
 */
static bool pksm_owner_domain(struct task_struct *owner, unsigned int mode,
			      u64 *id)
{
	/* LAB 8 BEGIN: the id of owner's domain under mode (euid, memcg id, session) */
	struct pid *sid;

	if (list_empty(&owner->cg_list))
		return false;
	switch (mode) {
	case PKSM_DOMAIN_UID:
		*id = from_kuid(&init_user_ns, __task_cred(owner)->euid);
		return true;
	case PKSM_DOMAIN_CGROUP:
		*id = mem_cgroup_id(mem_cgroup_from_task(owner));
		return true;
	case PKSM_DOMAIN_SESSION:
		sid = task_session(owner);
		if (!sid)
			return false;
		*id = pid_nr(sid);
		return true;
	}
	return false;
	/* LAB 8 END */
}

/*
 * The domain of the process @owner under @mode (not all), under RCU;
 * PKSM_DOMAIN_MIXED if it has none now (pksm_owner_domain()).
 */
static u64 pksm_task_domain(struct task_struct *owner, unsigned int mode)
{
	u64 id;

	if (!pksm_owner_domain(owner, mode, &id))
		return PKSM_DOMAIN_MIXED;
	return pksm_domain_make(mode, id);
}
#endif

/**
 * pksm_mm_domain() - the merge domain of @mm under the current mode
 * @mm: a live mm (its owner is read under RCU)
 *
 * Return: the domain; PKSM_DOMAIN_MIXED, a domain no page may merge
 * into, for an mm with no owner (its last process is exiting) or whose
 * owner has none now (being forked or exiting: pksm_owner_domain()), and
 * for every mm of a kernel built without the memory controller (whose
 * mm->owner it reads; merge_domain then takes only all).
 */
u64 pksm_mm_domain(struct mm_struct *mm)
{
	unsigned int mode = READ_ONCE(pksm_merge_domain);
	u64 domain = PKSM_DOMAIN_MIXED;
#ifdef CONFIG_MEMCG
	struct task_struct *owner;
#endif

	if (mode == PKSM_DOMAIN_ALL)
		return pksm_domain_make(mode, 0);
#ifdef CONFIG_MEMCG
	rcu_read_lock();
	owner = rcu_dereference(mm->owner);
	if (owner)
		domain = pksm_task_domain(owner, mode);
	rcu_read_unlock();
#endif
	return domain;
}

/* The domain of pages mapped in @a and in @b (either may be none yet). */
static u64 pksm_domain_join(u64 a, u64 b)
{
	if (a == PKSM_DOMAIN_NONE || a == b)
		return b;
	if (b == PKSM_DOMAIN_NONE)
		return a;
	return PKSM_DOMAIN_MIXED;
}

/**
 * pksm_domain_add() - count the mm of @vma, which maps a page, in the
 *	domain of that page
 * @domain: the page's domain so far (PKSM_DOMAIN_NONE: no mapping yet)
 * @vma: a VMA that maps the page
 *
 * For the rmap walks that meet every mapping of a page (rmap.c).
 */
void pksm_domain_add(u64 *domain, struct vm_area_struct *vma)
{
	*domain = pksm_domain_join(*domain, pksm_mm_domain(vma->vm_mm));
}

static bool pksm_domain_one(struct folio *folio, struct vm_area_struct *vma,
			    unsigned long addr, void *arg)
{
	DEFINE_FOLIO_VMA_WALK(pvmw, folio, vma, addr, 0);
	u64 *domain = arg;

	/* The anon_vma tree holds every VMA that might map it, after fork. */
	if (!page_vma_mapped_walk(&pvmw))
		return true;
	page_vma_mapped_walk_done(&pvmw);
	pksm_domain_add(domain, vma);
	return *domain != PKSM_DOMAIN_MIXED;
}

/**
 * pksm_folio_domain() - the merge domain of an anonymous page
 * @folio: the page, locked and referenced (the reverse map is walked)
 *
 * The folio lock keeps ->mapping on one anon_vma root but not that
 * anon_vma alive: the walk pins it first (a process exiting meanwhile
 * frees it once its page tables are gone, while the page may still be
 * held), and finds no domain if there is none left to pin.
 *
 * Return: with merge_domain all, that one domain.  Otherwise the domain
 * of every mm that maps @folio; PKSM_DOMAIN_MIXED if they differ,
 * PKSM_DOMAIN_NONE if none maps it.  A hint once the folio is unlocked: a
 * fork may map it in another mm, and the owner of an mm may change its
 * domain.
 */
u64 pksm_folio_domain(struct folio *folio)
{
	u64 domain = PKSM_DOMAIN_NONE;
	struct rmap_walk_control rwc = {
		.rmap_one = pksm_domain_one,
		.arg = &domain,
	};
	struct anon_vma *anon_vma;

	if (READ_ONCE(pksm_merge_domain) == PKSM_DOMAIN_ALL)
		return pksm_domain_make(PKSM_DOMAIN_ALL, 0);
	anon_vma = folio_get_anon_vma(folio);
	if (!anon_vma)
		return PKSM_DOMAIN_NONE;	/* mapped no more */
	rmap_walk(folio, &rwc);
	put_anon_vma(anon_vma);
	return domain;
}

/**
 * pksm_try_folio_domain() - pksm_folio_domain() of a page pksmd holds a
 *	reference on but has not locked
 * @folio: the page, referenced
 * @domain: its domain, if the page could be locked
 *
 * Return: false if the page is locked by someone else (pksmd only
 * trylocks): its domain is not known now.
 */
bool pksm_try_folio_domain(struct folio *folio, u64 *domain)
{
	if (READ_ONCE(pksm_merge_domain) == PKSM_DOMAIN_ALL) {
		*domain = pksm_domain_make(PKSM_DOMAIN_ALL, 0);
		return true;
	}
	if (!folio_trylock(folio))
		return false;
	*domain = pksm_folio_domain(folio);
	folio_unlock(folio);
	return true;
}

/*
 * The mappings of KSM pages of a mode other than @mode (PKSM_DOMAIN_MODES:
 * of any mode), as pksm_account_all() just counted them.  A process forked
 * while the unmerge walked the others inherits such mappings; another pass
 * unmerges them (pksm_unmerge_until()).
 */
unsigned long pksm_other_mode_mapped(unsigned int mode)
{
	unsigned long mapped = 0;
	struct rb_node *n;

	lockdep_assert_held(&pksm_mutex);
	for (n = rb_first(&pksm_stable_tree); n; n = rb_next(n)) {
		struct pksm_stable_node *node =
			rb_entry(n, struct pksm_stable_node, rb);

		if ((node->domain >> PKSM_DOMAIN_SHIFT) != mode)
			mapped += max(atomic_read(&node->mapped), 0);
		cond_resched();
	}
	return mapped;
}

/**
 * pksm_set_merge_domain() - change what a merge domain is
 * @mode: enum pksm_domain_mode
 *
 * With pksm_mutex held, so pksmd merges nothing meanwhile and reclaim
 * (which only tries pksm_mutex) checks nothing.  Every unstable page is
 * filed again under the new mode's domains, and every page merged into a
 * KSM page is unmerged as run=2 does (a KSM page read back from swap
 * later is copied: its node's domain is of the old mode).  Pages merged
 * with the zero page stay merged: that merge is made in every mode.
 *
 * The unmerge is repeated while a KSM page of another mode is still
 * mapped (processes forked meanwhile), pksm_unmerge_until(); if one is
 * still mapped after it (an mm exiting, a count left stale), the
 * write fails with -EAGAIN.
 *
 * Return: 0, or the error that stopped the unmerge (-EINTR, -ENOMEM,
 * -EBUSY, -EAGAIN: see pksm_unmerge_until(), or a KSM page of another
 * mode still mapped); the mode is changed either way, and the next write
 * unmerges again.
 */
int pksm_set_merge_domain(unsigned int mode)
{
	int err;

	lockdep_assert_held(&pksm_mutex);
	if (mode == pksm_merge_domain && !pksm_domain_unmerge_due)
		return 0;
	WRITE_ONCE(pksm_merge_domain, mode);
	pksm_unstable_flush();
	pksm_domain_unmerge_due = true;
	err = pksm_unmerge_until(false, mode);
	if (!err && pksm_other_mode_mapped(mode))
		err = -EAGAIN;
	if (!err)
		pksm_domain_unmerge_due = false;
	return err;
}

/**
 * struct pksm_domain_zero - the zero-page merges of one mm, then of one
 *	merge domain
 * @mm: the mm, held by mmgrab() while the entries are of mms (compared
 *	as an identity; only mmdrop() touches it), then NULL
 * @domain: its domain, of the current mode
 * @pages: page table entries merged with the zero page (ksm_zero_pages;
 *	then summed over the domain)
 */
struct pksm_domain_zero {
	struct mm_struct *mm;
	u64 domain;
	long pages;
};

/**
 * struct pksm_domain_zeros - every domain's zero-page merges, in the
 *	stable tree's order of domains (pksm_domains_show())
 * @zero: one entry an mm during pksm_domain_zeros_fill(); then one a
 *	domain that has any, sorted by domain
 * @nr: how many
 * @next: the first one not printed yet
 */
struct pksm_domain_zeros {
	struct pksm_domain_zero *zero;
	size_t nr;
	size_t next;
};

static int pksm_domain_zero_by_mm(const void *a, const void *b)
{
	const struct pksm_domain_zero *x = a, *y = b;

	if (x->mm == y->mm)
		return 0;
	return x->mm < y->mm ? -1 : 1;
}

static int pksm_domain_zero_by_domain(const void *a, const void *b)
{
	const struct pksm_domain_zero *x = a, *y = b;

	if (x->domain == y->domain)
		return 0;
	return x->domain < y->domain ? -1 : 1;
}

/* Drop the mms the entries hold (pksm_domain_zeros_walk()). */
static void pksm_domain_zeros_drop(struct pksm_domain_zeros *zs)
{
	size_t i;

	for (i = 0; i < zs->nr; i++) {
		if (zs->zero[i].mm)
			mmdrop(zs->zero[i].mm);
		zs->zero[i].mm = NULL;
	}
}

#ifdef CONFIG_MEMCG
/*
 * Fill @zs with every mm that has zero-page merges, with its
 * ksm_zero_pages and domain under @mode, through the task that owns it
 * (mm->owner, kept by the memory controller).  Tasks are walked under
 * RCU; ->mm and ->owner are read under the task's task_lock() (an exit
 * or exec clears ->mm under it before handing the mm's ownership on, so
 * the mm is alive and the task its owner meanwhile, and mmgrab() keeps
 * its struct, so that no other mm takes its address before the caller
 * compares them); the domain is then read from the task, under RCU
 * alone.  A snapshot: an mm whose owner changes during the walk (a
 * thread-group leader exits, a CLONE_VM parent exits) may be met twice,
 * once through each owner (the caller keeps one), or not at all; so may
 * one whose owner is exiting or being moved to another cgroup (no domain
 * for a moment: PKSM_DOMAIN_MIXED, not listed).  Return: 0, -ENOMEM or
 * -EINTR.
 */
static int pksm_domain_zeros_walk(struct pksm_domain_zeros *zs,
				  unsigned int mode)
{
	struct task_struct *g, *t;
	size_t cap = 0;

again:
	pksm_domain_zeros_drop(zs);
	kvfree(zs->zero);
	zs->zero = NULL;
	zs->nr = 0;
	if (fatal_signal_pending(current))
		return -EINTR;
	/* tasks, not mms: a bound; more forked meanwhile: again */
	cap = max_t(size_t, 2 * cap, nr_threads + 64);
	zs->zero = kvmalloc_array(cap, sizeof(*zs->zero), GFP_KERNEL);
	if (!zs->zero)
		return -ENOMEM;
	zs->nr = 0;
	rcu_read_lock();
	for_each_process_thread(g, t) {
		struct mm_struct *mm;
		long pages = 0;

		task_lock(t);
		mm = t->mm;
		if (mm && !(t->flags & PF_KTHREAD) &&
		    rcu_access_pointer(mm->owner) == t)
			pages = mm_ksm_zero_pages(mm);
		if (pages > 0 && zs->nr < cap)
			mmgrab(mm);
		task_unlock(t);
		if (pages <= 0)
			continue;
		if (zs->nr == cap) {
			rcu_read_unlock();
			goto again;
		}
		zs->zero[zs->nr].mm = mm;
		zs->zero[zs->nr].pages = pages;
		if (mode == PKSM_DOMAIN_ALL)
			zs->zero[zs->nr].domain = pksm_domain_make(mode, 0);
		else
			zs->zero[zs->nr].domain = pksm_task_domain(t, mode);
		zs->nr++;
	}
	rcu_read_unlock();
	return 0;
}
#else
static int pksm_domain_zeros_walk(struct pksm_domain_zeros *zs,
				  unsigned int mode)
{
	/* all, the only mode: the one domain's count is the global one */
	zs->zero = kmalloc_obj(*zs->zero);
	if (!zs->zero)
		return -ENOMEM;
	zs->zero->mm = NULL;
	zs->zero->domain = pksm_domain_make(PKSM_DOMAIN_ALL, 0);
	zs->zero->pages = atomic_long_read(&ksm_zero_pages);
	zs->nr = 1;
	return 0;
}
#endif

/*
 * Fill @zs: each domain's zero-page merges under the current mode, one
 * entry a domain, sorted by domain.  Under pksm_mutex, so the mode stays.
 * Return: 0, -ENOMEM or -EINTR (@zs->zero is to be kvfree()d either way).
 */
static int pksm_domain_zeros_fill(struct pksm_domain_zeros *zs)
{
	size_t i, out;
	int err;

	lockdep_assert_held(&pksm_mutex);
	zs->nr = 0;
	zs->next = 0;
	zs->zero = NULL;
	err = pksm_domain_zeros_walk(zs, pksm_merge_domain);
	if (err) {
		pksm_domain_zeros_drop(zs);
		return err;
	}
	/* an mm met through two owners: once (each entry holds its mm) */
	sort(zs->zero, zs->nr, sizeof(*zs->zero), pksm_domain_zero_by_mm, NULL);
	for (i = 0, out = 0; i < zs->nr; i++) {
		if (out && zs->zero[i].mm &&
		    zs->zero[out - 1].mm == zs->zero[i].mm) {
			mmdrop(zs->zero[i].mm);
			continue;
		}
		zs->zero[out++] = zs->zero[i];
	}
	zs->nr = out;
	pksm_domain_zeros_drop(zs);
	/* one entry a domain */
	sort(zs->zero, zs->nr, sizeof(*zs->zero), pksm_domain_zero_by_domain,
	     NULL);
	for (i = 0, out = 0; i < zs->nr; i++) {
		if (out && zs->zero[out - 1].domain == zs->zero[i].domain)
			zs->zero[out - 1].pages += zs->zero[i].pages;
		else
			zs->zero[out++] = zs->zero[i];
	}
	zs->nr = out;
	return 0;
}

/* One line of pksm_domains_show(): a domain, its KSM pages and zero pages. */
static void pksm_domain_line(struct seq_file *m, u64 domain,
			     unsigned long shared, unsigned long sharing,
			     long zero)
{
	unsigned int mode = domain >> PKSM_DOMAIN_SHIFT;

	if ((!shared && zero <= 0) || mode >= PKSM_DOMAIN_MODES)
		return;
	seq_printf(m, "%s %llu pages_shared %lu pages_sharing %lu zero_pages %ld\n",
		   pksm_domain_names[mode],
		   domain & (BIT_ULL(PKSM_DOMAIN_SHIFT) - 1), shared, sharing,
		   max(zero, 0L));
}

/*
 * The line of @domain, after those of the domains before it that have
 * zero-page merges and no KSM page (@domain PKSM_DOMAIN_NONE: all that
 * are left).
 */
static void pksm_domain_emit(struct seq_file *m, struct pksm_domain_zeros *zs,
			     u64 domain, unsigned long shared,
			     unsigned long sharing)
{
	long zero = 0;

	while (zs->next < zs->nr && zs->zero[zs->next].domain < domain) {
		pksm_domain_line(m, zs->zero[zs->next].domain, 0, 0,
				 zs->zero[zs->next].pages);
		zs->next++;
	}
	if (zs->next < zs->nr && zs->zero[zs->next].domain == domain)
		zero = zs->zero[zs->next++].pages;
	pksm_domain_line(m, domain, shared, sharing, zero);
}

/**
 * pksm_domains_show() - what each merge domain's merges save
 *	(/sys/kernel/debug/pksm/domains)
 * @m: the file
 *
 * One line a domain with KSM pages mapped or zero-page merges: its mode
 * and id (uid, cgroup id as the inode number of its directory, session
 * id; all 0), then pages_shared and pages_sharing as /sys/kernel/mm/ksm/
 * counts them (a KSM page mapped n > 0 times: one shared, n - 1 sharing)
 * and zero_pages, its processes' page table entries merged with the zero
 * page (as /proc/PID/ksm_stat's ksm_zero_pages, summed over the domain's
 * processes as they are now: pksm_domain_zeros_fill()).  The stable tree
 * is ordered by domain first, so one in-order walk under pksm_mutex
 * groups the KSM pages; each node's kept map count (pksm_node_account())
 * is read, no page is.  KSM pages of an earlier mode are listed under it;
 * zero pages under the current mode (a change of mode leaves them
 * merged).  Copy-on-write faults are counted per memory cgroup, in
 * memory.stat's cow_ksm (patch 0004).
 *
 * Return: 0, -ENOMEM, -EINTR (killed during the walk of the processes),
 * or -ERESTARTSYS if a signal came while waiting for pksm_mutex.
 */
int pksm_domains_show(struct seq_file *m)
{
	unsigned long shared = 0, sharing = 0, seen = 0;
	struct pksm_domain_zeros zs;
	u64 cur = PKSM_DOMAIN_NONE;
	struct rb_node *n;
	int err;

	if (mutex_lock_interruptible(&pksm_mutex))
		return -ERESTARTSYS;
	err = pksm_domain_zeros_fill(&zs);
	if (err) {
		mutex_unlock(&pksm_mutex);
		kvfree(zs.zero);
		return err;
	}
	for (n = rb_first(&pksm_stable_tree); n; n = rb_next(n)) {
		struct pksm_stable_node *node =
			rb_entry(n, struct pksm_stable_node, rb);
		int mapped = atomic_read(&node->mapped);

		if (node->domain != cur) {
			if (cur != PKSM_DOMAIN_NONE)
				pksm_domain_emit(m, &zs, cur, shared, sharing);
			cur = node->domain;
			shared = 0;
			sharing = 0;
		}
		if (mapped > 0) {
			shared++;
			sharing += mapped - 1;
		}
		if (!(++seen & 1023))
			cond_resched();	/* the tree is ours: pksm_mutex */
	}
	if (cur != PKSM_DOMAIN_NONE)
		pksm_domain_emit(m, &zs, cur, shared, sharing);
	pksm_domain_emit(m, &zs, PKSM_DOMAIN_NONE, 0, 0);
	mutex_unlock(&pksm_mutex);
	kvfree(zs.zero);
	return 0;
}
