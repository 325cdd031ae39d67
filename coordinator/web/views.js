// Routes and the cluster-wide views: overview, workers, HA. A view is {load(ctx, params)
// -> model, render(model, app, params) -> Node}; load fetches through ctx (app.js) with
// relative paths, render only draws. Job and checkpoint views are in job.js.

import {h, facts, table, section} from './dom.js';
import * as fmt from './format.js';
import {jobView, checkpointsView, jobLink, stateBadge, taskBar} from './job.js';

// ---- overview ---------------------------------------------------------------------------

const overviewView = {
  async load(ctx) {
    const [ov, jobs] = await Promise.all([ctx.get('overview'), ctx.get('jobs/overview')]);
    return {ov, jobs: jobs.jobs || []};
  },
  render({ov, jobs}) {
    const byState = new Map();
    for (const j of jobs) byState.set(j.state, (byState.get(j.state) || 0) + 1);
    const used = ov['slots-total'] - ov['slots-available'];
    const sorted = [...jobs].sort((a, b) =>
      (fmt.JOB_TERMINAL.has(a.state) - fmt.JOB_TERMINAL.has(b.state)) || (b['start-time'] - a['start-time']));
    return h('div', {class: 'page', 'data-testid': 'overview'},
      h('h1', null, 'Cluster overview'),
      h('div', {class: 'tiles'},
        tile('Workers', fmt.num(ov.taskmanagers), 'registered task managers', 'tile-workers'),
        tile('Free task slots', `${fmt.num(ov['slots-available'])} / ${fmt.num(ov['slots-total'])}`,
          `${fmt.num(used)} in use`, 'tile-slots', meter(used, ov['slots-total'])),
        tile('Running jobs', fmt.num(ov['jobs-running']), 'not yet terminal', 'tile-running'),
        h('div', {class: 'tile', 'data-testid': 'tile-jobs-by-state'},
          h('div', {class: 'tile-title'}, 'Jobs by state'),
          h('div', {class: 'state-list'},
            byState.size ? [...byState.entries()].sort().map(([s, n]) =>
              h('span', {class: 'state-count'}, stateBadge(s), ` ${n}`)) : h('span', {class: 'dim'}, 'no jobs')),
          h('div', {class: 'tile-sub'},
            `finished ${ov['jobs-finished']} \u00b7 canceled ${ov['jobs-cancelled']} \u00b7 failed ${ov['jobs-failed']}`))),
      section('Jobs',
        table([{title: 'Name'}, {title: 'Job ID', cls: 'mono'}, {title: 'State'}, {title: 'Started'},
          {title: 'Duration', cls: 'num'}, {title: 'Ended'}, {title: 'Tasks'}],
        sorted.map((j) => ({attrs: {'data-testid': 'job-row', 'data-jid': j.jid, 'data-state': j.state},
          cells: [jobLink(j.jid, j.name), h('span', {title: j.jid}, fmt.shortId(j.jid)), stateBadge(j.state),
            fmt.time(j['start-time']), fmt.duration(j.duration), fmt.time(j['end-time']),
            taskBar(j.tasks)]})),
        {testid: 'jobs-table', empty: 'No jobs. Submit one with `flinc run JOB.yaml` or POST /jobs.'})));
  },
};

function tile(title, value, sub, testid, extra) {
  return h('div', {class: 'tile', 'data-testid': testid},
    h('div', {class: 'tile-title'}, title),
    h('div', {class: 'tile-value'}, value),
    extra || null,
    h('div', {class: 'tile-sub'}, sub));
}

function meter(used, total) {
  const el = h('div', {class: 'meter', title: `${used} of ${total} slots in use`}, h('div', {class: 'meter-fill'}));
  el.firstChild.style.width = `${total > 0 ? Math.round((100 * used) / total) : 0}%`;
  return el;
}

// ---- workers ----------------------------------------------------------------------------

const MAX_WORKER_DETAILS = 64;
const MAX_TASK_JOBS = 10;

