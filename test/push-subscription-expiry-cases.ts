import { expect, it } from "vitest";
import type { PushSubscriptionStore } from "../src/store/push-subscription-store.js";
import type { ContractHandles } from "./helpers/contract-handles.js";
import { pushDraft, pushEndpoint, ROOMY, saved, sortedIds, T, targetOf } from "./helpers/push-subscription-drafts.js";

/**
 * The expiry part of the PushSubscriptionStore contract (renewal, targets, bounds, prune), run
 * inside describePushSubscriptionContract (test/push-subscription-contract.ts) on every backend.
 */
export function pushSubscriptionExpiryCases(open: () => Promise<ContractHandles<PushSubscriptionStore>>): void {
  it("leaves a subscription out of targets from its expiry on, and still gets it until pruned", async () => {
    const { store } = await open();
    const lapsing = saved(await store.save(pushDraft(pushEndpoint(), "sub:alice", ["m"], T + 1000), ROOMY, T));
    const lasting = saved(await store.save(pushDraft(pushEndpoint(), "key:ops", ["m"]), ROOMY, T));
    expect(lapsing.expiresAtMs).toBe(T + 1000);
    expect(sortedIds(await store.targets("m", T + 999))).toEqual(sortedIds([lapsing, lasting]));
    // Expired means expiresAtMs <= now.
    expect(await store.targets("m", T + 1000)).toEqual([targetOf(lasting)]);
    expect(await store.targets("m", T + 60_000)).toEqual([targetOf(lasting)]);
    expect(await store.get(lapsing.id)).toEqual(lapsing);
    expect(await store.count()).toBe(2);
  });

  it("renews on saving again: a later expiresAtMs brings an expired one back into targets", async () => {
    const { store } = await open();
    const endpoint = pushEndpoint();
    const first = saved(await store.save(pushDraft(endpoint, "sub:alice", ["m"], T + 1000), ROOMY, T));
    expect(await store.targets("m", T + 2000)).toEqual([]);
    const again = pushDraft(endpoint, "sub:alice", ["m"], T + 10_000);
    const result = await store.save(again, ROOMY, T + 2000);
    expect(result).toEqual({
      status: "updated",
      subscription: { ...again, id: first.id, createdAtMs: T, updatedAtMs: T + 2000 },
    });
    expect(await store.get(first.id)).toEqual(saved(result));
    expect(await store.targets("m", T + 2000)).toEqual([targetOf(saved(result))]);
    expect(await store.targets("m", T + 10_000)).toEqual([]);
  });

  it("counts only the owner's unexpired subscriptions against its bound", async () => {
    const { store } = await open();
    const bounds = { maxPerOwner: 2, maxTotal: 100 };
    const owner = "address:192.0.2.7";
    const lapsing = saved(await store.save(pushDraft(pushEndpoint(), owner, ["m"], T + 1000), bounds, T));
    await store.save(pushDraft(pushEndpoint(), owner, ["m"]), bounds, T);
    expect(await store.save(pushDraft(pushEndpoint(), owner, ["m"]), bounds, T)).toEqual({
      status: "full",
      bound: "owner",
    });
    // At T + 1000 the first has expired: the owner has one left, so there is room for one more.
    const third = await store.save(pushDraft(pushEndpoint(), owner, ["m"]), bounds, T + 1000);
    expect(third).toMatchObject({ status: "created", replaced: false });
    expect(await store.save(pushDraft(pushEndpoint(), owner, ["m"]), bounds, T + 1000)).toEqual({
      status: "full",
      bound: "owner",
    });
    expect(await store.count()).toBe(3);
    // Renewing the lapsed one counts as a new one: the owner is at its bound, so it is refused, unchanged
    // (else lapsing on purpose, then renewing, would pass any bound).
    expect(await store.save(pushDraft(lapsing.endpoint, owner, ["m"]), bounds, T + 1000)).toEqual({
      status: "full",
      bound: "owner",
    });
    expect((await store.get(lapsing.id))?.expiresAtMs).toBe(T + 1000);
    expect((await store.targets("m", T + 1000)).length).toBe(2);
    // With room again it is renewed in place, its id kept.
    await store.remove((third as { subscription: { id: string } }).subscription.id);
    const renewed = await store.save(pushDraft(lapsing.endpoint, owner, ["m"]), bounds, T + 1000);
    expect(renewed).toMatchObject({ status: "updated", subscription: { id: lapsing.id } });
    expect((await store.targets("m", T + 1000)).length).toBe(2);
  });

  it("counts expired subscriptions against the total until pruned; pruning frees room", async () => {
    const { store } = await open();
    const bounds = { maxPerOwner: 10, maxTotal: 2 };
    const lapsing = saved(await store.save(pushDraft(pushEndpoint(), "sub:alice", ["m"], T + 1000), bounds, T));
    await store.save(pushDraft(pushEndpoint(), "sub:alice", ["m"]), bounds, T);
    const later = pushDraft(pushEndpoint(), "sub:bob", ["m"]);
    expect(await store.save(later, bounds, T + 5000)).toEqual({ status: "full", bound: "total" });
    expect(await store.prune(T + 5000, 10)).toBe(1);
    expect(await store.get(lapsing.id)).toBeUndefined();
    expect(await store.count()).toBe(1);
    expect((await store.save(later, bounds, T + 5000)).status).toBe("created");
    expect(await store.count()).toBe(2);
  });

  it("prunes at most max, the earliest expired first, and leaves unexpired ones", async () => {
    const { store } = await open();
    const save = async (owner: string, expiresAtMs?: number) =>
      saved(await store.save(pushDraft(pushEndpoint(), owner, ["m", `own:${owner}`], expiresAtMs), ROOMY, T));
    // Saved out of expiry order, so that the order pruning takes is the expiry's.
    const at300 = await save("sub:a", T + 300);
    const at100 = await save("sub:b", T + 100);
    const at1000 = await save("sub:a", T + 1000);
    const at200 = await save("sub:c", T + 200);
    const lasting = await save("sub:a");
    const later = await save("sub:b", T + 1001);
    expect(await store.prune(T + 1000, 0)).toBe(0);
    expect(await store.prune(T + 1000, 2)).toBe(2);
    expect(await store.get(at100.id)).toBeUndefined();
    expect(await store.get(at200.id)).toBeUndefined();
    expect(await store.get(at300.id)).toEqual(at300);
    expect(await store.get(at1000.id)).toEqual(at1000);
    // One expiring exactly at now has expired.
    expect(await store.prune(T + 1000, 10)).toBe(2);
    expect(await store.prune(T + 1000, 10)).toBe(0);
    expect(sortedIds(await store.targets("m", T))).toEqual(sortedIds([lasting, later]));
    expect(await store.targets("own:sub:c", T)).toEqual([]);
    expect(await store.count()).toBe(2);
    // A pruned endpoint is free again: saving it creates, replacing nothing.
    const fresh = await store.save(pushDraft(at300.endpoint, "sub:a", ["m"]), ROOMY, T + 1000);
    expect(fresh).toMatchObject({ status: "created", replaced: false });
    expect(await store.get(at300.id)).toBeUndefined();
  });

  it("does not prune an endpoint saved again with a later expiry, by its owner or another", async () => {
    const { store } = await open();
    const mine = pushEndpoint();
    const taken = pushEndpoint();
    const first = saved(await store.save(pushDraft(mine, "sub:alice", ["m"], T + 100), ROOMY, T));
    await store.save(pushDraft(taken, "sub:alice", ["m"], T + 100), ROOMY, T);
    const renewed = saved(await store.save(pushDraft(mine, "sub:alice", ["m"], T + 10_000), ROOMY, T + 50));
    const takeover = saved(await store.save(pushDraft(taken, "sub:bob", ["m"], T + 10_000), ROOMY, T + 50));
    expect(renewed.id).toBe(first.id);
    expect(await store.prune(T + 1000, 10)).toBe(0);
    expect(await store.get(renewed.id)).toEqual(renewed);
    expect(await store.get(takeover.id)).toEqual(takeover);
    expect(sortedIds(await store.targets("m", T + 1000))).toEqual(sortedIds([renewed, takeover]));
    expect(await store.count()).toBe(2);
  });
}
