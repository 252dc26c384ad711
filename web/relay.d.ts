// Type declarations for relay.js, relay's browser client.

/** Every event relay delivers: what the backend published, plus id, channel and ts. */
export interface RelayEvent {
  /** The envelope id "<epoch>-<seq>"; absent on ephemeral events (typing, viewing, presence_state). */
  id?: string;
  channel: string;
  /** When relay stored (or broadcast) it, RFC 3339. */
  ts: string;
  type: string;
  [field: string]: unknown;
}

/** relay's "history no longer available" for one channel: refetch that channel's state. */
export interface RelayReset {
  channel: string;
  /** The channel's new position (its head): live events follow. */
  id: string;
  message: string;
}

export interface RelayProblem {
  /** relay's error code: unauthorized, token_expired, forbidden, bad_request, shutdown, slow_consumer, disconnected, sse_failed, … */
  error: string;
  message: string;
  /** true when the client stopped for good (a refused token, 403 / 4003, a bad request). */
  fatal: boolean;
}

export type RelayStatus = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface RelayState {
  /** idle: no channel yet; connecting: never open yet; reconnecting: was open, waiting or trying again. */
  status: RelayStatus;
  transport: "sse" | "websocket" | null;
  /** solo: its own connection; leader / follower: sharing one among the browser's tabs. */
  role: "solo" | "leader" | "follower";
  /** Failed attempts since the connection was last open. */
  attempt: number;
  /** When the next attempt starts (ms since the epoch), while waiting; else null. */
  nextAttemptAt: number | null;
  /** Why the connection is not open (fatal: why it stopped). */
  error: RelayProblem | Omit<RelayProblem, "fatal"> | null;
  /** When this state began (ms since the epoch). */
  since: number;
}

export interface BackoffOptions {
  /** Upper bound of the first retry's wait, ms (default 500). */
  initial?: number;
  /** Largest wait, ms (default 30000). */
  max?: number;
  /** Growth per attempt (default 2). Waits are drawn uniformly in [0, min(max, initial·factor^attempt)) (full jitter). */
  factor?: number;
}

export interface RelayOptions {
  /** relay's base URL, e.g. "https://relay.example.com" (default: this page's origin). */
  url?: string;
  /** A token, when it never needs refreshing. */
  token?: string;
  /**
   * Returns a fresh token (usually from your backend). Called before the first connection when no
   * token is given, and again on 401 / 4001 / 4002 / token_expired; the client then resumes.
   */
  getToken?: (why: { reason: "initial" | "unauthorized" | "token_expired" | string }) => string | Promise<string>;
  /** The user id (for the notifications channel); default: the token's sub / user_id claim. */
  userId?: string | number;
  /** "auto" (default): SSE, then WebSocket when EventSource is missing or fails before opening; or force one. */
  transport?: "auto" | "sse" | "websocket";
  /** SSE attempts that may fail before ever opening before "auto" switches to WebSocket (default 2). */
  sseFailuresBeforeWebSocket?: number;
  backoff?: BackoffOptions;
  /** Where to start: "" (default, live only), "0" (everything relay still holds) or a saved cursor. */
  cursor?: string;
  /** WebSocket only: send a ping this often (ms, default 30000; 0: never) and reconnect when no pong comes. */
  pingInterval?: number;
  /**
   * Share one connection among this browser's tabs (BroadcastChannel + Web Locks): true (tabs of the
   * same relay URL and user) or a key of your own. Ignored where the browser lacks either API.
   */
  share?: boolean | string;
  /** Channels to subscribe at once, with onMessage as their handler. */
  channels?: string[];
  onMessage?: (event: RelayEvent) => void;
  /** Test seams: replace the browser's globals. */
  env?: Partial<{
    EventSource: typeof EventSource | undefined;
    WebSocket: typeof WebSocket | undefined;
    fetch: typeof fetch;
    BroadcastChannel: typeof BroadcastChannel | undefined;
    locks: LockManager | undefined;
    setTimeout: (fn: () => void, ms: number) => unknown;
    clearTimeout: (t: unknown) => void;
    now: () => number;
    random: () => number;
  }>;
}

export interface SubscribeOptions {
  /**
   * State then stream: where this subscriber's state was taken, e.g. the cursor your backend read
   * (GET /api/channels/{channel}/cursor) before it read the state it sent the page: a channel's
   * envelope id, "A=id,B=id" for several channels, or "0" for everything relay still holds. The
   * handler gets every event after it, once, even when the connection already carries the channel.
   */
  cursor?: string;
  /** relay cannot answer the cursor (or lost the history after this subscriber's position): reload the state. */
  onReset?: (reset: RelayReset) => void;
}

export class RelayError extends Error {
  /** relay's error code (or http_<status>). */
  code: string;
  /** The HTTP status, 0 when none. */
  status: number;
}

export interface RelayEvents {
  message: RelayEvent;
  reset: RelayReset;
  state: RelayState;
  error: RelayProblem;
}

export class Relay {
  constructor(options?: RelayOptions);
  readonly url: string;
  userId: string;
  readonly state: RelayState;
  /** The whole cursor of the current channels, as sent on reconnect ("A=id,B=id", or the bare id). */
  readonly cursor: string;
  readonly channels: string[];
  readonly stats: { received: number; duplicates: number; connects: number; tokenRefreshes: number };
  /** The position (envelope id) of one channel, or "". */
  position(channel: string): string;
  /** Add channels to the connection; handler gets their events. Returns the unsubscribe function. */
  subscribe(channels: string | string[], handler: (event: RelayEvent) => void, options?: SubscribeOptions): () => void;
  on<K extends keyof RelayEvents>(type: K, listener: (value: RelayEvents[K]) => void): () => void;
  /** Connect again now (e.g. from a "retry now" button). */
  reconnect(): void;
  close(): void;

