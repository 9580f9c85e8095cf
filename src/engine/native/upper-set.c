// The writable layer's path set (see upper-set.h): a chained hash table of paths with
// their facts, under one readers-writer lock. Writers are rare (a create, a copy-up, a
// rename); readers are every FUSE request that resolves a path.
#define _GNU_SOURCE
#include "upper-set.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct node {
  struct node *next;
  uint64_t hash;
  uint32_t len;
  lf_upper_facts_t facts;
  char path[];
} node_t;

struct lf_upper_set {
  pthread_rwlock_t lock;
  node_t **buckets;
  uint32_t mask;
  uint32_t count;
  // Paths with LF_UPPER_HIDES_LOWER: when 0, no ancestor walk is needed.
  uint32_t hiding;
  char *root;
  size_t root_len;
};

// FNV-1a 64 (not the index's hash: this table is private to the process).
static uint64_t hash64 (const char *s, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char) s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static node_t * find (const lf_upper_set_t *s, const char *path, size_t len, uint64_t h) {
  if (s->buckets == NULL) return NULL;
  for (node_t *n = s->buckets[h & s->mask]; n != NULL; n = n->next) {
    if (n->hash == h && n->len == len && memcmp(n->path, path, len) == 0) return n;
  }
  return NULL;
}

lf_upper_set_t * lf_upper_new (void) {
  lf_upper_set_t *s = calloc(1, sizeof(*s));
  if (s == NULL) return NULL;
  if (pthread_rwlock_init(&s->lock, NULL) != 0) {
    free(s);
    return NULL;
  }
  return s;
}

void lf_upper_free (lf_upper_set_t *s) {
  if (s == NULL) return;
  if (s->buckets != NULL) {
    for (uint32_t i = 0; i <= s->mask; i++) {
      for (node_t *n = s->buckets[i], *next; n != NULL; n = next) {
        next = n->next;
        free(n);
      }
    }
  }
  free(s->buckets);
  free(s->root);
  pthread_rwlock_destroy(&s->lock);
  free(s);
}

// Doubles the table (64 buckets at first). On ENOMEM the old table keeps chaining.
static void grow (lf_upper_set_t *s) {
  uint32_t size = s->buckets == NULL ? 64 : (s->mask + 1) * 2;
  node_t **b = calloc(size, sizeof(*b));
  if (b == NULL) return;
  if (s->buckets != NULL) {
    for (uint32_t i = 0; i <= s->mask; i++) {
      for (node_t *n = s->buckets[i], *next; n != NULL; n = next) {
        next = n->next;
        n->next = b[n->hash & (size - 1)];
        b[n->hash & (size - 1)] = n;
      }
    }
    free(s->buckets);
  }
  s->buckets = b;
  s->mask = size - 1;
}

static int hides (const node_t *n) {
  return (n->facts.flags & LF_UPPER_HIDES_LOWER) != 0;
}

int lf_upper_set (lf_upper_set_t *s, const char *path, size_t len, const lf_upper_facts_t *facts) {
  if (len == 0 || path[0] != '/') return -EINVAL;
  uint64_t h = hash64(path, len);
  pthread_rwlock_wrlock(&s->lock);
  node_t *n = find(s, path, len, h);
  if (n == NULL) {
    if (s->buckets == NULL || s->count >= s->mask) grow(s);
    n = s->buckets == NULL ? NULL : malloc(sizeof(*n) + len);
    if (n == NULL) {
      pthread_rwlock_unlock(&s->lock);
      return -ENOMEM;
    }
    n->hash = h;
    n->len = (uint32_t) len;
    n->facts.flags = 0;
    memcpy(n->path, path, len);
    n->next = s->buckets[h & s->mask];
    s->buckets[h & s->mask] = n;
    s->count++;
  }
  int was = hides(n);
  n->facts = *facts;
  n->facts.flags &= LF_UPPER_ALL;
  if (was != hides(n)) s->hiding += hides(n) ? 1 : -1;
  pthread_rwlock_unlock(&s->lock);
  return 0;
}

static void unlink_node (lf_upper_set_t *s, node_t **link) {
  node_t *n = *link;
  *link = n->next;
  if (hides(n)) s->hiding--;
  s->count--;
  free(n);
}

void lf_upper_remove (lf_upper_set_t *s, const char *path, size_t len, int subtree) {
  pthread_rwlock_wrlock(&s->lock);
  if (s->buckets != NULL && !subtree) {
    uint64_t h = hash64(path, len);
    for (node_t **link = &s->buckets[h & s->mask]; *link != NULL; link = &(*link)->next) {
      node_t *n = *link;
      if (n->hash == h && n->len == len && memcmp(n->path, path, len) == 0) {
        unlink_node(s, link);
        break;
      }
    }
  } else if (s->buckets != NULL) {
    // A scan of the whole set: only a directory's removal needs it.
    int all = len == 1 && path[0] == '/';
    for (uint32_t i = 0; i <= s->mask; i++) {
      node_t **link = &s->buckets[i];
      while (*link != NULL) {
        node_t *n = *link;
        int hit = all || (n->len >= len && memcmp(n->path, path, len) == 0 && (n->len == len || n->path[len] == '/'));
        if (hit) unlink_node(s, link);
        else link = &n->next;
      }
    }
  }
  pthread_rwlock_unlock(&s->lock);
}

int lf_upper_set_root (lf_upper_set_t *s, const char *dir, size_t len) {
  char *copy = malloc(len + 1);
  if (copy == NULL) return -ENOMEM;
  memcpy(copy, dir, len);
  copy[len] = '\0';
  pthread_rwlock_wrlock(&s->lock);
  free(s->root);
  s->root = copy;
  s->root_len = len;
  pthread_rwlock_unlock(&s->lock);
  return 0;
}

uint32_t lf_upper_count (lf_upper_set_t *s) {
  pthread_rwlock_rdlock(&s->lock);
  uint32_t n = s->count;
  pthread_rwlock_unlock(&s->lock);
  return n;
}

void lf_upper_rdlock (lf_upper_set_t *s) {
  pthread_rwlock_rdlock(&s->lock);
}

void lf_upper_unlock (lf_upper_set_t *s) {
  pthread_rwlock_unlock(&s->lock);
}

int lf_upper_empty_locked (const lf_upper_set_t *s) {
  return s->count == 0;
}

int lf_upper_get_locked (const lf_upper_set_t *s, const char *path, size_t len, lf_upper_facts_t *facts) {
  node_t *n = find(s, path, len, hash64(path, len));
  if (n == NULL) return 0;
  if (facts != NULL) *facts = n->facts;
  return 1;
}

int lf_upper_blocked_locked (const lf_upper_set_t *s, const char *path, size_t len) {
  if (s->hiding == 0 || len <= 1) return 0;
  // Every proper ancestor, "/" first.
  node_t *root = find(s, "/", 1, hash64("/", 1));
  if (root != NULL && hides(root)) return 1;
  for (size_t i = 1; i < len; i++) {
    if (path[i] != '/') continue;
    node_t *n = find(s, path, i, hash64(path, i));
    if (n != NULL && hides(n)) return 1;
  }
  return 0;
}

const char * lf_upper_root_locked (const lf_upper_set_t *s, size_t *len) {
  if (len != NULL) *len = s->root_len;
  return s->root;
}
