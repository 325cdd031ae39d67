// The job views: #/jobs/<id> (state, graph, vertices, subtasks and their workers,
// exceptions, cancel) and #/jobs/<id>/checkpoints (Flink's checkpoint statistics:
// counts, latest completed/savepoint/failed/restored, summary, history, configuration).

import {h, facts, table, section} from './dom.js';
import * as fmt from './format.js';
import {jobGraph, scrollToSubtasks} from './graph.js';

export function stateBadge(state, testid) {
  return h('span', {class: ['badge', fmt.stateClass(state)], 'data-testid': testid, 'data-state': testid ? state : null},
    state || fmt.DASH);
}

export function jobLink(jid, name) {
  return h('a', {href: `#/jobs/${encodeURIComponent(jid)}`, title: jid}, name || fmt.shortId(jid));
}

// Task counts ({running: 2, ...} lower case from /jobs/overview, or upper case from a
// vertex) -> a segmented bar and its text.
export function taskBar(tasks) {
  const counts = [];
  for (const st of fmt.TASK_STATES) {
    const n = (tasks && (tasks[st] ?? tasks[st.toLowerCase()])) || 0;
    if (n > 0) counts.push([st, n]);
  }
  if (!counts.length) return h('span', {class: 'dim'}, 'no tasks');
  const bar = h('div', {class: 'taskbar'});
  for (const [st, n] of counts) {
    const seg = h('span', {class: ['seg', fmt.stateClass(st)], title: `${n} ${st}`});
    seg.style.flexGrow = String(n);
    bar.appendChild(seg);
  }
  return h('div', {class: 'tasks-cell'}, bar,
    h('span', {class: 'tasks-text'}, counts.map(([st, n]) => `${n} ${st.toLowerCase()}`).join(' \u00b7 ')));
}

function cancelControls(job, app) {
  if (fmt.JOB_TERMINAL.has(job.state)) return null;
  if (app.busy(job.jid)) {
    return h('button', {class: 'btn danger', type: 'button', disabled: true}, 'Canceling\u2026');
  }
  if (app.confirmingCancel(job.jid)) {
    return h('span', {class: 'confirm'}, `Cancel "${job.name}"? `,
      h('button', {class: 'btn danger', type: 'button', 'data-testid': 'confirm-cancel',
        onclick: () => app.cancelJob(job.jid, job.name)}, 'Yes, cancel it'),
      h('button', {class: 'btn', type: 'button', 'data-testid': 'keep-running',
        onclick: () => app.keepRunning()}, 'No, keep it running'));
  }
  return h('button', {class: 'btn danger', type: 'button', 'data-testid': 'cancel-job',
    title: 'PATCH /jobs/<id>?mode=cancel', onclick: () => app.askCancel(job.jid)}, 'Cancel job');
}

function jobHeader(job, app, here) {
  const enc = encodeURIComponent(job.jid);
  return [
    h('div', {class: 'title-row'},
      h('h1', {'data-testid': 'job-name'}, job.name),
      stateBadge(job.state, 'job-state'),
      h('span', {class: 'spacer'}),
      cancelControls(job, app)),
    h('div', {class: 'subtitle mono', 'data-testid': 'job-id'}, job.jid),
    h('nav', {class: 'tabs'},
      h('a', {href: `#/jobs/${enc}`, class: here === 'job' ? 'active' : null}, 'Overview'),
      h('a', {href: `#/jobs/${enc}/checkpoints`, class: here === 'checkpoints' ? 'active' : null,
        'data-testid': 'checkpoints-tab'}, 'Checkpoints')),
  ];
}

// ---- #/jobs/<id> ------------------------------------------------------------------------

const MAX_VERTEX_DETAILS = 64;

