/**
 * stripUndefined drops keys set to `undefined`, so that `{ x: undefined }`
 * means "use the default" in a `{ ...DEFAULTS, ...options }` merge instead of
 * overwriting the default with undefined.
 * @private
 */
export function stripUndefined<T extends object>(options: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  }
  return out;
}
