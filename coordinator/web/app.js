// The dashboard: a hash router (#/overview, #/jobs/<id>, #/jobs/<id>/checkpoints,
// #/workers, #/ha), a refresh loop (every 2.5 s, `?refresh=ms` to change it), the header
// with this coordinator's role and the leader from /ha, and the error banner. Views
// (views.js, job.js) load their data through the context given here and return DOM.
//
// Errors are never dropped: a failed REST call of a refresh shows in the banner (method,
// path, HTTP status, the server's {"errors": [...]} texts) until a refresh succeeds, a
// failed action (cancel) until it is dismissed, an optional call's error in place in its
// view, and every one of them in the error log at the bottom of the page.

import {request, RestError, isAbort} from './api.js';
import {h} from './dom.js';
import * as fmt from './format.js';
import {resolveRoute, coordinatorLink} from './views.js';

const query = new URLSearchParams(location.search);
const REFRESH_MS = Math.min(60000, Math.max(500, Number(query.get('refresh')) || 2500));
const LOG_MAX = 200;
const NOTICE_MS = 8000;
const CONFIRM_MS = 10000;

const state = {
  cycleErrors: [], // RestErrors of the last refresh: the banner shows them
  actionErrors: [], // RestErrors of actions: shown until dismissed
  appErrors: [], // errors of the dashboard's own code
  notices: [], // {text, until}
  log: [], // {err, count, last}, newest first
  ha: null,
  lastOk: 0,
  staleSince: 0,
  refreshes: 0,
  current: null, // {route, model}: what the view shows
  shownKey: null, // route key of what #view shows
  detailsOpen: new Map(), // data-key of a <details> -> open, kept across refreshes
  confirmCancel: null, // {jid, until}
  busy: new Set(), // job ids with an action in flight
  config: null,
  cache: new Map(), // path -> {time, data}: rarely changing answers
};

const $ = (id) => document.getElementById(id);

// ---- errors -----------------------------------------------------------------------------

// The same error again (method, path, status and text) is counted, not listed again.
function logError(err) {
  const i = state.log.findIndex((x) => x.err.method === err.method && x.err.path === err.path &&
    x.err.status === err.status && x.err.messages.join('\n') === err.messages.join('\n'));
  const entry = i >= 0 ? state.log.splice(i, 1)[0] : {err, count: 0, last: 0};
  entry.count++;
  entry.last = err.time;
  state.log.unshift(entry);
  state.log.length = Math.min(state.log.length, LOG_MAX);
  if (!footerQueued) {
    footerQueued = true;
    queueMicrotask(() => {
      footerQueued = false;
      renderFooter();
    });
  }
}

let footerQueued = false;

function appError(e, where) {
  // A bug of the page itself: shown, and on the console for whoever debugs it.
  console.error(`flinc dashboard: ${where}:`, e);
  state.appErrors = [`${where}: ${e && e.stack ? e.stack.split('\n')[0] : e}`];
}

function statusText(err) {
  if (!err.status) return err.statusText;
  return `${err.status}${err.statusText ? ' ' + err.statusText : ''}`;
}

export function errorLine(err, opts = {}) {
  return h('div', {class: 'err', 'data-testid': opts.testid || 'error-item',
    'data-status': String(err.status), 'data-url': err.url},
  h('span', {class: 'err-req'}, `${err.method} ${err.path}`),
  h('span', {class: 'err-status'}, statusText(err)),
  h('span', {class: 'err-msg'}, err.messages.join(' \u2014 ')),
  opts.onDismiss ? h('button', {class: 'dismiss', type: 'button', title: 'Dismiss',
    'aria-label': 'Dismiss', onclick: opts.onDismiss}, '\u00d7') : null);
}

// ---- the per-refresh context that views load through ------------------------------------

function makeCtx(signal) {
  const memo = new Map();
  const errors = [];
  const once = (path) => {
    if (!memo.has(path)) {
      memo.set(path, request('GET', path, {signal}).catch((e) => {
        if (e instanceof RestError) logError(e);
        throw e;
      }));
    }
    return memo.get(path);
  };
  return {
    signal,
    errors,
    // A call the view needs: its failure fails the view (the page keeps the last data,
    // marked stale) and goes to the banner.
    async get(path) {
      try {
        return await once(path);
      } catch (e) {
        if (e instanceof RestError && !errors.includes(e)) errors.push(e);
        throw e;
      }
    },
    // A call the view can do without: {data} or {error}, the view shows the error in place.
    async tryGet(path) {
      try {
        return {data: await once(path)};
      } catch (e) {
        if (e instanceof RestError) return {error: e};
        throw e;
      }
    },
    // tryGet, answered from a cache younger than maxAgeMs.
    async cached(path, maxAgeMs) {
      const hit = state.cache.get(path);
      if (hit && Date.now() - hit.time < maxAgeMs) return {data: hit.data};
      const r = await this.tryGet(path);
      if (r.data !== undefined) state.cache.set(path, {time: Date.now(), data: r.data});
      return r;
    },
  };
}