export const jobView = {
  async load(ctx, {id}) {
    const enc = encodeURIComponent(id);
    const [job, exc] = await Promise.all([ctx.get(`jobs/${enc}`), ctx.tryGet(`jobs/${enc}/exceptions`)]);
    const verts = await Promise.all((job.vertices || []).slice(0, MAX_VERTEX_DETAILS).map((v) =>
      ctx.tryGet(`jobs/${enc}/vertices/${encodeURIComponent(v.id)}`)));
    return {job, exc, verts};
  },
  render({job, exc, verts}, app) {
    const vertices = job.vertices || [];
    return h('div', {class: 'page', 'data-testid': 'job', 'data-jid': job.jid},
      jobHeader(job, app, 'job'),
      h('div', {class: 'tiles'},
        h('div', {class: 'tile wide'}, facts([
          ['Type', job['job-type']],
          ['Started', fmt.time(job['start-time'])],
          ['Duration', fmt.duration(job.duration)],
          ['Ended', fmt.time(job['end-time'])],
        ])),
        h('div', {class: 'tile wide'}, facts([
          ['Attempt', h('span', {'data-testid': 'job-attempt'}, String(job.attempt ?? fmt.DASH))],
          ['Restarts', String(job.restarts ?? fmt.DASH)],
          ['Max parallelism', String(job.maxParallelism)],
          ['Vertices', String(vertices.length)],
        ]))),
      section('Job graph', jobGraph(job.plan, vertices)),
      section('Vertices', table(
        [{title: 'Vertex'}, {title: 'Parallelism', cls: 'num'}, {title: 'Status'}, {title: 'Tasks'},
          {title: 'Records in', cls: 'num'}, {title: 'Records out', cls: 'num'}, {title: 'Started'},
          {title: 'Duration', cls: 'num'}],
        vertices.map((v) => ({attrs: {'data-testid': 'vertex-row', 'data-vertex': v.id}, cells: [
          h('a', {href: `#/jobs/${encodeURIComponent(job.jid)}`, title: 'show its subtasks',
            onclick: (ev) => scrollToSubtasks(ev, v.id)}, v.name),
          String(v.parallelism), stateBadge(v.status), taskBar(v.tasks),
          fmt.num(v.metrics && v.metrics['read-records']), fmt.num(v.metrics && v.metrics['write-records']),
          fmt.time(v['start-time']), fmt.duration(v.duration)]})),
        {empty: 'This job has no vertices (known only by its result).'})),
      section('Subtasks and where they run', vertices.length ? vertices.map((v, i) => subtasks(v, verts[i], app)) :
        h('p', {class: 'dim'}, 'No subtasks.')),
      section('Exceptions', exceptions(exc, app)));
  },
};

function subtasks(v, r, app) {
  const head = h('h3', {id: `subtasks-${v.id}`}, v.name, h('span', {class: 'dim'}, ` \u00b7 parallelism ${v.parallelism}`));
  if (!r) return [head, h('p', {class: 'dim'}, 'Not loaded (too many vertices).')];
  if (r.error) return [head, h('div', {class: 'inline-error'}, app.errorLine(r.error, {testid: 'inline-error'}))];
  const rows = (r.data.subtasks || []).map((s) => ({attrs: {'data-testid': 'subtask-row'}, cells: [
    String(s.subtask), stateBadge(s.status),
    s['taskmanager-id'] && s['taskmanager-id'] !== '(unassigned)' ?
      h('a', {href: '#/workers', title: s['taskmanager-id']}, fmt.shortId(s['taskmanager-id'])) :
      h('span', {class: 'dim'}, 'unassigned'),
    h('span', {class: 'mono'}, s.endpoint), String(s.attempt), fmt.time(s['start-time']), fmt.duration(s.duration),
    fmt.num(s.metrics && s.metrics['read-records']), fmt.num(s.metrics && s.metrics['write-records'])]}));
  return [head, table([{title: '#', cls: 'num'}, {title: 'Status'}, {title: 'Worker', cls: 'mono'},
    {title: 'Endpoint'}, {title: 'Attempt', cls: 'num'}, {title: 'Started'}, {title: 'Duration', cls: 'num'},
    {title: 'Records in', cls: 'num'}, {title: 'Records out', cls: 'num'}], rows, {empty: 'No subtasks.'})];
}

function exceptions(r, app) {
  if (r.error) return h('div', {class: 'inline-error'}, app.errorLine(r.error, {testid: 'inline-error'}));
  const e = r.data;
  const entries = (e.exceptionHistory && e.exceptionHistory.entries) || [];
  if (!e['root-exception'] && !entries.length) return h('p', {class: 'dim', 'data-testid': 'no-exceptions'}, 'No exceptions.');
  return h('div', {'data-testid': 'exceptions'},
    e['root-exception'] ? [h('h3', null, `Root exception \u00b7 ${fmt.time(e.timestamp)}`),
      h('pre', {class: 'exception'}, e['root-exception'])] : null,
    entries.length ? [h('h3', null, `History: ${entries.length} failure${entries.length === 1 ? '' : 's'} ` +
      `(newest first${e.exceptionHistory.truncated ? ', older ones dropped' : ''})`),
    h('ul', {class: 'exc-list'}, entries.slice(0, EXC_SHOWN).map(excItem)),
    entries.length > EXC_SHOWN ? h('details', {'data-key': 'exc-more', class: 'exc-more'},
      h('summary', null, `${entries.length - EXC_SHOWN} older`),
      h('ul', {class: 'exc-list'}, entries.slice(EXC_SHOWN).map(excItem))) : null] : null);
}

