/**
 * Lua run inside Redis by the Redis push subscriptions (redis-push-subscriptions.ts). Every key
 * carries the hash tag `{#push}`, so each script is valid on Redis Cluster.
 *
 *   subscriptions  hash  id -> subscription JSON
 *   endpoints      hash  endpoint -> id
 *   mailbox:M      set   ids of the subscriptions that include mailbox M
 *   owner:O        set   ids of owner O's subscriptions
 *
 * A script touches only the keys it is given, and which mailbox sets those are depends on the
 * record it replaces: the caller passes the record it read, and a script that finds another one
 * changes nothing and answers `stale` with it, for the caller to try again.
 */

/**
 * KEYS: subscriptions, endpoints, the owner's set, the previous owner's set (the owner's when none),
 *       then the sets of the draft's mailboxes, then those of the previous record's other mailboxes.
 * ARGV: maxPerOwner, maxTotal, the previous record as read ('' for none), its id ('' for none),
 *       the id to save under (the previous id to update in place), endpoint, subscription JSON,
 *       how many of the mailbox sets are the draft's.
 * Returns { 'updated' } or { 'created' }; { 'full', 'owner' | 'total' }; or { 'stale', record or '' }, changing nothing.
 */
export const SAVE_SCRIPT = `
local subscriptions, endpoints, owner, previousOwner = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local maxPer, maxTotal = tonumber(ARGV[1]), tonumber(ARGV[2])
local expected, previousId, id, endpoint, json, n = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local currentId = redis.call('HGET', endpoints, endpoint)
local current = currentId and redis.call('HGET', subscriptions, currentId) or ''
if current ~= expected then return { 'stale', current } end
local updating = previousId ~= '' and previousId == id
if not updating then
  if redis.call('SCARD', owner) >= maxPer then return { 'full', 'owner' } end
  local others = redis.call('HLEN', subscriptions) - (previousId ~= '' and 1 or 0)
  if others >= maxTotal then return { 'full', 'total' } end
end
if previousId ~= '' then
  for i = 5, #KEYS do redis.call('SREM', KEYS[i], previousId) end
  redis.call('SREM', previousOwner, previousId)
  if not updating then redis.call('HDEL', subscriptions, previousId) end
end
redis.call('HSET', subscriptions, id, json)
redis.call('HSET', endpoints, endpoint, id)
redis.call('SADD', owner, id)
for i = 5, 4 + n do redis.call('SADD', KEYS[i], id) end
if updating then return { 'updated' } end
return { 'created' }
`;

/**
 * KEYS: subscriptions, endpoints, the record's owner set, then the sets of its mailboxes.
 * ARGV: id, the record as read, its endpoint.
 * Returns 1 when removed, 0 when the id names nothing, -1 (stale, nothing changed) when its record is another.
 */
export const REMOVE_SCRIPT = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return 0 end
if current ~= ARGV[2] then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[2], ARGV[3]) == ARGV[1] then redis.call('HDEL', KEYS[2], ARGV[3]) end
for i = 3, #KEYS do redis.call('SREM', KEYS[i], ARGV[1]) end
return 1
`;
