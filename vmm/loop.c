/* loop.c — the one event loop: an epoll thread that owns device I/O (queue notifies, backend
 * sockets). Handlers run on this thread, one at a time. */
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "vmm.h"

struct loop {
  int epfd;
  int stopfd; /* an eventfd: loop_stop() writes it */
  pthread_t thread;
  bool running;
  pthread_mutex_t lock;       /* guards watches */
  struct loop_watch *watches; /* removed ones are freed after each batch of events */
};

/* epoll_event.data points at one of these. A removed watch is freed only after the batch of
 * events in which it was removed (an event for it may still be in that batch), so a guest that
 * keeps opening and closing connections cannot grow the list. */
struct loop_watch {
  int fd;
  loop_fn fn;
  void *opaque;
  bool removed;
  struct loop_watch *next;
};

int loop_create(struct loop **out, struct isola_error **err)
{
  struct loop *l = xzalloc(sizeof(*l));
  pthread_mutex_init(&l->lock, NULL);
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  l->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (l->epfd < 0 || l->stopfd < 0) {
    int r = isola_fail(err, errno, "cannot create the event loop");
    loop_destroy(l);
    return r;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->stopfd, &ev) < 0) {
    int r = isola_fail(err, errno, "cannot create the event loop");
    loop_destroy(l);
    return r;
  }
  *out = l;
  return 0;
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fn fn, void *opaque)
{
  struct loop_watch *w = xzalloc(sizeof(*w));
  *w = (struct loop_watch){.fd = fd, .fn = fn, .opaque = opaque};
  struct epoll_event ev = {.events = events, .data.ptr = w};
  if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    int r = -errno;
    free(w);
    return r;
  }
  pthread_mutex_lock(&loop->lock);
  w->next = loop->watches;
  loop->watches = w;
  pthread_mutex_unlock(&loop->lock);
  return 0;
}

int loop_del_fd(struct loop *loop, int fd)
{
  /* Out of epoll first: once marked, the watch may be freed after the current batch, and no
   * later epoll_wait may return it. */
  int r = epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
  pthread_mutex_lock(&loop->lock);
  for (struct loop_watch *w = loop->watches; w; w = w->next)
    if (w->fd == fd)
      __atomic_store_n(&w->removed, true, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&loop->lock);
  return r;
}

/* Free the watches removed so far; only the loop thread calls this, between batches. */
static void loop_sweep(struct loop *l)
{
  pthread_mutex_lock(&l->lock);
  for (struct loop_watch **p = &l->watches; *p;) {
    struct loop_watch *w = *p;
    if (__atomic_load_n(&w->removed, __ATOMIC_ACQUIRE)) {
      *p = w->next;
      free(w);
    } else {
      p = &w->next;
    }
  }
  pthread_mutex_unlock(&l->lock);
}

static void *loop_thread(void *arg)
{
  struct loop *l = arg;
  struct epoll_event evs[16];
  for (;;) {
    int n = epoll_wait(l->epfd, evs, ARRAY_SIZE(evs), -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return NULL;
    }
    for (int i = 0; i < n; i++) {
      struct loop_watch *w = evs[i].data.ptr;
      if (!w)
        return NULL; /* the stop eventfd */
      if (!__atomic_load_n(&w->removed, __ATOMIC_ACQUIRE))
        w->fn(w->opaque, evs[i].events);
    }
    loop_sweep(l);
  }
}

int loop_start(struct loop *loop, struct isola_error **err)
{
  int r = pthread_create(&loop->thread, NULL, loop_thread, loop);
  if (r)
    return isola_fail(err, r, "cannot start the event loop thread");
  loop->running = true;
  return 0;
}

void loop_stop(struct loop *loop)
{
  if (!loop->running)
    return;
  uint64_t one = 1;
  if (write(loop->stopfd, &one, sizeof(one)) < 0) {
    /* An eventfd write only fails on overflow, which one write cannot reach. */
  }
  pthread_join(loop->thread, NULL);
  loop->running = false;
}

void loop_destroy(struct loop *loop)
{
  if (!loop)
    return;
  loop_stop(loop);
  if (loop->epfd >= 0)
    close(loop->epfd);
  if (loop->stopfd >= 0)
    close(loop->stopfd);
  while (loop->watches) {
    struct loop_watch *w = loop->watches;
    loop->watches = w->next;
    free(w);
  }
  pthread_mutex_destroy(&loop->lock);
  free(loop);
}
