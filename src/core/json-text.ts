import { HeraldError } from "../errors.js";

/**
 * Deepest nesting of arrays and objects accepted in any JSON Herald parses
 * (bodies, WebSocket frames, webhook payloads). JSON.parse copes with far
 * deeper text, but JSON.stringify and every recursive walk after it would
 * overflow the stack; real payloads stay well inside this.
 */
export const MAX_JSON_DEPTH = 64;

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** How deep the text's arrays and objects nest, not counting brackets inside strings; stops once past `limit`. */
function nestingDepth(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === BACKSLASH) i++;
      else if (code === QUOTE) inString = false;
    } else if (code === QUOTE) inString = true;
    else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
      depth++;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > limit) return deepest;
      }
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) depth--;
  }
  return deepest;
}

/** JSON.parse with a bound on nesting; anything unparseable or too deep is a 400 `bad_json` naming `what`. */
export function parseJsonText(text: string, what: string, maxDepth = MAX_JSON_DEPTH): unknown {
  // Fewer characters than two per level cannot nest past the bound: skip the scan for small texts.
  if (text.length > maxDepth * 2 && nestingDepth(text, maxDepth) > maxDepth) {
    throw new HeraldError("bad_json", `${what} nests deeper than ${maxDepth} levels`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HeraldError("bad_json", `${what} is not valid JSON: ${(error as Error).message}`);
  }
}
