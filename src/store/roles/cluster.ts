// The Cluster role (DESIGN.md "Membership"): heartbeats of nodes and gateways, and the states
// an operator asks of them.
import type { Member, MemberRequest } from '../types.js';
import { roleMethods } from './methods.js';

export interface Cluster {
  /** Writes a member's heartbeat; returns the state an operator requested, if any. */
  heartbeat(member: Omit<Member, 'requestedState' | 'beatAt'>): Promise<MemberRequest | null>;
  listMembers(): Promise<Member[]>;
  /** Asks a member to change state; false when no such member. */
  requestMemberState(id: string, state: MemberRequest | null): Promise<boolean>;
  removeMember(id: string): Promise<void>;
}

export const CLUSTER_METHODS = roleMethods<Cluster>()(['heartbeat', 'listMembers', 'requestMemberState', 'removeMember']);
