// The dashboard's REST client. Every URL is relative to the page (fetch('overview'), never
// '/overview' or a host), so the page works through any coordinator and behind a proxy
// that serves it under a prefix. A failed call becomes a RestError that keeps what the
// server said (Flink's {"errors": [...]}) and the HTTP status: the page shows it, never
// drops it.

export const REQUEST_TIMEOUT_MS = 8000;

export class RestError extends Error {
  constructor({method, url, status, statusText, messages}) {
    super(`${method} ${url.pathname}${url.search}: ${status || statusText}: ${messages.join('; ')}`);
    this.name = 'RestError';
    this.method = method;
    this.url = url.href;
    this.path = url.pathname + url.search;
    this.status = status; // 0: no HTTP answer (unreachable, timeout)
    this.statusText = statusText;
    this.messages = messages;
    this.time = Date.now();
  }
}

function isAbort(e) {
  return e && (e.name === 'AbortError' || e.name === 'TimeoutError');
}

// One request. path is relative ("jobs/overview"). Resolves to the parsed JSON body
// (null for an empty one); rejects with a RestError, or with the AbortError of `signal`.
export async function request(method, path, {signal, body, contentType} = {}) {
  const url = new URL(path, document.baseURI);
  const ctrl = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ctrl.abort();
  }, REQUEST_TIMEOUT_MS);
  const onAbort = () => ctrl.abort();
  if (signal) {
    if (signal.aborted) ctrl.abort();
    else signal.addEventListener('abort', onAbort);
  }
  const headers = {Accept: 'application/json'};
  if (contentType) headers['Content-Type'] = contentType;
  try {
    let resp;
    try {
      resp = await fetch(url, {method, body, headers, signal: ctrl.signal, cache: 'no-store',
        credentials: 'same-origin'});
    } catch (e) {
      if (signal && signal.aborted) throw e;
      throw new RestError({method, url, status: 0,
        statusText: timedOut ? 'timeout' : 'unreachable',
        messages: [timedOut ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`
          : `cannot reach this coordinator (${e.message || e})`]});
    }
    let text;
    try {
      text = await resp.text();
    } catch (e) {
      if (signal && signal.aborted) throw e;
      throw new RestError({method, url, status: resp.status, statusText: resp.statusText,
        messages: [`the answer broke off (${isAbort(e) && timedOut ? 'timeout' : e.message || e})`]});
    }
    let data = null;
    let parsed = false;
    try {
      data = text ? JSON.parse(text) : null;
      parsed = true;
    } catch (e) {
      parsed = false;
    }
    if (!resp.ok) {
      let messages;
      if (parsed && data && Array.isArray(data.errors) && data.errors.length) {
        messages = data.errors.map(String);
      } else {
        messages = [(text || '').trim().replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').slice(0, 400) ||
          resp.statusText || 'no message'];
      }
      throw new RestError({method, url, status: resp.status, statusText: resp.statusText, messages});
    }
    if (!parsed) {
      throw new RestError({method, url, status: resp.status, statusText: resp.statusText,
        messages: ['the answer is not JSON']});
    }
    return data;
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener('abort', onAbort);
  }
}

export {isAbort};