const EXC_SHOWN = 5;

function excItem(x, i) {
  return h('li', null, h('details', {'data-key': `exc-${x.timestamp}-${i}`},
    h('summary', null, h('span', {class: 'dim'}, fmt.time(x.timestamp)), ' ',
      x.taskName ? h('b', null, x.taskName) : null,
      x.location ? h('span', {class: 'dim', title: x.location}, ` on ${fmt.shortId(x.location)} `) : ' ',
      h('span', {class: 'exc-first'}, String(x.stacktrace || '').split('\n')[0].slice(0, 200))),
    h('pre', {class: 'exception'}, x.stacktrace)));
}

// ---- #/jobs/<id>/checkpoints ------------------------------------------------------------

export const checkpointsView = {
  async load(ctx, {id}) {
    const enc = encodeURIComponent(id);
    const [job, stats, config] = await Promise.all([ctx.get(`jobs/${enc}`),
      ctx.tryGet(`jobs/${enc}/checkpoints`), ctx.tryGet(`jobs/${enc}/checkpoints/config`)]);
    return {job, stats, config};
  },
  render({job, stats, config}, app) {
    return h('div', {class: 'page', 'data-testid': 'checkpoints', 'data-jid': job.jid},
      jobHeader(job, app, 'checkpoints'),
      stats.error ? section('Checkpoints', h('p', {'data-testid': 'no-checkpoint-data'}, 'No checkpoint data yet.'),
        h('div', {class: 'inline-error'}, app.errorLine(stats.error, {testid: 'inline-error'}))) :
        checkpointStats(stats.data),
      section('Configuration', config.error ?
        h('div', {class: 'inline-error'}, app.errorLine(config.error, {testid: 'inline-error'})) :
        checkpointConfig(config.data)));
  },
};

