/** The demo page: a sidebar of chats and the open conversation, over ChatWorkerTransport. */

import type { Chat } from "@ai-sdk/react";
import { ChatWorkerTransport, type ChatSession } from "@chatworker/transport";
import type { UIMessage } from "ai";
import { useCallback, useEffect, useRef, useState } from "react";

import {
  deleteChat,
  fetchChat,
  fetchChats,
  fetchConfig,
  fetchTaskToken,
  type ChatSummary,
  type DemoConfig,
} from "./api";
import { chatFor, forgetChat, newChatId } from "./chats";
import { Conversation } from "./Conversation";
import { Sidebar } from "./Sidebar";
import { watchingFetch } from "./stall";

function chatFromUrl(): string | null {
  return new URLSearchParams(window.location.search).get("chat");
}

function showInUrl(id: string): void {
  const url = new URL(window.location.href);
  url.searchParams.set("chat", id);
  window.history.replaceState(null, "", url);
}

export function App() {
  const [config, setConfig] = useState<DemoConfig | null>(null);
  const [chats, setChats] = useState<ChatSummary[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    Promise.all([fetchConfig(), fetchChats()]).then(
      ([loadedConfig, loadedChats]) => {
        setConfig(loadedConfig);
        setChats(loadedChats);
      },
      (error: unknown) => setProblem(`Could not reach the gateway's demo API (${String(error)}).`),
    );
  }, []);

  if (problem) return <div className="fatal">{problem}</div>;
  if (!config || !chats) return <div className="loading">Loading…</div>;
  return <ChatApp config={config} initialChats={chats} />;
}

function sessionsOf(chats: ChatSummary[]): Record<string, ChatSession> {
  const sessions: Record<string, ChatSession> = {};
  for (const chat of chats) if (chat.session) sessions[chat.id] = chat.session;
  return sessions;
}

function ChatApp({ config, initialChats }: { config: DemoConfig; initialChats: ChatSummary[] }) {
  const [chats, setChats] = useState(initialChats);
  const [selected, setSelected] = useState(() => chatFromUrl() ?? newChatId());
  // Who answers a new chat; a chat keeps the task it was created with.
  const [agent, setAgent] = useState(config.taskId);
  // Chats the server has stored: only those are fetched (a new chat has nothing to fetch yet).
  const stored = useRef(new Set(initialChats.map((chat) => chat.id)));
  const refresh = useCallback(() => {
    // The worker saves a turn right after its marker: give it a moment before listing.
    window.setTimeout(
      () =>
        fetchChats().then((list) => {
          for (const chat of list) stored.current.add(chat.id);
          setChats(list);
        }, () => undefined),
      300,
    );
  }, []);
  // One transport per task (a transport talks to one task), made when a chat first needs it.
  const transports = useRef(new Map<string, ChatWorkerTransport>());
  const transportFor = (taskId: string): ChatWorkerTransport => {
    let transport = transports.current.get(taskId);
    if (transport === undefined) {
      transport = new ChatWorkerTransport({
        task: taskId,
        baseURL: config.chatApi,
        // Asked only to start a run or renew a run's token; fetched fresh each time.
        accessToken: () => fetchTaskToken(taskId),
        sessions: sessionsOf(initialChats.filter((chat) => (chat.taskId ?? config.taskId) === taskId)),
        // Watches each reply's stream, so the page can say when it stalls.
        fetch: watchingFetch(),
      });
      transports.current.set(taskId, transport);
    }
    return transport;
  };
  const current = chats.find((chat) => chat.id === selected);
  const task = current ? (current.taskId ?? config.taskId) : agent;
  const transport = transportFor(task);

  useEffect(() => showInUrl(selected), [selected]);

  const addDraft = useCallback(
    (id: string, text: string, taskId: string) =>
      setChats((list) =>
        list.some((chat) => chat.id === id)
          ? list
          : [{ id, title: text.slice(0, 60), taskId, updatedAt: Date.now() / 1000, session: null }, ...list],
      ),
    [],
  );

  function pickAgent(taskId: string): void {
    setAgent(taskId);
    forgetChat(selected); // an untouched new chat: start it again with the agent picked
    setSelected(newChatId());
  }

  async function remove(id: string): Promise<void> {
    forgetChat(id);
    stored.current.delete(id);
    await deleteChat(id);
    setChats((list) => list.filter((chat) => chat.id !== id));
    if (id === selected) setSelected(newChatId());
  }

  return (
    <div className="app">
      <Sidebar
        chats={chats}
        selected={selected}
        onSelect={setSelected}
        onNew={() => setSelected(newChatId())}
        onDelete={(id) => void remove(id)}
      />
      <main>
        <header>
          <h1>chatworker demo</h1>
          <span className="model" data-testid="model">
            {config.model}
          </span>
          {config.tasks.length > 1 && (
            <label className="agent">
              Agent{" "}
              <select
                data-testid="agent"
                value={task}
                disabled={current !== undefined}
                title={current ? "A chat keeps the agent it started with" : "Who answers this new chat"}
                onChange={(event) => pickAgent(event.target.value)}
              >
                {config.tasks.map((choice) => (
                  <option key={choice.id} value={choice.id}>
                    {choice.label}
                  </option>
                ))}
                {!config.tasks.some((choice) => choice.id === task) && <option value={task}>{task}</option>}
              </select>
            </label>
          )}
          {config.demoModel && (
            <div className="demo-note" data-testid="demo-note">
              Offline demo model (no OPENAI_API_KEY set)
            </div>
          )}
        </header>
        <ChatPane
          key={selected}
          id={selected}
          stored={stored.current.has(selected)}
          transport={transport}
          heartbeatSeconds={config.heartbeatSeconds}
          onSend={(text) => addDraft(selected, text, task)}
          onFinish={refresh}
        />
      </main>
    </div>
  );
}

interface ChatPaneProps {
  id: string;
  /** Whether the server has this chat (else it is new: nothing to load). */
  stored: boolean;
  transport: ChatWorkerTransport;
  heartbeatSeconds: number;
  onSend: (text: string) => void;
  onFinish: () => void;
}

function ChatPane({ id, stored, transport, heartbeatSeconds, onSend, onFinish }: ChatPaneProps) {
  const [chat, setChat] = useState<Chat<UIMessage> | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const runId = useCallback(() => transport.getSession(id)?.runId, [transport, id]);

  useEffect(() => {
    if (!stored) {
      setChat(chatFor(id, transport, [], onFinish));
      return;
    }
    let current = true;
    fetchChat(id).then(
      (stored) => {
        if (!current) return;
        if (stored?.session) transport.restoreSession(id, stored.session);
        setChat(chatFor(id, transport, stored?.messages ?? [], onFinish));
      },
      (error: unknown) => current && setProblem(String(error)),
    );
    return () => {
      current = false;
    };
  }, [id, stored, transport, onFinish]);

  if (problem) return <div className="fatal">{problem}</div>;
  if (!chat) return <div className="loading">Loading chat…</div>;
  return (
    <Conversation chat={chat} transport={transport} runId={runId} heartbeatSeconds={heartbeatSeconds} onSend={onSend} />
  );
}
