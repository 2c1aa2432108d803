/*
 * device.c - devices (iok_device): one raw socket's deliveries become
 * another's sends, without the application.  Kernel thread, except
 * iok_device.
 */
#include "pipe.h"
#include "sock.h"

int
ik_device_forward(ik_sock *to, iok_msg *m)
{
	if (to->closing) {
		iok_msg_free(m);
		return IK_OK;
	}
	if (to->send_busy) {
		return IK_BUSY; /* keep order: wait for to's pump */
	}
	if (to->pat->send(to->pdata, m) == IK_BUSY) {
		to->send_busy = true;
		return IK_BUSY;
	}
	to->stats[IK_STAT_TX_MSGS]++;
	return IK_OK;
}

void
ik_devices_unlink(ik_sock *s)
{
	if (s->dev_peer != NULL) {
		ik_sock *p = s->dev_peer;
		if (p->dev_src == s)
			p->dev_src = NULL;
		if (p->dev_peer == s)
			p->dev_peer = NULL;
		s->dev_peer = NULL;
	}
	if (s->dev_src != NULL) {
		ik_sock *p = s->dev_src;
		if (p->dev_peer == s)
			p->dev_peer = NULL;
		if (p->dev_src == s)
			p->dev_src = NULL;
		s->dev_src = NULL;
	}
}

struct device_cmd {
	ik_cmd   cmd;
	ik_sock *a, *b;
};

static void
device_k(ik_cmd *c)
{
	struct device_cmd *dc = (struct device_cmd *) c;
	ik_sock           *a = dc->a, *b = dc->b;
	if (a->closing || (b != NULL && b->closing)) {
		ik_cmd_done(c, IOK_ECLOSED);
		return;
	}
	if (a->dev_peer != NULL || (b != NULL && b->dev_peer != NULL)) {
		ik_cmd_done(c, IOK_EBUSY);
		return;
	}
	if (b == NULL || b == a) {
		/* Reflector: what arrives on a goes back out of a. */
		a->dev_peer = a;
		a->dev_src  = a;
	} else {
		a->dev_peer = b;
		b->dev_src  = a;
		b->dev_peer = a;
		a->dev_src  = b;
	}
	/* Whatever the application had not yet received stays queued; new
	 * messages flow through.  Paused pipes start moving again. */
	ik_sock_resume_paused(a);
	if (b != NULL && b != a) {
		ik_sock_resume_paused(b);
	}
	ik_cmd_done(c, 0);
}

int
iok_device(iok_socket ha, iok_socket hb)
{
	ik_sock *a, *b = NULL;
	int      rv;
	if ((rv = ik_sock_hold(ha, &a)) != 0) {
		return rv;
	}
	if (hb.id != 0 && (rv = ik_sock_hold(hb, &b)) != 0) {
		ik_sock_rele(a);
		return rv;
	}
	if (!a->raw || (b != NULL && !b->raw)) {
		rv = IOK_EINVAL;
	} else if (b != NULL && b != a &&
	           (a->pat->proto != b->pat->peer || a->pat->peer != b->pat->proto)) {
		rv = IOK_EINVAL;
	} else if ((b == NULL || b == a) && a->pat->proto != a->pat->peer) {
		rv = IOK_EINVAL;
	} else {
		struct device_cmd dc = { .a = a, .b = b };
		rv                   = ik_cmd_call(&dc.cmd, device_k);
	}
	if (b != NULL) {
		ik_sock_rele(b);
	}
	ik_sock_rele(a);
	return rv;
}
