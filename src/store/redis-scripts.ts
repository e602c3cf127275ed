import type { Cluster, Redis } from "ioredis";
import type { MessageDraft } from "./stored-message.js";

/**
 * Lua run inside Redis by the Redis store. Every key a script touches belongs
 * to the mailboxes passed in KEYS, and each mailbox's keys share one hash tag,
 * so a single-mailbox call is valid on Redis Cluster.
 *
 * Per mailbox (KEYS in groups of three, and the append script's latest hashes after them):
 *   meta    hash    epoch, seq (last assigned), trimmed (highest seq removed by the cap), until (latest expiry)
 *   log     stream  one entry per retained message, id `<seq>-0`, fields in this fixed order:
 *                   i id, t timeMs, x expiresAtMs, f fieldsJson[, k idempotency key, p fingerprint][, y message key]
 *   idem    hash    idempotency key -> seq of the message that used it
 *   latest  hash    message key -> seq of the newest message with it, while that message is in the log
 *
 * Field positions are relied on below: value of x is entry[2][6], of p is entry[2][12].
 */

const SHARED = `
local function fmt(n) return string.format('%.0f', n) end

-- The retained, unexpired entry an idempotency key points to, or nil.
local function original(idem, log, key, now)
  local seq = redis.call('HGET', idem, key)
  if not seq then return nil end
  local found = redis.call('XRANGE', log, seq .. '-0', seq .. '-0')
  local entry = found[1]
  if not entry or tonumber(entry[2][6]) <= now then return nil end
  return entry
end

-- Forgets the idempotency key of an entry that leaves the log, unless the key was reused since.
local function forget(idem, entry)
  local fields = entry[2]
  if fields[9] == 'k' then
    local seq = string.match(entry[1], '^(%d+)')
    if redis.call('HGET', idem, fields[10]) == seq then redis.call('HDEL', idem, fields[10]) end
  end
end
`;

/**
 * KEYS: meta, log, idem for each of M mailboxes, then latest for each of them.
 * ARGV: nodeId, nowMs, cap, channel, metaGraceMs, dryRun ('1': only check for a conflict, answer { 'ok' }),
 *       M, then M x (name, epochCandidate),
 *       then N, then N x (mailboxIndex, id, timeMs, expiresAtMs, fieldsJson, key or '', fingerprint or '',
 *       message key or '').
 * Returns { epochs of the M mailboxes, then per item: status (1 stored, 2 duplicate) and seq,
 *           plus id, timeMs, expiresAtMs, fieldsJson of the original for a duplicate },
 * or { 'conflict', mailboxIndex, epoch, seq, id, timeMs, expiresAtMs, fieldsJson } storing nothing.
 * Publishes `<nodeId> <epoch> <lastSeq> <mailbox>` on the channel for each mailbox that grew.
 */
