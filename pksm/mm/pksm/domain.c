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
#include <linux/memcontrol.h>
#include <linux/pid.h>
#include <linux/rcupdate.h>
#include <linux/rmap.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
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
	u64 id;
#endif

	if (mode == PKSM_DOMAIN_ALL)
		return pksm_domain_make(mode, 0);
#ifdef CONFIG_MEMCG
	rcu_read_lock();
	owner = rcu_dereference(mm->owner);
	if (owner && pksm_owner_domain(owner, mode, &id))
		domain = pksm_domain_make(mode, id);
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

/* One line of pksm_domains_show(): a domain and its KSM pages. */
static void pksm_domain_line(struct seq_file *m, u64 domain,
			     unsigned long shared, unsigned long sharing)
{
	unsigned int mode = domain >> PKSM_DOMAIN_SHIFT;

	if (!shared || mode >= PKSM_DOMAIN_MODES)
		return;
	seq_printf(m, "%s %llu pages_shared %lu pages_sharing %lu\n",
		   pksm_domain_names[mode],
		   domain & (BIT_ULL(PKSM_DOMAIN_SHIFT) - 1), shared, sharing);
}

/**
 * pksm_domains_show() - what each merge domain's KSM pages save
 *	(/sys/kernel/debug/pksm/domains)
 * @m: the file
 *
 * One line a domain with KSM pages mapped: its mode and id (uid, cgroup
 * id as the inode number of its directory, session id; all 0), then
 * pages_shared and pages_sharing as /sys/kernel/mm/ksm/ counts them (a KSM
 * page mapped n > 0 times: one shared, n - 1 sharing).  The stable tree is
 * ordered by domain first, so one in-order walk under pksm_mutex groups
 * them; each node's kept map count (pksm_node_account()) is read, no page
 * is.  KSM pages of an earlier mode are listed under it.
 *
 * Return: 0, or -ERESTARTSYS if a signal came while waiting for
 * pksm_mutex.
 */
int pksm_domains_show(struct seq_file *m)
{
	unsigned long shared = 0, sharing = 0, seen = 0;
	u64 cur = PKSM_DOMAIN_NONE;
	struct rb_node *n;

	if (mutex_lock_interruptible(&pksm_mutex))
		return -ERESTARTSYS;
	for (n = rb_first(&pksm_stable_tree); n; n = rb_next(n)) {
		struct pksm_stable_node *node =
			rb_entry(n, struct pksm_stable_node, rb);
		int mapped = atomic_read(&node->mapped);

		if (node->domain != cur) {
			pksm_domain_line(m, cur, shared, sharing);
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
	pksm_domain_line(m, cur, shared, sharing);
	mutex_unlock(&pksm_mutex);
	return 0;
}
