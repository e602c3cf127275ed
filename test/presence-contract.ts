import { nanoid } from "nanoid";
import { afterEach, describe, expect, it } from "vitest";
import type { PresenceChange, PresenceStore } from "../src/store/presence-store.js";

/**
 * Nodes of one presence backend that share state: a single-node backend gives
 * one (and cannot give two); Redis gives as many as asked, on one prefix.
 */
export interface PresenceNodes {
  node(): Promise<PresenceStore>;
  /** False for a backend that is one node by nature. */
  readonly multiNode: boolean;
  cleanup(): Promise<void>;
}

const WAIT_MS = 5000;

function recorder(store: PresenceStore, mailbox: string): PresenceChange[] {
  const heard: PresenceChange[] = [];
  store.watch((change) => {
    if (change.mailbox === mailbox) heard.push(change);
  });
  return heard;
}

/**
 * The PresenceStore contract: a report is in every node's snapshot and heard
 * by every node's listeners, in version order; a reader's presence over nodes
 * is the sum of its connections and its earliest `since`; a closed node
 * withdraws what it reported.
 */
export function describePresenceContract(name: string, makeNodes: () => Promise<PresenceNodes>): void {
  describe(`PresenceStore contract: ${name}`, () => {
    const made: PresenceNodes[] = [];
    afterEach(async () => {
      for (const nodes of made.splice(0)) await nodes.cleanup();
    });
    const fresh = async () => {
      const nodes = await makeNodes();
      made.push(nodes);
      return nodes;
    };
    const box = () => `room-${nanoid(8)}`;

    it("lists what was reported, with info, and forgets what was withdrawn", async () => {
      const store = await (await fresh()).node();
      const room = box();
      expect(await store.snapshot(room)).toMatchObject({ members: [] });
      await store.report(room, "alice", { connections: 2, sinceMs: 1000, info: '{"name":"Alice"}' });
      await store.report(room, "bob", { connections: 1, sinceMs: 2000, info: undefined });
      const snapshot = await store.snapshot(room);
      expect([...snapshot.members].sort((a, b) => a.sinceMs - b.sinceMs)).toEqual([
        { sub: "alice", info: '{"name":"Alice"}', connections: 2, sinceMs: 1000 },
        { sub: "bob", info: undefined, connections: 1, sinceMs: 2000 },
      ]);
      await store.report(room, "alice", undefined);
      expect((await store.snapshot(room)).members.map((m) => m.sub)).toEqual(["bob"]);
      expect((await store.snapshot(box())).members).toEqual([]);
    });

    it("tells listeners each change in version order; the snapshot's version covers what it holds", async () => {
      const store = await (await fresh()).node();
      const room = box();
      const heard = recorder(store, room);
      await store.report(room, "alice", { connections: 1, sinceMs: 1000, info: undefined });
      await store.report(room, "alice", { connections: 2, sinceMs: 1000, info: undefined });
      await store.report(room, "alice", undefined);
      await expect.poll(() => heard.length, { timeout: WAIT_MS }).toBe(3);
      expect(heard.map((change) => change.member?.connections)).toEqual([1, 2, undefined]);
      const versions = heard.map((change) => change.version);
      expect([...versions].sort((a, b) => a - b)).toEqual(versions);
      expect(new Set(versions).size).toBe(3);
      expect((await store.snapshot(room)).version).toBeGreaterThanOrEqual(versions[2] as number);
    });

    it("adds up one reader over nodes: connections summed, the earliest since, one member", async (context) => {
      const nodes = await fresh();
      if (!nodes.multiNode) context.skip();
      const [a, b] = [await nodes.node(), await nodes.node()];
      const room = box();
      const heardOnA = recorder(a, room);
      await a.report(room, "alice", { connections: 1, sinceMs: 5000, info: undefined });
      await b.report(room, "alice", { connections: 2, sinceMs: 3000, info: undefined });
      expect((await a.snapshot(room)).members).toEqual([
        { sub: "alice", info: undefined, connections: 3, sinceMs: 3000 },
      ]);
      await b.report(room, "alice", undefined);
      await expect.poll(() => heardOnA.at(-1)?.member?.connections, { timeout: WAIT_MS }).toBe(1);
      await a.report(room, "alice", undefined);
      await expect.poll(() => heardOnA.at(-1)?.member, { timeout: WAIT_MS }).toBeUndefined();
      expect(heardOnA.length).toBe(4);
    });

    it("withdraws a closed node's readers, and the other nodes hear them leave", async (context) => {
      const nodes = await fresh();
      if (!nodes.multiNode) context.skip();
      const [a, b] = [await nodes.node(), await nodes.node()];
      const room = box();
      const heardOnA = recorder(a, room);
      await b.report(room, "bob", { connections: 1, sinceMs: 1000, info: undefined });
      await expect.poll(() => heardOnA.length, { timeout: WAIT_MS }).toBe(1);
      await b.close();
      await expect.poll(() => heardOnA.at(-1)?.member, { timeout: WAIT_MS }).toBeUndefined();
      expect((await a.snapshot(room)).members).toEqual([]);
    });
  });
}
