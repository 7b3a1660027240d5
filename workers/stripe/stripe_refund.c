/* stripe_refund: refunds and disputes of credit purchases (charge.refunded,
 * charge.dispute.*). No event is mapped to this kind yet (bw_stripe_kind_of): recorded and
 * ignored. */
#include "stripe_handlers.h"

int bw_stripe_refund_apply(struct bw_stripe_apply_ctx *ax)
{
	bw_stripe_outcome_set(ax->out, BW_SS_IGNORED, "refund event not handled");
	return 0;
}
