-- The sign-in history records the use of an API token that has expired
-- (its row is kept a week after), under the token's user, as factor
-- api_token: its owner sees a script still sending it. A token that names
-- no token names no account, and is only counted against its address.
ALTER TABLE sign_in_history DROP CONSTRAINT sign_in_history_factor_check,
    ADD CONSTRAINT sign_in_history_factor_check
        CHECK (factor IN ('password', 'totp', 'recovery_code', 'passkey', 'api_token'));