// ---- header, banner, footer -------------------------------------------------------------

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch (e) {
    return url || fmt.DASH;
  }
}

function renderHeader(haR) {
  const box = $('ha-status');
  if (haR.error) {
    box.replaceChildren(
      h('span', {class: ['badge', 'state-bad'], 'data-testid': 'ha-role'}, 'unreachable'),
      h('span', {class: 'ha-text'}, 'this coordinator does not answer /ha'));
    return;
  }
  const ha = haR.data;
  state.ha = ha;
  const leader = ha.leader;
  let leaderPart;
  if (!leader) {
    leaderPart = h('span', {'data-testid': 'ha-leader'}, 'no leader (election in progress)');
  } else if (leader.self) {
    leaderPart = h('span', {'data-testid': 'ha-leader'}, 'this coordinator leads');
  } else {
    leaderPart = h('span', {'data-testid': 'ha-leader', title: `the leader's dashboard (${leader.id})`}, 'leader ',
      coordinatorLink(leader['rest-url'], location.hash, hostOf(leader['rest-url'])));
  }
  box.replaceChildren(
    h('span', {class: ['badge', 'role', fmt.stateClass(ha.role)], 'data-testid': 'ha-role',
      title: `election: ${ha['election-state']}`}, ha.role),
    h('span', {class: 'ha-text'}, h('span', {class: 'dim'}, 'this '),
      h('b', {'data-testid': 'ha-self'}, hostOf(ha['rest-url']))),
    h('span', {class: 'ha-text'}, leaderPart),
    h('span', {class: 'ha-text'}, h('span', {class: 'dim'}, 'epoch '),
      h('b', {'data-testid': 'ha-epoch'}, String(ha.epoch))));
}

function renderRefresh() {
  const el = $('refresh-status');
  const parts = [];
  if (state.staleSince) {
    el.className = 'refresh stale';
    parts.push(`stale since ${fmt.time(state.staleSince)}`);
  } else {
    el.className = 'refresh';
    parts.push(state.lastOk ? `updated ${fmt.time(state.lastOk)}` : 'loading\u2026');
  }
  if (state.paused) parts.push('(paused while text is selected)');
  el.textContent = parts.join(' ');
  el.title = `refreshes every ${REFRESH_MS / 1000} s`;
}

function renderBanner() {
  const now = Date.now();
  state.notices = state.notices.filter((n) => n.until > now);
  const items = [];
  for (const e of state.appErrors) {
    items.push(h('div', {class: 'err', 'data-testid': 'app-error'},
      h('span', {class: 'err-req'}, 'dashboard error'), h('span', {class: 'err-msg'}, e)));
  }
  for (const e of state.actionErrors) {
    items.push(errorLine(e, {testid: 'action-error', onDismiss: () => {
      state.actionErrors = state.actionErrors.filter((x) => x !== e);
      renderBanner();
    }}));
  }
  for (const e of state.cycleErrors) items.push(errorLine(e));
  const banner = $('banner');
  banner.replaceChildren(...items);
  banner.hidden = items.length === 0;
  const notes = $('notices');
  notes.replaceChildren(...state.notices.map((n) => h('div', {class: 'notice', 'data-testid': 'notice'}, n.text)));
  notes.hidden = state.notices.length === 0;
}

function renderFooter() {
  const v = state.config;
  $('version').textContent = v ? v['flink-revision'] || `flinc ${v['flink-version']}` : '';
  const log = $('error-log');
  const n = state.log.reduce((a, x) => a + x.count, 0);
  log.querySelector('summary').textContent = `REST errors seen by this page: ${n}`;
  log.querySelector('ol').replaceChildren(...state.log.map((x) =>
    h('li', {'data-status': String(x.err.status), 'data-url': x.err.url},
      h('span', {class: 'dim'}, fmt.time(x.err.time)), ' ',
      x.count > 1 ? h('span', {class: 'dim'}, `(\u00d7${x.count}, last ${fmt.time(x.last)}) `) : null,
      h('span', {class: 'err-req'}, `${x.err.method} ${x.err.path}`), ' ',
      h('span', {class: 'err-status'}, statusText(x.err)), ' ',
      h('span', {class: 'err-msg'}, x.err.messages.join(' \u2014 ')))));
}

