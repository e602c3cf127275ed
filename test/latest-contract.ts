import { describe, expect, it } from "vitest";
import type { MailboxStore, StoredMessage } from "../src/store/mailbox-store.js";
import {
  ALL,
  type ContractStoreOptions,
  draft,
  eventually,
  item,
  range,
  SHORT_TTL_MS,
  SWEEP_GRACE_MS,
  seqs,
  sleep,
  stored,
} from "./store-contract.js";

/** What each backend's `latest` answers: see LatestRead in mailbox-store.ts. */
export function describeLatestContract(
  fresh: (options?: Partial<ContractStoreOptions>) => Promise<MailboxStore>,
  box: (label: string) => string,
): void {
  /** `[key, seq]` of each message of a latest answer. */
  const values = (messages: readonly StoredMessage[]) =>
    messages.map((message) => [JSON.parse(message.json).key as string, message.seq]);

  describe("latest", () => {
    it("answers the newest message of each key in seq order, without keyless messages", async () => {
      const store = await fresh();
      const a = box("a");
      const messages = (
        await store.append([
          item(a, { key: "cpu", data: 1 }),
          item(a, { key: "mem", data: 1 }),
          item(a, { body: "no key" }),
          item(a, { key: "cpu", data: 2 }),
          item(a, { key: "price:ACME/x", data: 1 }),
          item(a, { body: "no key either", data: { key: "nested, not a message key" } }),
          item(a, { key: "mem", data: 2 }),
        ])
      ).map(stored);
      const latest = await store.latest(a, ALL);
      expect(latest.messages).toEqual([messages[3], messages[4], messages[6]]);
      expect(latest.log).toEqual({ epoch: messages[0]?.epoch, lastSeq: 7, trimmedThrough: 0 });
      expect(latest.log).toEqual(await store.head(a));
    });

    it("keeps the maxKeys keys whose newest messages are the most recent", async () => {
      const store = await fresh();
      const a = box("a");
      await store.append(["k1", "k2", "k3", "k1", "k4", "k2"].map((key, n) => item(a, { key, n })));
      expect(values((await store.latest(a, 2)).messages)).toEqual([
        ["k4", 5],
        ["k2", 6],
      ]);
      expect(values((await store.latest(a, 1)).messages)).toEqual([["k2", 6]]);
      expect(values((await store.latest(a, 4)).messages)).toEqual([
        ["k3", 3],
        ["k1", 4],
        ["k4", 5],
        ["k2", 6],
      ]);
    });

    it("answers an unknown mailbox with no log and creates nothing", async () => {
      const store = await fresh();
      const a = box("never");
      expect(await store.latest(a, ALL)).toEqual({ log: undefined, messages: [] });
      expect(await store.head(a)).toBeUndefined();
      const [first] = await store.append([item(a, { key: "k" })]);
      expect(stored(first).seq).toBe(1);
    });

    it("leaves out a key whose newest message expired, even while an older one is retained", async () => {
      const store = await fresh();
      const a = box("a");
      const messages = (
        await store.append([
          item(a, { key: "k", data: "old" }),
          item(a, { key: "j", data: "stays" }),
          item(a, { key: "k", data: "brief" }, { ttlMs: SHORT_TTL_MS }),
          item(a, { key: "m", data: "brief" }, { ttlMs: SHORT_TTL_MS }),
        ])
      ).map(stored);
      expect(values((await store.latest(a, ALL)).messages)).toEqual([
        ["j", 2],
        ["k", 3],
        ["m", 4],
      ]);
      const [, , briefK, briefM] = messages as [StoredMessage, StoredMessage, StoredMessage, StoredMessage];
      await sleep(Math.max(briefK.expiresAtMs, briefM.expiresAtMs) - Date.now() + 50);
      // The older "k" is still retained and read, but it is not k's current value: k has none now.
      expect(seqs((await store.read(a, { epoch: "", seq: 0 }, ALL)).messages)).toEqual([1, 2]);
      expect(values((await store.latest(a, ALL)).messages)).toEqual([["j", 2]]);
      // Keys with no value do not count against maxKeys.
      expect(values((await store.latest(a, 1)).messages)).toEqual([["j", 2]]);
      // Nor does removing the expired messages bring the superseded value back.
      await sleep(SWEEP_GRACE_MS);
      await store.append([item(a, { body: "an append, which may remove expired messages" })]);
      expect(values((await store.latest(a, ALL)).messages)).toEqual([["j", 2]]);
      const [again] = await store.append([item(a, { key: "k", data: "new" })]);
      expect(values((await store.latest(a, ALL)).messages)).toEqual([
        ["j", 2],
        ["k", stored(again).seq],
      ]);
    });

    it("loses a key with its messages when they are trimmed", async () => {
      const store = await fresh({ maxMessagesPerMailbox: 3 });
      const a = box("a");
      await store.append(["a", "b", "a", "c"].map((key) => item(a, { key })));
      await store.append([item(a, { body: "keyless" })]);
      await eventually(async () => {
        const latest = await store.latest(a, ALL);
        expect(values(latest.messages)).toEqual([
          ["a", 3],
          ["c", 4],
        ]);
        expect(latest.log?.trimmedThrough).toBe(2);
      });
    });

    it("is one snapshot with its log: a reader continuing from lastSeq misses nothing and gets nothing twice", async () => {
      const store = await fresh();
      const a = box("a");
      const keys = ["k0", "k1", "k2", "k3", "k4"];
      const appends = range(1, 60).map((n) => store.append([item(a, { key: keys[n % keys.length], n })]));
      const snapshots = await Promise.all(
        [20, 40].map(async (after) => {
          await appends[after];
          return store.latest(a, ALL);
        }),
      );
      await Promise.all(appends);
      const all = (await store.read(a, { epoch: "", seq: 0 }, ALL)).messages;
      for (const snapshot of snapshots) {
        const log = snapshot.log as NonNullable<typeof snapshot.log>;
        // Exactly the newest of each key among the messages up to lastSeq.
        const upTo = new Map(all.filter((m) => m.seq <= log.lastSeq).map((m) => [JSON.parse(m.json).key, m]));
        expect(snapshot.messages).toEqual([...upTo.values()].sort((x, y) => x.seq - y.seq));
        const rest = await store.read(a, { epoch: log.epoch, seq: log.lastSeq }, ALL);
        expect(seqs(rest.messages)).toEqual(range(log.lastSeq + 1, 60));
      }
    });

    it("finds the key in the fields of a draft that does not carry it", async () => {
      const store = await fresh();
      const a = box("a");
      const { key: _omitted, ...bare } = draft({ key: "k", title: "from storage" });
      const [result] = await store.append([{ mailbox: a, draft: bare }]);
      expect((await store.latest(a, ALL)).messages).toEqual([stored(result)]);
    });
  });
}
