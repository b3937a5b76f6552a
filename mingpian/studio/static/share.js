// Share links: the form data and carrier profile, deflated and base64url-encoded into the URL
// fragment (#s=...), so a link reproduces the same preview and the data never reaches a server log.

function toBase64Url(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64Url(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

async function pipe(bytes, stream) {
  const out = new Response(new Blob([bytes]).stream().pipeThrough(stream));
  return new Uint8Array(await out.arrayBuffer());
}

export async function encodeState(state) {
  const raw = new TextEncoder().encode(JSON.stringify(state));
  if (typeof CompressionStream === 'function') {
    return `z${toBase64Url(await pipe(raw, new CompressionStream('deflate-raw')))}`;
  }
  return `j${toBase64Url(raw)}`;
}

export async function decodeState(token) {
  const kind = token[0];
  let bytes = fromBase64Url(token.slice(1));
  if (kind === 'z') bytes = await pipe(bytes, new DecompressionStream('deflate-raw'));
  else if (kind !== 'j') throw new Error('unknown share format');
  const state = JSON.parse(new TextDecoder().decode(bytes));
  if (typeof state !== 'object' || state === null) throw new Error('bad share state');
  return state;
}

/** The shared state in the current URL, or null. */
export async function readShared() {
  const match = /(?:^#|&)s=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (!match) return null;
  try {
    return await decodeState(match[1]);
  } catch {
    return null;
  }
}

export async function shareUrl(state) {
  const url = new URL(location.href);
  url.hash = `s=${await encodeState(state)}`;
  return url.toString();
}
