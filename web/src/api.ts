/** The demo page's calls to its own API (`web/demo_api.py`). */

import type { ChatSession } from "@chatworker/transport";
import type { UIMessage } from "ai";

/** A demo task a new chat may be answered by (`demo-chat`, or a framework's agent). */
export interface Agent {
  id: string;
  label: string;
}

export interface DemoConfig {
  /** The default task (`demo-chat`). */
  taskId: string;
  /** The agents a new chat may pick, the default first. */
  tasks: Agent[];
  demoModel: boolean;
  model: string;
  chatApi: string;
  accessToken: string;
  /** Seconds between the gateway's keep-alives on a run's stream. */
  heartbeatSeconds: number;
}

export interface ChatSummary {
  id: string;
  title: string;
  /** The task the chat was created with (null in a database older than this field). */
  taskId: string | null;
  updatedAt: number;
  session: ChatSession | null;
}

export interface StoredChat extends ChatSummary {
  messages: UIMessage[];
}

const API = "/api/demo";

async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(`${API}${path}`, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

export const fetchConfig = (): Promise<DemoConfig> => getJson<DemoConfig>("/config");

/** A trigger token for one of the demo's agents. */
export async function fetchTaskToken(taskId: string): Promise<string> {
  const body = await getJson<{ accessToken: string }>(`/tasks/${encodeURIComponent(taskId)}/token`);
  return body.accessToken;
}

export const fetchChats = (): Promise<ChatSummary[]> => getJson<ChatSummary[]>("/chats");

/** A stored chat, or null for a chat nobody has written to yet. */
export async function fetchChat(id: string): Promise<StoredChat | null> {
  const response = await fetch(`${API}/chats/${encodeURIComponent(id)}`, { cache: "no-store" });
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`chat ${id}: HTTP ${response.status}`);
  return (await response.json()) as StoredChat;
}

export async function deleteChat(id: string): Promise<void> {
  await fetch(`${API}/chats/${encodeURIComponent(id)}`, { method: "DELETE" });
}
