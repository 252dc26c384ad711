// Type declarations for react.js, relay's React hooks (React >= 18 is a peer dependency).
import type { Context, ReactNode, ReactElement } from "react";
import type {
  NotificationsState, PresenceView, Relay, RelayEvent, RelayOptions, RelayState,
} from "./relay.js";

export interface RelayProviderProps {
  /** A Relay you made (and close); or pass options and the provider makes and closes one. */
  client?: Relay;
  options?: RelayOptions;
  children?: ReactNode;
}

export interface UseRelayResult {
  state: RelayState;
  lastMessage: RelayEvent | null;
  isConnected: boolean;
  /** A client action over the connection (WebSocket) or HTTP (SSE). */
  send(message: { type: string; [field: string]: unknown }): Promise<unknown>;
}

export interface UseNotificationsResult extends NotificationsState {
  markAsRead(ids: string | string[]): Promise<unknown>;
  markAllAsRead(): Promise<unknown>;
  loadMore(): Promise<void>;
  refetch(): Promise<void>;
}

export interface UsePresenceResult extends PresenceView {
  setViewing(ticketId: number | null): Promise<unknown>;
  setTyping(ticketId: number, isTyping?: boolean): Promise<unknown>;
}

export interface RelayHooks {
  RelayContext: Context<Relay | null>;
  RelayProvider(props: RelayProviderProps): ReactElement;
  useRelayClient(): Relay;
  useRelayState(): RelayState;
  useRelay(channels: string | string[], options?: { onMessage?: (event: RelayEvent) => void }): UseRelayResult;
  useNotifications(options?: { userId?: string | number; limit?: number; onNotification?: (n: RelayEvent) => void }): UseNotificationsResult;
  usePresence(projectId: string | number, options?: { typingTimeout?: number }): UsePresenceResult;
}

/** The hooks bound to the React you pass (call once per app). */
export function createRelayHooks(React: typeof import("react")): RelayHooks;

// Bound to globalThis.React on first use (React loaded as a global).
export const RelayProvider: RelayHooks["RelayProvider"];
export const useRelayClient: RelayHooks["useRelayClient"];
export const useRelayState: RelayHooks["useRelayState"];
export const useRelay: RelayHooks["useRelay"];
export const useNotifications: RelayHooks["useNotifications"];
export const usePresence: RelayHooks["usePresence"];
