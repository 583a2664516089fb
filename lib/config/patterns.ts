/**
 * Patterns over diffusers parameter names (dotted state-dict keys such as
 * `down_blocks.0.resnets.0.conv1.weight`).
 *
 * - A glob matches the whole name segment by segment: `*` matches any characters within one segment
 *   (never a dot), a segment that is exactly `**` matches zero or more whole segments. Every other
 *   character is literal, so the dots need no escaping: `conv_in.*` matches `conv_in.weight` and
 *   `conv_in.bias` and nothing else.
 * - `re:<source>` is a JavaScript regular expression matched against the whole name (anchored as if
 *   written `^(?:<source>)$`), so `re:up_blocks\.[01]\..*` does not match inside a longer name.
 *
 * Pure: names in, booleans out.
 */
import { ConfigError } from '../errors';

export const REGEX_PREFIX = 're:';

/** A pattern ready to test names, remembering where it came from for error messages. */
export interface CompiledPattern {
  /** The pattern exactly as written. */
  readonly source: string;
  /** Where it was written: a recipe field path (`freeze.trainable[2]`) or a preset rule. */
  readonly where: string;
  readonly kind: 'glob' | 'regex';
  /** The anchored regular expression the pattern compiles to. */
  readonly regex: RegExp;
  test(name: string): boolean;
}

// Characters other glob dialects give meaning to; refusing them keeps `a?b` from silently matching
// only the literal name "a?b" when the author meant a wildcard.
const GLOB_RESERVED = /[?[\]{}()!+|^$\\/\s,]/;

/**
 * Compiles `pattern` (a glob, or a regular expression after `re:`); a ConfigError naming `where`
 * when it is empty, an invalid regular expression, or a glob using syntax we do not support.
 */
export function compilePattern(pattern: string, where: string): CompiledPattern {
  if (typeof pattern !== 'string' || pattern.length === 0) {
    throw new ConfigError(`${where}: expected a non-empty pattern (a glob such as "up_blocks.**" or "re:<regex>") but found ${JSON.stringify(pattern)}`);
  }
  const regex = pattern.startsWith(REGEX_PREFIX) ? compileRegex(pattern, where) : compileGlob(pattern, where);
  const kind = pattern.startsWith(REGEX_PREFIX) ? 'regex' : 'glob';
  return { source: pattern, where, kind, regex, test: (name: string) => regex.test(name) };
}

function compileRegex(pattern: string, where: string): RegExp {
  const body = pattern.slice(REGEX_PREFIX.length);
  if (body.length === 0) throw new ConfigError(`${where}: expected a regular expression after "re:" but found nothing in ${JSON.stringify(pattern)}`);
  try {
    return new RegExp(`^(?:${body})$`, 'u');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`${where}: ${JSON.stringify(pattern)} is not a valid regular expression (${reason})`, { cause: error });
  }
}

function compileGlob(pattern: string, where: string): RegExp {
  const reserved = GLOB_RESERVED.exec(pattern);
  if (reserved !== null) {
    throw new ConfigError(
      `${where}: glob ${JSON.stringify(pattern)} contains ${JSON.stringify(reserved[0])}; globs support only "*" (within a segment) and "**" (whole segments) — write "re:<regex>" for anything else`,
    );
  }
  const segments = pattern.split('.');
  segments.forEach((segment, i) => {
    if (segment.length === 0)
      throw new ConfigError(
        `${where}: glob ${JSON.stringify(pattern)} has an empty segment at position ${i} (two dots in a row, or a leading or trailing dot)`,
      );
    if (segment.includes('**') && segment !== '**') {
      throw new ConfigError(
        `${where}: glob ${JSON.stringify(pattern)} uses "**" inside the segment ${JSON.stringify(segment)}; "**" must be a whole segment (e.g. "up_blocks.**.to_q.*")`,
      );
    }
  });
  // `**.**` means the same as `**`; collapsing keeps the regex linear.
  const collapsed = segments.filter((segment, i) => !(segment === '**' && segments[i - 1] === '**'));
  if (collapsed.length === 1 && collapsed[0] === '**') return /^[^.]+(?:\.[^.]+)*$/u;

  let source = '';
  let dotConsumed = true; // no dot before the first segment
  collapsed.forEach((segment, i) => {
    if (segment === '**') {
      // Leading: any whole segments each followed by their dot; elsewhere: any whole segments each
      // preceded by their dot. Either way zero segments is allowed.
      source += i === 0 ? '(?:[^.]+\\.)*' : '(?:\\.[^.]+)*';
      dotConsumed = i === 0;
      return;
    }
    source += (dotConsumed ? '' : '\\.') + segmentRegex(segment);
    dotConsumed = false;
  });
  return new RegExp(`^${source}$`, 'u');
}

function segmentRegex(segment: string): string {
  return segment
    .split('*')
    .map((literal) => literal.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
    .join('[^.]*');
}