// Flink's duration forms ("4000", "4 s", "500 ms", "1 min") -> ms, or null.
function parseDurationMs(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|milli|millis|s|sec|secs|second|seconds|min|m|minute|minutes|h|hour|hours|d|day|days)?\s*$/i
    .exec(String(text || ''));
  if (!m) return null;
  const unit = (m[2] || 'ms').toLowerCase();
  const mult = unit.startsWith('ms') || unit.startsWith('milli') ? 1 : unit.startsWith('s') ? 1000 :
    unit.startsWith('m') ? 60000 : unit.startsWith('h') ? 3600000 : 86400000;
  return Number(m[1]) * mult;
}

const TASKS_INLINE = 4;

function taskLine(x) {
  return h('div', {class: 'task-line', title: x.vertex}, jobLink(x.jid, x.job), ` #${x.subtask} `, stateBadge(x.status));
}

// The subtasks on one worker: listed when few, else behind a summary.
function tasksCell(id, tasks, error) {
  if (!tasks.length) return h('span', {class: 'dim'}, error ? 'unknown' : 'none');
  if (tasks.length <= TASKS_INLINE) return h('div', {'data-testid': 'worker-tasks'}, tasks.map(taskLine));
  return h('details', {class: 'tasks', 'data-key': `tasks-${id}`, 'data-testid': 'worker-tasks'},
    h('summary', null, `${tasks.length} subtasks`), tasks.map(taskLine));
}

const workersView = {
  async load(ctx) {
    const [tms, jobsR, confR] = await Promise.all([ctx.get('taskmanagers'), ctx.tryGet('jobs/overview'),
      ctx.cached('jobmanager/config', 60000)]);
    const list = tms.taskmanagers || [];
    const details = await Promise.all(list.slice(0, MAX_WORKER_DETAILS).map((t) =>
      ctx.tryGet(`taskmanagers/${encodeURIComponent(t.id)}`)));
    // Subtasks per worker, from the vertices of the jobs that are not terminal.
    const jobs = jobsR.data ? jobsR.data.jobs || [] : [];
    const live = jobs.filter((j) => !fmt.JOB_TERMINAL.has(j.state)).slice(0, MAX_TASK_JOBS);
    const tasks = new Map(); // taskmanager id -> [{job, vertex, subtask, status}]
    let taskError = jobsR.error || null;
    await Promise.all(live.map(async (j) => {
      const jr = await ctx.tryGet(`jobs/${encodeURIComponent(j.jid)}`);
      if (jr.error) {
        taskError = taskError || jr.error;
        return;
      }
      const vs = await Promise.all((jr.data.vertices || []).map((v) =>
        ctx.tryGet(`jobs/${encodeURIComponent(j.jid)}/vertices/${encodeURIComponent(v.id)}`)));
      for (const vr of vs) {
        if (vr.error) {
          taskError = taskError || vr.error;
          continue;
        }
        for (const st of vr.data.subtasks || []) {
          const key = st['taskmanager-id'];
          if (!tasks.has(key)) tasks.set(key, []);
          tasks.get(key).push({jid: j.jid, job: j.name, vertex: vr.data.name, subtask: st.subtask, status: st.status});
        }
      }
    }));
    let hbTimeoutMs = null;
    if (confR.data) {
      const e = confR.data.find((x) => x.key === 'heartbeat.timeout');
      if (e) hbTimeoutMs = parseDurationMs(e.value);
    }
    const jobNames = new Map(jobs.map((j) => [j.jid, j.name]));
    return {list, details, tasks, taskError, hbTimeoutMs, jobNames, now: Date.now(), jobsError: jobsR.error};
  },
  render(m, app) {
    const rows = m.list.map((t, i) => {
      const d = m.details[i];
      const slots = d && d.data ? d.data.allocatedSlots || [] : null;
      const byJob = new Map();
      for (const s of slots || []) byJob.set(s.jobId, (byJob.get(s.jobId) || 0) + 1);
      const tasks = m.tasks.get(t.id) || [];
      const ageMs = t.timeSinceLastHeartbeat > 0 ? Math.max(0, m.now - t.timeSinceLastHeartbeat) : null;
      const late = ageMs !== null && m.hbTimeoutMs && ageMs > m.hbTimeoutMs / 2;
      return {attrs: {'data-testid': 'worker-row', 'data-id': t.id},
        cells: [
          h('div', null, h('b', null, t.host || fmt.DASH), h('div', {class: 'dim mono', title: t.id}, fmt.shortId(t.id))),
          h('span', {class: 'mono'}, `${t.host || ''}:${t.dataPort}`),
          fmt.num(t.slotsNumber),
          fmt.num(t.freeSlots),
          slots === null ? h('span', {class: 'dim', title: d && d.error ? d.error.message : ''}, 'unknown') :
            byJob.size ? [...byJob.entries()].map(([jid, n]) =>
              h('div', null, jobLink(jid, m.jobNames.get(jid) || fmt.shortId(jid)), ` \u00d7${n}`)) :
              h('span', {class: 'dim'}, 'none'),
          tasksCell(t.id, tasks, m.taskError),
          h('span', {class: late ? 'warn-text' : '', 'data-testid': 'heartbeat-age'}, ageMs === null ? fmt.DASH : fmt.duration(ageMs)),
          fmt.time(t['registered-time']),
        ]};
    });
    const hb = m.hbTimeoutMs ? `heartbeat.timeout ${fmt.duration(m.hbTimeoutMs)}` : '';
    return h('div', {class: 'page', 'data-testid': 'workers'},
      h('h1', null, 'Workers'),
      section(null,
        table([{title: 'Worker'}, {title: 'Data address'}, {title: 'Slots', cls: 'num'}, {title: 'Free', cls: 'num'},
          {title: 'Slots held by'}, {title: 'Tasks'}, {title: 'Heartbeat age', cls: 'num'}, {title: 'Registered'}],
        rows, {testid: 'workers-table', empty: 'No worker is registered with the leader.'}),
        h('p', {class: 'note'}, `Heartbeat age is the time since the leader last heard from the worker, by this browser's clock. ${hb}`),
        m.taskError ? h('div', {class: 'inline-error'}, 'Subtasks per worker could not be read: ',
          app.errorLine(m.taskError, {testid: 'inline-error'})) : null));
  },
};

