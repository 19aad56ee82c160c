/**
 * ResponseHeaders is a real `Headers` (what handlers and interceptors get as
 * `responseHeader` / `responseTrailer` on the lean gRPC path) that remembers
 * whether it was written to after it was made, so that a call nobody added
 * metadata to sends precomputed HEADERS and trailers, and is stored for
 * replay, without iterating them (undici sorts a Headers to iterate it).
 * @private
 */
export class ResponseHeaders extends Headers {
  touched = false;
  override append(name: string, value: string): void {
    this.touched = true;
    super.append(name, value);
  }
  override set(name: string, value: string): void {
    this.touched = true;
    super.set(name, value);
  }
  override delete(name: string): void {
    this.touched = true;
    super.delete(name);
  }
}

/**
 * holdsOnlyProtocolHeaders says that `headers` is untouched ResponseHeaders:
 * its maker writes only protocol headers into it (through
 * `Headers.prototype`, so they do not count as a touch), so nothing there is
 * the handler's.
 * @private
 */
export function holdsOnlyProtocolHeaders(headers: Headers): boolean {
  return headers instanceof ResponseHeaders && !headers.touched;
}
