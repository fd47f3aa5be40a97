/*
 * list.h - intrusive circular doubly linked list. A node is embedded in
 * its owner; an unlinked node points to itself so list_del is idempotent.
 */
#ifndef SLUICE_LIST_H
#define SLUICE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list { struct list *prev, *next; };

static inline void list_init(struct list *l) { l->prev = l->next = l; }
static inline bool list_empty(const struct list *l) { return l->next == l; }
static inline void list_add_tail(struct list *head, struct list *n)
{
	n->prev = head->prev; n->next = head;
	head->prev->next = n; head->prev = n;
}
static inline void list_add_head(struct list *head, struct list *n)
{
	list_add_tail(head->next, n); /* before the first node */
}
static inline void list_del(struct list *n)
{
	n->prev->next = n->next; n->next->prev = n->prev;
	n->prev = n->next = n;
}
static inline struct list *list_pop(struct list *head)
{
	if (list_empty(head))
		return NULL;
	struct list *n = head->next;
	list_del(n);
	return n;
}
#define list_entry(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define list_for_each_safe(pos, tmp, head) \
	for (pos = (head)->next, tmp = pos->next; pos != (head); pos = tmp, tmp = pos->next)

#endif
