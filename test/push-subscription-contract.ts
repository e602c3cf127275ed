import { afterEach, describe, expect, it } from "vitest";
import type { PushSubscriptionStore } from "../src/store/push-subscription-store.js";
import { type ContractHandles, sharedHandles } from "./helpers/contract-handles.js";
import { pushDraft, pushEndpoint, ROOMY, saved, sortedIds, T, targetOf } from "./helpers/push-subscription-drafts.js";
import { pushSubscriptionExpiryCases } from "./push-subscription-expiry-cases.js";

export {
  LATER,
  pushDraft,
  pushEndpoint,
  pushKeys,
  ROOMY,
  saved,
  T,
  targetOf,
} from "./helpers/push-subscription-drafts.js";

export type ContractPushSubscriptions = ContractHandles<PushSubscriptionStore>;

export type PushSubscriptionFactory = () => Promise<ContractPushSubscriptions>;

/** A ContractPushSubscriptions on a backend shared by handles (nodes); see sharedHandles. */
export const sharedPushSubscriptions = sharedHandles<PushSubscriptionStore>;

/** The PushSubscriptionStore contract (src/store/push-subscription-store.ts), run against every backend. */
export function describePushSubscriptionContract(name: string, factory: PushSubscriptionFactory): void {
  describe(`push subscription store contract: ${name}`, () => {
    const opened: ContractPushSubscriptions[] = [];
    afterEach(async () => {
      for (const subscriptions of opened.splice(0)) await subscriptions.cleanup();
    });
    const open = async (): Promise<ContractPushSubscriptions> => {
      const subscriptions = await factory();
      opened.push(subscriptions);
      return subscriptions;
    };

    it("creates a subscription under a fresh id, created and updated now, and gets it back as saved", async () => {
      const { store } = await open();
      const draft = pushDraft(pushEndpoint(), "alice", ["room:1", "alerts"]);
      const result = await store.save(draft, ROOMY, T);
      expect(result).toEqual({
        status: "created",
        replaced: false,
        subscription: { ...draft, id: expect.any(String), createdAtMs: T, updatedAtMs: T },
      });
      const subscription = saved(result);
      expect(subscription.id).toMatch(/^[\w-]{21}$/);
      expect(await store.get(subscription.id)).toEqual(subscription);
      expect(await store.get("no-such-id")).toBeUndefined();
      const other = saved(await store.save(pushDraft(pushEndpoint(), "alice", ["alerts"]), ROOMY, T));
      expect(other.id).not.toBe(subscription.id);
      expect(await store.count()).toBe(2);
    });

    it("updates an endpoint its owner saves again in place: same id, new keys and mailboxes", async () => {
      const { store } = await open();
      const endpoint = pushEndpoint();
      const first = saved(await store.save(pushDraft(endpoint, "alice", ["a", "b"]), ROOMY, T));
      const again = pushDraft(endpoint, "alice", ["c", "b"]);
      const result = await store.save(again, ROOMY, T + 1000);
      expect(result).toEqual({
        status: "updated",
        subscription: { ...again, id: first.id, createdAtMs: T, updatedAtMs: T + 1000 },
      });
      expect(await store.get(first.id)).toEqual(saved(result));
      expect(await store.targets("a", T)).toEqual([]);
      expect(await store.targets("b", T)).toEqual([targetOf(saved(result))]);
      expect(await store.targets("c", T)).toEqual([targetOf(saved(result))]);
      expect(await store.count()).toBe(1);
    });

    it("hands an endpoint another owner saves to it under a new id; the old id names nothing", async () => {
      const { store } = await open();
      const endpoint = pushEndpoint();
      const alices = saved(await store.save(pushDraft(endpoint, "alice", ["shared", "hers"]), ROOMY, T));
      const bobs = pushDraft(endpoint, "bob", ["shared"]);
      const result = await store.save(bobs, ROOMY, T + 1000);
      expect(result).toEqual({
        status: "created",
        replaced: true,
        subscription: { ...bobs, id: expect.any(String), createdAtMs: T + 1000, updatedAtMs: T + 1000 },
      });
      expect(saved(result).id).not.toBe(alices.id);
      expect(await store.get(alices.id)).toBeUndefined();
      expect(await store.targets("shared", T)).toEqual([targetOf(saved(result))]);
      expect(await store.targets("hers", T)).toEqual([]);
      expect(await store.count()).toBe(1);
    });

    it("moves a taken-over endpoint from its old owner's count to its new owner's", async () => {
      const { store } = await open();
      const bounds = { maxPerOwner: 2, maxTotal: 100 };
      const [e1, e2, e3, e4, e5] = Array.from({ length: 5 }, pushEndpoint) as [string, string, string, string, string];
      await store.save(pushDraft(e1, "alice", ["m"]), bounds, T);
      await store.save(pushDraft(e2, "alice", ["m"]), bounds, T);
      expect(await store.save(pushDraft(e3, "alice", ["m"]), bounds, T)).toEqual({ status: "full", bound: "owner" });
      expect((await store.save(pushDraft(e1, "bob", ["m"]), bounds, T)).status).toBe("created");
      expect((await store.save(pushDraft(e3, "alice", ["m"]), bounds, T)).status).toBe("created");
      expect((await store.save(pushDraft(e4, "bob", ["m"]), bounds, T)).status).toBe("created");
      expect(await store.save(pushDraft(e5, "bob", ["m"]), bounds, T)).toEqual({ status: "full", bound: "owner" });
      expect(await store.count()).toBe(4);
    });

    it("refuses a new subscription past the per-owner bound or the total, changing nothing", async () => {
      const { store } = await open();
      const bounds = { maxPerOwner: 2, maxTotal: 3 };
      const first = saved(await store.save(pushDraft(pushEndpoint(), "alice", ["m"]), bounds, T));
      await store.save(pushDraft(pushEndpoint(), "alice", ["m"]), bounds, T);
      const overOwner = pushDraft(pushEndpoint(), "alice", ["refused"]);
      expect(await store.save(overOwner, bounds, T)).toEqual({ status: "full", bound: "owner" });
      expect((await store.save(pushDraft(pushEndpoint(), "bob", ["m"]), bounds, T)).status).toBe("created");
      const overTotal = pushDraft(pushEndpoint(), "carol", ["refused"]);
      expect(await store.save(overTotal, bounds, T)).toEqual({ status: "full", bound: "total" });
      expect(await store.targets("refused", T)).toEqual([]);
      expect((await store.targets("m", T)).length).toBe(3);
      // A takeover leaves the total as it was, so the total bound lets it through.
      const takeover = await store.save(pushDraft(first.endpoint, "carol", ["m"]), bounds, T);
      expect(takeover).toMatchObject({ status: "created", replaced: true });
      expect(await store.count()).toBe(3);
    });

    it("counts a takeover against its new owner's bound, and a refused one leaves the old owner's in place", async () => {
      const { store } = await open();
      const bounds = { maxPerOwner: 1, maxTotal: 100 };
      const alices = saved(await store.save(pushDraft(pushEndpoint(), "alice", ["m"]), bounds, T));
      await store.save(pushDraft(pushEndpoint(), "bob", ["m"]), bounds, T);
      const refused = await store.save(pushDraft(alices.endpoint, "bob", ["m"]), bounds, T + 1);
      expect(refused).toEqual({ status: "full", bound: "owner" });
      expect(await store.get(alices.id)).toEqual(alices);
    });

    it("never refuses an update in place, even at or past a bound", async () => {
      const { store } = await open();
      const endpoint = pushEndpoint();
      const first = saved(await store.save(pushDraft(endpoint, "alice", ["a"]), { maxPerOwner: 1, maxTotal: 1 }, T));
      const atBound = await store.save(pushDraft(endpoint, "alice", ["b"]), { maxPerOwner: 1, maxTotal: 1 }, T + 1);
      expect(atBound).toMatchObject({ status: "updated", subscription: { id: first.id, mailboxes: ["b"] } });
      const pastBound = await store.save(pushDraft(endpoint, "alice", ["c"]), { maxPerOwner: 0, maxTotal: 0 }, T + 2);
      expect(pastBound).toMatchObject({ status: "updated", subscription: { id: first.id, mailboxes: ["c"] } });
    });

    it("removes by id; with an endpoint, only while the id still has that endpoint", async () => {
      const { store } = await open();
      const endpoint = pushEndpoint();
      const kept = saved(await store.save(pushDraft(pushEndpoint(), "alice", ["r"]), ROOMY, T));
      const gone = saved(await store.save(pushDraft(endpoint, "alice", ["r", "s"]), ROOMY, T));
      expect(await store.remove(gone.id, pushEndpoint())).toBe(false);
      expect(await store.get(gone.id)).toEqual(gone);
      expect(await store.remove(gone.id, endpoint)).toBe(true);
      expect(await store.remove(gone.id)).toBe(false);
      expect(await store.remove("no-such-id")).toBe(false);
      expect(await store.get(gone.id)).toBeUndefined();
      expect(await store.targets("r", T)).toEqual([targetOf(kept)]);
      expect(await store.targets("s", T)).toEqual([]);
      expect(await store.count()).toBe(1);
      // The endpoint is free again: saving it creates, replacing nothing.
      const fresh = await store.save(pushDraft(endpoint, "alice", ["r"]), ROOMY, T + 1);
      expect(fresh).toMatchObject({ status: "created", replaced: false });
      expect(await store.remove(kept.id)).toBe(true);
      expect(await store.count()).toBe(1);
    });

    it("keeps a re-subscribed endpoint when a push service's gone names the id it had before", async () => {
      const { store } = await open();
      const endpoint = pushEndpoint();
      const old = saved(await store.save(pushDraft(endpoint, "alice", ["g"]), ROOMY, T));
      const current = saved(await store.save(pushDraft(endpoint, "bob", ["g"]), ROOMY, T + 1));
      expect(await store.remove(old.id, endpoint)).toBe(false);
      expect(await store.get(current.id)).toEqual(current);
      expect(await store.targets("g", T)).toEqual([targetOf(current)]);
    });

    it("lists exactly the subscriptions that include a mailbox", async () => {
      const { store } = await open();
      const s1 = saved(await store.save(pushDraft(pushEndpoint(), "alice", ["a", "b"]), ROOMY, T));
      const s2 = saved(await store.save(pushDraft(pushEndpoint(), "bob", ["b"]), ROOMY, T));
      const s3 = saved(await store.save(pushDraft(pushEndpoint(), "alice", ["c"]), ROOMY, T));
      expect(await store.targets("a", T)).toEqual([targetOf(s1)]);
      expect(sortedIds(await store.targets("b", T))).toEqual(sortedIds([s1, s2]));
      expect(await store.targets("c", T)).toEqual([targetOf(s3)]);
      expect(await store.targets("nobody", T)).toEqual([]);
      expect(await store.count()).toBe(3);
    });

    it("never passes the bounds under concurrent saves of distinct endpoints", async () => {
      const subscriptions = await open();
      const handles = [
        subscriptions.store,
        ...(subscriptions.twin ? [await subscriptions.twin(), await subscriptions.twin()] : []),
      ];
      const on = (i: number) => handles[i % handles.length] as PushSubscriptionStore;
      const perOwner = await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          on(i).save(pushDraft(pushEndpoint(), "racer", ["race"]), { maxPerOwner: 5, maxTotal: 100 }, T),
        ),
      );
      expect(perOwner.filter((result) => result.status === "created").length).toBe(5);
      expect(perOwner.filter((result) => result.status === "full").length).toBe(19);
      const total = await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          on(i).save(pushDraft(pushEndpoint(), `owner-${i}`, ["race"]), { maxPerOwner: 5, maxTotal: 8 }, T),
        ),
      );
      expect(total.filter((result) => result.status === "created").length).toBe(3);
      expect(await subscriptions.store.count()).toBe(8);
      expect((await subscriptions.store.targets("race", T)).length).toBe(8);
    });

    it("leaves one subscription, listed under exactly its mailboxes, after concurrent re-saves of one endpoint", async () => {
      const subscriptions = await open();
      const handles = [subscriptions.store, ...(subscriptions.twin ? [await subscriptions.twin()] : [])];
      const endpoint = pushEndpoint();
      const mailboxes = ["x", "y", "z"];
      const results = await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          (handles[i % handles.length] as PushSubscriptionStore).save(
            pushDraft(endpoint, i % 3 === 0 ? "bob" : "alice", [mailboxes[i % 3] as string, "all"]),
            ROOMY,
            T + i,
          ),
        ),
      );
      expect(results.every((result) => result.status !== "full")).toBe(true);
      expect(await subscriptions.store.count()).toBe(1);
      const [target, ...others] = await subscriptions.store.targets("all", T);
      expect(others).toEqual([]);
      const survivor = target && (await subscriptions.store.get(target.id));
      expect(survivor).toBeDefined();
      expect(target).toEqual(survivor && targetOf(survivor));
      for (const mailbox of mailboxes) {
        const listed = await subscriptions.store.targets(mailbox, T);
        expect(listed).toEqual(survivor?.mailboxes.includes(mailbox) ? [target] : []);
      }
    });

    pushSubscriptionExpiryCases(open);

    it("rejects with store_unavailable once closed", async () => {
      const { store } = await open();
      const kept = saved(await store.save(pushDraft(pushEndpoint(), "alice", ["m"]), ROOMY, T));
      await store.close();
      const unavailable = { code: "store_unavailable" };
      await expect(store.save(pushDraft(pushEndpoint(), "alice", ["m"]), ROOMY, T)).rejects.toMatchObject(unavailable);
      await expect(store.get(kept.id)).rejects.toMatchObject(unavailable);
      await expect(store.remove(kept.id)).rejects.toMatchObject(unavailable);
      await expect(store.targets("m", T)).rejects.toMatchObject(unavailable);
      await expect(store.prune(T, 10)).rejects.toMatchObject(unavailable);
      await expect(store.count()).rejects.toMatchObject(unavailable);
    });
  });
}
