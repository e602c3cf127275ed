import type { Cluster, Redis } from "ioredis";
import type { Listeners } from "./append-listeners.js";
import {
  MAX_UNREAD_COUNTED,
  type MarkReadResult,
  type ReadListener,
  type ReadMark,
  type ReadState,
} from "./mailbox-store.js";
import type { RedisKeys } from "./redis-keys.js";
import { orUnavailable } from "./store-unavailable.js";

/** A reader's position outlives its last mark by this much; a reader away longer starts from "nothing read". */
export const READ_POSITION_TTL_MS = 30 * 24 * 60 * 60_000;

/**
 * KEYS: meta, log, reads (one mailbox's, one hash tag).
 * ARGV: reader, mode ('mark' or 'state'), mark epoch ('' = current), mark seq, nowMs, max unread, ttlMs,
 *       channel, nodeId, mailbox.
 * Returns { status ('moved', 'unchanged', 'past-head'), epoch, seq, unread, lastSeq }. The rule is
 * read-marks.ts's decideMark; a move is published on the channel as a JSON array
 * [nodeId, mailbox, reader, epoch, seq, unread, lastSeq].
 */
export const READ_POSITION_SCRIPT = `
local reader, mode, markEpoch, markSeq = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local now, max = tonumber(ARGV[5]), tonumber(ARGV[6])
local v = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
local epoch, lastSeq = v[1], tonumber(v[2] or '0')
local current = 0
local held = redis.call('HGET', KEYS[3], reader)
if held and epoch then
  local heldEpoch, heldSeq = string.match(held, '^(%S+) (%d+)$')
  if heldEpoch == epoch then current = tonumber(heldSeq) end
end
-- Retained, unexpired entries after seq, up to max; the message cap bounds the pages.
local function unread(after)
  local n, start = 0, '(' .. string.format('%.0f', after) .. '-0'
  while n < max do
    local page = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', 1000)
    for _, entry in ipairs(page) do
      if tonumber(entry[2][6]) > now and n < max then n = n + 1 end
    end
    if #page < 1000 then break end
    start = '(' .. page[#page][1]
  end
  return n
end
if not epoch then
  if mode == 'mark' and markSeq > 0 then return { 'past-head', '', 0, 0, 0 } end
  return { 'unchanged', '', 0, 0, 0 }
end
if mode == 'state' or (markEpoch ~= '' and markEpoch ~= epoch) then
  return { 'unchanged', epoch, current, unread(current), lastSeq }
end
if markSeq > lastSeq then return { 'past-head', epoch, current, 0, lastSeq } end
if markSeq <= current then return { 'unchanged', epoch, current, unread(current), lastSeq } end
redis.call('HSET', KEYS[3], reader, epoch .. ' ' .. string.format('%.0f', markSeq))
redis.call('PEXPIRE', KEYS[3], ARGV[7])
local count = unread(markSeq)
redis.call('PUBLISH', ARGV[8], cjson.encode({ ARGV[9], ARGV[10], reader, epoch, markSeq, count, lastSeq }))
return { 'moved', epoch, markSeq, count, lastSeq }
`;

type Reply = (string | number)[];
export type ReadScripted = (Redis | Cluster) & { heraldReadPosition(...args: (string | number)[]): Promise<Reply> };

/** The Redis store's read positions: a hash per mailbox, one script for both marking and asking. */
export class RedisReadPositions {
  readonly #redis: ReadScripted;
  readonly #keys: RedisKeys;
  readonly #nodeId: string;
  readonly #listeners: Listeners<Parameters<ReadListener>>;

  constructor(redis: Redis | Cluster, keys: RedisKeys, nodeId: string, listeners: Listeners<Parameters<ReadListener>>) {
    redis.defineCommand("heraldReadPosition", { lua: READ_POSITION_SCRIPT, numberOfKeys: 3 });
    this.#redis = redis as ReadScripted;
    this.#keys = keys;
    this.#nodeId = nodeId;
    this.#listeners = listeners;
  }

  async mark(mailbox: string, reader: string, mark: ReadMark): Promise<MarkReadResult> {
    const [status, epoch, seq, unread, lastSeq] = await this.#call(mailbox, reader, "mark", mark.epoch ?? "", mark.seq);
    if (status === "past-head") return { status, lastSeq: Number(lastSeq) };
    const state = toState(epoch, seq, unread, lastSeq);
    if (status === "moved") this.#listeners.emit(mailbox, reader, state);
    return { status: status === "moved" ? "moved" : "unchanged", state };
  }

  async state(mailbox: string, reader: string): Promise<ReadState> {
    const [, epoch, seq, unread, lastSeq] = await this.#call(mailbox, reader, "state", "", 0);
    return toState(epoch, seq, unread, lastSeq);
  }

  /** A move another node published; this node's own were told at once. */
  onPublished(payload: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      return;
    }
    if (!Array.isArray(parsed) || parsed.length !== 7) return;
    const [node, mailbox, reader, epoch, seq, unread, lastSeq] = parsed as [string, string, string, ...unknown[]];
    if (node === this.#nodeId) return;
    this.#listeners.emit(mailbox, reader, toState(String(epoch), seq, unread, lastSeq));
  }

  async #call(mailbox: string, reader: string, mode: string, epoch: string, seq: number): Promise<string[]> {
    const [meta, log] = this.#keys.mailbox(mailbox);
    const args = [meta, log, this.#keys.reads(mailbox), reader, mode, epoch, seq, Date.now(), MAX_UNREAD_COUNTED];
    const reply = await orUnavailable(() =>
      this.#redis.heraldReadPosition(...args, READ_POSITION_TTL_MS, this.#keys.readChannel, this.#nodeId, mailbox),
    );
    return reply.map(String);
  }
}

function toState(epoch: unknown, seq: unknown, unread: unknown, lastSeq: unknown): ReadState {
  return {
    position: { epoch: String(epoch), seq: Number(seq) },
    unread: Number(unread),
    lastSeq: Number(lastSeq),
  };
}
