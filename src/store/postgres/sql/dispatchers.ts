/**
 * The dispatchers table (migrations/001-init.ts): one row per process.
 *
 * ENTER_DISPATCHER: ends the entries of earlier incarnations of the same
 * dispatcher id and enters this one, live until $6.
 * Inputs: 1. owner, 2. dispatcher id, 3. zone, 4. address, 5. now, 6. lease_expires_ms. Output: none.
 *
 * HEARTBEAT: keeps an entry live until $3; says whether it still was at $2,
 * and how many others are.
 * Inputs: 1. owner, 2. now, 3. lease_expires_ms. Output: one row { lease, peers } (lease NULL: no entry).
 *
 * LEAVE_DISPATCHER: Inputs: 1. owner. Output: none.
 */
export const ENTER_DISPATCHER = `
WITH ended AS (
  UPDATE dispatchers SET lease_expires_ms = 0 WHERE dispatcher_id = $2 AND owner <> $1
)
INSERT INTO dispatchers (owner, dispatcher_id, zone, address, registered_ms, lease_expires_ms)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (owner) DO UPDATE SET lease_expires_ms = excluded.lease_expires_ms, zone = excluded.zone, address = excluded.address`;

export const HEARTBEAT = `
WITH before AS (
  SELECT lease_expires_ms FROM dispatchers WHERE owner = $1
), renewed AS (
  UPDATE dispatchers SET lease_expires_ms = $3 WHERE owner = $1
)
SELECT (SELECT lease_expires_ms FROM before) AS lease,
       (SELECT count(*) FROM dispatchers WHERE owner <> $1 AND lease_expires_ms >= $2) AS peers`;

export const LEAVE_DISPATCHER = `DELETE FROM dispatchers WHERE owner = $1`;