function renderNav(route) {
  for (const a of document.querySelectorAll('nav a[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === route.nav);
  }
  const role = state.ha ? state.ha.role : '';
  document.title = `${route.title}${role ? ' \u00b7 ' + role : ''} \u00b7 flinc`;
}

// ---- the view ---------------------------------------------------------------------------

function selectionInView() {
  const sel = window.getSelection();
  if (!sel || sel.isCollapsed || sel.rangeCount === 0) return false;
  return $('view').contains(sel.getRangeAt(0).commonAncestorContainer);
}

function swapView(node, key) {
  const view = $('view');
  if (state.shownKey !== key) state.detailsOpen.clear();
  for (const d of node.querySelectorAll('details[data-key]')) {
    if (state.detailsOpen.has(d.dataset.key)) d.open = state.detailsOpen.get(d.dataset.key);
  }
  const old = view.firstElementChild;
  if (!(state.shownKey === key && old && old.outerHTML === node.outerHTML)) view.replaceChildren(node);
  state.shownKey = key;
}

function failurePanel(route, err) {
  return h('div', {class: 'page'},
    h('h1', null, route.title),
    h('section', {class: 'card failure', 'data-testid': 'view-error'},
      h('h2', null, 'Could not load this page'),
      err instanceof RestError ? errorLine(err, {testid: 'view-error-item'}) :
        h('p', null, String(err))));
}

function renderView() {
  const cur = state.current;
  if (!cur) return;
  try {
    swapView(cur.route.view.render(cur.model, app, cur.route.params), cur.route.key);
  } catch (e) {
    appError(e, `drawing ${cur.route.title}`);
  }
}

// ---- actions ----------------------------------------------------------------------------

function notice(text) {
  state.notices.push({text, until: Date.now() + NOTICE_MS});
  renderBanner();
  setTimeout(renderBanner, NOTICE_MS + 50);
}

export const app = {
  refreshMs: REFRESH_MS,
  state,
  errorLine,
  confirmingCancel(jid) {
    const c = state.confirmCancel;
    return !!c && c.jid === jid && c.until > Date.now();
  },
  askCancel(jid) {
    state.confirmCancel = {jid, until: Date.now() + CONFIRM_MS};
    renderView();
  },
  keepRunning() {
    state.confirmCancel = null;
    renderView();
  },
  busy(jid) {
    return state.busy.has(jid);
  },
  async cancelJob(jid, name) {
    state.confirmCancel = null;
    state.busy.add(jid);
    renderView();
    try {
      await request('PATCH', `jobs/${encodeURIComponent(jid)}?mode=cancel`);
      notice(`Cancel of job "${name}" (${fmt.shortId(jid)}) requested: 202 Accepted`);
    } catch (e) {
      if (e instanceof RestError) {
        logError(e);
        state.actionErrors.push(e);
      } else if (!isAbort(e)) {
        appError(e, 'cancel');
      }
    } finally {
      state.busy.delete(jid);
      renderBanner();
      renderFooter();
      refresh();
    }
  },
};

// ---- the refresh loop -------------------------------------------------------------------

let generation = 0;
let timer = null;
let inflight = null;

async function refresh() {
  clearTimeout(timer);
  timer = null;
  if (inflight) inflight.abort();
  const ctrl = new AbortController();
  inflight = ctrl;
  const mine = ++generation;
  try {
    await cycle(ctrl, mine);
  } catch (e) {
    if (mine === generation) appError(e, 'refresh');
  } finally {
    if (mine === generation) {
      inflight = null;
      state.refreshes++;
      document.body.dataset.refreshes = String(state.refreshes);
      renderBanner();
      renderRefresh();
      renderFooter();
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }
}

async function cycle(ctrl, mine) {
  const route = resolveRoute(location.hash);
  renderNav(route);
  const ctx = makeCtx(ctrl.signal);
  // /ha is this coordinator's own answer (never forwarded): the header.
  const haP = ctx.get('ha').then((data) => ({data}), (error) => ({error}));
  const configP = state.config ? Promise.resolve(null) : ctx.tryGet('config');
  const viewP = route.view.load(ctx, route.params).then((model) => ({model}), (error) => ({error}));
  const [haR, viewR, configR] = await Promise.all([haP, viewP, configP]);
  if (mine !== generation) return; // a newer refresh (route change) took over

  if (configR && configR.data) state.config = configR.data;
  renderHeader(haR);
  renderNav(route);
  state.paused = false;
  state.cycleErrors = ctx.errors;
  if (viewR.error === undefined) {
    if (selectionInView() && state.shownKey === route.key) {
      state.paused = true;
    } else {
      state.current = {route, model: viewR.model};
      state.appErrors = [];
      renderView();
    }
    state.lastOk = Date.now();
    state.staleSince = 0;
    $('view').classList.remove('stale');
  } else if (!isAbort(viewR.error)) {
    if (!(viewR.error instanceof RestError)) appError(viewR.error, `loading ${route.title}`);
    if (state.shownKey === route.key) {
      // keep what is shown, marked stale; the banner says why
      if (!state.staleSince) state.staleSince = Date.now();
      $('view').classList.add('stale');
    } else {
      state.current = null;
      swapView(failurePanel(route, viewR.error), route.key);
    }
  }
}

function start() {
  if (!location.hash) history.replaceState(null, '', '#/overview');
  $('view').addEventListener('toggle', (ev) => {
    const d = ev.target;
    if (d instanceof HTMLDetailsElement && d.dataset.key) state.detailsOpen.set(d.dataset.key, d.open);
  }, true);
  window.addEventListener('hashchange', () => {
    state.confirmCancel = null;
    refresh();
  });
  window.addEventListener('unhandledrejection', (ev) => {
    state.appErrors = [`unhandled: ${ev.reason}`];
    renderBanner();
  });
  window.addEventListener('error', (ev) => {
    state.appErrors = [`${ev.message}`];
    renderBanner();
  });
  refresh();
}

start();
