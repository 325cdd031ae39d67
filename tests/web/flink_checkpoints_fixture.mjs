// A GET /jobs/:jobid/checkpoints answer in Flink's shape (CheckpointingStatistics, Flink
// 1.17's REST API) and its /checkpoints/config (CheckpointConfigInfo), with what a running
// flinc job does not show: a failed, an in-progress and a savepoint row, a restore and
// real percentiles. dashboard.mjs serves them to the page through a Playwright route, after
// checking the view against the coordinator's own answer.

export function checkpointsFixture(now = Date.now()) {
  const base = now - 60000;
  const ck = (id, status, extra = {}) => ({
    className: status === 'COMPLETED' ? '.CompletedCheckpointStatistics' :
      status === 'FAILED' ? '.FailedCheckpointStatistics' : '.PendingCheckpointStatistics',
    id,
    status,
    is_savepoint: false,
    savepointFormat: null,
    trigger_timestamp: base + id * 5000,
    latest_ack_timestamp: base + id * 5000 + 180 + id * 11,
    checkpointed_size: 40960 + id * 1024,
    state_size: 3 * 1048576 + id * 40960,
    end_to_end_duration: 180 + id * 11,
    alignment_buffered: 0,
    processed_data: 8192 + id * 512,
    persisted_data: 0,
    num_subtasks: 4,
    num_acknowledged_subtasks: status === 'IN_PROGRESS' ? 2 : 4,
    checkpoint_type: 'CHECKPOINT',
    tasks: {},
    ...extra,
  });
  const stats = (min, max) => ({min, max, avg: Math.round((min + max) / 2), p50: Math.round((min + max) / 2),
    p90: Math.round(max * 0.95), p95: max, p99: max, p999: max});
  const completed = {...ck(8, 'COMPLETED'), external_path: 'file:///flinc/checkpoints/job/chk-8', discarded: false};
  const savepoint = {...ck(4, 'COMPLETED'), is_savepoint: true, savepointFormat: 'CANONICAL', checkpoint_type: 'SAVEPOINT',
    external_path: 'file:///flinc/savepoints/savepoint-0a1b2c-3d4e5f6a7b8c', discarded: false};
  const failed = {...ck(6, 'FAILED'), failure_timestamp: base + 6 * 5000 + 10000,
    failure_message: 'Checkpoint expired before completing.'};
  return {
    checkpoints: {
      counts: {restored: 1, total: 9, in_progress: 1, completed: 7, failed: 1},
      summary: {
        checkpointed_size: stats(41984, 49152),
        state_size: stats(3186688, 3473408),
        end_to_end_duration: stats(191, 268),
        alignment_buffered: stats(0, 0),
        processed_data: stats(8704, 12800),
        persisted_data: stats(0, 0),
      },
      latest: {
        completed,
        savepoint,
        failed,
        restored: {id: 3, restore_timestamp: base + 3 * 5000 + 2500, is_savepoint: false,
          external_path: 'file:///flinc/checkpoints/job/chk-3'},
      },
      history: [
        ck(9, 'IN_PROGRESS', {latest_ack_timestamp: base + 9 * 5000 + 90, end_to_end_duration: 90}),
        completed, ck(7, 'COMPLETED'), failed, ck(5, 'COMPLETED'), savepoint,
        ck(3, 'COMPLETED'), ck(2, 'COMPLETED'), ck(1, 'COMPLETED'),
      ],
    },
    config: {
      mode: 'exactly_once',
      interval: 5000,
      timeout: 600000,
      min_pause: 0,
      max_concurrent: 1,
      externalization: {enabled: true, delete_on_cancellation: false},
      state_backend: 'EmbeddedRocksDBStateBackend',
      checkpoint_storage: 'FileSystemCheckpointStorage',
      unaligned_checkpoints: false,
      tolerable_failed_checkpoints: 0,
      aligned_checkpoint_timeout: 0,
      checkpoints_after_tasks_finish: true,
      state_changelog_enabled: false,
    },
  };
}
