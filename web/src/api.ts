/** The demo page's calls to its own API (`web/demo_api.py`). */

import type { ChatSession } from "@chatworker/transport";
import type { UIMessage } from "ai";

export interface DemoConfig {
  taskId: string;
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
