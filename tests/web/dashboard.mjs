// Headless-Chromium checks of the web dashboard, driven by tests/integration/test_web.py
// (which starts the cluster and does the kill -9). Debian's /usr/bin/chromium, driven by
// playwright-core (tests/web/package.json); nothing is downloaded.
//
//   node tests/web/dashboard.mjs '<json>'
//   json: {coordinators: [{index, url}], leader: <index>, job, cancelJob, parallelism,
//          artifacts: <dir for screenshots and logs>, refreshMs}
//
// Protocol on stdout/stdin, one line each: the script prints "STEP <what>" as it goes and
// "KILL-LEADER <index>" when the leader is to die; the test kills that coordinator with
// SIGKILL by its pid and answers "KILLED <index>". The last line is "RESULT <json>"; the
// exit code is 0 when every check passed.
//
// Checks (the issue's acceptance):
//  1. both coordinators' pages load and show the running job (the standby's header says
//     standby and names the leader); job, workers and HA views draw; after
//     kill -9 of the leader the other coordinator's page (never reloaded) shows itself
//     as leader with a higher epoch, a failover in its history, and the job RUNNING again
//  2. cancel from the page works (through the standby, forwarded, and on the new leader);
//     REST errors are shown with their status and text: a job that does not exist (404),
//     a malformed job id (400), a cancel the server refuses (404)
//  4. the checkpoints view against the coordinator's real statistics: once REST lists a
//     COMPLETED checkpoint, its history row shows its id, acks, times, end-to-end
//     duration, bytes added (checkpointed_size), full state size and alignment buffered,
//     as format.js formats REST's values; tiles, latest completed, the summary (min, avg,
//     max: flinc keeps no percentiles) and the configuration; after the failover the view
//     shows "latest restore" with REST's latest.restored.id (not older than the checkpoint
//     seen before the kill) and its path, then a checkpoint completed after the restore.
//     Failed, in-progress and savepoint rows, which the real job does not produce, are
//     drawn from a Flink-shaped answer (flink_checkpoints_fixture.mjs) through a route.
//  3. no console error: any page error or console error fails, except the browser's own
//     "Failed to load resource: ... status of N" line for a REST call whose failure the
//     page displayed (the same URL and status are in the page's error log)
// Screenshots go to <artifacts>/NN-<name>.png, the console to <artifacts>/console.log.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import {chromium} from 'playwright-core';
import {checkpointsFixture} from './flink_checkpoints_fixture.mjs';

const cfg = JSON.parse(process.argv[2] || '{}');
const SCALE = Number(process.env.FLINC_TIMEOUT_SCALE || '1') > 0 ? Number(process.env.FLINC_TIMEOUT_SCALE || '1') : 1;
const CHROMIUM = process.env.FLINC_CHROMIUM || '/usr/bin/chromium';
const BOGUS_JOB = 'f'.repeat(32);
const t0 = Date.now();

const failures = [];
const consoleLines = [];
const consoleErrors = []; // {page, text, url}
const pageErrors = []; // {page, text}
const shown = new Set(); // `${page} ${url} ${status}` of errors the pages displayed
let shot = 0;

function say(line) {
  process.stdout.write(`${line}\n`);
}

function step(what) {
  say(`STEP ${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`);
}

function fail(what) {
  const text = what.length > 1500 ? `${what.slice(0, 1500)}…` : what;
  failures.push(text);
  say(`FAIL ${text.replace(/\n/g, ' | ')}`);
}

const ms = (s) => Math.round(s * 1000 * SCALE);

// ---- stdin: the test's answers ----------------------------------------------------------

const rl = readline.createInterface({input: process.stdin});
const pending = [];
const lines = [];
rl.on('line', (l) => (pending.length ? pending.shift()(l) : lines.push(l)));
rl.on('close', () => {
  while (pending.length) pending.shift()(null);
});
function nextLine() {
  return lines.length ? Promise.resolve(lines.shift()) : new Promise((r) => pending.push(r));
}

// ---- pages ------------------------------------------------------------------------------

