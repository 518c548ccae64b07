-- Password checks are reserved before they are made: reserve_attempt counts
-- the recent attempts for an account and a client address and, below the
-- limits, records this one, all under transaction-scoped advisory locks on
-- both keys. Parallel guesses therefore queue on the lock instead of all
-- reading the same count, and exactly the allowed number get their password
-- checked. The locks are transaction-scoped so that they work through a
-- transaction pooler, and taken in a fixed order (account, then address) so
-- two reservations never deadlock.
--
-- kind separates failed logins from registrations: both count toward the
-- per-address limit, registrations also toward a limit of their own.
ALTER TABLE login_attempts ADD COLUMN kind text NOT NULL DEFAULT 'login' CHECK (kind IN ('login', 'register'));
CREATE INDEX login_attempts_ip_kind_idx ON login_attempts (ip, kind, attempted_at);

-- reserve_attempt returns the id of the recorded attempt, or NULL when a
-- limit is reached; the counts before this attempt; and, when refused, the
-- seconds until the oldest counted attempt leaves the window. A limit of 0
-- means none. For a registration the account key is '' and account_limit is
-- the per-address registration limit.
CREATE FUNCTION reserve_attempt(p_kind text, p_username_key text, p_ip text, p_window double precision,
        p_account_limit integer, p_ip_limit integer)
    RETURNS TABLE (attempt_id bigint, account_count integer, ip_count integer, retry_after double precision)
    LANGUAGE plpgsql VOLATILE
    SET search_path FROM CURRENT
AS $$
DECLARE
    since timestamptz := now() - make_interval(secs => p_window);
    oldest_account timestamptz;
    oldest_ip timestamptz;
    wait double precision := 0;
BEGIN
    IF p_kind = 'login' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('caddy-pgsession account ' || p_username_key, 0));
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('caddy-pgsession address ' || p_ip, 0));

    -- Each statement of a function sees what committed before it began, so
    -- these counts include every attempt recorded before the locks were ours.
    IF p_kind = 'login' THEN
        SELECT count(*), min(a.attempted_at) INTO account_count, oldest_account
            FROM login_attempts a
            WHERE a.username_key = p_username_key AND a.kind = 'login' AND a.attempted_at > since;
    ELSE
        SELECT count(*), min(a.attempted_at) INTO account_count, oldest_account
            FROM login_attempts a
            WHERE a.ip = p_ip AND a.kind = 'register' AND a.attempted_at > since;
    END IF;
    SELECT count(*), min(a.attempted_at) INTO ip_count, oldest_ip
        FROM login_attempts a
        WHERE a.ip = p_ip AND a.attempted_at > since;

    IF p_account_limit > 0 AND account_count >= p_account_limit THEN
        wait := greatest(wait, extract(epoch FROM oldest_account - since));
    END IF;
    IF p_ip_limit > 0 AND ip_count >= p_ip_limit THEN
        wait := greatest(wait, extract(epoch FROM oldest_ip - since));
    END IF;
    IF wait > 0 THEN
        attempt_id := NULL;
        retry_after := greatest(wait, 1);
        RETURN NEXT;
        RETURN;
    END IF;

    INSERT INTO login_attempts (kind, username_key, ip, expires_at)
        VALUES (p_kind, p_username_key, p_ip, now() + make_interval(secs => p_window))
        RETURNING id INTO attempt_id;
    retry_after := 0;
    RETURN NEXT;
END
$$;