function checkpointStats(s) {
  const counts = s.counts || {};
  const latest = s.latest || {};
  const history = s.history || [];
  const out = [h('div', {class: 'tiles'},
    ['total', 'in_progress', 'completed', 'failed', 'restored'].map((k) =>
      h('div', {class: 'tile', 'data-testid': `ckp-${k}`},
        h('div', {class: 'tile-title'}, {total: 'Triggered', in_progress: 'In progress', completed: 'Completed',
          failed: 'Failed', restored: 'Restored'}[k]),
        h('div', {class: 'tile-value'}, fmt.num(counts[k])))))];
  if (!counts.total && !history.length && !latest.restored) {
    out.push(section('Checkpoints', h('p', {'data-testid': 'no-checkpoint-data'}, 'No checkpoint data yet: none was triggered.')));
    return out;
  }
  out.push(h('div', {class: 'cols'},
    section('Latest completed', latestCheckpoint(latest.completed, 'latest-completed')),
    section('Latest restore', latest.restored ? facts([
      ['Checkpoint', h('b', {'data-testid': 'latest-restored'}, String(latest.restored.id))],
      ['Restored at', fmt.time(latest.restored.restore_timestamp)],
      ['Kind', latest.restored.is_savepoint ? 'savepoint' : 'checkpoint'],
      ['Path', h('span', {class: 'mono', 'data-testid': 'latest-restored-path'}, latest.restored.external_path || fmt.DASH)],
    ]) : h('p', {class: 'dim'}, 'Not restored since it started.'))));
  out.push(h('div', {class: 'cols'},
    section('Latest failed', latest.failed ? facts([
      ['Checkpoint', h('b', {'data-testid': 'latest-failed'}, String(latest.failed.id))],
      ['Failed at', fmt.time(latest.failed.failure_timestamp)],
      ['Cause', h('span', {class: 'bad-text', 'data-testid': 'latest-failed-cause'}, latest.failed.failure_message || fmt.DASH)],
    ]) : h('p', {class: 'dim'}, 'None.')),
    section('Latest savepoint', latestCheckpoint(latest.savepoint, 'latest-savepoint'))));
  const sum = s.summary || {};
  const rows = [['Checkpointed data size', 'checkpointed_size', fmt.bytes], ['Full state size', 'state_size', fmt.bytes],
    ['End to end duration', 'end_to_end_duration', fmt.duration], ['Buffered during alignment', 'alignment_buffered', fmt.bytes],
    ['Processed in-flight data', 'processed_data', fmt.bytes], ['Persisted in-flight data', 'persisted_data', fmt.bytes]]
    .filter(([, k]) => sum[k]);
  // A server that keeps no histogram (flinc's coordinator) answers the mean for every
  // percentile: a p99 below the maximum would be made up, so only min, average and max.
  const pcts = rows.some(([, k]) => ['p50', 'p90', 'p99'].some((p) => sum[k][p] !== undefined && sum[k][p] !== sum[k].avg));
  const stat = (t, p) => ({title: t, cls: 'num', key: p});
  const cols = [stat('Min', 'min'), stat('Average', 'avg'), ...(pcts ? [stat('Median', 'p50'), stat('p90', 'p90'), stat('p99', 'p99')] : []),
    stat('Max', 'max')];
  out.push(section('Summary of completed checkpoints', !counts.completed ? h('p', {class: 'dim'}, 'No completed checkpoint yet.') : table(
    [{title: ''}, ...cols],
    rows.map(([label, k, f]) => ({attrs: {'data-testid': 'summary-row', 'data-stat': k}, cells: [label, ...cols.map((c) => f(sum[k][c.key]))]})),
    {testid: 'checkpoint-summary', empty: 'No completed checkpoint yet.'})));
  out.push(section('History (newest first)', h('p', {class: 'dim', 'data-testid': 'history-note'},
    'Kept by the leading coordinator since it took the job over, the last 10; checkpoint ids go on across leaders.'), table(
    [{title: 'ID', cls: 'num', key: 'id'}, {title: 'Status', key: 'status'},
      {title: 'Acknowledged', cls: 'num', key: 'acknowledged'}, {title: 'Triggered', key: 'trigger_timestamp'},
      {title: 'Latest ack', key: 'latest_ack_timestamp'}, {title: 'End to end', cls: 'num', key: 'end_to_end_duration'},
      {title: 'Checkpointed (added)', cls: 'num', key: 'checkpointed_size'}, {title: 'Full state', cls: 'num', key: 'state_size'},
      {title: 'Aligned buffered', cls: 'num', key: 'alignment_buffered'}, {title: 'Processed', cls: 'num', key: 'processed_data'},
      {title: 'Persisted', cls: 'num', key: 'persisted_data'}],
    history.map((c) => ({attrs: {'data-testid': 'checkpoint-row', 'data-id': String(c.id)}, cells: [
      String(c.id), h('span', null, stateBadge(c.status), c.is_savepoint ? h('span', {class: 'tag'}, 'savepoint') : null),
      `${c.num_acknowledged_subtasks ?? fmt.DASH}/${c.num_subtasks ?? fmt.DASH}`,
      fmt.time(c.trigger_timestamp), fmt.time(c.latest_ack_timestamp), fmt.duration(c.end_to_end_duration),
      fmt.bytes(c.checkpointed_size), fmt.bytes(c.state_size), fmt.bytes(c.alignment_buffered),
      fmt.bytes(c.processed_data), fmt.bytes(c.persisted_data)]})),
    {testid: 'checkpoint-history', empty: 'No checkpoint in the history.'})));
  return out;
}

function latestCheckpoint(c, testid) {
  if (!c) return h('p', {class: 'dim'}, 'None yet.');
  return facts([
    ['Checkpoint', h('b', {'data-testid': testid}, String(c.id))],
    ['Completed at', fmt.time(c.latest_ack_timestamp)],
    ['End to end', fmt.duration(c.end_to_end_duration)],
    ['Checkpointed (added)', fmt.bytes(c.checkpointed_size)],
    ['Full state', fmt.bytes(c.state_size)],
    ['Path', h('span', {class: 'mono'}, c.external_path || fmt.DASH)],
  ]);
}

function checkpointConfig(c) {
  const ext = c.externalization || {};
  return facts([
    ['Mode', c.mode],
    ['Interval', fmt.duration(c.interval)],
    ['Timeout', fmt.duration(c.timeout)],
    ['Minimum pause', fmt.duration(c.min_pause)],
    ['Max concurrent', c.max_concurrent === undefined ? fmt.DASH : String(c.max_concurrent)],
    ['Retained on cancel', ext.enabled ? (ext.delete_on_cancellation ? 'no (deleted on cancel)' : 'yes') : 'not externalized'],
    ['State backend', c.state_backend || fmt.DASH],
    ['Checkpoint storage', c.checkpoint_storage || fmt.DASH],
    ['Unaligned', c.unaligned_checkpoints === undefined ? fmt.DASH : (c.unaligned_checkpoints ? 'yes' : 'no')],
    ['Tolerable failures', c.tolerable_failed_checkpoints === undefined ? fmt.DASH :
      c.tolerable_failed_checkpoints >= 2147483647 ? 'unlimited (never fails the job)' : String(c.tolerable_failed_checkpoints)],
  ], 'compact');
}
