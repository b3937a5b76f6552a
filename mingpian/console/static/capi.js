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
  bad_request: '请求有误',
  empty_body: '请求内容为空',
  invalid_json: '请求内容不是有效的 JSON',
  invalid_time: '审核回调的时间格式不对（应为 YY-MM-DD HH:MM:SS 或 ISO 8601）',
  too_deep: '内容嵌套层数太多',
  conflict: '与已有数据冲突或超出上限',
  unknown_line: '不是本企业的号码',
  chatbot_taken: '这个 Chatbot 地址已被使用',
  request_pending: '已有待审核的变更申请',
  not_pending: '这项申请或名片版本已经处理过了（或已被新版本替换）',
  in_progress: '正在处理，请稍后重试',
  not_multipart: '上传格式不正确',
  unsupported_media: '不支持这种文件类型',
  undecodable_media: '文件已损坏或无法识别',
  media_too_large: '文件太大',
  media_too_long: '视频太长',
  quota_exceeded: '媒体库空间已满',
  unavailable: '服务暂时不可用，请稍后重试',
  not_ready: '服务还没准备好，请稍后重试',
  busy: '服务繁忙，请稍后重试',
  info_pending: 'Chatbot 信息已有一项更新在等运营商审核',
  info_unsupported: '这个 Chatbot 所在的平台不支持更新信息',
  maap_refused: '5G 消息平台没有接受这个请求',
  bad_signature: '回调签名不正确',
  stale_callback: '回调时间已过期',
  replayed: '这个回调已经处理过了',
  cardsms_refused: '卡片短信平台没有接受这个模板',
  internal_error: '服务器出错了，请稍后重试',
  brand_locked: '已有通过审核的号码，品牌需提交变更申请',
  fetch_refused: '这个图片地址不能抓取',
  method_not_allowed: '不支持这个操作',
  not_acceptable: '无法按要求的格式返回',
  unprocessable: '无法处理这个请求',
  range_not_satisfiable: '请求的范围超出文件大小',
  http_error: '请求失败',
};

// A field of a request body or query as the console's forms name it (the JSON path stays in the
// answer's `path` for programs; a person reads the field's title).
const FIELD_TITLES = {
  id: 'ID', number: '号码', line: '线路', lines: '覆盖线路', to: '对方号码', caller: '主叫号码', callee: '被叫号码',
  staff: '员工 ID', label: '标签', group: '分组', evidence: '认证材料', note: '备注', key: '密钥', template: '模板',
  phase: '时机', name: '名称', signature: '署名', brand_name: '品牌名', color: '品牌色', logo: '标志',
  chatbot: 'Chatbot 地址', sms_sender: '短信发送号码', units: '条数', price: '价格', valid_from: '生效日期',
  valid_to: '最后一天', policy: '用完后', overage_price: '超出单价', kind: '类型', card: '名片', from: '开始日期',
  data: '名片数据', variants: '参加实验的版本', weights: '比例', verified: '审核结果',
  approve: '审核结果', changes: '变更内容', url: '图片地址', file: '文件', format: '格式', ad: '广告',
  employee: '员工', scope: '适用范围', target: '适用对象',
};

// a query parameter (its problem's path has no `$`), as the page's controls name it
const QUERY_TITLES = {from: '从', to: '到', bucket: '时间粒度', by: '分组', card: '名片', q: '搜索', limit: '每页条数',
  offset: '翻页位置', format: '格式', template: '模板', version: '版本', state: '状态', path: '文件'};

/** The title of the field at `path` (`$.staff`, `$.variants[1].weight`, `bucket`), never the path. */
export function fieldTitle(path) {
  const text = String(path || '');
  const parts = text.replace(/^\$\.?/, '').split(/[.[\]]+/).filter(Boolean);
  if (!parts.length) return '';
  const title = (text.startsWith('$') ? null : QUERY_TITLES[parts[0]]) || FIELD_TITLES[parts[0]] || '其中一项';
  const item = parts.length > 1 && /^\d+$/.test(parts[1]) ? `第 ${Number(parts[1]) + 1} 项` : '';
  return title + item;
}

/** What went wrong, in Chinese: the code's meaning, then the fields it is about by their titles. */
export function errorText(res) {
  const b = res.body && typeof res.body === 'object' ? res.body : {};
  const base = CODES[b.error] || (res.status ? `请求失败（HTTP ${res.status}）` : CODES.network);
  const where = (b.problems || []).map((p) => fieldTitle(p.path)).filter(Boolean);
  return where.length ? `${base}（${[...new Set(where)].slice(0, 5).join('、')}）` : base;
}