// ---- HA ---------------------------------------------------------------------------------

// Another coordinator's dashboard (its REST url from ZooKeeper): http(s) only.
export function coordinatorLink(url, hash = '#/ha', text = url) {
  return /^https?:\/\//.test(url || '') ? h('a', {href: `${url}/${hash}`}, text) : (url || fmt.DASH);
}

const link = (url) => coordinatorLink(url);

const haView = {
  async load(ctx) {
    return {ha: await ctx.get('ha'), now: Date.now()};
  },
  render({ha}) {
    const leader = ha.leader;
    const term = ha.term;
    const session = ha.session || {};
    const history = Array.isArray(ha['failover-history']) ? ha['failover-history'] :
      ha['last-failover'] ? [ha['last-failover']] : [];
    return h('div', {class: 'page', 'data-testid': 'ha'},
      h('h1', null, 'High availability'),
      h('div', {class: 'cols'},
        section('This coordinator', facts([
          ['Role', h('span', {class: ['badge', fmt.stateClass(ha.role)], 'data-testid': 'ha-view-role'}, ha.role)],
          ['Election state', ha['election-state']],
          ['Id', h('span', {class: 'mono'}, ha.id)],
          ['REST', link(ha['rest-url'])],
          ['RPC', ha['rpc-address']],
          ['Epoch', h('b', {'data-testid': 'ha-view-epoch'}, String(ha.epoch))],
          ['Started', fmt.time(ha['start-time'])],
          ['Configuration', h('span', {class: 'mono'}, ha['conf-dir'] || fmt.DASH)],
        ])),
        section('Leader', leader ? facts([
          ['Leader', leader.self ? h('b', null, 'this coordinator') : link(leader['rest-url'])],
          ['Id', h('span', {class: 'mono'}, leader.id)],
          ['Epoch', h('b', null, String(leader.epoch))],
          ['RPC', leader['rpc-address']],
          ['ZooKeeper session', h('span', {class: 'mono'}, leader.session)],
          term ? ['Elected', `${fmt.time(term['elected-time'])} (${fmt.duration(term['elected-for-ms'])} ago)`] : null,
          term ? ['Jobs recovered', term.recovered ? 'yes' : 'not yet'] : null,
          term ? ['Workers', fmt.num(term.workers)] : null,
        ]) : h('p', {class: 'warn-text'}, 'No leader is known: an election is in progress.'))),
      h('div', {class: 'cols'},
        section('Standbys',
          table([{title: 'Id', cls: 'mono'}, {title: 'Host'}, {title: 'REST (its dashboard)'}, {title: 'RPC'}],
            (ha.standbys || []).map((s) => ({attrs: {'data-testid': 'standby-row'},
              cells: [h('span', {title: s.id}, fmt.shortId(s.id)), s.host, link(s['rest-url']), s['rpc-address']]})),
            {empty: 'No standby coordinator is running.'})),
        section('ZooKeeper', facts([
          ['Quorum', h('span', {class: 'mono'}, ha['zookeeper-quorum'])],
          ['Path', h('span', {class: 'mono'}, ha['zookeeper-path'])],
          ['Session', h('span', {class: 'mono'}, session.id)],
          ['State', session.state],
          ['Session timeout', h('span', {'data-testid': 'session-timeout'}, fmt.duration(session['negotiated-timeout-ms']))],
          ['Lease', fmt.duration(session['lease-ms'])],
        ]))),
      section('Failovers seen by this coordinator',
        table([{title: 'When'}, {title: 'New epoch', cls: 'num'}, {title: 'Leader lost', cls: 'mono'},
          {title: 'New leader', cls: 'mono'}, {title: 'Leaderless for', cls: 'num'}],
        history.map((f) => ({attrs: {'data-testid': 'failover-row'}, cells: [fmt.time(f.time), String(f.epoch),
          f.from ? h('span', {title: f.from}, fmt.shortId(f.from)) : fmt.DASH,
          f.to ? h('span', {title: f.to}, f.to === ha.id ? 'this coordinator' : fmt.shortId(f.to)) : fmt.DASH,
          fmt.duration(f['duration-ms'])]})),
        {testid: 'failover-table', empty: 'No failover since this coordinator started.'}),
        h('p', {class: 'note'}, 'Leaderless for: from the moment this coordinator saw the old leader go ' +
          '(its ZooKeeper session ended) to the moment it saw the new one. After kill -9 of a leader this is ' +
          'about the ZooKeeper session timeout.')));
  },
};

