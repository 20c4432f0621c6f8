-- Flow reuse (one pending flow per user, provider and scope set, instead of a new row per
-- call), the flow sweep, and token lifetimes for refresh ahead of expiry.

-- The pending flow's link token, sealed, so a repeated call hands out the same URL. Erased
-- once the link is followed or the flow ends; a flow without it is never handed out again.
ALTER TABLE flows ADD COLUMN link_sealed TEXT;

-- At most one flow that can still be handed out per user, provider and scopes (sorted and
-- joined by the caller): concurrent callers, on any replica, meet here.
CREATE UNIQUE INDEX flows_one_reusable ON flows (user_id, provider_id, scopes)
    WHERE status = 'pending' AND link_used = FALSE AND link_sealed IS NOT NULL;

-- The sweep deletes by expiry.
CREATE INDEX flows_expires ON flows (expires_at_ms);

-- The access token's whole lifetime (`expires_in` when it was issued), so the refresh skew
-- can be scaled to it. NULL: unknown (rows written before this migration).
ALTER TABLE connections ADD COLUMN token_lifetime_ms BIGINT;
