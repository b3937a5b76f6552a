// The console's door to the JSON API: same-origin requests carrying the session cookie, and on
// every write the session's CSRF token. Nothing else is kept: the key never reaches storage.

let csrf = '';
let onSignedOut = () => {};

export function setSession(session, signedOut) {
  csrf = session ? session.csrf : '';
  if (signedOut) onSignedOut = signedOut;
}

export async function request(method, path, {json, body, type, signal} = {}) {
  const headers = {Accept: 'application/json'};
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  let payload = body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(json);
  } else if (type) {
    headers['Content-Type'] = type;
  }
  let resp;
  try {
    resp = await fetch(path, {method, headers, body: payload, credentials: 'same-origin', signal});
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    return {ok: false, status: 0, body: {error: 'network'}};
  }
  const ctype = (resp.headers.get('Content-Type') || '').split(';')[0];
  let data = null;
  if (ctype.endsWith('json')) data = await resp.json().catch(() => null);
  else if (ctype.startsWith('text/')) data = await resp.text();
  if (resp.status === 401 && !path.startsWith('/api/session')) onSignedOut();
  return {ok: resp.ok, status: resp.status, body: data, headers: resp.headers};
}

export const get = (path, opts) => request('GET', path, opts);
export const post = (path, json) => request('POST', path, {json});
export const put = (path, json) => request('PUT', path, {json});
export const del = (path) => request('DELETE', path);

export const enc = encodeURIComponent;
export const ent = (eid, rest = '') => `/api/enterprises/${enc(eid)}${rest}`;

const CODES = {
  network: '网络错误，请检查连接后重试',
  unauthorized: '登录已失效或密钥不正确',
  forbidden: '没有权限执行这个操作',
  csrf_failed: '请求来源校验失败，请刷新页面后重试',
  not_found: '找不到这条记录',
  exists: '已经存在相同的 ID',
  taken: '这个号码已属于其他企业',
  invalid: '填写的内容有误',
  invalid_number: '号码格式不正确',
  invalid_query: '查询条件有误',
  unknown_template: '没有这个模板',
  unknown_staff: '没有这个员工',
  id_mismatch: 'ID 不能修改',
  too_many_requests: '尝试次数过多，请稍后再试',
  body_too_large: '文件太大',
  unsupported_media_type: '文件类型不对，请上传 CSV',
  invalid_encoding: '文件不是 UTF-8 编码，请另存为“CSV UTF-8”',
  data_invalid: '名片数据有误',
  limit_exceeded: '名片超出运营商限制',
};

/** What went wrong, in Chinese: the code's meaning, then where (JSON paths are shown as is). */
export function errorText(res) {
  const b = res.body && typeof res.body === 'object' ? res.body : {};
  const base = CODES[b.error] || (res.status ? `请求失败（HTTP ${res.status}）` : CODES.network);
  const where = (b.problems || []).map((p) => p.path).filter((p) => p && p !== '$');
  return where.length ? `${base}：${[...new Set(where)].slice(0, 5).join('，')}` : base;
}
