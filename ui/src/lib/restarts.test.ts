import { describe, expect, it } from 'vitest';
import { AFTER_MS, BEFORE_MS, memoryBeforeQuery, restartDetail, restartRows, restartsQuery } from './restarts';
import { parseResultTime } from './time';

describe('Restarts', () => {
  it('asks for the restarts of a cluster, a namespace or a pod, newest first', () => {
    expect(restartsQuery({ cluster: 'prod' })).toBe(
      'fields @timestamp, FinishedAt, Namespace, PodName, FullPodName, ContainerName, RestartCount, Reason, ExitCode\n| filter Type = "ContainerRestart"\n| sort @timestamp desc\n| limit 200',
    );
    expect(restartsQuery({ cluster: 'prod', ns: 'shop', pod: 'or"ders' })).toContain('| filter Type = "ContainerRestart" and Namespace = "shop" and PodName = "or\\"ders"\n');
  });

  it('reads the rows of the answer, whatever the column order', () => {
    const cols = ['@timestamp', 'Reason', 'Namespace', 'PodName', 'FullPodName', 'ContainerName', 'RestartCount', 'ExitCode', '@ptr'];
    const rows = restartRows(cols, [['2026-12-08 10:02:07.000', 'OOMKilled', 'shop', 'orders', 'orders-6f7d8b9c4d-q8z2n', 'app', 3, '137', 'p1']], parseResultTime);
    expect(rows).toEqual([
      {
        ptr: 'p1',
        at: Date.UTC(2026, 11, 8, 10, 2, 7),
        namespace: 'shop',
        pod: 'orders',
        fullPod: 'orders-6f7d8b9c4d-q8z2n',
        container: 'app',
        restartCount: 3,
        reason: 'OOMKilled',
        exitCode: 137,
      },
    ]);
    // A restart without a reason, and a row without a pointer.
    const [r] = restartRows(['@timestamp', 'ExitCode'], [['2026-12-08 10:02:07.000', 1]], parseResultTime);
    expect(r.reason).toBe('');
    expect(r.ptr).toBeNull();
  });

  it('reads the whole event: last lines, readings, and none when the agent read no lines', () => {
    const d = restartDetail({
      Type: 'ContainerRestart',
      Reason: 'OOMKilled',
      ExitCode: 137,
      StartedAt: '2026-12-08T09:02:03Z',
      FinishedAt: '2026-12-08T10:02:07Z',
      ContainerId: 'a1',
      container_memory_working_set_before: 226492416,
      container_cpu_usage_before: 61.7,
      container_memory_limit: 268435456.0,
      LastLogLines: ['INFO ok', 'Exception: boom\n\tat a.b(C.java:1)'],
    });
    expect(d.lastLines).toEqual(['INFO ok', 'Exception: boom\n\tat a.b(C.java:1)']);
    expect(d.workingSetBefore).toBe(226492416);
    expect(d.cpuBefore).toBe(61.7);
    expect(d.memoryLimit).toBe(268435456);
    expect(d.signal).toBeNull();
    expect(restartDetail({ ExitCode: 1 }).lastLines).toBeNull();
  });

  it('charts the container memory of the minutes before the restart', () => {
    const at = Date.UTC(2026, 11, 8, 10, 2, 7);
    const m = memoryBeforeQuery({ at, fullPod: 'orders-6f7d8b9c4d-q8z2n', container: 'app' })!;
    expect(m.start).toBe(at - BEFORE_MS);
    expect(m.end).toBe(at + AFTER_MS);
    expect(m.bin).toBe(30);
    expect(m.query).toBe(
      'filter Type = "Container" and kubernetes.pod_name = "orders-6f7d8b9c4d-q8z2n" and kubernetes.container_name = "app"\n| stats max(container_memory_working_set) as working_set, max(container_memory_limit) as mem_limit by bin(30s)\n| sort @timestamp asc\n| limit 10000',
    );
    expect(memoryBeforeQuery({ at: null, fullPod: 'x', container: 'y' })).toBeNull();
  });
});
