/**
 * The dispatchers table (migrations/002-ownership.ts): one row per process.
 *
 * EXPIRE_DISPATCHERS: ends the entries of earlier incarnations of a
 * dispatcher id, or (@all = 1, an exclusive store) every entry.
 * Inputs (named): @dispatcher_id, @all. Output: none.
 *
 * ENTER_DISPATCHER: this process's entry, live until @lease_expires_ms.
 * Inputs (named): @owner, @dispatcher_id, @zone, @address, @now, @lease_expires_ms. Output: none.
 *
 * DISPATCHER_LEASE: one entry's lease. Inputs (positional): 1. owner. Output: zero or one row { lease_expires_ms }.
 *
 * RENEW_DISPATCHER: Inputs (named): @owner, @lease_expires_ms. Output: none; changes = 0 when the entry is gone.
 *
 * LIVE_PEERS: Inputs (named): @owner, @now. Output: one row { n }: live entries other than @owner.
 *
 * LEAVE_DISPATCHER: Inputs (positional): 1. owner. Output: none.
 */
export const EXPIRE_DISPATCHERS = `
UPDATE dispatchers SET lease_expires_ms = 0
WHERE dispatcher_id = @dispatcher_id OR @all = 1`;

export const ENTER_DISPATCHER = `
INSERT INTO dispatchers (owner, dispatcher_id, zone, address, registered_ms, lease_expires_ms)
VALUES (@owner, @dispatcher_id, @zone, @address, @now, @lease_expires_ms)
ON CONFLICT (owner) DO UPDATE SET lease_expires_ms = excluded.lease_expires_ms, zone = excluded.zone, address = excluded.address`;

export const DISPATCHER_LEASE = `
SELECT lease_expires_ms FROM dispatchers WHERE owner = ?`;

export const RENEW_DISPATCHER = `
UPDATE dispatchers SET lease_expires_ms = @lease_expires_ms WHERE owner = @owner`;

export const LIVE_PEERS = `
SELECT count(*) AS n FROM dispatchers WHERE owner <> @owner AND lease_expires_ms >= @now`;

export const LEAVE_DISPATCHER = `
DELETE FROM dispatchers WHERE owner = ?`;