// ---- routing ----------------------------------------------------------------------------

const notFoundView = {
  async load() {
    return null;
  },
  render(model, app, params) {
    return h('div', {class: 'page'}, h('h1', null, 'Unknown page'),
      section(null, h('p', null, `Nothing here for #${params.hash}. `, h('a', {href: '#/overview'}, 'Go to the overview'), '.')));
  },
};

function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch (e) {
    return s;
  }
}

// '#/jobs/<id>/checkpoints' -> {view, params, key, title, nav}
export function resolveRoute(hash) {
  const path = (hash || '').replace(/^#/, '').replace(/\/+$/, '') || '/overview';
  let m;
  if (path === '/overview' || path === '/') {
    return {view: overviewView, params: {}, key: 'overview', title: 'Overview', nav: 'overview'};
  }
  if (path === '/workers') return {view: workersView, params: {}, key: 'workers', title: 'Workers', nav: 'workers'};
  if (path === '/ha') return {view: haView, params: {}, key: 'ha', title: 'High availability', nav: 'ha'};
  if ((m = /^\/jobs\/([^/]+)\/checkpoints$/.exec(path))) {
    const id = safeDecode(m[1]);
    return {view: checkpointsView, params: {id}, key: `ckp-${id}`, title: `Checkpoints ${fmt.shortId(id)}`, nav: 'overview'};
  }
  if ((m = /^\/jobs\/([^/]+)$/.exec(path))) {
    const id = safeDecode(m[1]);
    return {view: jobView, params: {id}, key: `job-${id}`, title: `Job ${fmt.shortId(id)}`, nav: 'overview'};
  }
  return {view: notFoundView, params: {hash: path}, key: `404-${path}`, title: 'Unknown page', nav: ''};
}
