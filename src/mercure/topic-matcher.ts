import { Router } from "uri-template-router";
import { URLPattern } from "urlpattern-polyfill";
import { HeraldError } from "../errors.js";

/**
 * How a matcher reads its value: `exact` and `urlpattern` are the Mercure
 * standard's; `selector` is the pre-standard `topic=` selector (the string
 * itself, or an RFC 6570 URI template).
 */
export type MatcherType = "exact" | "urlpattern" | "selector";

/** A topic matcher, compiled once; `*` matches every topic whatever its type. */
export interface TopicMatcher {
  readonly type: MatcherType;
  readonly value: string;
  matches(topic: string): boolean;
}

// Control characters (C0, DEL, C1) and Unicode format characters: refused in matchers, topics, ids and types.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is this pattern's purpose.
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\p{Cf}]/u;

/** True when `value` has none of the characters Mercure forbids in topics, matchers, ids and types. */
export function isCleanValue(value: string): boolean {
  return !FORBIDDEN.test(value);
}

/** Wildcards (`*`) a URL pattern may hold. */
export const MAX_PATTERN_WILDCARDS = 2;
/** Named groups and wildcards a URL pattern may hold in all. */
export const MAX_PATTERN_GROUPS = 8;

function tooCostly(where: string, why: string): HeraldError {
  return new HeraldError("bad_parameter", `${where}: ${why} (URL patterns are matched against every update)`);
}

/**
 * URL patterns compile to backtracking regular expressions, run against every
 * update for every distinct subscriber. Only shapes that match in time near
 * linear in the topic's (bounded) length are accepted: no custom regexp
 * groups, no repeat modifiers (`+`, `*` after a group), at most one group per
 * path segment (adjacent groups backtrack against each other), at most
 * MAX_PATTERN_WILDCARDS wildcards and MAX_PATTERN_GROUPS groups.
 */
function checkPatternCost(value: string, where: string): void {
  let wildcards = 0;
  let groups = 0;
  let groupsInSegment = 0;
  // True right after a named group's name or a closing brace: a `*`, `+` or `?` there is a modifier.
  let afterGroup = false;
  for (let i = 0; i < value.length; i++) {
    const char = value[i] as string;
    if (char === "\\") {
      i++;
      afterGroup = false;
      continue;
    }
    if (char === "(") throw tooCostly(where, "regular expression groups are not accepted");
    if (afterGroup && (char === "+" || char === "*")) throw tooCostly(where, "repeat modifiers are not accepted");
    afterGroup = false;
    if (char === "/") {
      groupsInSegment = 0;
      continue;
    }
    if (char === "}") {
      afterGroup = true;
      continue;
    }
    const named = char === ":" && /[A-Za-z_$]/.test(value[i + 1] ?? "");
    if (!named && char !== "*") continue;
    if (char === "*" && ++wildcards > MAX_PATTERN_WILDCARDS) {
      throw tooCostly(where, `at most ${MAX_PATTERN_WILDCARDS} wildcards`);
    }
    if (++groups > MAX_PATTERN_GROUPS) throw tooCostly(where, `at most ${MAX_PATTERN_GROUPS} groups`);
    if (++groupsInSegment > 1) throw tooCostly(where, "at most one group or wildcard per path segment");
    if (named) {
      while (/[A-Za-z0-9_$]/.test(value[i + 1] ?? "")) i++;
      afterGroup = true;
    }
  }
}

function parseUrl(topic: string, base: string): URL | undefined {
  try {
    return new URL(topic, base);
  } catch {
    return undefined;
  }
}

/**
 * Compiles a matcher; throws 400 `bad_parameter` naming `where` when the value
 * is not valid for its type. `hubUrl` is the base relative URL patterns and
 * topics resolve against.
 */
export function compileMatcher(type: MatcherType, value: string, hubUrl: string, where: string): TopicMatcher {
  if (!isCleanValue(value)) throw new HeraldError("bad_parameter", `${where} contains control or format characters`);
  if (value === "*") return { type, value, matches: () => true };
  if (type === "exact") return { type, value, matches: (topic) => topic === value };
  if (type === "urlpattern") {
    checkPatternCost(value, where);
    let pattern: URLPattern;
    try {
      pattern = new URLPattern(value, hubUrl);
    } catch {
      throw new HeraldError("bad_parameter", `${where} is not a URL pattern: ${JSON.stringify(value.slice(0, 200))}`);
    }
    return {
      type,
      value,
      matches: (topic) => {
        const url = parseUrl(topic, hubUrl);
        return url !== undefined && pattern.test(url.href);
      },
    };
  }
  if (!value.includes("{")) return { type, value, matches: (topic) => topic === value };
  // A state machine over the template: matching is linear in the topic's length, whatever the template.
  const router = new Router();
  try {
    router.addTemplate(value);
  } catch {
    throw new HeraldError("bad_parameter", `${where} is not a URI template: ${JSON.stringify(value.slice(0, 200))}`);
  }
  return { type, value, matches: (topic) => topic === value || router.resolveURI(topic) !== undefined };
}

/** True when any matcher matches any of the topics. */
export function matchesAny(matchers: readonly TopicMatcher[], topics: readonly string[]): boolean {
  for (const matcher of matchers) for (const topic of topics) if (matcher.matches(topic)) return true;
  return false;
}

/** True when every topic is matched by some matcher. */
export function matchesEach(matchers: readonly TopicMatcher[], topics: readonly string[]): boolean {
  return topics.every((topic) => matchers.some((matcher) => matcher.matches(topic)));
}
