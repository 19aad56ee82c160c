/** SubjectAltNames are the SANs of a certificate, by kind. */
export interface SubjectAltNames {
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
}

const EMPTY: SubjectAltNames = Object.freeze({
  uris: Object.freeze([]) as readonly string[],
  dnsNames: Object.freeze([]) as readonly string[],
  ipAddresses: Object.freeze([]) as readonly string[],
});

/**
 * parseSubjectAltNames reads node's `subjectaltname` string (as
 * `tls.PeerCertificate.subjectaltname` and `X509Certificate.subjectAltName`
 * give it: `DNS:a, IP Address:127.0.0.1, URI:spiffe://a/sa/b`). Node quotes a
 * value as a JSON string when it holds a comma, quote or other special
 * character, so a hostile SAN cannot smuggle in a second entry.
 */
export function parseSubjectAltNames(text: string | undefined): SubjectAltNames {
  if (text === undefined || text === "") return EMPTY;
  const uris: string[] = [];
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(":", i);
    if (colon < 0) break;
    const kind = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      // A JSON string: find its closing quote, skipping escapes.
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      } catch {
        value = text.slice(colon + 2, j);
      }
      end = j + 1;
    } else {
      const comma = text.indexOf(", ", colon + 1);
      end = comma < 0 ? text.length : comma;
      value = text.slice(colon + 1, end);
    }
    if (kind === "URI") uris.push(value);
    else if (kind === "DNS") dnsNames.push(value);
    else if (kind === "IP Address") ipAddresses.push(value);
    i = text.startsWith(", ", end) ? end + 2 : end + 1;
  }
  return { uris, dnsNames, ipAddresses };
}
