// Log groups and streams: browse a group's (or stream's) latest events and follow them live.

import { useEffect, useMemo, useRef, useState } from 'react';
import { listGroups, listStreams, readEvents, type StoredEvent } from '../lib/api';
import { formatBytes } from '../lib/format';
import { useAsync } from '../lib/hooks';
import { href, navigate, setParams, useLocation } from '../lib/router';
import { tail } from '../lib/tail';
import { formatTime } from '../lib/time';
import { JsonView, asJson } from '../components/JsonView';

const MAX_LINES = 2000;

export function LogGroups() {
  const { params } = useLocation();
  const group = params.get('group') ?? '';
  const stream = params.get('stream') ?? undefined;
  const [filter, setFilter] = useState('');
  const groups = useAsync((signal) => listGroups(undefined, signal), []);
  const shown = useMemo(() => (groups.data ?? []).filter((g) => g.name.toLowerCase().includes(filter.toLowerCase())), [groups.data, filter]);
  return (
    <div className="logs-layout">
      <aside className="panel groups" aria-label="Log groups">
        <h2>Log groups</h2>
        <input type="search" placeholder="Filter groups" value={filter} onChange={(e) => setFilter(e.target.value)} aria-label="Filter log groups" />
        {groups.error && <p className="error">{groups.error}</p>}
        <ul className="list" data-testid="group-list">
          {shown.map((g) => (
            <li key={g.name}>
              <a
                href={href('/logs', { group: g.name })}
                aria-current={g.name === group ? 'true' : undefined}
                onClick={(e) => {
                  e.preventDefault();
                  navigate(href('/logs', { group: g.name }));
                }}
              >
                <span className="name">{g.name}</span>
                <span className="muted small">
                  {g.streamCount} streams · {formatBytes(g.storedBytes + g.unflushedBytes)}
                  {g.lastEventMs ? ` · last ${formatTime(g.lastEventMs)}` : ''}
                </span>
              </a>
            </li>
          ))}
        </ul>
      </aside>
      {group ? <GroupView key={group} group={group} stream={stream} /> : <p className="muted">Pick a log group.</p>}
    </div>
  );
}

function GroupView({ group, stream }: { group: string; stream?: string }) {
  const streams = useAsync((signal) => listStreams(group, signal), [group]);
  return (
    <div className="group-view">
      <div className="toolbar">
        <h1 className="h-inline">{group}</h1>
        <span className="spacer" />
        <a
          className="button"
          href={href('/insights', { groups: group })}
          onClick={(e) => {
            e.preventDefault();
            navigate(href('/insights', { groups: group }));
          }}
        >
          Query in Logs Insights
        </a>
      </div>
      <div className="streams-and-events">
        <section className="panel streams" aria-label="Log streams">
          <h2>Streams</h2>
          {streams.error && <p className="error">{streams.error}</p>}
          <ul className="list" data-testid="stream-list">
            <li>
              <button type="button" className={!stream ? 'on' : ''} onClick={() => setParams({ stream: undefined })}>
                All streams
              </button>
            </li>
            {(streams.data?.streams ?? []).map((s) => (
              <li key={s.name}>
                <button type="button" className={s.name === stream ? 'on' : ''} title={s.name} onClick={() => setParams({ stream: s.name })}>
                  <span className="name">{s.name}</span>
                  {s.lastEventMs && <span className="muted small">{formatTime(s.lastEventMs)}</span>}
                </button>
              </li>
            ))}
          </ul>
        </section>
        <EventsView key={`${group}|${stream ?? ''}`} group={group} stream={stream} />
      </div>
    </div>
  );
}

function EventsView({ group, stream }: { group: string; stream?: string }) {
  const [events, setEvents] = useState<StoredEvent[]>([]);
  const [live, setLive] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const [grep, setGrep] = useState('');
  const seen = useRef(new Set<number>());

  useEffect(() => {
    const ctl = new AbortController();
    readEvents(group, stream, 200, ctl.signal).then(
      (r) => {
        r.events.forEach((e) => seen.current.add(e.id));
        setEvents(r.events.slice().reverse());
      },
      (e: Error) => e.name !== 'AbortError' && setError(e.message),
    );
    return () => ctl.abort();
  }, [group, stream]);

  useEffect(() => {
    if (!live) return;
    setNote('Following new events…');
    return tail(group, stream, 0, {
      onEvent: (e) => {
        if (seen.current.has(e.id)) return;
        seen.current.add(e.id);
        setEvents((old) => [e, ...old].slice(0, MAX_LINES));
      },
      onGap: () => setNote('Some events went by faster than the console could follow; reload to see them all.'),
      onError: (m) => {
        setError(m);
        setLive(false);
      },
    });
  }, [live, group, stream]);

  const shown = grep ? events.filter((e) => e.message.toLowerCase().includes(grep.toLowerCase())) : events;
  return (
    <section className="panel events" aria-label="Events">
      <div className="panel-head">
        <h2>Events {stream && <span className="muted small">in {stream}</span>}</h2>
        <input type="search" placeholder="Filter loaded events" value={grep} onChange={(e) => setGrep(e.target.value)} aria-label="Filter loaded events" />
        <label className="toggle">
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} data-testid="live-tail" /> Live tail
        </label>
      </div>
      {error && <p className="error">{error}</p>}
      {live && note && <p className="muted small">{note}</p>}
      <table className="grid events-table" data-testid="events-table">
        <thead>
          <tr>
            <th scope="col">Time</th>
            {!stream && <th scope="col">Stream</th>}
            <th scope="col">Message</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((e) => {
            const json = open === e.id ? asJson(e.message) : null;
            return (
              <tr key={e.id}>
                <td className="nowrap">{formatTime(e.timestamp)}</td>
                {!stream && (
                  <td className="stream-cell" title={e.logStreamName}>
                    {e.logStreamName}
                  </td>
                )}
                <td>
                  <button type="button" className="message" aria-expanded={open === e.id} onClick={() => setOpen(open === e.id ? null : e.id)}>
                    {e.message}
                  </button>
                  {open === e.id && (json ? <JsonView value={json} /> : <pre className="raw">{e.message}</pre>)}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {shown.length === 0 && !error && <p className="muted">No events.</p>}
    </section>
  );
}