function watch(page, label) {
  page.on('console', (m) => {
    const loc = m.location() || {};
    consoleLines.push(`[${((Date.now() - t0) / 1000).toFixed(1)}s ${label}] ${m.type()}: ${m.text()}` +
      (loc.url ? ` (${loc.url})` : ''));
    if (m.type() === 'error') consoleErrors.push({page: label, text: m.text(), url: loc.url || ''});
  });
  page.on('pageerror', (e) => {
    consoleLines.push(`[${label}] pageerror: ${e.stack || e}`);
    pageErrors.push({page: label, text: String(e.stack || e)});
  });
}

// Remembers the REST errors the page displayed in its error log (before it goes away).
async function harvest(page, label) {
  const items = await page.$$eval('#error-log li[data-url]', (lis) =>
    lis.map((li) => ({url: li.dataset.url, status: li.dataset.status})));
  for (const it of items) shown.add(`${label} ${it.url} ${it.status}`);
}

async function snapshot(page) {
  return page.evaluate(() => {
    const t = (sel) => {
      const el = document.querySelector(sel);
      return el ? el.textContent.trim().replace(/\s+/g, ' ') : '(none)';
    };
    return `hash=${location.hash} role=${t('[data-testid=ha-role]')} epoch=${t('[data-testid=ha-epoch]')} ` +
      `leader=${t('[data-testid=ha-leader]')} job-state=${t('[data-testid=job-state]')} ` +
      `banner=${t('#banner')} refresh=${t('#refresh-status')}`;
  }).catch((e) => `(page not readable: ${e.message})`);
}

async function waitUntil(page, what, fn, arg, seconds) {
  try {
    await page.waitForFunction(fn, arg, {timeout: ms(seconds), polling: 100});
  } catch (e) {
    throw new Error(`timed out after ${(ms(seconds) / 1000).toFixed(0)} s waiting for ${what}; ` +
      `the page shows: ${await snapshot(page)}`);
  }
}