  /** A client action: over the WebSocket when that is the transport, else the matching HTTP call. */
  send(message: { type: string; [field: string]: unknown }): Promise<unknown>;
  /** Round trip to relay, ms. */
  ping(): Promise<number>;
  typing(projectId: string | number, ticketId: number, isTyping?: boolean): Promise<unknown>;
  viewing(projectId: string | number, ticketId: number | null): Promise<unknown>;
  /** Envelope ids or the notifications' own data.id. Over HTTP resolves to {ids, unread_count}. */
  markRead(ids: string | string[]): Promise<{ ids: string[]; unread_count: number } | null>;
  markAllRead(): Promise<{ ids: string[]; unread_count: number }>;
  fetchNotifications(options?: { limit?: number; before?: string }): Promise<NotificationsPage>;
  /** One page of who is online, by user id; more: ask again with after = the last user_id. */
  fetchPresence(projectId: string | number, options?: { after?: string; limit?: number }): Promise<{ project_id: string; users: PresenceUser[]; count: number; more: boolean }>;
  /** relay's HTTP API with the bearer token (one retry with a fresh token on 401). */
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  /** The current token, asking getToken when there is none. */
  token(): Promise<string>;
}

export interface Notification extends RelayEvent {
  id: string;
  read: boolean;
}

export interface NotificationsPage {
  notifications: Notification[];
  unread_count: number;
  more: boolean;
}

export interface NotificationsState {
  notifications: Notification[];
  unreadCount: number;
  loading: boolean;
  more: boolean;
  error: string | null;
}

export interface PresenceUser {
  user_id: string;
  username: string;
  viewing: number | null;
  typing: number | null;
}

export interface PresenceView {
  users: PresenceUser[];
  /** ticket id -> the users viewing it */
  viewing: Record<string, PresenceUser[]>;
  /** ticket id -> the users typing in it */
  typing: Record<string, PresenceUser[]>;
  /** The whole list is in: false until presence_state, and while the pages after a large project's state are read. */
  loaded: boolean;
}

interface Store<S> {
  start(): this;
  close(): void;
  subscribe(listener: () => void): () => void;
  getSnapshot(): S;
}

export class NotificationsStore implements Store<NotificationsState> {
  constructor(relay: Relay, options?: { userId?: string | number; limit?: number; onNotification?: (n: RelayEvent) => void });
  readonly channel: string;
  start(): this;
  close(): void;
  subscribe(listener: () => void): () => void;
  getSnapshot(): NotificationsState;
  refetch(): Promise<void>;
  loadMore(): Promise<void>;
  markAsRead(ids: string | string[]): Promise<unknown>;
  markAllAsRead(): Promise<unknown>;
}

export class PresenceStore implements Store<PresenceView> {
  constructor(relay: Relay, options: { projectId: string | number; typingTimeout?: number; now?: () => number });
  readonly projectId: string;
  readonly channel: string;
  start(): this;
  close(): void;
  subscribe(listener: () => void): () => void;
  getSnapshot(): PresenceView;
  refetch(): Promise<void>;
  setViewing(ticketId: number | null): Promise<unknown>;
  /** Call on every keystroke: repeats are throttled. */
  setTyping(ticketId: number, isTyping?: boolean): Promise<unknown>;
}

// Pure helpers (relay-core.js, relay-stores.js).
export const DEFAULT_BACKOFF: Readonly<Required<BackoffOptions>>;
export const DEFAULT_SSE_FAILURES: number;
export const MAX_KEPT: number;
export const TYPING_TIMEOUT: number;
export function normalizeBackoff(b?: BackoffOptions): Required<BackoffOptions>;
export function backoffDelay(attempt: number, bounds?: BackoffOptions, random?: () => number): number;
export function parseId(id: string): { epoch: string; seq: number } | null;
export function isDuplicate(current: string | undefined, id: string): boolean;
export function parseCursor(text: string, channels: string[]): Record<string, string>;
export function buildCursor(channels: string[], positions: Record<string, string>): string;
export function chooseTransport(args: {
  preference?: "auto" | "sse" | "websocket";
  hasEventSource: boolean;
  hasWebSocket: boolean;
  sseFailures?: number;
  limit?: number;
}): "sse" | "websocket" | null;
type Decision = { action: "retry" | "refresh" | "stop"; error: string; message: string };
export function wsCloseAction(code: number, reason?: string): Decision;
export function sseEventAction(name: string, message?: string): Decision;
export function probeAction(status: number, body: unknown): { action: "retry" | "refresh" | "stop" | "sse-failed"; error: string; message: string };
export function streamURL(base: string, channels: string[], options?: { token?: string; cursor?: string; websocket?: boolean }): string;
export function trimSlash(s: string): string;
export function kindOf(msg: unknown): "event" | "ephemeral" | "control" | "invalid";
export function httpAction(msg: unknown): { method: string; path: string; body: unknown } | null;
export function tokenSubject(token: string): string;
export function notificationsChannel(userId: string | number): string;
export function ticketsChannel(projectId: string | number): string;
export function presenceChannel(projectId: string | number): string;
export function notificationsReduce(state: NotificationsState | undefined, action: { type: string; [k: string]: unknown }): NotificationsState;
export function presenceReduce(state: unknown, msg: { type: string; [k: string]: unknown }, now?: number, timeout?: number): unknown;
export function presenceView(state: unknown): PresenceView;
