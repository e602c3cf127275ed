/**
 * Lua run inside Redis by the Redis push subscriptions (redis-push-subscriptions.ts). Every key
 * carries the hash tag `{#push}`, so each script is valid on Redis Cluster.
 *
 *   subscriptions  hash  id -> subscription JSON
 *   targets        hash  id -> target JSON (id, endpoint, keys, expiresAtMs): what sending reads
 *   endpoints      hash  endpoint -> id
 *   expiry         zset  id, scored by expiresAtMs: what pruning reads, the earliest first
 *   mailbox:M      set   ids of the subscriptions that include mailbox M
 *   owner:O        zset  ids of owner O's subscriptions, scored by expiresAtMs: its bound counts
 *                        those above now
 *
 * A script touches only the keys it is given, and which mailbox sets those are depends on the
 * record it replaces: the caller passes the record it read, and a script that finds another one
 * changes nothing and answers `stale` with it, for the caller to try again.
 */

/**
 * KEYS: subscriptions, targets, endpoints, expiry, the owner's zset, the previous owner's zset (the
 *       owner's when none), then the sets of the draft's mailboxes, then those of the previous
 *       record's other mailboxes.
 * ARGV: maxPerOwner, maxTotal, the previous record as read ('' for none), its id ('' for none),
 *       the id to save under (the previous id to update in place), endpoint, subscription JSON,
 *       how many of the mailbox sets are the draft's, target JSON, expiresAtMs, nowMs.
 * Returns { 'updated' } or { 'created' }; { 'full', 'owner' | 'total' }; or { 'stale', record or '' }, changing nothing.
 */
export const SAVE_SCRIPT = `
local subscriptions, targets, endpoints, expiry = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local owner, previousOwner = KEYS[5], KEYS[6]
local maxPer, maxTotal = tonumber(ARGV[1]), tonumber(ARGV[2])
local expected, previousId, id, endpoint, json, n = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local target, expiresAt, now = ARGV[9], ARGV[10], ARGV[11]
local currentId = redis.call('HGET', endpoints, endpoint)
local current = currentId and redis.call('HGET', subscriptions, currentId) or ''
if current ~= expected then return { 'stale', current } end
local updating = previousId ~= '' and previousId == id
local lapsed = false
if updating then
  local score = redis.call('ZSCORE', owner, previousId)
  lapsed = score ~= false and tonumber(score) <= tonumber(now)
end
if lapsed and redis.call('ZCOUNT', owner, '(' .. now, '+inf') >= maxPer then return { 'full', 'owner' } end
if not updating then
  if redis.call('ZCOUNT', owner, '(' .. now, '+inf') >= maxPer then return { 'full', 'owner' } end
  local others = redis.call('HLEN', subscriptions) - (previousId ~= '' and 1 or 0)
  if others >= maxTotal then return { 'full', 'total' } end
end
if previousId ~= '' then
  for i = 7, #KEYS do redis.call('SREM', KEYS[i], previousId) end
  redis.call('ZREM', previousOwner, previousId)
  if not updating then
    redis.call('HDEL', subscriptions, previousId)
    redis.call('HDEL', targets, previousId)
    redis.call('ZREM', expiry, previousId)
  end
end
redis.call('HSET', subscriptions, id, json)
redis.call('HSET', targets, id, target)
redis.call('HSET', endpoints, endpoint, id)
redis.call('ZADD', expiry, expiresAt, id)
redis.call('ZADD', owner, expiresAt, id)
for i = 7, 6 + n do redis.call('SADD', KEYS[i], id) end
if updating then return { 'updated' } end
return { 'created' }
`;

/**
 * KEYS: subscriptions, targets, endpoints, expiry, the record's owner zset, then the sets of its mailboxes.
 * ARGV: id, the record as read, its endpoint.
 * Returns 1 when removed, 0 when the id names nothing, -1 (stale, nothing changed) when its record is another.
 */
export const REMOVE_SCRIPT = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return 0 end
if current ~= ARGV[2] then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[3], ARGV[3]) == ARGV[1] then redis.call('HDEL', KEYS[3], ARGV[3]) end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
for i = 6, #KEYS do redis.call('SREM', KEYS[i], ARGV[1]) end
return 1
`;
