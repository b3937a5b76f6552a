// Rendered image / video views for ?format=png|jpeg|webp|mp4. A render may answer with the bytes,
// with JSON naming a /media/ URL, or (video) with a job to poll; all three end as a same-origin URL.

import {getJSON} from './api.js';
import {safeMediaUrl} from './dom.js';

const URL_KEYS = ['url', 'mediaUrl', 'href', 'src', 'location'];

function findUrl(body) {
  if (!body || typeof body !== 'object') return null;
  for (const k of URL_KEYS) if (typeof body[k] === 'string') return body[k];
  for (const k of ['media', 'result', 'file', 'output']) {
    const nested = findUrl(body[k]);
    if (nested) return nested;
  }
  return null;
}

function jobUrl(res) {
  const b = res.body || {};
  const job = b.job && typeof b.job === 'object' ? b.job : b;
  if (job.links && typeof job.links.self === 'string') return job.links.self;
  for (const k of ['statusUrl', 'jobUrl', 'poll', 'self']) if (typeof job[k] === 'string') return job[k];
  if (typeof b.job === 'string' && b.job.startsWith('/')) return b.job;
  const loc = res.headers && res.headers.get('Location');
  if (loc) return loc;
  if (typeof job.id === 'string') return `/api/jobs/${encodeURIComponent(job.id)}`;
  return null;
}

function progressOf(body) {
  const b = body && body.job && typeof body.job === 'object' ? body.job : body || {};
  const p = b.progress ?? b.percent;
  if (typeof p !== 'number') return null;
  return p <= 1 ? Math.round(p * 100) : Math.round(p);
}

function statusOf(body) {
  const b = body && body.job && typeof body.job === 'object' ? body.job : body || {};
  return String(b.status || b.state || '').toLowerCase();
}

/**
 * Turn a render response into a displayable URL. `onProgress(percent, status)` is called while
 * a job runs; `signal` aborts polling. Resolves {url} or {error: {message, problems}}.
 */
export async function mediaResult(res, {onProgress, signal} = {}) {
  if (!res.ok && res.status !== 202) return {error: res.body || {message: `HTTP ${res.status}`}};
  if (res.body instanceof Blob) {
    // The media server names the cached file (Content-Location: /media/<hash>.<ext>): a real
    // same-origin URL the browser can cache; the bytes as a blob: URL otherwise.
    const named = safeMediaUrl(res.headers?.get('Content-Location') || '');
    if (named && named.startsWith('/media/')) return {url: named, type: res.type};
    return {url: URL.createObjectURL(res.body), blob: true, type: res.type};
  }
  let current = res;
  for (let i = 0; i < 600; i += 1) {
    const direct = findUrl(current.body);
    const status = statusOf(current.body);
    if (direct && current.status !== 202 && !['queued', 'running', 'pending', 'started'].includes(status)) {
      const url = safeMediaUrl(direct);
      return url ? {url} : {error: {message: `媒体地址不可在此显示：${direct}`}};
    }
    if (['failed', 'error', 'cancelled', 'canceled'].includes(status)) return {error: current.body.error && typeof current.body.error === 'object' ? current.body.error : current.body};
    const poll = jobUrl(current);
    if (!poll) return {error: {message: '渲染结果里没有媒体地址'}};
    if (onProgress) onProgress(progressOf(current.body), status || 'running');
    await new Promise((r) => setTimeout(r, 400));
    if (signal && signal.aborted) return {aborted: true};
    current = await getJSON(poll, signal);
    if (!current.ok && current.status !== 202) return {error: current.body || {message: `HTTP ${current.status}`}};
  }
  return {error: {message: '渲染超时'}};
}
