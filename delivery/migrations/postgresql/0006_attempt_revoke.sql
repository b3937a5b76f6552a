-- A pre-call 5G card the MaaP accepted but the call was answered or ended first is revoked
-- (delivery/revoke.py); the attempt keeps how that went: '' (not revoked), requested, revoked,
-- failed (the platform could not take it back) or refused (the platform refused the request).
ALTER TABLE attempts ADD COLUMN revoke TEXT NOT NULL DEFAULT '';
