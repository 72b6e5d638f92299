// The console's only way to the server: the REST API under /v2, with the
// token sent as `Authorization: Bearer`. The token lives in sessionStorage
// (this tab, until it closes or the user signs out), never in a URL.

const TOKEN = 'qstash.console.token';
const LABEL = 'qstash.console.label';

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  get label() { return sessionStorage.getItem(LABEL) || 'signed in'; },
  start(token, label) {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(LABEL, label);
  },
  end() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(LABEL);
  },
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** `?a=1&b=x&b=y` from an object; arrays repeat the key, empty values are left out. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== '') q.append(key, String(v));
    }
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * Calls the API. `json` is sent as a JSON body; `body` as is. Answers the
 * parsed JSON; throws ApiError with the server's `error` text.
 */
export async function api(method, path, { params, headers, body, json, token } = {}) {
  const h = new Headers(headers || {});
  const bearer = token ?? session.token;
  if (bearer) h.set('Authorization', `Bearer ${bearer}`);
  if (json !== undefined) {
    h.set('Content-Type', 'application/json');
    body = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path + query(params), { method, headers: h, body, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    throw new ApiError(0, `cannot reach the server: ${e.message}`);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!res.ok) {
    const message = (data && data.error) || `${res.status} ${res.statusText}`;
    if (res.status === 401 && token === undefined && session.token) {
      session.end();
      window.dispatchEvent(new CustomEvent('console:signed-out', { detail: message }));
    }
    throw new ApiError(res.status, message);
  }
  return data;
}

/** The path segment of a name (queue, key, schedule id), encoded. */
export const seg = (s) => encodeURIComponent(s);
