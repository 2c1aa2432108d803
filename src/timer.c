/* timer.c - one-shot timers for patterns (see patterns/pattern.h). */
#include <stdlib.h>

#include "kernel.h"
#include "../patterns/pattern.h"

struct ik_timer {
	uv_timer_t t;
	void (*cb)(void *);
	void *arg;
};

static void
fire(uv_timer_t *t)
{
	ik_timer *it = t->data;
	it->cb(it->arg);
}

ik_timer *
ik_timer_new(void (*cb)(void *), void *arg)
{
	ik_timer *t = malloc(sizeof(*t));
	if (t == NULL) {
		return NULL;
	}
	uv_timer_init(ik_loop(), &t->t);
	t->t.data = t;
	t->cb     = cb;
	t->arg    = arg;
	return t;
}

void
ik_timer_start(ik_timer *t, uint64_t ms)
{
	uv_timer_start(&t->t, fire, ms, 0);
}

void
ik_timer_stop(ik_timer *t)
{
	uv_timer_stop(&t->t);
}

static void
closed(uv_handle_t *h)
{
	free(h->data);
}

void
ik_timer_free(ik_timer *t)
{
	if (t != NULL) {
		uv_timer_stop(&t->t);
		uv_close((uv_handle_t *) &t->t, closed);
	}
}

uint64_t
ik_now_ms(void)
{
	return uv_now(ik_loop());
}

uint64_t
ik_now_us(void)
{
	return uv_hrtime() / 1000;
}
