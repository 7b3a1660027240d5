/* org_enterprise: whether the backend's own `organizations` document makes an org
 * enterprise (`type: "enterprise"`; its _id is an ObjectId whose hex string is the org id, a
 * string _id is read too). The other flag, payments_customers.subscription_type, is
 * customer_doc's. Read by the stripe and sync workers before a Stripe subscription change:
 * enterprise orgs are never changed by Stripe (shared/sub_policy). */
#ifndef BW_ORG_ENTERPRISE_H
#define BW_ORG_ENTERPRISE_H

#include <mongoc/mongoc.h>

#include "err.h"
#include "mongo.h"

/* *out = 1 when org_id's organizations document has type "enterprise" (0: another type, or
 * no document). One round trip. 0, or -1 with err (TRANSIENT). */
int bw_org_enterprise(struct bw_mongo *m, mongoc_client_t *client, const char *org_id,
		      int *out, struct bw_err *err);

#endif
