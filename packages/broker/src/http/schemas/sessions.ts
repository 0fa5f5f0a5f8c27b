/** The session schemas live in `@tether-broker/protocol`; views.ts names its answer after this one. */
export type { SessionView } from '@tether-broker/protocol';
