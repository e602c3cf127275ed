import { LRUCache } from "lru-cache";

/**
 * An LRU cache of at most `maxEntries` that allocates as it fills. lru-cache
 * given `max` allocates its whole index up front (~27 bytes an entry: 2.7 MiB
 * for 100,000, before a single one is used); bounded by a size of one per
 * entry instead, it grows with use and evicts at the same count.
 */
export function growingLru<K extends {}, V extends {}>(
  maxEntries: number,
  options: Omit<LRUCache.Options<K, V, unknown>, "max" | "maxSize" | "sizeCalculation"> = {},
): LRUCache<K, V> {
  return new LRUCache<K, V>({ ...options, maxSize: maxEntries, sizeCalculation: () => 1 });
}
