// Thin fetch wrappers around the Mingpian HTTP API; every result is {ok, status, body, type}.

async function parse(resp) {
  const type = (resp.headers.get('Content-Type') || '').split(';')[0].trim();
  let body;
  if (type.endsWith('json')) body = await resp.json().catch(() => null);
  else if (type.startsWith('text/')) body = await resp.text();
  else body = await resp.blob();
  return {ok: resp.ok, status: resp.status, type, body, headers: resp.headers};
}

async function call(url, options = {}) {
  try {
    return await parse(await fetch(url, options));
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    return {ok: false, status: 0, type: 'error', body: {error: 'network', message: String(err)}};
  }
}

export function getJSON(url, signal) {
  return call(url, {headers: {Accept: 'application/json'}, signal});
}

export function postJSON(url, data, signal) {
  return call(url, {
    method: 'POST', signal,
    headers: {'Content-Type': 'application/json', Accept: 'application/json'},
    body: JSON.stringify(data),
  });
}

export function renderUrl(name, format, profile, extra = {}) {
  const q = new URLSearchParams(extra);
  if (format && format !== 'rcs') q.set('format', format);
  if (profile) q.set('profile', profile);
  const qs = q.toString();
  return `/api/templates/${encodeURIComponent(name)}/render${qs ? `?${qs}` : ''}`;
}

export function render(name, data, {format = 'rcs', profile = '', signal, query} = {}) {
  return postJSON(renderUrl(name, format, profile, query), data, signal);
}

export async function capabilities() {
  const res = await getJSON('/api/capabilities');
  return res.ok ? res.body : {formats: ['rcs'], chatbot: false, chatbotRoutes: [], fonts: []};
}
