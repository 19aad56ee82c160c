import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type StreamRequest } from "@connectrpc/connect";

/** ReplayBuffer re-feeds a client stream's messages to each attempt. */
export interface ReplayBuffer {
  /** iterable replays what was buffered, then reads on from the source; one per attempt. */
  iterable(): AsyncIterable<unknown>;
  /** overflowed: the messages outgrew the buffer, so no new attempt can replay them. */
  overflowed(): boolean;
}

/**
 * createReplayBuffer buffers the request messages of a stream as attempts pull them,
 * so a later attempt can send them again; past `maxBytes` it stops buffering
 * and the call can no longer be retried.
 */
export function createReplayBuffer(req: StreamRequest, maxBytes: number): ReplayBuffer {
  const source = req.message[Symbol.asyncIterator]();
  const buffered: unknown[] = [];
  let bytes = 0;
  let over = false;
  let ended = false;
  let pulled = 0;
  return {
    overflowed: () => over,
    iterable() {
      let i = 0;
      return {
        [Symbol.asyncIterator]() {
          return {
            async next(): Promise<IteratorResult<unknown>> {
              if (i < buffered.length) return { done: false, value: buffered[i++] };
              if (ended) return { done: true, value: undefined };
              if (over && i < pulled) {
                throw new ConnectError("client stream can no longer be replayed", Code.Internal);
              }
              const r = await source.next();
              if (r.done === true) {
                ended = true;
                return r;
              }
              pulled++;
              i++;
              if (!over) {
                bytes += toBinary(req.method.input, r.value as never).length;
                if (bytes > maxBytes) {
                  over = true;
                  buffered.length = 0;
                } else {
                  buffered.push(r.value);
                }
              }
              return r;
            },
            // An attempt that ends stops reading; the source stays open for
            // the next attempt (the transport closes it when the call ends).
            async return(): Promise<IteratorResult<unknown>> {
              return { done: true, value: undefined };
            },
            async throw(): Promise<IteratorResult<unknown>> {
              return { done: true, value: undefined };
            },
          };
        },
      };
    },
  };
}
