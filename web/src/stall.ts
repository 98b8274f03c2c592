/**
 * Is a reply's stream alive? The page watches the bytes of every run stream the transport reads
 * (through the `fetch` it gives the transport) and says "Waiting for the chat worker…" while a
 * reply streams and its run has stalled:
 *
 * - the gateway says the turn's worker died and none has taken it over yet (its heartbeat
 *   comment is then `: waiting for a worker` instead of `: keep-alive`), or
 * - nothing arrived (no chunk, no keep-alive) for longer than the gateway's heartbeat interval
 *   allows, or the connection is down while the transport reconnects.
 *
 * A quiet model is not a stall: the gateway's keep-alives keep coming while the worker lives.
 */

import { useEffect, useState } from "react";

interface StreamState {
  /** When a chunk or a keep-alive last arrived (ms). */
  alive: number;
  /** The gateway's last heartbeat said the turn has no worker. */
  waiting: boolean;
  /** Responses of this run being read right now. */
  open: number;
  /** When the last connection closed or failed (ms), if none is open. */
  closed: number | null;
}

const streams = new Map<string, StreamState>();
const STREAM_PATH = /\/runs\/([^/?]+)\/stream(?:\?|$)/;
/** A connection down this long while the reply streams (the transport is reconnecting). */
const RECONNECTING_MS = 2_000;

function stateOf(runId: string): StreamState {
  let state = streams.get(runId);
  if (state === undefined) {
    state = { alive: Date.now(), waiting: false, open: 0, closed: null };
    streams.set(runId, state);
  }
  return state;
}

function observe(state: StreamState, text: string): void {
  for (const line of text.split("\n")) {
    if (line.startsWith("data:") || line === ": keep-alive" || line === ": stream open") {
      state.alive = Date.now();
      state.waiting = false;
    } else if (line === ": waiting for a worker") {
      state.waiting = true;
    }
  }
}

/** A `fetch` for the transport that passes everything through and watches run streams. */
export function watchingFetch(inner: typeof fetch = globalThis.fetch.bind(globalThis)): typeof fetch {
  return async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const runId = STREAM_PATH.exec(url)?.[1];
    if (runId === undefined) return inner(input, init);
    const state = stateOf(decodeURIComponent(runId));
    let response: Response;
    try {
      response = await inner(input, init);
    } catch (error) {
      if (state.open === 0) state.closed ??= Date.now();
      throw error;
    }
    if (!response.ok || response.body === null) {
      if (state.open === 0) state.closed ??= Date.now();
      return response;
    }
    state.open += 1;
    state.closed = null;
    state.alive = Date.now();
    const source = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      state.open = Math.max(0, state.open - 1);
      if (state.open === 0) state.closed = Date.now();
    };
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await source.read();
          if (done) {
            end();
            controller.close();
            return;
          }
          pending += decoder.decode(value, { stream: true });
          const cut = pending.lastIndexOf("\n");
          if (cut >= 0) {
            observe(state, pending.slice(0, cut));
            pending = pending.slice(cut + 1);
          }
          controller.enqueue(value);
        } catch (error) {
          end();
          controller.error(error);
        }
      },
      cancel(reason) {
        end();
        return source.cancel(reason);
      },
    });
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

/** A reply starts: forget how the run's earlier streams ended (a new one is about to open). */
function freshTurn(runId: string): void {
  const state = streams.get(runId);
  if (state === undefined || state.open > 0) return;
  state.alive = Date.now();
  state.waiting = false;
  state.closed = null;
}

/** Whether the run's stream has stalled (see the module's comment). */
export function isStalled(runId: string, heartbeatSeconds: number, now = Date.now()): boolean {
  const state = streams.get(runId);
  if (state === undefined) return false;
  if (state.waiting) return true;
  if (state.open === 0 && state.closed !== null && now - state.closed > RECONNECTING_MS) return true;
  // A keep-alive comes every heartbeat interval: allow it half as long again, and two seconds.
  return now - state.alive > heartbeatSeconds * 1500 + 2_000;
}

/** Re-checks {@link isStalled} twice a second while `active` (a reply is streaming). */
export function useStalled(runId: () => string | undefined, active: boolean, heartbeatSeconds: number): boolean {
  const [stalled, setStalled] = useState(false);
  useEffect(() => {
    if (!active) {
      setStalled(false);
      return;
    }
    const started = runId();
    if (started !== undefined) freshTurn(started);
    const check = () => {
      const id = runId();
      setStalled(id !== undefined && isStalled(id, heartbeatSeconds));
    };
    check();
    const timer = window.setInterval(check, 500);
    return () => window.clearInterval(timer);
  }, [runId, active, heartbeatSeconds]);
  return stalled;
}
