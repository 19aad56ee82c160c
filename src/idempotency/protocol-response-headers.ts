import type { UnaryRequest } from "@connectrpc/connect";
import { serverCallKey } from "../call/server-call.js";

/**
 * ResponseMetadata is the handler context's own response headers and
 * trailers. Connect replaces the context's headers with whatever a server
 * interceptor returns (`copyHeaders` deletes, then copies), so a response made
 * without calling `next` must carry the protocol headers Connect put there
 * before the interceptors ran (content-type, grpc-encoding, grpc-status 0).
 * When the mesh server exposes the context's objects on ServerCall, a replay
 * writes into them and nothing has to be guessed.
 */
interface ResponseMetadata {
  readonly responseHeader?: Headers;
  readonly responseTrailer?: Headers;
}

// Compression connect-node servers accept by default, in the order Connect
// negotiates them (the first name in the client's accept list it supports).
const DEFAULT_COMPRESSION = ["gzip", "br"];

/**
 * responseMetadataFor returns the header and trailer objects a replayed
 * response should fill: the handler context's own when the mesh server
 * exposes them (exact), else fresh ones holding the protocol headers Connect
 * would have set, reconstructed from the request (exact for gRPC, gRPC-Web
 * and Connect content types; the gRPC response encoding assumes the server
 * accepts connect-node's default gzip and br).
 * @private
 */
export function responseMetadataFor(req: UnaryRequest): {
  readonly header: Headers;
  readonly trailer: Headers;
} {
  const call = req.contextValues.get(serverCallKey) as ResponseMetadata | undefined;
  if (call?.responseHeader instanceof Headers && call.responseTrailer instanceof Headers) {
    return { header: call.responseHeader, trailer: call.responseTrailer };
  }
  const header = new Headers();
  const trailer = new Headers();
  const type = req.header.get("content-type") ?? "";
  const json = /\+json|\/json/i.test(type);
  const grpcWeb = /^application\/grpc-web/i.test(type);
  if (grpcWeb || /^application\/grpc/i.test(type)) {
    const base = grpcWeb ? "application/grpc-web" : "application/grpc";
    header.set("content-type", `${base}+${json ? "json" : "proto"}`);
    trailer.set("grpc-status", "0");
    const accepted = (
      req.header.get("grpc-accept-encoding") ??
      req.header.get("grpc-encoding") ??
      ""
    )
      .split(",")
      .map((n) => n.trim());
    const encoding = accepted.find((n) => DEFAULT_COMPRESSION.includes(n));
    if (encoding !== undefined) header.set("grpc-encoding", encoding);
  } else {
    // Connect unary: the handler sets content-encoding after the call itself.
    header.set("content-type", json ? "application/json" : "application/proto");
  }
  return { header, trailer };
}
