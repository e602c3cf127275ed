import type { MessageFilter } from "../core/message-filter.js";
import type { MercureGrant } from "./mercure-token.js";
import { updateOf } from "./mercure-update.js";
import { matchesAny, type TopicMatcher } from "./topic-matcher.js";

function describe(matchers: readonly TopicMatcher[]): string[][] {
  return matchers.map((matcher) => [matcher.type, matcher.value]);
}

/**
 * What one Mercure subscriber is sent of the hub's log: updates with a topic
 * its matchers select, and of private ones only those its token's subscribe
 * grants cover (an anonymous subscriber gets public updates only). Subscribers
 * with the same matchers and grants share a signature, so a fan-out round
 * frames an update once for all of them; each distinct signature costs one
 * test per matcher and topic per update.
 */
export function subscriberFilter(
  matchers: readonly TopicMatcher[],
  grant: MercureGrant | undefined,
  hubUrl: string,
): MessageFilter {
  const grants = grant?.subscribe ?? [];
  return {
    accepts: (message) => {
      const update = updateOf(message);
      if (update === undefined || !matchesAny(matchers, update.topics)) return false;
      return !update.private || grants.some((entry) => matchesAny(entry.matchers, update.topics));
    },
    signature: JSON.stringify(["mercure", hubUrl, describe(matchers), grants.map((entry) => describe(entry.matchers))]),
  };
}
