/**
 * Lua run inside Redis by the Redis schedule (redis-schedule.ts). Every key
 * carries the hash tag `{#schedule}` (see RedisKeys.schedule), so each script
 * is valid on Redis Cluster.
 *
 *   queue      sorted set  member -> due time, or the lease end of the claim holding it
 *   entries    hash        id -> "<member>\n<entry JSON>"
 *   order      string      counter; member = 15-digit order ":" id, so ties in score go in the order added
 *   mailbox:M  sorted set  member -> due time, of mailbox M's entries
 *   key:M K    string      "<fingerprint>\n<id>\n<dueAtMs>": kept while pending, then until the message expires
 *
 * A claimed entry's queue score is its lease end, which is always past its due time.
 */

/** The member inside an entries value, and the id inside a key record. */
const SHARED = `
local function memberOf(value) return string.match(value, '^([^\\n]*)') end
local function recordId(record) return string.match(record, '^[^\\n]*\\n([^\\n]*)\\n') end
`;

/**
 * KEYS: queue, entries, order, then per item: its mailbox's sorted set, its key record (any key when it has none).
 * ARGV: maxPerMailbox, maxTotal, N, then per item: id, dueAtMs, entry JSON, fingerprint, hasKey ('1'/'0'), mailbox.
 * Returns per item: status ('scheduled' or 'duplicate') and the key record of the original (or of the new entry);
 * or { 'conflict', record, item number } or { 'full', mailbox or '' }, adding nothing.
 */
export const ADD_SCRIPT = `${SHARED}
local maxPer, maxTotal, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out, adding, seen, per, names = {}, {}, {}, {}, {}
for i = 1, n do
  local a = 3 + (i - 1) * 6
  local id, due, json, fp, hasKey, name = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5] == '1', ARGV[a + 6]
  local index, rec = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local record = nil
  if hasKey then record = seen[rec] or redis.call('GET', rec) end
  if record then
    if string.match(record, '^([^\\n]*)') ~= fp then return { 'conflict', record, tostring(i) } end
    table.insert(out, 'duplicate'); table.insert(out, record)
  else
    local fresh = fp .. '\\n' .. id .. '\\n' .. due
    if hasKey then seen[rec] = fresh end
    table.insert(out, 'scheduled'); table.insert(out, fresh)
    table.insert(adding, { id = id, due = due, json = json, index = index, rec = hasKey and rec or nil, record = fresh })
    per[index] = (per[index] or 0) + 1
    names[index] = name
  end
end
if redis.call('HLEN', KEYS[2]) + #adding > maxTotal then return { 'full', '' } end
for index, count in pairs(per) do
  if redis.call('ZCARD', index) + count > maxPer then return { 'full', names[index] } end
end
for _, e in ipairs(adding) do
  local member = string.format('%015d', redis.call('INCR', KEYS[3])) .. ':' .. e.id
  redis.call('HSET', KEYS[2], e.id, member .. '\\n' .. e.json)
  redis.call('ZADD', KEYS[1], e.due, member)
  redis.call('ZADD', e.index, e.due, member)
  if e.rec then redis.call('SET', e.rec, e.record) end
end
return out
`;

/**
 * KEYS: queue, entries. ARGV: nowMs, leaseUntilMs, max.
 * Returns the entries values of at most max claimable entries, earliest first, now leased until leaseUntilMs.
 */
export const CLAIM_SCRIPT = `${SHARED}
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, member in ipairs(members) do
  local value = redis.call('HGET', KEYS[2], string.sub(member, 17))
  if value then
    redis.call('ZADD', KEYS[1], ARGV[2], member)
    table.insert(out, value)
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
return out
`;

/**
 * KEYS: queue, entries, then per item: its mailbox's sorted set, its key record (any key when it has none).
 * ARGV: N, then per item: id, hasKey ('1'/'0'), the message's expiry ms ('' when it was dropped unappended).
 * Removes each entry still there; its key record then expires with the message, or goes at once.
 */
export const COMPLETE_SCRIPT = `${SHARED}
local n = tonumber(ARGV[1])
for i = 1, n do
  local a = 1 + (i - 1) * 3
  local id, hasKey, expiresAt = ARGV[a + 1], ARGV[a + 2] == '1', ARGV[a + 3]
  local value = redis.call('HGET', KEYS[2], id)
  if value then
    local member = memberOf(value)
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZREM', KEYS[1 + 2 * i], member)
    redis.call('HDEL', KEYS[2], id)
    local rec = KEYS[2 + 2 * i]
    local record = hasKey and redis.call('GET', rec)
    if record and recordId(record) == id then
      if expiresAt == '' then redis.call('DEL', rec) else redis.call('PEXPIREAT', rec, expiresAt) end
    end
  end
end
return n
`;

/**
 * KEYS: queue, entries, the entry's mailbox sorted set, its key record (any key when it has none).
 * ARGV: id, nowMs, dueAtMs, hasKey ('1'/'0'). Returns 'cancelled', 'delivering' or 'missing'.
 */
export const CANCEL_SCRIPT = `${SHARED}
local value = redis.call('HGET', KEYS[2], ARGV[1])
if not value then return 'missing' end
local member = memberOf(value)
local score = tonumber(redis.call('ZSCORE', KEYS[1], member) or '0')
if score > tonumber(ARGV[3]) and score > tonumber(ARGV[2]) then return 'delivering' end
redis.call('ZREM', KEYS[1], member)
redis.call('ZREM', KEYS[3], member)
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[4] == '1' then
  local record = redis.call('GET', KEYS[4])
  if record and recordId(record) == ARGV[1] then redis.call('DEL', KEYS[4]) end
end
return 'cancelled'
`;

/** KEYS: the mailbox's sorted set, entries. ARGV: limit. Returns its entries values, earliest due first. */
export const LIST_SCRIPT = `
local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local out = {}
for _, member in ipairs(members) do
  local value = redis.call('HGET', KEYS[2], string.sub(member, 17))
  if value then table.insert(out, value) end
end
return out
`;