export const APPEND_SCRIPT = `${SHARED}
-- Forgets the message key of an entry that leaves the log, unless a newer message has it.
local function forgetLatest(latest, entry)
  local fields = entry[2]
  for i = 9, #fields, 2 do
    if fields[i] == 'y' then
      local seq = string.match(entry[1], '^(%d+)')
      if redis.call('HGET', latest, fields[i + 1]) == seq then redis.call('HDEL', latest, fields[i + 1]) end
      return
    end
  end
end

local nodeId, now, cap, channel, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local dryRun = ARGV[6] == '1'
local M = tonumber(ARGV[7])
local names, candidates = {}, {}
local a = 8
for m = 1, M do names[m] = ARGV[a]; candidates[m] = ARGV[a + 1]; a = a + 2 end
local N = tonumber(ARGV[a]); a = a + 1
local items = {}
for n = 1, N do
  items[n] = { m = tonumber(ARGV[a]), i = ARGV[a + 1], t = ARGV[a + 2], x = ARGV[a + 3], f = ARGV[a + 4], k = ARGV[a + 5], p = ARGV[a + 6], y = ARGV[a + 7] }
  a = a + 8
end

-- Pass 1: a reused key with another fingerprint stores nothing of the call.
for n = 1, N do
  local item = items[n]
  if item.k ~= '' and redis.call('EXISTS', KEYS[3 * item.m - 2]) == 1 then
    local m = item.m
    local entry = original(KEYS[3 * m], KEYS[3 * m - 1], item.k, now)
    if entry and (entry[2][12] or '') ~= item.p then
      local f = entry[2]
      local epoch = redis.call('HGET', KEYS[3 * m - 2], 'epoch')
      return { 'conflict', m, epoch, string.match(entry[1], '^(%d+)'), f[2], f[4], f[6], f[8] }
    end
  end
end

if dryRun then return { 'ok' } end

-- Pass 2: append.
local state = {}
local function load(m)
  local s = state[m]
  if s then return s end
  local meta = KEYS[3 * m - 2]
  local v = redis.call('HMGET', meta, 'epoch', 'seq', 'trimmed', 'until')
  if not v[1] then
    -- A new life: whatever an older one left (its meta evicted before its log) must not block XADD ids.
    redis.call('DEL', KEYS[3 * m - 1], KEYS[3 * m], KEYS[3 * M + m])
    redis.call('HSET', meta, 'epoch', candidates[m], 'seq', 0, 'trimmed', 0, 'until', 0)
    v = { candidates[m], '0', '0', '0' }
  end
  s = { epoch = v[1], seq = tonumber(v[2]), trimmed = tonumber(v[3]), untilMs = tonumber(v[4]) or 0, grew = false }
  state[m] = s
  return s
end
for m = 1, M do load(m) end

local out = {}
for m = 1, M do out[m] = state[m].epoch end
for n = 1, N do
  local item = items[n]
  local m = item.m
  local meta, log, idem, latest = KEYS[3 * m - 2], KEYS[3 * m - 1], KEYS[3 * m], KEYS[3 * M + m]
  local s = state[m]
  local dup = nil
  if item.k ~= '' then dup = original(idem, log, item.k, now) end
  if dup then
    local f = dup[2]
    table.insert(out, 2)
    table.insert(out, string.match(dup[1], '^(%d+)'))
    table.insert(out, f[2]); table.insert(out, f[4]); table.insert(out, f[6]); table.insert(out, f[8])
  else
    -- Expired messages at the front go first, a few per append (not counted as trimmed: they expired).
    for _ = 1, 8 do
      local entry = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
      if not entry or tonumber(entry[2][6]) > now then break end
      forget(idem, entry)
      forgetLatest(latest, entry)
      redis.call('XDEL', log, entry[1])
    end
    local excess = redis.call('XLEN', log) - cap + 1
    if excess > 0 then
      local old = redis.call('XRANGE', log, '-', '+', 'COUNT', excess)
      for _, entry in ipairs(old) do
        forget(idem, entry)
        forgetLatest(latest, entry)
        redis.call('XDEL', log, entry[1])
        local seq = tonumber(string.match(entry[1], '^(%d+)'))
        if seq > s.trimmed then s.trimmed = seq end
      end
    end
    s.seq = s.seq + 1
    local id = fmt(s.seq) .. '-0'
    local fields = { 'i', item.i, 't', item.t, 'x', item.x, 'f', item.f }
    if item.k ~= '' then
      table.insert(fields, 'k'); table.insert(fields, item.k); table.insert(fields, 'p'); table.insert(fields, item.p)
      redis.call('HSET', idem, item.k, fmt(s.seq))
    end
    if item.y ~= '' then
      table.insert(fields, 'y'); table.insert(fields, item.y)
      redis.call('HSET', latest, item.y, fmt(s.seq))
    end
    redis.call('XADD', log, id, unpack(fields))
    local x = tonumber(item.x)
    if x > s.untilMs then s.untilMs = x end
    s.grew = true
    table.insert(out, 1)
    table.insert(out, fmt(s.seq))
  end
end

for m = 1, M do
  local s = state[m]
  if s.grew then
    local meta, log, idem = KEYS[3 * m - 2], KEYS[3 * m - 1], KEYS[3 * m]
    redis.call('HSET', meta, 'seq', fmt(s.seq), 'trimmed', fmt(s.trimmed), 'until', fmt(s.untilMs))
    -- The log and keys vanish once every message has expired; the meta outlives them so that
    -- seqs continue in the same epoch and a client is told "expired" rather than "epoch".
    redis.call('PEXPIREAT', log, fmt(s.untilMs))
    redis.call('PEXPIREAT', idem, fmt(s.untilMs))
    redis.call('PEXPIREAT', KEYS[3 * M + m], fmt(s.untilMs))
    redis.call('PEXPIREAT', meta, fmt(s.untilMs + grace))
    redis.call('PUBLISH', channel, nodeId .. ' ' .. s.epoch .. ' ' .. fmt(s.seq) .. ' ' .. names[m])
  end
end
return out
`;

