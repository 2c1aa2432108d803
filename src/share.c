/*
 * share.c - a second socket using a dialer's pipes (iok_dialer_share), e.g.
 * a subscriber on a database connection's pushes.  Kernel thread, except
 * iok_dialer_share.
 */
#include "ep.h"
#include "pipe.h"

void
ik_ep_unshare(ik_ep *ep)
{
	ik_sock *sh = ep->sharer;
	ik_node *n;
	if (sh == NULL) {
		return;
	}
	for (n = ik_list_first(&ep->pipes); n != NULL; n = ik_list_next(&ep->pipes, n)) {
		ik_pipe *p = ik_container_of(n, ik_pipe, enode);
		if (p->att[IK_ATT_SHARER].sock == sh) {
			ik_pipe_detach(p);
		}
	}
	ik_list_remove(&ep->share_node);
	ep->sharer = NULL;
	ik_sock_rele(sh);
}

/* The sharing socket is closing: leave every dialer it shares. */
void
ik_unshare_all(ik_sock *s)
{
	ik_node *n;
	while ((n = ik_list_first(&s->shared)) != NULL) {
		ik_ep_unshare(ik_container_of(n, ik_ep, share_node));
	}
}

struct share_cmd {
	ik_cmd   cmd;
	ik_ep   *ep;
	ik_sock *s;
};

static void
share_k(ik_cmd *c)
{
	struct share_cmd *sc = (struct share_cmd *) c;
	ik_ep            *ep = sc->ep;
	ik_sock          *s  = sc->s;
	ik_node          *n;
	int               rv = 0;
	if (ep->closing || s->closing) {
		rv = IOK_ECLOSED;
	} else if (s == ep->sock) {
		rv = IOK_EINVAL;
	} else if (ep->sharer != NULL) {
		rv = IOK_EBUSY;
	} else if (!ep->dialer || !(ep->tran->flags & IK_TF_PUSH)) {
		rv = IOK_ENOTSUP; /* nothing would ever reach the sharer */
	}
	if (rv != 0) {
		ik_cmd_done(c, rv);
		return;
	}
	ep->sharer = s;
	ik_obj_ref(&s->obj);
	ik_list_append(&s->shared, &ep->share_node);
	for (n = ik_list_first(&ep->pipes); n != NULL; n = ik_list_next(&ep->pipes, n)) {
		ik_pipe *p = ik_container_of(n, ik_pipe, enode);
		if (p->state != IK_PIPE_CLOSING) {
			(void) ik_pipe_attach(p, s);
		}
	}
	ik_cmd_done(c, 0);
}

int
iok_dialer_share(iok_dialer d, iok_socket s)
{
	ik_ep   *ep;
	ik_sock *sk;
	int      rv;
	if ((rv = ik_ep_hold(d.id, IK_OBJ_DIALER, &ep)) != 0) {
		return rv;
	}
	if ((rv = ik_sock_hold(s, &sk)) == 0) {
		struct share_cmd sc = { .ep = ep, .s = sk };
		rv                  = ik_cmd_call(&sc.cmd, share_k);
		ik_sock_rele(sk);
	}
	ik_obj_rele(&ep->obj);
	return rv;
}