async function screenshot(page, name) {
  shot++;
  const file = path.join(cfg.artifacts, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({path: file, fullPage: true});
  step(`screenshot ${path.basename(file)}`);
}

async function go(page, base, hash) {
  await page.goto(`${base}?refresh=${cfg.refreshMs || 1000}#${hash}`);
}

// The page's view of a hash change, without a reload.
async function navigate(page, hash) {
  const before = await page.evaluate(() => Number(document.body.dataset.refreshes || 0));
  await page.evaluate((h) => {
    location.hash = h;
  }, hash);
  await waitUntil(page, `a refresh of #${hash}`, (n) => Number(document.body.dataset.refreshes || 0) > n, before, 10);
}

const roleIs = (role) => document.querySelector('[data-testid=ha-role]')?.textContent === role;

// ---- the checks -------------------------------------------------------------------------

async function run(browser) {
  const coords = cfg.coordinators;
  const leader = coords.find((c) => c.index === cfg.leader);
  const standby = coords.find((c) => c.index !== cfg.leader);
  const job = cfg.job;

  const pageL = await browser.newPage();
  const pageS = await browser.newPage();
  watch(pageL, `coord${leader.index}`);
  watch(pageS, `coord${standby.index}`);

  // 1. both pages load and show the running job
  step('overview on the leader and on the standby');
  await go(pageL, leader.url, '/overview');
  await go(pageS, standby.url, '/overview');
  for (const [page, role] of [[pageL, 'leader'], [pageS, 'standby']]) {
    await waitUntil(page, `role ${role} in the header`, (r) =>
      document.querySelector('[data-testid=ha-role]')?.textContent === r, role, 15);
    await waitUntil(page, `job ${job} RUNNING in the jobs table`, (j) =>
      document.querySelector(`[data-testid=job-row][data-jid="${j}"]`)?.dataset.state === 'RUNNING', job, 15);
  }
  const epoch0 = Number(await pageS.textContent('[data-testid=ha-epoch]'));
  const leaderText = await pageS.textContent('[data-testid=ha-leader]');
  const leaderHost = new URL(leader.url).host;
  if (!leaderText.includes(leaderHost)) fail(`standby header names the leader ${leaderHost}; it shows "${leaderText}"`);
  if (Number(await pageL.textContent('[data-testid=ha-epoch]')) !== epoch0) fail('leader and standby show different epochs');
  const workers = await pageS.textContent('[data-testid=tile-workers] .tile-value');
  if (workers.trim() !== String(cfg.workers)) fail(`overview shows ${workers} workers, expected ${cfg.workers}`);
  await screenshot(pageL, `overview-leader-coord${leader.index}`);
  await screenshot(pageS, `overview-standby-coord${standby.index}`);

  step('job view on the standby (the leader\'s data, forwarded)');
  await navigate(pageS, `/jobs/${job}`);
  await waitUntil(pageS, 'job RUNNING with its graph and subtasks placed on workers', (p) => {
    const st = document.querySelector('[data-testid=job-state]');
    const nodes = document.querySelectorAll('[data-testid=graph-node]');
    const rows = [...document.querySelectorAll('[data-testid=subtask-row]')];
    return st?.dataset.state === 'RUNNING' && nodes.length > 0 &&
      document.querySelector('[data-testid=graph-parallelism]')?.textContent === `parallelism ${p}` &&
      rows.length >= p && rows.every((r) => r.textContent.includes('RUNNING') && !r.textContent.includes('unassigned'));
  }, cfg.parallelism, 15);
  await screenshot(pageS, 'job-standby');

  step('workers view');
  await navigate(pageS, '/workers');
  await waitUntil(pageS, `${cfg.workers} workers with heartbeat ages and their subtasks`, (n) => {
    const rows = [...document.querySelectorAll('[data-testid=worker-row]')];
    return rows.length === n && rows.every((r) => /\d/.test(r.querySelector('[data-testid=heartbeat-age]').textContent)) &&
      rows.some((r) => r.querySelector('[data-testid=worker-tasks]'));
  }, cfg.workers, 10);
  await screenshot(pageS, 'workers');

  step('HA view on the standby');
  await navigate(pageS, '/ha');
  await waitUntil(pageS, 'the HA view of a standby', () =>
    document.querySelector('[data-testid=ha-view-role]')?.textContent === 'standby' &&
    /\d/.test(document.querySelector('[data-testid=session-timeout]')?.textContent || ''), null, 10);
  await screenshot(pageS, 'ha-standby');

  // The checkpoints view against the coordinator's real statistics: wait (through the
  // standby, forwarded) for a COMPLETED checkpoint, then find its row and compare every
  // figure with the REST answer, formatted by the page's own format.js.
  step('checkpoints view: waiting for a COMPLETED checkpoint in GET /jobs/:id/checkpoints');
  const ck0 = await restUntil(standby.url, `jobs/${job}/checkpoints`, 'a COMPLETED checkpoint in the history',
    (s) => s.latest?.completed && s.history?.some((c) => c.status === 'COMPLETED'), 40);
  const done0 = ck0.history.find((c) => c.status === 'COMPLETED');
  step(`checkpoint ${done0.id} COMPLETED: state ${done0.state_size} B, added ${done0.checkpointed_size} B, ` +
    `${done0.end_to_end_duration} ms, alignment ${done0.alignment_buffered} B, ` +
    `${done0.num_acknowledged_subtasks}/${done0.num_subtasks} acks`);
  if (!(done0.state_size > 0)) fail(`REST: checkpoint ${done0.id} has no state size (${done0.state_size})`);
  if (!(done0.end_to_end_duration >= 0)) fail(`REST: checkpoint ${done0.id} has no duration`);
  if (done0.num_acknowledged_subtasks !== done0.num_subtasks || !(done0.num_subtasks >= cfg.parallelism)) {
    fail(`REST: checkpoint ${done0.id} acknowledged by ${done0.num_acknowledged_subtasks}/${done0.num_subtasks} subtasks`);
  }
  await navigate(pageS, `/jobs/${job}/checkpoints`);
  await checkHistoryRow(pageS, done0);
  await waitUntil(pageS, 'the tiles and the latest completed checkpoint', () =>
    Number(document.querySelector('[data-testid=ckp-completed] .tile-value')?.textContent.replace(/,/g, '')) >= 1 &&
    /^\d+$/.test(document.querySelector('[data-testid=latest-completed]')?.textContent || '') &&
    document.querySelector('[data-testid=ckp-restored] .tile-value')?.textContent === '0' &&
    !document.querySelector('[data-testid=latest-restored]'), null, 10);
  // the summary shows min, average and max, and the percentiles (nearest rank over the
  // history window) once one of them differs from the average
  const sumHead = await pageS.$$eval('[data-testid=checkpoint-summary] th', (ths) => ths.map((t) => t.textContent).join('|'));
  if (sumHead !== '|Min|Average|Max' && sumHead !== '|Min|Average|Median|p90|p99|Max') fail(`checkpoint summary columns: ${sumHead}`);
  const sumRows = await pageS.$$eval('[data-testid=summary-row]', (rs) => rs.map((r) => r.dataset.stat));
  for (const k of ['checkpointed_size', 'state_size', 'end_to_end_duration', 'alignment_buffered']) {
    if (!sumRows.includes(k)) fail(`checkpoint summary: no ${k} row (${sumRows})`);
  }
  const cfgText = await pageS.$eval('[data-testid=checkpoints]', (e) => e.textContent);
  if (!cfgText.includes('exactly_once') || !cfgText.includes('Interval1.0 s') || !cfgText.includes('Tolerable failuresunlimited')) {
    fail('checkpoints view: the configuration (exactly_once, interval 1.0 s, unlimited tolerable failures) is not shown');
  }
  await screenshot(pageS, 'checkpoints-real-before-failover');

  // What the real job does not produce (a failed, an in-progress and a savepoint row, a
  // restore), in Flink's shape, served to the page through a route.
  step('checkpoints view drawing failed, in-progress and savepoint rows (Flink-shaped fixture)');
  const fx = checkpointsFixture();
  const isCkp = (u) => u.pathname === `/jobs/${job}/checkpoints`;
  const isCfg = (u) => u.pathname === `/jobs/${job}/checkpoints/config`;
  await pageS.route(isCkp, (r) => r.fulfill({status: 200, contentType: 'application/json', body: JSON.stringify(fx.checkpoints)}));
  await pageS.route(isCfg, (r) => r.fulfill({status: 200, contentType: 'application/json', body: JSON.stringify(fx.config)}));
  await waitUntil(pageS, 'the fixture\'s 9 checkpoints: failed, in-progress and savepoint rows, latest failed, savepoint, restored', () => {
    const row = (id) => document.querySelector(`[data-testid=checkpoint-row][data-id="${id}"]`);
    const t = (sel) => document.querySelector(`[data-testid=${sel}]`)?.textContent;
    return document.querySelectorAll('[data-testid=checkpoint-row]').length === 9 &&
      row(6)?.querySelector('[data-col=status]')?.textContent === 'FAILED' &&
      row(9)?.querySelector('[data-col=status]')?.textContent === 'IN_PROGRESS' &&
      row(9)?.querySelector('[data-col=acknowledged]')?.textContent === '2/4' &&
      row(4)?.querySelector('[data-col=status]')?.textContent === 'COMPLETEDsavepoint' &&
      t('latest-completed') === '8' && t('latest-savepoint') === '4' && t('latest-restored') === '3' &&
      t('latest-failed') === '6' && t('latest-failed-cause') === 'Checkpoint expired before completing.' &&
      [...document.querySelectorAll('[data-testid=checkpoint-summary] th')].map((e) => e.textContent).join('|') ===
        '|Min|Average|Median|p90|p99|Max';
  }, null, 10);
  await screenshot(pageS, 'checkpoints-flink-shape-fixture');
  await pageS.unroute(isCkp);
  await pageS.unroute(isCfg);

  // 2. REST errors are shown
  step('a job that does not exist: 404 shown');
  await navigate(pageS, `/jobs/${'0'.repeat(32)}`);
  await waitUntil(pageS, 'the 404 of GET /jobs/000… in the banner and the view', (id) => {
    const b = [...document.querySelectorAll('#banner [data-testid=error-item]')];
    const v = document.querySelector('[data-testid=view-error-item]');
    return b.some((e) => e.dataset.status === '404' && e.textContent.includes(`Job ${id} not found`)) &&
      v && v.dataset.status === '404';
  }, '0'.repeat(32), 10);
  await screenshot(pageS, 'error-404-unknown-job');

  step('a malformed job id: 400 shown');
  await navigate(pageS, '/jobs/not-a-job-id');
  await waitUntil(pageS, 'the 400 of GET /jobs/not-a-job-id in the banner', () =>
    [...document.querySelectorAll('#banner [data-testid=error-item]')].some((e) =>
      e.dataset.status === '400' && e.textContent.includes('not-a-job-id')), null, 10);

  step('cancel through the standby (forwarded to the leader)');
  await navigate(pageS, `/jobs/${cfg.cancelJob}`);
  await cancelFromPage(pageS, cfg.cancelJob, 'cancel-via-standby');
  await waitUntil(pageS, 'an empty banner once the page is back on a job that exists', () =>
    document.getElementById('banner').hidden, null, 10);

  // 1. failover: kill -9 the leader, the standby's page follows without a reload
  step('failover: the standby\'s page stays on the job while the leader is killed');
  await navigate(pageS, `/jobs/${job}`);
  await waitUntil(pageS, 'job RUNNING', () =>
    document.querySelector('[data-testid=job-state]')?.dataset.state === 'RUNNING', null, 10);
  await harvest(pageL, `coord${leader.index}`);
  await pageL.close(); // its coordinator is about to die: nothing more to see there
  const killAt = Date.now();
  say(`KILL-LEADER ${leader.index}`);
  const answer = await nextLine();
  if (answer !== `KILLED ${leader.index}`) throw new Error(`the test answered "${answer}" to KILL-LEADER`);
  // In between, the page says what it sees: the leader's answers fail (503) or no leader
  // is known. Only a screenshot: a fast election may fall between two refreshes.
  const between = await pageS.waitForFunction(() =>
    [...document.querySelectorAll('#banner [data-testid=error-item]')].some((e) => e.dataset.status === '503') ||
    document.querySelector('[data-testid=ha-role]')?.textContent === 'electing', null,
  {timeout: ms(8), polling: 100}).then(() => true, () => false);
  if (between) await screenshot(pageS, 'during-failover');
  await waitUntil(pageS, `this coordinator leading with an epoch above ${epoch0} and the job RUNNING`, (e0) =>
    document.querySelector('[data-testid=ha-role]')?.textContent === 'leader' &&
    Number(document.querySelector('[data-testid=ha-epoch]')?.textContent) > e0 &&
    document.querySelector('[data-testid=job-state]')?.dataset.state === 'RUNNING' &&
    document.getElementById('banner').hidden, epoch0, 40);
  const epoch1 = Number(await pageS.textContent('[data-testid=ha-epoch]'));
  const failoverS = (Date.now() - killAt) / 1000;
  step(`page shows leader, epoch ${epoch0} -> ${epoch1}, job RUNNING, ${failoverS.toFixed(1)} s after the kill`);
  await screenshot(pageS, 'job-after-failover-new-leader');

  // The new leader restored the job from the latest checkpoint in ZooKeeper: the view
  // shows that restore (REST's latest.restored), then new checkpoints again.
  step('checkpoints view after the failover: latest restored');
  const ck1 = await restUntil(standby.url, `jobs/${job}/checkpoints`, 'latest.restored after the failover',
    (s) => s.latest?.restored && s.counts?.restored >= 1, 30);
  const restored = ck1.latest.restored;
  step(`REST: restored checkpoint ${restored.id} (the page saw ${done0.id} completed before the kill)`);
  if (!(restored.id >= done0.id)) fail(`restored checkpoint ${restored.id} is older than ${done0.id}, completed before the kill`);
  await navigate(pageS, `/jobs/${job}/checkpoints`);
  await waitUntil(pageS, `latest restored ${restored.id} with its path`, (r) =>
    document.querySelector('[data-testid=latest-restored]')?.textContent === String(r.id) &&
    document.querySelector('[data-testid=latest-restored-path]')?.textContent === r.external_path &&
    Number(document.querySelector('[data-testid=ckp-restored] .tile-value')?.textContent) >= 1, restored, 10);
  const ck2 = await restUntil(standby.url, `jobs/${job}/checkpoints`, `a checkpoint completed after restoring ${restored.id}`,
    (s) => s.latest?.completed?.id > restored.id && s.history?.some((c) => c.status === 'COMPLETED'), 30);
  const done1 = ck2.history.find((c) => c.status === 'COMPLETED');
  if (ck2.latest.restored?.id !== restored.id) fail(`REST: latest.restored went from ${restored.id} to ${ck2.latest.restored?.id}`);
  await checkHistoryRow(pageS, done1);
  await waitUntil(pageS, `latest restored still ${restored.id}`, (r) =>
    document.querySelector('[data-testid=latest-restored]')?.textContent === String(r), restored.id, 5);
  await screenshot(pageS, 'checkpoints-real-after-failover');

  step('HA view after the failover');
  await navigate(pageS, '/ha');
  await waitUntil(pageS, 'the failover in the history', (e1) =>
    [...document.querySelectorAll('[data-testid=failover-row]')].some((r) => r.textContent.includes(String(e1))) &&
    document.querySelector('[data-testid=ha-view-role]')?.textContent === 'leader', epoch1, 10);
  await screenshot(pageS, 'ha-after-failover');

  // 2. a refused cancel is shown, then the real cancel on the new leader
  step('a cancel the server refuses: its 404 shown');
  await navigate(pageS, `/jobs/${job}`);
  const isCancel = (u) => u.pathname === `/jobs/${job}` && u.search === '?mode=cancel';
  await pageS.route(isCancel, (r) => r.request().method() === 'PATCH' ?
    r.continue({url: new URL(`jobs/${BOGUS_JOB}?mode=cancel`, standby.url).href}) : r.continue());
  await pageS.click('[data-testid=cancel-job]');
  await pageS.click('[data-testid=confirm-cancel]');
  await waitUntil(pageS, 'the refused cancel (404) in the banner', (b) =>
    [...document.querySelectorAll('[data-testid=action-error]')].some((e) =>
      e.dataset.status === '404' && e.textContent.includes(`Job ${b} not found`)), BOGUS_JOB, 10);
  await screenshot(pageS, 'error-cancel-refused');
  await pageS.unroute(isCancel);
  await pageS.click('[data-testid=action-error] .dismiss');
  await waitUntil(pageS, 'the action error dismissed', () => !document.querySelector('[data-testid=action-error]'), null, 5);

  step('cancel on the new leader');
  await cancelFromPage(pageS, job, 'cancel-on-new-leader');
  await harvest(pageS, `coord${standby.index}`);
  return {epoch0, epoch1, failoverS, completedBeforeKill: done0.id, restoredId: restored.id, completedAfterRestore: done1.id};
}

const sleep = (t) => new Promise((r) => setTimeout(r, t));

// GET <base><path> from node (not the page) until pred(answer), within seconds (scaled).
async function restUntil(base, p, what, pred, seconds) {
  const end = Date.now() + ms(seconds);
  let last = '(no answer)';
  for (;;) {
    try {
      const r = await fetch(new URL(p, base), {signal: AbortSignal.timeout(5000)});
      const body = await r.text();
      last = `${r.status} ${body.slice(0, 600)}`;
      if (r.ok) {
        const data = JSON.parse(body);
        if (pred(data)) return data;
      }
    } catch (e) {
      last = `(${e.message})`;
    }
    if (Date.now() > end) throw new Error(`timed out after ${(ms(seconds) / 1000).toFixed(0)} s waiting for ${what} in GET ${p}; it answered ${last}`);
    await sleep(250);
  }
}

// The history row of the checkpoint c (a REST history entry) shows c's figures, formatted
// as format.js formats them.
async function checkHistoryRow(page, c) {
  await waitUntil(page, `history row ${c.id} ${c.status}`, (id) =>
    document.querySelector(`[data-testid=checkpoint-row][data-id="${id}"] [data-col=status]`)?.textContent === 'COMPLETED',
  c.id, 10);
  const got = await page.evaluate((id) => {
    const row = document.querySelector(`[data-testid=checkpoint-row][data-id="${id}"]`);
    const cells = Object.fromEntries([...row.querySelectorAll('td[data-col]')].map((td) => [td.dataset.col, td.textContent]));
    return {cells};
  }, c.id);
  const want = await page.evaluate(async (c) => {
    const fmt = await import(new URL('web/format.js', location.href).href);
    return {
      id: String(c.id), status: 'COMPLETED', acknowledged: `${c.num_acknowledged_subtasks}/${c.num_subtasks}`,
      trigger_timestamp: fmt.time(c.trigger_timestamp), latest_ack_timestamp: fmt.time(c.latest_ack_timestamp),
      end_to_end_duration: fmt.duration(c.end_to_end_duration), checkpointed_size: fmt.bytes(c.checkpointed_size),
      state_size: fmt.bytes(c.state_size), alignment_buffered: fmt.bytes(c.alignment_buffered),
    };
  }, c);
  for (const [k, v] of Object.entries(want)) {
    if (got.cells[k] !== v) fail(`checkpoint ${c.id}: the history shows ${k} "${got.cells[k]}", REST says "${v}"`);
    if (k !== 'status' && (!got.cells[k] || got.cells[k] === '\u2013')) fail(`checkpoint ${c.id}: no ${k} shown`);
  }
  step(`history row ${c.id}: ${JSON.stringify(got.cells)}`);
}

async function cancelFromPage(page, jid, name) {
  await waitUntil(page, `the cancel button of ${jid}`, (j) =>
    document.querySelector(`[data-testid=job][data-jid="${j}"] [data-testid=cancel-job]`), jid, 10);
  await page.click('[data-testid=cancel-job]');
  await page.click('[data-testid=confirm-cancel]');
  await waitUntil(page, 'the notice of the 202 answer to the cancel', () =>
    [...document.querySelectorAll('[data-testid=notice]')].some((n) => n.textContent.includes('202')), null, 10);
  await waitUntil(page, `job ${jid} CANCELED`, () =>
    document.querySelector('[data-testid=job-state]')?.dataset.state === 'CANCELED', null, 15);
  await screenshot(page, name);
}

// 3. the console
function checkConsole() {
  for (const e of pageErrors) fail(`page error on ${e.page}: ${e.text}`);
  for (const e of consoleErrors) {
    const m = /^Failed to load resource: the server responded with a status of (\d+)/.exec(e.text);
    if (m && shown.has(`${e.page} ${e.url} ${m[1]}`)) continue; // a REST error the page showed
    fail(`console error on ${e.page}: ${e.text}${e.url ? ` (${e.url})` : ''}` +
      (m ? ' (a failed request the page did not show)' : ''));
  }
}

async function main() {
  fs.mkdirSync(cfg.artifacts, {recursive: true});
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'flinc-web-chromium-'));
  let browser;
  let result = {};
  try {
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: {width: 1400, height: 900},
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    for (const p of browser.pages()) await p.close();
    result = await run(browser);
  } catch (e) {
    fail(e.message || String(e));
    for (const p of browser ? browser.pages() : []) {
      await p.screenshot({path: path.join(cfg.artifacts, `failure-${browser.pages().indexOf(p)}.png`), fullPage: true})
        .catch(() => {});
    }
  } finally {
    checkConsole();
    fs.writeFileSync(path.join(cfg.artifacts, 'console.log'), consoleLines.join('\n') + '\n');
    if (browser) await browser.close().catch(() => {});
    fs.rmSync(profile, {recursive: true, force: true});
  }
  result.failures = failures;
  result.seconds = (Date.now() - t0) / 1000;
  result.consoleMessages = consoleLines.length;
  result.restErrorsShownAndAllowed = consoleErrors.length - failures.filter((f) => f.startsWith('console error')).length;
  say(`RESULT ${JSON.stringify(result)}`);
  rl.close();
  process.exitCode = failures.length ? 1 : 0;
}

main();
