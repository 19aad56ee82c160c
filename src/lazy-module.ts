import { createRequire } from "node:module";

const requireFromHere = createRequire(import.meta.url);

/**
 * lazyModule returns a loader for a CommonJS package that requires it on its
 * first call and caches it. Features only some users need (Redis stores,
 * BullMQ queues, the DNS wire codec) load their package when first built, so
 * importing connect-mesh does not pay their memory (ioredis + bullmq are about
 * 20 MB of RSS) or start-up time.
 */
export function lazyModule<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => {
    if (loaded === undefined) loaded = requireFromHere(name) as T;
    return loaded;
  };
}