/**
 * KEYS: meta, log. ARGV: epoch, seq (read after it), limit, nowMs.
 * Returns {} when the mailbox does not exist, else { epoch, lastSeq, trimmed, then per unexpired
 * message: seq, id, timeMs, expiresAtMs, fieldsJson }, at most `limit` messages, from one snapshot.
 */
export const READ_SCRIPT = `${SHARED}
local v = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'trimmed')
if not v[1] then return {} end
local last = tonumber(v[2])
local after = 0
if ARGV[1] == v[1] and tonumber(ARGV[2]) <= last then after = tonumber(ARGV[2]) end
local limit, now = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = { v[1], v[2], v[3] }
local count = 0
local start = fmt(after + 1) .. '-0'
-- Expired entries are skipped, so keep paging; the message cap bounds the whole stream.
while count < limit do
  local want = limit - count
  local page = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', want)
  for _, entry in ipairs(page) do
    local f = entry[2]
    if tonumber(f[6]) > now then
      table.insert(out, string.match(entry[1], '^(%d+)'))
      table.insert(out, f[2]); table.insert(out, f[4]); table.insert(out, f[6]); table.insert(out, f[8])
      count = count + 1
    end
  end
  if #page < want then break end
  start = '(' .. page[#page][1]
end
return out
`;

/**
 * KEYS: meta, log, latest. ARGV: maxKeys, nowMs.
 * Returns {} when the mailbox does not exist, else { epoch, lastSeq, trimmed, then per message: seq, id,
 * timeMs, expiresAtMs, fieldsJson } (as READ_SCRIPT): the newest message of each key, when unexpired,
 * of the maxKeys keys with the newest ones, in seq order, from one snapshot.
 */
export const LATEST_SCRIPT = `
local v = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'trimmed')
if not v[1] then return {} end
local maxKeys, now = tonumber(ARGV[1]), tonumber(ARGV[2])
local byKey = redis.call('HGETALL', KEYS[3])
local seqs = {}
for i = 2, #byKey, 2 do seqs[#seqs + 1] = tonumber(byKey[i]) end
table.sort(seqs, function(x, y) return x > y end)
local picked = {}
for _, seq in ipairs(seqs) do
  if #picked >= maxKeys then break end
  local id = string.format('%.0f', seq) .. '-0'
  local entry = redis.call('XRANGE', KEYS[2], id, id)[1]
  if entry and tonumber(entry[2][6]) > now then picked[#picked + 1] = entry end
end
local out = { v[1], v[2], v[3] }
for i = #picked, 1, -1 do
  local entry = picked[i]
  local f = entry[2]
  table.insert(out, string.match(entry[1], '^(%d+)'))
  table.insert(out, f[2]); table.insert(out, f[4]); table.insert(out, f[6]); table.insert(out, f[8])
end
return out
`;

/** The append script's per-item status for a message it stored. */
export const STORED = 1;

type ScriptReply = (string | number)[];

/** A connection with the scripts defined as commands (see redis-connection.ts). */
export type ScriptedRedis = (Redis | Cluster) & {
  heraldAppend(numKeys: number, ...args: (string | number)[]): Promise<ScriptReply>;
  heraldRead(...args: (string | number)[]): Promise<ScriptReply>;
  heraldLatest(...args: (string | number)[]): Promise<ScriptReply>;
};

/** The draft in a script's reply from `at` on: id, timeMs, expiresAtMs, fieldsJson. */
export function draftAt(reply: readonly string[], at: number): MessageDraft {
  const [id, timeMs, expiresAtMs, fieldsJson] = reply.slice(at, at + 4) as [string, string, string, string];
  return { id, timeMs: Number(timeMs), expiresAtMs: Number(expiresAtMs), fieldsJson };
}
